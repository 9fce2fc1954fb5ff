//! Topic-level configs: Kafka's names, types, broker-level synonyms and validation, and the typed
//! view ([`TopicConfig`]) the produce path and the log read.
//!
//! A topic stores only the keys set on it; every other value comes from its broker synonym
//! (`segment.bytes` ← `log.segment.bytes`), then from Kafka's default.

use std::collections::BTreeMap;

use sluice_protocol::compression::Compression;
use sluice_storage::LogConfig;

use crate::config::{validate_value, Config, ConfigDef, ConfigError, ConfigType, COMPRESSION_TYPES, TIMESTAMP_TYPES};

const LMAX: i64 = i64::MAX;
const IMAX: i64 = i32::MAX as i64;

const fn t(
    name: &'static str,
    kind: ConfigType,
    min: Option<i64>,
    max: Option<i64>,
    allowed: &'static [&'static str],
) -> ConfigDef {
    ConfigDef { name, kind, default: None, min, max, allowed }
}

/// A topic config: its definition and the broker configs it falls back to, in order.
pub struct TopicConfigDef {
    pub def: ConfigDef,
    /// Broker synonyms in precedence order, each with a factor converting its unit to the topic's.
    pub synonyms: &'static [(&'static str, i64)],
    /// Used when no synonym has a value.
    pub default: &'static str,
}

use ConfigType::{Boolean, Double, Int, List, Long, String as Str};

pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        def: t("cleanup.policy", List, None, None, &[]),
        synonyms: &[("log.cleanup.policy", 1)],
        default: "delete",
    },
    TopicConfigDef {
        def: t("compression.type", Str, None, None, COMPRESSION_TYPES),
        synonyms: &[("compression.type", 1)],
        default: "producer",
    },
    TopicConfigDef {
        def: t("compression.gzip.level", Int, Some(-1), Some(9), &[]),
        synonyms: &[("compression.gzip.level", 1)],
        default: "-1",
    },
    TopicConfigDef {
        def: t("compression.lz4.level", Int, Some(1), Some(17), &[]),
        synonyms: &[("compression.lz4.level", 1)],
        default: "9",
    },
    TopicConfigDef {
        def: t("compression.zstd.level", Int, Some(-131072), Some(22), &[]),
        synonyms: &[("compression.zstd.level", 1)],
        default: "3",
    },
    TopicConfigDef {
        def: t("delete.retention.ms", Long, Some(0), Some(LMAX), &[]),
        synonyms: &[("log.cleaner.delete.retention.ms", 1)],
        default: "86400000",
    },
    TopicConfigDef {
        def: t("file.delete.delay.ms", Long, Some(0), Some(LMAX), &[]),
        synonyms: &[("log.segment.delete.delay.ms", 1)],
        default: "60000",
    },
    TopicConfigDef {
        def: t("flush.messages", Long, Some(1), Some(LMAX), &[]),
        synonyms: &[("log.flush.interval.messages", 1)],
        default: "9223372036854775807",
    },
    TopicConfigDef {
        def: t("flush.ms", Long, Some(0), Some(LMAX), &[]),
        synonyms: &[("log.flush.interval.ms", 1), ("log.flush.scheduler.interval.ms", 1)],
        default: "9223372036854775807",
    },
    TopicConfigDef {
        def: t("index.interval.bytes", Int, Some(0), Some(IMAX), &[]),
        synonyms: &[("log.index.interval.bytes", 1)],
        default: "4096",
    },
    TopicConfigDef {
        def: t("max.compaction.lag.ms", Long, Some(1), Some(LMAX), &[]),
        synonyms: &[("log.cleaner.max.compaction.lag.ms", 1)],
        default: "9223372036854775807",
    },
    TopicConfigDef {
        def: t("max.message.bytes", Int, Some(0), Some(IMAX), &[]),
        synonyms: &[("message.max.bytes", 1)],
        default: "1048588",
    },
    TopicConfigDef {
        def: t("message.timestamp.type", Str, None, None, TIMESTAMP_TYPES),
        synonyms: &[("log.message.timestamp.type", 1)],
        default: "CreateTime",
    },
    TopicConfigDef {
        def: t("message.timestamp.before.max.ms", Long, Some(0), Some(LMAX), &[]),
        synonyms: &[("log.message.timestamp.before.max.ms", 1)],
        default: "9223372036854775807",
    },
    TopicConfigDef {
        def: t("message.timestamp.after.max.ms", Long, Some(0), Some(LMAX), &[]),
        synonyms: &[("log.message.timestamp.after.max.ms", 1)],
        default: "3600000",
    },
    TopicConfigDef {
        def: t("min.cleanable.dirty.ratio", Double, None, None, &[]),
        synonyms: &[("log.cleaner.min.cleanable.ratio", 1)],
        default: "0.5",
    },
    TopicConfigDef {
        def: t("min.compaction.lag.ms", Long, Some(0), Some(LMAX), &[]),
        synonyms: &[("log.cleaner.min.compaction.lag.ms", 1)],
        default: "0",
    },
    TopicConfigDef {
        def: t("min.insync.replicas", Int, Some(1), Some(IMAX), &[]),
        synonyms: &[("min.insync.replicas", 1)],
        default: "1",
    },
    TopicConfigDef { def: t("preallocate", Boolean, None, None, &[]), synonyms: &[], default: "false" },
    TopicConfigDef {
        def: t("retention.bytes", Long, Some(-1), Some(LMAX), &[]),
        synonyms: &[("log.retention.bytes", 1)],
        default: "-1",
    },
    TopicConfigDef {
        def: t("retention.ms", Long, Some(-1), Some(LMAX), &[]),
        synonyms: &[("log.retention.ms", 1), ("log.retention.minutes", 60_000), ("log.retention.hours", 3_600_000)],
        default: "604800000",
    },
    TopicConfigDef {
        def: t("segment.bytes", Int, Some(14), Some(IMAX), &[]),
        synonyms: &[("log.segment.bytes", 1)],
        default: "1073741824",
    },
    TopicConfigDef {
        def: t("segment.index.bytes", Int, Some(4), Some(IMAX), &[]),
        synonyms: &[("log.index.size.max.bytes", 1)],
        default: "10485760",
    },
    TopicConfigDef {
        def: t("segment.jitter.ms", Long, Some(0), Some(LMAX), &[]),
        synonyms: &[("log.roll.jitter.ms", 1), ("log.roll.jitter.hours", 3_600_000)],
        default: "0",
    },
    TopicConfigDef {
        def: t("segment.ms", Long, Some(1), Some(LMAX), &[]),
        synonyms: &[("log.roll.ms", 1), ("log.roll.hours", 3_600_000)],
        default: "604800000",
    },
    TopicConfigDef {
        def: t("unclean.leader.election.enable", Boolean, None, None, &[]),
        synonyms: &[("unclean.leader.election.enable", 1)],
        default: "false",
    },
    TopicConfigDef { def: t("remote.storage.enable", Boolean, None, None, &[]), synonyms: &[], default: "false" },
    TopicConfigDef { def: t("local.retention.ms", Long, Some(-2), Some(LMAX), &[]), synonyms: &[], default: "-2" },
    TopicConfigDef { def: t("local.retention.bytes", Long, Some(-2), Some(LMAX), &[]), synonyms: &[], default: "-2" },
    TopicConfigDef {
        def: t("leader.replication.throttled.replicas", List, None, None, &[]),
        synonyms: &[],
        default: "",
    },
    TopicConfigDef {
        def: t("follower.replication.throttled.replicas", List, None, None, &[]),
        synonyms: &[],
        default: "",
    },
];

