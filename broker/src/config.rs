//! Broker configuration: Kafka's property names, types and defaults.
//!
//! `sluice [server.properties] [--override key=value]...` — the properties file is read first, then
//! each override. Every known key is parsed and validated against its definition in [`BROKER_CONFIGS`];
//! a bad value stops startup with an error naming the key, an unknown key is only warned about (as
//! Kafka does). The typed [`Config`] is what the rest of the broker reads; the raw map is kept for
//! DescribeConfigs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A configuration error names the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    fn new(key: &str, reason: impl Into<String>) -> Self {
        Self { key: key.to_string(), reason: reason.into() }
    }
}

/// The type of a config value, as Kafka's `ConfigDef.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    Int,
    Long,
    Double,
    String,
    List,
    Password,
}

/// One known broker config: name, type, default (None = no default, i.e. null) and inclusive bounds.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    pub default: Option<&'static str>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub allowed: &'static [&'static str],
}

const fn def(name: &'static str, kind: ConfigType, default: Option<&'static str>) -> ConfigDef {
    ConfigDef { name, kind, default, min: None, max: None, allowed: &[] }
}

const fn ranged(name: &'static str, kind: ConfigType, default: &'static str, min: i64, max: i64) -> ConfigDef {
    ConfigDef { name, kind, default: Some(default), min: Some(min), max: Some(max), allowed: &[] }
}

const fn choice(name: &'static str, default: &'static str, allowed: &'static [&'static str]) -> ConfigDef {
    ConfigDef { name, kind: ConfigType::String, default: Some(default), min: None, max: None, allowed }
}

use ConfigType::{Boolean, Double, Int, List, Long, Password, String as Str};

const LMAX: i64 = i64::MAX;
const IMAX: i64 = i32::MAX as i64;
const LMAX_S: &str = "9223372036854775807";
const IMAX_S: &str = "2147483647";

pub const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
pub const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];

