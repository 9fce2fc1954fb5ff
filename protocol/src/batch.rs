//! A zero-copy view over one v2 record batch (magic 2), the unit Kafka stores and ships.
//!
//! Layout (big-endian), offsets from the start of the batch:
//! `0 base_offset i64 | 8 batch_length i32 | 12 partition_leader_epoch i32 | 16 magic i8 |
//!  17 crc u32 | 21 attributes i16 | 23 last_offset_delta i32 | 27 base_timestamp i64 |
//!  35 max_timestamp i64 | 43 producer_id i64 | 51 producer_epoch i16 | 53 base_sequence i32 |
//!  57 records_count i32 | 61 records…`
//! `batch_length` counts the bytes after itself; the CRC-32C covers bytes 21.. to the end. The base
//! offset and partition leader epoch lie outside the CRC, which is why the broker can stamp them in
//! place ([`RecordBatch::header_patch`]) without touching the rest of the batch.

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use crate::batch_header::BatchHeader;
use crate::compression::decompress;
use crate::compression::{Compression, CompressionError};
use crate::records::{decode_records, walk_records, Record, RecordView, RecordsSummary};

pub use crate::limits::{DECOMPRESSED_BATCH_BYTES_MAX, LOG_OVERHEAD, RECORD_BATCH_OVERHEAD};
/// The only magic Kafka 4 accepts.
pub const MAGIC_V2: i8 = 2;
/// Attribute bits.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

/// Field offsets within a batch (see the layout above).
pub const BASE_OFFSET_OFFSET: usize = 0;
pub const BATCH_LENGTH_OFFSET: usize = 8;
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub const MAGIC_OFFSET: usize = 16;
pub const CRC_OFFSET: usize = 17;
/// The CRC covers everything from the attributes on.
pub const CRC_START: usize = 21;
pub const ATTRIBUTES_OFFSET: usize = 21;
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
pub const PRODUCER_ID_OFFSET: usize = 43;
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
pub const BASE_SEQUENCE_OFFSET: usize = 53;
pub const RECORDS_COUNT_OFFSET: usize = 57;
/// Smallest valid `batch_length`: the header after the log overhead.
pub const MIN_BATCH_LENGTH: i32 = (RECORD_BATCH_OVERHEAD - LOG_OVERHEAD) as i32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// What is wrong with a batch. The broker maps these to Kafka error codes
/// (`CorruptMessage`, `UnsupportedForMessageFormat`, `InvalidRecord`, …).
#[derive(Debug, Error)]
pub enum BatchError {
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("invalid batch length {0}")]
    InvalidLength(i32),
    #[error("unsupported magic {0}")]
    UnsupportedMagic(i8),
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("unknown compression codec {0}")]
    UnknownCodec(i16),
    /// A negative base offset or offset delta, which no log holds.
    #[error("invalid offsets: base {base_offset} delta {last_offset_delta}")]
    InvalidOffsets { base_offset: i64, last_offset_delta: i32 },
    #[error("record count {count} does not match last offset delta {last_offset_delta}")]
    CountMismatch { count: i32, last_offset_delta: i32 },
    #[error("malformed records: {0}")]
    MalformedRecords(String),
    #[error(transparent)]
    Compression(#[from] CompressionError),
}

/// One whole batch: exactly `LOG_OVERHEAD + batch_length` bytes. Cheap to clone (a `Bytes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
}

