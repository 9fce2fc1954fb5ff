//! Per-partition idempotent producer state (Kafka's `ProducerStateManager` and
//! `ProducerAppendInfo`): for every producer id that wrote to the partition, its epoch and the
//! metadata of its last [`MAX_BATCHES_PER_PRODUCER`] batches (sequence range and offsets).
//!
//! Appends are checked against it under the partition's append lock, with Kafka 4's rules:
//! - a batch whose epoch and sequence range equal one of the last 5 batches is a duplicate
//!   (a client retry): the append answers with the original offsets and writes nothing;
//! - an epoch older than the producer's current one is `InvalidProducerEpoch`;
//! - a new epoch must start at sequence 0 (unless the producer had no epoch yet);
//! - otherwise the first sequence must follow the last one (wrapping at `i32::MAX`), or the
//!   batch is `OutOfOrderSequence`;
//! - an unknown producer (never seen, expired, or its data deleted) is accepted at any sequence
//!   (KIP-360: the broker no longer answers UNKNOWN_PRODUCER_ID).
//!
//! Transactions: a producer's first transactional batch opens its transaction in the partition
//! (`current_txn_first_offset`, also kept in `ongoing` by first offset, whose minimum is the
//! first unstable offset and so bounds the last stable offset); a COMMIT or ABORT control batch
//! closes it ([`ProducerStateManager::complete_txn`]). A non-transactional batch while the
//! producer's transaction is open is `InvalidTxnState`, a marker with an older epoch is fenced.
//!
//! Durability: the state is written to `<offset>.snapshot` (Kafka's v1 snapshot format: version,
//! CRC-32C, one entry per producer with its last batch) when a segment rolls and at clean
//! shutdown, and rebuilt at load from the newest valid snapshot plus the batches after it.
//! A roll's snapshot is fsynced with the rolled segment (recovery starts its replay there once
//! the recovery point passes it); until then, and for the clean-shutdown one, a torn snapshot
//! fails its CRC and an older one (or a full scan) is used.
//!
//! Not thread-safe: the owner ([`crate::log::LogState`]) holds the partition's mutex.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use sluice_protocol::batch::RecordBatch;
use sluice_protocol::types::{Offset, ProducerEpoch, ProducerId, Sequence};

use crate::limits::{
    CONTROL_RECORDS_BYTES_MAX, PRODUCER_SNAPSHOTS_KEPT as SNAPSHOTS_KEPT, PRODUCER_SNAPSHOT_ENTRY_SIZE as ENTRY_SIZE,
};
use crate::txn_index::AbortedTxn;
use crate::StorageError;

pub use crate::limits::BATCHES_PER_PRODUCER_MAX as MAX_BATCHES_PER_PRODUCER;
/// Suffix of producer state snapshot files.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
const SNAPSHOT_VERSION: i16 = 1;
/// Kafka's "no epoch" and "no sequence".
const NO_PRODUCER_EPOCH: i16 = -1;

/// One batch a producer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

/// What the partition knows about one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first, at most [`MAX_BATCHES_PER_PRODUCER`].
    pub batches: VecDeque<BatchMetadata>,
    /// Max timestamp of the last batch (expiration is measured from it, as in Kafka).
    pub last_timestamp: i64,
    /// Offset of the first batch of the producer's open transaction in this partition.
    pub current_txn_first_offset: Option<i64>,
    /// Epoch of the coordinator that wrote the producer's last marker (-1: none).
    pub coordinator_epoch: i32,
}

impl ProducerEntry {
    fn new(epoch: i16, timestamp: i64) -> Self {
        Self {
            epoch,
            batches: VecDeque::new(),
            last_timestamp: timestamp,
            current_txn_first_offset: None,
            coordinator_epoch: -1,
        }
    }

    fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }

    fn find_duplicate(&self, epoch: i16, first_seq: i32, last_seq: i32) -> Option<BatchMetadata> {
        if epoch != self.epoch {
            return None;
        }
        self.batches.iter().find(|b| b.first_seq == first_seq && b.last_seq == last_seq).copied()
    }
}

