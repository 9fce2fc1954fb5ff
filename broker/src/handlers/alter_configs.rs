//! AlterConfigs (key 33), v0–v2: replaces the whole explicit config set of a TOPIC resource, or
//! the dynamic configs of a BROKER resource (`"<node id>"` per broker, `""` cluster default),
//! with the given one. Values are validated (INVALID_CONFIG), read-only broker configs refused
//! (INVALID_REQUEST), changes persisted and applied to live logs; `validate_only` stops after
//! validation. The incremental variant lives in `incremental_alter_configs.rs`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::AclOperation;
use crate::broker::{ApiError, Broker};
use crate::config_admin::{RESOURCE_BROKER, RESOURCE_TOPIC};

/// Applies a complete new config set to a resource (shared with the incremental handler), on a
/// blocking thread: the change is persisted with an fsync before it applies.
pub async fn apply(
    broker: &Arc<Broker>,
    resource_type: i8,
    resource_name: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), ApiError> {
    let broker = broker.clone();
    let name = resource_name.to_string();
    crate::context::spawn_blocking(move || match resource_type {
        RESOURCE_TOPIC => broker.alter_topic_configs(&name, configs, validate_only),
        RESOURCE_BROKER => broker.alter_broker_configs(&name, configs, validate_only),
        other => Err(ApiError::new(ResponseError::InvalidRequest, format!("Unsupported resource type {other}"))),
    })
    .await
    .unwrap_or_else(|e| Err(ApiError::new(ResponseError::UnknownServerError, e.to_string())))
}

/// Resources named twice in one request (each gets INVALID_REQUEST, as in Kafka).
pub struct DuplicateResources(HashSet<(i8, String)>);

impl DuplicateResources {
    pub fn of<'a>(resources: impl Iterator<Item = (i8, &'a str)>) -> Self {
        let mut seen = HashSet::new();
        Self(resources.filter(|(t, n)| !seen.insert((*t, n.to_string()))).map(|(t, n)| (t, n.to_string())).collect())
    }

    /// INVALID_REQUEST for a resource named more than once.
    pub fn check(&self, resource_type: i8, name: &str) -> Result<(), ApiError> {
        if self.0.contains(&(resource_type, name.to_string())) {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("Duplicate resource {name} in the request."),
            ));
        }
        Ok(())
    }
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut resp = AlterConfigsResponse::default();
    let dups = DuplicateResources::of(req.resources.iter().map(|r| (r.resource_type, r.resource_name.as_str())));
    for res in req.resources {
        let name = res.resource_name.to_string();
        let outcome = (|| {
            dups.check(res.resource_type, &name)?;
            crate::config_admin::authorize_config(ctx, res.resource_type, &name, AclOperation::AlterConfigs)?;
            let mut configs = BTreeMap::new();
            for c in &res.configs {
                let Some(v) = &c.value else {
                    return Err(ApiError::new(
                        ResponseError::InvalidRequest,
                        format!("Null value not supported for : {}", c.name),
                    ));
                };
                if configs.insert(c.name.to_string(), v.to_string()).is_some() {
                    return Err(ApiError::new(
                        ResponseError::InvalidRequest,
                        format!("Error due to duplicate config keys: {}", c.name),
                    ));
                }
            }
            Ok(configs)
        })();
        let outcome = match outcome {
            Ok(configs) => apply(broker, res.resource_type, &name, configs, req.validate_only).await,
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
