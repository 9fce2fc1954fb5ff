//! Consumer groups with librdkafka (the `rdkafka` crate) against the classic group protocol:
//! partition sharing, rebalances on join, graceful leave and session-timeout crash with no record
//! lost or consumed twice across commits, cooperative-sticky incremental rebalancing, static
//! membership across a restart, and committed offsets that survive a broker restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sluice_testkit::client::BlockingClient;
use sluice_testkit::kafka_protocol::messages::*;
use sluice_testkit::kafka_protocol::protocol::StrBytes;
use sluice_tests::*;

/// Records each rebalance so tests can see what a member gave up and when.
#[derive(Default, Clone)]
struct Events(Arc<Mutex<Vec<(String, usize)>>>);

impl ClientContext for Events {}
impl ConsumerContext for Events {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        let e = match r {
            Rebalance::Assign(tpl) => ("assign".to_string(), tpl.count()),
            Rebalance::Revoke(tpl) => ("revoke".to_string(), tpl.count()),
            Rebalance::Error(e) => (format!("error {e}"), 0),
        };
        self.0.lock().expect("events").push(e);
    }
}

type GroupConsumer = BaseConsumer<Events>;

fn group_consumer(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> (GroupConsumer, Events) {
    let events = Events::default();
    let mut c = client_config(bootstrap);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    let consumer: GroupConsumer = c.create_with_context(events.clone()).expect("consumer");
    (consumer, events)
}

fn assigned(c: &GroupConsumer) -> BTreeSet<i32> {
    c.assignment().map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect()).unwrap_or_default()
}

