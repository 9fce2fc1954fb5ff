//! Record batches as a producer sends them: header parsing, CRC, decompression with each codec,
//! record decoding and the broker's produce-time validation. The first byte picks the shape:
//! a raw batch (its length and CRC fixed up so the fuzzer gets past them), or a well-formed
//! header around a records section compressed with the chosen codec (so the fuzzer explores
//! what lies inside the compressed envelope).

#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sluice::topic_config::TopicConfig;
use sluice::validate::{single_batch, validate_batch};
use sluice_protocol::batch::{BatchIter, RecordBatch};
use sluice_protocol::compression::{compress, decompress, Compression};

/// Offset of the attributes field; the CRC covers everything from here on.
const CRC_START: usize = 21;
const HEADER_BYTES: usize = 61;
const LIMIT: usize = 16 << 20;

fn fix_up(mut raw: Vec<u8>) -> Vec<u8> {
    if raw.len() >= HEADER_BYTES {
        let len = (raw.len() - 12) as i32;
        raw[8..12].copy_from_slice(&len.to_be_bytes());
        raw[16] = 2;
        let crc = crc32c::crc32c(&raw[CRC_START..]);
        raw[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    raw
}

fn wrapped(codec: Compression, count: i32, records: &[u8]) -> Option<Vec<u8>> {
    let section = if codec == Compression::None { records.to_vec() } else { compress(codec, records, None).ok()? };
    let mut b = BytesMut::with_capacity(HEADER_BYTES + section.len());
    b.put_i64(0); // base offset
    b.put_i32(0); // length, fixed up
    b.put_i32(-1); // partition leader epoch
    b.put_i8(2); // magic
    b.put_u32(0); // crc, fixed up
    b.put_i16(codec.id());
    b.put_i32(count.saturating_sub(1).max(0));
    b.put_i64(1_700_000_000_000);
    b.put_i64(1_700_000_000_000);
    b.put_i64(-1);
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(count);
    b.put_slice(&section);
    Some(fix_up(b.to_vec()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
    let raw = if mode & 1 == 0 {
        fix_up(rest.to_vec())
    } else {
        let codec = codecs[(mode as usize >> 1) % codecs.len()];
        let count = rest.first().map(|&c| c as i32).unwrap_or(0);
        match wrapped(codec, count, rest.get(1..).unwrap_or(&[])) {
            Some(r) => r,
            None => return,
        }
    };
    // Raw decompression of the input with every codec, bounded.
    for codec in codecs {
        let _ = decompress(codec, rest, LIMIT);
    }
    let bytes = Bytes::from(raw);
    for batch in BatchIter::new(bytes.clone()).flatten() {
        let _ = batch.validate();
        let _ = batch.records(LIMIT);
    }
    if let Ok(batch) = RecordBatch::new(bytes.clone()) {
        let _ = batch.validate();
        let _ = batch.records_data(LIMIT);
        // Reading in place and decoding must agree on what the records are.
        let decoded = batch.records(LIMIT);
        let mut walked = Vec::new();
        let walk = batch
            .walk_records(LIMIT, |_, r| walked.push((r.offset_delta, r.timestamp_delta, r.key.map(<[u8]>::to_vec))));
        match (&decoded, &walk) {
            (Ok(records), Ok((_, summary))) => {
                assert_eq!(records.len(), summary.count);
                let from_decode: Vec<_> = records
                    .iter()
                    .map(|r| (r.offset_delta, r.timestamp_delta, r.key.as_ref().map(|k| k.to_vec())))
                    .collect();
                assert_eq!(from_decode, walked);
            }
            (Err(_), Err(_)) => {}
            (d, w) => {
                panic!("decode {:?} and walk {:?} disagree", d.as_ref().map(Vec::len), w.as_ref().map(|(_, s)| s))
            }
        }
    }
    // Produce validation under a plain, a compacted and a recompressing topic.
    static CONFIGS: OnceLock<Vec<TopicConfig>> = OnceLock::new();
    let configs = CONFIGS.get_or_init(|| {
        let broker = sluice::Config::from_overrides(&[]).expect("config");
        [vec![], vec![("cleanup.policy", "compact")], vec![("compression.type", "gzip")]]
            .into_iter()
            .map(|overrides| {
                let explicit: BTreeMap<String, String> =
                    overrides.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                TopicConfig::resolve(&explicit, &broker)
            })
            .collect()
    });
    let config = &configs[(mode as usize >> 4) % configs.len()];
    if let Ok(batch) = single_batch(Some(&bytes)) {
        if let Ok(validated) = validate_batch(batch, "fuzz-0", config, 1_700_000_000_000) {
            // What produce accepts is a batch every later reader accepts.
            validated.batch.validate_for_produce().expect("validated batch is valid");
        }
    }
});
