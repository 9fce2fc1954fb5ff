//! Compression codecs for record batches: gzip (flate2), snappy (snap; Kafka's xerial framing and
//! raw blocks), lz4 (the LZ4 *frame* format, lz4_flex) and zstd.
//!
//! Decompression is bounded by a caller-supplied output limit so a small hostile batch cannot
//! inflate into gigabytes (a decompression bomb fails with [`CompressionError::TooLarge`]).

use std::io::{Read, Write};

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
    /// Every codec, in id order (handy for tests and config validation).
    pub const ALL: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    /// The codec for attribute bits `0..=4`; `None` for anything else.
    pub fn from_id(id: i16) -> Option<Self> {
        match id {
            0 => Some(Self::None),
            1 => Some(Self::Gzip),
            2 => Some(Self::Snappy),
            3 => Some(Self::Lz4),
            4 => Some(Self::Zstd),
            _ => None,
        }
    }

    /// The id stored in a batch's attributes.
    pub fn id(self) -> i16 {
        self as i16
    }

    /// The codec named by a `compression.type` value (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
    /// Case-sensitive, like Kafka's config validation; `producer` (a topic setting meaning "keep
    /// what the producer sent") is not a codec and yields `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|codec| codec.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
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

/// Kafka's default gzip level: `Deflater.DEFAULT_COMPRESSION`, which zlib resolves to 6.
pub const GZIP_DEFAULT_LEVEL: i32 = 6;
/// Kafka's default zstd level (`ZstdCompression.DEFAULT_LEVEL`, zstd's own default).
pub const ZSTD_DEFAULT_LEVEL: i32 = 3;

/// xerial snappy-java stream header: magic, then version and minimum compatible version (both 1).
/// The Java client (`SnappyOutputStream`) writes this framing, so it is what every client reads.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// snappy-java's default block size: each framed chunk holds at most this much uncompressed data.
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;

/// Compresses `data`. `level` is the codec level (`compression.gzip.level` and friends); `None`
/// means the codec default Kafka uses. Snappy and lz4 have no levels here (Kafka's lz4 level only
/// selects lz4's high-compression mode, which `lz4_flex` does not implement) and ignore it.
pub fn compress(codec: Compression, data: &[u8], level: Option<i32>) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => gzip_compress(data, level),
        Compression::Snappy => snappy_compress(data),
        Compression::Lz4 => lz4_compress(data),
        Compression::Zstd => {
            zstd::stream::encode_all(data, level.unwrap_or(ZSTD_DEFAULT_LEVEL)).map_err(|e| encode_error(codec, e))
        }
    }
}

/// Decompresses `data`, failing if the output would exceed `max_output_bytes`.
/// Snappy input may be xerial-framed (what the Java client writes) or a raw block (librdkafka).
pub fn decompress(codec: Compression, data: &[u8], max_output_bytes: usize) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => {
            if data.len() > max_output_bytes {
                return Err(CompressionError::TooLarge { limit: max_output_bytes });
            }
            Ok(data.to_vec())
        }
        // Java's GZIPInputStream reads concatenated members, so the multi-member decoder it is.
        Compression::Gzip => read_bounded(codec, flate2::read::MultiGzDecoder::new(data), max_output_bytes),
        Compression::Snappy => snappy_decompress(data, max_output_bytes),
        Compression::Lz4 => read_bounded(codec, lz4_flex::frame::FrameDecoder::new(data), max_output_bytes),
        Compression::Zstd => {
            // The streaming decoder lets the output be cut off at the limit; the one-shot API
            // would trust the frame's declared content size.
            let decoder = zstd::stream::read::Decoder::with_buffer(data).map_err(|e| corrupt(codec, e))?;
            read_bounded(codec, decoder, max_output_bytes)
        }
    }
}

fn corrupt(codec: Compression, reason: impl std::fmt::Display) -> CompressionError {
    CompressionError::Corrupt { codec, reason: reason.to_string() }
}

fn encode_error(codec: Compression, reason: impl std::fmt::Display) -> CompressionError {
    CompressionError::Encode { codec, reason: reason.to_string() }
}

