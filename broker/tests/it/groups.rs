//! Group coordinator rules at the wire level: error codes of the classic protocol (KIP-394 member
//! ids, generations, unknown members, fencing), offset retention for empty groups, and committed
//! offsets removed with their topic and durable across restarts.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_testkit::broker::{connect, start_in_process};
use sluice_testkit::client::AsyncClient;
use sluice_testkit::requests::{create_topic, name};

fn gid(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.to_string()))
}

async fn create(c: &mut AsyncClient, topic: &str) {
    assert_eq!(create_topic(c, topic, 2, &[]).await.topics[0].error_code, 0);
}

async fn commit(c: &mut AsyncClient, group: &str, topic: &str, offset: i64, generation: i32, member: &str) -> i16 {
    let mut req = OffsetCommitRequest::default();
    req.group_id = gid(group);
    req.generation_id_or_member_epoch = generation;
    req.member_id = StrBytes::from_string(member.to_string());
    let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = name(topic);
    let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
    p.committed_offset = offset;
    t.partitions.push(p);
    req.topics.push(t);
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &req).await;
    r.topics[0].partitions[0].error_code
}

async fn fetch(c: &mut AsyncClient, group: &str, topic: &str) -> i64 {
    let mut req = OffsetFetchRequest::default();
    req.group_id = gid(group);
    let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
    t.name = name(topic);
    t.partition_indexes = vec![0];
    req.topics = Some(vec![t]);
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &req).await;
    r.topics[0].partitions[0].committed_offset
}

