//! KIP-848 consumer groups (`group.protocol=consumer`) with librdkafka against Sluice's
//! server-side assignment: members joining and leaving with complete, disjoint assignments and
//! every record consumed exactly once across sync commits; ConsumerGroupDescribe, ListGroups,
//! DescribeGroups and classic JoinGroup on such a group through the raw protocol; OffsetCommit's
//! member-epoch checks; a regex subscription picking up a topic created later; and members,
//! epochs and assignments surviving a broker restart.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use sluice_testkit::client::BlockingClient;
use sluice_testkit::kafka_protocol::messages::*;
use sluice_testkit::kafka_protocol::protocol::StrBytes;
use sluice_tests::*;

/// Broker settings: no initial delay, few offsets partitions, and fast KIP-848 heartbeats so
/// reconciliation (which advances on each member's heartbeat) takes well under a second.
const BROKER: &[(&str, &str)] = &[
    ("group.initial.rebalance.delay.ms", "0"),
    ("offsets.topic.num.partitions", "4"),
    ("group.consumer.heartbeat.interval.ms", "300"),
    ("group.consumer.session.timeout.ms", "6000"),
];

fn kip848_consumer(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c = client_config(bootstrap);
    c.set("group.id", group)
        .set("group.protocol", "consumer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("consumer")
}

fn assigned(c: &BaseConsumer) -> BTreeSet<(String, i32)> {
    c.assignment()
        .map(|tpl| tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect())
        .unwrap_or_default()
}

/// Polls every consumer, committing each record synchronously, until `done` holds.
/// Returns every consumed record value.
fn drive(
    consumers: &[&BaseConsumer],
    timeout: Duration,
    mut done: impl FnMut(&[&BaseConsumer]) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        for c in consumers {
            if let Some(r) = c.poll(Duration::from_millis(20)) {
                match r {
                    Ok(m) => {
                        out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
                        c.commit_message(&m, CommitMode::Sync).expect("commit");
                    }
                    Err(e) => println!("poll error (retried by the client): {e}"),
                }
            }
        }
        if done(consumers) {
            return out;
        }
    }
    panic!(
        "condition not reached within {timeout:?}; assignments: {:?}",
        consumers.iter().map(|c| assigned(c)).collect::<Vec<_>>()
    );
}

/// `n` members together hold all `partitions` partitions of `topic`, disjointly, `partitions / n`
/// (rounded up or down) each.
fn balanced(cs: &[&BaseConsumer], topic: &str, partitions: i32) -> bool {
    let sets: Vec<BTreeSet<(String, i32)>> = cs.iter().map(|c| assigned(c)).collect();
    let total: usize = sets.iter().map(|s| s.len()).sum();
    let union: BTreeSet<&(String, i32)> = sets.iter().flatten().collect();
    let (lo, hi) = (partitions as usize / cs.len(), (partitions as usize).div_ceil(cs.len()));
    total == partitions as usize
        && union.len() == partitions as usize
        && union.iter().all(|(t, _)| t == topic)
        && sets.iter().all(|s| s.len() >= lo && s.len() <= hi)
}

async fn produce_tagged(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    per_partition: usize,
    tag: &str,
) -> BTreeSet<String> {
    let p = producer(bootstrap, &[]);
    let mut records = Vec::new();
    let mut all = BTreeSet::new();
    for part in 0..partitions {
        for i in 0..per_partition {
            let v = format!("{tag}-{part}-{i}");
            all.insert(v.clone());
            records.push(TestRecord::value(v).to_partition(part));
        }
    }
    produce_ok(&p, topic, &records).await;
    all
}

/// Every expected value consumed, none twice.
fn assert_exactly_once(seen: &[String], expected: &BTreeSet<String>) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in seen {
        *counts.entry(v.as_str()).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "consumed more than once: {dups:?}");
    let got: BTreeSet<String> = counts.keys().map(|s| s.to_string()).collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    assert!(missing.is_empty(), "never consumed: {missing:?}");
    assert_eq!(got.len(), expected.len(), "unexpected extra records");
}

