//! Background log maintenance owned by the broker: the roll flusher (fsyncs each rolled segment
//! and checkpoints the recovery points soon after the roll, as Kafka schedules it, so a crash
//! rescans only the newest segment), the retention task (every
//! `log.retention.check.interval.ms`: time/size/log-start retention, idle segment rolls, removal
//! of `.deleted` files after `file.delete.delay.ms`) and the log cleaner workers
//! (`log.cleaner.threads`, each cleaning the filthiest compacted log, then backing off
//! `log.cleaner.backoff.ms` when none is dirty enough), and the mover of AlterReplicaLogDirs
//! (Kafka's `ReplicaAlterLogDirsThread`: copies every future replica from its current log and
//! swaps it in once caught up, within `replica.alter.log.dirs.io.max.bytes.per.second`).
//!
//! Intervals, the thread count and the dedupe buffer are read from the effective broker config
//! on every round, so dynamic broker config changes apply without a restart. The disk work runs
//! on blocking threads; every loop stops when shutdown begins (a cleaning in progress finishes
//! first, and shutdown waits for it, so no half-swapped segment is left behind needlessly).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::clock::now_ms;

/// Upper bound for any maintenance sleep, so a shortened interval takes effect quickly.
const MAX_SLEEP: Duration = Duration::from_secs(30);
use crate::limits::MAX_CLEANER_THREADS;

/// Starts the retention task and the cleaner supervisor.
pub fn spawn(broker: &Arc<Broker>, tasks: &mut JoinSet<()>) {
    tasks.spawn(roll_flush_task(broker.clone()));
    tasks.spawn(retention_task(broker.clone()));
    tasks.spawn(alter_log_dirs_task(broker.clone()));
    if broker.broker_config_value("log.cleaner.enable").is_none_or(|(v, _)| v == "true") {
        tasks.spawn(cleaner_supervisor(broker.clone()));
    }
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(ms.max(1) as u64).min(MAX_SLEEP)
}

/// Sleeps `d` unless shutdown begins first; returns `false` on shutdown.
async fn sleep_or_shutdown(broker: &Broker, d: Duration) -> bool {
    let mut shutdown = broker.shutdown.clone();
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = shutdown.changed() => false,
        _ = tokio::time::sleep(d) => !*broker.shutdown.borrow(),
    }
}

/// Flushes rolled segments whenever a roll asks for it, on a blocking thread: producers never
/// wait for these fsyncs.
async fn roll_flush_task(broker: Arc<Broker>) {
    let notify = broker.logs.roll_notify();
    let mut shutdown = broker.shutdown.clone();
    loop {
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = notify.notified() => {}
        }
        let logs = broker.logs.clone();
        match tokio::task::spawn_blocking(move || logs.flush_rolled_segments()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(partitions)) => tracing::debug!(partitions, "flushed rolled segments"),
            Ok(Err(e)) => tracing::warn!(error = %e, "flushing rolled segments failed"),
            Err(e) => tracing::error!(error = %e, "roll flush task panicked"),
        }
    }
}

async fn retention_task(broker: Arc<Broker>) {
    loop {
        let interval = millis(broker.broker_config_i64("log.retention.check.interval.ms"));
        if !sleep_or_shutdown(&broker, interval).await {
            return;
        }
        let logs = broker.logs.clone();
        let result = tokio::task::spawn_blocking(move || logs.apply_retention(now_ms())).await;
        broker.metrics.maintenance.retention_passes.inc();
        if let Ok(Ok(segments)) = &result {
            broker.metrics.maintenance.retention_segments_deleted.inc_by(*segments as u64);
        }
        match result {
            Ok(Ok(0)) => {}
            Ok(Ok(segments)) => tracing::debug!(segments, "retention pass deleted segments"),
            Ok(Err(e)) => tracing::warn!(error = %e, "retention pass failed"),
            Err(e) => tracing::error!(error = %e, "retention task panicked"),
        }
    }
}

fn cleaner_threads(broker: &Broker) -> usize {
    broker.cleaner_config().threads.min(MAX_CLEANER_THREADS)
}

async fn cleaner_supervisor(broker: Arc<Broker>) {
    let mut workers = JoinSet::new();
    let mut running = 0usize;
    loop {
        // Workers above the configured count stop by themselves; start missing ones.
        while let Some(done) = workers.try_join_next() {
            if done.is_ok() {
                running = running.saturating_sub(1);
            }
        }
        let wanted = cleaner_threads(&broker);
        while running < wanted {
            workers.spawn(cleaner_worker(broker.clone(), running));
            running += 1;
        }
        let backoff = millis(broker.broker_config_i64("log.cleaner.backoff.ms"));
        if !sleep_or_shutdown(&broker, backoff).await {
            break;
        }
    }
    while workers.join_next().await.is_some() {}
}

