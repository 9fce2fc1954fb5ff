//! Transactions in the partition log: open transactions hold the last stable offset back, COMMIT
//! and ABORT markers close them, aborts are indexed (`.txnindex`) for read_committed fetches,
//! the state survives a crash and a clean restart, the cleaner drops aborted data without
//! letting it hide committed values, and a model test of random transactional traffic.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use sluice_protocol::batch::RecordBatch;
use sluice_protocol::records::{BatchBuilder, Record};

use super::{open_with, small_config, tp, TOPIC_ID};
use crate::producer_state::ProducerStateManager;
use crate::txn_index::AbortedTxn;
use crate::{LogConfig, StorageError};

/// A transactional batch of records keyed `key-<k>` (values `txn-<pid>-<k>`).
fn txn_batch(pid: i64, epoch: i16, seq: i32, keys: &[u8]) -> RecordBatch {
    keyed_batch(Some((pid, epoch, seq)), keys)
}

/// A plain batch of records keyed `key-<k>` (values `plain-<k>`).
fn plain(keys: &[u8]) -> RecordBatch {
    keyed_batch(None, keys)
}

fn keyed_batch(txn: Option<(i64, i16, i32)>, keys: &[u8]) -> RecordBatch {
    let (producer_id, producer_epoch, base_sequence) = txn.unwrap_or((-1, -1, -1));
    let bytes = BatchBuilder {
        transactional: txn.is_some(),
        producer_id,
        producer_epoch,
        base_sequence,
        base_timestamp: crate::util::now_ms(),
        records: keys
            .iter()
            .enumerate()
            .map(|(i, k)| Record {
                offset_delta: i as i32,
                key: Some(Bytes::from(format!("key-{k}"))),
                value: Some(Bytes::from(match txn {
                    Some((pid, ..)) => format!("txn-{pid}-{k}"),
                    None => format!("plain-{k}"),
                })),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
    .build()
    .unwrap();
    RecordBatch::new(bytes).unwrap()
}

fn append(p: &crate::UnifiedLog, b: &RecordBatch) -> crate::Result<i64> {
    let info = p.append(std::slice::from_ref(b), 0)?;
    p.advance_high_watermark(info.last_offset + 1);
    Ok(info.first_offset)
}

#[test]
fn open_transactions_bound_the_last_stable_offset_and_aborts_are_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, _) = open_with(&[dir.path()], small_config());
    let p = _mgr.get_or_create(&tp("txn", 0), TOPIC_ID, small_config()).unwrap();
    assert_eq!(append(&p, &txn_batch(1, 0, 0, &[1, 2])).unwrap(), 0);
    assert_eq!(append(&p, &txn_batch(2, 0, 0, &[3])).unwrap(), 2);
    assert_eq!(append(&p, &plain(&[4])).unwrap(), 3);
    let o = p.offsets();
    assert_eq!((o.high_watermark, o.last_stable_offset), (4, 0), "producer 1's open transaction holds the LSO");
    // A non-transactional write while the producer's transaction is open.
    let mut idem = txn_batch(1, 0, 2, &[9]);
    idem = RecordBatch::new({
        let mut b = idem.as_bytes().to_vec();
        b[21..23].copy_from_slice(&0i16.to_be_bytes()); // clear the transactional attribute
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(b)
    })
    .unwrap();
    assert!(matches!(p.append(std::slice::from_ref(&idem), 0), Err(StorageError::InvalidTxnState { producer_id: 1 })));

    p.append_marker(1, 0, 0, true, 0).unwrap(); // offset 4
    assert_eq!(p.offsets().last_stable_offset, 2, "now producer 2's transaction is the oldest open one");
    p.append_marker(2, 0, 0, false, 0).unwrap(); // offset 5
    let o = p.offsets();
    assert_eq!((o.high_watermark, o.last_stable_offset), (6, 6));
    let aborted = AbortedTxn { producer_id: 2, first_offset: 2, last_offset: 5, last_stable_offset: 6 };
    assert_eq!(p.aborted_transactions(0, 6), vec![aborted]);
    assert_eq!(p.aborted_transactions(0, 2), vec![], "a fetch ending before the transaction started");
    assert!(p.dir().join("00000000000000000000.txnindex").exists());
    // A marker of an older epoch is fenced.
    p.append_marker(2, 3, 0, false, 0).unwrap();
    assert!(matches!(p.append_marker(2, 1, 0, true, 0), Err(StorageError::InvalidProducerEpoch { current: 3, .. })));
}

#[test]
fn transaction_state_survives_a_crash_and_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 300, ..small_config() };
    let (mgr, _) = open_with(&[dir.path()], config.clone());
    let p = mgr.get_or_create(&tp("txn", 0), TOPIC_ID, config.clone()).unwrap();
    let mut seq = 0;
    // Aborted transactions in early segments, then one left open.
    for round in 0..6 {
        append(&p, &txn_batch(7, 0, seq, &[round, round + 1])).unwrap();
        seq += 2;
        p.append_marker(7, 0, 0, round % 2 == 0, 0).unwrap();
    }
    let open_at = append(&p, &txn_batch(8, 0, 0, &[50])).unwrap();
    append(&p, &plain(&[51])).unwrap();
    assert!(p.segment_base_offsets().len() > 2, "rolls happened");
    let aborted = p.all_aborted_transactions();
    assert_eq!(aborted.len(), 3);
    p.flush().unwrap();
    let hw = p.offsets().high_watermark;
    drop(p);
    drop(mgr); // a crash: no clean shutdown

    let (mgr, _) = open_with(&[dir.path()], config.clone());
    let p = mgr.get(&tp("txn", 0)).unwrap();
    p.advance_high_watermark(hw);
    assert_eq!(p.all_aborted_transactions(), aborted, "aborts reloaded from .txnindex");
    assert_eq!(p.offsets().last_stable_offset, open_at, "the open transaction still holds the LSO");
    p.append_marker(8, 0, 0, false, 0).unwrap();
    assert_eq!(p.offsets().last_stable_offset, p.offsets().high_watermark);
    mgr.shutdown().unwrap();
    drop(p);
    drop(mgr);

    // Lose every index file and snapshot: a full replay of the log rebuilds the same state.
    for e in std::fs::read_dir(dir.path().join("txn-0")).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".txnindex") || name.ends_with(".snapshot") {
            std::fs::remove_file(&path).unwrap();
        }
    }
    std::fs::remove_file(dir.path().join(".kafka_cleanshutdown")).ok();
    let (mgr, _) = open_with(&[dir.path()], config);
    let p = mgr.get(&tp("txn", 0)).unwrap();
    p.advance_high_watermark(p.offsets().log_end_offset);
    assert_eq!(p.all_aborted_transactions().len(), 4, "rebuilt by replaying the log");
    assert_eq!(p.offsets().last_stable_offset, p.offsets().high_watermark);
}