/// Every broker config Sluice knows, with Kafka 4.x defaults (Sluice's own: listeners on 127.0.0.1,
/// `log.dirs=./data`, `node.id=1`, `remote.log.storage.url`, `metrics.listener`).
pub static BROKER_CONFIGS: &[ConfigDef] = &[
    // Identity and network.
    ranged("node.id", Int, "1", 0, IMAX),
    ranged("broker.id", Int, "-1", -1, IMAX),
    def("listeners", List, Some("PLAINTEXT://127.0.0.1:9092")),
    def("advertised.listeners", List, None),
    def(
        "listener.security.protocol.map",
        List,
        Some("PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"),
    ),
    def("inter.broker.listener.name", Str, None),
    def("process.roles", List, Some("broker,controller")),
    def("controller.listener.names", List, None),
    def("controller.quorum.voters", List, Some("")),
    def("controller.quorum.bootstrap.servers", List, Some("")),
    ranged("socket.request.max.bytes", Int, "104857600", 1, IMAX),
    ranged("socket.send.buffer.bytes", Int, "102400", -1, IMAX),
    ranged("socket.receive.buffer.bytes", Int, "102400", -1, IMAX),
    ranged("max.connections", Int, IMAX_S, 0, IMAX),
    ranged("max.connections.per.ip", Int, IMAX_S, 0, IMAX),
    def("max.connections.per.ip.overrides", Str, Some("")),
    ranged("connections.max.idle.ms", Long, "600000", -1, LMAX),
    ranged("queued.max.requests", Int, "500", 1, IMAX),
    ranged("queued.max.request.bytes", Long, "-1", -1, LMAX),
    // Sluice's own: response bytes a connection may have queued before its next request is read.
    ranged("queued.max.response.bytes", Long, "67108864", 1024, LMAX),
    ranged("num.network.threads", Int, "3", 1, IMAX),
    ranged("num.io.threads", Int, "8", 1, IMAX),
    ranged("request.timeout.ms", Int, "30000", 0, IMAX),
    // Topics and logs.
    def("log.dirs", List, None),
    def("log.dir", List, Some("./data")),
    ranged("num.partitions", Int, "1", 1, IMAX),
    // KIP-578's name; unset means derived from the open-file limit (see `limits`).
    ConfigDef { name: "max.broker.partitions", kind: Int, default: None, min: Some(1), max: Some(IMAX), allowed: &[] },
    // Kafka's controller refuses a request that would write more than 10,000 records
    // (`MAX_RECORDS_PER_USER_OP`); Sluice makes that bound a config.
    ranged("max.partitions.per.request", Int, "10000", 1, IMAX),
    // The most partitions one DescribeTopicPartitions response describes.
    ranged("max.request.partition.size.limit", Int, "2000", 1, IMAX),
    ranged("default.replication.factor", Int, "1", 1, IMAX),
    def("auto.create.topics.enable", Boolean, Some("true")),
    def("delete.topic.enable", Boolean, Some("true")),
    ranged("log.segment.bytes", Int, "1073741824", 14, IMAX),
    ConfigDef { name: "log.roll.ms", kind: Long, default: None, min: Some(1), max: Some(LMAX), allowed: &[] },
    ranged("log.roll.hours", Int, "168", 1, IMAX),
    ConfigDef { name: "log.roll.jitter.ms", kind: Long, default: None, min: Some(0), max: Some(LMAX), allowed: &[] },
    ranged("log.roll.jitter.hours", Int, "0", 0, IMAX),
    ranged("log.index.size.max.bytes", Int, "10485760", 4, IMAX),
    ranged("log.index.interval.bytes", Int, "4096", 0, IMAX),
    ranged("log.flush.interval.messages", Long, LMAX_S, 1, LMAX),
    ConfigDef { name: "log.flush.interval.ms", kind: Long, default: None, min: Some(0), max: Some(LMAX), allowed: &[] },
    ranged("log.flush.scheduler.interval.ms", Long, LMAX_S, 0, LMAX),
    ranged("log.flush.offset.checkpoint.interval.ms", Int, "60000", 0, IMAX),
    ranged("log.flush.start.offset.checkpoint.interval.ms", Int, "60000", 0, IMAX),
    ConfigDef { name: "log.retention.ms", kind: Long, default: None, min: Some(-1), max: Some(LMAX), allowed: &[] },
    ConfigDef { name: "log.retention.minutes", kind: Int, default: None, min: Some(-1), max: Some(IMAX), allowed: &[] },
    ranged("log.retention.hours", Int, "168", -1, IMAX),
    ranged("log.retention.bytes", Long, "-1", -1, LMAX),
    ranged("log.retention.check.interval.ms", Long, "300000", 1, LMAX),
    ranged("log.segment.delete.delay.ms", Long, "60000", 0, LMAX),
    def("log.cleanup.policy", List, Some("delete")),
    def("log.cleaner.enable", Boolean, Some("true")),
    ranged("log.cleaner.threads", Int, "1", 0, IMAX),
    ranged("log.cleaner.dedupe.buffer.size", Long, "134217728", 0, LMAX),
    ranged("log.cleaner.io.buffer.size", Int, "524288", 0, IMAX),
    ranged("log.cleaner.backoff.ms", Long, "15000", 0, LMAX),
    ranged("log.cleaner.min.compaction.lag.ms", Long, "0", 0, LMAX),
    ranged("log.cleaner.max.compaction.lag.ms", Long, LMAX_S, 1, LMAX),
    ranged("log.cleaner.delete.retention.ms", Long, "86400000", 0, LMAX),
    def("log.cleaner.min.cleanable.ratio", Double, Some("0.5")),
    ranged("message.max.bytes", Int, "1048588", 0, IMAX),
    choice("compression.type", "producer", COMPRESSION_TYPES),
    ranged("compression.gzip.level", Int, "-1", -1, 9),
    ranged("compression.lz4.level", Int, "9", 1, 17),
    ranged("compression.zstd.level", Int, "3", -131072, 22),
    choice("log.message.timestamp.type", "CreateTime", TIMESTAMP_TYPES),
    ranged("log.message.timestamp.before.max.ms", Long, LMAX_S, 0, LMAX),
    ranged("log.message.timestamp.after.max.ms", Long, "3600000", 0, LMAX),
    ranged("min.insync.replicas", Int, "1", 1, IMAX),
    def("unclean.leader.election.enable", Boolean, Some("false")),
    ranged("num.recovery.threads.per.data.dir", Int, "2", 1, IMAX),
    // Kafka's quota on the copying of AlterReplicaLogDirs moves, broker-wide.
    ranged("replica.alter.log.dirs.io.max.bytes.per.second", Long, LMAX_S, 1, LMAX),
    // Fetch.
    ranged("fetch.max.bytes", Int, "57671680", 1024, IMAX),
    ranged("max.incremental.fetch.session.cache.slots", Int, "1000", 0, IMAX),
    // Sluice's own: partitions one fetch session may hold; larger fetches run sessionless.
    ranged("max.incremental.fetch.session.partitions", Int, "100000", 1, IMAX),
    // Groups and offsets.
    ranged("group.initial.rebalance.delay.ms", Int, "3000", 0, IMAX),
    ranged("group.min.session.timeout.ms", Int, "6000", 0, IMAX),
    ranged("group.max.session.timeout.ms", Int, "1800000", 0, IMAX),
    ranged("group.max.size", Int, IMAX_S, 1, IMAX),
    // KIP-848 consumer groups (group.protocol=consumer).
    ranged("group.consumer.session.timeout.ms", Int, "45000", 1, IMAX),
    ranged("group.consumer.heartbeat.interval.ms", Int, "5000", 1, IMAX),
    def("group.consumer.assignors", List, Some("uniform,range")),
    ranged("group.consumer.max.size", Int, IMAX_S, 1, IMAX),
    ranged("offsets.topic.num.partitions", Int, "50", 1, IMAX),
    ranged("offsets.topic.replication.factor", Int, "3", 1, IMAX),
    ranged("offsets.topic.segment.bytes", Int, "104857600", 1, IMAX),
    ranged("offsets.retention.minutes", Int, "10080", 1, IMAX),
    ranged("offsets.retention.check.interval.ms", Long, "600000", 1, LMAX),
    ranged("offsets.commit.timeout.ms", Int, "5000", 1, IMAX),
    ranged("offsets.load.buffer.size", Int, "5242880", 1, IMAX),
    ranged("offset.metadata.max.bytes", Int, "4096", 0, IMAX),
    // Transactions.
    ranged("transaction.max.timeout.ms", Int, "900000", 1, IMAX),
    ranged("transactional.id.expiration.ms", Int, "604800000", 1, IMAX),
    ranged("transaction.state.log.num.partitions", Int, "50", 1, IMAX),
    ranged("transaction.state.log.replication.factor", Int, "3", 1, IMAX),
    ranged("transaction.state.log.min.isr", Int, "2", 1, IMAX),
    ranged("transaction.state.log.segment.bytes", Int, "104857600", 1, IMAX),
    ranged("transaction.abort.timed.out.transaction.cleanup.interval.ms", Int, "10000", 1, IMAX),
    ranged("producer.id.expiration.ms", Int, "86400000", 1, IMAX),
    ranged("producer.id.expiration.check.interval.ms", Int, "600000", 1, IMAX),
    // Tiered storage.
    def("remote.log.storage.system.enable", Boolean, Some("false")),
    def("remote.log.storage.url", Str, None),
    ranged("remote.log.manager.task.interval.ms", Long, "30000", 1, LMAX),
    ranged("remote.log.index.file.cache.total.size.bytes", Long, "1073741824", 1, LMAX),
    // Sluice's own.
    def("metrics.listener", Str, Some("127.0.0.1:9644")),
    def("metrics.per.partition.enable", Boolean, Some("true")),
    def("log.format", Str, Some("text")),
];

