//! The one authorization point: a broker started with its own authorizer asks it, for every
//! request, the question Kafka's `KafkaApis` asks, and answers a refusal with Kafka's code while
//! the allowed part of the same request still goes through.

use std::sync::{Arc, Mutex};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice::authz::{AclOperation, Action, Authorizer, ResourceType};
use sluice_testkit::batch::sluice_batch_one;
use sluice_testkit::broker::connect;
use sluice_testkit::requests::{create_topic, fetch_request, name, produce_request};

/// Refuses everything named `secret…`, creating topics through the cluster resource (so
/// creation is decided per topic) and altering the cluster, and records every question it was
/// asked.
#[derive(Default)]
struct DenySecrets {
    asked: Mutex<Vec<(String, AclOperation, ResourceType, String)>>,
}

impl Authorizer for DenySecrets {
    fn authorize(&self, action: &Action<'_>) -> bool {
        self.asked.lock().unwrap().push((
            format!("{}@{}", action.principal, action.host),
            action.operation,
            action.resource.resource_type(),
            action.resource.name().to_string(),
        ));
        let cluster_create =
            action.operation == AclOperation::Create && action.resource.resource_type() == ResourceType::Cluster;
        let cluster_alter =
            action.operation == AclOperation::Alter && action.resource.resource_type() == ResourceType::Cluster;
        !action.resource.name().starts_with("secret") && !cluster_create && !cluster_alter
    }
}

