//! What the local log needs from a remote (tiered) storage tier, KIP-405's `RemoteStorageManager`
//! and `RemoteLogMetadataManager` reduced to what Sluice uses: the [`RemoteTier`] trait (copy a
//! rolled segment with its indexes, producer snapshot and transaction index, range-read a remote
//! segment, delete one, list what the store holds), the [`RemoteLogSegmentMetadata`] of one
//! remote segment, and the durable per-partition metadata file ([`RemoteLogMetadataFile`],
//! `<partition dir>/remote-log-segments.json`: the segment list and the log start offset
//! DeleteRecords set, below which nothing is read and whole segments are deleted).
//!
//! Invariants: a segment appears in the metadata file as `CopySegmentFinished` only after every
//! one of its objects is uploaded (the file is replaced atomically, so a crash leaves either the
//! old or the new list); a segment marked `DeleteSegmentStarted` is never read and its objects are
//! deleted before it leaves the list. Objects in the store that no committed entry names are
//! orphans of an interrupted upload and may be deleted at any time.
//!
//! This crate never imports an object store: `sluice-tiered` implements [`RemoteTier`].
//! Thread-safety: implementations of [`RemoteTier`] are shared (`Send + Sync`); the metadata file
//! is written by one task per partition (the remote log manager's).

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::checkpoint::write_atomically;

/// File name of the per-partition remote segment list.
pub const REMOTE_LOG_METADATA_FILE: &str = "remote-log-segments.json";

/// A boxed future, so that [`RemoteTier`] stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Failures of the remote tier. All of them are retryable from the log's point of view: the
/// local copy is kept until an upload is committed.
#[derive(Debug, Error)]
pub enum RemoteStorageError {
    /// The object does not exist.
    #[error("remote object {0} not found")]
    NotFound(String),
    /// Any other failure of the store (network, credentials, throttling...).
    #[error("remote storage error on {key}: {reason}")]
    Store { key: String, reason: String },
    /// Reading a local file to upload failed.
    #[error("i/o error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Where a remote segment is in its life (Kafka's `RemoteLogSegmentState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteSegmentState {
    CopySegmentStarted,
    CopySegmentFinished,
    DeleteSegmentStarted,
}

/// One segment in the remote tier (Kafka's `RemoteLogSegmentMetadata`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteLogSegmentMetadata {
    /// Kafka's base64url topic id.
    pub topic_id: String,
    pub partition: i32,
    pub base_offset: i64,
    /// Last offset in the segment (inclusive).
    pub end_offset: i64,
    pub max_timestamp: i64,
    pub size_bytes: u64,
    /// Unique id of this copy (32 hex digits), so a re-upload never overwrites a committed copy.
    pub segment_id: String,
    pub state: RemoteSegmentState,
    /// Whether a producer snapshot was uploaded with the segment.
    #[serde(default)]
    pub has_producer_snapshot: bool,
    /// Whether a transaction index (`.txnindex`) was uploaded with the segment.
    #[serde(default)]
    pub has_transaction_index: bool,
}

impl RemoteLogSegmentMetadata {
    /// The object key stem `<topic id>/<partition>/<20-digit base offset>-<segment id>`; files
    /// add `.log`, `.index`, `.timeindex`, `.snapshot`, `.txnindex`, `.json`.
    pub fn key_stem(&self) -> String {
        format!("{}/{}/{:020}-{}", self.topic_id, self.partition, self.base_offset, self.segment_id)
    }
}

/// The local files of one rolled segment, to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFiles {
    pub log: PathBuf,
    pub offset_index: PathBuf,
    pub time_index: PathBuf,
    /// The producer-state snapshot taken at the segment's end offset + 1, when one is kept.
    pub producer_snapshot: Option<PathBuf>,
    /// The segment's aborted-transaction index, when it has one.
    pub transaction_index: Option<PathBuf>,
}

/// A rolled local segment that may be copied to the remote tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadCandidate {
    pub base_offset: i64,
    pub end_offset: i64,
    pub max_timestamp: i64,
    pub size_bytes: u64,
    pub files: SegmentFiles,
}

/// Which file of a remote segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemoteFileKind {
    Log,
    OffsetIndex,
    TimeIndex,
    ProducerSnapshot,
    TransactionIndex,
    /// The segment's metadata, written last: its presence marks a complete upload in the store.
    Manifest,
}