/// Broker configs AlterConfigs/IncrementalAlterConfigs may change at runtime (Kafka's
/// `DynamicBrokerConfig`: the `log.*` defaults of topic configs, `message.max.bytes`,
/// `compression.type`, the cleaner's settings, the AlterReplicaLogDirs copy quota) plus Sluice's
/// `log.retention.check.interval.ms`.
/// Every other broker config is read-only.
pub fn is_dynamic_broker_config(name: &str) -> bool {
    const OTHERS: &[&str] = &[
        "log.cleaner.threads",
        "log.cleaner.dedupe.buffer.size",
        "log.cleaner.io.buffer.size",
        "log.cleaner.backoff.ms",
        "log.retention.check.interval.ms",
        "replica.alter.log.dirs.io.max.bytes.per.second",
    ];
    // The scheduler interval is a synonym of flush.ms but drives a broker task: static in Kafka.
    OTHERS.contains(&name)
        || (name != "log.flush.scheduler.interval.ms"
            && crate::topic_config::TOPIC_CONFIGS.iter().any(|d| d.synonyms.iter().any(|(s, _)| *s == name)))
}

/// Looks up a broker config definition by name.
pub fn broker_config_def(name: &str) -> Option<&'static ConfigDef> {
    BROKER_CONFIGS.iter().find(|d| d.name == name)
}

