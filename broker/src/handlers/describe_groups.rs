//! DescribeGroups (key 15), v0–v6: state, protocol and members (with metadata and assignment
//! once Stable). An unknown group is reported as Dead (v6+: GROUP_ID_NOT_FOUND), and so is a
//! KIP-848 consumer group (v6+: "is not a classic group", as Kafka says).

use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut resp = DescribeGroupsResponse::default();
    for id in req.groups {
        let mut d = DescribedGroup::default();
        if !ctx.authorize(AclOperation::Describe, Resource::Group(&id.0)) {
            d.error_code = ResponseError::GroupAuthorizationFailed.code();
            d.authorized_operations = i32::MIN;
            d.group_id = id;
            resp.groups.push(d);
            continue;
        }
        d.authorized_operations = if req.include_authorized_operations {
            ctx.authorized_operations(Resource::Group(&id.0))
        } else {
            i32::MIN
        };
        let consumer = broker.groups.is_consumer_group(&id.0);
        match if consumer { None } else { broker.groups.describe(&id.0) } {
            None if consumer => {
                d.group_state = StrBytes::from_static_str("Dead");
                if ctx.api_version >= 6 {
                    d.error_code = ResponseError::GroupIdNotFound.code();
                    d.error_message = Some(StrBytes::from_string(format!("Group {} is not a classic group.", id.0)));
                }
            }
            None => {
                d.group_state = StrBytes::from_static_str("Dead");
                if ctx.api_version >= 6 {
                    d.error_code = ResponseError::GroupIdNotFound.code();
                    d.error_message = Some(StrBytes::from_string(format!("Group {} not found.", id.0)));
                }
            }
            Some(g) => {
                d.group_state = StrBytes::from_static_str(g.state.name());
                d.protocol_type = StrBytes::from_string(g.protocol_type);
                d.protocol_data = StrBytes::from_string(g.protocol);
                d.members = g
                    .members
                    .into_iter()
                    .map(|(member_id, instance, client_id, host, metadata, assignment)| {
                        let mut m = DescribedGroupMember::default();
                        m.member_id = StrBytes::from_string(member_id);
                        if ctx.api_version >= 4 {
                            m.group_instance_id = instance.map(StrBytes::from_string);
                        }
                        m.client_id = StrBytes::from_string(client_id);
                        m.client_host = StrBytes::from_string(host);
                        m.member_metadata = metadata;
                        m.member_assignment = assignment;
                        m
                    })
                    .collect();
            }
        }
        d.group_id = id;
        resp.groups.push(d);
    }
    resp
}
