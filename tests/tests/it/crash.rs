//! Durability under `kill -9` of the broker process (the `sluice-test-broker` binary): whatever
//! the broker acknowledged with acks=all must be readable after a restart on the same data dir —
//! at the acknowledged offset, in order, with no gaps in offsets — whether the kill hits while
//! produce requests are in flight or after they completed, with the default flush policy and
//! with `log.flush.interval.messages=1`. Small segments make recovery cross segment files.
//! Records the broker never acknowledged may or may not survive, but never as gaps or garbage.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rdkafka::Offset;
use sluice_tests::*;

use crate::admin::raw_topic_metadata;

const BIN: &str = env!("CARGO_BIN_EXE_sluice-test-broker");
const PARTS: i32 = 2;

fn seq_record(seq: usize) -> TestRecord {
    TestRecord {
        key: Some(format!("{seq}").into_bytes()),
        ..TestRecord::value(format!("seq-{seq:06}-{}", "x".repeat(seq % 300)))
            .to_partition((seq % PARTS as usize) as i32)
    }
}

fn seq_of(c: &Consumed) -> usize {
    let v = c.value_str();
    v.strip_prefix("seq-")
        .and_then(|r| r.get(..6))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("record at {}/{} is not one we produced: {v:?}", c.partition, c.offset))
}

fn broker_overrides(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut o = vec![("log.segment.bytes", "32768"), ("num.partitions", "2")];
    o.extend_from_slice(extra);
    o
}

/// Checks the log after restart against what was acknowledged; returns records per partition.
fn verify_after_restart(
    bootstrap: &str,
    topic: &str,
    acked: &[(usize, i32, i64)],
    exact: bool,
) -> BTreeMap<i32, usize> {
    let c = consumer(bootstrap, &[]);
    let got = consume_to_end(&c, topic, &(0..PARTS).collect::<Vec<_>>(), Offset::Beginning, WAIT);
    let mut per_part: BTreeMap<i32, Vec<&Consumed>> = BTreeMap::new();
    for r in &got {
        per_part.entry(r.partition).or_default().push(r);
    }
    let mut counts = BTreeMap::new();
    for p in 0..PARTS {
        let recs = per_part.remove(&p).unwrap_or_default();
        check!(
            "partition {p}: {} records, offsets 0..{} with no gaps, sequence strictly increasing",
            recs.len(),
            recs.len()
        );
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.offset, i as i64, "gap/duplicate offset in partition {p}");
        }
        let seqs: Vec<usize> = recs.iter().map(|r| seq_of(r)).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "partition {p} out of order: {seqs:?}");
        assert!(seqs.iter().all(|s| *s % PARTS as usize == p as usize), "record in wrong partition {p}");
        counts.insert(p, recs.len());
        assert_eq!(watermarks(bootstrap, topic, p).1, recs.len() as i64, "high watermark of partition {p}");
    }
    check!("all {} acknowledged records present at their acknowledged offsets", acked.len());
    let by_pos: BTreeMap<(i32, i64), usize> = got.iter().map(|c| ((c.partition, c.offset), seq_of(c))).collect();
    for &(seq, p, off) in acked {
        assert_eq!(by_pos.get(&(p, off)), Some(&seq), "acknowledged seq {seq} at {p}/{off} missing or different");
    }
    if exact {
        check!("nothing beyond the acknowledged records");
        assert_eq!(got.len(), acked.len());
    }
    counts
}

fn acked_list(records: &[usize], results: &[Result<(i32, i64), rdkafka::error::KafkaError>]) -> Vec<(usize, i32, i64)> {
    records.iter().zip(results).filter_map(|(s, r)| r.as_ref().ok().map(|(p, o)| (*s, *p, *o))).collect()
}

