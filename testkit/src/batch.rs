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

/// One zstd batch (compressed by `sluice-protocol`'s codec, the v2 layout written out here) of
/// `count` records with timestamp and offset deltas 0, 1, ..., no headers, and a key and value
/// that are each empty (`true`) or null (`false`): the most records per compressed byte, for
/// tests of memory bounded by bytes rather than record count. Returns the batch and the size
/// of its decompressed records section.
pub fn sluice_zstd_batch_of_empty_records(count: i32, key: bool, value: bool, timestamp: i64) -> (Bytes, usize) {
    use bytes::BufMut;
    use sluice_protocol::compression::{compress, Compression};
    fn put_varint(out: &mut BytesMut, value: i64) {
        let mut v = ((value << 1) ^ (value >> 63)) as u64;
        while v >= 0x80 {
            out.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.put_u8(v as u8);
    }
    let empty_or_null = |present: bool| if present { 0 } else { -1 };
    let mut section = BytesMut::with_capacity(count as usize * 10);
    let mut body = BytesMut::with_capacity(16);
    for i in 0..count {
        body.clear();
        body.put_u8(0); // attributes
        put_varint(&mut body, 0); // timestamp delta
        put_varint(&mut body, i64::from(i)); // offset delta
        put_varint(&mut body, empty_or_null(key));
        put_varint(&mut body, empty_or_null(value));
        put_varint(&mut body, 0); // headers
        put_varint(&mut section, body.len() as i64);
        section.put_slice(&body);
    }
    let compressed = compress(Compression::Zstd, &section, None).expect("zstd");
    let mut b = BytesMut::with_capacity(61 + compressed.len());
    b.put_i64(0); // base offset
    b.put_i32((49 + compressed.len()) as i32);
    b.put_i32(-1); // partition leader epoch
    b.put_i8(2);
    b.put_u32(0); // crc, below
    b.put_i16(Compression::Zstd.id());
    b.put_i32(count - 1);
    b.put_i64(timestamp);
    b.put_i64(timestamp);
    b.put_i64(-1); // producer id
    b.put_i16(-1); // producer epoch
    b.put_i32(-1); // base sequence
    b.put_i32(count);
    b.put_slice(&compressed);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    (b.freeze(), section.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;
    use sluice_protocol::batch::RecordBatch;

    #[test]
    fn each_codec_reads_the_others_batch() {
        // kafka-protocol's batch, read by ours: CRC valid, same records.
        let theirs = RecordBatch::new(kafka_protocol_batch(&[b"a", b"bc"], 1_000).freeze()).expect("one batch");
        theirs.validate().expect("valid");
        let records = theirs.records(1 << 20).expect("records");
        let got: Vec<_> =
            records.iter().map(|r| (r.offset_delta, r.timestamp_delta, r.key.clone(), r.value.clone())).collect();
        assert_eq!(
            got,
            vec![
                (0, 0, Some(Bytes::from("k0")), Some(Bytes::from("a"))),
                (1, 1, Some(Bytes::from("k1")), Some(Bytes::from("bc")))
            ]
        );
        // Ours, read by kafka-protocol's decoder.
        let mut ours = sluice_batch(&["a", "bc"], 1_000);
        let sets = RecordBatchDecoder::decode_all(&mut ours).expect("decode");
        let got: Vec<_> =
            sets.iter().flat_map(|s| &s.records).map(|r| (r.offset, r.timestamp, r.value.clone())).collect();
        assert_eq!(got, vec![(0, 1_000, Some(Bytes::from("a"))), (1, 1_000, Some(Bytes::from("bc")))]);
        assert_eq!(kafka_protocol_count_records(Some(&sluice_batch(&["x"; 3], 5))), 3);
        // The empty-records batch: every record counted, CRC valid.
        let (batch, _) = sluice_zstd_batch_of_empty_records(1000, true, false, 7);
        let batch = RecordBatch::new(batch).expect("one batch");
        batch.validate().expect("valid");
        assert_eq!(batch.records_count(), 1000);
    }
}
