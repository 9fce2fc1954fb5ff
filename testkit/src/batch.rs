//! Record batches for tests, from two codecs that share no code, named by where they come from:
//! [`kafka_protocol_batch`] is built by `kafka-protocol`'s `RecordBatchEncoder` (independent of
//! Sluice) and [`sluice_batch`] by our own `sluice-protocol` builder. A test that writes with one
//! and reads with the other cross-checks our codec against an independent one.
//! Every batch here is uncompressed v2 with a valid CRC-32C.

use bytes::{Bytes, BytesMut};
use sluice_protocol::records::{BatchBuilder, Record};

use crate::now_ms;

/// One batch of `values` (keys `k0`, `k1`, ...; record `i` at `base_timestamp + i`) built by
/// `kafka-protocol`'s encoder. The encoder starts a new batch whenever `offset - sequence`
/// changes, so records carry `sequence = offset`; the header's base sequence is then reset to -1
/// (no producer id) and the CRC recomputed.
pub fn kafka_protocol_batch(values: &[&[u8]], base_timestamp: i64) -> BytesMut {
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: base_timestamp + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::copy_from_slice(v)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .expect("encode batch");
    let batch_len = i32::from_be_bytes(buf[8..12].try_into().expect("4 bytes")) as usize;
    assert_eq!(buf.len(), 12 + batch_len, "encoder produced exactly one batch");
    assert_eq!(i32::from_be_bytes(buf[57..61].try_into().expect("4 bytes")), values.len() as i32);
    buf[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    let crc = crc32c::crc32c(&buf[21..]);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
    buf
}

/// Number of records in a fetched records blob (all batches), by `kafka-protocol`'s decoder.
pub fn kafka_protocol_count_records(records: Option<&Bytes>) -> usize {
    use kafka_protocol::records::RecordBatchDecoder;
    let Some(r) = records else { return 0 };
    let mut b = r.clone();
    RecordBatchDecoder::decode_all(&mut b).expect("decode fetched batches").iter().map(|s| s.records.len()).sum()
}

/// One batch of `values` (keys `k0`, `k1`, ...; every record at `base_timestamp`) built by
/// `sluice-protocol`'s [`BatchBuilder`].
pub fn sluice_batch(values: &[&str], base_timestamp: i64) -> Bytes {
    BatchBuilder { base_timestamp, records: sluice_records(values, true), ..Default::default() }.build().expect("batch")
}

/// [`sluice_batch`] of one value, stamped now.
pub fn sluice_batch_one(value: &str) -> Bytes {
    sluice_batch(&[value], now_ms())
}

/// A batch of an idempotent (or, with `transactional`, transactional) producer, built by
/// `sluice-protocol`: values without keys, stamped now.
pub fn sluice_producer_batch(pid: i64, epoch: i16, base_sequence: i32, transactional: bool, values: &[&str]) -> Bytes {
    BatchBuilder {
        transactional,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence,
        base_timestamp: now_ms(),
        records: sluice_records(values, false),
        ..Default::default()
    }
    .build()
    .expect("batch")
}

/// Records of `values` at offset deltas 0, 1, ..., keyed `k0`, `k1`, ... when `keyed`.
fn sluice_records(values: &[&str], keyed: bool) -> Vec<Record> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            offset_delta: i as i32,
            key: keyed.then(|| Bytes::from(format!("k{i}"))),
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            ..Default::default()
        })
        .collect()
}
