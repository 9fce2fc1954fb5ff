//! The standard workloads and how one is measured against one broker process.
//!
//! | id | what | full scale (`--scale 1`) |
//! |----|------|--------------------------|
//! | W1 | throughput: 1 KiB records, 8 partitions, acks=all, no compression | 2 GiB |
//! | W2 | small records: 100 B, 1 partition, acks=1 | 10 M records |
//! | W3 | consume W1's topic from the beginning (same broker process, right after W1) | W1's records |
//! | W4 | latency: W1's shape at a fixed 50 MiB/s | 60 s |
//! | W5 | many partitions: 2,000 partitions, 100 B records, round-robin keys, acks=all; then a clean shutdown and the restart time | 2 M records |
//! | W6 | W1 with lz4, and with zstd | 2 GiB each |
//!
//! Every produce workload runs a consumer alongside that tails the topic from offset 0, so each
//! row has end-to-end latency and a check that every delivered record was read back. For the
//! unthrottled workloads that latency is mostly client-side queueing (the producer runs ahead of
//! the broker by design); W4 is the one that measures latency at a sustainable rate.
//!
//! Each workload gets a fresh broker process and data dir per broker kind, run back to back
//! (Sluice, then the baseline), so the ratio of the two compares runs under the same machine load.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::broker_proc::{create_topic, free_port, BrokerKind, BrokerProcess, Target};
use crate::load::{self, ConsumeSpec, Keys, LatencySummary, ProduceSpec};
use crate::proc_stats;

/// One workload's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
pub enum WorkloadId {
    W1,
    W2,
    W3,
    W4,
    W5,
    W6,
}

/// Knobs shared by every workload of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunOptions {
    pub scale: f64,
    pub producers: usize,
    pub linger_ms: u32,
    pub batch_bytes: usize,
    /// Run a consumer alongside every produce workload (end-to-end latency, read-back check).
    pub tail: bool,
    #[serde(skip)]
    pub sluice_bin: PathBuf,
    #[serde(skip)]
    pub null_bin: PathBuf,
    #[serde(skip)]
    pub work_dir: PathBuf,
}

/// One workload against one broker.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub workload: String,
    pub description: String,
    pub broker: BrokerKind,
    /// Records produced and acknowledged (for W3: records consumed).
    pub records: u64,
    /// Record value bytes moved.
    pub value_bytes: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
    pub mib_per_sec: f64,
    pub produce_latency: Option<LatencySummary>,
    pub end_to_end_latency: Option<LatencySummary>,
    /// Records the tailing consumer read (must equal `records`).
    pub consumed: Option<u64>,
    pub broker_peak_rss_mib: f64,
    pub broker_rss_mib: f64,
    pub broker_cpu_seconds: f64,
    /// CPU of the load generator (producers + consumer) during the workload.
    pub client_cpu_seconds: f64,
    /// Creating the workload's topic (CreateTopics until Metadata lists it).
    pub create_topic_ms: Option<f64>,
    /// W5: process spawn until Metadata lists the topic, after a clean shutdown.
    pub restart_ms: Option<f64>,
    pub errors: Vec<String>,
}

const MIB: f64 = 1024.0 * 1024.0;

fn scaled(full: f64, scale: f64) -> u64 {
    ((full * scale).round() as u64).max(1)
}

/// Records of W1's shape at `scale`.
fn w1_records(scale: f64) -> u64 {
    scaled(2.0 * 1024.0 * 1024.0, scale) // 2 GiB of 1 KiB records
}

fn base_spec(opts: &RunOptions, topic: &str) -> ProduceSpec {
    ProduceSpec {
        topic: topic.to_string(),
        partitions: 8,
        records: w1_records(opts.scale),
        record_bytes: 1024,
        acks: "all".into(),
        compression: "none".into(),
        linger_ms: opts.linger_ms,
        batch_bytes: opts.batch_bytes,
        rate: None,
        keys: Keys::None,
        producers: opts.producers,
    }
}