impl RecordBatch {
    /// Splits the first batch off `buf` (a concatenation of batches, as in a Produce request, a
    /// segment file or a Fetch response). Returns `Ok(None)` when `buf` is empty or holds only a
    /// partial trailing batch (a truncated fetch response or a torn log tail); `Err` when the
    /// header itself is invalid (negative/too-small length, magic other than 2 once readable).
    /// The returned batch shares memory with `buf`; `buf` is advanced past it.
    ///
    /// `buf` is left untouched unless a whole batch is returned. The length is not checked against
    /// any size limit here: a huge declared length just reads as a partial batch, and callers that
    /// buffer input enforce their own maximum.
    pub fn split_first(buf: &mut Bytes) -> Result<Option<RecordBatch>, BatchError> {
        let Some(batch_length) = read_i32(buf, BATCH_LENGTH_OFFSET) else {
            return Ok(None);
        };
        if batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::InvalidLength(batch_length));
        }
        // Like Kafka's log input stream, the magic is checked as soon as it is readable, so a
        // non-v2 batch is reported rather than waited on.
        match buf.get(MAGIC_OFFSET) {
            None => return Ok(None),
            Some(&magic) if magic as i8 != MAGIC_V2 => return Err(BatchError::UnsupportedMagic(magic as i8)),
            Some(_) => {}
        }
        let total = LOG_OVERHEAD.saturating_add(batch_length.unsigned_abs() as usize);
        if buf.len() < total {
            return Ok(None);
        }
        Ok(Some(RecordBatch { bytes: buf.split_to(total) }))
    }

    /// Wraps bytes that must hold exactly one batch (length field consistent with `bytes.len()`).
    /// The magic must be 2 as well: every accessor assumes the v2 layout.
    pub fn new(bytes: Bytes) -> Result<Self, BatchError> {
        if bytes.len() < RECORD_BATCH_OVERHEAD {
            return Err(BatchError::Truncated { needed: RECORD_BATCH_OVERHEAD, available: bytes.len() });
        }
        let batch_length = read_i32(&bytes, BATCH_LENGTH_OFFSET).unwrap_or(-1);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::InvalidLength(batch_length));
        }
        let needed = LOG_OVERHEAD.saturating_add(batch_length.unsigned_abs() as usize);
        if bytes.len() < needed {
            return Err(BatchError::Truncated { needed, available: bytes.len() });
        }
        if bytes.len() > needed {
            return Err(BatchError::InvalidLength(batch_length));
        }
        let magic = bytes.get(MAGIC_OFFSET).map_or(-1, |&m| m as i8);
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        Ok(Self { bytes })
    }

    /// The batch's bytes, including the log overhead.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Total size in bytes including the log overhead.
    pub fn size_in_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The header, viewed in place: every header field is read through it.
    pub fn header(&self) -> BatchHeader<'_> {
        // The constructors checked that a whole header is present.
        BatchHeader::unchecked(&self.bytes)
    }

    pub fn base_offset(&self) -> i64 {
        self.header().base_offset()
    }
    pub fn batch_length(&self) -> i32 {
        self.header().batch_length()
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        self.header().partition_leader_epoch()
    }
    pub fn magic(&self) -> i8 {
        self.header().magic()
    }
    pub fn crc(&self) -> u32 {
        self.header().crc()
    }
    pub fn attributes(&self) -> i16 {
        self.header().attributes()
    }
    /// The codec, or `Err(UnknownCodec)` for ids 5–7.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        self.header().compression()
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.header().is_log_append_time() {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    pub fn is_transactional(&self) -> bool {
        self.header().is_transactional()
    }
    pub fn is_control(&self) -> bool {
        self.header().is_control()
    }
    /// Whether compaction recorded a delete horizon (then `base_timestamp` holds it).
    pub fn has_delete_horizon(&self) -> bool {
        self.header().has_delete_horizon()
    }
    pub fn last_offset_delta(&self) -> i32 {
        self.header().last_offset_delta()
    }
    pub fn base_timestamp(&self) -> i64 {
        self.header().base_timestamp()
    }
    pub fn max_timestamp(&self) -> i64 {
        self.header().max_timestamp()
    }
    pub fn producer_id(&self) -> i64 {
        self.header().producer_id()
    }
    pub fn producer_epoch(&self) -> i16 {
        self.header().producer_epoch()
    }
    pub fn base_sequence(&self) -> i32 {
        self.header().base_sequence()
    }
    pub fn records_count(&self) -> i32 {
        self.header().records_count()
    }
    /// `base_offset + last_offset_delta`.
    pub fn last_offset(&self) -> i64 {
        self.header().last_offset()
    }
    /// `base_offset + last_offset_delta + 1`.
    pub fn next_offset(&self) -> i64 {
        self.header().next_offset()
    }

    /// CRC-32C (Castagnoli) over bytes 21.. — what the `crc` field should hold.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(self.bytes.get(CRC_START..).unwrap_or_default())
    }

    /// Structural checks that need no decompression: magic 2, length ≥ header size, CRC matches,
    /// known codec, `records_count >= 0`. Cheap (one CRC pass); run on every produced batch and
    /// on every batch read during recovery.
    pub fn validate(&self) -> Result<(), BatchError> {
        // Magic and length are enforced by the constructors; re-checking costs nothing and keeps
        // this method a complete statement of what a valid batch is.
        if self.magic() != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(self.magic()));
        }
        let batch_length = self.batch_length();
        if batch_length < MIN_BATCH_LENGTH || LOG_OVERHEAD + batch_length.unsigned_abs() as usize != self.bytes.len() {
            return Err(BatchError::InvalidLength(batch_length));
        }
        let (stored, computed) = (self.crc(), self.compute_crc());
        if stored != computed {
            return Err(BatchError::CrcMismatch { stored, computed });
        }
        self.compression()?;
        if self.records_count() < 0 {
            return Err(BatchError::CountMismatch {
                count: self.records_count(),
                last_offset_delta: self.last_offset_delta(),
            });
        }
        Ok(())
    }

    /// The stricter checks Kafka applies to batches a producer sends: [`validate`](Self::validate)
    /// plus `records_count == last_offset_delta + 1` and `records_count > 0`.
    pub fn validate_for_produce(&self) -> Result<(), BatchError> {
        self.validate()?;
        let count = self.records_count();
        let last_offset_delta = self.last_offset_delta();
        // Widened so `last_offset_delta == i32::MAX` cannot overflow.
        if count <= 0 || i64::from(count) != i64::from(last_offset_delta) + 1 {
            return Err(BatchError::CountMismatch { count, last_offset_delta });
        }
        Ok(())
    }

    /// The batch's first 16 bytes with `base_offset` and `partition_leader_epoch` replaced. Both
    /// lie outside the CRC, so writing this patch followed by `as_bytes()[16..]` yields a valid
    /// batch at its assigned offset without copying the records.
    pub fn header_patch(&self, base_offset: i64, partition_leader_epoch: i32) -> [u8; 16] {
        let mut patch = [0u8; 16];
        patch[..8].copy_from_slice(&base_offset.to_be_bytes());
        patch[8..12].copy_from_slice(&self.field::<4>(BATCH_LENGTH_OFFSET));
        patch[12..16].copy_from_slice(&partition_leader_epoch.to_be_bytes());
        patch
    }

    /// A copy with base offset and leader epoch replaced (for paths that need a contiguous batch).
    pub fn with_offset(&self, base_offset: i64, partition_leader_epoch: i32) -> RecordBatch {
        let mut out = BytesMut::from(&self.bytes[..]);
        put_at(&mut out, BASE_OFFSET_OFFSET, &self.header_patch(base_offset, partition_leader_epoch));
        RecordBatch { bytes: out.freeze() }
    }

    /// A copy stamped with `LogAppendTime`: the timestamp-type bit set, `max_timestamp = now_ms`,
    /// CRC recomputed (Kafka leaves record deltas alone).
    pub fn with_log_append_time(&self, now_ms: i64) -> RecordBatch {
        let mut out = BytesMut::from(&self.bytes[..]);
        let attributes = self.attributes() | ATTR_TIMESTAMP_TYPE;
        put_at(&mut out, ATTRIBUTES_OFFSET, &attributes.to_be_bytes());
        put_at(&mut out, MAX_TIMESTAMP_OFFSET, &now_ms.to_be_bytes());
        let crc = crc32c::crc32c(out.get(CRC_START..).unwrap_or_default());
        put_at(&mut out, CRC_OFFSET, &crc.to_be_bytes());
        RecordBatch { bytes: out.freeze() }
    }

    /// A copy with `attributes` OR-ed into the attributes and, when given, the last offset delta
    /// replaced, CRC recomputed (both fields lie inside the CRC). The cleaner uses it to record a
    /// delete horizon and to keep an emptied batch's offset range.
    pub fn with_header_fields(&self, attributes: i16, last_offset_delta: Option<i32>) -> RecordBatch {
        let mut out = BytesMut::from(&self.bytes[..]);
        put_at(&mut out, ATTRIBUTES_OFFSET, &(self.attributes() | attributes).to_be_bytes());
        if let Some(delta) = last_offset_delta {
            put_at(&mut out, LAST_OFFSET_DELTA_OFFSET, &delta.to_be_bytes());
        }
        let crc = crc32c::crc32c(out.get(CRC_START..).unwrap_or_default());
        put_at(&mut out, CRC_OFFSET, &crc.to_be_bytes());
        RecordBatch { bytes: out.freeze() }
    }

    /// The records section exactly as stored (compressed if the batch is).
    pub fn records_section(&self) -> Bytes {
        self.bytes.slice(RECORD_BATCH_OVERHEAD..)
    }

    /// The decompressed records section (a cheap slice for uncompressed batches).
    ///
    /// The limit only bounds decompression: an uncompressed section is already in memory, so
    /// slicing it cannot inflate anything.
    pub fn records_data(&self, max_output_bytes: usize) -> Result<Bytes, BatchError> {
        match self.compression()? {
            Compression::None => Ok(self.records_section()),
            codec => {
                let section = self.bytes.get(RECORD_BATCH_OVERHEAD..).unwrap_or_default();
                Ok(Bytes::from(decompress(codec, section, max_output_bytes)?))
            }
        }
    }

    /// Decompresses (bounded by `max_output_bytes`) and decodes every record.
    pub fn records(&self, max_output_bytes: usize) -> Result<Vec<Record>, BatchError> {
        decode_records(&self.records_data(max_output_bytes)?, self.records_count())
    }

    /// Decompresses (bounded by `max_output_bytes`) and reads every record in place, handing each
    /// to `visit`; returns the decompressed section with what the walk found. Beyond the
    /// decompressed bytes nothing is allocated per record, unlike [`records`](Self::records).
    pub fn walk_records(
        &self,
        max_output_bytes: usize,
        visit: impl FnMut(usize, &RecordView<'_>),
    ) -> Result<(Bytes, RecordsSummary), BatchError> {
        let data = self.records_data(max_output_bytes)?;
        let summary = walk_records(&data, self.records_count(), visit)?;
        Ok((data, summary))
    }

    /// `N` bytes at `at`. Constructors guarantee at least a full header, so the zero fallback is
    /// unreachable; it exists so a logic error can never become a panic on the data path.
    fn field<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.bytes.get(at..at + N) {
            out.copy_from_slice(src);
        }
        out
    }
}

