//! Records inside a v2 batch: reading the varint-framed records (with headers) in place or
//! decoding them into owned values, and a builder that encodes a complete batch with any codec.
//! The broker reads records only off the hot path: produce-time checks that need them
//! (timestamps, compaction keys, recompression) walk them in place without allocating; timestamp
//! lookups, compaction and control batches decode them.

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::{
    BatchError, RecordBatch, TimestampType, ATTR_CONTROL, ATTR_TIMESTAMP_TYPE, ATTR_TRANSACTIONAL, CRC_OFFSET,
    CRC_START, LOG_OVERHEAD, MAGIC_V2, RECORD_BATCH_OVERHEAD,
};
use crate::compression::{compress, Compression};

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// The smallest possible encoded record, used to cap pre-allocation so a hostile
/// `records_count` cannot reserve gigabytes.
use crate::limits::RECORD_BYTES_MIN as MIN_RECORD_BYTES;

fn malformed(reason: impl Into<String>) -> BatchError {
    BatchError::MalformedRecords(reason.into())
}

/// A cursor over a byte slice that hands out borrowed sub-slices and never panics.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0, end: data.len() }
    }

    fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    fn u8(&mut self, what: &str) -> Result<u8, BatchError> {
        if self.pos >= self.end {
            return Err(truncated(what));
        }
        let byte = self.data.get(self.pos).copied().ok_or_else(|| truncated(what))?;
        self.pos += 1;
        Ok(byte)
    }

    /// Unsigned LEB128 of at most `max_bytes` bytes (5 for an int, 10 for a long), as Kafka's
    /// `ByteUtils.readVarint`/`readVarlong` require.
    fn unsigned_varint(&mut self, max_bytes: u32, what: &str) -> Result<u64, BatchError> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let byte = self.u8(what)?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed(format!("{what}: varint longer than {max_bytes} bytes")))
    }

    /// Zigzag varint (i32).
    fn varint(&mut self, what: &str) -> Result<i32, BatchError> {
        // Five 7-bit groups hold 35 bits; like Java, the bits above 32 are dropped.
        let raw = self.unsigned_varint(5, what)? as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// Zigzag varlong (i64).
    fn varlong(&mut self, what: &str) -> Result<i64, BatchError> {
        let raw = self.unsigned_varint(10, what)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn slice(&mut self, len: usize, what: &str) -> Result<&'a [u8], BatchError> {
        if len > self.remaining() {
            return Err(malformed(format!("{what} of {len} bytes overruns the record ({} left)", self.remaining())));
        }
        let out = self.data.get(self.pos..self.pos + len).ok_or_else(|| truncated(what))?;
        self.pos += len;
        Ok(out)
    }

    /// A varint length followed by that many bytes; a negative length is null (Kafka reads any
    /// negative size as null, `-1` being the one writers use).
    fn nullable_bytes(&mut self, what: &str) -> Result<Option<&'a [u8]>, BatchError> {
        let len = self.varint(what)?;
        match usize::try_from(len) {
            Ok(len) => self.slice(len, what).map(Some),
            Err(_) => Ok(None),
        }
    }
}

fn truncated(what: &str) -> BatchError {
    malformed(format!("truncated {what}"))
}

/// One record read in place: every field borrows from the records section, nothing is copied
/// or allocated. Its headers were checked when the record was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    header_count: usize,
    /// The encoded headers after the header count.
    headers: &'a [u8],
}

impl<'a> RecordView<'a> {
    pub fn header_count(&self) -> usize {
        self.header_count
    }

    /// The headers as (key, value) pairs.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let mut reader = Reader::new(self.headers);
        // Already checked by `read_record`, so a failure here cannot happen; it ends the
        // iteration rather than panicking.
        (0..self.header_count).map_while(move |_| read_header(&mut reader).ok())
    }
}

/// What a walk over a whole records section found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordsSummary {
    /// Records read: always the batch's `records_count` when the walk succeeds.
    pub count: usize,
    /// The largest offset delta, `None` for an empty section.
    pub max_offset_delta: Option<i32>,
}

