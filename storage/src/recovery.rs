//! Loading one partition directory at startup (Kafka's `LogLoader`): removes leftovers of
//! interrupted operations, opens segments and their indexes, rebuilds indexes that are missing or
//! inconsistent, and — after an unclean shutdown — recovers every segment from the recovery point
//! on: each batch is validated (CRC, structure, increasing offsets), the first torn or corrupt
//! batch truncates its segment and every later segment is deleted.
//!
//! After a clean shutdown no log is scanned: only the headers after the last offset index entry
//! of the last segment are read to find the log end offset.
//!
//! Runs single-threaded on a directory nobody else has opened yet; the result is handed to a new
//! [`UnifiedLog`], which owns it from then on.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use crate::checkpoint::read_partition_metadata;
use crate::layout::{self, INDEX_SUFFIX, LEFTOVER_SUFFIXES, LOG_SUFFIX, SWAP_SUFFIX, TIME_INDEX_SUFFIX};
use crate::leader_epoch::LeaderEpochCache;
use crate::log::{roll_jitter, LogState, UnifiedLog};
use crate::manager::LogDir;
use crate::segment::{io_err, LogSegment};
use crate::util::now_ms;
use crate::{LoadReport, LogConfig, Result, TopicPartition};

/// What the per-dir checkpoints say about this partition.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckpointHints {
    pub recovery_point: Option<i64>,
    pub log_start_offset: Option<i64>,
    pub high_watermark: Option<i64>,
    /// The cleaner's first dirty offset (`cleaner-offset-checkpoint`).
    pub cleaner_offset: Option<i64>,
}

