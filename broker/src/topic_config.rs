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

const fn t(name: &'static str, kind: ConfigType, min: Option<i64>, max: Option<i64>, allowed: &'static [&'static str]) -> ConfigDef {
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
    TopicConfigDef { def: t("cleanup.policy", List, None, None, &[]), synonyms: &[("log.cleanup.policy", 1)], default: "delete" },
    TopicConfigDef { def: t("compression.type", Str, None, None, COMPRESSION_TYPES), synonyms: &[("compression.type", 1)], default: "producer" },
    TopicConfigDef { def: t("compression.gzip.level", Int, Some(-1), Some(9), &[]), synonyms: &[("compression.gzip.level", 1)], default: "-1" },
    TopicConfigDef { def: t("compression.lz4.level", Int, Some(1), Some(17), &[]), synonyms: &[("compression.lz4.level", 1)], default: "9" },
    TopicConfigDef { def: t("compression.zstd.level", Int, Some(-131072), Some(22), &[]), synonyms: &[("compression.zstd.level", 1)], default: "3" },
    TopicConfigDef { def: t("delete.retention.ms", Long, Some(0), Some(LMAX), &[]), synonyms: &[("log.cleaner.delete.retention.ms", 1)], default: "86400000" },
    TopicConfigDef { def: t("file.delete.delay.ms", Long, Some(0), Some(LMAX), &[]), synonyms: &[("log.segment.delete.delay.ms", 1)], default: "60000" },
    TopicConfigDef { def: t("flush.messages", Long, Some(1), Some(LMAX), &[]), synonyms: &[("log.flush.interval.messages", 1)], default: "9223372036854775807" },
    TopicConfigDef { def: t("flush.ms", Long, Some(0), Some(LMAX), &[]), synonyms: &[("log.flush.interval.ms", 1), ("log.flush.scheduler.interval.ms", 1)], default: "9223372036854775807" },
    TopicConfigDef { def: t("index.interval.bytes", Int, Some(0), Some(IMAX), &[]), synonyms: &[("log.index.interval.bytes", 1)], default: "4096" },
    TopicConfigDef { def: t("max.compaction.lag.ms", Long, Some(1), Some(LMAX), &[]), synonyms: &[("log.cleaner.max.compaction.lag.ms", 1)], default: "9223372036854775807" },
    TopicConfigDef { def: t("max.message.bytes", Int, Some(0), Some(IMAX), &[]), synonyms: &[("message.max.bytes", 1)], default: "1048588" },
    TopicConfigDef { def: t("message.timestamp.type", Str, None, None, TIMESTAMP_TYPES), synonyms: &[("log.message.timestamp.type", 1)], default: "CreateTime" },
    TopicConfigDef { def: t("message.timestamp.before.max.ms", Long, Some(0), Some(LMAX), &[]), synonyms: &[("log.message.timestamp.before.max.ms", 1)], default: "9223372036854775807" },
    TopicConfigDef { def: t("message.timestamp.after.max.ms", Long, Some(0), Some(LMAX), &[]), synonyms: &[("log.message.timestamp.after.max.ms", 1)], default: "3600000" },
    TopicConfigDef { def: t("min.cleanable.dirty.ratio", Double, None, None, &[]), synonyms: &[("log.cleaner.min.cleanable.ratio", 1)], default: "0.5" },
    TopicConfigDef { def: t("min.compaction.lag.ms", Long, Some(0), Some(LMAX), &[]), synonyms: &[("log.cleaner.min.compaction.lag.ms", 1)], default: "0" },
    TopicConfigDef { def: t("min.insync.replicas", Int, Some(1), Some(IMAX), &[]), synonyms: &[("min.insync.replicas", 1)], default: "1" },
    TopicConfigDef { def: t("preallocate", Boolean, None, None, &[]), synonyms: &[], default: "false" },
    TopicConfigDef { def: t("retention.bytes", Long, Some(-1), Some(LMAX), &[]), synonyms: &[("log.retention.bytes", 1)], default: "-1" },
    TopicConfigDef { def: t("retention.ms", Long, Some(-1), Some(LMAX), &[]), synonyms: &[("log.retention.ms", 1), ("log.retention.minutes", 60_000), ("log.retention.hours", 3_600_000)], default: "604800000" },
    TopicConfigDef { def: t("segment.bytes", Int, Some(14), Some(IMAX), &[]), synonyms: &[("log.segment.bytes", 1)], default: "1073741824" },
    TopicConfigDef { def: t("segment.index.bytes", Int, Some(4), Some(IMAX), &[]), synonyms: &[("log.index.size.max.bytes", 1)], default: "10485760" },
    TopicConfigDef { def: t("segment.jitter.ms", Long, Some(0), Some(LMAX), &[]), synonyms: &[("log.roll.jitter.ms", 1), ("log.roll.jitter.hours", 3_600_000)], default: "0" },
    TopicConfigDef { def: t("segment.ms", Long, Some(1), Some(LMAX), &[]), synonyms: &[("log.roll.ms", 1), ("log.roll.hours", 3_600_000)], default: "604800000" },
    TopicConfigDef { def: t("unclean.leader.election.enable", Boolean, None, None, &[]), synonyms: &[("unclean.leader.election.enable", 1)], default: "false" },
    TopicConfigDef { def: t("remote.storage.enable", Boolean, None, None, &[]), synonyms: &[], default: "false" },
    TopicConfigDef { def: t("local.retention.ms", Long, Some(-2), Some(LMAX), &[]), synonyms: &[], default: "-2" },
    TopicConfigDef { def: t("local.retention.bytes", Long, Some(-2), Some(LMAX), &[]), synonyms: &[], default: "-2" },
    TopicConfigDef { def: t("leader.replication.throttled.replicas", List, None, None, &[]), synonyms: &[], default: "" },
    TopicConfigDef { def: t("follower.replication.throttled.replicas", List, None, None, &[]), synonyms: &[], default: "" },
];

pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.def.name == name)
}

