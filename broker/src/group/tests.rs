//! The group coordinator on its own: no network, no broker, an in-memory `__consumer_offsets`
//! and a manual clock. Deadlines pass by advancing the clock and calling `tick`, so every
//! expiry rule runs in milliseconds and the same way every time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::consumer::{ConsumerGroupConfig, HeartbeatArgs, TopicsImage};
use super::records::OffsetAndMetadata;
use super::{GroupConfig, GroupCoordinator, GroupState, JoinArgs, TopicsView};
use crate::clock::{Clock, ManualClock};
use crate::internal_log::MemoryLog;
use crate::shutdown::Shutdown;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 10_000;
const RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

struct StaticTopics(TopicsImage);

impl TopicsView for StaticTopics {
    fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.0.by_name.get(topic).is_some_and(|(_, n)| partition >= 0 && partition < *n)
    }

    fn image(&self) -> TopicsImage {
        self.0.clone()
    }
}

struct Fixture {
    coordinator: GroupCoordinator,
    clock: Arc<ManualClock>,
    log: Arc<MemoryLog>,
}

fn config() -> GroupConfig {
    GroupConfig {
        min_session_timeout_ms: 1_000,
        max_session_timeout_ms: 60_000,
        initial_rebalance_delay_ms: 0,
        max_size: 100,
        offsets_retention_ms: RETENTION_MS,
        offsets_retention_check_interval_ms: 1_000,
        offset_metadata_max_bytes: 4096,
        consumer: ConsumerGroupConfig { session_timeout_ms: 45_000, ..Default::default() },
    }
}

fn topics() -> Arc<StaticTopics> {
    Arc::new(StaticTopics(TopicsImage { by_name: BTreeMap::from([("t".to_string(), (Uuid::from_bytes([7; 16]), 3))]) }))
}

fn fixture_on(log: Arc<MemoryLog>, clock: Arc<ManualClock>) -> Fixture {
    let coordinator = GroupCoordinator::new(config(), log.clone(), clock.clone(), Shutdown::never(), topics());
    Fixture { coordinator, clock, log }
}

fn fixture() -> Fixture {
    fixture_on(Arc::new(MemoryLog::new(50)), Arc::new(ManualClock::default()))
}

fn join_args(member_id: &str) -> JoinArgs {
    JoinArgs {
        group_id: "g".into(),
        member_id: member_id.into(),
        instance_id: None,
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        require_known_member: false,
    }
}

/// Joins a first member and syncs it as leader: a Stable group of one, generation 1.
async fn stable_group_of_one(c: &GroupCoordinator) -> String {
    let joined = c.join(join_args("")).await;
    assert_eq!(joined.error, None);
    assert_eq!(joined.generation, 1);
    assert_eq!(joined.leader, joined.member_id);
    let assignment = HashMap::from([(joined.member_id.clone(), Bytes::from_static(b"all"))]);
    let synced = c.sync("g", 1, &joined.member_id, None, None, None, assignment).await;
    assert_eq!(synced.error, None);
    assert_eq!(synced.assignment, Bytes::from_static(b"all"));
    assert_eq!(c.describe("g").expect("group").state, GroupState::Stable);
    joined.member_id
}

fn member_ids(c: &GroupCoordinator) -> Vec<String> {
    c.describe("g").map(|d| d.members.into_iter().map(|m| m.0).collect()).unwrap_or_default()
}

#[tokio::test]
async fn classic_member_that_does_not_rejoin_is_removed_at_the_rebalance_timeout() {
    let f = fixture();
    let c = &f.coordinator;
    let first = stable_group_of_one(c).await;

    // A second member joining starts a rebalance the first must rejoin within its timeout.
    let mut second = Box::pin(c.join(join_args("")));
    assert!(futures::poll!(&mut second).is_pending(), "waits for the first member to rejoin");
    assert_eq!(c.describe("g").expect("group").state, GroupState::PreparingRebalance);

    // The first member keeps heartbeating (so its session stays alive) but never rejoins.
    f.clock.advance_ms(6_000);
    assert_eq!(c.heartbeat("g", 1, &first, None), Some(ResponseError::RebalanceInProgress));
    c.tick(false);
    assert!(futures::poll!(&mut second).is_pending(), "the rebalance timeout has not passed");
    f.clock.advance_ms(4_001);
    c.tick(false);

    let joined = second.await;
    assert_eq!(joined.error, None);
    assert_eq!(joined.generation, 2);
    assert_eq!(joined.leader, joined.member_id, "the only member left leads");
    assert_eq!(member_ids(c), vec![joined.member_id.clone()]);
    assert_eq!(c.heartbeat("g", 2, &first, None), Some(ResponseError::UnknownMemberId));
}

