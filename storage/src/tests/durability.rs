//! Durability: rolled segments are flushed and the recovery point advances while running;
//! recovery's own changes (truncations, deletions, rebuilt `.txnindex` entries) are durable and
//! complete; `flush.messages=1` makes every append durable before it returns, with concurrent
//! appends sharing fsyncs.

use std::fs;
use std::sync::Arc;

use sluice_protocol::records::{BatchBuilder, Record};

use super::*;
use crate::io::sim;
use crate::layout::RECOVERY_POINT_CHECKPOINT;

fn idempotent_batch(pid: i64, seq: i32, transactional: bool, value_len: usize) -> RecordBatch {
    let bytes = BatchBuilder {
        transactional,
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: seq,
        base_timestamp: crate::util::now_ms(),
        records: vec![Record { value: Some(Bytes::from(vec![b'x'; value_len])), ..Default::default() }],
        ..Default::default()
    }
    .build()
    .unwrap();
    RecordBatch::new(bytes).unwrap()
}

fn read_all_bytes(p: &crate::UnifiedLog) -> Bytes {
    p.read(p.offsets().log_start_offset, usize::MAX, i64::MAX, false).unwrap().records
}

#[test]
fn rolled_segments_are_flushed_and_recovery_starts_at_the_recovery_point() {
    let root = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 700, ..small_config() };
    let (before, active_base) = {
        let (mgr, _) = open_with(&[root.path()], config.clone());
        let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config.clone()).unwrap();
        for i in 0..12 {
            p.append(&[batch(2, 100, i)], 1).unwrap();
        }
        let bases = p.segment_base_offsets();
        assert!(bases.len() >= 4, "{bases:?}");
        assert_eq!(p.recovery_point(), 0, "appends never fsync by themselves");
        // What the broker's flusher runs when a roll notifies it.
        assert_eq!(mgr.flush_rolled_segments().unwrap(), 1);
        let active_base = *bases.last().unwrap();
        assert_eq!(p.recovery_point(), active_base, "flushed up to the newest segment, not into it");
        let checkpoint = fs::read_to_string(root.path().join(RECOVERY_POINT_CHECKPOINT)).unwrap();
        assert!(checkpoint.contains(&format!("t 0 {active_base}\n")), "{checkpoint}");
        // Nothing left to do: a second call flushes nothing.
        assert_eq!(mgr.flush_rolled_segments().unwrap(), 0);
        p.append(&[batch(1, 10, 99)], 1).unwrap();
        (read_all_bytes(&p), active_base)
        // Crash: dropped without shutdown.
    };
    let (mgr, report) = open_with(&[root.path()], config);
    assert_eq!(report.unclean_dirs.len(), 1);
    assert_eq!(report.recovered_from, vec![active_base]);
    assert_eq!(report.segments_recovered, 1);
    let p = mgr.get(&tp("t", 0)).unwrap();
    assert_eq!(read_all_bytes(&p), before);
}

#[test]
fn without_a_roll_flush_recovery_rescans_every_segment() {
    let root = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 700, ..small_config() };
    let segments = {
        let (mgr, _) = open_with(&[root.path()], config.clone());
        let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config.clone()).unwrap();
        for i in 0..12 {
            p.append(&[batch(2, 100, i)], 1).unwrap();
        }
        p.segment_base_offsets().len()
    };
    let (_mgr, report) = open_with(&[root.path()], config);
    assert_eq!(report.recovered_from, vec![0]);
    assert_eq!(report.segments_recovered, segments);
}

#[test]
fn recovery_rebuilds_the_txn_index_of_rescanned_segments_behind_a_later_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 400, ..small_config() };
    let (dir, aborted) = {
        let (mgr, _) = open_with(&[root.path()], config.clone());
        let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config.clone()).unwrap();
        p.append(&[idempotent_batch(7, 0, true, 50)], 0).unwrap();
        p.append_marker(7, 0, 0, false, 0).unwrap();
        // Rolls take producer snapshots past the abort.
        for seq in 0..6 {
            p.append(&[idempotent_batch(8, seq, false, 150)], 0).unwrap();
        }
        assert!(p.segment_base_offsets().len() >= 3);
        let aborted = p.all_aborted_transactions();
        assert_eq!(aborted.len(), 1);
        (p.dir(), aborted)
    };
    // A power loss took the unflushed `.txnindex` entries; the later snapshots survived.
    let mut removed = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "txnindex") {
            fs::remove_file(path).unwrap();
            removed += 1;
        }
    }
    assert_eq!(removed, 1);
    assert!(!crate::producer_state::list_snapshots(&dir).unwrap().is_empty());
    let (mgr, _) = open_with(&[root.path()], config);
    let p = mgr.get(&tp("t", 0)).unwrap();
    assert_eq!(p.all_aborted_transactions(), aborted);
    assert_eq!(p.aborted_transactions(0, i64::MAX), aborted);
}

