//! CreatePartitions (key 37), v0–v3: raises a topic's partition count (never lowers it:
//! INVALID_PARTITIONS), with optional manual assignments that must place each new partition on
//! this broker; `validate_only` stops after validation. A topic named twice is INVALID_REQUEST.

use std::collections::HashSet;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::{ApiError, Broker};

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut resp = CreatePartitionsResponse::default();
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> =
        req.topics.iter().filter(|t| !seen.insert(t.name.0.to_string())).map(|t| t.name.0.to_string()).collect();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatePartitionsTopicResult::default();
        r.name = t.name.clone();
        let outcome = if duplicates.contains(&name) {
            Err(ApiError::new(ResponseError::InvalidRequest, format!("Duplicate topic {name} in the request.")))
        } else if !ctx.authorize(AclOperation::Alter, Resource::Topic(&name)) {
            Err(ApiError::new(ResponseError::TopicAuthorizationFailed, "Authorization failed."))
        } else {
            // Null or empty: no manual assignment.
            let assignments: Option<Vec<Vec<i32>>> = t
                .assignments
                .as_ref()
                .filter(|a| !a.is_empty())
                .map(|a| a.iter().map(|x| x.broker_ids.iter().map(|b| b.0).collect()).collect());
            // Creating partition logs touches the disk: a blocking thread, not a runtime worker.
            let b = broker.clone();
            let count = t.count;
            let validate_only = req.validate_only;
            crate::context::spawn_blocking(move || {
                b.create_partitions(&name, count, assignments.as_deref(), validate_only)
            })
            .await
            .unwrap_or_else(|e| Err(ApiError::new(ResponseError::UnknownServerError, e.to_string())))
        };
        if let Err(e) = outcome {
            r.error_code = e.code.code();
            r.error_message = Some(StrBytes::from_string(e.message));
        }
        resp.results.push(r);
    }
    resp
}