/// Reads a decoder to its end, keeping at most `limit + 1` bytes: one byte past the limit is
/// enough to know the limit is exceeded, and memory never grows beyond it.
fn read_bounded(codec: Compression, reader: impl Read, limit: usize) -> Result<Vec<u8>, CompressionError> {
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    reader.take(cap).read_to_end(&mut out).map_err(|e| corrupt(codec, e))?;
    if out.len() > limit {
        return Err(CompressionError::TooLarge { limit });
    }
    Ok(out)
}

fn gzip_compress(data: &[u8], level: Option<i32>) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Gzip;
    // Kafka accepts 1..=9 plus -1 (`DEFAULT_COMPRESSION`).
    let level = match level {
        None | Some(-1) => GZIP_DEFAULT_LEVEL,
        Some(l @ 1..=9) => l,
        Some(other) => return Err(encode_error(codec, format!("gzip level {other} is outside 1..=9"))),
    };
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 2 + 64),
        flate2::Compression::new(level.unsigned_abs()),
    );
    encoder.write_all(data).map_err(|e| encode_error(codec, e))?;
    encoder.finish().map_err(|e| encode_error(codec, e))
}

fn snappy_compress(data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Snappy;
    let mut out = Vec::with_capacity(XERIAL_HEADER.len() + snap::raw::max_compress_len(data.len()) + 16);
    out.extend_from_slice(XERIAL_HEADER);
    let mut encoder = snap::raw::Encoder::new();
    let mut block = Vec::new();
    for chunk in data.chunks(XERIAL_BLOCK_SIZE) {
        block.resize(snap::raw::max_compress_len(chunk.len()), 0);
        let n = encoder.compress(chunk, &mut block).map_err(|e| encode_error(codec, e))?;
        let compressed = block.get(..n).ok_or_else(|| encode_error(codec, "snappy overran its buffer"))?;
        // A 32 KiB chunk compresses to well under 2 GiB, so the length always fits.
        let len = i32::try_from(n).map_err(|e| encode_error(codec, e))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(compressed);
    }
    Ok(out)
}

/// Decodes one raw snappy block into `out`, checking its declared length against the remaining
/// budget *before* allocating for it.
fn snappy_block_into(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), CompressionError> {
    let codec = Compression::Snappy;
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, e))?;
    let start = out.len();
    let end = start.checked_add(len).filter(|&end| end <= limit).ok_or(CompressionError::TooLarge { limit })?;
    out.resize(end, 0);
    let target = out.get_mut(start..end).ok_or_else(|| corrupt(codec, "snappy output out of range"))?;
    let written = snap::raw::Decoder::new().decompress(block, target).map_err(|e| corrupt(codec, e))?;
    if written != len {
        return Err(corrupt(codec, format!("snappy block declared {len} bytes but held {written}")));
    }
    Ok(())
}

fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Snappy;
    let mut out = Vec::new();
    if !data.starts_with(XERIAL_MAGIC) {
        // librdkafka (and other non-Java clients) may write one raw snappy block; snappy-java's
        // SnappyInputStream falls back the same way when the magic is absent.
        snappy_block_into(data, &mut out, limit)?;
        return Ok(out);
    }
    let mut rest = data;
    // Each pass reads one stream header; snappy-java also accepts concatenated streams, where a
    // new header appears where a chunk length would be. A real length can't be mistaken for the
    // magic: its first byte (0x82) would make the length negative.
    while rest.starts_with(XERIAL_MAGIC) {
        rest = rest.get(XERIAL_HEADER.len()..).ok_or_else(|| corrupt(codec, "truncated xerial snappy header"))?;
        while let Some(len_bytes) = rest.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
            if rest.starts_with(XERIAL_MAGIC) {
                break;
            }
            let len = i32::from_be_bytes(len_bytes);
            let len =
                usize::try_from(len).map_err(|_| corrupt(codec, format!("negative xerial chunk length {len}")))?;
            let block = rest
                .get(4..)
                .and_then(|r| r.get(..len))
                .ok_or_else(|| corrupt(codec, "truncated xerial snappy chunk"))?;
            snappy_block_into(block, &mut out, limit)?;
            rest = rest.get(4 + len..).unwrap_or_default();
        }
    }
    if !rest.is_empty() {
        return Err(corrupt(codec, format!("{} trailing bytes after xerial snappy chunks", rest.len())));
    }
    Ok(out)
}