/// Why a producer's batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceError {
    /// INVALID_PRODUCER_EPOCH (47).
    InvalidProducerEpoch { producer_id: i64, current: i16, received: i16 },
    /// OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    OutOfOrderSequence { producer_id: i64, epoch: i16, last_seq: i32, received: i32 },
    /// INVALID_TXN_STATE (48): a non-transactional write while the producer's transaction is open.
    InvalidTxnState { producer_id: i64 },
}

/// The outcome of checking one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not an idempotent batch (no producer id) or in sequence: append it.
    Append,
    /// A retry of a batch already in the log at these offsets: do not write it again.
    Duplicate(BatchMetadata),
}

/// `base + delta` in sequence space, wrapping past `i32::MAX` to 0 (Kafka's `incrementSequence`).
pub fn increment_sequence(base: i32, delta: i32) -> i32 {
    if base > i32::MAX - delta {
        delta - (i32::MAX - base) - 1
    } else {
        base + delta
    }
}

/// `last - delta` in sequence space, the inverse of [`increment_sequence`].
pub fn decrement_sequence(last: i32, delta: i32) -> i32 {
    if last < delta {
        i32::MAX - (delta - last) + 1
    } else {
        last - delta
    }
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq == last_seq.wrapping_add(1) || (next_seq == 0 && last_seq == i32::MAX)
}

/// The idempotence fields of one batch, typed so that an epoch is never taken for a sequence or
/// a producer id for an offset on the way into the producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub first_sequence: Sequence,
    pub last_sequence: Sequence,
}

/// The offsets one batch was written at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetRange {
    pub first: Offset,
    pub last: Offset,
}

/// The idempotence fields of a batch, `None` for batches without a producer id or control batches.
pub fn batch_producer_fields(b: &RecordBatch) -> Option<ProducerBatch> {
    if b.producer_id() < 0 || b.is_control() {
        return None;
    }
    let first = b.base_sequence();
    Some(ProducerBatch {
        producer_id: ProducerId::new(b.producer_id()),
        producer_epoch: ProducerEpoch::new(b.producer_epoch()),
        first_sequence: Sequence::new(first),
        last_sequence: Sequence::new(increment_sequence(first, b.last_offset_delta())),
    })
}

/// What a control batch says: the transaction committed (`true`) or aborted.
pub fn control_commit(b: &RecordBatch) -> Option<bool> {
    if !b.is_control() {
        return None;
    }
    let records = b.records(CONTROL_RECORDS_BYTES_MAX).ok()?;
    let key = records.first()?.key.as_ref()?;
    // Key: i16 version, i16 type (0 = ABORT, 1 = COMMIT).
    if key.len() < 4 {
        return None;
    }
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// The coordinator epoch a control batch carries (value: i16 version, i32 coordinator epoch).
pub fn control_coordinator_epoch(b: &RecordBatch) -> i32 {
    b.records(CONTROL_RECORDS_BYTES_MAX)
        .ok()
        .and_then(|r| r.into_iter().next())
        .and_then(|r| r.value)
        .filter(|v| v.len() >= 6)
        .map(|v| i32::from_be_bytes([v[2], v[3], v[4], v[5]]))
        .unwrap_or(-1)
}

/// All producers of one partition (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions by first offset -> producer id.
    ongoing: BTreeMap<Offset, ProducerId>,
}

impl ProducerStateManager {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Checks a client batch (producer id, epoch, first and last sequence) without changing state.
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Result<SequenceCheck, SequenceError> {
        let batch = ProducerBatch {
            producer_id: ProducerId::new(producer_id),
            producer_epoch: ProducerEpoch::new(epoch),
            first_sequence: Sequence::new(first_seq),
            last_sequence: Sequence::new(last_seq),
        };
        self.check_batch(batch, false)
    }

