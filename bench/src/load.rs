//! The load itself: librdkafka producers and consumers (through the `rdkafka` crate) in this
//! process, in the manner of `rdkafka_performance` and `kafka-producer-perf-test`.
//!
//! Every record's value starts with a 16-byte header — the send time in microseconds since
//! [`clock_us`]'s epoch and a sequence number — followed by filler of random uppercase letters (as
//! Kafka's perf tool does, so compression has something realistic to chew on). Producers and
//! consumers share the process, hence the clock: end-to-end latency is consumer receive time
//! minus that send time. Produce (delivery) latency is delivery-report time minus send time,
//! carried as the delivery opaque.
//!
//! Threads: each producer is a `ThreadedProducer` fed by its own thread; each consumer is a
//! `BaseConsumer` polled by its own thread. Histograms are merged at the end, so the hot loops
//! take no shared lock except the producer's delivery callback (one librdkafka thread per
//! producer touches it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;

/// Bytes of the header every record value starts with: send time (µs) and sequence number.
pub const RECORD_HEADER_BYTES: usize = 16;

/// Microseconds since the first call in this process: the one clock producers and consumers share.
pub fn clock_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// A histogram of latencies in microseconds, up to an hour, three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 1 h at 3 significant digits cannot fail to construct.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid")
}

/// p50/p99/p99.9/max of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Self {
            count: h.len(),
            p50_ms: h.value_at_quantile(0.50) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            p999_ms: h.value_at_quantile(0.999) as f64 / 1000.0,
            max_ms: h.max() as f64 / 1000.0,
        })
    }
}

/// How records are spread over partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Keys {
    /// No key; librdkafka's default partitioner (sticky for keyless records).
    None,
    /// Record `i` carries key `i` and goes to partition `i % partitions`.
    RoundRobin,
}

/// What the producers do.
#[derive(Debug, Clone, Serialize)]
pub struct ProduceSpec {
    pub topic: String,
    pub partitions: i32,
    /// Records in total, over all producers.
    pub records: u64,
    pub record_bytes: usize,
    /// `acks`: "all", "1" or "0".
    pub acks: String,
    /// `compression.type`: none, lz4, zstd, snappy, gzip.
    pub compression: String,
    pub linger_ms: u32,
    /// `batch.size` in bytes.
    pub batch_bytes: usize,
    /// Records per second over all producers; `None` is unthrottled.
    pub rate: Option<f64>,
    pub keys: Keys,
    pub producers: usize,
}

/// What the producers saw.
#[derive(Debug, Clone)]
pub struct ProduceOutcome {
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    /// First send to last delivery report.
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

/// Delivery callback state shared with librdkafka's polling thread.
struct DeliveryStats {
    latency: Mutex<Histogram<u64>>,
    delivered: AtomicU64,
    failed: AtomicU64,
    last_delivery_us: AtomicU64,
    first_error: Mutex<Option<String>>,
}

struct BenchContext(Arc<DeliveryStats>);

impl ClientContext for BenchContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_to_stderr(level, fac, message);
    }
}

/// librdkafka's own log lines (`log_level` 3: errors) on stderr: the `log` crate has no logger
/// installed in this tool.
fn log_to_stderr(level: RDKafkaLogLevel, fac: &str, message: &str) {
    eprintln!("librdkafka {level:?} {fac}: {message}");
}

/// The consumer's context: only for its log lines.
struct ConsumerLog;

impl ClientContext for ConsumerLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_to_stderr(level, fac, message);
    }
}

impl ConsumerContext for ConsumerLog {}

impl ProducerContext for BenchContext {
    /// Send time in µs ([`clock_us`]).
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_us: usize) {
        let now = clock_us();
        let stats = &self.0;
        match result {
            Ok(_) => {
                let _ = stats
                    .latency
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(now.saturating_sub(sent_us as u64).max(1));
                stats.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                stats.first_error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| e.to_string());
            }
        }
        stats.last_delivery_us.fetch_max(now, Ordering::Relaxed);
    }
}

/// librdkafka settings common to every client of a run.
fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        // Both brokers listen on 127.0.0.1; do not let `localhost` resolve to ::1.
        .set("broker.address.family", "v4")
        .set("log_level", "3");
    c
}

fn producer_config(bootstrap: &str, spec: &ProduceSpec) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("acks", &spec.acks)
        .set("compression.type", &spec.compression)
        .set("linger.ms", spec.linger_ms.to_string())
        .set("batch.size", spec.batch_bytes.to_string())
        // Sluice has no InitProducerId yet, and the baseline none at all.
        .set("enable.idempotence", "false")
        // Enough queue for a burst of a second or so of the fastest workload; the send loop
        // backs off on QueueFull rather than failing.
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "120000");
    c
}