#[track_caller]
fn code(c: i16) -> ResponseError {
    match ResponseError::try_from_code(c) {
        Some(e) => e,
        None => panic!("error code {c} is not an error"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_kafkas_codes_and_the_rest_of_the_request_goes_through() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().display().to_string();
    let config = sluice::Config::from_overrides(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("log.dirs", &d),
        ("metrics.listener", "none"),
    ])
    .expect("config");
    let authorizer = Arc::new(DenySecrets::default());
    let handle = sluice::server::start_with_authorizer(config, authorizer.clone()).await.expect("start");
    for topic in ["secret-topic", "open-topic"] {
        handle.broker().create_topic(topic, 1, 1, Default::default(), false).expect("create");
    }
    let mut c = connect(&handle).await;

    // Metadata: all topics hides the secret one; asking for it by name is refused.
    let mut req = MetadataRequest::default();
    req.topics = None;
    let all: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
    let names: Vec<String> = all.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect();
    assert!(names.contains(&"open-topic".to_string()), "{names:?}");
    assert!(!names.contains(&"secret-topic".to_string()), "{names:?}");
    let mut req = MetadataRequest::default();
    let mut t = metadata_request::MetadataRequestTopic::default();
    t.name = Some(name("secret-topic"));
    req.topics = Some(vec![t]);
    req.include_topic_authorized_operations = true;
    let one: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
    assert_eq!(code(one.topics[0].error_code), ResponseError::TopicAuthorizationFailed);
    assert!(one.topics[0].partitions.is_empty());

    // Produce: the secret partition is refused, the open one in the same request appended.
    let mut req = produce_request("open-topic", 0, sluice_batch_one("v"), -1);
    req.topic_data.extend(produce_request("secret-topic", 0, sluice_batch_one("v"), -1).topic_data);
    let resp: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, 0);
    assert_eq!(code(resp.responses[1].partition_responses[0].error_code), ResponseError::TopicAuthorizationFailed);
    assert_eq!(handle.broker().metadata.topic("secret-topic").map(|t| t.partitions), Some(1));

    // Fetch and ListOffsets of the secret topic.
    let fetch: FetchResponse =
        c.call(ApiKey::Fetch, 12, &fetch_request("secret-topic", 0, 0, 0, 1 << 20, 1 << 20)).await;
    assert_eq!(code(fetch.responses[0].partitions[0].error_code), ResponseError::TopicAuthorizationFailed);
    assert!(fetch.responses[0].partitions[0].records.as_ref().is_none_or(|r| r.is_empty()));
    let mut lo = ListOffsetsRequest::default();
    let mut lt = list_offsets_request::ListOffsetsTopic::default();
    lt.name = name("secret-topic");
    let mut lp = list_offsets_request::ListOffsetsPartition::default();
    lp.timestamp = -1;
    lt.partitions.push(lp);
    lo.topics.push(lt);
    let lo: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &lo).await;
    assert_eq!(code(lo.topics[0].partitions[0].error_code), ResponseError::TopicAuthorizationFailed);

    // CreateTopics and DeleteTopics: refused, and nothing changed.
    let created = create_topic(&mut c, "secret-new", 1, &[]).await;
    assert_eq!(code(created.topics[0].error_code), ResponseError::TopicAuthorizationFailed);
    assert!(handle.broker().metadata.topic("secret-new").is_none());
    let mut del = DeleteTopicsRequest::default();
    del.topic_names = vec![name("secret-topic")];
    del.timeout_ms = 5000;
    let del: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 5, &del).await;
    assert_eq!(code(del.responses[0].error_code), ResponseError::TopicAuthorizationFailed);
    assert!(handle.broker().metadata.topic("secret-topic").is_some());

    // Groups: FindCoordinator and JoinGroup of a secret group.
    let mut fc = FindCoordinatorRequest::default();
    fc.key_type = 0;
    fc.coordinator_keys = vec![StrBytes::from_static_str("secret-group"), StrBytes::from_static_str("open-group")];
    let fc: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 4, &fc).await;
    assert_eq!(code(fc.coordinators[0].error_code), ResponseError::GroupAuthorizationFailed);
    assert_eq!(fc.coordinators[1].error_code, 0);
    let mut join = JoinGroupRequest::default();
    join.group_id = GroupId(StrBytes::from_static_str("secret-group"));
    join.session_timeout_ms = 10_000;
    join.rebalance_timeout_ms = 10_000;
    join.protocol_type = StrBytes::from_static_str("consumer");
    let mut proto = join_group_request::JoinGroupRequestProtocol::default();
    proto.name = StrBytes::from_static_str("range");
    join.protocols.push(proto);
    let join: JoinGroupResponse = c.call(ApiKey::JoinGroup, 7, &join).await;
    assert_eq!(code(join.error_code), ResponseError::GroupAuthorizationFailed);

    // OffsetCommit by a simple consumer: the secret topic's partition is refused, the open one
    // committed, and OffsetFetch shows only the open one.
    let mut oc = OffsetCommitRequest::default();
    oc.group_id = GroupId(StrBytes::from_static_str("open-group"));
    oc.generation_id_or_member_epoch = -1;
    for topic in ["open-topic", "secret-topic"] {
        let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
        t.name = name(topic);
        let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
        p.committed_offset = 1;
        t.partitions.push(p);
        oc.topics.push(t);
    }
    let oc: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &oc).await;
    assert_eq!(oc.topics[0].partitions[0].error_code, 0);
    assert_eq!(code(oc.topics[1].partitions[0].error_code), ResponseError::TopicAuthorizationFailed);
    let mut of = OffsetFetchRequest::default();
    let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
    g.group_id = GroupId(StrBytes::from_static_str("open-group"));
    g.topics = None;
    of.groups.push(g);
    let of: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 8, &of).await;
    let fetched: Vec<&str> = of.groups[0].topics.iter().map(|t| t.name.0.as_str()).collect();
    assert_eq!(fetched, vec!["open-topic"]);
    assert_eq!(of.groups[0].topics[0].partitions[0].committed_offset, 1);

    // Transactions: InitProducerId for a secret transactional id.
    let mut init = InitProducerIdRequest::default();
    init.transactional_id = Some(TransactionalId(StrBytes::from_static_str("secret-txn")));
    init.transaction_timeout_ms = 10_000;
    init.producer_id = ProducerId(-1);
    init.producer_epoch = -1;
    let init: InitProducerIdResponse = c.call(ApiKey::InitProducerId, 4, &init).await;
    assert_eq!(code(init.error_code), ResponseError::TransactionalIdAuthorizationFailed);

    // DescribeConfigs of the secret topic.
    let mut dc = DescribeConfigsRequest::default();
    let mut r = describe_configs_request::DescribeConfigsResource::default();
    r.resource_type = 2;
    r.resource_name = StrBytes::from_static_str("secret-topic");
    dc.resources.push(r);
    let dc: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &dc).await;
    assert_eq!(code(dc.results[0].error_code), ResponseError::TopicAuthorizationFailed);
    assert!(dc.results[0].configs.is_empty());

    // UpdateFeatures needs ALTER on the cluster: refused at the top level, nothing changes.
    let before = handle.broker().metadata.features();
    let mut uf = UpdateFeaturesRequest::default();
    let mut u = update_features_request::FeatureUpdateKey::default();
    u.feature = StrBytes::from_static_str("transaction.version");
    u.max_version_level = 1;
    u.upgrade_type = 2;
    uf.feature_updates.push(u);
    let uf: UpdateFeaturesResponse = c.call(ApiKey::UpdateFeatures, 1, &uf).await;
    assert_eq!(code(uf.error_code), ResponseError::ClusterAuthorizationFailed);
    assert!(uf.results.is_empty());
    assert_eq!(handle.broker().metadata.features(), before);

    // Every question named the anonymous principal at the client's address.
    let asked = authorizer.asked.lock().unwrap().clone();
    assert!(asked.iter().all(|(who, ..)| who == "User:ANONYMOUS@127.0.0.1"), "{:?}", &asked[..3]);
    for expected in [
        (AclOperation::Write, ResourceType::Topic, "open-topic"),
        (AclOperation::Read, ResourceType::Topic, "secret-topic"),
        (AclOperation::Create, ResourceType::Cluster, "kafka-cluster"),
        (AclOperation::Create, ResourceType::Topic, "secret-new"),
        (AclOperation::Delete, ResourceType::Topic, "secret-topic"),
        (AclOperation::Read, ResourceType::Group, "secret-group"),
        (AclOperation::Write, ResourceType::TransactionalId, "secret-txn"),
        (AclOperation::DescribeConfigs, ResourceType::Topic, "secret-topic"),
        (AclOperation::Alter, ResourceType::Cluster, "kafka-cluster"),
    ] {
        assert!(asked.iter().any(|(_, op, ty, n)| (*op, *ty, n.as_str()) == expected), "never asked {expected:?}");
    }
    handle.shutdown().await.expect("shutdown");
}

