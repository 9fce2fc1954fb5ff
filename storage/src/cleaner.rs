//! The log cleaner (Kafka's `LogCleaner`/`Cleaner`/`LogCleanerManager`): compacts logs with
//! `cleanup.policy=compact` so that each key keeps its latest record, and removes tombstones
//! `delete.retention.ms` after the cleaning that first saw them.
//!
//! One cleaning of one log:
//! 1. Snapshot (under the partition lock, briefly): the segments, log start offset, high
//!    watermark and the first dirty offset (the `cleaner-offset-checkpoint`). The cleanable range
//!    ends at the first uncleanable offset: the active segment's base, the high watermark, and the
//!    first dirty segment holding records younger than `min.compaction.lag.ms`.
//! 2. Offset map: the dirty section is scanned and each key's hash (128 bits, standing in for
//!    Kafka's MD5 in `SkimpyOffsetMap`) mapped to its latest offset, within the capacity the
//!    dedupe buffer allows; the map ends at a batch boundary (`end_offset`) when it fills up.
//! 3. Rewrite: the segments below `end_offset` are grouped (consecutive, total size up to
//!    `segment.bytes`, offsets within an int range — small segments are merged) and each group is
//!    rewritten keeping a record only if its key has no later offset in the map; offsets are
//!    preserved (gaps are fine), batches keep their codec, producer id/epoch/sequence and leader
//!    epoch; a batch whose records all go is dropped unless it is its producer's last batch in
//!    the log (then an empty batch keeps the producer state, as Kafka does). Control batches are
//!    kept untouched, and so are the
//!    aborted-transaction indexes; batches of aborted transactions are dropped (and never enter
//!    the offset map, so an aborted write never hides the committed value of its key); the
//!    cleanable range ends at the last stable offset.
//! 4. Tombstones (null values) get a delete horizon (KIP-534): a rewritten batch with tombstones
//!    and no horizon gets attribute bit 0x40 and `base_timestamp = now + delete.retention.ms`
//!    (record timestamps stay `base_timestamp + delta`); a later cleaning after the horizon drops
//!    them. The horizon lives in the batch, so it survives restarts.
//! 5. Swap, crash-safe exactly like Kafka's `replaceSegments`: write `<base>.log/.index/
//!    .timeindex.cleaned` (plus Sluice's `<base>.groupend.cleaned`, the offset after the replaced
//!    segments) and fsync; rename them to `.swap` (the log last: a `.log.swap` means the swap is
//!    decided); under the lock rename the old segments to `.deleted`; rename the swap files to
//!    their final names; fsync the dir. Recovery deletes `.cleaned` files (rolls back) and
//!    completes a `.swap` (rolls forward); see `recovery.rs`.
//!
//! Thread-safety: a cleaning reads immutable segment snapshots without the partition lock and
//! takes the lock only to snapshot and to swap; at the swap it checks that the segments it
//! rewrote are still there (retention or DeleteRecords may have deleted them meanwhile) and
//! abandons the group otherwise. At most one cleaner works on a log (`LogManager::cleaning`).
//!
//! The cleaner reaches the log only through `UnifiedLog`'s narrow cleaner API in `log.rs`
//! (`cleaner_view`, `segment_views`, `replace_with_cleaned`, `commit_cleaning`,
//! `clear_tombstone_horizon`): every method of the log lives in `log.rs`, and this module holds
//! the cleaning itself as functions over a `&UnifiedLog`.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::IoSlice;
use std::path::Path;

use bytes::Bytes;
use sluice_protocol::batch::{
    BatchError, RecordBatch, TimestampType, ATTR_DELETE_HORIZON, DECOMPRESSED_BATCH_BYTES_MAX,
};
use sluice_protocol::records::{BatchBuilder, Record};

use crate::checkpoint::fsync_dir;
use crate::layout::{self, CLEANED_SUFFIX, SWAP_SUFFIX};
use crate::limits::OFFSET_MAP_ENTRY_BYTES;
use crate::log::UnifiedLog;
use crate::segment::{io_err, BatchScanner, LogSegment, Scanned, SegmentView};
use crate::txn_index::AbortedTxn;
use crate::{CleanerConfig, CleanerStats, LogConfig, Result, StorageError};

/// Kafka's `log.cleaner.io.buffer.load.factor`.
const OFFSET_MAP_LOAD_FACTOR: f64 = 0.9;