/// Filler for record values: random uppercase letters (Kafka's perf tool does the same).
fn filler(len: usize) -> Vec<u8> {
    // xorshift: reproducible, no dependency, good enough for a payload.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'A' + (x % 26) as u8
        })
        .collect()
}

/// Runs `spec.producers` producer threads to completion (every record delivered or failed).
pub fn produce(bootstrap: &str, spec: &ProduceSpec) -> anyhow::Result<ProduceOutcome> {
    anyhow::ensure!(spec.record_bytes >= RECORD_HEADER_BYTES, "records must be at least {RECORD_HEADER_BYTES} bytes");
    let producers = spec.producers.max(1);
    let stats = Arc::new(DeliveryStats {
        latency: Mutex::new(new_histogram()),
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        last_delivery_us: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    // Twice the record size so each record can take a different window of it.
    let template = Arc::new(filler(spec.record_bytes * 2));
    let start_us = clock_us();
    let sent = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for t in 0..producers {
        let producer: ThreadedProducer<BenchContext> = producer_config(bootstrap, spec)
            .create_with_context(BenchContext(stats.clone()))
            .context("creating producer")?;
        let spec = spec.clone();
        let template = template.clone();
        let sent = sent.clone();
        threads.push(std::thread::Builder::new().name(format!("bench-producer-{t}")).spawn(move || {
            // Thread t sends records t, t + producers, t + 2 * producers, ...
            let mine = (spec.records + (producers - 1 - t) as u64) / producers as u64;
            let per_thread_rate = spec.rate.map(|r| r / producers as f64);
            let mut value = vec![0u8; spec.record_bytes];
            let mut key = String::new();
            for n in 0..mine {
                let seq = n * producers as u64 + t as u64;
                if let Some(rate) = per_thread_rate {
                    // Absolute schedule: a late thread catches up in a burst instead of drifting.
                    let due_us = start_us + (n as f64 * 1e6 / rate) as u64;
                    let now = clock_us();
                    if due_us > now + 200 {
                        std::thread::sleep(Duration::from_micros(due_us - now));
                    }
                }
                let window = (seq as usize * 7) % spec.record_bytes;
                value[RECORD_HEADER_BYTES..]
                    .copy_from_slice(&template[window..window + spec.record_bytes - RECORD_HEADER_BYTES]);
                value[8..16].copy_from_slice(&seq.to_be_bytes());
                key.clear();
                loop {
                    let sent_us = clock_us();
                    value[0..8].copy_from_slice(&sent_us.to_be_bytes());
                    let mut record = BaseRecord::with_opaque_to(&spec.topic, sent_us as usize).payload(&value[..]);
                    if spec.keys == Keys::RoundRobin {
                        use std::fmt::Write;
                        if key.is_empty() {
                            let _ = write!(key, "{seq}");
                        }
                        record = record.key(key.as_bytes()).partition((seq % spec.partitions.max(1) as u64) as i32);
                    }
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                            // librdkafka's queue is full: let its threads drain it.
                            std::thread::sleep(Duration::from_micros(500));
                        }
                        Err((e, _)) => return Err(anyhow::anyhow!("produce failed: {e}")),
                    }
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            producer.flush(Duration::from_secs(300)).context("flushing producer")?;
            Ok(())
        })?);
    }
    let mut first_thread_error = None;
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_thread_error.get_or_insert(e.to_string());
            }
            Err(_) => {
                first_thread_error.get_or_insert("producer thread panicked".to_string());
            }
        }
    }
    let last = stats.last_delivery_us.load(Ordering::Relaxed).max(start_us + 1);
    let latency = std::mem::replace(&mut *stats.latency.lock().unwrap_or_else(|e| e.into_inner()), new_histogram());
    let first_error = stats.first_error.lock().unwrap_or_else(|e| e.into_inner()).clone().or(first_thread_error);
    Ok(ProduceOutcome {
        sent: sent.load(Ordering::Relaxed),
        delivered: stats.delivered.load(Ordering::Relaxed),
        failed: stats.failed.load(Ordering::Relaxed),
        first_error,
        elapsed: Duration::from_micros(last - start_us),
        latency,
    })
}

/// What a consumer reads.
#[derive(Debug, Clone)]
pub struct ConsumeSpec {
    pub topic: String,
    pub partitions: i32,
    /// Stop after this many records.
    pub expected: u64,
    /// Record end-to-end latency (only meaningful while the records are being produced).
    pub end_to_end: bool,
    /// Give up after this long without a record.
    pub idle_timeout: Duration,
}

/// What the consumer saw.
#[derive(Debug, Clone)]
pub struct ConsumeOutcome {
    pub records: u64,
    pub value_bytes: u64,
    /// Records whose value did not start with a plausible header (should be zero).
    pub malformed: u64,
    pub error: Option<String>,
    /// Start of reading (after the warm-up) to the last record.
    pub elapsed: Duration,
    pub end_to_end: Histogram<u64>,
}

