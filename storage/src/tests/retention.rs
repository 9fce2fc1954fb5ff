//! Retention (time, size, log start offset), DeleteRecords, delayed file deletion, and crashes in
//! the middle of a retention deletion.

use std::fs;
use std::path::Path;

use super::*;
use crate::util::now_ms;
use crate::{LogConfig, StorageError};

fn setup(config: LogConfig) -> (tempfile::TempDir, Arc<LogManager>, Arc<crate::UnifiedLog>) {
    let dir = tempfile::tempdir().unwrap();
    let (mgr, _) = open_with(&[dir.path()], config.clone());
    let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config).unwrap();
    (dir, mgr, p)
}

/// Appends one batch per timestamp (3 records of 100 bytes) and moves the HW to the end.
fn fill(p: &crate::UnifiedLog, timestamps: &[i64]) {
    for ts in timestamps {
        p.append(&[batch(3, 100, *ts)], 0).unwrap();
    }
    p.advance_high_watermark(i64::MAX);
}

fn files_with_suffix(dir: &Path, suffix: &str) -> usize {
    fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(suffix)).count()
}

fn retention_config() -> LogConfig {
    // Each batch of 3 x 100 bytes is ~400 bytes: one batch per segment.
    LogConfig { segment_bytes: 500, file_delete_delay_ms: 0, ..small_config() }
}

#[test]
fn time_retention_deletes_old_segments_but_never_the_active_one() {
    let now = now_ms();
    let (_d, _m, p) = setup(LogConfig { retention_ms: 10_000, ..retention_config() });
    fill(&p, &[now - 50_000, now - 40_000, now - 5_000, now - 20_000, now]);
    assert_eq!(p.segment_base_offsets(), vec![0, 3, 6, 9, 12]);
    let stats = p.apply_retention(now).unwrap();
    // The first two are past retention; the third is young, so deletion stops there (Kafka
    // deletes a prefix only) even though the fourth is old.
    assert_eq!(stats.segments_deleted, 2);
    assert_eq!(p.segment_base_offsets(), vec![6, 9, 12]);
    assert_eq!(p.offsets().log_start_offset, 6);
    assert!(matches!(p.read(0, 1 << 20, i64::MAX, false), Err(StorageError::OffsetOutOfRange { .. })));
    let r = p.read(6, 1 << 20, i64::MAX, false).unwrap();
    assert_eq!(batches_of(&r.records)[0].base_offset(), 6);
    assert_eq!(files_with_suffix(&p.dir(), ".deleted"), 0, "file.delete.delay.ms=0 removes at once");
    assert_eq!(log_files(&p.dir()).len(), 3);
}

#[test]
fn idle_active_segment_is_rolled_after_segment_ms_and_then_deleted() {
    let now = now_ms();
    let (_d, _m, p) =
        setup(LogConfig { retention_ms: 1_000, segment_ms: 1_000, segment_bytes: 1 << 20, ..retention_config() });
    fill(&p, &[now - 10_000, now - 9_500]);
    assert_eq!(p.segment_base_offsets(), vec![0]);
    // The roll happens based on the first batch's timestamp; retention then deletes it.
    let stats = p.apply_retention(now).unwrap();
    assert!(stats.rolled);
    assert_eq!(stats.segments_deleted, 1);
    assert_eq!(p.segment_base_offsets(), vec![6]);
    let o = p.offsets();
    assert_eq!((o.log_start_offset, o.high_watermark, o.log_end_offset), (6, 6, 6));
    // Appends continue at 6.
    assert_eq!(p.append(&[batch(1, 5, now)], 0).unwrap().first_offset, 6);
}

#[test]
fn size_retention_keeps_the_log_under_retention_bytes() {
    let now = now_ms();
    let (_d, _m, p) = setup(LogConfig { retention_bytes: 1000, retention_ms: -1, ..retention_config() });
    fill(&p, &[now; 6]);
    let seg_size = p.size_bytes() / 6;
    p.apply_retention(now).unwrap();
    // 6 segments; deleting while the remainder stays >= 1000 bytes leaves ceil(1000/size).
    let left = p.segment_base_offsets().len() as u64;
    assert!(left * seg_size >= 1000 && (left - 1) * seg_size < 1000, "left {left} of size {seg_size}");
    assert!(p.size_bytes() >= 1000);
}

#[test]
fn retention_never_deletes_at_or_above_the_high_watermark() {
    let now = now_ms();
    let (_d, _m, p) = setup(LogConfig { retention_ms: 0, ..retention_config() });
    for _ in 0..4 {
        p.append(&[batch(3, 100, now - 100_000)], 0).unwrap();
    }
    p.advance_high_watermark(2);
    p.apply_retention(now).unwrap();
    assert_eq!(p.offsets().log_start_offset, 0, "segment [0,3) reaches above the HW");
    p.advance_high_watermark(6);
    p.apply_retention(now).unwrap();
    assert_eq!(p.segment_base_offsets(), vec![6, 9]);
}

#[test]
fn compact_only_logs_keep_old_segments() {
    let now = now_ms();
    let (_d, _m, p) =
        setup(LogConfig { retention_ms: 0, cleanup_delete: false, cleanup_compact: true, ..retention_config() });
    fill(&p, &[now - 100_000; 4]);
    assert_eq!(p.apply_retention(now).unwrap().segments_deleted, 0);
    assert!(matches!(p.delete_records(3), Err(StorageError::PolicyViolation(_))));
}

