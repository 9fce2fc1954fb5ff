//! The leader-epoch cache of a partition log: entries from appends, the file written before the
//! data, moved with the log start offset, kept across clean and unclean restarts, cut back when a
//! crash left it ahead of the log, and rebuilt from the batches when the file is missing or corrupt.

use std::fs;

use super::*;
use crate::leader_epoch::{EpochEntry, LEADER_EPOCH_CHECKPOINT_FILE};

fn entries(p: &crate::UnifiedLog) -> Vec<(i32, i64)> {
    p.leader_epoch_entries().iter().map(|EpochEntry { epoch, start_offset }| (*epoch, *start_offset)).collect()
}

fn config() -> LogConfig {
    // One 3-record batch per segment, deleted at once.
    LogConfig { segment_bytes: 500, file_delete_delay_ms: 0, ..small_config() }
}

/// Appends 3-record batches in `epochs`, one each: offsets 0-2, 3-5, …
fn fill(p: &crate::UnifiedLog, epochs: &[i32]) {
    for &e in epochs {
        p.append(&[batch(3, 100, 1_000)], e).unwrap();
    }
    p.advance_high_watermark(i64::MAX);
}

#[test]
fn appends_record_each_new_epoch_durably_before_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let (mgr, _) = open_with(&[dir.path()], config());
    let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config()).unwrap();
    assert!(entries(&p).is_empty());
    // Becoming leader of epoch 0 is remembered but written only with data.
    p.assign_leader_epoch(0);
    assert_eq!(entries(&p), vec![(0, 0)]);
    assert!(!p.dir().join(LEADER_EPOCH_CHECKPOINT_FILE).exists());
    fill(&p, &[0, 0, 2, 2, 5]);
    assert_eq!(entries(&p), vec![(0, 0), (2, 6), (5, 12)]);
    let text = fs::read_to_string(p.dir().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
    assert_eq!(text, "0\n3\n0 0\n2 6\n5 12\n");
    // Kafka's endOffsetFor over the log: LEO 15.
    assert_eq!(p.end_offset_for_epoch(5), Some((5, 15)));
    assert_eq!(p.end_offset_for_epoch(2), Some((2, 12)));
    assert_eq!(p.end_offset_for_epoch(4), Some((2, 12)));
    assert_eq!(p.end_offset_for_epoch(1), Some((0, 6)));
    assert_eq!(p.end_offset_for_epoch(6), None);
    assert_eq!(p.end_offset_for_epoch(-1), None);
    // A new leader epoch with nothing written yet ends at the log end.
    p.assign_leader_epoch(7);
    assert_eq!(p.end_offset_for_epoch(7), Some((7, 15)));
    assert_eq!(p.end_offset_for_epoch(5), Some((5, 15)));
}

#[test]
fn log_start_advance_moves_the_first_epoch_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mgr, _) = open_with(&[dir.path()], config());
    let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config()).unwrap();
    fill(&p, &[0, 1, 1, 3]);
    assert_eq!(entries(&p), vec![(0, 0), (1, 3), (3, 9)]);
    // DeleteRecords into epoch 1: epoch 0 goes, epoch 1 starts at the new log start.
    assert_eq!(p.delete_records(7).unwrap(), 7);
    assert_eq!(entries(&p), vec![(1, 7), (3, 9)]);
    // An epoch now below the log: the requested epoch, ending where the first entry starts.
    assert_eq!(p.end_offset_for_epoch(0), Some((0, 7)));
    mgr.shutdown().unwrap();
    drop(p);
    drop(mgr);
    let (mgr, _) = open_with(&[dir.path()], config());
    let p = mgr.get(&tp("t", 0)).unwrap();
    assert_eq!(entries(&p), vec![(1, 7), (3, 9)]);
    // A later append in the same epoch adds nothing; a newer epoch does.
    fill(&p, &[3, 4]);
    assert_eq!(entries(&p), vec![(1, 7), (3, 9), (4, 15)]);
}

#[test]
fn retention_moves_the_first_epoch_with_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { retention_bytes: 1_000, ..config() };
    let (mgr, _) = open_with(&[dir.path()], config.clone());
    let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config).unwrap();
    fill(&p, &[0, 0, 0, 1, 1, 2]);
    let stats = p.apply_retention(crate::util::now_ms()).unwrap();
    assert!(stats.segments_deleted > 0);
    let start = p.offsets().log_start_offset;
    assert!(start > 0);
    // The epoch covering the new log start now starts there; later epochs stay.
    let mut expected: Vec<(i32, i64)> = [(0, 0), (1, 9), (2, 15)].into_iter().filter(|(_, o)| *o > start).collect();
    let covering = [(0, 0), (1, 9), (2, 15)].into_iter().rev().find(|(_, o)| *o <= start).unwrap();
    expected.insert(0, (covering.0, start));
    assert_eq!(entries(&p), expected, "log start {start}");
}

#[test]
fn a_missing_or_corrupt_file_is_rebuilt_from_the_batches() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mgr, _) = open_with(&[dir.path()], config());
        let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config()).unwrap();
        fill(&p, &[0, 2, 2, 4]);
        mgr.shutdown().unwrap();
    }
    let file = dir.path().join("t-0").join(LEADER_EPOCH_CHECKPOINT_FILE);
    for damage in [None, Some("garbage\n"), Some("0\n2\n4 9\n2 3\n")] {
        match damage {
            None => fs::remove_file(&file).unwrap(),
            Some(text) => fs::write(&file, text).unwrap(),
        }
        let (mgr, _) = open_with(&[dir.path()], config());
        let p = mgr.get(&tp("t", 0)).unwrap();
        assert_eq!(entries(&p), vec![(0, 0), (2, 3), (4, 9)], "{damage:?}");
        assert_eq!(p.end_offset_for_epoch(3), Some((2, 9)));
        // Written back at the clean shutdown.
        mgr.shutdown().unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "0\n3\n0 0\n2 3\n4 9\n");
    }
}

#[test]
fn a_file_ahead_of_a_crashed_log_is_cut_back() {
    let dir = tempfile::tempdir().unwrap();
    let file;
    {
        let (mgr, _) = open_with(&[dir.path()], config());
        let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config()).unwrap();
        fill(&p, &[0, 1]);
        file = p.dir().join(LEADER_EPOCH_CHECKPOINT_FILE);
        // A crash after the entry of epoch 3 was written but before its batch was: no clean
        // shutdown, and the file names an epoch starting at the log end.
        fs::write(&file, "0\n3\n0 0\n1 3\n3 6\n").unwrap();
    }
    let (mgr, _) = open_with(&[dir.path()], config());
    let p = mgr.get(&tp("t", 0)).unwrap();
    assert_eq!(p.offsets().log_end_offset, 6);
    assert_eq!(entries(&p), vec![(0, 0), (1, 3)]);
    assert_eq!(p.end_offset_for_epoch(3), None);
    assert_eq!(p.end_offset_for_epoch(1), Some((1, 6)));
    // The next append rewrites the file from memory.
    fill(&p, &[2]);
    assert_eq!(fs::read_to_string(&file).unwrap(), "0\n3\n0 0\n1 3\n2 6\n");
}
