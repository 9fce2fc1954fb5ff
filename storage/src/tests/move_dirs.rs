//! Moving a partition between log dirs (AlterReplicaLogDirs, `future.rs`): the copy keeps every
//! batch byte for byte at its offset with producer state and aborted transactions, appends and
//! reads go on during the copy, the swap keeps the one `UnifiedLog` every caller holds, and a
//! crash at any point — while copying, or at each step of the swap — leaves exactly one copy of
//! the partition with every record after the restart's reconciliation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sluice_protocol::batch::RecordBatch;
use sluice_protocol::records::{BatchBuilder, Record};

use super::*;
use crate::{CleanerConfig, FutureStart, LogConfig, MoveCrashPoint, StorageError, UnifiedLog};

/// The broker's metadata as far as moves go: the recorded log dir of each partition, kept
/// across "restarts" of the manager.
#[derive(Clone, Default)]
struct Assignments(Arc<Mutex<HashMap<TopicPartition, PathBuf>>>);

impl Assignments {
    fn commit_for<'a>(&'a self, tp: &'a TopicPartition) -> impl Fn(&Path) -> Result<(), String> + 'a {
        move |dir: &Path| {
            self.0.lock().unwrap().insert(tp.clone(), dir.to_path_buf());
            Ok(())
        }
    }

    fn get(&self, tp: &TopicPartition) -> Option<PathBuf> {
        self.0.lock().unwrap().get(tp).cloned()
    }
}

fn config() -> LogConfig {
    LogConfig { segment_bytes: 2048, index_interval_bytes: 128, ..LogConfig::default() }
}