fn join_req(group: &str, member: &str) -> JoinGroupRequest {
    let mut req = JoinGroupRequest::default();
    req.group_id = gid(group);
    req.session_timeout_ms = 10_000;
    req.rebalance_timeout_ms = 10_000;
    req.member_id = StrBytes::from_string(member.to_string());
    req.protocol_type = StrBytes::from_static_str("consumer");
    let mut p = join_group_request::JoinGroupRequestProtocol::default();
    p.name = StrBytes::from_static_str("range");
    req.protocols.push(p);
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_protocol_error_codes() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(
        dir.path(),
        &[("group.initial.rebalance.delay.ms", "0"), ("offsets.topic.num.partitions", "3")],
    )
    .await;
    let mut c = connect(&broker).await;
    create(&mut c, "gt").await;
    // KIP-394: first join gets MEMBER_ID_REQUIRED and the id to use.
    let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 6, &join_req("g1", "")).await;
    assert_eq!(r.error_code, 79);
    let member = r.member_id.to_string();
    let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 6, &join_req("g1", &member)).await;
    assert_eq!((r.error_code, r.generation_id), (0, 1));
    // An unknown member id is refused.
    let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 6, &join_req("g1", "nobody")).await;
    assert_eq!(r.error_code, 25, "UNKNOWN_MEMBER_ID");
    // A session timeout outside the broker's bounds.
    let mut bad = join_req("g1", "");
    bad.session_timeout_ms = 10;
    let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 6, &bad).await;
    assert_eq!(r.error_code, 26, "INVALID_SESSION_TIMEOUT");
    // A different protocol type cannot join.
    let mut other = join_req("g1", "");
    other.protocol_type = StrBytes::from_static_str("connect");
    let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 6, &other).await;
    assert_eq!(r.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");
    // Sync with a wrong generation, then the right one.
    let mut sync = SyncGroupRequest::default();
    sync.group_id = gid("g1");
    sync.generation_id = 7;
    sync.member_id = StrBytes::from_string(member.clone());
    let r: SyncGroupResponse = c.call(ApiKey::SyncGroup, 4, &sync).await;
    assert_eq!(r.error_code, 22, "ILLEGAL_GENERATION");
    sync.generation_id = 1;
    let r: SyncGroupResponse = c.call(ApiKey::SyncGroup, 4, &sync).await;
    assert_eq!(r.error_code, 0);
    // Commits: wrong generation, unknown member, then a good one.
    assert_eq!(commit(&mut c, "g1", "gt", 5, 9, &member).await, 22);
    assert_eq!(commit(&mut c, "g1", "gt", 5, 1, "stranger").await, 25);
    assert_eq!(commit(&mut c, "g1", "gt", 5, 1, &member).await, 0);
    assert_eq!(commit(&mut c, "g1", "no-such-topic", 5, 1, &member).await, 3);
    assert_eq!(fetch(&mut c, "g1", "gt").await, 5);
    // A non-empty group cannot be deleted; heartbeat with a stale generation is refused.
    let mut hb = HeartbeatRequest::default();
    hb.group_id = gid("g1");
    hb.generation_id = 0;
    hb.member_id = StrBytes::from_string(member.clone());
    let r: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &hb).await;
    assert_eq!(r.error_code, 22);
    let mut del = DeleteGroupsRequest::default();
    del.groups_names = vec![gid("g1"), gid("never-existed")];
    let r: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, 2, &del).await;
    assert_eq!(r.results.iter().map(|r| r.error_code).collect::<Vec<_>>(), vec![68, 69]);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_expire_with_retention_and_go_with_their_topic() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[("offsets.topic.num.partitions", "3")]).await;
    let mut c = connect(&broker).await;
    create(&mut c, "keep").await;
    create(&mut c, "gone").await;
    assert_eq!(commit(&mut c, "standalone", "keep", 11, -1, "").await, 0);
    assert_eq!(commit(&mut c, "standalone", "gone", 22, -1, "").await, 0);
    // Deleting a topic removes its committed offsets; a new topic of the same name starts clean.
    let mut del = DeleteTopicsRequest::default();
    del.topic_names.push(name("gone"));
    let _: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 5, &del).await;
    create(&mut c, "gone").await;
    assert_eq!(fetch(&mut c, "standalone", "gone").await, -1);
    assert_eq!(fetch(&mut c, "standalone", "keep").await, 11);
    // Not yet expired one day later; expired after the default 7 days.
    let now = sluice::handlers::now_ms();
    broker.broker().groups.expire_offsets_at(now + 24 * 3600 * 1000);
    assert_eq!(fetch(&mut c, "standalone", "keep").await, 11);
    broker.broker().groups.expire_offsets_at(now + 8 * 24 * 3600 * 1000);
    assert_eq!(fetch(&mut c, "standalone", "keep").await, -1);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_and_expiry_are_durable_across_restarts() {
    let dir = tempfile::tempdir().expect("tmp");
    let overrides = [("offsets.topic.num.partitions", "3")];
    let broker = start_in_process(dir.path(), &overrides).await;
    let mut c = connect(&broker).await;
    create(&mut c, "d").await;
    for (g, off) in [("a", 1), ("b", 2), ("c", 3)] {
        assert_eq!(commit(&mut c, g, "d", off, -1, "").await, 0);
    }
    assert_eq!(commit(&mut c, "a", "d", 10, -1, "").await, 0);
    let mut del = DeleteGroupsRequest::default();
    del.groups_names = vec![gid("b")];
    let r: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, 2, &del).await;
    assert_eq!(r.results[0].error_code, 0);
    broker.shutdown().await.expect("shutdown");
    let broker = start_in_process(dir.path(), &overrides).await;
    let mut c = connect(&broker).await;
    assert_eq!(fetch(&mut c, "a", "d").await, 10, "latest commit wins after replay");
    assert_eq!(fetch(&mut c, "b", "d").await, -1, "deleted group stays deleted");
    assert_eq!(fetch(&mut c, "c", "d").await, 3);
    let r: ListGroupsResponse = c.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default()).await;
    let mut ids: Vec<String> = r.groups.iter().map(|g| g.group_id.0.to_string()).collect();
    ids.sort();
    assert_eq!(ids, vec!["a".to_string(), "c".to_string()]);
    broker.shutdown().await.expect("shutdown");
}
