//! Copying rolled segments to the remote tier (Kafka's `RLMCopyTask`): per partition, every
//! rolled segment wholly below the high watermark and above what is already remote, oldest
//! first, in three steps:
//! 1. record the segment as `CopySegmentStarted` in the partition's remote metadata file;
//! 2. upload its files, then its manifest;
//! 3. record it as `CopySegmentFinished` and tell the partition (local retention may now delete
//!    the local copy).
//!
//! A crash after step 1 or 2 leaves a `CopySegmentStarted` entry whose objects are deleted at the
//! next load; nothing is ever half-committed. Not thread-safe on its own: the caller holds the
//! partition's sync lock.

use std::sync::Arc;

use sluice_storage::remote::{RemoteLogSegmentMetadata, RemoteSegmentState, RemoteTier};
use sluice_storage::UnifiedLog;

use crate::error::{Result, TieredError};
use crate::manager::{lock, PartitionRemote};

/// Where a simulated crash stops an upload (tests of the recovery path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadCrashPoint {
    /// After step 1: `CopySegmentStarted` is durable, nothing uploaded.
    AfterStartedCommit,
    /// After step 2: every object is uploaded, the local commit is missing.
    AfterCopy,
}

/// What one copy round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CopyStats {
    pub(crate) segments: usize,
    pub(crate) bytes: u64,
}

fn new_segment_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Copies every eligible rolled segment of `partition` (see the module docs).
pub(crate) async fn copy_rolled_segments(
    tier: &Arc<dyn RemoteTier>,
    state: &Arc<PartitionRemote>,
    partition: &UnifiedLog,
    crash_point: Option<UploadCrashPoint>,
) -> Result<CopyStats> {
    let mut stats = CopyStats::default();
    let tp = partition.topic_partition().clone();
    let highest = lock(&state.metadata).highest_offset();
    for candidate in partition.upload_candidates(highest)? {
        let mut meta = RemoteLogSegmentMetadata {
            topic_id: state.topic_id.clone(),
            partition: tp.partition,
            base_offset: candidate.base_offset,
            end_offset: candidate.end_offset,
            max_timestamp: candidate.max_timestamp,
            size_bytes: candidate.size_bytes,
            segment_id: new_segment_id(),
            state: RemoteSegmentState::CopySegmentStarted,
            has_producer_snapshot: candidate.files.producer_snapshot.is_some(),
            has_transaction_index: candidate.files.transaction_index.is_some(),
        };
        // Step 1.
        let started = meta.clone();
        state.commit(move |f| f.segments.push(started)).await?;
        if crash_point == Some(UploadCrashPoint::AfterStartedCommit) {
            return Err(TieredError::SimulatedCrash(UploadCrashPoint::AfterStartedCommit));
        }
        // Step 2.
        if let Err(e) = tier.copy_segment(&meta, &candidate.files).await {
            // Best effort: drop the started entry now; if that fails, the next load does.
            let _ = tier.delete_segment(&meta).await;
            let id = meta.segment_id.clone();
            let _ = state.commit(move |f| f.segments.retain(|s| s.segment_id != id)).await;
            return Err(e.into());
        }
        if crash_point == Some(UploadCrashPoint::AfterCopy) {
            return Err(TieredError::SimulatedCrash(UploadCrashPoint::AfterCopy));
        }
        // Step 3.
        meta.state = RemoteSegmentState::CopySegmentFinished;
        let id = meta.segment_id.clone();
        state
            .commit(move |f| {
                if let Some(s) = f.segments.iter_mut().find(|s| s.segment_id == id) {
                    s.state = RemoteSegmentState::CopySegmentFinished;
                }
            })
            .await?;
        partition.set_highest_remote_offset(meta.end_offset);
        stats.segments += 1;
        stats.bytes += meta.size_bytes;
        tracing::debug!(topic = %tp.topic, partition = tp.partition, base_offset = meta.base_offset, end_offset = meta.end_offset, bytes = meta.size_bytes, "copied segment to remote storage");
    }
    Ok(stats)
}