/// Validates one value against its definition; returns it normalized (trimmed).
pub fn validate_value(def: &ConfigDef, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    match def.kind {
        Boolean => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err(ConfigError::new(def.name, format!("expected true or false, got '{v}'")));
            }
            Ok(v.to_ascii_lowercase())
        }
        Int | Long => {
            let n: i64 =
                v.parse().map_err(|_| ConfigError::new(def.name, format!("expected an integer, got '{v}'")))?;
            if def.kind == Int && (n < i32::MIN as i64 || n > i32::MAX as i64) {
                return Err(ConfigError::new(def.name, format!("{n} does not fit in a 32-bit int")));
            }
            if let Some(min) = def.min {
                if n < min {
                    return Err(ConfigError::new(def.name, format!("{n} is below the minimum {min}")));
                }
            }
            if let Some(max) = def.max {
                if n > max {
                    return Err(ConfigError::new(def.name, format!("{n} is above the maximum {max}")));
                }
            }
            Ok(n.to_string())
        }
        Double => {
            let d: f64 = v.parse().map_err(|_| ConfigError::new(def.name, format!("expected a number, got '{v}'")))?;
            if !d.is_finite() {
                return Err(ConfigError::new(def.name, format!("expected a finite number, got '{v}'")));
            }
            Ok(v.to_string())
        }
        Str | Password => {
            if !def.allowed.is_empty() && !def.allowed.contains(&v) {
                return Err(ConfigError::new(def.name, format!("'{v}' is not one of {}", def.allowed.join(", "))));
            }
            Ok(v.to_string())
        }
        List => Ok(v.to_string()),
    }
}

/// A listener: name (e.g. `PLAINTEXT`), host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: std::string::String,
    pub host: std::string::String,
    pub port: u16,
}

impl Listener {
    /// `host:port` for binding (an empty host means all interfaces, as in Kafka).
    pub fn bind_addr(&self) -> std::string::String {
        let host = if self.host.is_empty() { "0.0.0.0" } else { self.host.as_str() };
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

fn parse_listeners(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, rest) =
            item.split_once("://").ok_or_else(|| ConfigError::new(key, format!("'{item}' is not NAME://host:port")))?;
        let (host, port) =
            rest.rsplit_once(':').ok_or_else(|| ConfigError::new(key, format!("'{item}' has no port")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| ConfigError::new(key, format!("'{item}' has an invalid port")))?;
        if name.is_empty() {
            return Err(ConfigError::new(key, format!("'{item}' has no listener name")));
        }
        if out.iter().any(|l: &Listener| l.name == name) {
            return Err(ConfigError::new(key, format!("listener name {name} appears twice")));
        }
        out.push(Listener { name: name.to_string(), host: host.to_string(), port });
    }
    if out.is_empty() {
        return Err(ConfigError::new(key, "no listener given"));
    }
    Ok(out)
}

/// The group coordinator's settings (Kafka's `group.*` and `offsets.*` broker configs).
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: i32,
    pub max_size: i32,
    pub consumer_session_timeout_ms: i32,
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.assignors` as given (names or class names).
    pub consumer_assignors: Vec<std::string::String>,
    pub consumer_max_size: i32,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_segment_bytes: i32,
    pub offsets_retention_minutes: i32,
    pub offsets_retention_check_interval_ms: i64,
    pub offset_metadata_max_bytes: i32,
}

/// The transaction coordinator's settings (Kafka's `transaction.*` broker configs).
#[derive(Debug, Clone)]
pub struct TransactionSettings {
    pub max_timeout_ms: i32,
    pub state_log_num_partitions: i32,
    pub state_log_segment_bytes: i32,
    pub id_expiration_ms: i32,
    pub abort_timed_out_transaction_cleanup_interval_ms: i32,
}

/// The typed broker configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Every known key with its effective value (defaults filled in), for DescribeConfigs.
    pub values: BTreeMap<std::string::String, std::string::String>,
    /// Keys set explicitly (file or override), as opposed to defaults.
    pub explicit: BTreeMap<std::string::String, std::string::String>,
    pub node_id: i32,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub socket_request_max_bytes: usize,
    /// `max.connections`; when not set explicitly, startup lowers it to what the open-file
    /// limit allows (see [`crate::limits`]).
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides`: per-address limits (hosts resolved at startup).
    pub max_connections_per_ip_overrides: Vec<(std::net::IpAddr, usize)>,
    pub connections_max_idle_ms: i64,
    pub queued_max_requests: usize,
    /// `queued.max.request.bytes` (`None` for -1: no bound beyond `socket.request.max.bytes` per
    /// connection).
    pub queued_max_request_bytes: Option<usize>,
    pub queued_max_response_bytes: usize,
    /// `max.broker.partitions`; when not set explicitly, derived from the open-file limit.
    pub max_broker_partitions: usize,
    pub max_partitions_per_request: usize,
    /// `max.request.partition.size.limit`: caps a DescribeTopicPartitions request's
    /// `response_partition_limit`.
    pub max_request_partition_size_limit: usize,
    pub fetch_max_bytes: usize,
    pub max_incremental_fetch_session_cache_slots: usize,
    pub max_incremental_fetch_session_partitions: usize,
    pub log_flush_scheduler_interval_ms: i64,
    pub log_flush_offset_checkpoint_interval_ms: i64,
    pub metrics_listener: Option<SocketAddr>,
    /// Per-partition storage gauges (size, offsets) on `/metrics`; off for brokers with very many
    /// partitions, leaving the per-topic totals.
    pub metrics_per_partition_enable: bool,
    pub log_format_json: bool,
    pub group: GroupSettings,
    pub transactions: TransactionSettings,
    /// Keys that are not Kafka or Sluice configs (warned about at startup).
    pub unknown_keys: Vec<std::string::String>,
}

