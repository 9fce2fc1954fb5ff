//! Every advertised version of every API, end to end: a request encoded at that version goes
//! through a real broker (network, dispatch, handler) and the response must decode at that
//! version, consume every byte, re-encode to the identical bytes, and carry the expected result.
//! This is the round-trip test the ApiVersions contract promises ("if a version is advertised, it
//! works"), and it catches fields a handler sets that a version cannot carry.
//!
//! One test per API, each on its own broker with topic `rt`, iterating that API's advertised
//! versions; what an API needs to exist first (produced batches, a joined group, a committed
//! transaction) is set up by the same steps, with the same checks, the API's own test runs.
//! [`every_advertised_api_has_a_test`] keeps the list of tests in step with `SUPPORTED_APIS`.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice::handlers::SUPPORTED_APIS;
use sluice_testkit::batch::sluice_batch_one as batch;
use sluice_testkit::broker::{connect, start_in_process};
use sluice_testkit::client::AsyncClient;
use sluice_testkit::requests::name;

/// The APIs with a test below; every advertised API must be here.
const TESTED: &[ApiKey] = &[
    ApiKey::ApiVersions,
    ApiKey::Metadata,
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::DescribeCluster,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::ListGroups,
    ApiKey::DescribeGroups,
    ApiKey::LeaveGroup,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::ListConfigResources,
    ApiKey::CreatePartitions,
    ApiKey::DeleteRecords,
    ApiKey::InitProducerId,
    ApiKey::DescribeLogDirs,
    ApiKey::UpdateFeatures,
    ApiKey::AlterReplicaLogDirs,
    ApiKey::ConsumerGroupHeartbeat,
    ApiKey::ConsumerGroupDescribe,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::EndTxn,
    ApiKey::TxnOffsetCommit,
    ApiKey::DescribeTransactions,
    ApiKey::ListTransactions,
    ApiKey::DescribeProducers,
    ApiKey::ElectLeaders,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
    ApiKey::DescribeQuorum,
    ApiKey::DescribeTopicPartitions,
    ApiKey::OffsetForLeaderEpoch,
];

#[test]
fn every_advertised_api_has_a_test() {
    let mut versions = 0;
    for (key, min, max) in SUPPORTED_APIS {
        assert!(TESTED.contains(key), "{key:?} is advertised but this test has no sample for it");
        versions += (max - min + 1) as usize;
    }
    println!("round-tripping {versions} api versions");
    assert!(versions > 50);
}

/// The advertised versions of `key`.
fn versions(key: ApiKey) -> RangeInclusive<i16> {
    let (_, min, max) =
        SUPPORTED_APIS.iter().find(|(k, _, _)| *k == key).unwrap_or_else(|| panic!("{key:?} is not advertised"));
    *min..=*max
}

/// A broker with topic `rt` (one partition), a client, and what the steps learn on the way.
struct Rig {
    broker: sluice::BrokerHandle,
    c: AsyncClient,
    topic_id: uuid::Uuid,
    /// Batches produced to rt-0 so far.
    produced: i64,
    /// Classic group -> (member id, generation) after JoinGroup.
    members: HashMap<String, (String, i32)>,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[("group.initial.rebalance.delay.ms", "0")]).await;
    let mut c = connect(&broker).await;
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
    Rig { broker, c, topic_id, produced: 0, members: Default::default(), _dir: dir }
}

impl Rig {
    async fn shutdown(self) {
        self.broker.shutdown().await.expect("shutdown");
    }
}

// ---------------------------------------------------------------------------------------------
// Cluster and topics
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions() {
    let mut r = rig().await;
    for v in versions(ApiKey::ApiVersions) {
        let mut req = ApiVersionsRequest::default();
        if v >= 3 {
            req.client_software_name = StrBytes::from_static_str("roundtrip");
            req.client_software_version = StrBytes::from_static_str("1.0");
        }
        let resp: ApiVersionsResponse = r.c.call(ApiKey::ApiVersions, v, &req).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.api_keys.len(), SUPPORTED_APIS.len());
        if v < 3 {
            continue;
        }
        // Kafka 4.1's supported features; below v4 only those whose minimum is not 0.
        let supported: HashMap<&str, (i16, i16)> =
            resp.supported_features.iter().map(|f| (f.name.as_str(), (f.min_version, f.max_version))).collect();
        let mut expected = HashMap::from([("metadata.version", (7, 27))]);
        if v >= 4 {
            expected.extend([
                ("kraft.version", (0, 1)),
                ("transaction.version", (0, 2)),
                ("group.version", (0, 1)),
                ("eligible.leader.replicas.version", (0, 1)),
            ]);
        }
        assert_eq!(supported, expected, "v{v}");
        // What a fresh 4.1 node finalizes.
        assert_eq!(
            finalized(&resp),
            HashMap::from([
                ("metadata.version".to_string(), 27),
                ("kraft.version".to_string(), 1),
                ("transaction.version".to_string(), 2),
                ("group.version".to_string(), 1),
                ("eligible.leader.replicas.version".to_string(), 1),
            ]),
            "v{v}"
        );
        assert!(resp.finalized_features.iter().all(|f| f.min_version_level == f.max_version_level));
        assert_eq!(resp.finalized_features_epoch, 1, "v{v}");
        assert!(!resp.zk_migration_ready);
    }
    r.shutdown().await;
}

/// The finalized levels of an ApiVersions v3+ response.
fn finalized(resp: &ApiVersionsResponse) -> HashMap<String, i16> {
    resp.finalized_features.iter().map(|f| (f.name.to_string(), f.max_version_level)).collect()
}

/// The finalized levels and their epoch, from ApiVersions v4.
async fn features(c: &mut AsyncClient) -> (HashMap<String, i16>, i64) {
    let mut req = ApiVersionsRequest::default();
    req.client_software_name = StrBytes::from_static_str("roundtrip");
    req.client_software_version = StrBytes::from_static_str("1.0");
    let resp: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 4, &req).await;
    (finalized(&resp), resp.finalized_features_epoch)
}

fn feature_update(name: &str, level: i16, upgrade_type: i8) -> update_features_request::FeatureUpdateKey {
    let mut u = update_features_request::FeatureUpdateKey::default();
    u.feature = StrBytes::from_string(name.to_string());
    u.max_version_level = level;
    u.upgrade_type = upgrade_type;
    u
}