#[test]
fn the_cleaner_drops_aborted_records_without_hiding_committed_values() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 200,
        cleanup_compact: true,
        cleanup_delete: false,
        file_delete_delay_ms: 0,
        ..small_config()
    };
    let (mgr, _) = open_with(&[dir.path()], config.clone());
    let p = mgr.get_or_create(&tp("txn-compact", 0), TOPIC_ID, config).unwrap();
    append(&p, &plain(&[1, 2])).unwrap();
    // An aborted transaction overwrites key 1; a committed one overwrites key 2.
    append(&p, &txn_batch(5, 0, 0, &[1])).unwrap();
    p.append_marker(5, 0, 0, false, 0).unwrap();
    append(&p, &txn_batch(5, 0, 1, &[2])).unwrap();
    p.append_marker(5, 0, 0, true, 0).unwrap();
    for k in 10..30 {
        append(&p, &plain(&[k])).unwrap();
    }
    let stats = p.clean(1 << 20, crate::util::now_ms()).unwrap().expect("cleaned");
    assert!(stats.records_removed >= 2, "{stats:?}");
    let read = p.read(0, 1 << 20, p.offsets().high_watermark, true).unwrap();
    let mut values = BTreeMap::new();
    for b in sluice_protocol::batch::BatchIter::new(read.records) {
        let b = b.unwrap();
        if b.is_control() {
            continue;
        }
        for r in b.records(1 << 20).unwrap() {
            let k = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            values.insert(k, String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(
        values.get("key-1").map(String::as_str),
        Some("plain-1"),
        "the aborted write is gone, the old value kept"
    );
    assert_eq!(values.get("key-2").map(String::as_str), Some("txn-5-2"), "the committed write won");
}

/// Random transactional traffic of three producers against a model: after every step the
/// first unstable offset and the aborted transactions match, and a snapshot round trip keeps
/// the open transactions.
#[derive(Debug, Clone)]
enum Op {
    Write(i64),
    Commit(i64),
    Abort(i64),
    Plain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3i64).prop_map(Op::Write),
        1 => (0..3i64).prop_map(Op::Commit),
        1 => (0..3i64).prop_map(Op::Abort),
        1 => Just(Op::Plain),
    ]
}