impl RemoteFileKind {
    pub fn suffix(self) -> &'static str {
        match self {
            RemoteFileKind::Log => ".log",
            RemoteFileKind::OffsetIndex => ".index",
            RemoteFileKind::TimeIndex => ".timeindex",
            RemoteFileKind::ProducerSnapshot => ".snapshot",
            RemoteFileKind::TransactionIndex => ".txnindex",
            RemoteFileKind::Manifest => ".json",
        }
    }
}

/// The remote tier as the log sees it. Implemented by `sluice-tiered` on `object_store`.
pub trait RemoteTier: Send + Sync + fmt::Debug {
    /// Uploads every file of the segment, then its manifest (the store-side commit). An error
    /// may leave some objects behind (orphans); nothing is committed then.
    fn copy_segment<'a>(
        &'a self,
        metadata: &'a RemoteLogSegmentMetadata,
        files: &'a SegmentFiles,
    ) -> BoxFuture<'a, Result<(), RemoteStorageError>>;

    /// Bytes `[start, end)` of one file of a remote segment (`end` is clamped to the object size).
    fn fetch<'a>(
        &'a self,
        metadata: &'a RemoteLogSegmentMetadata,
        kind: RemoteFileKind,
        start: u64,
        end: u64,
    ) -> BoxFuture<'a, Result<Bytes, RemoteStorageError>>;

    /// Deletes every object of the segment (manifest first); missing objects are fine.
    fn delete_segment<'a>(
        &'a self,
        metadata: &'a RemoteLogSegmentMetadata,
    ) -> BoxFuture<'a, Result<(), RemoteStorageError>>;

    /// The complete (manifest-bearing) segments stored for a partition, by base offset, and the
    /// key stems of incomplete ones (orphans).
    fn list_segments<'a>(
        &'a self,
        topic_id: &'a str,
        partition: i32,
    ) -> BoxFuture<'a, Result<RemoteListing, RemoteStorageError>>;

    /// Deletes the objects under one key stem (an orphan).
    fn delete_stem<'a>(&'a self, key_stem: &'a str) -> BoxFuture<'a, Result<(), RemoteStorageError>>;
}

/// What [`RemoteTier::list_segments`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteListing {
    pub complete: Vec<RemoteLogSegmentMetadata>,
    pub orphan_stems: Vec<String>,
}

/// The durable list of a partition's remote segments (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteLogMetadataFile {
    /// Sorted by base offset.
    pub segments: Vec<RemoteLogSegmentMetadata>,
    /// The log start offset DeleteRecords set (0 when never moved): offsets below it are gone
    /// even where a remote segment still holds them, and segments wholly below it are deleted by
    /// the remote log manager (at its next round, or after a restart).
    #[serde(default)]
    pub log_start_offset_floor: i64,
}

impl RemoteLogMetadataFile {
    pub fn path(partition_dir: &Path) -> PathBuf {
        partition_dir.join(REMOTE_LOG_METADATA_FILE)
    }

    /// Loads the file; `None` when there is none (a new partition, or one to rebuild from the
    /// store). A torn or unparsable file is an error.
    pub fn load(partition_dir: &Path) -> Result<Option<Self>, RemoteStorageError> {
        let path = Self::path(partition_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| RemoteStorageError::Io { path, source: io::Error::new(io::ErrorKind::InvalidData, e) }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(RemoteStorageError::Io { path, source }),
        }
    }

