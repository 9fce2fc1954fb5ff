//! Durable group state in the internal compacted topic `__consumer_offsets`, in Kafka's own
//! record formats so the data reads the same as Kafka's:
//! - offset commit: key v1 `[i16 1][group][topic][i32 partition]`, value v3
//!   `[i16 3][i64 offset][i32 leader_epoch][metadata][i64 commit_timestamp]`;
//! - group metadata: key v2 `[i16 2][group]`, value v3 `[i16 3][protocol_type][i32 generation]
//!   [protocol?][leader?][i64 state_timestamp][members…]`;
//! - KIP-848 consumer groups (`ConsumerGroup*.json` in Kafka's group coordinator): key types
//!   3 `ConsumerGroupMetadata`, 5 `ConsumerGroupMemberMetadata`, 6
//!   `ConsumerGroupTargetAssignmentMetadata`, 7 `ConsumerGroupTargetAssignmentMember`, 8
//!   `ConsumerGroupCurrentMemberAssignment`; keys are `[i16 key type][fields, non-flexible]`,
//!   values `[i16 version 0][fields, flexible: compact strings and arrays, tagged fields]`;
//! - a null value (tombstone) deletes the key; the log cleaner drops it later.
//!
//! This module is the whole serde (Kafka's `GroupCoordinatorRecordSerde`): bytes in, typed
//! records out and back, no I/O. Replay reads through the coordinator's internal log.
//!
//! A group lives in partition `abs(java_hash(group)) % offsets.topic.num.partitions`, as in Kafka.
//! Writes are appended like a produce with acks=all (flush policy included) and only then
//! acknowledged; startup replays every partition, last record per key winning.

use std::collections::{BTreeSet, HashMap};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use uuid::Uuid;

use crate::error::ApiError;
use crate::group::consumer::assignor::Assignment;
use crate::internal_log::InternalLog;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

pub use crate::internal_log::{java_string_hash, partition_for};

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// A persisted member of a classic group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// Persisted classic group metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp: i64,
    pub members: Vec<StoredMember>,
}

/// One replayed record.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetAndMetadata>,
    },
    Group {
        group: String,
        value: Option<StoredGroup>,
    },
    /// A KIP-848 consumer-group record (key types 3 and 5–8).
    Consumer {
        group: String,
        record: ConsumerRecord,
    },
}

/// The longest string a coordinator record can hold: Kafka's record schemas write ids, protocol
/// names and offset metadata as STRING, with an `i16` length.
pub const MAX_STORED_STRING_BYTES: usize = i16::MAX as usize;

/// Whether every string fits a coordinator record. Requests are checked with this before any
/// state changes, so a record never truncates an id (it would replay as another id).
pub fn storable<'a>(strings: impl IntoIterator<Item = &'a str>) -> bool {
    strings.into_iter().all(|s| s.len() <= MAX_STORED_STRING_BYTES)
}

/// A non-null Kafka STRING (i16 length, UTF-8).
pub(crate) fn put_str(b: &mut BytesMut, s: &str) {
    debug_assert!(s.len() <= MAX_STORED_STRING_BYTES, "callers check storable()");
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

/// A non-null Kafka STRING (i16 length, UTF-8).
pub(crate) fn get_str(b: &mut Bytes) -> Option<String> {
    get_nullable_str(b)?
}

fn get_nullable_str(b: &mut Bytes) -> Option<Option<String>> {
    if b.remaining() < 2 {
        return None;
    }
    let n = b.get_i16();
    if n < 0 {
        return Some(None);
    }
    let n = n as usize;
    if b.remaining() < n {
        return None;
    }
    let s = b.split_to(n);
    Some(Some(String::from_utf8(s.to_vec()).ok()?))
}

fn get_bytes(b: &mut Bytes) -> Option<Bytes> {
    if b.remaining() < 4 {
        return None;
    }
    let n = b.get_i32();
    if n < 0 {
        return Some(Bytes::new());
    }
    let n = n as usize;
    if b.remaining() < n {
        return None;
    }
    Some(b.split_to(n))
}

fn get_i16(b: &mut Bytes) -> Option<i16> {
    (b.remaining() >= 2).then(|| b.get_i16())
}
fn get_i32(b: &mut Bytes) -> Option<i32> {
    (b.remaining() >= 4).then(|| b.get_i32())
}
fn get_i64(b: &mut Bytes) -> Option<i64> {
    (b.remaining() >= 8).then(|| b.get_i64())
}

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(1);
    put_str(&mut b, group);
    put_str(&mut b, topic);
    b.put_i32(partition);
    b.freeze()
}

