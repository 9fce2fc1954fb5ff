//! Deleting remote segments (Kafka's `RLMExpirationTask` and the remote half of DeleteRecords):
//! - retention: `retention.ms`/`retention.bytes` apply to the whole log (remote bytes plus the
//!   local bytes not yet remote), deleting the oldest remote segments; the local log start moves
//!   past each deleted segment;
//! - DeleteRecords: the new log start is committed durably as the metadata file's
//!   `log_start_offset_floor`, and segments wholly below it are deleted at once or, after a
//!   crash, at the next round.
//!
//! Every deletion marks the segment `DeleteSegmentStarted` first, so a crash mid-delete finishes
//! it at the next load, and drops the segment's cached indexes. Not thread-safe on its own: the
//! caller holds the partition's sync lock.

use std::sync::Arc;

use sluice_storage::remote::{RemoteLogSegmentMetadata, RemoteSegmentState, RemoteTier};
use sluice_storage::UnifiedLog;

use crate::error::Result;
use crate::manager::{lock, PartitionRemote};
use crate::remote_read::RemoteIndexCache;

/// Deletes one committed remote segment: `DeleteSegmentStarted`, the objects, the entry.
pub(crate) async fn delete_remote_segment(
    tier: &Arc<dyn RemoteTier>,
    cache: &RemoteIndexCache,
    state: &Arc<PartitionRemote>,
    seg: &RemoteLogSegmentMetadata,
) -> Result<()> {
    let id = seg.segment_id.clone();
    state
        .commit(move |f| {
            if let Some(s) = f.segments.iter_mut().find(|s| s.segment_id == id) {
                s.state = RemoteSegmentState::DeleteSegmentStarted;
            }
        })
        .await?;
    tier.delete_segment(seg).await?;
    let id = seg.segment_id.clone();
    state.commit(move |f| f.segments.retain(|s| s.segment_id != id)).await?;
    cache.remove_segment(&seg.segment_id);
    Ok(())
}

/// Deletes the remote segments wholly below the log start offset DeleteRecords set, and retries
/// deletions that failed earlier (`DeleteSegmentStarted`). Goes on past a failure (the first
/// error is returned at the end; the next round retries).
pub(crate) async fn delete_below_floor(
    tier: &Arc<dyn RemoteTier>,
    cache: &RemoteIndexCache,
    partition: &UnifiedLog,
    state: &Arc<PartitionRemote>,
) -> Result<usize> {
    let doomed: Vec<_> = {
        let f = lock(&state.metadata);
        let retry = f.segments.iter().filter(|s| s.state == RemoteSegmentState::DeleteSegmentStarted);
        retry.chain(f.below_floor()).cloned().collect()
    };
    let tp = partition.topic_partition();
    let (mut deleted, mut first_error) = (0, None);
    for seg in &doomed {
        match delete_remote_segment(tier, cache, state, seg).await {
            Ok(()) => {
                deleted += 1;
                tracing::info!(topic = %tp.topic, partition = tp.partition, base_offset = seg.base_offset, end_offset = seg.end_offset, "deleted remote segment below the log start offset");
            }
            Err(error) => {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, base_offset = seg.base_offset, %error, "deleting remote segment failed, retrying later");
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(deleted), Err)
}

/// Applies `retention.ms`/`retention.bytes` at `now_ms` (see the module docs). Returns how many
/// remote segments were deleted.
pub(crate) async fn apply_remote_retention(
    tier: &Arc<dyn RemoteTier>,
    cache: &RemoteIndexCache,
    partition: &UnifiedLog,
    state: &Arc<PartitionRemote>,
    now_ms: i64,
) -> Result<usize> {
    let config = partition.config();
    if !config.cleanup_delete {
        return Ok(0);
    }
    let (segments, remote_bytes, highest) = {
        let f = lock(&state.metadata);
        (f.readable().cloned().collect::<Vec<_>>(), f.size_bytes(), f.highest_offset())
    };
    let mut total = remote_bytes + partition.size_bytes_above(highest);
    let mut deleted = 0;
    for seg in segments {
        let by_time = config.retention_ms >= 0 && now_ms - seg.max_timestamp > config.retention_ms;
        let by_size =
            config.retention_bytes >= 0 && total.saturating_sub(seg.size_bytes) >= config.retention_bytes as u64;
        if !by_time && !by_size {
            break;
        }
        delete_remote_segment(tier, cache, state, &seg).await?;
        total = total.saturating_sub(seg.size_bytes);
        deleted += 1;
        // The whole log now starts after this segment; local data below it goes too.
        let offsets = partition.offsets();
        if offsets.log_start_offset <= seg.end_offset {
            let _ = partition.delete_records((seg.end_offset + 1).min(offsets.high_watermark));
        }
        tracing::info!(topic = %partition.topic_partition().topic, partition = partition.topic_partition().partition, base_offset = seg.base_offset, "deleted remote segment by retention");
    }
    Ok(deleted)
}
