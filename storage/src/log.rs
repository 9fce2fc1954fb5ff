//! One partition's log ([`UnifiedLog`], Kafka's `UnifiedLog` with its `LocalLog`; Kafka's
//! `Partition`, the replica around a log, is what replication will add): the ordered segments,
//! the log start offset, log end offset (LEO), high watermark (HW) and recovery point, appends
//! with segment rolling, reads, timestamp lookups and flushing.
//!
//! Flushing: a roll hands the closed segment's fsync to the log dir's flusher (see
//! [`crate::LogManager::flush_rolled_segments`]); `flush.messages` makes appends wait for an
//! fsync, one at a time per partition and shared by every append it covers (group commit).
//!
//! Invariants (all under the partition's mutex): `log_start_offset <= high_watermark <=
//! log_end_offset`; `recovery_point <= log_end_offset` and every byte below it is fsynced; the
//! last segment is the active one and the only one appended to; segment base offsets increase.
//!
//! Thread-safety contract: appends are serialized by the mutex (they must be: offsets come from
//! the LEO). Reads, timestamp lookups and flushes hold the mutex only to snapshot file handles
//! and sizes ([`SegmentView`]) and do their positional reads / fsyncs after releasing it, so a
//! slow disk read never blocks producers and an fsync never blocks readers. Flushes are
//! serialized by a second mutex, never held together with the first across an fsync. Nothing in here
//! panics while holding the mutex; a poisoned mutex is recovered (state is updated only after
//! the I/O it describes succeeded, or the log dir is offline and the state is never used again).

use std::collections::BTreeMap;
use std::io::IoSlice;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, TryLockError};

use bytes::{Bytes, BytesMut};
use sluice_protocol::batch::RecordBatch;
use sluice_protocol::batch_header::BATCH_HEADER_BYTES as HEADER_SIZE;
use sluice_protocol::types::{Offset, ProducerEpoch, ProducerId};
use tokio::sync::watch;

use crate::checkpoint::fsync_dir;
use crate::cleaner::{self, CleanCrashPoint, Cleanable, GroupOutcome};
use crate::layout::DELETED_SUFFIX;
use crate::leader_epoch::{EpochEntry, LeaderEpochCache, UNDEFINED_EPOCH_OFFSET};
use crate::limits::SEGMENT_BYTES_MAX as MAX_SEGMENT_BYTES;
use crate::manager::LogDir;
use crate::producer_state::{
    self, BatchMetadata, OffsetRange, ProducerEntry, ProducerStateManager, SequenceCheck, SequenceError,
};
use crate::remote::{SegmentFiles, UploadCandidate};
use crate::segment::{io_err, LogSegment, SegmentView};
use crate::txn_index::{AbortedTxn, TxnIndex};
use crate::util::{now_ms, random_u64};
use crate::{
    AppendInfo, CleanerStats, LogConfig, LogOffsets, PartitionDirInfo, ReadResult, Result, RetentionStats,
    StorageError, TimestampOffset, TopicPartition,
};

/// A COMMIT/ABORT control batch (Kafka's `EndTransactionMarker`): one record whose key is
/// `[i16 version 0][i16 type]` (0 abort, 1 commit) and value `[i16 version 0][i32 coordinator epoch]`.
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    commit: bool,
    now: i64,
) -> Result<RecordBatch> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&(commit as i16).to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let builder = sluice_protocol::records::BatchBuilder {
        transactional: true,
        control: true,
        producer_id,
        producer_epoch,
        base_sequence: -1,
        base_timestamp: now,
        records: vec![sluice_protocol::records::Record {
            key: Some(Bytes::from(key)),
            value: Some(Bytes::from(value)),
            ..Default::default()
        }],
        ..Default::default()
    };
    let corrupt = |reason: String| StorageError::Corrupt { path: PathBuf::new(), position: 0, reason };
    let bytes = builder.build().map_err(|e| corrupt(e.to_string()))?;
    RecordBatch::new(bytes).map_err(|e| corrupt(e.to_string()))
}

/// Splits whole batches read from a current replica for its future replica, dropping those
/// wholly below `from` (the future's log end).
pub(crate) fn split_copied_batches(mut bytes: Bytes, from: i64, dir: &Path) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    loop {
        match RecordBatch::split_first(&mut bytes) {
            Ok(Some(b)) => {
                if b.last_offset() >= from {
                    out.push(b);
                }
            }
            Ok(None) => return Ok(out),
            Err(e) => {
                return Err(StorageError::Corrupt {
                    path: dir.to_path_buf(),
                    position: 0,
                    reason: format!("unreadable batch while copying to a future replica: {e}"),
                })
            }
        }
    }
}

/// Mutable log state, guarded by [`UnifiedLog`]'s mutex.
pub(crate) struct LogState {
    pub dir: PathBuf,
    pub config: LogConfig,
    pub segments: BTreeMap<i64, LogSegment>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub recovery_point: i64,
    /// Wall time of the oldest append not yet fsynced (`flush.ms`).
    pub first_unflushed_append_ms: Option<i64>,
    /// A segment file was created since the last flush; the directory entry needs an fsync.
    pub dir_needs_sync: bool,
    /// A roll started a segment at this offset since the partition last asked its log dir to
    /// flush the segments below it (see [`UnifiedLog::flush_to`]).
    pub roll_flush_offset: Option<i64>,
    /// The log cleaner's first dirty offset (`cleaner-offset-checkpoint`), compacted logs only.
    pub cleaner_checkpoint: Option<i64>,
    /// The earliest delete horizon of tombstones the cleaner kept; once it passes, the log is
    /// cleaned whatever its dirty ratio. In memory only: after a restart it starts at 0 so every
    /// compacted log is checked once (the horizons themselves are in the batches).
    pub tombstone_horizon: Option<i64>,
    /// Idempotent producers' last batches (sequence checks and duplicate detection).
    pub producer_state: ProducerStateManager,
    /// Last offset committed to the remote tier (-1 = none or not yet known): with
    /// `remote.storage.enable`, only segments wholly at or below it may be deleted locally.
    pub highest_remote_offset: i64,
    /// Aborted transactions (`.txnindex` files).
    pub txn_index: TxnIndex,
    /// Which leader epoch wrote the log from which offset (`leader-epoch-checkpoint`).
    pub leader_epochs: LeaderEpochCache,
    /// `leader_epochs` differs from its file. Only changes the file may lag behind are left
    /// unwritten — a new leader epoch nothing was written in yet, entries cut at either end
    /// (loading cuts the file the same way) or rebuilt from the log — and the next append or a
    /// clean shutdown writes them; an entry for appended data is written before the data.
    pub leader_epochs_dirty: bool,
}

/// A random `segment.jitter.ms` draw for a new segment.
pub(crate) fn roll_jitter(config: &LogConfig) -> i64 {
    if config.segment_jitter_ms <= 0 {
        0
    } else {
        (random_u64() % config.segment_jitter_ms as u64) as i64
    }
}

impl LogState {
    pub(crate) fn active(&self) -> Option<&LogSegment> {
        self.segments.values().next_back()
    }

    fn active_mut(&mut self) -> Option<&mut LogSegment> {
        self.segments.values_mut().next_back()
    }

    /// Starts a new active segment at `base_offset`, closing the current one (Kafka's `roll`).
    /// `undo` holds the producer entries as they were before the append that rolls, when the
    /// roll comes before its first batch (see below).
    pub(crate) fn roll(
        &mut self,
        tp: &TopicPartition,
        base_offset: i64,
        now: i64,
        undo: &[(i64, Option<ProducerEntry>)],
    ) -> Result<()> {
        // The new segment's files are opened first: running out of descriptors then fails the
        // append before anything changed, and the current segment stays active.
        let seg = LogSegment::create(&self.dir, base_offset, &self.config, now, roll_jitter(&self.config))
            .map_err(|e| io_err(&self.dir, e))?;
        if !self.segments.is_empty() {
            // As Kafka: a producer state snapshot at every roll, so recovery replays only the
            // tail. The append that rolls has already recorded its own batches, which lie at or
            // after `base_offset`: the snapshot must describe the state before them. A snapshot
            // keeps only each producer's last batch, so one naming a batch a power loss then
            // took would make recovery forget the producer's earlier batches too (and a retry
            // of them would be written twice).
            // Markers are undone too: an ABORT that rolled and was then lost must leave its
            // transaction open in the snapshot.
            let mut state = self.producer_state.clone();
            for (pid, entry) in undo.iter().rev() {
                state.restore(*pid, entry.clone());
            }
            state.truncate_from(base_offset);
            producer_state::write_snapshot(&self.dir, base_offset, &state).map_err(|e| io_err(&self.dir, e))?;
        }
        let rolled = if let Some(active) = self.active_mut() {
            let path = active.log_path().to_path_buf();
            // The fsync of the closed segment's files comes later, outside the append lock.
            active.close_indexes(false).map_err(|e| io_err(&path, e))?;
            true
        } else {
            false
        };
        self.segments.insert(base_offset, seg);
        self.dir_needs_sync = true;
        if rolled {
            self.roll_flush_offset = Some(base_offset);
        }
        tracing::debug!(partition = %tp.topic, index = tp.partition, base_offset, "rolled new log segment");
        Ok(())
    }

