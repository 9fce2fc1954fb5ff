//! Startup after crashes and damage: torn tails, corrupt batches, damaged indexes, recovery point.

use std::fs::{self, OpenOptions};
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::index::OffsetIndex;
use crate::LogConfig;

/// Writes batches (one append each) and "crashes": the manager is dropped without shutdown.
/// Returns the partition dir and each batch's stored bytes.
fn write_and_crash(root: &Path, config: &LogConfig, specs: &[(usize, usize)]) -> (std::path::PathBuf, Vec<Bytes>) {
    let (mgr, _) = open_with(&[root], config.clone());
    let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config.clone()).unwrap();
    let mut out = Vec::new();
    for (i, &(records, value_len)) in specs.iter().enumerate() {
        let b = batch(records, value_len, i as i64 * 100);
        let info = p.append(std::slice::from_ref(&b), 1).unwrap();
        out.push(stored(&b, info.first_offset, 1));
    }
    (p.dir(), out)
}

/// Asserts the partition holds exactly `expected` batches, readable and identical, and that its
/// offset indexes point at batch boundaries.
fn assert_log_is(mgr: &LogManager, expected: &[Bytes]) {
    let p = mgr.get(&tp("t", 0)).unwrap();
    let leo = expected.last().map(|b| RecordBatch::new(b.clone()).unwrap().next_offset()).unwrap_or(0);
    assert_eq!(p.offsets().log_end_offset, leo);
    let r = p.read(0, usize::MAX, i64::MAX, false).unwrap();
    let all: Vec<u8> = expected.iter().flat_map(|b| b.to_vec()).collect();
    assert_eq!(r.records.len(), all.len());
    assert!(r.records[..] == all[..], "recovered data differs");
    for file in log_files(&p.dir()) {
        let log = fs::read(&file).unwrap();
        let index =
            OffsetIndex::load(&file.with_extension("index"), 0, 1 << 20, log.len() as u64 + 1).unwrap().unwrap();
        for e in fs::read(file.with_extension("index")).unwrap().chunks(8) {
            let pos = u32::from_be_bytes(e[4..].try_into().unwrap()) as usize;
            assert!(RecordBatch::split_first(&mut Bytes::copy_from_slice(&log[pos..])).unwrap().is_some());
        }
        drop(index);
    }
    // Appends continue at the recovered log end.
    let info = p.append(&[batch(1, 5, 0)], 2).unwrap();
    assert_eq!(info.first_offset, leo);
}

fn specs() -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((1usize..5, 0usize..200), 1..20)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn torn_tail_is_cut_at_last_whole_batch(specs in specs(), cut_frac in 0.0f64..1.0) {
        let root = tempfile::tempdir().unwrap();
        let (dir, stored) = write_and_crash(root.path(), &small_config(), &specs);
        let total: usize = stored.iter().map(Bytes::len).sum();
        let cut = (total as f64 * cut_frac) as usize;
        OpenOptions::new().write(true).open(dir.join("00000000000000000000.log")).unwrap().set_len(cut as u64).unwrap();
        let mut end = 0;
        let survivors: Vec<Bytes> = stored.iter().take_while(|b| { end += b.len(); end <= cut }).cloned().collect();
        let valid: usize = survivors.iter().map(Bytes::len).sum();

        let (mgr, report) = open(&[root.path()]);
        prop_assert_eq!(report.unclean_dirs.len(), 1);
        prop_assert_eq!(report.segments_recovered, 1);
        prop_assert_eq!(report.bytes_truncated, (cut - valid) as u64);
        assert_log_is(&mgr, &survivors);
    }

    #[test]
    fn corrupt_byte_truncates_from_its_batch(specs in specs(), which in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let root = tempfile::tempdir().unwrap();
        let (dir, stored) = write_and_crash(root.path(), &small_config(), &specs);
        let k = which.index(stored.len());
        // Anything from the magic byte on is covered by the magic check or the CRC.
        let offset_in_batch = 16 + at.index(stored[k].len() - 16);
        let start: usize = stored[..k].iter().map(Bytes::len).sum();
        let path = dir.join("00000000000000000000.log");
        let mut log = fs::read(&path).unwrap();
        log[start + offset_in_batch] ^= 1 << bit;
        fs::write(&path, &log).unwrap();

        let (mgr, report) = open(&[root.path()]);
        prop_assert_eq!(report.bytes_truncated, (log.len() - start) as u64);
        assert_log_is(&mgr, &stored[..k]);
    }
}

#[test]
fn corruption_in_a_middle_segment_deletes_later_segments() {
    let root = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 700, ..small_config() };
    let (dir, stored) = write_and_crash(root.path(), &config, &[(2, 100); 12]);
    let logs = log_files(&dir);
    assert!(logs.len() >= 4, "{logs:?}");
    // Corrupt the second batch of the second segment.
    let seg1 = fs::read(&logs[1]).unwrap();
    let first_len = RecordBatch::split_first(&mut Bytes::from(seg1.clone())).unwrap().unwrap().size_in_bytes();
    let mut damaged = seg1.clone();
    damaged[first_len + 40] ^= 0xff;
    fs::write(&logs[1], &damaged).unwrap();
    let seg0_batches = batches_of(&Bytes::from(fs::read(&logs[0]).unwrap())).len();

    let (mgr, report) = open_with(&[root.path()], config);
    assert_eq!(report.segments_recovered, 2, "the rest are deleted without a scan");
    assert_log_is(&mgr, &stored[..seg0_batches + 1]);
    assert_eq!(log_files(&dir).len(), 2);
    assert!(!logs[2].with_extension("index").exists());
}

