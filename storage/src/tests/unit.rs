//! Behaviour of one partition log: offsets, reads, rolls, indexes, flushes, timestamps, deletion.

use std::fs;
use std::sync::Arc;

use super::*;
use crate::index::OffsetIndex;
use crate::segment::LogSegment;
use crate::{LogConfig, StorageError, TimestampOffset};

fn setup(config: LogConfig) -> (tempfile::TempDir, Arc<LogManager>, Arc<crate::UnifiedLog>) {
    let dir = tempfile::tempdir().unwrap();
    let (mgr, _) = open_with(&[dir.path()], config.clone());
    let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config).unwrap();
    (dir, mgr, p)
}

/// Appends `batches` one call each and returns their stored forms with offsets.
fn append_all(p: &crate::UnifiedLog, batches: &[RecordBatch]) -> Vec<(i64, Bytes)> {
    batches
        .iter()
        .map(|b| {
            let info = p.append(std::slice::from_ref(b), 3).unwrap();
            (info.first_offset, stored(b, info.first_offset, 3))
        })
        .collect()
}

#[test]
fn append_assigns_offsets_from_leo_and_reads_back_identical_bytes() {
    let (_d, _m, p) = setup(small_config());
    let (b1, b2, b3) = (batch(2, 10, 100), batch(3, 10, 200), batch(1, 10, 300));
    let info = p.append(&[b1.clone(), b2.clone()], 7).unwrap();
    assert_eq!((info.first_offset, info.last_offset, info.log_start_offset), (0, 4, 0));
    let info = p.append(std::slice::from_ref(&b3), 8).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (5, 5));

    let r = p.read(0, 1 << 20, i64::MAX, false).unwrap();
    let mut expected = Vec::new();
    expected.extend_from_slice(&stored(&b1, 0, 7));
    expected.extend_from_slice(&stored(&b2, 2, 7));
    expected.extend_from_slice(&stored(&b3, 5, 8));
    assert_eq!(&r.records[..], &expected[..]);
    let got = batches_of(&r.records);
    assert_eq!(
        got.iter().map(|b| (b.base_offset(), b.partition_leader_epoch())).collect::<Vec<_>>(),
        [(0, 7), (2, 7), (5, 8)]
    );
    assert_eq!((r.log_start_offset, r.high_watermark, r.log_end_offset), (0, 0, 6));
    assert_eq!(p.size_bytes(), expected.len() as u64);
}

#[test]
fn high_watermark_moves_only_when_advanced_and_wakes_watchers() {
    let (_d, _m, p) = setup(small_config());
    let mut rx = p.watch_high_watermark();
    p.append(&[batch(4, 10, 0)], 0).unwrap();
    assert_eq!(p.offsets().high_watermark, 0);
    assert!(!rx.has_changed().unwrap());
    p.advance_high_watermark(100); // clamped to the LEO
    assert_eq!(
        p.offsets(),
        crate::LogOffsets { log_start_offset: 0, high_watermark: 4, last_stable_offset: 4, log_end_offset: 4 }
    );
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), 4);
    p.advance_high_watermark(2); // never backwards
    assert_eq!(p.offsets().high_watermark, 4);
    assert!(!rx.has_changed().unwrap());
}

#[test]
fn read_returns_whole_batch_containing_fetch_offset() {
    let (_d, _m, p) = setup(small_config());
    let stored = append_all(&p, &[batch(2, 10, 0), batch(3, 10, 0), batch(2, 10, 0)]);
    for (fetch, first_base) in [(0, 0), (1, 0), (2, 2), (3, 2), (4, 2), (5, 5), (6, 5)] {
        let r = p.read(fetch, 1 << 20, i64::MAX, false).unwrap();
        let got = batches_of(&r.records);
        assert_eq!(got[0].base_offset(), first_base, "fetch {fetch}");
        assert_eq!(got.last().unwrap().as_bytes(), &stored[2].1);
    }
    assert!(p.read(7, 1 << 20, i64::MAX, false).unwrap().records.is_empty());
}

