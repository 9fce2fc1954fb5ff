//! KIP-848 consumer groups (`group.protocol=consumer`): the state machine behind
//! ConsumerGroupHeartbeat, after Kafka's `ConsumerGroup`, `ConsumerGroupMember` and
//! `CurrentAssignmentBuilder`.
//!
//! Three epochs drive a group:
//! - the **group epoch** goes up whenever what the assignor sees changes: a member joins, leaves
//!   or changes its subscription, or a subscribed topic gains partitions or appears (regex);
//! - the **target assignment epoch** is the group epoch the current target assignment was
//!   computed for; a heartbeat seeing `group_epoch > target_assignment_epoch` recomputes it;
//! - each **member epoch** says which target the member has reconciled to.
//!
//! Reconciliation is incremental and cooperative ([`ConsumerMember::reconcile`]): a member first
//! gives up what it no longer has in its target (UNREVOKED_PARTITIONS, same epoch) and only once it
//! acknowledges — by leaving those partitions out of a heartbeat's `topic_partitions` — moves to the
//! new epoch and receives new partitions, but only those no other member still holds
//! (UNRELEASED_PARTITIONS until they are freed). Invariant: a partition is in at most one member's
//! `assigned ∪ pending_revocation`.
//!
//! Pure state; the coordinator holds the group's `std::sync::Mutex` around every call and
//! persists the records [`ConsumerGroup::records`] yields. Time comes in as `Instant`s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use crate::error::ApiError;
use uuid::Uuid;

use super::assignor::{self, Assignment, MemberSpec};

/// Member epoch of a leave request (dynamic member).
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// Member epoch of a static member's temporary leave (it may come back with the same instance id).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// Kafka's `MemberState` with its persisted values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable = 1,
    UnrevokedPartitions = 2,
    UnreleasedPartitions = 3,
}

impl MemberState {
    pub fn from_i8(v: i8) -> MemberState {
        match v {
            2 => MemberState::UnrevokedPartitions,
            3 => MemberState::UnreleasedPartitions,
            _ => MemberState::Stable,
        }
    }
}

/// Kafka's `ConsumerGroup.ConsumerGroupState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
    Dead,
}

impl ConsumerGroupState {
    /// Kafka's names, as ListGroups and ConsumerGroupDescribe report them.
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
            ConsumerGroupState::Dead => "Dead",
        }
    }
}

/// Settings from the broker config (`group.consumer.*`).
#[derive(Debug, Clone)]
pub struct ConsumerGroupConfig {
    pub session_timeout_ms: i32,
    pub heartbeat_interval_ms: i32,
    /// Enabled assignors; the first is the default.
    pub assignors: Vec<String>,
    pub max_size: usize,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        Self {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            assignors: assignor::ASSIGNORS.iter().map(|s| s.to_string()).collect(),
            max_size: i32::MAX as usize,
        }
    }
}

/// The topics a heartbeat is resolved against: every non-internal topic by name.
#[derive(Debug, Clone, Default)]
pub struct TopicsImage {
    pub by_name: BTreeMap<String, (Uuid, i32)>,
}