#[test]
fn only_segments_past_the_recovery_point_are_scanned() {
    let root = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 700, ..small_config() };
    let stored = {
        let (mgr, _) = open_with(&[root.path()], config.clone());
        let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config.clone()).unwrap();
        let mut stored = Vec::new();
        for i in 0..12 {
            let b = batch(2, 100, i);
            let info = p.append(std::slice::from_ref(&b), 1).unwrap();
            stored.push(stored_bytes(&b, info.first_offset));
        }
        assert!(p.segment_base_offsets().len() >= 4);
        p.flush().unwrap();
        mgr.checkpoint().unwrap();
        // Unflushed tail in the active segment, then a crash.
        let b = batch(1, 10, 99);
        let info = p.append(std::slice::from_ref(&b), 1).unwrap();
        stored.push(stored_bytes(&b, info.first_offset));
        stored
    };
    let (mgr, report) = open_with(&[root.path()], config);
    assert_eq!(report.segments_recovered, 1);
    assert_log_is(&mgr, &stored);
}

fn stored_bytes(b: &RecordBatch, offset: i64) -> Bytes {
    stored(b, offset, 1)
}

fn clean_log(root: &Path, config: &LogConfig) -> (std::path::PathBuf, Vec<Bytes>) {
    let (dir, stored) = write_and_crash(root, config, &[(2, 100); 12]);
    // Reopen (recovering), then shut down cleanly.
    let (mgr, _) = open_with(&[root], config.clone());
    mgr.shutdown().unwrap();
    (dir, stored)
}

#[test]
fn clean_restart_scans_nothing() {
    let root = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 700, ..small_config() };
    let (_dir, stored) = clean_log(root.path(), &config);
    let (mgr, report) = open_with(&[root.path()], config);
    assert!(report.unclean_dirs.is_empty());
    assert_eq!((report.segments_recovered, report.bytes_truncated, report.indexes_rebuilt), (0, 0, 0));
    assert_eq!(report.partitions_loaded, 1);
    assert_log_is(&mgr, &stored);
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt_on_clean_start() {
    let root = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 700, index_interval_bytes: 100, ..small_config() };
    let (dir, stored) = clean_log(root.path(), &config);
    let logs = log_files(&dir);
    let idx0 = logs[0].with_extension("index");
    let tidx0 = logs[0].with_extension("timeindex");
    let idx1 = logs[1].with_extension("index");
    let idx_last = logs.last().unwrap().with_extension("index");
    let (orig0, orig_t0, orig1) = (fs::read(&idx0).unwrap(), fs::read(&tidx0).unwrap(), fs::read(&idx1).unwrap());
    assert!(!orig0.is_empty() && !orig1.is_empty());

    fs::remove_file(&idx0).unwrap();
    // An entry pointing past the end of the log.
    let mut bad = orig1.clone();
    bad[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    fs::write(&idx1, &bad).unwrap();
    // A size that is not a whole number of entries.
    let mut last = fs::read(&idx_last).unwrap();
    last.extend_from_slice(&[1, 2, 3]);
    fs::write(&idx_last, &last).unwrap();

    let (mgr, report) = open_with(&[root.path()], config);
    assert_eq!(report.segments_recovered, 0);
    assert_eq!(report.indexes_rebuilt, 3);
    assert_eq!(fs::read(&idx0).unwrap(), orig0, "rebuilt index equals the original");
    assert_eq!(fs::read(&tidx0).unwrap(), orig_t0);
    assert_eq!(fs::read(&idx1).unwrap(), orig1);
    assert_log_is(&mgr, &stored);
}

#[test]
fn garbage_after_clean_shutdown_is_detected_from_the_last_index_entry() {
    let root = tempfile::tempdir().unwrap();
    let config = small_config();
    let (dir, stored) = clean_log(root.path(), &config);
    let log = dir.join("00000000000000000000.log");
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, &[0u8; 30]).unwrap();
    let (mgr, report) = open_with(&[root.path()], config);
    assert_eq!(report.segments_recovered, 1);
    assert_eq!(report.bytes_truncated, 30);
    assert_log_is(&mgr, &stored);
}

#[test]
fn a_log_with_every_segment_file_lost_restarts_empty_at_log_start() {
    let root = tempfile::tempdir().unwrap();
    let (dir, _) = write_and_crash(root.path(), &small_config(), &[(1, 1); 3]);
    for f in fs::read_dir(&dir).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "log") {
            fs::remove_file(f).unwrap();
        }
    }
    let (mgr, _) = open(&[root.path()]);
    let p = mgr.get(&tp("t", 0)).unwrap();
    assert_eq!(p.offsets().log_end_offset, 0);
    assert_eq!(p.append(&[batch(1, 1, 0)], 0).unwrap().first_offset, 0);
}
