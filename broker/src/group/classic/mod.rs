//! Classic consumer groups at the coordinator: JoinGroup, SyncGroup, Heartbeat, LeaveGroup and
//! DescribeGroups over the [`ClassicGroup`] state machine (in [`group`]), and the group metadata
//! record each new generation writes to `__consumer_offsets`.
//!
//! Every group is a [`ClassicGroup`] behind its own `std::sync::Mutex`. Requests that must wait —
//! JoinGroup until the join phase ends, SyncGroup until the leader's assignment — register a
//! oneshot channel under the lock and await it after releasing the lock; the coordinator's
//! [`tick`](super::GroupCoordinator::tick) ends join phases and expires sessions by the clock.

pub mod group;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

pub use self::group::{ClassicGroup, GroupState, JoinResult, Member, SyncResult};
use super::{lock, records, GroupCoordinator};

/// What a JoinGroup asks for.
#[derive(Debug, Clone)]
pub struct JoinArgs {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub client_id: String,
    pub client_host: String,
    /// v4+: a first join without a member id gets MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member: bool,
}

/// One group as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

fn new_member_id(prefix: &str) -> String {
    let prefix = if prefix.is_empty() { "member" } else { prefix };
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

impl GroupCoordinator {
    fn persist_group(&self, g: &ClassicGroup) -> Result<(), ResponseError> {
        let value = records::group_value(&g.to_stored());
        self.append(&g.group_id, vec![(records::group_key(&g.group_id), Some(value))]).map_err(|e| {
            tracing::warn!(group = %g.group_id, error = %e.message, "persisting group failed");
            ResponseError::CoordinatorNotAvailable
        })
    }

    pub(super) fn after_join_completed(&self, g: &ClassicGroup) {
        // The new generation (or the group becoming empty) is made durable; a failure only
        // means a restart may see the previous generation, which members then rejoin from.
        let _ = self.persist_group(g);
    }

    fn initial_delay(&self) -> Duration {
        Duration::from_millis(self.config.initial_rebalance_delay_ms.max(0) as u64)
    }

    /// JoinGroup. Waits for the join phase to end when the member takes part in a rebalance.
    pub async fn join(&self, args: JoinArgs) -> JoinResult {
        if args.group_id.is_empty() {
            return JoinResult::error(ResponseError::InvalidGroupId, &args.member_id);
        }
        if let Some(code) = self.classic_join_blocked(&args.group_id) {
            return JoinResult::error(code, &args.member_id);
        }
        if args.session_timeout_ms < self.config.min_session_timeout_ms
            || args.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return JoinResult::error(ResponseError::InvalidSessionTimeout, &args.member_id);
        }
        let group = if args.member_id.is_empty() {
            self.get_or_create(&args.group_id)
        } else {
            match self.get(&args.group_id) {
                Some(g) => g,
                None => return JoinResult::error(ResponseError::UnknownMemberId, &args.member_id),
            }
        };
        let rx = {
            let mut g = lock(&group);
            match self.join_locked(&mut g, args) {
                Ok(result) => return result,
                Err(rx) => rx,
            }
        };
        tokio::select! {
            r = rx => r.unwrap_or_else(|_| JoinResult::error(ResponseError::UnknownMemberId, "")),
            _ = self.shutdown.wait() => JoinResult::error(ResponseError::CoordinatorNotAvailable, ""),
        }
    }

    fn join_locked(&self, g: &mut ClassicGroup, args: JoinArgs) -> Result<JoinResult, oneshot::Receiver<JoinResult>> {
        let now = self.clock.now();
        let now_ms = self.clock.now_ms();
        if g.state == GroupState::Dead {
            return Ok(JoinResult::error(ResponseError::CoordinatorNotAvailable, &args.member_id));
        }
        if !g.supports(&args.protocol_type, &args.protocols) {
            return Ok(JoinResult::error(ResponseError::InconsistentGroupProtocol, &args.member_id));
        }
        let session = Duration::from_millis(args.session_timeout_ms.max(0) as u64);
        let rebalance = Duration::from_millis(args.rebalance_timeout_ms.max(args.session_timeout_ms).max(0) as u64);
        let make_member = |id: String, tx: Option<oneshot::Sender<JoinResult>>| Member {
            member_id: id,
            instance_id: args.instance_id.clone(),
            client_id: args.client_id.clone(),
            client_host: args.client_host.clone(),
            session_timeout: session,
            rebalance_timeout: rebalance,
            protocol_type: args.protocol_type.clone(),
            protocols: args.protocols.clone(),
            assignment: Bytes::new(),
            last_heartbeat: now,
            awaiting_join: tx,
            awaiting_sync: None,
            is_new: true,
        };

        if args.member_id.is_empty() {
            if let Some(instance) = &args.instance_id {
                if let Some(old_id) = g.static_members.get(instance).cloned() {
                    // A static member restarted: it takes over its old identity and assignment;
                    // the old member id is fenced.
                    let new_id = new_member_id(instance);
                    let Some(mut old) = g.remove_member(&old_id) else {
                        return Ok(JoinResult::error(ResponseError::UnknownMemberId, ""));
                    };
                    if let Some(tx) = old.awaiting_join.take() {
                        let _ = tx.send(JoinResult::error(ResponseError::FencedInstanceId, &old_id));
                    }
                    if let Some(tx) = old.awaiting_sync.take() {
                        let _ = tx.send(SyncResult::error(ResponseError::FencedInstanceId));
                    }
                    let was_leader = g.leader.as_deref() == Some(old_id.as_str());
                    let protocol = g.protocol.clone().unwrap_or_default();
                    let unchanged = old.metadata_for(&protocol)
                        == args
                            .protocols
                            .iter()
                            .find(|(n, _)| *n == protocol)
                            .map(|(_, m)| m.clone())
                            .unwrap_or_default()
                        && args.protocols.iter().any(|(n, _)| *n == protocol);
                    let mut m = make_member(new_id.clone(), None);
                    m.assignment = old.assignment.clone();
                    m.is_new = false;
                    if was_leader {
                        g.leader = Some(new_id.clone());
                    }
                    if g.state == GroupState::Stable && unchanged && !was_leader {
                        g.add_member(m);
                        let _ = self.persist_group(g);
                        return Ok(JoinResult {
                            error: None,
                            generation: g.generation,
                            protocol_type: g.protocol_type.clone(),
                            protocol: g.protocol.clone(),
                            leader: g.leader.clone().unwrap_or_default(),
                            member_id: new_id,
                            skip_assignment: false,
                            members: Vec::new(),
                        });
                    }
                    let (tx, rx) = oneshot::channel();
                    m.awaiting_join = Some(tx);
                    g.add_member(m);
                    self.rebalance_after_join(g, now, now_ms);
                    return Err(rx);
                }
            } else if args.require_known_member {
                let new_id = new_member_id(&args.client_id);
                if g.members.len() + g.pending_members.len() >= self.config.max_size {
                    return Ok(JoinResult::error(ResponseError::GroupMaxSizeReached, ""));
                }
                g.pending_members.insert(new_id.clone(), now);
                return Ok(JoinResult::error(ResponseError::MemberIdRequired, &new_id));
            }
            if g.members.len() >= self.config.max_size {
                return Ok(JoinResult::error(ResponseError::GroupMaxSizeReached, ""));
            }
            let new_id = new_member_id(args.instance_id.as_deref().unwrap_or(&args.client_id));
            let (tx, rx) = oneshot::channel();
            g.add_member(make_member(new_id, Some(tx)));
            self.rebalance_after_join(g, now, now_ms);
            return Err(rx);
        }

        let member_id = args.member_id.clone();
        if g.pending_members.contains_key(&member_id) {
            if g.members.len() >= self.config.max_size {
                g.pending_members.remove(&member_id);
                return Ok(JoinResult::error(ResponseError::GroupMaxSizeReached, &member_id));
            }
            let (tx, rx) = oneshot::channel();
            g.add_member(make_member(member_id, Some(tx)));
            self.rebalance_after_join(g, now, now_ms);
            return Err(rx);
        }
        if let Some(instance) = &args.instance_id {
            if g.static_members.get(instance).is_some_and(|id| *id != member_id) {
                return Ok(JoinResult::error(ResponseError::FencedInstanceId, &member_id));
            }
        }
        let state = g.state;
        let leader = g.leader.clone();
        let protocol = g.protocol.clone().unwrap_or_default();
        let Some(m) = g.members.get_mut(&member_id) else {
            return Ok(JoinResult::error(ResponseError::UnknownMemberId, &member_id));
        };
        let changed = m.protocols != args.protocols;
        m.protocols = args.protocols.clone();
        m.session_timeout = session;
        m.rebalance_timeout = rebalance;
        m.last_heartbeat = now;
        let is_leader = leader.as_deref() == Some(member_id.as_str());
        let current = |g: &ClassicGroup, with_members: bool| JoinResult {
            error: None,
            generation: g.generation,
            protocol_type: g.protocol_type.clone(),
            protocol: g.protocol.clone(),
            leader: g.leader.clone().unwrap_or_default(),
            member_id: member_id.clone(),
            skip_assignment: false,
            members: if with_members {
                g.join_order
                    .iter()
                    .filter_map(|id| g.members.get(id))
                    .map(|m| (m.member_id.clone(), m.instance_id.clone(), m.metadata_for(&protocol)))
                    .collect()
            } else {
                Vec::new()
            },
        };
        match state {
            GroupState::CompletingRebalance if !changed => Ok(current(g, is_leader)),
            GroupState::Stable if !changed && !is_leader => Ok(current(g, false)),
            _ => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = g.members.get_mut(&member_id) {
                    if let Some(old) = m.awaiting_join.replace(tx) {
                        let _ = old.send(JoinResult::error(ResponseError::RebalanceInProgress, &member_id));
                    }
                }
                self.rebalance_after_join(g, now, now_ms);
                Err(rx)
            }
        }
    }

    fn rebalance_after_join(&self, g: &mut ClassicGroup, now: Instant, now_ms: i64) {
        match g.state {
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance => {
                g.prepare_rebalance(now, now_ms, self.initial_delay())
            }
            GroupState::PreparingRebalance => g.extend_initial_delay(now, self.initial_delay()),
            GroupState::Dead => {}
        }
        if g.maybe_complete_join(now, now_ms) {
            self.after_join_completed(g);
        }
    }

    /// SyncGroup. The leader's call completes the phase for everyone.
    #[allow(clippy::too_many_arguments)]
    pub async fn sync(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: HashMap<String, Bytes>,
    ) -> SyncResult {
        let Some(group) = self.get(group_id) else {
            return SyncResult::error(ResponseError::UnknownMemberId);
        };
        let rx = {
            let mut g = lock(&group);
            if let Some(instance) = instance_id {
                if g.static_members.get(instance).is_some_and(|id| id != member_id) {
                    return SyncResult::error(ResponseError::FencedInstanceId);
                }
            }
            if !g.members.contains_key(member_id) {
                return SyncResult::error(ResponseError::UnknownMemberId);
            }
            if generation != g.generation {
                return SyncResult::error(ResponseError::IllegalGeneration);
            }
            if protocol_type.is_some_and(|t| Some(t) != g.protocol_type.as_deref())
                || protocol_name.is_some_and(|p| Some(p) != g.protocol.as_deref())
            {
                return SyncResult::error(ResponseError::InconsistentGroupProtocol);
            }
            match g.state {
                GroupState::Empty | GroupState::Dead => return SyncResult::error(ResponseError::UnknownMemberId),
                GroupState::PreparingRebalance => return SyncResult::error(ResponseError::RebalanceInProgress),
                GroupState::Stable => {
                    let m = &g.members[member_id];
                    return SyncResult {
                        error: None,
                        protocol_type: g.protocol_type.clone(),
                        protocol: g.protocol.clone(),
                        assignment: m.assignment.clone(),
                    };
                }
                GroupState::CompletingRebalance => {}
            }
            let (tx, rx) = oneshot::channel();
            if let Some(m) = g.members.get_mut(member_id) {
                m.awaiting_sync = Some(tx);
                m.last_heartbeat = self.clock.now();
            }
            if g.leader.as_deref() == Some(member_id) {
                let now_ms = self.clock.now_ms();
                let mut probe = g.to_stored();
                for m in &mut probe.members {
                    m.assignment = assignments.get(&m.member_id).cloned().unwrap_or_default();
                }
                let value = records::group_value(&probe);
                match self.append(group_id, vec![(records::group_key(group_id), Some(value))]) {
                    Ok(()) => g.complete_sync(assignments, now_ms),
                    Err(e) => {
                        tracing::warn!(group = group_id, error = %e.message, "persisting assignment failed");
                        g.prepare_rebalance(self.clock.now(), now_ms, Duration::ZERO);
                    }
                }
            }
            rx
        };
        tokio::select! {
            r = rx => r.unwrap_or_else(|_| SyncResult::error(ResponseError::UnknownMemberId)),
            _ = self.shutdown.wait() => SyncResult::error(ResponseError::CoordinatorNotAvailable),
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<ResponseError> {
        let Some(group) = self.get(group_id) else { return Some(ResponseError::UnknownMemberId) };
        let mut g = lock(&group);
        if let Some(instance) = instance_id {
            if g.static_members.get(instance).is_some_and(|id| id != member_id) {
                return Some(ResponseError::FencedInstanceId);
            }
        }
        let state = g.state;
        let current_generation = g.generation;
        let Some(m) = g.members.get_mut(member_id) else { return Some(ResponseError::UnknownMemberId) };
        match state {
            GroupState::Empty | GroupState::Dead => Some(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                m.last_heartbeat = self.clock.now();
                Some(ResponseError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                if generation != current_generation {
                    return Some(ResponseError::IllegalGeneration);
                }
                m.last_heartbeat = self.clock.now();
                None
            }
        }
    }

    /// LeaveGroup for each (member id, instance id); returns per-member errors.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        let Some(group) = self.get(group_id) else { return Err(ResponseError::UnknownMemberId) };
        let mut g = lock(&group);
        let mut errors = Vec::with_capacity(members.len());
        let mut removed_any = false;
        for (member_id, instance_id) in members {
            let id = match instance_id {
                Some(instance) => match g.static_members.get(instance) {
                    Some(id) if member_id.is_empty() || id == member_id => Some(id.clone()),
                    Some(_) => {
                        errors.push(Some(ResponseError::FencedInstanceId));
                        continue;
                    }
                    None => None,
                },
                None => Some(member_id.clone()),
            };
            match id.and_then(|id| g.remove_member(&id)) {
                Some(mut m) => {
                    if let Some(tx) = m.awaiting_join.take() {
                        let _ = tx.send(JoinResult::error(ResponseError::UnknownMemberId, &m.member_id));
                    }
                    if let Some(tx) = m.awaiting_sync.take() {
                        let _ = tx.send(SyncResult::error(ResponseError::UnknownMemberId));
                    }
                    removed_any = true;
                    errors.push(None);
                }
                None => {
                    if g.pending_members.remove(member_id).is_some() {
                        errors.push(None);
                    } else {
                        errors.push(Some(ResponseError::UnknownMemberId));
                    }
                }
            }
        }
        if removed_any {
            self.membership_changed(&mut g);
        }
        Ok(errors)
    }

    /// After members left or expired: rebalance the rest, or become Empty.
    pub(super) fn membership_changed(&self, g: &mut ClassicGroup) {
        let now = self.clock.now();
        let now_ms = self.clock.now_ms();
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => g.prepare_rebalance(now, now_ms, Duration::ZERO),
            GroupState::PreparingRebalance | GroupState::Empty | GroupState::Dead => {}
        }
        if g.maybe_complete_join(now, now_ms) {
            self.after_join_completed(g);
        }
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let group = self.get(group_id)?;
        let g = lock(&group);
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol.clone().unwrap_or_default();
        Some(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { protocol.clone() } else { String::new() },
            members: g
                .join_order
                .iter()
                .filter_map(|id| g.members.get(id))
                .map(|m| {
                    (
                        m.member_id.clone(),
                        m.instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        if stable { m.metadata_for(&protocol) } else { Bytes::new() },
                        if stable { m.assignment.clone() } else { Bytes::new() },
                    )
                })
                .collect(),
        })
    }
}
