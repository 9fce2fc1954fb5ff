//! The local log's side of the remote (tiered) storage tier, KIP-405's `RemoteStorageManager`
//! reduced to what Sluice uses: the [`RemoteTier`] trait (copy a rolled segment with its indexes,
//! producer snapshot and transaction index, range-read a remote segment, delete one, list what the
//! store holds), the [`RemoteLogSegmentMetadata`] of one remote segment, and what the log hands
//! to an upload ([`UploadCandidate`], [`SegmentFiles`]).
//!
//! Why this is in storage: the partition log produces upload candidates and the remote tier
//! consumes them, and the trait is the contract between the two; defining it here keeps storage
//! free of `object_store` (`sluice-tiered` implements [`RemoteTier`]) while letting the log name
//! the types. Everything about the remote tier itself — the durable remote segment list,
//! uploads, reads, retention — lives in `sluice-tiered`.
//!
//! Invariants: objects in the store that no committed entry names are orphans of an interrupted
//! upload and may be deleted at any time; a segment's manifest is written last, so its presence
//! marks a complete upload. Thread-safety: implementations of [`RemoteTier`] are shared
//! (`Send + Sync`).

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

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