/// Where a cleaning may be stopped to simulate a crash (tests only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanCrashPoint {
    /// The `.cleaned` files are written and fsynced; nothing renamed.
    AfterCleanedWritten,
    /// The `.cleaned` files are renamed to `.swap`; old segments untouched.
    AfterSwapRenamed,
    /// The first old segment of the group is renamed to `.deleted`.
    AfterFirstOldDeleted,
    /// Every old segment is renamed to `.deleted`; the swap files keep their `.swap` names.
    AfterAllOldDeleted,
    /// The swap is complete (final names) but the `.groupend.swap` sidecar is still there.
    AfterFinalRename,
}

/// How dirty a compacted log is (Kafka's `LogToClean`).
#[derive(Debug, Clone, PartialEq)]
pub struct Cleanable {
    pub first_dirty_offset: i64,
    pub first_uncleanable_offset: i64,
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    /// `dirty / (clean + dirty)`.
    pub dirty_ratio: f64,
    /// `max.compaction.lag.ms` passed for the oldest dirty record, or a tombstone delete horizon
    /// passed: clean whatever the ratio.
    pub must_clean: bool,
}

impl Cleanable {
    /// Whether the cleaner should pick this log.
    pub fn should_clean(&self, min_ratio: f64) -> bool {
        self.must_clean || (self.dirty_bytes > 0 && self.dirty_ratio > min_ratio)
    }
}

/// The key-hash -> latest offset map (Kafka's `SkimpyOffsetMap`).
struct OffsetMap {
    map: HashMap<u128, i64>,
    capacity: usize,
}