/// Allows nothing on the cluster resource and nothing on `secret…` topics.
struct DenyClusterAndSecrets;

impl Authorizer for DenyClusterAndSecrets {
    fn authorize(&self, action: &Action<'_>) -> bool {
        action.resource.resource_type() != ResourceType::Cluster && !action.resource.name().starts_with("secret")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_admin_apis_ask_kafkas_questions() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().display().to_string();
    let config = sluice::Config::from_overrides(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("log.dirs", &d),
        ("metrics.listener", "none"),
    ])
    .expect("config");
    let handle = sluice::server::start_with_authorizer(config, Arc::new(DenyClusterAndSecrets)).await.expect("start");
    for topic in ["secret-topic", "open-topic"] {
        handle.broker().create_topic(topic, 1, 1, Default::default(), false).expect("create");
    }
    let mut c = connect(&handle).await;

    // ElectLeaders, AlterPartitionReassignments: ALTER on the cluster.
    let mut req = ElectLeadersRequest::default();
    let mut t = elect_leaders_request::TopicPartitions::default();
    t.topic = name("open-topic");
    t.partitions = vec![0];
    req.topic_partitions = Some(vec![t]);
    let resp: ElectLeadersResponse = c.call(ApiKey::ElectLeaders, 2, &req).await;
    assert_eq!(code(resp.error_code), ResponseError::ClusterAuthorizationFailed);
    assert_eq!(
        code(resp.replica_election_results[0].partition_result[0].error_code),
        ResponseError::ClusterAuthorizationFailed
    );
    let resp: ElectLeadersResponse = c.call(ApiKey::ElectLeaders, 0, &req).await;
    assert_eq!(resp.error_code, 0, "v0 has no top-level error");
    assert_eq!(
        code(resp.replica_election_results[0].partition_result[0].error_code),
        ResponseError::ClusterAuthorizationFailed
    );

