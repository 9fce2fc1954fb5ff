//! Shared helpers for Sluice's integration tests (the `tests/tests/it` suite).
//!
//! What they are for: every test talks to a *real* broker over TCP, either in-process
//! ([`TestBroker`], on an ephemeral port with a temp data dir, run on its own Tokio runtime in its
//! own thread so tests may call blocking client APIs freely) or as an external process
//! ([`ExternalBroker`], the real `sluice` binary built as `sluice-test-broker`, which can be
//! `kill -9`ed). Clients are librdkafka through the `rdkafka` crate ([`producer`], [`consumer`],
//! [`admin`]) and a raw socket client ([`raw::RawConn`]) for byte-level protocol checks and bad
//! input.
//!
//! Helpers assert loudly: a helper that "waits" always has a deadline and panics with what it
//! saw, so a broken broker fails a test instead of hanging CI.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, Timestamp, TopicPartitionList};

pub use rdkafka;
pub mod chaos;

/// Default deadline for anything a test waits for.
pub const WAIT: Duration = Duration::from_secs(30);

/// Prints a line that says what a test is checking (visible with `--nocapture` and on failure).
#[macro_export]
macro_rules! check {
    ($($arg:tt)*) => {
        println!("[check] {}", format!($($arg)*))
    };
}

/// A unique topic name per test (tests share nothing, but names make logs readable).
pub fn topic_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------------------
// In-process broker
// ---------------------------------------------------------------------------------------------

