//! [`BatchHeader`]: a zero-copy view over the fixed 61-byte header of a v2 record batch, the one
//! place that knows where each header field lies.
//!
//! Readers that hold only a header (a segment scan reading 61 bytes per batch the way Kafka's
//! `FileLogInputStream` does, a remote read walking range-read bytes) and [`RecordBatch`], which
//! holds a whole batch, all read the fields through this view, so no caller slices header bytes
//! by hand. [`BatchHeaderBuf`] is the owned copy for readers that read a header into a stack
//! buffer and return it. Pure functions; the view never panics on input.
//!
//! [`RecordBatch`]: crate::batch::RecordBatch

use crate::batch::{
    BatchError, ATTRIBUTES_OFFSET, ATTR_COMPRESSION_MASK, ATTR_CONTROL, ATTR_DELETE_HORIZON, ATTR_TIMESTAMP_TYPE,
    ATTR_TRANSACTIONAL, BASE_OFFSET_OFFSET, BASE_SEQUENCE_OFFSET, BASE_TIMESTAMP_OFFSET, BATCH_LENGTH_OFFSET,
    CRC_OFFSET, CRC_START, LAST_OFFSET_DELTA_OFFSET, LOG_OVERHEAD, MAGIC_OFFSET, MAGIC_V2, MAX_TIMESTAMP_OFFSET,
    MIN_BATCH_LENGTH, PARTITION_LEADER_EPOCH_OFFSET, PRODUCER_EPOCH_OFFSET, PRODUCER_ID_OFFSET, RECORDS_COUNT_OFFSET,
    RECORD_BATCH_OVERHEAD,
};
use crate::compression::Compression;

/// Bytes of a v2 batch header, including the log overhead.
pub const BATCH_HEADER_BYTES: usize = RECORD_BATCH_OVERHEAD;

/// The header of one v2 batch: a view over its first [`BATCH_HEADER_BYTES`] bytes.
///
/// Invariant: `bytes` holds at least [`BATCH_HEADER_BYTES`] bytes (checked by the constructors),
/// so every accessor reads inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader<'a> {
    bytes: &'a [u8],
}

impl<'a> BatchHeader<'a> {
    /// The header at the start of `bytes` (a batch, or a buffer of concatenated batches), checked
    /// for what a reader must trust before stepping over the batch: a whole header is present,
    /// `batch_length` covers at least the header, and magic is 2.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BatchError> {
        let Some(bytes) = bytes.get(..BATCH_HEADER_BYTES) else {
            return Err(BatchError::Truncated { needed: BATCH_HEADER_BYTES, available: bytes.len() });
        };
        let header = Self { bytes };
        if header.batch_length() < MIN_BATCH_LENGTH {
            return Err(BatchError::InvalidLength(header.batch_length()));
        }
        if header.magic() != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(header.magic()));
        }
        Ok(header)
    }

    /// A view over bytes the caller already checked (a constructed `RecordBatch`). Shorter input
    /// reads as zeros rather than panicking.
    pub(crate) fn unchecked(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The header's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes.get(..BATCH_HEADER_BYTES).unwrap_or(self.bytes)
    }

    pub fn base_offset(&self) -> i64 {
        i64::from_be_bytes(self.field(BASE_OFFSET_OFFSET))
    }
    pub fn batch_length(&self) -> i32 {
        i32::from_be_bytes(self.field(BATCH_LENGTH_OFFSET))
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        i32::from_be_bytes(self.field(PARTITION_LEADER_EPOCH_OFFSET))
    }
    pub fn magic(&self) -> i8 {
        i8::from_be_bytes(self.field(MAGIC_OFFSET))
    }
    pub fn crc(&self) -> u32 {
        u32::from_be_bytes(self.field(CRC_OFFSET))
    }
    pub fn attributes(&self) -> i16 {
        i16::from_be_bytes(self.field(ATTRIBUTES_OFFSET))
    }
    /// The codec, or `Err(UnknownCodec)` for ids 5–7.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        let id = self.attributes() & ATTR_COMPRESSION_MASK;
        Compression::from_id(id).ok_or(BatchError::UnknownCodec(id))
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & ATTR_TIMESTAMP_TYPE != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTR_CONTROL != 0
    }
    /// Whether compaction recorded a delete horizon (then `base_timestamp` holds it).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes() & ATTR_DELETE_HORIZON != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        i32::from_be_bytes(self.field(LAST_OFFSET_DELTA_OFFSET))
    }
    pub fn base_timestamp(&self) -> i64 {
        i64::from_be_bytes(self.field(BASE_TIMESTAMP_OFFSET))
    }
    pub fn max_timestamp(&self) -> i64 {
        i64::from_be_bytes(self.field(MAX_TIMESTAMP_OFFSET))
    }
    pub fn producer_id(&self) -> i64 {
        i64::from_be_bytes(self.field(PRODUCER_ID_OFFSET))
    }
    pub fn producer_epoch(&self) -> i16 {
        i16::from_be_bytes(self.field(PRODUCER_EPOCH_OFFSET))
    }
    pub fn base_sequence(&self) -> i32 {
        i32::from_be_bytes(self.field(BASE_SEQUENCE_OFFSET))
    }
    pub fn records_count(&self) -> i32 {
        i32::from_be_bytes(self.field(RECORDS_COUNT_OFFSET))
    }

    /// `base_offset + last_offset_delta`.
    pub fn last_offset(&self) -> i64 {
        // Wrapping like Java's long arithmetic: a hostile header must not panic a debug build.
        self.base_offset().wrapping_add(i64::from(self.last_offset_delta()))
    }
    /// `base_offset + last_offset_delta + 1`.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }
    /// The whole batch's size, log overhead included (`LOG_OVERHEAD + batch_length`); a
    /// negative length reads as its magnitude, which [`parse`](Self::parse) already refused.
    pub fn size_in_bytes(&self) -> u64 {
        LOG_OVERHEAD as u64 + u64::from(self.batch_length().unsigned_abs())
    }

    /// Whether the offsets are usable for stepping through a log: a log never holds a negative
    /// base offset or a negative offset delta, so either means the header is garbage.
    pub fn offsets_valid(&self) -> bool {
        self.base_offset() >= 0 && self.last_offset_delta() >= 0
    }

    /// CRC-32C (Castagnoli) of the batch whose records section (everything after the header) is
    /// `records`: what the `crc` field should hold. The CRC covers the header from the
    /// attributes on, then the records.
    pub fn compute_crc(&self, records: &[u8]) -> u32 {
        let covered = self.bytes.get(CRC_START..BATCH_HEADER_BYTES).unwrap_or_default();
        crc32c::crc32c_append(crc32c::crc32c(covered), records)
    }

    /// Checks the stored CRC against the records section `records`.
    pub fn check_crc(&self, records: &[u8]) -> Result<(), BatchError> {
        let (stored, computed) = (self.crc(), self.compute_crc(records));
        if stored != computed {
            return Err(BatchError::CrcMismatch { stored, computed });
        }
        Ok(())
    }

    /// An owned copy of the header bytes.
    pub fn to_buf(&self) -> BatchHeaderBuf {
        let mut out = [0u8; BATCH_HEADER_BYTES];
        let src = self.as_bytes();
        out[..src.len()].copy_from_slice(src);
        BatchHeaderBuf(out)
    }

    /// `N` bytes at `at`; zeros if out of range, which the constructors rule out.
    fn field<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.bytes.get(at..at + N) {
            out.copy_from_slice(src);
        }
        out
    }
}