fn idempotent(pid: i64, seq: i32, count: usize) -> RecordBatch {
    let bytes = BatchBuilder {
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: seq,
        base_timestamp: crate::util::now_ms(),
        records: (0..count)
            .map(|i| Record {
                offset_delta: i as i32,
                key: Some(Bytes::from(format!("k{}", seq as usize + i))),
                value: Some(Bytes::from(vec![b'x'; 100])),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
    .build()
    .unwrap();
    RecordBatch::new(bytes).unwrap()
}

fn txn(pid: i64, seq: i32) -> RecordBatch {
    let bytes = BatchBuilder {
        transactional: true,
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: seq,
        base_timestamp: crate::util::now_ms(),
        records: vec![Record { value: Some(Bytes::from_static(b"in-txn")), ..Default::default() }],
        ..Default::default()
    }
    .build()
    .unwrap();
    RecordBatch::new(bytes).unwrap()
}

fn append(p: &UnifiedLog, b: RecordBatch) {
    let info = p.append(&[b], 0).unwrap();
    p.advance_high_watermark(info.last_offset + 1);
}

/// Plain batches, an idempotent producer, an aborted and a committed transaction: several
/// segments' worth.
fn fill(p: &UnifiedLog, rounds: usize) {
    let mut seq = p.producer_entry(7).and_then(|e| e.batches.back().map(|b| b.last_seq + 1)).unwrap_or(0);
    for i in 0..rounds {
        append(p, batch(3, 200, 1_000 + i as i64));
        append(p, idempotent(7, seq, 2));
        seq += 2;
        if i % 4 == 0 {
            append(p, txn(20 + i as i64, 0));
            let info = p.append_marker(20 + i as i64, 0, 1, i % 8 != 0, 0).unwrap();
            p.advance_high_watermark(info.last_offset + 1);
        }
    }
}

/// Every batch from the log start, as stored.
fn contents(p: &UnifiedLog) -> Vec<Bytes> {
    let o = p.offsets();
    let mut out = Vec::new();
    let mut next = o.log_start_offset;
    while next < o.log_end_offset {
        let read = p.read(next, 1 << 20, i64::MAX, true).unwrap();
        let batches = batches_of(&read.records);
        if batches.is_empty() {
            break;
        }
        next = batches.last().unwrap().last_offset() + 1;
        out.extend(batches.into_iter().map(RecordBatch::into_bytes));
    }
    out
}

/// What must survive a move unchanged.
#[derive(PartialEq)]
struct Snapshot {
    offsets: crate::LogOffsets,
    contents: Vec<Bytes>,
    /// Producer 7's epoch and its last batch (sequences and offsets; a snapshot keeps only the
    /// last batch, and times differ after a replay).
    producer: Option<ProducerView>,
    aborted: Vec<crate::txn_index::AbortedTxn>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.contents.hash(&mut h);
        f.debug_struct("Snapshot")
            .field("offsets", &self.offsets)
            .field("batches", &self.contents.len())
            .field("contents_hash", &h.finish())
            .field("producer", &self.producer)
            .field("aborted", &self.aborted)
            .finish()
    }
}

/// Reopens after a crash or a clean shutdown the way the broker does: reconcile, then the high
/// watermark at the log end (the only replica).
fn reopen(
    d1: &Path,
    d2: &Path,
    assigned: &dyn Fn(&TopicPartition) -> Option<PathBuf>,
) -> (Arc<LogManager>, crate::ReconcileReport) {
    let (mgr, _) = open_with(&[d1, d2], config());
    let report = mgr.reconcile_log_dirs(assigned).unwrap();
    for p in mgr.partitions() {
        p.advance_high_watermark(p.offsets().log_end_offset);
    }
    (mgr, report)
}

fn snapshot(p: &UnifiedLog) -> Snapshot {
    Snapshot {
        offsets: p.offsets(),
        contents: contents(p),
        producer: producer_view(p),
        aborted: p.aborted_transactions(p.offsets().log_start_offset, i64::MAX),
    }
}

/// A producer's epoch and its batches as (first seq, last seq, first offset, last offset).
type ProducerView = (i16, Vec<(i32, i32, i64, i64)>);

fn producer_view(p: &UnifiedLog) -> Option<ProducerView> {
    p.producer_entry(7).map(|e| {
        (e.epoch, e.batches.back().iter().map(|b| (b.first_seq, b.last_seq, b.first_offset, b.last_offset)).collect())
    })
}

fn copy_until_caught_up(mgr: &LogManager, tp: &TopicPartition) {
    for _ in 0..10_000 {
        if mgr.copy_to_future(tp, 4096).unwrap().unwrap().caught_up {
            return;
        }
    }
    panic!("future replica never caught up");
}

/// Partition dirs (current, future, deleting) of `tp` under `dir`.
fn dirs_of(dir: &Path, tp: &TopicPartition) -> Vec<String> {
    let prefix = crate::layout::partition_dir_name(tp);
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    v.sort();
    v
}

fn setup(d1: &Path, d2: &Path, rounds: usize) -> (Arc<LogManager>, Arc<UnifiedLog>, TopicPartition) {
    let (mgr, _) = open_with(&[d1, d2], config());
    let tp = tp("moving", 0);
    let p = mgr.get_or_create_in(&tp, TOPIC_ID, config(), Some(d1)).unwrap();
    assert_eq!(p.log_dir_path(), d1);
    fill(&p, rounds);
    (mgr, p, tp)
}

#[test]
fn a_move_copies_every_batch_while_appends_go_on_and_swaps_in_place() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mgr, p, tp) = setup(d1.path(), d2.path(), 24);
    assert!(p.segment_base_offsets().len() > 3, "several segments to copy");
    // A log start in the middle of a segment (DeleteRecords).
    p.delete_records(5).unwrap();

    assert_eq!(mgr.start_future(&tp, d2.path()).unwrap(), FutureStart::Started);
    assert_eq!(mgr.start_future(&tp, d2.path()).unwrap(), FutureStart::AlreadyMoving);
    assert_eq!(dirs_of(d2.path(), &tp).len(), 1);
    assert!(dirs_of(d2.path(), &tp)[0].ends_with("-future"));
    // Partly copied: DescribeLogDirs shows the future replica in the target with its lag.
    mgr.copy_to_future(&tp, 4096).unwrap().unwrap();
    let infos = mgr.dir_infos();
    let target: Vec<_> = infos.iter().find(|(d, _, _)| d == d2.path()).unwrap().2.clone();
    assert_eq!(target.len(), 1);
    assert!(target[0].is_future);
    let future_leo = mgr.future(&tp).unwrap().offsets().log_end_offset;
    assert_eq!(target[0].offset_lag, p.offsets().log_end_offset - future_leo);
    assert!(target[0].offset_lag > 0);
    let source: Vec<_> = infos.iter().find(|(d, _, _)| d == d1.path()).unwrap().2.clone();
    assert_eq!((source.len(), source[0].is_future, source[0].offset_lag), (1, false, 0));

    // Producers keep writing while it copies; consumers keep reading.
    fill(&p, 6);
    assert!(!contents(&p).is_empty());
    copy_until_caught_up(&mgr, &tp);
    fill(&p, 2);
    let before = snapshot(&p);
    let assignments = Assignments::default();
    assert!(mgr.complete_future(&tp, &assignments.commit_for(&tp)).unwrap());

    // The same object now lives in d2, with everything it had.
    assert_eq!(p.log_dir_path(), d2.path());
    assert!(Arc::ptr_eq(&p, &mgr.get(&tp).unwrap()));
    assert!(mgr.future(&tp).is_none());
    assert_eq!(assignments.get(&tp).as_deref(), Some(d2.path()));
    assert_eq!(snapshot(&p), before);
    assert_eq!(dirs_of(d1.path(), &tp), Vec::<String>::new());
    assert_eq!(dirs_of(d2.path(), &tp), vec!["moving-0".to_string()]);
    // The producer's next batch continues its sequence; a retry is still a duplicate.
    let leo = p.offsets().log_end_offset;
    let next_seq = before.producer.as_ref().unwrap().1.last().unwrap().1 + 1;
    append(&p, idempotent(7, next_seq, 2));
    assert_eq!(p.offsets().log_end_offset, leo + 2);
    let dup = p.append(&[idempotent(7, next_seq, 2)], 0).unwrap();
    assert_eq!(dup.first_offset, leo);
    p.flush().unwrap();
    let after = snapshot(&p);

    // A clean restart and a crash both find it in d2, whole.
    mgr.shutdown().unwrap();
    drop((p, mgr));
    let (mgr, report) = reopen(d1.path(), d2.path(), &|t| assignments.get(t));
    assert_eq!(report, Default::default());
    let p = mgr.get(&tp).unwrap();
    assert_eq!(p.log_dir_path(), d2.path());
    assert_eq!(snapshot(&p), after);
    append(&p, batch(1, 10, 5));
    drop((p, mgr));
    let (mgr, _) = reopen(d1.path(), d2.path(), &|t| assignments.get(t));
    let p = mgr.get(&tp).unwrap();
    assert_eq!(p.log_dir_path(), d2.path());
    assert_eq!(p.offsets().log_end_offset, after.offsets.log_end_offset + 1);
    assert_eq!(contents(&p)[..after.contents.len()], after.contents[..]);
}

