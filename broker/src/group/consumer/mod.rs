//! KIP-848 consumer groups at the coordinator: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe, their deadlines, their records in `__consumer_offsets`, and how they
//! share group ids with classic groups.
//!
//! A group id is one type at a time, as in Kafka. Committed offsets of every group, of either
//! type, stay in the classic map's entry for that id (an Empty [`super::classic::ClassicGroup`]
//! holding only offsets), the way Kafka keeps offsets apart from group metadata. A non-empty
//! classic group refuses consumer heartbeats (GROUP_ID_NOT_FOUND) and a non-empty consumer group
//! refuses JoinGroup (INCONSISTENT_GROUP_PROTOCOL); an empty group of one type is converted on the
//! first request of the other, its old records tombstoned.
//!
//! - [`group`]: the state machine (epochs, reconciliation);
//! - [`assignor`]: the server-side assignors (`uniform`, `range`);
//! - [`persist`]: the records describing a group, the diff to append, and replay.
//!
//! Lock order: a classic group's lock may be held while taking a consumer group's lock, never the
//! reverse; map locks are only held to clone an `Arc`.

pub mod assignor;
pub mod group;
pub mod persist;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use crate::error::ApiError;

pub use self::group::{
    ConsumerGroup, ConsumerGroupConfig, ConsumerGroupState, HeartbeatArgs, HeartbeatError, HeartbeatOutcome,
    TopicsImage, LEAVE_GROUP_STATIC_MEMBER_EPOCH,
};
use super::{lock, records, GroupCoordinator, OffsetsPartition};

pub type ConsumerGroupRef = Arc<Mutex<ConsumerGroup>>;

pub(super) fn lock_consumer(g: &ConsumerGroupRef) -> MutexGuard<'_, ConsumerGroup> {
    // Transitions never panic midway on input; a poisoned lock still holds valid state.
    g.lock().unwrap_or_else(|e| e.into_inner())
}

/// A consumer group as ConsumerGroupDescribe reports it.
pub struct ConsumerGroupDescription {
    pub group: ConsumerGroup,
    pub state: ConsumerGroupState,
    pub assignor: String,
}

impl GroupCoordinator {
    pub(super) fn consumer_group(&self, group_id: &str) -> Option<ConsumerGroupRef> {
        let p = self.partition_for(group_id);
        self.state().get(&p)?.consumer.get(group_id).cloned()
    }

