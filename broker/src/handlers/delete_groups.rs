//! DeleteGroups (key 42), v0–v2: removes empty groups and their committed offsets.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut resp = DeleteGroupsResponse::default();
    for g in req.groups_names {
        let mut r = DeletableGroupResult::default();
        r.error_code = if ctx.authorize(AclOperation::Delete, Resource::Group(&g.0)) {
            crate::error::wire_code(broker.groups.delete_group(&g.0))
        } else {
            kafka_protocol::ResponseError::GroupAuthorizationFailed.code()
        };
        r.group_id = g;
        resp.results.push(r);
    }
    resp
}
