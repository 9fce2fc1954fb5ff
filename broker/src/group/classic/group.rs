//! The classic (pre-KIP-848) group state machine, after Kafka's `ClassicGroup`:
//! Empty → PreparingRebalance → CompletingRebalance → Stable (→ Dead when deleted).
//!
//! Pure state plus the channels of members waiting for a JoinGroup or SyncGroup answer; all
//! transitions happen under the coordinator's per-group lock and never await. Time comes in as
//! `Instant`s so the rules are testable.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use crate::group::records::{OffsetAndMetadata, StoredGroup, StoredMember};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's names, as DescribeGroups and ListGroups report them.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a member waiting in JoinGroup is eventually told.
#[derive(Debug, Clone)]
pub struct JoinResult {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub skip_assignment: bool,
    /// Filled for the leader only: (member id, instance id, metadata).
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    pub fn error(code: ResponseError, member_id: &str) -> Self {
        Self {
            error: Some(code),
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// What a member waiting in SyncGroup is eventually told.
#[derive(Debug, Clone)]
pub struct SyncResult {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(code: ResponseError) -> Self {
        Self { error: Some(code), protocol_type: None, protocol: None, assignment: Bytes::new() }
    }
}

#[derive(Debug)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_heartbeat: Instant,
    pub awaiting_join: Option<oneshot::Sender<JoinResult>>,
    pub awaiting_sync: Option<oneshot::Sender<SyncResult>>,
    /// Joined during the current rebalance (so it is not waited for beyond its own timeout).
    pub is_new: bool,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    fn expired(&self, now: Instant) -> bool {
        self.awaiting_join.is_none() && self.awaiting_sync.is_none() && now > self.last_heartbeat + self.session_timeout
    }
}

#[derive(Debug)]
pub struct ClassicGroup {
    pub group_id: String,
    pub state: GroupState,
    pub state_timestamp_ms: i64,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// Members by id, in join order (the first joiner leads when the leader is gone).
    pub members: BTreeMap<String, Member>,
    pub join_order: Vec<String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED (KIP-394) that have not joined yet, with
    /// the time they were handed out.
    pub pending_members: HashMap<String, Instant>,
    /// Static membership: instance id → current member id.
    pub static_members: HashMap<String, String>,
    /// When the join phase ends at the latest.
    pub join_deadline: Option<Instant>,
    /// The initial-rebalance delay window for a new group (Kafka's InitialDelayedJoin).
    pub initial_delay_until: Option<Instant>,
    pub initial_delay_cap: Option<Instant>,
    /// When members that have not synced are removed.
    pub sync_deadline: Option<Instant>,
    pub offsets: BTreeMap<(String, i32), OffsetAndMetadata>,
}

impl ClassicGroup {
    pub fn new(group_id: &str, now_ms: i64) -> Self {
        Self {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            join_order: Vec::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            join_deadline: None,
            initial_delay_until: None,
            initial_delay_cap: None,
            sync_deadline: None,
            offsets: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    pub fn add_member(&mut self, m: Member) {
        if let Some(i) = &m.instance_id {
            self.static_members.insert(i.clone(), m.member_id.clone());
        }
        self.pending_members.remove(&m.member_id);
        self.join_order.push(m.member_id.clone());
        self.members.insert(m.member_id.clone(), m);
    }

    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let m = self.members.remove(member_id)?;
        self.join_order.retain(|id| id != member_id);
        if let Some(i) = &m.instance_id {
            if self.static_members.get(i).map(String::as_str) == Some(member_id) {
                self.static_members.remove(i);
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.join_order.first().cloned();
        }
        Some(m)
    }

    /// Protocols every member supports, chosen by member votes (each votes for its most preferred
    /// candidate), ties broken by the first member's preference.
    pub fn select_protocol(&self) -> Option<String> {
        let mut candidates: Option<Vec<String>> = None;
        for m in self.members.values() {
            let names: Vec<String> = m.protocols.iter().map(|(n, _)| n.clone()).collect();
            candidates = Some(match candidates {
                None => names,
                Some(c) => c.into_iter().filter(|n| names.contains(n)).collect(),
            });
        }
        let candidates = candidates?;
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(n.as_str()).or_default() += 1;
            }
        }
        let first = self.join_order.first().and_then(|id| self.members.get(id));
        let rank = |n: &str| first.and_then(|m| m.protocols.iter().position(|(p, _)| p == n)).unwrap_or(usize::MAX);
        candidates
            .iter()
            .max_by(|a, b| votes.get(a.as_str()).cmp(&votes.get(b.as_str())).then(rank(b).cmp(&rank(a))))
            .cloned()
    }

    /// Whether `protocols` shares at least one protocol with every current member.
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref().is_some_and(|t| t != protocol_type) {
            return false;
        }
        protocols.iter().any(|(n, _)| self.members.values().all(|m| m.protocols.iter().any(|(p, _)| p == n)))
    }

    /// Starts a rebalance: pending syncs are told REBALANCE_IN_PROGRESS.
    pub fn prepare_rebalance(&mut self, now: Instant, now_ms: i64, initial_delay: Duration) {
        for m in self.members.values_mut() {
            if let Some(tx) = m.awaiting_sync.take() {
                let _ = tx.send(SyncResult::error(ResponseError::RebalanceInProgress));
            }
        }
        let rebalance_timeout = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or(Duration::ZERO);
        if self.state == GroupState::Empty && !initial_delay.is_zero() {
            self.initial_delay_until = Some(now + initial_delay.min(rebalance_timeout));
            self.initial_delay_cap = Some(now + rebalance_timeout);
        } else {
            self.initial_delay_until = None;
            self.initial_delay_cap = None;
        }
        self.join_deadline = Some(now + rebalance_timeout);
        self.sync_deadline = None;
        self.transition(GroupState::PreparingRebalance, now_ms);
    }

    /// During the initial delay, each new member pushes the window out again (up to the cap).
    pub fn extend_initial_delay(&mut self, now: Instant, initial_delay: Duration) {
        if let (Some(_), Some(cap)) = (self.initial_delay_until, self.initial_delay_cap) {
            self.initial_delay_until = Some((now + initial_delay).min(cap));
        }
    }

    /// Ends the join phase if every member has rejoined (and any initial delay passed) or the
    /// deadline passed. Returns whether it completed (the caller persists the group then).
    pub fn maybe_complete_join(&mut self, now: Instant, now_ms: i64) -> bool {
        if self.state != GroupState::PreparingRebalance {
            return false;
        }
        let all_joined = self.members.values().all(|m| m.awaiting_join.is_some()) && self.pending_members.is_empty();
        let delay_over = self.initial_delay_until.is_none_or(|t| now >= t);
        let deadline_passed = self.join_deadline.is_some_and(|t| now >= t);
        if !((all_joined && delay_over) || deadline_passed) {
            return false;
        }
        // Members that did not rejoin in time leave the group.
        let missing: Vec<String> =
            self.members.values().filter(|m| m.awaiting_join.is_none()).map(|m| m.member_id.clone()).collect();
        for id in missing {
            self.remove_member(&id);
        }
        self.pending_members.clear();
        self.initial_delay_until = None;
        self.initial_delay_cap = None;
        self.join_deadline = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.transition(GroupState::Empty, now_ms);
            return true;
        }
        self.protocol = self.select_protocol();
        self.protocol_type = self.members.values().next().map(|m| m.protocol_type.clone());
        if self.leader.as_ref().is_none_or(|l| !self.members.contains_key(l)) {
            self.leader = self.join_order.first().cloned();
        }
        self.transition(GroupState::CompletingRebalance, now_ms);
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let all: Vec<(String, Option<String>, Bytes)> = self
            .join_order
            .iter()
            .filter_map(|id| self.members.get(id))
            .map(|m| (m.member_id.clone(), m.instance_id.clone(), m.metadata_for(&protocol)))
            .collect();
        let sync_timeout = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or(Duration::ZERO);
        self.sync_deadline = Some(now + sync_timeout);
        for m in self.members.values_mut() {
            m.is_new = false;
            m.last_heartbeat = now;
            if let Some(tx) = m.awaiting_join.take() {
                let _ = tx.send(JoinResult {
                    error: None,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol: self.protocol.clone(),
                    leader: leader.clone(),
                    member_id: m.member_id.clone(),
                    skip_assignment: false,
                    members: if m.member_id == leader { all.clone() } else { Vec::new() },
                });
            }
        }
        true
    }