#[test]
fn max_bytes_and_min_one_batch() {
    let (_d, _m, p) = setup(small_config());
    let stored = append_all(&p, &[batch(1, 100, 0), batch(1, 100, 0), batch(1, 100, 0)]);
    let size = stored[0].1.len();
    // Exactly two batches fit.
    let r = p.read(0, 2 * size, i64::MAX, false).unwrap();
    assert_eq!(batches_of(&r.records).len(), 2);
    // One and a half: only whole batches.
    let r = p.read(0, size + size / 2, i64::MAX, false).unwrap();
    assert_eq!(r.records.len(), size);
    // Less than one batch: nothing, unless min_one_batch returns the first whole.
    assert!(p.read(0, size - 1, i64::MAX, false).unwrap().records.is_empty());
    let r = p.read(1, 10, i64::MAX, true).unwrap();
    assert_eq!(&r.records, &stored[1].1);
    // min_one_batch only matters for the first batch.
    let r = p.read(0, size + 10, i64::MAX, true).unwrap();
    assert_eq!(r.records.len(), size);
}

#[test]
fn max_offset_bounds_reads() {
    let (_d, _m, p) = setup(small_config());
    append_all(&p, &[batch(2, 10, 0), batch(3, 10, 0), batch(2, 10, 0)]);
    // A batch whose last offset reaches max_offset is not returned.
    let r = p.read(0, 1 << 20, 4, true).unwrap();
    assert_eq!(batches_of(&r.records).iter().map(|b| b.base_offset()).collect::<Vec<_>>(), [0]);
    let r = p.read(0, 1 << 20, 5, true).unwrap();
    assert_eq!(batches_of(&r.records).len(), 2);
    assert!(p.read(2, 1 << 20, 3, true).unwrap().records.is_empty());
    assert!(p.read(5, 1 << 20, 5, true).unwrap().records.is_empty());
}

#[test]
fn offsets_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mgr, _) = open(&[dir.path()]);
        let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, small_config()).unwrap();
        for _ in 0..5 {
            p.append(&[batch(2, 10, 0)], 0).unwrap();
        }
        assert!(matches!(
            p.read(11, 100, i64::MAX, true),
            Err(StorageError::OffsetOutOfRange { requested: 11, log_start_offset: 0, log_end_offset: 10 })
        ));
        assert!(p.read(10, 100, i64::MAX, true).unwrap().records.is_empty());
        mgr.shutdown().unwrap();
    }
    // Move the log start offset via its checkpoint (as DeleteRecords/retention would).
    let cp = dir.path().join("log-start-offset-checkpoint");
    assert_eq!(fs::read_to_string(&cp).unwrap(), "0\n1\nt 0 0\n");
    fs::write(&cp, "0\n1\nt 0 5\n").unwrap();
    let (mgr, _) = open(&[dir.path()]);
    let p = mgr.get(&tp("t", 0)).unwrap();
    assert_eq!(p.offsets().log_start_offset, 5);
    assert!(matches!(
        p.read(4, 100, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { requested: 4, log_start_offset: 5, .. })
    ));
    // The batch containing the log start offset is returned whole.
    let r = p.read(5, 1000, i64::MAX, true).unwrap();
    assert_eq!(batches_of(&r.records)[0].base_offset(), 4);
}