/// Runs the selected workloads for each broker kind; results in run order.
pub fn run_workloads(
    opts: &RunOptions,
    selected: &[WorkloadId],
    brokers: &[BrokerKind],
    progress: &mut dyn FnMut(&RunResult),
) -> anyhow::Result<Vec<RunResult>> {
    let mut results = Vec::new();
    let mut push = |r: RunResult, results: &mut Vec<RunResult>| {
        progress(&r);
        results.push(r);
    };
    let has = |w: WorkloadId| selected.contains(&w);
    let s = opts.scale;
    // W1 and W3 share a broker: W3 reads what W1 wrote.
    if has(WorkloadId::W1) || has(WorkloadId::W3) {
        for &kind in brokers {
            let broker = start_broker(opts, kind, "w1")?;
            let spec = base_spec(opts, "bench-w1");
            let mut r =
                measure_produce(&broker.target(), "W1", "1 KiB, 8 partitions, acks=all, none", &spec, opts.tail)?;
            let produced = r.records;
            if !has(WorkloadId::W1) {
                r.workload = "W1 (setup for W3)".into();
            }
            push(r, &mut results);
            if has(WorkloadId::W3) {
                let r = measure_consume(&broker.target(), "W3", "consume W1's topic from offset 0", &spec, produced)?;
                push(r, &mut results);
            }
            finish_broker(broker)?;
        }
    }
    if has(WorkloadId::W2) {
        for &kind in brokers {
            let broker = start_broker(opts, kind, "w2")?;
            let spec = ProduceSpec {
                partitions: 1,
                records: scaled(10_000_000.0, s),
                record_bytes: 100,
                acks: "1".into(),
                ..base_spec(opts, "bench-w2")
            };
            let r = measure_produce(&broker.target(), "W2", "100 B, 1 partition, acks=1", &spec, opts.tail)?;
            push(r, &mut results);
            finish_broker(broker)?;
        }
    }
    if has(WorkloadId::W4) {
        for &kind in brokers {
            let broker = start_broker(opts, kind, "w4")?;
            let rate = 50.0 * MIB / 1024.0; // 50 MiB/s of 1 KiB records
            let seconds = 60.0 * s;
            let spec =
                ProduceSpec { records: scaled(rate * seconds, 1.0), rate: Some(rate), ..base_spec(opts, "bench-w4") };
            let r = measure_produce(&broker.target(), "W4", "W1 at a fixed 50 MiB/s", &spec, opts.tail)?;
            push(r, &mut results);
            finish_broker(broker)?;
        }
    }
    if has(WorkloadId::W5) {
        for &kind in brokers {
            let mut broker = start_broker(opts, kind, "w5")?;
            let spec = ProduceSpec {
                partitions: 2000,
                records: scaled(2_000_000.0, s),
                record_bytes: 100,
                keys: Keys::RoundRobin,
                ..base_spec(opts, "bench-w5")
            };
            let mut r = measure_produce(
                &broker.target(),
                "W5",
                "100 B, 2000 partitions, round-robin keys, acks=all",
                &spec,
                opts.tail,
            )?;
            let data_dir = broker.data_dir.clone();
            match broker.restart(&spec.topic, spec.partitions) {
                Ok(b) => {
                    r.restart_ms = Some(b.startup.as_secs_f64() * 1000.0);
                    broker = b;
                }
                Err(e) => {
                    r.errors.push(format!("restart: {e:#}"));
                    push(r, &mut results);
                    remove_data(&data_dir);
                    continue;
                }
            }
            push(r, &mut results);
            finish_broker(broker)?;
        }
    }
    if has(WorkloadId::W6) {
        for codec in ["lz4", "zstd"] {
            for &kind in brokers {
                let broker = start_broker(opts, kind, &format!("w6-{codec}"))?;
                let spec = ProduceSpec { compression: codec.into(), ..base_spec(opts, &format!("bench-w6-{codec}")) };
                let id = format!("W6-{codec}");
                let r = measure_produce(&broker.target(), &id, &format!("W1 with {codec}"), &spec, opts.tail)?;
                push(r, &mut results);
                finish_broker(broker)?;
            }
        }
    }
    Ok(results)
}

