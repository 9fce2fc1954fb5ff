//! The group coordinator (Kafka's `GroupCoordinatorService` for one node): consumer groups of
//! both protocols and their committed offsets, kept durable in `__consumer_offsets`.
//!
//! - [`classic`]: JoinGroup/SyncGroup/Heartbeat/LeaveGroup groups and their state machine;
//! - [`consumer`]: KIP-848 groups (ConsumerGroupHeartbeat), their assignors and records;
//! - [`offsets`]: committed offsets, transactional offsets, retention;
//! - [`records`]: the key/value formats of `__consumer_offsets` (no I/O).
//!
//! State is kept per `__consumer_offsets` partition ([`OffsetsPartition`]): a group lives in the
//! partition its id hashes to, so a partition's groups can be loaded or dropped on their own when
//! its leadership moves ([`load_partition`](GroupCoordinator::load_partition) /
//! [`unload_partition`](GroupCoordinator::unload_partition)). On one node every partition is
//! loaded at startup.
//!
//! The coordinator sees the broker only through narrow handles: the internal log, a [`Clock`],
//! the shutdown signal and a [`TopicsView`]. Time comes from the clock, so [`tick`] driven by a
//! `ManualClock` expires sessions and offsets deterministically.
//!
//! Locks: the partition map's lock is held only to find, add or remove a group, never while
//! taking a group's lock; a group's lock may be held while taking the map's. A classic group's
//! lock may be held while taking a consumer group's lock, never the reverse (see [`consumer`]).
//!
//! [`tick`]: GroupCoordinator::tick

pub mod classic;
pub mod consumer;
pub mod offsets;
pub mod records;
pub mod snapshot;
#[cfg(test)]
mod tests;

/// The record formats under the name they had before the coordinator was split up.
pub use self::records as store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;

pub use self::classic::{ClassicGroup, GroupDescription, GroupState, JoinArgs, JoinResult, SyncResult};
use self::consumer::{ConsumerGroupRef, TopicsImage};
pub use self::offsets::subscribed_topics;
use self::offsets::PendingTxnOffset;
use self::records::GroupRecord;
use crate::clock::Clock;
use crate::error::ApiError;
use crate::internal_log::{InternalLog, KeyValue};
use crate::shutdown::Shutdown;

/// Coordinator settings (Kafka's `group.*` and `offsets.*` configs).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: i32,
    pub max_size: usize,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: i64,
    pub offset_metadata_max_bytes: usize,
    /// KIP-848 consumer groups (`group.consumer.*`).
    pub consumer: consumer::ConsumerGroupConfig,
}

impl GroupConfig {
    pub fn from_broker(c: &crate::config::Config) -> Self {
        let g = &c.group;
        Self {
            min_session_timeout_ms: g.min_session_timeout_ms,
            max_session_timeout_ms: g.max_session_timeout_ms,
            initial_rebalance_delay_ms: g.initial_rebalance_delay_ms,
            max_size: g.max_size.max(1) as usize,
            offsets_retention_ms: i64::from(g.offsets_retention_minutes).saturating_mul(60_000),
            offsets_retention_check_interval_ms: g.offsets_retention_check_interval_ms.max(1),
            // Above the record format's i16 length, metadata is OFFSET_METADATA_TOO_LARGE whatever
            // the config says.
            offset_metadata_max_bytes: (g.offset_metadata_max_bytes.max(0) as usize)
                .min(records::MAX_STORED_STRING_BYTES),
            consumer: consumer::ConsumerGroupConfig {
                session_timeout_ms: g.consumer_session_timeout_ms,
                heartbeat_interval_ms: g.consumer_heartbeat_interval_ms,
                assignors: g
                    .consumer_assignors
                    .iter()
                    .filter_map(|s| {
                        // Kafka's class names name the same assignors.
                        let short = s.rsplit('.').next().unwrap_or(s).trim_end_matches("Assignor").to_ascii_lowercase();
                        consumer::assignor::ASSIGNORS.iter().find(|a| **a == short).map(|a| a.to_string())
                    })
                    .collect(),
                max_size: g.consumer_max_size.max(1) as usize,
            },
        }
    }
}

/// One group as ListGroups reports it.
#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// What the group coordinator needs to know about topics.
pub trait TopicsView: Send + Sync {
    /// Whether `topic` exists with a partition `partition` (offsets are only committed for those).
    fn partition_exists(&self, topic: &str, partition: i32) -> bool;
    /// Every non-internal topic, as KIP-848 subscriptions resolve against it.
    fn image(&self) -> TopicsImage;
}

type GroupRef = Arc<Mutex<ClassicGroup>>;

/// The groups whose records live in one `__consumer_offsets` partition.
#[derive(Default)]
pub struct OffsetsPartition {
    /// Classic groups, and the offsets of every group id (see [`offsets`]).
    classic: HashMap<String, GroupRef>,
    /// KIP-848 consumer groups by id (see [`consumer`]).
    consumer: HashMap<String, ConsumerGroupRef>,
    /// Offsets committed inside open transactions (TxnOffsetCommit), by producer id; the
    /// transaction's marker applies or drops them.
    pending_txn: HashMap<i64, Vec<PendingTxnOffset>>,
}

