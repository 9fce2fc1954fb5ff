//! The broker-wide shutdown signal as the coordinators see it: a request waiting on a rebalance
//! or a periodic task stops waiting once shutdown begins (or once the broker that would send the
//! signal is gone). Cloning is cheap; every clone sees the same signal.

use std::sync::Arc;

use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
    /// Keeps the channel open for a signal nobody will send ([`Shutdown::never`]).
    _keep_open: Option<Arc<watch::Sender<bool>>>,
}

impl Shutdown {
    pub fn new(rx: watch::Receiver<bool>) -> Self {
        Self { rx, _keep_open: None }
    }

    /// A signal that never fires (tests, tools).
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        Self { rx, _keep_open: Some(Arc::new(tx)) }
    }

    /// Whether shutdown has begun.
    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when shutdown begins or its sender is dropped.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        if *rx.borrow_and_update() {
            return;
        }
        let _ = rx.changed().await;
    }
}