/// Reads every record of an (already decompressed) records section in place, handing each to
/// `visit` with its index. Exactly `count` records must be present and the bytes consumed
/// exactly; every record must use exactly its declared length (Kafka's "Invalid record size").
///
/// Allocates nothing: memory stays O(1) however many records the section holds, which is what
/// lets produce validation look at a batch of millions of tiny records.
pub fn walk_records<'a>(
    data: &'a [u8],
    count: i32,
    mut visit: impl FnMut(usize, &RecordView<'a>),
) -> Result<RecordsSummary, BatchError> {
    let count = usize::try_from(count).map_err(|_| malformed(format!("negative record count {count}")))?;
    let mut reader = Reader::new(data);
    let mut summary = RecordsSummary::default();
    for index in 0..count {
        let len = reader.varint("record length")?;
        let len = usize::try_from(len).map_err(|_| malformed(format!("record {index} has negative length {len}")))?;
        if len > reader.remaining() {
            return Err(malformed(format!("record {index} claims {len} bytes but only {} remain", reader.remaining())));
        }
        // The record body is read through a cursor ending at its declared length, so a record
        // cannot borrow bytes from the next one; it must also use all of them.
        let body_end = reader.pos + len;
        let mut body = Reader { data, pos: reader.pos, end: body_end };
        let record = read_record(&mut body).map_err(|e| match e {
            BatchError::MalformedRecords(reason) => malformed(format!("record {index}: {reason}")),
            other => other,
        })?;
        if body.remaining() != 0 {
            return Err(malformed(format!(
                "record {index}: {} unread bytes at the end of its {len}-byte body",
                body.remaining()
            )));
        }
        reader.pos = body_end;
        summary.count += 1;
        summary.max_offset_delta =
            Some(summary.max_offset_delta.map_or(record.offset_delta, |m| m.max(record.offset_delta)));
        visit(index, &record);
    }
    if reader.remaining() != 0 {
        return Err(malformed(format!("{} bytes after the last of {count} records", reader.remaining())));
    }
    Ok(summary)
}

/// Decodes the (already decompressed) records section of a batch into owned records (zero-copy
/// slices of `data`). For checks that need no owned records, [`walk_records`] allocates nothing.
pub fn decode_records(data: &Bytes, count: i32) -> Result<Vec<Record>, BatchError> {
    let capacity = usize::try_from(count).unwrap_or(0).min(data.len() / MIN_RECORD_BYTES);
    let mut records = Vec::with_capacity(capacity);
    let owned = |slice: &[u8]| data.slice_ref(slice);
    walk_records(data, count, |_, r| {
        records.push(Record {
            attributes: r.attributes,
            timestamp_delta: r.timestamp_delta,
            offset_delta: r.offset_delta,
            key: r.key.map(owned),
            value: r.value.map(owned),
            headers: r
                .headers()
                .map(|(key, value)| RecordHeader { key: owned(key), value: value.map(owned) })
                .collect(),
        })
    })?;
    Ok(records)
}

fn read_record<'a>(r: &mut Reader<'a>) -> Result<RecordView<'a>, BatchError> {
    let attributes = r.u8("attributes")? as i8;
    let timestamp_delta = r.varlong("timestamp delta")?;
    let offset_delta = r.varint("offset delta")?;
    let key = r.nullable_bytes("key")?;
    let value = r.nullable_bytes("value")?;
    let header_count = r.varint("header count")?;
    let header_count =
        usize::try_from(header_count).map_err(|_| malformed(format!("negative header count {header_count}")))?;
    let headers_start = r.pos;
    for _ in 0..header_count {
        read_header(r)?;
    }
    let headers = r.data.get(headers_start..r.pos).unwrap_or_default();
    Ok(RecordView { attributes, timestamp_delta, offset_delta, key, value, header_count, headers })
}

fn read_header<'a>(r: &mut Reader<'a>) -> Result<(&'a [u8], Option<&'a [u8]>), BatchError> {
    let key_len = r.varint("header key length")?;
    let key_len = usize::try_from(key_len).map_err(|_| malformed(format!("negative header key length {key_len}")))?;
    let key = r.slice(key_len, "header key")?;
    let value = r.nullable_bytes("header value")?;
    Ok((key, value))
}