/// See the module docs.
pub struct GroupCoordinator {
    config: GroupConfig,
    log: Arc<dyn InternalLog>,
    clock: Arc<dyn Clock>,
    shutdown: Shutdown,
    topics: Arc<dyn TopicsView>,
    /// `__consumer_offsets` partition index → its groups.
    partitions: Mutex<BTreeMap<i32, OffsetsPartition>>,
}

fn lock(g: &GroupRef) -> MutexGuard<'_, ClassicGroup> {
    // Group transitions never panic midway on input; a poisoned lock still holds valid state.
    g.lock().unwrap_or_else(|e| e.into_inner())
}

impl GroupCoordinator {
    pub fn new(
        config: GroupConfig,
        log: Arc<dyn InternalLog>,
        clock: Arc<dyn Clock>,
        shutdown: Shutdown,
        topics: Arc<dyn TopicsView>,
    ) -> Self {
        Self { config, log, clock, shutdown, topics, partitions: Mutex::new(BTreeMap::new()) }
    }

    fn state(&self) -> MutexGuard<'_, BTreeMap<i32, OffsetsPartition>> {
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `__consumer_offsets` partition `group_id` lives in.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        self.log.partition_for(group_id)
    }

    fn get(&self, group_id: &str) -> Option<GroupRef> {
        let p = self.partition_for(group_id);
        self.state().get(&p)?.classic.get(group_id).cloned()
    }

    fn get_or_create(&self, group_id: &str) -> GroupRef {
        let p = self.partition_for(group_id);
        let now_ms = self.clock.now_ms();
        self.state()
            .entry(p)
            .or_default()
            .classic
            .entry(group_id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(ClassicGroup::new(group_id, now_ms))))
            .clone()
    }

    fn remove_classic(&self, group_id: &str) {
        let p = self.partition_for(group_id);
        if let Some(s) = self.state().get_mut(&p) {
            s.classic.remove(group_id);
        }
    }

    /// Every classic group entry, of every partition.
    fn classic_groups(&self) -> Vec<GroupRef> {
        self.state().values().flat_map(|s| s.classic.values().cloned()).collect()
    }

    /// Appends records to the group's `__consumer_offsets` partition.
    fn append(&self, group_id: &str, records: Vec<KeyValue>) -> Result<(), ApiError> {
        if records.is_empty() {
            return Ok(());
        }
        self.append_for_group(group_id, records, None).map(|_| ())
    }

    /// [`append`](Self::append), and with `txn` (producer id, epoch) the records of a
    /// transactional offset commit. Returns the group's partition.
    fn append_for_group(
        &self,
        group_id: &str,
        records: Vec<KeyValue>,
        txn: Option<(i64, i16)>,
    ) -> Result<i32, ApiError> {
        if self.log.num_partitions().is_none() {
            return Err(ApiError::new(ResponseError::CoordinatorNotAvailable, "offsets topic is missing"));
        }
        let index = self.partition_for(group_id);
        if !records.is_empty() {
            self.log.append(index, records, txn, self.clock.now_ms())?;
        }
        Ok(index)
    }

    /// Replays every `__consumer_offsets` partition into memory (startup on one node, which
    /// leads them all). Returns the number of records applied.
    pub fn load(&self) -> usize {
        let n = self.log.num_partitions().unwrap_or(0);
        (0..n).map(|p| self.load_partition(p)).sum()
    }

    /// Replays one `__consumer_offsets` partition and makes its groups this coordinator's,
    /// replacing whatever was held for it. Returns the number of records applied.
    pub fn load_partition(&self, p: i32) -> usize {
        let now = self.clock.now();
        let now_ms = self.clock.now_ms();
        let mut part = OffsetsPartition::default();
        let classic = |part: &mut OffsetsPartition, group: &str| {
            part.classic
                .entry(group.to_string())
                .or_insert_with(|| Arc::new(Mutex::new(ClassicGroup::new(group, now_ms))))
                .clone()
        };
        let result = records::replay(&*self.log, p, |rec| match rec {
            GroupRecord::Offset { group, topic, partition, value } => {
                let g = classic(&mut part, &group);
                let mut g = lock(&g);
                match value {
                    Some(v) => {
                        g.offsets.insert((topic, partition), v);
                    }
                    None => {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            }
            GroupRecord::Group { group, value } => match value {
                Some(stored) => lock(&classic(&mut part, &group)).restore(stored, now),
                None => {
                    part.classic.remove(&group);
                }
            },
            GroupRecord::Consumer { group, record } => consumer::load_record(&mut part, group, record, now),
        });
        let total = match result {
            Ok((n, open)) => {
                // Transactions still open at the crash: their marker comes later.
                for (pid, recs) in open {
                    let entry = part.pending_txn.entry(pid).or_default();
                    for rec in recs {
                        if let GroupRecord::Offset { group, topic, partition, value: Some(value) } = rec {
                            entry.push(PendingTxnOffset { group, topic, partition, value });
                        }
                    }
                }
                n
            }
            Err(e) => {
                tracing::warn!(partition = p, error = %e.message, "loading group partition failed");
                0
            }
        };
        // Groups with neither members nor offsets carry nothing worth keeping.
        part.classic.retain(|_, g| {
            let g = lock(g);
            !(g.members.is_empty() && g.offsets.is_empty())
        });
        consumer::finish_load(&part, &self.topics.image());
        self.state().insert(p, part);
        total
    }

    /// Drops one partition's groups (its leadership moved away). Members waiting in JoinGroup or
    /// SyncGroup are answered as their group vanished; their next request finds the new
    /// coordinator.
    pub fn unload_partition(&self, p: i32) {
        self.state().remove(&p);
    }

    /// The `__consumer_offsets` partitions this coordinator holds state for.
    pub fn loaded_partitions(&self) -> Vec<i32> {
        self.state().keys().copied().collect()
    }

    /// Classic groups (consumer groups are listed by `list_consumer`).
    pub fn list(&self) -> Vec<GroupListing> {
        let groups: Vec<GroupRef> = self.classic_groups();
        let consumer: HashSet<String> = self.list_consumer().into_iter().map(|(id, _)| id).collect();
        let mut out: Vec<GroupListing> = groups
            .iter()
            .map(|g| {
                let g = lock(g);
                GroupListing {
                    group_id: g.group_id.clone(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    state: g.state,
                }
            })
            .filter(|l| l.state != GroupState::Dead && !consumer.contains(&l.group_id))
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DeleteGroups for one group: only empty groups, removing their offsets durably.
    pub fn delete_group(&self, group_id: &str) -> Option<ResponseError> {
        let mut was_consumer = false;
        if let Some(outcome) = self.consumer_delete(group_id) {
            if let Some(code) = outcome {
                return Some(code);
            }
            was_consumer = true;
        }
        let Some(group) = self.get(group_id) else {
            return if was_consumer { None } else { Some(ResponseError::GroupIdNotFound) };
        };
        let mut g = lock(&group);
        if g.state == GroupState::Dead {
            return Some(ResponseError::GroupIdNotFound);
        }
        if !g.members.is_empty() {
            return Some(ResponseError::NonEmptyGroup);
        }
        let mut records: Vec<(Bytes, Option<Bytes>)> =
            g.offsets.keys().map(|(t, p)| (records::offset_key(group_id, t, *p), None)).collect();
        records.push((records::group_key(group_id), None));
        if let Err(e) = self.append(group_id, records) {
            tracing::warn!(group = group_id, error = %e.message, "deleting group failed");
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        g.offsets.clear();
        g.transition(GroupState::Dead, self.clock.now_ms());
        drop(g);
        self.remove_classic(group_id);
        None
    }

    /// One pass of deadline work; called by [`run`](Self::run) every tick.
    pub fn tick(&self, retention_due: bool) {
        let now = self.clock.now();
        let now_ms = self.clock.now_ms();
        self.consumer_tick(retention_due);
        let active_consumer = if retention_due { self.active_consumer_groups() } else { HashSet::new() };
        let groups: Vec<GroupRef> = self.classic_groups();
        let mut drop_groups = Vec::new();
        for group in groups {
            let mut g = lock(&group);
            let mut changed = false;
            for id in g.expired_members(now) {
                tracing::info!(group = %g.group_id, member = %id, "member session expired");
                g.remove_member(&id);
                changed = true;
            }
            for id in g.unsynced_members(now) {
                tracing::info!(group = %g.group_id, member = %id, "member did not sync in time");
                g.remove_member(&id);
                changed = true;
            }
            let stale: Vec<String> = g
                .pending_members
                .iter()
                .filter(|(_, t)| {
                    now.duration_since(**t) > Duration::from_millis(self.config.max_session_timeout_ms.max(0) as u64)
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in stale {
                g.pending_members.remove(&id);
            }
            if changed {
                self.membership_changed(&mut g);
            } else if g.maybe_complete_join(now, now_ms) {
                self.after_join_completed(&g);
            }
            // A consumer group with members keeps its offsets, as Kafka keeps those of
            // subscribed topics.
            if retention_due && !active_consumer.contains(&g.group_id) {
                self.expire_offsets(&mut g, now_ms);
                if g.state == GroupState::Empty
                    && g.members.is_empty()
                    && g.offsets.is_empty()
                    && g.pending_members.is_empty()
                {
                    let _ = self.append(&g.group_id.clone(), vec![(records::group_key(&g.group_id), None)]);
                    drop_groups.push(g.group_id.clone());
                }
            }
        }
        for id in drop_groups {
            self.remove_classic(&id);
        }
    }

    /// Drives deadlines until shutdown.
    pub async fn run(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let retention_every = Duration::from_millis(self.config.offsets_retention_check_interval_ms.max(100) as u64);
        let mut last_retention = self.clock.now();
        loop {
            tokio::select! {
                _ = self.shutdown.wait() => return,
                _ = ticker.tick() => {}
            }
            let now = self.clock.now();
            let due = now.duration_since(last_retention) >= retention_every;
            if due {
                last_retention = now;
            }
            self.tick(due);
        }
    }
}