    let mut req = AlterPartitionReassignmentsRequest::default();
    let mut p = alter_partition_reassignments_request::ReassignablePartition::default();
    p.replicas = Some(vec![BrokerId(1)]);
    let mut t = alter_partition_reassignments_request::ReassignableTopic::default();
    t.name = name("open-topic");
    t.partitions.push(p);
    req.topics.push(t);
    let resp: AlterPartitionReassignmentsResponse = c.call(ApiKey::AlterPartitionReassignments, 1, &req).await;
    assert_eq!(code(resp.error_code), ResponseError::ClusterAuthorizationFailed);
    assert_eq!(code(resp.responses[0].partitions[0].error_code), ResponseError::ClusterAuthorizationFailed);

    // ListPartitionReassignments, DescribeQuorum: DESCRIBE on the cluster.
    let resp: ListPartitionReassignmentsResponse =
        c.call(ApiKey::ListPartitionReassignments, 0, &ListPartitionReassignmentsRequest::default()).await;
    assert_eq!(code(resp.error_code), ResponseError::ClusterAuthorizationFailed);
    let mut req = DescribeQuorumRequest::default();
    let mut t = describe_quorum_request::TopicData::default();
    t.topic_name = name("__cluster_metadata");
    t.partitions.push(describe_quorum_request::PartitionData::default());
    req.topics.push(t);
    let resp: DescribeQuorumResponse = c.call(ApiKey::DescribeQuorum, 2, &req).await;
    assert_eq!(code(resp.error_code), ResponseError::ClusterAuthorizationFailed);
    assert!(resp.topics.is_empty());

    // DescribeTopicPartitions: DESCRIBE per topic; all topics hides the secret one.
    let mut req = DescribeTopicPartitionsRequest::default();
    req.response_partition_limit = 2000;
    let resp: DescribeTopicPartitionsResponse = c.call(ApiKey::DescribeTopicPartitions, 0, &req).await;
    let names: Vec<String> = resp.topics.iter().map(|t| t.name.as_ref().unwrap().0.to_string()).collect();
    assert!(names.contains(&"open-topic".to_string()) && !names.contains(&"secret-topic".to_string()), "{names:?}");
    for t in ["secret-topic", "open-topic"] {
        let mut tr = describe_topic_partitions_request::TopicRequest::default();
        tr.name = name(t);
        req.topics.push(tr);
    }
    let resp: DescribeTopicPartitionsResponse = c.call(ApiKey::DescribeTopicPartitions, 0, &req).await;
    assert_eq!(resp.topics[0].name.as_ref().unwrap().0.as_str(), "open-topic");
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(resp.topics[1].name.as_ref().unwrap().0.as_str(), "secret-topic");
    assert_eq!(code(resp.topics[1].error_code), ResponseError::TopicAuthorizationFailed);
    assert!(resp.topics[1].topic_id.is_nil());

    // OffsetForLeaderEpoch: without CLUSTER_ACTION, DESCRIBE per topic.
    let mut req = OffsetForLeaderEpochRequest::default();
    for t in ["secret-topic", "open-topic"] {
        let mut tr = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
        tr.topic = name(t);
        tr.partitions.push(offset_for_leader_epoch_request::OffsetForLeaderPartition::default());
        req.topics.push(tr);
    }
    let resp: OffsetForLeaderEpochResponse = c.call(ApiKey::OffsetForLeaderEpoch, 4, &req).await;
    assert_eq!(resp.topics[0].topic.0.as_str(), "open-topic");
    assert_eq!((resp.topics[0].partitions[0].error_code, resp.topics[0].partitions[0].end_offset), (0, 0));
    assert_eq!(resp.topics[1].topic.0.as_str(), "secret-topic");
    assert_eq!(code(resp.topics[1].partitions[0].error_code), ResponseError::TopicAuthorizationFailed);
    handle.shutdown().await.expect("shutdown");
}