#[tokio::test]
async fn classic_member_without_heartbeats_is_removed_after_the_session_timeout() {
    let f = fixture();
    let c = &f.coordinator;
    let member = stable_group_of_one(c).await;

    f.clock.advance_ms(SESSION_MS as u64 - 1);
    c.tick(false);
    assert_eq!(member_ids(c), vec![member.clone()], "still within its session");
    assert_eq!(c.heartbeat("g", 1, &member, None), None);

    // A heartbeat restarts the session; silence for a whole session ends it.
    f.clock.advance_ms(SESSION_MS as u64);
    c.tick(false);
    assert_eq!(member_ids(c), vec![member.clone()], "the session is measured from the last heartbeat");
    f.clock.advance_ms(1);
    c.tick(false);
    let d = c.describe("g").expect("group");
    assert_eq!(d.state, GroupState::Empty);
    assert!(d.members.is_empty());
    assert_eq!(c.heartbeat("g", 1, &member, None), Some(ResponseError::UnknownMemberId));
}

#[tokio::test]
async fn consumer_group_member_without_heartbeats_is_removed_after_the_session_timeout() {
    let f = fixture();
    let c = &f.coordinator;
    let args = HeartbeatArgs {
        member_id: "m1".into(),
        rebalance_timeout_ms: REBALANCE_MS,
        subscribed_topic_names: Some(vec!["t".into()]),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        ..Default::default()
    };
    let joined = c.consumer_heartbeat("g", 1, args).expect("joins");
    assert!(joined.member_epoch > 0);
    let members = |c: &GroupCoordinator| c.consumer_describe("g").expect("group").group.members.len();
    assert_eq!(members(c), 1);

    f.clock.advance_ms(45_000);
    c.tick(false);
    assert_eq!(members(c), 1, "exactly one session is not yet past it");
    f.clock.advance_ms(1);
    c.tick(false);
    assert_eq!(members(c), 0);

    // The removal is durable: a coordinator replaying the log sees an empty group.
    let replayed = fixture_on(f.log.clone(), f.clock.clone());
    replayed.coordinator.load();
    assert_eq!(members(&replayed.coordinator), 0);
}

#[tokio::test]
async fn offsets_expire_after_the_retention_period() {
    let f = fixture();
    let c = &f.coordinator;
    let committed_at = f.clock.now_ms();
    let offset =
        OffsetAndMetadata { offset: 42, leader_epoch: 0, metadata: "m".into(), commit_timestamp: committed_at };
    let errors = c.commit("standalone", -1, "", None, vec![("t".into(), 0, offset.clone())], None, 9).expect("commit");
    assert_eq!(errors, vec![None]);
    let fetch = |c: &GroupCoordinator| c.fetch_offsets("standalone", Some(vec![("t".into(), 0)]))[0].1.clone();
    assert_eq!(fetch(c), Some(offset.clone()));

    f.clock.advance_ms(RETENTION_MS as u64 - 1);
    c.tick(true);
    assert_eq!(fetch(c), Some(offset), "kept until the retention period has passed");
    f.clock.advance_ms(1);
    c.tick(true);
    assert_eq!(fetch(c), None);

    // Expiry wrote tombstones: a replay does not bring the offset back.
    let replayed = fixture_on(f.log.clone(), f.clock.clone());
    replayed.coordinator.load();
    assert_eq!(fetch(&replayed.coordinator), None);
}