impl Config {
    /// `[server.properties] [--override key=value]...`
    pub fn from_args<I: IntoIterator<Item = std::string::String>>(args: I) -> Result<Config, ConfigError> {
        let mut pairs: Vec<(std::string::String, std::string::String)> = Vec::new();
        let mut args = args.into_iter().peekable();
        let mut first = true;
        while let Some(arg) = args.next() {
            if arg == "--override" {
                let kv = args.next().ok_or_else(|| ConfigError::new("--override", "expects key=value"))?;
                pairs.push(split_kv("--override", &kv)?);
            } else if let Some(kv) = arg.strip_prefix("--override=") {
                pairs.push(split_kv("--override", kv)?);
            } else if first && !arg.starts_with('-') {
                let text = std::fs::read_to_string(&arg)
                    .map_err(|e| ConfigError::new("server.properties", format!("cannot read {arg}: {e}")))?;
                pairs.extend(parse_properties(&text));
            } else {
                return Err(ConfigError::new(
                    &arg,
                    "unknown argument; usage: sluice [server.properties] [--override key=value]...",
                ));
            }
            first = false;
        }
        Self::from_pairs(pairs)
    }

    /// Defaults plus `key=value` overrides (what tests use).
    pub fn from_overrides(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Self::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn from_pairs(
        pairs: impl IntoIterator<Item = (std::string::String, std::string::String)>,
    ) -> Result<Config, ConfigError> {
        let mut explicit = BTreeMap::new();
        let mut unknown_keys = Vec::new();
        for (k, v) in pairs {
            match broker_config_def(&k) {
                Some(d) => {
                    let v = validate_value(d, &v)?;
                    explicit.insert(k, v);
                }
                None => {
                    // Topic-level configs are not broker configs; anything else is unknown.
                    unknown_keys.push(k.clone());
                    explicit.insert(k, v);
                }
            }
        }
        let mut values = BTreeMap::new();
        for d in BROKER_CONFIGS {
            if let Some(v) = explicit.get(d.name) {
                values.insert(d.name.to_string(), v.clone());
            } else if let Some(v) = d.default {
                values.insert(d.name.to_string(), v.to_string());
            }
        }
        let get = |k: &str| values.get(k).cloned();
        let get_i64 = |k: &str| -> i64 { get(k).and_then(|v| v.parse().ok()).unwrap_or_default() };
        let get_bool = |k: &str| get(k).as_deref() == Some("true");

        let node_id = match explicit.get("node.id") {
            Some(_) => get_i64("node.id") as i32,
            None if get_i64("broker.id") >= 0 => get_i64("broker.id") as i32,
            None => get_i64("node.id") as i32,
        };
        let listeners = parse_listeners("listeners", &get("listeners").unwrap_or_default())?;
        let protocol_map = parse_protocol_map(&get("listener.security.protocol.map").unwrap_or_default())?;
        for l in &listeners {
            match protocol_map.get(&l.name).map(std::string::String::as_str) {
                Some("PLAINTEXT") => {}
                Some(other) => {
                    return Err(ConfigError::new(
                        "listeners",
                        format!(
                            "listener {} uses security protocol {other}, which Sluice does not support yet",
                            l.name
                        ),
                    ))
                }
                None => {
                    return Err(ConfigError::new(
                        "listener.security.protocol.map",
                        format!("no security protocol for listener {}", l.name),
                    ))
                }
            }
        }
        let advertised_listeners = match get("advertised.listeners") {
            Some(v) if !v.trim().is_empty() => {
                let adv = parse_listeners("advertised.listeners", &v)?;
                for a in &adv {
                    if !listeners.iter().any(|l| l.name == a.name) {
                        return Err(ConfigError::new(
                            "advertised.listeners",
                            format!("listener {} is not in listeners", a.name),
                        ));
                    }
                }
                adv
            }
            _ => listeners.clone(),
        };
        let dirs = get("log.dirs").or_else(|| get("log.dir")).unwrap_or_else(|| "./data".into());
        let log_dirs: Vec<PathBuf> =
            dirs.split(',').map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from).collect();
        if log_dirs.is_empty() {
            return Err(ConfigError::new("log.dirs", "no directory given"));
        }
        let metrics_listener = match get("metrics.listener") {
            Some(v) if v.trim().is_empty() || v.trim() == "none" => None,
            Some(v) => Some(
                v.trim()
                    .parse::<SocketAddr>()
                    .map_err(|_| ConfigError::new("metrics.listener", format!("'{v}' is not host:port")))?,
            ),
            None => None,
        };
        let log_format_json = match get("log.format").as_deref() {
            Some("json") => true,
            Some("text") | None => false,
            Some(other) => return Err(ConfigError::new("log.format", format!("'{other}' is not text or json"))),
        };
        if let Some(v) = get("remote.log.storage.url") {
            let ok = v.starts_with("s3://") || v.starts_with("file://") || v.starts_with("memory://");
            if !ok {
                return Err(ConfigError::new(
                    "remote.log.storage.url",
                    format!("'{v}' must start with s3://, file:// or memory://"),
                ));
            }
        }
        let flush_sched = get_i64("log.flush.scheduler.interval.ms");
        // Every key below is validated against its definition above, so it parses and is in range.
        let get_i32 = |k: &str| get_i64(k) as i32;
        let group = GroupSettings {
            min_session_timeout_ms: get_i32("group.min.session.timeout.ms"),
            max_session_timeout_ms: get_i32("group.max.session.timeout.ms"),
            initial_rebalance_delay_ms: get_i32("group.initial.rebalance.delay.ms"),
            max_size: get_i32("group.max.size"),
            consumer_session_timeout_ms: get_i32("group.consumer.session.timeout.ms"),
            consumer_heartbeat_interval_ms: get_i32("group.consumer.heartbeat.interval.ms"),
            consumer_assignors: get("group.consumer.assignors")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            consumer_max_size: get_i32("group.consumer.max.size"),
            offsets_topic_num_partitions: get_i32("offsets.topic.num.partitions"),
            offsets_topic_segment_bytes: get_i32("offsets.topic.segment.bytes"),
            offsets_retention_minutes: get_i32("offsets.retention.minutes"),
            offsets_retention_check_interval_ms: get_i64("offsets.retention.check.interval.ms"),
            offset_metadata_max_bytes: get_i32("offset.metadata.max.bytes"),
        };
        let transactions = TransactionSettings {
            max_timeout_ms: get_i32("transaction.max.timeout.ms"),
            state_log_num_partitions: get_i32("transaction.state.log.num.partitions"),
            state_log_segment_bytes: get_i32("transaction.state.log.segment.bytes"),
            id_expiration_ms: get_i32("transactional.id.expiration.ms"),
            abort_timed_out_transaction_cleanup_interval_ms: get_i32(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            ),
        };
        Ok(Config {
            node_id,
            listeners,
            advertised_listeners,
            log_dirs,
            num_partitions: get_i64("num.partitions") as i32,
            default_replication_factor: get_i64("default.replication.factor").min(i16::MAX as i64) as i16,
            auto_create_topics_enable: get_bool("auto.create.topics.enable"),
            delete_topic_enable: get_bool("delete.topic.enable"),
            socket_request_max_bytes: get_i64("socket.request.max.bytes") as usize,
            max_connections: get_i64("max.connections") as usize,
            max_connections_per_ip: get_i64("max.connections.per.ip") as usize,
            max_connections_per_ip_overrides: parse_per_ip_overrides(
                &get("max.connections.per.ip.overrides").unwrap_or_default(),
            )?,
            connections_max_idle_ms: get_i64("connections.max.idle.ms"),
            queued_max_requests: get_i64("queued.max.requests") as usize,
            queued_max_request_bytes: match get_i64("queued.max.request.bytes") {
                n if n < 0 => None,
                n => Some(n as usize),
            },
            queued_max_response_bytes: get_i64("queued.max.response.bytes") as usize,
            max_broker_partitions: match get("max.broker.partitions") {
                Some(_) => get_i64("max.broker.partitions") as usize,
                None => usize::MAX,
            },
            max_partitions_per_request: get_i64("max.partitions.per.request") as usize,
            max_request_partition_size_limit: get_i64("max.request.partition.size.limit") as usize,
            fetch_max_bytes: get_i64("fetch.max.bytes") as usize,
            max_incremental_fetch_session_cache_slots: get_i64("max.incremental.fetch.session.cache.slots") as usize,
            max_incremental_fetch_session_partitions: get_i64("max.incremental.fetch.session.partitions") as usize,
            log_flush_scheduler_interval_ms: flush_sched,
            log_flush_offset_checkpoint_interval_ms: get_i64("log.flush.offset.checkpoint.interval.ms"),
            metrics_listener,
            metrics_per_partition_enable: get_bool("metrics.per.partition.enable"),
            log_format_json,
            group,
            transactions,
            values,
            explicit,
            unknown_keys,
        })
    }