async fn cleaner_worker(broker: Arc<Broker>, index: usize) {
    tracing::debug!(index, "log cleaner thread started");
    loop {
        if *broker.shutdown.borrow() || index >= cleaner_threads(&broker) {
            tracing::debug!(index, "log cleaner thread stopped");
            return;
        }
        let config = broker.cleaner_config();
        let logs = broker.logs.clone();
        let started = std::time::Instant::now();
        let cleaned = match tokio::task::spawn_blocking(move || {
            let result = logs.clean_filthiest(&config, now_ms());
            let now = now_ms();
            let max_dirty = logs
                .partitions()
                .iter()
                .filter_map(|p| p.cleanable(now).ok().flatten())
                .map(|c| c.dirty_ratio)
                .fold(0.0f64, f64::max);
            result.map(|r| (r, max_dirty))
        })
        .await
        .map(|r| {
            r.map(|(cleaned, max_dirty)| {
                broker.metrics.maintenance.cleaner_max_dirty_ratio.set(max_dirty);
                cleaned
            })
        }) {
            Ok(Ok(Some((tp, stats)))) => {
                let m = &broker.metrics.maintenance;
                m.cleaner_runs.inc();
                m.cleaner_bytes_read.inc_by(stats.bytes_before);
                m.cleaner_bytes_written.inc_by(stats.bytes_after);
                m.cleaner_records_removed.inc_by(stats.records_removed);
                m.cleaner_tombstones_removed.inc_by(stats.tombstones_removed);
                m.cleaner_run_seconds.observe(started.elapsed().as_secs_f64());
                tracing::debug!(topic = %tp.topic, partition = tp.partition, removed = stats.records_removed, "cleaner pass done");
                true
            }
            Ok(Ok(None)) => false,
            Ok(Err(e)) => {
                broker.metrics.maintenance.cleaner_errors.inc();
                tracing::warn!(error = %e, "log cleaning failed");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "log cleaner panicked");
                false
            }
        };
        if !cleaned {
            let backoff = millis(broker.broker_config_i64("log.cleaner.backoff.ms"));
            if !sleep_or_shutdown(&broker, backoff).await {
                return;
            }
        }
    }
}

/// How long one blocking copy step of one partition runs at most before the mover looks at the
/// other moves and at shutdown.
const MOVE_STEP: Duration = Duration::from_millis(200);

/// How long the mover waits before looking again at moves that made no progress.
const MOVE_IDLE: Duration = Duration::from_millis(50);

/// The AlterReplicaLogDirs mover (Kafka's `ReplicaAlterLogDirsThread`): round-robin over the
/// future replicas, each round copying a slice of each on a blocking thread; a caught-up one is
/// swapped in (the broker's metadata records its new dir first, see
/// `LogManager::complete_future`). Sleeps on the log manager's notification while nothing
/// moves. A move whose future replica fails (its dir went offline, it is damaged) is cancelled
/// and logged; the partition stays where it was.
async fn alter_log_dirs_task(broker: Arc<Broker>) {
    let notify = broker.logs.future_notify();
    loop {
        if *broker.shutdown.borrow() {
            return;
        }
        let moving: Vec<_> = broker.logs.futures().iter().map(|f| f.topic_partition().clone()).collect();
        if moving.is_empty() {
            let mut shutdown = broker.shutdown.clone();
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = notify.notified() => {}
                // A move a restart resumed has no notification of its own.
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            continue;
        }
        let mut progressed = false;
        for tp in moving {
            let b = broker.clone();
            let step = tokio::task::spawn_blocking(move || move_step(&b, &tp)).await;
            match step {
                Ok(Ok(copied)) => progressed |= copied > 0,
                Ok(Err(e)) => tracing::warn!(error = %e, "moving a partition between log dirs failed"),
                Err(e) => tracing::error!(error = %e, "log dir mover panicked"),
            }
        }
        if !progressed && !sleep_or_shutdown(&broker, MOVE_IDLE).await {
            return;
        }
    }
}

/// Copies `tp` to its future replica for up to [`MOVE_STEP`], within the copy quota, and swaps
/// it in once caught up. Returns the bytes copied.
fn move_step(broker: &Broker, tp: &sluice_storage::TopicPartition) -> Result<usize, String> {
    let started = std::time::Instant::now();
    let rate = broker.broker_config_i64("replica.alter.log.dirs.io.max.bytes.per.second").max(1);
    let throttled = rate < i64::MAX;
    // Under a quota, reads of about a tenth of a second's worth, each followed by the pause
    // that keeps the rate (a batch larger than that is still copied whole).
    let chunk = if throttled {
        (rate as usize / 10).clamp(1, sluice_storage::COPY_STEP_BYTES)
    } else {
        sluice_storage::COPY_STEP_BYTES
    };
    let mut copied = 0usize;
    loop {
        let progress = match broker.logs.copy_to_future(tp, chunk) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(copied),
            Err(e) => return Err(abandon_move(broker, tp, &e)),
        };
        copied += progress.bytes;
        if progress.caught_up {
            let commit = |dir: &std::path::Path| {
                broker.metadata.set_partition_log_dir(&tp.topic, tp.partition, dir).map_err(|e| e.to_string())
            };
            return match broker.logs.complete_future(tp, &commit) {
                Ok(_) => Ok(copied.max(1)),
                Err(e) => Err(abandon_move(broker, tp, &e)),
            };
        }
        if throttled && progress.bytes > 0 {
            let pause = Duration::from_secs_f64(progress.bytes as f64 / rate as f64);
            std::thread::sleep(pause.min(Duration::from_secs(1)));
        }
        if progress.bytes == 0 || started.elapsed() >= MOVE_STEP || *broker.shutdown.borrow() {
            return Ok(copied);
        }
    }
}

/// A move that failed: transient failures (out of descriptors or memory, the current log's
/// dir) are retried at the next round; a future replica that is damaged or whose dir went
/// offline is deleted, and the partition stays where it is.
fn abandon_move(broker: &Broker, tp: &sluice_storage::TopicPartition, e: &sluice_storage::StorageError) -> String {
    let future_failed = broker.logs.future(tp).is_some_and(|f| f.check().is_err())
        || matches!(e, sluice_storage::StorageError::Corrupt { .. });
    if future_failed {
        tracing::error!(topic = %tp.topic, partition = tp.partition, error = %e, "cancelling the move of a partition: its future replica failed");
        if let Err(cancel) = broker.logs.cancel_future(tp) {
            tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %cancel, "could not delete the failed future replica");
        }
    }
    format!("{}-{}: {e}", tp.topic, tp.partition)
}
