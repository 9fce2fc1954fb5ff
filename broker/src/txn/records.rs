//! Durable transaction state in the internal compacted topic `__transaction_state`, in Kafka's
//! record format (`TransactionLogKey` v0 / `TransactionLogValue` v0 and v1), so the data reads the
//! same as Kafka's:
//! - key: `[i16 0][transactional id]`;
//! - value v0 (`transaction.version` 0): `[i16 0][i64 producer id][i16 epoch][i32 timeout ms]
//!   [i8 state][partitions: i32 count, then (topic, i32 count, i32 partition…)…, or -1]
//!   [i64 last update ms][i64 start ms]`;
//! - value v1 (`transaction.version` ≥ 1, Kafka's first flexible version): the same fields with
//!   compact strings and arrays (partitions null in `Empty`), then tagged fields: 0
//!   `PreviousProducerId`, 1 `NextProducerId` (the id a transactions-v2 commit or abort moves to
//!   when the epoch is exhausted, so a crash between the decision and its completion still moves
//!   to it) and 2 `ClientTransactionVersion`, each written only when not at its default;
//! - a null value (tombstone) removes an expired transactional id.
//!
//! A transactional id lives in partition `abs(java_hash(id)) % transaction.state.log.num.partitions`.
//! Bytes in, typed records out and back; no I/O (the coordinator appends and replays through its
//! internal log).

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{TxnMetadata, TxnState};
use crate::group::records::{get_compact_str, get_str, get_uvarint, put_compact_str, put_str, put_uvarint};

pub const TXN_TOPIC: &str = "__transaction_state";

pub fn key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + transactional_id.len());
    b.put_i16(0);
    put_str(&mut b, transactional_id);
    b.freeze()
}

/// The value of `m` in the format `transaction.version` `tv` writes (v0 below 1, v1 from 1).
pub fn value(m: &TxnMetadata, tv: i16) -> Bytes {
    if tv >= 1 {
        value_v1(m)
    } else {
        value_v0(m)
    }
}

/// `m`'s partitions grouped by topic, in order.
fn by_topic(m: &TxnMetadata) -> Vec<(&str, Vec<i32>)> {
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (t, p) in &m.partitions {
        match topics.last_mut() {
            Some((name, parts)) if name == t => parts.push(*p),
            _ => topics.push((t, vec![*p])),
        }
    }
    topics
}

fn value_v0(m: &TxnMetadata) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_i16(0);
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state as i8);
    if m.partitions.is_empty() {
        b.put_i32(-1);
    } else {
        let topics = by_topic(m);
        b.put_i32(topics.len() as i32);
        for (t, parts) in topics {
            put_str(&mut b, t);
            b.put_i32(parts.len() as i32);
            for p in parts {
                b.put_i32(p);
            }
        }
    }
    b.put_i64(m.last_update_ms);
    b.put_i64(m.start_ms);
    b.freeze()
}

fn value_v1(m: &TxnMetadata) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_i16(1);
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state as i8);
    if m.state == TxnState::Empty {
        put_uvarint(&mut b, 0); // null
    } else {
        let topics = by_topic(m);
        put_uvarint(&mut b, topics.len() as u32 + 1);
        for (t, parts) in topics {
            put_compact_str(&mut b, Some(t));
            put_uvarint(&mut b, parts.len() as u32 + 1);
            for p in parts {
                b.put_i32(p);
            }
            put_uvarint(&mut b, 0); // no tagged fields
        }
    }
    b.put_i64(m.last_update_ms);
    b.put_i64(m.start_ms);
    let mut tagged: Vec<(u32, Vec<u8>)> = Vec::new();
    if m.last_producer_id != -1 {
        tagged.push((0, m.last_producer_id.to_be_bytes().to_vec()));
    }
    if m.next_producer_id != -1 {
        tagged.push((1, m.next_producer_id.to_be_bytes().to_vec()));
    }
    if m.client_transaction_version != 0 {
        tagged.push((2, m.client_transaction_version.to_be_bytes().to_vec()));
    }
    put_uvarint(&mut b, tagged.len() as u32);
    for (tag, data) in tagged {
        put_uvarint(&mut b, tag);
        put_uvarint(&mut b, data.len() as u32);
        b.put_slice(&data);
    }
    b.freeze()
}