/// Where a topic config's effective value came from (DescribeConfigs' `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Topic,
    StaticBroker,
    Default,
}

/// The effective value of `name` for a topic whose explicit configs are `explicit`.
pub fn effective_value(name: &str, explicit: &BTreeMap<String, String>, broker: &Config) -> Option<(String, ConfigSource)> {
    let d = topic_config_def(name)?;
    if let Some(v) = explicit.get(name) {
        return Some((v.clone(), ConfigSource::Topic));
    }
    for (syn, factor) in d.synonyms {
        if let Some(v) = broker.explicit.get(*syn) {
            if *factor == 1 {
                return Some((v.clone(), ConfigSource::StaticBroker));
            }
            let n: i64 = v.parse().ok()?;
            return Some(((n.saturating_mul(*factor)).to_string(), ConfigSource::StaticBroker));
        }
    }
    // Kafka's broker defaults for the first synonym equal the topic default; use the topic default.
    Some((d.default.to_string(), ConfigSource::Default))
}

/// Validates a set of topic configs (CreateTopics, AlterConfigs).
pub fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (k, v) in configs {
        let d = topic_config_def(k).ok_or_else(|| ConfigError { key: k.clone(), reason: "unknown topic config".into() })?;
        let v = validate_value(&d.def, v)?;
        if k == "cleanup.policy" {
            for p in v.split(',').map(str::trim) {
                if p != "delete" && p != "compact" {
                    return Err(ConfigError { key: k.clone(), reason: format!("'{p}' is not delete or compact") });
                }
            }
        }
        if k == "min.cleanable.dirty.ratio" {
            let r: f64 = v.parse().unwrap_or(-1.0);
            if !(0.0..=1.0).contains(&r) {
                return Err(ConfigError { key: k.clone(), reason: format!("{v} is not between 0 and 1") });
            }
        }
        out.insert(k.clone(), v);
    }
    Ok(out)
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
    pub fn resolve(explicit: &BTreeMap<String, String>, broker: &Config) -> TopicConfig {
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
        TopicConfig {
            log: LogConfig {
                segment_bytes: n("segment.bytes").max(14) as u64,
                segment_ms: n("segment.ms"),
                segment_jitter_ms: n("segment.jitter.ms"),
                segment_index_bytes: n("segment.index.bytes").max(8) as u64,
                index_interval_bytes: n("index.interval.bytes").max(0) as u64,
                flush_messages: n("flush.messages"),
                flush_ms: n("flush.ms"),
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
        let broker = Config::from_overrides(&[("log.segment.bytes", "1000"), ("log.retention.hours", "2")]).expect("cfg");
        let explicit = BTreeMap::new();
        assert_eq!(effective_value("segment.bytes", &explicit, &broker), Some(("1000".into(), ConfigSource::StaticBroker)));
        assert_eq!(effective_value("retention.ms", &explicit, &broker), Some(("7200000".into(), ConfigSource::StaticBroker)));
        assert_eq!(effective_value("max.message.bytes", &explicit, &broker), Some(("1048588".into(), ConfigSource::Default)));
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