    fn append(
        &mut self,
        tp: &TopicPartition,
        batches: &[RecordBatch],
        leader_epoch: i32,
        now: i64,
    ) -> Result<AppendInfo> {
        // Reject malformed input before touching the file (not an I/O error: the dir stays online).
        for b in batches {
            if b.size_in_bytes() < HEADER_SIZE || b.last_offset_delta() < 0 {
                return Err(StorageError::Corrupt {
                    path: self.dir.clone(),
                    position: 0,
                    reason: format!("refusing to append a malformed batch of {} bytes", b.size_in_bytes()),
                });
            }
        }
        let first_offset = self.log_end_offset;
        let mut base_offsets = Vec::with_capacity(batches.len());
        let mut next = first_offset;
        for b in batches {
            base_offsets.push(next);
            next += i64::from(b.last_offset_delta()) + 1;
        }
        let (aborted, undo) = match self.check_producers(batches, &base_offsets, now)? {
            ProducerCheck::Duplicate(dup) => {
                // A retry of a batch already in the log: answer with its offsets, write nothing.
                return Ok(AppendInfo {
                    first_offset: dup.first_offset,
                    last_offset: dup.last_offset,
                    log_start_offset: self.log_start_offset,
                });
            }
            ProducerCheck::Append { aborted, undo } => (aborted, undo),
        };
        let patches: Vec<[u8; 16]> =
            batches.iter().zip(&base_offsets).map(|(b, &base)| b.header_patch(base, leader_epoch)).collect();
        // Every batch is stamped with `leader_epoch`: one entry covers them. Durable before the
        // data, so the file is never behind the log (only ahead after a crash, which loading cuts).
        if !batches.is_empty() && (self.leader_epochs.assign(leader_epoch, first_offset) || self.leader_epochs_dirty) {
            self.write_leader_epochs()?;
        }
        if self.segments.is_empty() {
            self.roll(tp, first_offset, now, &undo)?;
        }
        let mut config = self.config.clone();
        config.segment_bytes = config.segment_bytes.min(MAX_SEGMENT_BYTES);
        let mut group_start = 0;
        for (i, b) in batches.iter().enumerate() {
            let size = b.size_in_bytes() as u64;
            let base = base_offsets[i];
            let last = base + i64::from(b.last_offset_delta());
            let roll = self.active().is_some_and(|s| s.should_roll(&config, size, b.max_timestamp(), last, now));
            if roll {
                self.write_group(&patches[group_start..i], &batches[group_start..i])?;
                // Rolling before the append's first batch, the snapshot is the state before the
                // append; later in it, the batches below the roll stay in.
                let undo: &[_] = if base == first_offset { &undo } else { &[] };
                self.roll(tp, base, now, undo)?;
                group_start = i;
            }
            let interval = config.index_interval_bytes;
            if let Some(active) = self.active_mut() {
                let pos = active.size();
                active.track_batch(pos, size, last, b.max_timestamp(), interval);
            }
        }
        self.write_group(&patches[group_start..], &batches[group_start..])?;
        for txn in aborted {
            // The file of the segment the marker went to.
            let base = self.segments.range(..=txn.last_offset).next_back().map(|(b, _)| *b).unwrap_or(first_offset);
            let dir = self.dir.clone();
            if self.txn_index.append(&dir, base, txn).map_err(|e| io_err(&dir, e))? {
                self.dir_needs_sync = true;
            }
        }
        self.log_end_offset = next;
        if self.first_unflushed_append_ms.is_none() && !batches.is_empty() {
            self.first_unflushed_append_ms = Some(now);
        }
        Ok(AppendInfo { first_offset, last_offset: next - 1, log_start_offset: self.log_start_offset })
    }

    /// Appends whole batches copied from another replica of this partition (Kafka's
    /// `appendAsFollower`, used for the future replica of an AlterReplicaLogDirs move): their
    /// bytes and offsets are kept as they are (gaps a cleaning left included), no producer
    /// check is made (the copy is the truth), and producer state and the aborted-transaction
    /// index are replayed from them as recovery replays a log. Segments roll as for any append;
    /// the snapshot a roll takes describes the batches before the roll.
    pub(crate) fn append_replicated(&mut self, tp: &TopicPartition, batches: &[RecordBatch], now: i64) -> Result<()> {
        let mut next = self.log_end_offset;
        for b in batches {
            if let Err(e) = b.validate() {
                return Err(StorageError::Corrupt {
                    path: self.dir.clone(),
                    position: 0,
                    reason: format!("refusing to copy an invalid batch at offset {}: {e}", b.base_offset()),
                });
            }
            if b.base_offset() < next {
                return Err(StorageError::Corrupt {
                    path: self.dir.clone(),
                    position: 0,
                    reason: format!(
                        "refusing to copy a batch at offset {} of {} bytes onto a log ending at {next}",
                        b.base_offset(),
                        b.size_in_bytes()
                    ),
                });
            }
            next = b.last_offset() + 1;
        }
        let Some(first) = batches.first() else { return Ok(()) };
        if self.segments.is_empty() {
            self.roll(tp, first.base_offset(), now, &[])?;
        }
        let mut config = self.config.clone();
        config.segment_bytes = config.segment_bytes.min(MAX_SEGMENT_BYTES);
        let mut group_start = 0;
        for (i, b) in batches.iter().enumerate() {
            let size = b.size_in_bytes() as u64;
            let roll =
                self.active().is_some_and(|s| s.should_roll(&config, size, b.max_timestamp(), b.last_offset(), now));
            if roll {
                self.write_replicated_group(&batches[group_start..i])?;
                self.roll(tp, b.base_offset(), now, &[])?;
                group_start = i;
            }
            let interval = config.index_interval_bytes;
            if let Some(active) = self.active_mut() {
                let pos = active.size();
                active.track_batch(pos, size, b.last_offset(), b.max_timestamp(), interval);
            }
        }
        self.write_replicated_group(&batches[group_start..])?;
        self.log_end_offset = next;
        if self.first_unflushed_append_ms.is_none() {
            self.first_unflushed_append_ms = Some(now);
        }
        Ok(())
    }

    /// Writes copied batches (already tracked in the active segment) as they are, then replays
    /// them into producer state and the aborted-transaction index.
    fn write_replicated_group(&mut self, batches: &[RecordBatch]) -> Result<()> {
        if batches.is_empty() {
            return Ok(());
        }
        let Some(active) = self.active_mut() else { return Ok(()) };
        let base = active.base_offset();
        let mut slices: Vec<IoSlice<'_>> = batches.iter().map(|b| IoSlice::new(b.as_bytes())).collect();
        let path = active.log_path().to_path_buf();
        active.write(&mut slices).map_err(|e| io_err(&path, e))?;
        active.write_pending_indexes().map_err(|e| io_err(&path, e))?;
        let dir = self.dir.clone();
        for b in batches {
            if let Some(aborted) = self.producer_state.replay(b) {
                if self.txn_index.append(&dir, base, aborted).map_err(|e| io_err(&dir, e))? {
                    self.dir_needs_sync = true;
                }
            }
        }
        Ok(())
    }

