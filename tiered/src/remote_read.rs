//! [`RemoteLogReader`]: reads below the local log start, from the remote tier (Kafka's
//! `RemoteLogReader` with its `RemoteIndexCache`):
//! - Fetch: finds the position of the fetch offset in the segment's remote offset index and
//!   range-reads whole batches from there ([`RemoteLogReader::read`]);
//! - ListOffsets by timestamp: the remote time index gives where to start, range reads walk whole
//!   batches from there ([`RemoteLogReader::offset_for_timestamp`], Kafka's
//!   `findOffsetByTimestamp`).
//!
//! Every batch served is checked (header, length, CRC-32C) before it leaves, like a local read
//! after recovery: the object store's own checksums cover the transfer, not what was uploaded.
//! A damaged batch fails that read with [`TieredError::Corrupt`], which the broker answers with
//! CORRUPT_MESSAGE: Kafka's `RemoteLogReader` hands the exception of a failed remote read to the
//! fetch response through `Errors.forException`, and the exception a damaged remote batch raises
//! there is `CorruptRecordException` (from `RemoteLogInputStream`), i.e. CORRUPT_MESSAGE, while a
//! store that cannot be reached surfaces as KAFKA_STORAGE_ERROR ([`TieredError::Remote`]).
//!
//! The parsed indexes are cached in a [`RemoteIndexCache`] bounded by the bytes its entries hold
//! (Kafka's `remote.log.index.file.cache.total.size.bytes`), least recently used first out.
//!
//! Thread-safety: shared; the cache's `std` mutex is held only to look up or insert an entry,
//! never across a fetch from the store (two readers may fetch one index twice; both get it).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use sluice_protocol::batch::{RecordBatch, TimestampType};
use sluice_protocol::batch_header::{BatchHeader, BATCH_HEADER_BYTES};
use sluice_protocol::limits::{DECOMPRESSED_BATCH_BYTES_MAX, LOG_OVERHEAD};
use sluice_storage::index::{parse_offset_index, parse_time_index, OffsetPosition, TimeIndexEntry};
use sluice_storage::remote::{RemoteFileKind, RemoteLogSegmentMetadata, RemoteTier};
use sluice_storage::TimestampOffset;

use crate::error::{Result, TieredError};
use crate::limits::{READ_SLACK_BYTES, TIME_SCAN_CHUNK_BYTES};
use crate::manager::lock;

/// A remote segment's parsed offset index.
pub type OffsetIndexEntries = Arc<Vec<OffsetPosition>>;
/// A remote segment's parsed time index.
pub type TimeIndexEntries = Arc<Vec<TimeIndexEntry>>;

#[derive(Debug, Clone)]
enum CachedIndex {
    Offset(OffsetIndexEntries),
    Time(TimeIndexEntries),
}

impl CachedIndex {
    /// Bytes the entry holds in memory (its allocation, not just the entries in use): what the
    /// cache bound counts.
    fn bytes(&self) -> u64 {
        let bytes = match self {
            CachedIndex::Offset(e) => e.capacity() * std::mem::size_of::<OffsetPosition>(),
            CachedIndex::Time(e) => e.capacity() * std::mem::size_of::<TimeIndexEntry>(),
        };
        bytes as u64
    }
}

/// Which index of which segment.
type CacheKey = (String, RemoteFileKind);

struct CacheSlot {
    index: CachedIndex,
    bytes: u64,
    /// When the slot was last used (a tick of the cache's clock).
    used: u64,
}

#[derive(Default)]
struct CacheState {
    slots: HashMap<CacheKey, CacheSlot>,
    /// Slots by last use, oldest first: the eviction order.
    by_use: BTreeMap<u64, CacheKey>,
    bytes: u64,
    clock: u64,
}

/// Parsed remote indexes by segment id, bounded by bytes (see the module docs). An index larger
/// than the whole bound is served but not kept.
pub struct RemoteIndexCache {
    bytes_max: u64,
    state: Mutex<CacheState>,
}