#[test]
fn moving_to_the_current_dir_cancels_a_move_and_errors_are_kafkas() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mgr, p, tp) = setup(d1.path(), d2.path(), 4);
    assert_eq!(mgr.start_future(&tp, d1.path()).unwrap(), FutureStart::AlreadyThere);
    assert_eq!(mgr.start_future(&tp, d2.path()).unwrap(), FutureStart::Started);
    mgr.copy_to_future(&tp, 4096).unwrap();
    // Back to where it is: the move is cancelled and its copy deleted.
    assert_eq!(mgr.start_future(&tp, d1.path()).unwrap(), FutureStart::AlreadyThere);
    assert!(mgr.future(&tp).is_none());
    assert_eq!(dirs_of(d2.path(), &tp), Vec::<String>::new());
    assert_eq!(p.log_dir_path(), d1.path());

    assert!(matches!(mgr.start_future(&tp, Path::new("/nowhere")), Err(StorageError::LogDirNotFound(_))));
    assert!(matches!(mgr.configured_log_dir("/nowhere"), Err(StorageError::LogDirNotFound(_))));
    assert_eq!(mgr.configured_log_dir(&d2.path().display().to_string()).unwrap(), d2.path());
    assert!(matches!(mgr.start_future(&crate::tests::tp("nope", 0), d2.path()), Err(StorageError::Deleted(_))));
    // No new move while a log dir is offline (a future replica must never exist twice).
    let d3 = tempfile::tempdir().unwrap();
    drop((p, mgr));
    let (mgr, _) = open_with(&[d1.path(), d2.path(), d3.path()], config());
    mgr.fail_log_dir_for_test(d3.path());
    assert!(matches!(mgr.start_future(&tp, d2.path()), Err(StorageError::LogDirOffline(_))));
    assert!(matches!(mgr.start_future(&tp, d3.path()), Err(StorageError::LogDirOffline(_))));
}

