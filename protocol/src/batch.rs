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

use bytes::Bytes;
use thiserror::Error;

use crate::compression::{Compression, CompressionError};
use crate::records::Record;

/// Bytes before `batch_length` counts: base offset and the length itself.
pub const LOG_OVERHEAD: usize = 12;
/// Size of a v2 batch header including the log overhead (a batch with no records).
pub const RECORD_BATCH_OVERHEAD: usize = 61;
/// The only magic Kafka 4 accepts.
pub const MAGIC_V2: i8 = 2;
/// Attribute bits.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

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
    pub fn split_first(buf: &mut Bytes) -> Result<Option<RecordBatch>, BatchError> {
        todo!("{}", buf.len())
    }

    /// Wraps bytes that must hold exactly one batch (length field consistent with `bytes.len()`).
    pub fn new(bytes: Bytes) -> Result<Self, BatchError> {
        todo!("{}", bytes.len())
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

    pub fn base_offset(&self) -> i64 {
        todo!()
    }
    pub fn batch_length(&self) -> i32 {
        todo!()
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        todo!()
    }
    pub fn magic(&self) -> i8 {
        todo!()
    }
    pub fn crc(&self) -> u32 {
        todo!()
    }
    pub fn attributes(&self) -> i16 {
        todo!()
    }
    /// The codec, or `Err(UnknownCodec)` for ids 5–7.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        todo!()
    }
    pub fn timestamp_type(&self) -> TimestampType {
        todo!()
    }
    pub fn is_transactional(&self) -> bool {
        todo!()
    }
    pub fn is_control(&self) -> bool {
        todo!()
    }
    pub fn last_offset_delta(&self) -> i32 {
        todo!()
    }
    pub fn base_timestamp(&self) -> i64 {
        todo!()
    }
    pub fn max_timestamp(&self) -> i64 {
        todo!()
    }
    pub fn producer_id(&self) -> i64 {
        todo!()
    }
    pub fn producer_epoch(&self) -> i16 {
        todo!()
    }
    pub fn base_sequence(&self) -> i32 {
        todo!()
    }
    pub fn records_count(&self) -> i32 {
        todo!()
    }
    /// `base_offset + last_offset_delta`.
    pub fn last_offset(&self) -> i64 {
        todo!()
    }
    /// `base_offset + last_offset_delta + 1`.
    pub fn next_offset(&self) -> i64 {
        todo!()
    }

    /// CRC-32C (Castagnoli) over bytes 21.. — what the `crc` field should hold.
    pub fn compute_crc(&self) -> u32 {
        todo!()
    }

    /// Structural checks that need no decompression: magic 2, length ≥ header size, CRC matches,
    /// known codec, `records_count >= 0`. Cheap (one CRC pass); run on every produced batch and
    /// on every batch read during recovery.
    pub fn validate(&self) -> Result<(), BatchError> {
        todo!()
    }

    /// The stricter checks Kafka applies to batches a producer sends: [`validate`](Self::validate)
    /// plus `records_count == last_offset_delta + 1` and `records_count > 0`.
    pub fn validate_for_produce(&self) -> Result<(), BatchError> {
        todo!()
    }

    /// The batch's first 16 bytes with `base_offset` and `partition_leader_epoch` replaced. Both
    /// lie outside the CRC, so writing this patch followed by `as_bytes()[16..]` yields a valid
    /// batch at its assigned offset without copying the records.
    pub fn header_patch(&self, base_offset: i64, partition_leader_epoch: i32) -> [u8; 16] {
        todo!("{base_offset} {partition_leader_epoch}")
    }

    /// A copy with base offset and leader epoch replaced (for paths that need a contiguous batch).
    pub fn with_offset(&self, base_offset: i64, partition_leader_epoch: i32) -> RecordBatch {
        todo!("{base_offset} {partition_leader_epoch}")
    }

    /// A copy stamped with `LogAppendTime`: the timestamp-type bit set, `max_timestamp = now_ms`,
    /// CRC recomputed (Kafka leaves record deltas alone).
    pub fn with_log_append_time(&self, now_ms: i64) -> RecordBatch {
        todo!("{now_ms}")
    }

    /// The decompressed records section (a cheap slice for uncompressed batches).
    pub fn records_data(&self, max_output_bytes: usize) -> Result<Bytes, BatchError> {
        todo!("{max_output_bytes}")
    }

    /// Decompresses (bounded by `max_output_bytes`) and decodes every record.
    pub fn records(&self, max_output_bytes: usize) -> Result<Vec<Record>, BatchError> {
        todo!("{max_output_bytes}")
    }
}

/// Iterates whole batches over a buffer of concatenated batches; stops at a partial trailing batch.
pub struct BatchIter {
    buf: Bytes,
}

impl BatchIter {
    pub fn new(buf: Bytes) -> Self {
        Self { buf }
    }

    /// Bytes not yet consumed (a partial trailing batch, if iteration ended on one).
    pub fn remaining(&self) -> &Bytes {
        &self.buf
    }
}

impl Iterator for BatchIter {
    type Item = Result<RecordBatch, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        RecordBatch::split_first(&mut self.buf).transpose()
    }
}
