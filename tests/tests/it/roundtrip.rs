//! Produce/consume round trips for every compression codec (none, gzip, snappy, lz4, zstd):
//! what a consumer reads back must equal what the producer sent — keys (including null), values
//! (including null and empty), headers (order, duplicates, null values), CreateTime timestamps,
//! partition placement, per-partition order and contiguous offsets from 0. Codecs matter because
//! the broker must validate and store compressed batches it did not create.

use rdkafka::{Offset, Timestamp};
use sluice_tests::*;

const PARTITIONS: i32 = 3;
const N: usize = 300;

fn records() -> Vec<TestRecord> {
    let base_ts = 1_700_000_000_000i64;
    (0..N)
        .map(|i| {
            let key = match i % 10 {
                0 => None, // null key
                _ => Some(format!("key-{i}").into_bytes()),
            };
            let value = match i % 25 {
                0 => None,                                      // tombstone
                1 => Some(vec![]),                              // empty, not null
                2 => Some(pseudo_random_bytes(i as u64, 3000)), // incompressible
                _ => Some(format!("value-{i}-{}", "abc".repeat(i % 40)).into_bytes()),
            };
            let headers = match i % 4 {
                0 => vec![],
                1 => vec![("h1".to_string(), Some(format!("hv-{i}").into_bytes()))],
                2 => vec![("null-header".to_string(), None)],
                _ => vec![
                    ("dup".to_string(), Some(b"first".to_vec())),
                    ("other".to_string(), Some(vec![0, 1, 2, 255])),
                    ("dup".to_string(), Some(b"second".to_vec())),
                ],
            };
            TestRecord {
                partition: Some((i % PARTITIONS as usize) as i32),
                key,
                value,
                headers,
                timestamp: Some(base_ts + i as i64 * 7),
            }
        })
        .collect()
}

async fn round_trip(codec: &str) {
    let broker = TestBroker::start_default();
    let topic = topic_name(&format!("codec-{codec}"));
    create_topic(&broker.bootstrap(), &topic, PARTITIONS, &[]).await;
    // A long linger so records share batches: compression only happens on multi-record batches.
    let p = producer(
        &broker.bootstrap(),
        &[("compression.codec", codec), ("linger.ms", "50"), ("batch.num.messages", "1000")],
    );
    let sent = records();
    check!("{codec}: producing {N} records (keys, null keys, null/empty values, headers, timestamps) to {PARTITIONS} partitions");
    let acks = produce_ok(&p, &topic, &sent).await;

    check!("{codec}: each partition's acknowledged offsets are 0,1,2,… in send order");
    for part in 0..PARTITIONS {
        let offs: Vec<i64> = acks.iter().filter(|(pp, _)| *pp == part).map(|(_, o)| *o).collect();
        let expected: Vec<i64> = (0..offs.len() as i64).collect();
        assert_eq!(offs, expected, "acked offsets for partition {part}");
    }

    let got = consume_exactly(&broker.bootstrap(), &topic, &[0, 1, 2], Offset::Beginning, N);
    check!("{codec}: consumed {N} records equal the produced ones field by field");
    for part in 0..PARTITIONS {
        let want: Vec<&TestRecord> = sent.iter().filter(|r| r.partition == Some(part)).collect();
        let have: Vec<&Consumed> = got.iter().filter(|c| c.partition == part).collect();
        assert_eq!(have.len(), want.len(), "record count in partition {part}");
        for (i, (w, h)) in want.iter().zip(have.iter()).enumerate() {
            assert_eq!(h.offset, i as i64, "offset of record #{i} in partition {part}");
            assert_eq!(h.key, w.key, "key at {part}/{i}");
            assert_eq!(h.value, w.value, "value at {part}/{i}");
            assert_eq!(h.headers, w.headers, "headers at {part}/{i}");
            assert_eq!(h.timestamp, Timestamp::CreateTime(w.timestamp.unwrap()), "timestamp at {part}/{i}");
        }
    }
    check!("{codec}: ListOffsets latest = record count per partition");
    for part in 0..PARTITIONS {
        let n = sent.iter().filter(|r| r.partition == Some(part)).count() as i64;
        assert_eq!(watermarks(&broker.bootstrap(), &topic, part), (0, n), "watermarks of partition {part}");
    }
    broker.shutdown();
}

#[tokio::test]
async fn round_trip_uncompressed() {
    round_trip("none").await;
}

#[tokio::test]
async fn round_trip_gzip() {
    round_trip("gzip").await;
}

#[tokio::test]
async fn round_trip_snappy() {
    round_trip("snappy").await;
}

#[tokio::test]
async fn round_trip_lz4() {
    round_trip("lz4").await;
}

#[tokio::test]
async fn round_trip_zstd() {
    round_trip("zstd").await;
}

/// Consuming from the middle of a compressed batch: the broker returns the whole batch and the
/// client skips the records before its offset (a consumer must not hang or see earlier records).
#[tokio::test]
async fn consume_from_middle_of_compressed_batch() {
    let broker = TestBroker::start_default();
    let topic = topic_name("mid-batch");
    create_topic(&broker.bootstrap(), &topic, 1, &[]).await;
    let p = producer(&broker.bootstrap(), &[("compression.codec", "lz4"), ("linger.ms", "100")]);
    let sent: Vec<TestRecord> = (0..50).map(|i| TestRecord::value(format!("m{i}")).to_partition(0)).collect();
    produce_ok(&p, &topic, &sent).await;
    check!("fetching from offset 17 (inside a 50-record lz4 batch) yields exactly offsets 17..49");
    let got = consume_exactly(&broker.bootstrap(), &topic, &[0], Offset::Offset(17), 33);
    for (i, c) in got.iter().enumerate() {
        assert_eq!(c.offset, 17 + i as i64);
        assert_eq!(c.value_str(), format!("m{}", 17 + i));
    }
}