impl TopicsImage {
    pub fn name_of(&self, id: &Uuid) -> Option<&str> {
        self.by_name.iter().find(|(_, (i, _))| i == id).map(|(n, _)| n.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    /// Runtime only: last heartbeat, and when an unacknowledged revocation fences the member.
    pub last_heartbeat: Instant,
    pub revocation_deadline: Option<Instant>,
}

impl ConsumerMember {
    pub fn new(member_id: &str, now: Instant) -> Self {
        Self {
            member_id: member_id.to_string(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            rebalance_timeout_ms: -1,
            member_epoch: 0,
            previous_member_epoch: -1,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            last_heartbeat: now,
            revocation_deadline: None,
        }
    }

    fn set_epoch(&mut self, epoch: i32) {
        if epoch != self.member_epoch {
            self.previous_member_epoch = self.member_epoch;
            self.member_epoch = epoch;
        }
    }

    /// Kafka's `CurrentAssignmentBuilder.build`: one reconciliation step towards `target` (at
    /// `target_epoch`). `owned` is what the member reported owning in this heartbeat (`None`:
    /// not reported, so it is assumed to still own everything it was given). `owner_of` tells
    /// which other member still holds a partition (assigned or pending revocation).
    pub fn reconcile(
        &mut self,
        target_epoch: i32,
        target: &Assignment,
        owned: Option<&Assignment>,
        owner_of: &dyn Fn(&Uuid, i32) -> bool,
    ) {
        match self.state {
            MemberState::Stable => {
                if self.member_epoch != target_epoch {
                    let assigned = self.assigned.clone();
                    self.next_assignment(self.member_epoch, &assigned, target_epoch, target, owned, owner_of);
                }
            }
            MemberState::UnrevokedPartitions => {
                if owns_any(owned, &self.pending_revocation) {
                    return;
                }
                // Revocation acknowledged: the member moves past its epoch.
                let assigned = self.assigned.clone();
                self.next_assignment(self.member_epoch + 1, &assigned, target_epoch, target, owned, owner_of);
            }
            MemberState::UnreleasedPartitions => {
                let assigned = self.assigned.clone();
                self.next_assignment(self.member_epoch, &assigned, target_epoch, target, owned, owner_of);
            }
        }
    }

    fn next_assignment(
        &mut self,
        epoch: i32,
        current: &Assignment,
        target_epoch: i32,
        target: &Assignment,
        owned: Option<&Assignment>,
        owner_of: &dyn Fn(&Uuid, i32) -> bool,
    ) {
        let mut has_unreleased = false;
        let mut assigned = Assignment::new();
        let mut revoke = Assignment::new();
        let mut pending_assign = Assignment::new();
        let topics: BTreeSet<Uuid> = target.keys().chain(current.keys()).copied().collect();
        let empty = BTreeSet::new();
        for topic in topics {
            let tgt = target.get(&topic).unwrap_or(&empty);
            let cur = current.get(&topic).unwrap_or(&empty);
            let keep: BTreeSet<i32> = cur.intersection(tgt).copied().collect();
            let rev: BTreeSet<i32> = cur.difference(&keep).copied().collect();
            let mut add: BTreeSet<i32> = tgt.difference(&keep).copied().collect();
            let own_pending = self.pending_revocation.get(&topic);
            let before = add.len();
            // A partition another member still holds is unreleased; one this member itself is
            // revoking is not (only one member ever holds a partition).
            add.retain(|p| !owner_of(&topic, *p) || own_pending.is_some_and(|s| s.contains(p)));
            has_unreleased |= add.len() != before;
            if !keep.is_empty() {
                assigned.insert(topic, keep);
            }
            if !rev.is_empty() {
                revoke.insert(topic, rev);
            }
            if !add.is_empty() {
                pending_assign.insert(topic, add);
            }
        }
        if !revoke.is_empty() && owns_any(owned, &revoke) {
            // Stay in the current epoch until the member acknowledges the revocation.
            self.state = MemberState::UnrevokedPartitions;
            self.set_epoch(epoch);
            self.assigned = assigned;
            self.pending_revocation = revoke;
        } else if !pending_assign.is_empty() {
            self.state = if has_unreleased { MemberState::UnreleasedPartitions } else { MemberState::Stable };
            self.set_epoch(target_epoch);
            for (t, ps) in pending_assign {
                assigned.entry(t).or_default().extend(ps);
            }
            self.assigned = assigned;
            self.pending_revocation = Assignment::new();
        } else {
            self.state = if has_unreleased { MemberState::UnreleasedPartitions } else { MemberState::Stable };
            self.set_epoch(target_epoch);
            self.assigned = assigned;
            self.pending_revocation = Assignment::new();
        }
    }
}

/// Whether `owned` (None: unknown, so yes) contains any partition of `partitions`.
fn owns_any(owned: Option<&Assignment>, partitions: &Assignment) -> bool {
    let Some(owned) = owned else { return true };
    owned.iter().any(|(t, ps)| partitions.get(t).is_some_and(|r| ps.iter().any(|p| r.contains(p))))
}

fn is_subset(owned: Option<&Assignment>, of: &Assignment) -> bool {
    let Some(owned) = owned else { return false };
    owned.iter().all(|(t, ps)| ps.is_empty() || of.get(t).is_some_and(|s| ps.is_subset(s)))
}

/// What a ConsumerGroupHeartbeat asks (request fields, `None` = "unchanged since last time").
#[derive(Debug, Clone, Default)]
pub struct HeartbeatArgs {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

impl HeartbeatArgs {
    /// Kafka sends the assignment back on a "full" request (join, or a client resending
    /// everything after an error) and whenever it changed.
    fn is_full(&self) -> bool {
        self.member_epoch == 0
            || (self.rebalance_timeout_ms != -1
                && (self.subscribed_topic_names.is_some() || self.subscribed_topic_regex.is_some())
                && self.owned.is_some())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatOutcome {
    pub member_id: String,
    pub member_epoch: i32,
    pub assignment: Option<Assignment>,
}

/// A heartbeat failure: code and message, as Kafka words them.
pub type HeartbeatError = ApiError;

#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub target_assignment_epoch: i32,
    pub target: BTreeMap<String, Assignment>,
    pub members: BTreeMap<String, ConsumerMember>,
    /// Subscribed topic name → (id, partitions) when the group epoch was last bumped for metadata.
    pub subscribed_metadata: BTreeMap<String, (Uuid, i32)>,
    /// Compiled regexes (runtime cache, never persisted).
    regexes: HashMap<String, Option<regex::Regex>>,
}

impl ConsumerGroup {
    pub fn new(group_id: &str) -> Self {
        Self {
            group_id: group_id.to_string(),
            group_epoch: 0,
            target_assignment_epoch: 0,
            target: BTreeMap::new(),
            members: BTreeMap::new(),
            subscribed_metadata: BTreeMap::new(),
            regexes: HashMap::new(),
        }
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch != self.target_assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.state != MemberState::Stable || m.member_epoch != self.target_assignment_epoch)
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether a member subscribes (by name or regex) to `topic`.
    pub fn is_subscribed_to(&mut self, topic: &str) -> bool {
        let members: Vec<(Vec<String>, Option<String>)> = self
            .members
            .values()
            .map(|m| (m.subscribed_topic_names.clone(), m.subscribed_topic_regex.clone()))
            .collect();
        members.iter().any(|(names, re)| {
            names.iter().any(|n| n == topic) || re.as_ref().is_some_and(|r| self.regex_matches(r, topic))
        })
    }

    fn regex_matches(&mut self, re: &str, topic: &str) -> bool {
        let compiled = self.regexes.entry(re.to_string()).or_insert_with(|| compile_regex(re).ok());
        compiled.as_ref().is_some_and(|r| r.is_match(topic))
    }

    /// The topics a member subscribes to that exist, by name.
    fn member_topics(&mut self, member_id: &str, image: &TopicsImage) -> BTreeSet<String> {
        let Some(m) = self.members.get(member_id) else { return BTreeSet::new() };
        let names = m.subscribed_topic_names.clone();
        let regex = m.subscribed_topic_regex.clone();
        let mut out: BTreeSet<String> = names.into_iter().filter(|n| image.by_name.contains_key(n)).collect();
        if let Some(re) = regex {
            for name in image.by_name.keys() {
                if self.regex_matches(&re, name) {
                    out.insert(name.clone());
                }
            }
        }
        out
    }

    /// Every subscribed, existing topic with its id and partition count.
    pub fn subscribed_metadata_for(&mut self, image: &TopicsImage) -> BTreeMap<String, (Uuid, i32)> {
        let ids: Vec<String> = self.members.keys().cloned().collect();
        let mut out = BTreeMap::new();
        for id in ids {
            for name in self.member_topics(&id, image) {
                if let Some(v) = image.by_name.get(&name) {
                    out.insert(name, *v);
                }
            }
        }
        out
    }

    /// The assignor the members prefer most (ties: the configured order), else the default.
    pub fn preferred_assignor(&self, config: &ConsumerGroupConfig) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let rank = |a: &str| config.assignors.iter().position(|x| x == a).unwrap_or(usize::MAX);
        votes
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(rank(b.0).cmp(&rank(a.0))))
            .map(|(a, _)| a.to_string())
            .or_else(|| config.assignors.first().cloned())
            .unwrap_or_else(|| assignor::UNIFORM.to_string())
    }

    fn compute_target(&mut self, image: &TopicsImage, config: &ConsumerGroupConfig) {
        let ids: Vec<String> = self.members.keys().cloned().collect();
        let mut specs = BTreeMap::new();
        for id in ids {
            let topics =
                self.member_topics(&id, image).iter().filter_map(|n| image.by_name.get(n).map(|(i, _)| *i)).collect();
            specs.insert(id.clone(), MemberSpec { topics, current: self.target.get(&id).cloned().unwrap_or_default() });
        }
        let topics: BTreeMap<Uuid, i32> = self.subscribed_metadata.values().copied().collect();
        self.target = assignor::assign(&self.preferred_assignor(config), &specs, &topics);
        self.target_assignment_epoch = self.group_epoch;
    }

    /// Whether a member other than `except` holds `(topic, partition)`.
    fn held_by_other(&self, except: &str) -> HashMap<(Uuid, i32), ()> {
        let mut held = HashMap::new();
        for m in self.members.values().filter(|m| m.member_id != except) {
            for a in [&m.assigned, &m.pending_revocation] {
                for (t, ps) in a {
                    for p in ps {
                        held.insert((*t, *p), ());
                    }
                }
            }
        }
        held
    }

    /// Bumps the group epoch if the subscribed topics' metadata changed (new topic matching a
    /// regex, more partitions, a deleted topic). Returns whether it did.
    pub fn refresh_metadata(&mut self, image: &TopicsImage) -> bool {
        let meta = self.subscribed_metadata_for(image);
        if meta != self.subscribed_metadata {
            self.subscribed_metadata = meta;
            if !self.members.is_empty() {
                self.group_epoch += 1;
            }
            return true;
        }
        false
    }

    /// Brings the target up to date with the group epoch and reconciles one member.
    fn update_member(
        &mut self,
        member_id: &str,
        owned: Option<&Assignment>,
        image: &TopicsImage,
        config: &ConsumerGroupConfig,
        now: Instant,
    ) {
        if self.group_epoch > self.target_assignment_epoch {
            self.compute_target(image, config);
        }
        let held = self.held_by_other(member_id);
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let target_epoch = self.target_assignment_epoch;
        let Some(m) = self.members.get_mut(member_id) else { return };
        let was_unrevoked = (m.state == MemberState::UnrevokedPartitions).then_some(m.member_epoch);
        m.reconcile(target_epoch, &target, owned, &|t, p| held.contains_key(&(*t, p)));
        if m.state == MemberState::UnrevokedPartitions {
            // The rebalance timeout starts when a revocation is first asked for at this epoch.
            if was_unrevoked != Some(m.member_epoch) || m.revocation_deadline.is_none() {
                m.revocation_deadline = Some(now + Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64));
            }
        } else {
            m.revocation_deadline = None;
        }
    }

    /// Validates a heartbeat's fields independent of group state (Kafka's
    /// `throwIfConsumerGroupHeartbeatRequestIsInvalid`).
    pub fn validate(
        args: &HeartbeatArgs,
        api_version: i16,
        config: &ConsumerGroupConfig,
    ) -> Result<(), HeartbeatError> {
        let invalid = |m: &str| Err(ApiError::new(ResponseError::InvalidRequest, m.to_string()));
        if args.instance_id.as_deref() == Some("") {
            return invalid("InstanceId can't be empty.");
        }
        if args.rack_id.as_deref() == Some("") {
            return invalid("RackId can't be empty.");
        }
        if (api_version >= 1 || args.member_epoch != 0) && args.member_id.is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if args.member_epoch == 0 {
            if args.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if args.owned.as_ref().is_some_and(|o| o.values().any(|s| !s.is_empty())) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if args.subscribed_topic_names.is_none() && args.subscribed_topic_regex.is_none() {
                return invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.");
            }
        } else if args.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            if args.instance_id.is_none() {
                return invalid("InstanceId can't be null.");
            }
        } else if args.member_epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            return invalid(&format!("MemberEpoch is {}, but must be greater than or equal to -2.", args.member_epoch));
        }
        if let Some(a) = &args.server_assignor {
            if !config.assignors.iter().any(|x| x == a) {
                return Err(ApiError::new(
                    ResponseError::UnsupportedAssignor,
                    format!(
                        "ServerAssignor {a} is not supported. Supported assignors: {}.",
                        config.assignors.join(", ")
                    ),
                ));
            }
        }
        if let Some(re) = args.subscribed_topic_regex.as_deref().filter(|r| !r.is_empty()) {
            if let Err(e) = compile_regex(re) {
                return Err(ApiError::new(
                    ResponseError::InvalidRegularExpression,
                    format!("SubscribedTopicRegex `{re}` is not a valid regular expression: {e}."),
                ));
            }
        }
        Ok(())
    }

