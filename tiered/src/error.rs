//! [`TieredError`]: every way a remote tier operation fails, with the context the broker needs to
//! pick a Kafka error code (its one `match` from internal errors to codes):
//! - [`Remote`](TieredError::Remote): the object store failed or timed out — KAFKA_STORAGE_ERROR,
//!   retriable (the segment is still in the store, the next attempt may reach it);
//! - [`Corrupt`](TieredError::Corrupt): a batch read from the store is damaged — CORRUPT_MESSAGE
//!   (see [`crate::remote_read`] for why this code);
//! - [`Storage`](TieredError::Storage): the local log failed (storage's own mapping applies:
//!   offline dir, I/O, out of range);
//! - [`Io`](TieredError::Io): a local state file of the tier failed — KAFKA_STORAGE_ERROR;
//! - [`TaskFailed`](TieredError::TaskFailed) and [`SimulatedCrash`](TieredError::SimulatedCrash):
//!   internal, UNKNOWN_SERVER_ERROR.

use std::path::PathBuf;

use sluice_protocol::batch::BatchError;
use sluice_storage::remote::RemoteStorageError;
use sluice_storage::StorageError;
use thiserror::Error;

use crate::upload::UploadCrashPoint;

/// See the module docs.
#[derive(Debug, Error)]
pub enum TieredError {
    /// The object store (or the remote metadata file) failed.
    #[error(transparent)]
    Remote(#[from] RemoteStorageError),
    /// A batch of a remote segment failed its checks (length, magic, CRC, records).
    #[error("corrupt batch in remote segment {key} at position {position}: {source}")]
    Corrupt {
        /// The segment's object key stem.
        key: String,
        /// Byte position of the batch in the segment's log.
        position: u64,
        source: BatchError,
    },
    /// A remote segment's log ends inside a batch its index or metadata says is there.
    #[error("remote segment {key} truncated at position {position}")]
    Truncated { key: String, position: u64 },
    /// The local log failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A local state file of the tier (the pending deletions journal) failed.
    #[error("i/o error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A blocking task running file work panicked or was cancelled.
    #[error("blocking task failed: {0}")]
    TaskFailed(String),
    /// An upload stopped where a test asked it to, as if the process died there.
    #[error("simulated crash at {0:?}")]
    SimulatedCrash(UploadCrashPoint),
}

impl TieredError {
    /// Whether the data read was damaged (CORRUPT_MESSAGE) rather than unreachable.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, TieredError::Corrupt { .. } | TieredError::Truncated { .. })
    }
}

pub type Result<T> = std::result::Result<T, TieredError>;
