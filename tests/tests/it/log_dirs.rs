//! Moving partitions between log dirs (AlterReplicaLogDirs) with librdkafka clients at work:
//!
//! - while an idempotent producer writes and a consumer reads, both partitions of a topic move
//!   to the other log dir; every acknowledged record is read back once, at its acknowledged
//!   offset, offsets continuous, and the partitions end up in the new dir;
//! - the real broker binary is killed with SIGKILL while partitions move (mid-copy, and at
//!   random points that may fall on the swap) and restarted: every acknowledged record is
//!   there, no partition has two copies or a leftover future replica once the moves resumed
//!   after the restart have completed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sluice_testkit::client::BlockingClient;
use sluice_tests::*;

const BIN: &str = env!("CARGO_BIN_EXE_sluice-test-broker");

/// Where each copy of each partition of `topic` is: partition -> [(dir, is future)].
fn placement(addr: SocketAddr, topic: &str) -> BTreeMap<i32, Vec<(PathBuf, bool)>> {
    let mut c = BlockingClient::connect(addr);
    let mut req = DescribeLogDirsRequest::default();
    req.topics = None;
    let resp: DescribeLogDirsResponse = c.request(ApiKey::DescribeLogDirs, 4, &req);
    let mut out: BTreeMap<i32, Vec<(PathBuf, bool)>> = BTreeMap::new();
    for r in &resp.results {
        assert_eq!(r.error_code, 0, "log dir {} is offline", r.log_dir.as_str());
        for t in r.topics.iter().filter(|t| t.name.0.as_str() == topic) {
            for p in &t.partitions {
                out.entry(p.partition_index).or_default().push((PathBuf::from(r.log_dir.as_str()), p.is_future_key));
            }
        }
    }
    for copies in out.values_mut() {
        copies.sort();
    }
    out
}

/// AlterReplicaLogDirs v2 of `partitions` of `topic` to `dir`; asserts success.
fn alter(addr: SocketAddr, topic: &str, partitions: &[i32], dir: &Path) {
    let mut c = BlockingClient::connect(addr);
    let mut req = AlterReplicaLogDirsRequest::default();
    let mut d = alter_replica_log_dirs_request::AlterReplicaLogDir::default();
    d.path = StrBytes::from_string(dir.display().to_string());
    let mut t = alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    t.partitions = partitions.to_vec();
    d.topics.push(t);
    req.dirs.push(d);
    let resp: AlterReplicaLogDirsResponse = c.request(ApiKey::AlterReplicaLogDirs, 2, &req);
    for p in &resp.results[0].partitions {
        assert_eq!(p.error_code, 0, "moving {topic}-{} to {}", p.partition_index, dir.display());
    }
}

/// Waits until every partition of `topic` has exactly one copy, in `dir`.
fn wait_moved(addr: SocketAddr, topic: &str, partitions: i32, dir: &Path, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now = placement(addr, topic);
        let done = (0..partitions).all(|p| now.get(&p) == Some(&vec![(dir.to_path_buf(), false)]));
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "{topic} not moved to {} within {within:?}: {now:?}", dir.display());
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn record(seq: usize, partitions: i32) -> TestRecord {
    TestRecord {
        key: Some(format!("{seq}").into_bytes()),
        ..TestRecord::value(format!("seq-{seq:07}-{}", "m".repeat(200 + seq % 300)))
            .to_partition((seq % partitions as usize) as i32)
    }
}

fn seq_of(value: &str) -> usize {
    value
        .strip_prefix("seq-")
        .and_then(|r| r.get(..7))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not ours: {value:?}"))
}

/// Every acknowledged `(seq, partition, offset)` must be read back at that offset; offsets
/// continuous from 0 in every partition, no record twice.
fn verify(bootstrap: &str, topic: &str, partitions: i32, acked: &[(usize, i32, i64)]) -> usize {
    let c = consumer(bootstrap, &[]);
    let got = consume_to_end(&c, topic, &(0..partitions).collect::<Vec<_>>(), Offset::Beginning, WAIT);
    let mut per_part: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut by_pos = BTreeMap::new();
    for r in &got {
        per_part.entry(r.partition).or_default().push(r.offset);
        by_pos.insert((r.partition, r.offset), seq_of(&r.value_str()));
    }
    for (p, offsets) in &per_part {
        assert_eq!(*offsets, (0..offsets.len() as i64).collect::<Vec<_>>(), "offsets of partition {p} not continuous");
    }
    let seqs: BTreeSet<usize> = by_pos.values().copied().collect();
    assert_eq!(seqs.len(), got.len(), "a record was read twice");
    for &(seq, p, off) in acked {
        assert_eq!(by_pos.get(&(p, off)), Some(&seq), "acknowledged seq {seq} at {p}/{off} missing or different");
    }
    got.len()
}