fn put_unsigned_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_unsigned_varint(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

fn put_varlong(out: &mut Vec<u8>, value: i64) {
    put_unsigned_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// Lengths are varints; anything beyond `i32::MAX` cannot be represented. [`BatchBuilder::build`]
/// rejects such records before encoding, so saturating here only guards direct callers.
fn put_len(out: &mut Vec<u8>, len: usize) {
    put_varint(out, i32::try_from(len).unwrap_or(i32::MAX));
}

fn put_nullable_bytes(out: &mut Vec<u8>, bytes: Option<&Bytes>) {
    match bytes {
        Some(bytes) => {
            put_len(out, bytes.len());
            out.extend_from_slice(bytes);
        }
        None => put_varint(out, -1),
    }
}

/// Encodes records (uncompressed records section) — the inverse of [`decode_records`].
pub fn encode_records(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = Vec::new();
    for record in records {
        body.clear();
        body.push(record.attributes as u8);
        put_varlong(&mut body, record.timestamp_delta);
        put_varint(&mut body, record.offset_delta);
        put_nullable_bytes(&mut body, record.key.as_ref());
        put_nullable_bytes(&mut body, record.value.as_ref());
        put_len(&mut body, record.headers.len());
        for header in &record.headers {
            put_len(&mut body, header.key.len());
            body.extend_from_slice(&header.key);
            put_nullable_bytes(&mut body, header.value.as_ref());
        }
        put_len(&mut out, body.len());
        out.extend_from_slice(&body);
    }
    out
}

/// Builds one v2 record batch, computing lengths, deltas and the CRC-32C.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub compression: Compression,
    pub compression_level: Option<i32>,
    pub timestamp_type: TimestampType,
    pub transactional: bool,
    pub control: bool,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// The batch's base timestamp (first record's); record timestamps are stored as deltas from it.
    pub base_timestamp: i64,
    /// Overrides the max timestamp field (LogAppendTime); otherwise the largest record timestamp.
    pub max_timestamp: Option<i64>,
    pub records: Vec<Record>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self {
            base_offset: 0,
            partition_leader_epoch: -1,
            compression: Compression::None,
            compression_level: None,
            timestamp_type: TimestampType::CreateTime,
            transactional: false,
            control: false,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            base_timestamp: 0,
            max_timestamp: None,
            records: Vec::new(),
        }
    }
}

impl BatchBuilder {
    /// A builder with `batch`'s header (offset, leader epoch, codec, timestamp type and base
    /// timestamp, transactional flag, producer id, epoch and base sequence) for new `records`:
    /// the starting point for rewriting a batch (recompression, compaction). Never a control
    /// batch; the max timestamp is computed from the records unless set.
    pub fn from_header(batch: &RecordBatch, records: Vec<Record>) -> Result<Self, BatchError> {
        Ok(Self {
            base_offset: batch.base_offset(),
            partition_leader_epoch: batch.partition_leader_epoch(),
            compression: batch.compression()?,
            compression_level: None,
            timestamp_type: batch.timestamp_type(),
            transactional: batch.is_transactional(),
            control: false,
            producer_id: batch.producer_id(),
            producer_epoch: batch.producer_epoch(),
            base_sequence: batch.base_sequence(),
            base_timestamp: batch.base_timestamp(),
            max_timestamp: None,
            records,
        })
    }

    /// Encodes the batch, including its 12-byte log overhead (base offset and length).
    pub fn build(&self) -> Result<Bytes, BatchError> {
        let too_big = |what: &str| malformed(format!("{what} does not fit in an i32 length"));
        let fits = |len: usize| i32::try_from(len).is_ok();
        for record in &self.records {
            let oversized = record.key.as_ref().is_some_and(|k| !fits(k.len()))
                || record.value.as_ref().is_some_and(|v| !fits(v.len()))
                || !fits(record.headers.len())
                || record
                    .headers
                    .iter()
                    .any(|h| !fits(h.key.len()) || h.value.as_ref().is_some_and(|v| !fits(v.len())));
            if oversized {
                return Err(too_big("a record field"));
            }
        }
        let records_count = i32::try_from(self.records.len()).map_err(|_| too_big("the record count"))?;
        let raw = encode_records(&self.records);
        // An empty batch (Kafka never writes one from a producer; compaction can leave them) gets
        // last offset delta 0 and the base timestamp as its max.
        let last_offset_delta = self.records.iter().map(|r| r.offset_delta).max().unwrap_or(0);
        let max_timestamp = self.max_timestamp.unwrap_or_else(|| {
            self.records
                .iter()
                .map(|r| self.base_timestamp.wrapping_add(r.timestamp_delta))
                .max()
                .unwrap_or(self.base_timestamp)
        });
        self.encode(&raw, records_count, last_offset_delta, max_timestamp)
    }

