//! Hostile and malformed input on the wire, the way Apache Kafka handles it: garbage bytes, an
//! HTTP request, 2 GiB and negative size prefixes, a truncated frame then close, an unknown API
//! key, a malformed request header, an unsupported Metadata version (all: the broker closes that
//! connection without answering), ApiVersions v127 (answered v0-style with UNSUPPORTED_VERSION,
//! code 35, plus the full API list, connection kept), and a Produce whose batch CRC is wrong
//! (CORRUPT_MESSAGE, code 2, for that partition only; nothing written). After each: a bystander
//! connection opened before the attack still works, and a new connection works.

use std::time::Duration;

use bytes::BufMut;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use sluice_testkit::batch::{kafka_protocol_batch, kafka_protocol_count_records};
use sluice_testkit::client::BlockingClient;
use sluice_tests::*;

const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// Runs `attack` on a fresh connection while a bystander connection is open; afterwards checks
/// both the bystander and a brand-new connection.
fn with_bystander(broker: &TestBroker, what: &str, attack: impl FnOnce(&mut BlockingClient)) {
    let mut bystander = BlockingClient::connect(broker.addr());
    bystander.assert_alive("bystander before");
    let mut victim = BlockingClient::connect(broker.addr());
    check!("{what}");
    attack(&mut victim);
    check!("{what}: an already-open connection still works");
    bystander.assert_alive(&format!("bystander after {what}"));
    check!("{what}: a new connection works");
    BlockingClient::connect(broker.addr()).assert_alive(&format!("new connection after {what}"));
}

/// A hand-built request header (v1 layout: key, version, correlation id, client id) + body.
fn frame(api_key: i16, version: i16, correlation_id: i32, flexible: bool, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.put_i16(api_key);
    f.put_i16(version);
    f.put_i32(correlation_id);
    f.put_i16(4);
    f.extend_from_slice(b"test");
    if flexible {
        f.put_u8(0); // no header tagged fields
    }
    f.extend_from_slice(body);
    let mut out = (f.len() as i32).to_be_bytes().to_vec();
    out.extend(f);
    out
}