#[test]
fn rolls_on_segment_bytes_and_reads_span_segments() {
    let b = batch(2, 50, 0);
    let size = b.size_in_bytes() as u64;
    let config = LogConfig { segment_bytes: size * 2 + size / 2, ..small_config() };
    let (_d, _m, p) = setup(config);
    let stored = append_all(&p, &vec![b; 7]);
    // Two batches per segment.
    assert_eq!(p.segment_base_offsets(), [0, 4, 8, 12]);
    let names: Vec<String> =
        log_files(&p.dir()).iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        [
            "00000000000000000000.log",
            "00000000000000000004.log",
            "00000000000000000008.log",
            "00000000000000000012.log"
        ]
    );
    let all: Vec<u8> = stored.iter().flat_map(|(_, b)| b.to_vec()).collect();
    let r = p.read(0, 1 << 20, i64::MAX, false).unwrap();
    assert_eq!(&r.records[..], &all[..]);
    // From the middle of a segment across the next ones.
    let r = p.read(7, 1 << 20, i64::MAX, false).unwrap();
    assert_eq!(&r.records[..], &all[3 * size as usize..]);
    // A batch bigger than segment.bytes still goes into (its own) segment.
    p.append(&[batch(1, 1000, 0)], 0).unwrap();
    assert_eq!(p.segment_base_offsets(), [0, 4, 8, 12, 14]);
}

#[test]
fn rolls_when_index_full() {
    // Room for three offset index entries (and two time index entries); an offset index entry
    // for every batch after the first. Equal timestamps add only one time index entry.
    let config = LogConfig { segment_index_bytes: 24, index_interval_bytes: 1, ..small_config() };
    let (_d, _m, p) = setup(config);
    append_all(&p, &vec![batch(1, 10, 0); 6]);
    // Batches 0..=3 fill segment 0 (entries for 1, 2, 3); batch 4 starts a new one.
    assert_eq!(p.segment_base_offsets(), [0, 4]);
    let index = fs::read(p.dir().join("00000000000000000000.index")).unwrap();
    assert_eq!(index.len(), 24);
    let r = p.read(0, 1 << 20, i64::MAX, false).unwrap();
    assert_eq!(batches_of(&r.records).len(), 6);
}

#[test]
fn rolls_on_segment_ms_by_batch_timestamps() {
    let config = LogConfig { segment_ms: 1000, ..small_config() };
    let (_d, _m, p) = setup(config);
    let t0 = 1_700_000_000_000;
    append_all(&p, &[batch(1, 10, t0), batch(1, 10, t0 + 500), batch(1, 10, t0 + 1000)]);
    assert_eq!(p.segment_base_offsets(), [0]);
    append_all(&p, &[batch(1, 10, t0 + 1001)]);
    assert_eq!(p.segment_base_offsets(), [0, 3]);
}

#[test]
fn rolls_before_relative_offsets_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let mut seg = LogSegment::create(dir.path(), 100, &config, 0, 0).unwrap();
    seg.track_batch(0, 100, 100, 5, config.index_interval_bytes);
    assert!(!seg.should_roll(&config, 100, 5, 100 + i64::from(i32::MAX), 0));
    assert!(seg.should_roll(&config, 100, 5, 101 + i64::from(i32::MAX), 0));
}

#[test]
fn update_config_applies_to_future_rolls() {
    let (_d, _m, p) = setup(small_config());
    append_all(&p, &vec![batch(1, 50, 0); 3]);
    assert_eq!(p.segment_base_offsets(), [0]);
    p.update_config(LogConfig { segment_bytes: 1, ..small_config() });
    append_all(&p, &vec![batch(1, 50, 0); 2]);
    assert_eq!(p.segment_base_offsets(), [0, 3, 4]);
    assert_eq!(p.config().segment_bytes, 1);
}

