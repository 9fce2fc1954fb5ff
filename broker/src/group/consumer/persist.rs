//! Durable KIP-848 consumer-group state: the records that describe a group now ([`records`]),
//! the records that turn one state into another ([`diff`], [`tombstones`]), and replay of
//! decoded records into a group ([`apply`]). The byte formats are in `group::records`.
//!
//! Key 4 (subscribed topic metadata) is not written: it is recomputed from the topic metadata on
//! load. A tombstone deletes its key; a tombstone of key 3 deletes the group. The coordinator
//! persists by diffing [`records`] before and after a change, so only changed keys are written.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};

use super::group::{ConsumerGroup, ConsumerMember, MemberState};
use crate::group::records::{
    consumer_key as key, consumer_value as value, put_compact_str, put_partitions, put_uvarint,
};
pub use crate::group::records::{
    ConsumerRecord, CurrentAssignment, MemberMetadata, KEY_CURRENT_ASSIGNMENT, KEY_GROUP, KEY_MEMBER, KEY_TARGET_EPOCH,
    KEY_TARGET_MEMBER,
};

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
    use bytes::Buf;
    use uuid::Uuid;

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
            let (group, rec) = crate::group::records::decode_consumer(kind, &mut rest, Some(v)).expect("decodes");
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
