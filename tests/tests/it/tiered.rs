//! Tiered storage (KIP-405) through a real client: a topic with `remote.storage.enable=true`,
//! small segments and a short `local.retention.ms` on a `memory://` tier. Rolled segments are
//! uploaded and then deleted locally; a consumer from offset 0 still gets every record in order
//! (served from the remote tier below the local log start); ListOffsets earliest stays 0.
//! Enabling remote storage on a compacted topic is INVALID_CONFIG, as in Kafka.

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;
use sluice_testkit::now_ms;
use sluice_tests::*;

fn local_log_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.ends_with(".log")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn consumer_from_zero_reads_uploaded_and_locally_deleted_segments() {
    let broker = TestBroker::start(&[
        ("remote.log.storage.system.enable", "true"),
        ("remote.log.storage.url", "memory://"),
        ("remote.log.manager.task.interval.ms", "100"),
        ("log.retention.check.interval.ms", "100"),
    ]);
    let topic = topic_name("tiered");
    create_topic(
        &broker.bootstrap(),
        &topic,
        1,
        &[
            ("remote.storage.enable", "true"),
            ("segment.bytes", "4096"),
            ("local.retention.ms", "500"),
            ("file.delete.delay.ms", "0"),
        ],
    )
    .await;
    let p = producer(&broker.bootstrap(), &[("linger.ms", "5")]);
    let sent: Vec<TestRecord> =
        (0..400).map(|i| TestRecord::value(format!("record-{i:05}-{}", "x".repeat(100))).to_partition(0)).collect();
    // Chunks of 20 records: separate batches, so segments of 4 KiB roll many times.
    for chunk in sent.chunks(20) {
        produce_ok(&p, &topic, chunk).await;
    }

    let dir = broker.data_dir().join(format!("{topic}-0"));
    check!("rolled segments are uploaded, then deleted locally by local.retention.ms");
    let deadline = Instant::now() + Duration::from_secs(30);
    // Everything but the active segment (and at most one not yet past local retention) goes.
    while local_log_files(&dir).len() > 2 {
        assert!(Instant::now() < deadline, "first segment never deleted locally: {:?}", local_log_files(&dir));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dir.join("remote-log-segments.json").exists());
    assert!(!local_log_files(&dir).contains(&"00000000000000000000.log".to_string()));

    check!("ListOffsets earliest is the remote log start (0), latest the high watermark");
    assert_eq!(watermarks(&broker.bootstrap(), &topic, 0), (0, 400));

    check!("a consumer from offset 0 reads every record in order");
    let got = consume_exactly(&broker.bootstrap(), &topic, &[0], Offset::Beginning, 400);
    for (i, c) in got.iter().enumerate() {
        assert_eq!(c.offset, i as i64);
        assert_eq!(c.value, sent[i].value, "value at offset {i}");
    }

    check!("produce continues after the upload, and the tail is read too");
    let more = vec![TestRecord::value("after").to_partition(0)];
    assert_eq!(produce_ok(&p, &topic, &more).await, vec![(0, 400)]);
    broker.shutdown();
}

#[tokio::test]
async fn remote_storage_on_a_compacted_topic_is_invalid_config() {
    let broker =
        TestBroker::start(&[("remote.log.storage.system.enable", "true"), ("remote.log.storage.url", "memory://")]);
    let admin = admin(&broker.bootstrap());
    let t = NewTopic::new("tiered-compacted", 1, TopicReplication::Fixed(1))
        .set("remote.storage.enable", "true")
        .set("cleanup.policy", "compact");
    let res = admin.create_topics(&[t], &admin_opts()).await.expect("CreateTopics request");
    assert!(matches!(&res[0], Err((_, RDKafkaErrorCode::InvalidConfig))), "{res:?}");
    broker.shutdown();
}

// ---------------------------------------------------------------------------------------------
// ListOffsets by timestamp, DeleteRecords and topic deletion on a `file://` tier, across restarts
// ---------------------------------------------------------------------------------------------

/// A `file://` tier's bucket: `<bucket>/<topic id>/<partition>/<20-digit base>-<uuid>.<ext>`.
struct Bucket(tempfile::TempDir);

impl Bucket {
    fn new() -> Bucket {
        Bucket(tempfile::Builder::new().prefix("sluice-bucket-").tempdir().expect("tempdir"))
    }

    fn url(&self) -> String {
        format!("file://{}", self.0.path().display())
    }

    /// The only topic id with objects.
    fn topic_id(&self) -> String {
        let ids: Vec<String> = std::fs::read_dir(self.0.path())
            .expect("bucket")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
        ids[0].clone()
    }

    fn partition_dir(&self, topic_id: &str) -> std::path::PathBuf {
        self.0.path().join(topic_id).join("0")
    }

