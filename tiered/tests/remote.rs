//! The remote tier end to end on `memory://` and `file://`: upload, local deletion, remote reads
//! of every record, remote retention, rebuild from the bucket, and a crash after each upload step.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::batch::{BatchIter, RecordBatch};
use sluice_protocol::records::{BatchBuilder, Record};
use sluice_storage::remote::{RemoteLogMetadataFile, RemoteSegmentState, RemoteTier};
use sluice_storage::{LogConfig, LogManager, LogManagerConfig, Partition, TopicPartition};
use sluice_tiered::{open_url, ObjectStoreTier, RemoteLogManager, RetryTier, UploadCrashPoint};

const TOPIC_ID: [u8; 16] = [7; 16];
const RECORDS: i64 = 400;

fn tp() -> TopicPartition {
    TopicPartition { topic: "tiered".into(), partition: 0 }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 128,
        remote_storage_enable: true,
        local_retention_ms: 0,
        local_retention_bytes: -2,
        retention_ms: -1,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig) -> (Arc<LogManager>, Arc<Partition>) {
    let c = config.clone();
    let (mgr, _) =
        LogManager::open(LogManagerConfig { log_dirs: vec![dir.to_path_buf()] }, &move |_: &str| c.clone()).unwrap();
    let p = mgr.get_or_create(&tp(), TOPIC_ID, config).unwrap();
    (mgr, p)
}

/// One record per batch, value = its sequence number, timestamp 1000 + i.
fn produce(p: &Partition, from: i64, to: i64) {
    for i in from..to {
        let record = Record {
            offset_delta: 0,
            value: Some(Bytes::from(format!("value-{i:06}-{}", "x".repeat(40)))),
            ..Record::default()
        };
        let b = BatchBuilder { base_timestamp: 1000 + i, records: vec![record], ..BatchBuilder::default() };
        let batch = RecordBatch::new(b.build().unwrap()).unwrap();
        p.append(&[batch], 0).unwrap();
    }
    p.advance_high_watermark(to);
}

/// Every offset from `from` read back through local reads, falling back to the remote tier below
/// the local log start: values in order, no gaps, no duplicates, whole batches.
async fn read_all(rlm: &RemoteLogManager, p: &Partition, from: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut next = from;
    let hw = p.offsets().high_watermark;
    while next < hw {
        let bytes = if next < p.offsets().log_start_offset {
            rlm.read(p.topic_partition(), next, 700, hw).await.unwrap().expect("remote segment")
        } else {
            p.read(next, 700, hw, true).unwrap().records
        };
        assert!(!bytes.is_empty(), "no progress at {next}");
        let mut it = BatchIter::new(bytes);
        for b in it.by_ref() {
            let b = b.unwrap();
            b.validate().unwrap();
            for r in b.records(1 << 20).unwrap() {
                let offset = b.base_offset() + i64::from(r.offset_delta);
                if offset < next {
                    continue;
                }
                let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                assert_eq!(v[6..12].parse::<i64>().unwrap(), offset);
                out.push(offset);
                next = offset + 1;
            }
        }
        assert!(it.remaining().is_empty(), "partial batch returned");
    }
    out
}

async fn upload_and_read_everything(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, p) = open(dir.path(), config());
    produce(&p, 0, RECORDS);
    let segments_before = p.segment_base_offsets().len();
    assert!(segments_before > 5);
    let tier: Arc<dyn RemoteTier> =
        Arc::new(RetryTier::new(open_url(url).unwrap(), 3, std::time::Duration::from_millis(1)));
    let rlm = RemoteLogManager::new(tier);

    // Local retention deletes nothing before the upload.
    p.apply_retention(10_000).unwrap();
    assert_eq!(p.segment_base_offsets().len(), segments_before);

    let stats = rlm.sync(&p, 0).await.unwrap();
    assert_eq!(stats.segments_uploaded, segments_before - 1, "every rolled segment, not the active one");
    let remote = rlm.segments(&tp());
    assert_eq!(remote.first().unwrap().base_offset, 0);
    assert_eq!(remote.last().unwrap().end_offset + 1, *p.segment_base_offsets().last().unwrap());
    assert_eq!(p.highest_remote_offset(), remote.last().unwrap().end_offset);

    // Nothing more to upload on the next round.
    assert_eq!(rlm.sync(&p, 0).await.unwrap().segments_uploaded, 0);

    // Local retention now deletes the uploaded segments only.
    p.apply_retention(10_000).unwrap();
    assert_eq!(p.segment_base_offsets().len(), 1);
    assert!(p.offsets().log_start_offset > 0);
    assert_eq!(rlm.log_start_offset(&tp()), Some(0));

    // Every record, in order, from offset 0 (remote) through the local tail.
    assert_eq!(read_all(&rlm, &p, 0).await, (0..RECORDS).collect::<Vec<_>>());
    // From the middle of a remote segment.
    assert_eq!(read_all(&rlm, &p, 37).await, (37..RECORDS).collect::<Vec<_>>());
    // A max_bytes smaller than one batch still returns that batch whole.
    let one = rlm.read(&tp(), 5, 1, RECORDS).await.unwrap().unwrap();
    assert_eq!(BatchIter::new(one).count(), 1);
}

#[tokio::test]
async fn upload_local_deletion_and_remote_reads_on_memory() {
    upload_and_read_everything("memory://").await;
}