fn start_broker(opts: &RunOptions, kind: BrokerKind, name: &str) -> anyhow::Result<BrokerProcess> {
    let bin = match kind {
        BrokerKind::Sluice => &opts.sluice_bin,
        BrokerKind::Null => &opts.null_bin,
    };
    let dir = opts.work_dir.join(format!("{name}-{}", kind.name()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    BrokerProcess::start(kind, bin, &dir, free_port()?)
}

/// Stops the broker cleanly and removes its data (the runs of a full benchmark add up to GiBs).
fn finish_broker(mut broker: BrokerProcess) -> anyhow::Result<()> {
    let stopped = broker.stop();
    remove_data(&broker.data_dir);
    stopped
}

/// The broker's RSS and CPU (zeros for an external broker of unknown pid); `reset` first resets
/// the peak RSS so it covers only what follows.
fn broker_sample(broker: &Target, reset: bool) -> anyhow::Result<proc_stats::ProcSample> {
    let Some(pid) = broker.pid else { return Ok(proc_stats::ProcSample::default()) };
    if reset {
        proc_stats::reset_peak(pid);
    }
    Ok(proc_stats::sample(pid)?)
}

fn remove_data(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// Creates the topic, tails it with a consumer (if `tail`) and produces `spec` into it.
pub fn measure_produce(
    broker: &Target,
    id: &str,
    description: &str,
    spec: &ProduceSpec,
    tail: bool,
) -> anyhow::Result<RunResult> {
    let create = create_topic(broker.addr, &spec.topic, spec.partitions)?;
    let before = broker_sample(broker, true)?;
    let client_before = load::own_cpu_seconds();
    let consumer = if tail {
        let c = load::start_consumer(
            &broker.bootstrap(),
            ConsumeSpec {
                topic: spec.topic.clone(),
                partitions: spec.partitions,
                expected: spec.records,
                end_to_end: true,
                idle_timeout: Duration::from_secs(60),
            },
            Duration::from_secs(1),
        )?;
        c.wait_ready();
        Some(c)
    } else {
        None
    };
    let produced = load::produce(&broker.bootstrap(), spec);
    let consumed = match (consumer, &produced) {
        (Some(c), Ok(p)) if p.failed == 0 && p.first_error.is_none() => Some(c.join()?),
        (Some(c), _) => Some(c.stop()?),
        (None, _) => None,
    };
    let produced = produced?;
    let after = broker_sample(broker, false)?;
    let mut errors = Vec::new();
    if let Some(e) = &produced.first_error {
        errors.push(format!("produce: {e} ({} of {} failed)", produced.failed, produced.sent));
    }
    if produced.delivered != spec.records {
        errors.push(format!("delivered {} of {} records", produced.delivered, spec.records));
    }
    if let Some(c) = &consumed {
        if let Some(e) = &c.error {
            errors.push(format!("consume: {e}"));
        }
        if c.records != produced.delivered {
            errors.push(format!("consumed {} records, delivered {}", c.records, produced.delivered));
        }
        if c.malformed > 0 {
            errors.push(format!("{} consumed records had no bench header", c.malformed));
        }
    }
    let seconds = produced.elapsed.as_secs_f64().max(1e-9);
    let value_bytes = produced.delivered * spec.record_bytes as u64;
    Ok(RunResult {
        workload: id.to_string(),
        description: description.to_string(),
        broker: broker.kind,
        records: produced.delivered,
        value_bytes,
        seconds,
        records_per_sec: produced.delivered as f64 / seconds,
        mib_per_sec: value_bytes as f64 / MIB / seconds,
        produce_latency: LatencySummary::of(&produced.latency),
        end_to_end_latency: consumed.as_ref().and_then(|c| LatencySummary::of(&c.end_to_end)),
        consumed: consumed.as_ref().map(|c| c.records),
        broker_peak_rss_mib: after.peak_rss_bytes as f64 / MIB,
        broker_rss_mib: after.rss_bytes as f64 / MIB,
        broker_cpu_seconds: after.cpu_seconds - before.cpu_seconds,
        client_cpu_seconds: load::own_cpu_seconds() - client_before,
        create_topic_ms: Some(create.as_secs_f64() * 1000.0),
        restart_ms: None,
        errors,
    })
}

/// Reads `expected` records of `spec.topic` from offset 0 with a fresh consumer.
pub fn measure_consume(
    broker: &Target,
    id: &str,
    description: &str,
    spec: &ProduceSpec,
    expected: u64,
) -> anyhow::Result<RunResult> {
    let before = broker_sample(broker, true)?;
    let client_before = load::own_cpu_seconds();
    let c = load::start_consumer(
        &broker.bootstrap(),
        ConsumeSpec {
            topic: spec.topic.clone(),
            partitions: spec.partitions,
            expected,
            end_to_end: false,
            idle_timeout: Duration::from_secs(60),
        },
        Duration::ZERO,
    )?;
    let consumed = c.join()?;
    let after = broker_sample(broker, false)?;
    let mut errors = Vec::new();
    if let Some(e) = &consumed.error {
        errors.push(format!("consume: {e}"));
    }
    if consumed.records != expected {
        errors.push(format!("consumed {} of {expected} records", consumed.records));
    }
    let seconds = consumed.elapsed.as_secs_f64().max(1e-9);
    Ok(RunResult {
        workload: id.to_string(),
        description: description.to_string(),
        broker: broker.kind,
        records: consumed.records,
        value_bytes: consumed.value_bytes,
        seconds,
        records_per_sec: consumed.records as f64 / seconds,
        mib_per_sec: consumed.value_bytes as f64 / MIB / seconds,
        produce_latency: None,
        end_to_end_latency: None,
        consumed: Some(consumed.records),
        broker_peak_rss_mib: after.peak_rss_bytes as f64 / MIB,
        broker_rss_mib: after.rss_bytes as f64 / MIB,
        broker_cpu_seconds: after.cpu_seconds - before.cpu_seconds,
        client_cpu_seconds: load::own_cpu_seconds() - client_before,
        create_topic_ms: None,
        restart_ms: None,
        errors,
    })
}
