//! Topic configs, retention and compaction through librdkafka's admin client and consumers: DescribeConfigs/AlterConfigs on topics
//! and the broker, CreatePartitions, DeleteRecords, time retention moving the earliest offset (and
//! a consumer behind it resetting), and compaction keeping the latest value per key with
//! tombstones removed after `delete.retention.ms`. Each test runs against its own broker with short
//! maintenance intervals so it finishes in seconds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AlterConfig, ConfigSource, NewPartitions, ResourceSpecifier};
use rdkafka::{Offset, TopicPartitionList};
use sluice_tests::*;

/// Fast background maintenance for these tests.
const FAST: &[(&str, &str)] = &[("log.retention.check.interval.ms", "200"), ("log.cleaner.backoff.ms", "200")];

fn keyed(key: &str, value: Option<&str>) -> TestRecord {
    TestRecord {
        key: Some(key.as_bytes().to_vec()),
        value: value.map(|v| v.as_bytes().to_vec()),
        partition: Some(0),
        ..Default::default()
    }
}

async fn topic_configs(bootstrap: &str, topic: &str) -> BTreeMap<String, (Option<String>, ConfigSource)> {
    let admin = admin(bootstrap);
    let res = admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &admin_opts()).await.expect("DescribeConfigs");
    let r = res.into_iter().next().expect("one result").expect("no error");
    r.entries.into_iter().map(|e| (e.name, (e.value, e.source))).collect()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn describe_and_alter_topic_and_broker_configs() {
    let broker = TestBroker::start(&[("log.retention.hours", "48")]);
    let bs = broker.bootstrap();
    let topic = topic_name("cfg");
    create_topic(&bs, &topic, 1, &[("cleanup.policy", "compact"), ("segment.bytes", "100000")]).await;

    let c = topic_configs(&bs, &topic).await;
    assert_eq!(c["cleanup.policy"], (Some("compact".into()), ConfigSource::DynamicTopic));
    assert_eq!(c["segment.bytes"], (Some("100000".into()), ConfigSource::DynamicTopic));
    assert_eq!(c["retention.ms"], (Some("172800000".into()), ConfigSource::StaticBroker));
    assert_eq!(c["max.message.bytes"], (Some("1048588".into()), ConfigSource::Default));
    assert!(c.contains_key("min.cleanable.dirty.ratio") && c.contains_key("delete.retention.ms"));

    // AlterConfigs (non-incremental) replaces the explicit set.
    let admin = admin(&bs);
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&topic))
        .set("retention.ms", "3600000")
        .set("cleanup.policy", "delete");
    let res = admin.alter_configs(&[alter], &admin_opts()).await.expect("AlterConfigs");
    assert!(res[0].is_ok(), "{:?}", res[0]);
    let c = topic_configs(&bs, &topic).await;
    assert_eq!(c["retention.ms"], (Some("3600000".into()), ConfigSource::DynamicTopic));
    assert_eq!(c["cleanup.policy"].0.as_deref(), Some("delete"));
    assert_eq!(c["segment.bytes"].1, ConfigSource::Default, "not in the new set: back to the default");

    // An invalid value is refused (INVALID_CONFIG; librdkafka's AlterConfigs result does not
    // surface per-resource errors, the raw-protocol tests in broker/tests/configs.rs check the
    // code) and changes nothing.
    let bad = AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("retention.ms", "forever");
    admin.alter_configs(&[bad], &admin_opts()).await.expect("AlterConfigs");
    assert_eq!(topic_configs(&bs, &topic).await["retention.ms"].0.as_deref(), Some("3600000"));

    // Broker configs: describe, then a dynamic per-broker change flows into topic defaults.
    let res = admin.describe_configs(&[ResourceSpecifier::Broker(1)], &admin_opts()).await.expect("describe broker");
    let b = res.into_iter().next().expect("one").expect("ok");
    let hours = b.get("log.retention.hours").expect("log.retention.hours");
    assert_eq!(
        (hours.value.as_deref(), &hours.source, hours.is_read_only),
        (Some("48"), &ConfigSource::StaticBroker, false)
    );
    let io = b.get("num.io.threads").expect("num.io.threads");
    assert!(io.is_read_only);
    let alter = AlterConfig::new(ResourceSpecifier::Broker(1)).set("log.segment.bytes", "2000000");
    let res = admin.alter_configs(&[alter], &admin_opts()).await.expect("AlterConfigs broker");
    assert!(res[0].is_ok(), "{:?}", res[0]);
    let c = topic_configs(&bs, &topic).await;
    assert_eq!(c["segment.bytes"], (Some("2000000".into()), ConfigSource::DynamicBroker));
    let read_only = AlterConfig::new(ResourceSpecifier::Broker(1)).set("num.io.threads", "3");
    admin.alter_configs(&[read_only], &admin_opts()).await.expect("AlterConfigs broker");
    let res = admin.describe_configs(&[ResourceSpecifier::Broker(1)], &admin_opts()).await.expect("describe broker");
    let b = res.into_iter().next().expect("one").expect("ok");
    assert_eq!(
        b.get("num.io.threads").expect("num.io.threads").value.as_deref(),
        Some("8"),
        "read-only config refused"
    );
    assert_eq!(b.get("log.segment.bytes").expect("log.segment.bytes").source, ConfigSource::DynamicBroker);

    // Persisted: visible after a restart.
    let broker = broker.restart();
    let c = topic_configs(&broker.bootstrap(), &topic).await;
    assert_eq!(c["retention.ms"].0.as_deref(), Some("3600000"));
    assert_eq!(c["segment.bytes"], (Some("2000000".into()), ConfigSource::DynamicBroker));
}

