//! Producer state through the partition API: duplicates answered with the original offsets and
//! not written, refused sequences and epochs, and the state rebuilt after a crash from the roll
//! snapshot plus the log tail — also when retention deleted the segments it was built from.

use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::batch::RecordBatch;
use sluice_protocol::records::{BatchBuilder, Record};

use super::{open_with, small_config, tp, TOPIC_ID};
use crate::{LogConfig, LogManager, StorageError, UnifiedLog};

const PID: i64 = 42;

fn idem(epoch: i16, seq: i32, count: usize) -> RecordBatch {
    let bytes = BatchBuilder {
        producer_id: PID,
        producer_epoch: epoch,
        base_sequence: seq,
        base_timestamp: crate::util::now_ms(),
        records: (0..count)
            .map(|i| Record { offset_delta: i as i32, value: Some(Bytes::from(vec![b'x'; 40])), ..Default::default() })
            .collect(),
        ..Default::default()
    }
    .build()
    .unwrap();
    RecordBatch::new(bytes).unwrap()
}

fn config() -> LogConfig {
    LogConfig { segment_bytes: 400, ..small_config() }
}

fn setup(dir: &std::path::Path) -> (Arc<LogManager>, Arc<UnifiedLog>) {
    let (mgr, _) = open_with(&[dir], config());
    let p = mgr.get_or_create(&tp("idem", 0), TOPIC_ID, config()).unwrap();
    (mgr, p)
}

fn append(p: &UnifiedLog, b: &RecordBatch) -> crate::Result<(i64, i64)> {
    p.append(std::slice::from_ref(b), 0).map(|i| (i.first_offset, i.last_offset))
}

#[test]
fn duplicates_are_not_written_and_bad_sequences_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, p) = setup(dir.path());
    assert_eq!(append(&p, &idem(0, 0, 3)).unwrap(), (0, 2));
    assert_eq!(append(&p, &idem(0, 3, 2)).unwrap(), (3, 4));
    assert_eq!(append(&p, &idem(0, 0, 3)).unwrap(), (0, 2), "retry answered with the original offsets");
    assert_eq!(p.offsets().log_end_offset, 5, "and not written");
    assert!(matches!(append(&p, &idem(0, 9, 1)), Err(StorageError::OutOfOrderSequence { last_seq: 4, .. })));
    assert_eq!(append(&p, &idem(1, 0, 1)).unwrap(), (5, 5));
    assert!(matches!(append(&p, &idem(0, 5, 1)), Err(StorageError::InvalidProducerEpoch { current: 1, .. })));
    assert_eq!(p.offsets().log_end_offset, 6);
}

#[test]
fn state_is_rebuilt_after_a_crash_and_survives_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (mgr, p) = setup(dir.path());
    for seq in 0..30 {
        append(&p, &idem(0, seq, 1)).unwrap();
    }
    assert!(p.segment_base_offsets().len() > 3, "rolls happened");
    let snapshots = crate::producer_state::list_snapshots(&p.dir()).unwrap();
    assert!(!snapshots.is_empty() && snapshots.len() <= 2, "{snapshots:?}");
    let before = p.producer_entry(PID).unwrap();
    // Retention takes every segment but the active one.
    p.advance_high_watermark(30);
    p.delete_records(-1).unwrap();
    assert_eq!(p.segment_base_offsets().len(), 1);
    assert_eq!(p.producer_entry(PID), Some(before));
    // Crash: no clean shutdown, no final snapshot.
    drop(p);
    drop(mgr);
    let (mgr, _) = open_with(&[dir.path()], config());
    let p = mgr.get(&tp("idem", 0)).unwrap();
    let entry = p.producer_entry(PID).expect("producer state survived");
    assert_eq!(entry.batches.back().map(|b| (b.last_seq, b.last_offset)), Some((29, 29)));
    assert_eq!(append(&p, &idem(0, 29, 1)).unwrap(), (29, 29), "the last batch is still a duplicate");
    assert!(matches!(append(&p, &idem(0, 31, 1)), Err(StorageError::OutOfOrderSequence { .. })));
    assert_eq!(append(&p, &idem(0, 30, 1)).unwrap(), (30, 30));
    // Clean shutdown writes a snapshot at the log end; the reload replays nothing.
    mgr.shutdown().unwrap();
    drop(p);
    drop(mgr);
    let (mgr, _) = open_with(&[dir.path()], config());
    let p = mgr.get(&tp("idem", 0)).unwrap();
    assert_eq!(p.producer_entry(PID).and_then(|e| e.batches.back().map(|b| b.last_seq)), Some(30));
    assert!(crate::producer_state::list_snapshots(&p.dir()).unwrap().contains(&31));
}

#[test]
fn a_snapshot_past_a_torn_tail_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (mgr, p) = setup(dir.path());
    for seq in 0..10 {
        append(&p, &idem(0, seq, 1)).unwrap();
    }
    let pdir = p.dir();
    let leo = p.offsets().log_end_offset;
    drop(p);
    drop(mgr);
    // A snapshot claiming offsets the log never got (crash between a roll's snapshot and its data).
    let mut ghost = crate::producer_state::ProducerStateManager::new();
    ghost.update(PID, 0, 10, 19, (leo, leo + 9), 0);
    crate::producer_state::write_snapshot(&pdir, leo + 10, &ghost).unwrap();
    let (mgr, _) = open_with(&[dir.path()], config());
    let p = mgr.get(&tp("idem", 0)).unwrap();
    assert_eq!(p.producer_entry(PID).and_then(|e| e.batches.back().map(|b| b.last_seq)), Some(9));
    assert!(!crate::producer_state::list_snapshots(&pdir).unwrap().contains(&(leo + 10)));
}