#[test]
fn a_partition_asked_for_before_it_exists_is_created_there() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mgr, _) = open_with(&[d1.path(), d2.path()], config());
    // The least-loaded dir would be d1.
    assert!(mgr.set_preferred_log_dir(&tp("later", 3), d2.path()));
    let p = mgr.get_or_create(&tp("later", 3), TOPIC_ID, config()).unwrap();
    assert_eq!(p.log_dir_path(), d2.path());
    assert_eq!(mgr.preferred_log_dir(&tp("later", 3)), None, "used once");
    for i in 0..crate::MAX_PREFERRED_LOG_DIRS {
        mgr.set_preferred_log_dir(&tp("x", i as i32), d2.path());
    }
    assert!(!mgr.set_preferred_log_dir(&tp("one-too-many", 0), d2.path()), "bounded");
}

#[test]
fn a_crash_while_copying_resumes_the_move() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mgr, p, tp) = setup(d1.path(), d2.path(), 16);
    mgr.start_future(&tp, d2.path()).unwrap();
    for _ in 0..5 {
        mgr.copy_to_future(&tp, 2048).unwrap();
    }
    let copied = mgr.future(&tp).unwrap().offsets().log_end_offset;
    assert!(copied > 0 && copied < p.offsets().log_end_offset);
    let before = snapshot(&p);
    drop((p, mgr)); // kill -9: no clean shutdown

    let assignments = Assignments::default();
    let (mgr, report) = reopen(d1.path(), d2.path(), &|t| assignments.get(t));
    assert_eq!(report.resumed, vec![tp.clone()]);
    let p = mgr.get(&tp).unwrap();
    assert_eq!(p.log_dir_path(), d1.path());
    assert_eq!(snapshot(&p), before);
    let f = mgr.future(&tp).unwrap();
    assert!(f.offsets().log_end_offset <= copied && f.offsets().log_end_offset > 0, "resumes, not from scratch");
    fill(&p, 3);
    copy_until_caught_up(&mgr, &tp);
    let before = snapshot(&p);
    assert!(mgr.complete_future(&tp, &assignments.commit_for(&tp)).unwrap());
    assert_eq!(p.log_dir_path(), d2.path());
    assert_eq!(snapshot(&p), before);
}

