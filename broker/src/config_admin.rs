//! Config and partition administration shared by the DescribeConfigs, AlterConfigs,
//! IncrementalAlterConfigs and CreatePartitions handlers: the effective broker config (dynamic
//! per-broker over dynamic cluster default over static over default), changing topic and broker
//! configs with validation and persistence, applying changes to live logs without a restart, and
//! adding partitions.
//!
//! Thread-safety: every method works on the metadata store's lock (short, never across an
//! `.await`) and the partitions' own locks; config changes are persisted before they apply.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use sluice_storage::{CleanerConfig, TopicPartition};

use crate::authz::{AclOperation, Resource};
use crate::broker::{ApiError, Broker};
use crate::config::{broker_config_def, is_dynamic_broker_config, validate_value};
use crate::context::RequestContext;
use crate::metadata::TopicMeta;
use crate::topic_config::{
    validate_effective, validate_topic_configs, BrokerLayers, BrokerView, ConfigSource, DynamicBrokerConfigs,
};

/// DescribeConfigs/AlterConfigs resource types (Kafka's `ConfigResource.Type`).
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's check before a config resource is described or altered (`operation` is
/// DESCRIBE_CONFIGS or ALTER_CONFIGS): a topic by its name, a broker through the cluster.
pub fn authorize_config(
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    operation: AclOperation,
) -> Result<(), ApiError> {
    let (resource, code) = match resource_type {
        RESOURCE_TOPIC => (Resource::Topic(name), ResponseError::TopicAuthorizationFailed),
        RESOURCE_BROKER => (Resource::Cluster, ResponseError::ClusterAuthorizationFailed),
        // Other types are refused as unsupported by the caller.
        _ => return Ok(()),
    };
    if ctx.authorize(operation, resource) {
        Ok(())
    } else {
        Err(ApiError::new(code, "Authorization failed."))
    }
}

/// Configs that would make an internal topic lose the coordinators' state: its cleanup policy
/// must stay `compact` alone (deletion by time or size would drop live offsets and
/// transactions), and it must stay on local disk.
fn check_internal_topic_configs(name: &str, configs: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if let Some(policy) = configs.get("cleanup.policy") {
        let policies: Vec<&str> = policy.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
        if policies != ["compact"] {
            return Err(ApiError::new(
                ResponseError::InvalidConfig,
                format!("Internal topic {name} must keep cleanup.policy=compact (got '{policy}')."),
            ));
        }
    }
    if configs.get("remote.storage.enable").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(ApiError::new(
            ResponseError::InvalidConfig,
            format!("Tiered storage cannot be enabled on internal topic {name}."),
        ));
    }
    Ok(())
}

impl Broker {
    /// The static config with `dynamic` layered on top.
    pub fn broker_view<'a>(&'a self, dynamic: &'a DynamicBrokerConfigs) -> BrokerView<'a> {
        BrokerView { config: &self.config, dynamic }
    }

    /// The effective value of a broker config and where it came from; `None` for a config with
    /// no value (Kafka's null default) or an unknown name.
    pub fn broker_config_value(&self, key: &str) -> Option<(String, ConfigSource)> {
        let dynamic = self.metadata.dynamic_broker_configs();
        if let Some(v) = self.broker_view(&dynamic).broker_value(key) {
            return Some(v);
        }
        broker_config_def(key).and_then(|d| d.default).map(|v| (v.to_string(), ConfigSource::Default))
    }

    /// An integer broker config's effective value (dynamic over static over Kafka's default).
    /// Every stored value was validated against the key's definition, and the integer configs
    /// read this way all have defaults, so the value is always there.
    pub fn broker_config_i64(&self, key: &str) -> i64 {
        self.broker_config_value(key).and_then(|(v, _)| v.parse().ok()).unwrap_or_default()
    }

    /// The log cleaner's settings from the effective broker config.
    pub fn cleaner_config(&self) -> CleanerConfig {
        CleanerConfig {
            dedupe_buffer_size: self.broker_config_i64("log.cleaner.dedupe.buffer.size").max(0) as u64,
            threads: self.broker_config_i64("log.cleaner.threads").max(0) as usize,
        }
    }

    /// Pushes a topic's effective log config to its live partitions.
    pub fn apply_topic_config(&self, meta: &TopicMeta) {
        for p in 0..meta.partitions {
            let tp = TopicPartition { topic: meta.name.clone(), partition: p };
            if let Some(log) = self.logs.get(&tp) {
                log.update_config(meta.config.log.clone());
            }
        }
    }

