//! IncrementalAlterConfigs (key 44), v0–v1: SET, DELETE, APPEND and SUBTRACT on a TOPIC's
//! explicit configs or a BROKER resource's dynamic configs. APPEND/SUBTRACT work on LIST configs
//! only (INVALID_CONFIG otherwise) and start from the explicit value or, unset, the config's
//! default, as Kafka's `ConfigAdminManager` does. The resulting full set goes through the same
//! validation, persistence and live application as AlterConfigs.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::alter_configs::{apply, DuplicateResources};
use super::RequestContext;
use crate::authz::AclOperation;
use crate::broker::{ApiError, Broker};
use crate::config::{broker_config_def, ConfigType};
use crate::config_admin::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::topic_config::topic_config_def;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

fn split_list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// The type and default of a config of this resource type, if it exists.
fn def_of(resource_type: i8, name: &str) -> Option<(ConfigType, Option<&'static str>)> {
    match resource_type {
        RESOURCE_TOPIC => topic_config_def(name).map(|d| (d.def.kind, Some(d.default))),
        RESOURCE_BROKER => broker_config_def(name).map(|d| (d.kind, d.default)),
        _ => None,
    }
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut resp = IncrementalAlterConfigsResponse::default();
    let dups = DuplicateResources::of(req.resources.iter().map(|r| (r.resource_type, r.resource_name.as_str())));
    for res in req.resources {
        let name = res.resource_name.to_string();
        let outcome = (|| {
            dups.check(res.resource_type, &name)?;
            crate::config_admin::authorize_config(ctx, res.resource_type, &name, AclOperation::AlterConfigs)?;
            let mut keys = HashSet::new();
            if let Some(c) = res.configs.iter().find(|c| !keys.insert(c.name.to_string())) {
                return Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("Error due to duplicate config keys: {}", c.name),
                ));
            }
            let mut current: BTreeMap<String, String> = match res.resource_type {
                RESOURCE_TOPIC => broker.metadata.topic(&name).map(|t| t.configs.clone()).ok_or_else(|| {
                    ApiError::new(ResponseError::UnknownTopicOrPartition, format!("Topic {name} does not exist."))
                })?,
                RESOURCE_BROKER => {
                    broker.check_broker_resource(&name)?;
                    broker.dynamic_configs_of(&name)
                }
                other => {
                    return Err(ApiError::new(
                        ResponseError::InvalidRequest,
                        format!("Unsupported resource type {other}"),
                    ))
                }
            };
            for c in &res.configs {
                let key = c.name.to_string();
                let value = c.value.as_ref().map(|v| v.to_string());
                match c.config_operation {
                    SET => {
                        let Some(v) = value else {
                            return Err(ApiError::new(
                                ResponseError::InvalidRequest,
                                format!("Null value not supported for : {key}"),
                            ));
                        };
                        current.insert(key, v);
                    }
                    DELETE => {
                        current.remove(&key);
                    }
                    APPEND | SUBTRACT => {
                        let Some((kind, default)) = def_of(res.resource_type, &key) else {
                            return Err(ApiError::new(
                                ResponseError::InvalidConfig,
                                format!("Unknown config name: {key}"),
                            ));
                        };
                        if kind != ConfigType::List {
                            let op = if c.config_operation == APPEND { "append" } else { "subtract" };
                            return Err(ApiError::new(
                                ResponseError::InvalidConfig,
                                format!("Config value {op} is not allowed for config key: {key}"),
                            ));
                        }
                        let old = current.get(&key).cloned().or(default.map(str::to_string)).unwrap_or_default();
                        let mut items = split_list(&old);
                        let given = split_list(&value.unwrap_or_default());
                        if c.config_operation == APPEND {
                            for g in given {
                                if !items.contains(&g) {
                                    items.push(g);
                                }
                            }
                        } else {
                            items.retain(|i| !given.contains(i));
                        }
                        current.insert(key, items.join(","));
                    }
                    other => {
                        return Err(ApiError::new(
                            ResponseError::InvalidRequest,
                            format!("Unknown config operation {other} for {key}"),
                        ));
                    }
                }
            }
            Ok(current)
        })();
        let outcome = match outcome {
            Ok(current) => apply(broker, res.resource_type, &name, current, req.validate_only).await,
            Err(e) => Err(e),
        };
        let mut r = AlterConfigsResourceResponse::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name;
        if let Err(e) = outcome {
            r.error_code = e.code.code();
            r.error_message = Some(StrBytes::from_string(e.message));
        }
        resp.responses.push(r);
    }
    resp
}
