//! Produce semantics: acks=0/1/all (what is acknowledged, when, and that it is all readable),
//! many partitions and topics in one Produce request (per-partition base offsets in the
//! response), acks=0 sends no response at all (the next response on the connection belongs to
//! the next request), and message.max.bytes enforcement (MESSAGE_TOO_LARGE, code 10, and
//! nothing written).

use std::time::{Duration, Instant};

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;
use sluice_testkit::batch::kafka_protocol_batch;
use sluice_testkit::client::BlockingClient;
use sluice_tests::*;

async fn acks_round_trip(acks: &str) {
    let broker = TestBroker::start_default();
    let topic = topic_name(&format!("acks{acks}"));
    create_topic(&broker.bootstrap(), &topic, 1, &[]).await;
    let p = producer(&broker.bootstrap(), &[("acks", acks)]);
    let sent: Vec<TestRecord> = (0..200).map(|i| TestRecord::value(format!("a{acks}-{i}")).to_partition(0)).collect();
    check!("acks={acks}: 200 records are acknowledged by the client");
    let acked = produce_ok(&p, &topic, &sent).await;
    if acks == "0" {
        check!("acks=0: the client learns no offsets (-1); the log end offset reaches 200");
        assert!(acked.iter().all(|(_, o)| *o < 0), "acks=0 deliveries carry no offset: {:?}", &acked[..3]);
        let deadline = Instant::now() + WAIT;
        while watermarks(&broker.bootstrap(), &topic, 0).1 < 200 {
            assert!(Instant::now() < deadline, "acks=0 records never all appeared");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    } else {
        check!("acks={acks}: acknowledged offsets are exactly 0..199 in order");
        assert_eq!(acked, (0..200).map(|o| (0, o)).collect::<Vec<_>>());
    }
    assert_eq!(watermarks(&broker.bootstrap(), &topic, 0), (0, 200));
    let got = consume_exactly(&broker.bootstrap(), &topic, &[0], Offset::Beginning, 200);
    check!("acks={acks}: consumed values are the sent ones, in order, at offsets 0..199");
    for (i, c) in got.iter().enumerate() {
        assert_eq!((c.offset, c.value_str()), (i as i64, format!("a{acks}-{i}")));
    }
}

#[tokio::test]
async fn acks_zero() {
    acks_round_trip("0").await;
}

#[tokio::test]
async fn acks_one() {
    acks_round_trip("1").await;
}

#[tokio::test]
async fn acks_all() {
    acks_round_trip("all").await;
}

/// librdkafka: 16 partitions with a long linger, so requests carry many partitions at once.
#[tokio::test]
async fn many_partitions_per_request_rdkafka() {
    let broker = TestBroker::start_default();
    let topic = topic_name("many-parts");
    create_topic(&broker.bootstrap(), &topic, 16, &[]).await;
    let p = producer(&broker.bootstrap(), &[("linger.ms", "200"), ("compression.codec", "snappy")]);
    let sent: Vec<TestRecord> =
        (0..16 * 25).map(|i| TestRecord::value(format!("p{}-{}", i % 16, i / 16)).to_partition(i % 16)).collect();
    check!("400 records over 16 partitions: each partition acks offsets 0..24");
    let acked = produce_ok(&p, &topic, &sent).await;
    for (i, (part, off)) in acked.iter().enumerate() {
        assert_eq!((*part, *off), ((i % 16) as i32, (i / 16) as i64), "ack of record #{i}");
    }
    let parts: Vec<i32> = (0..16).collect();
    let got = consume_exactly(&broker.bootstrap(), &topic, &parts, Offset::Beginning, 400);
    for c in &got {
        assert_eq!(c.value_str(), format!("p{}-{}", c.partition, c.offset));
    }
}

fn auto_create(conn: &mut BlockingClient, topic: &str) {
    let mut req = MetadataRequest::default();
    let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
    req.topics = Some(vec![t]);
    req.allow_auto_topic_creation = true;
    let resp: MetadataResponse = conn.request(ApiKey::Metadata, 12, &req);
    assert_eq!(resp.topics.len(), 1);
    assert_eq!(resp.topics[0].error_code, 0, "auto-creating {topic} via Metadata");
}

fn produce_req(acks: i16, topics: &[(&str, Vec<(i32, bytes::Bytes)>)]) -> ProduceRequest {
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = 10_000;
    req.topic_data = topics
        .iter()
        .map(|(name, parts)| {
            let mut td = TopicProduceData::default();
            td.name = TopicName(StrBytes::from_string(name.to_string()));
            td.partition_data = parts
                .iter()
                .map(|(idx, recs)| {
                    let mut pd = PartitionProduceData::default();
                    pd.index = *idx;
                    pd.records = Some(recs.clone());
                    pd
                })
                .collect();
            td
        })
        .collect();
    req
}

/// Raw Produce v9 carrying 2 topics x 4 partitions: one response entry per partition with the
/// right base offset; a second request continues at the next offsets.
#[test]
fn many_topics_and_partitions_in_one_raw_request() {
    let broker = TestBroker::start(&[("num.partitions", "4")]);
    let mut conn = BlockingClient::connect(broker.addr());
    let (a, b) = (topic_name("raw-a"), topic_name("raw-b"));
    auto_create(&mut conn, &a);
    auto_create(&mut conn, &b);
    for round in 0..2i64 {
        let topics: Vec<(&str, Vec<(i32, bytes::Bytes)>)> = [a.as_str(), b.as_str()]
            .iter()
            .map(|t| {
                let parts = (0..4)
                    .map(|p| {
                        let vals: Vec<Vec<u8>> = (0..=p).map(|i| format!("{t}/{p}/{round}/{i}").into_bytes()).collect();
                        let refs: Vec<&[u8]> = vals.iter().map(|v| v.as_slice()).collect();
                        (p, kafka_protocol_batch(&refs, 1_000).freeze())
                    })
                    .collect();
                (*t, parts)
            })
            .collect();
        let resp: ProduceResponse = conn.request(ApiKey::Produce, 9, &produce_req(-1, &topics));
        check!("round {round}: Produce response has 2 topics x 4 partitions, error 0, base offset = round*(p+1)");
        assert_eq!(resp.responses.len(), 2, "topics in response");
        for t in &resp.responses {
            let mut idx: Vec<i32> = t.partition_responses.iter().map(|p| p.index).collect();
            idx.sort();
            assert_eq!(idx, vec![0, 1, 2, 3], "partitions for {:?}", t.name);
            for p in &t.partition_responses {
                assert_eq!(p.error_code, 0, "{:?}/{} error", t.name, p.index);
                assert_eq!(p.base_offset, round * (p.index as i64 + 1), "{:?}/{} base offset", t.name, p.index);
            }
        }
    }
    for t in [&a, &b] {
        for p in 0..4 {
            assert_eq!(watermarks(&broker.bootstrap(), t, p), (0, 2 * (p as i64 + 1)), "{t}/{p} watermarks");
        }
    }
}

/// acks=0: the broker must not answer; the next frame on the connection answers the next request.
#[test]
fn acks_zero_gets_no_response_on_the_wire() {
    let broker = TestBroker::start(&[("num.partitions", "1")]);
    let mut conn = BlockingClient::connect(broker.addr());
    let topic = topic_name("raw-acks0");
    auto_create(&mut conn, &topic);
    let batch = kafka_protocol_batch(&[b"x", b"y"], 5).freeze();
    let _no_answer = conn.send(ApiKey::Produce, 9, &produce_req(0, &[(topic.as_str(), vec![(0, batch)])]));
    let mut req = ApiVersionsRequest::default();
    req.client_software_name = StrBytes::from_static_str("t");
    req.client_software_version = StrBytes::from_static_str("1");
    let c = conn.send(ApiKey::ApiVersions, 3, &req);
    check!("the first response after an acks=0 Produce carries the ApiVersions correlation id {c}");
    let resp: ApiVersionsResponse = conn.recv(ApiKey::ApiVersions, 3, c);
    assert_eq!(resp.error_code, 0);
    let deadline = Instant::now() + WAIT;
    while watermarks(&broker.bootstrap(), &topic, 0).1 < 2 {
        assert!(Instant::now() < deadline, "acks=0 records were not written");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(watermarks(&broker.bootstrap(), &topic, 0), (0, 2));
}

/// message.max.bytes=10000: a 20 kB record fails with MESSAGE_TOO_LARGE and is not stored; a
/// small record before and after succeeds at consecutive offsets.
#[tokio::test]
async fn message_too_large_is_rejected() {
    let broker = TestBroker::start(&[("message.max.bytes", "10000")]);
    let topic = topic_name("too-large");
    create_topic(&broker.bootstrap(), &topic, 1, &[]).await;
    let p = producer(&broker.bootstrap(), &[("message.timeout.ms", "10000"), ("linger.ms", "0")]);
    let small = TestRecord::value(b"small".to_vec()).to_partition(0);
    assert_eq!(produce_ok(&p, &topic, std::slice::from_ref(&small)).await, vec![(0, 0)]);
    let big = TestRecord::value(pseudo_random_bytes(1, 20_000)).to_partition(0);
    let res = produce_all(&p, &topic, &[big]).await;
    check!("a 20 kB record on a broker with message.max.bytes=10000 fails with MessageSizeTooLarge");
    match &res[0] {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {}
        other => panic!("expected MessageSizeTooLarge, got {other:?}"),
    }
    assert_eq!(produce_ok(&p, &topic, &[small]).await, vec![(0, 1)], "next record gets offset 1: nothing was written");
    let got = consume_exactly(&broker.bootstrap(), &topic, &[0], Offset::Beginning, 2);
    assert!(got.iter().all(|c| c.value.as_deref() == Some(&b"small"[..])));
}

/// The topic-level `max.message.bytes` set at creation applies to that topic only.
#[tokio::test]
async fn topic_max_message_bytes_applies_per_topic() {
    let broker = TestBroker::start_default();
    let (limited, open) = (topic_name("limited"), topic_name("open"));
    create_topic(&broker.bootstrap(), &limited, 1, &[("max.message.bytes", "2000")]).await;
    create_topic(&broker.bootstrap(), &open, 1, &[]).await;
    let p = producer(&broker.bootstrap(), &[("message.timeout.ms", "10000"), ("linger.ms", "0")]);
    let rec = TestRecord::value(pseudo_random_bytes(2, 5000)).to_partition(0);
    check!("5000-byte record: rejected by the topic with max.message.bytes=2000, accepted by the other");
    match &produce_all(&p, &limited, std::slice::from_ref(&rec)).await[0] {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {}
        other => panic!("expected MessageSizeTooLarge on {limited}, got {other:?}"),
    }
    assert_eq!(produce_ok(&p, &open, &[rec]).await, vec![(0, 0)]);
    assert_eq!(watermarks(&broker.bootstrap(), &limited, 0), (0, 0));
}

/// Pipelining: 30 requests written back to back before reading anything (librdkafka keeps
/// several in flight). Responses must come back in request order, each with its own
/// correlation id, and the produces must be applied in order (base offsets 0, 2, 4, …).
#[test]
fn pipelined_requests_are_answered_in_order() {
    let broker = TestBroker::start(&[("num.partitions", "1")]);
    let mut conn = BlockingClient::connect(broker.addr());
    let topic = topic_name("pipeline");
    auto_create(&mut conn, &topic);
    let mut sent = Vec::new();
    for i in 0..30 {
        if i % 3 == 2 {
            let mut req = ApiVersionsRequest::default();
            req.client_software_name = StrBytes::from_static_str("t");
            req.client_software_version = StrBytes::from_static_str("1");
            sent.push((ApiKey::ApiVersions, conn.send(ApiKey::ApiVersions, 3, &req)));
        } else {
            let vals = [format!("{i}a"), format!("{i}b")];
            let batch = kafka_protocol_batch(&[vals[0].as_bytes(), vals[1].as_bytes()], 1_000 + i).freeze();
            sent.push((
                ApiKey::Produce,
                conn.send(ApiKey::Produce, 9, &produce_req(1, &[(topic.as_str(), vec![(0, batch)])])),
            ));
        }
    }
    check!("30 pipelined requests (20 Produce, 10 ApiVersions): answered in order, produces at offsets 0,2,4,…");
    let mut next_offset = 0;
    for (key, correlation) in sent {
        if key == ApiKey::Produce {
            let resp: ProduceResponse = conn.recv(ApiKey::Produce, 9, correlation);
            let p = &resp.responses[0].partition_responses[0];
            assert_eq!((p.error_code, p.base_offset), (0, next_offset), "produce with correlation id {correlation}");
            next_offset += 2;
        } else {
            let resp: ApiVersionsResponse = conn.recv(ApiKey::ApiVersions, 3, correlation);
            assert_eq!(resp.error_code, 0);
        }
    }
    assert_eq!(watermarks(&broker.bootstrap(), &topic, 0), (0, 40));
}