/// A broker started with `sluice::start` on `127.0.0.1:0` and its own data directory.
///
/// The broker runs on a dedicated multi-threaded Tokio runtime inside a dedicated thread, so the
/// test's own runtime (or blocking librdkafka calls) can never starve it.
pub struct TestBroker {
    addr: SocketAddr,
    dir: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    overrides: Vec<(String, String)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl TestBroker {
    /// Starts a broker with default settings plus `overrides` in a fresh temp dir.
    pub fn start(overrides: &[(&str, &str)]) -> TestBroker {
        let dir = tempfile::Builder::new().prefix("sluice-test-").tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let overrides: Vec<(String, String)> = overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut b = Self::spawn(data_dir, overrides);
        b.dir = Some(dir);
        b
    }

    /// Starts with no overrides.
    pub fn start_default() -> TestBroker {
        Self::start(&[])
    }

    fn spawn(data_dir: PathBuf, overrides: Vec<(String, String)>) -> TestBroker {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<SocketAddr, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let dir_str = data_dir.to_str().expect("utf-8 temp path").to_string();
        let pairs = overrides.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-broker".into())
            .spawn(move || -> Result<(), String> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .thread_name("sluice-broker-rt")
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async move {
                    let mut kv: Vec<(&str, &str)> = vec![
                        ("listeners", "PLAINTEXT://127.0.0.1:0"),
                        ("log.dirs", dir_str.as_str()),
                        ("metrics.listener", "127.0.0.1:0"),
                    ];
                    kv.extend(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                    let config = match sluice::Config::from_overrides(&kv) {
                        Ok(c) => c,
                        Err(e) => {
                            let msg = format!("config rejected: {e}");
                            let _ = ready_tx.send(Err(msg.clone()));
                            return Err(msg);
                        }
                    };
                    let handle = match sluice::start(config).await {
                        Ok(h) => h,
                        Err(e) => {
                            let msg = format!("sluice::start failed: {e:#}");
                            let _ = ready_tx.send(Err(msg.clone()));
                            return Err(msg);
                        }
                    };
                    let _ = ready_tx.send(Ok(handle.kafka_addr()));
                    let _ = stop_rx.await;
                    handle.shutdown().await.map_err(|e| format!("shutdown failed: {e:#}"))
                })
            })
            .expect("spawn broker thread");
        let addr = match ready_rx.recv_timeout(WAIT) {
            Ok(Ok(addr)) => addr,
            Ok(Err(msg)) => panic!("broker did not start: {msg}"),
            Err(_) => {
                // The thread died (panicked, e.g. on a todo!()) or hung.
                if thread.is_finished() {
                    let why = match thread.join() {
                        Ok(Ok(())) => "exited without reporting".to_string(),
                        Ok(Err(e)) => e,
                        Err(panic) => panic_message(&panic),
                    };
                    panic!("broker did not start: {why}");
                }
                panic!("broker did not start within {WAIT:?}");
            }
        };
        assert_ne!(addr.port(), 0, "kafka_addr() must report the real bound port, not 0");
        TestBroker { addr, dir: None, data_dir, overrides, stop: Some(stop_tx), thread: Some(thread) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Clean shutdown; panics if the broker reports an error or takes longer than [`WAIT`].
    pub fn shutdown(mut self) {
        self.stop_and_join().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Clean shutdown followed by a start on the same data dir (same overrides, new port).
    pub fn restart(mut self) -> TestBroker {
        self.stop_and_join().unwrap_or_else(|e| panic!("{e}"));
        let dir = self.dir.take();
        let mut b = Self::spawn(self.data_dir.clone(), std::mem::take(&mut self.overrides));
        b.dir = dir;
        b
    }

    /// Clean shutdown, then `while_down` (given the data dir) runs with the broker stopped, then a
    /// start on the same data dir (same overrides, new port).
    pub fn restart_with(mut self, while_down: impl FnOnce(&Path)) -> TestBroker {
        self.stop_and_join().unwrap_or_else(|e| panic!("{e}"));
        while_down(&self.data_dir);
        let dir = self.dir.take();
        let mut b = Self::spawn(self.data_dir.clone(), std::mem::take(&mut self.overrides));
        b.dir = dir;
        b
    }

    fn stop_and_join(&mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + WAIT;
        while !thread.is_finished() {
            if Instant::now() > deadline {
                return Err(format!("broker shutdown did not finish within {WAIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match thread.join() {
            Ok(r) => r,
            Err(panic) => Err(format!("broker thread panicked: {}", panic_message(&panic))),
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            eprintln!("warning: {e}");
        }
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

// ---------------------------------------------------------------------------------------------
// External broker process
// ---------------------------------------------------------------------------------------------

/// A free TCP port on 127.0.0.1 (bound and released; a small race is acceptable in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind :0").local_addr().expect("local addr").port()
}

/// The broker binary run as a child process (`kill -9`-able).
pub struct ExternalBroker {
    pub child: Child,
    pub port: u16,
    pub log_path: PathBuf,
}

impl ExternalBroker {
    /// Runs `binary --override listeners=PLAINTEXT://127.0.0.1:<free> --override log.dirs=<dir>
    /// [--override k=v]...` and waits until the port accepts connections.
    pub fn start(binary: &str, data_dir: &Path, overrides: &[(&str, &str)]) -> ExternalBroker {
        let port = free_port();
        let log_path = data_dir.with_extension(format!("broker-{port}.log"));
        let log = std::fs::File::create(&log_path).expect("create broker log");
        let mut cmd = Command::new(binary);
        cmd.arg("--override")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
            .arg("--override")
            .arg(format!("log.dirs={}", data_dir.display()));
        if !overrides.iter().any(|(k, _)| *k == "metrics.listener") {
            // Parallel brokers must not fight over the default metrics port.
            cmd.arg("--override").arg("metrics.listener=127.0.0.1:0");
        }
        for (k, v) in overrides {
            cmd.arg("--override").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        let mut b = ExternalBroker { child, port, log_path };
        b.wait_ready();
        b
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's combined stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("broker exited during startup with {status}; log:\n{}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!("broker did not listen on {} within {WAIT:?}; log:\n{}", self.port, self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().expect("wait");
        println!("[broker] killed -9 ({status})");
    }

    /// SIGTERM (via the shell's `kill`), then waits up to [`WAIT`] for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status =
            Command::new("sh").arg("-c").arg(format!("kill -TERM {}", self.child.id())).status().expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("broker did not exit within {WAIT:?} of SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ExternalBroker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: String = log.chars().skip(log.chars().count().saturating_sub(8000)).collect();
            eprintln!("--- broker log ({}) ---\n{tail}", self.log_path.display());
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// librdkafka clients
// ---------------------------------------------------------------------------------------------

/// Base client config: IPv4 loopback, short timeouts so failures surface quickly.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000")
        .set("topic.metadata.refresh.interval.ms", "2000")
        .set("log_level", "4");
    c
}

/// A producer with `extra` settings applied on top of test defaults (acks=all, no idempotence —
/// Sluice may not implement InitProducerId — and one request in flight so order is strict).
pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = client_config(bootstrap);
    c.set("acks", "all")
        .set("enable.idempotence", "false")
        .set("max.in.flight.requests.per.connection", "1")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000")
        .set("queue.buffering.max.messages", "200000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("create producer")
}

/// A consumer used with `assign` only (no group, no commits), which reports partition EOF.
pub fn consumer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c = client_config(bootstrap);
    c.set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "error")
        .set("fetch.wait.max.ms", "100")
        // librdkafka refuses assign() without a group id; nothing is ever committed to it.
        .set("group.id", topic_name("sluice-test-group"));
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("create consumer")
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    client_config(bootstrap).create().expect("create admin client")
}

pub fn admin_opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))).request_timeout(Some(WAIT))
}

/// Creates topics through the admin API and asserts every one succeeded.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(bootstrap);
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = admin.create_topics(&[t], &admin_opts()).await.expect("CreateTopics request");
    assert_eq!(res.len(), 1, "one result per topic");
    match &res[0] {
        Ok(n) => assert_eq!(n, name),
        Err((n, code)) => panic!("creating topic {n} failed: {code:?}"),
    }
}

/// One record as a test wants it produced / as it was consumed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TestRecord {
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

impl TestRecord {
    pub fn value(v: impl Into<Vec<u8>>) -> TestRecord {
        TestRecord { value: Some(v.into()), ..Default::default() }
    }
    pub fn to_partition(mut self, p: i32) -> TestRecord {
        self.partition = Some(p);
        self
    }
    fn future_record<'a>(&'a self, topic: &'a str) -> FutureRecord<'a, [u8], [u8]> {
        let mut fr = FutureRecord::<[u8], [u8]>::to(topic);
        if let Some(k) = &self.key {
            fr = fr.key(k.as_slice());
        }
        if let Some(v) = &self.value {
            fr = fr.payload(v.as_slice());
        }
        if let Some(p) = self.partition {
            fr = fr.partition(p);
        }
        if let Some(ts) = self.timestamp {
            fr = fr.timestamp(ts);
        }
        if !self.headers.is_empty() {
            let mut h = OwnedHeaders::new_with_capacity(self.headers.len());
            for (k, v) in &self.headers {
                h = h.insert(Header { key: k.as_str(), value: v.as_deref() });
            }
            fr = fr.headers(h);
        }
        fr
    }
}

/// A consumed record with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Timestamp,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Consumed {
    fn from_message<M: Message>(m: &M) -> Consumed {
        let headers = m
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec()))).collect())
            .unwrap_or_default();
        Consumed {
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp(),
            key: m.key().map(|k| k.to_vec()),
            value: m.payload().map(|v| v.to_vec()),
            headers,
        }
    }

    pub fn value_str(&self) -> String {
        String::from_utf8_lossy(self.value.as_deref().unwrap_or_default()).into_owned()
    }
}