fn key_hash(key: &[u8]) -> u128 {
    // Two SipHash passes with different domain bytes give 128 bits; DefaultHasher::new() is
    // fixed-keyed, and the map lives for one cleaning only.
    let mut a = DefaultHasher::new();
    0u8.hash(&mut a);
    key.hash(&mut a);
    let mut b = DefaultHasher::new();
    1u8.hash(&mut b);
    key.hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

impl OffsetMap {
    fn latest(&self, key: &[u8]) -> Option<i64> {
        self.map.get(&key_hash(key)).copied()
    }
}

/// Offset map entries one cleaner thread may use.
pub fn offset_map_capacity(config: &CleanerConfig) -> usize {
    let per_thread = config.dedupe_buffer_size / config.threads.max(1) as u64;
    ((per_thread / OFFSET_MAP_ENTRY_BYTES) as f64 * OFFSET_MAP_LOAD_FACTOR) as usize
}

/// One segment as the cleaner sees it.
struct SegmentSnapshot {
    base: i64,
    /// The next segment's base offset (the active segment has none and is never cleaned).
    next_base: Option<i64>,
    view: SegmentView,
    size: u64,
    largest_timestamp: i64,
}

struct Snapshot {
    config: LogConfig,
    dir: std::path::PathBuf,
    log_start_offset: i64,
    segments: Vec<SegmentSnapshot>,
    first_dirty: i64,
    first_uncleanable: i64,
    tombstone_horizon: Option<i64>,
    /// Aborted transactions by producer id (each from its first offset to its marker's).
    aborted: HashMap<i64, Vec<AbortedTxn>>,
}

impl Snapshot {
    /// Whether `batch` belongs to an aborted transaction (its records are never kept, and never
    /// shadow an older committed value of their key).
    fn is_aborted(&self, batch: &RecordBatch) -> bool {
        batch.is_transactional()
            && !batch.is_control()
            && self.aborted.get(&batch.producer_id()).is_some_and(|ranges| {
                ranges.iter().any(|t| t.first_offset <= batch.base_offset() && batch.base_offset() <= t.last_offset)
            })
    }
}

fn corrupt(path: &Path, position: u64, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt { path: path.to_path_buf(), position, reason: reason.into() }
}

/// Snapshots the log for one cleaning (step 1 of the module docs); `None` unless compacted.
fn snapshot(log: &UnifiedLog, now: i64) -> Result<Option<Snapshot>> {
    let Some(view) = log.cleaner_view()? else { return Ok(None) };
    let bases: Vec<i64> = view.segments.iter().map(|s| s.base).collect();
    let segments: Vec<SegmentSnapshot> = view
        .segments
        .into_iter()
        .enumerate()
        .map(|(i, s)| SegmentSnapshot {
            base: s.base,
            next_base: bases.get(i + 1).copied(),
            view: s.view,
            size: s.size,
            largest_timestamp: s.largest_timestamp,
        })
        .collect();
    let active_base = bases.last().copied().unwrap_or(view.log_end_offset);
    let first_dirty = view.cleaner_checkpoint.unwrap_or(view.log_start_offset).max(view.log_start_offset);
    // Open transactions are not cleaned: whether their records stay is not decided yet.
    let mut first_uncleanable = active_base.min(view.last_stable_offset);
    if view.config.min_compaction_lag_ms > 0 {
        let horizon = now.saturating_sub(view.config.min_compaction_lag_ms);
        if let Some(young) = segments
            .iter()
            .filter(|s| s.next_base.is_some_and(|nb| nb > first_dirty))
            .find(|s| s.largest_timestamp > horizon)
        {
            first_uncleanable = first_uncleanable.min(young.base);
        }
    }
    Ok(Some(Snapshot {
        config: view.config,
        dir: view.dir,
        log_start_offset: view.log_start_offset,
        segments,
        first_dirty,
        first_uncleanable: first_uncleanable.max(view.log_start_offset),
        tombstone_horizon: view.tombstone_horizon,
        aborted: view.aborted.into_iter().fold(HashMap::new(), |mut m, t| {
            m.entry(t.producer_id).or_insert_with(Vec::new).push(t);
            m
        }),
    }))
}

/// How dirty `log` is at `now`; `None` unless it is compacted.
pub(crate) fn cleanable(log: &UnifiedLog, now: i64) -> Result<Option<Cleanable>> {
    let Some(snap) = snapshot(log, now)? else { return Ok(None) };
    Ok(Some(cleanable_of(&snap, now)))
}

/// Cleans `log` once if it is compacted and has anything cleanable (see the module docs),
/// stopping at `crash` to simulate a crash (tests).
pub(crate) fn clean(
    log: &UnifiedLog,
    map_capacity: usize,
    now: i64,
    crash: Option<CleanCrashPoint>,
) -> Result<Option<CleanerStats>> {
    let Some(snap) = snapshot(log, now)? else { return Ok(None) };
    let cleanable = cleanable_of(&snap, now);
    let tp = log.topic_partition().clone();
    // Offset map of the dirty section.
    let mut map = OffsetMap { map: HashMap::new(), capacity: map_capacity };
    let mut stats = CleanerStats { first_dirty_offset: snap.first_dirty, ..CleanerStats::default() };
    let end_offset = if snap.first_dirty < snap.first_uncleanable {
        build_offset_map(&snap, &mut map, &mut stats)?
    } else {
        snap.first_dirty
    };
    stats.end_offset = end_offset;
    let candidates: Vec<&SegmentSnapshot> =
        snap.segments.iter().filter(|s| s.base < end_offset && s.next_base.is_some()).collect();
    if candidates.is_empty() {
        if cleanable.must_clean {
            log.clear_tombstone_horizon();
        }
        return Ok(None);
    }
    let mut producer_last_batch: Option<HashMap<i64, i64>> = None;
    let mut min_horizon: Option<i64> = None;
    for group in group_segments(&candidates, &snap.config) {
        stats.segments_before += group.len();
        stats.bytes_before += group.iter().map(|s| s.size).sum::<u64>();
        let outcome =
            clean_group(log, &snap, &group, &map, now, &mut stats, &mut producer_last_batch, &mut min_horizon, crash)?;
        match outcome {
            GroupOutcome::Swapped(size) | GroupOutcome::Unchanged(size) => {
                stats.segments_after += 1;
                stats.bytes_after += size;
            }
            GroupOutcome::Abandoned => {
                tracing::info!(partition = %tp.topic, index = tp.partition, "segments changed while cleaning, abandoning this cleaning");
                return Ok(None);
            }
        }
    }
    log.commit_cleaning(end_offset, min_horizon);
    tracing::info!(
        partition = %tp.topic,
        index = tp.partition,
        first_dirty_offset = stats.first_dirty_offset,
        end_offset,
        segments_before = stats.segments_before,
        segments_after = stats.segments_after,
        bytes_before = stats.bytes_before,
        bytes_after = stats.bytes_after,
        records_removed = stats.records_removed,
        tombstones_removed = stats.tombstones_removed,
        "cleaned log"
    );
    Ok(Some(stats))
}

#[allow(clippy::too_many_arguments)]
fn clean_group(
    log: &UnifiedLog,
    snap: &Snapshot,
    group: &[&SegmentSnapshot],
    map: &OffsetMap,
    now: i64,
    stats: &mut CleanerStats,
    producer_last_batch: &mut Option<HashMap<i64, i64>>,
    min_horizon: &mut Option<i64>,
    crash: Option<CleanCrashPoint>,
) -> Result<GroupOutcome> {
    let dir = &snap.dir;
    let group_base = group[0].base;
    let group_end = group.last().and_then(|s| s.next_base).unwrap_or(i64::MAX);
    let mut out = LogSegment::create_with_suffix(dir, group_base, &snap.config, now, 0, CLEANED_SUFFIX)
        .map_err(|e| log.fail(io_err(dir, e)))?;
    let mut changed = group.len() > 1;
    let result = (|| -> Result<()> {
        for seg in group {
            let mut scanner = BatchScanner::new(&seg.view.file, seg.view.end, 0);
            loop {
                let batch = match scanner.next_batch().map_err(|e| io_err(&seg.view.path, e))? {
                    Scanned::End => break,
                    Scanned::Invalid { position, reason } => return Err(corrupt(&seg.view.path, position, reason)),
                    Scanned::Batch { batch, .. } => batch,
                };
                let (filtered, horizon) = if snap.is_aborted(&batch) {
                    stats.records_removed += batch.records_count().max(0) as u64;
                    (Filtered::Empty, None)
                } else {
                    filter_batch(&batch, map, snap.first_dirty, now, snap.config.delete_retention_ms, stats)
                        .map_err(|e| corrupt(&seg.view.path, 0, e.to_string()))?
                };
                if let Some(h) = horizon {
                    *min_horizon = Some(min_horizon.map_or(h, |m: i64| m.min(h)));
                }
                let bytes = match filtered {
                    Filtered::Keep => Some(batch.as_bytes().clone()),
                    Filtered::Rewrite(b) => {
                        changed = true;
                        Some(b)
                    }
                    Filtered::Empty => {
                        changed = true;
                        let last = producer_last_batch
                            .get_or_insert_with(|| producer_last_batches(log, &snap.segments))
                            .get(&batch.producer_id())
                            .copied();
                        if batch.producer_id() >= 0 && last == Some(batch.base_offset()) {
                            Some(empty_batch(&batch).map_err(|e| corrupt(&seg.view.path, 0, e.to_string()))?)
                        } else {
                            None
                        }
                    }
                };
                let Some(bytes) = bytes else { continue };
                let kept = RecordBatch::new(bytes.clone()).map_err(|e| corrupt(&seg.view.path, 0, e.to_string()))?;
                let pos = out.size();
                out.write(&mut [IoSlice::new(&bytes)]).map_err(|e| io_err(out.log_path(), e))?;
                out.track_batch(
                    pos,
                    bytes.len() as u64,
                    kept.last_offset(),
                    kept.max_timestamp(),
                    snap.config.index_interval_bytes,
                );
            }
        }
        Ok(())
    })();
    let remove_out = |out: &LogSegment| {
        for p in out.paths() {
            let _ = std::fs::remove_file(p);
        }
    };
    if let Err(e) = result {
        remove_out(&out);
        return Err(log.fail(e));
    }
    if !changed {
        remove_out(&out);
        return Ok(GroupOutcome::Unchanged(group[0].size));
    }
    // 1. Write and fsync the cleaned files and the group end sidecar.
    let group_end_path = layout::group_end_file(dir, group_base);
    let group_end_cleaned = layout::with_suffix(&group_end_path, CLEANED_SUFFIX);
    let written = (|| -> std::io::Result<()> {
        out.close_indexes(true)?;
        for (file, _) in out.files() {
            crate::io::sync_data(&file)?;
        }
        crate::checkpoint::write_atomically(&group_end_cleaned, group_end.to_string().as_bytes())
    })();
    if let Err(e) = written {
        remove_out(&out);
        return Err(log.fail(io_err(dir, e)));
    }
    if crash == Some(CleanCrashPoint::AfterCleanedWritten) {
        return Err(simulated_crash(dir));
    }
    // 2. Decide the swap: `.cleaned` -> `.swap`, the log file last.
    let group_end_swap = layout::with_suffix(&group_end_path, SWAP_SUFFIX);
    let renamed = std::fs::rename(&group_end_cleaned, &group_end_swap)
        .and_then(|_| out.rename_with_suffix(dir, SWAP_SUFFIX))
        .and_then(|_| fsync_dir(dir));
    if let Err(e) = renamed {
        return Err(log.fail(io_err(dir, e)));
    }
    if crash == Some(CleanCrashPoint::AfterSwapRenamed) {
        return Err(simulated_crash(dir));
    }
    // 3. Under the lock: replace the old segments.
    let replaced: Vec<(i64, u64)> = group.iter().map(|g| (g.base, g.size)).collect();
    log.replace_with_cleaned(dir, &replaced, group_end, out, &group_end_swap, crash, now)
}

/// The base offset of each producer's last batch in the whole log (header reads only).
fn producer_last_batches(log: &UnifiedLog, segments: &[SegmentSnapshot]) -> HashMap<i64, i64> {
    let mut last = HashMap::new();
    // Include the active segment as it is now: a later batch there supersedes.
    let views: Vec<SegmentView> = log.segment_views();
    let views = if views.is_empty() { segments.iter().map(|s| s.view.clone()).collect() } else { views };
    for view in views {
        let mut pos = 0;
        while pos < view.end {
            let Ok(buf) = view.header_at(pos) else { break };
            let h = buf.header();
            if h.producer_id() >= 0 {
                last.insert(h.producer_id(), h.base_offset());
            }
            pos += h.size_in_bytes();
        }
    }
    last
}

/// How one group's cleaning ended.
pub(crate) enum GroupOutcome {
    /// The group was replaced by one segment of this size.
    Swapped(u64),
    /// Nothing to remove: the group (a single segment) was left as it was.
    Unchanged(u64),
    /// The log changed underneath (retention, DeleteRecords, deletion): nothing was replaced.
    Abandoned,
}

pub(crate) fn simulated_crash(dir: &Path) -> StorageError {
    io_err(dir, std::io::Error::other("simulated crash"))
}

fn cleanable_of(snap: &Snapshot, now: i64) -> Cleanable {
    let mut clean_bytes = 0;
    let mut dirty_bytes = 0;
    let mut oldest_dirty_first_batch_ts = None;
    for s in &snap.segments {
        let Some(next) = s.next_base else { continue };
        if next <= snap.log_start_offset {
            continue;
        }
        if next <= snap.first_dirty {
            clean_bytes += s.size;
        } else if s.base < snap.first_uncleanable {
            dirty_bytes += s.size;
            if oldest_dirty_first_batch_ts.is_none() && s.size > 0 {
                oldest_dirty_first_batch_ts = s.view.header_at(0).ok().map(|h| h.header().max_timestamp());
            }
        }
    }
    let total = clean_bytes + dirty_bytes;
    let dirty_ratio = if total == 0 { 0.0 } else { dirty_bytes as f64 / total as f64 };
    let lag_passed = snap.config.max_compaction_lag_ms < i64::MAX
        && dirty_bytes > 0
        && oldest_dirty_first_batch_ts
            .is_some_and(|ts| ts >= 0 && now.saturating_sub(ts) > snap.config.max_compaction_lag_ms);
    let horizon_passed = snap.tombstone_horizon.is_some_and(|h| now >= h);
    Cleanable {
        first_dirty_offset: snap.first_dirty,
        first_uncleanable_offset: snap.first_uncleanable,
        clean_bytes,
        dirty_bytes,
        dirty_ratio,
        must_clean: lag_passed || horizon_passed,
    }
}

/// Scans the dirty section into the offset map; returns the offset after the last batch mapped.
fn build_offset_map(snap: &Snapshot, map: &mut OffsetMap, stats: &mut CleanerStats) -> Result<i64> {
    let mut end = snap.first_dirty;
    for s in &snap.segments {
        let Some(next) = s.next_base else { break };
        if next <= snap.first_dirty {
            continue;
        }
        if s.base >= snap.first_uncleanable {
            break;
        }
        let mut scanner = BatchScanner::new(&s.view.file, s.view.end, 0);
        loop {
            let batch = match scanner.next_batch().map_err(|e| io_err(&s.view.path, e))? {
                Scanned::End => break,
                Scanned::Invalid { position, reason } => return Err(corrupt(&s.view.path, position, reason)),
                Scanned::Batch { batch, .. } => batch,
            };
            if batch.last_offset() < snap.first_dirty {
                continue;
            }
            if batch.next_offset() > snap.first_uncleanable {
                return Ok(end);
            }
            if !batch.is_control() && !snap.is_aborted(&batch) {
                if map.map.len() + batch.records_count().max(0) as usize > map.capacity {
                    // Full: the map covers everything before this batch.
                    return Ok(end);
                }
                let records =
                    batch.records(DECOMPRESSED_BATCH_BYTES_MAX).map_err(|e| corrupt(&s.view.path, 0, e.to_string()))?;
                for r in &records {
                    stats.records_read += 1;
                    if let Some(k) = &r.key {
                        map.map.insert(key_hash(k), batch.base_offset() + i64::from(r.offset_delta));
                    }
                }
            }
            end = batch.next_offset();
        }
        end = end.max(next.min(snap.first_uncleanable));
    }
    Ok(end)
}

/// Consecutive segments whose total size fits `segment.bytes` and whose offsets fit one
/// segment's int range (Kafka's `groupSegmentsBySize`).
fn group_segments<'a>(segments: &[&'a SegmentSnapshot], config: &LogConfig) -> Vec<Vec<&'a SegmentSnapshot>> {
    let max_size = config.segment_bytes.min(i32::MAX as u64);
    let mut groups: Vec<Vec<&SegmentSnapshot>> = Vec::new();
    let mut current: Vec<&SegmentSnapshot> = Vec::new();
    let mut size = 0u64;
    for s in segments {
        let fits = current.first().is_some_and(|first| {
            size + s.size <= max_size
                && s.next_base.unwrap_or(i64::MAX).saturating_sub(1).saturating_sub(first.base) <= i64::from(i32::MAX)
        });
        if !current.is_empty() && !fits {
            groups.push(std::mem::take(&mut current));
            size = 0;
        }
        size += s.size;
        current.push(s);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

enum Filtered {
    /// Write the original bytes.
    Keep,
    /// Write these bytes instead.
    Rewrite(Bytes),
    /// Every record goes.
    Empty,
}

/// Kafka's `shouldRetainRecord` over one batch. Also returns the delete horizon of the kept
/// batch when it still holds tombstones (the cleaner must run again once it passes).
/// `first_dirty` is the cleaner checkpoint this cleaning started from: only tombstones below it
/// may be dropped (see below).
fn filter_batch(
    batch: &RecordBatch,
    map: &OffsetMap,
    first_dirty: i64,
    now: i64,
    delete_retention_ms: i64,
    stats: &mut CleanerStats,
) -> std::result::Result<(Filtered, Option<i64>), BatchError> {
    if batch.is_control() {
        return Ok((Filtered::Keep, None));
    }
    let records = batch.records(DECOMPRESSED_BATCH_BYTES_MAX)?;
    let horizon = batch.has_delete_horizon().then(|| batch.base_timestamp());
    let mut retained = Vec::with_capacity(records.len());
    let mut removed = 0u64;
    let mut tombstones = false;
    for r in records {
        let offset = batch.base_offset() + i64::from(r.offset_delta);
        let keep = match &r.key {
            // Keyless records cannot be compacted; Kafka's cleaner drops them.
            None => false,
            Some(k) => {
                let latest = map.latest(k).is_none_or(|l| offset >= l);
                // A tombstone may go only once its horizon passed and nothing older of its key
                // can survive it. Below the previous checkpoint every key is already unique (an
                // earlier cleaning deduplicated that part), so no older record is left there. At
                // or above it, the offset map may cover only a prefix of the dirty range (its
                // capacity is bounded), so older records of the key may still be uncleaned below
                // the tombstone, and dropping it would bring them back.
                let tombstone_alive = r.value.is_some() || offset >= first_dirty || horizon.is_none_or(|h| now < h);
                if latest && !tombstone_alive {
                    stats.tombstones_removed += 1;
                }
                latest && tombstone_alive
            }
        };
        if keep {
            tombstones |= r.value.is_none();
            retained.push(r);
        } else {
            removed += 1;
        }
    }
    stats.records_removed += removed;
    let set_horizon = tombstones && horizon.is_none();
    let new_horizon = if set_horizon { Some(now.saturating_add(delete_retention_ms)) } else { horizon };
    let pending = if tombstones { new_horizon } else { None };
    if removed == 0 && !set_horizon {
        return Ok((Filtered::Keep, pending));
    }
    if retained.is_empty() {
        return Ok((Filtered::Empty, None));
    }
    Ok((Filtered::Rewrite(rebuild(batch, retained, new_horizon)?), pending))
}

/// A batch with `records` (a subset of `batch`'s), keeping its codec, offsets, timestamps,
/// producer fields and leader epoch; with a delete horizon the base timestamp becomes it.
fn rebuild(batch: &RecordBatch, records: Vec<Record>, horizon: Option<i64>) -> std::result::Result<Bytes, BatchError> {
    let old_base_ts = batch.base_timestamp();
    let base_timestamp = horizon.unwrap_or(old_base_ts);
    let records = records
        .into_iter()
        .map(|mut r| {
            let ts = old_base_ts.wrapping_add(r.timestamp_delta);
            r.timestamp_delta = ts.wrapping_sub(base_timestamp);
            r
        })
        .collect();
    let log_append_time = batch.timestamp_type() == TimestampType::LogAppendTime;
    let builder = BatchBuilder {
        base_timestamp,
        max_timestamp: if log_append_time || horizon.is_some() { Some(batch.max_timestamp()) } else { None },
        ..BatchBuilder::from_header(batch, records)?
    };
    let bytes = builder.build()?;
    if horizon.is_some() {
        patch_header(bytes, ATTR_DELETE_HORIZON, None)
    } else {
        Ok(bytes)
    }
}

/// An empty batch standing in for a producer's last batch: same header fields and last offset,
/// no records (Kafka keeps it so the producer's epoch and sequence survive compaction).
fn empty_batch(batch: &RecordBatch) -> std::result::Result<Bytes, BatchError> {
    let builder = BatchBuilder {
        compression: sluice_protocol::compression::Compression::None,
        max_timestamp: Some(batch.max_timestamp()),
        ..BatchBuilder::from_header(batch, Vec::new())?
    };
    let extra = if batch.has_delete_horizon() { ATTR_DELETE_HORIZON } else { 0 };
    patch_header(builder.build()?, extra, Some(batch.last_offset_delta()))
}

/// ORs `attributes` into the header, optionally sets the last offset delta, and recomputes the
/// CRC (both fields lie inside the CRC's range).
fn patch_header(
    bytes: Bytes,
    attributes: i16,
    last_offset_delta: Option<i32>,
) -> std::result::Result<Bytes, BatchError> {
    Ok(RecordBatch::new(bytes)?.with_header_fields(attributes, last_offset_delta).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_header_sets_horizon_and_keeps_crc_valid() {
        let records =
            vec![Record { key: Some(Bytes::from_static(b"k")), value: None, timestamp_delta: 5, ..Record::default() }];
        let b = BatchBuilder { base_timestamp: 100, records, ..BatchBuilder::default() };
        let batch = RecordBatch::new(b.build().unwrap()).unwrap();
        let out = rebuild(&batch, batch.records(1 << 20).unwrap(), Some(5000)).unwrap();
        let out = RecordBatch::new(out).unwrap();
        out.validate().unwrap();
        assert!(out.has_delete_horizon());
        assert_eq!(out.base_timestamp(), 5000);
        assert_eq!(out.max_timestamp(), 105);
        let r = out.records(1 << 20).unwrap();
        assert_eq!(out.base_timestamp() + r[0].timestamp_delta, 105);
    }

    #[test]
    fn empty_batch_keeps_last_offset_and_producer() {
        let records = (0..3)
            .map(|i| Record { offset_delta: i, key: Some(Bytes::from_static(b"k")), ..Record::default() })
            .collect();
        let b = BatchBuilder {
            base_offset: 10,
            producer_id: 7,
            producer_epoch: 2,
            base_sequence: 40,
            records,
            ..BatchBuilder::default()
        };
        let batch = RecordBatch::new(b.build().unwrap()).unwrap();
        let e = RecordBatch::new(empty_batch(&batch).unwrap()).unwrap();
        e.validate().unwrap();
        assert_eq!((e.base_offset(), e.last_offset(), e.records_count()), (10, 12, 0));
        assert_eq!((e.producer_id(), e.producer_epoch(), e.base_sequence()), (7, 2, 40));
    }
}
