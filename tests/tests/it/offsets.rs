//! ListOffsets: earliest/latest on an empty and a filled partition (latest = log end offset,
//! not the last batch's base offset), and timestamp lookups (`offsets_for_times`): the first
//! offset whose record timestamp is >= the query, found inside batches, and "none" (-1 / End)
//! past the last timestamp. Timestamps are the records' own CreateTime, far from wall-clock time,
//! so a broker using file times fails.

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use sluice_testkit::client::BlockingClient;
use sluice_tests::*;

#[tokio::test]
async fn earliest_and_latest() {
    let broker = TestBroker::start_default();
    let topic = topic_name("wm");
    create_topic(&broker.bootstrap(), &topic, 2, &[]).await;
    check!("empty partitions: earliest = latest = 0");
    assert_eq!(watermarks(&broker.bootstrap(), &topic, 0), (0, 0));
    assert_eq!(watermarks(&broker.bootstrap(), &topic, 1), (0, 0));
    // Multi-record batches, so latest != last batch base offset.
    let p = producer(&broker.bootstrap(), &[("linger.ms", "50")]);
    let recs: Vec<TestRecord> = (0..37).map(|i| TestRecord::value(format!("{i}")).to_partition(0)).collect();
    produce_ok(&p, &topic, &recs).await;
    check!("after 37 records in partition 0: (earliest, latest) = (0, 37); partition 1 still (0, 0)");
    assert_eq!(watermarks(&broker.bootstrap(), &topic, 0), (0, 37));
    assert_eq!(watermarks(&broker.bootstrap(), &topic, 1), (0, 0));
}

/// Raw ListOffsets v7 with timestamps -2 (earliest), -1 (latest) and a real timestamp.
#[tokio::test]
async fn raw_list_offsets_v7() {
    let broker = TestBroker::start_default();
    let topic = topic_name("lo-raw");
    create_topic(&broker.bootstrap(), &topic, 1, &[]).await;
    let p = producer(&broker.bootstrap(), &[("linger.ms", "20")]);
    let recs: Vec<TestRecord> = (0..10)
        .map(|i| TestRecord { timestamp: Some(10_000 + i * 100), ..TestRecord::value(format!("{i}")).to_partition(0) })
        .collect();
    produce_ok(&p, &topic, &recs).await;
    let mut conn = BlockingClient::connect(broker.addr());
    for (ts, want_offset, want_ts) in [(-2i64, 0i64, -1i64), (-1, 10, -1), (10_450, 5, 10_500), (99_999, -1, -1)] {
        let mut part = ListOffsetsPartition::default();
        part.partition_index = 0;
        part.timestamp = ts;
        part.current_leader_epoch = -1;
        let mut t = ListOffsetsTopic::default();
        t.name = TopicName(StrBytes::from_string(topic.clone()));
        t.partitions = vec![part];
        let mut req = ListOffsetsRequest::default();
        req.replica_id = kafka_protocol::messages::BrokerId(-1);
        req.topics = vec![t];
        let resp: ListOffsetsResponse = conn.request(ApiKey::ListOffsets, 7, &req);
        let pr = &resp.topics[0].partitions[0];
        check!("ListOffsets v7 timestamp {ts}: error 0, offset {want_offset}");
        assert_eq!(pr.error_code, 0, "error for timestamp {ts}");
        assert_eq!(pr.offset, want_offset, "offset for timestamp {ts}");
        if ts >= 0 {
            assert_eq!(pr.timestamp, want_ts, "timestamp returned for query {ts}");
        }
    }
}

#[tokio::test]
async fn offsets_for_times() {
    let broker = TestBroker::start_default();
    let topic = topic_name("times");
    create_topic(&broker.bootstrap(), &topic, 1, &[]).await;
    // 3 batches (linger splits are not guaranteed, so force them by awaiting each group).
    let p = producer(&broker.bootstrap(), &[("linger.ms", "20")]);
    for group in 0..3i64 {
        let recs: Vec<TestRecord> = (0..10)
            .map(|i| {
                let n = group * 10 + i;
                TestRecord {
                    timestamp: Some(1_000_000 + n * 1000),
                    ..TestRecord::value(format!("t{n}")).to_partition(0)
                }
            })
            .collect();
        produce_ok(&p, &topic, &recs).await;
    }
    let c = consumer(&broker.bootstrap(), &[]);
    for (ts, want) in [
        (0i64, Offset::Offset(0)),
        (1_000_000, Offset::Offset(0)),
        (1_000_001, Offset::Offset(1)),
        (1_012_500, Offset::Offset(13)),
        (1_020_000, Offset::Offset(20)),
        (1_029_000, Offset::Offset(29)),
        (1_029_001, Offset::End),
    ] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(ts)).unwrap();
        let res = c.offsets_for_times(tpl, WAIT).expect("offsets_for_times");
        let got = res.find_partition(&topic, 0).expect("partition in result");
        check!("offsets_for_times({ts}) = {want:?}");
        assert_eq!(got.error(), Ok(()), "error for ts {ts}");
        assert_eq!(got.offset(), want, "offset for timestamp {ts}");
    }
}
