//! Cluster metadata as clients see it: the broker list (exactly one broker, id = `node.id`,
//! host/port = the bound listener), topics with their partitions, leader = node id, replicas and
//! ISR = [node id], a non-nil topic id and cluster id, controller = node id (librdkafka and
//! raw Metadata v12), DescribeCluster, and an ApiVersions list covering what librdkafka needs.

use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest,
    MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use sluice_testkit::client::BlockingClient;
use sluice_tests::*;

const NODE: i32 = 7;

#[tokio::test]
async fn metadata_via_librdkafka() {
    let broker = TestBroker::start(&[("node.id", "7")]);
    let (a, b) = (topic_name("md-a"), topic_name("md-b"));
    create_topic(&broker.bootstrap(), &a, 1, &[]).await;
    create_topic(&broker.bootstrap(), &b, 5, &[]).await;
    let c = consumer(&broker.bootstrap(), &[]);
    let md = c.fetch_metadata(None, WAIT).expect("metadata");
    check!("one broker, id {NODE}, at {}", broker.addr());
    assert_eq!(md.brokers().len(), 1, "broker count");
    let br = &md.brokers()[0];
    assert_eq!((br.id(), br.host(), br.port()), (NODE, "127.0.0.1", broker.addr().port() as i32));
    for (name, n) in [(&a, 1usize), (&b, 5)] {
        let t = md.topics().iter().find(|t| t.name() == name.as_str()).unwrap_or_else(|| panic!("{name} listed"));
        check!("{name}: {n} partitions, ids 0..{n}, leader/replicas/isr = {NODE}");
        assert!(t.error().is_none(), "{name} error {:?}", t.error());
        let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
        ids.sort();
        assert_eq!(ids, (0..n as i32).collect::<Vec<_>>());
        for p in t.partitions() {
            assert!(p.error().is_none(), "{name}/{} error", p.id());
            assert_eq!(p.leader(), NODE, "{name}/{} leader", p.id());
            assert_eq!(p.replicas(), &[NODE], "{name}/{} replicas", p.id());
            assert_eq!(p.isr(), &[NODE], "{name}/{} isr", p.id());
        }
    }
}

#[test]
fn metadata_and_describe_cluster_raw() {
    let broker = TestBroker::start(&[("node.id", "7"), ("num.partitions", "2")]);
    let mut conn = BlockingClient::connect(broker.addr());
    let topic = topic_name("md-raw");
    let mut req = MetadataRequest::default();
    let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    t.name = Some(kafka_protocol::messages::TopicName(StrBytes::from_string(topic.clone())));
    req.topics = Some(vec![t]);
    req.allow_auto_topic_creation = true;
    let _: MetadataResponse = conn.request(ApiKey::Metadata, 12, &req);

    for version in [1i16, 4, 9, 12] {
        let mut all = MetadataRequest::default();
        all.topics = None; // all topics
        let resp: MetadataResponse = conn.request(ApiKey::Metadata, version, &all);
        check!(
            "Metadata v{version}: broker {NODE} on port {}, controller {NODE}, topic listed with 2 partitions",
            broker.addr().port()
        );
        assert_eq!(resp.brokers.len(), 1);
        assert_eq!(resp.brokers[0].node_id.0, NODE);
        assert_eq!(resp.brokers[0].port, broker.addr().port() as i32);
        assert_eq!(resp.controller_id.0, NODE, "controller id (v{version})");
        if version >= 2 {
            assert!(resp.cluster_id.as_ref().is_some_and(|c| !c.is_empty()), "cluster id (v{version})");
        }
        let t = resp
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic.as_str()))
            .expect("auto-created topic listed");
        assert_eq!(t.error_code, 0);
        assert_eq!(t.partitions.len(), 2);
        assert!(!t.is_internal);
        if version >= 10 {
            assert!(!t.topic_id.is_nil(), "Metadata v{version} must carry a real topic id");
        }
        for p in &t.partitions {
            assert_eq!((p.error_code, p.leader_id.0), (0, NODE));
        }
    }

    let resp: DescribeClusterResponse = conn.request(ApiKey::DescribeCluster, 0, &DescribeClusterRequest::default());
    check!("DescribeCluster v0: error 0, controller {NODE}, one broker {NODE}");
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.controller_id.0, NODE);
    assert!(!resp.cluster_id.is_empty());
    assert_eq!(resp.brokers.len(), 1);
    assert_eq!((resp.brokers[0].broker_id.0, resp.brokers[0].port), (NODE, broker.addr().port() as i32));
}

#[test]
fn api_versions_cover_librdkafka_needs() {
    let broker = TestBroker::start_default();
    let mut conn = BlockingClient::connect(broker.addr());
    let mut req = ApiVersionsRequest::default();
    req.client_software_name = StrBytes::from_static_str("sluice-tests");
    req.client_software_version = StrBytes::from_static_str("0.1");
    let resp: ApiVersionsResponse = conn.request(ApiKey::ApiVersions, 3, &req);
    assert_eq!(resp.error_code, 0);
    let range = |k: ApiKey| {
        resp.api_keys
            .iter()
            .find(|a| a.api_key == k as i16)
            .map(|a| (a.min_version, a.max_version))
            .unwrap_or_else(|| panic!("{k:?} missing from ApiVersions"))
    };
    // (api, a version that must be inside the advertised range)
    for (k, must) in [
        (ApiKey::ApiVersions, 3),
        (ApiKey::Metadata, 12),
        (ApiKey::Produce, 7), // zstd needs Produce v7+
        (ApiKey::Fetch, 10),  // zstd needs Fetch v10+
        (ApiKey::ListOffsets, 7),
        (ApiKey::CreateTopics, 4),
        (ApiKey::DeleteTopics, 4),
        (ApiKey::DescribeCluster, 0),
    ] {
        let (min, max) = range(k);
        check!("{k:?} advertised {min}..={max}, must include v{must}");
        assert!(min <= must && must <= max && min >= 0, "{k:?} range {min}..={max} excludes v{must}");
    }
    let mut keys: Vec<i16> = resp.api_keys.iter().map(|a| a.api_key).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "duplicate api keys in ApiVersions");
}