    /// The effective value of a broker config (explicit or default).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(std::string::String::as_str)
    }

    /// The listener clients should be told about for a connection that arrived on `listener_name`.
    pub fn advertised_for(&self, listener_name: &str) -> Option<&Listener> {
        self.advertised_listeners.iter().find(|l| l.name == listener_name)
    }
}

/// `max.connections.per.ip.overrides`: `host:count,host:count` (Kafka's syntax); a host name is
/// resolved now and the limit applies to each of its addresses.
fn parse_per_ip_overrides(v: &str) -> Result<Vec<(std::net::IpAddr, usize)>, ConfigError> {
    const KEY: &str = "max.connections.per.ip.overrides";
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (host, count) =
            item.rsplit_once(':').ok_or_else(|| ConfigError::new(KEY, format!("'{item}' is not host:count")))?;
        let count: usize = count
            .trim()
            .parse()
            .map_err(|_| ConfigError::new(KEY, format!("'{item}' has no valid connection count")))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<std::net::IpAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(host, 0))
                .map_err(|e| ConfigError::new(KEY, format!("cannot resolve '{host}': {e}")))?
                .map(|a| a.ip())
                .collect(),
        };
        out.extend(addrs.into_iter().map(|ip| (ip, count)));
    }
    Ok(out)
}

