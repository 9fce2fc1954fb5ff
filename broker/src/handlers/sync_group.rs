//! SyncGroup (key 14), v0–v5: the leader hands in the assignment; every member gets its share.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: SyncGroupRequest) -> SyncGroupResponse {
    if !ctx.authorize(AclOperation::Read, Resource::Group(&req.group_id.0)) {
        let mut resp = SyncGroupResponse::default();
        resp.error_code = kafka_protocol::ResponseError::GroupAuthorizationFailed.code();
        return resp;
    }
    let assignments: HashMap<String, bytes::Bytes> =
        req.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect();
    let r = broker
        .groups
        .sync(
            &req.group_id.0,
            req.generation_id,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.protocol_type.as_deref(),
            req.protocol_name.as_deref(),
            assignments,
        )
        .await;
    let mut resp = SyncGroupResponse::default();
    resp.error_code = crate::error::wire_code(r.error);
    if ctx.api_version >= 5 {
        resp.protocol_type = r.protocol_type.map(StrBytes::from_string);
        resp.protocol_name = r.protocol.map(StrBytes::from_string);
    }
    resp.assignment = r.assignment;
    resp
}
