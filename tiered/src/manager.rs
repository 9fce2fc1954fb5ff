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
//!   up in its (cached, bounded) remote offset index and range-reads whole batches;
//! - answers ListOffsets by timestamp below the local log start from the remote time indexes
//!   (cached, bounded), as Kafka's `findOffsetByTimestamp` does;
//! - DeleteRecords on a tiered partition: the new log start offset is committed durably in the
//!   metadata file (`log_start_offset_floor`), then the segments wholly below it are deleted
//!   (`DeleteSegmentStarted` first), at once or — after a crash — at the next round;
//! - topic deletion: a durable record of the deleted topic id
//!   (`<state dir>/remote-log-pending-deletions.json`) is written before the topic's metadata is
//!   deleted, and every object of its partitions is deleted afterwards, resumed after a restart.
//!   A record whose topic still exists (the deletion failed, or the broker crashed before it)
//!   is dropped, never acted on.
//!
//! Every write of a metadata file runs on a blocking thread (`spawn_blocking`): it fsyncs.
//!
//! Thread-safety: one sync at a time per partition (an async mutex per partition); metadata file
//! writes of one partition are serialized by a `std` mutex held only on the blocking thread;
//! reads only take short `std` mutex sections to copy metadata and never wait on a sync.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use sluice_protocol::batch::{RecordBatch, TimestampType, DECOMPRESSED_BATCH_BYTES_MAX};
use sluice_storage::layout::encode_topic_id;
use sluice_storage::remote::{
    RemoteFileKind, RemoteLogMetadataFile, RemoteLogSegmentMetadata, RemoteSegmentState, RemoteStorageError, RemoteTier,
};
use sluice_storage::{Partition, TimestampOffset, TopicPartition};

/// Most remote offset indexes kept in memory (and, separately, most remote time indexes).
const INDEX_CACHE_ENTRIES_MAX: usize = 256;
/// Bytes of a remote segment read per range read while scanning for a timestamp.
const TIME_SCAN_CHUNK_BYTES: u64 = 1 << 20;
/// File (in the manager's state dir) of topic deletions whose remote data is not yet deleted.
pub const PENDING_DELETIONS_FILE: &str = "remote-log-pending-deletions.json";
/// Bytes read past `max_bytes` in one range read, so the batch that crosses the limit is whole.
const READ_SLACK_BYTES: u64 = 64 << 10;
/// Size of a record batch header up to and including `last_offset_delta`.
const BATCH_HEADER_PREFIX: usize = 27;

/// A deleted topic whose remote objects are still to be deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTopicDeletion {
    /// Kafka's base64url topic id (the first component of its object keys).
    pub topic_id: String,
    pub partitions: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct PendingDeletionsFile {
    topics: Vec<PendingTopicDeletion>,
}

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
/// A remote segment's time index as `(timestamp, offset)` pairs, by segment id.
type TimeIndexEntries = Arc<Vec<(i64, i64)>>;

struct PartitionRemote {
    sync_lock: tokio::sync::Mutex<()>,
    /// Held (on a blocking thread) while the metadata file is written: one writer at a time.
    commit_lock: Mutex<()>,
    metadata: Mutex<RemoteLogMetadataFile>,
    dir: PathBuf,
    /// A re-created topic of the same name has the same dir but another id.
    topic_id: String,
}

/// A bounded map of parsed remote indexes by segment id (cleared when full).
struct IndexCache<T>(Mutex<HashMap<String, T>>);

impl<T: Clone> IndexCache<T> {
    fn get(&self, segment_id: &str) -> Option<T> {
        lock(&self.0).get(segment_id).cloned()
    }

    fn insert(&self, segment_id: &str, value: T) {
        let mut cache = lock(&self.0);
        if cache.len() >= INDEX_CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(segment_id.to_string(), value);
    }

    fn remove(&self, segment_id: &str) {
        lock(&self.0).remove(segment_id);
    }
}

