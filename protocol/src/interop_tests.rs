//! Interop tests against an independent v2 implementation, the `kafka-protocol` crate (with its own
//! codecs: C lz4, snap, flate2, zstd): batches we build must decode there, and batches it builds
//! must validate and decode here, for every codec.

#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KpCompression, Record as KpRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as KpTimestampType,
};
use proptest::prelude::*;

use crate::batch::{BatchIter, RecordBatch};
use crate::compression::Compression;
use crate::records::{BatchBuilder, Record, RecordHeader};

const LIMIT: usize = 16 << 20;

fn kp_codec(codec: Compression) -> KpCompression {
    match codec {
        Compression::None => KpCompression::None,
        Compression::Gzip => KpCompression::Gzip,
        Compression::Snappy => KpCompression::Snappy,
        Compression::Lz4 => KpCompression::Lz4,
        Compression::Zstd => KpCompression::Zstd,
    }
}

/// What both sides must agree on for one record, in absolute terms.
#[derive(Debug, PartialEq, Eq)]
struct Flat {
    offset: i64,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(Bytes, Option<Bytes>)>,
}

fn flat_ours(batch: &RecordBatch) -> Vec<Flat> {
    batch
        .records(LIMIT)
        .unwrap()
        .into_iter()
        .map(|r| Flat {
            offset: batch.base_offset() + i64::from(r.offset_delta),
            timestamp: batch.base_timestamp() + r.timestamp_delta,
            key: r.key,
            value: r.value,
            headers: r.headers.into_iter().map(|h| (h.key, h.value)).collect(),
        })
        .collect()
}

fn flat_theirs(records: &[KpRecord]) -> Vec<Flat> {
    records
        .iter()
        .map(|r| Flat {
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.iter().map(|(k, v)| (Bytes::copy_from_slice(k.as_bytes()), v.clone())).collect(),
        })
        .collect()
}

/// Sample records: null and empty keys/values, several headers (unique UTF-8 keys: the other side
/// keeps headers in a map), a null header value, a repetitive value so compression has work.
fn sample_records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            attributes: 0,
            timestamp_delta: (i as i64) * 7 - 3,
            offset_delta: i as i32,
            key: match i % 3 {
                0 => None,
                1 => Some(Bytes::new()),
                _ => Some(Bytes::from(format!("key-{i}"))),
            },
            value: if i % 4 == 3 { None } else { Some(Bytes::from(format!("value {i} ").repeat(i % 50 + 1))) },
            headers: (0..i % 3)
                .map(|h| RecordHeader {
                    key: Bytes::from(format!("h{h}")),
                    value: if h == 1 { None } else { Some(Bytes::from(vec![h as u8; i % 5])) },
                })
                .collect(),
        })
        .collect()
}

fn ours_to_theirs(builder: &BatchBuilder) {
    let bytes = builder.build().unwrap();
    let ours = RecordBatch::new(bytes.clone()).unwrap();
    let mut buf = bytes;
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    assert!(buf.is_empty(), "{:?}: kafka-protocol left bytes unread", builder.compression);
    assert_eq!(set.compression, kp_codec(builder.compression));
    assert_eq!(set.version, 2);
    assert_eq!(flat_theirs(&set.records), flat_ours(&ours));
    for r in &set.records {
        assert_eq!(r.producer_id, builder.producer_id);
        assert_eq!(r.producer_epoch, builder.producer_epoch);
        assert_eq!(r.partition_leader_epoch, builder.partition_leader_epoch);
        assert_eq!(r.transactional, builder.transactional);
        assert_eq!(r.sequence, builder.base_sequence.wrapping_add((r.offset - builder.base_offset) as i32));
    }
}