#[test]
fn a_crash_at_each_step_of_the_swap_leaves_one_whole_copy() {
    for point in [
        MoveCrashPoint::BeforeDecision,
        MoveCrashPoint::AfterDecision,
        MoveCrashPoint::AfterFutureRenamed,
        MoveCrashPoint::AfterCurrentRenamed,
    ] {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mgr, p, tp) = setup(d1.path(), d2.path(), 12);
        mgr.start_future(&tp, d2.path()).unwrap();
        copy_until_caught_up(&mgr, &tp);
        fill(&p, 2);
        let before = snapshot(&p);
        let assignments = Assignments::default();
        let crashed = mgr.complete_future_with_crash(&tp, &assignments.commit_for(&tp), Some(point));
        assert!(crashed.is_err(), "{point:?}");
        drop((p, mgr));

        let (mgr, report) = reopen(d1.path(), d2.path(), &|t| assignments.get(t));
        let p = mgr.get(&tp).unwrap();
        let expected = if point == MoveCrashPoint::BeforeDecision { d1.path() } else { d2.path() };
        assert_eq!(p.log_dir_path(), expected, "{point:?}: {report:?}");
        assert_eq!(snapshot(&p).contents, before.contents, "{point:?}");
        assert_eq!(p.offsets().log_end_offset, before.offsets.log_end_offset, "{point:?}");
        assert_eq!(p.offsets().log_start_offset, before.offsets.log_start_offset, "{point:?}");
        assert_eq!(p.aborted_transactions(0, i64::MAX), before.aborted, "{point:?}");
        assert_eq!(producer_view(&p), before.producer, "{point:?}");
        if point == MoveCrashPoint::BeforeDecision {
            // Undecided: the move goes on and completes.
            assert_eq!(report.resumed, vec![tp.clone()]);
            copy_until_caught_up(&mgr, &tp);
            assert!(mgr.complete_future(&tp, &assignments.commit_for(&tp)).unwrap());
            assert_eq!(p.log_dir_path(), d2.path());
            assert_eq!(snapshot(&p).contents, before.contents);
        } else {
            assert!(mgr.future(&tp).is_none(), "{point:?}");
        }
        // Exactly one copy on disk, nothing half-done left.
        assert_eq!(dirs_of(d1.path(), &tp), Vec::<String>::new(), "{point:?}");
        assert_eq!(dirs_of(d2.path(), &tp), vec!["moving-0".to_string()], "{point:?}");
        // And it takes appends at the right offset.
        let leo = p.offsets().log_end_offset;
        append(&p, batch(1, 10, 0));
        assert_eq!(p.offsets().log_end_offset, leo + 1);
    }
}

#[test]
fn a_future_ahead_of_its_current_log_after_a_crash_is_copied_again() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mgr, p, tp) = setup(d1.path(), d2.path(), 8);
    mgr.start_future(&tp, d2.path()).unwrap();
    copy_until_caught_up(&mgr, &tp);
    mgr.future(&tp).unwrap().flush().unwrap();
    let active = *p.segment_base_offsets().last().unwrap();
    drop((p, mgr));
    // A power loss took the current log's tail (which the future had copied): tear its last
    // batch.
    let file = crate::layout::log_file(&d1.path().join("moving-0"), active);
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(len - 10).unwrap();

    let (mgr, report) = reopen(d1.path(), d2.path(), &|_| None);
    assert_eq!(report.restarted, vec![tp.clone()]);
    let p = mgr.get(&tp).unwrap();
    let f = mgr.future(&tp).unwrap();
    assert!(f.offsets().log_end_offset <= p.offsets().log_end_offset);
    copy_until_caught_up(&mgr, &tp);
    let before = snapshot(&p);
    assert!(mgr.complete_future(&tp, &|_: &Path| Ok(())).unwrap());
    assert_eq!(snapshot(&p).contents, before.contents);
}

#[test]
fn the_future_follows_a_log_start_past_every_batch() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mgr, p, tp) = setup(d1.path(), d2.path(), 6);
    mgr.start_future(&tp, d2.path()).unwrap();
    mgr.copy_to_future(&tp, 1024).unwrap();
    // Everything deleted: the current log has no batch left below its end.
    let leo = p.offsets().log_end_offset;
    assert_eq!(p.delete_records(-1).unwrap(), leo);
    copy_until_caught_up(&mgr, &tp);
    assert!(mgr.complete_future(&tp, &|_: &Path| Ok(())).unwrap());
    assert_eq!(p.log_dir_path(), d2.path());
    let o = p.offsets();
    assert_eq!((o.log_start_offset, o.log_end_offset), (leo, leo));
    append(&p, batch(2, 10, 0));
    assert_eq!(batches_of(&p.read(leo, 1 << 20, i64::MAX, true).unwrap().records)[0].base_offset(), leo);
    // And after a crash.
    drop((p, mgr));
    let (mgr, _) = reopen(d1.path(), d2.path(), &|_| Some(d2.path().to_path_buf()));
    let p = mgr.get(&tp).unwrap();
    assert_eq!((p.offsets().log_start_offset, p.offsets().log_end_offset), (leo, leo + 2));
}

