//! Durable KIP-848 consumer-group state in `__consumer_offsets`, in Kafka's own record formats
//! (`group-coordinator/src/main/resources/common/message/ConsumerGroup*.json`):
//! - key 3 `ConsumerGroupMetadata` (group) → `[i32 epoch]`;
//! - key 5 `ConsumerGroupMemberMetadata` (group, member) → instance, rack, client id/host,
//!   subscribed names, regex, rebalance timeout, server assignor;
//! - key 6 `ConsumerGroupTargetAssignmentMetadata` (group) → `[i32 assignment_epoch]`;
//! - key 7 `ConsumerGroupTargetAssignmentMember` (group, member) → target partitions;
//! - key 8 `ConsumerGroupCurrentMemberAssignment` (group, member) → member epoch, previous epoch,
//!   state, assigned partitions, partitions pending revocation.
//!
//! Keys are `[i16 key type][fields, non-flexible]`; values are `[i16 version 0][fields, flexible
//! encoding: compact strings and arrays, tagged fields]`. Key 4 (subscribed topic metadata) is not
//! written: it is recomputed from the topic metadata on load. A tombstone deletes its key; a
//! tombstone of key 3 deletes the group.
//!
//! The coordinator persists by diffing [`records`] before and after a change, so only changed keys
//! are written.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::assignor::Assignment;
use super::group::{ConsumerGroup, ConsumerMember, MemberState};

pub const KEY_GROUP: i16 = 3;
pub const KEY_MEMBER: i16 = 5;
pub const KEY_TARGET_EPOCH: i16 = 6;
pub const KEY_TARGET_MEMBER: i16 = 7;
pub const KEY_CURRENT_ASSIGNMENT: i16 = 8;

/// One decoded consumer-group record (`None` values are tombstones).
#[derive(Debug, Clone, PartialEq)]
pub enum ConsumerRecord {
    Group { epoch: Option<i32> },
    Member { member_id: String, value: Option<MemberMetadata> },
    TargetEpoch { epoch: Option<i32> },
    TargetMember { member_id: String, partitions: Option<Assignment> },
    Current { member_id: String, value: Option<CurrentAssignment> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: i8,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

// ---- encoding --------------------------------------------------------------------------------

fn key(kind: i16, group: &str, member: Option<&str>) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(kind);
    b.put_i16(group.len() as i16);
    b.put_slice(group.as_bytes());
    if let Some(m) = member {
        b.put_i16(m.len() as i16);
        b.put_slice(m.as_bytes());
    }
    b.freeze()
}

fn put_uvarint(b: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn put_compact_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        None => put_uvarint(b, 0),
        Some(s) => {
            put_uvarint(b, s.len() as u32 + 1);
            b.put_slice(s.as_bytes());
        }
    }
}

fn put_partitions(b: &mut BytesMut, a: &Assignment) {
    put_uvarint(b, a.len() as u32 + 1);
    for (topic, parts) in a {
        b.put_slice(topic.as_bytes());
        put_uvarint(b, parts.len() as u32 + 1);
        for p in parts {
            b.put_i32(*p);
        }
        put_uvarint(b, 0);
    }
}

fn value(f: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    f(&mut b);
    put_uvarint(&mut b, 0); // no tagged fields
    b.freeze()
}

