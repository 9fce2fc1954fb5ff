//! [`RemoteLogManager`]: KIP-405's `RemoteLogManager` for Sluice, the one entry point the broker
//! uses. It owns the per-partition remote state ([`PartitionRemote`]: the durable segment list
//! `remote-log-segments.json`, loaded once per partition or rebuilt from the store's listing,
//! with what an interrupted upload or deletion left cleaned up) and hands the work to the module
//! that owns each part:
//! - [`crate::upload`]: copying rolled segments;
//! - [`crate::retention`]: remote retention and DeleteRecords;
//! - [`crate::remote_read`]: Fetch and ListOffsets below the local log start, with the bounded
//!   index cache;
//! - [`crate::pending_deletions`]: the journal of deleted topics whose remote data is still to
//!   be deleted.
//!
//! Every write of a metadata file runs on a blocking thread (`spawn_blocking`): it fsyncs.
//!
//! Thread-safety: one sync at a time per partition (an async mutex per partition); metadata file
//! writes of one partition are serialized by a `std` mutex held only on the blocking thread;
//! reads only take short `std` mutex sections to copy metadata and never wait on a sync.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use sluice_storage::layout::encode_topic_id;
use sluice_storage::remote::{RemoteLogSegmentMetadata, RemoteSegmentState, RemoteTier};
use sluice_storage::{TimestampOffset, TopicPartition, UnifiedLog};

use crate::error::{Result, TieredError};
use crate::limits::INDEX_CACHE_BYTES_DEFAULT;
use crate::metadata::RemoteLogMetadataFile;
use crate::pending_deletions::{PendingDeletions, PendingTopicDeletion};
use crate::remote_read::RemoteLogReader;
use crate::upload::UploadCrashPoint;
use crate::{retention, upload};

/// Settings of the remote log manager (broker `remote.log.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLogManagerConfig {
    /// `remote.log.index.file.cache.total.size.bytes` (default 1 GiB): bound of the remote index
    /// cache, in bytes of parsed entries.
    pub index_cache_bytes_max: u64,
}

impl Default for RemoteLogManagerConfig {
    fn default() -> Self {
        Self { index_cache_bytes_max: INDEX_CACHE_BYTES_DEFAULT }
    }
}

/// What one [`RemoteLogManager::sync`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub segments_uploaded: usize,
    pub bytes_uploaded: u64,
    pub remote_segments_deleted: usize,
    pub orphans_deleted: usize,
}

/// One partition's remote state.
pub(crate) struct PartitionRemote {
    pub(crate) sync_lock: tokio::sync::Mutex<()>,
    /// Held (on a blocking thread) while the metadata file is written: one writer at a time.
    commit_lock: Mutex<()>,
    pub(crate) metadata: Mutex<RemoteLogMetadataFile>,
    dir: PathBuf,
    /// A re-created topic of the same name has the same dir but another id.
    pub(crate) topic_id: String,
}

impl PartitionRemote {
    /// Applies `edit` to the metadata and stores it durably, on a blocking thread (the write
    /// fsyncs); on failure the in-memory copy is left as it was. Readers keep reading the old
    /// copy meanwhile.
    pub(crate) async fn commit(
        self: &Arc<Self>,
        edit: impl FnOnce(&mut RemoteLogMetadataFile) + Send + 'static,
    ) -> Result<()> {
        let state = self.clone();
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
}

/// See the module docs.
pub struct RemoteLogManager {
    tier: Arc<dyn RemoteTier>,
    partitions: Mutex<HashMap<TopicPartition, Arc<PartitionRemote>>>,
    /// Serializes the loading of partition states, so two callers never load one twice.
    load_lock: tokio::sync::Mutex<()>,
    reader: RemoteLogReader,
    crash_point: Option<UploadCrashPoint>,
    pending: PendingDeletions,
}

impl std::fmt::Debug for RemoteLogManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteLogManager").field("tier", &self.tier).finish_non_exhaustive()
    }
}