#[tokio::test]
async fn upload_local_deletion_and_remote_reads_on_file() {
    let bucket = tempfile::tempdir().unwrap();
    upload_and_read_everything(&format!("file://{}", bucket.path().display())).await;
    // Deterministic keys: <topic id>/<partition>/<20-digit base offset>-<uuid>.<ext>.
    let topic_dir = bucket.path().join(sluice_storage::layout::encode_topic_id(&TOPIC_ID)).join("0");
    let names: Vec<String> =
        std::fs::read_dir(&topic_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().any(|n| n.starts_with("00000000000000000000-") && n.ends_with(".log")));
    for ext in ["log", "index", "timeindex", "json"] {
        assert!(names.iter().any(|n| n.ends_with(&format!(".{ext}"))), "no .{ext} object");
    }
}

#[tokio::test]
async fn remote_retention_deletes_the_oldest_remote_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, p) = open(dir.path(), config());
    produce(&p, 0, RECORDS);
    let tier = Arc::new(open_url("memory://").unwrap());
    let rlm = RemoteLogManager::new(tier.clone());
    rlm.sync(&p, 0).await.unwrap();
    p.apply_retention(10_000).unwrap();
    let remote = rlm.segments(&tp());
    let n = remote.len();
    assert!(n > 3);
    // retention.ms: records with timestamps 1000 + offset; keep everything newer than the third
    // segment's max timestamp.
    let cutoff_ts = remote[2].max_timestamp;
    p.update_config(LogConfig { retention_ms: 10, ..config() });
    let stats = rlm.sync(&p, cutoff_ts + 10 + 1).await.unwrap();
    assert_eq!(stats.remote_segments_deleted, 3);
    let left = rlm.segments(&tp());
    assert_eq!(left.len(), n - 3);
    assert_eq!(rlm.log_start_offset(&tp()), Some(remote[3].base_offset));
    assert!(rlm.read(&tp(), remote[0].base_offset, 1000, RECORDS).await.unwrap().is_none());
    // The objects are gone from the store too.
    let listing = tier.list_segments(&left[0].topic_id, 0).await.unwrap();
    assert_eq!(listing.complete.len(), n - 3);
    assert!(listing.orphan_stems.is_empty());
    // retention.bytes over the whole log.
    p.update_config(LogConfig { retention_ms: -1, retention_bytes: 0, ..config() });
    rlm.sync(&p, 0).await.unwrap();
    assert!(rlm.segments(&tp()).is_empty());
    assert_eq!(
        read_all(&rlm, &p, p.offsets().log_start_offset).await.len() as i64,
        RECORDS - p.offsets().log_start_offset
    );
}

#[tokio::test]
async fn crash_after_each_upload_step_then_restart() {
    for point in [UploadCrashPoint::AfterStartedCommit, UploadCrashPoint::AfterCopy] {
        let dir = tempfile::tempdir().unwrap();
        let (mgr, p) = open(dir.path(), config());
        produce(&p, 0, RECORDS);
        let tier = Arc::new(open_url("memory://").unwrap());
        let crashing = RemoteLogManager::with_crash_point(tier.clone(), point);
        assert!(crashing.sync(&p, 0).await.is_err());
        // Nothing is committed: local retention keeps every segment.
        p.apply_retention(10_000).unwrap();
        assert_eq!(p.offsets().log_start_offset, 0, "{point:?}");
        let file = RemoteLogMetadataFile::load(&p.dir()).unwrap().unwrap();
        assert!(file.segments.iter().all(|s| s.state == RemoteSegmentState::CopySegmentStarted));
        assert_eq!(file.highest_offset(), -1);
        drop((p, mgr));

        // Restart: reopen the log and a fresh manager over the same store.
        let (_mgr, p) = open(dir.path(), config());
        // As the broker does at startup: the single replica's HW is its log end.
        p.advance_high_watermark(p.offsets().log_end_offset);
        assert_eq!(p.offsets().high_watermark, RECORDS);
        assert_eq!(p.highest_remote_offset(), -1);
        let rlm = RemoteLogManager::new(tier.clone());
        rlm.sync(&p, 0).await.unwrap();
        let file = RemoteLogMetadataFile::load(&p.dir()).unwrap().unwrap();
        assert!(file.segments.iter().all(|s| s.state == RemoteSegmentState::CopySegmentFinished));
        // No orphans left in the store: every object belongs to a committed segment.
        let listing = tier.list_segments(&file.segments[0].topic_id, 0).await.unwrap();
        assert!(listing.orphan_stems.is_empty(), "{point:?}: {:?}", listing.orphan_stems);
        assert_eq!(listing.complete.len(), file.segments.len());
        let objects = object_count(&tier).await;
        assert_eq!(objects, file.segments.len() * 4, "{point:?}");
        p.apply_retention(10_000).unwrap();
        assert_eq!(read_all(&rlm, &p, 0).await, (0..RECORDS).collect::<Vec<_>>());
    }
}

async fn object_count(tier: &ObjectStoreTier) -> usize {
    use futures::TryStreamExt;
    let all: Vec<_> = tier.store().list(None).try_collect().await.unwrap();
    all.len()
}

#[tokio::test]
async fn metadata_is_rebuilt_from_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, p) = open(dir.path(), config());
    produce(&p, 0, RECORDS);
    let tier = Arc::new(open_url("memory://").unwrap());
    let rlm = RemoteLogManager::new(tier.clone());
    rlm.sync(&p, 0).await.unwrap();
    let before = rlm.segments(&tp());
    p.apply_retention(10_000).unwrap();
    // Lose the local metadata file; a new manager rebuilds it from the listing.
    std::fs::remove_file(RemoteLogMetadataFile::path(&p.dir())).unwrap();
    let rlm = RemoteLogManager::new(tier);
    rlm.sync(&p, 0).await.unwrap();
    assert_eq!(rlm.segments(&tp()), before);
    assert_eq!(read_all(&rlm, &p, 0).await, (0..RECORDS).collect::<Vec<_>>());
}
