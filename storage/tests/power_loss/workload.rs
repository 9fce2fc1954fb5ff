//! The power-loss workload shared by the `power_loss` test and example: random appends from
//! idempotent and transactional producers (COMMIT and ABORT markers), rolls, explicit and
//! background (roll) flushes and checkpoints, on half the seeds DeleteRecords and retention,
//! then a simulated power loss
//! ([`sluice_storage::io::sim::crash`]) and a restart through the real recovery code, several
//! times per seed, sometimes twice in a row with no write in between.
//!
//! After every restart it checks:
//! - opening the log never fails or panics, and the log reads back whole;
//! - the surviving log is a prefix of what was written (no gap, no later segment without an
//!   earlier one, no invented or reordered batch), so a committed transaction is never half
//!   there: its data precedes its marker;
//! - everything below the recovery point at the crash survived (the fsynced part), and in
//!   durable mode (`flush.messages=1`) every acknowledged append;
//! - the aborted transactions (rebuilt `.txnindex`) are exactly those whose ABORT survived;
//! - producer state: a retry of each producer's last surviving batch is recognised as a
//!   duplicate (nothing is written twice);
//! - a second power loss right after recovery changes nothing (recovery's cuts and deletions
//!   are durable).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::batch::{BatchIter, RecordBatch};
use sluice_protocol::records::{BatchBuilder, Record};
use sluice_storage::io::sim::{self, Rng};
use sluice_storage::{LogConfig, LogManager, LogManagerConfig, TopicPartition, UnifiedLog};

const IDEMPOTENT_PRODUCERS: i64 = 3;
const TXN_PRODUCERS: i64 = 2;
const TXN_PID_BASE: i64 = 100;
const ROUNDS: usize = 3;

/// What one seed did and found.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub durable: bool,
    pub crashes: usize,
    pub appends: usize,
    /// Batches written but not fsynced that a crash took (allowed by the default mode).
    pub batches_lost: usize,
    pub files_torn: usize,
    pub dirs_reverted: usize,
    pub findings: Vec<String>,
}

#[derive(Debug, Clone)]
enum Kind {
    Data { pid: i64, seq: i32, transactional: bool },
    Marker { pid: i64, commit: bool },
}

/// One batch the model expects in the log.
#[derive(Debug, Clone)]
struct Written {
    base_offset: i64,
    next_offset: i64,
    kind: Kind,
    /// The stored bytes of data batches (markers carry a wall-clock timestamp).
    stored: Option<Bytes>,
    /// The batch as the producer sent it (for duplicate retries).
    sent: Option<RecordBatch>,
}

fn tp() -> TopicPartition {
    TopicPartition { topic: "t".into(), partition: 0 }
}

fn data_batch(rng: &mut Rng, pid: i64, seq: i32, transactional: bool) -> RecordBatch {
    let count = 1 + rng.below(3) as usize;
    let records = (0..count)
        .map(|i| {
            let len = 10 + rng.below(200) as usize;
            let fill = (rng.next_u64() & 0xff) as u8;
            Record {
                offset_delta: i as i32,
                key: Some(Bytes::from(format!("p{pid}-s{seq}-{i}"))),
                value: Some(Bytes::from(vec![fill; len])),
                ..Default::default()
            }
        })
        .collect();
    let bytes = BatchBuilder {
        transactional,
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: seq,
        base_timestamp: 1_700_000_000_000,
        records,
        ..Default::default()
    }
    .build()
    .expect("batch builds");
    RecordBatch::new(bytes).expect("batch parses")
}

fn open(root: &Path, config: &LogConfig) -> Result<(Arc<LogManager>, Arc<UnifiedLog>), String> {
    let c = config.clone();
    let (mgr, _) = LogManager::open(LogManagerConfig { log_dirs: vec![root.to_path_buf()] }, &move |_: &str| c.clone())
        .map_err(|e| format!("open failed: {e}"))?;
    let p = match mgr.get(&tp()) {
        Some(p) => p,
        None => mgr.get_or_create(&tp(), [7; 16], config.clone()).map_err(|e| format!("create failed: {e}"))?,
    };
    Ok((mgr, p))
}

/// Disables the simulation of a root however the seed ends.
struct SimGuard(PathBuf);

impl Drop for SimGuard {
    fn drop(&mut self) {
        let _ = sim::disable(&self.0);
    }
}

/// Runs one seed: even seeds in default mode, odd seeds in durable mode; every other pair of
/// seeds also deletes records now and then (DeleteRecords and time retention).
pub fn run_seed(seed: u64) -> Outcome {
    run_seed_with(seed, seed % 4 >= 2)
}