#[tokio::test]
async fn a_partition_loads_and_unloads_on_its_own() {
    let f = fixture();
    let c = &f.coordinator;
    let offset = OffsetAndMetadata { offset: 7, leader_epoch: -1, metadata: String::new(), commit_timestamp: 1 };
    c.commit("standalone", -1, "", None, vec![("t".into(), 1, offset.clone())], None, 9).expect("commit");
    let p = c.partition_for("standalone");

    let replayed = fixture_on(f.log.clone(), f.clock.clone());
    let rc = &replayed.coordinator;
    assert_eq!(rc.load_partition((p + 1) % 50), 0, "another partition holds none of its records");
    assert_eq!(rc.fetch_offsets("standalone", None), vec![]);
    assert_eq!(rc.load_partition(p), 1);
    assert_eq!(rc.fetch_offsets("standalone", None), vec![(("t".to_string(), 1), Some(offset))]);
    assert!(rc.loaded_partitions().contains(&p));
    rc.unload_partition(p);
    assert!(!rc.loaded_partitions().contains(&p));
    assert_eq!(rc.fetch_offsets("standalone", None), vec![]);
}

#[tokio::test]
async fn a_failed_write_leaves_committed_offsets_unchanged() {
    let f = fixture();
    let c = &f.coordinator;
    let offset = OffsetAndMetadata { offset: 1, leader_epoch: -1, metadata: String::new(), commit_timestamp: 1 };
    f.log.fail_appends(true);
    let result = c.commit("standalone", -1, "", None, vec![("t".into(), 0, offset)], None, 9);
    assert_eq!(result, Err(ResponseError::CoordinatorNotAvailable));
    assert_eq!(c.fetch_offsets("standalone", Some(vec![("t".into(), 0)]))[0].1, None);
}

/// Offset commits validated as Kafka's OffsetMetadataManager does: commits without group
/// management (member epoch / generation -1) create a simple group whatever member id they carry;
/// a generation for a group that never existed is GROUP_ID_NOT_FOUND from OffsetCommit v9
/// (ILLEGAL_GENERATION before, and for TxnOffsetCommit); topics that do not exist are answered
/// before any group check.
#[tokio::test]
async fn offset_commits_are_validated_as_kafka_does() {
    let f = fixture();
    let c = &f.coordinator;
    let offset = OffsetAndMetadata { offset: 5, leader_epoch: -1, metadata: "md".into(), commit_timestamp: 1 };
    let at = |p: i32| vec![("t".to_string(), p, offset.clone())];

    // librdkafka with group.protocol=consumer and assign(): its own member id, epoch -1.
    assert_eq!(c.commit("assigned", -1, "client-generated-id", None, at(0), None, 9), Ok(vec![None]));
    assert_eq!(c.fetch_offsets("assigned", Some(vec![("t".into(), 0)]))[0].1, Some(offset.clone()));
    // The group is now an empty simple group: still open to such commits.
    assert_eq!(c.commit("assigned", -1, "another-id", None, at(1), None, 9), Ok(vec![None]));

    assert_eq!(c.commit("never", 3, "m", None, at(0), None, 9), Err(ResponseError::GroupIdNotFound));
    assert_eq!(c.commit("never", 3, "m", None, at(0), None, 8), Err(ResponseError::IllegalGeneration));
    assert_eq!(c.commit("never", 3, "m", None, at(0), Some((1, 0)), 5), Err(ResponseError::IllegalGeneration));

    let unknown = vec![("no-such-topic".to_string(), 0, offset.clone())];
    assert_eq!(
        c.commit("never", 3, "m", None, unknown.clone(), None, 9),
        Ok(vec![Some(ResponseError::UnknownTopicOrPartition)]),
        "an unknown topic is answered before the group is looked at"
    );
    let mixed = [at(0), unknown].concat();
    assert_eq!(
        c.commit("never", 3, "m", None, mixed, None, 9),
        Ok(vec![Some(ResponseError::GroupIdNotFound), Some(ResponseError::UnknownTopicOrPartition)])
    );
}