#[test]
fn garbage_http_and_bad_size_prefixes_close_the_connection() {
    let broker = TestBroker::start_default();
    with_bystander(&broker, "garbage frame (api key -1, random body)", |c| {
        let mut f = 60i32.to_be_bytes().to_vec();
        f.extend(std::iter::repeat_n(0xffu8, 8));
        f.extend(pseudo_random_bytes(9, 52));
        c.send_bytes(&f);
        c.assert_closed_by_broker(CLOSE_WITHIN, "garbage frame");
    });
    with_bystander(&broker, "an HTTP request (size prefix 'GET ' = 1.2 GB)", |c| {
        let _ = c.try_send_bytes(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        c.assert_closed_by_broker(CLOSE_WITHIN, "HTTP request");
    });
    with_bystander(&broker, "a 2 GiB size prefix (0x7fffffff) and a few bytes", |c| {
        let mut f = i32::MAX.to_be_bytes().to_vec();
        f.extend_from_slice(&[0, 18, 0, 3, 0, 0, 0, 1]);
        let _ = c.try_send_bytes(&f);
        c.assert_closed_by_broker(CLOSE_WITHIN, "2 GiB frame");
    });
    with_bystander(&broker, "a negative size prefix (-1)", |c| {
        let _ = c.try_send_bytes(&(-1i32).to_be_bytes());
        c.assert_closed_by_broker(CLOSE_WITHIN, "negative size");
    });
}

#[test]
fn truncated_frame_then_close() {
    let broker = TestBroker::start_default();
    with_bystander(&broker, "a frame announcing 100 bytes, 10 sent, then the client closes", |c| {
        let mut f = 100i32.to_be_bytes().to_vec();
        f.extend_from_slice(&[0, 3, 0, 12, 0, 0, 0, 5, 0, 4]);
        c.send_bytes(&f);
        c.stream.shutdown(std::net::Shutdown::Both).expect("shutdown");
    });
    with_bystander(&broker, "a truncated frame on a connection left open", |c| {
        let mut f = 100i32.to_be_bytes().to_vec();
        f.extend_from_slice(&[0, 18, 0, 3, 0, 0]);
        c.send_bytes(&f);
        // Broker must simply wait for the rest without blocking anyone else.
    });
}

#[test]
fn unknown_api_key_closes_the_connection() {
    let broker = TestBroker::start_default();
    with_bystander(&broker, "a well-formed frame with api key 9999", |c| {
        c.send_bytes(&frame(9999, 0, 77, false, &[0, 0, 0, 0]));
        c.assert_closed_by_broker(CLOSE_WITHIN, "unknown api key");
    });
}

#[test]
fn malformed_header_closes_the_connection() {
    let broker = TestBroker::start_default();
    with_bystander(&broker, "Metadata v1 header whose client id length (50) runs past the frame", |c| {
        let body = [0u8, 3, 0, 1, 0, 0, 0, 7, 0, 50, b'a'];
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(&body);
        c.send_bytes(&f);
        c.assert_closed_by_broker(CLOSE_WITHIN, "malformed header");
    });
    with_bystander(&broker, "a frame shorter than any request header (3 bytes)", |c| {
        c.send_bytes(&[0, 0, 0, 3, 0, 3, 0]);
        c.assert_closed_by_broker(CLOSE_WITHIN, "3-byte frame");
    });
}

#[test]
fn unsupported_metadata_version_closes_the_connection() {
    let broker = TestBroker::start_default();
    with_bystander(&broker, "Metadata v100 (unsupported)", |c| {
        // Flexible header + a v12-shaped body: null topics, allow_auto=false, no tags.
        let body = [0u8 /* topics: null (compact) */, 0, 0, 0];
        c.send_bytes(&frame(ApiKey::Metadata as i16, 100, 8, true, &body));
        c.assert_closed_by_broker(CLOSE_WITHIN, "Metadata v100");
    });
}

#[test]
fn api_versions_v127_gets_v0_error_with_full_list() {
    let broker = TestBroker::start_default();
    // The reference list: what a v3 request gets.
    let mut v3 = kafka_protocol::messages::ApiVersionsRequest::default();
    v3.client_software_name = StrBytes::from_static_str("tests");
    v3.client_software_version = StrBytes::from_static_str("0.1");
    let reference: ApiVersionsResponse = BlockingClient::connect(broker.addr()).request(ApiKey::ApiVersions, 3, &v3);
    let mut want: Vec<(i16, i16, i16)> =
        reference.api_keys.iter().map(|a| (a.api_key, a.min_version, a.max_version)).collect();
    want.sort();
    with_bystander(&broker, "ApiVersions v127", |c| {
        // v3-shaped body: compact strings client_software_name/version, no tags.
        let mut body = vec![6u8];
        body.extend_from_slice(b"tests");
        body.push(4);
        body.extend_from_slice(b"0.1");
        body.push(0);
        c.send_bytes(&frame(ApiKey::ApiVersions as i16, 127, 4242, true, &body));
        let mut resp = c.read_frame().expect("ApiVersions v127 must be answered, not dropped");
        let header = ResponseHeader::decode(&mut resp, 0).expect("v0 response header");
        assert_eq!(header.correlation_id, 4242);
        let body = ApiVersionsResponse::decode(&mut resp, 0).expect("v0-shaped ApiVersions body");
        assert!(resp.is_empty(), "{} trailing bytes after a v0 ApiVersions body", resp.len());
        check!("ApiVersions v127 -> error 35 (UNSUPPORTED_VERSION) and the same {} APIs as v3 lists", want.len());
        assert_eq!(body.error_code, 35, "UNSUPPORTED_VERSION");
        let mut got: Vec<(i16, i16, i16)> =
            body.api_keys.iter().map(|a| (a.api_key, a.min_version, a.max_version)).collect();
        got.sort();
        assert_eq!(got, want, "the error response must carry the full API list");
        check!("the same connection then answers ApiVersions v3 (client retry path)");
        c.assert_alive("after ApiVersions v127");
    });
}

fn auto_create(conn: &mut BlockingClient, topic: &str) {
    let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![t]);
    req.allow_auto_topic_creation = true;
    let resp: MetadataResponse = conn.request(ApiKey::Metadata, 12, &req);
    assert_eq!(resp.topics[0].error_code, 0, "auto-create {topic}");
}