/// Every record describing `g` now, by key. Runtime-only fields (heartbeat times) are left out.
pub fn records(g: &ConsumerGroup) -> BTreeMap<Bytes, Bytes> {
    let id = g.group_id.as_str();
    let mut out = BTreeMap::new();
    out.insert(key(KEY_GROUP, id, None), value(|b| b.put_i32(g.group_epoch)));
    out.insert(key(KEY_TARGET_EPOCH, id, None), value(|b| b.put_i32(g.target_assignment_epoch)));
    for m in g.members.values() {
        let mid = Some(m.member_id.as_str());
        out.insert(
            key(KEY_MEMBER, id, mid),
            value(|b| {
                put_compact_str(b, m.instance_id.as_deref());
                put_compact_str(b, m.rack_id.as_deref());
                put_compact_str(b, Some(&m.client_id));
                put_compact_str(b, Some(&m.client_host));
                put_uvarint(b, m.subscribed_topic_names.len() as u32 + 1);
                for n in &m.subscribed_topic_names {
                    put_compact_str(b, Some(n));
                }
                put_compact_str(b, m.subscribed_topic_regex.as_deref());
                b.put_i32(m.rebalance_timeout_ms);
                put_compact_str(b, m.server_assignor.as_deref());
            }),
        );
        out.insert(
            key(KEY_CURRENT_ASSIGNMENT, id, mid),
            value(|b| {
                b.put_i32(m.member_epoch);
                b.put_i32(m.previous_member_epoch);
                b.put_i8(m.state as i8);
                put_partitions(b, &m.assigned);
                put_partitions(b, &m.pending_revocation);
            }),
        );
    }
    for (member, target) in &g.target {
        out.insert(key(KEY_TARGET_MEMBER, id, Some(member)), value(|b| put_partitions(b, target)));
    }
    out
}

/// The records to append to go from `before` to `after`: changed keys, and tombstones for keys
/// that disappeared. Member-level tombstones come first, the group's last, as Kafka orders them.
pub fn diff(before: &BTreeMap<Bytes, Bytes>, after: &BTreeMap<Bytes, Bytes>) -> Vec<(Bytes, Option<Bytes>)> {
    let mut out: Vec<(Bytes, Option<Bytes>)> = Vec::new();
    for k in before.keys().filter(|k| !after.contains_key(*k)) {
        out.push((k.clone(), None));
    }
    for (k, v) in after {
        if before.get(k) != Some(v) {
            out.push((k.clone(), Some(v.clone())));
        }
    }
    out
}

/// Tombstones for every key of a group (DeleteGroups, or a conversion to a classic group).
pub fn tombstones(g: &ConsumerGroup) -> Vec<(Bytes, Option<Bytes>)> {
    let mut keys: Vec<Bytes> = records(g).into_keys().collect();
    // The group key last, so a replay never sees members of a deleted group.
    keys.sort_by_key(|k| k.get(1) == Some(&(KEY_GROUP as u8)));
    keys.into_iter().map(|k| (k, None)).collect()
}

// ---- decoding --------------------------------------------------------------------------------

fn get_uvarint(b: &mut Bytes) -> Option<u32> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        if !b.has_remaining() {
            return None;
        }
        let byte = b.get_u8();
        v |= u32::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn get_compact_str(b: &mut Bytes) -> Option<Option<String>> {
    let n = get_uvarint(b)? as usize;
    if n == 0 {
        return Some(None);
    }
    if b.remaining() < n - 1 {
        return None;
    }
    Some(Some(String::from_utf8(b.split_to(n - 1).to_vec()).ok()?))
}

fn get_i32(b: &mut Bytes) -> Option<i32> {
    (b.remaining() >= 4).then(|| b.get_i32())
}

fn skip_tagged(b: &mut Bytes) -> Option<()> {
    let n = get_uvarint(b)?;
    for _ in 0..n {
        let _tag = get_uvarint(b)?;
        let size = get_uvarint(b)? as usize;
        if b.remaining() < size {
            return None;
        }
        b.advance(size);
    }
    Some(())
}

fn get_partitions(b: &mut Bytes) -> Option<Assignment> {
    let n = get_uvarint(b)?.checked_sub(1)? as usize;
    let mut out = Assignment::new();
    for _ in 0..n {
        if b.remaining() < 16 {
            return None;
        }
        let mut id = [0u8; 16];
        b.copy_to_slice(&mut id);
        let count = get_uvarint(b)?.checked_sub(1)? as usize;
        let mut parts = BTreeSet::new();
        for _ in 0..count {
            parts.insert(get_i32(b)?);
        }
        skip_tagged(b)?;
        if !parts.is_empty() {
            out.insert(Uuid::from_bytes(id), parts);
        }
    }
    Some(out)
}