    /// Encodes a batch with this builder's header around `section`, an uncompressed records
    /// section of `records_count` records that is already encoded (`self.records` is ignored):
    /// rewriting a batch under another codec without decoding its records into memory.
    /// `max_timestamp` must be set; the last offset delta is the caller's (the largest record's).
    pub fn build_from_section(
        &self,
        section: &[u8],
        records_count: i32,
        last_offset_delta: i32,
    ) -> Result<Bytes, BatchError> {
        let max_timestamp = self.max_timestamp.ok_or_else(|| malformed("a rewritten batch needs its max timestamp"))?;
        self.encode(section, records_count, last_offset_delta, max_timestamp)
    }

    fn encode(
        &self,
        raw: &[u8],
        records_count: i32,
        last_offset_delta: i32,
        max_timestamp: i64,
    ) -> Result<Bytes, BatchError> {
        let too_big = |what: &str| malformed(format!("{what} does not fit in an i32 length"));
        let payload = compress(self.compression, raw, self.compression_level)?;

        let mut attributes = self.compression.id();
        if self.timestamp_type == TimestampType::LogAppendTime {
            attributes |= ATTR_TIMESTAMP_TYPE;
        }
        if self.transactional {
            attributes |= ATTR_TRANSACTIONAL;
        }
        if self.control {
            attributes |= ATTR_CONTROL;
        }

        let total = RECORD_BATCH_OVERHEAD.checked_add(payload.len()).ok_or_else(|| too_big("the batch"))?;
        let batch_length = i32::try_from(total - LOG_OVERHEAD).map_err(|_| too_big("the batch"))?;

        let mut out = BytesMut::with_capacity(total);
        out.put_i64(self.base_offset);
        out.put_i32(batch_length);
        out.put_i32(self.partition_leader_epoch);
        out.put_i8(MAGIC_V2);
        out.put_u32(0); // CRC, filled in below once everything it covers is written
        out.put_i16(attributes);
        out.put_i32(last_offset_delta);
        out.put_i64(self.base_timestamp);
        out.put_i64(max_timestamp);
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.base_sequence);
        out.put_i32(records_count);
        out.put_slice(&payload);
        let crc = crc32c::crc32c(out.get(CRC_START..).unwrap_or_default());
        if let Some(field) = out.get_mut(CRC_OFFSET..CRC_START) {
            field.copy_from_slice(&crc.to_be_bytes());
        }
        Ok(out.freeze())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::batch::RecordBatch;
    use proptest::prelude::*;

    fn decode(bytes: &[u8], count: i32) -> Result<Vec<Record>, BatchError> {
        decode_records(&Bytes::copy_from_slice(bytes), count)
    }

    fn assert_malformed(bytes: &[u8], count: i32) {
        match decode(bytes, count) {
            Err(BatchError::MalformedRecords(_)) => {}
            other => panic!("expected MalformedRecords for {bytes:02x?}, got {other:?}"),
        }
    }

