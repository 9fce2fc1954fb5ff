//! The broker fixture: a real Sluice broker on ephemeral ports with its own data directory, run
//! one of three ways, all from the same configuration:
//!
//! - [`start_in_process`]: `sluice::start` on the caller's Tokio runtime; the test gets the
//!   [`sluice::BrokerHandle`] (and so the broker's internals) and shuts it down itself.
//! - [`TestBroker`]: `sluice::start` on a dedicated runtime in a dedicated thread, so blocking
//!   clients (librdkafka, [`BlockingClient`](crate::client::BlockingClient)) can never starve it;
//!   owns a temp dir, restarts on the same data dir, shuts down cleanly on drop.
//! - [`ExternalBroker`]: the built `sluice` binary as a child process (`kill -9`-able), with
//!   `--override` flags for the same settings.
//!
//! Every wait has a deadline ([`WAIT`]) and panics with what it saw, so a broken broker fails a
//! test instead of hanging it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::client::AsyncClient;

/// Default deadline for anything a test waits for.
pub const WAIT: Duration = Duration::from_secs(30);

/// A free TCP port on 127.0.0.1 (bound and released; a small race is acceptable in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind :0").local_addr().expect("local addr").port()
}

/// The settings every test broker starts with (Kafka listener on `listener`, data in
/// `data_dir`, metrics on `metrics_listener`), followed by the test's own `extra` ones, which win.
fn settings(
    listener: String,
    data_dir: &Path,
    metrics_listener: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut kv = vec![
        ("listeners".to_string(), listener),
        ("log.dirs".to_string(), data_dir.display().to_string()),
        ("metrics.listener".to_string(), metrics_listener.to_string()),
    ];
    kv.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    kv
}

/// Starts an in-process broker; errors say whether the config or the start failed.
async fn try_start(
    data_dir: &Path,
    metrics_listener: &str,
    extra: &[(&str, &str)],
) -> Result<sluice::BrokerHandle, String> {
    let kv = settings("PLAINTEXT://127.0.0.1:0".into(), data_dir, metrics_listener, extra);
    let pairs: Vec<(&str, &str)> = kv.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let config = sluice::Config::from_overrides(&pairs).map_err(|e| format!("config rejected: {e}"))?;
    sluice::start(config).await.map_err(|e| format!("sluice::start failed: {e:#}"))
}

/// A broker on the caller's runtime with data in `dir` and no metrics listener (unless `extra`
/// sets one). The caller shuts it down (`handle.shutdown().await`).
pub async fn start_in_process(dir: &Path, extra: &[(&str, &str)]) -> sluice::BrokerHandle {
    try_start(dir, "none", extra).await.unwrap_or_else(|e| panic!("broker did not start: {e}"))
}

/// A client connected to an in-process broker's Kafka listener.
pub async fn connect(broker: &sluice::BrokerHandle) -> AsyncClient {
    AsyncClient::connect(broker.kafka_addr()).await
}

// ---------------------------------------------------------------------------------------------
// In-process broker on its own runtime thread
// ---------------------------------------------------------------------------------------------