/// An owned, checked batch header (61 bytes on the stack), for readers that return a header
/// read from a file; [`header`](Self::header) views it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeaderBuf([u8; BATCH_HEADER_BYTES]);

impl BatchHeaderBuf {
    /// Copies and checks the header at the start of `bytes` (see [`BatchHeader::parse`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, BatchError> {
        BatchHeader::parse(bytes).map(|h| h.to_buf())
    }

    pub fn header(&self) -> BatchHeader<'_> {
        BatchHeader { bytes: &self.0 }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::batch::RecordBatch;
    use crate::records::{BatchBuilder, Record};
    use bytes::Bytes;

    fn batch() -> RecordBatch {
        BatchBuilder {
            base_offset: 100,
            partition_leader_epoch: 5,
            base_timestamp: 770,
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 9,
            records: (0..4)
                .map(|i| Record {
                    offset_delta: i,
                    timestamp_delta: i64::from(i) * 2,
                    value: Some(Bytes::from_static(b"v")),
                    ..Record::default()
                })
                .collect(),
            ..BatchBuilder::default()
        }
        .build()
        .map(RecordBatch::new)
        .unwrap()
        .unwrap()
    }

    #[test]
    fn reads_every_field_of_a_built_batch() {
        let b = batch();
        let h = BatchHeader::parse(b.as_bytes()).unwrap();
        assert_eq!(h.base_offset(), 100);
        assert_eq!(h.partition_leader_epoch(), 5);
        assert_eq!(h.magic(), 2);
        assert_eq!(h.last_offset_delta(), 3);
        assert_eq!(h.last_offset(), 103);
        assert_eq!(h.next_offset(), 104);
        assert_eq!(h.base_timestamp(), 770);
        assert_eq!(h.max_timestamp(), 776);
        assert_eq!((h.producer_id(), h.producer_epoch(), h.base_sequence()), (42, 3, 9));
        assert_eq!(h.records_count(), 4);
        assert_eq!(h.size_in_bytes(), b.size_in_bytes() as u64);
        assert_eq!(h.crc(), b.compute_crc());
        assert!(h.offsets_valid());
        assert_eq!(h.to_buf().header(), h);
        h.check_crc(&b.as_bytes()[BATCH_HEADER_BYTES..]).unwrap();
    }

    #[test]
    fn crc_check_covers_header_and_records() {
        let b = batch();
        let bytes = b.as_bytes();
        for at in [CRC_START, BATCH_HEADER_BYTES - 1, BATCH_HEADER_BYTES, bytes.len() - 1] {
            let mut bad = bytes.to_vec();
            bad[at] ^= 1;
            let h = BatchHeader::parse(&bad).unwrap();
            assert!(
                matches!(h.check_crc(&bad[BATCH_HEADER_BYTES..]), Err(BatchError::CrcMismatch { .. })),
                "flipped byte {at}"
            );
        }
    }

    #[test]
    fn parse_rejects_short_bad_length_and_bad_magic() {
        let b = batch();
        let bytes = b.as_bytes().to_vec();
        assert!(matches!(BatchHeader::parse(&bytes[..60]), Err(BatchError::Truncated { needed: 61, available: 60 })));
        let mut bad = bytes.clone();
        bad[MAGIC_OFFSET] = 1;
        assert!(matches!(BatchHeader::parse(&bad), Err(BatchError::UnsupportedMagic(1))));
        let mut bad = bytes.clone();
        bad[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(BatchHeader::parse(&bad), Err(BatchError::InvalidLength(10))));
        let mut bad = bytes;
        bad[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(!BatchHeader::parse(&bad).unwrap().offsets_valid());
    }
}
