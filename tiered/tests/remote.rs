//! The remote tier end to end on `memory://` and `file://`: upload, local deletion, remote reads
//! of every record, remote retention, rebuild from the bucket, a crash after each upload step,
//! producer snapshots and transaction indexes in uploads, ListOffsets by timestamp from remote
//! time indexes (cached), DeleteRecords below the local log start (and its completion after a
//! restart), and the deletion of a deleted topic's remote data (resumed after a restart or a
//! store failure, never acted on while the topic exists).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sluice_protocol::batch::{BatchIter, RecordBatch};
use sluice_protocol::records::{BatchBuilder, Record};
use sluice_storage::remote::{
    BoxFuture, RemoteFileKind, RemoteListing, RemoteLogSegmentMetadata, RemoteSegmentState, RemoteStorageError,
    RemoteTier, SegmentFiles,
};
use sluice_storage::{LogConfig, LogManager, LogManagerConfig, TopicPartition, UnifiedLog};
use sluice_tiered::{
    open_url, ObjectStoreTier, RemoteLogManager, RemoteLogMetadataFile, RetryTier, UploadCrashPoint,
    PENDING_DELETIONS_FILE,
};

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

fn open(dir: &Path, config: LogConfig) -> (Arc<LogManager>, Arc<UnifiedLog>) {
    let c = config.clone();
    let (mgr, _) =
        LogManager::open(LogManagerConfig { log_dirs: vec![dir.to_path_buf()] }, &move |_: &str| c.clone()).unwrap();
    let p = mgr.get_or_create(&tp(), TOPIC_ID, config).unwrap();
    (mgr, p)
}

/// One record per batch, value = its sequence number, timestamp 1000 + i.
fn produce(p: &UnifiedLog, from: i64, to: i64) {
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
async fn read_all(rlm: &RemoteLogManager, p: &UnifiedLog, from: i64) -> Vec<i64> {
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
        let expected: usize = file.segments.iter().map(|s| 4 + usize::from(s.has_producer_snapshot)).sum();
        assert_eq!(objects, expected, "{point:?}");
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

/// A tier that counts fetches by file kind and can be made to fail deletions.
#[derive(Debug)]
struct CountingTier {
    inner: Arc<dyn RemoteTier>,
    fetches: Mutex<HashMap<RemoteFileKind, usize>>,
    fail_deletes: AtomicBool,
}

impl CountingTier {
    fn new(inner: Arc<dyn RemoteTier>) -> Arc<Self> {
        Arc::new(Self { inner, fetches: Mutex::default(), fail_deletes: AtomicBool::new(false) })
    }

    fn fetches(&self, kind: RemoteFileKind) -> usize {
        self.fetches.lock().unwrap().get(&kind).copied().unwrap_or(0)
    }

    fn check_delete(&self) -> Result<(), RemoteStorageError> {
        if self.fail_deletes.load(Ordering::SeqCst) {
            return Err(RemoteStorageError::Store { key: "test".into(), reason: "deletes fail".into() });
        }
        Ok(())
    }
}

impl RemoteTier for CountingTier {
    fn copy_segment<'a>(
        &'a self,
        metadata: &'a RemoteLogSegmentMetadata,
        files: &'a SegmentFiles,
    ) -> BoxFuture<'a, Result<(), RemoteStorageError>> {
        self.inner.copy_segment(metadata, files)
    }

    fn fetch<'a>(
        &'a self,
        metadata: &'a RemoteLogSegmentMetadata,
        kind: RemoteFileKind,
        start: u64,
        end: u64,
    ) -> BoxFuture<'a, Result<Bytes, RemoteStorageError>> {
        *self.fetches.lock().unwrap().entry(kind).or_default() += 1;
        self.inner.fetch(metadata, kind, start, end)
    }

    fn delete_segment<'a>(
        &'a self,
        metadata: &'a RemoteLogSegmentMetadata,
    ) -> BoxFuture<'a, Result<(), RemoteStorageError>> {
        Box::pin(async move {
            self.check_delete()?;
            self.inner.delete_segment(metadata).await
        })
    }

    fn list_segments<'a>(
        &'a self,
        topic_id: &'a str,
        partition: i32,
    ) -> BoxFuture<'a, Result<RemoteListing, RemoteStorageError>> {
        self.inner.list_segments(topic_id, partition)
    }

    fn delete_stem<'a>(&'a self, key_stem: &'a str) -> BoxFuture<'a, Result<(), RemoteStorageError>> {
        Box::pin(async move {
            self.check_delete()?;
            self.inner.delete_stem(key_stem).await
        })
    }
}