async fn kill_during_produce(extra: &[(&'static str, &'static str)]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let overrides = broker_overrides(extra);
    let broker = ExternalBroker::start(BIN, &data, &overrides);
    let topic = topic_name("crash-during");
    create_topic(&broker.bootstrap(), &topic, PARTS, &[]).await;
    let (_, _, topic_id) = raw_topic_metadata(format!("127.0.0.1:{}", broker.port).parse().unwrap(), &topic, false);
    let p = producer(
        &broker.bootstrap(),
        &[("message.timeout.ms", "4000"), ("linger.ms", "2"), ("retry.backoff.ms", "50")],
    );

    check!("phase 1: 600 records acknowledged (acks=all) before the kill");
    let seqs: Vec<usize> = (0..600).collect();
    let recs: Vec<TestRecord> = seqs.iter().map(|&s| seq_record(s)).collect();
    let res = produce_all(&p, &topic, &recs).await;
    let mut acked = acked_list(&seqs, &res);
    assert_eq!(acked.len(), 600, "all phase-1 records must be acknowledged: {:?}", res.iter().find(|r| r.is_err()));

    check!("phase 2: keep producing while the broker is killed with SIGKILL");
    let pid = broker.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        broker.kill9();
    });
    let mut pending = Vec::new();
    let mut phase2 = Vec::new();
    for s in 600..3000 {
        pending.extend(enqueue(&p, &topic, &[seq_record(s)]));
        phase2.push(s);
        if s % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    killer.join().expect("killer thread");
    let res = deliveries(pending).await;
    let acked2 = acked_list(&phase2, &res);
    let failed = res.iter().filter(|r| r.is_err()).count();
    check!("phase 2: {} acknowledged, {failed} failed (broker pid {pid} killed mid-stream)", acked2.len());
    assert!(failed > 0, "the kill should have hit in-flight records (all {} succeeded)", phase2.len());
    acked.extend(acked2);
    drop(p);

    let broker = ExternalBroker::start(BIN, &data, &overrides);
    check!("restarted on the same data dir: same topic id");
    let addr = format!("127.0.0.1:{}", broker.port).parse().unwrap();
    assert_eq!(raw_topic_metadata(addr, &topic, false), (0, PARTS as usize, topic_id));
    let counts = verify_after_restart(&broker.bootstrap(), &topic, &acked, false);

    check!("after recovery new records continue at the recovered log end offsets");
    let p = producer(&broker.bootstrap(), &[]);
    let next = produce_ok(&p, &topic, &[seq_record(5000), seq_record(5001)]).await;
    assert_eq!(next, vec![(0, counts[&0] as i64), (1, counts[&1] as i64)]);
    assert_exit_clean(broker, &data);
}

async fn kill_after_produce(extra: &[(&'static str, &'static str)]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let overrides = broker_overrides(extra);
    let broker = ExternalBroker::start(BIN, &data, &overrides);
    let topic = topic_name("crash-after");
    create_topic(&broker.bootstrap(), &topic, PARTS, &[]).await;
    let p = producer(&broker.bootstrap(), &[("compression.codec", "zstd"), ("linger.ms", "5")]);
    let seqs: Vec<usize> = (0..1500).collect();
    let recs: Vec<TestRecord> = seqs.iter().map(|&s| seq_record(s)).collect();
    let acked = acked_list(&seqs, &produce_ok(&p, &topic, &recs).await.into_iter().map(Ok).collect::<Vec<_>>());
    drop(p);
    check!("1500 records acknowledged; SIGKILL the broker with no clean shutdown");
    broker.kill9();
    let broker = ExternalBroker::start(BIN, &data, &overrides);
    verify_after_restart(&broker.bootstrap(), &topic, &acked, true);
    assert_exit_clean(broker, &data);
}

/// SIGTERM must stop the recovered broker cleanly (exit status 0).
fn assert_exit_clean(broker: ExternalBroker, _data: &Path) {
    let log = broker.log_path.clone();
    let status = broker.terminate();
    check!("SIGTERM after recovery: exit status {status}");
    assert!(
        status.success(),
        "broker exited with {status} on SIGTERM; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[tokio::test]
async fn kill9_during_produce_default_flush() {
    kill_during_produce(&[]).await;
}

#[tokio::test]
async fn kill9_during_produce_flush_every_message() {
    kill_during_produce(&[("log.flush.interval.messages", "1")]).await;
}

#[tokio::test]
async fn kill9_after_produce_default_flush() {
    kill_after_produce(&[]).await;
}

#[tokio::test]
async fn kill9_after_produce_flush_every_message() {
    kill_after_produce(&[("log.flush.interval.messages", "1")]).await;
}