    /// Every object (file) of the topic, names only.
    fn objects(&self, topic_id: &str) -> Vec<String> {
        fn walk(dir: &Path, out: &mut Vec<String>) {
            let Ok(rd) = std::fs::read_dir(dir) else { return };
            for e in rd.flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path.file_name().unwrap_or_default().to_string_lossy().into_owned());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.0.path().join(topic_id), &mut out);
        out.sort();
        out
    }

    /// Base offsets of the uploaded segments (those with a `.log` object), ascending.
    fn segment_bases(&self, topic_id: &str) -> Vec<i64> {
        let mut bases: Vec<i64> = self
            .objects(topic_id)
            .iter()
            .filter(|n| n.ends_with(".log"))
            .filter_map(|n| n.get(..20)?.parse().ok())
            .collect();
        bases.sort();
        bases.dedup();
        bases
    }

    fn manifest(&self, topic_id: &str, base: i64) -> std::path::PathBuf {
        let prefix = format!("{base:020}-");
        let dir = self.partition_dir(topic_id);
        std::fs::read_dir(&dir)
            .expect("partition dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with(&prefix) && name.ends_with(".json")
            })
            .unwrap_or_else(|| panic!("no manifest for segment {base}"))
    }

    /// Makes deleting the segment fail: its manifest becomes a directory (deleting it is EISDIR,
    /// even for root), the manifest kept inside.
    fn block_deletion(&self, topic_id: &str, base: i64) -> std::path::PathBuf {
        let manifest = self.manifest(topic_id, base);
        let aside = manifest.with_extension("aside");
        std::fs::rename(&manifest, &aside).unwrap();
        std::fs::create_dir(&manifest).unwrap();
        std::fs::rename(&aside, manifest.join("manifest")).unwrap();
        manifest
    }

    fn unblock_deletion(manifest: &Path) {
        let aside = manifest.with_extension("aside");
        std::fs::rename(manifest.join("manifest"), &aside).unwrap();
        std::fs::remove_dir(manifest).unwrap();
        std::fs::rename(&aside, manifest).unwrap();
    }
}

fn start_tiered(bucket: &Bucket) -> TestBroker {
    TestBroker::start(&[
        ("remote.log.storage.system.enable", "true"),
        ("remote.log.storage.url", &bucket.url()),
        ("remote.log.manager.task.interval.ms", "100"),
        ("log.retention.check.interval.ms", "100"),
    ])
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates a tiered topic and produces 400 records (record `i` has timestamp `t0 + 10 * i`),
/// then waits until all but the newest segments are uploaded and deleted locally.
async fn fill_tiered_topic(broker: &TestBroker, topic: &str, t0: i64) -> Vec<TestRecord> {
    create_topic(
        &broker.bootstrap(),
        topic,
        1,
        &[
            ("remote.storage.enable", "true"),
            ("segment.bytes", "4096"),
            ("local.retention.ms", "500"),
            ("file.delete.delay.ms", "0"),
        ],
    )
    .await;
    let p = producer(&broker.bootstrap(), &[("linger.ms", "5")]);
    let sent: Vec<TestRecord> = (0..400i64)
        .map(|i| TestRecord {
            timestamp: Some(t0 + 10 * i),
            ..TestRecord::value(format!("record-{i:05}-{}", "x".repeat(100))).to_partition(0)
        })
        .collect();
    for chunk in sent.chunks(20) {
        produce_ok(&p, topic, chunk).await;
    }
    let dir = broker.data_dir().join(format!("{topic}-0"));
    wait_for("uploads and local deletion", || local_log_files(&dir).len() <= 2);
    sent
}

fn local_log_start(broker: &TestBroker, topic: &str) -> i64 {
    let files = local_log_files(&broker.data_dir().join(format!("{topic}-0")));
    files.first().and_then(|f| f.get(..20)?.parse().ok()).expect("a local segment")
}

fn offsets_for_times(broker: &TestBroker, topic: &str, lookups: &[(i64, Offset)]) {
    let c = consumer(&broker.bootstrap(), &[]);
    for &(ts, want) in lookups {
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(ts)).unwrap();
        let res = c.offsets_for_times(tpl, Duration::from_secs(10)).expect("offsets_for_times");
        let got = res.find_partition(topic, 0).expect("partition in result");
        assert_eq!(got.error(), Ok(()), "error for ts {ts}");
        assert_eq!(got.offset(), want, "offset for timestamp {ts}");
    }
}

#[tokio::test]
async fn list_offsets_by_timestamp_searches_remote_segments_also_after_restart() {
    let bucket = Bucket::new();
    let broker = start_tiered(&bucket);
    let topic = topic_name("tiered-times");
    let t0 = now_ms() - 60_000;
    fill_tiered_topic(&broker, &topic, t0).await;
    let local_start = local_log_start(&broker, &topic);
    assert!(local_start > 100, "local log start {local_start}");

    check!("timestamps below the local log start are answered from the remote time indexes");
    let lookups = [
        (0, Offset::Offset(0)),
        (t0, Offset::Offset(0)),
        (t0 + 1, Offset::Offset(1)),
        (t0 + 10 * 37, Offset::Offset(37)),
        (t0 + 10 * 37 - 5, Offset::Offset(37)),
        (t0 + 10 * 99 + 3, Offset::Offset(100)),
        (t0 + 10 * 399, Offset::Offset(399)),
        (t0 + 10 * 400, Offset::End),
    ];
    offsets_for_times(&broker, &topic, &lookups);

    check!("after a restart (remote metadata reloaded, index caches empty) the answers are the same");
    let broker = broker.restart();
    wait_for("remote metadata loaded", || watermarks(&broker.bootstrap(), &topic, 0).0 == 0);
    offsets_for_times(&broker, &topic, &lookups);
    broker.shutdown();
}

