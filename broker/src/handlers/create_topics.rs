//! CreateTopics (key 19), v2–v7: validate names, partition counts, replication factors, manual
//! assignments and configs with Kafka's error codes; `validate_only` stops after validation. From
//! v5 the response carries the topic's partition count, replication factor and effective configs;
//! from v7 its topic id.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::{ApiError, Broker};
use crate::metadata::TopicMeta;
use crate::topic_config::{effective_value, ConfigSource, TOPIC_CONFIGS};

/// Kafka's `ConfigSource` ids on the wire.
pub fn config_source_id(s: ConfigSource) -> i8 {
    s.id()
}

fn effective_configs(broker: &Broker, meta: &TopicMeta) -> Vec<CreatableTopicConfigs> {
    TOPIC_CONFIGS
        .iter()
        .filter_map(|d| {
            let (value, source) = effective_value(
                d.def.name,
                &meta.configs,
                &broker.broker_view(&broker.metadata.dynamic_broker_configs()),
            )?;
            let mut c = CreatableTopicConfigs::default();
            c.name = StrBytes::from_static_str(d.def.name);
            c.value = Some(StrBytes::from_string(value));
            c.config_source = config_source_id(source);
            Some(c)
        })
        .collect()
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut resp = CreateTopicsResponse::default();
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> =
        req.topics.iter().filter(|t| !seen.insert(t.name.0.to_string())).map(|t| t.name.0.to_string()).collect();
    // Partitions this request has asked for so far (max.partitions.per.request spans topics).
    let mut requested: usize = 0;
    let may_create_any = ctx.authorize(AclOperation::Create, Resource::Cluster);
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatableTopicResult::default();
        r.name = t.name.clone();
        r.num_partitions = -1;
        r.replication_factor = -1;
        let outcome: Result<(i32, i16, BTreeMap<String, String>), ApiError> = (|| {
            if duplicates.contains(&name) {
                return Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("Create topics request from client contains a duplicate topic {name}"),
                ));
            }
            if !may_create_any && !ctx.authorize(AclOperation::Create, Resource::Topic(&name)) {
                return Err(ApiError::new(ResponseError::TopicAuthorizationFailed, "Authorization failed."));
            }
            let mut partitions = t.num_partitions;
            let mut rf = t.replication_factor;
            if !t.assignments.is_empty() {
                if t.num_partitions != -1 || t.replication_factor != -1 {
                    return Err(ApiError::new(
                        ResponseError::InvalidRequest,
                        "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
                    ));
                }
                let mut indexes: Vec<i32> = t.assignments.iter().map(|a| a.partition_index).collect();
                indexes.sort_unstable();
                if indexes.iter().enumerate().any(|(i, p)| *p != i as i32) {
                    return Err(ApiError::new(
                        ResponseError::InvalidReplicaAssignment,
                        "Partitions should be a consecutive 0-based integer sequence",
                    ));
                }
                for a in &t.assignments {
                    if a.broker_ids.is_empty()
                        || a.broker_ids.iter().any(|b| b.0 != broker.node_id())
                        || a.broker_ids.len() > 1
                    {
                        return Err(ApiError::new(
                            ResponseError::InvalidReplicaAssignment,
                            format!(
                                "Replica assignment {:?} for partition {} names brokers that do not exist",
                                a.broker_ids, a.partition_index
                            ),
                        ));
                    }
                }
                partitions = t.assignments.len() as i32;
                rf = 1;
            }
            let mut configs = BTreeMap::new();
            for c in &t.configs {
                match &c.value {
                    Some(v) => {
                        configs.insert(c.name.to_string(), v.to_string());
                    }
                    None => {
                        return Err(ApiError::new(
                            ResponseError::InvalidConfig,
                            format!("Null value not supported for topic config {}", c.name),
                        ))
                    }
                }
            }
            Ok((partitions, rf, configs))
        })();
        let outcome = match outcome {
            Ok((partitions, rf, configs)) => {
                let count = if partitions == -1 { broker.config.num_partitions } else { partitions };
                match broker.check_partition_limits(count.max(0) as usize, requested) {
                    Ok(()) => {
                        requested = requested.saturating_add(count.max(0) as usize);
                        broker.create_topic_blocking(name.clone(), partitions, rf, configs, req.validate_only).await
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(meta) => {
                r.topic_id = meta.id;
                r.num_partitions = meta.partitions;
                r.replication_factor = meta.replication_factor;
                if ctx.api_version >= 5 {
                    // The effective configs are shown only to who may describe them.
                    if ctx.authorize(AclOperation::DescribeConfigs, Resource::Topic(&name)) {
                        r.configs = Some(effective_configs(broker, &meta));
                    } else {
                        r.topic_config_error_code = ResponseError::TopicAuthorizationFailed.code();
                    }
                }
            }
            Err(e) => {
                r.error_code = e.code.code();
                r.error_message = Some(StrBytes::from_string(e.message));
                r.configs = None;
            }
        }
        resp.topics.push(r);
    }
    resp
}
