//! `sluice-storage`: partition logs on local disk, split the way Apache Kafka splits them.
//!
//! PUBLIC API CONTRACT (the broker compiles against exactly these names; internals are split
//! into modules and re-exported here):
//! - [`layout`]: file and directory names, Kafka's topic-id encoding;
//! - [`checkpoint`]: offset checkpoint files, `partition.metadata`, crash-safe small writes;
//! - [`index`]: offset and time indexes;
//! - [`leader_epoch`]: the leader-epoch cache and its `leader-epoch-checkpoint` file;
//! - [`limits`]: the fixed limits and entry sizes, their relationships asserted at compile time;
//! - [`io`]: the fsyncs of all storage I/O, and the power-loss simulation built on them;
//! - `segment`: one segment's files, bookkeeping and lock-free reads;
//! - `log`: [`UnifiedLog`], one partition's log (append, read, flush, HW);
//! - `recovery`: loading and recovering a partition dir at startup;
//! - [`remote`]: the remote tier trait (KIP-405), remote segment metadata and the upload
//!   candidates the log hands to it (the tier itself is `sluice-tiered`);
//! - `manager`: [`LogManager`], all logs across `log.dirs`, offline dirs, checkpoints;
//! - `future`: future replicas, moving a partition between log dirs online (AlterReplicaLogDirs).
//!
//! On disk everything is laid out exactly as Apache Kafka lays it out, so Kafka's tools
//! (`kafka-dump-log.sh`) can read a Sluice log dir.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::path::PathBuf;

use bytes::Bytes;
use thiserror::Error;

pub mod checkpoint;
mod cleaner;
mod future;
pub mod index;
pub mod io;
pub mod layout;
pub mod leader_epoch;
pub mod limits;
mod log;
mod manager;
pub mod producer_state;
mod recovery;
pub mod remote;
mod segment;
pub mod txn_index;
mod util;

#[cfg(test)]
mod tests;

pub use cleaner::{offset_map_capacity, CleanCrashPoint, Cleanable};
pub use log::UnifiedLog;
pub use manager::LogManager;

/// A topic name and partition index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// Per-log settings, from topic configs with broker `log.*` defaults (Kafka's names in comments).
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes` (default 1 GiB): roll when the active segment would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms` (default 7 days): roll when the active segment's first batch is older.
    pub segment_ms: i64,
    /// `segment.jitter.ms` (default 0).
    pub segment_jitter_ms: i64,
    /// `segment.index.bytes` (default 10 MiB): roll when an index would exceed this.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes` (default 4096): bytes between offset/time index entries.
    pub index_interval_bytes: u64,
    /// `flush.messages` (default i64::MAX): fsync after this many unflushed records, before acking.
    pub flush_messages: i64,
    /// `flush.ms` (default i64::MAX): fsync when the oldest unflushed append is this old.
    pub flush_ms: i64,
    /// `retention.ms` (default 7 days; negative = unlimited): segments whose largest timestamp is
    /// older are deleted (with `cleanup.policy` containing `delete`).
    pub retention_ms: i64,
    /// `retention.bytes` (default -1 = unlimited): oldest segments are deleted while the log is
    /// larger.
    pub retention_bytes: i64,
    /// `file.delete.delay.ms` (default 60 s): how long a deleted segment's `.deleted` files stay
    /// on disk (in-flight reads of them keep working meanwhile).
    pub file_delete_delay_ms: i64,
    /// `cleanup.policy` contains `delete`: time/size retention applies.
    pub cleanup_delete: bool,
    /// `cleanup.policy` contains `compact`: the log cleaner keeps the latest record per key.
    pub cleanup_compact: bool,
    /// `min.cleanable.dirty.ratio` (default 0.5).
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms` (default 0): records younger than this are never compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms` (default i64::MAX): a log whose oldest dirty record is older is
    /// cleaned whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms` (default 1 day): how long tombstones survive after the cleaning that
    /// first saw them (KIP-534's delete horizon).
    pub delete_retention_ms: i64,
    /// `remote.storage.enable` (KIP-405), with the broker's `remote.log.storage.system.enable`:
    /// segments are copied to the remote tier and local retention applies locally.
    pub remote_storage_enable: bool,
    /// `local.retention.ms` (-2 = `retention.ms`): how long uploaded segments stay on local disk.
    pub local_retention_ms: i64,
    /// `local.retention.bytes` (-2 = `retention.bytes`): local size bound for uploaded segments.
    pub local_retention_bytes: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_jitter_ms: 0,
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            file_delete_delay_ms: 60_000,
            cleanup_delete: true,
            cleanup_compact: false,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 24 * 3600 * 1000,
            remote_storage_enable: false,
            local_retention_ms: -2,
            local_retention_bytes: -2,
        }
    }
}

pub use future::{CopyProgress, FutureStart, MoveCrashPoint, ReconcileReport, COPY_STEP_BYTES, MAX_PREFERRED_LOG_DIRS};

