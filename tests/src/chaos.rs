//! A crash checker in the spirit of Jepsen's Kafka workload: idempotent producers, transactional
//! producers (commit or abort, chosen at random) and `read_committed` consumers run against the
//! broker binary while it is killed with SIGKILL and restarted on the same data dir and port,
//! several times. Every record value is unique (`i<producer>-<seq>` / `t<producer>-<seq>`), and
//! the history of what was sent, acknowledged, committed, aborted and read is checked at the end
//! against a final clean read (`read_committed` and `read_uncommitted`, from offset 0):
//!
//! - lost: an acknowledged record (idempotent delivery ok; a record of a transaction whose
//!   `commit_transaction` returned Ok) is missing, or an idempotent ack's offset holds another
//!   record;
//! - duplicates: a value read twice in the final read;
//! - aborted_read: a record of an aborted transaction (`abort_transaction` returned Ok, or the
//!   transaction was never asked to commit) read by a `read_committed` consumer, during the run
//!   or in the final read;
//! - order_violations: an idempotent producer's acknowledged records of a partition (or a
//!   transactional producer's committed ones) are not in increasing sequence order;
//! - partial_txns: a committed transaction, or one whose outcome is unknown (commit call failed
//!   while the broker died), is only partly visible;
//! - inconsistent: the same (partition, offset) read with different values (during the run vs.
//!   the final read, or `read_committed` vs. `read_uncommitted`), or a value nobody sent;
//! - zombie_commits: a producer fenced by a newer one with the same transactional.id (about 1
//!   transaction in 12 is left open while a new producer runs `init_transactions`) managed to
//!   commit.
//!
//! The transactional producers are librdkafka's (transactions v1: AddPartitionsToTxn, EndTxn up
//! to v4) and, beside them, transactions-v2 producers speaking the protocol directly
//! ([`v2_worker`]: Produce v12 adds the partitions, EndTxn v5 bumps the epoch at every commit and
//! abort), whose transactions the same checks cover.
//!
//! Size is set by [`ChaosConfig::from_env`]: `SLUICE_CHAOS_CYCLES` (kill/restart cycles, default
//! 3), `SLUICE_CHAOS_SECONDS` (seconds of load per cycle, default 4), `SLUICE_CHAOS_V2_PRODUCERS`
//! (default 1), `SLUICE_CHAOS_SEED`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};

use sluice_testkit::broker::Startup;

use crate::{consume_to_end, consumer, deliveries, enqueue, Consumed, ExternalBroker, TestRecord, WAIT};

/// Workload size and shape.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Kill -9 / restart cycles.
    pub cycles: u32,
    /// Load time before each kill.
    pub seconds_per_cycle: f64,
    pub idempotent_producers: usize,
    pub transactional_producers: usize,
    /// Transactions-v2 producers ([`v2_worker`]).
    pub v2_producers: usize,
    pub consumers: usize,
    pub partitions: i32,
    pub seed: u64,
}

impl ChaosConfig {
    /// Defaults (a CI-sized run) overridden by `SLUICE_CHAOS_CYCLES`, `SLUICE_CHAOS_SECONDS`,
    /// `SLUICE_CHAOS_SEED`.
    pub fn from_env() -> ChaosConfig {
        fn env<T: std::str::FromStr>(k: &str) -> Option<T> {
            std::env::var(k).ok().and_then(|v| v.trim().parse().ok())
        }
        let seed = env("SLUICE_CHAOS_SEED").unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
        });
        ChaosConfig {
            cycles: env("SLUICE_CHAOS_CYCLES").unwrap_or(3),
            seconds_per_cycle: env("SLUICE_CHAOS_SECONDS").unwrap_or(4.0),
            idempotent_producers: 2,
            transactional_producers: 3,
            v2_producers: env("SLUICE_CHAOS_V2_PRODUCERS").unwrap_or(1),
            consumers: 2,
            partitions: 3,
            seed,
        }
    }
}

/// xorshift64*: enough randomness for choosing aborts and sizes, reproducible from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

// ---------------------------------------------------------------------------------------------
// The broker process, always on the same port and data dir
// ---------------------------------------------------------------------------------------------

/// The broker binary as a child process that can be killed and restarted on the same data dir
/// and port (clients keep their bootstrap address across restarts).
pub struct CrashableBroker {
    binary: String,
    data_dir: PathBuf,
    port: u16,
    overrides: Vec<(String, String)>,
    starts: u32,
    current: Option<ExternalBroker>,
}