impl std::fmt::Debug for RemoteIndexCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("RemoteIndexCache")
            .field("bytes_max", &self.bytes_max)
            .field("bytes", &state.bytes)
            .field("entries", &state.slots.len())
            .finish()
    }
}

impl RemoteIndexCache {
    pub fn new(bytes_max: u64) -> Self {
        Self { bytes_max, state: Mutex::default() }
    }

    fn get(&self, key: &CacheKey) -> Option<CachedIndex> {
        let mut state = lock(&self.state);
        state.clock += 1;
        let now = state.clock;
        let slot = state.slots.get_mut(key)?;
        let before = std::mem::replace(&mut slot.used, now);
        let index = slot.index.clone();
        state.by_use.remove(&before);
        state.by_use.insert(now, key.clone());
        Some(index)
    }

    fn insert(&self, key: CacheKey, index: CachedIndex) {
        let bytes = index.bytes();
        if bytes > self.bytes_max {
            return;
        }
        let mut state = lock(&self.state);
        Self::remove_locked(&mut state, &key);
        while state.bytes + bytes > self.bytes_max {
            let Some((_, oldest)) = state.by_use.pop_first() else { break };
            if let Some(slot) = state.slots.remove(&oldest) {
                state.bytes -= slot.bytes;
            }
        }
        state.clock += 1;
        let used = state.clock;
        state.by_use.insert(used, key.clone());
        state.slots.insert(key, CacheSlot { index, bytes, used });
        state.bytes += bytes;
    }

    fn remove_locked(state: &mut CacheState, key: &CacheKey) {
        if let Some(slot) = state.slots.remove(key) {
            state.by_use.remove(&slot.used);
            state.bytes -= slot.bytes;
        }
    }

    /// Drops every index of a segment (deleted from the store).
    pub fn remove_segment(&self, segment_id: &str) {
        let mut state = lock(&self.state);
        for kind in [RemoteFileKind::OffsetIndex, RemoteFileKind::TimeIndex] {
            Self::remove_locked(&mut state, &(segment_id.to_string(), kind));
        }
    }

    /// Bytes held now.
    pub fn size_bytes(&self) -> u64 {
        lock(&self.state).bytes
    }