    /// Replaces a topic's explicit configs with `configs` (AlterConfigs semantics; the
    /// incremental handler computes the full new set first). Invalid values are INVALID_CONFIG.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        if self.metadata.topic(name).is_none() {
            return Err(ApiError::new(ResponseError::UnknownTopicOrPartition, format!("Topic {name} does not exist.")));
        }
        let configs =
            validate_topic_configs(&configs).map_err(|e| ApiError::new(ResponseError::InvalidConfig, e.to_string()))?;
        if crate::metadata::is_internal_topic(name) {
            check_internal_topic_configs(name, &configs)?;
        }
        let dynamic = self.metadata.dynamic_broker_configs();
        let view = self.broker_view(&dynamic);
        validate_effective(&configs, &view).map_err(|e| ApiError::new(ResponseError::InvalidConfig, e.to_string()))?;
        if validate_only {
            return Ok(());
        }
        let meta = self.metadata.set_topic_configs(name, configs, &view)?;
        self.apply_topic_config(&meta);
        tracing::info!(topic = name, configs = ?meta.configs, "altered topic configs");
        Ok(())
    }

    /// Checks a broker resource name: `""` (cluster default) or this node's id.
    pub fn check_broker_resource(&self, resource_name: &str) -> Result<(), ApiError> {
        if resource_name.is_empty() || resource_name == self.node_id().to_string() {
            Ok(())
        } else {
            Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!(
                    "Unexpected broker id, expected {} or empty string, but received {resource_name}",
                    self.node_id()
                ),
            ))
        }
    }

    /// The dynamic configs currently set on a broker resource.
    pub fn dynamic_configs_of(&self, resource_name: &str) -> BTreeMap<String, String> {
        let d = self.metadata.dynamic_broker_configs();
        if resource_name.is_empty() {
            d.cluster_default
        } else {
            d.per_broker
        }
    }

    /// Replaces the dynamic configs of a broker resource. A key that is not dynamically
    /// updatable is INVALID_REQUEST (Kafka: "Cannot update these configs dynamically"); a bad
    /// value INVALID_CONFIG. Topics' effective configs are re-resolved and applied at once.
    pub fn alter_broker_configs(
        &self,
        resource_name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        self.check_broker_resource(resource_name)?;
        let read_only: Vec<&str> =
            configs.keys().map(String::as_str).filter(|k| !is_dynamic_broker_config(k)).collect();
        if !read_only.is_empty() {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("Cannot update these configs dynamically: {read_only:?}"),
            ));
        }
        let mut normalized = BTreeMap::new();
        for (k, v) in &configs {
            let invalid = |reason: String| {
                ApiError::new(
                    ResponseError::InvalidConfig,
                    format!("Invalid value {v} for configuration {k}: {reason}"),
                )
            };
            let d = broker_config_def(k).ok_or_else(|| invalid("unknown config".into()))?;
            let v = validate_value(d, v).map_err(|e| invalid(e.reason))?;
            match k.as_str() {
                "log.cleanup.policy" => {
                    if let Some(p) = v.split(',').map(str::trim).find(|p| *p != "delete" && *p != "compact") {
                        return Err(invalid(format!("'{p}' is not delete or compact")));
                    }
                }
                "log.cleaner.min.cleanable.ratio" if !v.parse::<f64>().is_ok_and(|r| (0.0..=1.0).contains(&r)) => {
                    return Err(invalid("must be between 0 and 1".into()));
                }
                "log.cleaner.threads" if v.parse::<i64>().is_ok_and(|t| t > 16) => {
                    return Err(invalid("at most 16 cleaner threads".into()));
                }
                _ => {}
            }
            normalized.insert(k.clone(), v);
        }
        if validate_only {
            return Ok(());
        }
        let changed = self.metadata.set_broker_configs(resource_name, normalized.clone(), &self.config)?;
        for meta in &changed {
            self.apply_topic_config(meta);
        }
        tracing::info!(resource = resource_name, configs = ?normalized, topics_changed = changed.len(), "altered broker configs");
        Ok(())
    }

    /// CreatePartitions for one topic: only increases (INVALID_PARTITIONS otherwise); a manual
    /// assignment must name exactly the new partitions, each on this broker.
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<&[Vec<i32>]>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let meta = self.metadata.topic(name).ok_or_else(|| {
            ApiError::new(ResponseError::UnknownTopicOrPartition, format!("The topic '{name}' does not exist."))
        })?;
        if meta.internal {
            // The coordinators map a group or transactional id to a partition by hashing over
            // the partition count: changing it would orphan every group's state.
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!("Topic {name} is an internal topic; its partition count cannot change."),
            ));
        }
        if count < meta.partitions {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "Topic currently has {} partitions, which is higher than the requested {count}.",
                    meta.partitions
                ),
            ));
        }
        if count == meta.partitions {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!("Topic already has {count} partitions."),
            ));
        }
        if let Some(assignments) = assignments {
            let added = count - meta.partitions;
            if assignments.len() as i32 != added {
                return Err(ApiError::new(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "Increasing the number of partitions by {added} but {} assignments provided.",
                        assignments.len()
                    ),
                ));
            }
            if let Some(bad) = assignments.iter().find(|a| a.as_slice() != [self.node_id()]) {
                return Err(ApiError::new(
                    ResponseError::InvalidReplicaAssignment,
                    format!("Replica assignment {bad:?} names brokers that do not exist or is not a single replica."),
                ));
            }
        }
        let added = (count - meta.partitions) as usize;
        let _admin = self.topic_admin.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.check_partition_limits(added, 0)?;
        if validate_only {
            return Ok(());
        }
        let old = meta.partitions;
        let grown = self.metadata.set_partitions(name, count)?;
        // All or nothing: if any new partition's log cannot be created, the new ones are removed
        // and the count goes back.
        if let Err(e) = self.create_partition_logs(&grown, old) {
            if let Err(undo) = self.metadata.set_partitions(name, old) {
                tracing::error!(topic = name, error = %undo, "could not restore the partition count");
            }
            return Err(e);
        }
        tracing::info!(topic = name, partitions = count, "created partitions");
        Ok(())
    }
}