    #[test]
    fn decodes_hand_encoded_records() {
        // From a Kafka-written batch: null key, value "sdfdsf", no headers.
        let records = decode(b"\x18\x00\x00\x00\x01\x0csdfdsf\x00", 1).unwrap();
        assert_eq!(records, vec![Record { value: Some(Bytes::from_static(b"sdfdsf")), ..Record::default() }]);

        // attributes 0, timestamp delta -1 (zigzag 1), offset delta 300 (zigzag 600 = 0xd8 0x04),
        // empty key, null value, two headers: "a" = null, "b" = "".
        let bytes = [0x1a, 0x00, 0x01, 0xd8, 0x04, 0x00, 0x01, 0x04, 0x02, b'a', 0x01, 0x02, b'b', 0x00];
        let records = decode(&bytes, 1).unwrap();
        assert_eq!(
            records,
            vec![Record {
                attributes: 0,
                timestamp_delta: -1,
                offset_delta: 300,
                key: Some(Bytes::new()),
                value: None,
                headers: vec![
                    RecordHeader { key: Bytes::from_static(b"a"), value: None },
                    RecordHeader { key: Bytes::from_static(b"b"), value: Some(Bytes::new()) },
                ],
            }]
        );
        assert_eq!(encode_records(&records), bytes);
    }

    #[test]
    fn varint_extremes_round_trip() {
        for (ts, off) in [(i64::MIN, i32::MIN), (i64::MAX, i32::MAX), (0, 0), (-1, -1), (63, 64), (-64, -65)] {
            let record = Record { timestamp_delta: ts, offset_delta: off, ..Record::default() };
            let bytes = Bytes::from(encode_records(std::slice::from_ref(&record)));
            assert_eq!(decode_records(&bytes, 1).unwrap(), vec![record]);
        }
        // i64::MIN zigzags to u64::MAX: ten bytes, the most a varlong may take.
        let bytes = encode_records(&[Record { timestamp_delta: i64::MIN, ..Record::default() }]);
        assert_eq!(bytes.len(), 1 + 1 + 10 + 1 + 1 + 1 + 1);
    }

    #[test]
    fn zero_copy_slices_share_the_input() {
        let data =
            Bytes::from(encode_records(&[Record { value: Some(Bytes::from_static(b"payload")), ..Record::default() }]));
        let records = decode_records(&data, 1).unwrap();
        let value = records[0].value.as_ref().unwrap();
        let data_range = data.as_ptr() as usize..data.as_ptr() as usize + data.len();
        assert!(data_range.contains(&(value.as_ptr() as usize)));
    }