impl CrashableBroker {
    pub fn start(binary: &str, data_dir: &Path, overrides: &[(&str, &str)]) -> CrashableBroker {
        let mut b = CrashableBroker {
            binary: binary.to_string(),
            data_dir: data_dir.to_path_buf(),
            port: crate::free_port(),
            overrides: overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            starts: 0,
            current: None,
        };
        b.restart();
        b
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn is_up(&self) -> bool {
        self.current.is_some()
    }

    /// SIGKILL (no clean shutdown) and reap.
    pub fn kill9(&mut self) {
        if let Some(b) = self.current.take() {
            b.kill9();
        }
    }

    /// Starts the broker (again) on the same port and data dir; retries while the port is not
    /// yet bindable. Panics with the log if it cannot start.
    pub fn restart(&mut self) {
        assert!(self.current.is_none(), "restart while running");
        let deadline = Instant::now() + WAIT * 2;
        loop {
            self.starts += 1;
            let log_path = self.data_dir.with_extension(format!("broker-{}-{}.log", self.port, self.starts));
            let overrides: Vec<(&str, &str)> = self.overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut b = ExternalBroker::spawn(&self.binary, &self.data_dir, self.port, &overrides, log_path);
            match b.wait_listening(deadline) {
                Startup::Listening => {
                    self.current = Some(b);
                    return;
                }
                Startup::Exited(status) => {
                    assert!(
                        Instant::now() < deadline,
                        "broker exited during startup with {status} (start #{}); log:\n{}",
                        self.starts,
                        b.log()
                    );
                    // Most likely the port is still held; try again shortly.
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Log of the running broker process (empty if down).
    pub fn log(&self) -> String {
        self.current.as_ref().map(ExternalBroker::log).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Still running (only while the workload runs).
    Pending,
    /// `commit_transaction` returned Ok.
    Committed,
    /// `abort_transaction` returned Ok, or commit was never attempted.
    Aborted,
    /// Commit was attempted but its result is unknown (error, broker died).
    Unknown,
}

#[derive(Debug, Clone)]
pub struct TxnInfo {
    pub producer: usize,
    /// Run by a transactions-v2 producer.
    pub v2: bool,
    pub number: u64,
    /// (value, partition, seq)
    pub records: Vec<(String, i32, u64)>,
    pub outcome: TxnOutcome,
    /// What happened (errors seen on the way), for reports.
    pub note: String,
}

#[derive(Debug, Clone, Copy)]
enum Origin {
    Idempotent { producer: usize, seq: u64, partition: i32 },
    Txn { index: usize },
}

#[derive(Default)]
struct History {
    origin: HashMap<String, Origin>,
    /// Idempotent acks: value → (partition, offset).
    idem_acked: HashMap<String, (i32, i64)>,
    idem_failed: u64,
    idem_recreated: u64,
    txns: Vec<TxnInfo>,
    txn_recreated: u64,
    /// Transactions whose producer was fenced by a new one (see [`zombie`]).
    zombies: u64,
    /// ... and whose zombie commit returned Ok (a violation).
    zombie_commits: Vec<usize>,
    /// (partition, offset) → value, as first read by a read_committed consumer during the run.
    run_reads: HashMap<(i32, i64), String>,
    run_read_values: HashSet<String>,
    run_reads_total: u64,
    /// Reads of one offset that returned another value than an earlier read.
    run_inconsistent: Vec<String>,
    consumer_errors: u64,
}

/// What the checker found.
#[derive(Debug, Default, Clone)]
pub struct ChaosReport {
    pub cycles: u32,
    pub seed: u64,
    pub sent: u64,
    pub acked: u64,
    pub idem_acked: u64,
    pub idem_failed: u64,
    pub committed_txns: u64,
    /// Of which by transactions-v2 producers.
    pub v2_committed_txns: u64,
    pub aborted_txns: u64,
    pub unknown_txns: u64,
    pub unknown_txns_visible: u64,
    pub producers_recreated: u64,
    pub fenced_zombies: u64,
    pub zombie_commits: u64,
    pub run_reads: u64,
    pub consumer_errors: u64,
    /// Records in the final read_committed / read_uncommitted reads.
    pub read: u64,
    pub read_uncommitted: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub aborted_read: u64,
    pub order_violations: u64,
    pub partial_txns: u64,
    pub inconsistent: u64,
    /// How transactions that hit errors ended: (outcome + error notes, digits elided) → count.
    pub txn_notes: BTreeMap<String, u64>,
    /// One line per violation (capped), with values, partitions and offsets.
    pub details: Vec<String>,
}

impl ChaosReport {
    pub fn summary(&self) -> String {
        format!(
            "chaos: cycles={} seed={} sent={} acked={} (idempotent={} failed={}) committed_txns={} (v2={}) aborted_txns={} \
             unknown_txns={} (visible={}) recreated_producers={} fenced_zombies={} zombie_commits={} run_reads={} consumer_errors={} read={} \
             read_uncommitted={} lost={} duplicates={} aborted_read={} order_violations={} partial_txns={} inconsistent={}",
            self.cycles,
            self.seed,
            self.sent,
            self.acked,
            self.idem_acked,
            self.idem_failed,
            self.committed_txns,
            self.v2_committed_txns,
            self.aborted_txns,
            self.unknown_txns,
            self.unknown_txns_visible,
            self.producers_recreated,
            self.fenced_zombies,
            self.zombie_commits,
            self.run_reads,
            self.consumer_errors,
            self.read,
            self.read_uncommitted,
            self.lost,
            self.duplicates,
            self.aborted_read,
            self.order_violations,
            self.partial_txns,
            self.inconsistent
        )
    }

    /// True when no check failed.
    pub fn ok(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.aborted_read == 0
            && self.order_violations == 0
            && self.partial_txns == 0
            && self.inconsistent == 0
            && self.zombie_commits == 0
    }

    fn violation(&mut self, line: String) {
        if self.details.len() < 200 {
            self.details.push(line);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------------

struct Ctx {
    bootstrap: String,
    topic: String,
    partitions: i32,
    stop: AtomicBool,
    history: Mutex<History>,
    sent: AtomicU64,
}

impl Ctx {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
    fn hist(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn idempotent_producer(ctx: &Ctx) -> FutureProducer {
    crate::producer(
        &ctx.bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("max.in.flight.requests.per.connection", "5"),
            ("linger.ms", "2"),
            ("batch.num.messages", "10"),
            ("message.timeout.ms", "15000"),
            ("retry.backoff.ms", "50"),
            ("reconnect.backoff.ms", "50"),
            ("reconnect.backoff.max.ms", "500"),
        ],
    )
}

fn idempotent_worker(ctx: &Ctx, id: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut producer = idempotent_producer(ctx);
    let mut seq = 0u64;
    while !ctx.stopped() {
        let n = 5 + rng.below(20) as usize;
        let mut batch = Vec::with_capacity(n);
        {
            let mut h = ctx.hist();
            for _ in 0..n {
                seq += 1;
                let partition = rng.below(ctx.partitions as u64) as i32;
                let value = format!("i{id}-{seq:09}");
                h.origin.insert(value.clone(), Origin::Idempotent { producer: id, seq, partition });
                batch.push(TestRecord::value(value).to_partition(partition));
            }
        }
        ctx.sent.fetch_add(n as u64, Ordering::Relaxed);
        let results = futures::executor::block_on(deliveries(enqueue(&producer, &ctx.topic, &batch)));
        {
            let mut h = ctx.hist();
            for (r, res) in batch.iter().zip(results) {
                let value = String::from_utf8(r.value.clone().unwrap_or_default()).expect("utf8");
                match res {
                    Ok((p, o)) => {
                        h.idem_acked.insert(value, (p, o));
                    }
                    Err(_) => h.idem_failed += 1,
                }
            }
        }
        if let Some(fatal) = producer.client().fatal_error() {
            println!("[chaos] idempotent producer {id}: fatal error {fatal:?}; recreating");
            drop(producer);
            producer = idempotent_producer(ctx);
            ctx.hist().idem_recreated += 1;
        }
        std::thread::sleep(Duration::from_millis(rng.below(20)));
    }
}

fn transactional_producer(ctx: &Ctx, id: usize) -> FutureProducer {
    let tid = format!("{}-txn-{id}", ctx.topic);
    crate::producer(
        &ctx.bootstrap,
        &[
            ("transactional.id", tid.as_str()),
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("max.in.flight.requests.per.connection", "5"),
            ("linger.ms", "2"),
            ("message.timeout.ms", "10000"),
            ("transaction.timeout.ms", "20000"),
            ("retry.backoff.ms", "50"),
            ("reconnect.backoff.ms", "50"),
            ("reconnect.backoff.max.ms", "500"),
        ],
    )
}

/// Creates a producer for transactional id `id` and runs `init_transactions` until it succeeds
/// (recreating the producer after fatal errors) or `deadline` passes.
fn init_transactional(ctx: &Ctx, id: usize, deadline: Instant) -> Option<FutureProducer> {
    loop {
        let p = transactional_producer(ctx, id);
        loop {
            match p.init_transactions(Duration::from_secs(10)) {
                Ok(()) => return Some(p),
                Err(e) => {
                    if Instant::now() > deadline {
                        println!("[chaos] txn producer {id}: init_transactions still failing at the deadline: {e}");
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    if !retriable(&e) {
                        break; // recreate
                    }
                }
            }
        }
    }
}

fn retriable(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(t) => t.is_retriable() && !t.is_fatal(),
        _ => false,
    }
}

fn requires_abort(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.txn_requires_abort() && !t.is_fatal())
}

fn set_outcome(ctx: &Ctx, index: usize, outcome: TxnOutcome, note: &str) {
    let mut h = ctx.hist();
    let t = &mut h.txns[index];
    t.outcome = outcome;
    if !note.is_empty() {
        if !t.note.is_empty() {
            t.note.push_str("; ");
        }
        t.note.push_str(note);
    }
}

fn transactional_worker(ctx: &Ctx, id: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut producer: Option<FutureProducer> = None;
    let mut seq = 0u64;
    let mut number = 0u64;
    while !ctx.stopped() {
        let p = match producer.take() {
            Some(p) => p,
            None => match init_transactional(ctx, id, Instant::now() + Duration::from_secs(5)) {
                Some(p) => p,
                None => continue,
            },
        };
        if let Err(e) = p.begin_transaction() {
            println!("[chaos] txn producer {id}: begin_transaction: {e}; recreating");
            ctx.hist().txn_recreated += 1;
            continue;
        }
        number += 1;
        let mut records = Vec::new();
        let mut batch = Vec::new();
        for partition in 0..ctx.partitions {
            for _ in 0..1 + rng.below(4) {
                seq += 1;
                let value = format!("t{id}-{seq:09}");
                records.push((value.clone(), partition, seq));
                batch.push(TestRecord::value(value).to_partition(partition));
            }
        }
        let index = {
            let mut h = ctx.hist();
            let index = h.txns.len();
            for (v, _, _) in &records {
                h.origin.insert(v.clone(), Origin::Txn { index });
            }
            h.txns.push(TxnInfo {
                producer: id,
                v2: false,
                number,
                records,
                outcome: TxnOutcome::Pending,
                note: String::new(),
            });
            index
        };
        ctx.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let pending = enqueue(&p, &ctx.topic, &batch);
        let enqueue_failed = pending.iter().any(Result::is_err);
        drop(pending); // commit_transaction flushes; its result covers every record
        std::thread::sleep(Duration::from_millis(rng.below(30)));

        if !enqueue_failed && rng.below(12) == 0 {
            zombie(ctx, id, p, index, &mut seq, &mut producer);
            continue;
        }
        let abort = enqueue_failed || rng.below(4) == 0;
        if abort {
            // Never asked to commit: aborted whatever the abort call says.
            match p.abort_transaction(Duration::from_secs(10)) {
                Ok(()) => {
                    set_outcome(ctx, index, TxnOutcome::Aborted, "");
                    producer = Some(p);
                }
                Err(e) => {
                    set_outcome(ctx, index, TxnOutcome::Aborted, &format!("abort failed: {e}"));
                    ctx.hist().txn_recreated += 1;
                }
            }
            continue;
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            // Short timeouts now and then, so some commits are cut off by a kill.
            let timeout = Duration::from_millis(500 + rng.below(4500));
            match p.commit_transaction(timeout) {
                Ok(()) => {
                    set_outcome(ctx, index, TxnOutcome::Committed, "");
                    producer = Some(p);
                    break;
                }
                Err(e) if requires_abort(&e) => match p.abort_transaction(Duration::from_secs(10)) {
                    Ok(()) => {
                        set_outcome(ctx, index, TxnOutcome::Aborted, &format!("commit: {e}; abort ok"));
                        producer = Some(p);
                        break;
                    }
                    Err(e2) => {
                        set_outcome(ctx, index, TxnOutcome::Unknown, &format!("commit: {e}; abort: {e2}"));
                        ctx.hist().txn_recreated += 1;
                        break;
                    }
                },
                Err(e) if retriable(&e) && attempts < 6 && rng.below(2) == 0 => {
                    set_outcome(ctx, index, TxnOutcome::Pending, &format!("commit retriable: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    set_outcome(ctx, index, TxnOutcome::Unknown, &format!("commit: {e}"));
                    ctx.hist().txn_recreated += 1;
                    break;
                }
            }
        }
    }
    drop(producer);
    // Resolve whatever the last producer left open: a fresh producer with the same
    // transactional.id fences it and completes or aborts its transaction.
    if init_transactional(ctx, id, Instant::now() + Duration::from_secs(60)).is_none() {
        println!("[chaos] txn producer {id}: could not init_transactions after the run");
    }
}

/// The fencing case: while producer `p` has an open transaction (`index`), a new producer with
/// the same transactional.id runs `init_transactions` (which must abort that transaction and
/// fence `p`); the zombie `p` then sends one more record per partition and tries to commit. The
/// commit must fail; the transaction's records (including the zombie's) count as aborted.
fn zombie(ctx: &Ctx, id: usize, p: FutureProducer, index: usize, seq: &mut u64, producer: &mut Option<FutureProducer>) {
    let Some(fresh) = init_transactional(ctx, id, Instant::now() + Duration::from_secs(30)) else {
        // Could not fence (broker unreachable for long): just abandon the zombie.
        set_outcome(ctx, index, TxnOutcome::Aborted, "abandoned (fencing producer failed to init)");
        ctx.hist().txn_recreated += 1;
        return;
    };
    let mut batch = Vec::new();
    {
        let mut h = ctx.hist();
        for partition in 0..ctx.partitions {
            *seq += 1;
            let value = format!("t{id}-{:09}", *seq);
            h.origin.insert(value.clone(), Origin::Txn { index });
            h.txns[index].records.push((value.clone(), partition, *seq));
            batch.push(TestRecord::value(value).to_partition(partition));
        }
    }
    ctx.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
    drop(enqueue(&p, &ctx.topic, &batch));
    match p.commit_transaction(Duration::from_secs(5)) {
        Ok(()) => {
            set_outcome(
                ctx,
                index,
                TxnOutcome::Aborted,
                "ZOMBIE COMMIT RETURNED OK after a new producer was initialised",
            );
            ctx.hist().zombie_commits.push(index);
        }
        Err(e) => set_outcome(ctx, index, TxnOutcome::Aborted, &format!("fenced; zombie commit: {e}")),
    }
    drop(p);
    let mut h = ctx.hist();
    h.txn_recreated += 1;
    h.zombies += 1;
    *producer = Some(fresh);
}

/// A transactions-v2 producer over the raw protocol (what Kafka 4.x's Java client does with
/// `transaction.version` 2): InitProducerId, Produce v12 with the transactional id (the broker adds
/// each partition to the transaction), EndTxn v5 (answered with the bumped epoch or a new producer
/// id, from which the next transaction's sequences start at 0). Any failure is reported, never
/// retried: the connection is dropped and the next InitProducerId ends what was left open.
struct RawTxnProducer {
    addr: std::net::SocketAddr,
    conn: Option<sluice_testkit::client::BlockingClient>,
    transactional_id: String,
    producer_id: i64,
    epoch: i16,
    /// Next sequence per partition, at the current producer id and epoch.
    seqs: HashMap<i32, i32>,
}

impl RawTxnProducer {
    fn call<Q: kafka_protocol::protocol::Encodable, R: kafka_protocol::protocol::Decodable>(
        &mut self,
        key: kafka_protocol::messages::ApiKey,
        version: i16,
        body: &Q,
    ) -> Result<R, String> {
        if self.conn.is_none() {
            let s =
                std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(15))).map_err(|e| e.to_string())?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            self.conn = Some(sluice_testkit::client::Client::new(s));
        }
        let Some(c) = self.conn.as_mut() else { return Err("no connection".into()) };
        let h = c.header(key, version);
        let frame = sluice_protocol::request::encode_request(&h, body).map_err(|e| e.to_string())?;
        match c.try_send_bytes(&frame).and_then(|()| c.read_frame()) {
            Ok(f) => Ok(sluice_testkit::client::decode_response(f, key, version, h.correlation_id)),
            Err(e) => {
                self.conn = None;
                Err(format!("{key:?}: {e}"))
            }
        }
    }

    fn init(&mut self) -> Result<(), String> {
        use kafka_protocol::messages::*;
        let mut req = InitProducerIdRequest::default();
        req.transactional_id =
            Some(TransactionalId(kafka_protocol::protocol::StrBytes::from_string(self.transactional_id.clone())));
        req.transaction_timeout_ms = 20000;
        req.producer_id = ProducerId(-1);
        req.producer_epoch = -1;
        let r: InitProducerIdResponse = self.call(ApiKey::InitProducerId, 5, &req)?;
        if r.error_code != 0 {
            return Err(format!("InitProducerId error {}", r.error_code));
        }
        (self.producer_id, self.epoch) = (r.producer_id.0, r.producer_epoch);
        self.seqs.clear();
        Ok(())
    }

    fn produce(&mut self, topic: &str, partition: i32, values: &[&str]) -> Result<(), String> {
        use kafka_protocol::messages::*;
        let seq = self.seqs.get(&partition).copied().unwrap_or(0);
        let batch = sluice_testkit::batch::sluice_producer_batch(self.producer_id, self.epoch, seq, true, values);
        let mut req = sluice_testkit::requests::produce_request(topic, partition, batch, -1);
        req.timeout_ms = 10000;
        req.transactional_id =
            Some(TransactionalId(kafka_protocol::protocol::StrBytes::from_string(self.transactional_id.clone())));
        let r: ProduceResponse = self.call(ApiKey::Produce, 12, &req)?;
        let code = r.responses.first().and_then(|t| t.partition_responses.first()).map_or(-1, |p| p.error_code);
        if code != 0 {
            return Err(format!("Produce error {code}"));
        }
        self.seqs.insert(partition, seq + values.len() as i32);
        Ok(())
    }

    fn end(&mut self, commit: bool) -> Result<(), String> {
        use kafka_protocol::messages::*;
        let mut req = EndTxnRequest::default();
        req.transactional_id =
            TransactionalId(kafka_protocol::protocol::StrBytes::from_string(self.transactional_id.clone()));
        req.producer_id = ProducerId(self.producer_id);
        req.producer_epoch = self.epoch;
        req.committed = commit;
        let r: EndTxnResponse = self.call(ApiKey::EndTxn, 5, &req)?;
        if r.error_code != 0 {
            return Err(format!("EndTxn error {}", r.error_code));
        }
        if (r.producer_id.0, r.producer_epoch) == (self.producer_id, self.epoch) {
            return Err("EndTxn v5 did not bump the epoch".into());
        }
        (self.producer_id, self.epoch) = (r.producer_id.0, r.producer_epoch);
        self.seqs.clear();
        Ok(())
    }
}

/// Transactions v2 under the crash checker: like [`transactional_worker`] (random sizes over every
/// partition, about one abort in four) through a [`RawTxnProducer`]. A transaction that failed
/// before EndTxn was never asked to commit (aborted); a failed commit is of unknown outcome.
fn v2_worker(ctx: &Ctx, id: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let Ok(addr) = ctx.bootstrap.parse() else {
        println!("[chaos] v2 producer {id}: bad bootstrap {}", ctx.bootstrap);
        return;
    };
    let mut p = RawTxnProducer {
        addr,
        conn: None,
        transactional_id: format!("{}-txn2-{id}", ctx.topic),
        producer_id: -1,
        epoch: -1,
        seqs: HashMap::new(),
    };
    let mut ready = false;
    let (mut seq, mut number) = (0u64, 0u64);
    while !ctx.stopped() {
        if !ready {
            if let Err(e) = p.init() {
                if !e.contains("error 51") {
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            ready = true;
        }
        number += 1;
        let mut records = Vec::new();
        let mut by_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for partition in 0..ctx.partitions {
            for _ in 0..1 + rng.below(4) {
                seq += 1;
                let value = format!("t{id}-{seq:09}");
                records.push((value.clone(), partition, seq));
                by_partition.entry(partition).or_default().push(value);
            }
        }
        let index = {
            let mut h = ctx.hist();
            let index = h.txns.len();
            for (v, _, _) in &records {
                h.origin.insert(v.clone(), Origin::Txn { index });
            }
            ctx.sent.fetch_add(records.len() as u64, Ordering::Relaxed);
            h.txns.push(TxnInfo {
                producer: id,
                v2: true,
                number,
                records,
                outcome: TxnOutcome::Pending,
                note: String::new(),
            });
            index
        };
        let mut failed = None;
        for (partition, values) in &by_partition {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            if let Err(e) = p.produce(&ctx.topic, *partition, &values) {
                failed = Some(e);
                break;
            }
        }
        if let Some(e) = failed {
            set_outcome(ctx, index, TxnOutcome::Aborted, &format!("v2 produce: {e}"));
            ctx.hist().txn_recreated += 1;
            ready = false;
            continue;
        }
        std::thread::sleep(Duration::from_millis(rng.below(30)));
        let abort = rng.below(4) == 0;
        match p.end(!abort) {
            Ok(()) => set_outcome(ctx, index, if abort { TxnOutcome::Aborted } else { TxnOutcome::Committed }, ""),
            Err(e) => {
                let outcome = if abort { TxnOutcome::Aborted } else { TxnOutcome::Unknown };
                set_outcome(ctx, index, outcome, &format!("v2 end: {e}"));
                ctx.hist().txn_recreated += 1;
                ready = false;
            }
        }
    }
    // Resolve whatever is left open: a new InitProducerId aborts it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = p.init() {
        if Instant::now() > deadline {
            println!("[chaos] v2 producer {id}: could not InitProducerId after the run: {e}");
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn committed_consumer(ctx: &Ctx) -> BaseConsumer {
    consumer(&ctx.bootstrap, &[("isolation.level", "read_committed"), ("auto.offset.reset", "earliest")])
}

fn assign_all(c: &BaseConsumer, topic: &str, partitions: i32) {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("tpl");
    }
    c.assign(&tpl).expect("assign");
}

/// A read_committed consumer; with `reread` set it starts over from offset 0 every couple of
/// seconds (re-reading what recovery rebuilt), otherwise it tails the log.
fn consumer_worker(ctx: &Ctx, reread: bool) {
    let mut c = committed_consumer(ctx);
    assign_all(&c, &ctx.topic, ctx.partitions);
    let mut since = Instant::now();
    while !ctx.stopped() {
        if reread && since.elapsed() > Duration::from_secs(2) {
            c = committed_consumer(ctx);
            assign_all(&c, &ctx.topic, ctx.partitions);
            since = Instant::now();
        }
        match c.poll(Duration::from_millis(100)) {
            None | Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                let key = (m.partition(), m.offset());
                let mut h = ctx.hist();
                h.run_reads_total += 1;
                match h.run_reads.get(&key) {
                    Some(v) if *v != value => {
                        let line = format!(
                            "read_committed consumer read {value:?} at {}/{} where an earlier read saw {v:?}",
                            key.0, key.1
                        );
                        h.run_inconsistent.push(line);
                    }
                    Some(_) => {}
                    None => {
                        h.run_reads.insert(key, value.clone());
                    }
                }
                h.run_read_values.insert(value);
            }
            Some(Err(_)) => ctx.hist().consumer_errors += 1,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Run + check
// ---------------------------------------------------------------------------------------------

/// Runs the workload against `binary` (the broker CLI) in a fresh temp dir and checks the
/// history. Panics only on harness failures (broker does not start, final read times out);
/// violations are reported in the returned [`ChaosReport`].
pub fn run(binary: &str, cfg: &ChaosConfig) -> ChaosReport {
    println!("[chaos] {cfg:?}");
    let dir = tempfile::Builder::new().prefix("sluice-chaos-").tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let overrides = [
        ("log.segment.bytes", "65536"),
        ("num.partitions", "3"),
        ("transaction.abort.timed.out.transaction.cleanup.interval.ms", "2000"),
    ];
    let mut broker = CrashableBroker::start(binary, &data, &overrides);
    let topic = crate::topic_name("chaos");
    {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(crate::create_topic(&broker.bootstrap(), &topic, cfg.partitions, &[]));
    }
    let ctx = Arc::new(Ctx {
        bootstrap: broker.bootstrap(),
        topic: topic.clone(),
        partitions: cfg.partitions,
        stop: AtomicBool::new(false),
        history: Mutex::new(History::default()),
        sent: AtomicU64::new(0),
    });
    let mut rng = Rng::new(cfg.seed);
    let mut workers = Vec::new();
    for id in 0..cfg.idempotent_producers {
        let (ctx, seed) = (ctx.clone(), rng.next_u64());
        workers.push(std::thread::spawn(move || idempotent_worker(&ctx, id, seed)));
    }
    for id in 0..cfg.transactional_producers {
        let (ctx, seed) = (ctx.clone(), rng.next_u64());
        workers.push(std::thread::spawn(move || transactional_worker(&ctx, id, seed)));
    }
    for k in 0..cfg.v2_producers {
        // Numbered after the librdkafka ones, so their values (`t<id>-<seq>`) never collide.
        let (ctx, seed, id) = (ctx.clone(), rng.next_u64(), cfg.transactional_producers + k);
        workers.push(std::thread::spawn(move || v2_worker(&ctx, id, seed)));
    }
    for id in 0..cfg.consumers {
        let ctx = ctx.clone();
        workers.push(std::thread::spawn(move || consumer_worker(&ctx, id % 2 == 1)));
    }

    for cycle in 1..=cfg.cycles {
        let load = cfg.seconds_per_cycle * (0.5 + rng.below(1000) as f64 / 1000.0);
        std::thread::sleep(Duration::from_secs_f64(load));
        let sent = ctx.sent.load(Ordering::Relaxed);
        broker.kill9();
        let down = Duration::from_millis(rng.below(2000));
        println!(
            "[chaos] cycle {cycle}/{}: killed -9 after {load:.1}s ({sent} records sent so far), down for {down:?}",
            cfg.cycles
        );
        std::thread::sleep(down);
        broker.restart();
    }
    // Let clients reconnect and finish in-flight work on the last incarnation.
    std::thread::sleep(Duration::from_secs_f64(cfg.seconds_per_cycle.min(3.0)));
    ctx.stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("chaos worker panicked");
    }
    assert!(broker.is_up());
    let report = check(&ctx, cfg);
    if !report.ok() {
        let log = broker.log();
        let tail: String = log.chars().skip(log.chars().count().saturating_sub(4000)).collect();
        println!("[chaos] broker log tail:\n{tail}");
    }
    broker.kill9();
    report
}

fn final_read(ctx: &Ctx, isolation: &str) -> Vec<Consumed> {
    let c = consumer(&ctx.bootstrap, &[("isolation.level", isolation)]);
    consume_to_end(&c, &ctx.topic, &(0..ctx.partitions).collect::<Vec<_>>(), Offset::Beginning, WAIT * 4)
}

fn check(ctx: &Ctx, cfg: &ChaosConfig) -> ChaosReport {
    let committed = final_read(ctx, "read_committed");
    let uncommitted = final_read(ctx, "read_uncommitted");
    let h = ctx.hist();
    let mut r = ChaosReport {
        cycles: cfg.cycles,
        seed: cfg.seed,
        sent: ctx.sent.load(Ordering::Relaxed),
        idem_acked: h.idem_acked.len() as u64,
        idem_failed: h.idem_failed,
        producers_recreated: h.idem_recreated + h.txn_recreated,
        fenced_zombies: h.zombies,
        zombie_commits: h.zombie_commits.len() as u64,
        run_reads: h.run_reads_total,
        consumer_errors: h.consumer_errors,
        read: committed.len() as u64,
        read_uncommitted: uncommitted.len() as u64,
        ..Default::default()
    };
    for t in &h.txns {
        if !t.note.is_empty() {
            let mut key: String =
                format!("{:?}: {}", t.outcome, t.note).chars().filter(|c| !c.is_ascii_digit()).collect();
            key.truncate(200);
            *r.txn_notes.entry(key).or_default() += 1;
        }
        match t.outcome {
            TxnOutcome::Committed => {
                r.committed_txns += 1;
                r.v2_committed_txns += u64::from(t.v2);
            }
            TxnOutcome::Aborted => r.aborted_txns += 1,
            TxnOutcome::Unknown | TxnOutcome::Pending => r.unknown_txns += 1,
        }
    }
    let committed_records: u64 =
        h.txns.iter().filter(|t| t.outcome == TxnOutcome::Committed).map(|t| t.records.len() as u64).sum();
    r.acked = r.idem_acked + committed_records;

    // Index the final reads.
    let mut rc_pos: HashMap<String, Vec<(i32, i64)>> = HashMap::new();
    let rc_at: BTreeMap<(i32, i64), &str> = committed.iter().map(|c| ((c.partition, c.offset), value_of(c))).collect();
    let ru_at: BTreeMap<(i32, i64), &str> =
        uncommitted.iter().map(|c| ((c.partition, c.offset), value_of(c))).collect();
    for c in &committed {
        rc_pos.entry(value_of(c).to_string()).or_default().push((c.partition, c.offset));
    }
    let describe = |p: i32, o: i64| -> String {
        format!("{p}/{o} holds {:?} (read_committed) / {:?} (read_uncommitted)", rc_at.get(&(p, o)), ru_at.get(&(p, o)))
    };

    // inconsistent: values nobody sent, offsets read differently.
    for c in committed.iter().chain(&uncommitted) {
        if !h.origin.contains_key(value_of(c)) {
            r.inconsistent += 1;
            r.violation(format!("unknown value {:?} at {}/{}", value_of(c), c.partition, c.offset));
        }
    }
    for (&(p, o), v) in &rc_at {
        if ru_at.get(&(p, o)) != Some(v) {
            r.inconsistent += 1;
            r.violation(format!("read_committed and read_uncommitted disagree at {}", describe(p, o)));
        }
    }
    for ((p, o), v) in &h.run_reads {
        if let Some(now) = ru_at.get(&(*p, *o)) {
            if now != v {
                r.inconsistent += 1;
                r.violation(format!("during the run {p}/{o} was read as {v:?}; now {}", describe(*p, *o)));
            }
        }
    }
    for &i in &h.zombie_commits {
        let t = &h.txns[i];
        r.violation(format!(
            "zombie commit: txn #{i} (producer t{}, number {}) was committed by a fenced producer",
            t.producer, t.number
        ));
    }
    for line in &h.run_inconsistent {
        r.inconsistent += 1;
        r.violation(line.clone());
    }

    // (b) duplicates.
    for (v, pos) in &rc_pos {
        if pos.len() > 1 {
            r.duplicates += 1;
            r.violation(format!(
                "duplicate: {v:?} read {} times in the final read_committed read at {pos:?}",
                pos.len()
            ));
        }
    }
    let mut ru_seen: HashMap<&str, Vec<(i32, i64)>> = HashMap::new();
    for c in &uncommitted {
        ru_seen.entry(value_of(c)).or_default().push((c.partition, c.offset));
    }
    for (v, pos) in &ru_seen {
        if pos.len() > 1 && rc_pos.get(*v).is_none_or(|p| p.len() <= 1) {
            r.duplicates += 1;
            r.violation(format!("duplicate: {v:?} stored {} times (read_uncommitted) at {pos:?}", pos.len()));
        }
    }

    // (a) idempotent acks: present, at the acknowledged offset.
    let mut idem: Vec<(&String, &(i32, i64))> = h.idem_acked.iter().collect();
    idem.sort();
    for (v, &(p, o)) in idem {
        match rc_pos.get(v.as_str()) {
            None => {
                r.lost += 1;
                r.violation(format!("lost: idempotent record {v:?} acknowledged at {p}/{o}; {}", describe(p, o)));
            }
            Some(pos) if o >= 0 && !pos.contains(&(p, o)) => {
                r.lost += 1;
                r.violation(format!(
                    "lost: idempotent record {v:?} acknowledged at {p}/{o} but found at {pos:?}; {}",
                    describe(p, o)
                ));
            }
            Some(_) => {}
        }
    }

    // (a) + (e) transactions: committed all present, unknown all-or-nothing, (c) aborted never read.
    for (i, t) in h.txns.iter().enumerate() {
        let present: Vec<&(String, i32, u64)> = t.records.iter().filter(|(v, _, _)| rc_pos.contains_key(v)).collect();
        let name = format!("txn #{i} (producer t{}, number {}, {:?}, {})", t.producer, t.number, t.outcome, t.note);
        match t.outcome {
            TxnOutcome::Committed => {
                for (v, p, _) in &t.records {
                    if !rc_pos.contains_key(v) {
                        r.lost += 1;
                        let ru = ru_seen.get(v.as_str());
                        r.violation(format!(
                            "lost: {v:?} (partition {p}) of committed {name}; in read_uncommitted at {ru:?}"
                        ));
                    }
                }
                if !present.is_empty() && present.len() < t.records.len() {
                    r.partial_txns += 1;
                    r.violation(format!(
                        "partial: committed {name}: {} of {} records visible",
                        present.len(),
                        t.records.len()
                    ));
                }
            }
            TxnOutcome::Unknown | TxnOutcome::Pending => {
                if !present.is_empty() {
                    r.unknown_txns_visible += 1;
                }
                if !present.is_empty() && present.len() < t.records.len() {
                    r.partial_txns += 1;
                    let missing: Vec<_> =
                        t.records.iter().filter(|(v, _, _)| !rc_pos.contains_key(v)).map(|(v, p, _)| (v, p)).collect();
                    r.violation(format!(
                        "partial: {name}: {} of {} records visible, missing {missing:?}",
                        present.len(),
                        t.records.len()
                    ));
                }
            }
            TxnOutcome::Aborted => {
                for (v, p, _) in &t.records {
                    let in_final = rc_pos.get(v.as_str());
                    let during = h.run_read_values.contains(v);
                    if in_final.is_some() || during {
                        r.aborted_read += 1;
                        r.violation(format!(
                            "aborted_read: {v:?} (partition {p}) of aborted {name}: final read_committed at {in_final:?}, \
                             read during the run: {during}; read_uncommitted at {:?}",
                            ru_seen.get(v.as_str())
                        ));
                    }
                }
            }
        }
    }

    // (d) order: per producer and partition, acknowledged (committed) records in seq order.
    let mut last: HashMap<(char, usize, i32), (u64, i64)> = HashMap::new();
    for c in &committed {
        let v = value_of(c);
        let (kind, producer, seq) = match h.origin.get(v) {
            Some(Origin::Idempotent { producer, seq, partition }) => {
                if *partition != c.partition {
                    r.inconsistent += 1;
                    r.violation(format!(
                        "{v:?} sent to partition {partition} but read from {}/{}",
                        c.partition, c.offset
                    ));
                }
                if !h.idem_acked.contains_key(v) {
                    continue;
                }
                ('i', *producer, *seq)
            }
            Some(Origin::Txn { index }) => {
                let t = &h.txns[*index];
                if t.outcome != TxnOutcome::Committed {
                    continue;
                }
                let seq = t.records.iter().find(|(x, _, _)| x == v).map(|(_, _, s)| *s).unwrap_or(0);
                ('t', t.producer, seq)
            }
            None => continue,
        };
        if let Some((prev, prev_off)) = last.insert((kind, producer, c.partition), (seq, c.offset)) {
            if prev >= seq {
                r.order_violations += 1;
                r.violation(format!(
                    "order: producer {kind}{producer} partition {}: seq {prev} at offset {prev_off} before seq {seq} at offset {}",
                    c.partition, c.offset
                ));
            }
        }
    }
    r
}

fn value_of(c: &Consumed) -> &str {
    std::str::from_utf8(c.value.as_deref().unwrap_or_default()).unwrap_or("<not utf-8>")
}