/// Decodes one record: the transactional id and its metadata (`None` for a tombstone).
pub fn decode(key: &Bytes, value: Option<&Bytes>) -> Option<(String, Option<TxnMetadata>)> {
    let mut k = key.clone();
    if k.remaining() < 2 || k.get_i16() != 0 {
        return None;
    }
    let id = get_str(&mut k)?;
    let Some(value) = value else { return Some((id, None)) };
    let mut v = value.clone();
    if v.remaining() < 2 + 8 + 2 + 4 + 1 {
        return None;
    }
    let version = v.get_i16();
    if !(0..=1).contains(&version) {
        return None;
    }
    let flexible = version >= 1;
    let producer_id = v.get_i64();
    let producer_epoch = v.get_i16();
    let timeout_ms = v.get_i32();
    let state = TxnState::from_i8(v.get_i8())?;
    let mut partitions = BTreeSet::new();
    let topics: i64 = if flexible {
        i64::from(get_uvarint(&mut v)?) - 1
    } else {
        if v.remaining() < 4 {
            return None;
        }
        i64::from(v.get_i32())
    };
    for _ in 0..topics.max(0) {
        let topic = if flexible { get_compact_str(&mut v)?? } else { get_str(&mut v)? };
        let n: i64 = if flexible {
            i64::from(get_uvarint(&mut v)?) - 1
        } else {
            if v.remaining() < 4 {
                return None;
            }
            i64::from(v.get_i32())
        };
        for _ in 0..n.max(0) {
            if v.remaining() < 4 {
                return None;
            }
            partitions.insert((topic.clone(), v.get_i32()));
        }
        if flexible {
            skip_tagged(&mut v)?;
        }
    }
    if v.remaining() < 16 {
        return None;
    }
    let last_update_ms = v.get_i64();
    let start_ms = v.get_i64();
    let mut m = TxnMetadata {
        transactional_id: id.clone(),
        producer_id,
        producer_epoch,
        last_producer_id: -1,
        last_producer_epoch: -1,
        next_producer_id: -1,
        client_transaction_version: 0,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
    };
    if flexible {
        let n = get_uvarint(&mut v)?;
        for _ in 0..n {
            let tag = get_uvarint(&mut v)?;
            let size = get_uvarint(&mut v)? as usize;
            if v.remaining() < size {
                return None;
            }
            let mut data = v.split_to(size);
            match (tag, size) {
                (0, 8) => m.last_producer_id = data.get_i64(),
                (1, 8) => m.next_producer_id = data.get_i64(),
                (2, 2) => m.client_transaction_version = data.get_i16(),
                _ => {}
            }
        }
    }
    Some((id, Some(m)))
}