#[test]
fn a_compacted_log_moves_with_its_gaps_and_cleaning_waits() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let compact = LogConfig { cleanup_compact: true, cleanup_delete: false, ..config() };
    let (mgr, _) = open_with(&[d1.path(), d2.path()], compact.clone());
    let tp = tp("compacted", 0);
    let p = mgr.get_or_create_in(&tp, TOPIC_ID, compact.clone(), Some(d1.path())).unwrap();
    for round in 0..30 {
        append(&p, idempotent(7, round * 4, 4));
        append(&p, batch(4, 150, round as i64));
    }
    let cleaner = CleanerConfig::default();
    assert!(mgr.clean_now(&tp, &cleaner, crate::util::now_ms()).unwrap().is_some());
    mgr.start_future(&tp, d2.path()).unwrap();
    // Cleaning waits while the partition moves.
    assert!(mgr.clean_now(&tp, &cleaner, crate::util::now_ms()).unwrap().is_none());
    assert!(mgr.clean_filthiest(&cleaner, crate::util::now_ms()).unwrap().is_none());
    copy_until_caught_up(&mgr, &tp);
    let before = snapshot(&p);
    let cleaned_to = p.cleaner_checkpoint();
    assert!(cleaned_to.is_some());
    assert!(mgr.complete_future(&tp, &|_: &Path| Ok(())).unwrap());
    assert_eq!(snapshot(&p), before);
    assert_eq!(p.cleaner_checkpoint(), cleaned_to);
    // Cleaning resumes once it has moved.
    mgr.clean_now(&tp, &cleaner, crate::util::now_ms()).unwrap();
}

#[test]
fn deleting_a_moving_partition_deletes_both_copies() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mgr, p, tp) = setup(d1.path(), d2.path(), 6);
    mgr.start_future(&tp, d2.path()).unwrap();
    mgr.copy_to_future(&tp, 2048).unwrap();
    mgr.delete(&tp).unwrap();
    assert!(mgr.get(&tp).is_none() && mgr.future(&tp).is_none());
    assert_eq!(dirs_of(d1.path(), &tp), Vec::<String>::new());
    assert_eq!(dirs_of(d2.path(), &tp), Vec::<String>::new());
    assert!(matches!(p.append(&[batch(1, 1, 0)], 0), Err(StorageError::Deleted(_))));
    // The mover finds nothing to do.
    assert!(mgr.copy_to_future(&tp, 1024).unwrap().is_none());
    assert!(!mgr.complete_future(&tp, &|_: &Path| Ok(())).unwrap());
}

#[test]
fn checkpoints_carry_the_future_replica_in_its_own_dir() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mgr, _p, tp) = setup(d1.path(), d2.path(), 6);
    mgr.start_future(&tp, d2.path()).unwrap();
    copy_until_caught_up(&mgr, &tp);
    mgr.future(&tp).unwrap().flush().unwrap();
    mgr.checkpoint().unwrap();
    let read = |d: &Path| {
        crate::checkpoint::read_offset_checkpoint(&d.join(crate::layout::RECOVERY_POINT_CHECKPOINT)).unwrap().unwrap()
    };
    let leo = mgr.future(&tp).unwrap().offsets().log_end_offset;
    assert_eq!(read(d2.path()).get(&tp), Some(&leo));
    assert!(read(d1.path()).contains_key(&tp));
}
