//! Every advertised version of every API, end to end: a request encoded at that version goes
//! through a real broker (network, dispatch, handler) and the response must decode at that
//! version, consume every byte, re-encode to the identical bytes, and carry the expected result.
//! This is the round-trip test the ApiVersions contract promises ("if a version is advertised, it
//! works"), and it catches fields a handler sets that a version cannot carry.

mod common;

use common::{batch, name, Client};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice::handlers::SUPPORTED_APIS;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_version_round_trips() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = sluice::Config::from_overrides(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("log.dirs", &dir.path().display().to_string()),
        ("metrics.listener", "none"),
    ])
    .expect("config");
    let broker = sluice::start(config).await.expect("start");
    let stream = TcpStream::connect(broker.kafka_addr()).await.expect("connect");
    let mut c = Client { stream, correlation_id: 0 };

    // A topic for the data-path APIs.
    let mut ct = CreateTopicsRequest::default();
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = name("rt");
    t.num_partitions = 1;
    t.replication_factor = 1;
    ct.topics.push(t);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &ct).await;
    assert_eq!(r.topics[0].error_code, 0);
    let topic_id = r.topics[0].topic_id;
    assert!(!topic_id.is_nil());

    let mut produced = 0i64;
    let mut checked = 0;
    for (key, min, max) in SUPPORTED_APIS {
        for v in *min..=*max {
            match key {
                ApiKey::ApiVersions => {
                    let mut req = ApiVersionsRequest::default();
                    if v >= 3 {
                        req.client_software_name = StrBytes::from_static_str("roundtrip");
                        req.client_software_version = StrBytes::from_static_str("1.0");
                    }
                    let r: ApiVersionsResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.error_code, 0);
                    assert_eq!(r.api_keys.len(), SUPPORTED_APIS.len());
                }
                ApiKey::Metadata => {
                    let mut req = MetadataRequest::default();
                    let mut t = metadata_request::MetadataRequestTopic::default();
                    t.name = Some(name("rt"));
                    req.topics = Some(vec![t]);
                    req.allow_auto_topic_creation = v < 4;
                    let r: MetadataResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.topics.len(), 1, "v{v}");
                    assert_eq!(r.topics[0].error_code, 0, "v{v}");
                    assert_eq!(r.topics[0].partitions.len(), 1);
                    assert_eq!(r.topics[0].partitions[0].leader_id.0, 1);
                    assert_eq!(r.brokers.len(), 1);
                    assert_eq!(r.brokers[0].port as u16, broker.kafka_addr().port());
                    if v >= 10 {
                        assert_eq!(r.topics[0].topic_id, topic_id);
                    }
                    if v >= 2 {
                        assert!(r.cluster_id.is_some());
                    }
                }
                ApiKey::Produce => {
                    let mut req = ProduceRequest::default();
                    req.acks = -1;
                    req.timeout_ms = 5000;
                    let mut td = produce_request::TopicProduceData::default();
                    if v >= 13 {
                        td.topic_id = topic_id;
                    } else {
                        td.name = name("rt");
                    }
                    let mut pd = produce_request::PartitionProduceData::default();
                    pd.index = 0;
                    pd.records = Some(batch(&format!("produce-v{v}")));
                    td.partition_data.push(pd);
                    req.topic_data.push(td);
                    let r: ProduceResponse = c.call(*key, v, &req).await;
                    let p = &r.responses[0].partition_responses[0];
                    assert_eq!(p.error_code, 0, "produce v{v}: {:?}", p.error_message);
                    assert_eq!(p.base_offset, produced, "produce v{v}");
                    produced += 1;
                }
                ApiKey::Fetch => {
                    let mut req = FetchRequest::default();
                    req.max_wait_ms = 0;
                    req.min_bytes = 0;
                    req.max_bytes = 1 << 20;
                    req.session_epoch = -1;
                    if v >= 15 {
                        req.replica_state.replica_id = BrokerId(-1);
                    } else {
                        req.replica_id = BrokerId(-1);
                    }
                    let mut ft = fetch_request::FetchTopic::default();
                    if v >= 13 {
                        ft.topic_id = topic_id;
                    } else {
                        ft.topic = name("rt");
                    }
                    let mut fp = fetch_request::FetchPartition::default();
                    fp.partition = 0;
                    fp.fetch_offset = 0;
                    fp.partition_max_bytes = 1 << 20;
                    ft.partitions.push(fp);
                    req.topics.push(ft);
                    let r: FetchResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.error_code, 0);
                    let p = &r.responses[0].partitions[0];
                    assert_eq!(p.error_code, 0, "fetch v{v}");
                    assert_eq!(p.high_watermark, produced);
                    let records = p.records.clone().unwrap_or_default();
                    let batches: Vec<_> = sluice_protocol::batch::BatchIter::new(records).collect::<Result<_, _>>().expect("batches");
                    assert_eq!(batches.len() as i64, produced, "fetch v{v} returns every batch");
                    if v >= 13 {
                        assert_eq!(r.responses[0].topic_id, topic_id);
                    }
                }
                ApiKey::ListOffsets => {
                    let mut req = ListOffsetsRequest::default();
                    req.replica_id = BrokerId(-1);
                    let mut t = list_offsets_request::ListOffsetsTopic::default();
                    t.name = name("rt");
                    for ts in [-1i64, -2] {
                        let mut p = list_offsets_request::ListOffsetsPartition::default();
                        p.partition_index = 0;
                        p.timestamp = ts;
                        t.partitions.push(p);
                    }
                    req.topics.push(t);
                    let r: ListOffsetsResponse = c.call(*key, v, &req).await;
                    let ps = &r.topics[0].partitions;
                    assert_eq!((ps[0].error_code, ps[0].offset), (0, produced), "latest v{v}");
                    assert_eq!((ps[1].error_code, ps[1].offset), (0, 0), "earliest v{v}");
                }
                ApiKey::CreateTopics => {
                    let mut req = CreateTopicsRequest::default();
                    let mut t = create_topics_request::CreatableTopic::default();
                    t.name = name(&format!("rt-create-v{v}"));
                    t.num_partitions = 2;
                    t.replication_factor = 1;
                    req.topics.push(t);
                    req.timeout_ms = 5000;
                    let r: CreateTopicsResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.topics[0].error_code, 0, "create v{v}: {:?}", r.topics[0].error_message);
                }
                ApiKey::DeleteTopics => {
                    let mut req = DeleteTopicsRequest::default();
                    let target = format!("rt-create-v{}", v + 1);
                    if v >= 6 {
                        let mut t = delete_topics_request::DeleteTopicState::default();
                        t.name = Some(name(&target));
                        req.topics.push(t);
                    } else {
                        req.topic_names.push(name(&target));
                    }
                    req.timeout_ms = 5000;
                    let r: DeleteTopicsResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.responses[0].error_code, 0, "delete v{v}: {:?}", r.responses[0].error_message);
                }
                ApiKey::DescribeCluster => {
                    let mut req = DescribeClusterRequest::default();
                    req.endpoint_type = 1;
                    let r: DescribeClusterResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.error_code, 0);
                    assert_eq!(r.brokers.len(), 1);
                    assert_eq!(r.controller_id.0, 1);
                }
                other => panic!("{other:?} is advertised but this test has no sample for it"),
            }
            checked += 1;
        }
    }
    println!("round-tripped {checked} api versions");
    assert!(checked > 50);
    broker.shutdown().await.expect("shutdown");
}