/// Overwrites `value.len()` bytes at `at`; a no-op if out of range, which the constructors'
/// length checks rule out for every header field.
fn put_at(buf: &mut [u8], at: usize, value: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at.saturating_add(value.len())) {
        dst.copy_from_slice(value);
    }
}

/// A big-endian i32 at `at`, or `None` if `buf` is too short.
fn read_i32(buf: &[u8], at: usize) -> Option<i32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(i32::from_be_bytes(<[u8; 4]>::try_from(bytes).ok()?))
}

/// Iterates whole batches over a buffer of concatenated batches; stops at a partial trailing batch.
///
/// The iterator is fused: after yielding an error it returns `None`, since the error leaves the
/// buffer where it was and retrying would yield the same error forever.
pub struct BatchIter {
    buf: Bytes,
    failed: bool,
}

impl BatchIter {
    pub fn new(buf: Bytes) -> Self {
        Self { buf, failed: false }
    }

    /// Bytes not yet consumed (a partial trailing batch, if iteration ended on one).
    pub fn remaining(&self) -> &Bytes {
        &self.buf
    }
}

impl Iterator for BatchIter {
    type Item = Result<RecordBatch, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = RecordBatch::split_first(&mut self.buf).transpose();
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}

impl std::iter::FusedIterator for BatchIter {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::records::{encode_records, BatchBuilder, RecordHeader};
    use proptest::prelude::*;