/// [`run_seed`] with retention chosen by the caller (seeds found before retention joined the
/// workload replay without it).
pub fn run_seed_with(seed: u64, retention: bool) -> Outcome {
    let durable = seed % 2 == 1;
    let mut outcome = Outcome { durable, ..Outcome::default() };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed, durable, retention, &mut outcome)));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(finding)) => outcome.findings.push(format!("seed {seed}: {finding}")),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            outcome.findings.push(format!("seed {seed}: panic: {msg}"));
        }
    }
    outcome
}

fn run(seed: u64, durable: bool, retention: bool, outcome: &mut Outcome) -> Result<(), String> {
    let mut rng = Rng::new(seed ^ 0x5eed_0000_0000_0000);
    // Its own stream, so that seeds without retention run exactly as they always did.
    let mut retention_rng = Rng::new(seed ^ 0x7e7e_0000_0000_0000);
    // tmpfs when there is one: the simulation rewrites whole trees at every crash, and a
    // journaling filesystem makes that the slowest part of a seed.
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
    let tmp = tmp.map_err(|e| e.to_string())?;
    let root = tmp.path().join("logs");
    std::fs::create_dir(&root).map_err(|e| e.to_string())?;
    sim::enable(&root).map_err(|e| e.to_string())?;
    let _guard = SimGuard(root.clone());
    let config = LogConfig {
        segment_bytes: 300 + rng.below(1500),
        index_interval_bytes: 128,
        flush_messages: if durable { 1 } else { i64::MAX },
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    };
    let mut model: Vec<Written> = Vec::new();
    let mut next_seq: BTreeMap<i64, i32> = BTreeMap::new();
    // The log start offset as last acknowledged (records below it are deleted for good).
    let mut log_start = 0;
    for round in 0..ROUNDS {
        let (mgr, p) = open(&root, &config)?;
        let steps = 5 + rng.below(60);
        for _ in 0..steps {
            step(&mut rng, &mgr, &p, &mut model, &mut next_seq, outcome).map_err(|e| format!("round {round}: {e}"))?;
            if retention && retention_rng.below(25) == 0 {
                delete(&mut retention_rng, &mgr, &p, &model).map_err(|e| format!("round {round}: {e}"))?;
                log_start = p.offsets().log_start_offset;
            }
        }
        // Everything below the recovery point must survive; in durable mode every append was
        // acknowledged only once fsynced.
        let recovery_point = p.recovery_point();
        let log_end = p.offsets().log_end_offset;
        if durable && recovery_point < log_end {
            return Err(format!(
                "round {round}: durable mode acknowledged {log_end} with recovery point {recovery_point}"
            ));
        }
        drop(p);
        drop(mgr);
        let stats = sim::crash(&root, rng.next_u64()).map_err(|e| format!("crash: {e}"))?;
        outcome.crashes += 1;
        outcome.files_torn += stats.files_torn;
        outcome.dirs_reverted += stats.dirs_reverted;
        let before = model.len();
        let (mgr, p) = open(&root, &config)?;
        check(&p, &mut model, recovery_point, log_start).map_err(|e| format!("round {round}: {e}"))?;
        log_start = p.offsets().log_start_offset;
        outcome.batches_lost += before - model.len();
        if rng.below(3) == 0 {
            // A second power loss right after recovery, before anything else is written.
            let survived = read_log(&p)?;
            drop(p);
            drop(mgr);
            sim::crash(&root, rng.next_u64()).map_err(|e| format!("crash: {e}"))?;
            outcome.crashes += 1;
            let (_mgr, p) = open(&root, &config)?;
            let again = read_log(&p)?;
            if again.iter().map(RecordBatch::as_bytes).ne(survived.iter().map(RecordBatch::as_bytes)) {
                return Err(format!(
                    "round {round}: a second crash right after recovery changed the log ({} -> {} batches)",
                    survived.len(),
                    again.len()
                ));
            }
        }
        // Producers go on from what survived.
        next_seq.clear();
        for w in &model {
            if let Kind::Data { pid, seq, .. } = w.kind {
                next_seq.insert(pid, seq + (w.next_offset - w.base_offset) as i32);
            }
        }
    }
    Ok(())
}