/// Skips a tagged-field section.
fn skip_tagged(v: &mut Bytes) -> Option<()> {
    let n = get_uvarint(v)?;
    for _ in 0..n {
        get_uvarint(v)?;
        let size = get_uvarint(v)? as usize;
        if v.remaining() < size {
            return None;
        }
        v.advance(size);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = TxnMetadata {
            transactional_id: "t1".into(),
            producer_id: 42,
            producer_epoch: 3,
            last_producer_id: -1,
            last_producer_epoch: -1,
            next_producer_id: -1,
            client_transaction_version: 0,
            timeout_ms: 60000,
            state: TxnState::Ongoing,
            partitions: [("a".to_string(), 0), ("a".to_string(), 2), ("b".to_string(), 1)].into_iter().collect(),
            start_ms: 5,
            last_update_ms: 7,
        };
        assert_eq!(decode(&key("t1"), Some(&value(&m, 0))), Some(("t1".to_string(), Some(m.clone()))));
        let empty = TxnMetadata { state: TxnState::Empty, partitions: BTreeSet::new(), ..m };
        assert_eq!(decode(&key("t1"), Some(&value(&empty, 0))), Some(("t1".to_string(), Some(empty))));
        assert_eq!(decode(&key("t1"), None), Some(("t1".to_string(), None)));
        assert_eq!(decode(&Bytes::from_static(b"\x00\x01"), None), None);
    }

    /// The exact bytes of Kafka's `TransactionLogKey`/`TransactionLogValue` v0, so existing
    /// `__transaction_state` data replays unchanged.
    #[test]
    fn records_keep_their_on_disk_bytes() {
        let m = TxnMetadata {
            transactional_id: "t1".into(),
            producer_id: 42,
            producer_epoch: 3,
            last_producer_id: -1,
            last_producer_epoch: -1,
            next_producer_id: -1,
            client_transaction_version: 0,
            timeout_ms: 60000,
            state: TxnState::Ongoing,
            partitions: [("a".to_string(), 0), ("a".to_string(), 2), ("b".to_string(), 1)].into_iter().collect(),
            start_ms: 5,
            last_update_ms: 7,
        };
        assert_eq!(&key("t1")[..], b"\x00\x00\x00\x02t1");
        let mut expected = b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x2a\x00\x03\x00\x00\xea\x60\x01".to_vec();
        expected.extend_from_slice(b"\x00\x00\x00\x02\x00\x01a\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x02");
        expected.extend_from_slice(b"\x00\x01b\x00\x00\x00\x01\x00\x00\x00\x01");
        expected.extend_from_slice(b"\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x05");
        assert_eq!(&value(&m, 0)[..], &expected[..]);
        assert_eq!(decode(&key("t1"), Some(&Bytes::from(expected))), Some(("t1".to_string(), Some(m))));
    }

    /// Kafka's `TransactionLogValue` v1 (flexible), as `transaction.version` ≥ 1 writes it: the
    /// bytes Kafka 4.1's generated serializer writes for the same value (`MessageUtil
    /// .toVersionPrefixedBytes(1, …)`), and every field read back.
    #[test]
    fn flexible_value_round_trips_with_kafkas_bytes() {
        let m = TxnMetadata {
            transactional_id: "t1".into(),
            producer_id: 42,
            producer_epoch: 3,
            last_producer_id: -1,
            last_producer_epoch: -1,
            next_producer_id: -1,
            client_transaction_version: 2,
            timeout_ms: 60000,
            state: TxnState::Ongoing,
            partitions: [("a".to_string(), 0), ("a".to_string(), 2)].into_iter().collect(),
            start_ms: 5,
            last_update_ms: 7,
        };
        let mut expected = b"\x00\x01\x00\x00\x00\x00\x00\x00\x00\x2a\x00\x03\x00\x00\xea\x60\x01".to_vec();
        // One topic "a" with partitions [0, 2], no tagged fields of its own.
        expected.extend_from_slice(b"\x02\x02a\x03\x00\x00\x00\x00\x00\x00\x00\x02\x00");
        expected.extend_from_slice(b"\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x05");
        // Tagged fields: ClientTransactionVersion (tag 2) = 2.
        expected.extend_from_slice(b"\x01\x02\x02\x00\x02");
        assert_eq!(&value(&m, 2)[..], &expected[..]);
        assert_eq!(decode(&key("t1"), Some(&value(&m, 1))), Some(("t1".to_string(), Some(m.clone()))));
        let moving = TxnMetadata {
            state: TxnState::PrepareCommit,
            producer_epoch: i16::MAX,
            last_producer_id: 41,
            next_producer_id: 77,
            ..m.clone()
        };
        assert_eq!(decode(&key("t1"), Some(&value(&moving, 2))), Some(("t1".to_string(), Some(moving))));
        let empty =
            TxnMetadata { state: TxnState::Empty, partitions: BTreeSet::new(), client_transaction_version: 0, ..m };
        let bytes = value(&empty, 1);
        assert_eq!(bytes[2 + 8 + 2 + 4 + 1], 0, "an Empty transaction has null partitions");
        assert_eq!(decode(&key("t1"), Some(&bytes)), Some(("t1".to_string(), Some(empty))));
    }
}