#[test]
fn delete_records_moves_log_start_and_deletes_whole_segments() {
    let now = now_ms();
    let (d, mgr, p) = setup(retention_config());
    fill(&p, &[now; 5]);
    assert_eq!(p.delete_records(4).unwrap(), 4);
    assert_eq!(p.segment_base_offsets(), vec![3, 6, 9, 12]);
    assert!(matches!(p.read(3, 1 << 20, i64::MAX, false), Err(StorageError::OffsetOutOfRange { .. })));
    // Reading at the log start returns the batch containing it, whole.
    let r = p.read(4, 1 << 20, i64::MAX, false).unwrap();
    assert_eq!(r.log_start_offset, 4);
    assert_eq!(batches_of(&r.records)[0].base_offset(), 3);
    // Lower than the current start: no change. -1 = HW. Beyond the HW: out of range.
    assert_eq!(p.delete_records(2).unwrap(), 4);
    assert!(matches!(p.delete_records(16), Err(StorageError::OffsetOutOfRange { .. })));
    assert!(matches!(p.delete_records(-5), Err(StorageError::OffsetOutOfRange { .. })));
    assert_eq!(p.delete_records(-1).unwrap(), 15);
    assert_eq!(p.segment_base_offsets(), vec![12]);
    // The log start offset survives a clean restart through its checkpoint.
    mgr.shutdown().unwrap();
    drop((p, mgr));
    let (mgr, _) = open_with(&[d.path()], retention_config());
    assert_eq!(mgr.get(&tp("t", 0)).unwrap().offsets().log_start_offset, 15);
}

#[test]
fn deleted_files_wait_for_file_delete_delay_and_reads_keep_working() {
    let now = now_ms();
    let (_d, mgr, p) = setup(LogConfig { retention_ms: 1000, file_delete_delay_ms: 60_000, ..retention_config() });
    fill(&p, &[now - 100_000, now - 100_000, now]);
    let before = p.read(0, 1 << 20, i64::MAX, false).unwrap();
    p.apply_retention(now).unwrap();
    assert_eq!(files_with_suffix(&p.dir(), ".log.deleted"), 2);
    // Bytes read before the deletion are still valid (they were copied out of the old files).
    assert_eq!(batches_of(&before.records).len(), 3);
    mgr.delete_due_files(now + 59_000);
    assert_eq!(files_with_suffix(&p.dir(), ".log.deleted"), 2);
    mgr.delete_due_files(now + 61_000);
    assert_eq!(files_with_suffix(&p.dir(), ".deleted"), 0);
}

#[test]
fn crash_after_retention_rename_recovers_without_deleted_files() {
    let now = now_ms();
    let root = tempfile::tempdir().unwrap();
    let config = LogConfig { retention_ms: 1000, file_delete_delay_ms: 60_000, ..retention_config() };
    let (mgr, _) = open_with(&[root.path()], config.clone());
    let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config.clone()).unwrap();
    fill(&p, &[now - 100_000, now - 100_000, now, now]);
    let expected = p.read(6, 1 << 20, i64::MAX, false).unwrap().records;
    p.apply_retention(now).unwrap();
    let dir = p.dir();
    // Crash: no checkpoint, no clean-shutdown marker, `.deleted` files still there.
    drop((p, mgr));
    assert!(files_with_suffix(&dir, ".deleted") > 0);
    let (mgr, report) = open_with(&[root.path()], config);
    assert_eq!(report.unclean_dirs.len(), 1);
    let p = mgr.get(&tp("t", 0)).unwrap();
    assert_eq!(files_with_suffix(&dir, ".deleted"), 0);
    assert_eq!(p.offsets().log_start_offset, 6);
    assert_eq!(p.read(6, 1 << 20, i64::MAX, false).unwrap().records, expected);
}

#[test]
fn crash_mid_rename_of_one_segment_keeps_the_log_consistent() {
    // Segment files are renamed index, timeindex, log. A crash after the indexes moved but before
    // the log leaves a log without indexes: it is kept (its indexes rebuilt), nothing is lost.
    // A crash after the log moved leaves stray indexes, which are removed.
    for rename_log in [false, true] {
        let now = now_ms();
        let root = tempfile::tempdir().unwrap();
        let config = retention_config();
        let (mgr, _) = open_with(&[root.path()], config.clone());
        let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config.clone()).unwrap();
        fill(&p, &[now, now, now]);
        let all = p.read(0, 1 << 20, i64::MAX, false).unwrap().records;
        let dir = p.dir();
        drop((p, mgr));
        for suffix in [".index", ".timeindex"] {
            let f = dir.join(format!("{}{suffix}", crate::layout::file_stem(0)));
            fs::rename(&f, crate::layout::with_suffix(&f, ".deleted")).unwrap();
        }
        if rename_log {
            let f = crate::layout::log_file(&dir, 0);
            fs::rename(&f, crate::layout::with_suffix(&f, ".deleted")).unwrap();
        }
        let (mgr, _) = open_with(&[root.path()], config);
        let p = mgr.get(&tp("t", 0)).unwrap();
        assert_eq!(files_with_suffix(&dir, ".deleted"), 0);
        if rename_log {
            assert_eq!(p.offsets().log_start_offset, 3);
            let r = p.read(3, 1 << 20, i64::MAX, false).unwrap().records;
            assert_eq!(&r[..], &all[all.len() - r.len()..]);
        } else {
            assert_eq!(p.read(0, 1 << 20, i64::MAX, false).unwrap().records, all);
        }
        assert_eq!(p.offsets().log_end_offset, 9);
    }
}