fn step(
    rng: &mut Rng,
    mgr: &LogManager,
    p: &UnifiedLog,
    model: &mut Vec<Written>,
    next_seq: &mut BTreeMap<i64, i32>,
    outcome: &mut Outcome,
) -> Result<(), String> {
    match rng.below(20) {
        0..=9 => {
            let pid = rng.below(IDEMPOTENT_PRODUCERS as u64) as i64;
            append_data(rng, p, model, next_seq, pid, false)?;
            outcome.appends += 1;
        }
        10..=13 => {
            let pid = TXN_PID_BASE + rng.below(TXN_PRODUCERS as u64) as i64;
            append_data(rng, p, model, next_seq, pid, true)?;
            outcome.appends += 1;
        }
        14..=15 => {
            let pid = TXN_PID_BASE + rng.below(TXN_PRODUCERS as u64) as i64;
            if open_txn(model, pid).is_some() {
                let commit = rng.below(2) == 0;
                let info = p.append_marker(pid, 0, 0, commit, 0).map_err(|e| format!("marker: {e}"))?;
                model.push(Written {
                    base_offset: info.first_offset,
                    next_offset: info.last_offset + 1,
                    kind: Kind::Marker { pid, commit },
                    stored: None,
                    sent: None,
                });
                outcome.appends += 1;
            }
        }
        16 => p.flush().map_err(|e| format!("flush: {e}"))?,
        17..=18 => {
            mgr.flush_rolled_segments().map_err(|e| format!("roll flush: {e}"))?;
        }
        _ => mgr.checkpoint().map_err(|e| format!("checkpoint: {e}"))?,
    }
    Ok(())
}

/// Deletes records the way the broker does: DeleteRecords up to a batch boundary (then the
/// checkpoint the handler writes), or a retention pass (the batches' timestamps are long past
/// `retention.ms`, so every segment below the high watermark but the active one goes).
fn delete(rng: &mut Rng, mgr: &LogManager, p: &UnifiedLog, model: &[Written]) -> Result<(), String> {
    if model.is_empty() {
        return Ok(());
    }
    if rng.below(4) == 0 {
        mgr.apply_retention(sluice_storage_now_ms()).map_err(|e| format!("retention: {e}"))?;
    } else {
        let offsets = p.offsets();
        let target = model[rng.below(model.len() as u64) as usize].base_offset;
        let target = target.clamp(offsets.log_start_offset, offsets.high_watermark);
        p.delete_records(target).map_err(|e| format!("delete records: {e}"))?;
        mgr.checkpoint().map_err(|e| format!("checkpoint: {e}"))?;
    }
    Ok(())
}

fn sluice_storage_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn append_data(
    rng: &mut Rng,
    p: &UnifiedLog,
    model: &mut Vec<Written>,
    next_seq: &mut BTreeMap<i64, i32>,
    pid: i64,
    transactional: bool,
) -> Result<(), String> {
    let seq = next_seq.get(&pid).copied().unwrap_or(0);
    let b = data_batch(rng, pid, seq, transactional);
    let info = p.append(std::slice::from_ref(&b), 0).map_err(|e| format!("append pid {pid} seq {seq}: {e}"))?;
    p.advance_high_watermark(info.last_offset + 1);
    // Sequences count records, not batches.
    next_seq.insert(pid, seq + b.last_offset_delta() + 1);
    model.push(Written {
        base_offset: info.first_offset,
        next_offset: info.last_offset + 1,
        kind: Kind::Data { pid, seq, transactional },
        stored: Some(b.with_offset(info.first_offset, 0).into_bytes()),
        sent: Some(b),
    });
    Ok(())
}

/// The first offset of `pid`'s open transaction in the model, if it has one.
fn open_txn(model: &[Written], pid: i64) -> Option<i64> {
    let mut first = None;
    for w in model {
        match w.kind {
            Kind::Data { pid: p, transactional: true, .. } if p == pid => {
                first.get_or_insert(w.base_offset);
            }
            Kind::Marker { pid: p, .. } if p == pid => first = None,
            _ => {}
        }
    }
    first
}

fn read_log(p: &UnifiedLog) -> Result<Vec<RecordBatch>, String> {
    let offsets = p.offsets();
    let r = p
        .read(offsets.log_start_offset, usize::MAX, i64::MAX, false)
        .map_err(|e| format!("reading the recovered log: {e}"))?;
    let mut it = BatchIter::new(r.records);
    let mut out = Vec::new();
    for b in it.by_ref() {
        let b = b.map_err(|e| format!("unreadable batch: {e}"))?;
        b.validate().map_err(|e| format!("invalid batch at {}: {e}", b.base_offset()))?;
        out.push(b);
    }
    if !it.remaining().is_empty() {
        return Err("a partial batch was read".into());
    }
    Ok(out)
}