#[tokio::test]
async fn delete_records_on_a_tiered_topic_deletes_remote_segments_below_it_also_after_restart() {
    let bucket = Bucket::new();
    let broker = start_tiered(&bucket);
    let topic = topic_name("tiered-delete-records");
    let sent = fill_tiered_topic(&broker, &topic, now_ms() - 60_000).await;
    let topic_id = bucket.topic_id();
    let bases = bucket.segment_bases(&topic_id);
    assert!(bases.len() > 5, "{bases:?}");
    let target = bases[3] + 2;
    assert!(target < local_log_start(&broker, &topic));

    check!("the remote deletion of the first segment fails until the restart");
    let blocked = bucket.block_deletion(&topic_id, bases[0]);

    check!("DeleteRecords below the local log start answers the new low watermark");
    let admin = admin(&broker.bootstrap());
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(target)).unwrap();
    let res = admin.delete_records(&tpl, &admin_opts()).await.expect("DeleteRecords");
    let pr = res.find_partition(&topic, 0).expect("partition in result");
    assert_eq!(pr.error(), Ok(()));
    assert_eq!(pr.offset(), Offset::Offset(target));

    check!("ListOffsets earliest and Fetch start at the new log start");
    assert_eq!(watermarks(&broker.bootstrap(), &topic, 0), (target, 400));
    let got = consume_exactly(&broker.bootstrap(), &topic, &[0], Offset::Beginning, 400 - target as usize);
    assert_eq!(got[0].offset, target);
    assert_eq!(got[0].value, sent[target as usize].value);

    check!("the segments wholly below the new start are deleted, but for the blocked one");
    wait_for("remote deletion below the log start", || bucket.segment_bases(&topic_id)[..2] == [bases[0], bases[3]]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(bucket.segment_bases(&topic_id)[..2], [bases[0], bases[3]]);
    assert_eq!(watermarks(&broker.bootstrap(), &topic, 0), (target, 400));

    let broker = broker.restart_with(|_| Bucket::unblock_deletion(&blocked));
    check!("after the restart the deletion finishes: segments wholly below the start are gone");
    wait_for("the blocked deletion", || bucket.segment_bases(&topic_id).first() == Some(&bases[3]));
    assert!(!bucket.objects(&topic_id).iter().any(|o| o.starts_with(&format!("{:020}-", bases[0]))));
    wait_for("log start reloaded", || watermarks(&broker.bootstrap(), &topic, 0) == (target, 400));
    let got = consume_exactly(&broker.bootstrap(), &topic, &[0], Offset::Beginning, 400 - target as usize);
    assert_eq!(got[0].offset, target);
    assert_eq!(got.last().map(|c| c.offset), Some(399));
    broker.shutdown();
}

#[tokio::test]
async fn deleting_a_tiered_topic_deletes_its_remote_data_resuming_after_restart() {
    let bucket = Bucket::new();
    let broker = start_tiered(&bucket);
    let topic = topic_name("tiered-delete-topic");
    fill_tiered_topic(&broker, &topic, now_ms() - 60_000).await;
    let topic_id = bucket.topic_id();
    let bases = bucket.segment_bases(&topic_id);
    assert!(bases.len() > 5, "{bases:?}");
    let blocked = bucket.block_deletion(&topic_id, bases[0]);
    let pending = broker.data_dir().join("remote-log-pending-deletions.json");

    check!("DeleteTopics succeeds; the remote deletion is recorded and goes as far as it can");
    let admin = admin(&broker.bootstrap());
    let res = admin.delete_topics(&[topic.as_str()], &admin_opts()).await.expect("DeleteTopics");
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
    wait_for("every unblocked segment deleted", || bucket.segment_bases(&topic_id) == bases[..1]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(std::fs::read_to_string(&pending).unwrap().contains(&topic_id), "the record stays until done");
    assert_eq!(bucket.segment_bases(&topic_id), bases[..1]);

    check!("after a restart the deletion resumes and finishes; the record goes");
    let broker = broker.restart_with(|_| Bucket::unblock_deletion(&blocked));
    wait_for("remote data of the deleted topic gone", || bucket.objects(&topic_id).is_empty());
    wait_for("pending record dropped", || !std::fs::read_to_string(&pending).unwrap().contains(&topic_id));

    check!("a new topic of the same name starts empty, with a new topic id");
    create_topic(&broker.bootstrap(), &topic, 1, &[("remote.storage.enable", "true")]).await;
    assert_eq!(watermarks(&broker.bootstrap(), &topic, 0), (0, 0));
    broker.shutdown();
}
