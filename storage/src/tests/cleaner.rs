//! The log cleaner: latest value per key, tombstones and their delete horizon, compaction lag,
//! codecs and producer state kept, small segments merged; crash-after-step-N recovery of the
//! swap; and a model test of random appends and cleanings.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use proptest::prelude::*;
use sluice_protocol::compression::Compression;

use super::*;
use crate::{CleanCrashPoint, LogConfig, UnifiedLog};

const CAP: usize = 1 << 20;

fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        cleanup_compact: true,
        cleanup_delete: false,
        file_delete_delay_ms: 0,
        delete_retention_ms: 1_000,
        ..small_config()
    }
}

/// One batch of keyed records (`None` value = tombstone); record i has timestamp `ts + i`.
fn kv_batch(entries: &[(u8, Option<u32>)], ts: i64, codec: Compression, producer_id: i64) -> RecordBatch {
    let records = entries
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            offset_delta: i as i32,
            timestamp_delta: i as i64,
            key: Some(Bytes::from(format!("key-{k}"))),
            value: v.map(|v| Bytes::from(format!("value-{v}-{}", "x".repeat(20)))),
            ..Record::default()
        })
        .collect();
    let builder = BatchBuilder {
        base_timestamp: ts,
        records,
        compression: codec,
        producer_id,
        producer_epoch: if producer_id >= 0 { 0 } else { -1 },
        // In sequence for the callers' producers (two records per batch, a batch per 100 ms), so
        // the idempotence checks accept every batch.
        base_sequence: if producer_id >= 0 { ((ts / 100 - 1) * 2) as i32 } else { -1 },
        ..BatchBuilder::default()
    };
    RecordBatch::new(builder.build().unwrap()).unwrap()
}

/// (offset, key, value, timestamp) of every record in the log, checking batch order.
#[derive(Debug, Clone, PartialEq)]
struct Rec {
    offset: i64,
    key: u8,
    value: Option<u32>,
    ts: i64,
}

fn parse_key(k: &[u8]) -> u8 {
    std::str::from_utf8(k).unwrap().strip_prefix("key-").unwrap().parse().unwrap()
}

fn parse_value(v: &[u8]) -> u32 {
    std::str::from_utf8(v).unwrap().split('-').nth(1).unwrap().parse().unwrap()
}

fn read_all(p: &UnifiedLog) -> Vec<Rec> {
    let start = p.offsets().log_start_offset;
    let r = p.read(start, usize::MAX, i64::MAX, false).unwrap();
    let mut out: Vec<Rec> = Vec::new();
    for b in batches_of(&r.records) {
        for rec in b.records(1 << 24).unwrap() {
            let offset = b.base_offset() + i64::from(rec.offset_delta);
            assert!(offset <= b.last_offset());
            if let Some(prev) = out.last() {
                assert!(offset > prev.offset, "offsets must strictly increase: {} after {}", offset, prev.offset);
            }
            out.push(Rec {
                offset,
                key: parse_key(rec.key.as_ref().unwrap()),
                value: rec.value.as_deref().map(parse_value),
                ts: b.base_timestamp() + rec.timestamp_delta,
            });
        }
    }
    out
}

fn latest_per_key(recs: &[Rec]) -> BTreeMap<u8, Rec> {
    recs.iter().map(|r| (r.key, r.clone())).collect()
}

fn setup(config: LogConfig) -> (tempfile::TempDir, Arc<LogManager>, Arc<UnifiedLog>) {
    let dir = tempfile::tempdir().unwrap();
    let (mgr, _) = open_with(&[dir.path()], config.clone());
    let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config).unwrap();
    (dir, mgr, p)
}

/// 40 batches of 4 records over 6 keys (several versions each) plus a tombstone for key 5.
fn many_versions(p: &UnifiedLog, codec: Compression) {
    let mut v = 0;
    for i in 0..40i64 {
        let entries: Vec<(u8, Option<u32>)> = (0..4)
            .map(|j| {
                v += 1;
                (((i * 4 + j) % 6) as u8, Some(v))
            })
            .collect();
        p.append(&[kv_batch(&entries, 1_000 + i * 10, codec, -1)], 0).unwrap();
    }
    p.append(&[kv_batch(&[(5, None)], 2_000, codec, -1)], 0).unwrap();
    // One more so the tombstone is not in the active segment.
    p.append(&[kv_batch(&[(0, Some(9999)); 12], 2_100, codec, -1)], 0).unwrap();
    p.advance_high_watermark(i64::MAX);
}