#[test]
fn index_entries_on_disk_point_at_their_batches() {
    let config = LogConfig { index_interval_bytes: 200, ..small_config() };
    let (_d, mgr, p) = setup(config);
    let stored = append_all(&p, &(0..40).map(|i| batch(1 + i % 3, 40, i as i64 * 10)).collect::<Vec<_>>());
    mgr.shutdown().unwrap();
    let index = fs::read(p.dir().join("00000000000000000000.index")).unwrap();
    let timeindex = fs::read(p.dir().join("00000000000000000000.timeindex")).unwrap();
    assert!(index.len() >= 8 * 5, "sparse entries expected, got {} bytes", index.len());
    assert_eq!(index.len() % 8, 0);
    assert_eq!(timeindex.len() % 12, 0);
    let log = fs::read(p.dir().join("00000000000000000000.log")).unwrap();
    let mut last_pos = 0;
    for e in index.chunks(8) {
        let rel = u32::from_be_bytes(e[..4].try_into().unwrap()) as i64;
        let pos = u32::from_be_bytes(e[4..].try_into().unwrap()) as usize;
        assert!(pos > last_pos || last_pos == 0);
        last_pos = pos;
        let b = RecordBatch::split_first(&mut Bytes::copy_from_slice(&log[pos..])).unwrap().unwrap();
        assert_eq!(b.last_offset(), rel, "entry maps a batch's last offset to its position");
        assert!(stored.iter().any(|(o, _)| *o == b.base_offset()));
    }
    // The last time index entry is the max timestamp (written on close).
    let last = &timeindex[timeindex.len() - 12..];
    assert_eq!(i64::from_be_bytes(last[..8].try_into().unwrap()), 390);
    // Loading the index back finds the same entries.
    let loaded =
        OffsetIndex::load(&p.dir().join("00000000000000000000.index"), 0, 1 << 20, log.len() as u64).unwrap().unwrap();
    assert_eq!(loaded.len(), index.len() / 8);
}

#[test]
fn flush_messages_one_fsyncs_every_append() {
    let (_d, _m, p) = setup(LogConfig { flush_messages: 1, ..small_config() });
    p.append(&[batch(3, 10, 0)], 0).unwrap();
    assert_eq!(p.recovery_point(), 3);
    p.append(&[batch(2, 10, 0)], 0).unwrap();
    assert_eq!(p.recovery_point(), 5);

    let (_d2, _m2, q) = setup(small_config());
    q.append(&[batch(3, 10, 0)], 0).unwrap();
    assert_eq!(q.recovery_point(), 0);
    q.flush().unwrap();
    assert_eq!(q.recovery_point(), 3);

    let (_d3, _m3, r) = setup(LogConfig { flush_messages: 5, ..small_config() });
    r.append(&[batch(3, 10, 0)], 0).unwrap();
    assert_eq!(r.recovery_point(), 0);
    r.append(&[batch(2, 10, 0)], 0).unwrap();
    assert_eq!(r.recovery_point(), 5);
}

#[test]
fn flush_due_honours_flush_ms() {
    let (_d, mgr, p) = setup(LogConfig { flush_ms: 1000, ..small_config() });
    p.append(&[batch(1, 10, 0)], 0).unwrap();
    let now = crate::util::now_ms();
    mgr.flush_due(now).unwrap();
    assert_eq!(p.recovery_point(), 0);
    mgr.flush_due(now + 1000).unwrap();
    assert_eq!(p.recovery_point(), 1);
}

#[test]
fn offset_for_timestamp_finds_first_record_at_or_after() {
    let config = LogConfig { index_interval_bytes: 1, segment_bytes: 600, ..small_config() };
    let (_d, _m, p) = setup(config);
    // Timestamps are not monotonic across batches (CreateTime from different producers).
    append_all(
        &p,
        &[
            batch_with_timestamps(&[100, 120, 110], 50), // offsets 0..2
            batch_with_timestamps(&[90, 95], 50),        // 3..4
            batch_with_timestamps(&[200, 150, 250], 50), // 5..7
            batch_with_timestamps(&[300], 50),           // 8
            batch_with_timestamps(&[260, 400], 50),      // 9..10
        ],
    );
    assert!(p.segment_base_offsets().len() > 1);
    let at = |ts| p.offset_for_timestamp(ts).unwrap().map(|t: TimestampOffset| (t.timestamp, t.offset));
    assert_eq!(at(0), Some((100, 0)));
    assert_eq!(at(100), Some((100, 0)));
    assert_eq!(at(101), Some((120, 1)));
    assert_eq!(at(121), Some((200, 5)));
    assert_eq!(at(201), Some((250, 7)));
    assert_eq!(at(251), Some((300, 8)));
    assert_eq!(at(301), Some((400, 10)));
    assert_eq!(at(401), None);
    assert_eq!(p.offset_for_timestamp(0).unwrap().unwrap().leader_epoch, 3);
}