/// Records handed to librdkafka whose deliveries have not been awaited yet.
pub type Pending = Vec<Result<rdkafka::producer::DeliveryFuture, KafkaError>>;

/// Enqueues every record in order (retrying while the local queue is full); does not wait.
pub fn enqueue(producer: &FutureProducer, topic: &str, records: &[TestRecord]) -> Pending {
    let mut pending = Vec::with_capacity(records.len());
    for r in records {
        let mut fr = r.future_record(topic);
        let deadline = Instant::now() + WAIT;
        loop {
            match producer.send_result(fr) {
                Ok(f) => {
                    pending.push(Ok(f));
                    break;
                }
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                    assert!(Instant::now() < deadline, "producer queue stayed full for {WAIT:?}");
                    fr = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    pending.push(Err(e));
                    break;
                }
            }
        }
    }
    pending
}

/// Awaits deliveries: one `(partition, offset)` or error per record, in enqueue order.
pub async fn deliveries(pending: Pending) -> Vec<Result<(i32, i64), KafkaError>> {
    let mut out = Vec::with_capacity(pending.len());
    for f in pending {
        out.push(match f {
            Err(e) => Err(e),
            Ok(f) => match f.await {
                Ok(Ok(d)) => Ok((d.partition, d.offset)),
                Ok(Err((e, _msg))) => Err(e),
                Err(_canceled) => Err(KafkaError::Canceled),
            },
        });
    }
    out
}

/// Enqueues every record in order, then awaits all deliveries (see [`deliveries`]).
pub async fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    records: &[TestRecord],
) -> Vec<Result<(i32, i64), KafkaError>> {
    deliveries(enqueue(producer, topic, records)).await
}