    /// A heartbeat of a joining (epoch 0) or active member. Leaves go to [`leave`](Self::leave).
    pub fn heartbeat(
        &mut self,
        args: HeartbeatArgs,
        image: &TopicsImage,
        config: &ConsumerGroupConfig,
        now: Instant,
    ) -> Result<HeartbeatOutcome, HeartbeatError> {
        let mut bump = false;
        let member_id = args.member_id.clone();
        if args.member_epoch == 0 {
            let static_old = args.instance_id.as_ref().and_then(|i| {
                self.members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(i) && m.member_id != member_id)
                    .map(|m| m.member_id.clone())
            });
            if let Some(old_id) = static_old {
                // A static member coming back replaces its old incarnation and keeps its assignment,
                // unless the old one never left.
                let old = &self.members[&old_id];
                if old.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                    return Err(ApiError::new(
                        ResponseError::UnreleasedInstanceId,
                        format!(
                            "Static member {old_id} with instance id {} is not released yet.",
                            args.instance_id.clone().unwrap_or_default()
                        ),
                    ));
                }
                let Some(mut m) = self.members.remove(&old_id) else {
                    return Err(ApiError::new(ResponseError::UnknownMemberId, String::new()));
                };
                let target = self.target.remove(&old_id).unwrap_or_default();
                m.member_id = member_id.clone();
                m.member_epoch = m.previous_member_epoch.max(0);
                self.members.insert(member_id.clone(), m);
                self.target.insert(member_id.clone(), target);
            } else if let Some(m) = self.members.get_mut(&member_id) {
                // The member rejoins (after being fenced) and owns nothing any more.
                m.member_epoch = 0;
                m.previous_member_epoch = -1;
                m.state = MemberState::Stable;
                m.assigned.clear();
                m.pending_revocation.clear();
            } else {
                if self.members.len() >= config.max_size {
                    return Err(ApiError::new(
                        ResponseError::GroupMaxSizeReached,
                        format!("The consumer group has reached its maximum capacity of {} members.", config.max_size),
                    ));
                }
                self.members.insert(member_id.clone(), ConsumerMember::new(&member_id, now));
                bump = true;
            }
        } else {
            let Some(m) = self.members.get(&member_id) else {
                return Err(ApiError::new(
                    ResponseError::UnknownMemberId,
                    format!("Member {member_id} is not a member of group {}.", self.group_id),
                ));
            };
            let received = args.member_epoch;
            if received > m.member_epoch {
                return Err(ApiError::new(
                    ResponseError::FencedMemberEpoch,
                    format!("The consumer group member has a greater epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.", m.member_epoch),
                ));
            }
            if received < m.member_epoch
                && (received != m.previous_member_epoch || !is_subset(args.owned.as_ref(), &m.assigned))
            {
                return Err(ApiError::new(
                    ResponseError::FencedMemberEpoch,
                    format!("The consumer group member has a smaller member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.", m.member_epoch),
                ));
            }
        }
        let Some(m) = self.members.get_mut(&member_id) else {
            return Err(ApiError::new(ResponseError::UnknownMemberId, String::new()));
        };
        let before_assigned = m.assigned.clone();
        let before_epoch = m.member_epoch;
        m.last_heartbeat = now;
        if args.instance_id.is_some() {
            m.instance_id = args.instance_id.clone();
        }
        if args.rack_id.is_some() {
            m.rack_id = args.rack_id.clone();
        }
        m.client_id = args.client_id.clone();
        m.client_host = args.client_host.clone();
        if args.rebalance_timeout_ms != -1 {
            m.rebalance_timeout_ms = args.rebalance_timeout_ms;
        }
        if let Some(names) = &args.subscribed_topic_names {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            if names != m.subscribed_topic_names {
                m.subscribed_topic_names = names;
                bump = true;
            }
        }
        if let Some(re) = &args.subscribed_topic_regex {
            let re = (!re.is_empty()).then(|| re.clone());
            if re != m.subscribed_topic_regex {
                m.subscribed_topic_regex = re;
                bump = true;
            }
        }
        if args.server_assignor.is_some() && args.server_assignor != m.server_assignor {
            m.server_assignor = args.server_assignor.clone();
            bump = true;
        }
        if bump {
            self.group_epoch += 1;
        }
        // New subscriptions or new topic metadata change what the assignor sees.
        let meta = self.subscribed_metadata_for(image);
        if meta != self.subscribed_metadata {
            self.subscribed_metadata = meta;
            if !bump {
                self.group_epoch += 1;
            }
        }
        self.update_member(&member_id, args.owned.as_ref(), image, config, now);
        let m = &self.members[&member_id];
        let changed = m.assigned != before_assigned || m.member_epoch != before_epoch;
        Ok(HeartbeatOutcome {
            member_id: member_id.clone(),
            member_epoch: m.member_epoch,
            assignment: (args.is_full() || changed).then(|| m.assigned.clone()),
        })
    }

    /// A leave heartbeat (epoch -1, or -2 for a static member that will come back).
    pub fn leave(
        &mut self,
        member_id: &str,
        member_epoch: i32,
        instance_id: Option<&str>,
    ) -> Result<HeartbeatOutcome, HeartbeatError> {
        let id = match instance_id {
            // A static member may leave under its instance id.
            Some(i) => self
                .members
                .values()
                .find(|m| m.instance_id.as_deref() == Some(i))
                .map(|m| m.member_id.clone())
                .unwrap_or_else(|| member_id.to_string()),
            None => member_id.to_string(),
        };
        if !self.members.contains_key(&id) {
            return Err(ApiError::new(
                ResponseError::UnknownMemberId,
                format!("Member {member_id} is not a member of group {}.", self.group_id),
            ));
        }
        if member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            // Kept with its assignment until its session expires or it comes back.
            if let Some(m) = self.members.get_mut(&id) {
                m.previous_member_epoch = m.member_epoch;
                m.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
            }
        } else {
            self.remove_member(&id);
        }
        Ok(HeartbeatOutcome { member_id: member_id.to_string(), member_epoch, assignment: None })
    }

    /// Removes a member (left, expired, fenced); its partitions become free for the others.
    pub fn remove_member(&mut self, member_id: &str) {
        if self.members.remove(member_id).is_some() {
            self.target.remove(member_id);
            self.group_epoch += 1;
        }
    }

    /// Members whose session expired or who did not revoke in time.
    pub fn expired_members(&self, now: Instant, session_timeout: Duration) -> Vec<(String, &'static str)> {
        self.members
            .values()
            .filter_map(|m| {
                if now > m.last_heartbeat + session_timeout {
                    Some((m.member_id.clone(), "session timeout"))
                } else if m.state == MemberState::UnrevokedPartitions && m.revocation_deadline.is_some_and(|d| now > d)
                {
                    Some((m.member_id.clone(), "rebalance timeout"))
                } else {
                    None
                }
            })
            .collect()
    }

    /// Validates an OffsetCommit (Kafka's `ConsumerGroup.validateOffsetCommit`).
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        member_epoch: i32,
        transactional: bool,
        api_version: i16,
    ) -> Result<(), ResponseError> {
        // Epoch -1: an admin client or a consumer without group management, fine while the
        // group has no members.
        if member_epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        // TxnOffsetCommit before v3 carries no member information at all.
        if transactional && member_epoch == -1 && member_id.is_empty() && instance_id.is_none() {
            return Ok(());
        }
        let m = self.members.get(member_id).ok_or(ResponseError::UnknownMemberId)?;
        // Members of the consumer protocol commit with OffsetCommit v9+ (the member epoch).
        if !transactional && api_version < 9 {
            return Err(ResponseError::UnsupportedVersion);
        }
        if member_epoch != m.member_epoch {
            // TxnOffsetCommit has no STALE_MEMBER_EPOCH; Kafka answers ILLEGAL_GENERATION.
            return Err(if transactional { ResponseError::IllegalGeneration } else { ResponseError::StaleMemberEpoch });
        }
        Ok(())
    }

    /// Validates an OffsetFetch v9+ (Kafka's `ConsumerGroup.validateOffsetFetch`).
    pub fn validate_offset_fetch(&self, member_id: Option<&str>, member_epoch: i32) -> Result<(), ResponseError> {
        let Some(member_id) = member_id.filter(|_| member_epoch >= 0) else { return Ok(()) };
        let m = self.members.get(member_id).ok_or(ResponseError::UnknownMemberId)?;
        if member_epoch != m.member_epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }
}