fn other(dirs: &[PathBuf; 2], of: &Path) -> PathBuf {
    if dirs[0] == of {
        dirs[1].clone()
    } else {
        dirs[0].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_move_while_a_producer_writes_and_a_consumer_reads() {
    let root = tempfile::tempdir().unwrap();
    let dirs = [root.path().join("d1"), root.path().join("d2")];
    let both = format!("{},{}", dirs[0].display(), dirs[1].display());
    let broker = TestBroker::start(&[
        ("log.dirs", &both),
        ("log.segment.bytes", "65536"),
        // About a second of copying for what is there when the moves start; producers write
        // more slowly than that meanwhile (faster, and a move never catches up, as in Kafka).
        ("replica.alter.log.dirs.io.max.bytes.per.second", "1000000"),
    ]);
    let (bootstrap, addr) = (broker.bootstrap(), broker.addr());
    let topic = topic_name("moving");
    const PARTS: i32 = 2;
    create_topic(&bootstrap, &topic, PARTS, &[]).await;
    let p = producer(&bootstrap, &[("enable.idempotence", "true"), ("linger.ms", "5"), ("batch.size", "16384")]);

    check!("1 MB acknowledged before the moves start");
    let mut acked = Vec::new();
    let mut seq = 0;
    for _ in 0..5 {
        let recs: Vec<TestRecord> = (seq..seq + 500).map(|s| record(s, PARTS)).collect();
        let offs = produce_ok(&p, &topic, &recs).await;
        acked.extend((seq..seq + 500).zip(offs).map(|(s, (p, o))| (s, p, o)));
        seq += 500;
    }

    check!("a consumer reads from the start all along");
    let stop = Arc::new(AtomicBool::new(false));
    let consumed = Arc::new(Mutex::new(Vec::<(i32, i64, usize)>::new()));
    let reader = {
        let (stop, consumed, bootstrap, topic) = (stop.clone(), consumed.clone(), bootstrap.clone(), topic.clone());
        std::thread::spawn(move || {
            let c = consumer(&bootstrap, &[]);
            let mut tpl = TopicPartitionList::new();
            for p in 0..PARTS {
                tpl.add_partition_offset(&topic, p, Offset::Beginning).unwrap();
            }
            c.assign(&tpl).unwrap();
            while !stop.load(Ordering::Relaxed) {
                match c.poll(Duration::from_millis(50)) {
                    Some(Ok(m)) => {
                        let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                        consumed.lock().unwrap().push((m.partition(), m.offset(), seq_of(&v)));
                    }
                    Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) | None => {}
                    Some(Err(e)) => panic!("consumer error during the move: {e}"),
                }
            }
        })
    };

    let from = placement(addr, &topic);
    let targets: BTreeMap<i32, PathBuf> = from.iter().map(|(p, c)| (*p, other(&dirs, &c[0].0))).collect();
    check!("moving {targets:?} while the producer keeps writing");
    for (part, dir) in &targets {
        alter(addr, &topic, &[*part], dir);
    }
    let started = Instant::now();
    let mut saw_future = false;
    loop {
        let recs: Vec<TestRecord> = (seq..seq + 20).map(|s| record(s, PARTS)).collect();
        let offs = produce_ok(&p, &topic, &recs).await;
        acked.extend((seq..seq + 20).zip(offs).map(|(s, (p, o))| (s, p, o)));
        seq += 20;
        tokio::time::sleep(Duration::from_millis(25)).await;
        let now = placement(addr, &topic);
        saw_future |= now.values().any(|c| c.iter().any(|(_, f)| *f));
        let done = targets.iter().all(|(p, d)| now.get(p) == Some(&vec![(d.clone(), false)]));
        if done {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "moves did not complete: {now:?}");
    }
    assert!(saw_future, "DescribeLogDirs never showed a future replica during the move");
    check!("moved after {:?}; {seq} records acknowledged", started.elapsed());
    let recs: Vec<TestRecord> = (seq..seq + 200).map(|s| record(s, PARTS)).collect();
    let offs = produce_ok(&p, &topic, &recs).await;
    acked.extend((seq..seq + 200).zip(offs).map(|(s, (p, o))| (s, p, o)));
    seq += 200;

    check!("the consumer read every acknowledged record once, at its offset, in order");
    let deadline = Instant::now() + WAIT;
    while consumed.lock().unwrap().len() < seq {
        assert!(Instant::now() < deadline, "consumer has {} of {seq}", consumed.lock().unwrap().len());
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let consumed = consumed.lock().unwrap().clone();
    assert_eq!(consumed.len(), seq, "read more than was produced");
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o, _) in &consumed {
        let n = next.entry(*p).or_insert(0);
        assert_eq!(*o, *n, "partition {p}: offsets not continuous for the consumer");
        *n += 1;
    }
    let read: BTreeMap<(i32, i64), usize> = consumed.iter().map(|(p, o, s)| ((*p, *o), *s)).collect();
    for (s, p, o) in &acked {
        assert_eq!(read.get(&(*p, *o)), Some(s));
    }
    assert_eq!(verify(&bootstrap, &topic, PARTS, &acked), seq);
    for (part, dir) in &targets {
        assert!(dir.join(format!("{topic}-{part}")).is_dir());
        assert!(!other(&dirs, dir).join(format!("{topic}-{part}")).exists());
    }
    drop(p);
    broker.shutdown();
}

/// Partition dirs of `topic` under `dir` (current, `-future`, `-delete`).
fn on_disk(dir: &Path, topic: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.retain(|n| n.starts_with(topic));
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_while_partitions_move_loses_nothing_and_leaves_one_copy() {
    let root = tempfile::tempdir().unwrap();
    let dirs = [root.path().join("d1"), root.path().join("d2")];
    let both = format!("{},{}", dirs[0].display(), dirs[1].display());
    let data = root.path().join("unused");
    const PARTS: i32 = 2;
    let topic = topic_name("crash-move");
    let mut acked: Vec<(usize, i32, i64)> = Vec::new();
    let mut seq = 0usize;
    // (copy quota, time until SIGKILL): slow copies killed mid-copy, fast ones killed at random
    // points around their swap.
    let cycles: [(&str, u64); 5] =
        [("100000", 600), ("300000", 250), ("100000000", 30), ("100000000", 120), ("100000000", 5)];
    for (i, (quota, kill_after_ms)) in cycles.iter().enumerate() {
        let overrides = [
            ("log.dirs", both.as_str()),
            ("log.segment.bytes", "32768"),
            ("replica.alter.log.dirs.io.max.bytes.per.second", quota),
        ];
        let broker = ExternalBroker::start(BIN, &data, &overrides);
        let addr: SocketAddr = broker.bootstrap().parse().unwrap();
        if i == 0 {
            create_topic(&broker.bootstrap(), &topic, PARTS, &[]).await;
        } else {
            check!("cycle {i}: after the restart every acknowledged record is there");
            verify(&broker.bootstrap(), &topic, PARTS, &acked);
        }
        // Small batches, so the copy quota paces the copy batch by batch.
        let p = producer(
            &broker.bootstrap(),
            &[("message.timeout.ms", "4000"), ("linger.ms", "2"), ("retry.backoff.ms", "50"), ("batch.size", "16384")],
        );
        let recs: Vec<TestRecord> = (seq..seq + 2000).map(|s| record(s, PARTS)).collect();
        let offs = produce_ok(&p, &topic, &recs).await;
        acked.extend((seq..seq + 2000).zip(offs).map(|(s, (p, o))| (s, p, o)));
        seq += 2000;

        // Both partitions to the dir the first one is not in (so one of them may stay put).
        let before = placement(addr, &topic);
        let first = before[&0].iter().find(|(_, f)| !f).map(|(d, _)| d.clone()).unwrap();
        let target = other(&dirs, &first);
        alter(addr, &topic, &[0, 1], &target);
        if i == 0 {
            let moving = placement(addr, &topic);
            assert!(
                moving.values().any(|c| c.iter().any(|(d, f)| *f && *d == target)),
                "a future replica copies: {before:?} -> {moving:?}"
            );
        }
        check!("cycle {i}: moving to {}, producing, SIGKILL after {kill_after_ms} ms", target.display());
        let killer = std::thread::spawn({
            let ms = *kill_after_ms;
            move || {
                std::thread::sleep(Duration::from_millis(ms));
                broker.kill9();
            }
        });
        let mut pending = Vec::new();
        let mut phase = Vec::new();
        for s in seq..seq + 3000 {
            pending.extend(enqueue(&p, &topic, &[record(s, PARTS)]));
            phase.push(s);
            if s % 25 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        killer.join().unwrap();
        let res = deliveries(pending).await;
        acked.extend(phase.iter().zip(&res).filter_map(|(s, r)| r.as_ref().ok().map(|(p, o)| (*s, *p, *o))));
        seq += 3000;
        drop(p);
    }

    check!("final restart: the moves resume and complete; one copy of each partition");
    let overrides = [("log.dirs", both.as_str()), ("log.segment.bytes", "32768")];
    let broker = ExternalBroker::start(BIN, &data, &overrides);
    let addr: SocketAddr = broker.bootstrap().parse().unwrap();
    let n = verify(&broker.bootstrap(), &topic, PARTS, &acked);
    check!("{} acknowledged of {n} records present", acked.len());
    let deadline = Instant::now() + Duration::from_secs(30);
    let final_place = loop {
        let now = placement(addr, &topic);
        if now.values().all(|c| c.len() == 1 && !c[0].1) {
            break now;
        }
        assert!(Instant::now() < deadline, "moves did not settle: {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    for (part, copies) in &final_place {
        let name = format!("{topic}-{part}");
        let here: Vec<String> = on_disk(&copies[0].0, &topic).into_iter().filter(|n| n.starts_with(&name)).collect();
        let there: Vec<String> =
            on_disk(&other(&dirs, &copies[0].0), &topic).into_iter().filter(|n| n.starts_with(&name)).collect();
        assert_eq!(here, vec![name.clone()], "partition dir where DescribeLogDirs says");
        assert!(there.is_empty(), "nothing left in the other dir: {there:?}");
    }
    wait_moved(addr, &topic, 1, &final_place[&0][0].0, Duration::from_secs(1));
    let log = broker.log_path.clone();
    let status = broker.terminate();
    assert!(status.success(), "{}", std::fs::read_to_string(log).unwrap_or_default());
}