/// UpdateFeatures at every version: a no-op upgrade (v0 can do nothing else: its AllowDowngrade
/// is not read, as by Kafka's controller), validate-only and real downgrades and upgrades of
/// transaction.version and group.version (v1+), what group.version 0 turns off, the epoch moving
/// with every change, and a refused update changing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_features() {
    let mut r = rig().await;
    let invalid = kafka_protocol::ResponseError::InvalidUpdateVersion.code();
    for v in versions(ApiKey::UpdateFeatures) {
        let (levels, epoch) = features(&mut r.c).await;
        assert_eq!(levels["transaction.version"], 2, "v{v}");
        let mut req = UpdateFeaturesRequest::default();
        req.timeout_ms = 60000;
        req.feature_updates = vec![feature_update("transaction.version", 2, 1)];
        let resp: UpdateFeaturesResponse = r.c.call(ApiKey::UpdateFeatures, v, &req).await;
        assert_eq!((resp.error_code, resp.error_message.as_deref()), (0, None), "v{v}");
        if v <= 1 {
            assert_eq!(resp.results.len(), 1);
            assert_eq!((resp.results[0].feature.as_str(), resp.results[0].error_code), ("transaction.version", 0));
        } else {
            assert!(resp.results.is_empty(), "v2 has no per-feature results");
        }
        assert_eq!(features(&mut r.c).await, (levels.clone(), epoch + 1), "each update moves the epoch, v{v}");
        // Refused: above the supported range; the whole request fails and nothing changes.
        req.feature_updates = vec![feature_update("group.version", 1, 1), feature_update("metadata.version", 28, 1)];
        let resp: UpdateFeaturesResponse = r.c.call(ApiKey::UpdateFeatures, v, &req).await;
        assert_eq!(resp.error_code, invalid, "v{v}");
        assert_eq!(
            resp.error_message.as_deref(),
            Some("The update failed for all features since the following feature had an error: Invalid update version 28 for feature metadata.version. Local controller 1 only supports versions 7-27")
        );
        assert!(resp.results.is_empty());
        assert_eq!(features(&mut r.c).await, (levels.clone(), epoch + 1), "v{v}");
        if v == 0 {
            let mut down = feature_update("transaction.version", 1, 1);
            down.allow_downgrade = true;
            req.feature_updates = vec![down];
            let resp: UpdateFeaturesResponse = r.c.call(ApiKey::UpdateFeatures, v, &req).await;
            assert_eq!(resp.error_code, invalid, "a v0 downgrade is refused");
            continue;
        }
        // Validate only: accepted, nothing changes.
        req.feature_updates = vec![feature_update("transaction.version", 1, 2)];
        req.validate_only = true;
        let resp: UpdateFeaturesResponse = r.c.call(ApiKey::UpdateFeatures, v, &req).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        assert_eq!(features(&mut r.c).await, (levels.clone(), epoch + 1), "validate only, v{v}");
        // Safe downgrade of transaction.version, unsafe of group.version to 0 (then absent).
        req.validate_only = false;
        req.feature_updates = vec![feature_update("transaction.version", 1, 2), feature_update("group.version", 0, 3)];
        let resp: UpdateFeaturesResponse = r.c.call(ApiKey::UpdateFeatures, v, &req).await;
        assert_eq!(resp.error_code, 0, "v{v}: {:?}", resp.error_message);
        let (down, down_epoch) = features(&mut r.c).await;
        assert_eq!(down_epoch, epoch + 2);
        assert_eq!(down.get("transaction.version"), Some(&1));
        assert_eq!(down.get("group.version"), None);
        // group.version 0: the KIP-848 APIs are off.
        let mut hb = ConsumerGroupHeartbeatRequest::default();
        hb.group_id = GroupId(StrBytes::from_static_str("rt-uf"));
        hb.member_id = StrBytes::from_static_str("rt-uf-member");
        hb.rebalance_timeout_ms = 30000;
        hb.subscribed_topic_names = Some(vec![name("rt")]);
        hb.topic_partitions = Some(vec![]);
        let resp: ConsumerGroupHeartbeatResponse = r.c.call(ApiKey::ConsumerGroupHeartbeat, 1, &hb).await;
        assert_eq!(resp.error_code, 35, "UNSUPPORTED_VERSION with group.version 0");
        // A downgrade marked as an upgrade, and an upgrade marked as a downgrade, are refused.
        req.feature_updates = vec![feature_update("transaction.version", 0, 1)];
        let resp: UpdateFeaturesResponse = r.c.call(ApiKey::UpdateFeatures, v, &req).await;
        assert_eq!(resp.error_code, invalid, "v{v}");
        req.feature_updates = vec![feature_update("transaction.version", 2, 2)];
        let resp: UpdateFeaturesResponse = r.c.call(ApiKey::UpdateFeatures, v, &req).await;
        assert_eq!(resp.error_code, invalid, "v{v}");
        // Back up.
        req.feature_updates = vec![feature_update("transaction.version", 2, 1), feature_update("group.version", 1, 1)];
        let resp: UpdateFeaturesResponse = r.c.call(ApiKey::UpdateFeatures, v, &req).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        assert_eq!(features(&mut r.c).await, (levels, epoch + 3), "v{v}");
        let resp: ConsumerGroupHeartbeatResponse = r.c.call(ApiKey::ConsumerGroupHeartbeat, 1, &hb).await;
        assert_eq!(resp.error_code, 0, "group.version 1 again");
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata() {
    let mut r = rig().await;
    for v in versions(ApiKey::Metadata) {
        let mut req = MetadataRequest::default();
        let mut t = metadata_request::MetadataRequestTopic::default();
        t.name = Some(name("rt"));
        req.topics = Some(vec![t]);
        req.allow_auto_topic_creation = v < 4;
        let resp: MetadataResponse = r.c.call(ApiKey::Metadata, v, &req).await;
        assert_eq!(resp.topics.len(), 1, "v{v}");
        assert_eq!(resp.topics[0].error_code, 0, "v{v}");
        assert_eq!(resp.topics[0].partitions.len(), 1);
        assert_eq!(resp.topics[0].partitions[0].leader_id.0, 1);
        assert_eq!(resp.brokers.len(), 1);
        assert_eq!(resp.brokers[0].port as u16, r.broker.kafka_addr().port());
        if v >= 10 {
            assert_eq!(resp.topics[0].topic_id, r.topic_id);
        }
        if v >= 2 {
            assert!(resp.cluster_id.is_some());
        }
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cluster() {
    let mut r = rig().await;
    for v in versions(ApiKey::DescribeCluster) {
        let mut req = DescribeClusterRequest::default();
        req.endpoint_type = 1;
        let resp: DescribeClusterResponse = r.c.call(ApiKey::DescribeCluster, v, &req).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.brokers.len(), 1);
        assert_eq!(resp.controller_id.0, 1);
    }
    r.shutdown().await;
}

/// CreateTopics at `v`: topic `rt-create-v<v>` with two partitions.
async fn create_topics_step(r: &mut Rig, v: i16) {
    let mut req = CreateTopicsRequest::default();
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = name(&format!("rt-create-v{v}"));
    t.num_partitions = 2;
    t.replication_factor = 1;
    req.topics.push(t);
    req.timeout_ms = 5000;
    let resp: CreateTopicsResponse = r.c.call(ApiKey::CreateTopics, v, &req).await;
    assert_eq!(resp.topics[0].error_code, 0, "create v{v}: {:?}", resp.topics[0].error_message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics() {
    let mut r = rig().await;
    for v in versions(ApiKey::CreateTopics) {
        create_topics_step(&mut r, v).await;
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_topics() {
    let mut r = rig().await;
    // DeleteTopics v<n> deletes the topic CreateTopics v<n+1> created.
    for v in versions(ApiKey::CreateTopics) {
        create_topics_step(&mut r, v).await;
    }
    for v in versions(ApiKey::DeleteTopics) {
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
        let resp: DeleteTopicsResponse = r.c.call(ApiKey::DeleteTopics, v, &req).await;
        assert_eq!(resp.responses[0].error_code, 0, "delete v{v}: {:?}", resp.responses[0].error_message);
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions() {
    let mut r = rig().await;
    let vs = versions(ApiKey::CreatePartitions);
    for v in vs.clone() {
        if v == *vs.start() {
            let mut ct = CreateTopicsRequest::default();
            let mut t = create_topics_request::CreatableTopic::default();
            t.name = name("rt-parts");
            t.num_partitions = 1;
            t.replication_factor = 1;
            ct.topics.push(t);
            let resp: CreateTopicsResponse = r.c.call(ApiKey::CreateTopics, 7, &ct).await;
            assert_eq!(resp.topics[0].error_code, 0);
        }
        let mut req = CreatePartitionsRequest::default();
        let mut t = create_partitions_request::CreatePartitionsTopic::default();
        t.name = name("rt-parts");
        t.count = i32::from(v) + 2;
        req.topics.push(t);
        req.timeout_ms = 5000;
        let resp: CreatePartitionsResponse = r.c.call(ApiKey::CreatePartitions, v, &req).await;
        assert_eq!(resp.results[0].error_code, 0, "v{v}: {:?}", resp.results[0].error_message);
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_log_dirs() {
    let mut r = rig().await;
    for v in versions(ApiKey::DescribeLogDirs) {
        let mut req = DescribeLogDirsRequest::default();
        req.topics = None; // null = every topic
        let resp: DescribeLogDirsResponse = r.c.call(ApiKey::DescribeLogDirs, v, &req).await;
        assert_eq!(resp.results.len(), 1, "v{v}");
        assert_eq!(resp.results[0].error_code, 0);
        assert!(resp.results[0].topics.iter().any(|t| t.name.0.as_str() == "rt"));
    }
    r.shutdown().await;
}

/// Where DescribeLogDirs places rt-0: (absolute dir, is future) of each copy.
async fn rt0_dirs(c: &mut AsyncClient) -> Vec<(String, bool)> {
    let mut req = DescribeLogDirsRequest::default();
    req.topics = None;
    let resp: DescribeLogDirsResponse = c.call(ApiKey::DescribeLogDirs, 4, &req).await;
    let mut out = Vec::new();
    for r in resp.results {
        for t in r.topics.iter().filter(|t| t.name.0.as_str() == "rt") {
            for p in t.partitions.iter().filter(|p| p.partition_index == 0) {
                out.push((r.log_dir.to_string(), p.is_future_key));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_replica_log_dirs() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let dirs = format!("{},{}", a.display(), b.display());
    let broker = start_in_process(dir.path(), &[("log.dirs", &dirs)]).await;
    let mut c = connect(&broker).await;
    let created = sluice_testkit::requests::create_topic(&mut c, "rt", 1, &[]).await;
    assert_eq!(created.topics[0].error_code, 0);
    let mut target = rt0_dirs(&mut c).await[0].0.clone();
    for v in versions(ApiKey::AlterReplicaLogDirs) {
        // Move rt-0 to the other dir, named by its absolute path as DescribeLogDirs reports it.
        target = if target == a.display().to_string() { b.display().to_string() } else { a.display().to_string() };
        let mut req = AlterReplicaLogDirsRequest::default();
        let mut d = alter_replica_log_dirs_request::AlterReplicaLogDir::default();
        d.path = StrBytes::from_string(target.clone());
        let mut t = alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default();
        t.name = name("rt");
        t.partitions = vec![0, 7];
        d.topics.push(t);
        let mut missing = alter_replica_log_dirs_request::AlterReplicaLogDir::default();
        missing.path = StrBytes::from_static_str("/not/a/log/dir");
        let mut t = alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default();
        t.name = name("other");
        t.partitions = vec![0];
        missing.topics.push(t);
        req.dirs = vec![d, missing];
        let resp: AlterReplicaLogDirsResponse = r_call(&mut c, v, &req).await;
        let codes: Vec<(String, i32, i16)> = resp
            .results
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| (t.topic_name.0.to_string(), p.partition_index, p.error_code))
            })
            .collect();
        assert_eq!(
            codes,
            vec![
                ("rt".into(), 0, 0),
                // Kafka's code for a partition this broker does not host.
                ("rt".into(), 7, kafka_protocol::ResponseError::ReplicaNotAvailable.code()),
                ("other".into(), 0, kafka_protocol::ResponseError::LogDirNotFound.code()),
            ],
            "v{v}"
        );
        // The move completes in the background.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let now = rt0_dirs(&mut c).await;
            if now == vec![(target.clone(), false)] {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "v{v}: rt-0 still at {now:?}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    broker.shutdown().await.expect("shutdown");
}

async fn r_call(c: &mut AsyncClient, v: i16, req: &AlterReplicaLogDirsRequest) -> AlterReplicaLogDirsResponse {
    c.call(ApiKey::AlterReplicaLogDirs, v, req).await
}

// ---------------------------------------------------------------------------------------------
// Partition administration
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elect_leaders() {
    let mut r = rig().await;
    for v in versions(ApiKey::ElectLeaders) {
        // rt-0 is led by its only replica already; rt-7 and "nope" do not exist.
        let mut req = ElectLeadersRequest::default();
        req.election_type = if v >= 1 { (v % 2) as i8 } else { 0 };
        req.timeout_ms = 5000;
        let mut t = elect_leaders_request::TopicPartitions::default();
        t.topic = name("rt");
        t.partitions = vec![0, 7];
        let mut missing = elect_leaders_request::TopicPartitions::default();
        missing.topic = name("nope");
        missing.partitions = vec![0];
        req.topic_partitions = Some(vec![t, missing]);
        let resp: ElectLeadersResponse = r.c.call(ApiKey::ElectLeaders, v, &req).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        assert_eq!(resp.replica_election_results.len(), 2, "v{v}");
        let rt = &resp.replica_election_results[0];
        assert_eq!(rt.topic.0.as_str(), "rt");
        let codes: Vec<(i32, i16)> = rt.partition_result.iter().map(|p| (p.partition_id, p.error_code)).collect();
        assert_eq!(codes, vec![(0, 84), (7, 3)], "ELECTION_NOT_NEEDED, UNKNOWN_TOPIC_OR_PARTITION v{v}");
        let nope = &resp.replica_election_results[1];
        assert_eq!((nope.partition_result[0].partition_id, nope.partition_result[0].error_code), (0, 3), "v{v}");

        // Null: every partition; none needs an election, so every topic is listed empty.
        req.topic_partitions = None;
        let resp: ElectLeadersResponse = r.c.call(ApiKey::ElectLeaders, v, &req).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        let rt = resp.replica_election_results.iter().find(|t| t.topic.0.as_str() == "rt").expect("rt listed");
        assert!(rt.partition_result.is_empty(), "v{v}: {:?}", rt.partition_result);
        assert!(resp.replica_election_results.iter().all(|t| t.partition_result.is_empty()), "v{v}");
    }
    // An unknown election type is the request's error (v1+ carry the field).
    let mut req = ElectLeadersRequest::default();
    req.election_type = 5;
    let mut t = elect_leaders_request::TopicPartitions::default();
    t.topic = name("rt");
    t.partitions = vec![0];
    req.topic_partitions = Some(vec![t]);
    let resp: ElectLeadersResponse = r.c.call(ApiKey::ElectLeaders, 2, &req).await;
    assert_eq!(resp.error_code, 42, "INVALID_REQUEST");
    assert_eq!(resp.replica_election_results[0].partition_result[0].error_code, 42);
    r.shutdown().await;
}

fn reassignment(
    topic: &str,
    partition: i32,
    replicas: Option<Vec<i32>>,
) -> alter_partition_reassignments_request::ReassignableTopic {
    let mut p = alter_partition_reassignments_request::ReassignablePartition::default();
    p.partition_index = partition;
    p.replicas = replicas.map(|r| r.into_iter().map(BrokerId).collect());
    let mut t = alter_partition_reassignments_request::ReassignableTopic::default();
    t.name = name(topic);
    t.partitions.push(p);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_partition_reassignments() {
    let mut r = rig().await;
    for v in versions(ApiKey::AlterPartitionReassignments) {
        let mut req = AlterPartitionReassignmentsRequest::default();
        req.timeout_ms = 5000;
        req.topics = vec![
            reassignment("rt", 0, Some(vec![1])),    // the current assignment: done at once
            reassignment("rt", 0, None),             // cancel: nothing in progress
            reassignment("rt", 0, Some(vec![2])),    // a broker that does not exist
            reassignment("rt", 0, Some(vec![1, 1])), // twice
            reassignment("rt", 0, Some(vec![])),     // empty
            reassignment("rt", 3, Some(vec![1])),    // no such partition
            reassignment("nope", 0, Some(vec![1])),  // no such topic
        ];
        let resp: AlterPartitionReassignmentsResponse = r.c.call(ApiKey::AlterPartitionReassignments, v, &req).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        assert!(resp.allow_replication_factor_change, "v{v}");
        let codes: Vec<i16> = resp.responses.iter().map(|t| t.partitions[0].error_code).collect();
        assert_eq!(codes, vec![0, 85, 39, 39, 39, 3, 3], "v{v}");
        assert!(resp.responses[0].partitions[0].error_message.is_none());
        let msg = resp.responses[2].partitions[0].error_message.as_ref().expect("message");
        assert!(msg.contains("broker 2"), "{msg}");
    }
    // v1 (KIP-860): without allow_replication_factor_change the same length is still accepted.
    let mut req = AlterPartitionReassignmentsRequest::default();
    req.allow_replication_factor_change = false;
    req.topics = vec![reassignment("rt", 0, Some(vec![1]))];
    let resp: AlterPartitionReassignmentsResponse = r.c.call(ApiKey::AlterPartitionReassignments, 1, &req).await;
    assert!(!resp.allow_replication_factor_change);
    assert_eq!(resp.responses[0].partitions[0].error_code, 0);
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_partition_reassignments() {
    let mut r = rig().await;
    for v in versions(ApiKey::ListPartitionReassignments) {
        // A reassignment to the current replica completes at once, so none is ever listed.
        let mut alter = AlterPartitionReassignmentsRequest::default();
        alter.topics = vec![reassignment("rt", 0, Some(vec![1]))];
        let resp: AlterPartitionReassignmentsResponse = r.c.call(ApiKey::AlterPartitionReassignments, 0, &alter).await;
        assert_eq!(resp.responses[0].partitions[0].error_code, 0);
        let mut req = ListPartitionReassignmentsRequest::default();
        req.timeout_ms = 5000;
        req.topics = None;
        let resp: ListPartitionReassignmentsResponse = r.c.call(ApiKey::ListPartitionReassignments, v, &req).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        assert!(resp.error_message.is_none(), "v{v}");
        assert!(resp.topics.is_empty(), "v{v}: {:?}", resp.topics);
        // Named topics, known or not: still nothing, and no error (Kafka skips unknown ones).
        let mut t = list_partition_reassignments_request::ListPartitionReassignmentsTopics::default();
        t.name = name("rt");
        t.partition_indexes = vec![0, 5];
        let mut u = list_partition_reassignments_request::ListPartitionReassignmentsTopics::default();
        u.name = name("nope");
        u.partition_indexes = vec![0];
        req.topics = Some(vec![t, u]);
        let resp: ListPartitionReassignmentsResponse = r.c.call(ApiKey::ListPartitionReassignments, v, &req).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        assert!(resp.topics.is_empty(), "v{v}: {:?}", resp.topics);
    }
    r.shutdown().await;
}

fn quorum_request(topic: &str, partitions: &[i32]) -> DescribeQuorumRequest {
    let mut t = describe_quorum_request::TopicData::default();
    t.topic_name = name(topic);
    t.partitions = partitions
        .iter()
        .map(|&p| {
            let mut pd = describe_quorum_request::PartitionData::default();
            pd.partition_index = p;
            pd
        })
        .collect();
    let mut req = DescribeQuorumRequest::default();
    req.topics.push(t);
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_quorum() {
    let mut r = rig().await;
    let mut last_offset = 0;
    for v in versions(ApiKey::DescribeQuorum) {
        let before = sluice::clock::now_ms();
        let resp: DescribeQuorumResponse =
            r.c.call(ApiKey::DescribeQuorum, v, &quorum_request("__cluster_metadata", &[0])).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        let p = &resp.topics[0].partitions[0];
        assert_eq!((p.error_code, p.leader_id.0), (0, 1), "v{v}");
        assert!(p.leader_epoch >= 1, "v{v}");
        // The leader change and topic rt are records; each create below is one more.
        assert!(p.high_watermark >= 2 && p.high_watermark > last_offset, "v{v}: {}", p.high_watermark);
        last_offset = p.high_watermark;
        assert_eq!(p.current_voters.len(), 1);
        assert!(p.observers.is_empty());
        let voter = &p.current_voters[0];
        assert_eq!((voter.replica_id.0, voter.log_end_offset), (1, p.high_watermark), "v{v}");
        if v >= 1 {
            assert!(voter.last_fetch_timestamp >= before && voter.last_caught_up_timestamp >= before, "v{v}");
        }
        if v >= 2 {
            assert!(!voter.replica_directory_id.is_nil());
            assert_eq!(resp.nodes.len(), 1);
            assert_eq!(resp.nodes[0].node_id.0, 1);
            assert_eq!(resp.nodes[0].listeners[0].port, r.broker.kafka_addr().port());
            assert!(resp.error_message.is_none() && p.error_message.is_none());
        } else {
            assert!(resp.nodes.is_empty());
        }
        let mut ct = CreateTopicsRequest::default();
        let mut t = create_topics_request::CreatableTopic::default();
        t.name = name(&format!("rt-quorum-v{v}"));
        t.num_partitions = 1;
        t.replication_factor = 1;
        ct.topics.push(t);
        let created: CreateTopicsResponse = r.c.call(ApiKey::CreateTopics, 7, &ct).await;
        assert_eq!(created.topics[0].error_code, 0);

        // Any other partition is unknown.
        let resp: DescribeQuorumResponse = r.c.call(ApiKey::DescribeQuorum, v, &quorum_request("rt", &[0])).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.topics[0].partitions[0].error_code, 3, "v{v}");
        let resp: DescribeQuorumResponse =
            r.c.call(ApiKey::DescribeQuorum, v, &quorum_request("__cluster_metadata", &[1])).await;
        assert_eq!(resp.topics[0].partitions[0].error_code, 3, "v{v}");
    }
    r.shutdown().await;
}

fn dtp_request(topics: &[&str], limit: i32, cursor: Option<(&str, i32)>) -> DescribeTopicPartitionsRequest {
    let mut req = DescribeTopicPartitionsRequest::default();
    req.topics = topics
        .iter()
        .map(|t| {
            let mut tr = describe_topic_partitions_request::TopicRequest::default();
            tr.name = name(t);
            tr
        })
        .collect();
    req.response_partition_limit = limit;
    req.cursor = cursor.map(|(t, p)| {
        let mut c = describe_topic_partitions_request::Cursor::default();
        c.topic_name = name(t);
        c.partition_index = p;
        c
    });
    req
}

/// (topic, error, partitions) of each topic, and the next cursor.
type Page = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

fn page(resp: &DescribeTopicPartitionsResponse) -> Page {
    let topics = resp
        .topics
        .iter()
        .map(|t| {
            let n = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            (n, t.error_code, t.partitions.iter().map(|p| p.partition_index).collect())
        })
        .collect();
    (topics, resp.next_cursor.as_ref().map(|c| (c.topic_name.0.to_string(), c.partition_index)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_topic_partitions() {
    let mut r = rig().await;
    for (topic, partitions) in [("dtp-a", 3), ("dtp-b", 2)] {
        let mut ct = CreateTopicsRequest::default();
        let mut t = create_topics_request::CreatableTopic::default();
        t.name = name(topic);
        t.num_partitions = partitions;
        t.replication_factor = 1;
        ct.topics.push(t);
        let created: CreateTopicsResponse = r.c.call(ApiKey::CreateTopics, 7, &ct).await;
        assert_eq!(created.topics[0].error_code, 0);
    }
    let s = |x: &str| x.to_string();
    for v in versions(ApiKey::DescribeTopicPartitions) {
        // Named topics, two partitions a page: sorted by name, errors in place, cursors between.
        let names = ["dtp-b", "nope", "dtp-a", "bad name!"];
        let resp: DescribeTopicPartitionsResponse =
            r.c.call(ApiKey::DescribeTopicPartitions, v, &dtp_request(&names, 2, None)).await;
        assert_eq!(
            page(&resp),
            (vec![(s("bad name!"), 17, vec![]), (s("dtp-a"), 0, vec![0, 1])], Some((s("dtp-a"), 2))),
            "v{v}"
        );
        let a = &resp.topics[1];
        assert!(!a.topic_id.is_nil() && !a.is_internal);
        assert_eq!(a.topic_authorized_operations & (1 << 8), 1 << 8, "DESCRIBE is authorized");
        let p = &a.partitions[0];
        assert_eq!((p.leader_id.0, p.leader_epoch, p.error_code), (1, 0, 0));
        assert_eq!((p.replica_nodes.len(), p.isr_nodes.len()), (1, 1));
        assert_eq!(p.eligible_leader_replicas.as_deref(), Some(&[][..]));
        let resp: DescribeTopicPartitionsResponse =
            r.c.call(ApiKey::DescribeTopicPartitions, v, &dtp_request(&names, 2, Some(("dtp-a", 2)))).await;
        assert_eq!(page(&resp), (vec![(s("dtp-a"), 0, vec![2]), (s("dtp-b"), 0, vec![0])], Some((s("dtp-b"), 1))));
        let resp: DescribeTopicPartitionsResponse =
            r.c.call(ApiKey::DescribeTopicPartitions, v, &dtp_request(&names, 2, Some(("dtp-b", 1)))).await;
        assert_eq!(page(&resp), (vec![(s("dtp-b"), 0, vec![1]), (s("nope"), 3, vec![])], None));

        // A page that ends exactly at a topic's end points at the next topic's partition 0.
        let resp: DescribeTopicPartitionsResponse =
            r.c.call(ApiKey::DescribeTopicPartitions, v, &dtp_request(&["dtp-a", "dtp-b"], 3, None)).await;
        assert_eq!(page(&resp), (vec![(s("dtp-a"), 0, vec![0, 1, 2])], Some((s("dtp-b"), 0))));

        // Every topic, a small limit: the pages together hold every partition once, in order.
        let mut seen = Vec::new();
        let mut cursor: Option<(String, i32)> = None;
        let mut pages = 0;
        loop {
            let req = dtp_request(&[], 7, cursor.as_ref().map(|(t, p)| (t.as_str(), *p)));
            let resp: DescribeTopicPartitionsResponse = r.c.call(ApiKey::DescribeTopicPartitions, v, &req).await;
            let total: usize = resp.topics.iter().map(|t| t.partitions.len()).sum();
            assert!(total <= 7, "{total}");
            for t in &resp.topics {
                assert_eq!(t.error_code, 0);
                let n = t.name.as_ref().expect("name").0.to_string();
                assert_eq!(t.is_internal, n.starts_with("__"), "{n}");
                seen.extend(t.partitions.iter().map(|p| (n.clone(), p.partition_index)));
            }
            pages += 1;
            match page(&resp).1 {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut expected = vec![(s("dtp-a"), 0), (s("dtp-a"), 1), (s("dtp-a"), 2), (s("dtp-b"), 0), (s("dtp-b"), 1)];
        expected.push((s("rt"), 0));
        let internal: Vec<_> = seen.iter().filter(|(n, _)| n.starts_with("__")).cloned().collect();
        let mut want = internal.clone();
        want.extend(expected);
        assert_eq!(seen, want, "v{v}");
        assert!(!internal.is_empty() && pages >= 3, "{pages} pages");

        // A cursor must name one of the named topics, with a valid partition.
        for req in [dtp_request(&["dtp-a"], 10, Some(("dtp-b", 0))), dtp_request(&["dtp-a"], 10, Some(("dtp-a", -1)))] {
            let resp: DescribeTopicPartitionsResponse = r.c.call(ApiKey::DescribeTopicPartitions, v, &req).await;
            assert_eq!(page(&resp), (vec![(s("dtp-a"), 42, vec![])], None), "v{v}");
        }
        // A limit below one is one.
        let resp: DescribeTopicPartitionsResponse =
            r.c.call(ApiKey::DescribeTopicPartitions, v, &dtp_request(&["rt"], 0, None)).await;
        assert_eq!(page(&resp), (vec![(s("rt"), 0, vec![0])], None));
    }
    r.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Data path
// ---------------------------------------------------------------------------------------------

/// Produce at `v`: one batch to rt-0, which must land at the next offset.
async fn produce_step(r: &mut Rig, v: i16) {
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    let mut td = produce_request::TopicProduceData::default();
    if v >= 13 {
        td.topic_id = r.topic_id;
    } else {
        td.name = name("rt");
    }
    let mut pd = produce_request::PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(batch(&format!("produce-v{v}")));
    td.partition_data.push(pd);
    req.topic_data.push(td);
    let resp: ProduceResponse = r.c.call(ApiKey::Produce, v, &req).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "produce v{v}: {:?}", p.error_message);
    assert_eq!(p.base_offset, r.produced, "produce v{v}");
    r.produced += 1;
}

/// One batch per advertised Produce version.
async fn produce_every_version(r: &mut Rig) {
    for v in versions(ApiKey::Produce) {
        produce_step(r, v).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce() {
    let mut r = rig().await;
    produce_every_version(&mut r).await;
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch() {
    let mut r = rig().await;
    produce_every_version(&mut r).await;
    let produced = r.produced;
    for v in versions(ApiKey::Fetch) {
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
            ft.topic_id = r.topic_id;
        } else {
            ft.topic = name("rt");
        }
        let mut fp = fetch_request::FetchPartition::default();
        fp.partition = 0;
        fp.fetch_offset = 0;
        fp.partition_max_bytes = 1 << 20;
        ft.partitions.push(fp);
        req.topics.push(ft);
        let resp: FetchResponse = r.c.call(ApiKey::Fetch, v, &req).await;
        assert_eq!(resp.error_code, 0);
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch v{v}");
        assert_eq!(p.high_watermark, produced);
        let records = p.records.clone().unwrap_or_default();
        let batches: Vec<_> =
            sluice_protocol::batch::BatchIter::new(records).collect::<Result<_, _>>().expect("batches");
        assert_eq!(batches.len() as i64, produced, "fetch v{v} returns every batch");
        if v >= 13 {
            assert_eq!(resp.responses[0].topic_id, r.topic_id);
        }
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets() {
    let mut r = rig().await;
    produce_every_version(&mut r).await;
    let produced = r.produced;
    for v in versions(ApiKey::ListOffsets) {
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
        let resp: ListOffsetsResponse = r.c.call(ApiKey::ListOffsets, v, &req).await;
        let ps = &resp.topics[0].partitions;
        assert_eq!((ps[0].error_code, ps[0].offset), (0, produced), "latest v{v}");
        assert_eq!((ps[1].error_code, ps[1].offset), (0, 0), "earliest v{v}");
    }
    r.shutdown().await;
}

fn epoch_request(v: i16, partitions: &[(i32, i32, i32)]) -> OffsetForLeaderEpochRequest {
    let mut req = OffsetForLeaderEpochRequest::default();
    // v3+ carry the asker: a consumer.
    req.replica_id = BrokerId(if v >= 3 { -1 } else { -2 });
    let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
    t.topic = name("rt");
    t.partitions = partitions
        .iter()
        .map(|&(partition, current_leader_epoch, leader_epoch)| {
            let mut p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
            p.partition = partition;
            p.current_leader_epoch = current_leader_epoch;
            p.leader_epoch = leader_epoch;
            p
        })
        .collect();
    req.topics.push(t);
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_for_leader_epoch() {
    let mut r = rig().await;
    produce_every_version(&mut r).await;
    let produced = r.produced;
    // (partition, current leader epoch, leader epoch) -> (error, epoch, end offset)
    let cases = [
        ((0, -1, 0), (0, 0, produced)), // the latest epoch ends at the log end
        ((0, 0, 0), (0, 0, produced)),  // current epoch checked and matching
        ((0, -1, 3), (0, -1, -1)),      // newer than any: undefined, no error
        ((0, -1, -1), (0, -1, -1)),     // undefined
        ((0, 1, 0), (75, -1, -1)),      // UNKNOWN_LEADER_EPOCH
        ((0, -7, 0), (74, -1, -1)),     // FENCED_LEADER_EPOCH
        ((4, -1, 0), (3, -1, -1)),      // no such partition
    ];
    for v in versions(ApiKey::OffsetForLeaderEpoch) {
        let req = epoch_request(v, &cases.iter().map(|(q, _)| *q).collect::<Vec<_>>());
        let resp: OffsetForLeaderEpochResponse = r.c.call(ApiKey::OffsetForLeaderEpoch, v, &req).await;
        let got: Vec<(i16, i32, i64)> =
            resp.topics[0].partitions.iter().map(|p| (p.error_code, p.leader_epoch, p.end_offset)).collect();
        assert_eq!(got, cases.iter().map(|(_, a)| *a).collect::<Vec<_>>(), "v{v}");
        let mut unknown = epoch_request(v, &[(0, -1, 0)]);
        unknown.topics[0].topic = name("nope");
        let resp: OffsetForLeaderEpochResponse = r.c.call(ApiKey::OffsetForLeaderEpoch, v, &unknown).await;
        assert_eq!(resp.topics[0].partitions[0].error_code, 3, "v{v}");
    }
    // The answers come from the log's leader-epoch cache: data written in a later epoch (as a
    // future leader would) ends epoch 0 where it starts.
    let meta = r.broker.broker().metadata.topic("rt").expect("rt");
    let log = r.broker.broker().partition(&meta, 0).expect("rt-0");
    log.append(&[sluice_protocol::batch::RecordBatch::new(batch("epoch-2")).expect("batch")], 2).expect("append");
    for v in versions(ApiKey::OffsetForLeaderEpoch) {
        let req = epoch_request(v, &[(0, -1, 0), (0, -1, 1), (0, -1, 2)]);
        let resp: OffsetForLeaderEpochResponse = r.c.call(ApiKey::OffsetForLeaderEpoch, v, &req).await;
        let got: Vec<(i16, i32, i64)> =
            resp.topics[0].partitions.iter().map(|p| (p.error_code, p.leader_epoch, p.end_offset)).collect();
        assert_eq!(got, vec![(0, 0, produced), (0, 0, produced), (0, 2, produced + 1)], "v{v}");
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records() {
    let mut r = rig().await;
    produce_every_version(&mut r).await;
    for v in versions(ApiKey::DeleteRecords) {
        let mut req = DeleteRecordsRequest::default();
        let mut t = delete_records_request::DeleteRecordsTopic::default();
        t.name = name("rt");
        let mut p = delete_records_request::DeleteRecordsPartition::default();
        p.partition_index = 0;
        p.offset = 0;
        t.partitions.push(p);
        req.topics.push(t);
        req.timeout_ms = 5000;
        let resp: DeleteRecordsResponse = r.c.call(ApiKey::DeleteRecords, v, &req).await;
        let p = &resp.topics[0].partitions[0];
        assert_eq!((p.error_code, p.low_watermark), (0, 0), "v{v}");
    }
    r.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Configs
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_configs() {
    let mut r = rig().await;
    for v in versions(ApiKey::DescribeConfigs) {
        let mut req = DescribeConfigsRequest::default();
        let mut res = describe_configs_request::DescribeConfigsResource::default();
        res.resource_type = 2;
        res.resource_name = StrBytes::from_static_str("rt");
        res.configuration_keys = Some(vec![StrBytes::from_static_str("retention.ms")]);
        req.resources.push(res);
        let mut res = describe_configs_request::DescribeConfigsResource::default();
        res.resource_type = 4;
        res.resource_name = StrBytes::from_static_str("1");
        req.resources.push(res);
        req.include_synonyms = true;
        req.include_documentation = v >= 3;
        let resp: DescribeConfigsResponse = r.c.call(ApiKey::DescribeConfigs, v, &req).await;
        assert_eq!(resp.results[0].error_code, 0, "v{v}");
        assert_eq!(resp.results[0].configs.len(), 1);
        assert_eq!(resp.results[0].configs[0].value.as_deref(), Some("604800000"));
        assert!(!resp.results[0].configs[0].synonyms.is_empty());
        assert_eq!(resp.results[1].error_code, 0, "v{v}");
        assert!(resp.results[1].configs.iter().any(|c| c.name.as_str() == "log.retention.check.interval.ms"));
    }
    r.shutdown().await;
}

/// AlterConfigs at `v`: sets rt's retention.ms.
async fn alter_configs_step(r: &mut Rig, v: i16) {
    let mut req = AlterConfigsRequest::default();
    let mut res = alter_configs_request::AlterConfigsResource::default();
    res.resource_type = 2;
    res.resource_name = StrBytes::from_static_str("rt");
    let mut cfg = alter_configs_request::AlterableConfig::default();
    cfg.name = StrBytes::from_static_str("retention.ms");
    cfg.value = Some(StrBytes::from_string(format!("{}", 86_400_000 + i64::from(v))));
    res.configs.push(cfg);
    req.resources.push(res);
    let resp: AlterConfigsResponse = r.c.call(ApiKey::AlterConfigs, v, &req).await;
    assert_eq!(resp.responses[0].error_code, 0, "v{v}: {:?}", resp.responses[0].error_message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_configs() {
    let mut r = rig().await;
    for v in versions(ApiKey::AlterConfigs) {
        alter_configs_step(&mut r, v).await;
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_alter_configs() {
    let mut r = rig().await;
    for v in versions(ApiKey::AlterConfigs) {
        alter_configs_step(&mut r, v).await;
    }
    for v in versions(ApiKey::IncrementalAlterConfigs) {
        let mut req = IncrementalAlterConfigsRequest::default();
        let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
        res.resource_type = 2;
        res.resource_name = StrBytes::from_static_str("rt");
        let mut cfg = incremental_alter_configs_request::AlterableConfig::default();
        cfg.name = StrBytes::from_static_str("retention.ms");
        cfg.config_operation = 1; // DELETE
        res.configs.push(cfg);
        req.resources.push(res);
        let resp: IncrementalAlterConfigsResponse = r.c.call(ApiKey::IncrementalAlterConfigs, v, &req).await;
        assert_eq!(resp.responses[0].error_code, 0, "v{v}: {:?}", resp.responses[0].error_message);
    }
    r.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Classic groups and committed offsets
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_config_resources() {
    let mut r = rig().await;
    let listed = |resp: &ListConfigResourcesResponse| -> Vec<(String, i8)> {
        resp.config_resources.iter().map(|c| (c.resource_name.to_string(), c.resource_type)).collect()
    };
    for v in versions(ApiKey::ListConfigResources) {
        // No filter: v0 lists client-metrics resources only (there are none), v1 every type.
        let resp: ListConfigResourcesResponse =
            r.c.call(ApiKey::ListConfigResources, v, &ListConfigResourcesRequest::default()).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        if v == 0 {
            assert_eq!(listed(&resp), vec![], "v0");
            continue;
        }
        let all = listed(&resp);
        assert_eq!(all[..2], [("1".to_string(), 8), ("1".to_string(), 4)], "broker logger, then broker");
        assert!(all.contains(&("rt".to_string(), 2)), "{all:?}");
        assert!(all.contains(&("__consumer_offsets".to_string(), 2)), "{all:?}");
        let mut req = ListConfigResourcesRequest::default();
        req.resource_types = vec![2];
        let topics: ListConfigResourcesResponse = r.c.call(ApiKey::ListConfigResources, v, &req).await;
        assert!(listed(&topics).iter().all(|(_, t)| *t == 2));
        assert_eq!(listed(&topics).len(), all.len() - 2);
        req.resource_types = vec![4, 16, 32];
        let brokers: ListConfigResourcesResponse = r.c.call(ApiKey::ListConfigResources, v, &req).await;
        assert_eq!(listed(&brokers), vec![("1".to_string(), 4)]);
        // A type outside the supported ones fails the whole request.
        req.resource_types = vec![2, 3];
        let bad: ListConfigResourcesResponse = r.c.call(ApiKey::ListConfigResources, v, &req).await;
        assert_eq!(bad.error_code, kafka_protocol::ResponseError::UnsupportedVersion.code());
        assert!(bad.config_resources.is_empty());
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_coordinator() {
    let mut r = rig().await;
    for v in versions(ApiKey::FindCoordinator) {
        let mut req = FindCoordinatorRequest::default();
        if v >= 4 {
            req.coordinator_keys = vec![StrBytes::from_static_str("rt-group")];
        } else {
            req.key = StrBytes::from_static_str("rt-group");
        }
        let resp: FindCoordinatorResponse = r.c.call(ApiKey::FindCoordinator, v, &req).await;
        if v >= 4 {
            assert_eq!(resp.coordinators[0].error_code, 0);
            assert_eq!(resp.coordinators[0].node_id.0, 1);
        } else {
            assert_eq!((resp.error_code, resp.node_id.0), (0, 1));
        }
    }
    r.shutdown().await;
}

/// JoinGroup at `v` into a fresh group `rt-group-<v>` (v4+ first gets MEMBER_ID_REQUIRED); the
/// SyncGroup, Heartbeat, LeaveGroup and DeleteGroups steps use the same group at matching versions.
async fn join_group_step(r: &mut Rig, v: i16) {
    let group = format!("rt-group-{v}");
    let mut req = JoinGroupRequest::default();
    req.group_id = GroupId(StrBytes::from_string(group.clone()));
    req.session_timeout_ms = 10_000;
    req.rebalance_timeout_ms = 10_000;
    req.protocol_type = StrBytes::from_static_str("consumer");
    let mut p = join_group_request::JoinGroupRequestProtocol::default();
    p.name = StrBytes::from_static_str("range");
    p.metadata = bytes::Bytes::from_static(b"\0\x01\0\0\0\x01\0\x02rt\xff\xff\xff\xff");
    req.protocols.push(p);
    let mut resp: JoinGroupResponse = r.c.call(ApiKey::JoinGroup, v, &req).await;
    if v >= 4 {
        assert_eq!(resp.error_code, 79, "MEMBER_ID_REQUIRED");
        req.member_id = resp.member_id.clone();
        resp = r.c.call(ApiKey::JoinGroup, v, &req).await;
    }
    assert_eq!(resp.error_code, 0, "join v{v}");
    assert_eq!(resp.generation_id, 1);
    assert_eq!(resp.leader, resp.member_id);
    assert_eq!(resp.members.len(), 1);
    r.members.insert(group, (resp.member_id.to_string(), resp.generation_id));
}

/// SyncGroup at `v` of group `rt-group-<v>` (joined first).
async fn sync_group_step(r: &mut Rig, v: i16) {
    let group = format!("rt-group-{}", v.min(9));
    let (member, generation) = r.members[&group].clone();
    let mut req = SyncGroupRequest::default();
    req.group_id = GroupId(StrBytes::from_string(group));
    req.generation_id = generation;
    req.member_id = StrBytes::from_string(member.clone());
    let mut a = sync_group_request::SyncGroupRequestAssignment::default();
    a.member_id = StrBytes::from_string(member);
    a.assignment = bytes::Bytes::from_static(b"assignment");
    req.assignments.push(a);
    let resp: SyncGroupResponse = r.c.call(ApiKey::SyncGroup, v, &req).await;
    assert_eq!(resp.error_code, 0, "sync v{v}");
    assert_eq!(&resp.assignment[..], b"assignment");
}

/// LeaveGroup at `v` of group `rt-group-<v>` (joined first).
async fn leave_group_step(r: &mut Rig, v: i16) {
    let group = format!("rt-group-{}", v);
    let (member, _) = r.members[&group].clone();
    let mut req = LeaveGroupRequest::default();
    req.group_id = GroupId(StrBytes::from_string(group));
    if v >= 3 {
        let mut m = leave_group_request::MemberIdentity::default();
        m.member_id = StrBytes::from_string(member);
        req.members.push(m);
    } else {
        req.member_id = StrBytes::from_string(member);
    }
    let resp: LeaveGroupResponse = r.c.call(ApiKey::LeaveGroup, v, &req).await;
    assert_eq!(resp.error_code, 0, "leave v{v}");
    if v >= 3 {
        assert_eq!(resp.members[0].error_code, 0);
    }
}

/// DeleteGroups at `v` of group `rt-group-<v>` (empty by then).
async fn delete_groups_step(r: &mut Rig, v: i16) {
    let mut req = DeleteGroupsRequest::default();
    req.groups_names = vec![GroupId(StrBytes::from_string(format!("rt-group-{v}")))];
    let resp: DeleteGroupsResponse = r.c.call(ApiKey::DeleteGroups, v, &req).await;
    assert_eq!(resp.results[0].error_code, 0, "delete group v{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_group() {
    let mut r = rig().await;
    for v in versions(ApiKey::JoinGroup) {
        join_group_step(&mut r, v).await;
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_group() {
    let mut r = rig().await;
    for v in versions(ApiKey::SyncGroup) {
        join_group_step(&mut r, v.min(9)).await;
        sync_group_step(&mut r, v).await;
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat() {
    let mut r = rig().await;
    for v in versions(ApiKey::Heartbeat) {
        join_group_step(&mut r, v).await;
        sync_group_step(&mut r, v).await;
        let group = format!("rt-group-{v}");
        let (member, generation) = r.members[&group].clone();
        let mut req = HeartbeatRequest::default();
        req.group_id = GroupId(StrBytes::from_string(group));
        req.generation_id = generation;
        req.member_id = StrBytes::from_string(member);
        let resp: HeartbeatResponse = r.c.call(ApiKey::Heartbeat, v, &req).await;
        assert_eq!(resp.error_code, 0, "heartbeat v{v}");
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_group() {
    let mut r = rig().await;
    for v in versions(ApiKey::LeaveGroup) {
        join_group_step(&mut r, v).await;
        sync_group_step(&mut r, v).await;
        leave_group_step(&mut r, v).await;
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_groups() {
    let mut r = rig().await;
    for v in versions(ApiKey::DeleteGroups) {
        join_group_step(&mut r, v).await;
        sync_group_step(&mut r, v).await;
        leave_group_step(&mut r, v).await;
        delete_groups_step(&mut r, v).await;
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_groups() {
    let mut r = rig().await;
    join_group_step(&mut r, 0).await;
    for v in versions(ApiKey::ListGroups) {
        let req = ListGroupsRequest::default();
        let resp: ListGroupsResponse = r.c.call(ApiKey::ListGroups, v, &req).await;
        assert_eq!(resp.error_code, 0);
        assert!(resp.groups.iter().any(|g| g.group_id.0.as_str() == "rt-group-0"), "list v{v}");
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_groups() {
    let mut r = rig().await;
    // Joined at JoinGroup v9 and never synced.
    join_group_step(&mut r, 9).await;
    for v in versions(ApiKey::DescribeGroups) {
        let mut req = DescribeGroupsRequest::default();
        req.groups = vec![GroupId(StrBytes::from_static_str("rt-group-9"))];
        let resp: DescribeGroupsResponse = r.c.call(ApiKey::DescribeGroups, v, &req).await;
        assert_eq!(resp.groups[0].error_code, 0);
        assert_eq!(resp.groups[0].group_state.as_str(), "CompletingRebalance", "describe v{v}");
        assert_eq!(resp.groups[0].members.len(), 1);
    }
    r.shutdown().await;
}

/// OffsetCommit at `v`: commits offset `v` (with metadata "meta") of rt-0 for group `rt-commits`.
async fn offset_commit_step(r: &mut Rig, v: i16) {
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(StrBytes::from_static_str("rt-commits"));
    req.generation_id_or_member_epoch = -1;
    let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = name("rt");
    let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
    p.committed_offset = v as i64;
    p.committed_metadata = Some(StrBytes::from_static_str("meta"));
    t.partitions.push(p);
    req.topics.push(t);
    let resp: OffsetCommitResponse = r.c.call(ApiKey::OffsetCommit, v, &req).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 0, "commit v{v}");
}

/// Commits at every OffsetCommit version, the last (v9) leaving offset 9.
async fn offset_commit_every_version(r: &mut Rig) {
    for v in versions(ApiKey::OffsetCommit) {
        offset_commit_step(r, v).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_commit() {
    let mut r = rig().await;
    offset_commit_every_version(&mut r).await;
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_fetch() {
    let mut r = rig().await;
    offset_commit_every_version(&mut r).await;
    for v in versions(ApiKey::OffsetFetch) {
        let mut req = OffsetFetchRequest::default();
        if v >= 8 {
            let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
            g.group_id = GroupId(StrBytes::from_static_str("rt-commits"));
            let mut t = offset_fetch_request::OffsetFetchRequestTopics::default();
            t.name = name("rt");
            t.partition_indexes = vec![0];
            g.topics = Some(vec![t]);
            req.groups.push(g);
            let resp: OffsetFetchResponse = r.c.call(ApiKey::OffsetFetch, v, &req).await;
            assert_eq!(resp.groups[0].topics[0].partitions[0].committed_offset, 9, "fetch v{v}");
        } else {
            req.group_id = GroupId(StrBytes::from_static_str("rt-commits"));
            let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
            t.name = name("rt");
            t.partition_indexes = vec![0];
            req.topics = Some(vec![t]);
            let resp: OffsetFetchResponse = r.c.call(ApiKey::OffsetFetch, v, &req).await;
            assert_eq!(resp.topics[0].partitions[0].committed_offset, 9, "fetch v{v}");
            assert_eq!(resp.topics[0].partitions[0].metadata.as_deref(), Some("meta"));
        }
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_delete() {
    let mut r = rig().await;
    offset_commit_every_version(&mut r).await;
    for v in versions(ApiKey::OffsetDelete) {
        let mut req = OffsetDeleteRequest::default();
        req.group_id = GroupId(StrBytes::from_static_str("rt-commits"));
        let mut t = offset_delete_request::OffsetDeleteRequestTopic::default();
        t.name = name("rt");
        let mut p = offset_delete_request::OffsetDeleteRequestPartition::default();
        p.partition_index = 0;
        t.partitions.push(p);
        req.topics.push(t);
        let resp: OffsetDeleteResponse = r.c.call(ApiKey::OffsetDelete, v, &req).await;
        assert_eq!((resp.error_code, resp.topics[0].partitions[0].error_code), (0, 0));
    }
    r.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Consumer groups (the consumer protocol)
// ---------------------------------------------------------------------------------------------

/// ConsumerGroupHeartbeat at `v`: a member joins `rt-cg-<v>` (v0 lets the broker pick the member
/// id, v1 sends its own), heartbeats steadily, and an unknown member is refused.
async fn consumer_group_heartbeat_step(r: &mut Rig, v: i16) {
    let key = ApiKey::ConsumerGroupHeartbeat;
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = GroupId(StrBytes::from_string(format!("rt-cg-{v}")));
    if v >= 1 {
        req.member_id = StrBytes::from_string(format!("rt-cg-member-{v}"));
    }
    req.member_epoch = 0;
    req.rebalance_timeout_ms = 30000;
    req.subscribed_topic_names = Some(vec![name("rt")]);
    req.topic_partitions = Some(vec![]);
    let resp: ConsumerGroupHeartbeatResponse = r.c.call(key, v, &req).await;
    assert_eq!(resp.error_code, 0, "cg heartbeat v{v}: {:?}", resp.error_message);
    assert_eq!(resp.member_epoch, 1);
    assert!(resp.heartbeat_interval_ms > 0);
    let a = resp.assignment.expect("assignment on join");
    assert_eq!(a.topic_partitions.len(), 1);
    assert_eq!((a.topic_partitions[0].topic_id, a.topic_partitions[0].partitions.clone()), (r.topic_id, vec![0]));
    let member_id = resp.member_id.expect("member id");
    if v >= 1 {
        assert_eq!(member_id.as_str(), format!("rt-cg-member-{v}"));
    }
    // A steady heartbeat: same epoch, no assignment.
    let mut hb = ConsumerGroupHeartbeatRequest::default();
    hb.group_id = req.group_id.clone();
    hb.member_id = member_id;
    hb.member_epoch = 1;
    hb.rebalance_timeout_ms = -1;
    let resp: ConsumerGroupHeartbeatResponse = r.c.call(key, v, &hb).await;
    assert_eq!((resp.error_code, resp.member_epoch), (0, 1), "cg heartbeat v{v}");
    assert!(resp.assignment.is_none());
    // An unknown member.
    hb.member_id = StrBytes::from_static_str("nobody");
    let resp: ConsumerGroupHeartbeatResponse = r.c.call(key, v, &hb).await;
    assert_eq!(resp.error_code, 25, "UNKNOWN_MEMBER_ID v{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_heartbeat() {
    let mut r = rig().await;
    for v in versions(ApiKey::ConsumerGroupHeartbeat) {
        consumer_group_heartbeat_step(&mut r, v).await;
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_describe() {
    let mut r = rig().await;
    for v in versions(ApiKey::ConsumerGroupHeartbeat) {
        consumer_group_heartbeat_step(&mut r, v).await;
    }
    // Classic group rt-group-0 through its whole life: joined, synced, left, deleted.
    join_group_step(&mut r, 0).await;
    sync_group_step(&mut r, 0).await;
    leave_group_step(&mut r, 0).await;
    delete_groups_step(&mut r, 0).await;
    for v in versions(ApiKey::ConsumerGroupDescribe) {
        let mut req = ConsumerGroupDescribeRequest::default();
        req.group_ids =
            vec![GroupId(StrBytes::from_static_str("rt-cg-1")), GroupId(StrBytes::from_static_str("rt-group-0"))];
        let resp: ConsumerGroupDescribeResponse = r.c.call(ApiKey::ConsumerGroupDescribe, v, &req).await;
        let g = &resp.groups[0];
        assert_eq!(g.error_code, 0, "cg describe v{v}");
        assert_eq!(g.group_state.as_str(), "Stable");
        assert_eq!((g.group_epoch, g.assignment_epoch), (1, 1));
        assert_eq!(g.assignor_name.as_str(), "uniform");
        assert_eq!(g.members.len(), 1);
        assert_eq!(g.members[0].member_epoch, 1);
        assert_eq!(g.members[0].assignment.topic_partitions[0].topic_name.0.as_str(), "rt");
        assert_eq!(g.members[0].target_assignment.topic_partitions[0].partitions, vec![0]);
        if v >= 1 {
            assert_eq!(g.members[0].member_type, 1);
        }
        // A classic group is not a consumer group.
        assert_eq!(resp.groups[1].error_code, 69, "GROUP_ID_NOT_FOUND v{v}");
    }
    r.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Producers and transactions
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_producer_id() {
    let mut r = rig().await;
    for v in versions(ApiKey::InitProducerId) {
        let mut req = InitProducerIdRequest::default();
        req.transactional_id = None;
        req.transaction_timeout_ms = 60000;
        req.producer_id = ProducerId(-1);
        req.producer_epoch = -1;
        let resp: InitProducerIdResponse = r.c.call(ApiKey::InitProducerId, v, &req).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        assert!(resp.producer_id.0 >= 0);
        assert_eq!(resp.producer_epoch, 0);
        if v >= 3 {
            // KIP-360: the same id with the next epoch.
            req.producer_id = resp.producer_id;
            req.producer_epoch = 0;
            let b: InitProducerIdResponse = r.c.call(ApiKey::InitProducerId, v, &req).await;
            assert_eq!((b.error_code, b.producer_id, b.producer_epoch), (0, resp.producer_id, 1), "v{v}");
        }
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_partitions_to_txn() {
    let mut r = rig().await;
    for v in versions(ApiKey::AddPartitionsToTxn) {
        let id = format!("rt-txn-apt-{v}");
        let (pid, epoch) = init_txn(&mut r.c, &id).await;
        let mut topic = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
        topic.name = name("rt");
        topic.partitions = vec![0];
        let mut req = AddPartitionsToTxnRequest::default();
        if v <= 3 {
            req.v3_and_below_transactional_id = TransactionalId(StrBytes::from_string(id.clone()));
            req.v3_and_below_producer_id = pid;
            req.v3_and_below_producer_epoch = epoch;
            req.v3_and_below_topics = vec![topic];
            let resp: AddPartitionsToTxnResponse = r.c.call(ApiKey::AddPartitionsToTxn, v, &req).await;
            let p = &resp.results_by_topic_v3_and_below[0].results_by_partition[0];
            assert_eq!((p.partition_index, p.partition_error_code), (0, 0), "v{v}");
        } else {
            let mut t = add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default();
            t.transactional_id = TransactionalId(StrBytes::from_string(id.clone()));
            t.producer_id = pid;
            t.producer_epoch = epoch;
            t.verify_only = true;
            t.topics = vec![topic];
            req.transactions = vec![t.clone()];
            let resp: AddPartitionsToTxnResponse = r.c.call(ApiKey::AddPartitionsToTxn, v, &req).await;
            let p = &resp.results_by_transaction[0].topic_results[0].results_by_partition[0];
            assert_eq!(p.partition_error_code, 48, "INVALID_TXN_STATE: not in the transaction yet, v{v}");
            t.verify_only = false;
            req.transactions = vec![t];
            let resp: AddPartitionsToTxnResponse = r.c.call(ApiKey::AddPartitionsToTxn, v, &req).await;
            let p = &resp.results_by_transaction[0].topic_results[0].results_by_partition[0];
            assert_eq!(p.partition_error_code, 0, "v{v}");
        }
        end_txn_v3(&mut r.c, &id, pid, epoch, false).await;
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_offsets_to_txn() {
    let mut r = rig().await;
    for v in versions(ApiKey::AddOffsetsToTxn) {
        let id = format!("rt-txn-aot-{v}");
        let (pid, epoch) = init_txn(&mut r.c, &id).await;
        let mut req = AddOffsetsToTxnRequest::default();
        req.transactional_id = TransactionalId(StrBytes::from_string(id.clone()));
        req.producer_id = pid;
        req.producer_epoch = epoch;
        req.group_id = GroupId(StrBytes::from_string(format!("rt-txn-group-{v}")));
        let resp: AddOffsetsToTxnResponse = r.c.call(ApiKey::AddOffsetsToTxn, v, &req).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        req.producer_epoch = epoch - 1;
        let resp: AddOffsetsToTxnResponse = r.c.call(ApiKey::AddOffsetsToTxn, v, &req).await;
        let fenced = if v >= 2 { 90 } else { 47 };
        assert_eq!(resp.error_code, fenced, "PRODUCER_FENCED / INVALID_PRODUCER_EPOCH v{v}");
        end_txn_v3(&mut r.c, &id, pid, epoch, false).await;
    }
    r.shutdown().await;
}

/// EndTxn at `v`: transaction `rt-txn-end-<v>` over rt-0 commits, a retry of the commit succeeds
/// and an abort after it is INVALID_TXN_STATE.
async fn end_txn_step(r: &mut Rig, v: i16) {
    let id = format!("rt-txn-end-{v}");
    let (pid, epoch) = init_txn(&mut r.c, &id).await;
    add_partition(&mut r.c, &id, pid, epoch).await;
    let mut req = EndTxnRequest::default();
    req.transactional_id = TransactionalId(StrBytes::from_string(id));
    req.producer_id = pid;
    req.producer_epoch = epoch;
    req.committed = true;
    let resp: EndTxnResponse = r.c.call(ApiKey::EndTxn, v, &req).await;
    assert_eq!(resp.error_code, 0, "v{v}");
    // v5 (transactions v2) bumps the epoch and says so; before, the response has no such fields.
    let next = if v >= 5 { (pid, epoch + 1) } else { (ProducerId(-1), -1) };
    assert_eq!((resp.producer_id, resp.producer_epoch), next, "v{v}");
    // A retry of the same EndTxn succeeds (with the same answer); the opposite outcome is
    // INVALID_TXN_STATE.
    let resp: EndTxnResponse = r.c.call(ApiKey::EndTxn, v, &req).await;
    assert_eq!((resp.error_code, resp.producer_id, resp.producer_epoch), (0, next.0, next.1), "retry v{v}");
    req.committed = false;
    let resp: EndTxnResponse = r.c.call(ApiKey::EndTxn, v, &req).await;
    assert_eq!(resp.error_code, 48, "v{v}");
    if v >= 5 {
        // The bumped epoch can abort an empty transaction (bumping again); the old one is fenced.
        req.producer_epoch = epoch + 1;
        let resp: EndTxnResponse = r.c.call(ApiKey::EndTxn, v, &req).await;
        assert_eq!((resp.error_code, resp.producer_id, resp.producer_epoch), (0, pid, epoch + 2), "v{v}");
        req.producer_epoch = epoch - 1;
        let resp: EndTxnResponse = r.c.call(ApiKey::EndTxn, v, &req).await;
        assert_eq!(resp.error_code, 90, "PRODUCER_FENCED v{v}");
    }
}

/// A committed transaction per EndTxn version (`rt-txn-end-0`, ...), each leaving a marker in rt-0.
async fn end_txn_every_version(r: &mut Rig) {
    for v in versions(ApiKey::EndTxn) {
        end_txn_step(r, v).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_txn() {
    let mut r = rig().await;
    end_txn_every_version(&mut r).await;
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_offset_commit() {
    let mut r = rig().await;
    for v in versions(ApiKey::TxnOffsetCommit) {
        let id = format!("rt-txn-toc-{v}");
        let group = format!("rt-txn-toc-group-{v}");
        let (pid, epoch) = init_txn(&mut r.c, &id).await;
        if v < 5 {
            // From v5 (transactions v2) the commit adds the offsets partition itself.
            let mut add = AddOffsetsToTxnRequest::default();
            add.transactional_id = TransactionalId(StrBytes::from_string(id.clone()));
            add.producer_id = pid;
            add.producer_epoch = epoch;
            add.group_id = GroupId(StrBytes::from_string(group.clone()));
            let resp: AddOffsetsToTxnResponse = r.c.call(ApiKey::AddOffsetsToTxn, 0, &add).await;
            assert_eq!(resp.error_code, 0);
        }
        let mut req = TxnOffsetCommitRequest::default();
        req.transactional_id = TransactionalId(StrBytes::from_string(id.clone()));
        req.group_id = GroupId(StrBytes::from_string(group.clone()));
        req.producer_id = pid;
        req.producer_epoch = epoch;
        req.generation_id = -1;
        let mut p = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default();
        p.partition_index = 0;
        p.committed_offset = 1;
        p.committed_leader_epoch = -1;
        let mut t = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
        t.name = name("rt");
        t.partitions = vec![p];
        req.topics = vec![t];
        let resp: TxnOffsetCommitResponse = r.c.call(ApiKey::TxnOffsetCommit, v, &req).await;
        assert_eq!(resp.topics[0].partitions[0].error_code, 0, "v{v}");
        end_txn_v3(&mut r.c, &id, pid, epoch, true).await;
        let mut of = OffsetFetchRequest::default();
        of.group_id = GroupId(StrBytes::from_string(group));
        of.topics = None; // every committed offset of the group
        let resp: OffsetFetchResponse = r.c.call(ApiKey::OffsetFetch, 2, &of).await;
        assert_eq!(resp.topics[0].partitions[0].committed_offset, 1, "committed with the transaction, v{v}");
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_transactions() {
    let mut r = rig().await;
    end_txn_every_version(&mut r).await;
    for v in versions(ApiKey::DescribeTransactions) {
        let mut req = DescribeTransactionsRequest::default();
        req.transactional_ids = vec![
            TransactionalId(StrBytes::from_static_str("rt-txn-end-0")),
            TransactionalId(StrBytes::from_static_str("rt-nobody")),
        ];
        let resp: DescribeTransactionsResponse = r.c.call(ApiKey::DescribeTransactions, v, &req).await;
        let s = &resp.transaction_states[0];
        assert_eq!((s.error_code, s.transaction_state.as_str()), (0, "CompleteCommit"), "v{v}");
        assert_eq!(s.transaction_timeout_ms, 60000);
        assert_eq!(resp.transaction_states[1].error_code, 105, "TRANSACTIONAL_ID_NOT_FOUND v{v}");
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_transactions() {
    let mut r = rig().await;
    end_txn_every_version(&mut r).await;
    for v in versions(ApiKey::ListTransactions) {
        let mut req = ListTransactionsRequest::default();
        req.state_filters = vec![StrBytes::from_static_str("CompleteCommit"), StrBytes::from_static_str("Bogus")];
        req.duration_filter = -1;
        if v >= 2 {
            req.transactional_id_pattern = Some(StrBytes::from_static_str("rt-txn-end-.*"));
        }
        let resp: ListTransactionsResponse = r.c.call(ApiKey::ListTransactions, v, &req).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        assert_eq!(resp.unknown_state_filters, vec![StrBytes::from_static_str("Bogus")]);
        let ids: Vec<&str> = resp.transaction_states.iter().map(|s| s.transactional_id.0.as_str()).collect();
        assert!(ids.contains(&"rt-txn-end-0"), "v{v}: {ids:?}");
        assert!(resp.transaction_states.iter().all(|s| s.transaction_state.as_str() == "CompleteCommit"));
        if v >= 2 {
            assert!(ids.iter().all(|i| i.starts_with("rt-txn-end-")), "v{v}: {ids:?}");
        }
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_producers() {
    let mut r = rig().await;
    end_txn_every_version(&mut r).await;
    for v in versions(ApiKey::DescribeProducers) {
        let mut req = DescribeProducersRequest::default();
        let mut t = describe_producers_request::TopicRequest::default();
        t.name = name("rt");
        t.partition_indexes = vec![0, 7];
        req.topics = vec![t];
        let resp: DescribeProducersResponse = r.c.call(ApiKey::DescribeProducers, v, &req).await;
        let p = &resp.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "v{v}");
        assert!(!p.active_producers.is_empty(), "transaction markers left producer state");
        assert!(p.active_producers.iter().all(|s| s.current_txn_start_offset == -1), "no open transaction");
        assert_eq!(resp.topics[0].partitions[1].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION v{v}");
    }
    r.shutdown().await;
}

/// InitProducerId v4 for a transactional id: (producer id, epoch).
async fn init_txn(c: &mut AsyncClient, id: &str) -> (ProducerId, i16) {
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = Some(TransactionalId(StrBytes::from_string(id.to_string())));
    req.transaction_timeout_ms = 60000;
    req.producer_id = ProducerId(-1);
    req.producer_epoch = -1;
    let r: InitProducerIdResponse = c.call(ApiKey::InitProducerId, 4, &req).await;
    assert_eq!(r.error_code, 0, "InitProducerId for {id}");
    (r.producer_id, r.producer_epoch)
}

/// AddPartitionsToTxn v3 of partition rt-0.
async fn add_partition(c: &mut AsyncClient, id: &str, pid: ProducerId, epoch: i16) {
    let mut topic = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
    topic.name = name("rt");
    topic.partitions = vec![0];
    let mut req = AddPartitionsToTxnRequest::default();
    req.v3_and_below_transactional_id = TransactionalId(StrBytes::from_string(id.to_string()));
    req.v3_and_below_producer_id = pid;
    req.v3_and_below_producer_epoch = epoch;
    req.v3_and_below_topics = vec![topic];
    let r: AddPartitionsToTxnResponse = c.call(ApiKey::AddPartitionsToTxn, 3, &req).await;
    assert_eq!(r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code, 0);
}

/// EndTxn v3.
async fn end_txn_v3(c: &mut AsyncClient, id: &str, pid: ProducerId, epoch: i16, commit: bool) {
    let mut req = EndTxnRequest::default();
    req.transactional_id = TransactionalId(StrBytes::from_string(id.to_string()));
    req.producer_id = pid;
    req.producer_epoch = epoch;
    req.committed = commit;
    let r: EndTxnResponse = c.call(ApiKey::EndTxn, 3, &req).await;
    assert_eq!(r.error_code, 0, "EndTxn for {id}");
}