    /// Checks the producer sequences of `batches` (to be written at `base_offsets`) and records
    /// them. A retry of one of a producer's last batches returns that batch's metadata; a retry
    /// or a refused batch leaves the state as it was.
    fn check_producers(&mut self, batches: &[RecordBatch], base_offsets: &[i64], now: i64) -> Result<ProducerCheck> {
        let mut saved: Vec<(i64, Option<ProducerEntry>)> = Vec::new();
        let mut outcome: std::result::Result<Option<BatchMetadata>, SequenceError> = Ok(None);
        let mut aborted = Vec::new();
        for (b, &base) in batches.iter().zip(base_offsets) {
            // Batches the coordinators write: transaction markers, and transactional offset
            // commits without sequence numbers. Only their epoch is checked.
            let marker = if b.is_control() { producer_state::control_commit(b) } else { None };
            if b.producer_id() >= 0 && (marker.is_some() || ProducerStateManager::is_unsequenced_txn(b)) {
                let pid = b.producer_id();
                if let Err(e) = self.producer_state.check_marker(pid, b.producer_epoch()) {
                    outcome = Err(e);
                    break;
                }
                if !saved.iter().any(|(p, _)| *p == pid) {
                    saved.push((pid, self.producer_state.get(pid).cloned()));
                }
                match marker {
                    Some(commit) => {
                        let coordinator_epoch = producer_state::control_coordinator_epoch(b);
                        aborted.extend(self.producer_state.complete_txn(
                            pid,
                            b.producer_epoch(),
                            coordinator_epoch,
                            commit,
                            base,
                            now,
                        ));
                    }
                    None => self.producer_state.begin_unsequenced(
                        ProducerId::new(pid),
                        ProducerEpoch::new(b.producer_epoch()),
                        Offset::new(base),
                        now,
                    ),
                }
                continue;
            }
            let Some(fields) = producer_state::batch_producer_fields(b) else { continue };
            let pid = fields.producer_id.get();
            match self.producer_state.check_batch(fields, b.is_transactional()) {
                Ok(SequenceCheck::Append) => {
                    if !saved.iter().any(|(p, _)| *p == pid) {
                        saved.push((pid, self.producer_state.get(pid).cloned()));
                    }
                    let last = base + i64::from(b.last_offset_delta());
                    let offsets = OffsetRange { first: Offset::new(base), last: Offset::new(last) };
                    // Wall time, not the batch's (possibly old) create time: expiry counts idleness.
                    self.producer_state.record_batch(fields, offsets, now.max(b.max_timestamp()));
                    if b.is_transactional() {
                        self.producer_state.begin_txn(fields.producer_id, Offset::new(base));
                    }
                }
                Ok(SequenceCheck::Duplicate(m)) => {
                    outcome = Ok(Some(m));
                    break;
                }
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if !matches!(outcome, Ok(None)) {
            for (pid, entry) in std::mem::take(&mut saved).into_iter().rev() {
                self.producer_state.restore(pid, entry);
            }
        }
        match outcome {
            Ok(Some(dup)) => Ok(ProducerCheck::Duplicate(dup)),
            Ok(None) => Ok(ProducerCheck::Append { aborted, undo: saved }),
            Err(SequenceError::InvalidProducerEpoch { producer_id, current, received }) => {
                Err(StorageError::InvalidProducerEpoch { producer_id, current, received })
            }
            Err(SequenceError::OutOfOrderSequence { producer_id, epoch, last_seq, received }) => {
                Err(StorageError::OutOfOrderSequence { producer_id, epoch, last_seq, received })
            }
            Err(SequenceError::InvalidTxnState { producer_id }) => Err(StorageError::InvalidTxnState { producer_id }),
        }
    }

    /// Writes the leader-epoch checkpoint from memory.
    fn write_leader_epochs(&mut self) -> Result<()> {
        self.leader_epochs.write(&self.dir).map_err(|e| io_err(&self.dir, e))?;
        self.leader_epochs_dirty = false;
        Ok(())
    }

    /// The log start offset moved: the epoch covering it now starts there (Kafka's
    /// `truncateFromStartAsyncFlush`; written later, see `leader_epochs_dirty`).
    fn leader_epochs_follow_log_start(&mut self) {
        if self.leader_epochs.truncate_from_start(self.log_start_offset) {
            self.leader_epochs_dirty = true;
        }
    }

    /// `min(high watermark, first unstable offset)`: consumers in `read_committed` read below it.
    pub(crate) fn last_stable_offset(&self) -> i64 {
        self.producer_state.first_unstable_offset().map_or(self.high_watermark, |f| f.min(self.high_watermark))
    }

    /// Writes batches (already tracked in the active segment's metadata) with one vectored write:
    /// each batch as its 16-byte header patch followed by the rest of its original bytes.
    fn write_group(&mut self, patches: &[[u8; 16]], batches: &[RecordBatch]) -> Result<()> {
        if batches.is_empty() {
            return Ok(());
        }
        let Some(active) = self.active_mut() else { return Ok(()) };
        let mut slices = Vec::with_capacity(batches.len() * 2);
        for (patch, b) in patches.iter().zip(batches) {
            slices.push(IoSlice::new(patch));
            slices.push(IoSlice::new(b.as_bytes().get(16..).unwrap_or_default()));
        }
        let path = active.log_path().to_path_buf();
        active.write(&mut slices).map_err(|e| io_err(&path, e))?;
        active.write_pending_indexes().map_err(|e| io_err(&path, e))
    }

    /// Snapshots of the segments a read starting at `fetch_offset` may touch: the segment
    /// containing it (from its index entry) and the following ones while under `max_bytes`.
    fn read_views(&self, fetch_offset: i64, max_bytes: usize) -> Vec<(SegmentView, u64)> {
        let mut views = Vec::new();
        let start_base = self.segments.range(..=fetch_offset).next_back().map(|(b, _)| *b).unwrap_or(i64::MIN);
        // Bytes of the following segments snapshotted so far. The first segment does not count:
        // how much of it lies at or after fetch_offset is unknown until the scan, so this errs on
        // the side of one segment too many, which is never read if the budget runs out first.
        let mut following = 0u64;
        for (base, seg) in self.segments.range(start_base..) {
            if *base == start_base {
                views.push((seg.view(), seg.offset_index.lookup(fetch_offset).1));
                continue;
            }
            if following >= max_bytes as u64 {
                break;
            }
            views.push((seg.view(), 0));
            following += seg.size();
        }
        views
    }

    fn offsets(&self) -> LogOffsets {
        LogOffsets {
            log_start_offset: self.log_start_offset,
            high_watermark: self.high_watermark,
            last_stable_offset: self.last_stable_offset(),
            log_end_offset: self.log_end_offset,
        }
    }
}

/// What the producer checks of one append decided.
enum ProducerCheck {
    /// A retry of a batch already in the log.
    Duplicate(BatchMetadata),
    /// Write the batches; these transactions are aborted by markers among them.
    /// `undo`: the entries of the producers the append touched, as they were before it.
    Append { aborted: Vec<AbortedTxn>, undo: Vec<(i64, Option<ProducerEntry>)> },
}

/// One partition's log: the ordered segments and the append lock. Thread-safe; appends to one
/// partition are serialized, reads do not hold the append lock while copying data (see the
/// module docs). Every operation fails with `Deleted` once the partition is deleted and with
/// `LogDirOffline` once its log dir has seen an I/O error.
pub struct UnifiedLog {
    tp: TopicPartition,
    topic_id: Option<[u8; 16]>,
    /// The log dir holding the partition; changes only when a future replica replaces the
    /// current one (AlterReplicaLogDirs), under the state lock.
    log_dir: RwLock<Arc<LogDir>>,
    deleted: AtomicBool,
    state: Mutex<LogState>,
    hw_tx: watch::Sender<i64>,
    /// Held by the one flush in progress (never together with `state` across an fsync).
    flush_lock: Mutex<()>,
    /// Flushes that fsynced something (group commit makes this lower than the flush requests).
    flushes: AtomicU64,
    /// The recovery point, for callers waiting for durability.
    flushed_tx: watch::Sender<i64>,
}

impl std::fmt::Debug for UnifiedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnifiedLog").field("tp", &self.tp).field("log_dir", &self.log_dir().path()).finish()
    }
}

impl UnifiedLog {
    pub(crate) fn from_state(
        tp: TopicPartition,
        topic_id: Option<[u8; 16]>,
        log_dir: Arc<LogDir>,
        state: LogState,
    ) -> Self {
        let (hw_tx, _) = watch::channel(state.high_watermark);
        let (flushed_tx, _) = watch::channel(state.recovery_point);
        Self {
            tp,
            topic_id,
            log_dir: RwLock::new(log_dir),
            deleted: AtomicBool::new(false),
            state: Mutex::new(state),
            hw_tx,
            flush_lock: Mutex::new(()),
            flushes: AtomicU64::new(0),
            flushed_tx,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fails fast for deleted partitions and offline log dirs.
    pub fn check(&self) -> Result<()> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(StorageError::Deleted(self.tp.clone()));
        }
        // On every append and read: the guard, not a clone of the `Arc`.
        let log_dir = self.log_dir.read().unwrap_or_else(PoisonError::into_inner);
        if log_dir.is_offline() {
            return Err(StorageError::LogDirOffline(log_dir.path().to_path_buf()));
        }
        Ok(())
    }

    /// Any I/O error takes the whole log dir offline (Kafka's `LogDirFailureChannel`); the
    /// failing operation still reports the I/O error itself. Running out of descriptors or
    /// memory is not a media failure: it fails this operation only, and every operation that can
    /// hit it (opening files) does so before it changes any state.
    pub(crate) fn fail(&self, e: StorageError) -> StorageError {
        if let StorageError::Io { path, source } = &e {
            if !crate::is_resource_exhaustion(source) {
                self.log_dir().mark_offline(&self.tp, path, source);
            }
        }
        e
    }

