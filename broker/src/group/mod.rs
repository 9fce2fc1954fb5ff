//! The group coordinator: classic consumer groups (JoinGroup/SyncGroup/Heartbeat/LeaveGroup),
//! committed offsets, and their durable form in `__consumer_offsets`.
//!
//! Every group is a [`ClassicGroup`] behind its own `std::sync::Mutex`; the map of groups has its
//! own lock, always taken before (never while holding) a group lock. Requests that must wait —
//! JoinGroup until the join phase ends, SyncGroup until the leader's assignment — register a
//! oneshot channel under the lock and await it after releasing the lock. A ticker drives
//! deadlines: join-phase end, initial rebalance delay, session expiry, sync timeout, and offset
//! retention.
//!
//! KIP-848 consumer groups (ConsumerGroupHeartbeat) live in a second map, see `consumer_ops`
//! for how the two kinds share group ids and for the lock order between them.

pub mod assignor;
pub mod classic;
pub mod consumer;
mod consumer_ops;
pub mod consumer_store;
pub mod snapshot;
pub mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use self::classic::{ClassicGroup, GroupState, JoinResult, Member, SyncResult};
use self::store::{GroupRecord, OffsetAndMetadata};
use crate::broker::Broker;

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
        let i = |k: &str| c.get_i64(k).unwrap_or(0);
        Self {
            min_session_timeout_ms: i("group.min.session.timeout.ms") as i32,
            max_session_timeout_ms: i("group.max.session.timeout.ms") as i32,
            initial_rebalance_delay_ms: i("group.initial.rebalance.delay.ms") as i32,
            max_size: i("group.max.size").max(1) as usize,
            offsets_retention_ms: i("offsets.retention.minutes").saturating_mul(60_000),
            offsets_retention_check_interval_ms: i("offsets.retention.check.interval.ms").max(1),
            // Above the record format's i16 length, metadata is OFFSET_METADATA_TOO_LARGE whatever
            // the config says.
            offset_metadata_max_bytes: (i("offset.metadata.max.bytes").max(0) as usize)
                .min(store::MAX_STORED_STRING_BYTES),
            consumer: consumer::ConsumerGroupConfig {
                session_timeout_ms: i("group.consumer.session.timeout.ms") as i32,
                heartbeat_interval_ms: i("group.consumer.heartbeat.interval.ms") as i32,
                assignors: c
                    .get("group.consumer.assignors")
                    .unwrap_or("uniform,range")
                    .split(',')
                    .filter_map(|s| {
                        // Kafka's class names name the same assignors.
                        let s = s.trim();
                        let short = s.rsplit('.').next().unwrap_or(s).trim_end_matches("Assignor").to_ascii_lowercase();
                        assignor::ASSIGNORS.iter().find(|a| **a == short).map(|a| a.to_string())
                    })
                    .collect(),
                max_size: i("group.consumer.max.size").max(1) as usize,
            },
        }
    }
}

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

/// One group as ListGroups reports it.
#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

type GroupRef = Arc<Mutex<ClassicGroup>>;

pub struct GroupCoordinator {
    config: GroupConfig,
    groups: Mutex<HashMap<String, GroupRef>>,
    /// KIP-848 consumer groups by id (see `consumer_ops`).
    consumer_groups: Mutex<HashMap<String, consumer_ops::ConsumerGroupRef>>,
    /// Offsets committed inside open transactions (TxnOffsetCommit), by producer id and
    /// `__consumer_offsets` partition; the transaction's marker applies or drops them.
    pending_txn: Mutex<HashMap<(i64, i32), Vec<PendingTxnOffset>>>,
}

/// One offset committed inside a transaction.
#[derive(Debug, Clone)]
struct PendingTxnOffset {
    group: String,
    topic: String,
    partition: i32,
    value: OffsetAndMetadata,
}