/// Storage failures. The broker maps them to Kafka error codes in one place.
#[derive(Debug, Error)]
pub enum StorageError {
    /// An I/O failure; the log dir is taken offline (KAFKA_STORAGE_ERROR).
    #[error("i/o error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The log dir holding this partition is offline after an earlier I/O error.
    #[error("log dir {0} is offline")]
    LogDirOffline(PathBuf),
    /// A path that is not one of the configured `log.dirs` (LOG_DIR_NOT_FOUND).
    #[error("log dir {0} is not found in the config")]
    LogDirNotFound(PathBuf),
    /// OFFSET_OUT_OF_RANGE.
    #[error("offset {requested} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange { requested: i64, log_start_offset: i64, log_end_offset: i64 },
    /// The partition was deleted while the request was in flight (UNKNOWN_TOPIC_OR_PARTITION).
    #[error("partition {0:?} was deleted")]
    Deleted(TopicPartition),
    /// An operation the log's `cleanup.policy` forbids (POLICY_VIOLATION), e.g. DeleteRecords on
    /// a compact-only topic.
    #[error("{0}")]
    PolicyViolation(String),
    /// OUT_OF_ORDER_SEQUENCE_NUMBER: an idempotent producer's batch does not follow its last one.
    #[error("out of order sequence {received} for producer {producer_id} epoch {epoch} (last sequence {last_seq})")]
    OutOfOrderSequence { producer_id: i64, epoch: i16, last_seq: i32, received: i32 },
    /// INVALID_PRODUCER_EPOCH: a batch from an older epoch of a producer.
    #[error("producer {producer_id} epoch {received} is older than the current epoch {current}")]
    InvalidProducerEpoch { producer_id: i64, current: i16, received: i16 },
    /// INVALID_TXN_STATE: a non-transactional batch while the producer's transaction is open.
    #[error("producer {producer_id} has an open transaction; its batches must be transactional")]
    InvalidTxnState { producer_id: i64 },
    /// Unreadable data found at read time (CORRUPT_MESSAGE on fetch; recovery truncates instead).
    #[error("corrupt data in {path} at position {position}: {reason}")]
    Corrupt { path: PathBuf, position: u64, reason: String },
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// Whether an I/O error means the process ran out of a resource (EMFILE, ENFILE, ENOMEM) rather
/// than that the media failed. Such errors fail the operation that hit them and are retriable;
/// they never take a log dir offline.
pub fn is_resource_exhaustion(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    let resource = [Errno::MFILE, Errno::NFILE, Errno::NOMEM].map(|e| e.raw_os_error());
    e.kind() == std::io::ErrorKind::OutOfMemory || e.raw_os_error().is_some_and(|c| resource.contains(&c))
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub first_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
}

/// A contiguous run of whole batches read from the log.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Concatenated whole batches; empty when nothing at or after the fetch offset is readable.
    pub records: Bytes,
    /// Log start offset at read time.
    pub log_start_offset: i64,
    /// High watermark at read time.
    pub high_watermark: i64,
    /// Log end offset at read time.
    pub log_end_offset: i64,
}

/// A record located by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: i64,
    pub leader_epoch: i32,
}

/// Offsets of a partition, read together under its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// The last stable offset: the high watermark, or the first offset of the oldest open
    /// transaction if that is lower (`read_committed` consumers read below it).
    pub last_stable_offset: i64,
    pub log_end_offset: i64,
}

/// Settings for the whole log manager.
#[derive(Debug, Clone)]
pub struct LogManagerConfig {
    /// `log.dirs`.
    pub log_dirs: Vec<PathBuf>,
}

/// Log cleaner settings (broker `log.cleaner.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.dedupe.buffer.size` (default 128 MiB), shared by all cleaner threads: bounds
    /// the key-hash -> offset map of one cleaning.
    pub dedupe_buffer_size: u64,
    /// `log.cleaner.threads`: the buffer is split between them.
    pub threads: usize,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        Self { dedupe_buffer_size: 128 << 20, threads: 1 }
    }
}

/// What one cleaning did (for logs and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanerStats {
    /// First dirty offset before the cleaning.
    pub first_dirty_offset: i64,
    /// Offsets below this are now clean (the new cleaner checkpoint).
    pub end_offset: i64,
    pub segments_before: usize,
    pub segments_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_read: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionStats {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    /// Whether an idle active segment was rolled because its `segment.ms` elapsed.
    pub rolled: bool,
    pub log_start_offset: i64,
}

/// Sizes of one partition for DescribeLogDirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDirInfo {
    pub topic_partition: TopicPartition,
    pub log_dir: PathBuf,
    pub size_bytes: u64,
    /// Kafka's `getLogEndOffsetLag`: for the current replica `max(high watermark - log end, 0)`
    /// (always 0 on this single node, the leader); for a future replica how far its log end is
    /// behind the current replica's (-1 when the current one is gone).
    pub offset_lag: i64,
    /// A future replica being copied here by an AlterReplicaLogDirs move.
    pub is_future: bool,
}

/// What startup found and did, for the log.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub partitions_loaded: usize,
    /// Log dirs that had no clean-shutdown marker.
    pub unclean_dirs: Vec<PathBuf>,
    /// Segments scanned by recovery.
    pub segments_recovered: usize,
    /// Bytes cut off torn or corrupt tails (including segments deleted after the cut).
    pub bytes_truncated: u64,
    /// Segments whose missing or inconsistent indexes were rebuilt outside recovery.
    pub indexes_rebuilt: usize,
    /// Per recovered partition, the base offset of the first segment recovery scanned: the
    /// segment holding the recovery point (everything below it was fsynced and is not read).
    pub recovered_from: Vec<i64>,
}