fn fetch(conn: &mut BlockingClient, topic: &str, partition: i32) -> (i16, i64, usize) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let mut p = FetchPartition::default();
    p.partition = partition;
    p.fetch_offset = 0;
    p.partition_max_bytes = 1 << 20;
    p.current_leader_epoch = -1;
    p.log_start_offset = -1;
    p.last_fetched_epoch = -1;
    let mut t = FetchTopic::default();
    t.topic = TopicName(StrBytes::from_string(topic.to_string()));
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.replica_id = kafka_protocol::messages::BrokerId(-1);
    req.max_wait_ms = 0;
    req.min_bytes = 0;
    req.max_bytes = 1 << 20;
    req.session_id = 0;
    req.session_epoch = -1;
    req.topics = vec![t];
    let resp: FetchResponse = conn.request(ApiKey::Fetch, 12, &req);
    assert_eq!(resp.error_code, 0, "fetch top-level error");
    let pd = &resp.responses[0].partitions[0];
    (pd.error_code, pd.high_watermark, kafka_protocol_count_records(pd.records.as_ref()))
}

#[test]
fn produce_with_bad_crc_is_corrupt_message_and_writes_nothing() {
    let broker = TestBroker::start(&[("num.partitions", "2")]);
    let topic = topic_name("crc");
    let mut setup = BlockingClient::connect(broker.addr());
    auto_create(&mut setup, &topic);
    with_bystander(
        &broker,
        "Produce v9: partition 0 gets a batch with a flipped data byte, partition 1 a valid batch",
        |c| {
            let mut bad = kafka_protocol_batch(&[b"one", b"two", b"three"], 1000);
            let last = bad.len() - 1;
            bad[last] ^= 0x5a; // record data changed, CRC field unchanged
            let good = kafka_protocol_batch(&[b"a", b"b", b"c"], 1000);
            let mut td = TopicProduceData::default();
            td.name = TopicName(StrBytes::from_string(topic.clone()));
            for (idx, recs) in [(0, bad), (1, good)] {
                let mut pd = PartitionProduceData::default();
                pd.index = idx;
                pd.records = Some(recs.freeze());
                td.partition_data.push(pd);
            }
            let mut req = ProduceRequest::default();
            req.acks = -1;
            req.timeout_ms = 5000;
            req.topic_data = vec![td];
            let resp: ProduceResponse = c.request(ApiKey::Produce, 9, &req);
            let parts = &resp.responses[0].partition_responses;
            let code = |i: i32| parts.iter().find(|p| p.index == i).map(|p| p.error_code);
            check!("partition 0 -> CORRUPT_MESSAGE (2); partition 1 -> 0 at base offset 0");
            assert_eq!(code(0), Some(2), "bad CRC partition error");
            assert_eq!(code(1), Some(0), "good partition error");
            assert_eq!(parts.iter().find(|p| p.index == 1).unwrap().base_offset, 0);
            check!("Fetch: partition 0 is empty (high watermark 0), partition 1 has 3 records");
            assert_eq!(fetch(c, &topic, 0), (0, 0, 0));
            assert_eq!(fetch(c, &topic, 1), (0, 3, 3));
            check!("the connection that sent the corrupt batch is still usable");
            c.assert_alive("after CORRUPT_MESSAGE");
        },
    );
}