    pub(crate) fn log_dir(&self) -> Arc<LogDir> {
        self.log_dir.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Moves the log to another log dir (the swap of a future replica, under the state lock).
    pub(crate) fn set_log_dir(&self, log_dir: Arc<LogDir>) {
        *self.log_dir.write().unwrap_or_else(PoisonError::into_inner) = log_dir;
    }

    /// The `log.dirs` entry holding this partition.
    pub fn log_dir_path(&self) -> PathBuf {
        self.log_dir().path().to_path_buf()
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// The topic id recorded in `partition.metadata`, if any.
    pub fn topic_id(&self) -> Option<[u8; 16]> {
        self.topic_id
    }

    /// Appends validated batches at the log end: consecutive offsets from the LEO are stamped into
    /// each batch's header (base offset, `leader_epoch`) as it is written; rolls segments on
    /// `segment.bytes`/`segment.ms`/index full; adds index entries every `index.interval.bytes`;
    /// fsyncs before returning when `flush.messages` is reached (with `flush.messages=1`, every
    /// append is durable before it returns; concurrent appends share fsyncs, see
    /// [`Self::flush_to`]). A roll asks the log dir to flush the closed segment in the
    /// background. Does not move the high watermark.
    pub fn append(&self, batches: &[RecordBatch], leader_epoch: i32) -> Result<AppendInfo> {
        let (info, flush_to) = self.append_deferring_flush(batches, leader_epoch)?;
        if let Some(offset) = flush_to {
            // Outside the append lock, like Kafka: other producers keep appending meanwhile.
            self.flush_to(offset)?;
        }
        Ok(info)
    }

    /// [`Self::append`] without its fsync: returns, with where the batches landed, the offset
    /// to flush to before acknowledging them when `flush.messages` says so. Async callers wait
    /// for [`Self::watch_recovery_point`] to reach it (driving flushes with [`Self::try_flush`])
    /// instead of blocking a thread.
    pub fn append_deferring_flush(
        &self,
        batches: &[RecordBatch],
        leader_epoch: i32,
    ) -> Result<(AppendInfo, Option<i64>)> {
        self.check()?;
        let now = now_ms();
        let (info, flush_to) = {
            let mut st = self.lock();
            self.check()?;
            let info = st.append(&self.tp, batches, leader_epoch, now).map_err(|e| self.fail(e))?;
            self.request_roll_flush(&mut st);
            let due = st.log_end_offset - st.recovery_point >= st.config.flush_messages;
            (info, due.then_some(st.log_end_offset))
        };
        Ok((info, flush_to))
    }

    /// Hands a roll's flush to the log dir's flusher (Kafka schedules it asynchronously too).
    fn request_roll_flush(&self, st: &mut LogState) {
        if let Some(offset) = st.roll_flush_offset.take() {
            self.log_dir().request_roll_flush(&self.tp, offset);
        }
    }

    /// Reads whole batches starting with the batch that contains `fetch_offset`, stopping before
    /// any batch whose last offset is `>= max_offset` (the high watermark for consumers) and once
    /// `max_bytes` would be exceeded — except that when `min_one_batch` is set and the first batch
    /// alone is larger than `max_bytes`, that one batch is returned whole. `fetch_offset` below the
    /// log start or above the LEO is `OffsetOutOfRange`; equal to the LEO yields empty records.
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadResult> {
        self.check()?;
        let (offsets, views) = {
            let st = self.lock();
            self.check()?;
            let offsets = st.offsets();
            if fetch_offset < offsets.log_start_offset || fetch_offset > offsets.log_end_offset {
                return Err(StorageError::OffsetOutOfRange {
                    requested: fetch_offset,
                    log_start_offset: offsets.log_start_offset,
                    log_end_offset: offsets.log_end_offset,
                });
            }
            let views = if fetch_offset == offsets.log_end_offset || fetch_offset >= max_offset {
                Vec::new()
            } else {
                st.read_views(fetch_offset, max_bytes)
            };
            (offsets, views)
        };
        let records =
            self.read_views(&views, fetch_offset, max_bytes, max_offset, min_one_batch).map_err(|e| self.fail(e))?;
        Ok(ReadResult {
            records,
            log_start_offset: offsets.log_start_offset,
            high_watermark: offsets.high_watermark,
            log_end_offset: offsets.log_end_offset,
        })
    }

    /// Whether a [`read`](Self::read) of up to `max_bytes` at `fetch_offset` would be served from
    /// the page cache: probes the first and the last page it would touch. Async callers read cold
    /// data on a blocking thread, so a catch-up consumer never stalls a runtime worker on the
    /// disk. A read with nothing to return is "cached".
    pub fn read_is_cached(&self, fetch_offset: i64, max_bytes: usize) -> bool {
        let views = {
            let st = self.lock();
            if fetch_offset < st.log_start_offset || fetch_offset >= st.log_end_offset {
                return true;
            }
            st.read_views(fetch_offset, max_bytes)
        };
        let Some((first, pos)) = views.first() else { return true };
        let last = (pos + max_bytes as u64).min(first.end).saturating_sub(1).max(*pos);
        crate::segment::is_cached(&first.file, *pos) && crate::segment::is_cached(&first.file, last)
    }

    fn read_views(
        &self,
        views: &[(SegmentView, u64)],
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<Bytes> {
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        let mut found_start = false;
        for (view, index_pos) in views {
            let start = if found_start {
                0
            } else {
                match view.find_batch(*index_pos, fetch_offset)? {
                    Some((pos, _)) => {
                        found_start = true;
                        pos
                    }
                    // fetch_offset lies past this segment's data (a gap); try the next one.
                    None => continue,
                }
            };
            let chunk = view.read_batches(start, max_bytes - total, max_offset, min_one_batch && total == 0)?;
            total += chunk.bytes.len();
            if !chunk.bytes.is_empty() {
                chunks.push(chunk.bytes);
            }
            if chunk.limited || total >= max_bytes {
                break;
            }
        }
        Ok(match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.pop().unwrap_or_default(),
            _ => {
                let mut out = BytesMut::with_capacity(total);
                for c in chunks {
                    out.extend_from_slice(&c);
                }
                out.freeze()
            }
        })
    }

    pub fn offsets(&self) -> LogOffsets {
        self.lock().offsets()
    }

    /// Moves the high watermark to `min(offset, LEO)` if that is higher, waking watchers.
    pub fn advance_high_watermark(&self, offset: i64) {
        let new_hw = {
            let mut st = self.lock();
            let candidate = offset.min(st.log_end_offset);
            if candidate <= st.high_watermark {
                return;
            }
            st.high_watermark = candidate;
            candidate
        };
        // Monotonic even if two advances race between the unlock and here.
        self.hw_tx.send_if_modified(|v| {
            if new_hw > *v {
                *v = new_hw;
                true
            } else {
                false
            }
        });
    }

    /// A receiver that changes whenever the high watermark moves (long-polling fetches wait on it).
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.hw_tx.subscribe()
    }

    /// The first record whose timestamp is `>= timestamp` (ListOffsets by time), or `None`.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        self.check()?;
        let (view, pos, log_start_offset) = {
            let st = self.lock();
            self.check()?;
            // Kafka: the first segment whose largest timestamp reaches the target.
            let Some(seg) = st.segments.values().find(|s| s.max_timestamp_so_far() >= timestamp) else {
                return Ok(None);
            };
            let (_, ts_offset) = seg.time_index.lookup(timestamp);
            let (_, pos) = seg.offset_index.lookup(ts_offset.max(st.log_start_offset));
            (seg.view(), pos, st.log_start_offset)
        };
        view.search_for_timestamp(pos, timestamp, log_start_offset).map_err(|e| self.fail(e))
    }

    /// The record with the largest timestamp (ListOffsets `-3`, KIP-734), or `None` when empty.
    pub fn max_timestamp(&self) -> Result<Option<TimestampOffset>> {
        self.check()?;
        let (view, pos, max_ts) = {
            let st = self.lock();
            self.check()?;
            let mut best: Option<&LogSegment> = None;
            for seg in st.segments.values() {
                if seg.size() > 0 && best.is_none_or(|b| seg.max_timestamp_so_far() > b.max_timestamp_so_far()) {
                    best = Some(seg);
                }
            }
            let Some(seg) = best.filter(|s| s.max_timestamp_so_far() >= 0) else {
                return Ok(None);
            };
            let (_, pos) = seg.offset_index.lookup(seg.offset_of_max_timestamp_so_far());
            (seg.view(), pos, seg.max_timestamp_so_far())
        };
        view.find_max_timestamp_record(pos, max_ts).map_err(|e| self.fail(e))
    }

    /// fsyncs everything written so far and advances the recovery point to the log end offset.
    pub fn flush(&self) -> Result<()> {
        self.flush_to(i64::MAX)
    }

    /// Whether everything below `offset` (capped at the log end offset) is fsynced.
    fn is_flushed(st: &LogState, offset: i64) -> bool {
        st.recovery_point >= offset.min(st.log_end_offset) && !st.dir_needs_sync
    }

    /// fsyncs at least everything below `offset` (capped at the log end offset) and advances the
    /// recovery point past it: the segments holding data from the recovery point on, the
    /// transaction index files written since the last flush, the producer snapshots taken at
    /// the rolls being covered, and the directory when a file was created in it. A flush that
    /// reaches into the active segment covers the whole log end (the fsync costs the same); one
    /// that stops at a segment boundary (a roll's flush) leaves the active segment alone.
    ///
    /// Group commit: one flush runs at a time (behind `flush_lock`, never the append lock, so
    /// producers keep appending), and it covers every append made before it started. Callers
    /// that waited behind it find their offset covered and return without an fsync of their
    /// own, so concurrent producers waiting for durability share one fsync.
    pub fn flush_to(&self, offset: i64) -> Result<()> {
        self.check()?;
        if Self::is_flushed(&self.lock(), offset) {
            return Ok(());
        }
        let flushing = self.flush_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let result = self.flush_locked(offset);
        drop(flushing);
        self.publish_recovery_point();
        result
    }

    /// Flushes everything written so far unless a flush is already running (`None`: that
    /// flush's end is announced on [`Self::watch_recovery_point`]). For async callers that wait
    /// on the watch instead of blocking a thread behind the running flush.
    pub fn try_flush(&self) -> Option<Result<()>> {
        let flushing = match self.flush_lock.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        let result = self.check().and_then(|()| self.flush_locked(i64::MAX));
        drop(flushing);
        self.publish_recovery_point();
        Some(result)
    }

    /// Whether a flush is running right now.
    pub fn flush_in_progress(&self) -> bool {
        matches!(self.flush_lock.try_lock(), Err(TryLockError::WouldBlock))
    }