#[test]
fn max_timestamp_names_the_record() {
    let config = LogConfig { index_interval_bytes: 1, segment_bytes: 400, ..small_config() };
    let (_d, _m, p) = setup(config);
    assert_eq!(p.max_timestamp().unwrap(), None);
    append_all(
        &p,
        &[
            batch_with_timestamps(&[100, 120], 50),
            batch_with_timestamps(&[300, 500, 400], 50), // max at offset 3
            batch_with_timestamps(&[200], 50),
            batch_with_timestamps(&[500, 10], 50), // tie: the first one wins
        ],
    );
    assert_eq!(p.max_timestamp().unwrap(), Some(TimestampOffset { timestamp: 500, offset: 3, leader_epoch: 3 }));
    // LogAppendTime: every record carries the batch's max timestamp; the first record is named.
    p.append(&[log_append_time_batch(3, 1000)], 4).unwrap();
    assert_eq!(p.max_timestamp().unwrap(), Some(TimestampOffset { timestamp: 1000, offset: 8, leader_epoch: 4 }));
    assert_eq!(p.offset_for_timestamp(999).unwrap().map(|t| t.offset), Some(8));
}

#[test]
fn max_timestamp_survives_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 300, ..small_config() };
    {
        let (mgr, _) = open_with(&[dir.path()], config.clone());
        let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config.clone()).unwrap();
        append_all(
            &p,
            &[
                batch_with_timestamps(&[5, 900, 7], 80),
                batch_with_timestamps(&[6], 80),
                batch_with_timestamps(&[8], 80),
            ],
        );
        assert!(p.segment_base_offsets().len() > 1);
        mgr.shutdown().unwrap();
    }
    let (mgr, report) = open_with(&[dir.path()], config);
    assert_eq!(report.segments_recovered, 0);
    let p = mgr.get(&tp("t", 0)).unwrap();
    assert_eq!(p.max_timestamp().unwrap().map(|t| (t.timestamp, t.offset)), Some((900, 1)));
    assert_eq!(p.offset_for_timestamp(8).unwrap().map(|t| t.offset), Some(1));
}

#[test]
fn partition_metadata_and_placement_across_dirs() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mgr, _) = open(&[d1.path(), d2.path()]);
    let p0 = mgr.get_or_create(&tp("a-b.c_d", 0), TOPIC_ID, small_config()).unwrap();
    let p1 = mgr.get_or_create(&tp("a-b.c_d", 1), TOPIC_ID, small_config()).unwrap();
    let p2 = mgr.get_or_create(&tp("a-b.c_d", 2), TOPIC_ID, small_config()).unwrap();
    assert_eq!(p0.dir(), d1.path().join("a-b.c_d-0"));
    assert_eq!(p1.dir(), d2.path().join("a-b.c_d-1"));
    assert_eq!(p2.dir().parent().unwrap(), d1.path());
    assert!(Arc::ptr_eq(&mgr.get_or_create(&tp("a-b.c_d", 0), TOPIC_ID, small_config()).unwrap(), &p0));
    let meta = fs::read_to_string(p0.dir().join("partition.metadata")).unwrap();
    assert_eq!(meta, format!("version: 0\ntopic_id: {}", crate::layout::encode_topic_id(&TOPIC_ID)));
    assert!(p0.dir().join("00000000000000000000.log").exists());
    assert!(p0.dir().join("00000000000000000000.index").exists());
    assert!(p0.dir().join("00000000000000000000.timeindex").exists());
    assert_eq!(mgr.partitions().len(), 3);
    // Illegal names never become paths, and do not take the dir offline.
    assert!(mgr.get_or_create(&tp("../x", 0), TOPIC_ID, small_config()).is_err());
    assert!(mgr.offline_dirs().is_empty());
    mgr.shutdown().unwrap();
    let (mgr, report) = open(&[d1.path(), d2.path()]);
    assert_eq!(report.partitions_loaded, 3);
    assert_eq!(mgr.get(&tp("a-b.c_d", 1)).unwrap().topic_id(), Some(TOPIC_ID));
}

