//! Tiered storage (KIP-405) through a real client: a topic with `remote.storage.enable=true`,
//! small segments and a short `local.retention.ms` on a `memory://` tier. Rolled segments are
//! uploaded and then deleted locally; a consumer from offset 0 still gets every record in order
//! (served from the remote tier below the local log start); ListOffsets earliest stays 0.
//! Enabling remote storage on a compacted topic is INVALID_CONFIG, as in Kafka.

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;
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