/// One-line documentation for DescribeConfigs (`include_documentation`), from Kafka's docs.
pub fn topic_config_doc(name: &str) -> &'static str {
    match name {
        "cleanup.policy" => "The retention policy to use on old log segments: delete, compact, or both.",
        "compression.type" => "The final compression type for a topic: uncompressed, zstd, lz4, snappy, gzip or producer (keep the producer's codec).",
        "compression.gzip.level" => "The compression level to use if compression.type is gzip.",
        "compression.lz4.level" => "The compression level to use if compression.type is lz4.",
        "compression.zstd.level" => "The compression level to use if compression.type is zstd.",
        "delete.retention.ms" => "How long delete tombstone markers are retained for compacted topics after the cleaning that first saw them.",
        "file.delete.delay.ms" => "The time to wait before deleting a file from the filesystem.",
        "flush.messages" => "Force an fsync of the log after this many messages.",
        "flush.ms" => "Force an fsync of the log after this much time.",
        "index.interval.bytes" => "How frequently an entry is added to the offset index.",
        "max.compaction.lag.ms" => "The maximum time a message will remain ineligible for compaction in the log.",
        "max.message.bytes" => "The largest record batch size allowed.",
        "message.timestamp.type" => "Whether the timestamp in the message is the message create time or the log append time.",
        "message.timestamp.before.max.ms" => "How far in the past a message timestamp may be (CreateTime).",
        "message.timestamp.after.max.ms" => "How far in the future a message timestamp may be (CreateTime).",
        "min.cleanable.dirty.ratio" => "How frequently the log compactor will attempt to clean the log: the minimum dirty ratio.",
        "min.compaction.lag.ms" => "The minimum time a message will remain uncompacted in the log.",
        "min.insync.replicas" => "The minimum number of in-sync replicas that must acknowledge a write with acks=all.",
        "retention.bytes" => "The maximum size a partition can grow to before old log segments are deleted (-1: no limit).",
        "retention.ms" => "The maximum time a log is retained before old log segments are deleted (-1: no limit).",
        "segment.bytes" => "The segment file size for the log.",
        "segment.index.bytes" => "The size of the index that maps offsets to file positions.",
        "segment.jitter.ms" => "The maximum random jitter subtracted from segment.ms.",
        "segment.ms" => "The period of time after which the log rolls a new segment even if it is not full.",
        _ => "",
    }
}

pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.def.name == name)
}

/// Where a config's effective value came from (DescribeConfigs' `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (TOPIC_CONFIG, 1).
    Topic,
    /// Dynamic per-broker config (DYNAMIC_BROKER_CONFIG, 2).
    DynamicBroker,
    /// Dynamic cluster-wide default (DYNAMIC_DEFAULT_BROKER_CONFIG, 3).
    DynamicDefaultBroker,
    /// `server.properties` / `--override` (STATIC_BROKER_CONFIG, 4).
    StaticBroker,
    /// Kafka's default (DEFAULT_CONFIG, 5).
    Default,
}

impl ConfigSource {
    /// Kafka's id on the wire.
    pub fn id(self) -> i8 {
        match self {
            ConfigSource::Topic => 1,
            ConfigSource::DynamicBroker => 2,
            ConfigSource::DynamicDefaultBroker => 3,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
        }
    }
}

/// Broker-level config layers, highest precedence first (dynamic per-broker, dynamic cluster
/// default, static). A plain [`Config`] has only the static layer.
pub trait BrokerLayers {
    fn layers(&self) -> Vec<(ConfigSource, &BTreeMap<String, String>)>;

    /// The value of a broker config from the highest layer that sets it.
    fn broker_value(&self, key: &str) -> Option<(String, ConfigSource)> {
        self.layers().into_iter().find_map(|(src, m)| m.get(key).map(|v| (v.clone(), src)))
    }
}

impl BrokerLayers for Config {
    fn layers(&self) -> Vec<(ConfigSource, &BTreeMap<String, String>)> {
        vec![(ConfigSource::StaticBroker, &self.explicit)]
    }
}

/// Dynamic broker configs (AlterConfigs/IncrementalAlterConfigs on BROKER resources), persisted
/// in the metadata file: `per_broker` for `resource_name = "<node id>"`, `cluster_default` for
/// `resource_name = ""`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DynamicBrokerConfigs {
    pub per_broker: BTreeMap<String, String>,
    pub cluster_default: BTreeMap<String, String>,
}

/// The static config with the dynamic layers on top: what topics' effective configs depend on.
pub struct BrokerView<'a> {
    pub config: &'a Config,
    pub dynamic: &'a DynamicBrokerConfigs,
}

impl BrokerLayers for BrokerView<'_> {
    fn layers(&self) -> Vec<(ConfigSource, &BTreeMap<String, String>)> {
        vec![
            (ConfigSource::DynamicBroker, &self.dynamic.per_broker),
            (ConfigSource::DynamicDefaultBroker, &self.dynamic.cluster_default),
            (ConfigSource::StaticBroker, &self.config.explicit),
        ]
    }
}

fn scaled(value: &str, factor: i64) -> Option<String> {
    if factor == 1 {
        return Some(value.to_string());
    }
    let n: i64 = value.parse().ok()?;
    // -1 (unlimited retention) stays -1 whatever the unit.
    Some(if n < 0 { n.to_string() } else { n.saturating_mul(factor).to_string() })
}