fn describe(raw: &mut BlockingClient, group: &str) -> consumer_group_describe_response::DescribedGroup {
    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = vec![GroupId(StrBytes::from_string(group.to_string()))];
    let id = raw.send(ApiKey::ConsumerGroupDescribe, 0, &req);
    let mut r: ConsumerGroupDescribeResponse = raw.recv(ApiKey::ConsumerGroupDescribe, 0, id);
    r.groups.remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn members_join_and_leave_with_disjoint_assignments_and_exactly_once_consumption() {
    let broker = TestBroker::start(BROKER);
    let bs = broker.bootstrap();
    let topic = topic_name("kip848-share");
    create_topic(&bs, &topic, 6, &[]).await;
    let group = topic_name("g-kip848");
    let mut expected = produce_tagged(&bs, &topic, 6, 5, "a").await;
    let mut seen = Vec::new();

    check!("two consumers split six partitions 3+3");
    let c1 = kip848_consumer(&bs, &group, &[]);
    let c2 = kip848_consumer(&bs, &group, &[]);
    for c in [&c1, &c2] {
        c.subscribe(&[&topic]).expect("subscribe");
    }
    seen.extend(drive(&[&c1, &c2], Duration::from_secs(60), |cs| balanced(cs, &topic, 6)));

    check!("a third member joins: 2+2+2, partitions move only after their owner revoked them");
    expected.extend(produce_tagged(&bs, &topic, 6, 5, "b").await);
    let c3 = kip848_consumer(&bs, &group, &[]);
    c3.subscribe(&[&topic]).expect("subscribe");
    seen.extend(drive(&[&c1, &c2, &c3], Duration::from_secs(60), |cs| balanced(cs, &topic, 6)));
    let mut raw = BlockingClient::connect(broker.addr());
    let d = describe(&mut raw, &group);
    assert_eq!(d.members.len(), 3);

    check!("the third member leaves (epoch -1 on close): the other two take everything back");
    drop(c3);
    expected.extend(produce_tagged(&bs, &topic, 6, 5, "c").await);
    seen.extend(drive(&[&c1, &c2], Duration::from_secs(60), |cs| balanced(cs, &topic, 6)));

    check!("all records consumed exactly once");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        seen.extend(drive(&[&c1, &c2], Duration::from_secs(60), |_| true));
        let got: BTreeSet<&String> = seen.iter().collect();
        if expected.iter().all(|v| got.contains(v)) || Instant::now() > deadline {
            break;
        }
    }
    // Let anything duplicated show up before judging.
    let until = Instant::now() + Duration::from_secs(1);
    seen.extend(drive(&[&c1, &c2], Duration::from_secs(5), |_| Instant::now() > until));
    assert_exactly_once(&seen, &expected);
    let d = describe(&mut raw, &group);
    assert_eq!(d.members.len(), 2);
    assert_eq!(d.group_state.as_str(), "Stable");
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_list_and_classic_apis_see_a_consumer_group() {
    let broker = TestBroker::start(BROKER);
    let bs = broker.bootstrap();
    let topic = topic_name("kip848-describe");
    create_topic(&bs, &topic, 6, &[]).await;
    let group = topic_name("g-kip848-describe");
    let c1 = kip848_consumer(&bs, &group, &[("group.remote.assignor", "range")]);
    let c2 = kip848_consumer(&bs, &group, &[("group.remote.assignor", "range")]);
    for c in [&c1, &c2] {
        c.subscribe(&[&topic]).expect("subscribe");
    }
    drive(&[&c1, &c2], Duration::from_secs(60), |cs| balanced(cs, &topic, 6));
    let mut raw = BlockingClient::connect(broker.addr());
    // Members converge on the group's epoch within a few heartbeats.
    let deadline = Instant::now() + WAIT;
    let d = loop {
        let d = describe(&mut raw, &group);
        if d.group_state.as_str() == "Stable" || Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(Duration::from_millis(100));
    };

    check!("ConsumerGroupDescribe: state, epochs, assignor and each member's assignment");
    assert_eq!(d.error_code, 0);
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.assignor_name.as_str(), "range");
    assert!(d.group_epoch >= 2, "two joins bump the group epoch twice: {}", d.group_epoch);
    assert_eq!(d.assignment_epoch, d.group_epoch);
    assert_eq!(d.members.len(), 2);
    let mut all = BTreeSet::new();
    for m in &d.members {
        assert_eq!(m.member_epoch, d.assignment_epoch, "member {} reconciled", m.member_id.as_str());
        assert_eq!(m.subscribed_topic_names.iter().map(|t| t.0.to_string()).collect::<Vec<_>>(), vec![topic.clone()]);
        assert_eq!(m.assignment.topic_partitions.len(), 1);
        let tp = &m.assignment.topic_partitions[0];
        assert_eq!(tp.topic_name.0.as_str(), topic);
        assert!(!tp.topic_id.is_nil());
        assert_eq!(tp.partitions.len(), 3);
        // Range: contiguous ranges.
        assert_eq!(tp.partitions[2] - tp.partitions[0], 2, "range assignor gives a contiguous range");
        assert_eq!(m.target_assignment.topic_partitions[0].partitions, tp.partitions);
        all.extend(tp.partitions.iter().copied());
    }
    assert_eq!(all, (0..6).collect::<BTreeSet<i32>>());

    check!("ListGroups v5: type consumer, state Stable");
    let id = raw.send(ApiKey::ListGroups, 5, &ListGroupsRequest::default());
    let r: ListGroupsResponse = raw.recv(ApiKey::ListGroups, 5, id);
    let listed = r.groups.iter().find(|g| g.group_id.0.as_str() == group).expect("listed");
    assert_eq!(
        (listed.group_type.as_str(), listed.group_state.as_str(), listed.protocol_type.as_str()),
        ("consumer", "Stable", "consumer")
    );

    check!("DescribeGroups v6: GROUP_ID_NOT_FOUND, not a classic group (v5: Dead)");
    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![GroupId(StrBytes::from_string(group.clone()))];
    let id = raw.send(ApiKey::DescribeGroups, 6, &req);
    let r: DescribeGroupsResponse = raw.recv(ApiKey::DescribeGroups, 6, id);
    assert_eq!(r.groups[0].error_code, 69);
    assert!(r.groups[0].error_message.as_deref().is_some_and(|m| m.contains("not a classic group")));
    let id = raw.send(ApiKey::DescribeGroups, 5, &req);
    let r: DescribeGroupsResponse = raw.recv(ApiKey::DescribeGroups, 5, id);
    assert_eq!((r.groups[0].error_code, r.groups[0].group_state.as_str()), (0, "Dead"));

    check!("classic JoinGroup on the non-empty consumer group: INCONSISTENT_GROUP_PROTOCOL");
    let mut join = JoinGroupRequest::default();
    join.group_id = GroupId(StrBytes::from_string(group.clone()));
    join.session_timeout_ms = 10000;
    join.rebalance_timeout_ms = 10000;
    join.protocol_type = StrBytes::from_static_str("consumer");
    let mut proto = join_group_request::JoinGroupRequestProtocol::default();
    proto.name = StrBytes::from_static_str("range");
    join.protocols.push(proto);
    let id = raw.send(ApiKey::JoinGroup, 5, &join);
    let r: JoinGroupResponse = raw.recv(ApiKey::JoinGroup, 5, id);
    assert_eq!(r.error_code, 23);

    check!("OffsetCommit v9: a stale member epoch and an unknown member are refused");
    let member = &d.members[0];
    let commit = |member_id: &str, epoch: i32, raw: &mut BlockingClient| -> i16 {
        let mut req = OffsetCommitRequest::default();
        req.group_id = GroupId(StrBytes::from_string(group.clone()));
        req.member_id = StrBytes::from_string(member_id.to_string());
        req.generation_id_or_member_epoch = epoch;
        let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
        t.name = TopicName(StrBytes::from_string(topic.clone()));
        let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
        p.partition_index = member.assignment.topic_partitions[0].partitions[0];
        p.committed_offset = 0;
        t.partitions.push(p);
        req.topics.push(t);
        let id = raw.send(ApiKey::OffsetCommit, 9, &req);
        let r: OffsetCommitResponse = raw.recv(ApiKey::OffsetCommit, 9, id);
        r.topics[0].partitions[0].error_code
    };
    assert_eq!(commit(&member.member_id, member.member_epoch - 1, &mut raw), 113, "STALE_MEMBER_EPOCH");
    assert_eq!(commit("nobody", member.member_epoch, &mut raw), 25, "UNKNOWN_MEMBER_ID");
    assert_eq!(commit(&member.member_id, member.member_epoch, &mut raw), 0);

    check!("ConsumerGroupHeartbeat with an unsupported assignor: UNSUPPORTED_ASSIGNOR");
    let mut hb = ConsumerGroupHeartbeatRequest::default();
    hb.group_id = GroupId(StrBytes::from_string(group.clone()));
    hb.member_id = StrBytes::from_static_str("raw-member");
    hb.rebalance_timeout_ms = 10000;
    hb.subscribed_topic_names = Some(vec![TopicName(StrBytes::from_string(topic.clone()))]);
    hb.server_assignor = Some(StrBytes::from_static_str("sticky"));
    hb.topic_partitions = Some(vec![]);
    let id = raw.send(ApiKey::ConsumerGroupHeartbeat, 1, &hb);
    let r: ConsumerGroupHeartbeatResponse = raw.recv(ApiKey::ConsumerGroupHeartbeat, 1, id);
    assert_eq!(r.error_code, 112);

    check!("DeleteGroups: NON_EMPTY_GROUP while members remain, then deleted once they left");
    let delete = |raw: &mut BlockingClient| -> i16 {
        let mut req = DeleteGroupsRequest::default();
        req.groups_names = vec![GroupId(StrBytes::from_string(group.clone()))];
        let id = raw.send(ApiKey::DeleteGroups, 2, &req);
        let r: DeleteGroupsResponse = raw.recv(ApiKey::DeleteGroups, 2, id);
        r.results[0].error_code
    };
    assert_eq!(delete(&mut raw), 68);
    drop(c1);
    drop(c2);
    let deadline = Instant::now() + WAIT;
    while describe(&mut raw, &group).group_state.as_str() != "Empty" {
        assert!(Instant::now() < deadline, "members did not leave");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(delete(&mut raw), 0);
    assert_eq!(describe(&mut raw, &group).error_code, 69, "deleted");
}

#[tokio::test(flavor = "multi_thread")]
async fn regex_subscription_picks_up_a_topic_created_later() {
    let broker = TestBroker::start(BROKER);
    let bs = broker.bootstrap();
    let prefix = topic_name("kip848re");
    let first = format!("{prefix}-a");
    create_topic(&bs, &first, 2, &[]).await;
    create_topic(&bs, &topic_name("unrelated"), 2, &[]).await;
    let mut expected = produce_tagged(&bs, &first, 2, 3, "first").await;
    let group = topic_name("g-kip848-regex");
    let c = kip848_consumer(&bs, &group, &[]);
    c.subscribe(&[&format!("^{prefix}-.*")]).expect("subscribe");
    let mut seen = drive(&[&c], Duration::from_secs(60), |cs| assigned(cs[0]).len() == 2);

    check!("a topic created later that matches the regex is assigned too");
    let second = format!("{prefix}-b");
    create_topic(&bs, &second, 3, &[]).await;
    expected.extend(produce_tagged(&bs, &second, 3, 3, "second").await);
    seen.extend(drive(&[&c], Duration::from_secs(60), |cs| assigned(cs[0]).len() == 5));
    let topics: BTreeSet<String> = assigned(&c).into_iter().map(|(t, _)| t).collect();
    assert_eq!(topics, BTreeSet::from([first.clone(), second.clone()]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < expected.len() && Instant::now() < deadline {
        seen.extend(drive(&[&c], Duration::from_secs(30), |_| true));
    }
    assert_exactly_once(&seen, &expected);
    let mut raw = BlockingClient::connect(broker.addr());
    let d = describe(&mut raw, &group);
    assert_eq!(d.members[0].subscribed_topic_regex.as_deref(), Some(format!("(^{prefix}-.*)").as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn members_keep_epochs_and_assignments_across_a_restart() {
    let broker = TestBroker::start(BROKER);
    let bs = broker.bootstrap();
    let topic = topic_name("kip848-restart");
    create_topic(&bs, &topic, 4, &[]).await;
    let group = topic_name("g-kip848-restart");
    // A raw member: it joins, then heartbeats again after the restart with what it was given.
    let mut raw = BlockingClient::connect(broker.addr());
    let mut hb = ConsumerGroupHeartbeatRequest::default();
    hb.group_id = GroupId(StrBytes::from_string(group.clone()));
    hb.member_id = StrBytes::from_static_str("restart-member");
    hb.rebalance_timeout_ms = 10000;
    hb.subscribed_topic_names = Some(vec![TopicName(StrBytes::from_string(topic.clone()))]);
    hb.topic_partitions = Some(vec![]);
    let id = raw.send(ApiKey::ConsumerGroupHeartbeat, 1, &hb);
    let r: ConsumerGroupHeartbeatResponse = raw.recv(ApiKey::ConsumerGroupHeartbeat, 1, id);
    assert_eq!(r.error_code, 0);
    let epoch = r.member_epoch;
    let owned = r.assignment.expect("assignment").topic_partitions;
    assert_eq!(owned[0].partitions, vec![0, 1, 2, 3]);
    let before = describe(&mut raw, &group);

    let broker = broker.restart();
    check!("after a restart the group, the member's epoch and its assignment are back");
    let mut raw = BlockingClient::connect(broker.addr());
    let after = describe(&mut raw, &group);
    assert_eq!(after.error_code, 0);
    assert_eq!((after.group_epoch, after.assignment_epoch), (before.group_epoch, before.assignment_epoch));
    assert_eq!(after.members.len(), 1);
    assert_eq!(after.members[0].member_epoch, epoch);
    assert_eq!(after.members[0].assignment.topic_partitions[0].partitions, vec![0, 1, 2, 3]);
    let mut next = ConsumerGroupHeartbeatRequest::default();
    next.group_id = hb.group_id.clone();
    next.member_id = hb.member_id.clone();
    next.member_epoch = epoch;
    next.rebalance_timeout_ms = -1;
    next.topic_partitions = Some(
        owned
            .iter()
            .map(|t| {
                let mut tp = consumer_group_heartbeat_request::TopicPartitions::default();
                tp.topic_id = t.topic_id;
                tp.partitions = t.partitions.clone();
                tp
            })
            .collect(),
    );
    let id = raw.send(ApiKey::ConsumerGroupHeartbeat, 1, &next);
    let r: ConsumerGroupHeartbeatResponse = raw.recv(ApiKey::ConsumerGroupHeartbeat, 1, id);
    assert_eq!((r.error_code, r.member_epoch), (0, epoch), "the member resumes heartbeating at its epoch");

    check!("leaving with epoch -1 empties the group");
    next.member_epoch = -1;
    next.topic_partitions = None;
    let id = raw.send(ApiKey::ConsumerGroupHeartbeat, 1, &next);
    let r: ConsumerGroupHeartbeatResponse = raw.recv(ApiKey::ConsumerGroupHeartbeat, 1, id);
    assert_eq!((r.error_code, r.member_epoch), (0, -1));
    assert_eq!(describe(&mut raw, &group).group_state.as_str(), "Empty");
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_wait_for_their_owner_to_revoke_and_move_when_its_session_expires() {
    let broker = TestBroker::start(BROKER);
    let bs = broker.bootstrap();
    let topic = topic_name("kip848-expiry");
    create_topic(&bs, &topic, 4, &[]).await;
    let group = topic_name("g-kip848-expiry");
    // A raw member takes all four partitions, then goes silent without ever revoking.
    let mut raw = BlockingClient::connect(broker.addr());
    let mut hb = ConsumerGroupHeartbeatRequest::default();
    hb.group_id = GroupId(StrBytes::from_string(group.clone()));
    hb.member_id = StrBytes::from_static_str("silent-member");
    hb.rebalance_timeout_ms = 60000;
    hb.subscribed_topic_names = Some(vec![TopicName(StrBytes::from_string(topic.clone()))]);
    hb.topic_partitions = Some(vec![]);
    let id = raw.send(ApiKey::ConsumerGroupHeartbeat, 1, &hb);
    let r: ConsumerGroupHeartbeatResponse = raw.recv(ApiKey::ConsumerGroupHeartbeat, 1, id);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.assignment.expect("assignment").topic_partitions[0].partitions.len(), 4);
    let joined = Instant::now();

    check!("a new member gets nothing while the silent member still owns everything");
    let c = kip848_consumer(&bs, &group, &[]);
    c.subscribe(&[&topic]).expect("subscribe");
    drive(&[&c], Duration::from_secs(3), |_| joined.elapsed() > Duration::from_secs(3));
    assert!(assigned(&c).is_empty(), "partitions handed out before their owner revoked them: {:?}", assigned(&c));
    let d = describe(&mut raw, &group);
    assert_eq!(d.group_state.as_str(), "Reconciling");
    let silent = d.members.iter().find(|m| m.member_id.as_str() == "silent-member").expect("silent member");
    assert_eq!(silent.target_assignment.topic_partitions[0].partitions.len(), 2, "its target shrank to two");

    check!("after its 6 s session expires, the live member owns all four");
    drive(&[&c], Duration::from_secs(30), |cs| assigned(cs[0]).len() == 4);
    assert!(joined.elapsed() >= Duration::from_secs(6), "moved before the session timeout");
    let id = raw.send(ApiKey::ConsumerGroupHeartbeat, 1, &{
        let mut late = hb.clone();
        late.member_epoch = 1;
        late
    });
    let r: ConsumerGroupHeartbeatResponse = raw.recv(ApiKey::ConsumerGroupHeartbeat, 1, id);
    assert_eq!(r.error_code, 25, "the expired member is unknown now");
}
