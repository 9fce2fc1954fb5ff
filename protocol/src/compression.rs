//! Compression codecs for record batches: gzip (flate2), snappy (snap; Kafka's xerial framing and
//! raw blocks), lz4 (the LZ4 *frame* format, lz4_flex) and zstd.
//!
//! Decompression is bounded by a caller-supplied output limit so a small hostile batch cannot
//! inflate into gigabytes (a decompression bomb fails with [`CompressionError::TooLarge`]).

use thiserror::Error;

/// The codec in the low three bits of a batch's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    /// The codec for attribute bits `0..=4`; `None` for anything else.
    pub fn from_id(id: i16) -> Option<Self> {
        todo!("{id}")
    }

    /// The codec named by a `compression.type` value (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
    pub fn from_name(name: &str) -> Option<Self> {
        todo!("{name}")
    }

    pub fn name(self) -> &'static str {
        todo!()
    }
}

#[derive(Debug, Error)]
pub enum CompressionError {
    #[error("{codec:?} data is corrupt: {reason}")]
    Corrupt { codec: Compression, reason: String },
    #[error("decompressed size exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{codec:?} compression failed: {reason}")]
    Encode { codec: Compression, reason: String },
}

/// Compresses `data`. `level` is the codec level (`compression.gzip.level` and friends); `None`
/// means the codec default Kafka uses.
pub fn compress(codec: Compression, data: &[u8], level: Option<i32>) -> Result<Vec<u8>, CompressionError> {
    todo!("{codec:?} {} {level:?}", data.len())
}

/// Decompresses `data`, failing if the output would exceed `max_output_bytes`.
/// Snappy input may be xerial-framed (what the Java client writes) or a raw block (librdkafka).
pub fn decompress(codec: Compression, data: &[u8], max_output_bytes: usize) -> Result<Vec<u8>, CompressionError> {
    todo!("{codec:?} {} {max_output_bytes}", data.len())
}