/// Batches of `per_batch` records from `from` to `to`; the record at offset `o` has timestamp
/// `1000 + 10 * o`.
fn produce_batches(p: &UnifiedLog, from: i64, to: i64, per_batch: i64) {
    let mut first = from;
    while first < to {
        let last = (first + per_batch).min(to);
        let records = (first..last)
            .map(|o| Record {
                offset_delta: (o - first) as i32,
                timestamp_delta: 10 * (o - first),
                value: Some(Bytes::from(format!("value-{o:06}-{}", "y".repeat(30)))),
                ..Record::default()
            })
            .collect();
        let b = BatchBuilder { base_timestamp: 1000 + 10 * first, records, ..BatchBuilder::default() };
        p.append(&[RecordBatch::new(b.build().unwrap()).unwrap()], 0).unwrap();
        first = last;
    }
    p.advance_high_watermark(to);
}

/// ListOffsets by timestamp through the manager, falling back to the local log as the broker does.
async fn offset_for_time(rlm: &RemoteLogManager, p: &UnifiedLog, ts: i64) -> Option<(i64, i64)> {
    let remote = rlm.offset_for_timestamp(p.topic_partition(), ts, p.offsets().log_start_offset).await.unwrap();
    let found = match remote {
        Some(r) => Some(r),
        None => p.offset_for_timestamp(ts).unwrap(),
    };
    found.map(|f| (f.offset, f.timestamp))
}

async fn timestamp_lookups(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, p) = open(dir.path(), config());
    produce_batches(&p, 0, RECORDS, 5);
    let tier = CountingTier::new(Arc::new(open_url(url).unwrap()));
    let rlm = RemoteLogManager::new(tier.clone());
    rlm.sync(&p, 0).await.unwrap();
    p.apply_retention(10_000).unwrap();
    let local_start = p.offsets().log_start_offset;
    let remote = rlm.segments(&tp());
    assert!(remote.len() > 3 && local_start > 100, "local start {local_start}");
    assert_eq!(remote.last().unwrap().end_offset + 1, local_start);
    // Nothing below the local log start is local any more: these answers come from the tier.
    assert_eq!(p.offset_for_timestamp(1000).unwrap().map(|f| f.offset), Some(local_start));

    // Exact timestamps, timestamps between records (the next record), the middle of a batch,
    // the first record of a later remote segment, the local part, and past the end.
    let seg2 = &remote[2];
    for (ts, want) in [
        (0, Some(0)),
        (1000, Some(0)),
        (1001, Some(1)),
        (1000 + 10 * 37, Some(37)),
        (1000 + 10 * 37 - 5, Some(37)),
        (1000 + 10 * seg2.base_offset, Some(seg2.base_offset)),
        (1000 + 10 * (seg2.end_offset + 1) - 1, Some(seg2.end_offset + 1)),
        (1000 + 10 * (local_start - 1), Some(local_start - 1)),
        (1000 + 10 * local_start, Some(local_start)),
        (1000 + 10 * (RECORDS - 1), Some(RECORDS - 1)),
        (1000 + 10 * RECORDS, None),
    ] {
        let got = offset_for_time(&rlm, &p, ts).await;
        assert_eq!(got.map(|g| g.0), want, "offset for timestamp {ts}");
        if let Some((offset, timestamp)) = got {
            assert_eq!(timestamp, 1000 + 10 * offset, "timestamp for {ts}");
        }
    }

    // The time index of a segment is fetched once, then served from the cache.
    let before = tier.fetches(RemoteFileKind::TimeIndex);
    let cached = rlm.cached_time_indexes();
    assert!(cached >= 3, "{cached}");
    assert_eq!(offset_for_time(&rlm, &p, 1000 + 10 * 37).await, Some((37, 1370)));
    assert_eq!(offset_for_time(&rlm, &p, 1000 + 10 * seg2.base_offset + 20).await.unwrap().0, seg2.base_offset + 2);
    assert_eq!(tier.fetches(RemoteFileKind::TimeIndex), before);
    assert_eq!(rlm.cached_time_indexes(), cached);

    // After DeleteRecords the search starts at the new log start.
    p.delete_records(41).unwrap();
    assert_eq!(rlm.delete_records(&p, 41).await.unwrap(), Some(41));
    assert_eq!(offset_for_time(&rlm, &p, 1000).await, Some((41, 1410)));
    assert_eq!(offset_for_time(&rlm, &p, 1000 + 10 * 50).await, Some((50, 1500)));
}

#[tokio::test]
async fn offset_for_timestamp_searches_remote_time_indexes_on_memory() {
    timestamp_lookups("memory://").await;
}