    #[test]
    fn rejects_malformed_records() {
        let good = encode_records(&[Record { value: Some(Bytes::from_static(b"v")), ..Record::default() }]);
        decode(&good, 1).unwrap();
        // Wrong counts and leftovers.
        assert_malformed(&good, 2);
        assert_malformed(&good, -1);
        assert_malformed(&good, i32::MAX);
        let mut trailing = good.clone();
        trailing.push(0);
        assert_malformed(&trailing, 1);
        assert_eq!(decode(&[], 0).unwrap(), vec![]);
        assert_malformed(&good, 0);
        // Every truncation.
        for cut in 0..good.len() {
            assert_malformed(&good[..cut], 1);
        }
        // Negative record length.
        assert_malformed(&[0x01], 1);
        // A field running past the declared record length must not borrow the next bytes: the
        // header count lies outside this 6-byte body even though a 0 follows it.
        assert_malformed(&[0x0c, 0, 0, 0, 0x02, b'A', 0x01, 0x00], 1);
        // Body with unread bytes at its end (length 8, content 6 + 2 spare bytes).
        assert_malformed(&[0x10, 0, 0, 0, 1, 1, 0, 9, 9], 1);
        // Varint longer than 5 bytes.
        assert_malformed(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], 1);
        // Varlong longer than 10 bytes (timestamp delta).
        let mut long = vec![0x18, 0x00];
        long.extend_from_slice(&[0x80; 10]);
        long.push(0x01);
        assert_malformed(&long, 1);
        // Negative header count, negative header key length.
        assert_malformed(&[0x0c, 0, 0, 0, 1, 1, 0x01], 1);
        assert_malformed(&[0x10, 0, 0, 0, 1, 1, 0x02, 0x01, 0x01], 1);
        // Key length pointing past the record.
        assert_malformed(&[0x0c, 0, 0, 0, 0x7e, 1, 0], 1);
    }

    #[test]
    fn negative_lengths_other_than_minus_one_read_as_null_like_kafka() {
        // key length -2 (zigzag 3), value length -1.
        let records = decode(&[0x0c, 0, 0, 0, 0x03, 0x01, 0], 1).unwrap();
        assert_eq!(records[0].key, None);
        assert_eq!(records[0].value, None);
    }

    #[test]
    fn builder_sets_header_fields() {
        let builder = BatchBuilder {
            base_offset: 10,
            partition_leader_epoch: 4,
            compression: Compression::Snappy,
            timestamp_type: TimestampType::LogAppendTime,
            transactional: true,
            control: true,
            producer_id: 99,
            producer_epoch: 2,
            base_sequence: 17,
            base_timestamp: 1_000,
            records: vec![
                Record { offset_delta: 0, timestamp_delta: 50, ..Record::default() },
                Record { offset_delta: 1, timestamp_delta: -20, ..Record::default() },
                Record { offset_delta: 2, timestamp_delta: 7, ..Record::default() },
            ],
            ..BatchBuilder::default()
        };
        let bytes = builder.build().unwrap();
        assert_eq!(i32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize, bytes.len() - 12);
        let batch = RecordBatch::new(bytes).unwrap();
        batch.validate_for_produce().unwrap();
        assert_eq!(
            batch.attributes(),
            Compression::Snappy as i16 | ATTR_TIMESTAMP_TYPE | ATTR_TRANSACTIONAL | ATTR_CONTROL
        );
        assert_eq!(batch.last_offset_delta(), 2);
        assert_eq!(batch.max_timestamp(), 1_050);
        assert_eq!(batch.records_count(), 3);
        assert_eq!((batch.base_offset(), batch.partition_leader_epoch(), batch.producer_id()), (10, 4, 99));
        assert_eq!((batch.producer_epoch(), batch.base_sequence(), batch.base_timestamp()), (2, 17, 1_000));

        let overridden = BatchBuilder { max_timestamp: Some(5), ..builder.clone() }.build().unwrap();
        assert_eq!(RecordBatch::new(overridden).unwrap().max_timestamp(), 5);

        // last_offset_delta is the largest delta, not the last one's.
        let shuffled = BatchBuilder {
            records: vec![
                Record { offset_delta: 2, ..Record::default() },
                Record { offset_delta: 0, ..Record::default() },
                Record { offset_delta: 1, ..Record::default() },
            ],
            ..builder
        };
        assert_eq!(RecordBatch::new(shuffled.build().unwrap()).unwrap().last_offset_delta(), 2);
    }

    #[test]
    fn builder_rejects_bad_levels() {
        let builder = BatchBuilder {
            compression: Compression::Gzip,
            compression_level: Some(42),
            records: vec![Record::default()],
            ..BatchBuilder::default()
        };
        assert!(matches!(builder.build(), Err(BatchError::Compression(_))));
    }

    fn arb_bytes(max: usize) -> impl Strategy<Value = Bytes> {
        prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            any::<i8>(),
            any::<i64>(),
            any::<i32>(),
            prop::option::of(arb_bytes(40)),
            prop::option::of(arb_bytes(300)),
            prop::collection::vec(
                (arb_bytes(20), prop::option::of(arb_bytes(40))).prop_map(|(key, value)| RecordHeader { key, value }),
                0..5,
            ),
        )
            .prop_map(|(attributes, timestamp_delta, offset_delta, key, value, headers)| Record {
                attributes,
                timestamp_delta,
                offset_delta,
                key,
                value,
                headers,
            })
    }

    proptest! {
        #[test]
        fn records_round_trip(records in prop::collection::vec(arb_record(), 0..16)) {
            let bytes = Bytes::from(encode_records(&records));
            prop_assert_eq!(decode_records(&bytes, records.len() as i32).unwrap(), records);
        }

        #[test]
        fn decode_never_panics(data in prop::collection::vec(any::<u8>(), 0..300), count in -2i32..8) {
            let _ = decode_records(&Bytes::from(data), count);
        }

        /// Single-byte corruptions of valid records: near-misses exercise deeper paths than noise.
        #[test]
        fn corrupted_records_never_panic(records in prop::collection::vec(arb_record(), 1..4), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = encode_records(&records);
            let i = pos.index(bytes.len());
            bytes[i] = byte;
            let _ = decode_records(&Bytes::from(bytes), records.len() as i32);
        }
    }
}
