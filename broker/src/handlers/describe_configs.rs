//! DescribeConfigs (key 32), v1–v4: TOPIC resources list every topic config with its effective
//! value, source and (v1+) synonyms, (v3+) type and documentation; BROKER resources (`"<node
//! id>"`) list every broker config with its dynamic/static/default source, read-only unless
//! dynamically updatable, passwords masked as sensitive; `""` lists the cluster-wide dynamic
//! defaults only, as Kafka does.

use std::sync::Arc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::AclOperation;
use crate::broker::Broker;
use crate::config::{is_dynamic_broker_config, ConfigType, BROKER_CONFIGS};
use crate::config_admin::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::error::ApiError;
use crate::topic_config::{topic_config_doc, topic_synonyms, BrokerLayers, ConfigSource, TOPIC_CONFIGS};

/// Kafka's `DescribeConfigsResponse.ConfigType` ids.
pub fn config_type_id(t: ConfigType) -> i8 {
    match t {
        ConfigType::Boolean => 1,
        ConfigType::String => 2,
        ConfigType::Int => 3,
        ConfigType::Long => 5,
        ConfigType::Double => 6,
        ConfigType::List => 7,
        ConfigType::Password => 9,
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

struct Entry {
    name: String,
    value: Option<String>,
    source: ConfigSource,
    read_only: bool,
    sensitive: bool,
    kind: ConfigType,
    doc: &'static str,
    synonyms: Vec<(String, Option<String>, ConfigSource)>,
}

fn to_wire(e: Entry, include_synonyms: bool, include_doc: bool) -> DescribeConfigsResourceResult {
    let mut r = DescribeConfigsResourceResult::default();
    r.name = s(&e.name);
    r.value = if e.sensitive { None } else { e.value.as_deref().map(s) };
    r.read_only = e.read_only;
    r.config_source = e.source.id();
    r.is_sensitive = e.sensitive;
    r.config_type = config_type_id(e.kind);
    if include_doc && !e.doc.is_empty() {
        r.documentation = Some(s(e.doc));
    }
    if include_synonyms {
        r.synonyms = e
            .synonyms
            .into_iter()
            .map(|(name, value, source)| {
                let mut syn = DescribeConfigsSynonym::default();
                syn.name = s(&name);
                syn.value = if e.sensitive { None } else { value.as_deref().map(s) };
                syn.source = source.id();
                syn
            })
            .collect();
    }
    r
}

fn topic_entries(broker: &Broker, name: &str) -> Result<Vec<Entry>, ApiError> {
    let meta = broker.metadata.topic(name).ok_or_else(|| {
        ApiError::new(ResponseError::UnknownTopicOrPartition, format!("Topic {name} does not exist."))
    })?;
    let dynamic = broker.metadata.dynamic_broker_configs();
    let view = broker.broker_view(&dynamic);
    Ok(TOPIC_CONFIGS
        .iter()
        .filter_map(|d| {
            let synonyms = topic_synonyms(d.def.name, &meta.configs, &view);
            let (_, value, source) = synonyms.first().cloned()?;
            Some(Entry {
                name: d.def.name.to_string(),
                value: Some(value),
                source,
                read_only: false,
                sensitive: d.def.kind == ConfigType::Password,
                kind: d.def.kind,
                doc: topic_config_doc(d.def.name),
                synonyms: synonyms.into_iter().map(|(n, v, s)| (n, Some(v), s)).collect(),
            })
        })
        .collect())
}

fn broker_entries(broker: &Broker, resource_name: &str) -> Vec<Entry> {
    let dynamic = broker.metadata.dynamic_broker_configs();
    let view = broker.broker_view(&dynamic);
    let layers = view.layers();
    BROKER_CONFIGS
        .iter()
        .filter_map(|d| {
            let mut synonyms: Vec<(String, Option<String>, ConfigSource)> = layers
                .iter()
                .filter(|(src, _)| !resource_name.is_empty() || *src == ConfigSource::DynamicDefaultBroker)
                .filter_map(|(src, m)| m.get(d.name).map(|v| (d.name.to_string(), Some(v.clone()), *src)))
                .collect();
            if resource_name.is_empty() && synonyms.is_empty() {
                // The cluster-default resource lists only what is set on it.
                return None;
            }
            if !resource_name.is_empty() {
                synonyms.push((d.name.to_string(), d.default.map(str::to_string), ConfigSource::Default));
            }
            let (_, value, source) = synonyms.first().cloned()?;
            Some(Entry {
                name: d.name.to_string(),
                value,
                source,
                read_only: !is_dynamic_broker_config(d.name),
                sensitive: d.kind == ConfigType::Password,
                kind: d.kind,
                doc: "",
                synonyms,
            })
        })
        .collect()
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut resp = DescribeConfigsResponse::default();
    for res in req.resources {
        let mut out = DescribeConfigsResult::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        let name = res.resource_name.to_string();
        let allowed =
            crate::config_admin::authorize_config(ctx, res.resource_type, &name, AclOperation::DescribeConfigs);
        let entries = match (allowed, res.resource_type) {
            (Err(e), _) => Err(e),
            (Ok(()), RESOURCE_TOPIC) => topic_entries(broker, &name),
            (Ok(()), RESOURCE_BROKER) => broker.check_broker_resource(&name).map(|_| broker_entries(broker, &name)),
            (Ok(()), other) => {
                Err(ApiError::new(ResponseError::InvalidRequest, format!("Unsupported resource type {other}")))
            }
        };
        match entries {
            Ok(entries) => {
                // Null or empty: every config (Kafka's ConfigHelper).
                let wanted: Option<Vec<String>> = res
                    .configuration_keys
                    .as_ref()
                    .filter(|keys| !keys.is_empty())
                    .map(|keys| keys.iter().map(|k| k.to_string()).collect());
                out.configs = entries
                    .into_iter()
                    .filter(|e| wanted.as_ref().is_none_or(|w| w.contains(&e.name)))
                    .map(|e| to_wire(e, req.include_synonyms, req.include_documentation))
                    .collect();
            }
            Err(ApiError { code, message }) => {
                out.error_code = code.code();
                out.error_message = Some(StrBytes::from_string(message));
            }
        }
        resp.results.push(out);
    }
    resp
}