#[test]
fn cleaning_keeps_the_latest_value_per_key_and_merges_segments() {
    let (_d, _m, p) = setup(compact_config());
    many_versions(&p, Compression::None);
    let before = read_all(&p);
    let segments_before = p.segment_base_offsets().len();
    let leo = p.offsets().log_end_offset;
    let stats = p.clean(CAP, 10_000).unwrap().expect("cleaned");
    let after = read_all(&p);
    assert_eq!(latest_per_key(&after), latest_per_key(&before));
    // Every key appears once below the active segment; the active segment is untouched.
    let active = *p.segment_base_offsets().last().unwrap();
    let mut seen = std::collections::HashSet::new();
    for r in after.iter().filter(|r| r.offset < active) {
        assert!(seen.insert(r.key), "key {} kept twice below the active segment", r.key);
    }
    let active_before: Vec<_> = before.iter().filter(|r| r.offset >= active).collect();
    let active_after: Vec<_> = after.iter().filter(|r| r.offset >= active).collect();
    assert_eq!(active_before, active_after);
    assert!(stats.records_removed > 100);
    // The first cleaning groups by the old sizes; the second merges the now small segments.
    p.clean(CAP, 10_000).unwrap();
    assert_eq!(read_all(&p), after);
    assert!(p.segment_base_offsets().len() < segments_before / 4, "small segments were merged");
    assert_eq!(p.offsets().log_end_offset, leo);
    // The tombstone is still there (delete horizon not passed).
    assert!(after.iter().any(|r| r.key == 5 && r.value.is_none()));
    // Nothing is dirty any more.
    let c = p.cleanable(10_000).unwrap().unwrap();
    assert_eq!(c.dirty_bytes, 0);
    assert!(!c.should_clean(0.5));
    // Appends continue; another cleaning is a no-op for the data.
    p.append(&[kv_batch(&[(1, Some(7))], 3_000, Compression::None, -1)], 0).unwrap();
    assert_eq!(p.offsets().log_end_offset, leo + 1);
}

#[test]
fn tombstones_vanish_after_the_delete_horizon() {
    let (_d, _m, p) = setup(compact_config());
    many_versions(&p, Compression::None);
    p.clean(CAP, 10_000).unwrap().expect("cleaned");
    let tomb: Vec<_> = read_all(&p).into_iter().filter(|r| r.key == 5).collect();
    assert_eq!(tomb.len(), 1);
    assert_eq!(tomb[0].value, None);
    // The horizon is now + delete.retention.ms = 11_000: before it the tombstone stays, and the
    // log is not even due for cleaning.
    let c = p.cleanable(10_500).unwrap().unwrap();
    assert!(!c.should_clean(0.5));
    p.clean(CAP, 10_500).unwrap();
    assert!(read_all(&p).iter().any(|r| r.key == 5));
    let c = p.cleanable(11_000).unwrap().unwrap();
    assert!(c.must_clean, "a passed delete horizon makes the log due");
    let stats = p.clean(CAP, 11_000).unwrap().expect("cleaned");
    assert_eq!(stats.tombstones_removed, 1);
    let after = read_all(&p);
    assert!(after.iter().all(|r| r.key != 5), "tombstone removed with every older version");
    assert!(!p.cleanable(11_000).unwrap().unwrap().must_clean);
}

#[test]
fn delete_horizon_survives_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let config = compact_config();
    let (mgr, _) = open_with(&[root.path()], config.clone());
    let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config.clone()).unwrap();
    many_versions(&p, Compression::Lz4);
    p.clean(CAP, 10_000).unwrap().expect("cleaned");
    let checkpoint = p.cleaner_checkpoint();
    mgr.shutdown().unwrap();
    drop((p, mgr));
    let (mgr, _) = open_with(&[root.path()], config);
    let p = mgr.get(&tp("t", 0)).unwrap();
    assert_eq!(p.cleaner_checkpoint(), checkpoint, "cleaner-offset-checkpoint persisted");
    p.advance_high_watermark(i64::MAX);
    assert!(read_all(&p).iter().any(|r| r.key == 5 && r.value.is_none()));
    p.clean(CAP, 10_999).unwrap();
    assert!(read_all(&p).iter().any(|r| r.key == 5), "before the horizon read from the batch");
    p.clean(CAP, 11_001).unwrap();
    assert!(read_all(&p).iter().all(|r| r.key != 5));
}

