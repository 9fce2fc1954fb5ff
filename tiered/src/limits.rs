//! The remote tier's fixed limits and defaults in one place, with how they relate asserted at
//! compile time.

use sluice_protocol::limits::RECORD_BATCH_OVERHEAD;

/// Default bound of the remote index cache, in bytes of parsed entries held in memory (Kafka's
/// `remote.log.index.file.cache.total.size.bytes`, default 1 GiB).
pub const INDEX_CACHE_BYTES_DEFAULT: u64 = 1 << 30;

/// Bytes of a remote segment read per range read while scanning for a timestamp.
pub const TIME_SCAN_CHUNK_BYTES: u64 = 1 << 20;

/// Bytes read past `max_bytes` in one range read, so the batch that crosses the limit is whole.
pub const READ_SLACK_BYTES: u64 = 64 << 10;

/// Files at least this large are uploaded in parts.
pub const MULTIPART_THRESHOLD: u64 = 8 << 20;
/// Size of one part of a multipart upload.
pub const MULTIPART_PART_BYTES: usize = 8 << 20;
/// S3's smallest part (all but the last): parts below it are refused.
pub const S3_PART_BYTES_MIN: usize = 5 << 20;

const _: () = assert!(S3_PART_BYTES_MIN <= MULTIPART_PART_BYTES);
// A file uploaded in parts has at least one full part.
const _: () = assert!(MULTIPART_PART_BYTES as u64 <= MULTIPART_THRESHOLD);
// Scans and reads always fetch at least a whole batch header in one range read.
const _: () = assert!(RECORD_BATCH_OVERHEAD as u64 <= TIME_SCAN_CHUNK_BYTES);
const _: () = assert!(RECORD_BATCH_OVERHEAD as u64 <= READ_SLACK_BYTES);
// The cache holds at least one scan chunk's worth of index entries.
const _: () = assert!(TIME_SCAN_CHUNK_BYTES <= INDEX_CACHE_BYTES_DEFAULT);
