//! Broker metrics: one Prometheus [`Registry`] per broker, the handles the hot path
//! increments, the scrape-time storage collector ([`storage`]), the response error-code walk
//! ([`response_errors`]) and the HTTP endpoint serving `/metrics` and health checks ([`http`]).
//!
//! Every metric is named `sluice_*` and documented in `docs/metrics.md`.
//!
//! Design:
//! - The registry is per broker, never prometheus' global default, so several brokers in one test
//!   process do not collide, and a broker's metrics die with it.
//! - [`Metrics`] groups metrics by owner in sub-structs (`network`, `requests`, `topics`). A module
//!   that arrives later (group coordinator, log cleaner, transactions, remote tier) adds its own
//!   sub-struct built from [`Metrics::registry`] in its constructor, the same way — one field here,
//!   one section in `docs/metrics.md`, panels in `grafana/` once the metrics exist.
//! - The hot path never looks labels up by string. Per-API handles live in a fixed array indexed
//!   by API key and are created on first use (`OnceLock`, lock-free after that), including the
//!   per-error-code counters. Per-topic counters are cached per connection
//!   ([`ConnectionMetrics`]), so a request touches no shared map or lock; topic deletion bumps a
//!   generation number that makes every connection drop its cache.
//! - Storage gauges (sizes, offsets) are not kept up to date on every append: they are read from
//!   the log manager when Prometheus scrapes ([`storage::StorageCollector`]).
//!
//! Thread-safety: `Metrics` is shared as `Arc<Metrics>`; every handle is an atomic. A
//! [`ConnectionMetrics`] belongs to one connection task.

pub mod groups;
pub mod http;
pub mod maintenance;
pub mod response_errors;
pub mod storage;
pub mod throughput;
pub mod tier;
pub mod transactions;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};

pub use response_errors::ResponseErrorCodes;

/// One past the highest Kafka API key `kafka-protocol` knows (`ApiKey::iter` covers 0..=92).
const API_SLOTS: usize = 93;
/// Error codes with a pre-resolved counter: -1 (UNKNOWN_SERVER_ERROR) up to this bound; rarer
/// codes are looked up by label each time.
const ERROR_CODE_SLOTS: usize = 160;

/// Latency buckets in seconds: 50 µs doubling-and-a-half up to ~46 s, which covers a queued
/// request (microseconds) as well as a Fetch long poll (`fetch.max.wait.ms` up to 30 s and more).
fn latency_buckets() -> Vec<f64> {
    exponential_buckets(0.000_05, 2.5, 16).unwrap_or_else(|_| prometheus::DEFAULT_BUCKETS.to_vec())
}

/// Registering a metric fails only on a duplicate or invalid name — a bug in this file, caught by
/// every test that starts a broker.
fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    if let Err(e) = registry.register(Box::new(c.clone())) {
        panic!("registering a sluice metric failed (duplicate or invalid name): {e}");
    }
    c
}

/// Every metric of one broker.
pub struct Metrics {
    registry: Registry,
    /// Connections: open, accepted, closed by reason.
    pub network: NetworkMetrics,
    /// Requests by API: counts, error codes, latencies, bytes.
    pub requests: RequestMetrics,
    /// Produce and fetch throughput per topic.
    pub topics: TopicMetrics,
    /// Log cleaner and retention.
    pub maintenance: maintenance::MaintenanceMetrics,
    /// The remote tier: uploads, remote fetches, errors.
    pub tier: tier::TierMetrics,
    /// Transactions completed and timed out.
    pub transactions: transactions::TransactionMetrics,
    /// `/health/ready`: logs loaded and listeners bound, and not shutting down.
    ready: AtomicBool,
}