#[test]
fn rewritten_batches_keep_their_codec_and_producer_fields() {
    for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let (_d, _m, p) = setup(compact_config());
        // Producer 7's batches: versions of key 1; its last batch is fully superseded by
        // producer 8's later record, so it survives as an empty batch.
        p.append(&[kv_batch(&[(1, Some(1)), (2, Some(2))], 100, codec, 7)], 0).unwrap();
        p.append(&[kv_batch(&[(1, Some(3)), (3, Some(4))], 200, codec, 7)], 0).unwrap();
        p.append(&[kv_batch(&[(1, Some(5)), (3, Some(6))], 300, codec, 8)], 0).unwrap();
        p.append(&[kv_batch(&[(4, Some(7))], 400, codec, -1)], 0).unwrap();
        p.append(&[kv_batch(&[(4, Some(8))], 500, codec, -1)], 0).unwrap();
        p.update_config(LogConfig { segment_bytes: 1, ..compact_config() });
        p.append(&[kv_batch(&[(9, Some(9))], 600, codec, -1)], 0).unwrap();
        p.advance_high_watermark(i64::MAX);
        p.update_config(compact_config());
        p.clean(CAP, 10_000).unwrap().expect("cleaned");
        let r = p.read(0, usize::MAX, i64::MAX, false).unwrap();
        let batches = batches_of(&r.records);
        for b in batches.iter().filter(|b| b.records_count() > 0) {
            assert_eq!(b.compression().unwrap(), codec, "codec kept for {codec:?}");
        }
        let by_producer: Vec<(i64, i64, i32, i32)> = batches
            .iter()
            .map(|b| (b.producer_id(), b.base_offset(), b.records_count(), b.last_offset_delta()))
            .collect();
        // Batch 1 (offsets 0-1): key 2 kept. Batch 2 (2-3): all superseded, producer 7's last
        // batch -> empty batch with its last offset. Producer 8's batch and the rest kept.
        assert!(by_producer.contains(&(7, 0, 1, 1)), "{by_producer:?}");
        assert!(by_producer.contains(&(7, 2, 0, 1)), "{by_producer:?}");
        assert!(by_producer.contains(&(8, 4, 2, 1)), "{by_producer:?}");
        let recs = read_all(&p);
        let latest = latest_per_key(&recs);
        assert_eq!(latest[&1].value, Some(5));
        assert_eq!(latest[&4].value, Some(8));
        assert_eq!(recs.iter().filter(|r| r.key == 4).count(), 1);
    }
}

#[test]
fn records_younger_than_the_compaction_lag_are_not_cleaned() {
    let (_d, _m, p) = setup(LogConfig { min_compaction_lag_ms: 5_000, ..compact_config() });
    for i in 0..20i64 {
        p.append(&[kv_batch(&[(1, Some(i as u32)), (2, Some(i as u32))], i * 1_000, Compression::None, -1)], 0)
            .unwrap();
    }
    p.advance_high_watermark(i64::MAX);
    let before = read_all(&p);
    let now = 15_500;
    p.clean(CAP, now).unwrap().expect("cleaned");
    let after = read_all(&p);
    for r in before.iter().filter(|r| r.ts > now - 5_000) {
        assert!(after.contains(r), "young record {r:?} was cleaned");
    }
    assert!(after.len() < before.len());
    assert_eq!(latest_per_key(&after), latest_per_key(&before));
}

#[test]
fn max_compaction_lag_forces_a_cleaning_below_the_dirty_ratio() {
    let (_d, _m, p) =
        setup(LogConfig { max_compaction_lag_ms: 1_000, min_cleanable_dirty_ratio: 0.99, ..compact_config() });
    many_versions(&p, Compression::None);
    let c = p.cleanable(1_500).unwrap().unwrap();
    assert!(!c.must_clean);
    let c = p.cleanable(100_000).unwrap().unwrap();
    assert!(c.must_clean && c.should_clean(0.99));
}