#[tokio::test]
async fn offset_for_timestamp_searches_remote_time_indexes_on_file() {
    let bucket = tempfile::tempdir().unwrap();
    timestamp_lookups(&format!("file://{}", bucket.path().display())).await;
}

async fn get_object(tier: &ObjectStoreTier, key: &str) -> Option<Bytes> {
    let path = object_store::path::Path::from(key);
    match tier.store().get(&path).await {
        Ok(r) => Some(r.bytes().await.unwrap()),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => panic!("{e}"),
    }
}

async fn snapshots_and_txn_indexes(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, p) = open(dir.path(), config());
    // An aborted transaction in the first segment gives it a transaction index.
    let txn = BatchBuilder {
        transactional: true,
        producer_id: 7,
        producer_epoch: 0,
        base_sequence: 0,
        base_timestamp: 999,
        records: vec![Record { value: Some(Bytes::from_static(b"aborted")), ..Record::default() }],
        ..BatchBuilder::default()
    };
    p.append(&[RecordBatch::new(txn.build().unwrap()).unwrap()], 0).unwrap();
    p.append_marker(7, 0, 0, false, 0).unwrap();
    produce(&p, 0, RECORDS);
    let bases = p.segment_base_offsets();
    // The index file is named by the offset of its first entry (the segment holding the marker).
    let txn_files: Vec<(i64, Vec<u8>)> = std::fs::read_dir(p.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.extension().is_some_and(|e| e == "txnindex"))
        .map(|f| (f.file_stem().unwrap().to_str().unwrap().parse().unwrap(), std::fs::read(&f).unwrap()))
        .collect();
    assert_eq!(txn_files.len(), 1, "the abort is indexed");
    let (txn_key, txn_bytes) = txn_files[0].clone();
    assert!(!txn_bytes.is_empty());
    let snapshots: Vec<i64> = sluice_storage::producer_state::list_snapshots(&p.dir()).unwrap();
    assert!(!snapshots.is_empty(), "a snapshot is written at every roll");

    let tier = Arc::new(open_url(url).unwrap());
    let rlm = RemoteLogManager::new(tier.clone());
    rlm.sync(&p, 0).await.unwrap();
    let remote = rlm.segments(&tp());
    assert_eq!(remote.len(), bases.len() - 1);
    let mut with_snapshot = 0;
    for seg in &remote {
        let snapshot_file = sluice_storage::producer_state::snapshot_file(&p.dir(), seg.end_offset + 1);
        let kept = snapshots.contains(&(seg.end_offset + 1));
        assert_eq!(seg.has_producer_snapshot, kept, "segment {}", seg.base_offset);
        let object = get_object(&tier, &format!("{}.snapshot", seg.key_stem())).await;
        if kept {
            with_snapshot += 1;
            assert_eq!(object.unwrap(), std::fs::read(&snapshot_file).unwrap(), "snapshot of {}", seg.base_offset);
        } else {
            assert!(object.is_none());
        }
        let txn = get_object(&tier, &format!("{}.txnindex", seg.key_stem())).await;
        let holds_abort = seg.base_offset <= txn_key && txn_key <= seg.end_offset;
        assert_eq!(seg.has_transaction_index, holds_abort, "segment {}", seg.base_offset);
        assert_eq!(txn.map(|b| b.to_vec()), holds_abort.then(|| txn_bytes.clone()));
    }
    assert!(with_snapshot >= 1, "the newest rolled segments carry their snapshot");
    assert_eq!(remote.iter().filter(|s| s.has_transaction_index).count(), 1);
    // The manifest records both.
    let with_txn = remote.iter().find(|s| s.has_transaction_index).unwrap();
    let manifest = get_object(&tier, &format!("{}.json", with_txn.key_stem())).await.unwrap();
    let m: RemoteLogSegmentMetadata = serde_json::from_slice(&manifest).unwrap();
    assert!(m.has_transaction_index);

    // Deleting the segments (retention.bytes = 0) deletes every object, snapshots and txn
    // indexes included.
    p.update_config(LogConfig { retention_ms: -1, retention_bytes: 0, ..config() });
    rlm.sync(&p, 0).await.unwrap();
    assert!(rlm.segments(&tp()).is_empty());
    assert_eq!(object_count(&tier).await, 0);
}

#[tokio::test]
async fn producer_snapshots_and_transaction_indexes_are_uploaded_on_memory() {
    snapshots_and_txn_indexes("memory://").await;
}

#[tokio::test]
async fn producer_snapshots_and_transaction_indexes_are_uploaded_on_file() {
    let bucket = tempfile::tempdir().unwrap();
    snapshots_and_txn_indexes(&format!("file://{}", bucket.path().display())).await;
}