/// Polls every consumer (processing and synchronously committing each record) until `done`
/// holds or the deadline passes. Returns what each consumer consumed: (partition, offset, value).
fn drive(
    consumers: &[&GroupConsumer],
    timeout: Duration,
    mut done: impl FnMut(&[&GroupConsumer]) -> bool,
) -> Vec<Vec<(i32, i64, String)>> {
    let mut out = vec![Vec::new(); consumers.len()];
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        for (i, c) in consumers.iter().enumerate() {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(20)) {
                let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                out[i].push((m.partition(), m.offset(), v));
                c.commit_message(&m, CommitMode::Sync).expect("commit");
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

async fn produce_values(
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

fn broker_for_groups() -> TestBroker {
    TestBroker::start(&[("group.initial.rebalance.delay.ms", "0"), ("offsets.topic.num.partitions", "4")])
}

#[tokio::test(flavor = "multi_thread")]
async fn three_consumers_share_six_partitions_and_rebalance_on_leave_and_crash() {
    let broker = broker_for_groups();
    let bs = broker.bootstrap();
    let topic = topic_name("groups-share");
    create_topic(&bs, &topic, 6, &[]).await;
    let group = topic_name("g-share");
    let mut expected = produce_values(&bs, &topic, 6, 5, "a").await;

    let (c1, _) = group_consumer(&bs, &group, &[]);
    let (c2, _) = group_consumer(&bs, &group, &[]);
    let (c3, _) = group_consumer(&bs, &group, &[]);
    for c in [&c1, &c2, &c3] {
        c.subscribe(&[&topic]).expect("subscribe");
    }
    let mut seen: Vec<(i32, i64, String)> = Vec::new();
    let got = drive(&[&c1, &c2, &c3], Duration::from_secs(60), |cs| {
        let sets: Vec<BTreeSet<i32>> = cs.iter().map(|c| assigned(c)).collect();
        let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
        sets.iter().all(|s| s.len() == 2) && union.len() == 6
    });
    seen.extend(got.into_iter().flatten());
    println!("3 members hold 2 partitions each: {:?}", [assigned(&c1), assigned(&c2), assigned(&c3)]);

    // Graceful leave: c3 closes (LeaveGroup); the other two split the six partitions.
    drop(c3);
    let more = produce_values(&bs, &topic, 6, 5, "b").await;
    expected.extend(more);
    let got = drive(&[&c1, &c2], Duration::from_secs(60), |cs| {
        let sets: Vec<BTreeSet<i32>> = cs.iter().map(|c| assigned(c)).collect();
        sets.iter().all(|s| s.len() == 3) && sets.iter().flatten().collect::<BTreeSet<_>>().len() == 6
    });
    seen.extend(got.into_iter().flatten());

    // Crash: a raw member joins, syncs, then never heartbeats again. The group rebalances to
    // include it, then its session expires and the two real consumers take everything back.
    let mut raw = BlockingClient::connect(broker.addr());
    let mut join = JoinGroupRequest::default();
    join.group_id = GroupId(StrBytes::from_string(group.clone()));
    join.session_timeout_ms = 6000;
    join.rebalance_timeout_ms = 30000;
    join.protocol_type = StrBytes::from_static_str("consumer");
    let mut proto = join_group_request::JoinGroupRequestProtocol::default();
    proto.name = StrBytes::from_static_str("range");
    let mut meta = bytes::BytesMut::new();
    {
        use bytes::BufMut;
        meta.put_i16(0);
        meta.put_i32(1);
        meta.put_i16(topic.len() as i16);
        meta.put_slice(topic.as_bytes());
        meta.put_i32(-1);
    }
    proto.metadata = meta.freeze();
    join.protocols.push(proto);
    let id = raw.send(ApiKey::JoinGroup, 5, &join);
    let first: JoinGroupResponse = raw.recv(ApiKey::JoinGroup, 5, id);
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    join.member_id = first.member_id.clone();
    let id = raw.send(ApiKey::JoinGroup, 5, &join);
    // The real consumers must rejoin for the join to finish, so keep them polling meanwhile.
    let c1r = &c1;
    let c2r = &c2;
    let (joined, got) = std::thread::scope(|s| {
        let h = s.spawn(move || raw_recv_join(raw, id));
        let got = drive(&[c1r, c2r], Duration::from_secs(60), |_| h.is_finished());
        (h.join().expect("join thread"), got)
    });
    seen.extend(got.into_iter().flatten());
    let (mut raw, joined) = joined;
    assert_eq!(joined.error_code, 0);
    let mut sync = SyncGroupRequest::default();
    sync.group_id = GroupId(StrBytes::from_string(group.clone()));
    sync.generation_id = joined.generation_id;
    sync.member_id = joined.member_id.clone();
    let id = raw.send(ApiKey::SyncGroup, 3, &sync);
    let _: SyncGroupResponse = raw.recv(ApiKey::SyncGroup, 3, id);
    // The raw member now stays silent; after its 6 s session the two consumers own all 6 again.
    let more = produce_values(&bs, &topic, 6, 5, "c").await;
    expected.extend(more);
    let started = Instant::now();
    let got = drive(&[&c1, &c2], Duration::from_secs(60), |cs| {
        let sets: Vec<BTreeSet<i32>> = cs.iter().map(|c| assigned(c)).collect();
        started.elapsed() > Duration::from_secs(3)
            && sets.iter().all(|s| s.len() == 3)
            && sets.iter().flatten().collect::<BTreeSet<_>>().len() == 6
    });
    seen.extend(got.into_iter().flatten());
    // Drain anything left.
    let got = drive(&[&c1, &c2], Duration::from_secs(30), |_| false_after(Duration::from_secs(3)));
    seen.extend(got.into_iter().flatten());

    let values: Vec<String> = seen.iter().map(|(_, _, v)| v.clone()).collect();
    let unique: BTreeSet<String> = values.iter().cloned().collect();
    assert_eq!(values.len(), unique.len(), "a record was consumed twice across commits");
    assert_eq!(unique, expected, "every record consumed exactly once");
    drop(raw);
}

fn raw_recv_join(mut raw: BlockingClient, id: i32) -> (BlockingClient, JoinGroupResponse) {
    let r: JoinGroupResponse = raw.recv(ApiKey::JoinGroup, 5, id);
    (raw, r)
}

/// A `done` predicate that turns true once `d` has passed since its first call.
fn false_after(d: Duration) -> bool {
    thread_local!(static START: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) });
    START.with(|s| {
        let start = s.get().unwrap_or_else(|| {
            let now = Instant::now();
            s.set(Some(now));
            now
        });
        let over = start.elapsed() >= d;
        if over {
            s.set(None);
        }
        over
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn cooperative_sticky_keeps_partitions_while_a_member_joins() {
    let broker = broker_for_groups();
    let bs = broker.bootstrap();
    let topic = topic_name("groups-coop");
    create_topic(&bs, &topic, 6, &[]).await;
    let group = topic_name("g-coop");
    let coop = [("partition.assignment.strategy", "cooperative-sticky")];
    let (a, a_events) = group_consumer(&bs, &group, &coop);
    a.subscribe(&[&topic]).expect("subscribe");
    drive(&[&a], Duration::from_secs(30), |cs| assigned(cs[0]).len() == 6);
    let before: BTreeSet<i32> = assigned(&a);
    a_events.0.lock().expect("events").clear();
    let (b, _) = group_consumer(&bs, &group, &coop);
    b.subscribe(&[&topic]).expect("subscribe");
    drive(&[&a, &b], Duration::from_secs(60), |cs| assigned(cs[0]).len() == 3 && assigned(cs[1]).len() == 3);
    let events = a_events.0.lock().expect("events").clone();
    println!("member A's rebalance events after B joined: {events:?}");
    // Incremental: A gives up only the three partitions that move, never all six.
    let revoked: Vec<usize> = events.iter().filter(|(k, _)| k == "revoke").map(|(_, n)| *n).collect();
    assert!(!revoked.is_empty(), "A revoked something");
    assert!(revoked.iter().all(|n| *n <= 3), "cooperative revocation only of moving partitions: {revoked:?}");
    assert!(assigned(&a).is_subset(&before));
}

#[tokio::test(flavor = "multi_thread")]
async fn static_member_restart_gets_its_assignment_back_without_rebalance() {
    let broker = broker_for_groups();
    let bs = broker.bootstrap();
    let topic = topic_name("groups-static");
    create_topic(&bs, &topic, 4, &[]).await;
    let group = topic_name("g-static");
    let (a, _) = group_consumer(&bs, &group, &[("group.instance.id", "static-a"), ("session.timeout.ms", "20000")]);
    let (b, b_events) =
        group_consumer(&bs, &group, &[("group.instance.id", "static-b"), ("session.timeout.ms", "20000")]);
    a.subscribe(&[&topic]).expect("subscribe");
    b.subscribe(&[&topic]).expect("subscribe");
    drive(&[&a, &b], Duration::from_secs(60), |cs| assigned(cs[0]).len() == 2 && assigned(cs[1]).len() == 2);
    let a_parts = assigned(&a);
    let b_parts = assigned(&b);
    b_events.0.lock().expect("events").clear();
    // librdkafka static members do not send LeaveGroup on close: the group keeps A's slot.
    drop(a);
    let (a2, _) = group_consumer(&bs, &group, &[("group.instance.id", "static-a"), ("session.timeout.ms", "20000")]);
    a2.subscribe(&[&topic]).expect("subscribe");
    drive(&[&a2, &b], Duration::from_secs(30), |cs| assigned(cs[0]).len() == 2);
    assert_eq!(assigned(&a2), a_parts, "the restarted static member gets the same partitions");
    // Give B a moment: it must not have been rebalanced.
    drive(&[&a2, &b], Duration::from_secs(10), |_| false_after(Duration::from_secs(2)));
    assert_eq!(assigned(&b), b_parts);
    let events = b_events.0.lock().expect("events").clone();
    assert!(events.is_empty(), "B saw no rebalance: {events:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_offsets_survive_a_broker_restart() {
    let broker = broker_for_groups();
    let bs = broker.bootstrap();
    let topic = topic_name("groups-restart");
    create_topic(&bs, &topic, 1, &[]).await;
    let group = topic_name("g-restart");
    produce_values(&bs, &topic, 1, 10, "r").await;
    {
        let (c, _) = group_consumer(&bs, &group, &[]);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(6)).expect("tpl");
        c.commit(&tpl, CommitMode::Sync).expect("commit 6");
        let committed = c
            .committed_offsets(
                {
                    let mut t = TopicPartitionList::new();
                    t.add_partition(&topic, 0);
                    t
                },
                Duration::from_secs(10),
            )
            .expect("committed");
        assert_eq!(committed.elements()[0].offset(), Offset::Offset(6));
    }
    let broker = broker.restart();
    let bs = broker.bootstrap();
    let (c, _) = group_consumer(&bs, &group, &[]);
    c.subscribe(&[&topic]).expect("subscribe");
    let mut first = None;
    drive(&[&c], Duration::from_secs(30), |cs| {
        if first.is_none() {
            if let Some(Ok(m)) = cs[0].poll(Duration::from_millis(50)) {
                first = Some((m.offset(), String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()));
            }
        }
        first.is_some()
    });
    let (offset, value) = first.expect("a record");
    // drive() may have consumed (and committed) the first record itself; either way the group
    // resumed at the committed offset 6, never from the beginning.
    assert!(offset >= 6, "resumed at {offset}");
    assert!(value.starts_with("r-0-"), "{value}");
    let mut t = TopicPartitionList::new();
    t.add_partition(&topic, 0);
    let committed = c.committed_offsets(t, Duration::from_secs(10)).expect("committed");
    match committed.elements()[0].offset() {
        Offset::Offset(o) => assert!(o >= 6),
        other => panic!("unexpected committed offset {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn group_listing_describe_and_delete_through_the_client() {
    let broker = broker_for_groups();
    let bs = broker.bootstrap();
    let topic = topic_name("groups-admin");
    create_topic(&bs, &topic, 2, &[]).await;
    let group = topic_name("g-admin");
    let (c, _) = group_consumer(&bs, &group, &[]);
    c.subscribe(&[&topic]).expect("subscribe");
    drive(&[&c], Duration::from_secs(30), |cs| assigned(cs[0]).len() == 2);
    let list = c.fetch_group_list(Some(&group), Duration::from_secs(10)).expect("describe");
    let g = &list.groups()[0];
    assert_eq!(g.name(), group);
    assert_eq!(g.state(), "Stable");
    assert_eq!(g.protocol_type(), "consumer");
    assert_eq!(g.members().len(), 1);
    // A group with members cannot be deleted.
    let admin = admin(&bs);
    let r = admin.delete_groups(&[&group], &admin_opts()).await.expect("delete");
    assert!(matches!(&r[0], Err((_, rdkafka::types::RDKafkaErrorCode::NonEmptyGroup))), "{r:?}");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 1, Offset::Offset(0)).expect("tpl");
    c.commit(&tpl, CommitMode::Sync).expect("commit");
    drop(c);
    // After the member leaves, the empty group is deleted with its offsets.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = admin.delete_groups(&[&group], &admin_opts()).await.expect("delete");
        if r[0].is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "group never became deletable: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all: HashMap<String, String> = BTreeMap::new().into_iter().collect();
    let _ = all;
    let list = admin.inner().fetch_group_list(Some(&group), Duration::from_secs(10)).expect("describe");
    assert!(list.groups().is_empty() || list.groups()[0].state() == "Dead", "deleted group is gone");
}