/// A corrupt middle segment: recovery cuts it and deletes every later segment. Those changes are
/// fsynced, so a power loss right after recovery brings none of the deleted data back.
#[test]
fn recovery_cuts_and_deletions_survive_a_power_loss() {
    for seed in 0..16 {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("logs");
        fs::create_dir(&root).unwrap();
        sim::enable(&root).unwrap();
        let config = LogConfig { segment_bytes: 700, ..small_config() };
        let dir = {
            let (mgr, _) = open_with(&[&root], config.clone());
            let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config.clone()).unwrap();
            for i in 0..12 {
                p.append(&[batch(2, 100, i)], 1).unwrap();
            }
            p.flush().unwrap();
            mgr.checkpoint().unwrap();
            p.dir()
        };
        // Damage in the second segment, on disk for good (then an unclean start with an older
        // checkpoint, so recovery scans it).
        let logs = log_files(&dir);
        assert!(logs.len() >= 4);
        {
            let mut bytes = fs::read(&logs[1]).unwrap();
            let at = bytes.len() - 20;
            bytes[at] ^= 0xff;
            fs::write(&logs[1], &bytes).unwrap();
            crate::io::sync_data(&fs::File::open(&logs[1]).unwrap()).unwrap();
            fs::remove_file(root.join(RECOVERY_POINT_CHECKPOINT)).unwrap();
            crate::io::sync_dir(&root).unwrap();
        }
        let after_recovery = {
            let (mgr, report) = open_with(&[&root], config.clone());
            assert!(report.bytes_truncated > 0);
            let p = mgr.get(&tp("t", 0)).unwrap();
            (read_all_bytes(&p), p.offsets().log_end_offset)
        };
        assert_eq!(log_files(&dir).len(), 2);
        sim::crash(&root, seed).unwrap();
        let (mgr, _) = open_with(&[&root], config.clone());
        let p = mgr.get(&tp("t", 0)).unwrap();
        assert_eq!((read_all_bytes(&p), p.offsets().log_end_offset), after_recovery, "seed {seed}");
        assert_eq!(log_files(&dir).len(), 2, "seed {seed}: deleted segments came back");
        drop((p, mgr));
        sim::disable(&root).unwrap();
    }
}

#[test]
fn flush_messages_one_makes_appends_durable_with_shared_fsyncs() {
    let root = tempfile::tempdir().unwrap();
    let config = LogConfig { flush_messages: 1, segment_bytes: 4096, ..small_config() };
    let (mgr, _) = open_with(&[root.path()], config.clone());
    let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config.clone()).unwrap();
    let producers = 8;
    let appends = 40;
    let threads: Vec<_> = (0..producers)
        .map(|pid| {
            let p = Arc::clone(&p);
            std::thread::spawn(move || {
                for seq in 0..appends {
                    let info = p.append(&[idempotent_batch(pid, seq, false, 64)], 0).unwrap();
                    // Acknowledged means fsynced: the recovery point covers the append.
                    assert!(p.recovery_point() > info.last_offset);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let total = (producers * appends as i64) as u64;
    assert_eq!(p.offsets().log_end_offset, total as i64);
    assert_eq!(p.recovery_point(), total as i64);
    let flushes = p.flush_count();
    assert!(flushes >= 1 && flushes < total, "{flushes} fsync rounds for {total} appends: none shared");
    eprintln!("{flushes} fsync rounds for {total} appends from {producers} producers");
}

/// The async produce path's protocol, with threads for tasks: append without flushing, then
/// until the recovery point covers the append, either start the one flush (`try_flush`) or wait
/// for the running one to announce its end on the watch.
#[test]
fn deferred_flushes_are_shared_through_the_recovery_point_watch() {
    let root = tempfile::tempdir().unwrap();
    let config = LogConfig { flush_messages: 1, ..small_config() };
    let (mgr, _) = open_with(&[root.path()], config.clone());
    let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config.clone()).unwrap();
    let producers = 8;
    let appends = 30;
    let threads: Vec<_> = (0..producers)
        .map(|pid| {
            let p = Arc::clone(&p);
            std::thread::spawn(move || {
                let mut waited = 0;
                for seq in 0..appends {
                    let (info, flush_to) =
                        p.append_deferring_flush(&[idempotent_batch(pid, seq, false, 64)], 0).unwrap();
                    let offset = flush_to.expect("flush.messages=1 asks for a flush");
                    assert!(offset > info.last_offset);
                    let watch = p.watch_recovery_point();
                    while *watch.borrow() < offset {
                        if p.flush_in_progress() {
                            waited += 1;
                            std::thread::yield_now();
                        } else if let Some(result) = p.try_flush() {
                            result.unwrap();
                        }
                    }
                    assert!(p.recovery_point() > info.last_offset);
                }
                waited
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let total = (producers * appends as i64) as u64;
    assert_eq!(p.recovery_point(), total as i64);
    let flushes = p.flush_count();
    assert!(flushes >= 1 && flushes < total, "{flushes} fsync rounds for {total} appends: none shared");
}

/// An abort acknowledged by a flush survives a power loss: its `.txnindex` file (created after
/// the segment's directory entry was fsynced) is fsynced with its directory entry, or rebuilt.
#[test]
fn a_flushed_abort_survives_a_power_loss() {
    for seed in 0..12 {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("logs");
        fs::create_dir(&root).unwrap();
        sim::enable(&root).unwrap();
        let config = small_config();
        let aborted = {
            let (mgr, _) = open_with(&[&root], config.clone());
            let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config.clone()).unwrap();
            p.append(&[idempotent_batch(1, 0, false, 10)], 0).unwrap();
            p.flush().unwrap();
            p.append(&[idempotent_batch(7, 0, true, 10)], 0).unwrap();
            p.append_marker(7, 0, 0, false, 0).unwrap();
            p.flush().unwrap();
            mgr.checkpoint().unwrap();
            p.all_aborted_transactions()
        };
        assert_eq!(aborted.len(), 1);
        sim::crash(&root, seed).unwrap();
        let (mgr, _) = open_with(&[&root], config.clone());
        let p = mgr.get(&tp("t", 0)).unwrap();
        assert_eq!(p.offsets().log_end_offset, 3, "seed {seed}");
        assert_eq!(p.all_aborted_transactions(), aborted, "seed {seed}");
        drop((p, mgr));
        sim::disable(&root).unwrap();
    }
}
