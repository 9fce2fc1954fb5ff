//! The broker side of tiered storage (KIP-405): opens the remote tier named by
//! `remote.log.storage.url` (default: `file://<first log dir>/remote-log-storage`) when
//! `remote.log.storage.system.enable=true`, and runs the remote log manager task every
//! `remote.log.manager.task.interval.ms` (the remote index cache is bounded by
//! `remote.log.index.file.cache.total.size.bytes`): for every partition of a topic with
//! `remote.storage.enable=true` it copies rolled segments and applies remote retention.
//!
//! The task runs beside produce and fetch: a slow or unreachable store delays uploads only
//! (segments stay on local disk until their upload is committed) and every failure is retried
//! at the next round. The first round starts at once, so remote metadata is loaded right after
//! startup and reads below the local log start are served again.
//!
//! Deletion: a tiered topic's deletion is recorded durably (`remote-log-pending-deletions.json`
//! in the first log dir) before its metadata goes; the task deletes its remote objects at once
//! (it is woken) and again at every round until done, so a crash or a down store only delays it.
//! DeleteRecords on a tiered partition commits the new log start in the partition's remote
//! metadata, then deletes the remote segments wholly below it in the background (or the next
//! round does).
//!
//! This module only wires config and tasks; everything about the remote tier (its metadata,
//! uploads, reads, retention, the deletion journal) lives in `sluice-tiered`.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use sluice_storage::layout::encode_topic_id;
use sluice_storage::{TimestampOffset, TopicPartition, UnifiedLog};
use sluice_tiered::{may_be_tiered, open_url, RemoteLogManager, RemoteLogManagerConfig, RetryTier};
use tokio::task::JoinSet;

use crate::broker::{ApiError, Broker};
use crate::clock::now_ms;
use crate::config::Config;
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
    let state_dir = config.log_dirs.first().cloned().unwrap_or_else(|| "data".into());
    let mut rlm_config = RemoteLogManagerConfig::default();
    if let Some((v, _)) = config.broker_value("remote.log.index.file.cache.total.size.bytes") {
        rlm_config.index_cache_bytes_max =
            v.parse().map_err(|e| anyhow::anyhow!("remote.log.index.file.cache.total.size.bytes {v}: {e}"))?;
    }
    let rlm = RemoteLogManager::with_config(Arc::new(tier), rlm_config)
        .with_state_dir(state_dir)
        .map_err(|e| anyhow::anyhow!("pending remote deletions: {e}"))?;
    if !rlm.pending_topic_deletions().is_empty() {
        tracing::info!(topics = rlm.pending_topic_deletions().len(), "resuming remote data deletion of deleted topics");
    }
    Ok(Some(Arc::new(rlm)))
}

/// Called by topic deletion before the topic's metadata is deleted (on a blocking thread: it
/// writes and fsyncs a file). Records durably that the topic's remote data must be deleted;
/// the returned guard, dropped once the deletion is over (done or failed), wakes the task.
pub fn begin_topic_deletion(broker: &Broker, name: &str) -> Result<Option<TopicDeletionGuard>, ApiError> {
    let (Some(rlm), Some(meta)) = (&broker.remote, broker.metadata.topic(name)) else { return Ok(None) };
    let tiered = meta.config.log.remote_storage_enable
        || (0..meta.partitions).any(|partition| {
            let tp = TopicPartition { topic: name.to_string(), partition };
            broker.logs.get(&tp).is_some_and(|p| may_be_tiered(&p))
        });
    if !tiered {
        return Ok(None);
    }
    let topic_id = encode_topic_id(meta.id.as_bytes());
    rlm.begin_topic_deletion(&topic_id, meta.partitions)
        .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, format!("recording remote deletion: {e}")))?;
    Ok(Some(TopicDeletionGuard { rlm: rlm.clone(), topic_id, topic: name.to_string() }))
}

/// See [`begin_topic_deletion`].
pub struct TopicDeletionGuard {
    rlm: Arc<RemoteLogManager>,
    topic_id: String,
    topic: String,
}