impl Metrics {
    /// A fresh registry with the broker's metrics and (on Linux) the process collector.
    pub fn new() -> Self {
        let registry = Registry::new();
        let build_info = register(
            &registry,
            IntGaugeVec::new(
                Opts::new("sluice_build_info", "Always 1; labels carry the broker version."),
                &["version"],
            )
            .expect("valid metric"),
        );
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        #[cfg(target_os = "linux")]
        {
            // CPU seconds, RSS, open/max fds, threads, start time — read from /proc at scrape.
            let pc = prometheus::process_collector::ProcessCollector::new(
                std::process::id() as prometheus::process_collector::pid_t,
                "sluice",
            );
            if let Err(e) = registry.register(Box::new(pc)) {
                tracing::warn!(error = %e, "process metrics unavailable");
            }
        }
        Metrics {
            network: NetworkMetrics::new(&registry),
            requests: RequestMetrics::new(&registry),
            topics: TopicMetrics::new(&registry),
            maintenance: maintenance::MaintenanceMetrics::new(&registry),
            tier: tier::TierMetrics::new(&registry),
            transactions: transactions::TransactionMetrics::new(&registry),
            registry,
            ready: AtomicBool::new(false),
        }
    }

    /// The registry, for modules registering their own metrics and for collectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        // Text encoding into a String cannot fail except on invalid metric data we never build.
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a connection closed — the `reason` label of `sluice_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseLabel {
    /// The client closed it.
    Peer,
    /// `connections.max.idle.ms` passed without a complete request.
    Idle,
    /// Refused at accept: `max.connections` reached.
    Limit,
    /// Bad size prefix, oversized or truncated frame.
    BadFrame,
    /// Unparseable header, unknown/unsupported API or version, undecodable body.
    BadRequest,
    /// Broker shutdown.
    Shutdown,
    /// Socket error.
    Io,
}

impl CloseLabel {
    pub const ALL: [CloseLabel; 7] = [
        CloseLabel::Peer,
        CloseLabel::Idle,
        CloseLabel::Limit,
        CloseLabel::BadFrame,
        CloseLabel::BadRequest,
        CloseLabel::Shutdown,
        CloseLabel::Io,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CloseLabel::Peer => "peer",
            CloseLabel::Idle => "idle",
            CloseLabel::Limit => "limit",
            CloseLabel::BadFrame => "bad_frame",
            CloseLabel::BadRequest => "bad_request",
            CloseLabel::Shutdown => "shutdown",
            CloseLabel::Io => "io",
        }
    }
}

pub struct NetworkMetrics {
    open: IntGaugeVec,
    accepted: IntCounterVec,
    closed: IntCounterVec,
}

impl NetworkMetrics {
    fn new(r: &Registry) -> Self {
        NetworkMetrics {
            open: register(
                r,
                IntGaugeVec::new(
                    Opts::new("sluice_connections_open", "Client connections currently open."),
                    &["listener"],
                )
                .expect("valid metric"),
            ),
            accepted: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "sluice_connections_accepted_total",
                        "Client connections accepted (including ones then refused by max.connections).",
                    ),
                    &["listener"],
                )
                .expect("valid metric"),
            ),
            closed: register(
                r,
                IntCounterVec::new(
                    Opts::new("sluice_connections_closed_total", "Client connections closed, by reason."),
                    &["listener", "reason"],
                )
                .expect("valid metric"),
            ),
        }
    }

    /// Pre-creates a listener's series so dashboards show zeros rather than nothing.
    pub fn listener(&self, listener: &str) {
        self.open.with_label_values(&[listener]);
        self.accepted.with_label_values(&[listener]);
        for reason in CloseLabel::ALL {
            self.closed.with_label_values(&[listener, reason.as_str()]);
        }
    }

    /// A connection was accepted; the returned guard counts it as open until dropped.
    pub fn accepted(&self, listener: &str) -> OpenConnection {
        self.accepted.with_label_values(&[listener]).inc();
        let open = self.open.with_label_values(&[listener]);
        open.inc();
        OpenConnection { open }
    }

    pub fn closed(&self, listener: &str, reason: CloseLabel) {
        self.closed.with_label_values(&[listener, reason.as_str()]).inc();
    }
}

/// Keeps `sluice_connections_open` right however a connection task ends (even by abort).
pub struct OpenConnection {
    open: IntGauge,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// Request versions with a pre-resolved counter (0 up to this bound); higher ones are looked up.
const VERSION_SLOTS: usize = 32;

/// Per-API request metrics, pre-resolved.
pub struct ApiMetrics {
    pub requests: IntCounter,
    pub request_bytes: IntCounter,
    pub response_bytes: IntCounter,
    pub queue_time: Histogram,
    pub processing_time: Histogram,
    pub total_time: Histogram,
    api: &'static str,
    errors_vec: IntCounterVec,
    errors: Box<[OnceLock<IntCounter>]>,
    versions_vec: IntCounterVec,
    versions: Box<[OnceLock<IntCounter>]>,
}

impl ApiMetrics {
    /// Counts one request of this API at `version` (Kafka's `RequestsPerSec` `version` tag).
    pub fn version(&self, version: i16) {
        match usize::try_from(version).ok().and_then(|v| self.versions.get(v)) {
            Some(slot) => {
                slot.get_or_init(|| self.versions_vec.with_label_values(&[self.api, &version.to_string()])).inc()
            }
            None => self.versions_vec.with_label_values(&[self.api, &version.to_string()]).inc(),
        }
    }

    /// Counts one error code (0 = NONE) in a response of this API.
    pub fn error_code(&self, code: i16) {
        match self.error_slot(code) {
            Some(counter) => counter.inc(),
            None => self.errors_vec.with_label_values(&[self.api, &error_name(code)]).inc(),
        }
    }

    /// The pre-resolved counter of a common code (created on first use).
    fn error_slot(&self, code: i16) -> Option<&IntCounter> {
        let slot = self.errors.get(usize::try_from(code as isize + 1).ok()?)?;
        Some(slot.get_or_init(|| self.errors_vec.with_label_values(&[self.api, &error_name(code)])))
    }

    /// Counts every error code of a typed response.
    pub fn response_errors<R: ResponseErrorCodes + ?Sized>(&self, response: &R) {
        response.for_each_error_code(&mut |code| self.error_code(code));
    }
}

pub struct RequestMetrics {
    requests: IntCounterVec,
    requests_by_version: IntCounterVec,
    request_bytes: IntCounterVec,
    response_bytes: IntCounterVec,
    errors: IntCounterVec,
    queue_time: HistogramVec,
    processing_time: HistogramVec,
    total_time: HistogramVec,
    by_key: Box<[OnceLock<ApiMetrics>]>,
}

impl RequestMetrics {
    fn new(r: &Registry) -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(r, IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
        };
        let histogram = |name: &str, help: &str| {
            register(
                r,
                HistogramVec::new(HistogramOpts::new(name, help).buckets(latency_buckets()), &["api"])
                    .expect("valid metric"),
            )
        };
        let m = RequestMetrics {
            requests: counter("sluice_requests_total", "Requests received, by Kafka API.", &["api"]),
            requests_by_version: counter(
                "sluice_requests_by_version_total",
                "Requests received, by Kafka API and request version.",
                &["api", "version"],
            ),
            request_bytes: counter("sluice_request_bytes_total", "Request bytes received (size prefix included), by API.", &["api"]),
            response_bytes: counter("sluice_response_bytes_total", "Response bytes sent (size prefix included), by API.", &["api"]),
            errors: counter(
                "sluice_request_errors_total",
                "Error codes in responses (top-level and per topic/partition; error=\"NONE\" counts successes), by API and code.",
                &["api", "error"],
            ),
            queue_time: histogram(
                "sluice_request_queue_time_seconds",
                "Time from a request's frame being read to its handler starting (header parse and body decode).",
            ),
            processing_time: histogram(
                "sluice_request_processing_time_seconds",
                "Time in the handler, including a Fetch long poll and encoding the response.",
            ),
            total_time: histogram(
                "sluice_request_total_time_seconds",
                "Time from a request's frame being read to its response being written to the socket.",
            ),
            by_key: (0..API_SLOTS).map(|_| OnceLock::new()).collect(),
        };
        // The APIs Sluice serves get their series up front, so a dashboard shows zeros.
        for (key, _, _) in crate::apis::SUPPORTED_APIS {
            m.api(*key).error_slot(0);
        }
        m
    }

    /// The handles of one API (created on first use).
    pub fn api(&self, key: ApiKey) -> &ApiMetrics {
        let slot = &self.by_key[(key as i16 as usize).min(API_SLOTS - 1)];
        slot.get_or_init(|| {
            let name = api_name(key);
            ApiMetrics {
                requests: self.requests.with_label_values(&[name]),
                request_bytes: self.request_bytes.with_label_values(&[name]),
                response_bytes: self.response_bytes.with_label_values(&[name]),
                queue_time: self.queue_time.with_label_values(&[name]),
                processing_time: self.processing_time.with_label_values(&[name]),
                total_time: self.total_time.with_label_values(&[name]),
                api: name,
                errors_vec: self.errors.clone(),
                errors: (0..ERROR_CODE_SLOTS).map(|_| OnceLock::new()).collect(),
                versions_vec: self.requests_by_version.clone(),
                versions: (0..VERSION_SLOTS).map(|_| OnceLock::new()).collect(),
            }
        })
    }
}

/// Kafka's name of an API (`Produce`, `ApiVersions`, ...), as in Kafka's `request=` metric tag.
fn api_name(key: ApiKey) -> &'static str {
    // `ApiKey`'s Debug output is the Kafka name; leak each one once (at most 93 short strings).
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (0..API_SLOTS as i16)
            .map(|k| match ApiKey::try_from(k) {
                Ok(key) => &*Box::leak(format!("{key:?}").into_boxed_str()),
                Err(()) => "Unknown",
            })
            .collect()
    });
    names.get(key as i16 as usize).copied().unwrap_or("Unknown")
}

/// Kafka's name of an error code: `NONE`, `CORRUPT_MESSAGE`, `UNKNOWN_TOPIC_OR_PARTITION`, ...
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_CODE_{c}"),
        Some(e) => {
            // `kafka-protocol` names variants in CamelCase (`CorruptMessage`); Kafka's Errors.java
            // names are the SCREAMING_SNAKE form of the same words.
            let camel = e.to_string();
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, ch) in camel.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            out
        }
    }
}

/// Produce/fetch throughput per topic.
pub struct TopicMetrics {
    produce_bytes: IntCounterVec,
    produce_records: IntCounterVec,
    fetch_bytes: IntCounterVec,
    /// Bumped when a topic's series are removed; connections drop their caches when it moves.
    generation: AtomicU64,
}

/// One topic's pre-resolved counters.
#[derive(Clone)]
pub struct TopicCounters {
    pub produce_bytes: IntCounter,
    pub produce_records: IntCounter,
    pub fetch_bytes: IntCounter,
}

impl TopicMetrics {
    fn new(r: &Registry) -> Self {
        let counter = |name: &str, help: &str| {
            register(r, IntCounterVec::new(Opts::new(name, help), &["topic"]).expect("valid metric"))
        };
        TopicMetrics {
            produce_bytes: counter("sluice_produce_bytes_total", "Record batch bytes appended by Produce, by topic."),
            produce_records: counter(
                "sluice_produce_records_total",
                "Records appended by Produce (batch header record counts), by topic.",
            ),
            fetch_bytes: counter("sluice_fetch_bytes_total", "Record batch bytes returned by Fetch, by topic."),
            generation: AtomicU64::new(0),
        }
    }

    /// The counters of `topic` (a label lookup: callers cache the result).
    pub fn counters(&self, topic: &str) -> TopicCounters {
        TopicCounters {
            produce_bytes: self.produce_bytes.with_label_values(&[topic]),
            produce_records: self.produce_records.with_label_values(&[topic]),
            fetch_bytes: self.fetch_bytes.with_label_values(&[topic]),
        }
    }

    /// Removes a deleted topic's series and invalidates every connection's cache.
    pub fn forget(&self, topic: &str) {
        let _ = self.produce_bytes.remove_label_values(&[topic]);
        let _ = self.produce_records.remove_label_values(&[topic]);
        let _ = self.fetch_bytes.remove_label_values(&[topic]);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// A topic as a request names it: by name, or by id from Produce v13 / Fetch v13.
#[derive(Clone)]
pub enum TopicRef {
    Name(StrBytes),
    Id(uuid::Uuid),
}

/// One connection's metrics state: when the current request arrived, cached per-topic counters
/// and a reusable buffer for produce accounting. Owned by the connection task, so the hot path
/// takes no lock.
pub struct ConnectionMetrics {
    metrics: Arc<Metrics>,
    /// When the current request's frame was completely read.
    pub received_at: Instant,
    generation: u64,
    by_name: HashMap<String, TopicCounters>,
    by_id: HashMap<uuid::Uuid, TopicCounters>,
    /// (topic, batch bytes, records) per produce partition, in request order; reused.
    pub(crate) produce_scratch: Vec<(TopicRef, u64, u64)>,
}

use crate::limits::TOPIC_CACHE_MAX;

impl ConnectionMetrics {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let generation = metrics.topics.generation();
        ConnectionMetrics {
            metrics,
            received_at: Instant::now(),
            generation,
            by_name: HashMap::new(),
            by_id: HashMap::new(),
            produce_scratch: Vec::new(),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Time since the current request was read.
    pub fn since_received(&self) -> Duration {
        self.received_at.elapsed()
    }

    fn check_generation(&mut self) {
        let g = self.metrics.topics.generation();
        if g != self.generation || self.by_name.len() + self.by_id.len() > TOPIC_CACHE_MAX {
            self.by_name.clear();
            self.by_id.clear();
            self.generation = g;
        }
    }

    /// The counters of a topic named in a request; `resolve_id` maps a topic id to its name
    /// (consulted on a cache miss only). `None` for an unknown topic id.
    pub fn topic(
        &mut self,
        topic: &TopicRef,
        resolve_id: impl FnOnce(&uuid::Uuid) -> Option<String>,
    ) -> Option<&TopicCounters> {
        self.check_generation();
        match topic {
            TopicRef::Name(name) => {
                let name = name.as_str();
                if !self.by_name.contains_key(name) {
                    let c = self.metrics.topics.counters(name);
                    self.by_name.insert(name.to_string(), c);
                }
                self.by_name.get(name)
            }
            TopicRef::Id(id) => {
                if !self.by_id.contains_key(id) {
                    let name = resolve_id(id)?;
                    let c = self.metrics.topics.counters(&name);
                    self.by_id.insert(*id, c);
                }
                self.by_id.get(id)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_follow_kafka() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(2), "CORRUPT_MESSAGE");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(56), "KAFKA_STORAGE_ERROR");
        assert_eq!(error_name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(error_name(30000), "UNKNOWN_CODE_30000");
    }

    #[test]
    fn produce_error_codes_cover_every_partition() {
        use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
        let mut resp = kafka_protocol::messages::ProduceResponse::default();
        let mut t = TopicProduceResponse::default();
        for code in [0, 2, 0] {
            let mut p = PartitionProduceResponse::default();
            p.error_code = code;
            t.partition_responses.push(p);
        }
        resp.responses.push(t);
        let mut seen = Vec::new();
        resp.for_each_error_code(&mut |c| seen.push(c));
        assert_eq!(seen, vec![0, 2, 0]);
    }

    #[test]
    fn api_names_are_kafka_names() {
        assert_eq!(api_name(ApiKey::Produce), "Produce");
        assert_eq!(api_name(ApiKey::ApiVersions), "ApiVersions");
        assert_eq!(api_name(ApiKey::DescribeCluster), "DescribeCluster");
    }

    #[test]
    fn registries_are_independent_and_render_text() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.requests.api(ApiKey::Produce).requests.inc();
        a.requests.api(ApiKey::Produce).error_code(2);
        let text = a.render();
        assert!(text.contains("sluice_requests_total{api=\"Produce\"} 1"), "{text}");
        assert!(text.contains("sluice_request_errors_total{api=\"Produce\",error=\"CORRUPT_MESSAGE\"} 1"), "{text}");
        assert!(b.render().contains("sluice_requests_total{api=\"Produce\"} 0"));
    }

    #[test]
    fn forgetting_a_topic_invalidates_connection_caches() {
        let m = Arc::new(Metrics::new());
        let mut conn = ConnectionMetrics::new(m.clone());
        let t = TopicRef::Name(StrBytes::from_static_str("t"));
        conn.topic(&t, |_| None).expect("named").produce_bytes.inc_by(5);
        assert!(m.render().contains("sluice_produce_bytes_total{topic=\"t\"} 5"));
        m.topics.forget("t");
        assert!(!m.render().contains("topic=\"t\""));
        conn.topic(&t, |_| None).expect("named").produce_bytes.inc_by(2);
        assert!(m.render().contains("sluice_produce_bytes_total{topic=\"t\"} 2"));
    }
}