fn split_kv(key: &str, kv: &str) -> Result<(std::string::String, std::string::String), ConfigError> {
    let (k, v) = kv.split_once('=').ok_or_else(|| ConfigError::new(key, format!("'{kv}' is not key=value")))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

fn parse_protocol_map(v: &str) -> Result<BTreeMap<std::string::String, std::string::String>, ConfigError> {
    let mut m = BTreeMap::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, proto) = item.split_once(':').ok_or_else(|| {
            ConfigError::new("listener.security.protocol.map", format!("'{item}' is not NAME:PROTOCOL"))
        })?;
        m.insert(name.trim().to_string(), proto.trim().to_string());
    }
    Ok(m)
}

/// Java `.properties` parsing: `key=value` or `key: value` or `key value`, `#`/`!` comments,
/// trailing-backslash continuation lines.
pub fn parse_properties(text: &str) -> Vec<(std::string::String, std::string::String)> {
    let mut out = Vec::new();
    let mut pending = std::string::String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            pending.push_str(stripped);
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        let idx = entry.find(['=', ':']).or_else(|| entry.find(char::is_whitespace));
        match idx {
            Some(i) => out.push((entry[..i].trim().to_string(), entry[i + 1..].trim().to_string())),
            None => out.push((entry.trim().to_string(), std::string::String::new())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::from_overrides(&[]).expect("defaults");
        assert_eq!(c.node_id, 1);
        assert_eq!(c.listeners, vec![Listener { name: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9092 }]);
        assert_eq!(c.log_dirs, vec![PathBuf::from("./data")]);
        assert_eq!(c.num_partitions, 1);
        assert!(c.auto_create_topics_enable);
        assert_eq!(c.socket_request_max_bytes, 100 * 1024 * 1024);
        assert_eq!(c.metrics_listener, Some("127.0.0.1:9644".parse().expect("addr")));
        assert_eq!(c.get("log.segment.bytes"), Some("1073741824"));
    }

    #[test]
    fn connection_and_queue_limits_parse() {
        let c = Config::from_overrides(&[
            ("max.connections.per.ip", "5"),
            ("max.connections.per.ip.overrides", "127.0.0.2:7, [::1]:9"),
            ("queued.max.request.bytes", "1048576"),
        ])
        .expect("config");
        assert_eq!(c.max_connections_per_ip, 5);
        let loopback2: std::net::IpAddr = "127.0.0.2".parse().expect("ip");
        let v6: std::net::IpAddr = "::1".parse().expect("ip");
        assert_eq!(c.max_connections_per_ip_overrides, vec![(loopback2, 7), (v6, 9)]);
        assert_eq!(c.queued_max_request_bytes, Some(1 << 20));
        assert_eq!(Config::from_overrides(&[]).expect("defaults").queued_max_request_bytes, None);
        for bad in ["127.0.0.1", "127.0.0.1:x", "127.0.0.1:-3"] {
            let e = Config::from_overrides(&[("max.connections.per.ip.overrides", bad)]).expect_err(bad);
            assert_eq!(e.key, "max.connections.per.ip.overrides");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = Config::from_overrides(&[("num.partitions", "zero")]).expect_err("bad int");
        assert_eq!(e.key, "num.partitions");
        let e = Config::from_overrides(&[("log.segment.bytes", "1")]).expect_err("below min");
        assert_eq!(e.key, "log.segment.bytes");
        let e = Config::from_overrides(&[("listeners", "127.0.0.1:9092")]).expect_err("no scheme");
        assert_eq!(e.key, "listeners");
        let e = Config::from_overrides(&[("compression.type", "brotli")]).expect_err("choice");
        assert_eq!(e.key, "compression.type");
        let e = Config::from_overrides(&[("auto.create.topics.enable", "yes")]).expect_err("bool");
        assert_eq!(e.key, "auto.create.topics.enable");
        let e = Config::from_overrides(&[("listeners", "SSL://127.0.0.1:9093")]).expect_err("ssl");
        assert_eq!(e.key, "listeners");
        let e = Config::from_overrides(&[("remote.log.storage.url", "ftp://x")]).expect_err("url");
        assert_eq!(e.key, "remote.log.storage.url");
    }

    #[test]
    fn properties_file_then_overrides() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("server.properties");
        std::fs::write(
            &path,
            "# comment\nnode.id=7\nlisteners = PLAINTEXT://127.0.0.1:19092\nlog.dirs=/tmp/a,\\\n /tmp/b\nnum.partitions: 3\nsome.unknown.key=1\n",
        )
        .expect("write");
        let c = Config::from_args(vec![path.display().to_string(), "--override".into(), "num.partitions=5".into()])
            .expect("parse");
        assert_eq!(c.node_id, 7);
        assert_eq!(c.listeners[0].port, 19092);
        assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/a"), PathBuf::from("/tmp/b")]);
        assert_eq!(c.num_partitions, 5);
        assert_eq!(c.unknown_keys, vec!["some.unknown.key".to_string()]);
    }
}