/// Locks a `std` mutex whose sections never panic midway; a poisoned lock is still consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs file work on a blocking thread.
pub(crate) async fn blocking<R: Send + 'static>(f: impl FnOnce() -> Result<R> + Send + 'static) -> Result<R> {
    tokio::task::spawn_blocking(f).await.map_err(|e| TieredError::TaskFailed(e.to_string()))?
}

impl RemoteLogManager {
    pub fn new(tier: Arc<dyn RemoteTier>) -> Self {
        Self::with_config(tier, RemoteLogManagerConfig::default())
    }

    pub fn with_config(tier: Arc<dyn RemoteTier>, config: RemoteLogManagerConfig) -> Self {
        Self {
            reader: RemoteLogReader::new(tier.clone(), config.index_cache_bytes_max),
            tier,
            partitions: Mutex::default(),
            load_lock: tokio::sync::Mutex::new(()),
            crash_point: None,
            pending: PendingDeletions::default(),
        }
    }

    /// Keeps pending topic deletions durable in `dir` (the broker's first log dir), loading
    /// those a previous run left unfinished.
    pub fn with_state_dir(mut self, dir: PathBuf) -> Result<Self> {
        self.pending = PendingDeletions::load(dir)?;
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
    async fn state(&self, partition: &UnifiedLog, topic_id: &str) -> Result<Arc<PartitionRemote>> {
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
        let mut file = match blocking(move || Ok(RemoteLogMetadataFile::load(&load_dir)?)).await? {
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
                blocking(move || Ok(f.store(&d)?)).await?;
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
            blocking(move || Ok(f.store(&d)?)).await?;
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
    pub async fn sync(&self, partition: &UnifiedLog, now_ms: i64) -> Result<SyncStats> {
        let mut stats = SyncStats::default();
        let Some(topic_id) = partition.topic_id().map(|id| encode_topic_id(&id)) else { return Ok(stats) };
        let state = self.state(partition, &topic_id).await?;
        let _one_sync = state.sync_lock.lock().await;
        if partition.config().remote_storage_enable {
            let copied = upload::copy_rolled_segments(&self.tier, &state, partition, self.crash_point).await?;
            stats.segments_uploaded = copied.segments;
            stats.bytes_uploaded = copied.bytes;
        }
        let cache = self.reader.index_cache();
        // A blocked deletion below the floor must not hold up retention: both run, then report.
        let below_floor = retention::delete_below_floor(&self.tier, cache, partition, &state).await;
        stats.remote_segments_deleted =
            retention::apply_remote_retention(&self.tier, cache, partition, &state, now_ms).await?;
        stats.remote_segments_deleted += below_floor?;
        Ok(stats)
    }

    /// DeleteRecords on a tiered partition, after the local log accepted `offset` (resolved: not
    /// -1): commits `offset` as the remote log start durably; the remote segments wholly below
    /// it are deleted by [`delete_below_log_start`](Self::delete_below_log_start) or the next
    /// round (also after a crash). Returns the first offset the remote tier still serves
    /// (`None`: nothing remote is left).
    pub async fn delete_records(&self, partition: &UnifiedLog, offset: i64) -> Result<Option<i64>> {
        let Some(topic_id) = partition.topic_id().map(|id| encode_topic_id(&id)) else { return Ok(None) };
        let state = self.state(partition, &topic_id).await?;
        if offset > lock(&state.metadata).log_start_offset_floor {
            state.commit(move |f| f.log_start_offset_floor = f.log_start_offset_floor.max(offset)).await?;
        }
        let start = lock(&state.metadata).log_start_offset();
        Ok(start)
    }

    /// Deletes the remote segments wholly below the DeleteRecords log start offset now (waits for
    /// a round in progress on the partition). Returns how many were deleted.
    pub async fn delete_below_log_start(&self, partition: &UnifiedLog) -> Result<usize> {
        let Some(topic_id) = partition.topic_id().map(|id| encode_topic_id(&id)) else { return Ok(0) };
        let state = self.state(partition, &topic_id).await?;
        let _one_sync = state.sync_lock.lock().await;
        retention::delete_below_floor(&self.tier, self.reader.index_cache(), partition, &state).await
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

    /// Whole batches from the remote segment holding `fetch_offset`, CRC-checked (see
    /// [`RemoteLogReader::read`]). `None` when no remote segment holds the offset.
    pub async fn read(
        &self,
        tp: &TopicPartition,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Option<Bytes>> {
        let Some(state) = lock(&self.partitions).get(tp).cloned() else { return Ok(None) };
        let Some(seg) = lock(&state.metadata).segment_for(fetch_offset).cloned() else { return Ok(None) };
        self.reader.read(&seg, fetch_offset, max_bytes, max_offset).await.map(Some)
    }

    /// How many remote time indexes are cached (tests: a second lookup must not refetch).
    pub fn cached_time_indexes(&self) -> usize {
        self.reader.cached_time_indexes()
    }

    /// ListOffsets by timestamp in the remote tier (Kafka's `findOffsetByTimestamp`): the first
    /// record at or above the log start whose timestamp is `>= timestamp`, searched in the
    /// remote segments that start below `local_log_start_offset` (data the local log may no
    /// longer hold). `None` when the answer is not there: the caller searches the local log.
    pub async fn offset_for_timestamp(
        &self,
        tp: &TopicPartition,
        timestamp: i64,
        local_log_start_offset: i64,
    ) -> Result<Option<TimestampOffset>> {
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
        self.reader.offset_for_timestamp(&candidates, timestamp, floor).await
    }

    /// Records, before a topic's metadata is deleted, that its remote data must be deleted
    /// (durably when a state dir is set: call it on a blocking thread). The record is not acted
    /// on before [`end_topic_deletion`](Self::end_topic_deletion).
    pub fn begin_topic_deletion(&self, topic_id: &str, partitions: i32) -> Result<()> {
        self.pending.begin(topic_id, partitions)
    }

    /// The topic's metadata deletion is over (done or failed): forgets its partitions' state and
    /// wakes the remote log manager task to delete its remote data (a record whose topic still
    /// exists is dropped instead).
    pub fn end_topic_deletion(&self, topic_id: &str, topic: &str) {
        lock(&self.partitions).retain(|tp, _| tp.topic != topic);
        self.pending.end(topic_id);
    }

    /// Waits until a topic deletion asks for remote deletion (the task's wake-up).
    pub async fn topic_deletion_requested(&self) {
        self.pending.requested().await;
    }

    /// Topic deletions whose remote data is not deleted yet.
    pub fn pending_topic_deletions(&self) -> Vec<PendingTopicDeletion> {
        self.pending.list()
    }

    /// Deletes the remote data of every deleted topic recorded as pending, then its record;
    /// `topic_exists` tells whether a topic id is still live (its record is then stale and
    /// dropped, its data kept). Returns the number of remote segments (and orphaned uploads)
    /// deleted. The broker's task calls it at every round, so a deletion interrupted by a crash
    /// or a store failure resumes.
    pub async fn resume_topic_deletions(self: &Arc<Self>, topic_exists: impl Fn(&str) -> bool) -> Result<usize> {
        let mut deleted = 0;
        for entry in self.pending_topic_deletions() {
            if self.pending.in_flight(&entry.topic_id) {
                continue;
            }
            if topic_exists(&entry.topic_id) {
                tracing::info!(topic_id = %entry.topic_id, "dropping remote deletion record of a topic that still exists");
            } else {
                for partition in 0..entry.partitions {
                    let listing = self.tier.list_segments(&entry.topic_id, partition).await?;
                    for seg in &listing.complete {
                        self.tier.delete_segment(seg).await?;
                        self.reader.index_cache().remove_segment(&seg.segment_id);
                    }
                    for stem in &listing.orphan_stems {
                        self.tier.delete_stem(stem).await?;
                    }
                    deleted += listing.complete.len() + listing.orphan_stems.len();
                }
                tracing::info!(topic_id = %entry.topic_id, partitions = entry.partitions, "deleted remote data of a deleted topic");
            }
            let this = self.clone();
            blocking(move || this.pending.remove(&entry)).await?;
        }
        Ok(deleted)
    }
}