    /// One record written out by hand (not by `encode_records`): attributes 0, timestamp delta 5,
    /// offset delta 1, key "k", value "v", one header "h" = "x".
    const HAND_RECORD: [u8; 13] = [0x18, 0x00, 0x0a, 0x02, 0x02, b'k', 0x02, b'v', 0x02, 0x02, b'h', 0x02, b'x'];

    /// A batch assembled field by field, independently of `BatchBuilder`.
    fn hand_batch(attributes: i16) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&1234i64.to_be_bytes()); // base offset
        b.extend_from_slice(&((49 + HAND_RECORD.len()) as i32).to_be_bytes()); // batch length
        b.extend_from_slice(&7i32.to_be_bytes()); // partition leader epoch
        b.push(2); // magic
        b.extend_from_slice(&[0; 4]); // crc, below
        b.extend_from_slice(&attributes.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes()); // last offset delta
        b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes()); // base timestamp
        b.extend_from_slice(&1_700_000_000_005i64.to_be_bytes()); // max timestamp
        b.extend_from_slice(&42i64.to_be_bytes()); // producer id
        b.extend_from_slice(&3i16.to_be_bytes()); // producer epoch
        b.extend_from_slice(&10i32.to_be_bytes()); // base sequence
        b.extend_from_slice(&1i32.to_be_bytes()); // records count
        b.extend_from_slice(&HAND_RECORD);
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn builder(codec: Compression, n: usize) -> BatchBuilder {
        BatchBuilder {
            base_offset: 100,
            compression: codec,
            base_timestamp: 1_000,
            records: (0..n)
                .map(|i| Record {
                    offset_delta: i as i32,
                    timestamp_delta: i as i64 * 3,
                    key: Some(Bytes::from(format!("key-{i}"))),
                    value: Some(Bytes::from(format!("value-{i}").repeat(20))),
                    ..Record::default()
                })
                .collect(),
            ..BatchBuilder::default()
        }
    }

    #[test]
    fn accessors_read_a_hand_built_batch() {
        let bytes = hand_batch(ATTR_TRANSACTIONAL);
        let batch = RecordBatch::new(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(batch.size_in_bytes(), bytes.len());
        assert_eq!(batch.as_bytes().as_ref(), &bytes[..]);
        assert_eq!(batch.base_offset(), 1234);
        assert_eq!(batch.batch_length(), 49 + HAND_RECORD.len() as i32);
        assert_eq!(batch.partition_leader_epoch(), 7);
        assert_eq!(batch.magic(), 2);
        assert_eq!(batch.crc(), crc32c::crc32c(&bytes[21..]));
        assert_eq!(batch.crc(), batch.compute_crc());
        assert_eq!(batch.attributes(), ATTR_TRANSACTIONAL);
        assert_eq!(batch.compression().unwrap(), Compression::None);
        assert_eq!(batch.timestamp_type(), TimestampType::CreateTime);
        assert!(batch.is_transactional());
        assert!(!batch.is_control());
        assert!(!batch.has_delete_horizon());
        assert_eq!(batch.last_offset_delta(), 1);
        assert_eq!(batch.base_timestamp(), 1_700_000_000_000);
        assert_eq!(batch.max_timestamp(), 1_700_000_000_005);
        assert_eq!(batch.producer_id(), 42);
        assert_eq!(batch.producer_epoch(), 3);
        assert_eq!(batch.base_sequence(), 10);
        assert_eq!(batch.records_count(), 1);
        assert_eq!(batch.last_offset(), 1235);
        assert_eq!(batch.next_offset(), 1236);
        batch.validate().unwrap();
        assert_eq!(batch.records_data(0).unwrap().as_ref(), &HAND_RECORD[..]);
        let records = batch.records(1 << 20).unwrap();
        assert_eq!(
            records,
            vec![Record {
                attributes: 0,
                timestamp_delta: 5,
                offset_delta: 1,
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v")),
                headers: vec![RecordHeader { key: Bytes::from_static(b"h"), value: Some(Bytes::from_static(b"x")) }],
            }]
        );
        assert_eq!(batch.clone().into_bytes(), Bytes::from(bytes));
    }

    #[test]
    fn attribute_bits_decode() {
        let batch = RecordBatch::new(Bytes::from(hand_batch(
            ATTR_CONTROL | ATTR_TIMESTAMP_TYPE | ATTR_DELETE_HORIZON | Compression::Zstd as i16,
        )))
        .unwrap();
        assert!(batch.is_control());
        assert!(!batch.is_transactional());
        assert!(batch.has_delete_horizon());
        assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(batch.compression().unwrap(), Compression::Zstd);
        for id in 5..=7 {
            let batch = RecordBatch::new(Bytes::from(hand_batch(id))).unwrap();
            assert!(matches!(batch.compression(), Err(BatchError::UnknownCodec(i)) if i == id));
            assert!(matches!(batch.validate(), Err(BatchError::UnknownCodec(_))));
        }
    }

    #[test]
    fn crc_mismatch_detected_for_every_covered_byte() {
        let bytes = hand_batch(0);
        for i in CRC_START..bytes.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[i] ^= mask;
                let batch = RecordBatch::new(Bytes::from(corrupt)).unwrap();
                match batch.validate() {
                    Err(BatchError::CrcMismatch { stored, computed }) => {
                        assert_eq!(stored, batch.crc());
                        assert_ne!(stored, computed);
                    }
                    other => {
                        panic!("byte {i} mask {mask:#x}: expected a CRC mismatch, got {other:?}")
                    }
                }
            }
        }
        // The CRC field itself corrupted is a mismatch too.
        let mut corrupt = bytes.clone();
        corrupt[CRC_OFFSET] ^= 1;
        assert!(matches!(
            RecordBatch::new(Bytes::from(corrupt)).unwrap().validate(),
            Err(BatchError::CrcMismatch { .. })
        ));
        // Base offset and leader epoch are outside the CRC.
        let mut patched = bytes;
        patched[3] ^= 0xff;
        patched[13] ^= 0xff;
        RecordBatch::new(Bytes::from(patched)).unwrap().validate().unwrap();
    }

    #[test]
    fn header_patch_and_with_offset_restamp_offsets() {
        let batch = RecordBatch::new(Bytes::from(hand_batch(0))).unwrap();
        let patch = batch.header_patch(9_000_000_000, 12);
        let mut stitched = patch.to_vec();
        stitched.extend_from_slice(&batch.as_bytes()[16..]);
        let stitched = RecordBatch::new(Bytes::from(stitched)).unwrap();
        stitched.validate().unwrap();
        assert_eq!(stitched.base_offset(), 9_000_000_000);
        assert_eq!(stitched.partition_leader_epoch(), 12);
        assert_eq!(stitched.batch_length(), batch.batch_length());
        assert_eq!(stitched.crc(), batch.crc());
        assert_eq!(stitched.last_offset(), 9_000_000_001);
        assert_eq!(&stitched.as_bytes()[16..], &batch.as_bytes()[16..]);

        let copy = batch.with_offset(9_000_000_000, 12);
        assert_eq!(copy, stitched);

        // A producer's batch (offsets from 0, epoch -1) stamped at its log position.
        let produced = RecordBatch::new(builder(Compression::Lz4, 4).build().unwrap()).unwrap();
        let stamped = produced.with_offset(77, 3);
        stamped.validate_for_produce().unwrap();
        assert_eq!((stamped.base_offset(), stamped.partition_leader_epoch()), (77, 3));
        assert_eq!((stamped.last_offset(), stamped.next_offset()), (80, 81));
        assert_eq!(stamped.records(1 << 20).unwrap(), produced.records(1 << 20).unwrap());
        // The original is untouched (copy-on-write, not aliasing).
        assert_eq!(batch.base_offset(), 1234);
    }

    #[test]
    fn with_log_append_time_stamps_and_revalidates() {
        for codec in Compression::ALL {
            let original = RecordBatch::new(builder(codec, 3).build().unwrap()).unwrap();
            let stamped = original.with_log_append_time(55_555);
            stamped.validate_for_produce().unwrap();
            assert_eq!(stamped.timestamp_type(), TimestampType::LogAppendTime);
            assert_eq!(stamped.max_timestamp(), 55_555);
            assert_eq!(stamped.base_timestamp(), original.base_timestamp());
            assert_eq!(stamped.compression().unwrap(), codec);
            assert_eq!(stamped.attributes(), original.attributes() | ATTR_TIMESTAMP_TYPE);
            assert_eq!(stamped.records(1 << 20).unwrap(), original.records(1 << 20).unwrap());
            assert_eq!(original.timestamp_type(), TimestampType::CreateTime);
        }
    }

    #[test]
    fn validate_for_produce_checks_counts() {
        let good = RecordBatch::new(builder(Compression::None, 3).build().unwrap()).unwrap();
        good.validate_for_produce().unwrap();

        let mut gap = builder(Compression::None, 3);
        gap.records[2].offset_delta = 5; // last offset delta 5, count 3
        let gap = RecordBatch::new(gap.build().unwrap()).unwrap();
        gap.validate().unwrap();
        assert!(matches!(
            gap.validate_for_produce(),
            Err(BatchError::CountMismatch { count: 3, last_offset_delta: 5 })
        ));

        let empty = RecordBatch::new(builder(Compression::None, 0).build().unwrap()).unwrap();
        empty.validate().unwrap();
        assert_eq!(empty.records_count(), 0);
        assert!(matches!(empty.validate_for_produce(), Err(BatchError::CountMismatch { count: 0, .. })));

        // Negative count with a valid CRC: validate rejects it.
        let mut bytes = hand_batch(0);
        bytes[57..61].copy_from_slice(&(-1i32).to_be_bytes());
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        let negative = RecordBatch::new(Bytes::from(bytes)).unwrap();
        assert!(matches!(negative.validate(), Err(BatchError::CountMismatch { count: -1, .. })));
        assert!(matches!(negative.records(1 << 20), Err(BatchError::MalformedRecords(_))));

        // last_offset_delta = i32::MAX must not overflow.
        let mut bytes = hand_batch(0);
        bytes[23..27].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        let huge = RecordBatch::new(Bytes::from(bytes)).unwrap();
        assert!(matches!(huge.validate_for_produce(), Err(BatchError::CountMismatch { .. })));
    }

    #[test]
    fn new_rejects_inconsistent_bytes() {
        let bytes = hand_batch(0);
        assert!(matches!(
            RecordBatch::new(Bytes::copy_from_slice(&bytes[..60])),
            Err(BatchError::Truncated { needed: 61, available: 60 })
        ));
        assert!(matches!(
            RecordBatch::new(Bytes::copy_from_slice(&bytes[..bytes.len() - 1])),
            Err(BatchError::Truncated { .. })
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(RecordBatch::new(Bytes::from(longer)), Err(BatchError::InvalidLength(_))));
        let mut magic1 = bytes.clone();
        magic1[16] = 1;
        assert!(matches!(RecordBatch::new(Bytes::from(magic1)), Err(BatchError::UnsupportedMagic(1))));
        let mut short_len = bytes;
        short_len[8..12].copy_from_slice(&48i32.to_be_bytes());
        assert!(matches!(RecordBatch::new(Bytes::from(short_len)), Err(BatchError::InvalidLength(48))));
    }

    #[test]
    fn split_first_handles_partial_and_invalid_headers() {
        let one = hand_batch(0);
        let mut two = one.clone();
        two.extend_from_slice(&one);

        let mut buf = Bytes::from(two.clone());
        let first = RecordBatch::split_first(&mut buf).unwrap().unwrap();
        assert_eq!(first.as_bytes().as_ref(), &one[..]);
        assert_eq!(buf.len(), one.len());
        assert!(RecordBatch::split_first(&mut buf).unwrap().is_some());
        assert!(buf.is_empty());
        assert!(RecordBatch::split_first(&mut buf).unwrap().is_none());

        // Every truncation of a single batch is "partial", with the buffer untouched.
        for cut in 0..one.len() {
            let mut buf = Bytes::copy_from_slice(&one[..cut]);
            assert!(RecordBatch::split_first(&mut buf).unwrap().is_none(), "cut {cut}");
            assert_eq!(buf.len(), cut);
        }

        let with_len = |len: i32, total: usize| {
            let mut b = one.clone();
            b[8..12].copy_from_slice(&len.to_be_bytes());
            b.truncate(total);
            Bytes::from(b)
        };
        for len in [-1, i32::MIN, 0, 13, 48] {
            let mut buf = with_len(len, 12);
            assert!(matches!(RecordBatch::split_first(&mut buf), Err(BatchError::InvalidLength(l)) if l == len));
            assert_eq!(buf.len(), 12, "an error leaves the buffer alone");
        }
        // A huge declared length is simply a batch that has not fully arrived.
        let mut buf = with_len(i32::MAX, one.len());
        assert!(RecordBatch::split_first(&mut buf).unwrap().is_none());
        assert_eq!(buf.len(), one.len());

        // Wrong magic is reported as soon as the magic byte is there.
        let mut b = one.clone();
        b[16] = 1;
        let mut buf = Bytes::copy_from_slice(&b[..17]);
        assert!(matches!(RecordBatch::split_first(&mut buf), Err(BatchError::UnsupportedMagic(1))));
        let mut buf = Bytes::copy_from_slice(&b[..16]);
        assert!(RecordBatch::split_first(&mut buf).unwrap().is_none());
    }

    #[test]
    fn batch_iter_is_fused_after_an_error() {
        let mut bytes = hand_batch(0);
        let mut bad = hand_batch(0);
        bad[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        bytes.extend_from_slice(&bad);
        let mut iter = BatchIter::new(Bytes::from(bytes));
        assert!(iter.next().unwrap().is_ok());
        assert!(matches!(iter.next(), Some(Err(BatchError::InvalidLength(-5)))));
        assert!(iter.next().is_none());
        assert!(iter.next().is_none());
        assert_eq!(iter.remaining().len(), bad.len());
    }

    #[test]
    fn records_data_is_bounded() {
        let batch = RecordBatch::new(builder(Compression::Gzip, 50).build().unwrap()).unwrap();
        let full = batch.records_data(1 << 20).unwrap();
        assert_eq!(full.as_ref(), &encode_records(&builder(Compression::None, 50).records)[..]);
        assert!(matches!(
            batch.records_data(full.len() - 1),
            Err(BatchError::Compression(CompressionError::TooLarge { .. }))
        ));
        assert_eq!(batch.records_data(full.len()).unwrap(), full);
    }

    // ---- property tests ----

    fn arb_bytes(max: usize) -> impl Strategy<Value = Bytes> {
        prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
    }

    fn arb_header() -> impl Strategy<Value = RecordHeader> {
        (arb_bytes(12), prop::option::of(arb_bytes(24))).prop_map(|(key, value)| RecordHeader { key, value })
    }

    /// Records with contiguous offset deltas, as a producer writes them.
    fn arb_records() -> impl Strategy<Value = Vec<Record>> {
        prop::collection::vec(
            (
                -1_000_000i64..1_000_000,
                prop::option::of(arb_bytes(32)),
                prop::option::of(arb_bytes(200)),
                prop::collection::vec(arb_header(), 0..4),
            ),
            1..20,
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
                    headers,
                })
                .collect()
        })
    }

    fn arb_codec() -> impl Strategy<Value = Compression> {
        prop::sample::select(Compression::ALL.to_vec())
    }

    fn arb_builder() -> impl Strategy<Value = BatchBuilder> {
        (
            arb_codec(),
            arb_records(),
            0i64..i64::MAX / 2,
            any::<i32>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<i64>(),
            any::<i16>(),
            any::<i32>(),
            0i64..i64::MAX / 2,
        )
            .prop_map(
                |(compression, records, base_offset, epoch, txn, control, log_append, pid, pepoch, seq, ts)| {
                    BatchBuilder {
                        base_offset,
                        partition_leader_epoch: epoch,
                        compression,
                        compression_level: None,
                        timestamp_type: if log_append {
                            TimestampType::LogAppendTime
                        } else {
                            TimestampType::CreateTime
                        },
                        transactional: txn,
                        control,
                        producer_id: pid,
                        producer_epoch: pepoch,
                        base_sequence: seq,
                        base_timestamp: ts,
                        max_timestamp: None,
                        records,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn builder_round_trips_through_the_view(b in arb_builder()) {
            let batch = RecordBatch::new(b.build().unwrap()).unwrap();
            batch.validate_for_produce().unwrap();
            prop_assert_eq!(batch.base_offset(), b.base_offset);
            prop_assert_eq!(batch.partition_leader_epoch(), b.partition_leader_epoch);
            prop_assert_eq!(batch.compression().unwrap(), b.compression);
            prop_assert_eq!(batch.timestamp_type(), b.timestamp_type);
            prop_assert_eq!(batch.is_transactional(), b.transactional);
            prop_assert_eq!(batch.is_control(), b.control);
            prop_assert_eq!(batch.producer_id(), b.producer_id);
            prop_assert_eq!(batch.producer_epoch(), b.producer_epoch);
            prop_assert_eq!(batch.base_sequence(), b.base_sequence);
            prop_assert_eq!(batch.base_timestamp(), b.base_timestamp);
            prop_assert_eq!(batch.records_count() as usize, b.records.len());
            prop_assert_eq!(batch.last_offset_delta() as usize, b.records.len() - 1);
            let max_ts = b.records.iter().map(|r| b.base_timestamp + r.timestamp_delta).max().unwrap();
            prop_assert_eq!(batch.max_timestamp(), max_ts);
            prop_assert_eq!(batch.records(1 << 24).unwrap(), b.records.clone());
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
            let bytes = Bytes::from(data);
            let mut buf = bytes.clone();
            let _ = RecordBatch::split_first(&mut buf);
            // Fused: a bounded number of items, whatever the input.
            prop_assert!(BatchIter::new(bytes.clone()).take(1000).count() < 1000);
            if let Ok(batch) = RecordBatch::new(bytes) {
                let _ = batch.validate();
                let _ = batch.validate_for_produce();
                let _ = batch.records(1 << 16);
                let _ = batch.with_log_append_time(1);
                let _ = batch.with_offset(1, 1);
            }
        }

        /// Arbitrary bytes after a plausible header (length, magic 2) reach the record decoder and
        /// every codec's decompressor, with a valid CRC so nothing stops them earlier.
        #[test]
        fn arbitrary_payloads_never_panic(codec in 0i16..8, count in any::<i32>(), payload in prop::collection::vec(any::<u8>(), 0..256)) {
            let mut bytes = hand_batch(codec);
            bytes.truncate(RECORD_BATCH_OVERHEAD);
            bytes[57..61].copy_from_slice(&count.to_be_bytes());
            bytes.extend_from_slice(&payload);
            let len = (bytes.len() - LOG_OVERHEAD) as i32;
            bytes[8..12].copy_from_slice(&len.to_be_bytes());
            let crc = crc32c::crc32c(&bytes[21..]);
            bytes[17..21].copy_from_slice(&crc.to_be_bytes());
            let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
            let _ = batch.validate();
            let _ = batch.records(1 << 16);
        }

        #[test]
        fn truncated_concatenation_yields_whole_batches_then_stops(
            builders in prop::collection::vec(arb_builder(), 1..4),
            cut_fraction in 0.0f64..=1.0,
        ) {
            let batches: Vec<Bytes> = builders.iter().map(|b| b.build().unwrap()).collect();
            let all: Vec<u8> = batches.iter().flat_map(|b| b.iter().copied()).collect();
            let cut = ((all.len() as f64) * cut_fraction) as usize;
            let truncated = Bytes::copy_from_slice(&all[..cut]);

            let mut expected = Vec::new();
            let mut end = 0;
            for b in &batches {
                if end + b.len() > cut { break; }
                end += b.len();
                expected.push(b.clone());
            }

            let mut iter = BatchIter::new(truncated.clone());
            let got: Vec<Bytes> = iter.by_ref().map(|r| r.unwrap().into_bytes()).collect();
            prop_assert_eq!(&got, &expected);
            prop_assert_eq!(iter.remaining().as_ref(), &all[end..cut]);

            let mut buf = truncated;
            for b in &expected {
                let batch = RecordBatch::split_first(&mut buf).unwrap().unwrap();
                batch.validate().unwrap();
                prop_assert_eq!(batch.as_bytes(), b);
            }
            prop_assert!(RecordBatch::split_first(&mut buf).unwrap().is_none());
            prop_assert_eq!(buf.len(), cut - end);
        }
    }
}
