//! FindCoordinator (key 10), v0–v6: this node coordinates every group and transactional id.
//! v4+ batches keys (KIP-699). Key types: 0 group, 1 transaction; share groups (2) are not served.

use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let mut resp = FindCoordinatorResponse::default();
    let (host, port) =
        broker.advertised_for(&ctx.listener).map(|l| (l.host.clone(), l.port as i32)).unwrap_or_default();
    let error = match req.key_type {
        0 | 1 => None,
        _ => Some(ResponseError::InvalidRequest),
    };
    let keys: Vec<StrBytes> = if ctx.api_version >= 4 { req.coordinator_keys.clone() } else { vec![req.key.clone()] };
    let answers: Vec<Coordinator> = keys
        .into_iter()
        .map(|key| {
            let mut c = Coordinator::default();
            let empty_group = req.key_type == 0 && key.is_empty();
            let denied = match req.key_type {
                0 => (!ctx.authorize(AclOperation::Describe, Resource::Group(&key)))
                    .then_some(ResponseError::GroupAuthorizationFailed),
                1 => (!ctx.authorize(AclOperation::Describe, Resource::TransactionalId(&key)))
                    .then_some(ResponseError::TransactionalIdAuthorizationFailed),
                _ => None,
            };
            c.key = key;
            match error.or(empty_group.then_some(ResponseError::InvalidRequest)).or(denied) {
                Some(e) => {
                    c.error_code = e.code();
                    c.node_id = BrokerId(-1);
                    c.port = -1;
                }
                None => {
                    c.node_id = BrokerId(broker.node_id());
                    c.host = StrBytes::from_string(host.clone());
                    c.port = port;
                }
            }
            c
        })
        .collect();
    if ctx.api_version >= 4 {
        resp.coordinators = answers;
    } else if let Some(c) = answers.into_iter().next() {
        resp.error_code = c.error_code;
        resp.node_id = c.node_id;
        resp.host = c.host;
        resp.port = c.port;
    }
    resp
}
