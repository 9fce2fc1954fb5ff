//! `sluice-storage`: partition logs on local disk, split the way Apache Kafka splits them.
//!
//! PUBLIC API CONTRACT (the broker compiles against exactly these names; internals may be split
//! into modules `segment`, `index`, `log`, `recovery`, `checkpoint`, `manager`, re-exported here).

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::batch::RecordBatch;
use thiserror::Error;

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
        }
    }
}

/// Storage failures. The broker maps them to Kafka error codes in one place.
#[derive(Debug, Error)]
pub enum StorageError {
    /// An I/O failure; the log dir is taken offline (KAFKA_STORAGE_ERROR).
    #[error("i/o error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The log dir holding this partition is offline after an earlier I/O error.
    #[error("log dir {0} is offline")]
    LogDirOffline(PathBuf),
    /// OFFSET_OUT_OF_RANGE.
    #[error("offset {requested} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange { requested: i64, log_start_offset: i64, log_end_offset: i64 },
    /// The partition was deleted while the request was in flight (UNKNOWN_TOPIC_OR_PARTITION).
    #[error("partition {0:?} was deleted")]
    Deleted(TopicPartition),
    /// Unreadable data found at read time (CORRUPT_MESSAGE on fetch; recovery truncates instead).
    #[error("corrupt data in {path} at position {position}: {reason}")]
    Corrupt { path: PathBuf, position: u64, reason: String },
}

pub type Result<T> = std::result::Result<T, StorageError>;

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
    pub log_end_offset: i64,
}

/// One partition's log: the ordered segments and the append lock. Thread-safe; appends to one
/// partition are serialized, reads do not hold the append lock while copying data.
pub struct Partition {
    _private: (),
}

impl Partition {
    pub fn topic_partition(&self) -> &TopicPartition {
        todo!()
    }

    /// Appends validated batches at the log end: consecutive offsets from the LEO are stamped into
    /// each batch's header (base offset, `leader_epoch`) as it is written; rolls segments on
    /// `segment.bytes`/`segment.ms`/index full; adds index entries every `index.interval.bytes`;
    /// fsyncs before returning when `flush.messages` is reached. Does not move the high watermark.
    pub fn append(&self, batches: &[RecordBatch], leader_epoch: i32) -> Result<AppendInfo> {
        todo!("{} {leader_epoch}", batches.len())
    }

    /// Reads whole batches starting with the batch that contains `fetch_offset`, stopping before
    /// any batch whose last offset is `>= max_offset` (the high watermark for consumers) and once
    /// `max_bytes` would be exceeded — except that when `min_one_batch` is set and the first batch
    /// alone is larger than `max_bytes`, that one batch is returned whole. `fetch_offset` below the
    /// log start or above the LEO is `OffsetOutOfRange`; equal to the LEO yields empty records.
    pub fn read(&self, fetch_offset: i64, max_bytes: usize, max_offset: i64, min_one_batch: bool) -> Result<ReadResult> {
        todo!("{fetch_offset} {max_bytes} {max_offset} {min_one_batch}")
    }

    pub fn offsets(&self) -> LogOffsets {
        todo!()
    }

    /// Moves the high watermark to `min(offset, LEO)` if that is higher, waking watchers.
    pub fn advance_high_watermark(&self, offset: i64) {
        todo!("{offset}")
    }

    /// A receiver that changes whenever the high watermark moves (long-polling fetches wait on it).
    pub fn watch_high_watermark(&self) -> tokio::sync::watch::Receiver<i64> {
        todo!()
    }

    /// The first record whose timestamp is `>= timestamp` (ListOffsets by time), or `None`.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        todo!("{timestamp}")
    }

    /// The record with the largest timestamp (ListOffsets `-3`, KIP-734), or `None` when empty.
    pub fn max_timestamp(&self) -> Result<Option<TimestampOffset>> {
        todo!()
    }

    /// fsyncs everything written so far and advances the recovery point.
    pub fn flush(&self) -> Result<()> {
        todo!()
    }

    /// Applies new settings (topic config changes take effect without a restart).
    pub fn update_config(&self, config: LogConfig) {
        todo!("{config:?}")
    }

    /// Bytes on disk across all segments.
    pub fn size_bytes(&self) -> u64 {
        todo!()
    }

    /// The partition's directory.
    pub fn dir(&self) -> PathBuf {
        todo!()
    }
}

/// Settings for the whole log manager.
#[derive(Debug, Clone)]
pub struct LogManagerConfig {
    /// `log.dirs`.
    pub log_dirs: Vec<PathBuf>,
}

/// What startup found and did, for the log.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub partitions_loaded: usize,
    /// Log dirs that had no clean-shutdown marker.
    pub unclean_dirs: Vec<PathBuf>,
    /// Segments scanned by recovery.
    pub segments_recovered: usize,
    /// Bytes cut off torn or corrupt tails.
    pub bytes_truncated: u64,
}

/// All partition logs across `log.dirs`.
pub struct LogManager {
    _private: (),
}

impl LogManager {
    /// Opens every `log.dirs` entry (creating it if missing), loads each `<topic>-<partition>`
    /// directory, runs recovery for dirs without a clean-shutdown marker, removes the marker (a
    /// later crash must be detectable), and finishes deletions left half-done.
    /// `config_for(topic)` gives each topic's log settings.
    pub fn open(config: LogManagerConfig, config_for: &dyn Fn(&str) -> LogConfig) -> Result<(Arc<LogManager>, LoadReport)> {
        todo!("{config:?} {:?}", config_for("x"))
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        todo!("{tp:?}")
    }

    /// Every loaded partition.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        todo!()
    }

    /// Returns the partition, creating an empty log (in the least-loaded online dir) if needed.
    /// `topic_id` is recorded in the partition's `partition.metadata` file, as Kafka does.
    pub fn get_or_create(&self, tp: &TopicPartition, topic_id: [u8; 16], config: LogConfig) -> Result<Arc<Partition>> {
        todo!("{tp:?} {topic_id:?} {config:?}")
    }

    /// Removes a partition: renamed to `<topic>-<partition>.<id>-delete` at once (crash-safe),
    /// files removed afterwards. Later operations on a held `Arc<Partition>` fail with `Deleted`.
    pub fn delete(&self, tp: &TopicPartition) -> Result<()> {
        todo!("{tp:?}")
    }

    /// fsyncs partitions whose oldest unflushed append is older than their `flush.ms`.
    pub fn flush_due(&self, now_ms: i64) -> Result<()> {
        todo!("{now_ms}")
    }

    /// Writes the recovery-point and log-start-offset checkpoint files of every online dir.
    pub fn checkpoint(&self) -> Result<()> {
        todo!()
    }

    /// Clean shutdown: flush every partition, write checkpoints and the clean-shutdown marker.
    pub fn shutdown(&self) -> Result<()> {
        todo!()
    }

    /// Log dirs taken offline by I/O errors.
    pub fn offline_dirs(&self) -> Vec<PathBuf> {
        todo!()
    }
}