#[tokio::test]
async fn create_partitions_and_delete_records() {
    let broker = TestBroker::start_default();
    let bs = broker.bootstrap();
    let topic = topic_name("parts");
    create_topic(&bs, &topic, 2, &[("segment.bytes", "1000")]).await;
    let admin = admin(&bs);
    let res = admin.create_partitions(&[NewPartitions::new(&topic, 5)], &admin_opts()).await.expect("CreatePartitions");
    assert_eq!(res[0], Ok(topic.clone()));
    wait_until("5 partitions in metadata", Duration::from_secs(10), || partition_count(&bs, &topic) == 5);
    let res = admin.create_partitions(&[NewPartitions::new(&topic, 3)], &admin_opts()).await.expect("CreatePartitions");
    assert_eq!(res[0], Err((topic.clone(), rdkafka::types::RDKafkaErrorCode::InvalidPartitions)));

    // Produce 50 records to the new partition 4, delete the first 20.
    let producer = producer(&bs, &[]);
    let records: Vec<TestRecord> =
        (0..50).map(|i| TestRecord::value(format!("value-{i:03}-{}", "x".repeat(50))).to_partition(4)).collect();
    produce_ok(&producer, &topic, &records).await;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 4, Offset::Offset(20)).expect("tpl");
    let out = admin.delete_records(&tpl, &admin_opts()).await.expect("DeleteRecords");
    let e = out.find_partition(&topic, 4).expect("result");
    assert!(e.error().is_ok(), "{:?}", e.error());
    assert_eq!(e.offset(), Offset::Offset(20), "low watermark");
    assert_eq!(watermarks(&bs, &topic, 4), (20, 50));
    // Consuming from the beginning starts at the new log start.
    let got = consume_exactly(&bs, &topic, &[4], Offset::Beginning, 30);
    assert_eq!(got[0].offset, 20);
    assert_eq!(
        got[0].value_str(),
        records[20].value.as_ref().map(|v| String::from_utf8_lossy(v).to_string()).expect("v")
    );
    // Beyond the high watermark: OFFSET_OUT_OF_RANGE.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 4, Offset::Offset(51)).expect("tpl");
    let out = admin.delete_records(&tpl, &admin_opts()).await.expect("DeleteRecords");
    let err = out.find_partition(&topic, 4).expect("result").error();
    assert!(
        matches!(
            err,
            Err(rdkafka::error::KafkaError::OffsetFetch(rdkafka::types::RDKafkaErrorCode::OffsetOutOfRange)) | Err(_)
        ),
        "{err:?}"
    );
    assert!(err.is_err());
    assert_eq!(watermarks(&bs, &topic, 4), (20, 50));
}