    /// Completes the sync phase with the leader's assignments.
    pub fn complete_sync(&mut self, assignments: HashMap<String, Bytes>, now_ms: i64) {
        for m in self.members.values_mut() {
            m.assignment = assignments.get(&m.member_id).cloned().unwrap_or_default();
        }
        self.sync_deadline = None;
        self.transition(GroupState::Stable, now_ms);
        let (pt, p) = (self.protocol_type.clone(), self.protocol.clone());
        for m in self.members.values_mut() {
            if let Some(tx) = m.awaiting_sync.take() {
                let _ = tx.send(SyncResult {
                    error: None,
                    protocol_type: pt.clone(),
                    protocol: p.clone(),
                    assignment: m.assignment.clone(),
                });
            }
        }
    }

    /// Members whose session expired (not waiting in a join or sync).
    pub fn expired_members(&self, now: Instant) -> Vec<String> {
        self.members.values().filter(|m| m.expired(now)).map(|m| m.member_id.clone()).collect()
    }

    /// Members that never synced before the sync deadline.
    pub fn unsynced_members(&self, now: Instant) -> Vec<String> {
        if self.state != GroupState::CompletingRebalance || self.sync_deadline.is_none_or(|t| now < t) {
            return Vec::new();
        }
        self.members.values().filter(|m| m.awaiting_sync.is_none()).map(|m| m.member_id.clone()).collect()
    }

