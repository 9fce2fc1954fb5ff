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
        ("group.initial.rebalance.delay.ms", "0"),
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
    let mut members: std::collections::HashMap<String, (String, i32)> = Default::default();
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
                    let batches: Vec<_> =
                        sluice_protocol::batch::BatchIter::new(records).collect::<Result<_, _>>().expect("batches");
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
                ApiKey::FindCoordinator => {
                    let mut req = FindCoordinatorRequest::default();
                    if v >= 4 {
                        req.coordinator_keys = vec![StrBytes::from_static_str("rt-group")];
                    } else {
                        req.key = StrBytes::from_static_str("rt-group");
                    }
                    let r: FindCoordinatorResponse = c.call(*key, v, &req).await;
                    if v >= 4 {
                        assert_eq!(r.coordinators[0].error_code, 0);
                        assert_eq!(r.coordinators[0].node_id.0, 1);
                    } else {
                        assert_eq!((r.error_code, r.node_id.0), (0, 1));
                    }
                }
                ApiKey::JoinGroup => {
                    // A fresh group per version: join (v4+ first gets MEMBER_ID_REQUIRED), then
                    // sync, heartbeat and leave below use the same group at matching versions.
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
                    let mut r: JoinGroupResponse = c.call(*key, v, &req).await;
                    if v >= 4 {
                        assert_eq!(r.error_code, 79, "MEMBER_ID_REQUIRED");
                        req.member_id = r.member_id.clone();
                        r = c.call(*key, v, &req).await;
                    }
                    assert_eq!(r.error_code, 0, "join v{v}");
                    assert_eq!(r.generation_id, 1);
                    assert_eq!(r.leader, r.member_id);
                    assert_eq!(r.members.len(), 1);
                    members.insert(group, (r.member_id.to_string(), r.generation_id));
                }
                ApiKey::SyncGroup => {
                    let group = format!("rt-group-{}", v.min(9));
                    let (member, generation) = members[&group].clone();
                    let mut req = SyncGroupRequest::default();
                    req.group_id = GroupId(StrBytes::from_string(group));
                    req.generation_id = generation;
                    req.member_id = StrBytes::from_string(member.clone());
                    let mut a = sync_group_request::SyncGroupRequestAssignment::default();
                    a.member_id = StrBytes::from_string(member);
                    a.assignment = bytes::Bytes::from_static(b"assignment");
                    req.assignments.push(a);
                    let r: SyncGroupResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.error_code, 0, "sync v{v}");
                    assert_eq!(&r.assignment[..], b"assignment");
                }
                ApiKey::Heartbeat => {
                    let group = format!("rt-group-{v}");
                    let (member, generation) = members[&group].clone();
                    let mut req = HeartbeatRequest::default();
                    req.group_id = GroupId(StrBytes::from_string(group));
                    req.generation_id = generation;
                    req.member_id = StrBytes::from_string(member);
                    let r: HeartbeatResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.error_code, 0, "heartbeat v{v}");
                }
                ApiKey::OffsetCommit => {
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
                    let r: OffsetCommitResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.topics[0].partitions[0].error_code, 0, "commit v{v}");
                }
                ApiKey::OffsetFetch => {
                    let mut req = OffsetFetchRequest::default();
                    if v >= 8 {
                        let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
                        g.group_id = GroupId(StrBytes::from_static_str("rt-commits"));
                        let mut t = offset_fetch_request::OffsetFetchRequestTopics::default();
                        t.name = name("rt");
                        t.partition_indexes = vec![0];
                        g.topics = Some(vec![t]);
                        req.groups.push(g);
                        let r: OffsetFetchResponse = c.call(*key, v, &req).await;
                        assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 9, "fetch v{v}");
                    } else {
                        req.group_id = GroupId(StrBytes::from_static_str("rt-commits"));
                        let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
                        t.name = name("rt");
                        t.partition_indexes = vec![0];
                        req.topics = Some(vec![t]);
                        let r: OffsetFetchResponse = c.call(*key, v, &req).await;
                        assert_eq!(r.topics[0].partitions[0].committed_offset, 9, "fetch v{v}");
                        assert_eq!(r.topics[0].partitions[0].metadata.as_deref(), Some("meta"));
                    }
                }
                ApiKey::ListGroups => {
                    let req = ListGroupsRequest::default();
                    let r: ListGroupsResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.error_code, 0);
                    assert!(r.groups.iter().any(|g| g.group_id.0.as_str() == "rt-group-0"), "list v{v}");
                }
                ApiKey::DescribeGroups => {
                    let mut req = DescribeGroupsRequest::default();
                    // Joined at JoinGroup v9 and never synced (SyncGroup stops at v5).
                    req.groups = vec![GroupId(StrBytes::from_static_str("rt-group-9"))];
                    let r: DescribeGroupsResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.groups[0].error_code, 0);
                    assert_eq!(r.groups[0].group_state.as_str(), "CompletingRebalance", "describe v{v}");
                    assert_eq!(r.groups[0].members.len(), 1);
                }
                ApiKey::LeaveGroup => {
                    let group = format!("rt-group-{}", v);
                    let (member, _) = members[&group].clone();
                    let mut req = LeaveGroupRequest::default();
                    req.group_id = GroupId(StrBytes::from_string(group));
                    if v >= 3 {
                        let mut m = leave_group_request::MemberIdentity::default();
                        m.member_id = StrBytes::from_string(member);
                        req.members.push(m);
                    } else {
                        req.member_id = StrBytes::from_string(member);
                    }
                    let r: LeaveGroupResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.error_code, 0, "leave v{v}");
                    if v >= 3 {
                        assert_eq!(r.members[0].error_code, 0);
                    }
                }
                ApiKey::DeleteGroups => {
                    let mut req = DeleteGroupsRequest::default();
                    req.groups_names = vec![GroupId(StrBytes::from_string(format!("rt-group-{v}")))];
                    let r: DeleteGroupsResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.results[0].error_code, 0, "delete group v{v}");
                }
                ApiKey::OffsetDelete => {
                    let mut req = OffsetDeleteRequest::default();
                    req.group_id = GroupId(StrBytes::from_static_str("rt-commits"));
                    let mut t = offset_delete_request::OffsetDeleteRequestTopic::default();
                    t.name = name("rt");
                    let mut p = offset_delete_request::OffsetDeleteRequestPartition::default();
                    p.partition_index = 0;
                    t.partitions.push(p);
                    req.topics.push(t);
                    let r: OffsetDeleteResponse = c.call(*key, v, &req).await;
                    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
                }
                ApiKey::DescribeConfigs => {
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
                    let r: DescribeConfigsResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.results[0].error_code, 0, "v{v}");
                    assert_eq!(r.results[0].configs.len(), 1);
                    assert_eq!(r.results[0].configs[0].value.as_deref(), Some("604800000"));
                    assert!(!r.results[0].configs[0].synonyms.is_empty());
                    assert_eq!(r.results[1].error_code, 0, "v{v}");
                    assert!(r.results[1].configs.iter().any(|c| c.name.as_str() == "log.retention.check.interval.ms"));
                }
                ApiKey::AlterConfigs => {
                    let mut req = AlterConfigsRequest::default();
                    let mut res = alter_configs_request::AlterConfigsResource::default();
                    res.resource_type = 2;
                    res.resource_name = StrBytes::from_static_str("rt");
                    let mut cfg = alter_configs_request::AlterableConfig::default();
                    cfg.name = StrBytes::from_static_str("retention.ms");
                    cfg.value = Some(StrBytes::from_string(format!("{}", 86_400_000 + i64::from(v))));
                    res.configs.push(cfg);
                    req.resources.push(res);
                    let r: AlterConfigsResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.responses[0].error_code, 0, "v{v}: {:?}", r.responses[0].error_message);
                }
                ApiKey::IncrementalAlterConfigs => {
                    let mut req = IncrementalAlterConfigsRequest::default();
                    let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
                    res.resource_type = 2;
                    res.resource_name = StrBytes::from_static_str("rt");
                    let mut cfg = incremental_alter_configs_request::AlterableConfig::default();
                    cfg.name = StrBytes::from_static_str("retention.ms");
                    cfg.config_operation = 1; // DELETE
                    res.configs.push(cfg);
                    req.resources.push(res);
                    let r: IncrementalAlterConfigsResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.responses[0].error_code, 0, "v{v}: {:?}", r.responses[0].error_message);
                }
                ApiKey::CreatePartitions => {
                    if v == *min {
                        let mut ct = CreateTopicsRequest::default();
                        let mut t = create_topics_request::CreatableTopic::default();
                        t.name = name("rt-parts");
                        t.num_partitions = 1;
                        t.replication_factor = 1;
                        ct.topics.push(t);
                        let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &ct).await;
                        assert_eq!(r.topics[0].error_code, 0);
                    }
                    let mut req = CreatePartitionsRequest::default();
                    let mut t = create_partitions_request::CreatePartitionsTopic::default();
                    t.name = name("rt-parts");
                    t.count = i32::from(v) + 2;
                    req.topics.push(t);
                    req.timeout_ms = 5000;
                    let r: CreatePartitionsResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.results[0].error_code, 0, "v{v}: {:?}", r.results[0].error_message);
                }
                ApiKey::DeleteRecords => {
                    let mut req = DeleteRecordsRequest::default();
                    let mut t = delete_records_request::DeleteRecordsTopic::default();
                    t.name = name("rt");
                    let mut p = delete_records_request::DeleteRecordsPartition::default();
                    p.partition_index = 0;
                    p.offset = 0;
                    t.partitions.push(p);
                    req.topics.push(t);
                    req.timeout_ms = 5000;
                    let r: DeleteRecordsResponse = c.call(*key, v, &req).await;
                    let p = &r.topics[0].partitions[0];
                    assert_eq!((p.error_code, p.low_watermark), (0, 0), "v{v}");
                }
                ApiKey::InitProducerId => {
                    let mut req = InitProducerIdRequest::default();
                    req.transactional_id = None;
                    req.transaction_timeout_ms = 60000;
                    req.producer_id = ProducerId(-1);
                    req.producer_epoch = -1;
                    let r: InitProducerIdResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.error_code, 0, "v{v}");
                    assert!(r.producer_id.0 >= 0);
                    assert_eq!(r.producer_epoch, 0);
                    if v >= 3 {
                        // KIP-360: the same id with the next epoch.
                        req.producer_id = r.producer_id;
                        req.producer_epoch = 0;
                        let b: InitProducerIdResponse = c.call(*key, v, &req).await;
                        assert_eq!((b.error_code, b.producer_id, b.producer_epoch), (0, r.producer_id, 1), "v{v}");
                    }
                }
                ApiKey::DescribeLogDirs => {
                    let mut req = DescribeLogDirsRequest::default();
                    req.topics = None; // null = every topic
                    let r: DescribeLogDirsResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.results.len(), 1, "v{v}");
                    assert_eq!(r.results[0].error_code, 0);
                    assert!(r.results[0].topics.iter().any(|t| t.name.0.as_str() == "rt"));
                }
                ApiKey::ConsumerGroupHeartbeat => {
                    // KIP-848 join: v0 lets the broker pick the member id, v1 sends its own.
                    let mut req = ConsumerGroupHeartbeatRequest::default();
                    req.group_id = GroupId(StrBytes::from_string(format!("rt-cg-{v}")));
                    if v >= 1 {
                        req.member_id = StrBytes::from_string(format!("rt-cg-member-{v}"));
                    }
                    req.member_epoch = 0;
                    req.rebalance_timeout_ms = 30000;
                    req.subscribed_topic_names = Some(vec![name("rt")]);
                    req.topic_partitions = Some(vec![]);
                    let r: ConsumerGroupHeartbeatResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.error_code, 0, "cg heartbeat v{v}: {:?}", r.error_message);
                    assert_eq!(r.member_epoch, 1);
                    assert!(r.heartbeat_interval_ms > 0);
                    let a = r.assignment.expect("assignment on join");
                    assert_eq!(a.topic_partitions.len(), 1);
                    assert_eq!(
                        (a.topic_partitions[0].topic_id, a.topic_partitions[0].partitions.clone()),
                        (topic_id, vec![0])
                    );
                    let member_id = r.member_id.expect("member id");
                    if v >= 1 {
                        assert_eq!(member_id.as_str(), format!("rt-cg-member-{v}"));
                    }
                    // A steady heartbeat: same epoch, no assignment.
                    let mut hb = ConsumerGroupHeartbeatRequest::default();
                    hb.group_id = req.group_id.clone();
                    hb.member_id = member_id;
                    hb.member_epoch = 1;
                    hb.rebalance_timeout_ms = -1;
                    let r: ConsumerGroupHeartbeatResponse = c.call(*key, v, &hb).await;
                    assert_eq!((r.error_code, r.member_epoch), (0, 1), "cg heartbeat v{v}");
                    assert!(r.assignment.is_none());
                    // An unknown member.
                    hb.member_id = StrBytes::from_static_str("nobody");
                    let r: ConsumerGroupHeartbeatResponse = c.call(*key, v, &hb).await;
                    assert_eq!(r.error_code, 25, "UNKNOWN_MEMBER_ID v{v}");
                }
                ApiKey::ConsumerGroupDescribe => {
                    let mut req = ConsumerGroupDescribeRequest::default();
                    req.group_ids = vec![
                        GroupId(StrBytes::from_static_str("rt-cg-1")),
                        GroupId(StrBytes::from_static_str("rt-group-0")),
                    ];
                    let r: ConsumerGroupDescribeResponse = c.call(*key, v, &req).await;
                    let g = &r.groups[0];
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
                    assert_eq!(r.groups[1].error_code, 69, "GROUP_ID_NOT_FOUND v{v}");
                }
                ApiKey::AddPartitionsToTxn => {
                    let id = format!("rt-txn-apt-{v}");
                    let (pid, epoch) = init_txn(&mut c, &id).await;
                    let mut topic = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
                    topic.name = name("rt");
                    topic.partitions = vec![0];
                    let mut req = AddPartitionsToTxnRequest::default();
                    if v <= 3 {
                        req.v3_and_below_transactional_id = TransactionalId(StrBytes::from_string(id.clone()));
                        req.v3_and_below_producer_id = pid;
                        req.v3_and_below_producer_epoch = epoch;
                        req.v3_and_below_topics = vec![topic];
                        let r: AddPartitionsToTxnResponse = c.call(*key, v, &req).await;
                        let p = &r.results_by_topic_v3_and_below[0].results_by_partition[0];
                        assert_eq!((p.partition_index, p.partition_error_code), (0, 0), "v{v}");
                    } else {
                        let mut t = add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default();
                        t.transactional_id = TransactionalId(StrBytes::from_string(id.clone()));
                        t.producer_id = pid;
                        t.producer_epoch = epoch;
                        t.verify_only = true;
                        t.topics = vec![topic];
                        req.transactions = vec![t.clone()];
                        let r: AddPartitionsToTxnResponse = c.call(*key, v, &req).await;
                        let p = &r.results_by_transaction[0].topic_results[0].results_by_partition[0];
                        assert_eq!(p.partition_error_code, 48, "INVALID_TXN_STATE: not in the transaction yet, v{v}");
                        t.verify_only = false;
                        req.transactions = vec![t];
                        let r: AddPartitionsToTxnResponse = c.call(*key, v, &req).await;
                        let p = &r.results_by_transaction[0].topic_results[0].results_by_partition[0];
                        assert_eq!(p.partition_error_code, 0, "v{v}");
                    }
                    end_txn(&mut c, &id, pid, epoch, false).await;
                }
                ApiKey::AddOffsetsToTxn => {
                    let id = format!("rt-txn-aot-{v}");
                    let (pid, epoch) = init_txn(&mut c, &id).await;
                    let mut req = AddOffsetsToTxnRequest::default();
                    req.transactional_id = TransactionalId(StrBytes::from_string(id.clone()));
                    req.producer_id = pid;
                    req.producer_epoch = epoch;
                    req.group_id = GroupId(StrBytes::from_string(format!("rt-txn-group-{v}")));
                    let r: AddOffsetsToTxnResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.error_code, 0, "v{v}");
                    req.producer_epoch = epoch - 1;
                    let r: AddOffsetsToTxnResponse = c.call(*key, v, &req).await;
                    let fenced = if v >= 2 { 90 } else { 47 };
                    assert_eq!(r.error_code, fenced, "PRODUCER_FENCED / INVALID_PRODUCER_EPOCH v{v}");
                    end_txn(&mut c, &id, pid, epoch, false).await;
                }
                ApiKey::EndTxn => {
                    let id = format!("rt-txn-end-{v}");
                    let (pid, epoch) = init_txn(&mut c, &id).await;
                    add_partition(&mut c, &id, pid, epoch).await;
                    let mut req = EndTxnRequest::default();
                    req.transactional_id = TransactionalId(StrBytes::from_string(id));
                    req.producer_id = pid;
                    req.producer_epoch = epoch;
                    req.committed = true;
                    let r: EndTxnResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.error_code, 0, "v{v}");
                    // A retry of the same EndTxn succeeds; the opposite outcome is INVALID_TXN_STATE.
                    let r: EndTxnResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.error_code, 0, "retry v{v}");
                    req.committed = false;
                    let r: EndTxnResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.error_code, 48, "v{v}");
                }
                ApiKey::TxnOffsetCommit => {
                    let id = format!("rt-txn-toc-{v}");
                    let group = format!("rt-txn-toc-group-{v}");
                    let (pid, epoch) = init_txn(&mut c, &id).await;
                    let mut add = AddOffsetsToTxnRequest::default();
                    add.transactional_id = TransactionalId(StrBytes::from_string(id.clone()));
                    add.producer_id = pid;
                    add.producer_epoch = epoch;
                    add.group_id = GroupId(StrBytes::from_string(group.clone()));
                    let r: AddOffsetsToTxnResponse = c.call(ApiKey::AddOffsetsToTxn, 0, &add).await;
                    assert_eq!(r.error_code, 0);
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
                    let r: TxnOffsetCommitResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.topics[0].partitions[0].error_code, 0, "v{v}");
                    end_txn(&mut c, &id, pid, epoch, true).await;
                    let mut of = OffsetFetchRequest::default();
                    of.group_id = GroupId(StrBytes::from_string(group));
                    of.topics = None; // every committed offset of the group
                    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 2, &of).await;
                    assert_eq!(r.topics[0].partitions[0].committed_offset, 1, "committed with the transaction, v{v}");
                }
                ApiKey::DescribeTransactions => {
                    let mut req = DescribeTransactionsRequest::default();
                    req.transactional_ids = vec![
                        TransactionalId(StrBytes::from_static_str("rt-txn-end-0")),
                        TransactionalId(StrBytes::from_static_str("rt-nobody")),
                    ];
                    let r: DescribeTransactionsResponse = c.call(*key, v, &req).await;
                    let s = &r.transaction_states[0];
                    assert_eq!((s.error_code, s.transaction_state.as_str()), (0, "CompleteCommit"), "v{v}");
                    assert_eq!(s.transaction_timeout_ms, 60000);
                    assert_eq!(r.transaction_states[1].error_code, 105, "TRANSACTIONAL_ID_NOT_FOUND v{v}");
                }
                ApiKey::ListTransactions => {
                    let mut req = ListTransactionsRequest::default();
                    req.state_filters =
                        vec![StrBytes::from_static_str("CompleteCommit"), StrBytes::from_static_str("Bogus")];
                    req.duration_filter = -1;
                    if v >= 2 {
                        req.transactional_id_pattern = Some(StrBytes::from_static_str("rt-txn-end-.*"));
                    }
                    let r: ListTransactionsResponse = c.call(*key, v, &req).await;
                    assert_eq!(r.error_code, 0, "v{v}");
                    assert_eq!(r.unknown_state_filters, vec![StrBytes::from_static_str("Bogus")]);
                    let ids: Vec<&str> = r.transaction_states.iter().map(|s| s.transactional_id.0.as_str()).collect();
                    assert!(ids.contains(&"rt-txn-end-0"), "v{v}: {ids:?}");
                    assert!(r.transaction_states.iter().all(|s| s.transaction_state.as_str() == "CompleteCommit"));
                    if v >= 2 {
                        assert!(ids.iter().all(|i| i.starts_with("rt-txn-end-")), "v{v}: {ids:?}");
                    }
                }
                ApiKey::DescribeProducers => {
                    let mut req = DescribeProducersRequest::default();
                    let mut t = describe_producers_request::TopicRequest::default();
                    t.name = name("rt");
                    t.partition_indexes = vec![0, 7];
                    req.topics = vec![t];
                    let r: DescribeProducersResponse = c.call(*key, v, &req).await;
                    let p = &r.topics[0].partitions[0];
                    assert_eq!(p.error_code, 0, "v{v}");
                    assert!(!p.active_producers.is_empty(), "transaction markers left producer state");
                    assert!(p.active_producers.iter().all(|s| s.current_txn_start_offset == -1), "no open transaction");
                    assert_eq!(r.topics[0].partitions[1].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION v{v}");
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

/// InitProducerId v4 for a transactional id: (producer id, epoch).
async fn init_txn(c: &mut Client, id: &str) -> (ProducerId, i16) {
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
async fn add_partition(c: &mut Client, id: &str, pid: ProducerId, epoch: i16) {
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
async fn end_txn(c: &mut Client, id: &str, pid: ProducerId, epoch: i16, commit: bool) {
    let mut req = EndTxnRequest::default();
    req.transactional_id = TransactionalId(StrBytes::from_string(id.to_string()));
    req.producer_id = pid;
    req.producer_epoch = epoch;
    req.committed = commit;
    let r: EndTxnResponse = c.call(ApiKey::EndTxn, 3, &req).await;
    assert_eq!(r.error_code, 0, "EndTxn for {id}");
}