#[test]
fn a_small_offset_map_cleans_in_several_passes() {
    let (_d, _m, p) = setup(compact_config());
    many_versions(&p, Compression::None);
    let before = read_all(&p);
    let mut passes = 0;
    while p.cleanable(10_000).unwrap().unwrap().dirty_bytes > 0 {
        p.clean(5, 10_000).unwrap();
        passes += 1;
        assert_eq!(latest_per_key(&read_all(&p)), latest_per_key(&before));
        assert!(passes < 100);
    }
    assert!(passes > 1);
}

#[test]
fn manager_picks_the_filthiest_compacted_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mgr, _) = open_with(&[dir.path()], compact_config());
    let a = mgr.get_or_create(&tp("a", 0), TOPIC_ID, compact_config()).unwrap();
    let b = mgr.get_or_create(&tp("b", 0), TOPIC_ID, LogConfig { cleanup_compact: false, ..compact_config() }).unwrap();
    many_versions(&a, Compression::None);
    many_versions(&b, Compression::None);
    let cfg = crate::CleanerConfig::default();
    let (cleaned, _) = mgr.clean_filthiest(&cfg, 10_000).unwrap().expect("one log cleaned");
    assert_eq!(cleaned, tp("a", 0));
    assert!(mgr.clean_filthiest(&cfg, 10_000).unwrap().is_none(), "nothing else dirty");
    assert!(fs::read_to_string(dir.path().join("cleaner-offset-checkpoint")).unwrap().contains("a 0 "));
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".swap") || n.ends_with(".cleaned") || n.ends_with(".deleted"))
        .collect()
}

#[test]
fn crash_during_each_swap_step_recovers_consistently() {
    let points = [
        CleanCrashPoint::AfterCleanedWritten,
        CleanCrashPoint::AfterSwapRenamed,
        CleanCrashPoint::AfterFirstOldDeleted,
        CleanCrashPoint::AfterAllOldDeleted,
        CleanCrashPoint::AfterFinalRename,
    ];
    for point in points {
        let root = tempfile::tempdir().unwrap();
        let config = LogConfig { file_delete_delay_ms: 60_000, ..compact_config() };
        let (mgr, _) = open_with(&[root.path()], config.clone());
        let p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config.clone()).unwrap();
        many_versions(&p, Compression::Gzip);
        mgr.checkpoint().unwrap();
        let before = read_all(&p);
        let raw_before = p.read(0, usize::MAX, i64::MAX, false).unwrap().records;
        let leo = p.offsets().log_end_offset;
        let dir = p.dir();
        let err = p.clean_with_crash(CAP, 10_000, Some(point)).expect_err("simulated crash");
        assert!(err.to_string().contains("simulated crash"));
        assert!(!leftovers(&dir).is_empty(), "{point:?} leaves files behind");
        // Crash: no shutdown, no marker.
        drop((p, mgr));
        let (mgr, report) = open_with(&[root.path()], config.clone());
        assert_eq!(report.unclean_dirs.len(), 1);
        let p = mgr.get(&tp("t", 0)).unwrap();
        p.advance_high_watermark(i64::MAX);
        assert!(leftovers(&dir).is_empty(), "{point:?}: recovery removed {:?}", leftovers(&dir));
        assert_eq!(p.offsets().log_end_offset, leo, "{point:?}");
        let after = read_all(&p);
        assert_eq!(latest_per_key(&after), latest_per_key(&before), "{point:?}");
        // No duplicates, no invented records: every record read was appended at that offset.
        for r in &after {
            assert!(before.contains(r), "{point:?}: {r:?} was never appended");
        }
        if point == CleanCrashPoint::AfterCleanedWritten {
            // Rolled back: exactly the old log.
            assert_eq!(p.read(0, usize::MAX, i64::MAX, false).unwrap().records, raw_before);
        } else {
            // Rolled forward: the first group was swapped in.
            assert!(after.len() < before.len(), "{point:?}");
        }
        // The log keeps working: appends, a full cleaning, a clean restart.
        p.append(&[kv_batch(&[(1, Some(4242))], 5_000, Compression::None, -1)], 0).unwrap();
        p.advance_high_watermark(i64::MAX);
        p.clean(CAP, 10_000).unwrap();
        let latest = latest_per_key(&read_all(&p));
        assert_eq!(latest[&1].value, Some(4242));
        mgr.shutdown().unwrap();
        drop((p, mgr));
        let (mgr, _) = open_with(&[root.path()], config);
        let p = mgr.get(&tp("t", 0)).unwrap();
        p.advance_high_watermark(i64::MAX);
        assert_eq!(latest_per_key(&read_all(&p))[&1].value, Some(4242));
    }
}