    /// How many indexes of `kind` are cached.
    fn count(&self, kind: RemoteFileKind) -> usize {
        lock(&self.state).slots.keys().filter(|(_, k)| *k == kind).count()
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct RemoteLogReader {
    tier: Arc<dyn RemoteTier>,
    cache: RemoteIndexCache,
}

impl RemoteLogReader {
    pub fn new(tier: Arc<dyn RemoteTier>, index_cache_bytes_max: u64) -> Self {
        Self { tier, cache: RemoteIndexCache::new(index_cache_bytes_max) }
    }

    pub fn index_cache(&self) -> &RemoteIndexCache {
        &self.cache
    }

    /// How many remote time indexes are cached (tests: a second lookup must not refetch).
    pub fn cached_time_indexes(&self) -> usize {
        self.cache.count(RemoteFileKind::TimeIndex)
    }

    /// Whole batches from `seg`, the remote segment holding `fetch_offset`: starting with the
    /// batch that contains it, stopping before a batch whose last offset is `>= max_offset` and
    /// once `max_bytes` would be exceeded (the first batch is returned whole whatever its size).
    pub async fn read(
        &self,
        seg: &RemoteLogSegmentMetadata,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Bytes> {
        let index = self.offset_index(seg).await?;
        let n = index.partition_point(|e| e.offset <= fetch_offset);
        let start = n.checked_sub(1).map(|i| index[i].position).unwrap_or(0);
        let end = (start + max_bytes as u64 + READ_SLACK_BYTES).min(seg.size_bytes);
        let mut buf = self.tier.fetch(seg, RemoteFileKind::Log, start, end).await?;
        let mut out = BytesMut::new();
        let mut pos = 0usize;
        let mut abs = start;
        loop {
            if buf.len() - pos < BATCH_HEADER_BYTES {
                if abs + (buf.len() - pos) as u64 >= seg.size_bytes || !out.is_empty() {
                    break;
                }
                // Nothing whole yet: read on from here.
                let more_end = (abs + max_bytes as u64 + READ_SLACK_BYTES).min(seg.size_bytes);
                buf = self.tier.fetch(seg, RemoteFileKind::Log, abs, more_end).await?;
                pos = 0;
                continue;
            }
            let h = BatchHeader::parse(&buf[pos..]).map_err(|source| corrupt(seg, abs, source))?;
            let size = h.size_in_bytes() as usize;
            let last = h.last_offset();
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
                buf = self.tier.fetch(seg, RemoteFileKind::Log, abs, abs + size as u64).await?;
                pos = 0;
                if buf.len() < size {
                    break;
                }
                continue;
            }
            if last >= fetch_offset {
                let batch = &buf[pos..pos + size];
                h.check_crc(&batch[BATCH_HEADER_BYTES..]).map_err(|source| corrupt(seg, abs, source))?;
                out.extend_from_slice(batch);
            }
            pos += size;
            abs += size as u64;
        }
        Ok(out.freeze())
    }

    /// The segment's offset index, from the cache or the store.
    pub async fn offset_index(&self, seg: &RemoteLogSegmentMetadata) -> Result<OffsetIndexEntries> {
        let key = (seg.segment_id.clone(), RemoteFileKind::OffsetIndex);
        if let Some(CachedIndex::Offset(idx)) = self.cache.get(&key) {
            return Ok(idx);
        }
        let bytes = self.tier.fetch(seg, RemoteFileKind::OffsetIndex, 0, u64::MAX).await?;
        let entries = Arc::new(parse_offset_index(seg.base_offset, &bytes));
        self.cache.insert(key, CachedIndex::Offset(entries.clone()));
        Ok(entries)
    }

    /// The segment's time index, from the cache or the store.
    pub async fn time_index(&self, seg: &RemoteLogSegmentMetadata) -> Result<TimeIndexEntries> {
        let key = (seg.segment_id.clone(), RemoteFileKind::TimeIndex);
        if let Some(CachedIndex::Time(idx)) = self.cache.get(&key) {
            return Ok(idx);
        }
        let bytes = self.tier.fetch(seg, RemoteFileKind::TimeIndex, 0, u64::MAX).await?;
        let entries = Arc::new(parse_time_index(seg.base_offset, &bytes));
        self.cache.insert(key, CachedIndex::Time(entries.clone()));
        Ok(entries)
    }

    /// The first record at or above `start_offset` whose timestamp is `>= timestamp` in the
    /// `candidates` (remote segments whose largest timestamp reaches the target, oldest first);
    /// `None` when none holds one.
    ///
    /// Each candidate is searched: its time index (cached) gives the offset to start from, its
    /// offset index (cached) the position, and range reads of [`TIME_SCAN_CHUNK_BYTES`] walk
    /// whole batches from there.
    pub async fn offset_for_timestamp(
        &self,
        candidates: &[RemoteLogSegmentMetadata],
        timestamp: i64,
        log_start_offset_floor: i64,
    ) -> Result<Option<TimestampOffset>> {
        for seg in candidates {
            let start_offset = seg.base_offset.max(log_start_offset_floor);
            let time_index = self.time_index(seg).await?;
            // The last entry below the target: no record before its offset reaches the target.
            let n = time_index.partition_point(|e| e.timestamp < timestamp);
            let from = n.checked_sub(1).map_or(seg.base_offset, |i| time_index[i].offset).max(start_offset);
            let offset_index = self.offset_index(seg).await?;
            let n = offset_index.partition_point(|e| e.offset <= from);
            let mut pos = n.checked_sub(1).map_or(0, |i| offset_index[i].position);
            let mut buf = Bytes::new();
            while let Some(batch) = self.next_batch(seg, &mut buf, &mut pos).await? {
                if batch.max_timestamp() < timestamp || batch.last_offset() < start_offset {
                    continue;
                }
                let position = pos - batch.size_in_bytes() as u64;
                let records =
                    batch.records(DECOMPRESSED_BATCH_BYTES_MAX).map_err(|source| corrupt(seg, position, source))?;
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
    /// `buf` (which holds the bytes from `pos` on), its CRC checked; `None` at the end of the
    /// segment.
    async fn next_batch(
        &self,
        seg: &RemoteLogSegmentMetadata,
        buf: &mut Bytes,
        pos: &mut u64,
    ) -> Result<Option<RecordBatch>> {
        if *pos >= seg.size_bytes {
            return Ok(None);
        }
        if buf.len() < BATCH_HEADER_BYTES {
            *buf = self.tier.fetch(seg, RemoteFileKind::Log, *pos, *pos + TIME_SCAN_CHUNK_BYTES).await?;
        }
        if buf.len() < LOG_OVERHEAD {
            return Err(TieredError::Truncated { key: seg.key_stem(), position: *pos });
        }
        let size = BatchHeader::parse(buf).map_err(|source| corrupt(seg, *pos, source))?.size_in_bytes() as usize;
        if buf.len() < size {
            let end = *pos + (size as u64).max(TIME_SCAN_CHUNK_BYTES);
            *buf = self.tier.fetch(seg, RemoteFileKind::Log, *pos, end).await?;
            if buf.len() < size {
                return Err(TieredError::Truncated { key: seg.key_stem(), position: *pos });
            }
        }
        let batch = RecordBatch::new(buf.split_to(size)).map_err(|source| corrupt(seg, *pos, source))?;
        let h = batch.header();
        h.check_crc(&batch.as_bytes()[BATCH_HEADER_BYTES..]).map_err(|source| corrupt(seg, *pos, source))?;
        *pos += size as u64;
        Ok(Some(batch))
    }
}

fn corrupt(seg: &RemoteLogSegmentMetadata, position: u64, source: sluice_protocol::batch::BatchError) -> TieredError {
    TieredError::Corrupt { key: seg.key_stem(), position, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(n: usize) -> CachedIndex {
        let mut entries = Vec::with_capacity(n);
        entries.resize(n, OffsetPosition { offset: 0, position: 0 });
        CachedIndex::Offset(Arc::new(entries))
    }

    fn key(id: &str) -> CacheKey {
        (id.to_string(), RemoteFileKind::OffsetIndex)
    }

    #[test]
    fn index_cache_is_bounded_by_bytes_and_evicts_the_least_recently_used() {
        let entry = std::mem::size_of::<OffsetPosition>() as u64;
        let cache = RemoteIndexCache::new(10 * entry);
        cache.insert(key("a"), offsets(4));
        cache.insert(key("b"), offsets(4));
        assert_eq!(cache.size_bytes(), 8 * entry);
        // Using "a" makes "b" the oldest: it goes when "c" needs room.
        assert!(cache.get(&key("a")).is_some());
        cache.insert(key("c"), offsets(4));
        assert!(cache.get(&key("b")).is_none());
        assert!(cache.get(&key("a")).is_some());
        assert!(cache.get(&key("c")).is_some());
        assert_eq!(cache.size_bytes(), 8 * entry);
        // Larger than the whole bound: served by the caller, never kept, nothing evicted.
        cache.insert(key("d"), offsets(11));
        assert!(cache.get(&key("d")).is_none());
        assert_eq!(cache.size_bytes(), 8 * entry);
        cache.remove_segment("a");
        assert_eq!(cache.size_bytes(), 4 * entry);
        assert!(cache.get(&key("a")).is_none());
    }
}