#[test]
fn delete_renames_then_removes_and_held_handles_fail() {
    let dir = tempfile::tempdir().unwrap();
    let (mgr, _) = open(&[dir.path()]);
    let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, small_config()).unwrap();
    p.append(&[batch(2, 10, 0)], 0).unwrap();
    mgr.delete(&tp("t", 0)).unwrap();
    assert!(mgr.get(&tp("t", 0)).is_none());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    assert!(matches!(p.append(&[batch(1, 10, 0)], 0), Err(StorageError::Deleted(_))));
    assert!(matches!(p.read(0, 100, i64::MAX, true), Err(StorageError::Deleted(_))));
    assert!(matches!(p.flush(), Err(StorageError::Deleted(_))));
    // Recreated empty.
    let q = mgr.get_or_create(&tp("t", 0), TOPIC_ID, small_config()).unwrap();
    assert_eq!(q.offsets().log_end_offset, 0);
    mgr.delete(&tp("nope", 0)).unwrap();
}

#[test]
fn startup_finishes_deletions_and_removes_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mgr, _) = open(&[dir.path()]);
        let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, small_config()).unwrap();
        p.append(&[batch(2, 10, 0)], 0).unwrap();
        mgr.shutdown().unwrap();
    }
    let half_deleted = dir.path().join("gone-3.0123456789abcdef0123456789abcdef-delete");
    fs::create_dir(&half_deleted).unwrap();
    fs::write(half_deleted.join("00000000000000000000.log"), b"x").unwrap();
    let pdir = dir.path().join("t-0");
    for f in [
        "00000000000000000000.log.deleted",
        "00000000000000000007.log.swap",
        "00000000000000000000.index.cleaned",
        "00000000000000000042.index",
    ] {
        fs::write(pdir.join(f), b"junk").unwrap();
    }
    fs::write(dir.path().join("recovery-point-offset-checkpoint.tmp"), b"junk").unwrap();
    let (mgr, report) = open(&[dir.path()]);
    assert_eq!(report.partitions_loaded, 1);
    assert!(!half_deleted.exists());
    let mut left: Vec<String> =
        fs::read_dir(&pdir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(
        left,
        [
            "00000000000000000000.index",
            "00000000000000000000.log",
            "00000000000000000000.timeindex",
            // The producer state snapshot the clean shutdown wrote at the log end.
            "00000000000000000002.snapshot",
            // The epoch the batch was appended in.
            "leader-epoch-checkpoint",
            "partition.metadata"
        ]
    );
    assert!(!dir.path().join("recovery-point-offset-checkpoint.tmp").exists());
    assert_eq!(mgr.get(&tp("t", 0)).unwrap().offsets().log_end_offset, 2);
}