proptest! {
    #[test]
    fn transactions_match_a_model(ops in proptest::collection::vec(op(), 1..120)) {
        let mut s = ProducerStateManager::new();
        let mut open: BTreeMap<i64, i64> = BTreeMap::new(); // pid -> first offset
        let mut seq: BTreeMap<i64, i32> = BTreeMap::new();
        let mut aborted = Vec::new();
        for (offset, op) in ops.into_iter().enumerate() {
            let offset = offset as i64;
            match op {
                Op::Write(pid) => {
                    let b = txn_batch(pid, 0, *seq.entry(pid).or_insert(0), &[1]);
                    let b = b.with_offset(offset, 0);
                    *seq.get_mut(&pid).unwrap() += 1;
                    s.replay(&b);
                    open.entry(pid).or_insert(offset);
                }
                Op::Commit(pid) | Op::Abort(pid) => {
                    let commit = matches!(op, Op::Commit(_));
                    let got = s.complete_txn(pid, 0, 0, commit, offset, 0);
                    let first = open.remove(&pid);
                    if commit {
                        prop_assert_eq!(got, None);
                    } else {
                        let lso = open.values().min().copied().unwrap_or(offset + 1);
                        let want = AbortedTxn { producer_id: pid, first_offset: first.unwrap_or(offset), last_offset: offset, last_stable_offset: lso };
                        prop_assert_eq!(got, Some(want));
                        aborted.push(want);
                    }
                }
                Op::Plain => {}
            }
            prop_assert_eq!(s.first_unstable_offset(), open.values().min().copied());
            let reloaded = ProducerStateManager::decode_snapshot(&s.encode_snapshot()).unwrap();
            prop_assert_eq!(reloaded.first_unstable_offset(), s.first_unstable_offset());
            prop_assert_eq!(reloaded.open_transactions(), open.len());
        }
        prop_assert!(aborted.iter().all(|a| a.first_offset <= a.last_offset));
    }
}

#[test]
fn a_tiered_log_keeps_the_aborts_of_segments_that_are_only_remote() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 200,
        remote_storage_enable: true,
        local_retention_ms: 0,
        file_delete_delay_ms: 0,
        ..small_config()
    };
    let (mgr, _) = open_with(&[dir.path()], config.clone());
    let p = mgr.get_or_create(&tp("txn-tiered", 0), TOPIC_ID, config.clone()).unwrap();
    append(&p, &txn_batch(3, 0, 0, &[1, 2])).unwrap();
    p.append_marker(3, 0, 0, false, 0).unwrap();
    for k in 0..20 {
        append(&p, &plain(&[k])).unwrap();
    }
    let aborted = p.all_aborted_transactions();
    assert_eq!(aborted.len(), 1);
    // Everything but the active segment is "uploaded"; local retention deletes it.
    p.set_highest_remote_offset(p.offsets().high_watermark);
    let stats = p.apply_retention(crate::util::now_ms() + 1000).unwrap();
    assert!(stats.segments_deleted > 0 && p.offsets().log_start_offset > 3, "{stats:?}");
    assert_eq!(p.aborted_transactions(0, 3), aborted, "still there for remote reads");
    mgr.shutdown().unwrap();
    drop(p);
    drop(mgr);
    let (mgr, _) = open_with(&[dir.path()], config);
    let p = mgr.get(&tp("txn-tiered", 0)).unwrap();
    assert_eq!(p.all_aborted_transactions(), aborted, "and after a restart");
}
