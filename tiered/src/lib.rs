//! `sluice-tiered`: the remote tier of KIP-405 on `object_store`.
//!
//! - [`store`]: [`ObjectStoreTier`], `sluice-storage`'s [`RemoteTier`] on any `object_store`
//!   backend, and [`open_url`] for `s3://bucket/prefix` (standard `AWS_*` variables),
//!   `file:///path` and `memory://`;
//! - [`retry`]: [`RetryTier`], a decorator retrying failed calls with exponential backoff;
//! - [`manager`]: [`RemoteLogManager`], per-partition copy of rolled segments with durable
//!   metadata commits, orphan cleanup after crashes, remote retention, remote reads, remote
//!   time-index searches (ListOffsets by timestamp), DeleteRecords and topic deletion.
//!
//! Storage defines the traits; this crate is the only one that imports `object_store`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod manager;
pub mod retry;
pub mod store;

pub use manager::{PendingTopicDeletion, RemoteLogManager, SyncStats, UploadCrashPoint, PENDING_DELETIONS_FILE};
pub use retry::RetryTier;
pub use sluice_storage::remote::RemoteTier;
pub use store::{open_url, ObjectStoreTier};