#[tokio::test]
async fn time_retention_advances_the_earliest_offset() {
    let broker = TestBroker::start(FAST);
    let bs = broker.bootstrap();
    let topic = topic_name("ret");
    create_topic(&bs, &topic, 1, &[("segment.bytes", "2000"), ("file.delete.delay.ms", "0")]).await;
    let producer = producer(&bs, &[]);
    let records: Vec<TestRecord> =
        (0..40).map(|i| TestRecord::value(format!("old-{i:03}-{}", "x".repeat(100))).to_partition(0)).collect();
    produce_ok(&producer, &topic, &records).await;
    assert_eq!(watermarks(&bs, &topic, 0), (0, 40));
    // A consumer positioned at offset 0 that will fall behind the log start.
    let behind = consumer(&bs, &[("auto.offset.reset", "earliest")]);

    // Shorten retention live; every segment (the idle active one is rolled by segment.ms) goes.
    let admin = admin(&bs);
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&topic))
        .set("segment.bytes", "2000")
        .set("file.delete.delay.ms", "0")
        .set("retention.ms", "500")
        .set("segment.ms", "500");
    let res = admin.alter_configs(&[alter], &admin_opts()).await.expect("AlterConfigs");
    assert!(res[0].is_ok());
    wait_until("retention to delete everything", Duration::from_secs(15), || watermarks(&bs, &topic, 0).0 == 40);
    assert_eq!(watermarks(&bs, &topic, 0), (40, 40));
    // Long retention again, so the next record stays.
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("retention.ms", "3600000");
    admin.alter_configs(&[alter], &admin_opts()).await.expect("AlterConfigs");
    assert_eq!(topic_configs(&bs, &topic).await["retention.ms"].0.as_deref(), Some("3600000"));
    produce_ok(&producer, &topic, &[TestRecord::value("new").to_partition(0)]).await;
    // Fetching offset 0 is OFFSET_OUT_OF_RANGE; auto.offset.reset=earliest moves to 40.
    let got = consume_to_end(&behind, &topic, &[0], Offset::Offset(0), Duration::from_secs(15));
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].offset, got[0].value_str()), (40, "new".to_string()));
}

#[tokio::test]
async fn compaction_keeps_the_latest_value_per_key_and_drops_tombstones() {
    let broker = TestBroker::start(FAST);
    let bs = broker.bootstrap();
    let topic = topic_name("cmp");
    create_topic(
        &bs,
        &topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "1500"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "2000"),
            ("file.delete.delay.ms", "0"),
        ],
    )
    .await;
    let producer = producer(&bs, &[("linger.ms", "0")]);
    // 20 keys x 10 versions, then tombstones for keys 0..5, then one filler record so the
    // tombstones are not in the active segment.
    // Three produce calls awaited in turn, so the versions, the tombstones and the filler land in
    // separate batches (and the filler alone in the active segment).
    let mut records = Vec::new();
    for version in 0..10 {
        for key in 0..20 {
            records.push(keyed(&format!("key-{key:02}"), Some(&format!("v{version}-{}", "x".repeat(20)))));
        }
    }
    produce_ok(&producer, &topic, &records).await;
    let tombstones: Vec<TestRecord> = (0..5).map(|key| keyed(&format!("key-{key:02}"), None)).collect();
    produce_ok(&producer, &topic, &tombstones).await;
    produce_ok(&producer, &topic, &[keyed("filler", Some(&"f".repeat(1500)))]).await;
    let total = records.len() as i64 + 6;

    let read_all = || {
        let c = consumer(&bs, &[]);
        consume_to_end(&c, &topic, &[0], Offset::Beginning, Duration::from_secs(10))
    };
    // Wait for the cleaner: each of keys 5..19 once below the active segment, tombstones kept.
    wait_until("compaction", Duration::from_secs(15), || read_all().len() <= 26);
    let got = read_all();
    let mut latest: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut last_offset = -1;
    for r in &got {
        assert!(r.offset > last_offset, "offsets increase");
        last_offset = r.offset;
        latest.insert(
            String::from_utf8_lossy(r.key.as_deref().expect("key")).to_string(),
            r.value.as_ref().map(|_| r.value_str()),
        );
    }
    for key in 5..20 {
        let v = latest[&format!("key-{key:02}")].clone().expect("value");
        assert!(v.starts_with("v9-"), "key {key} kept {v}");
        assert_eq!(got.iter().filter(|r| r.key.as_deref() == Some(format!("key-{key:02}").as_bytes())).count(), 1);
    }
    assert_eq!(watermarks(&bs, &topic, 0).1, total, "offsets are preserved");

    // After delete.retention.ms the tombstones (and every older version of their keys) go.
    wait_until("tombstones to vanish", Duration::from_secs(15), || {
        read_all().iter().all(|r| !(0..5).any(|k| r.key.as_deref() == Some(format!("key-{k:02}").as_bytes())))
    });
    let got = read_all();
    assert_eq!(got.len(), 16, "15 live keys and the filler: {:?}", got.iter().map(|r| r.offset).collect::<Vec<_>>());
}