fn lock(g: &GroupRef) -> MutexGuard<'_, ClassicGroup> {
    // Group transitions never panic midway on input; a poisoned lock still holds valid state.
    g.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_member_id(prefix: &str) -> String {
    let prefix = if prefix.is_empty() { "member" } else { prefix };
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// Topics named in a consumer-protocol subscription (`ConsumerProtocolSubscription`).
pub fn subscribed_topics(metadata: &Bytes) -> Vec<String> {
    let mut b = metadata.clone();
    let mut out = Vec::new();
    if b.remaining() < 6 {
        return out;
    }
    let _version = b.get_i16();
    let n = b.get_i32();
    for _ in 0..n.max(0) {
        if b.remaining() < 2 {
            break;
        }
        let len = b.get_i16();
        if len < 0 || b.remaining() < len as usize {
            break;
        }
        let s = b.split_to(len as usize);
        out.push(String::from_utf8_lossy(&s).into_owned());
    }
    out
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> Self {
        Self {
            config,
            groups: Mutex::new(HashMap::new()),
            consumer_groups: Mutex::new(HashMap::new()),
            pending_txn: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, GroupRef>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, group_id: &str) -> Option<GroupRef> {
        self.map().get(group_id).cloned()
    }

    fn get_or_create(&self, group_id: &str) -> GroupRef {
        self.map()
            .entry(group_id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(ClassicGroup::new(group_id, crate::handlers::now_ms()))))
            .clone()
    }

    /// Replays `__consumer_offsets` into memory (startup).
    pub fn load(&self, broker: &Broker) -> usize {
        let Some(meta) = broker.metadata.topic(store::OFFSETS_TOPIC) else { return 0 };
        let now = Instant::now();
        let mut total = 0;
        for p in 0..meta.partitions {
            let Ok(log) = broker.partition(&meta, p) else { continue };
            let result = store::replay(&log, |rec| match rec {
                GroupRecord::Offset { group, topic, partition, value } => {
                    let g = self.get_or_create(&group);
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
                    Some(stored) => lock(&self.get_or_create(&group)).restore(stored, now),
                    None => {
                        self.map().remove(&group);
                    }
                },
                GroupRecord::Consumer { group, record } => self.load_consumer_record(group, record, now),
            });
            match result {
                Ok((n, open)) => {
                    total += n;
                    // Transactions still open at the crash: their marker comes later.
                    let mut pending = self.pending();
                    for (pid, records) in open {
                        let entry = pending.entry((pid, p)).or_default();
                        for rec in records {
                            if let GroupRecord::Offset { group, topic, partition, value: Some(value) } = rec {
                                entry.push(PendingTxnOffset { group, topic, partition, value });
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(partition = p, error = %e, "loading group partition failed"),
            }
        }
        // Groups with neither members nor offsets carry nothing worth keeping.
        self.map().retain(|_, g| {
            let g = lock(g);
            !(g.members.is_empty() && g.offsets.is_empty())
        });
        self.finish_consumer_load(broker);
        total
    }

    fn persist_group(broker: &Broker, g: &ClassicGroup) -> Result<(), ResponseError> {
        let value = store::group_value(&g.to_stored());
        store::append(broker, &g.group_id, vec![(store::group_key(&g.group_id), Some(value))]).map_err(|e| {
            tracing::warn!(group = %g.group_id, error = %e.message, "persisting group failed");
            ResponseError::CoordinatorNotAvailable
        })
    }

    fn after_join_completed(broker: &Broker, g: &ClassicGroup) {
        // The new generation (or the group becoming empty) is made durable; a failure only
        // means a restart may see the previous generation, which members then rejoin from.
        let _ = Self::persist_group(broker, g);
    }

    fn initial_delay(&self) -> Duration {
        Duration::from_millis(self.config.initial_rebalance_delay_ms.max(0) as u64)
    }

    /// JoinGroup. Waits for the join phase to end when the member takes part in a rebalance.
    pub async fn join(&self, broker: &Broker, args: JoinArgs) -> JoinResult {
        if args.group_id.is_empty() {
            return JoinResult::error(ResponseError::InvalidGroupId, &args.member_id);
        }
        if let Some(code) = self.classic_join_blocked(broker, &args.group_id) {
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
            match self.join_locked(broker, &mut g, args) {
                Ok(result) => return result,
                Err(rx) => rx,
            }
        };
        let mut shutdown = broker.shutdown.clone();
        tokio::select! {
            r = rx => r.unwrap_or_else(|_| JoinResult::error(ResponseError::UnknownMemberId, "")),
            _ = shutdown.changed() => JoinResult::error(ResponseError::CoordinatorNotAvailable, ""),
        }
    }

    fn join_locked(
        &self,
        broker: &Broker,
        g: &mut ClassicGroup,
        args: JoinArgs,
    ) -> Result<JoinResult, oneshot::Receiver<JoinResult>> {
        let now = Instant::now();
        let now_ms = crate::handlers::now_ms();
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
                        let _ = Self::persist_group(broker, g);
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
                    self.rebalance_after_join(broker, g, now, now_ms);
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
            self.rebalance_after_join(broker, g, now, now_ms);
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
            self.rebalance_after_join(broker, g, now, now_ms);
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
                self.rebalance_after_join(broker, g, now, now_ms);
                Err(rx)
            }
        }
    }

    fn rebalance_after_join(&self, broker: &Broker, g: &mut ClassicGroup, now: Instant, now_ms: i64) {
        match g.state {
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance => {
                g.prepare_rebalance(now, now_ms, self.initial_delay())
            }
            GroupState::PreparingRebalance => g.extend_initial_delay(now, self.initial_delay()),
            GroupState::Dead => {}
        }
        if g.maybe_complete_join(now, now_ms) {
            Self::after_join_completed(broker, g);
        }
    }

    /// SyncGroup. The leader's call completes the phase for everyone.
    #[allow(clippy::too_many_arguments)]
    pub async fn sync(
        &self,
        broker: &Broker,
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
                m.last_heartbeat = Instant::now();
            }
            if g.leader.as_deref() == Some(member_id) {
                let now_ms = crate::handlers::now_ms();
                let mut probe = g.to_stored();
                for m in &mut probe.members {
                    m.assignment = assignments.get(&m.member_id).cloned().unwrap_or_default();
                }
                let value = store::group_value(&probe);
                match store::append(broker, group_id, vec![(store::group_key(group_id), Some(value))]) {
                    Ok(()) => g.complete_sync(assignments, now_ms),
                    Err(e) => {
                        tracing::warn!(group = group_id, error = %e.message, "persisting assignment failed");
                        g.prepare_rebalance(Instant::now(), now_ms, Duration::ZERO);
                    }
                }
            }
            rx
        };
        let mut shutdown = broker.shutdown.clone();
        tokio::select! {
            r = rx => r.unwrap_or_else(|_| SyncResult::error(ResponseError::UnknownMemberId)),
            _ = shutdown.changed() => SyncResult::error(ResponseError::CoordinatorNotAvailable),
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
                m.last_heartbeat = Instant::now();
                Some(ResponseError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                if generation != current_generation {
                    return Some(ResponseError::IllegalGeneration);
                }
                m.last_heartbeat = Instant::now();
                None
            }
        }
    }

    /// LeaveGroup for each (member id, instance id); returns per-member errors.
    pub fn leave(
        &self,
        broker: &Broker,
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
            self.membership_changed(broker, &mut g);
        }
        Ok(errors)
    }

    /// After members left or expired: rebalance the rest, or become Empty.
    fn membership_changed(&self, broker: &Broker, g: &mut ClassicGroup) {
        let now = Instant::now();
        let now_ms = crate::handlers::now_ms();
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => g.prepare_rebalance(now, now_ms, Duration::ZERO),
            GroupState::PreparingRebalance | GroupState::Empty | GroupState::Dead => {}
        }
        if g.maybe_complete_join(now, now_ms) {
            Self::after_join_completed(broker, g);
        }
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<(i64, i32), Vec<PendingTxnOffset>>> {
        self.pending_txn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies (commit) or drops (abort) the offsets `producer_id` committed in its transaction
    /// through `__consumer_offsets` partition `offsets_partition`, once its marker is written.
    pub fn complete_txn(&self, producer_id: i64, offsets_partition: i32, commit: bool) {
        let Some(pending) = self.pending().remove(&(producer_id, offsets_partition)) else { return };
        if !commit {
            return;
        }
        for p in pending {
            let g = self.get_or_create(&p.group);
            lock(&g).offsets.insert((p.topic, p.partition), p.value);
        }
    }

    /// Whether an open transaction holds an offset commit for this group partition
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.pending().values().flatten().any(|p| p.group == group_id && p.topic == topic && p.partition == partition)
    }

    /// OffsetCommit, and TxnOffsetCommit with `txn` (producer id, epoch): validates membership
    /// and generation, then persists every valid offset. Transactional offsets are written as
    /// part of the producer's transaction and take effect only when it commits. Returns a
    /// top-level error, or per-partition errors keyed like the input.
    #[allow(clippy::too_many_arguments)]
    pub fn commit(
        &self,
        broker: &Broker,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<(String, i32, OffsetAndMetadata)>,
        txn: Option<(i64, i16)>,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let simple = generation < 0 && member_id.is_empty();
        let is_consumer = self.is_consumer_group(group_id);
        let group = if simple || is_consumer {
            self.get_or_create(group_id)
        } else {
            self.get(group_id).ok_or(ResponseError::UnknownMemberId)?
        };
        let mut g = lock(&group);
        if g.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        // A KIP-848 group: the member epoch stands in for the generation.
        if let Some(check) = self.consumer_commit_check(group_id, member_id, generation) {
            check?;
        } else if !(simple && g.members.is_empty()) {
            if let Some(instance) = instance_id {
                if g.static_members.get(instance).is_some_and(|id| id != member_id) {
                    return Err(ResponseError::FencedInstanceId);
                }
            }
            if !g.members.contains_key(member_id) {
                return Err(ResponseError::UnknownMemberId);
            }
            if generation != g.generation {
                return Err(ResponseError::IllegalGeneration);
            }
            if g.state == GroupState::CompletingRebalance {
                return Err(ResponseError::RebalanceInProgress);
            }
            if let Some(m) = g.members.get_mut(member_id) {
                m.last_heartbeat = Instant::now();
            }
        }
        let mut errors = Vec::with_capacity(offsets.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for (topic, partition, value) in offsets {
            let known = broker.metadata.topic(&topic).is_some_and(|t| partition >= 0 && partition < t.partitions);
            if value.metadata.len() > self.config.offset_metadata_max_bytes {
                errors.push(Some(ResponseError::OffsetMetadataTooLarge));
            } else if !known {
                errors.push(Some(ResponseError::UnknownTopicOrPartition));
            } else {
                records.push((store::offset_key(group_id, &topic, partition), Some(store::offset_value(&value))));
                accepted.push((topic, partition, value));
                errors.push(None);
            }
        }
        let offsets_partition = match store::append_for_group(broker, group_id, records, txn) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(group = group_id, error = %e.message, "persisting offsets failed");
                return Err(if e.code == ResponseError::KafkaStorageError {
                    ResponseError::CoordinatorNotAvailable
                } else {
                    e.code
                });
            }
        };
        match txn {
            Some((producer_id, _)) => {
                let mut pending = self.pending();
                let entry = pending.entry((producer_id, offsets_partition)).or_default();
                for (topic, partition, value) in accepted {
                    entry.push(PendingTxnOffset { group: group_id.to_string(), topic, partition, value });
                }
            }
            None => {
                for (topic, partition, value) in accepted {
                    g.offsets.insert((topic, partition), value);
                }
            }
        }
        Ok(errors)
    }

    /// OffsetFetch: the committed offsets of `partitions` (or of every partition when `None`).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Vec<((String, i32), Option<OffsetAndMetadata>)> {
        let group = self.get(group_id);
        let g = group.as_ref().map(lock);
        match partitions {
            Some(list) => list
                .into_iter()
                .map(|tp| {
                    let v = g.as_ref().and_then(|g| g.offsets.get(&tp).cloned());
                    (tp, v)
                })
                .collect(),
            None => {
                g.map(|g| g.offsets.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect()).unwrap_or_default()
            }
        }
    }

    /// Classic groups (consumer groups are listed by `list_consumer`).
    pub fn list(&self) -> Vec<GroupListing> {
        let groups: Vec<GroupRef> = self.map().values().cloned().collect();
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

    /// DeleteGroups for one group: only empty groups, removing their offsets durably.
    pub fn delete_group(&self, broker: &Broker, group_id: &str) -> Option<ResponseError> {
        let mut was_consumer = false;
        if let Some(outcome) = self.consumer_delete(broker, group_id) {
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
            g.offsets.keys().map(|(t, p)| (store::offset_key(group_id, t, *p), None)).collect();
        records.push((store::group_key(group_id), None));
        if let Err(e) = store::append(broker, group_id, records) {
            tracing::warn!(group = group_id, error = %e.message, "deleting group failed");
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        g.offsets.clear();
        g.transition(GroupState::Dead, crate::handlers::now_ms());
        drop(g);
        self.map().remove(group_id);
        None
    }

    /// OffsetDelete: removes committed offsets unless the group's members subscribe to the topic.
    pub fn delete_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        let group = self.get(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let mut g = lock(&group);
        if g.state == GroupState::Dead {
            return Err(ResponseError::GroupIdNotFound);
        }
        let protocol = g.protocol.clone().unwrap_or_default();
        let mut subscribed: Vec<String> = if g.protocol_type.as_deref() == Some("consumer") {
            g.members.values().flat_map(|m| subscribed_topics(&m.metadata_for(&protocol))).collect()
        } else {
            Vec::new()
        };
        for (t, _) in partitions {
            if self.consumer_subscribed_to(group_id, t) {
                subscribed.push(t.clone());
            }
        }
        let mut errors = Vec::new();
        let mut records = Vec::new();
        let mut removed = Vec::new();
        for (t, p) in partitions {
            if subscribed.contains(t) {
                errors.push(Some(ResponseError::GroupSubscribedToTopic));
            } else {
                if g.offsets.contains_key(&(t.clone(), *p)) {
                    records.push((store::offset_key(group_id, t, *p), None));
                    removed.push((t.clone(), *p));
                }
                errors.push(None);
            }
        }
        store::append(broker, group_id, records).map_err(|_| ResponseError::CoordinatorNotAvailable)?;
        for k in removed {
            g.offsets.remove(&k);
        }
        Ok(errors)
    }

    /// Removes every group's offsets for a deleted topic.
    pub fn on_topic_deleted(&self, broker: &Broker, topic: &str) {
        let groups: Vec<GroupRef> = self.map().values().cloned().collect();
        for group in groups {
            let mut g = lock(&group);
            let keys: Vec<(String, i32)> = g.offsets.keys().filter(|(t, _)| t == topic).cloned().collect();
            if keys.is_empty() {
                continue;
            }
            let records = keys.iter().map(|(t, p)| (store::offset_key(&g.group_id, t, *p), None)).collect();
            let id = g.group_id.clone();
            if store::append(broker, &id, records).is_ok() {
                for k in keys {
                    g.offsets.remove(&k);
                }
            }
        }
    }

    /// One pass of deadline work; called by [`run`](Self::run) every tick.
    pub fn tick(&self, broker: &Broker, retention_due: bool) {
        let now = Instant::now();
        let now_ms = crate::handlers::now_ms();
        self.consumer_tick(broker, retention_due);
        let active_consumer = if retention_due { self.active_consumer_groups() } else { HashSet::new() };
        let groups: Vec<GroupRef> = self.map().values().cloned().collect();
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
                self.membership_changed(broker, &mut g);
            } else if g.maybe_complete_join(now, now_ms) {
                Self::after_join_completed(broker, &g);
            }
            // A consumer group with members keeps its offsets, as Kafka keeps those of
            // subscribed topics.
            if retention_due && !active_consumer.contains(&g.group_id) {
                self.expire_offsets(broker, &mut g, now_ms);
                if g.state == GroupState::Empty
                    && g.members.is_empty()
                    && g.offsets.is_empty()
                    && g.pending_members.is_empty()
                {
                    let _ = store::append(broker, &g.group_id.clone(), vec![(store::group_key(&g.group_id), None)]);
                    drop_groups.push(g.group_id.clone());
                }
            }
        }
        if !drop_groups.is_empty() {
            let mut map = self.map();
            for id in drop_groups {
                map.remove(&id);
            }
        }
    }

    /// `offsets.retention.minutes`: a consumer group's offsets expire once it has been empty that
    /// long; offsets committed outside any group protocol expire by their own commit time.
    fn expire_offsets(&self, broker: &Broker, g: &mut ClassicGroup, now_ms: i64) {
        let retention = self.config.offsets_retention_ms;
        let expired: Vec<(String, i32)> = if g.protocol_type.is_some() {
            if g.state == GroupState::Empty && now_ms.saturating_sub(g.state_timestamp_ms) >= retention {
                g.offsets.keys().cloned().collect()
            } else {
                Vec::new()
            }
        } else if g.members.is_empty() {
            g.offsets
                .iter()
                .filter(|(_, v)| now_ms.saturating_sub(v.commit_timestamp) >= retention)
                .map(|(k, _)| k.clone())
                .collect()
        } else {
            Vec::new()
        };
        if expired.is_empty() {
            return;
        }
        let records = expired.iter().map(|(t, p)| (store::offset_key(&g.group_id, t, *p), None)).collect();
        if store::append(broker, &g.group_id.clone(), records).is_ok() {
            tracing::info!(group = %g.group_id, count = expired.len(), "expired committed offsets");
            for k in expired {
                g.offsets.remove(&k);
            }
        }
    }

    /// Runs offset retention as if the clock read `now_ms` (the ticker passes the real time;
    /// tests pass a future one instead of waiting days).
    pub fn expire_offsets_at(&self, broker: &Broker, now_ms: i64) {
        let groups: Vec<GroupRef> = self.map().values().cloned().collect();
        for group in groups {
            let mut g = lock(&group);
            self.expire_offsets(broker, &mut g, now_ms);
        }
    }

    /// Drives deadlines until shutdown.
    pub async fn run(broker: Arc<Broker>) {
        let mut shutdown = broker.shutdown.clone();
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let retention_every =
            Duration::from_millis(broker.groups.config.offsets_retention_check_interval_ms.max(100) as u64);
        let mut last_retention = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = ticker.tick() => {}
            }
            let due = last_retention.elapsed() >= retention_every;
            if due {
                last_retention = Instant::now();
            }
            broker.groups.tick(&broker, due);
        }
    }

    /// Committed offsets of every group, for metrics and tools: group → (topic, partition) → offset.
    pub fn all_offsets(&self) -> BTreeMap<String, BTreeMap<(String, i32), i64>> {
        let groups: Vec<GroupRef> = self.map().values().cloned().collect();
        groups
            .iter()
            .map(|g| {
                let g = lock(g);
                (g.group_id.clone(), g.offsets.iter().map(|(k, v)| (k.clone(), v.offset)).collect())
            })
            .collect()
    }
}