pub fn offset_value(v: &OffsetAndMetadata) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    b.put_i64(v.offset);
    b.put_i32(v.leader_epoch);
    put_str(&mut b, &v.metadata);
    b.put_i64(v.commit_timestamp);
    b.freeze()
}

pub fn group_key(group: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(2);
    put_str(&mut b, group);
    b.freeze()
}

pub fn group_value(g: &StoredGroup) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    put_str(&mut b, &g.protocol_type);
    b.put_i32(g.generation);
    put_nullable_str(&mut b, g.protocol.as_deref());
    put_nullable_str(&mut b, g.leader.as_deref());
    b.put_i64(g.state_timestamp);
    b.put_i32(g.members.len() as i32);
    for m in &g.members {
        put_str(&mut b, &m.member_id);
        put_nullable_str(&mut b, m.instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

/// Decodes one record of `__consumer_offsets`; `None` for keys this version does not know.
pub fn decode_record(key: &Bytes, value: Option<&Bytes>) -> Option<GroupRecord> {
    let mut k = key.clone();
    match get_i16(&mut k)? {
        0 | 1 => {
            let group = get_str(&mut k)?;
            let topic = get_str(&mut k)?;
            let partition = get_i32(&mut k)?;
            let value = match value {
                None => None,
                Some(v) => {
                    let mut v = v.clone();
                    let version = get_i16(&mut v)?;
                    let offset = get_i64(&mut v)?;
                    let leader_epoch = if version >= 3 { get_i32(&mut v)? } else { -1 };
                    let metadata = get_str(&mut v)?;
                    let commit_timestamp = get_i64(&mut v)?;
                    Some(OffsetAndMetadata { offset, leader_epoch, metadata, commit_timestamp })
                }
            };
            Some(GroupRecord::Offset { group, topic, partition, value })
        }
        2 => {
            let group = get_str(&mut k)?;
            let value = match value {
                None => None,
                Some(v) => {
                    let mut v = v.clone();
                    let version = get_i16(&mut v)?;
                    let protocol_type = get_str(&mut v)?;
                    let generation = get_i32(&mut v)?;
                    let protocol = get_nullable_str(&mut v)?;
                    let leader = get_nullable_str(&mut v)?;
                    let state_timestamp = if version >= 2 { get_i64(&mut v)? } else { -1 };
                    let n = get_i32(&mut v)?.max(0) as usize;
                    let mut members = Vec::with_capacity(n.min(1024));
                    for _ in 0..n {
                        let member_id = get_str(&mut v)?;
                        let instance_id = if version >= 3 { get_nullable_str(&mut v)? } else { None };
                        let client_id = get_str(&mut v)?;
                        let client_host = get_str(&mut v)?;
                        let rebalance_timeout_ms = if version >= 1 { get_i32(&mut v)? } else { 0 };
                        let session_timeout_ms = get_i32(&mut v)?;
                        let subscription = get_bytes(&mut v)?;
                        let assignment = get_bytes(&mut v)?;
                        members.push(StoredMember {
                            member_id,
                            instance_id,
                            client_id,
                            client_host,
                            rebalance_timeout_ms,
                            session_timeout_ms,
                            subscription,
                            assignment,
                        });
                    }
                    Some(StoredGroup { protocol_type, generation, protocol, leader, state_timestamp, members })
                }
            };
            Some(GroupRecord::Group { group, value })
        }
        kind @ 3..=8 => {
            let (group, record) = decode_consumer(kind, &mut k, value)?;
            Some(GroupRecord::Consumer { group, record })
        }
        _ => None,
    }
}

/// Decodes the records of one non-control batch of `__consumer_offsets` (offsets below the log
/// start are skipped).
pub fn decode_batch(batch: &sluice_protocol::batch::RecordBatch, log_start_offset: i64) -> Vec<GroupRecord> {
    let Ok(records) = batch.records(sluice_protocol::batch::DECOMPRESSED_BATCH_BYTES_MAX) else {
        tracing::warn!(offset = batch.base_offset(), "skipping undecodable group batch");
        return Vec::new();
    };
    records
        .into_iter()
        .filter(|r| batch.base_offset() + r.offset_delta as i64 >= log_start_offset)
        .filter_map(|r| decode_record(r.key.as_ref()?, r.value.as_ref()))
        .collect()
}

/// Reads every record of one `__consumer_offsets` partition, in offset order. Records of
/// transactional offset commits are applied when their COMMIT marker is read and dropped at an
/// ABORT; those still open at the end are returned by producer id.
pub fn replay(
    log: &dyn InternalLog,
    partition: i32,
    mut apply: impl FnMut(GroupRecord),
) -> Result<(usize, HashMap<i64, Vec<GroupRecord>>), ApiError> {
    let mut count = 0;
    let mut open: HashMap<i64, Vec<GroupRecord>> = HashMap::new();
    log.scan(partition, &mut |batch, log_start| {
        if batch.is_control() {
            let pending = open.remove(&batch.producer_id()).unwrap_or_default();
            if sluice_storage::producer_state::control_commit(batch) == Some(true) {
                count += pending.len();
                pending.into_iter().for_each(&mut apply);
            }
            return;
        }
        let records = decode_batch(batch, log_start);
        if batch.is_transactional() {
            open.entry(batch.producer_id()).or_default().extend(records);
        } else {
            count += records.len();
            records.into_iter().for_each(&mut apply);
        }
    })?;
    Ok((count, open))
}

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

// ---- KIP-848 consumer groups: encoding -------------------------------------------------------

/// A consumer-group key: `[i16 kind][group]`, then `[member]` for member-level kinds.
pub fn consumer_key(kind: i16, group: &str, member: Option<&str>) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(kind);
    put_str(&mut b, group);
    if let Some(m) = member {
        put_str(&mut b, m);
    }
    b.freeze()
}

pub fn put_uvarint(b: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

pub fn put_compact_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        None => put_uvarint(b, 0),
        Some(s) => {
            put_uvarint(b, s.len() as u32 + 1);
            b.put_slice(s.as_bytes());
        }
    }
}

