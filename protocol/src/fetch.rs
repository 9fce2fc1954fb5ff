//! Zero-copy encoding of Fetch responses.
//!
//! A Fetch response is mostly record batches read from segment files. Encoding it through the
//! generic message encoder would copy every batch into the response buffer; this encoder writes
//! the small structural parts into buffers and hands each partition's records through as its own
//! `Bytes` chunk, so the connection writes them with one vectored write and no copy.
//!
//! It covers the fields the broker sets. A response using anything else (tagged fields such as
//! `diverging_epoch`, `current_leader`, `snapshot_id`, `node_endpoints`, or unknown tagged
//! fields) falls back to the generic encoder, so the output is always exactly what
//! `kafka-protocol` would produce — a property the tests check byte for byte for every version.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::FetchResponse;

use crate::request::anyhow_free;

/// The encoded response: frame chunks in order (the first starts with the size prefix).
#[derive(Debug, Clone, Default)]
pub struct Chunks {
    pub chunks: Vec<Bytes>,
    pub len: usize,
}

impl Chunks {
    /// All chunks concatenated (tests and callers that need one buffer).
    pub fn concat(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.len);
        for c in &self.chunks {
            b.put_slice(c);
        }
        b.freeze()
    }
}

fn put_uvarint(b: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        b.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn partition_is_plain(p: &PartitionData) -> bool {
    p.diverging_epoch == Default::default()
        && p.current_leader == Default::default()
        && p.snapshot_id == Default::default()
        && p.unknown_tagged_fields.is_empty()
        && p.aborted_transactions.as_ref().is_none_or(|a| a.iter().all(|t| t.unknown_tagged_fields.is_empty()))
}

fn is_plain(resp: &FetchResponse) -> bool {
    resp.node_endpoints.is_empty()
        && resp.unknown_tagged_fields.is_empty()
        && resp
            .responses
            .iter()
            .all(|t| t.unknown_tagged_fields.is_empty() && t.partitions.iter().all(partition_is_plain))
}

/// Encodes a Fetch response frame (size prefix, response header, body) for `version` (4–18).
pub fn encode_fetch_response(correlation_id: i32, version: i16, resp: &FetchResponse) -> anyhow_free::Result<Chunks> {
    let flexible = version >= 12;
    let header_version = if flexible { 1 } else { 0 };
    if !(4..=18).contains(&version)
        || !is_plain(resp)
        || (version < 11
            && resp.responses.iter().any(|t| t.partitions.iter().any(|p| p.preferred_read_replica.0 != -1)))
    {
        let bytes = crate::request::encode_response(correlation_id, header_version, version, resp)?;
        let len = bytes.len();
        return Ok(Chunks { chunks: vec![bytes], len });
    }
    let mut chunks = Vec::new();
    let mut cur = BytesMut::with_capacity(256);
    cur.put_i32(0); // size prefix, patched below
    cur.put_i32(correlation_id);
    if flexible {
        cur.put_u8(0);
    }
    cur.put_i32(resp.throttle_time_ms);
    if version >= 7 {
        cur.put_i16(resp.error_code);
        cur.put_i32(resp.session_id);
    }
    let put_len = |b: &mut BytesMut, n: usize| {
        if flexible {
            put_uvarint(b, n as u32 + 1);
        } else {
            b.put_i32(n as i32);
        }
    };
    put_len(&mut cur, resp.responses.len());
    for t in &resp.responses {
        if version >= 13 {
            cur.put_slice(t.topic_id.as_bytes());
        } else {
            let name = t.topic.0.as_bytes();
            if flexible {
                put_uvarint(&mut cur, name.len() as u32 + 1);
            } else {
                cur.put_i16(name.len() as i16);
            }
            cur.put_slice(name);
        }
        put_len(&mut cur, t.partitions.len());
        for p in &t.partitions {
            cur.put_i32(p.partition_index);
            cur.put_i16(p.error_code);
            cur.put_i64(p.high_watermark);
            cur.put_i64(p.last_stable_offset);
            if version >= 5 {
                cur.put_i64(p.log_start_offset);
            }
            match &p.aborted_transactions {
                None if flexible => put_uvarint(&mut cur, 0),
                None => cur.put_i32(-1),
                Some(list) => {
                    put_len(&mut cur, list.len());
                    for a in list {
                        cur.put_i64(a.producer_id.0);
                        cur.put_i64(a.first_offset);
                        if flexible {
                            cur.put_u8(0);
                        }
                    }
                }
            }
            if version >= 11 {
                cur.put_i32(p.preferred_read_replica.0);
            }
            match &p.records {
                None if flexible => put_uvarint(&mut cur, 0),
                None => cur.put_i32(-1),
                Some(records) => {
                    put_len(&mut cur, records.len());
                    if !records.is_empty() {
                        chunks.push(std::mem::replace(&mut cur, BytesMut::with_capacity(64)).freeze());
                        chunks.push(records.clone());
                    }
                }
            }
            if flexible {
                cur.put_u8(0); // partition tagged fields
            }
        }
        if flexible {
            cur.put_u8(0); // topic tagged fields
        }
    }
    if flexible {
        cur.put_u8(0); // response tagged fields
    }
    chunks.push(cur.freeze());
    let len: usize = chunks.iter().map(Bytes::len).sum();
    let size = (len - 4) as i32;
    // Patch the size prefix in the first chunk (it was frozen; rebuild just its first 4 bytes).
    let first = chunks.remove(0);
    let mut patched = BytesMut::with_capacity(first.len());
    patched.put_i32(size);
    patched.put_slice(&first[4..]);
    chunks.insert(0, patched.freeze());
    Ok(Chunks { chunks, len })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch};
    use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;

    fn sample(version: i16, records: &[Vec<u8>], aborted: bool, nulls: bool) -> FetchResponse {
        let mut resp = FetchResponse::default();
        resp.throttle_time_ms = 3;
        resp.session_id = if version >= 7 { 42 } else { 0 };
        for (ti, chunk) in records.chunks(2).enumerate() {
            let mut t = FetchableTopicResponse::default();
            if version >= 13 {
                t.topic_id = uuid::Uuid::from_u128(ti as u128 + 1);
            } else {
                t.topic = TopicName(StrBytes::from_string(format!("topic-{ti}")));
            }
            for (pi, r) in chunk.iter().enumerate() {
                let mut p = PartitionData::default();
                p.partition_index = pi as i32;
                p.error_code = if r.is_empty() { 1 } else { 0 };
                p.high_watermark = 100 + pi as i64;
                p.last_stable_offset = 90;
                p.log_start_offset = if version >= 5 { 7 } else { -1 };
                p.aborted_transactions = if aborted {
                    let mut a = AbortedTransaction::default();
                    a.producer_id = ProducerId(9);
                    a.first_offset = 11;
                    Some(vec![a])
                } else if nulls {
                    None
                } else {
                    Some(vec![])
                };
                p.preferred_read_replica = BrokerId(-1);
                p.records = if nulls && r.is_empty() { None } else { Some(Bytes::from(r.clone())) };
                t.partitions.push(p);
            }
            resp.responses.push(t);
        }
        resp
    }

    fn check(version: i16, resp: &FetchResponse) {
        let header_version = if version >= 12 { 1 } else { 0 };
        let want = crate::request::encode_response(7, header_version, version, resp).expect("generic");
        let got = encode_fetch_response(7, version, resp).expect("fast");
        assert_eq!(got.len, want.len(), "v{version} length");
        assert_eq!(got.concat(), want, "v{version} bytes");
    }

    #[test]
    fn identical_to_the_generic_encoder_for_every_version() {
        for version in 4..=18 {
            for (aborted, nulls) in [(false, false), (true, false), (false, true)] {
                let records = vec![vec![1u8; 300], vec![], vec![2u8; 5], vec![3u8; 70_000]];
                check(version, &sample(version, &records, aborted, nulls));
            }
            check(version, &FetchResponse::default());
        }
    }

    #[test]
    fn records_are_passed_through_without_copying() {
        let resp = sample(16, &[vec![5u8; 1000]], false, false);
        let original = resp.responses[0].partitions[0].records.clone().expect("records");
        let got = encode_fetch_response(1, 16, &resp).expect("encode");
        assert!(got.chunks.iter().any(|c| c.as_ptr() == original.as_ptr() && c.len() == original.len()));
    }

    #[test]
    fn unusual_fields_fall_back_to_the_generic_encoder() {
        let mut resp = sample(16, &[vec![5u8; 10]], false, false);
        let mut leader = LeaderIdAndEpoch::default();
        leader.leader_id = BrokerId(1);
        leader.leader_epoch = 3;
        resp.responses[0].partitions[0].current_leader = leader;
        let got = encode_fetch_response(1, 16, &resp).expect("encode");
        assert_eq!(got.chunks.len(), 1);
        check(16, &resp);
    }

    proptest! {
        #[test]
        fn random_responses_match(version in 4i16..=18, sizes in proptest::collection::vec(0usize..2000, 0..7), aborted in any::<bool>(), nulls in any::<bool>()) {
            let records: Vec<Vec<u8>> = sizes.iter().map(|n| vec![0xabu8; *n]).collect();
            check(version, &sample(version, &records, aborted && !nulls, nulls));
        }
    }
}
