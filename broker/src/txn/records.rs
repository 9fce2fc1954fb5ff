//! Durable transaction state in the internal compacted topic `__transaction_state`, in Kafka's
//! record format (`TransactionLogKey` v0 / `TransactionLogValue` v0), so the data reads the same
//! as Kafka's:
//! - key: `[i16 0][transactional id]`;
//! - value: `[i16 0][i64 producer id][i16 epoch][i32 timeout ms][i8 state]
//!   [partitions: i32 count, then (topic, i32 count, i32 partition…)…, or -1][i64 last update ms]
//!   [i64 start ms]`;
//! - a null value (tombstone) removes an expired transactional id.
//!
//! A transactional id lives in partition `abs(java_hash(id)) % transaction.state.log.num.partitions`.
//! Bytes in, typed records out and back; no I/O (the coordinator appends and replays through its
//! internal log).

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{TxnMetadata, TxnState};
use crate::group::records::{get_str, put_str};

pub const TXN_TOPIC: &str = "__transaction_state";

pub fn key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + transactional_id.len());
    b.put_i16(0);
    put_str(&mut b, transactional_id);
    b.freeze()
}

pub fn value(m: &TxnMetadata) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_i16(0);
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state as i8);
    if m.partitions.is_empty() {
        b.put_i32(-1);
    } else {
        let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
        for (t, p) in &m.partitions {
            match topics.last_mut() {
                Some((name, parts)) if name == t => parts.push(*p),
                _ => topics.push((t, vec![*p])),
            }
        }
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

/// Decodes one record: the transactional id and its metadata (`None` for a tombstone).
pub fn decode(key: &Bytes, value: Option<&Bytes>) -> Option<(String, Option<TxnMetadata>)> {
    let mut k = key.clone();
    if k.remaining() < 2 || k.get_i16() != 0 {
        return None;
    }
    let id = get_str(&mut k)?;
    let Some(value) = value else { return Some((id, None)) };
    let mut v = value.clone();
    if v.remaining() < 2 + 8 + 2 + 4 + 1 + 4 {
        return None;
    }
    let version = v.get_i16();
    if !(0..=1).contains(&version) {
        return None;
    }
    let producer_id = v.get_i64();
    let producer_epoch = v.get_i16();
    let timeout_ms = v.get_i32();
    let state = TxnState::from_i8(v.get_i8())?;
    let mut partitions = BTreeSet::new();
    let topics = v.get_i32();
    for _ in 0..topics.max(0) {
        let topic = get_str(&mut v)?;
        if v.remaining() < 4 {
            return None;
        }
        let n = v.get_i32();
        for _ in 0..n.max(0) {
            if v.remaining() < 4 {
                return None;
            }
            partitions.insert((topic.clone(), v.get_i32()));
        }
    }
    if v.remaining() < 16 {
        return None;
    }
    let last_update_ms = v.get_i64();
    let start_ms = v.get_i64();
    Some((
        id.clone(),
        Some(TxnMetadata {
            transactional_id: id,
            producer_id,
            producer_epoch,
            last_producer_id: -1,
            last_producer_epoch: -1,
            timeout_ms,
            state,
            partitions,
            start_ms,
            last_update_ms,
        }),
    ))
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
            timeout_ms: 60000,
            state: TxnState::Ongoing,
            partitions: [("a".to_string(), 0), ("a".to_string(), 2), ("b".to_string(), 1)].into_iter().collect(),
            start_ms: 5,
            last_update_ms: 7,
        };
        assert_eq!(decode(&key("t1"), Some(&value(&m))), Some(("t1".to_string(), Some(m.clone()))));
        let empty = TxnMetadata { state: TxnState::Empty, partitions: BTreeSet::new(), ..m };
        assert_eq!(decode(&key("t1"), Some(&value(&empty))), Some(("t1".to_string(), Some(empty))));
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
        assert_eq!(&value(&m)[..], &expected[..]);
        assert_eq!(decode(&key("t1"), Some(&Bytes::from(expected))), Some(("t1".to_string(), Some(m))));
    }
}
