//! [`RemoteLogManager`]: KIP-405's `RemoteLogManager` for Sluice. Per partition it
//! - loads the durable remote segment list (`remote-log-segments.json`) or, when there is none,
//!   rebuilds it from the store's listing, and removes what an interrupted upload or deletion
//!   left (entries not `CopySegmentFinished`, and objects without a manifest);
//! - copies rolled segments wholly below the high watermark, oldest first, in three steps:
//!   1. record the segment as `CopySegmentStarted` in the metadata file;
//!   2. upload its files, then its manifest;
//!   3. record it as `CopySegmentFinished` and tell the partition (local retention may now
//!      delete the local copy).
//!
//!   A crash after step 1 or 2 leaves a `CopySegmentStarted` entry whose objects are deleted at
//!   the next load; nothing is ever half-committed;
//! - applies `retention.ms`/`retention.bytes` to the whole log (remote + local-only bytes) by
//!   deleting the oldest remote segments (`DeleteSegmentStarted` first, so a crash mid-delete
//!   finishes the delete at the next load);
//! - serves reads below the local log start offset: finds the remote segment, looks the offset
//!   up in its (cached, bounded) remote offset index and range-reads whole batches.
//!
//! Thread-safety: one sync at a time per partition (an async mutex per partition); reads only
//! take short `std` mutex sections to copy metadata and never wait on a sync.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use sluice_storage::layout::encode_topic_id;
use sluice_storage::remote::{
    RemoteFileKind, RemoteLogMetadataFile, RemoteLogSegmentMetadata, RemoteSegmentState, RemoteStorageError, RemoteTier,
};
use sluice_storage::{Partition, TopicPartition};

/// Most remote offset indexes kept in memory.
const INDEX_CACHE_ENTRIES_MAX: usize = 256;
/// Bytes read past `max_bytes` in one range read, so the batch that crosses the limit is whole.
const READ_SLACK_BYTES: u64 = 64 << 10;
/// Size of a record batch header up to and including `last_offset_delta`.
const BATCH_HEADER_PREFIX: usize = 27;

/// What one [`RemoteLogManager::sync`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub segments_uploaded: usize,
    pub bytes_uploaded: u64,
    pub remote_segments_deleted: usize,
    pub orphans_deleted: usize,
}

/// Where a simulated crash stops an upload (tests of the recovery path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadCrashPoint {
    /// After step 1: `CopySegmentStarted` is durable, nothing uploaded.
    AfterStartedCommit,
    /// After step 2: every object is uploaded, the local commit is missing.
    AfterCopy,
}

/// A remote segment's offset index as `(offset, position)` pairs, by segment id.
type OffsetIndexEntries = Arc<Vec<(i64, u64)>>;

struct PartitionRemote {
    sync_lock: tokio::sync::Mutex<()>,
    metadata: Mutex<RemoteLogMetadataFile>,
    dir: PathBuf,
}

/// See the module docs.
pub struct RemoteLogManager {
    tier: Arc<dyn RemoteTier>,
    partitions: Mutex<HashMap<TopicPartition, Arc<PartitionRemote>>>,
    index_cache: Mutex<HashMap<String, OffsetIndexEntries>>,
    crash_point: Option<UploadCrashPoint>,
}

