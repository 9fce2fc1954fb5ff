//! LeaveGroup (key 13), v0–v5: one member (v0–v2) or a batch of members by id or instance id
//! (v3+, KIP-345).

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let batched = ctx.api_version >= 3;
    let members: Vec<(String, Option<String>)> = if batched {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|s| s.to_string())))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let mut resp = LeaveGroupResponse::default();
    if !ctx.authorize(AclOperation::Read, Resource::Group(&req.group_id.0)) {
        resp.error_code = kafka_protocol::ResponseError::GroupAuthorizationFailed.code();
        return resp;
    }
    match broker.groups.leave(&req.group_id.0, &members) {
        Err(e) => resp.error_code = e.code(),
        Ok(errors) if !batched => resp.error_code = crate::error::wire_code(errors.into_iter().next().flatten()),
        Ok(errors) => {
            resp.members = req
                .members
                .iter()
                .zip(errors)
                .map(|(m, e)| {
                    let mut r = MemberResponse::default();
                    r.member_id = m.member_id.clone();
                    r.group_instance_id = m.group_instance_id.clone();
                    r.error_code = crate::error::wire_code(e);
                    r
                })
                .collect();
        }
    }
    resp
}
