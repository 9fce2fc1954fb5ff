//! The storage layer's fixed limits and entry sizes in one place, with how they relate asserted
//! at compile time. Per-topic sizes (`segment.bytes`, `segment.index.bytes`) are runtime config
//! and are clamped to these where they meet them.

use sluice_protocol::limits::RECORD_BATCH_OVERHEAD;

/// Kafka's segment files use `i32` positions (and the offset index stores them as `u32`), so a
/// segment never grows past this whatever `segment.bytes` says.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;

/// Bytes of one offset index entry (relative offset u32 + position u32).
pub const OFFSET_ENTRY_SIZE: usize = 8;
/// Bytes of one time index entry (timestamp i64 + relative offset u32).
pub const TIME_ENTRY_SIZE: usize = 12;
/// Bytes of one transaction index entry (Kafka's `AbortedTxn`: version i16, producer id,
/// first offset, last offset, last stable offset, all i64).
pub const TXN_ENTRY_SIZE: usize = 2 + 8 + 8 + 8 + 8;
/// Bytes of one producer snapshot entry (Kafka's `ProducerSnapshotEntryV1`).
pub const PRODUCER_SNAPSHOT_ENTRY_SIZE: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;

/// Kafka keeps the metadata of this many batches per producer for duplicate detection (and
/// clients keep at most this many requests in flight with idempotence).
pub const BATCHES_PER_PRODUCER_MAX: usize = 5;
/// Producer snapshot files kept after a new one is written.
pub const PRODUCER_SNAPSHOTS_KEPT: usize = 2;

/// The most a control batch's records may decompress to when its marker is read: a control
/// record is a few bytes (version, type, coordinator epoch), so anything larger is not one.
pub const CONTROL_RECORDS_BYTES_MAX: usize = 1 << 16;

/// Read size of sequential scans (recovery, index rebuilds).
pub const SCAN_CHUNK_BYTES: usize = 1 << 20;

/// Bytes per cleaner offset map entry, as Kafka counts them (16-byte hash + 8-byte offset).
pub const OFFSET_MAP_ENTRY_BYTES: u64 = 24;

// The offset index stores positions as u32.
const _: () = assert!(SEGMENT_BYTES_MAX <= u32::MAX as u64);
// A segment holds at least one batch header.
const _: () = assert!(RECORD_BATCH_OVERHEAD as u64 <= SEGMENT_BYTES_MAX);
// One scan read covers at least a batch header, so a header never needs two reads.
const _: () = assert!(RECORD_BATCH_OVERHEAD <= SCAN_CHUNK_BYTES);
const _: () = assert!(OFFSET_ENTRY_SIZE == 4 + 4 && TIME_ENTRY_SIZE == 8 + 4 && TXN_ENTRY_SIZE == 34);
const _: () = assert!(PRODUCER_SNAPSHOTS_KEPT >= 1);
// A control batch is a batch: its bound never exceeds the one every batch has.
const _: () = assert!(CONTROL_RECORDS_BYTES_MAX <= sluice_protocol::limits::DECOMPRESSED_BATCH_BYTES_MAX);
const _: () = assert!(BATCHES_PER_PRODUCER_MAX >= 1);