/// Loads (and if needed recovers) the partition in `dir`. `clean` is whether its log dir had the
/// clean-shutdown marker.
pub(crate) fn load_partition(
    dir: &Path,
    tp: TopicPartition,
    log_dir: Arc<LogDir>,
    config: LogConfig,
    hints: CheckpointHints,
    clean: bool,
    report: &mut LoadReport,
) -> Result<UnifiedLog> {
    let now = now_ms();
    let dir_err = |e| io_err(dir, e);
    remove_leftovers_and_complete_swaps(dir, &tp)?;
    let mut log_bases = BTreeSet::new();
    let mut index_files = Vec::new();
    for entry in fs::read_dir(dir).map_err(dir_err)? {
        let entry = entry.map_err(dir_err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if let Some(base) = layout::parse_segment_file_name(name, LOG_SUFFIX) {
            log_bases.insert(base);
        } else if let Some(base) = layout::parse_segment_file_name(name, INDEX_SUFFIX)
            .or_else(|| layout::parse_segment_file_name(name, TIME_INDEX_SUFFIX))
        {
            index_files.push((base, path));
        }
    }
    for (base, path) in index_files {
        if !log_bases.contains(&base) {
            tracing::info!(file = %path.display(), "deleting index file without a log segment");
            fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        }
    }

    let mut segments = std::collections::BTreeMap::new();
    let mut problems = Vec::new();
    for &base in &log_bases {
        let (seg, problem) = LogSegment::open(dir, base, &config, now).map_err(dir_err)?;
        problems.push(problem);
        segments.insert(base, seg);
    }

    // Which segments to scan: after an unclean shutdown, every segment that may hold data past
    // the recovery point (the one containing it and all later ones); all of them without one.
    let bases: Vec<i64> = segments.keys().copied().collect();
    let mut last_next_offset = None;
    // Base offset of the first segment scanned because it may hold unflushed data.
    let mut rescan_from = None;
    // Files were removed: the directory is fsynced before the log is used.
    let mut removed_files = false;
    let mut i = 0;
    while i < bases.len() {
        let base = bases[i];
        let next_base = bases.get(i + 1).copied();
        let unflushed = !clean && hints.recovery_point.is_none_or(|rp| next_base.is_none_or(|nb| nb > rp));
        let index_problem = problems[i].take();
        if !unflushed && index_problem.is_none() {
            i += 1;
            continue;
        }
        let Some(seg) = segments.get_mut(&base) else { break };
        if unflushed {
            report.segments_recovered += 1;
            rescan_from.get_or_insert(base);
        } else if let Some(reason) = &index_problem {
            tracing::warn!(partition = %tp.topic, index = tp.partition, segment = %seg.log_path().display(), %reason, "rebuilding index");
            report.indexes_rebuilt += 1;
        }
        let path = seg.log_path().to_path_buf();
        let mut outcome = seg.recover(config.index_interval_bytes, next_base).map_err(|e| io_err(&path, e))?;
        // A roll starts the next segment at the log end, so without compaction (which leaves
        // gaps) an unflushed segment ends exactly where the next one begins. One that ends
        // earlier lost its tail in a power loss that kept later segments, whose data then
        // belongs after offsets that no longer exist: they go, as after a torn batch.
        if let Some(nb) = next_base.filter(|nb| unflushed && !config.cleanup_compact && outcome.next_offset != *nb) {
            outcome.reason.get_or_insert_with(|| {
                format!("segment ends at offset {} but the next segment starts at {nb}", outcome.next_offset)
            });
        }
        if next_base.is_none() {
            last_next_offset = Some(outcome.next_offset);
        }
        if let Some(reason) = &outcome.reason {
            // Everything after the first invalid batch is unreliable: cut it and drop later
            // segments, as Kafka does.
            let mut deleted_bytes = 0u64;
            let later: Vec<i64> = bases[i + 1..].to_vec();
            for b in &later {
                if let Some(s) = segments.remove(b) {
                    deleted_bytes += s.size();
                    for p in s.paths() {
                        fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
                    }
                    removed_files = true;
                }
            }
            report.bytes_truncated += outcome.truncated_bytes + deleted_bytes;
            tracing::warn!(
                partition = %tp.topic,
                index = tp.partition,
                segment = %path.display(),
                position = outcome.position,
                truncated_bytes = outcome.truncated_bytes,
                segments_deleted = later.len(),
                deleted_bytes,
                next_offset = outcome.next_offset,
                %reason,
                "truncated invalid log tail during recovery"
            );
            last_next_offset = Some(outcome.next_offset);
            break;
        }
        i += 1;
    }

    if segments.is_empty() {
        let base = hints.log_start_offset.unwrap_or(0).max(0);
        let seg = LogSegment::create(dir, base, &config, now, roll_jitter(&config)).map_err(dir_err)?;
        segments.insert(base, seg);
    }

    // The log end offset: from the scan if the last segment was scanned, otherwise from the
    // headers after its last index entry (a clean shutdown leaves a consistent tail).
    let log_end_offset = match last_next_offset {
        Some(next) => next,
        None => {
            let Some((_, last)) = segments.iter_mut().next_back() else { return Err(no_segments()) };
            match last.read_next_offset() {
                Ok(next) => next,
                Err(crate::StorageError::Corrupt { reason, position, .. }) => {
                    let path = last.log_path().to_path_buf();
                    report.segments_recovered += 1;
                    rescan_from.get_or_insert(last.base_offset());
                    let outcome = last.recover(config.index_interval_bytes, None).map_err(|e| io_err(&path, e))?;
                    report.bytes_truncated += outcome.truncated_bytes;
                    tracing::warn!(
                        partition = %tp.topic,
                        index = tp.partition,
                        segment = %path.display(),
                        position,
                        %reason,
                        truncated_bytes = outcome.truncated_bytes,
                        "inconsistent log tail after clean shutdown, recovered segment"
                    );
                    outcome.next_offset
                }
                Err(e) => return Err(e),
            }
        }
    };
    if let Some((_, last)) = segments.iter_mut().next_back() {
        last.load_rolling_timestamp()?;
        last.set_roll_jitter_ms(roll_jitter(&config));
    }

    let first_base = segments.keys().next().copied().unwrap_or(0);
    let log_start_offset = hints.log_start_offset.unwrap_or(first_base).max(first_base).min(log_end_offset);
    let default_rp = if clean { log_end_offset } else { log_start_offset };
    let recovery_point = hints.recovery_point.unwrap_or(default_rp).clamp(log_start_offset, log_end_offset);
    let high_watermark = hints.high_watermark.unwrap_or(log_start_offset).clamp(log_start_offset, log_end_offset);
    let topic_id = read_partition_metadata(&dir.join(layout::PARTITION_METADATA_FILE)).map_err(dir_err)?;

    tracing::debug!(
        partition = %tp.topic,
        index = tp.partition,
        segments = segments.len(),
        log_start_offset,
        log_end_offset,
        recovery_point,
        "loaded log"
    );
    report.partitions_loaded += 1;
    report.recovered_from.extend(rescan_from);
    if removed_files {
        // Segments deleted after a cut must stay deleted: brought back by a crash, they would
        // sit after data appended in their place.
        crate::io::sync_dir(dir).map_err(dir_err)?;
    }
    let mut txn_index = crate::txn_index::TxnIndex::load(dir, first_base, log_end_offset, config.remote_storage_enable)
        .map_err(|e| io_err(dir, e))?;
    if let Some(from) = rescan_from {
        txn_index.mark_unsynced_from(from);
    }
    let replay_from = rescan_from.unwrap_or(log_end_offset).min(log_end_offset);
    let producer_state = load_producer_state(dir, &segments, log_end_offset, replay_from, &mut txn_index)?;
    let (mut leader_epochs, mut leader_epochs_dirty) = match LeaderEpochCache::read(dir).map_err(dir_err)? {
        Some(cache) => (cache, false),
        None => (rebuild_leader_epochs(&segments, log_end_offset)?, true),
    };
    // The file may be ahead of a log cut short by a crash, and behind the log start offset.
    leader_epochs_dirty |= leader_epochs.truncate_from_end(log_end_offset);
    leader_epochs_dirty |= leader_epochs.truncate_from_start(log_start_offset);
    let state = LogState {
        dir: dir.to_path_buf(),
        config,
        segments,
        log_start_offset,
        log_end_offset,
        high_watermark,
        recovery_point,
        first_unflushed_append_ms: None,
        // Loading may have created files (rebuilt indexes, `.txnindex` files of replayed
        // aborts): the first flush fsyncs the directory too.
        dir_needs_sync: true,
        roll_flush_offset: None,
        cleaner_checkpoint: hints.cleaner_offset.map(|c| c.clamp(log_start_offset, log_end_offset)),
        tombstone_horizon: Some(0),
        producer_state,
        highest_remote_offset: -1,
        txn_index,
        leader_epochs,
        leader_epochs_dirty,
    };
    Ok(UnifiedLog::from_state(tp, topic_id, log_dir, state))
}

/// The leader-epoch cache from the log itself, when its checkpoint is missing or unreadable: the
/// partition leader epoch stamped in each batch header, an entry wherever it grows.
fn rebuild_leader_epochs(
    segments: &std::collections::BTreeMap<i64, LogSegment>,
    log_end_offset: i64,
) -> Result<LeaderEpochCache> {
    use crate::segment::{BatchScanner, Scanned};
    let mut cache = LeaderEpochCache::default();
    for seg in segments.values() {
        let [(file, path), _, _] = seg.files();
        let mut scanner = BatchScanner::new(&file, seg.size(), 0);
        while let Scanned::Batch { batch, .. } = scanner.next_batch().map_err(|e| io_err(&path, e))? {
            if batch.base_offset() >= log_end_offset {
                break;
            }
            let epoch = batch.partition_leader_epoch();
            if cache.latest().is_none_or(|l| epoch > l.epoch) {
                cache.assign(epoch, batch.base_offset());
            }
        }
    }
    Ok(cache)
}

/// Rebuilds producer state (Kafka's `rebuildProducerState`): the newest valid snapshot at or
/// below `replay_from`, then every batch from the snapshot's offset to the log end. Without a
/// snapshot the whole log is replayed. State from a snapshot survives retention having deleted
/// the segments it was built from.
///
/// The replay also re-indexes the aborts it meets, which is why recovery passes the start of
/// its rescan as `replay_from`: the `.txnindex` entries of segments that were never flushed may
/// be lost even when a later snapshot survived, and replaying from that snapshot would skip
/// them.
fn load_producer_state(
    dir: &Path,
    segments: &std::collections::BTreeMap<i64, LogSegment>,
    log_end_offset: i64,
    replay_from: i64,
    txn_index: &mut crate::txn_index::TxnIndex,
) -> Result<crate::producer_state::ProducerStateManager> {
    use crate::segment::{BatchScanner, Scanned};
    let snapshot =
        crate::producer_state::load_latest_snapshot(dir, log_end_offset, replay_from).map_err(|e| io_err(dir, e))?;
    // A snapshot below the first segment cannot be brought up to date: the batches between it
    // and the first segment are deleted, and producers whose latest batches were among them
    // would come back with older sequences. The remaining log alone is replayed instead.
    let first_segment_base = segments.keys().next().copied().unwrap_or(log_end_offset);
    let snapshot = snapshot.filter(|(offset, _)| *offset >= first_segment_base);
    let (start, mut state) = match snapshot {
        Some((offset, mut state)) => {
            state.truncate_from(offset);
            (offset, state)
        }
        None => (i64::MIN, Default::default()),
    };
    let from_base = segments.range(..=start).next_back().map(|(b, _)| *b).unwrap_or(i64::MIN);
    for (&base, seg) in segments.range(from_base..) {
        let [(file, path), _, _] = seg.files();
        let pos = if start > base { seg.offset_index.lookup(start).1 } else { 0 };
        let mut scanner = BatchScanner::new(&file, seg.size(), pos);
        while let Scanned::Batch { batch, .. } = scanner.next_batch().map_err(|e| io_err(&path, e))? {
            if batch.last_offset() >= start && batch.base_offset() < log_end_offset {
                // Aborts in the replayed tail whose index entries a crash lost are re-indexed.
                if let Some(aborted) = state.replay(&batch) {
                    txn_index.append(dir, base, aborted).map_err(|e| io_err(dir, e))?;
                }
            }
        }
    }
    Ok(state)
}

/// First step of loading (Kafka's `LogLoader.removeTempFilesAndCollectSwapFiles` and
/// `completeSwapOperations`): removes `.deleted`, `.cleaned` and `.tmp` leftovers, then completes
/// every decided swap. A `<base>.log.swap` exists only once its cleaned segment (and its
/// `.groupend`) were fully written and fsynced, so the swap goes ahead: every old segment file
/// with a base offset in `[base, group end)` is removed, the swap's indexes are dropped (rebuilt
/// from the log when the segment is opened) and the log is renamed to its final name. Index or
/// `.groupend` swap files without a log swap belong to a swap that was never decided and go.
fn remove_leftovers_and_complete_swaps(dir: &Path, tp: &TopicPartition) -> Result<()> {
    let dir_err = |e| io_err(dir, e);
    let mut swaps = Vec::new();
    let mut other_swaps = Vec::new();
    let mut segment_files = Vec::new();
    let mut removed = false;
    for entry in fs::read_dir(dir).map_err(dir_err)? {
        let entry = entry.map_err(dir_err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if LEFTOVER_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            tracing::info!(file = %path.display(), "deleting leftover file of an interrupted operation");
            fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            removed = true;
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX) {
            match layout::parse_segment_file_name(stem, LOG_SUFFIX) {
                Some(base) => swaps.push((base, path)),
                None => other_swaps.push((stem.to_string(), path)),
            }
        } else if let Some(base) = [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX]
            .iter()
            .find_map(|suffix| layout::parse_segment_file_name(name, suffix))
        {
            segment_files.push((base, path));
        }
    }
    swaps.sort();
    for (base, swap_path) in &swaps {
        let group_end_path = layout::with_suffix(&layout::group_end_file(dir, *base), SWAP_SUFFIX);
        let group_end = match fs::read_to_string(&group_end_path) {
            Ok(text) => text.trim().parse::<i64>().ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&group_end_path, e)),
        };
        // Without the sidecar (Sluice always writes it before the log swap) fall back to Kafka's
        // rule, the swap's own next offset; a swap without a single valid batch is junk.
        let group_end = match group_end {
            Some(end) => end,
            None => match swap_next_offset(swap_path, *base)? {
                Some(end) => end,
                None => {
                    tracing::warn!(file = %swap_path.display(), "deleting swap file without valid batches");
                    fs::remove_file(swap_path).map_err(|e| io_err(swap_path, e))?;
                    continue;
                }
            },
        };
        for (b, path) in &segment_files {
            if *b >= *base && *b < group_end && path.exists() {
                tracing::info!(file = %path.display(), "deleting segment file replaced by a cleaned segment");
                fs::remove_file(path).map_err(|e| io_err(path, e))?;
            }
        }
        for index in [layout::index_file(dir, *base), layout::time_index_file(dir, *base)] {
            let swap_index = layout::with_suffix(&index, SWAP_SUFFIX);
            if swap_index.exists() {
                fs::remove_file(&swap_index).map_err(|e| io_err(&swap_index, e))?;
            }
        }
        let final_path = layout::log_file(dir, *base);
        fs::rename(swap_path, &final_path).map_err(|e| io_err(swap_path, e))?;
        if group_end_path.exists() {
            fs::remove_file(&group_end_path).map_err(|e| io_err(&group_end_path, e))?;
        }
        tracing::info!(partition = %tp.topic, index = tp.partition, base_offset = base, group_end, "completed interrupted segment swap");
    }
    for (stem, path) in other_swaps {
        let base = layout::parse_segment_file_name(&stem, INDEX_SUFFIX)
            .or_else(|| layout::parse_segment_file_name(&stem, TIME_INDEX_SUFFIX))
            .or_else(|| layout::parse_segment_file_name(&stem, layout::GROUP_END_SUFFIX));
        if base.is_some_and(|b| swaps.iter().any(|(s, _)| *s == b)) {
            continue; // already handled above
        }
        if path.exists() {
            tracing::info!(file = %path.display(), "deleting swap file of an undecided swap");
            fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        }
    }
    if removed || !swaps.is_empty() {
        crate::io::sync_dir(dir).map_err(dir_err)?;
    }
    Ok(())
}

/// The offset after the last whole valid batch of a swap log file, `None` without one.
fn swap_next_offset(path: &Path, base: i64) -> Result<Option<i64>> {
    let file = fs::File::open(path).map_err(|e| io_err(path, e))?;
    let len = file.metadata().map_err(|e| io_err(path, e))?.len();
    let mut scanner = crate::segment::BatchScanner::new(&file, len, 0);
    let mut next = None;
    while let crate::segment::Scanned::Batch { batch, .. } = scanner.next_batch().map_err(|e| io_err(path, e))? {
        if batch.validate().is_err() || batch.base_offset() < base {
            break;
        }
        next = Some(batch.next_offset());
    }
    Ok(next)
}

/// Segments are never empty there (one is created first); an error rather than a panic.
fn no_segments() -> crate::StorageError {
    crate::StorageError::Corrupt { path: Default::default(), position: 0, reason: "no segments".into() }
}
