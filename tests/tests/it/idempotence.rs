//! Idempotent producers through librdkafka (`enable.idempotence=true`): InitProducerId, sequence
//! numbers on every batch with up to 5 requests in flight per partition, and exactly-once,
//! in-order storage; then the same across a broker restart (producer state reloaded from its
//! snapshot, a fresh producer id that was never handed out before).

use rdkafka::Offset;
use sluice_tests::*;

const IDEMPOTENT: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("max.in.flight.requests.per.connection", "5"),
    ("linger.ms", "1"),
    ("batch.num.messages", "20"),
];

fn records(prefix: &str, partitions: i32, n: usize) -> Vec<TestRecord> {
    (0..n).map(|i| TestRecord::value(format!("{prefix}-{i}")).to_partition(i as i32 % partitions)).collect()
}

/// Consumes everything and checks each partition holds exactly `sent`'s values for it, in order,
/// at offsets 0.., returning how many records were read.
fn assert_exactly_once_in_order(bootstrap: &str, topic: &str, partitions: i32, sent: &[TestRecord]) -> usize {
    let got = consume_exactly(bootstrap, topic, &(0..partitions).collect::<Vec<_>>(), Offset::Beginning, sent.len());
    for p in 0..partitions {
        let want: Vec<String> = sent
            .iter()
            .filter(|r| r.partition == Some(p))
            .map(|r| String::from_utf8(r.value.clone().unwrap_or_default()).expect("utf8"))
            .collect();
        let have: Vec<(i64, String)> =
            got.iter().filter(|c| c.partition == p).map(|c| (c.offset, c.value_str())).collect();
        let expected: Vec<(i64, String)> = want.into_iter().enumerate().map(|(i, v)| (i as i64, v)).collect();
        assert_eq!(have, expected, "partition {p}");
        assert_eq!(watermarks(bootstrap, topic, p).1, expected.len() as i64, "partition {p}: no duplicates stored");
    }
    got.len()
}

#[tokio::test]
async fn idempotent_producer_writes_every_record_exactly_once_in_order() {
    let broker = TestBroker::start_default();
    let topic = topic_name("idem");
    create_topic(&broker.bootstrap(), &topic, 3, &[]).await;
    let p = producer(&broker.bootstrap(), IDEMPOTENT);
    let sent = records("idem", 3, 3000);
    check!("3000 records from an idempotent producer are acknowledged");
    let acked = produce_ok(&p, &topic, &sent).await;
    check!("acknowledged offsets per partition are 0..999 in send order");
    for part in 0..3 {
        let offsets: Vec<i64> = acked.iter().filter(|(q, _)| *q == part).map(|(_, o)| *o).collect();
        assert_eq!(offsets, (0..1000).collect::<Vec<_>>(), "partition {part}");
    }
    check!("each partition holds each record exactly once, in order");
    assert_eq!(assert_exactly_once_in_order(&broker.bootstrap(), &topic, 3, &sent), 3000);
}

#[tokio::test]
async fn idempotent_producers_across_a_restart() {
    let broker = TestBroker::start(&[("log.segment.bytes", "4096")]);
    let topic = topic_name("idem-restart");
    create_topic(&broker.bootstrap(), &topic, 2, &[]).await;
    let mut sent = records("before", 2, 1000);
    {
        let p = producer(&broker.bootstrap(), IDEMPOTENT);
        produce_ok(&p, &topic, &sent).await;
    }
    let broker = broker.restart();
    check!("after a restart a new idempotent producer appends after the old data, exactly once");
    let after = records("after", 2, 1000);
    let p = producer(&broker.bootstrap(), IDEMPOTENT);
    produce_ok(&p, &topic, &after).await;
    sent.extend(after);
    assert_eq!(assert_exactly_once_in_order(&broker.bootstrap(), &topic, 2, &sent), 2000);
    let snapshots = std::fs::read_dir(broker.data_dir().join(format!("{topic}-0")))
        .expect("partition dir")
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".snapshot")))
        .count();
    check!("segment rolls and the clean shutdown left producer state snapshots");
    assert!(snapshots >= 1, "no .snapshot files");
}