// ----- model test -----

#[derive(Debug, Clone)]
enum Op {
    /// One batch of (key, value or tombstone).
    Append(Vec<(u8, Option<u32>)>),
    /// Clean with this offset map capacity, advancing the clock by this much first.
    Clean {
        capacity: usize,
        advance_ms: i64,
    },
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0u8..8, prop::option::weighted(0.8, 0u32..1000)), 1..6).prop_map(Op::Append),
        3 => (1usize..40, 0i64..3_000).prop_map(|(capacity, advance_ms)| Op::Clean { capacity, advance_ms }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Reading the log always yields exactly the model's latest value per key (a tombstone may
    /// vanish once its delete horizon passed, taking every older version of the key with it),
    /// every record read was appended at that offset, offsets strictly increase, and records
    /// younger than `min.compaction.lag.ms` never change.
    #[test]
    fn compaction_matches_model(
        ops in prop::collection::vec(op(), 1..40),
        segment_bytes in 150u64..800,
        lag_ms in prop::option::of(0i64..3_000),
    ) {
        let root = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes,
            min_compaction_lag_ms: lag_ms.unwrap_or(0),
            delete_retention_ms: 2_000,
            ..compact_config()
        };
        let (mut mgr, _) = open_with(&[root.path()], config.clone());
        let mut p = mgr.get_or_create(&tp("t", 0), TOPIC_ID, config.clone()).unwrap();
        // Every record ever appended, by offset, and the clock (record timestamps follow it).
        let mut appended: BTreeMap<i64, Rec> = BTreeMap::new();
        let mut now = 1_000_000i64;
        for op in ops {
            match op {
                Op::Append(entries) => {
                    now += 10;
                    let info = p.append(&[kv_batch(&entries, now, Compression::None, -1)], 0).unwrap();
                    p.advance_high_watermark(i64::MAX);
                    for (i, (k, v)) in entries.iter().enumerate() {
                        let offset = info.first_offset + i as i64;
                        appended.insert(offset, Rec { offset, key: *k, value: *v, ts: now + i as i64 });
                    }
                }
                Op::Clean { capacity, advance_ms } => {
                    now += advance_ms;
                    let before = read_all(&p);
                    p.clean(capacity, now).unwrap();
                    let after = read_all(&p);
                    if let Some(lag) = lag_ms {
                        for r in before.iter().filter(|r| r.ts > now - lag) {
                            prop_assert!(after.contains(r), "record {:?} younger than the lag was cleaned", r);
                        }
                    }
                }
                Op::Reopen { clean } => {
                    if clean {
                        mgr.shutdown().unwrap();
                    }
                    drop(p);
                    drop(mgr);
                    let (m, _) = open_with(&[root.path()], config.clone());
                    mgr = m;
                    p = mgr.get(&tp("t", 0)).unwrap();
                    p.advance_high_watermark(i64::MAX);
                }
            }
            let log = read_all(&p);
            for r in &log {
                prop_assert_eq!(appended.get(&r.offset), Some(r), "record not appended at that offset");
            }
            let model_latest = latest_per_key(&appended.values().cloned().collect::<Vec<_>>());
            let log_latest = latest_per_key(&log);
            for (k, want) in &model_latest {
                match log_latest.get(k) {
                    Some(got) => prop_assert_eq!(got, want),
                    None => prop_assert!(want.value.is_none(), "key {} lost its latest value {:?}", k, want),
                }
            }
            prop_assert_eq!(p.offsets().log_end_offset, appended.keys().next_back().map_or(0, |o| o + 1));
        }
    }
}
