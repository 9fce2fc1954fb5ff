//! Every size limit of the wire format in one place, with how they relate asserted at compile
//! time: a change that breaks a relationship fails the build instead of a request.
//!
//! Sizes a broker config sets (frame size, fetch sizes) are runtime values checked against these
//! where they meet them; what is fixed by the format or by memory safety is here.

/// Bytes of the `i32` size prefix of every request and response frame.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// Bytes before `batch_length` counts: base offset and the length itself.
pub const LOG_OVERHEAD: usize = 12;

/// Size of a v2 batch header including the log overhead (a batch with no records).
pub const RECORD_BATCH_OVERHEAD: usize = 61;

/// The fewest bytes one encoded record takes (length, attributes, timestamp delta, offset delta,
/// key length, value length, header count: one varint byte each).
pub const RECORD_BYTES_MIN: usize = 7;

/// The most a batch's records section may inflate to when decompressed, everywhere a batch is
/// decompressed: produce validation, segment reads, the cleaner, remote reads, coordinator
/// loading. One value, so a batch that produce accepts is one every later reader can decompress,
/// and a small hostile batch (a decompression bomb) costs at most this much memory.
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = 256 << 20;

/// The largest batch the format can describe: `batch_length` is an `i32`.
pub const BATCH_BYTES_MAX: usize = LOG_OVERHEAD + i32::MAX as usize;

const _: () = assert!(LOG_OVERHEAD < RECORD_BATCH_OVERHEAD);
const _: () = assert!(FRAME_PREFIX_BYTES <= LOG_OVERHEAD);
// A decompressed batch must still be addressable by the `i32` lengths of the format.
const _: () = assert!(DECOMPRESSED_BATCH_BYTES_MAX <= i32::MAX as usize);
const _: () = assert!(RECORD_BATCH_OVERHEAD + RECORD_BYTES_MIN <= DECOMPRESSED_BATCH_BYTES_MAX);
const _: () = assert!(DECOMPRESSED_BATCH_BYTES_MAX < BATCH_BYTES_MAX);
