//! The broker side of tiered storage (KIP-405): opens the remote tier named by
//! `remote.log.storage.url` (default: `file://<first log dir>/remote-log-storage`) when
//! `remote.log.storage.system.enable=true`, and runs the remote log manager task every
//! `remote.log.manager.task.interval.ms`: for every partition of a topic with
//! `remote.storage.enable=true` it copies rolled segments and applies remote retention.
//!
//! The task runs beside produce and fetch: a slow or unreachable store delays uploads only
//! (segments stay on local disk until their upload is committed) and every failure is retried
//! at the next round. The first round starts at once, so remote metadata is loaded right after
//! startup and reads below the local log start are served again.

use std::sync::Arc;
use std::time::Duration;

use sluice_tiered::{open_url, RemoteLogManager, RetryTier};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::config::Config;
use crate::handlers::now_ms;
use crate::topic_config::BrokerLayers;

/// Attempts per remote call within one round, and the first backoff.
const REMOTE_ATTEMPTS_MAX: u32 = 3;
const REMOTE_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Upper bound for the task's sleep, so a shortened interval takes effect quickly.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// The remote log manager, when remote storage is enabled on this broker.
pub fn open(config: &Config) -> anyhow::Result<Option<Arc<RemoteLogManager>>> {
    if config.broker_value("remote.log.storage.system.enable").is_none_or(|(v, _)| v != "true") {
        return Ok(None);
    }
    let url = match config.broker_value("remote.log.storage.url") {
        Some((url, _)) => url,
        None => {
            let base = config.log_dirs.first().cloned().unwrap_or_else(|| "data".into());
            let base = std::path::absolute(&base).unwrap_or(base);
            format!("file://{}", base.join("remote-log-storage").display())
        }
    };
    let tier = open_url(&url).map_err(|e| anyhow::anyhow!("remote.log.storage.url {url}: {e}"))?;
    tracing::info!(%url, "remote log storage enabled");
    let tier = RetryTier::new(tier, REMOTE_ATTEMPTS_MAX, REMOTE_BACKOFF_INITIAL);
    Ok(Some(Arc::new(RemoteLogManager::new(Arc::new(tier)))))
}

/// Starts the remote log manager task when remote storage is enabled.
pub fn spawn(broker: &Arc<Broker>, tasks: &mut JoinSet<()>) {
    if let Some(rlm) = &broker.remote {
        tasks.spawn(task(broker.clone(), rlm.clone()));
    }
}

async fn task(broker: Arc<Broker>, rlm: Arc<RemoteLogManager>) {
    let mut shutdown = broker.shutdown.clone();
    loop {
        for p in broker.logs.partitions() {
            if *shutdown.borrow() {
                return;
            }
            if !p.config().remote_storage_enable && rlm.log_start_offset(p.topic_partition()).is_none() {
                continue;
            }
            let result = rlm.sync(&p, now_ms()).await;
            let m = &broker.metrics.tier;
            match &result {
                Ok(stats) => {
                    m.segments_uploaded.inc_by(stats.segments_uploaded as u64);
                    m.bytes_uploaded.inc_by(stats.bytes_uploaded);
                    m.remote_segments_deleted.inc_by(stats.remote_segments_deleted as u64);
                }
                Err(_) => m.errors.with_label_values(&["upload"]).inc(),
            }
            match result {
                Ok(stats) if stats != Default::default() => {
                    tracing::debug!(topic = %p.topic_partition().topic, partition = p.topic_partition().partition, ?stats, "remote log manager round");
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(topic = %p.topic_partition().topic, partition = p.topic_partition().partition, %error, "remote log manager round failed, retrying later");
                }
            }
        }
        let interval = broker.broker_config_i64("remote.log.manager.task.interval.ms", 30_000);
        let sleep = Duration::from_millis(interval.max(1) as u64).min(MAX_SLEEP);
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}
