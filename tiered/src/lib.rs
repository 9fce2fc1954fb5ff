//! `sluice-tiered`: the remote tier of KIP-405 on `object_store`.
//!
//! - [`store`]: [`ObjectStoreTier`], `sluice-storage`'s [`RemoteTier`] on any `object_store`
//!   backend, and [`open_url`] for `s3://bucket/prefix` (standard `AWS_*` variables),
//!   `file:///path` and `memory://`;
//! - [`retry`]: [`RetryTier`], a decorator retrying failed calls with exponential backoff;
//! - [`manager`]: [`RemoteLogManager`], the entry point: per-partition remote state, loaded once
//!   and cleaned of what a crash left;
//! - [`metadata`]: [`RemoteLogMetadataFile`], the durable remote segment list of a partition;
//! - [`upload`]: copying rolled segments with durable metadata commits;
//! - [`retention`]: remote retention and DeleteRecords;
//! - [`remote_read`]: Fetch and ListOffsets below the local log start, CRC-checked, with the
//!   byte-bounded remote index cache;
//! - [`pending_deletions`]: the durable journal of deleted topics' remote data;
//! - [`error`]: [`TieredError`]; [`limits`]: the crate's limits.
//!
//! Storage defines the traits (and the local-side remote metadata the log itself needs); this
//! crate is the only one that imports `object_store`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod error;
pub mod limits;
pub mod manager;
pub mod metadata;
pub mod pending_deletions;
pub mod remote_read;
pub mod retention;
pub mod retry;
pub mod store;
pub mod upload;

pub use error::TieredError;
pub use manager::{RemoteLogManager, RemoteLogManagerConfig, SyncStats};
pub use metadata::{may_be_tiered, RemoteLogMetadataFile, REMOTE_LOG_METADATA_FILE};
pub use pending_deletions::{PendingTopicDeletion, PENDING_DELETIONS_FILE};
pub use retry::RetryTier;
pub use sluice_storage::remote::RemoteTier;
pub use store::{open_url, ObjectStoreTier};
pub use upload::UploadCrashPoint;