/// [`produce_all`] and assert every record was acknowledged; returns `(partition, offset)`s.
pub async fn produce_ok(producer: &FutureProducer, topic: &str, records: &[TestRecord]) -> Vec<(i32, i64)> {
    produce_all(producer, topic, records)
        .await
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|e| panic!("record #{i} to {topic} not acknowledged: {e}")))
        .collect()
}

/// Assigns `partitions` of `topic` from `start` and reads until each has reported EOF, then
/// returns everything read (per partition in offset order). Panics after `timeout`, or if a
/// partition reports an error.
pub fn consume_to_end(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    start: Offset,
    timeout: Duration,
) -> Vec<Consumed> {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, start).expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut eof: std::collections::BTreeSet<i32> = Default::default();
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while eof.len() < partitions.len() {
        assert!(
            Instant::now() < deadline,
            "consuming {topic} {partitions:?}: no EOF on {:?} after {timeout:?}; got {} records",
            partitions.iter().filter(|p| !eof.contains(p)).collect::<Vec<_>>(),
            out.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                eof.remove(&m.partition());
                out.push(Consumed::from_message(&m));
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
        }
    }
    consumer.unassign().expect("unassign");
    out.sort_by_key(|c| (c.partition, c.offset));
    out
}

/// Reads exactly `n` records from `partitions` (from `start`) and asserts nothing more follows.
pub fn consume_exactly(bootstrap: &str, topic: &str, partitions: &[i32], start: Offset, n: usize) -> Vec<Consumed> {
    let c = consumer(bootstrap, &[]);
    let got = consume_to_end(&c, topic, partitions, start, WAIT);
    assert_eq!(got.len(), n, "expected exactly {n} records in {topic} {partitions:?}, got {}", got.len());
    got
}

/// (low, high) watermarks via ListOffsets.
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let c = consumer(bootstrap, &[]);
    c.fetch_watermarks(topic, partition, WAIT).unwrap_or_else(|e| panic!("ListOffsets for {topic}/{partition}: {e}"))
}

/// Partition count of `topic` per Metadata (panics on topic error).
pub fn partition_count(bootstrap: &str, topic: &str) -> usize {
    let c = consumer(bootstrap, &[]);
    let md = c.fetch_metadata(Some(topic), WAIT).expect("metadata");
    let t = md.topics().iter().find(|t| t.name() == topic).expect("topic in metadata");
    assert!(t.error().is_none(), "metadata error for {topic}: {:?}", t.error());
    t.partitions().len()
}

/// Deterministic pseudo-random bytes (xorshift) for payloads that must not be trivially equal.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x & 0xff) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Raw protocol client
// ---------------------------------------------------------------------------------------------

pub mod raw {
    //! A blocking, byte-level Kafka client for tests that need exact control over the wire.

    use super::*;
    use bytes::{Buf, Bytes, BytesMut};
    use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use std::io::{ErrorKind, Write};

    pub use kafka_protocol;

    pub struct RawConn {
        pub stream: TcpStream,
        next_correlation: i32,
    }

    impl RawConn {
        pub fn connect(addr: SocketAddr) -> RawConn {
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
            stream.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
            stream.set_nodelay(true).expect("nodelay");
            RawConn { stream, next_correlation: 1 }
        }

        pub fn send_bytes(&mut self, b: &[u8]) {
            self.stream.write_all(b).expect("write");
        }

        /// Writes, tolerating a peer that already closed (for hostile input).
        pub fn try_send_bytes(&mut self, b: &[u8]) -> std::io::Result<()> {
            self.stream.write_all(b)
        }

        pub fn header(&mut self, key: ApiKey, version: i16) -> RequestHeader {
            let mut h = RequestHeader::default();
            h.request_api_key = key as i16;
            h.request_api_version = version;
            h.correlation_id = self.next_correlation;
            self.next_correlation += 1;
            h.client_id = Some(StrBytes::from_static_str("sluice-raw-test"));
            h
        }

        /// Encodes and sends a request; returns its correlation id.
        pub fn send<M: Encodable>(&mut self, key: ApiKey, version: i16, body: &M) -> i32 {
            let h = self.header(key, version);
            let frame = sluice_protocol::request::encode_request(&h, body).expect("encode request");
            self.send_bytes(&frame);
            h.correlation_id
        }