/// Compiles a subscription regex. Kafka uses RE2/J, whose syntax the `regex` crate shares (no
/// backreferences or lookaround); a match is a full match, as Java's `Pattern.matcher().matches()`.
pub fn compile_regex(re: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{re})$"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(topics: &[(&str, u8, i32)]) -> TopicsImage {
        TopicsImage {
            by_name: topics.iter().map(|(n, id, p)| (n.to_string(), (Uuid::from_bytes([*id; 16]), *p))).collect(),
        }
    }

    fn join(id: &str, topics: &[&str]) -> HeartbeatArgs {
        HeartbeatArgs {
            member_id: id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(topics.iter().map(|s| s.to_string()).collect()),
            owned: Some(Assignment::new()),
            ..Default::default()
        }
    }

    fn hb(id: &str, epoch: i32, owned: &Assignment) -> HeartbeatArgs {
        HeartbeatArgs {
            member_id: id.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: Some(owned.clone()),
            ..Default::default()
        }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(|s| s.len()).sum()
    }

    /// No partition is in two members' assigned ∪ pending_revocation.
    fn assert_exclusive(g: &ConsumerGroup) {
        let mut seen = BTreeSet::new();
        for m in g.members.values() {
            for a in [&m.assigned, &m.pending_revocation] {
                for (t, ps) in a {
                    for p in ps {
                        assert!(seen.insert((*t, *p)), "partition {t}/{p} held twice: {:#?}", g.members);
                    }
                }
            }
        }
    }

    #[test]
    fn second_member_gets_partitions_only_after_the_first_revokes() {
        let cfg = ConsumerGroupConfig::default();
        let img = image(&[("t", 1, 4)]);
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g");
        let a = g.heartbeat(join("a", &["t"]), &img, &cfg, now).expect("a joins");
        assert_eq!(a.member_epoch, 1);
        let a_owned = a.assignment.expect("assignment");
        assert_eq!(count(&a_owned), 4);
        assert_eq!(g.state(), ConsumerGroupState::Stable);

        let b = g.heartbeat(join("b", &["t"]), &img, &cfg, now).expect("b joins");
        assert_eq!(b.member_epoch, 2, "b is at the new target epoch");
        assert_eq!(count(b.assignment.as_ref().expect("b assignment")), 0, "a still owns everything");
        assert_eq!(g.members["b"].state, MemberState::UnreleasedPartitions);
        assert_eq!(g.state(), ConsumerGroupState::Reconciling);

        // a heartbeats still owning all four: asked to revoke two, epoch unchanged.
        let a2 = g.heartbeat(hb("a", 1, &a_owned), &img, &cfg, now).expect("a hb");
        assert_eq!(a2.member_epoch, 1);
        let a_kept = a2.assignment.expect("a told to revoke");
        assert_eq!(count(&a_kept), 2);
        assert_eq!(g.members["a"].state, MemberState::UnrevokedPartitions);
        assert_exclusive(&g);
        // b still cannot have them.
        let b2 = g.heartbeat(hb("b", 2, &Assignment::new()), &img, &cfg, now).expect("b hb");
        assert!(b2.assignment.is_none());
        // a acknowledges; it moves to epoch 2; then b gets the two released partitions.
        let a3 = g.heartbeat(hb("a", 1, &a_kept), &img, &cfg, now).expect("a ack");
        assert_eq!(a3.member_epoch, 2);
        let b3 = g.heartbeat(hb("b", 2, &Assignment::new()), &img, &cfg, now).expect("b hb");
        assert_eq!(count(b3.assignment.as_ref().expect("b assigned")), 2);
        assert_eq!(g.state(), ConsumerGroupState::Stable);
        assert_exclusive(&g);
    }

    #[test]
    fn epochs_are_checked_and_leave_frees_partitions() {
        let cfg = ConsumerGroupConfig::default();
        let img = image(&[("t", 1, 2)]);
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g");
        g.heartbeat(join("a", &["t"]), &img, &cfg, now).expect("join");
        let err = g.heartbeat(hb("a", 5, &Assignment::new()), &img, &cfg, now).unwrap_err();
        assert_eq!(err.code, ResponseError::FencedMemberEpoch);
        let err = g.heartbeat(hb("zz", 1, &Assignment::new()), &img, &cfg, now).unwrap_err();
        assert_eq!(err.code, ResponseError::UnknownMemberId);
        g.heartbeat(join("b", &["t"]), &img, &cfg, now).expect("join b");
        g.leave("a", LEAVE_GROUP_MEMBER_EPOCH, None).expect("leave");
        let b = g.heartbeat(hb("b", 2, &Assignment::new()), &img, &cfg, now).expect("b");
        assert_eq!(count(b.assignment.as_ref().expect("all to b")), 2);
        assert_eq!(b.member_epoch, 3);
        let bad = HeartbeatArgs { server_assignor: Some("sticky".into()), ..join("c", &["t"]) };
        assert_eq!(ConsumerGroup::validate(&bad, 1, &cfg).unwrap_err().code, ResponseError::UnsupportedAssignor);
    }

    #[test]
    fn regex_subscription_picks_up_new_topics() {
        let cfg = ConsumerGroupConfig::default();
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g");
        let args = HeartbeatArgs {
            subscribed_topic_names: None,
            subscribed_topic_regex: Some("pre-.*".into()),
            ..join("a", &[])
        };
        let a = g.heartbeat(args, &image(&[("pre-1", 1, 2), ("other", 2, 3)]), &cfg, now).expect("join");
        assert_eq!(count(a.assignment.as_ref().expect("a")), 2);
        let owned = a.assignment.expect("a");
        let img = image(&[("pre-1", 1, 2), ("other", 2, 3), ("pre-2", 3, 1)]);
        let a2 = g.heartbeat(hb("a", a.member_epoch, &owned), &img, &cfg, now).expect("hb");
        assert_eq!(count(a2.assignment.as_ref().expect("new topic")), 3);
        assert!(a2.member_epoch > a.member_epoch);
    }

    proptest::proptest! {
        /// Random joins, leaves, expiries and heartbeats (acknowledging revocations or not): a
        /// partition never has two holders, and once everyone heartbeats with what it was told,
        /// the group converges to its target with every partition assigned.
        #[test]
        fn a_partition_never_has_two_owners(ops in proptest::collection::vec((0u8..4, 0usize..5, proptest::bool::ANY), 1..80)) {
            let cfg = ConsumerGroupConfig::default();
            let img = image(&[("t1", 1, 5), ("t2", 2, 3)]);
            let now = Instant::now();
            let mut g = ConsumerGroup::new("g");
            // Each client: epoch, what it owns, and an assignment it was told but has not
            // finished reconciling to (revocations take it a while).
            type Client = (i32, Assignment, Option<Assignment>);
            let mut client: BTreeMap<String, Client> = BTreeMap::new();
            let superset = |a: &Assignment, b: &Assignment| b.iter().all(|(t, ps)| a.get(t).is_some_and(|s| ps.is_subset(s)));
            let beat = |g: &mut ConsumerGroup, id: &str, c: &mut Client, ack: bool| -> Result<(), HeartbeatError> {
                if ack {
                    if let Some(d) = c.2.take() {
                        c.1 = d;
                    }
                }
                let r = g.heartbeat(hb(id, c.0, &c.1), &img, &cfg, now)?;
                c.0 = r.member_epoch;
                if let Some(a) = r.assignment {
                    // Pure additions are taken at once; anything else is a revocation to do.
                    if superset(&a, &c.1) {
                        c.1 = a;
                        c.2 = None;
                    } else {
                        c.2 = Some(a);
                    }
                }
                Ok(())
            };
            for (op, who, ack) in ops {
                let id = format!("m{who}");
                match op {
                    0 => {
                        let topics: &[&str] = if who % 2 == 0 { &["t1", "t2"] } else { &["t1"] };
                        if let Ok(r) = g.heartbeat(join(&id, topics), &img, &cfg, now) {
                            client.insert(id, (r.member_epoch, r.assignment.unwrap_or_default(), None));
                        }
                    }
                    1 => {
                        if g.leave(&id, LEAVE_GROUP_MEMBER_EPOCH, None).is_ok() {
                            client.remove(&id);
                        }
                    }
                    2 => {
                        // Expiry/fencing: the coordinator drops it; the client is gone too.
                        g.remove_member(&id);
                        client.remove(&id);
                    }
                    _ => {
                        if let Some(mut c) = client.get(&id).cloned() {
                            if beat(&mut g, &id, &mut c, ack).is_ok() {
                                client.insert(id, c);
                            }
                        }
                    }
                }
                assert_exclusive(&g);
                // Client-side view: what clients believe they own is also exclusive.
                let mut seen = BTreeSet::new();
                for (_, owned, _) in client.values() {
                    for (t, ps) in owned { for p in ps { proptest::prop_assert!(seen.insert((*t, *p)), "two clients own {t}/{p}"); } }
                }
            }
            // Converge: everyone heartbeats, finishing what it was told.
            for _ in 0..8 {
                for id in client.keys().cloned().collect::<Vec<_>>() {
                    let mut c = client[&id].clone();
                    beat(&mut g, &id, &mut c, true).expect("converging hb");
                    client.insert(id, c);
                    assert_exclusive(&g);
                }
            }
            if !client.is_empty() {
                proptest::prop_assert_eq!(g.state(), ConsumerGroupState::Stable);
                let total: usize = g.members.values().map(|m| count(&m.assigned)).sum();
                // t1 (5 partitions) has subscribers; t2 (3) only if an even-numbered member is in.
                let t2 = client.keys().any(|id| id.trim_start_matches('m').parse::<usize>().is_ok_and(|n| n % 2 == 0));
                proptest::prop_assert_eq!(total, if t2 { 8 } else { 5 });
            }
        }
    }
}