fn get_key_str(b: &mut Bytes) -> Option<String> {
    if b.remaining() < 2 {
        return None;
    }
    let n = b.get_i16();
    if n < 0 || b.remaining() < n as usize {
        return None;
    }
    String::from_utf8(b.split_to(n as usize).to_vec()).ok()
}

/// Decodes a consumer-group record (key types 3 and 5–8); `None` for anything else or garbage.
pub fn decode(kind: i16, key_rest: &mut Bytes, value: Option<&Bytes>) -> Option<(String, ConsumerRecord)> {
    let group = get_key_str(key_rest)?;
    let member = match kind {
        KEY_MEMBER | KEY_TARGET_MEMBER | KEY_CURRENT_ASSIGNMENT => Some(get_key_str(key_rest)?),
        KEY_GROUP | KEY_TARGET_EPOCH => None,
        _ => return None,
    };
    let mut v = match value {
        Some(v) => {
            let mut v = v.clone();
            if v.remaining() < 2 {
                return None;
            }
            let _version = v.get_i16();
            Some(v)
        }
        None => None,
    };
    let rec = match (kind, member) {
        (KEY_GROUP, None) => ConsumerRecord::Group {
            epoch: match v.as_mut() {
                Some(v) => Some(get_i32(v)?),
                None => None,
            },
        },
        (KEY_TARGET_EPOCH, None) => ConsumerRecord::TargetEpoch {
            epoch: match v.as_mut() {
                Some(v) => Some(get_i32(v)?),
                None => None,
            },
        },
        (KEY_MEMBER, Some(member_id)) => {
            let value = match v.as_mut() {
                None => None,
                Some(v) => {
                    let instance_id = get_compact_str(v)?;
                    let rack_id = get_compact_str(v)?;
                    let client_id = get_compact_str(v)?.unwrap_or_default();
                    let client_host = get_compact_str(v)?.unwrap_or_default();
                    let n = get_uvarint(v)?.saturating_sub(1) as usize;
                    let mut names = Vec::with_capacity(n.min(1024));
                    for _ in 0..n {
                        names.push(get_compact_str(v)?.unwrap_or_default());
                    }
                    let subscribed_topic_regex = get_compact_str(v)?;
                    let rebalance_timeout_ms = get_i32(v)?;
                    let server_assignor = get_compact_str(v)?;
                    Some(MemberMetadata {
                        instance_id,
                        rack_id,
                        client_id,
                        client_host,
                        subscribed_topic_names: names,
                        subscribed_topic_regex,
                        rebalance_timeout_ms,
                        server_assignor,
                    })
                }
            };
            ConsumerRecord::Member { member_id, value }
        }
        (KEY_TARGET_MEMBER, Some(member_id)) => {
            let partitions = match v.as_mut() {
                Some(v) => Some(get_partitions(v)?),
                None => None,
            };
            ConsumerRecord::TargetMember { member_id, partitions }
        }
        (KEY_CURRENT_ASSIGNMENT, Some(member_id)) => {
            let value = match v.as_mut() {
                None => None,
                Some(v) => {
                    let member_epoch = get_i32(v)?;
                    let previous_member_epoch = get_i32(v)?;
                    if !v.has_remaining() {
                        return None;
                    }
                    let state = v.get_i8();
                    let assigned = get_partitions(v)?;
                    let pending_revocation = get_partitions(v)?;
                    Some(CurrentAssignment { member_epoch, previous_member_epoch, state, assigned, pending_revocation })
                }
            };
            ConsumerRecord::Current { member_id, value }
        }
        _ => return None,
    };
    Some((group, rec))
}