    /// A receiver of the recovery point, sent after every flush — also a failed one (the log
    /// dir is then offline), so waiters always wake and re-check.
    pub fn watch_recovery_point(&self) -> watch::Receiver<i64> {
        self.flushed_tx.subscribe()
    }

    /// Announces the recovery point after the flush lock is released, so a woken waiter that
    /// finds its offset still uncovered can start the next flush itself.
    fn publish_recovery_point(&self) {
        let recovery_point = self.lock().recovery_point;
        self.flushed_tx.send_modify(|v| *v = (*v).max(recovery_point));
    }

    /// [`Self::flush_to`]'s work; the caller holds `flush_lock`.
    fn flush_locked(&self, offset: i64) -> Result<()> {
        let (files, flushed_to, dir, txn_files) = {
            let mut st = self.lock();
            self.check()?;
            if Self::is_flushed(&st, offset) {
                return Ok(());
            }
            let leo = st.log_end_offset;
            let active_base = st.segments.keys().next_back().copied().unwrap_or(leo);
            let flushed_to = if offset > active_base { leo } else { offset.min(leo) };
            let mut files = Vec::new();
            if flushed_to > st.recovery_point {
                let from = st.segments.range(..=st.recovery_point).next_back().map(|(b, _)| *b).unwrap_or(i64::MIN);
                for (&base, seg) in st.segments.range(from..) {
                    if flushed_to < leo && base >= flushed_to {
                        break;
                    }
                    files.extend(seg.files().map(|(file, path)| (Some(file), path)));
                    if base > st.recovery_point {
                        // Taken when this segment was rolled in: recovery starts its replay there.
                        files.push((None, producer_state::snapshot_file(&st.dir, base)));
                    }
                }
            }
            let dir = std::mem::take(&mut st.dir_needs_sync).then(|| st.dir.clone());
            let log_dir = st.dir.clone();
            let txn_files = st.txn_index.take_dirty(&log_dir);
            (files, flushed_to, dir, txn_files)
        };
        // fsync outside the lock. Never retried: a failed fsync may have dropped dirty pages, so
        // the dir goes offline instead.
        for path in &txn_files {
            crate::txn_index::sync(path).map_err(|e| self.fail(io_err(path, e)))?;
        }
        for (file, path) in &files {
            match file {
                Some(file) => crate::io::sync_data(file).map_err(|e| self.fail(io_err(path, e)))?,
                // Snapshots are pruned as new ones are taken: a missing one needs no fsync.
                None => crate::io::sync_path(path).map_err(|e| self.fail(io_err(path, e)))?,
            }
        }
        if let Some(dir) = dir {
            crate::io::sync_dir(&dir).map_err(|e| self.fail(io_err(&dir, e)))?;
            // The partition directory's own entry in the log dir (new partitions are created
            // without fsyncs).
            if let Some(parent) = dir.parent() {
                crate::io::sync_dir(parent).map_err(|e| self.fail(io_err(parent, e)))?;
            }
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        if flushed_to > st.recovery_point {
            st.recovery_point = flushed_to;
        }
        if st.recovery_point >= st.log_end_offset {
            st.first_unflushed_append_ms = None;
        }
        Ok(())
    }

    /// How many flushes fsynced something since the partition was loaded.
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Whether the oldest unflushed append is at least `flush.ms` old at `now_ms`.
    pub(crate) fn flush_is_due(&self, now_ms: i64) -> bool {
        let st = self.lock();
        st.first_unflushed_append_ms.is_some_and(|t| now_ms.saturating_sub(t) >= st.config.flush_ms)
    }

    /// Flush plus the final index entries of the active segment (clean shutdown).
    pub(crate) fn close(&self) -> Result<()> {
        self.flush()?;
        let mut st = self.lock();
        self.check()?;
        if let Some(active) = st.active_mut() {
            let path = active.log_path().to_path_buf();
            active.close_indexes(true).map_err(|e| self.fail(io_err(&path, e)))?;
        }
        // Restart then loads producer state without replaying the log.
        let leo = st.log_end_offset;
        producer_state::write_snapshot(&st.dir, leo, &st.producer_state).map_err(|e| self.fail(io_err(&st.dir, e)))?;
        if st.leader_epochs_dirty {
            st.write_leader_epochs().map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// This replica leads the partition in `epoch` from the log end on (Kafka's `makeLeader`
    /// assigning the epoch's start offset). Kept in memory until data is written in it.
    pub fn assign_leader_epoch(&self, epoch: i32) {
        let mut st = self.lock();
        let leo = st.log_end_offset;
        if st.leader_epochs.assign(epoch, leo) {
            st.leader_epochs_dirty = true;
        }
    }

    /// Kafka's `endOffsetForEpoch` (OffsetForLeaderEpoch): the largest epoch at or below
    /// `requested` and its end offset (the next epoch's start, or the log end offset for the
    /// latest); `None` when the cache does not know (`UNDEFINED_EPOCH_OFFSET`).
    pub fn end_offset_for_epoch(&self, requested: i32) -> Option<(i32, i64)> {
        let st = self.lock();
        let (epoch, offset) = st.leader_epochs.end_offset_for(requested, st.log_end_offset);
        (offset != UNDEFINED_EPOCH_OFFSET).then_some((epoch, offset))
    }

    /// The leader-epoch cache's entries, oldest first.
    pub fn leader_epoch_entries(&self) -> Vec<EpochEntry> {
        self.lock().leader_epochs.entries().to_vec()
    }

    /// Writes a transaction marker (a control batch: COMMIT or ABORT) for `producer_id` at
    /// `producer_epoch`, closing its transaction in this partition, and moves the high watermark
    /// past it. An epoch older than the producer's is `InvalidProducerEpoch`.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        leader_epoch: i32,
    ) -> Result<AppendInfo> {
        let batch = marker_batch(producer_id, producer_epoch, coordinator_epoch, commit, now_ms())?;
        let info = self.append(std::slice::from_ref(&batch), leader_epoch)?;
        self.advance_high_watermark(info.last_offset + 1);
        Ok(info)
    }

    /// The aborted transactions overlapping `[fetch_offset, upper_bound)` (read_committed fetches).
    pub fn aborted_transactions(&self, fetch_offset: i64, upper_bound: i64) -> Vec<AbortedTxn> {
        self.lock().txn_index.collect(fetch_offset, upper_bound)
    }

    /// Every aborted transaction this partition knows of, in marker order.
    pub fn all_aborted_transactions(&self) -> Vec<AbortedTxn> {
        self.lock().txn_index.all()
    }

    /// Every producer with state in this partition (DescribeProducers).
    pub fn producer_entries(&self) -> Vec<(i64, ProducerEntry)> {
        self.lock().producer_state.entries()
    }

    /// Forgets producers idle for `producer.id.expiration.ms`; returns how many.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.lock().producer_state.remove_expired(now_ms, expiration_ms)
    }

    /// What this partition knows about a producer (DescribeProducers, tests).
    pub fn producer_entry(&self, producer_id: i64) -> Option<ProducerEntry> {
        self.lock().producer_state.get(producer_id).cloned()
    }

    /// Applies new settings (topic config changes take effect without a restart).
    pub fn update_config(&self, config: LogConfig) {
        self.lock().config = config;
    }

    /// The current settings.
    pub fn config(&self) -> LogConfig {
        self.lock().config.clone()
    }

    /// Bytes on disk across all segments.
    pub fn size_bytes(&self) -> u64 {
        self.lock().segments.values().map(LogSegment::size).sum()
    }

    /// The partition's directory.
    pub fn dir(&self) -> PathBuf {
        self.lock().dir.clone()
    }

    /// The offset below which everything is fsynced.
    pub fn recovery_point(&self) -> i64 {
        self.lock().recovery_point
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.lock().segments.keys().copied().collect()
    }

    /// Marks the partition deleted and renames its directory to `new_dir` (under the lock, so no
    /// append is half-way through). Returns the old and new paths.
    pub(crate) fn mark_deleted_and_rename(&self, make_new_name: impl FnOnce(&Path) -> PathBuf) -> Result<PathBuf> {
        let mut st = self.lock();
        if self.deleted.swap(true, Ordering::AcqRel) {
            return Err(StorageError::Deleted(self.tp.clone()));
        }
        let log_dir = self.log_dir();
        if log_dir.is_offline() {
            return Err(StorageError::LogDirOffline(log_dir.path().to_path_buf()));
        }
        let new_dir = make_new_name(&st.dir);
        std::fs::rename(&st.dir, &new_dir).map_err(|e| self.fail(io_err(&st.dir, e)))?;
        crate::io::sync_dir(log_dir.path()).map_err(|e| self.fail(io_err(log_dir.path(), e)))?;
        st.dir = new_dir.clone();
        Ok(new_dir)
    }

    // Future replicas (AlterReplicaLogDirs, see `future.rs`): the copy appends, the offsets a
    // future follows, and the swap that makes it the current log.

    /// Appends batches copied from the current replica of this partition (see
    /// `LogState::append_replicated`). Only ever called on a future replica.
    pub(crate) fn append_replicated(&self, batches: &[RecordBatch]) -> Result<()> {
        self.check()?;
        let now = now_ms();
        let mut st = self.lock();
        self.check()?;
        st.append_replicated(&self.tp, batches, now).map_err(|e| self.fail(e))?;
        self.request_roll_flush(&mut st);
        Ok(())
    }

    /// A future replica follows its current replica's high watermark and log start offset (both
    /// capped at what it has copied), deleting its segments wholly below the log start, as
    /// Kafka's `ReplicaAlterLogDirsThread` does after each fetch.
    pub(crate) fn follow_current(&self, high_watermark: i64, log_start_offset: i64) -> Result<()> {
        self.check()?;
        let now = now_ms();
        let mut st = self.lock();
        self.check()?;
        let leo = st.log_end_offset;
        st.high_watermark = st.high_watermark.max(high_watermark.min(leo));
        st.log_start_offset = st.log_start_offset.max(log_start_offset.min(leo));
        self.delete_segments_locked(&mut st, now, |_, _| false).map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Renames the partition's directory to `new_dir` in the same log dir (a future replica
    /// promoted at startup) and fsyncs the log dir.
    pub(crate) fn rename_dir(&self, new_dir: PathBuf) -> Result<()> {
        let mut st = self.lock();
        self.check()?;
        std::fs::rename(&st.dir, &new_dir).map_err(|e| self.fail(io_err(&st.dir, e)))?;
        let parent = self.log_dir().path().to_path_buf();
        crate::io::sync_dir(&parent).map_err(|e| self.fail(io_err(&parent, e)))?;
        for seg in st.segments.values_mut() {
            seg.set_dir(&new_dir);
        }
        st.dir = new_dir;
        Ok(())
    }

    /// Moves a future replica's log end up to `offset` when the current log has no batch left
    /// below it (its log start passed them, or a cleaning emptied them): an empty active
    /// segment is replaced by one at `offset`, a non-empty one rolled.
    pub(crate) fn skip_to(&self, offset: i64) -> Result<()> {
        self.check()?;
        let now = now_ms();
        let mut st = self.lock();
        self.check()?;
        if st.log_end_offset >= offset {
            return Ok(());
        }
        let empty_active = st.active().filter(|a| a.size() == 0).map(LogSegment::base_offset);
        if let Some(base) = empty_active {
            if let Some(seg) = st.segments.remove(&base) {
                for path in seg.paths() {
                    std::fs::remove_file(&path).map_err(|e| self.fail(io_err(&path, e)))?;
                }
            }
        }
        st.roll(&self.tp, offset, now, &[]).map_err(|e| self.fail(e))?;
        st.log_end_offset = offset;
        st.dir_needs_sync = true;
        self.request_roll_flush(&mut st);
        Ok(())
    }

    /// Marks the log deleted without touching its files (a replica that lost a swap).
    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }

    /// Replaces this (current) log with `future`, a copy of it in another log dir, with appends
    /// paused (Kafka's `replaceCurrentWithFutureLog`, with the commit order of KIP-858):
    ///
    /// 1. under this log's flush and state locks (no append, flush, retention, DeleteRecords or
    ///    cleaner swap can run), copy what was appended since the caller's catch-up, give the
    ///    future this log's log start offset and high watermark, write this log's producer
    ///    state as the future's snapshot at the log end, and fsync the future whole;
    /// 2. `commit(target log dir)`: the durable decision (the broker records the partition's
    ///    new log dir in its metadata). Until it returns, a crash resumes the copy; after it, a
    ///    crash promotes the future;
    /// 3. rename the future dir to `<topic>-<partition>` in the target log dir (fsync);
    /// 4. rename this log's dir to `<topic>-<partition>.<id>-delete` (fsync);
    /// 5. swap the states: this object, which every caller holds, now reads and appends the
    ///    moved files, keeping its config, high watermark, cleaner and remote offsets and its
    ///    in-memory producer state; `future` is marked deleted.
    ///
    /// A failure before 2 changes nothing; one in 3 reverts the decision (`commit(source)`); one
    /// in 4 only takes the source log dir offline (the decision stands, and a restart deletes
    /// the stale copy). Returns the renamed-away old dir, to be removed by the caller.
    pub(crate) fn replace_with_future(
        &self,
        future: &UnifiedLog,
        commit: &dyn Fn(&Path) -> std::result::Result<(), String>,
        unique: u128,
        crash: Option<crate::future::MoveCrashPoint>,
    ) -> Result<Option<PathBuf>> {
        use crate::future::MoveCrashPoint;
        let crashed = |point: MoveCrashPoint| crash == Some(point);
        const CHUNK: usize = 8 << 20;
        let _flushing = self.flush_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut cs = self.lock();
        self.check()?;
        future.check()?;
        loop {
            let f_leo = future.offsets().log_end_offset;
            if f_leo >= cs.log_end_offset {
                break;
            }
            let from = f_leo.max(cs.log_start_offset);
            let views = cs.read_views(from, CHUNK);
            let bytes = self.read_views(&views, from, CHUNK, i64::MAX, true).map_err(|e| self.fail(e))?;
            let batches = split_copied_batches(bytes, f_leo, &cs.dir)?;
            if batches.is_empty() {
                // No batch left below the log end (see `skip_to`).
                future.skip_to(cs.log_end_offset)?;
                break;
            }
            future.append_replicated(&batches)?;
        }
        let f_leo = future.offsets().log_end_offset;
        if f_leo != cs.log_end_offset {
            return Err(StorageError::Corrupt {
                path: future.dir(),
                position: 0,
                reason: format!("future log ends at {f_leo}, the current log at {}", cs.log_end_offset),
            });
        }
        future.follow_current(cs.high_watermark, cs.log_start_offset)?;
        let snapshot = {
            let mut fs = future.lock();
            let path = producer_state::snapshot_file(&fs.dir, fs.log_end_offset);
            producer_state::write_snapshot(&fs.dir, fs.log_end_offset, &cs.producer_state)
                .map_err(|e| future.fail(io_err(&path, e)))?;
            fs.dir_needs_sync = true;
            path
        };
        crate::io::sync_path(&snapshot).map_err(|e| future.fail(io_err(&snapshot, e)))?;
        future.flush_to(i64::MAX)?;

        if crashed(MoveCrashPoint::BeforeDecision) {
            return Err(cleaner::simulated_crash(&cs.dir));
        }
        let (source, target) = (self.log_dir(), future.log_dir());
        // Appends resume once this returns: a decision that might be on disk must be undone
        // before, or a crash would promote a future that misses them.
        let undo = |why: &dyn std::fmt::Display| {
            if let Err(revert) = commit(source.path()) {
                tracing::error!(partition = %self.tp.topic, index = self.tp.partition, error = %revert, "could not revert the log dir of a failed move; deleting its future replica");
                let doomed = future.dir();
                let name = crate::layout::delete_dir_name(&self.tp, unique);
                let deleted = doomed.parent().map(|p| p.join(&name)).unwrap_or_else(|| PathBuf::from(name));
                let renamed = std::fs::rename(&doomed, &deleted).and_then(|()| crate::io::sync_dir(target.path()));
                future.mark_deleted();
                if let Err(e) = renamed {
                    tracing::error!(dir = %doomed.display(), error = %e, "could not delete the future replica of a failed move");
                }
            }
            tracing::warn!(partition = %self.tp.topic, index = self.tp.partition, reason = %why, "move not completed");
        };
        if let Err(e) = commit(target.path()) {
            undo(&e);
            return Err(StorageError::Io {
                path: target.path().to_path_buf(),
                source: std::io::Error::other(format!("recording the new log dir failed: {e}")),
            });
        }
        if crashed(MoveCrashPoint::AfterDecision) {
            return Err(cleaner::simulated_crash(&cs.dir));
        }
        let future_dir = future.dir();
        let final_dir = target.path().join(crate::layout::partition_dir_name(&self.tp));
        if let Err(e) = std::fs::rename(&future_dir, &final_dir).and_then(|()| crate::io::sync_dir(target.path())) {
            undo(&e);
            return Err(future.fail(io_err(&future_dir, e)));
        }
        if crashed(MoveCrashPoint::AfterFutureRenamed) {
            return Err(cleaner::simulated_crash(&cs.dir));
        }
        let old_dir = cs.dir.clone();
        let deleted_dir = source.path().join(crate::layout::delete_dir_name(&self.tp, unique));
        let removed = match std::fs::rename(&old_dir, &deleted_dir).and_then(|()| crate::io::sync_dir(source.path())) {
            Ok(()) => Some(deleted_dir),
            Err(e) => {
                // The decision stands: the source dir goes offline, and a restart deletes the
                // stale copy there (the metadata names the target).
                self.fail(io_err(&old_dir, e));
                None
            }
        };
        if crashed(MoveCrashPoint::AfterCurrentRenamed) {
            return Err(cleaner::simulated_crash(&cs.dir));
        }
        {
            let mut fs = future.lock();
            for seg in fs.segments.values_mut() {
                seg.set_dir(&final_dir);
            }
            fs.dir = final_dir;
            fs.config = cs.config.clone();
            fs.high_watermark = cs.high_watermark;
            fs.cleaner_checkpoint = cs.cleaner_checkpoint.map(|c| c.clamp(fs.log_start_offset, fs.log_end_offset));
            fs.tombstone_horizon = cs.tombstone_horizon;
            fs.highest_remote_offset = cs.highest_remote_offset;
            fs.producer_state = cs.producer_state.clone();
            fs.first_unflushed_append_ms = None;
            fs.roll_flush_offset = None;
            std::mem::swap(&mut *cs, &mut *fs);
        }
        self.set_log_dir(target);
        future.set_log_dir(source);
        future.mark_deleted();
        drop(cs);
        drop(_flushing);
        self.publish_recovery_point();
        Ok(removed)
    }

    /// DeleteRecords: moves the log start offset up to `offset` (`-1` = the high watermark) and
    /// deletes the segments wholly below it. Returns the new log start offset (the low
    /// watermark). An offset above the high watermark (or negative other than -1) is
    /// `OffsetOutOfRange`; a compact-only log refuses with `PolicyViolation`, as Kafka does.
    pub fn delete_records(&self, offset: i64) -> Result<i64> {
        self.check()?;
        let now = now_ms();
        let (log_start, deleted) = {
            let mut st = self.lock();
            self.check()?;
            if !st.config.cleanup_delete {
                return Err(StorageError::PolicyViolation(format!(
                    "Records of partition {}-{} can not be deleted due to the configured policy",
                    self.tp.topic, self.tp.partition
                )));
            }
            let target = if offset == -1 { st.high_watermark } else { offset };
            if target < 0 || target > st.high_watermark {
                return Err(StorageError::OffsetOutOfRange {
                    requested: offset,
                    log_start_offset: st.log_start_offset,
                    log_end_offset: st.high_watermark,
                });
            }
            if target > st.log_start_offset {
                st.log_start_offset = target;
                tracing::info!(partition = %self.tp.topic, index = self.tp.partition, log_start_offset = target, "log start offset moved by delete records");
            }
            let deleted = self.delete_segments_locked(&mut st, now, |_, _| false).map_err(|e| self.fail(e))?;
            st.leader_epochs_follow_log_start();
            (st.log_start_offset, deleted)
        };
        if deleted > 0 {
            tracing::info!(partition = %self.tp.topic, index = self.tp.partition, segments = deleted, "deleted segments below the log start offset");
        }
        Ok(log_start)
    }

    /// One retention pass (Kafka's `deleteOldSegments`): rolls an idle active segment whose
    /// `segment.ms` elapsed (Kafka would roll it on the next append; rolling here lets time
    /// retention and the cleaner reach data of partitions nobody writes to any more), then deletes
    /// the oldest segments, never the active one and never one holding data at or above the high
    /// watermark, while they are below the log start offset or — with `cleanup.policy=delete` —
    /// past `retention.ms` (by their largest timestamp) or beyond `retention.bytes`.
    pub fn apply_retention(&self, now: i64) -> Result<RetentionStats> {
        self.check()?;
        let mut st = self.lock();
        self.check()?;
        let mut stats = RetentionStats::default();
        let roll_due = st.active().is_some_and(|a| a.time_to_roll(&st.config, now));
        if roll_due && st.log_end_offset > st.segments.keys().next_back().copied().unwrap_or(i64::MAX) {
            let leo = st.log_end_offset;
            st.roll(&self.tp, leo, now, &[]).map_err(|e| self.fail(e))?;
            self.request_roll_flush(&mut st);
            stats.rolled = true;
        }
        let config = st.config.clone();
        // Tiered logs: local retention (`local.retention.*`, -2 = `retention.*`) deletes only
        // segments already committed remotely; whole-log retention is the remote tier's job.
        let (retention_ms, retention_bytes, remote_limit) = if config.remote_storage_enable {
            let ms = if config.local_retention_ms == -2 { config.retention_ms } else { config.local_retention_ms };
            let bytes =
                if config.local_retention_bytes == -2 { config.retention_bytes } else { config.local_retention_bytes };
            (ms, bytes, Some(st.highest_remote_offset))
        } else {
            (config.retention_ms, config.retention_bytes, None)
        };
        let total: u64 = st.segments.values().map(LogSegment::size).sum();
        let mut excess =
            if config.cleanup_delete && retention_bytes >= 0 { total as i64 - retention_bytes } else { i64::MIN };
        let before = st.segments.len();
        let bytes_before = total;
        self.delete_segments_locked(&mut st, now, |seg, next_base| {
            if remote_limit.is_some_and(|uploaded| next_base - 1 > uploaded) {
                return false;
            }
            let by_time = config.cleanup_delete && retention_ms >= 0 && now - seg.largest_timestamp() > retention_ms;
            let by_size = excess != i64::MIN && excess - seg.size() as i64 >= 0;
            if by_size || by_time {
                if excess != i64::MIN {
                    excess -= seg.size() as i64;
                }
                true
            } else {
                false
            }
        })
        .map_err(|e| self.fail(e))?;
        st.leader_epochs_follow_log_start();
        stats.segments_deleted = before - st.segments.len();
        stats.bytes_deleted = bytes_before - st.segments.values().map(LogSegment::size).sum::<u64>();
        stats.log_start_offset = st.log_start_offset;
        if stats.segments_deleted > 0 {
            tracing::info!(
                partition = %self.tp.topic,
                index = self.tp.partition,
                segments = stats.segments_deleted,
                bytes = stats.bytes_deleted,
                log_start_offset = st.log_start_offset,
                "deleted segments by retention"
            );
        }
        Ok(stats)
    }

    /// Deletes the oldest non-active segments while each lies wholly below the log start offset
    /// or `extra` says so, and wholly below the high watermark. Files are renamed to `.deleted`
    /// (durable with the dir fsync) and removed after `file.delete.delay.ms`; readers holding
    /// views keep reading the renamed files meanwhile. Moves the log start offset to the first
    /// remaining segment. Returns the number of segments deleted.
    fn delete_segments_locked(
        &self,
        st: &mut LogState,
        now: i64,
        mut extra: impl FnMut(&LogSegment, i64) -> bool,
    ) -> Result<usize> {
        let bases: Vec<i64> = st.segments.keys().copied().collect();
        let mut doomed = Vec::new();
        for w in bases.windows(2) {
            let (base, next_base) = (w[0], w[1]);
            if next_base > st.high_watermark {
                break;
            }
            let Some(seg) = st.segments.get(&base) else { break };
            if next_base <= st.log_start_offset || extra(seg, next_base) {
                doomed.push(base);
            } else {
                break;
            }
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        let mut paths = Vec::new();
        for base in &doomed {
            let Some(mut seg) = st.segments.remove(base) else { continue };
            let dir = st.dir.clone();
            seg.rename_with_suffix(&dir, crate::layout::DELETED_SUFFIX).map_err(|e| io_err(&dir, e))?;
            paths.extend(seg.paths());
        }
        let first_remaining = st.segments.keys().next().copied().unwrap_or(st.log_end_offset);
        let dir = st.dir.clone();
        let tiered = st.config.remote_storage_enable;
        for path in st.txn_index.take_files_below(&dir, first_remaining, tiered) {
            let deleted = crate::layout::with_suffix(&path, crate::layout::DELETED_SUFFIX);
            std::fs::rename(&path, &deleted).map_err(|e| io_err(&path, e))?;
            paths.push(deleted);
        }
        crate::io::sync_dir(&st.dir).map_err(|e| io_err(&st.dir, e))?;
        if let Some(first) = st.segments.keys().next().copied() {
            st.log_start_offset = st.log_start_offset.max(first);
            // Everything below the first remaining segment is gone for good, so the recovery
            // point may skip it — but no further: records between that segment's base and the
            // log start are still on disk, unflushed, and may be lost in a power loss like any
            // other (claiming them fsynced would let recovery skip a torn segment).
            if st.recovery_point < first {
                st.recovery_point = first.min(st.log_end_offset);
            }
        }
        self.log_dir().schedule_delete(paths, now.saturating_add(st.config.file_delete_delay_ms));
        Ok(doomed.len())
    }

    /// Rolled segments wholly below the last stable offset whose data lies above `after_offset`
    /// (the last offset already in the remote tier), oldest first: what may be copied to the
    /// remote tier. The active segment is never a candidate.
    pub fn upload_candidates(&self, after_offset: i64) -> Result<Vec<UploadCandidate>> {
        self.check()?;
        let st = self.lock();
        let bases: Vec<i64> = st.segments.keys().copied().collect();
        let mut out = Vec::new();
        // Below the last stable offset too: an open transaction's data is not final yet.
        let upper = st.last_stable_offset();
        for w in bases.windows(2) {
            let (base, next_base) = (w[0], w[1]);
            if next_base > upper {
                break;
            }
            if next_base - 1 <= after_offset {
                continue;
            }
            let Some(seg) = st.segments.get(&base) else { break };
            if seg.size() == 0 {
                continue;
            }
            let [log, offset_index, time_index] = seg.paths();
            out.push(UploadCandidate {
                base_offset: base,
                end_offset: next_base - 1,
                max_timestamp: seg.max_timestamp_so_far(),
                size_bytes: seg.size(),
                files: SegmentFiles {
                    log,
                    offset_index,
                    time_index,
                    // Taken at every roll, so the one at `next_base` is this segment's end state;
                    // only the newest are kept, so older segments go up without one.
                    producer_snapshot: Some(crate::producer_state::snapshot_file(&st.dir, next_base))
                        .filter(|p| p.exists()),
                    transaction_index: st.txn_index.file_for_segment(&st.dir, base, next_base),
                },
            });
        }
        Ok(out)
    }

    /// Records that everything up to `offset` is committed in the remote tier (local retention
    /// of a tiered log may then delete those segments).
    pub fn set_highest_remote_offset(&self, offset: i64) {
        let mut st = self.lock();
        st.highest_remote_offset = st.highest_remote_offset.max(offset);
    }

    /// Bytes of the segments holding data above `offset` (the local-only part of a tiered log).
    pub fn size_bytes_above(&self, offset: i64) -> u64 {
        let st = self.lock();
        let bases: Vec<i64> = st.segments.keys().copied().collect();
        let mut total = 0;
        for (i, base) in bases.iter().enumerate() {
            let end = bases.get(i + 1).map(|n| n - 1).unwrap_or(i64::MAX);
            if end > offset {
                total += st.segments.get(base).map(LogSegment::size).unwrap_or(0);
            }
        }
        total
    }

    /// Transactions with data but no marker yet in this partition (for metrics).
    pub fn open_transactions(&self) -> usize {
        self.lock().producer_state.open_transactions()
    }

    /// Idempotent producers whose state this partition keeps (for metrics).
    pub fn producer_count(&self) -> usize {
        self.lock().producer_state.len()
    }

    /// The last offset committed remotely as last reported, or -1.
    pub fn highest_remote_offset(&self) -> i64 {
        self.lock().highest_remote_offset
    }

    /// Sizes for DescribeLogDirs.
    pub fn dir_info(&self) -> PartitionDirInfo {
        let st = self.lock();
        PartitionDirInfo {
            topic_partition: self.tp.clone(),
            log_dir: self.log_dir().path().to_path_buf(),
            size_bytes: st.segments.values().map(LogSegment::size).sum(),
            // Kafka's lag of a current replica: how far its log end is below the high
            // watermark, never negative (0 on a leader).
            offset_lag: (st.high_watermark - st.log_end_offset).max(0),
            is_future: false,
        }
    }

    /// The cleaner's first dirty offset, if this log was ever cleaned.
    pub fn cleaner_checkpoint(&self) -> Option<i64> {
        self.lock().cleaner_checkpoint
    }

    /// What the per-dir checkpoints record for this partition.
    pub(crate) fn checkpoint_offsets(&self) -> CheckpointOffsets {
        let st = self.lock();
        CheckpointOffsets {
            recovery_point: st.recovery_point,
            log_start_offset: st.log_start_offset,
            high_watermark: st.high_watermark,
        }
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    // The log cleaner (`cleaner.rs`) works on the log through the methods below only: it reads
    // a snapshot, rewrites segments from immutable views without the lock, and comes back to
    // swap them in and record how far it got.

    /// How dirty this log is at `now`; `None` unless it is compacted.
    pub fn cleanable(&self, now: i64) -> Result<Option<Cleanable>> {
        cleaner::cleanable(self, now)
    }

    /// Cleans this log once if it is compacted and has anything cleanable (see `cleaner.rs`).
    /// `map_capacity` bounds the offset map ([`crate::offset_map_capacity`]).
    pub fn clean(&self, map_capacity: usize, now: i64) -> Result<Option<CleanerStats>> {
        cleaner::clean(self, map_capacity, now, None)
    }

    /// [`clean`](Self::clean), stopping at `crash` to simulate a crash (tests). A simulated crash
    /// returns an I/O error and leaves the files as a crash at that point would.
    #[doc(hidden)]
    pub fn clean_with_crash(
        &self,
        map_capacity: usize,
        now: i64,
        crash: Option<CleanCrashPoint>,
    ) -> Result<Option<CleanerStats>> {
        cleaner::clean(self, map_capacity, now, crash)
    }

    /// What a cleaning starts from, read under the lock; `None` unless the log is compacted.
    pub(crate) fn cleaner_view(&self) -> Result<Option<CleanerView>> {
        self.check()?;
        let st = self.lock();
        self.check()?;
        if !st.config.cleanup_compact {
            return Ok(None);
        }
        Ok(Some(CleanerView {
            config: st.config.clone(),
            dir: st.dir.clone(),
            log_start_offset: st.log_start_offset,
            log_end_offset: st.log_end_offset,
            last_stable_offset: st.last_stable_offset(),
            cleaner_checkpoint: st.cleaner_checkpoint,
            tombstone_horizon: st.tombstone_horizon,
            segments: st
                .segments
                .iter()
                .map(|(base, seg)| CleanerSegment {
                    base: *base,
                    view: seg.view(),
                    size: seg.size(),
                    largest_timestamp: seg.largest_timestamp(),
                })
                .collect(),
            aborted: st.txn_index.all(),
        }))
    }

    /// Views of every segment as they are now.
    pub(crate) fn segment_views(&self) -> Vec<SegmentView> {
        self.lock().segments.values().map(LogSegment::view).collect()
    }

    /// A cleaning that found nothing to clean although the log was due (its tombstone horizon
    /// passed): forget the horizon so the log is not due again until a cleaning sets one.
    pub(crate) fn clear_tombstone_horizon(&self) {
        self.lock().tombstone_horizon = None;
    }

    /// Records a finished cleaning: offsets below `end_offset` are clean, and the earliest delete
    /// horizon of the tombstones it kept.
    pub(crate) fn commit_cleaning(&self, end_offset: i64, tombstone_horizon: Option<i64>) {
        let mut st = self.lock();
        st.cleaner_checkpoint = Some(end_offset.max(st.cleaner_checkpoint.unwrap_or(i64::MIN)));
        st.tombstone_horizon = tombstone_horizon;
    }

    /// Step 3 of a cleaning's swap, under the lock: replaces the segments `group` (base offset
    /// and size as the cleaner read them) with `out`, whose files are already renamed to `.swap`,
    /// unless the log changed underneath (then `out` and the swap marker are removed and the
    /// cleaning of this group is abandoned). `dir` is the partition dir the cleaning started in.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn replace_with_cleaned(
        &self,
        dir: &Path,
        group: &[(i64, u64)],
        group_end: i64,
        mut out: LogSegment,
        group_end_swap: &Path,
        crash: Option<CleanCrashPoint>,
        now: i64,
    ) -> Result<GroupOutcome> {
        let group_base = group.first().map_or(group_end, |g| g.0);
        let new_size = out.size();
        let mut st = self.lock();
        let still_there = self.check().is_ok()
            && group.iter().all(|&(base, size)| st.segments.get(&base).is_some_and(|s| s.size() == size))
            && st.segments.range(group_end..).next().is_some()
            && st.segments.range(group_base..group_end).count() == group.len();
        if !still_there {
            drop(st);
            for p in out.paths() {
                let _ = std::fs::remove_file(p);
            }
            let _ = std::fs::remove_file(group_end_swap);
            return Ok(GroupOutcome::Abandoned);
        }
        let mut old_paths = Vec::new();
        let replaced = (|| -> std::io::Result<Option<()>> {
            for (i, &(base, _)) in group.iter().enumerate() {
                if let Some(mut old) = st.segments.remove(&base) {
                    old.rename_with_suffix(dir, DELETED_SUFFIX)?;
                    old_paths.extend(old.paths());
                }
                if i == 0 && crash == Some(CleanCrashPoint::AfterFirstOldDeleted) {
                    return Ok(None);
                }
            }
            if crash == Some(CleanCrashPoint::AfterAllOldDeleted) {
                return Ok(None);
            }
            out.rename_with_suffix(dir, "")?;
            if crash == Some(CleanCrashPoint::AfterFinalRename) {
                return Ok(None);
            }
            std::fs::remove_file(group_end_swap)?;
            fsync_dir(dir)?;
            Ok(Some(()))
        })();
        match replaced {
            Ok(Some(())) => {}
            Ok(None) => return Err(cleaner::simulated_crash(dir)),
            Err(e) => {
                drop(st);
                return Err(self.fail(io_err(dir, e)));
            }
        }
        st.segments.insert(group_base, out);
        let delay = st.config.file_delete_delay_ms;
        drop(st);
        self.log_dir().schedule_delete(old_paths, now.saturating_add(delay));
        Ok(GroupOutcome::Swapped(new_size))
    }
}

/// The offsets of one partition that the per-dir checkpoint files record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckpointOffsets {
    pub(crate) recovery_point: i64,
    pub(crate) log_start_offset: i64,
    pub(crate) high_watermark: i64,
}

/// What the cleaner reads of a log under its lock ([`UnifiedLog::cleaner_view`]).
pub(crate) struct CleanerView {
    pub(crate) config: LogConfig,
    pub(crate) dir: PathBuf,
    pub(crate) log_start_offset: i64,
    pub(crate) log_end_offset: i64,
    pub(crate) last_stable_offset: i64,
    pub(crate) cleaner_checkpoint: Option<i64>,
    pub(crate) tombstone_horizon: Option<i64>,
    /// Every segment, by base offset (the active one last).
    pub(crate) segments: Vec<CleanerSegment>,
    pub(crate) aborted: Vec<AbortedTxn>,
}

/// One segment of a [`CleanerView`].
pub(crate) struct CleanerSegment {
    pub(crate) base: i64,
    pub(crate) view: SegmentView,
    pub(crate) size: u64,
    pub(crate) largest_timestamp: i64,
}