fn theirs_to_ours(codec: Compression, records: &[Record], base_offset: i64, base_timestamp: i64) {
    let kp: Vec<KpRecord> = records
        .iter()
        .map(|r| KpRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 5,
            producer_id: 1234,
            producer_epoch: 2,
            timestamp_type: KpTimestampType::Creation,
            offset: base_offset + i64::from(r.offset_delta),
            // One batch needs `offset - sequence` constant, as an idempotent producer's would be.
            sequence: 100 + r.offset_delta,
            timestamp: base_timestamp + r.timestamp_delta,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|h| (StrBytes::from_utf8(h.key.clone()).unwrap(), h.value.clone()))
                .collect::<IndexMap<_, _>>(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &kp, &RecordEncodeOptions { version: 2, compression: kp_codec(codec) })
        .unwrap();
    let mut iter = BatchIter::new(buf.freeze());
    let batch = iter.next().unwrap().unwrap();
    assert!(iter.next().is_none() && iter.remaining().is_empty(), "{codec:?}: expected exactly one batch");
    batch.validate_for_produce().unwrap();
    assert_eq!(batch.compression().unwrap(), codec);
    assert_eq!(batch.records_count() as usize, records.len());
    assert_eq!((batch.producer_id(), batch.producer_epoch(), batch.base_sequence()), (1234, 2, 100));
    assert_eq!(batch.partition_leader_epoch(), 5);
    let min_ts = kp.iter().map(|r| r.timestamp).min().unwrap();
    let max_ts = kp.iter().map(|r| r.timestamp).max().unwrap();
    assert_eq!((batch.base_timestamp(), batch.max_timestamp()), (min_ts, max_ts));
    assert_eq!(batch.base_offset(), base_offset);
    assert_eq!(flat_ours(&batch), flat_theirs(&kp));
}

#[test]
fn our_batches_decode_with_kafka_protocol() {
    for codec in Compression::ALL {
        for n in [1, 2, 10, 500] {
            ours_to_theirs(&BatchBuilder {
                base_offset: 1_000,
                partition_leader_epoch: 3,
                compression: codec,
                transactional: n % 2 == 0,
                producer_id: 77,
                producer_epoch: 1,
                base_sequence: 40,
                base_timestamp: 1_700_000_000_000,
                records: sample_records(n),
                ..BatchBuilder::default()
            });
        }
    }
}

#[test]
fn kafka_protocol_batches_decode_with_ours() {
    for codec in Compression::ALL {
        for n in [1, 2, 10, 500] {
            // Record timestamps start at the minimum so the base timestamp is predictable.
            let mut records = sample_records(n);
            for r in &mut records {
                r.timestamp_delta += 3;
            }
            theirs_to_ours(codec, &records, 42, 1_700_000_000_000);
        }
    }
}

/// A large, mostly incompressible batch crosses every codec's block boundaries (snappy's 32 KiB
/// chunks, lz4's 64 KiB blocks) in both directions.
#[test]
fn large_batches_cross_block_boundaries() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..300_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let records: Vec<Record> = noise
        .chunks(100_000)
        .enumerate()
        .map(|(i, chunk)| Record {
            offset_delta: i as i32,
            value: Some(Bytes::copy_from_slice(chunk)),
            ..Record::default()
        })
        .collect();
    for codec in Compression::ALL {
        ours_to_theirs(&BatchBuilder { compression: codec, records: records.clone(), ..BatchBuilder::default() });
        theirs_to_ours(codec, &records, 0, 0);
    }
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Option<Bytes>> {
    prop::option::of(prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from))
}

fn arb_records() -> impl Strategy<Value = Vec<Record>> {
    prop::collection::vec(
        (
            0i64..1_000_000,
            arb_bytes(24),
            arb_bytes(300),
            prop::collection::btree_map("[a-z]{1,6}", arb_bytes(16), 0..4),
        ),
        1..12,
    )
    .prop_map(|rs| {
        rs.into_iter()
            .enumerate()
            .map(|(i, (timestamp_delta, key, value, headers))| Record {
                attributes: 0,
                timestamp_delta,
                offset_delta: i as i32,
                key,
                value,
                headers: headers.into_iter().map(|(k, v)| RecordHeader { key: Bytes::from(k), value: v }).collect(),
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_batches_interoperate(
        codec in prop::sample::select(Compression::ALL.to_vec()),
        mut records in arb_records(),
        base_offset in 0i64..1 << 40,
        base_timestamp in 0i64..1 << 42,
    ) {
        ours_to_theirs(&BatchBuilder {
            base_offset,
            compression: codec,
            base_timestamp,
            records: records.clone(),
            ..BatchBuilder::default()
        });
        // kafka-protocol derives the base timestamp from the minimum; make the first the minimum.
        let min = records.iter().map(|r| r.timestamp_delta).min().unwrap_or(0);
        for r in &mut records {
            r.timestamp_delta -= min;
        }
        theirs_to_ours(codec, &records, base_offset, base_timestamp);
    }
}