#[test]
fn shutdown_writes_checkpoints_and_marker_which_startup_removes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mgr, report) = open(&[dir.path()]);
        // A fresh dir has no marker but nothing to recover either: not reported as unclean.
        assert!(report.unclean_dirs.is_empty());
        let p = mgr.get_or_create(&tp("t", 1), TOPIC_ID, small_config()).unwrap();
        p.append(&[batch(5, 10, 0)], 0).unwrap();
        p.advance_high_watermark(3);
        mgr.shutdown().unwrap();
    }
    assert!(dir.path().join(".kafka_cleanshutdown").exists());
    assert_eq!(fs::read_to_string(dir.path().join("recovery-point-offset-checkpoint")).unwrap(), "0\n1\nt 1 5\n");
    assert_eq!(fs::read_to_string(dir.path().join("log-start-offset-checkpoint")).unwrap(), "0\n1\nt 1 0\n");
    assert_eq!(fs::read_to_string(dir.path().join("replication-offset-checkpoint")).unwrap(), "0\n1\nt 1 3\n");
    let (mgr, report) = open(&[dir.path()]);
    assert!(report.unclean_dirs.is_empty());
    assert!(!dir.path().join(".kafka_cleanshutdown").exists());
    drop(mgr);
    // Without the marker (a crash) and with a partition present, the dir is unclean.
    let (_mgr, report) = open(&[dir.path()]);
    assert_eq!(report.unclean_dirs, [dir.path().to_path_buf()]);
    let (mgr, _) = open(&[dir.path()]);
    let p = mgr.get(&tp("t", 1)).unwrap();
    assert_eq!(
        p.offsets(),
        crate::LogOffsets { log_start_offset: 0, high_watermark: 3, last_stable_offset: 3, log_end_offset: 5 }
    );
    assert_eq!(p.recovery_point(), 5);
}

#[test]
fn concurrent_appends_and_reads_see_whole_batches() {
    let config = LogConfig { segment_bytes: 4096, ..small_config() };
    let (_d, _m, p) = setup(config);
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    p.append(&[batch(1 + (i % 4), 20 + w * 7, i as i64)], 0).unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let p = p.clone();
        std::thread::spawn(move || {
            for _ in 0..200 {
                let leo = p.offsets().log_end_offset;
                let fetch = leo / 2;
                let r = p.read(fetch, 3000, i64::MAX, true).unwrap();
                let got = batches_of(&r.records);
                if let Some(first) = got.first() {
                    assert!(first.base_offset() <= fetch && first.last_offset() >= fetch);
                }
                for w in got.windows(2) {
                    assert_eq!(w[0].next_offset(), w[1].base_offset());
                }
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    reader.join().unwrap();
    let r = p.read(0, usize::MAX, i64::MAX, false).unwrap();
    let got = batches_of(&r.records);
    assert_eq!(got.len(), 300);
    assert_eq!(got.last().unwrap().next_offset(), p.offsets().log_end_offset);
}

/// Rough throughput numbers: `cargo test -p sluice-storage --release -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput_smoke() {
    let config = LogConfig { segment_bytes: 64 << 20, ..LogConfig::default() };
    let (_d, mgr, p) = setup(config.clone());
    let b = batch(10, 100, 0);
    let n = 100_000;
    let start = std::time::Instant::now();
    for _ in 0..n {
        p.append(std::slice::from_ref(&b), 0).unwrap();
    }
    let elapsed = start.elapsed();
    let bytes = p.size_bytes();
    eprintln!(
        "append: {n} batches, {} MiB in {elapsed:?} ({:.0} MiB/s)",
        bytes >> 20,
        bytes as f64 / 1048576.0 / elapsed.as_secs_f64()
    );
    let start = std::time::Instant::now();
    let mut offset = 0;
    let mut read = 0usize;
    while offset < p.offsets().log_end_offset {
        let r = p.read(offset, 1 << 20, i64::MAX, true).unwrap();
        read += r.records.len();
        let last = batches_of(&r.records).last().unwrap().next_offset();
        offset = last;
    }
    let elapsed = start.elapsed();
    eprintln!(
        "read: {} MiB in {elapsed:?} ({:.0} MiB/s, incl. CRC check)",
        read >> 20,
        read as f64 / 1048576.0 / elapsed.as_secs_f64()
    );
    mgr.shutdown().unwrap();
    drop(mgr);
    let start = std::time::Instant::now();
    let (_m, report) = open_with(&[_d.path()], config.clone());
    eprintln!("clean open: {:?} ({report:?})", start.elapsed());
    drop(_m);
    fs::remove_file(_d.path().join(".kafka_cleanshutdown")).ok();
    let start = std::time::Instant::now();
    let (_m, report) = open_with(&[_d.path()], config);
    eprintln!("recovery open: {:?} ({report:?})", start.elapsed());
}