/// Applies one replayed record; returns `false` when the group was deleted (key 3 tombstone).
/// Restored members get a fresh session (they resume heartbeating after the restart) and, if they
/// owe a revocation, a fresh rebalance timeout.
pub fn apply(g: &mut ConsumerGroup, rec: ConsumerRecord, now: Instant) -> bool {
    match rec {
        ConsumerRecord::Group { epoch: None } => return false,
        ConsumerRecord::Group { epoch: Some(e) } => g.group_epoch = e,
        ConsumerRecord::TargetEpoch { epoch } => g.target_assignment_epoch = epoch.unwrap_or(0),
        ConsumerRecord::TargetMember { member_id, partitions: None } => {
            g.target.remove(&member_id);
        }
        ConsumerRecord::TargetMember { member_id, partitions: Some(p) } => {
            g.target.insert(member_id, p);
        }
        ConsumerRecord::Member { member_id, value: None } => {
            g.members.remove(&member_id);
        }
        ConsumerRecord::Member { member_id, value: Some(v) } => {
            let m = g.members.entry(member_id.clone()).or_insert_with(|| ConsumerMember::new(&member_id, now));
            m.instance_id = v.instance_id;
            m.rack_id = v.rack_id;
            m.client_id = v.client_id;
            m.client_host = v.client_host;
            m.subscribed_topic_names = v.subscribed_topic_names;
            m.subscribed_topic_regex = v.subscribed_topic_regex;
            m.rebalance_timeout_ms = v.rebalance_timeout_ms;
            m.server_assignor = v.server_assignor;
        }
        ConsumerRecord::Current { member_id, value } => {
            // Kafka writes the member's metadata first; an assignment without it is ignored.
            if let (Some(m), Some(v)) = (g.members.get_mut(&member_id), value) {
                m.member_epoch = v.member_epoch;
                m.previous_member_epoch = v.previous_member_epoch;
                m.state = MemberState::from_i8(v.state);
                m.assigned = v.assigned;
                m.pending_revocation = v.pending_revocation;
                m.revocation_deadline = (m.state == MemberState::UnrevokedPartitions)
                    .then(|| now + Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64));
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::consumer::group::{ConsumerGroupConfig, HeartbeatArgs, TopicsImage};

    #[test]
    fn records_round_trip_through_replay() {
        let now = Instant::now();
        let img = TopicsImage { by_name: BTreeMap::from([("t".to_string(), (Uuid::from_bytes([7; 16]), 3))]) };
        let mut g = ConsumerGroup::new("g");
        let args = HeartbeatArgs {
            member_id: "m1".into(),
            rebalance_timeout_ms: 1000,
            subscribed_topic_names: Some(vec!["t".into()]),
            subscribed_topic_regex: Some("x.*".into()),
            server_assignor: Some("range".into()),
            instance_id: Some("i".into()),
            client_id: "c".into(),
            client_host: "/1.2.3.4".into(),
            ..Default::default()
        };
        g.heartbeat(args, &img, &ConsumerGroupConfig::default(), now).expect("join");
        let recs = records(&g);
        let mut restored = ConsumerGroup::new("g");
        for (k, v) in &recs {
            let mut rest = k.clone();
            let kind = rest.get_i16();
            let (group, rec) = decode(kind, &mut rest, Some(v)).expect("decodes");
            assert_eq!(group, "g");
            assert!(apply(&mut restored, rec, now));
        }
        assert_eq!(records(&restored), recs);
        assert_eq!(restored.members["m1"].assigned, g.members["m1"].assigned);
        // Leaving writes tombstones for the member's three keys.
        let before = records(&g);
        g.remove_member("m1");
        let d = diff(&before, &records(&g));
        assert_eq!(d.iter().filter(|(_, v)| v.is_none()).count(), 3);
        let mut k = tombstones(&g).last().expect("group key").0.clone();
        assert_eq!(k.get_i16(), KEY_GROUP);
    }
}
