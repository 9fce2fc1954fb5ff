//! Shared raw-protocol helpers for the broker's integration tests: start a broker on an ephemeral
//! port in a temp dir, and a minimal client that encodes a request at a chosen version and checks
//! that the response decodes and round-trips exactly.
#![allow(dead_code)]

use std::fmt::Debug;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_protocol::records::{BatchBuilder, Record};
use sluice_protocol::request::encode_request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub async fn start_broker(dir: &std::path::Path, extra: &[(&str, &str)]) -> sluice::BrokerHandle {
    let d = dir.display().to_string();
    let mut pairs: Vec<(&str, &str)> =
        vec![("listeners", "PLAINTEXT://127.0.0.1:0"), ("log.dirs", &d), ("metrics.listener", "none")];
    pairs.extend_from_slice(extra);
    let config = sluice::Config::from_overrides(&pairs).expect("config");
    sluice::start(config).await.expect("start")
}

pub async fn connect(broker: &sluice::BrokerHandle) -> Client {
    Client { stream: TcpStream::connect(broker.kafka_addr()).await.expect("connect"), correlation_id: 0 }
}

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

pub fn batch_of(values: &[&str], base_timestamp: i64) -> Bytes {
    BatchBuilder {
        base_timestamp,
        records: values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                offset_delta: i as i32,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::copy_from_slice(v.as_bytes())),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
    .build()
    .expect("batch")
}

/// A batch of an idempotent (or, with `transactional`, transactional) producer: values without keys.
pub fn producer_batch(pid: i64, epoch: i16, base_sequence: i32, transactional: bool, values: &[&str]) -> Bytes {
    BatchBuilder {
        transactional,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence,
        base_timestamp: now_ms(),
        records: values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                offset_delta: i as i32,
                value: Some(Bytes::copy_from_slice(v.as_bytes())),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
    .build()
    .expect("batch")
}

pub fn batch(value: &str) -> Bytes {
    batch_of(&[value], now_ms())
}

pub struct Client {
    pub stream: TcpStream,
    pub correlation_id: i32,
}

impl Client {
    pub async fn call<Req: Encodable, Resp: Decodable + Encodable + Debug>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        self.correlation_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(StrBytes::from_static_str("roundtrip"));
        let frame = encode_request(&header, req).unwrap_or_else(|e| panic!("{key:?} v{version}: encode request: {e}"));
        self.stream.write_all(&frame).await.expect("write");
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.unwrap_or_else(|e| panic!("{key:?} v{version}: no response ({e})"));
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).await.expect("body");
        let mut buf = Bytes::from(body);
        assert_eq!(buf.get_i32(), self.correlation_id, "{key:?} v{version}: correlation id");
        let header_version = key.response_header_version(version);
        if header_version >= 1 {
            assert_eq!(buf.get_u8(), 0, "{key:?} v{version}: response header tagged fields");
        }
        let original = buf.clone();
        let resp =
            Resp::decode(&mut buf, version).unwrap_or_else(|e| panic!("{key:?} v{version}: decode response: {e}"));
        assert!(buf.is_empty(), "{key:?} v{version}: {} trailing bytes after the response", buf.len());
        let mut again = BytesMut::new();
        resp.encode(&mut again, version).unwrap_or_else(|e| panic!("{key:?} v{version}: re-encode: {e}"));
        assert_eq!(&again[..], &original[..], "{key:?} v{version}: response does not round-trip");
        resp
    }
}

/// A CreateTopics request for one topic with `configs`, replication factor 1.
pub fn create_topics_request(topic: &str, partitions: i32, configs: &[(&str, &str)]) -> CreateTopicsRequest {
    let mut req = CreateTopicsRequest::default();
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = name(topic);
    t.num_partitions = partitions;
    t.replication_factor = 1;
    for (k, v) in configs {
        let mut cfg = create_topics_request::CreatableTopicConfig::default();
        cfg.name = StrBytes::from_string(k.to_string());
        cfg.value = Some(StrBytes::from_string(v.to_string()));
        t.configs.push(cfg);
    }
    req.topics.push(t);
    req
}

/// Creates one topic (CreateTopics v7) and returns the response.
pub async fn create_topic(
    c: &mut Client,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> CreateTopicsResponse {
    c.call(ApiKey::CreateTopics, 7, &create_topics_request(topic, partitions, configs)).await
}

/// A Produce request carrying `records` for one partition.
pub fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = 5000;
    let mut td = produce_request::TopicProduceData::default();
    td.name = name(topic);
    let mut pd = produce_request::PartitionProduceData::default();
    pd.index = partition;
    pd.records = Some(records);
    td.partition_data.push(pd);
    req.topic_data.push(td);
    req
}

/// A sessionless Fetch request (by topic name) for partition 0.
pub fn fetch_request(
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
    partition_max: i32,
    max_bytes: i32,
) -> FetchRequest {
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = max_wait_ms;
    req.min_bytes = min_bytes;
    req.max_bytes = max_bytes;
    req.session_epoch = -1;
    let mut ft = fetch_request::FetchTopic::default();
    ft.topic = name(topic);
    let mut fp = fetch_request::FetchPartition::default();
    fp.fetch_offset = offset;
    fp.partition_max_bytes = partition_max;
    ft.partitions.push(fp);
    req.topics.push(ft);
    req
}
