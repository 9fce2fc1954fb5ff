//! Smoke test: one very small workload against the null broker, run as a process exactly as the
//! benchmark runs it. Checks the counting, not the speed: every record sent is acknowledged,
//! read back by the tailing consumer and again by a fresh consumer from offset 0. Takes a few
//! seconds; the real benchmark is never run by CI.

use std::time::{Duration, Instant};

use sluice_bench::broker_proc::{free_port, BrokerKind, BrokerProcess};
use sluice_bench::load::{Keys, ProduceSpec};
use sluice_bench::workloads::{measure_consume, measure_produce};

#[test]
fn tiny_workload_against_the_null_broker_counts_every_record() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_sluice-null-broker"));
    let mut broker = BrokerProcess::start(BrokerKind::Null, &bin, &dir.path().join("null"), free_port().expect("port"))
        .expect("start");
    let spec = ProduceSpec {
        topic: "smoke".into(),
        partitions: 3,
        records: 5_000,
        record_bytes: 200,
        acks: "all".into(),
        compression: "lz4".into(),
        linger_ms: 5,
        batch_bytes: 64 * 1024,
        rate: None,
        keys: Keys::RoundRobin,
        producers: 2,
    };
    let produced = measure_produce(&broker.target(), "smoke", "smoke", &spec, true).expect("produce run");
    assert!(produced.errors.is_empty(), "errors: {:?}", produced.errors);
    assert_eq!(produced.records, spec.records, "acknowledged");
    assert_eq!(produced.consumed, Some(spec.records), "read back while producing");
    assert_eq!(produced.value_bytes, spec.records * spec.record_bytes as u64);
    let e2e = produced.end_to_end_latency.expect("end-to-end latency recorded");
    assert_eq!(e2e.count, spec.records, "one latency sample per consumed record");
    assert_eq!(produced.produce_latency.expect("delivery latency").count, spec.records);
    assert!(produced.broker_peak_rss_mib > 0.0, "broker RSS read from /proc");

    let consumed = measure_consume(&broker.target(), "smoke-read", "smoke", &spec, spec.records).expect("consume run");
    assert!(consumed.errors.is_empty(), "errors: {:?}", consumed.errors);
    assert_eq!(consumed.records, spec.records, "read again from offset 0");
    broker.stop().expect("stop");
    assert!(started.elapsed() < Duration::from_secs(10), "smoke test took {:?}", started.elapsed());
}