async fn delete_records_then_restart(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (mgr, p) = open(dir.path(), config());
    produce(&p, 0, RECORDS);
    let tier = Arc::new(open_url(url).unwrap());
    let rlm = RemoteLogManager::new(tier.clone());
    rlm.sync(&p, 0).await.unwrap();
    p.apply_retention(10_000).unwrap();
    let local_start = p.offsets().log_start_offset;
    let remote = rlm.segments(&tp());
    let n = remote.len();
    assert!(n > 4);
    let target = remote[3].base_offset + 2;
    assert!(target < local_start);

    // The local log answers its own start (the target is below it); the remote start moves.
    assert_eq!(p.delete_records(target).unwrap(), local_start);
    assert_eq!(rlm.delete_records(&p, target).await.unwrap(), Some(target));
    assert_eq!(rlm.log_start_offset(&tp()), Some(target));
    // Below the new start nothing is served, from the start on everything is.
    assert!(rlm.read(&tp(), remote[0].base_offset, 1000, RECORDS).await.unwrap().is_none());
    assert!(rlm.read(&tp(), target - 1, 1000, RECORDS).await.unwrap().is_none());
    assert_eq!(read_all(&rlm, &p, target).await, (target..RECORDS).collect::<Vec<_>>());
    // Durable before any segment is deleted.
    let file = RemoteLogMetadataFile::load(&p.dir()).unwrap().unwrap();
    assert_eq!(file.log_start_offset_floor, target);
    assert_eq!(tier.list_segments(&remote[0].topic_id, 0).await.unwrap().complete.len(), n);

    // "Crash" before the remote deletion: a new manager over the same dir and store finishes it.
    drop((rlm, p, mgr));
    let (_mgr, p) = open(dir.path(), config());
    p.advance_high_watermark(p.offsets().log_end_offset);
    let rlm = RemoteLogManager::new(tier.clone());
    let stats = rlm.sync(&p, 0).await.unwrap();
    assert_eq!(stats.remote_segments_deleted, 3, "the segments wholly below the new start");
    assert_eq!(rlm.log_start_offset(&tp()), Some(target));
    let listing = tier.list_segments(&remote[0].topic_id, 0).await.unwrap();
    assert_eq!(listing.complete.len(), n - 3);
    assert_eq!(listing.complete[0].base_offset, remote[3].base_offset);
    assert_eq!(read_all(&rlm, &p, target).await, (target..RECORDS).collect::<Vec<_>>());

    // Up to the local start: every remote segment goes, at once.
    let local_start = p.offsets().log_start_offset;
    assert_eq!(p.delete_records(local_start).unwrap(), local_start);
    assert_eq!(rlm.delete_records(&p, local_start).await.unwrap(), None);
    assert_eq!(rlm.delete_below_log_start(&p).await.unwrap(), n - 3);
    assert!(rlm.segments(&tp()).is_empty());
    assert_eq!(object_count(&tier).await, 0);
}

#[tokio::test]
async fn delete_records_moves_the_remote_log_start_and_finishes_after_restart_on_memory() {
    delete_records_then_restart("memory://").await;
}

#[tokio::test]
async fn delete_records_moves_the_remote_log_start_and_finishes_after_restart_on_file() {
    let bucket = tempfile::tempdir().unwrap();
    delete_records_then_restart(&format!("file://{}", bucket.path().display())).await;
}