fn lz4_compress(data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
    let codec = Compression::Lz4;
    // Kafka's KafkaLZ4BlockOutputStream writes 64 KiB independent blocks without a content
    // checksum; matching it keeps every Kafka reader (including its own stream) happy.
    let info = FrameInfo::new().block_size(BlockSize::Max64KB).block_mode(BlockMode::Independent);
    let mut encoder = FrameEncoder::with_frame_info(info, Vec::with_capacity(data.len() / 2 + 32));
    encoder.write_all(data).map_err(|e| encode_error(codec, e))?;
    encoder.finish().map_err(|e| encode_error(codec, e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn ids_and_names() {
        for codec in Compression::ALL {
            assert_eq!(Compression::from_id(codec.id()), Some(codec));
            assert_eq!(Compression::from_name(codec.name()), Some(codec));
        }
        assert_eq!(Compression::from_name("zstd"), Some(Compression::Zstd));
        assert_eq!(Compression::from_name("producer"), None);
        assert_eq!(Compression::from_name("GZIP"), None);
        for id in [-1, 5, 6, 7, 8, i16::MAX] {
            assert_eq!(Compression::from_id(id), None);
        }
    }

    /// Bytes written by the Java client (snappy-java's framing), value "sdfdsf" in one record.
    const JAVA_SNAPPY: &[u8] =
        b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x0f\x0d\x30\x18\x00\x00\x00\x01\x0csdfdsf\x00";
    const RECORDS: &[u8] = b"\x18\x00\x00\x00\x01\x0csdfdsf\x00";

    #[test]
    fn snappy_reads_java_framing_and_raw_blocks() {
        assert_eq!(decompress(Compression::Snappy, JAVA_SNAPPY, MIB).unwrap(), RECORDS);
        // Our encoder writes exactly what snappy-java writes for a small input.
        assert_eq!(compress(Compression::Snappy, RECORDS, None).unwrap(), JAVA_SNAPPY);
        // A raw block, as librdkafka writes.
        let raw = snap::raw::Encoder::new().compress_vec(RECORDS).unwrap();
        assert_eq!(decompress(Compression::Snappy, &raw, MIB).unwrap(), RECORDS);
        // A longer raw block (longer than the xerial header, so the fallback must not eat bytes).
        let long = b"0123456789abcdef".repeat(100);
        let raw = snap::raw::Encoder::new().compress_vec(&long).unwrap();
        assert_eq!(decompress(Compression::Snappy, &raw, MIB).unwrap(), long);
    }

    #[test]
    fn snappy_framing_edge_cases() {
        // Multi-chunk input: 100 KiB spans four 32 KiB chunks.
        let data: Vec<u8> = (0..100 * 1024u32).map(|i| (i % 251) as u8).collect();
        let framed = compress(Compression::Snappy, &data, None).unwrap();
        assert_eq!(decompress(Compression::Snappy, &framed, MIB).unwrap(), data);
        // Concatenated streams, as snappy-java accepts.
        let mut twice = JAVA_SNAPPY.to_vec();
        twice.extend_from_slice(JAVA_SNAPPY);
        assert_eq!(decompress(Compression::Snappy, &twice, MIB).unwrap(), [RECORDS, RECORDS].concat());
        // Header only: empty.
        assert_eq!(decompress(Compression::Snappy, &JAVA_SNAPPY[..16], MIB).unwrap(), b"");
        // Truncated anywhere after the magic: corrupt, never a panic or a silent short read.
        for cut in 8..JAVA_SNAPPY.len() {
            if cut == 16 {
                continue;
            }
            assert!(
                matches!(
                    decompress(Compression::Snappy, &JAVA_SNAPPY[..cut], MIB),
                    Err(CompressionError::Corrupt { .. })
                ),
                "cut {cut}"
            );
        }
        // Negative chunk length.
        let mut negative = JAVA_SNAPPY[..16].to_vec();
        negative.extend_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(decompress(Compression::Snappy, &negative, MIB), Err(CompressionError::Corrupt { .. })));
    }

    #[test]
    fn lz4_writes_kafka_style_frames() {
        let data = b"hello lz4 hello lz4 hello lz4".repeat(10);
        let framed = compress(Compression::Lz4, &data, None).unwrap();
        // LZ4 frame magic, then FLG: version 01, independent blocks; BD: 64 KiB max block size.
        assert_eq!(&framed[..4], &[0x04, 0x22, 0x4d, 0x18]);
        assert_eq!(framed[4] & 0xe0, 0x60);
        assert_eq!(framed[5], 0x40);
        assert_eq!(decompress(Compression::Lz4, &framed, MIB).unwrap(), data);
    }

    #[test]
    fn gzip_levels() {
        let data = b"gzip gzip gzip".repeat(100);
        for level in [None, Some(-1), Some(1), Some(9)] {
            let out = compress(Compression::Gzip, &data, level).unwrap();
            assert_eq!(&out[..2], &[0x1f, 0x8b]);
            assert_eq!(decompress(Compression::Gzip, &out, MIB).unwrap(), data);
        }
        for level in [Some(0), Some(10), Some(-2)] {
            assert!(matches!(compress(Compression::Gzip, &data, level), Err(CompressionError::Encode { .. })));
        }
        // Concatenated members (Java's GZIPInputStream reads them all).
        let mut two = compress(Compression::Gzip, b"ab", None).unwrap();
        two.extend(compress(Compression::Gzip, b"cd", None).unwrap());
        assert_eq!(decompress(Compression::Gzip, &two, MIB).unwrap(), b"abcd");
    }

    #[test]
    fn zstd_levels() {
        let data = b"zstd zstd zstd".repeat(100);
        for level in [None, Some(1), Some(19), Some(-5)] {
            let out = compress(Compression::Zstd, &data, level).unwrap();
            assert_eq!(decompress(Compression::Zstd, &out, MIB).unwrap(), data);
        }
    }

    #[test]
    fn limit_is_exact() {
        let data = vec![7u8; 4096];
        for codec in Compression::ALL {
            let out = compress(codec, &data, None).unwrap();
            assert_eq!(decompress(codec, &out, 4096).unwrap(), data, "{codec:?}");
            assert!(
                matches!(decompress(codec, &out, 4095), Err(CompressionError::TooLarge { limit: 4095 })),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn decompression_bombs_are_refused() {
        let bomb = vec![0u8; 10 * MIB];
        for codec in Compression::ALL {
            let compressed = compress(codec, &bomb, None).unwrap();
            if codec != Compression::None {
                assert!(compressed.len() < MIB, "{codec:?} should shrink zeros");
            }
            assert!(
                matches!(decompress(codec, &compressed, MIB), Err(CompressionError::TooLarge { limit: MIB })),
                "{codec:?}"
            );
        }
        // A raw snappy block is refused from its declared length, before any allocation.
        let raw = snap::raw::Encoder::new().compress_vec(&bomb).unwrap();
        assert!(matches!(decompress(Compression::Snappy, &raw, MIB), Err(CompressionError::TooLarge { .. })));
    }

    #[test]
    fn garbage_is_corrupt() {
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            assert!(
                matches!(decompress(codec, b"definitely not compressed", MIB), Err(CompressionError::Corrupt { .. })),
                "{codec:?}"
            );
        }
    }

    fn arb_codec() -> impl Strategy<Value = Compression> {
        prop::sample::select(Compression::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn codecs_round_trip(codec in arb_codec(), data in prop::collection::vec(any::<u8>(), 0..70_000), level in prop::option::of(1i32..=9)) {
            let compressed = compress(codec, &data, level).unwrap();
            prop_assert_eq!(decompress(codec, &compressed, data.len()).unwrap(), data);
        }

        /// Compressible (repetitive) inputs take the codecs' match paths, which random bytes skip.
        #[test]
        fn codecs_round_trip_repetitive(codec in arb_codec(), unit in prop::collection::vec(any::<u8>(), 1..16), reps in 0usize..20_000) {
            let data = unit.repeat(reps);
            let compressed = compress(codec, &data, None).unwrap();
            prop_assert_eq!(decompress(codec, &compressed, data.len()).unwrap(), data);
        }

        #[test]
        fn decompress_never_panics(codec in arb_codec(), data in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decompress(codec, &data, 1 << 16);
        }

        /// Corrupting one byte of valid output: gets past the magic checks, unlike pure noise.
        #[test]
        fn corrupted_streams_never_panic(codec in arb_codec(), data in prop::collection::vec(any::<u8>(), 1..2048), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut compressed = compress(codec, &data.repeat(3), None).unwrap();
            let i = pos.index(compressed.len());
            compressed[i] = byte;
            if let Ok(out) = decompress(codec, &compressed, 1 << 16) {
                prop_assert!(out.len() <= 1 << 16);
            }
        }
    }
}