pub fn put_partitions(b: &mut BytesMut, a: &Assignment) {
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

/// A flexible version-0 value: `[i16 0]`, the fields `f` writes, no tagged fields.
pub fn consumer_value(f: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    f(&mut b);
    put_uvarint(&mut b, 0); // no tagged fields
    b.freeze()
}

// ---- KIP-848 consumer groups: decoding -------------------------------------------------------

pub fn get_uvarint(b: &mut Bytes) -> Option<u32> {
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

pub fn get_compact_str(b: &mut Bytes) -> Option<Option<String>> {
    let n = get_uvarint(b)? as usize;
    if n == 0 {
        return Some(None);
    }
    if b.remaining() < n - 1 {
        return None;
    }
    Some(Some(String::from_utf8(b.split_to(n - 1).to_vec()).ok()?))
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

/// Decodes a consumer-group record (key types 3 and 5–8); `None` for anything else or garbage.
pub fn decode_consumer(kind: i16, key_rest: &mut Bytes, value: Option<&Bytes>) -> Option<(String, ConsumerRecord)> {
    let group = get_str(key_rest)?;
    let member = match kind {
        KEY_MEMBER | KEY_TARGET_MEMBER | KEY_CURRENT_ASSIGNMENT => Some(get_str(key_rest)?),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let v = OffsetAndMetadata { offset: 42, leader_epoch: 3, metadata: "m".into(), commit_timestamp: 99 };
        let rec = decode_record(&offset_key("g", "t", 7), Some(&offset_value(&v))).expect("decode");
        assert_eq!(rec, GroupRecord::Offset { group: "g".into(), topic: "t".into(), partition: 7, value: Some(v) });
        let g = StoredGroup {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            state_timestamp: 1,
            members: vec![StoredMember {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300000,
                session_timeout_ms: 45000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let rec = decode_record(&group_key("g"), Some(&group_value(&g))).expect("decode");
        assert_eq!(rec, GroupRecord::Group { group: "g".into(), value: Some(g) });
        assert_eq!(decode_record(&group_key("g"), None), Some(GroupRecord::Group { group: "g".into(), value: None }));
        assert_eq!(decode_record(&Bytes::from_static(b"\x00"), None), None);
    }

    /// The exact bytes Kafka's schemas (and every earlier version of this broker) write, so
    /// existing `__consumer_offsets` data replays unchanged.
    #[test]
    fn records_keep_their_on_disk_bytes() {
        let v = OffsetAndMetadata { offset: 42, leader_epoch: 3, metadata: "m".into(), commit_timestamp: 99 };
        assert_eq!(&offset_key("g", "t", 7)[..], b"\x00\x01\x00\x01g\x00\x01t\x00\x00\x00\x07");
        assert_eq!(
            &offset_value(&v)[..],
            b"\x00\x03\x00\x00\x00\x00\x00\x00\x00\x2a\x00\x00\x00\x03\x00\x01m\x00\x00\x00\x00\x00\x00\x00\x63"
        );
        assert_eq!(&group_key("g")[..], b"\x00\x02\x00\x01g");
        let g = StoredGroup {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            state_timestamp: 1,
            members: vec![StoredMember {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "h".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let mut expected = Vec::new();
        expected.extend_from_slice(b"\x00\x03\x00\x08consumer\x00\x00\x00\x05\x00\x05range\x00\x02m1");
        expected.extend_from_slice(b"\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01");
        expected.extend_from_slice(b"\x00\x02m1\x00\x02i1\x00\x01c\x00\x01h\x00\x04\x93\xe0\x00\x00\xaf\xc8");
        expected.extend_from_slice(b"\x00\x00\x00\x03sub\x00\x00\x00\x03asg");
        assert_eq!(&group_value(&g)[..], &expected[..]);
        assert_eq!(
            decode_record(&group_key("g"), Some(&Bytes::from(expected))),
            Some(GroupRecord::Group { group: "g".into(), value: Some(g) })
        );

        // KIP-848 records: flexible values, version 0, trailing empty tagged fields.
        let mut cg = crate::group::consumer::ConsumerGroup::new("g");
        cg.group_epoch = 4;
        cg.target_assignment_epoch = 4;
        let topic = uuid::Uuid::from_bytes([7; 16]);
        cg.target.insert("m1".into(), [(topic, [0, 2].into_iter().collect())].into_iter().collect());
        let recs = crate::group::consumer::persist::records(&cg);
        let get = |k: &[u8]| recs.get(&Bytes::copy_from_slice(k)).map(|v| v.to_vec());
        assert_eq!(get(b"\x00\x03\x00\x01g"), Some(b"\x00\x00\x00\x00\x00\x04\x00".to_vec()));
        assert_eq!(get(b"\x00\x06\x00\x01g"), Some(b"\x00\x00\x00\x00\x00\x04\x00".to_vec()));
        let mut target = b"\x00\x00\x02".to_vec();
        target.extend_from_slice(&[7; 16]);
        target.extend_from_slice(b"\x03\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00");
        assert_eq!(get(b"\x00\x07\x00\x01g\x00\x02m1"), Some(target));
        assert_eq!(recs.len(), 3);
    }
}