    /// [`Self::check`] for a batch that is transactional or not.
    pub fn check_batch(&self, batch: ProducerBatch, transactional: bool) -> Result<SequenceCheck, SequenceError> {
        let producer_id = batch.producer_id.get();
        let epoch = batch.producer_epoch.get();
        let (first_seq, last_seq) = (batch.first_sequence.get(), batch.last_sequence.get());
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        if let Some(dup) = entry.find_duplicate(epoch, first_seq, last_seq) {
            return Ok(SequenceCheck::Duplicate(dup));
        }
        if epoch < entry.epoch {
            return Err(SequenceError::InvalidProducerEpoch { producer_id, current: entry.epoch, received: epoch });
        }
        if !transactional && entry.current_txn_first_offset.is_some() {
            return Err(SequenceError::InvalidTxnState { producer_id });
        }
        if epoch != entry.epoch {
            if first_seq != 0 && entry.epoch != NO_PRODUCER_EPOCH {
                return Err(SequenceError::OutOfOrderSequence {
                    producer_id,
                    epoch,
                    last_seq: -1,
                    received: first_seq,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        match entry.last_seq() {
            Some(last) if !in_sequence(last, first_seq) => {
                Err(SequenceError::OutOfOrderSequence { producer_id, epoch, last_seq: last, received: first_seq })
            }
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Records a batch written at `offsets` (appends, and log replay at load).
    pub fn record_batch(&mut self, batch: ProducerBatch, offsets: OffsetRange, timestamp: i64) {
        self.update(
            batch.producer_id.get(),
            batch.producer_epoch.get(),
            batch.first_sequence.get(),
            batch.last_sequence.get(),
            (offsets.first.get(), offsets.last.get()),
            timestamp,
        );
    }

    /// [`Self::record_batch`] in raw integers: a batch written at `[first_offset, last_offset]`.
    pub fn update(
        &mut self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
        meta_offsets: (i64, i64),
        timestamp: i64,
    ) {
        let entry = self.producers.entry(producer_id).or_insert_with(|| ProducerEntry::new(epoch, timestamp));
        if epoch == entry.epoch && entry.batches.back().is_some_and(|b| b.last_offset >= meta_offsets.1) {
            return; // replaying a batch the state already holds
        }
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() >= MAX_BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_seq,
            last_seq,
            first_offset: meta_offsets.0,
            last_offset: meta_offsets.1,
            timestamp,
        });
        entry.last_timestamp = timestamp;
    }

    /// Puts back an entry saved before a refused multi-batch append changed it.
    pub fn restore(&mut self, producer_id: i64, entry: Option<ProducerEntry>) {
        self.ongoing.retain(|_, pid| pid.get() != producer_id);
        if let Some(first) = entry.as_ref().and_then(|e| e.current_txn_first_offset) {
            self.ongoing.insert(Offset::new(first), ProducerId::new(producer_id));
        }
        match entry {
            Some(e) => {
                self.producers.insert(producer_id, e);
            }
            None => {
                self.producers.remove(&producer_id);
            }
        }
    }

    /// Forgets batches at or after `offset` (a snapshot taken at a roll in the middle of an
    /// append may describe batches that a crash then cut off; they are replayed if present).
    pub fn truncate_from(&mut self, offset: i64) {
        for e in self.producers.values_mut() {
            e.batches.retain(|b| b.last_offset < offset);
            if e.current_txn_first_offset.is_some_and(|f| f >= offset) {
                e.current_txn_first_offset = None;
            }
        }
        self.producers.retain(|_, e| !e.batches.is_empty() || e.current_txn_first_offset.is_some());
        self.ongoing.retain(|first, _| first.get() < offset);
    }

    /// Opens the producer's transaction at `first_offset` unless one is open already.
    pub fn begin_txn(&mut self, producer_id: ProducerId, first_offset: Offset) {
        if let Some(e) = self.producers.get_mut(&producer_id.get()) {
            if e.current_txn_first_offset.is_none() {
                e.current_txn_first_offset = Some(first_offset.get());
                self.ongoing.insert(first_offset, producer_id);
            }
        }
    }

    /// A transactional batch a coordinator wrote without sequence numbers (offset commits of a
    /// transaction): no sequence checks, but it opens the producer's transaction here.
    pub fn begin_unsequenced(
        &mut self,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        first_offset: Offset,
        timestamp: i64,
    ) {
        let epoch = epoch.get();
        let entry = self.producers.entry(producer_id.get()).or_insert_with(|| ProducerEntry::new(epoch, timestamp));
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = entry.last_timestamp.max(timestamp);
        self.begin_txn(producer_id, first_offset);
    }

    /// Whether a batch is one a coordinator wrote for a transaction, without sequence numbers.
    pub fn is_unsequenced_txn(b: &RecordBatch) -> bool {
        b.producer_id() >= 0 && b.is_transactional() && !b.is_control() && b.base_sequence() < 0
    }

    /// Checks a COMMIT/ABORT marker of `producer_id` at `epoch` (Kafka's `appendEndTxnMarker`):
    /// an older epoch than the producer's is fenced.
    pub fn check_marker(&self, producer_id: i64, epoch: i16) -> Result<(), SequenceError> {
        match self.producers.get(&producer_id) {
            Some(e) if epoch < e.epoch => {
                Err(SequenceError::InvalidProducerEpoch { producer_id, current: e.epoch, received: epoch })
            }
            _ => Ok(()),
        }
    }

    /// Closes the producer's transaction with the marker at `marker_offset`. A newer epoch resets
    /// the producer's sequences (its next batch starts at 0). Returns the aborted transaction to
    /// index, for an ABORT.
    pub fn complete_txn(
        &mut self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        marker_offset: i64,
        timestamp: i64,
    ) -> Option<AbortedTxn> {
        let entry = self.producers.entry(producer_id).or_insert_with(|| ProducerEntry::new(epoch, timestamp));
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = coordinator_epoch;
        entry.last_timestamp = entry.last_timestamp.max(timestamp);
        let first = entry.current_txn_first_offset.take();
        if let Some(f) = first {
            self.ongoing.remove(&Offset::new(f));
        }
        if commit {
            return None;
        }
        // Kafka's lastStableOffset(completedTxn): the first other open transaction, or the
        // offset after the marker.
        let last_stable_offset = self.ongoing.keys().next().map_or(marker_offset + 1, |o| o.get());
        Some(AbortedTxn {
            producer_id,
            first_offset: first.unwrap_or(marker_offset),
            last_offset: marker_offset,
            last_stable_offset,
        })
    }

    /// The first offset of the oldest open transaction: the last stable offset can not pass it.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().map(|o| o.get())
    }

    /// How many transactions are open in this partition.
    pub fn open_transactions(&self) -> usize {
        self.ongoing.len()
    }

    /// Every producer with its state (DescribeProducers).
    pub fn entries(&self) -> Vec<(i64, ProducerEntry)> {
        let mut v: Vec<_> = self.producers.iter().map(|(k, e)| (*k, e.clone())).collect();
        v.sort_unstable_by_key(|(k, _)| *k);
        v
    }

    /// Replays a batch read from the log (no checks: the log is the truth). Returns the aborted
    /// transaction an ABORT marker closes.
    pub fn replay(&mut self, b: &RecordBatch) -> Option<AbortedTxn> {
        if b.producer_id() >= 0 && b.is_control() {
            let commit = control_commit(b)?;
            let coordinator_epoch = control_coordinator_epoch(b);
            return self.complete_txn(
                b.producer_id(),
                b.producer_epoch(),
                coordinator_epoch,
                commit,
                b.base_offset(),
                b.max_timestamp(),
            );
        }
        if Self::is_unsequenced_txn(b) {
            self.begin_unsequenced(
                ProducerId::new(b.producer_id()),
                ProducerEpoch::new(b.producer_epoch()),
                Offset::new(b.base_offset()),
                b.max_timestamp(),
            );
            return None;
        }
        if let Some(batch) = batch_producer_fields(b) {
            let offsets = OffsetRange { first: Offset::new(b.base_offset()), last: Offset::new(b.last_offset()) };
            self.record_batch(batch, offsets, b.max_timestamp());
            if b.is_transactional() {
                self.begin_txn(batch.producer_id, Offset::new(b.base_offset()));
            }
        }
        None
    }

    /// Forgets producers idle for `expiration_ms` (`producer.id.expiration.ms`), except those
    /// with an open transaction (as Kafka). Returns how many.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some() || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Kafka's snapshot v1 encoding (only each producer's last batch is kept, as in Kafka).
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        let mut body = Vec::with_capacity(4 + ids.len() * ENTRY_SIZE);
        body.extend_from_slice(&(ids.len() as i32).to_be_bytes());
        for id in ids {
            let Some(e) = self.producers.get(&id) else { continue };
            let last = e.batches.back().copied().unwrap_or(BatchMetadata {
                first_seq: -1,
                last_seq: -1,
                first_offset: -1,
                last_offset: -1,
                timestamp: e.last_timestamp,
            });
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&last.last_seq.to_be_bytes());
            body.extend_from_slice(&last.last_offset.to_be_bytes());
            let offset_delta = (last.last_offset - last.first_offset) as i32;
            body.extend_from_slice(&offset_delta.to_be_bytes());
            body.extend_from_slice(&e.last_timestamp.to_be_bytes());
            body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            body.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
        }
        let mut out = Vec::with_capacity(6 + body.len());
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a snapshot; `Err(StorageError::Corrupt)` when it is torn, corrupt or of another
    /// version. The bytes come from memory, so the error names no file (its path is empty): the
    /// caller that read them knows which one.
    pub fn decode_snapshot(b: &[u8]) -> Result<Self, StorageError> {
        let corrupt = |position: usize, reason: String| StorageError::Corrupt {
            path: std::path::PathBuf::new(),
            position: position as u64,
            reason,
        };
        if b.len() < 10 {
            return Err(corrupt(0, format!("snapshot of {} bytes is too short", b.len())));
        }
        let version = i16::from_be_bytes([b[0], b[1]]);
        if version != SNAPSHOT_VERSION {
            return Err(corrupt(0, format!("unsupported snapshot version {version}")));
        }
        let crc = u32::from_be_bytes([b[2], b[3], b[4], b[5]]);
        let body = &b[6..];
        if crc32c::crc32c(body) != crc {
            return Err(corrupt(2, "snapshot checksum mismatch".into()));
        }
        let count = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let entries = &body[4..];
        if count < 0 || entries.len() != count as usize * ENTRY_SIZE {
            return Err(corrupt(6, format!("snapshot entry count {count} does not match its {} bytes", entries.len())));
        }
        let mut producers = HashMap::with_capacity(count as usize);
        let mut ongoing = BTreeMap::new();
        for e in entries.chunks_exact(ENTRY_SIZE) {
            let i64_at = |at: usize| {
                let mut a = [0u8; 8];
                a.copy_from_slice(&e[at..at + 8]);
                i64::from_be_bytes(a)
            };
            let i32_at = |at: usize| i32::from_be_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
            let producer_id = i64_at(0);
            let epoch = i16::from_be_bytes([e[8], e[9]]);
            let last_seq = i32_at(10);
            let last_offset = i64_at(14);
            let offset_delta = i32_at(22);
            let timestamp = i64_at(26);
            let coordinator_epoch = i32_at(34);
            let current_txn_first_offset = Some(i64_at(38)).filter(|o| *o >= 0);
            if let Some(f) = current_txn_first_offset {
                ongoing.insert(Offset::new(f), ProducerId::new(producer_id));
            }
            let mut batches = VecDeque::new();
            if last_offset >= 0 {
                batches.push_back(BatchMetadata {
                    first_seq: decrement_sequence(last_seq, offset_delta),
                    last_seq,
                    first_offset: last_offset - i64::from(offset_delta),
                    last_offset,
                    timestamp,
                });
            }
            producers.insert(
                producer_id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_timestamp: timestamp,
                    current_txn_first_offset,
                    coordinator_epoch,
                },
            );
        }
        Ok(Self { producers, ongoing })
    }
}

/// `<dir>/<20-digit offset>.snapshot`.
pub fn snapshot_file(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{}{SNAPSHOT_SUFFIX}", crate::layout::file_stem(offset)))
}

/// Offsets of the snapshot files in `dir`, ascending.
pub fn list_snapshots(dir: &Path) -> std::io::Result<Vec<i64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(off) =
            entry.file_name().to_str().and_then(|n| crate::layout::parse_segment_file_name(n, SNAPSHOT_SUFFIX))
        {
            out.push(off);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Writes `state` as the snapshot at `offset` (temp file, then rename) and deletes all but the
/// newest [`SNAPSHOTS_KEPT`] snapshots.
pub fn write_snapshot(dir: &Path, offset: i64, state: &ProducerStateManager) -> std::io::Result<()> {
    let path = snapshot_file(dir, offset);
    let tmp = crate::layout::with_suffix(&path, ".tmp");
    fs::write(&tmp, state.encode_snapshot())?;
    fs::rename(&tmp, &path)?;
    let snapshots = list_snapshots(dir)?;
    if snapshots.len() > SNAPSHOTS_KEPT {
        for off in &snapshots[..snapshots.len() - SNAPSHOTS_KEPT] {
            match fs::remove_file(snapshot_file(dir, *off)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// The newest valid snapshot at or below `at_most` (the log end offset, or where recovery's
/// rescan starts), deleting snapshots past `log_end_offset` (they describe a tail recovery cut
/// off) and unreadable ones. Returns its offset and state. Deletions are made durable before it
/// returns: a snapshot past the log end that a crash brought back would describe data that no
/// longer exists once the log grows past its offset again.
pub fn load_latest_snapshot(
    dir: &Path,
    log_end_offset: i64,
    at_most: i64,
) -> std::io::Result<Option<(i64, ProducerStateManager)>> {
    let snapshots = list_snapshots(dir)?;
    let mut deleted = false;
    let mut found = None;
    for &off in snapshots.iter().rev() {
        let path = snapshot_file(dir, off);
        if off > log_end_offset {
            tracing::info!(file = %path.display(), log_end_offset, "deleting producer snapshot past the log end");
            fs::remove_file(&path)?;
            deleted = true;
            continue;
        }
        if off > at_most {
            continue;
        }
        let bytes = fs::read(&path)?;
        match ProducerStateManager::decode_snapshot(&bytes) {
            Ok(state) => {
                found = Some((off, state));
                break;
            }
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "deleting unreadable producer snapshot");
                fs::remove_file(&path)?;
                deleted = true;
            }
        }
    }
    if deleted {
        crate::io::sync_dir(dir)?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sequence_rules() {
        let mut s = ProducerStateManager::new();
        // Unknown producer: any sequence.
        assert_eq!(s.check(1, 0, 7, 9), Ok(SequenceCheck::Append));
        s.update(1, 0, 0, 4, (0, 4), 10);
        assert_eq!(s.check(1, 0, 5, 5), Ok(SequenceCheck::Append));
        assert!(matches!(s.check(1, 0, 6, 6), Err(SequenceError::OutOfOrderSequence { last_seq: 4, .. })));
        assert!(matches!(s.check(1, 0, 0, 4), Ok(SequenceCheck::Duplicate(m)) if m.first_offset == 0));
        // Old epoch, new epoch must restart at 0.
        s.update(1, 2, 0, 0, (5, 5), 10);
        assert!(matches!(s.check(1, 1, 1, 1), Err(SequenceError::InvalidProducerEpoch { current: 2, .. })));
        assert!(matches!(s.check(1, 3, 5, 5), Err(SequenceError::OutOfOrderSequence { .. })));
        assert_eq!(s.check(1, 3, 0, 0), Ok(SequenceCheck::Append));
        // Wrapping.
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        s.update(2, 0, i32::MAX - 1, i32::MAX, (6, 7), 10);
        assert_eq!(s.check(2, 0, 0, 3), Ok(SequenceCheck::Append));
    }

    #[test]
    fn snapshot_round_trip_and_expiry() {
        let mut s = ProducerStateManager::new();
        s.update(1, 0, 0, 4, (0, 4), 100);
        s.update(1, 0, 5, 9, (10, 14), 200);
        s.update(7, 3, 0, 0, (20, 20), 300);
        let d = ProducerStateManager::decode_snapshot(&s.encode_snapshot()).unwrap();
        assert_eq!(d.get(1).unwrap().batches.back(), s.get(1).unwrap().batches.back());
        assert_eq!(d.get(7).unwrap().epoch, 3);
        assert_eq!(d.check(1, 0, 5, 9), Ok(SequenceCheck::Duplicate(*s.get(1).unwrap().batches.back().unwrap())));
        assert_eq!(d.check(1, 0, 10, 10), Ok(SequenceCheck::Append));
        let mut torn = s.encode_snapshot();
        torn.truncate(torn.len() - 1);
        assert!(ProducerStateManager::decode_snapshot(&torn).is_err());
        let mut flipped = s.encode_snapshot();
        flipped[12] ^= 1;
        assert!(ProducerStateManager::decode_snapshot(&flipped).is_err());
        let mut e = s.clone();
        assert_eq!(e.remove_expired(350, 100), 1);
        assert!(e.get(7).is_some() && e.get(1).is_none());
    }

    #[test]
    fn snapshot_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStateManager::new();
        for off in [10, 20, 30] {
            s.update(1, 0, off as i32, off as i32, (off, off), 1);
            write_snapshot(dir.path(), off, &s).unwrap();
        }
        assert_eq!(list_snapshots(dir.path()).unwrap(), vec![20, 30]);
        let (off, loaded) = load_latest_snapshot(dir.path(), 25, 25).unwrap().unwrap();
        assert_eq!(off, 20);
        assert_eq!(loaded.get(1).unwrap().last_seq(), Some(20));
        assert_eq!(list_snapshots(dir.path()).unwrap(), vec![20]);
    }

    /// A client's view of one producer: it sends batches in order, sometimes retries one of its
    /// last five, sometimes skips ahead (a gap) or goes back to an older epoch. The model says
    /// what must happen; the manager must agree and the log must never hold a duplicate.
    #[derive(Debug, Clone)]
    enum Op {
        Send { records: i32 },
        Retry { back: usize },
        Gap { skip: i32 },
        BumpEpoch,
        OldEpoch,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (1..5i32).prop_map(|records| Op::Send { records }),
            3 => (0..8usize).prop_map(|back| Op::Retry { back }),
            1 => (1..4i32).prop_map(|skip| Op::Gap { skip }),
            1 => Just(Op::BumpEpoch),
            1 => Just(Op::OldEpoch),
        ]
    }

    proptest! {
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 1..200)) {
            let mut s = ProducerStateManager::new();
            let mut leo = 0i64;
            let mut epoch = 0i16;
            let mut next_seq = 0i32;
            // Model: every batch written in the current epoch, (first_seq, last_seq, first_offset).
            let mut written: Vec<(i32, i32, i64)> = Vec::new();
            for op in ops {
                match op {
                    Op::Send { records } => {
                        let last = next_seq + records - 1;
                        prop_assert_eq!(s.check(9, epoch, next_seq, last), Ok(SequenceCheck::Append));
                        s.update(9, epoch, next_seq, last, (leo, leo + i64::from(records) - 1), 0);
                        written.push((next_seq, last, leo));
                        leo += i64::from(records);
                        next_seq = last + 1;
                    }
                    Op::Retry { back } => {
                        if back >= written.len() { continue; }
                        let (first, last, off) = written[written.len() - 1 - back];
                        let got = s.check(9, epoch, first, last);
                        if back < MAX_BATCHES_PER_PRODUCER {
                            prop_assert!(matches!(got, Ok(SequenceCheck::Duplicate(m)) if m.first_offset == off));
                        } else {
                            // Too old to be recognised: never appended again either.
                            let is_out_of_order = matches!(got, Err(SequenceError::OutOfOrderSequence { .. }));
                            prop_assert!(is_out_of_order);
                        }
                    }
                    Op::Gap { skip } => {
                        let got = s.check(9, epoch, next_seq + skip, next_seq + skip);
                        if s.get(9).is_none() {
                            prop_assert_eq!(got, Ok(SequenceCheck::Append));
                        } else {
                            let is_out_of_order = matches!(got, Err(SequenceError::OutOfOrderSequence { .. }));
                            prop_assert!(is_out_of_order);
                        }
                    }
                    Op::BumpEpoch => {
                        epoch += 1;
                        next_seq = 0;
                        written.clear();
                    }
                    Op::OldEpoch => {
                        if epoch == 0 || s.get(9).is_none_or(|e| e.epoch != epoch) { continue; }
                        let got = s.check(9, epoch - 1, next_seq, next_seq);
                        let is_fenced = matches!(got, Err(SequenceError::InvalidProducerEpoch { .. }));
                        prop_assert!(is_fenced);
                    }
                }
            }
        }
    }
}