/// Every place a topic config's value may come from, highest precedence first, as
/// DescribeConfigs' synonyms list: the topic's own value, then each broker layer's synonyms in
/// order (`log.retention.ms` before `log.retention.minutes` before `log.retention.hours`), then
/// the default. Values are in the topic config's unit.
pub fn topic_synonyms<B: BrokerLayers + ?Sized>(
    name: &str,
    explicit: &BTreeMap<String, String>,
    broker: &B,
) -> Vec<(String, String, ConfigSource)> {
    let Some(d) = topic_config_def(name) else { return Vec::new() };
    let mut out = Vec::new();
    if let Some(v) = explicit.get(name) {
        out.push((name.to_string(), v.clone(), ConfigSource::Topic));
    }
    for (src, layer) in broker.layers() {
        for (syn, factor) in d.synonyms {
            if let Some(v) = layer.get(*syn).and_then(|v| scaled(v, *factor)) {
                out.push((syn.to_string(), v, src));
            }
        }
    }
    let default_name = d.synonyms.first().map(|(s, _)| *s).unwrap_or(d.def.name);
    out.push((default_name.to_string(), d.default.to_string(), ConfigSource::Default));
    out
}

/// The effective value of `name` for a topic whose explicit configs are `explicit`.
pub fn effective_value<B: BrokerLayers + ?Sized>(
    name: &str,
    explicit: &BTreeMap<String, String>,
    broker: &B,
) -> Option<(String, ConfigSource)> {
    topic_synonyms(name, explicit, broker).into_iter().next().map(|(_, v, s)| (v, s))
}

/// Validates a set of topic configs (CreateTopics, AlterConfigs): each value against its type and
/// range, plus Kafka's cross-field rules. Returns the normalized values.
pub fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    let err = |k: &str, reason: String| ConfigError { key: k.to_string(), reason };
    for (k, v) in configs {
        let d = topic_config_def(k).ok_or_else(|| err(k, "unknown topic config".into()))?;
        let v = validate_value(&d.def, v)?;
        match k.as_str() {
            "cleanup.policy" => {
                for p in v.split(',').map(str::trim) {
                    if p != "delete" && p != "compact" {
                        return Err(err(k, format!("'{p}' is not delete or compact")));
                    }
                }
            }
            "min.cleanable.dirty.ratio" => {
                let r: f64 = v.parse().unwrap_or(-1.0);
                if !(0.0..=1.0).contains(&r) {
                    return Err(err(k, format!("{v} is not between 0 and 1")));
                }
            }
            "leader.replication.throttled.replicas" | "follower.replication.throttled.replicas" => {
                // Kafka's ThrottledReplicaListValidator: "", "*", or "partition:broker,...".
                let ok = v.is_empty()
                    || v == "*"
                    || v.split(',').map(str::trim).all(|e| {
                        e.split_once(':').is_some_and(|(p, b)| p.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
                    });
                if !ok {
                    return Err(err(k, format!("'{v}' must be the wildcard (*) or a list of partition:broker pairs")));
                }
            }
            _ => {}
        }
        out.insert(k.clone(), v);
    }
    Ok(out)
}

/// Kafka's `LogConfig.validate` cross-field checks on a topic's effective values (run after
/// merging a change with the broker defaults).
pub fn validate_effective<B: BrokerLayers + ?Sized>(
    explicit: &BTreeMap<String, String>,
    broker: &B,
) -> Result<(), ConfigError> {
    let n = |k: &str| effective_value(k, explicit, broker).and_then(|(v, _)| v.parse::<i64>().ok()).unwrap_or(0);
    let s = |k: &str| effective_value(k, explicit, broker).map(|(v, _)| v).unwrap_or_default();
    // Kafka: tiered storage is not supported on compacted topics.
    if s("remote.storage.enable") == "true" && s("cleanup.policy").split(',').any(|p| p.trim() == "compact") {
        return Err(ConfigError {
            key: "remote.storage.enable".into(),
            reason: "Remote log storage is unsupported for the compacted topics".into(),
        });
    }
    let min_lag = n("min.compaction.lag.ms");
    let max_lag = n("max.compaction.lag.ms");
    if min_lag > max_lag {
        return Err(ConfigError {
            key: "min.compaction.lag.ms".into(),
            reason: format!(
                "conflict topic config setting min.compaction.lag.ms ({min_lag}) > max.compaction.lag.ms ({max_lag})"
            ),
        });
    }
    Ok(())
}

/// How the broker stores a topic's batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicCompression {
    /// Keep the producer's codec.
    Producer,
    /// Recompress to this codec (`uncompressed` is `Compression::None`).
    Codec(Compression, Option<i32>),
}

/// The typed effective configuration of one topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub log: LogConfig,
    pub max_message_bytes: usize,
    pub compression: TopicCompression,
    pub log_append_time: bool,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    pub compact: bool,
    pub retention_ms: i64,
    pub retention_bytes: i64,
}

