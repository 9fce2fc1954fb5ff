//! Builders for the request bodies tests send most (CreateTopics, Produce, Fetch), so a test
//! spells out only what it is about; and [`create_topic`], the one-call topic setup.

use bytes::Bytes;
use kafka_protocol::messages::{
    create_topics_request, fetch_request, produce_request, ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse,
    FetchRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::AsyncClient;

/// A topic name as the protocol carries it.
pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
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
    c: &mut AsyncClient,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> CreateTopicsResponse {
    c.call(ApiKey::CreateTopics, 7, &create_topics_request(topic, partitions, configs)).await
}

/// A Produce request carrying `records` for one partition (timeout 5 s).
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