/// A broker started with `sluice::start` on `127.0.0.1:0` and its own data directory, on a
/// dedicated multi-threaded Tokio runtime inside a dedicated thread, so the test's own runtime
/// (or blocking client calls) can never starve it.
pub struct TestBroker {
    addr: SocketAddr,
    dir: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    overrides: Vec<(String, String)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl TestBroker {
    /// Starts a broker with default settings plus `overrides` in a fresh temp dir.
    pub fn start(overrides: &[(&str, &str)]) -> TestBroker {
        let dir = tempfile::Builder::new().prefix("sluice-test-").tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let overrides: Vec<(String, String)> = overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut b = Self::spawn(data_dir, overrides);
        b.dir = Some(dir);
        b
    }

    /// Starts with no overrides.
    pub fn start_default() -> TestBroker {
        Self::start(&[])
    }

    fn spawn(data_dir: PathBuf, overrides: Vec<(String, String)>) -> TestBroker {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<SocketAddr, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let dir = data_dir.clone();
        let pairs = overrides.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-broker".into())
            .spawn(move || -> Result<(), String> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .thread_name("sluice-broker-rt")
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async move {
                    let extra: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    let handle = match try_start(&dir, "127.0.0.1:0", &extra).await {
                        Ok(h) => h,
                        Err(msg) => {
                            let _ = ready_tx.send(Err(msg.clone()));
                            return Err(msg);
                        }
                    };
                    let _ = ready_tx.send(Ok(handle.kafka_addr()));
                    let _ = stop_rx.await;
                    handle.shutdown().await.map_err(|e| format!("shutdown failed: {e:#}"))
                })
            })
            .expect("spawn broker thread");
        let addr = match ready_rx.recv_timeout(WAIT) {
            Ok(Ok(addr)) => addr,
            Ok(Err(msg)) => panic!("broker did not start: {msg}"),
            Err(_) => {
                // The broker thread died (panicked) or hung.
                if thread.is_finished() {
                    let why = match thread.join() {
                        Ok(Ok(())) => "exited without reporting".to_string(),
                        Ok(Err(e)) => e,
                        Err(panic) => panic_message(&panic),
                    };
                    panic!("broker did not start: {why}");
                }
                panic!("broker did not start within {WAIT:?}");
            }
        };
        assert_ne!(addr.port(), 0, "kafka_addr() must report the real bound port, not 0");
        TestBroker { addr, dir: None, data_dir, overrides, stop: Some(stop_tx), thread: Some(thread) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Clean shutdown; panics if the broker reports an error or takes longer than [`WAIT`].
    pub fn shutdown(mut self) {
        self.stop_and_join().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Clean shutdown followed by a start on the same data dir (same overrides, new port).
    pub fn restart(self) -> TestBroker {
        self.restart_with(|_| {})
    }

    /// Clean shutdown, then `while_down` (given the data dir) runs with the broker stopped, then a
    /// start on the same data dir (same overrides, new port).
    pub fn restart_with(mut self, while_down: impl FnOnce(&Path)) -> TestBroker {
        self.stop_and_join().unwrap_or_else(|e| panic!("{e}"));
        while_down(&self.data_dir);
        let dir = self.dir.take();
        let mut b = Self::spawn(self.data_dir.clone(), std::mem::take(&mut self.overrides));
        b.dir = dir;
        b
    }

    fn stop_and_join(&mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + WAIT;
        while !thread.is_finished() {
            if Instant::now() > deadline {
                return Err(format!("broker shutdown did not finish within {WAIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match thread.join() {
            Ok(r) => r,
            Err(panic) => Err(format!("broker thread panicked: {}", panic_message(&panic))),
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            eprintln!("warning: {e}");
        }
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

// ---------------------------------------------------------------------------------------------
// The broker binary as a child process
// ---------------------------------------------------------------------------------------------

/// The broker binary run as a child process (`kill -9`-able).
pub struct ExternalBroker {
    pub child: Child,
    pub port: u16,
    pub log_path: PathBuf,
}

/// How a freshly spawned broker process came up.
pub enum Startup {
    /// Its Kafka port accepts connections.
    Listening,
    /// It exited first (e.g. the port was still held).
    Exited(ExitStatus),
}

impl ExternalBroker {
    /// Runs `binary --override listeners=PLAINTEXT://127.0.0.1:<free> --override log.dirs=<dir>
    /// [--override k=v]...` and waits until the port accepts connections.
    pub fn start(binary: &str, data_dir: &Path, overrides: &[(&str, &str)]) -> ExternalBroker {
        let port = free_port();
        let log_path = data_dir.with_extension(format!("broker-{port}.log"));
        let mut b = ExternalBroker::spawn(binary, data_dir, port, overrides, log_path);
        match b.wait_listening(Instant::now() + WAIT) {
            Startup::Listening => b,
            Startup::Exited(status) => panic!("broker exited during startup with {status}; log:\n{}", b.log()),
        }
    }

    /// Spawns the binary on `port` with its output in `log_path`, without waiting for it.
    pub fn spawn(
        binary: &str,
        data_dir: &Path,
        port: u16,
        overrides: &[(&str, &str)],
        log_path: PathBuf,
    ) -> ExternalBroker {
        let log = std::fs::File::create(&log_path).expect("create broker log");
        // Parallel brokers must not fight over the default metrics port.
        let metrics_listener =
            overrides.iter().find(|(k, _)| *k == "metrics.listener").map(|(_, v)| *v).unwrap_or("127.0.0.1:0");
        let extra: Vec<(&str, &str)> = overrides.iter().filter(|(k, _)| *k != "metrics.listener").copied().collect();
        let mut cmd = Command::new(binary);
        for (k, v) in settings(format!("PLAINTEXT://127.0.0.1:{port}"), data_dir, metrics_listener, &extra) {
            cmd.arg("--override").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        ExternalBroker { child, port, log_path }
    }

    /// Waits until the port accepts connections or the process exits; panics with the log if
    /// neither happens by `deadline`.
    pub fn wait_listening(&mut self, deadline: Instant) -> Startup {
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Startup::Exited(status);
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Startup::Listening;
            }
            if Instant::now() > deadline {
                panic!("broker did not listen on {} in time; log:\n{}", self.port, self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's combined stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGKILL and reap.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().expect("wait");
        println!("[broker] killed -9 ({status})");
    }

    /// SIGTERM (via the shell's `kill`), then waits up to [`WAIT`] for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let status =
            Command::new("sh").arg("-c").arg(format!("kill -TERM {}", self.child.id())).status().expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("broker did not exit within {WAIT:?} of SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ExternalBroker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: String = log.chars().skip(log.chars().count().saturating_sub(8000)).collect();
            eprintln!("--- broker log ({}) ---\n{tail}", self.log_path.display());
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