impl std::fmt::Debug for RemoteLogManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteLogManager").field("tier", &self.tier).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn new_segment_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl RemoteLogManager {
    pub fn new(tier: Arc<dyn RemoteTier>) -> Self {
        Self { tier, partitions: Mutex::default(), index_cache: Mutex::default(), crash_point: None }
    }

    /// A manager whose uploads stop at `point` with an error, as if the process died there.
    pub fn with_crash_point(tier: Arc<dyn RemoteTier>, point: UploadCrashPoint) -> Self {
        Self { crash_point: Some(point), ..Self::new(tier) }
    }

    pub fn tier(&self) -> &Arc<dyn RemoteTier> {
        &self.tier
    }

    /// Loads (or rebuilds) the partition's remote state and cleans up leftovers, once.
    async fn state(&self, partition: &Partition, topic_id: &str) -> Result<Arc<PartitionRemote>, RemoteStorageError> {
        let tp = partition.topic_partition().clone();
        let dir = partition.dir();
        if let Some(s) = lock(&self.partitions).get(&tp).filter(|s| s.dir == dir) {
            return Ok(s.clone());
        }
        let mut file = match RemoteLogMetadataFile::load(&dir)? {
            Some(f) => f,
            None => {
                // No local metadata: rebuild from the store, dropping incomplete uploads.
                let listing = self.tier.list_segments(topic_id, tp.partition).await?;
                for stem in &listing.orphan_stems {
                    self.tier.delete_stem(stem).await?;
                    tracing::info!(topic = %tp.topic, partition = tp.partition, key = %stem, "deleted orphaned remote objects");
                }
                let file = RemoteLogMetadataFile { segments: listing.complete };
                if !file.segments.is_empty() {
                    tracing::info!(topic = %tp.topic, partition = tp.partition, segments = file.segments.len(), "rebuilt remote log metadata from the store");
                }
                file.store(&dir)?;
                file
            }
        };
        let leftovers: Vec<_> =
            file.segments.iter().filter(|s| s.state != RemoteSegmentState::CopySegmentFinished).cloned().collect();
        for seg in &leftovers {
            self.tier.delete_segment(seg).await?;
            tracing::info!(topic = %tp.topic, partition = tp.partition, base_offset = seg.base_offset, state = ?seg.state, "cleaned up interrupted remote segment operation");
        }
        if !leftovers.is_empty() {
            file.segments.retain(|s| s.state == RemoteSegmentState::CopySegmentFinished);
            file.store(&dir)?;
        }
        partition.set_highest_remote_offset(file.highest_offset());
        let state =
            Arc::new(PartitionRemote { sync_lock: tokio::sync::Mutex::new(()), metadata: Mutex::new(file), dir });
        lock(&self.partitions).insert(tp, state.clone());
        Ok(state)
    }

    /// One round for one partition: load state, copy every eligible rolled segment, apply remote
    /// retention at `now_ms`. A failure leaves everything committed so far intact; the next
    /// round retries.
    pub async fn sync(&self, partition: &Partition, now_ms: i64) -> Result<SyncStats, RemoteStorageError> {
        let mut stats = SyncStats::default();
        let Some(topic_id) = partition.topic_id().map(|id| encode_topic_id(&id)) else { return Ok(stats) };
        let tp = partition.topic_partition().clone();
        let state = self.state(partition, &topic_id).await?;
        let _one_sync = state.sync_lock.lock().await;
        let config = partition.config();
        if config.remote_storage_enable {
            let highest = lock(&state.metadata).highest_offset();
            let candidates = partition
                .upload_candidates(highest)
                .map_err(|e| RemoteStorageError::Store { key: tp.topic.clone(), reason: e.to_string() })?;
            for candidate in candidates {
                let mut meta = RemoteLogSegmentMetadata {
                    topic_id: topic_id.clone(),
                    partition: tp.partition,
                    base_offset: candidate.base_offset,
                    end_offset: candidate.end_offset,
                    max_timestamp: candidate.max_timestamp,
                    size_bytes: candidate.size_bytes,
                    segment_id: new_segment_id(),
                    state: RemoteSegmentState::CopySegmentStarted,
                    has_producer_snapshot: candidate.files.producer_snapshot.is_some(),
                };
                // Step 1.
                self.commit(&state, |f| f.segments.push(meta.clone()))?;
                if self.crash_point == Some(UploadCrashPoint::AfterStartedCommit) {
                    return Err(simulated_crash());
                }
                // Step 2.
                if let Err(e) = self.tier.copy_segment(&meta, &candidate.files).await {
                    // Best effort: drop the started entry now; if that fails, the next load does.
                    let _ = self.tier.delete_segment(&meta).await;
                    let _ = self.commit(&state, |f| f.segments.retain(|s| s.segment_id != meta.segment_id));
                    return Err(e);
                }
                if self.crash_point == Some(UploadCrashPoint::AfterCopy) {
                    return Err(simulated_crash());
                }
                // Step 3.
                meta.state = RemoteSegmentState::CopySegmentFinished;
                self.commit(&state, |f| {
                    if let Some(s) = f.segments.iter_mut().find(|s| s.segment_id == meta.segment_id) {
                        s.state = RemoteSegmentState::CopySegmentFinished;
                    }
                })?;
                partition.set_highest_remote_offset(meta.end_offset);
                stats.segments_uploaded += 1;
                stats.bytes_uploaded += meta.size_bytes;
                tracing::debug!(topic = %tp.topic, partition = tp.partition, base_offset = meta.base_offset, end_offset = meta.end_offset, bytes = meta.size_bytes, "copied segment to remote storage");
            }
        }
        stats.remote_segments_deleted = self.apply_remote_retention(partition, &state, now_ms).await?;
        Ok(stats)
    }

    /// Applies `edit` to the metadata and stores it durably; on failure the in-memory copy is
    /// left as it was.
    fn commit(
        &self,
        state: &PartitionRemote,
        edit: impl FnOnce(&mut RemoteLogMetadataFile),
    ) -> Result<(), RemoteStorageError> {
        let mut guard = lock(&state.metadata);
        let mut next = guard.clone();
        edit(&mut next);
        next.store(&state.dir)?;
        *guard = next;
        Ok(())
    }

    async fn apply_remote_retention(
        &self,
        partition: &Partition,
        state: &PartitionRemote,
        now_ms: i64,
    ) -> Result<usize, RemoteStorageError> {
        let config = partition.config();
        if !config.cleanup_delete {
            return Ok(0);
        }
        let (segments, remote_bytes, highest) = {
            let f = lock(&state.metadata);
            (f.committed().cloned().collect::<Vec<_>>(), f.size_bytes(), f.highest_offset())
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
            self.commit(state, |f| {
                if let Some(s) = f.segments.iter_mut().find(|s| s.segment_id == seg.segment_id) {
                    s.state = RemoteSegmentState::DeleteSegmentStarted;
                }
            })?;
            self.tier.delete_segment(&seg).await?;
            self.commit(state, |f| f.segments.retain(|s| s.segment_id != seg.segment_id))?;
            lock(&self.index_cache).remove(&seg.segment_id);
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

    /// The first offset held remotely for `tp`, if its state is loaded and holds any segment.
    pub fn log_start_offset(&self, tp: &TopicPartition) -> Option<i64> {
        let state = lock(&self.partitions).get(tp).cloned()?;
        let f = lock(&state.metadata);
        f.log_start_offset()
    }

    /// The committed remote segments of `tp` (loaded state only).
    pub fn segments(&self, tp: &TopicPartition) -> Vec<RemoteLogSegmentMetadata> {
        let Some(state) = lock(&self.partitions).get(tp).cloned() else { return Vec::new() };
        let f = lock(&state.metadata);
        f.committed().cloned().collect()
    }

    /// Forgets a deleted partition's state.
    pub fn forget(&self, tp: &TopicPartition) {
        lock(&self.partitions).remove(tp);
    }

    /// Whole batches from the remote segment holding `fetch_offset`: starting with the batch that
    /// contains it, stopping before a batch whose last offset is `>= max_offset` and once
    /// `max_bytes` would be exceeded (the first batch is returned whole whatever its size).
    /// `None` when no remote segment holds the offset.
    pub async fn read(
        &self,
        tp: &TopicPartition,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Option<Bytes>, RemoteStorageError> {
        let Some(state) = lock(&self.partitions).get(tp).cloned() else { return Ok(None) };
        let Some(seg) = lock(&state.metadata).segment_for(fetch_offset).cloned() else { return Ok(None) };
        let index = self.offset_index(&seg).await?;
        let n = index.partition_point(|&(o, _)| o <= fetch_offset);
        let start = n.checked_sub(1).map(|i| index[i].1).unwrap_or(0);
        let end = (start + max_bytes as u64 + READ_SLACK_BYTES).min(seg.size_bytes);
        let mut buf = self.tier.fetch(&seg, RemoteFileKind::Log, start, end).await?;
        let mut out = BytesMut::new();
        let mut pos = 0usize;
        let mut abs = start;
        loop {
            if buf.len() - pos < BATCH_HEADER_PREFIX {
                if abs + (buf.len() - pos) as u64 >= seg.size_bytes || !out.is_empty() {
                    break;
                }
                // Nothing whole yet: read on from here.
                let more_end = (abs + max_bytes as u64 + READ_SLACK_BYTES).min(seg.size_bytes);
                buf = self.tier.fetch(&seg, RemoteFileKind::Log, abs, more_end).await?;
                pos = 0;
                continue;
            }
            let h = &buf[pos..];
            let base = i64::from_be_bytes(h[0..8].try_into().unwrap_or_default());
            let len = i32::from_be_bytes(h[8..12].try_into().unwrap_or_default());
            let delta = i32::from_be_bytes(h[23..27].try_into().unwrap_or_default());
            if len < 0 {
                return Err(RemoteStorageError::Store {
                    key: seg.key_stem(),
                    reason: format!("corrupt batch at position {abs}"),
                });
            }
            let size = 12 + len as usize;
            let last = base + i64::from(delta);
            if last >= max_offset {
                break;
            }
            if !out.is_empty() && out.len() + size > max_bytes {
                break;
            }
            if buf.len() - pos < size {
                if !out.is_empty() {
                    break;
                }
                // The first batch crosses the range read: fetch exactly it.
                buf = self.tier.fetch(&seg, RemoteFileKind::Log, abs, abs + size as u64).await?;
                pos = 0;
                if buf.len() < size {
                    break;
                }
                continue;
            }
            if last >= fetch_offset {
                out.extend_from_slice(&buf[pos..pos + size]);
            }
            pos += size;
            abs += size as u64;
        }
        Ok(Some(out.freeze()))
    }

    async fn offset_index(&self, seg: &RemoteLogSegmentMetadata) -> Result<OffsetIndexEntries, RemoteStorageError> {
        if let Some(idx) = lock(&self.index_cache).get(&seg.segment_id) {
            return Ok(idx.clone());
        }
        let bytes = self.tier.fetch(seg, RemoteFileKind::OffsetIndex, 0, u64::MAX).await?;
        let mut entries = Vec::with_capacity(bytes.len() / 8);
        for e in bytes.chunks_exact(8) {
            let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
            let offset = seg.base_offset + i64::from(rel);
            // Preallocated zero tails and anything not increasing end the index.
            if entries.last().is_some_and(|&(o, p)| offset <= o || u64::from(pos) <= p) {
                break;
            }
            entries.push((offset, u64::from(pos)));
        }
        let entries = Arc::new(entries);
        let mut cache = lock(&self.index_cache);
        if cache.len() >= INDEX_CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(seg.segment_id.clone(), entries.clone());
        Ok(entries)
    }
}

fn simulated_crash() -> RemoteStorageError {
    RemoteStorageError::Store { key: String::new(), reason: "simulated crash".into() }
}