    /// Replaces the file atomically and durably.
    pub fn store(&self, partition_dir: &Path) -> Result<(), RemoteStorageError> {
        let path = Self::path(partition_dir);
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| RemoteStorageError::Io { path: path.clone(), source: io::Error::other(e) })?;
        write_atomically(&path, &json).map_err(|source| RemoteStorageError::Io { path, source })
    }

    /// Committed (readable) segments, oldest first.
    pub fn committed(&self) -> impl Iterator<Item = &RemoteLogSegmentMetadata> {
        self.segments.iter().filter(|s| s.state == RemoteSegmentState::CopySegmentFinished)
    }

    /// Last offset held remotely, or -1.
    pub fn highest_offset(&self) -> i64 {
        self.committed().map(|s| s.end_offset).max().unwrap_or(-1)
    }

    /// First offset held remotely and not deleted by DeleteRecords, if any.
    pub fn log_start_offset(&self) -> Option<i64> {
        self.readable().map(|s| s.base_offset.max(self.log_start_offset_floor)).min()
    }

    /// Committed segments holding data at or above the floor, oldest first.
    pub fn readable(&self) -> impl Iterator<Item = &RemoteLogSegmentMetadata> {
        self.committed().filter(|s| s.end_offset >= self.log_start_offset_floor)
    }

    /// Committed segments wholly below the floor: to delete.
    pub fn below_floor(&self) -> impl Iterator<Item = &RemoteLogSegmentMetadata> {
        self.committed().filter(|s| s.end_offset < self.log_start_offset_floor)
    }

    /// Total bytes held remotely.
    pub fn size_bytes(&self) -> u64 {
        self.committed().map(|s| s.size_bytes).sum()
    }

    /// The committed segment holding `offset` (none below the floor).
    pub fn segment_for(&self, offset: i64) -> Option<&RemoteLogSegmentMetadata> {
        if offset < self.log_start_offset_floor {
            return None;
        }
        self.committed().find(|s| s.base_offset <= offset && offset <= s.end_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(base: i64, end: i64, state: RemoteSegmentState) -> RemoteLogSegmentMetadata {
        RemoteLogSegmentMetadata {
            topic_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            partition: 3,
            base_offset: base,
            end_offset: end,
            max_timestamp: 1,
            size_bytes: 10,
            segment_id: "0123456789abcdef0123456789abcdef".into(),
            state,
            has_producer_snapshot: false,
            has_transaction_index: false,
        }
    }

    #[test]
    fn metadata_file_round_trips_and_only_committed_segments_count() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RemoteLogMetadataFile::load(dir.path()).unwrap(), None);
        let file = RemoteLogMetadataFile {
            segments: vec![
                meta(0, 9, RemoteSegmentState::DeleteSegmentStarted),
                meta(10, 19, RemoteSegmentState::CopySegmentFinished),
                meta(20, 29, RemoteSegmentState::CopySegmentStarted),
            ],
            log_start_offset_floor: 0,
        };
        file.store(dir.path()).unwrap();
        let loaded = RemoteLogMetadataFile::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded, file);
        assert_eq!(loaded.highest_offset(), 19);
        assert_eq!(loaded.log_start_offset(), Some(10));
        assert_eq!(loaded.segment_for(15).map(|s| s.base_offset), Some(10));
        assert!(loaded.segment_for(5).is_none());
        assert!(loaded.segment_for(25).is_none());
        assert_eq!(
            meta(10, 19, RemoteSegmentState::CopySegmentFinished).key_stem(),
            "AAAAAAAAAAAAAAAAAAAAAA/3/00000000000000000010-0123456789abcdef0123456789abcdef"
        );
    }

    #[test]
    fn the_delete_records_floor_hides_and_dooms_segments_below_it() {
        let mut file = RemoteLogMetadataFile {
            segments: vec![
                meta(0, 9, RemoteSegmentState::CopySegmentFinished),
                meta(10, 19, RemoteSegmentState::CopySegmentFinished),
                meta(20, 29, RemoteSegmentState::CopySegmentFinished),
            ],
            log_start_offset_floor: 0,
        };
        assert_eq!(file.log_start_offset(), Some(0));
        file.log_start_offset_floor = 15;
        assert_eq!(file.log_start_offset(), Some(15));
        assert_eq!(file.below_floor().map(|s| s.base_offset).collect::<Vec<_>>(), vec![0]);
        assert_eq!(file.readable().map(|s| s.base_offset).collect::<Vec<_>>(), vec![10, 20]);
        assert!(file.segment_for(12).is_none(), "below the floor");
        assert_eq!(file.segment_for(15).map(|s| s.base_offset), Some(10));
        file.log_start_offset_floor = 30;
        assert_eq!(file.log_start_offset(), None);
        assert_eq!(file.below_floor().count(), 3);
        // Files written before the floor existed load with floor 0.
        let old = br#"{"segments":[]}"#;
        assert_eq!(serde_json::from_slice::<RemoteLogMetadataFile>(old).unwrap().log_start_offset_floor, 0);
    }
}