impl Drop for TopicDeletionGuard {
    fn drop(&mut self) {
        self.rlm.end_topic_deletion(&self.topic_id, &self.topic);
    }
}

/// DeleteRecords on a tiered partition, after the local log accepted the request: `target` is
/// the resolved offset (never -1), `local_low_watermark` what the local log answered. Commits
/// the new log start in the remote metadata and starts deleting the remote segments wholly
/// below it. Returns the whole log's new start (the low watermark).
pub async fn delete_records(
    broker: &Broker,
    log: &Arc<UnifiedLog>,
    target: i64,
    local_low_watermark: i64,
) -> Result<i64, ResponseError> {
    let Some(rlm) = &broker.remote else { return Ok(local_low_watermark) };
    if !may_be_tiered(log) {
        return Ok(local_low_watermark);
    }
    let tp = log.topic_partition().clone();
    let remote_start = rlm.delete_records(log, target).await.map_err(|error| {
        tracing::warn!(topic = %tp.topic, partition = tp.partition, %error, "remote delete records failed");
        ResponseError::KafkaStorageError
    })?;
    let (rlm, log) = (rlm.clone(), log.clone());
    tokio::spawn(async move {
        match rlm.delete_below_log_start(&log).await {
            Ok(n) if n > 0 => {
                tracing::debug!(topic = %tp.topic, partition = tp.partition, segments = n, "deleted remote segments below the log start");
            }
            Ok(_) => {}
            // The next round retries.
            Err(error) => {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, %error, "deleting remote segments below the log start failed");
            }
        }
    });
    Ok(remote_start.map_or(local_low_watermark, |r| r.min(local_low_watermark)))
}

/// ListOffsets by timestamp on a tiered partition whose remote segments hold data below the
/// local log start: the first record at or after `timestamp` in the remote tier, from its
/// (cached) time indexes. `Ok(None)` when the local log must be searched.
pub async fn offset_for_timestamp(
    broker: &Broker,
    log: &UnifiedLog,
    timestamp: i64,
) -> Result<Option<TimestampOffset>, ResponseError> {
    let Some(rlm) = &broker.remote else { return Ok(None) };
    let tp = log.topic_partition();
    if rlm.log_start_offset(tp).is_none() {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let result = rlm.offset_for_timestamp(tp, timestamp, log.offsets().log_start_offset).await;
    broker.metrics.tier.fetch_seconds.observe(started.elapsed().as_secs_f64());
    result.map_err(|error| {
        broker.metrics.tier.errors.with_label_values(&["fetch"]).inc();
        tracing::warn!(topic = %tp.topic, partition = tp.partition, timestamp, %error, "remote offset for timestamp failed");
        crate::error::tiered_error(&error)
    })
}

/// Deletes the remote data of deleted topics (pending records), if any.
async fn delete_deleted_topics(broker: &Broker, rlm: &Arc<RemoteLogManager>) {
    if rlm.pending_topic_deletions().is_empty() {
        return;
    }
    // Asked per record, at the time it is looked at: a topic deleted meanwhile counts as gone.
    let exists = |id: &str| broker.metadata.topics().iter().any(|t| encode_topic_id(t.id.as_bytes()) == id);
    match rlm.resume_topic_deletions(exists).await {
        Ok(n) => broker.metrics.tier.remote_segments_deleted.inc_by(n as u64),
        Err(error) => {
            broker.metrics.tier.errors.with_label_values(&["delete"]).inc();
            tracing::warn!(%error, "deleting remote data of deleted topics failed, retrying later");
        }
    }
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
        delete_deleted_topics(&broker, &rlm).await;
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
        let interval = broker.broker_config_i64("remote.log.manager.task.interval.ms");
        let sleep = Duration::from_millis(interval.max(1) as u64).min(MAX_SLEEP);
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(sleep) => {}
            _ = rlm.topic_deletion_requested() => {}
        }
    }
}