/// See the module docs.
pub struct RemoteLogManager {
    tier: Arc<dyn RemoteTier>,
    partitions: Mutex<HashMap<TopicPartition, Arc<PartitionRemote>>>,
    /// Serializes the loading of partition states, so two callers never load one twice.
    load_lock: tokio::sync::Mutex<()>,
    index_cache: IndexCache<OffsetIndexEntries>,
    time_index_cache: IndexCache<TimeIndexEntries>,
    crash_point: Option<UploadCrashPoint>,
    /// Where the pending topic deletions file lives; `None` keeps them in memory only.
    state_dir: Option<PathBuf>,
    /// The pending topic deletions (mirrors the file); the lock is held while the file is written.
    pending: Mutex<PendingDeletionsFile>,
    /// Topic ids whose deletion is under way right now (recorded, metadata not yet deleted).
    deletions_in_flight: Mutex<HashMap<String, usize>>,
    deletion_wakeup: tokio::sync::Notify,
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

fn join_err(e: tokio::task::JoinError) -> RemoteStorageError {
    RemoteStorageError::Store { key: String::new(), reason: format!("blocking task failed: {e}") }
}

/// Runs file work on a blocking thread.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, RemoteStorageError> + Send + 'static,
) -> Result<R, RemoteStorageError> {
    tokio::task::spawn_blocking(f).await.map_err(join_err)?
}

impl RemoteLogManager {
    pub fn new(tier: Arc<dyn RemoteTier>) -> Self {
        Self {
            tier,
            partitions: Mutex::default(),
            load_lock: tokio::sync::Mutex::new(()),
            index_cache: IndexCache(Mutex::default()),
            time_index_cache: IndexCache(Mutex::default()),
            crash_point: None,
            state_dir: None,
            pending: Mutex::default(),
            deletions_in_flight: Mutex::default(),
            deletion_wakeup: tokio::sync::Notify::new(),
        }
    }

