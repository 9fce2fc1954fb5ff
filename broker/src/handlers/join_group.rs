//! JoinGroup (key 11), v0–v9: the join phase of a classic group rebalance (see `group::classic`).
//! v4+ requires a member id on first join (KIP-394: MEMBER_ID_REQUIRED with the id to use);
//! v5+ carries `group.instance.id` for static membership.

use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;
use crate::group::JoinArgs;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: JoinGroupRequest) -> JoinGroupResponse {
    if !ctx.authorize(AclOperation::Read, Resource::Group(&req.group_id.0)) {
        let mut resp = JoinGroupResponse::default();
        resp.error_code = kafka_protocol::ResponseError::GroupAuthorizationFailed.code();
        resp.generation_id = -1;
        resp.protocol_name = (ctx.api_version < 7).then(StrBytes::default);
        return resp;
    }
    let ids = [req.group_id.0.as_str(), req.member_id.as_str(), req.protocol_type.as_str()];
    let more = req.group_instance_id.iter().map(|s| s.as_str()).chain(req.protocols.iter().map(|p| p.name.as_str()));
    if !crate::group::records::storable(ids.into_iter().chain(more)) {
        let mut resp = JoinGroupResponse::default();
        resp.error_code = kafka_protocol::ResponseError::InvalidGroupId.code();
        resp.generation_id = -1;
        resp.protocol_name = (ctx.api_version < 7).then(StrBytes::default);
        return resp;
    }
    let args = JoinArgs {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if ctx.api_version >= 1 { req.rebalance_timeout_ms } else { req.session_timeout_ms },
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", ctx.peer.ip()),
        require_known_member: ctx.api_version >= 4,
    };
    let r = broker.groups.join(args).await;
    let mut resp = JoinGroupResponse::default();
    resp.error_code = crate::error::wire_code(r.error);
    resp.generation_id = r.generation;
    if ctx.api_version >= 7 {
        resp.protocol_type = r.protocol_type.map(StrBytes::from_string);
    }
    resp.protocol_name = match r.protocol {
        Some(p) => Some(StrBytes::from_string(p)),
        // Before v7 the protocol name is not nullable.
        None if ctx.api_version < 7 => Some(StrBytes::default()),
        None => None,
    };
    resp.leader = StrBytes::from_string(r.leader);
    resp.member_id = StrBytes::from_string(r.member_id);
    if ctx.api_version >= 9 {
        resp.skip_assignment = r.skip_assignment;
    }
    resp.members = r
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let mut m = JoinGroupResponseMember::default();
            m.member_id = StrBytes::from_string(id);
            if ctx.api_version >= 5 {
                m.group_instance_id = instance.map(StrBytes::from_string);
            }
            m.metadata = metadata;
            m
        })
        .collect();
    resp
}