        /// Reads one size-prefixed frame (without the prefix).
        pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len)?;
            let len = i32::from_be_bytes(len);
            assert!((0..=256 << 20).contains(&len), "response frame size {len} out of range");
            let mut buf = vec![0u8; len as usize];
            self.stream.read_exact(&mut buf)?;
            Ok(Bytes::from(buf))
        }

        /// Reads a response frame, checks the correlation id and decodes the body at `version`.
        pub fn recv<R: Decodable>(&mut self, key: ApiKey, version: i16, correlation_id: i32) -> R {
            let mut frame = self.read_frame().unwrap_or_else(|e| panic!("reading {key:?} v{version} response: {e}"));
            let hv = key.response_header_version(version);
            let header = ResponseHeader::decode(&mut frame, hv).expect("response header");
            assert_eq!(header.correlation_id, correlation_id, "{key:?} response correlation id");
            let body = R::decode(&mut frame, version)
                .unwrap_or_else(|e| panic!("decoding {key:?} v{version} response body: {e}"));
            assert_eq!(frame.remaining(), 0, "{key:?} v{version} response has {} trailing bytes", frame.remaining());
            body
        }

        /// Send + receive.
        pub fn request<Q: Encodable, R: Decodable>(&mut self, key: ApiKey, version: i16, body: &Q) -> R {
            let c = self.send(key, version, body);
            self.recv(key, version, c)
        }

        /// ApiVersions v3 must succeed on this connection (the "is it alive?" probe).
        pub fn assert_alive(&mut self, what: &str) {
            let mut req = ApiVersionsRequest::default();
            req.client_software_name = StrBytes::from_static_str("sluice-tests");
            req.client_software_version = StrBytes::from_static_str("0.1");
            let c = self.send(ApiKey::ApiVersions, 3, &req);
            let resp: ApiVersionsResponse = self.recv(ApiKey::ApiVersions, 3, c);
            assert_eq!(resp.error_code, 0, "{what}: ApiVersions v3 error code");
            assert!(!resp.api_keys.is_empty(), "{what}: ApiVersions lists no APIs");
        }

        /// Asserts the broker closes this connection within `within`, without sending anything.
        pub fn assert_closed_by_broker(&mut self, within: Duration, what: &str) {
            self.stream.set_read_timeout(Some(within)).expect("timeout");
            let mut buf = [0u8; 256];
            let start = Instant::now();
            match self.stream.read(&mut buf) {
                Ok(0) => println!("[check] {what}: broker closed the connection after {:?}", start.elapsed()),
                Ok(n) => panic!("{what}: expected the broker to close the connection, got {n} bytes: {:?}", &buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
                    ) =>
                {
                    println!("[check] {what}: broker reset the connection ({e})")
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("{what}: connection still open {within:?} later (Kafka closes it)")
                }
                Err(e) => panic!("{what}: unexpected read error {e}"),
            }
        }
    }

    /// Builds one uncompressed v2 record batch with `values` (CRC-32C valid), using
    /// kafka-protocol's encoder (independent of Sluice's own batch code). The encoder starts a
    /// new batch whenever `offset - sequence` changes, so records carry `sequence = offset`;
    /// the header's base sequence is then reset to -1 (no producer id) and the CRC recomputed.
    pub fn record_batch(values: &[&[u8]], base_timestamp: i64) -> BytesMut {
        use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32,
                timestamp: base_timestamp + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::copy_from_slice(v)),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions { version: 2, compression: Compression::None },
        )
        .expect("encode batch");
        let batch_len = i32::from_be_bytes(buf[8..12].try_into().expect("4 bytes")) as usize;
        assert_eq!(buf.len(), 12 + batch_len, "encoder produced exactly one batch");
        assert_eq!(i32::from_be_bytes(buf[57..61].try_into().expect("4 bytes")), values.len() as i32);
        buf[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        let crc = crc32c::crc32c(&buf[21..]);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
        buf
    }

    /// Number of records in a fetched records blob (all batches), via kafka-protocol's decoder.
    pub fn count_records(records: Option<&Bytes>) -> usize {
        use kafka_protocol::records::RecordBatchDecoder;
        let Some(r) = records else { return 0 };
        let mut b = r.clone();
        RecordBatchDecoder::decode_all(&mut b).expect("decode fetched batches").iter().map(|s| s.records.len()).sum()
    }
}
