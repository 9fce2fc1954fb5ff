//! Shared helpers for Sluice's rdkafka-based integration tests (the `tests/tests/it` suite):
//! librdkafka clients through the `rdkafka` crate ([`producer`], [`consumer`], [`admin`]), records
//! as tests want them produced and consumed, and waits with deadlines.
//!
//! The broker fixtures ([`TestBroker`] in-process, [`ExternalBroker`] the real binary as a child
//! process) and the raw protocol client come from `sluice-testkit`, re-exported here for the
//! suite's `use sluice_tests::*`.
//!
//! Helpers assert loudly: a helper that "waits" always has a deadline and panics with what it
//! saw, so a broken broker fails a test instead of hanging CI.

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
pub use sluice_testkit;
pub use sluice_testkit::broker::{free_port, ExternalBroker, TestBroker, WAIT};
pub mod chaos;

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