/// A consumer thread; [`Consuming::ready`] tells when it is fetching.
pub struct Consuming {
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<ConsumeOutcome>>,
}

impl Consuming {
    /// Blocks until the consumer has been fetching for its warm-up period (or failed).
    pub fn wait_ready(&self) {
        while !self.ready.load(Ordering::Acquire) && !self.thread.is_finished() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the consumer to reach its expected count (or its idle timeout).
    pub fn join(self) -> anyhow::Result<ConsumeOutcome> {
        self.thread.join().map_err(|_| anyhow::anyhow!("consumer thread panicked"))?
    }

    /// Asks the consumer to stop early (e.g. the producers failed), then joins it.
    pub fn stop(self) -> anyhow::Result<ConsumeOutcome> {
        self.stop.store(true, Ordering::Release);
        self.join()
    }
}

/// Starts a consumer reading every partition of `spec.topic` from offset 0, by manual assignment:
/// Sluice has no group coordinator yet, so neither mode uses consumer groups.
pub fn start_consumer(bootstrap: &str, spec: ConsumeSpec, warm_up: Duration) -> anyhow::Result<Consuming> {
    let mut c = client_config(bootstrap);
    c.set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // librdkafka refuses assign() without a group id; nothing is ever committed to it.
        .set("group.id", format!("sluice-bench-{}", clock_us()));
    let consumer: BaseConsumer<ConsumerLog> = c.create_with_context(ConsumerLog).context("creating consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..spec.partitions {
        // An explicit offset, not Offset::Beginning: no ListOffsets round trip before fetching.
        tpl.add_partition_offset(&spec.topic, p, Offset::Offset(0))?;
    }
    consumer.assign(&tpl).context("assigning partitions")?;
    let ready = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (ready2, stop2) = (ready.clone(), stop.clone());
    let thread = std::thread::Builder::new().name("bench-consumer".into()).spawn(move || {
        let mut out = ConsumeOutcome {
            records: 0,
            value_bytes: 0,
            malformed: 0,
            error: None,
            elapsed: Duration::ZERO,
            end_to_end: new_histogram(),
        };
        // Warm-up: connections, metadata and the first (long-poll) fetches are in place before
        // anything is produced, so end-to-end latency does not include client start-up.
        let warm_until = Instant::now() + warm_up;
        let mut pending = None;
        while Instant::now() < warm_until && pending.is_none() {
            pending = consumer.poll(Duration::from_millis(20)).map(|r| r.map(|m| m.detach()));
        }
        ready2.store(true, Ordering::Release);
        let start = Instant::now();
        let mut last_record = start;
        let handle = |payload: Option<&[u8]>, out: &mut ConsumeOutcome| {
            let now = clock_us();
            out.records += 1;
            match payload {
                Some(v) if v.len() >= RECORD_HEADER_BYTES => {
                    out.value_bytes += v.len() as u64;
                    if spec.end_to_end {
                        let sent = u64::from_be_bytes(v[0..8].try_into().unwrap_or_default());
                        let _ = out.end_to_end.record(now.saturating_sub(sent).max(1));
                    }
                }
                _ => out.malformed += 1,
            }
        };
        if let Some(first) = pending {
            match first {
                Ok(m) => handle(m.payload(), &mut out),
                Err(e) => out.error = Some(e.to_string()),
            }
        }
        while out.records < spec.expected && !stop2.load(Ordering::Acquire) {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    handle(m.payload(), &mut out);
                    last_record = Instant::now();
                }
                Some(Err(e)) => {
                    out.error.get_or_insert_with(|| e.to_string());
                }
                None if last_record.elapsed() > spec.idle_timeout => {
                    out.error.get_or_insert_with(|| format!("no record for {:?}", spec.idle_timeout));
                    break;
                }
                None => {}
            }
        }
        out.elapsed = last_record.duration_since(start);
        Ok(out)
    })?;
    Ok(Consuming { ready, stop, thread })
}

/// CPU seconds this process (the load generator) has used so far.
pub fn own_cpu_seconds() -> f64 {
    crate::proc_stats::sample(std::process::id()).map(|s| s.cpu_seconds).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_is_uppercase_and_varied() {
        let f = filler(1000);
        assert!(f.iter().all(u8::is_ascii_uppercase));
        assert!(f.iter().collect::<std::collections::HashSet<_>>().len() > 20);
    }

    #[test]
    fn latency_summary_in_ms() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).expect("in range");
        }
        let s = LatencySummary::of(&h).expect("non-empty");
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.max_ms - 1000.0).abs() < 1.0, "{s:?}");
        assert!(LatencySummary::of(&new_histogram()).is_none());
    }
}