impl TopicConfig {
    pub fn resolve<B: BrokerLayers + ?Sized>(explicit: &BTreeMap<String, String>, broker: &B) -> TopicConfig {
        let s = |k: &str| effective_value(k, explicit, broker).map(|(v, _)| v).unwrap_or_default();
        let n = |k: &str| s(k).parse::<i64>().unwrap_or(i64::MAX);
        let compression = match s("compression.type").as_str() {
            "producer" => TopicCompression::Producer,
            "uncompressed" => TopicCompression::Codec(Compression::None, None),
            name => {
                let codec = Compression::from_name(name).unwrap_or(Compression::None);
                let level = match codec {
                    Compression::Gzip => Some(n("compression.gzip.level") as i32),
                    Compression::Lz4 => Some(n("compression.lz4.level") as i32),
                    Compression::Zstd => Some(n("compression.zstd.level") as i32),
                    _ => None,
                };
                // gzip -1 means the codec default.
                let level = level.filter(|l| !(codec == Compression::Gzip && *l == -1));
                TopicCompression::Codec(codec, level)
            }
        };
        let policy = s("cleanup.policy");
        let has_policy = |p: &str| policy.split(',').any(|x| x.trim() == p);
        TopicConfig {
            log: LogConfig {
                segment_bytes: n("segment.bytes").max(14) as u64,
                segment_ms: n("segment.ms"),
                segment_jitter_ms: n("segment.jitter.ms"),
                segment_index_bytes: n("segment.index.bytes").max(8) as u64,
                index_interval_bytes: n("index.interval.bytes").max(0) as u64,
                flush_messages: n("flush.messages"),
                flush_ms: n("flush.ms"),
                retention_ms: n("retention.ms"),
                retention_bytes: n("retention.bytes"),
                file_delete_delay_ms: n("file.delete.delay.ms"),
                cleanup_delete: has_policy("delete"),
                cleanup_compact: has_policy("compact"),
                min_cleanable_dirty_ratio: s("min.cleanable.dirty.ratio").parse().unwrap_or(0.5),
                min_compaction_lag_ms: n("min.compaction.lag.ms"),
                max_compaction_lag_ms: n("max.compaction.lag.ms"),
                delete_retention_ms: n("delete.retention.ms"),
                // Only with the broker's tier on: otherwise nothing would ever be uploaded and
                // local retention (which waits for uploads) would never delete.
                remote_storage_enable: s("remote.storage.enable") == "true"
                    && broker.broker_value("remote.log.storage.system.enable").is_some_and(|(v, _)| v == "true"),
                local_retention_ms: n("local.retention.ms"),
                local_retention_bytes: n("local.retention.bytes"),
            },
            max_message_bytes: n("max.message.bytes").max(0) as usize,
            compression,
            log_append_time: s("message.timestamp.type") == "LogAppendTime",
            timestamp_before_max_ms: n("message.timestamp.before.max.ms"),
            timestamp_after_max_ms: n("message.timestamp.after.max.ms"),
            compact: s("cleanup.policy").split(',').any(|p| p.trim() == "compact"),
            retention_ms: n("retention.ms"),
            retention_bytes: n("retention.bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_synonyms_give_topic_defaults() {
        let broker =
            Config::from_overrides(&[("log.segment.bytes", "1000"), ("log.retention.hours", "2")]).expect("cfg");
        let explicit = BTreeMap::new();
        assert_eq!(
            effective_value("segment.bytes", &explicit, &broker),
            Some(("1000".into(), ConfigSource::StaticBroker))
        );
        assert_eq!(
            effective_value("retention.ms", &explicit, &broker),
            Some(("7200000".into(), ConfigSource::StaticBroker))
        );
        assert_eq!(
            effective_value("max.message.bytes", &explicit, &broker),
            Some(("1048588".into(), ConfigSource::Default))
        );
        let mut explicit = BTreeMap::new();
        explicit.insert("segment.bytes".to_string(), "5000".to_string());
        let tc = TopicConfig::resolve(&explicit, &broker);
        assert_eq!(tc.log.segment_bytes, 5000);
        assert_eq!(tc.retention_ms, 7_200_000);
    }

    #[test]
    fn invalid_topic_configs_are_rejected() {
        let mut m = BTreeMap::new();
        m.insert("cleanup.policy".to_string(), "shred".to_string());
        assert_eq!(validate_topic_configs(&m).expect_err("bad").key, "cleanup.policy");
        let mut m = BTreeMap::new();
        m.insert("no.such.config".to_string(), "1".to_string());
        assert!(validate_topic_configs(&m).is_err());
        let mut m = BTreeMap::new();
        m.insert("retention.ms".to_string(), "-5".to_string());
        assert!(validate_topic_configs(&m).is_err());
    }
}