async fn topic_deletion(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let (_mgr, p) = open(dir.path(), config());
    produce(&p, 0, RECORDS);
    let store = Arc::new(open_url(url).unwrap());
    let tier = CountingTier::new(store.clone());
    let rlm = Arc::new(RemoteLogManager::new(tier.clone()).with_state_dir(state_dir.path().to_path_buf()).unwrap());
    rlm.sync(&p, 0).await.unwrap();
    let segments = rlm.segments(&tp()).len();
    let objects = object_count(&store).await;
    assert!(segments > 3 && objects >= 4 * segments);
    let topic_id = sluice_storage::layout::encode_topic_id(&TOPIC_ID);
    let gone = |_: &str| false;
    let live = |_: &str| true;

    // Recorded durably; not acted on while the deletion is in flight.
    rlm.begin_topic_deletion(&topic_id, 1).unwrap();
    assert!(std::fs::read_to_string(state_dir.path().join(PENDING_DELETIONS_FILE)).unwrap().contains(&topic_id));
    assert_eq!(rlm.resume_topic_deletions(gone).await.unwrap(), 0);
    assert_eq!(object_count(&store).await, objects);

    // Crash before the metadata deletion: after a restart the topic still exists, so the
    // record is stale and dropped, the data kept.
    drop(rlm);
    let rlm = Arc::new(RemoteLogManager::new(tier.clone()).with_state_dir(state_dir.path().to_path_buf()).unwrap());
    assert_eq!(rlm.pending_topic_deletions().len(), 1);
    assert_eq!(rlm.resume_topic_deletions(live).await.unwrap(), 0);
    assert!(rlm.pending_topic_deletions().is_empty());
    assert_eq!(object_count(&store).await, objects);

    // The deletion goes through, but the store refuses deletes: the record stays.
    rlm.sync(&p, 0).await.unwrap();
    rlm.begin_topic_deletion(&topic_id, 1).unwrap();
    rlm.end_topic_deletion(&topic_id, "tiered");
    assert!(rlm.segments(&tp()).is_empty(), "the deleted topic's state is forgotten");
    tier.fail_deletes.store(true, Ordering::SeqCst);
    assert!(rlm.resume_topic_deletions(gone).await.is_err());
    assert_eq!(rlm.pending_topic_deletions().len(), 1);

    // Crash; the restarted manager resumes from the file and deletes everything.
    drop(rlm);
    tier.fail_deletes.store(false, Ordering::SeqCst);
    let rlm = Arc::new(RemoteLogManager::new(tier.clone()).with_state_dir(state_dir.path().to_path_buf()).unwrap());
    assert_eq!(rlm.pending_topic_deletions().len(), 1);
    let deleted = rlm.resume_topic_deletions(gone).await.unwrap();
    assert_eq!(deleted, segments, "every segment");
    assert_eq!(object_count(&store).await, 0);
    assert!(rlm.pending_topic_deletions().is_empty());
    let on_disk = std::fs::read_to_string(state_dir.path().join(PENDING_DELETIONS_FILE)).unwrap();
    assert!(!on_disk.contains(&topic_id), "{on_disk}");
    let rlm = RemoteLogManager::new(tier).with_state_dir(state_dir.path().to_path_buf()).unwrap();
    assert!(rlm.pending_topic_deletions().is_empty());
}

#[tokio::test]
async fn deleted_topic_remote_data_is_deleted_and_resumes_after_restart_on_memory() {
    topic_deletion("memory://").await;
}

#[tokio::test]
async fn deleted_topic_remote_data_is_deleted_and_resumes_after_restart_on_file() {
    let bucket = tempfile::tempdir().unwrap();
    topic_deletion(&format!("file://{}", bucket.path().display())).await;
}

/// A remote segment damaged in the store: a fetch and a timestamp lookup that reach the damaged
/// batch fail as corrupt (CORRUPT_MESSAGE), never hand the damaged bytes out; other segments are
/// still served.
#[tokio::test]
async fn corrupt_remote_batches_fail_their_reads() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = tempfile::tempdir().unwrap();
    let (_mgr, p) = open(dir.path(), config());
    produce(&p, 0, RECORDS);
    let tier: Arc<dyn RemoteTier> = Arc::new(open_url(&format!("file://{}", bucket.path().display())).unwrap());
    let rlm = RemoteLogManager::new(tier);
    rlm.sync(&p, 0).await.unwrap();
    p.apply_retention(10_000).unwrap();
    let remote = rlm.segments(&tp());
    assert!(remote.len() > 2);

    // Flip one byte of the first segment's last record value (covered by its batch's CRC).
    let first = &remote[0];
    let log = bucket.path().join(format!("{}.log", first.key_stem()));
    let mut bytes = std::fs::read(&log).unwrap();
    assert_eq!(bytes.len() as u64, first.size_bytes);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&log, &bytes).unwrap();

    let err = rlm.read(&tp(), first.end_offset, 1 << 20, RECORDS).await.unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    assert!(matches!(err, sluice_tiered::TieredError::Corrupt { .. }), "{err}");
    // The batches before the damaged one are still served whole.
    let head = rlm.read(&tp(), first.base_offset, 1, RECORDS).await.unwrap().unwrap();
    assert_eq!(BatchIter::new(head).count(), 1);
    // A timestamp lookup that walks into the damaged batch fails the same way.
    let ts = 1000 + first.end_offset;
    let err = rlm.offset_for_timestamp(&tp(), ts, p.offsets().log_start_offset).await.unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    // The next segment is intact.
    let next = rlm.read(&tp(), remote[1].base_offset, 1 << 20, RECORDS).await.unwrap().unwrap();
    assert!(!next.is_empty());
    for b in BatchIter::new(next) {
        b.unwrap().validate().unwrap();
    }
}