    /// Keeps pending topic deletions durable in `dir` (the broker's first log dir), loading
    /// those a previous run left unfinished.
    pub fn with_state_dir(mut self, dir: PathBuf) -> Result<Self, RemoteStorageError> {
        let path = dir.join(PENDING_DELETIONS_FILE);
        let pending = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RemoteStorageError::Io {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PendingDeletionsFile::default(),
            Err(source) => return Err(RemoteStorageError::Io { path, source }),
        };
        self.pending = Mutex::new(pending);
        self.state_dir = Some(dir);
        Ok(self)
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
        if let Some(s) = lock(&self.partitions).get(&tp).filter(|s| s.dir == dir && s.topic_id == topic_id) {
            return Ok(s.clone());
        }
        let _one_load = self.load_lock.lock().await;
        if let Some(s) = lock(&self.partitions).get(&tp).filter(|s| s.dir == dir && s.topic_id == topic_id) {
            return Ok(s.clone());
        }
        let load_dir = dir.clone();
        let mut file = match blocking(move || RemoteLogMetadataFile::load(&load_dir)).await? {
            Some(f) => f,
            None => {
                // No local metadata: rebuild from the store, dropping incomplete uploads.
                let listing = self.tier.list_segments(topic_id, tp.partition).await?;
                for stem in &listing.orphan_stems {
                    self.tier.delete_stem(stem).await?;
                    tracing::info!(topic = %tp.topic, partition = tp.partition, key = %stem, "deleted orphaned remote objects");
                }
                let file = RemoteLogMetadataFile { segments: listing.complete, log_start_offset_floor: 0 };
                if !file.segments.is_empty() {
                    tracing::info!(topic = %tp.topic, partition = tp.partition, segments = file.segments.len(), "rebuilt remote log metadata from the store");
                }
                let (f, d) = (file.clone(), dir.clone());
                blocking(move || f.store(&d)).await?;
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
            let (f, d) = (file.clone(), dir.clone());
            blocking(move || f.store(&d)).await?;
        }
        partition.set_highest_remote_offset(file.highest_offset());
        let state = Arc::new(PartitionRemote {
            sync_lock: tokio::sync::Mutex::new(()),
            commit_lock: Mutex::new(()),
            metadata: Mutex::new(file),
            dir,
            topic_id: topic_id.to_string(),
        });
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
                    has_transaction_index: candidate.files.transaction_index.is_some(),
                };
                // Step 1.
                let started = meta.clone();
                self.commit(&state, move |f| f.segments.push(started)).await?;
                if self.crash_point == Some(UploadCrashPoint::AfterStartedCommit) {
                    return Err(simulated_crash());
                }
                // Step 2.
                if let Err(e) = self.tier.copy_segment(&meta, &candidate.files).await {
                    // Best effort: drop the started entry now; if that fails, the next load does.
                    let _ = self.tier.delete_segment(&meta).await;
                    let id = meta.segment_id.clone();
                    let _ = self.commit(&state, move |f| f.segments.retain(|s| s.segment_id != id)).await;
                    return Err(e);
                }
                if self.crash_point == Some(UploadCrashPoint::AfterCopy) {
                    return Err(simulated_crash());
                }
                // Step 3.
                meta.state = RemoteSegmentState::CopySegmentFinished;
                let id = meta.segment_id.clone();
                self.commit(&state, move |f| {
                    if let Some(s) = f.segments.iter_mut().find(|s| s.segment_id == id) {
                        s.state = RemoteSegmentState::CopySegmentFinished;
                    }
                })
                .await?;
                partition.set_highest_remote_offset(meta.end_offset);
                stats.segments_uploaded += 1;
                stats.bytes_uploaded += meta.size_bytes;
                tracing::debug!(topic = %tp.topic, partition = tp.partition, base_offset = meta.base_offset, end_offset = meta.end_offset, bytes = meta.size_bytes, "copied segment to remote storage");
            }
        }
        // A blocked deletion below the floor must not hold up retention: both run, then report.
        let below_floor = self.delete_below_floor(partition, &state).await;
        stats.remote_segments_deleted = self.apply_remote_retention(partition, &state, now_ms).await?;
        stats.remote_segments_deleted += below_floor?;
        Ok(stats)
    }

    /// Applies `edit` to the metadata and stores it durably, on a blocking thread (the write
    /// fsyncs); on failure the in-memory copy is left as it was. Readers keep reading the old
    /// copy meanwhile.
    async fn commit(
        &self,
        state: &Arc<PartitionRemote>,
        edit: impl FnOnce(&mut RemoteLogMetadataFile) + Send + 'static,
    ) -> Result<(), RemoteStorageError> {
        let state = state.clone();
        blocking(move || {
            let _one_writer = lock(&state.commit_lock);
            let mut next = lock(&state.metadata).clone();
            edit(&mut next);
            next.store(&state.dir)?;
            *lock(&state.metadata) = next;
            Ok(())
        })
        .await
    }

    /// Deletes one committed remote segment: `DeleteSegmentStarted`, the objects, the entry.
    async fn delete_remote_segment(
        &self,
        state: &Arc<PartitionRemote>,
        seg: &RemoteLogSegmentMetadata,
    ) -> Result<(), RemoteStorageError> {
        let id = seg.segment_id.clone();
        self.commit(state, move |f| {
            if let Some(s) = f.segments.iter_mut().find(|s| s.segment_id == id) {
                s.state = RemoteSegmentState::DeleteSegmentStarted;
            }
        })
        .await?;
        self.tier.delete_segment(seg).await?;
        let id = seg.segment_id.clone();
        self.commit(state, move |f| f.segments.retain(|s| s.segment_id != id)).await?;
        self.index_cache.remove(&seg.segment_id);
        self.time_index_cache.remove(&seg.segment_id);
        Ok(())
    }

    /// Deletes the remote segments wholly below the log start offset DeleteRecords set, and
    /// retries deletions that failed earlier (`DeleteSegmentStarted`). Goes on past a failure
    /// (the first error is returned at the end; the next round retries).
    async fn delete_below_floor(
        &self,
        partition: &Partition,
        state: &Arc<PartitionRemote>,
    ) -> Result<usize, RemoteStorageError> {
        let doomed: Vec<_> = {
            let f = lock(&state.metadata);
            let retry = f.segments.iter().filter(|s| s.state == RemoteSegmentState::DeleteSegmentStarted);
            retry.chain(f.below_floor()).cloned().collect()
        };
        let tp = partition.topic_partition();
        let (mut deleted, mut first_error) = (0, None);
        for seg in &doomed {
            match self.delete_remote_segment(state, seg).await {
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

    /// DeleteRecords on a tiered partition, after the local log accepted `offset` (resolved: not
    /// -1): commits `offset` as the remote log start durably; the remote segments wholly below
    /// it are deleted by [`delete_below_log_start`](Self::delete_below_log_start) or the next
    /// round (also after a crash). Returns the first offset the remote tier still serves
    /// (`None`: nothing remote is left).
    pub async fn delete_records(&self, partition: &Partition, offset: i64) -> Result<Option<i64>, RemoteStorageError> {
        let Some(topic_id) = partition.topic_id().map(|id| encode_topic_id(&id)) else { return Ok(None) };
        let state = self.state(partition, &topic_id).await?;
        if offset > lock(&state.metadata).log_start_offset_floor {
            self.commit(&state, move |f| f.log_start_offset_floor = f.log_start_offset_floor.max(offset)).await?;
        }
        let start = lock(&state.metadata).log_start_offset();
        Ok(start)
    }

    /// Deletes the remote segments wholly below the DeleteRecords log start offset now (waits for
    /// a round in progress on the partition). Returns how many were deleted.
    pub async fn delete_below_log_start(&self, partition: &Partition) -> Result<usize, RemoteStorageError> {
        let Some(topic_id) = partition.topic_id().map(|id| encode_topic_id(&id)) else { return Ok(0) };
        let state = self.state(partition, &topic_id).await?;
        let _one_sync = state.sync_lock.lock().await;
        self.delete_below_floor(partition, &state).await
    }

    async fn apply_remote_retention(
        &self,
        partition: &Partition,
        state: &Arc<PartitionRemote>,
        now_ms: i64,
    ) -> Result<usize, RemoteStorageError> {
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
            self.delete_remote_segment(state, &seg).await?;
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

    /// The committed remote segments of `tp` not wholly below its log start (loaded state only).
    pub fn segments(&self, tp: &TopicPartition) -> Vec<RemoteLogSegmentMetadata> {
        let Some(state) = lock(&self.partitions).get(tp).cloned() else { return Vec::new() };
        let f = lock(&state.metadata);
        f.readable().cloned().collect()
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
        if let Some(idx) = self.index_cache.get(&seg.segment_id) {
            return Ok(idx);
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
        self.index_cache.insert(&seg.segment_id, entries.clone());
        Ok(entries)
    }

    async fn time_index(&self, seg: &RemoteLogSegmentMetadata) -> Result<TimeIndexEntries, RemoteStorageError> {
        if let Some(idx) = self.time_index_cache.get(&seg.segment_id) {
            return Ok(idx);
        }
        let bytes = self.tier.fetch(seg, RemoteFileKind::TimeIndex, 0, u64::MAX).await?;
        let entries = Arc::new(parse_time_index(seg.base_offset, &bytes));
        self.time_index_cache.insert(&seg.segment_id, entries.clone());
        Ok(entries)
    }

    /// How many remote time indexes are cached (tests: a second lookup must not refetch).
    pub fn cached_time_indexes(&self) -> usize {
        lock(&self.time_index_cache.0).len()
    }

    /// ListOffsets by timestamp in the remote tier (Kafka's `findOffsetByTimestamp`): the first
    /// record at or above the log start whose timestamp is `>= timestamp`, searched in the
    /// remote segments that start below `local_log_start_offset` (data the local log may no
    /// longer hold). `None` when the answer is not there: the caller searches the local log.
    ///
    /// Each candidate segment (largest timestamp reaching the target, oldest first) is searched:
    /// its time index (cached) gives the offset to start from, its offset index (cached) the
    /// position, and range reads of [`TIME_SCAN_CHUNK_BYTES`] walk whole batches from there.
    pub async fn offset_for_timestamp(
        &self,
        tp: &TopicPartition,
        timestamp: i64,
        local_log_start_offset: i64,
    ) -> Result<Option<TimestampOffset>, RemoteStorageError> {
        let Some(state) = lock(&self.partitions).get(tp).cloned() else { return Ok(None) };
        let (candidates, floor) = {
            let f = lock(&state.metadata);
            let segs: Vec<_> = f
                .readable()
                .filter(|s| s.max_timestamp >= timestamp && s.base_offset < local_log_start_offset)
                .cloned()
                .collect();
            (segs, f.log_start_offset_floor)
        };
        for seg in candidates {
            let start_offset = seg.base_offset.max(floor);
            let time_index = self.time_index(&seg).await?;
            // The last entry below the target: no record before its offset reaches the target.
            let n = time_index.partition_point(|&(ts, _)| ts < timestamp);
            let from = n.checked_sub(1).map_or(seg.base_offset, |i| time_index[i].1).max(start_offset);
            let offset_index = self.offset_index(&seg).await?;
            let n = offset_index.partition_point(|&(o, _)| o <= from);
            let mut pos = n.checked_sub(1).map_or(0, |i| offset_index[i].1);
            let mut buf = Bytes::new();
            while let Some(batch) = self.next_batch(&seg, &mut buf, &mut pos).await? {
                if batch.max_timestamp() < timestamp || batch.last_offset() < start_offset {
                    continue;
                }
                let records = batch.records(DECOMPRESSED_BATCH_BYTES_MAX).map_err(|e| RemoteStorageError::Store {
                    key: seg.key_stem(),
                    reason: format!("corrupt batch at offset {}: {e}", batch.base_offset()),
                })?;
                let log_append_time = batch.timestamp_type() == TimestampType::LogAppendTime;
                for r in &records {
                    let ts = if log_append_time {
                        batch.max_timestamp()
                    } else {
                        batch.base_timestamp().wrapping_add(r.timestamp_delta)
                    };
                    let offset = batch.base_offset() + i64::from(r.offset_delta);
                    if ts >= timestamp && offset >= start_offset {
                        return Ok(Some(TimestampOffset {
                            timestamp: ts,
                            offset,
                            leader_epoch: batch.partition_leader_epoch(),
                        }));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The whole batch at `pos` of a remote segment's log, reading ahead by range reads into
    /// `buf` (which holds the bytes from `pos` on); `None` at the end of the segment.
    async fn next_batch(
        &self,
        seg: &RemoteLogSegmentMetadata,
        buf: &mut Bytes,
        pos: &mut u64,
    ) -> Result<Option<RecordBatch>, RemoteStorageError> {
        const LOG_OVERHEAD: usize = 12;
        if *pos >= seg.size_bytes {
            return Ok(None);
        }
        if buf.len() < LOG_OVERHEAD {
            *buf = self.tier.fetch(seg, RemoteFileKind::Log, *pos, *pos + TIME_SCAN_CHUNK_BYTES).await?;
        }
        let corrupt = |reason: String| RemoteStorageError::Store { key: seg.key_stem(), reason };
        if buf.len() < LOG_OVERHEAD {
            return Err(corrupt(format!("truncated batch header at position {pos}")));
        }
        let len = i32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let Ok(len) = usize::try_from(len) else { return Err(corrupt(format!("corrupt batch at position {pos}"))) };
        let size = LOG_OVERHEAD + len;
        if buf.len() < size {
            let end = *pos + (size as u64).max(TIME_SCAN_CHUNK_BYTES);
            *buf = self.tier.fetch(seg, RemoteFileKind::Log, *pos, end).await?;
            if buf.len() < size {
                return Err(corrupt(format!("truncated batch at position {pos}")));
            }
        }
        let batch = RecordBatch::new(buf.split_to(size)).map_err(|e| corrupt(format!("position {pos}: {e}")))?;
        *pos += size as u64;
        Ok(Some(batch))
    }

    /// Records, before a topic's metadata is deleted, that its remote data must be deleted
    /// (durably when a state dir is set: call it on a blocking thread). The record is not acted
    /// on before [`end_topic_deletion`](Self::end_topic_deletion).
    pub fn begin_topic_deletion(&self, topic_id: &str, partitions: i32) -> Result<(), RemoteStorageError> {
        *lock(&self.deletions_in_flight).entry(topic_id.to_string()).or_default() += 1;
        let entry = PendingTopicDeletion { topic_id: topic_id.to_string(), partitions };
        let result = self.edit_pending(|p| {
            if !p.topics.contains(&entry) {
                p.topics.push(entry);
            }
        });
        if result.is_err() {
            self.deletion_over(topic_id);
        }
        result
    }

    fn deletion_over(&self, topic_id: &str) {
        let mut in_flight = lock(&self.deletions_in_flight);
        if let Some(n) = in_flight.get_mut(topic_id) {
            *n -= 1;
            if *n == 0 {
                in_flight.remove(topic_id);
            }
        }
    }

    /// The topic's metadata deletion is over (done or failed): forgets its partitions' state and
    /// wakes the remote log manager task to delete its remote data (a record whose topic still
    /// exists is dropped instead).
    pub fn end_topic_deletion(&self, topic_id: &str, topic: &str) {
        lock(&self.partitions).retain(|tp, _| tp.topic != topic);
        self.deletion_over(topic_id);
        self.deletion_wakeup.notify_one();
    }

    /// Waits until a topic deletion asks for remote deletion (the task's wake-up).
    pub async fn topic_deletion_requested(&self) {
        self.deletion_wakeup.notified().await;
    }

    /// Topic deletions whose remote data is not deleted yet.
    pub fn pending_topic_deletions(&self) -> Vec<PendingTopicDeletion> {
        lock(&self.pending).topics.clone()
    }

    /// Edits the pending deletions and writes them durably (blocking: file write and fsync).
    fn edit_pending(&self, edit: impl FnOnce(&mut PendingDeletionsFile)) -> Result<(), RemoteStorageError> {
        let mut guard = lock(&self.pending);
        let mut next = guard.clone();
        edit(&mut next);
        if let Some(dir) = &self.state_dir {
            store_pending(dir, &next)?;
        }
        *guard = next;
        Ok(())
    }

    /// Deletes the remote data of every deleted topic recorded as pending, then its record;
    /// `topic_exists` tells whether a topic id is still live (its record is then stale and
    /// dropped, its data kept). Returns the number of remote segments (and orphaned uploads)
    /// deleted. The broker's task calls it at every round, so a deletion interrupted by a crash
    /// or a store failure resumes.
    pub async fn resume_topic_deletions(
        self: &Arc<Self>,
        topic_exists: impl Fn(&str) -> bool,
    ) -> Result<usize, RemoteStorageError> {
        let mut deleted = 0;
        for entry in self.pending_topic_deletions() {
            if lock(&self.deletions_in_flight).contains_key(&entry.topic_id) {
                continue;
            }
            if topic_exists(&entry.topic_id) {
                tracing::info!(topic_id = %entry.topic_id, "dropping remote deletion record of a topic that still exists");
            } else {
                for partition in 0..entry.partitions {
                    let listing = self.tier.list_segments(&entry.topic_id, partition).await?;
                    for seg in &listing.complete {
                        self.tier.delete_segment(seg).await?;
                        self.index_cache.remove(&seg.segment_id);
                        self.time_index_cache.remove(&seg.segment_id);
                    }
                    for stem in &listing.orphan_stems {
                        self.tier.delete_stem(stem).await?;
                    }
                    deleted += listing.complete.len() + listing.orphan_stems.len();
                }
                tracing::info!(topic_id = %entry.topic_id, partitions = entry.partitions, "deleted remote data of a deleted topic");
            }
            let this = self.clone();
            blocking(move || this.edit_pending(|p| p.topics.retain(|t| *t != entry))).await?;
        }
        Ok(deleted)
    }
}

fn store_pending(dir: &Path, pending: &PendingDeletionsFile) -> Result<(), RemoteStorageError> {
    let path = dir.join(PENDING_DELETIONS_FILE);
    let json = serde_json::to_vec_pretty(pending)
        .map_err(|e| RemoteStorageError::Io { path: path.clone(), source: std::io::Error::other(e) })?;
    sluice_storage::checkpoint::write_atomically(&path, &json).map_err(|source| RemoteStorageError::Io { path, source })
}

/// A remote time index as `(timestamp, offset)` pairs; a zero tail or anything not increasing
/// ends it.
fn parse_time_index(base_offset: i64, bytes: &[u8]) -> Vec<(i64, i64)> {
    let mut entries: Vec<(i64, i64)> = Vec::with_capacity(bytes.len() / 12);
    for e in bytes.chunks_exact(12) {
        let ts = i64::from_be_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]);
        let offset = base_offset + i64::from(u32::from_be_bytes([e[8], e[9], e[10], e[11]]));
        if entries.last().is_some_and(|&(t, o)| ts <= t || offset < o) {
            break;
        }
        entries.push((ts, offset));
    }
    entries
}

fn simulated_crash() -> RemoteStorageError {
    RemoteStorageError::Store { key: String::new(), reason: "simulated crash".into() }
}