/// Checks the recovered log against the model and cuts the model to what survived.
/// `log_start` is the log start offset acknowledged before the crash.
fn check(p: &UnifiedLog, model: &mut Vec<Written>, recovery_point: i64, log_start: i64) -> Result<(), String> {
    let log = read_log(p)?;
    let offsets = p.offsets();
    let (start, log_end) = (offsets.log_start_offset, offsets.log_end_offset);
    if start < log_start.min(log_end) {
        return Err(format!("deleted records came back: log start {start}, {log_start} before the crash"));
    }
    // What survived must be whole model batches, from the one holding the log start on.
    let kept = model.iter().take_while(|w| w.next_offset <= log_end).count();
    if kept < model.len() && model[kept].base_offset < log_end {
        return Err(format!("log end offset {log_end} falls inside the batch at {}", model[kept].base_offset));
    }
    if kept > 0 && model[kept - 1].next_offset != log_end && log_end > start {
        return Err(format!("log end offset {log_end} is past the batches written"));
    }
    let first = model.iter().take(kept).position(|w| w.next_offset > start).unwrap_or(kept);
    let expected = &model[first..kept];
    if log.len() != expected.len() {
        return Err(format!("{} batches read from {start} to {log_end}, {} written there", log.len(), expected.len()));
    }
    for (got, want) in log.iter().zip(expected) {
        let same = match (&want.kind, &want.stored) {
            (Kind::Data { .. }, Some(stored)) => got.as_bytes() == stored,
            (Kind::Marker { pid, .. }, _) => {
                got.is_control() && got.producer_id() == *pid && got.base_offset() == want.base_offset
            }
            _ => false,
        };
        if !same {
            return Err(format!(
                "the batch at offset {} is not what was written there (expected {:?} at {})",
                got.base_offset(),
                want.kind,
                want.base_offset
            ));
        }
    }
    model.truncate(kept);
    let survived_end = model.last().map_or(0, |w| w.next_offset).max(start);
    if log_end != survived_end {
        return Err(format!("log end offset {log_end} but the surviving batches end at {survived_end}"));
    }
    if survived_end < recovery_point {
        return Err(format!(
            "fsynced data lost: the log ends at {survived_end}, below the recovery point {recovery_point}"
        ));
    }
    // Aborts of the surviving log. An entry's first offset is exact unless the transaction
    // began below the log start: then recovery may only know it from its first batch still in
    // the log, which covers every aborted record a consumer can still read.
    let mut want_aborts = Vec::new();
    let mut open: BTreeMap<i64, (i64, Option<i64>)> = BTreeMap::new();
    for w in model.iter() {
        match w.kind {
            Kind::Data { pid, transactional: true, .. } => {
                let entry = open.entry(pid).or_insert((w.base_offset, None));
                if w.base_offset >= start {
                    entry.1.get_or_insert(w.base_offset);
                }
            }
            Kind::Marker { pid, commit } => {
                if let Some((first, first_readable)) = open.remove(&pid) {
                    if !commit && w.base_offset >= start {
                        want_aborts.push((pid, first, first_readable.unwrap_or(w.base_offset), w.base_offset));
                    }
                }
            }
            _ => {}
        }
    }
    // Aborts whose markers were deleted may or may not still be indexed (their files go with
    // the segment holding the marker).
    let got_aborts: Vec<(i64, i64, i64)> = p
        .all_aborted_transactions()
        .iter()
        .map(|a| (a.producer_id, a.first_offset, a.last_offset))
        .filter(|a| a.2 >= start)
        .collect();
    let matches = got_aborts.len() == want_aborts.len()
        && got_aborts
            .iter()
            .zip(&want_aborts)
            .all(|(got, want)| got.0 == want.0 && got.2 == want.3 && (want.1..=want.2).contains(&got.1));
    if !matches {
        return Err(format!(
            "aborted transactions {got_aborts:?}, expected (pid, first, first readable, last) {want_aborts:?}"
        ));
    }
    // A retry of each producer's last surviving batch is a duplicate: nothing is written twice.
    let mut last: BTreeMap<i64, &Written> = BTreeMap::new();
    for w in model.iter() {
        // Transactional batches are retried only inside their transaction.
        if let Kind::Data { pid, transactional: false, .. } = w.kind {
            last.insert(pid, w);
        }
    }
    // Producers whose last batch was deleted may be forgotten (as in Kafka).
    last.retain(|_, w| w.base_offset >= start);
    for (pid, w) in last {
        let Some(sent) = &w.sent else { continue };
        let info = p.append(std::slice::from_ref(sent), 0).map_err(|e| format!("retry of producer {pid}: {e}"))?;
        if info.first_offset != w.base_offset || p.offsets().log_end_offset != log_end {
            return Err(format!(
                "a retry of producer {pid}'s last batch (offset {}) was appended again at {}",
                w.base_offset, info.first_offset
            ));
        }
    }
    Ok(())
}