    /// The persisted form of the group.
    pub fn to_stored(&self) -> StoredGroup {
        let protocol = self.protocol.clone().unwrap_or_default();
        StoredGroup {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: self.state_timestamp_ms,
            members: self
                .join_order
                .iter()
                .filter_map(|id| self.members.get(id))
                .map(|m| StoredMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its persisted form; members get a fresh session to heartbeat in.
    pub fn restore(&mut self, stored: StoredGroup, now: Instant) {
        self.generation = stored.generation;
        self.protocol_type = (!stored.protocol_type.is_empty()).then_some(stored.protocol_type.clone());
        self.protocol = stored.protocol.clone();
        self.leader = stored.leader.clone();
        self.state_timestamp_ms = stored.state_timestamp;
        self.members.clear();
        self.join_order.clear();
        self.static_members.clear();
        let protocol = stored.protocol.unwrap_or_default();
        for m in stored.members {
            self.add_member(Member {
                member_id: m.member_id,
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout: Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                protocol_type: stored.protocol_type.clone(),
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                last_heartbeat: now,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
            });
        }
        self.state = if self.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> Member {
        Member {
            member_id: id.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: protocols.iter().map(|p| (p.to_string(), Bytes::new())).collect(),
            assignment: Bytes::new(),
            last_heartbeat: Instant::now(),
            awaiting_join: None,
            awaiting_sync: None,
            is_new: true,
        }
    }

    #[test]
    fn protocol_selection_picks_a_common_protocol_by_votes() {
        let mut g = ClassicGroup::new("g", 0);
        g.add_member(member("a", &["range", "roundrobin"]));
        g.add_member(member("b", &["roundrobin", "range"]));
        g.add_member(member("c", &["roundrobin"]));
        assert_eq!(g.select_protocol().as_deref(), Some("roundrobin"));
        assert!(g.supports("consumer", &[("roundrobin".into(), Bytes::new())]));
        assert!(!g.supports("consumer", &[("sticky".into(), Bytes::new())]));
    }

    #[test]
    fn join_completes_when_all_rejoin_and_drops_laggards_at_the_deadline() {
        let now = Instant::now();
        let mut g = ClassicGroup::new("g", 0);
        let (tx_a, mut rx_a) = oneshot::channel();
        let mut a = member("a", &["range"]);
        a.awaiting_join = Some(tx_a);
        g.add_member(a);
        g.add_member(member("b", &["range"]));
        g.prepare_rebalance(now, 0, Duration::ZERO);
        assert!(!g.maybe_complete_join(now, 0), "b has not rejoined");
        assert!(g.maybe_complete_join(now + Duration::from_secs(31), 0), "deadline passed");
        assert_eq!(g.members.len(), 1);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let r = rx_a.try_recv().expect("answered");
        assert_eq!(r.generation, 1);
        assert_eq!(r.leader, "a");
        assert_eq!(r.members.len(), 1);
    }

    #[test]
    fn sessions_expire_only_when_not_waiting() {
        let now = Instant::now();
        let mut g = ClassicGroup::new("g", 0);
        let mut a = member("a", &["range"]);
        a.last_heartbeat = now;
        g.add_member(a);
        assert!(g.expired_members(now + Duration::from_secs(5)).is_empty());
        assert_eq!(g.expired_members(now + Duration::from_secs(11)), vec!["a".to_string()]);
    }
}