    fn consumer_get_or_create(&self, group_id: &str) -> ConsumerGroupRef {
        let p = self.partition_for(group_id);
        self.state()
            .entry(p)
            .or_default()
            .consumer
            .entry(group_id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(ConsumerGroup::new(group_id))))
            .clone()
    }

    fn remove_consumer(&self, group_id: &str) {
        let p = self.partition_for(group_id);
        if let Some(s) = self.state().get_mut(&p) {
            s.consumer.remove(group_id);
        }
    }

    /// Every consumer group, of every partition.
    fn consumer_groups(&self) -> Vec<ConsumerGroupRef> {
        self.state().values().flat_map(|s| s.consumer.values().cloned()).collect()
    }

    /// `group.consumer.heartbeat.interval.ms`, told to every heartbeating member.
    pub fn consumer_heartbeat_interval_ms(&self) -> i32 {
        self.config.consumer.heartbeat_interval_ms
    }

    /// Whether `group_id` is a KIP-848 consumer group.
    pub fn is_consumer_group(&self, group_id: &str) -> bool {
        self.consumer_group(group_id).is_some()
    }

    /// Ids of consumer groups that have members (their offsets never expire meanwhile).
    pub(super) fn active_consumer_groups(&self) -> HashSet<String> {
        let groups: Vec<ConsumerGroupRef> = self.consumer_groups();
        groups
            .iter()
            .filter_map(|g| {
                let g = lock_consumer(g);
                (!g.is_empty()).then(|| g.group_id.clone())
            })
            .collect()
    }

    /// Appends the records that turn `before` into `g`'s current state.
    fn persist_consumer(
        &self,
        before: &BTreeMap<bytes::Bytes, bytes::Bytes>,
        g: &ConsumerGroup,
    ) -> Result<(), ResponseError> {
        let records = persist::diff(before, &persist::records(g));
        self.append(&g.group_id, records).map_err(|e| {
            tracing::warn!(group = %g.group_id, error = %e.message, "persisting consumer group failed");
            ResponseError::CoordinatorNotAvailable
        })
    }

    /// ConsumerGroupHeartbeat: join, heartbeat, or leave (epoch -1/-2).
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        api_version: i16,
        args: HeartbeatArgs,
    ) -> Result<HeartbeatOutcome, HeartbeatError> {
        if group_id.is_empty() {
            return Err(ApiError::new(ResponseError::InvalidRequest, "GroupId can't be empty."));
        }
        let config = &self.config.consumer;
        ConsumerGroup::validate(&args, api_version, config)?;
        let image = self.topics.image();
        let now = self.clock.now();
        let not_consumer =
            || ApiError::new(ResponseError::GroupIdNotFound, format!("Group {group_id} is not a consumer group."));
        // A joining member may create the group, or convert an empty classic group; the classic
        // lock is held meanwhile so no classic member slips in.
        let classic = if args.member_epoch == 0 { self.get(group_id) } else { None };
        let mut classic_guard = classic.as_ref().map(lock);
        let group = match self.consumer_group(group_id) {
            Some(g) => g,
            None if args.member_epoch == 0 => {
                if let Some(c) = classic_guard.as_deref_mut() {
                    if !c.members.is_empty() || !c.pending_members.is_empty() {
                        return Err(not_consumer());
                    }
                    if c.protocol_type.is_some() || c.generation > 0 {
                        // The empty classic group's metadata goes; its offsets stay.
                        self.append(group_id, vec![(records::group_key(group_id), None)])
                            .map_err(|_| ApiError::new(ResponseError::CoordinatorNotAvailable, String::new()))?;
                        c.protocol_type = None;
                        c.protocol = None;
                        c.leader = None;
                        c.generation = 0;
                    }
                }
                self.consumer_get_or_create(group_id)
            }
            None => {
                let classic = self.get(group_id).is_some_and(|c| !lock(&c).members.is_empty());
                return Err(if classic {
                    not_consumer()
                } else {
                    ApiError::new(ResponseError::GroupIdNotFound, format!("Consumer group {group_id} not found."))
                });
            }
        };
        let mut g = lock_consumer(&group);
        drop(classic_guard.take());
        let before = persist::records(&g);
        let snapshot = g.clone();
        let result = if args.member_epoch < 0 {
            g.leave(&args.member_id, args.member_epoch, args.instance_id.as_deref())
        } else {
            g.heartbeat(args, &image, config, now)
        };
        let result = result.and_then(|r| {
            self.persist_consumer(&before, &g).map_err(|e| ApiError::new(e, String::new()))?;
            Ok(r)
        });
        if result.is_err() {
            *g = snapshot;
            if g.is_empty() && g.group_epoch == 0 {
                drop(g);
                // Never persisted: forget the group created for this failed join.
                self.remove_consumer(group_id);
            }
        }
        result
    }

    /// ConsumerGroupDescribe of one group.
    pub fn consumer_describe(&self, group_id: &str) -> Result<ConsumerGroupDescription, ApiError> {
        let Some(group) = self.consumer_group(group_id) else {
            let classic = self.get(group_id).is_some_and(|c| {
                let c = lock(&c);
                !c.members.is_empty() || c.protocol_type.is_some()
            });
            return Err(if classic {
                ApiError::new(ResponseError::GroupIdNotFound, format!("Group {group_id} is not a consumer group."))
            } else {
                ApiError::new(ResponseError::GroupIdNotFound, format!("Group {group_id} not found."))
            });
        };
        let g = lock_consumer(&group);
        Ok(ConsumerGroupDescription {
            state: g.state(),
            assignor: g.preferred_assignor(&self.config.consumer),
            group: g.clone(),
        })
    }

    /// Consumer groups for ListGroups: (group id, state).
    pub fn list_consumer(&self) -> Vec<(String, ConsumerGroupState)> {
        let groups: Vec<ConsumerGroupRef> = self.consumer_groups();
        let mut out: Vec<(String, ConsumerGroupState)> = groups
            .iter()
            .map(|g| {
                let g = lock_consumer(g);
                (g.group_id.clone(), g.state())
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// JoinGroup on a consumer group id: refused while it has members; an empty one becomes a
    /// classic group (its records tombstoned). `None` lets the join go on.
    pub(super) fn classic_join_blocked(&self, group_id: &str) -> Option<ResponseError> {
        let group = self.consumer_group(group_id)?;
        let g = lock_consumer(&group);
        if !g.is_empty() {
            return Some(ResponseError::InconsistentGroupProtocol);
        }
        if self.append(group_id, persist::tombstones(&g)).is_err() {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        drop(g);
        self.remove_consumer(group_id);
        None
    }

    /// DeleteGroups on a consumer group id: `None` if it is not one; else the outcome for the
    /// group metadata (offsets are deleted by the caller's classic path).
    pub(super) fn consumer_delete(&self, group_id: &str) -> Option<Option<ResponseError>> {
        let group = self.consumer_group(group_id)?;
        let g = lock_consumer(&group);
        if !g.is_empty() {
            return Some(Some(ResponseError::NonEmptyGroup));
        }
        if let Err(e) = self.append(group_id, persist::tombstones(&g)) {
            tracing::warn!(group = group_id, error = %e.message, "deleting consumer group failed");
            return Some(Some(ResponseError::CoordinatorNotAvailable));
        }
        drop(g);
        self.remove_consumer(group_id);
        Some(None)
    }

    /// OffsetCommit check for a consumer group (`None` when `group_id` is not one).
    pub(super) fn consumer_commit_check(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        member_epoch: i32,
        transactional: bool,
        api_version: i16,
    ) -> Option<Result<(), ResponseError>> {
        let group = self.consumer_group(group_id)?;
        let g = lock_consumer(&group);
        Some(g.validate_offset_commit(member_id, instance_id, member_epoch, transactional, api_version))
    }

    /// OffsetFetch v9+ member check; Ok for groups that are not consumer groups.
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), ResponseError> {
        match self.consumer_group(group_id) {
            Some(group) => lock_consumer(&group).validate_offset_fetch(member_id, member_epoch),
            None => Ok(()),
        }
    }

    /// Whether a consumer group's member subscribes to `topic` (OffsetDelete refuses then).
    pub(super) fn consumer_subscribed_to(&self, group_id: &str, topic: &str) -> bool {
        self.consumer_group(group_id).is_some_and(|g| lock_consumer(&g).is_subscribed_to(topic))
    }

    /// Ticker work: expire sessions and unacknowledged revocations; at retention time drop empty
    /// consumer groups that no longer hold offsets.
    pub(super) fn consumer_tick(&self, retention_due: bool) {
        let now = self.clock.now();
        let session = Duration::from_millis(self.config.consumer.session_timeout_ms.max(0) as u64);
        let groups: Vec<ConsumerGroupRef> = self.consumer_groups();
        let mut empty = Vec::new();
        for group in groups {
            let mut g = lock_consumer(&group);
            let expired = g.expired_members(now, session);
            if !expired.is_empty() {
                let before = persist::records(&g);
                for (id, why) in expired {
                    tracing::info!(group = %g.group_id, member = %id, reason = why, "consumer group member removed");
                    g.remove_member(&id);
                }
                // Removal happens even if the write fails: a restart brings the members back,
                // and they expire again.
                let _ = self.persist_consumer(&before, &g);
            }
            if retention_due && g.is_empty() {
                empty.push(g.group_id.clone());
            }
        }
        for id in empty {
            // Classic lock first (lock order), then the group's.
            let classic = self.get(&id);
            let classic_guard = classic.as_ref().map(lock);
            if classic_guard.as_ref().is_some_and(|c| !c.offsets.is_empty()) {
                continue;
            }
            let Some(group) = self.consumer_group(&id) else { continue };
            let g = lock_consumer(&group);
            if g.is_empty() && self.append(&id, persist::tombstones(&g)).is_ok() {
                drop(g);
                self.remove_consumer(&id);
            }
        }
    }
}

/// Load: applies one replayed consumer-group record to its partition's state.
pub(super) fn load_record(part: &mut OffsetsPartition, group_id: String, rec: persist::ConsumerRecord, now: Instant) {
    let group = part
        .consumer
        .entry(group_id.clone())
        .or_insert_with(|| Arc::new(Mutex::new(ConsumerGroup::new(&group_id))))
        .clone();
    let keep = persist::apply(&mut lock_consumer(&group), rec, now);
    if !keep {
        part.consumer.remove(&group_id);
    }
}

/// Load, after replay: the subscribed metadata is recomputed from today's topics, so a restart
/// alone does not bump group epochs; static members that had left keep waiting.
pub(super) fn finish_load(part: &OffsetsPartition, image: &TopicsImage) {
    for group in part.consumer.values() {
        let mut g = lock_consumer(group);
        g.subscribed_metadata = g.subscribed_metadata_for(image);
        let n = g.members.values().filter(|m| m.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH).count();
        tracing::info!(group = %g.group_id, epoch = g.group_epoch, members = n, "consumer group loaded");
    }
}
