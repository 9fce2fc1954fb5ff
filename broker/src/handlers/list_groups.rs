//! ListGroups (key 16), v0–v5, with the state filter (v4+) and type filter (v5+, KIP-848).
//! KIP-848 consumer groups are listed with protocol type and group type "consumer" and their own
//! state names (Empty, Assigning, Reconciling, Stable).

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: ListGroupsRequest) -> ListGroupsResponse {
    let mut resp = ListGroupsResponse::default();
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    // Kafka lists every group to a principal that may describe the cluster, and otherwise only
    // the groups it may describe.
    let all = ctx.authorize(AclOperation::Describe, Resource::Cluster);
    let visible = |id: &str| all || ctx.authorize(AclOperation::Describe, Resource::Group(id));
    for g in broker.groups.list() {
        if !visible(&g.group_id) {
            continue;
        }
        if !states.is_empty() && !states.contains(&g.state.name().to_lowercase()) {
            continue;
        }
        if !types.is_empty() && !types.iter().any(|t| t == "classic") {
            continue;
        }
        let mut l = ListedGroup::default();
        l.group_id = GroupId(StrBytes::from_string(g.group_id));
        l.protocol_type = StrBytes::from_string(g.protocol_type);
        if ctx.api_version >= 4 {
            l.group_state = StrBytes::from_static_str(g.state.name());
        }
        if ctx.api_version >= 5 {
            l.group_type = StrBytes::from_static_str("classic");
        }
        resp.groups.push(l);
    }
    for (group_id, state) in broker.groups.list_consumer() {
        if !visible(&group_id) {
            continue;
        }
        if !states.is_empty() && !states.contains(&state.name().to_lowercase()) {
            continue;
        }
        if !types.is_empty() && !types.iter().any(|t| t == "consumer") {
            continue;
        }
        let mut l = ListedGroup::default();
        l.group_id = GroupId(StrBytes::from_string(group_id));
        l.protocol_type = StrBytes::from_static_str("consumer");
        if ctx.api_version >= 4 {
            l.group_state = StrBytes::from_static_str(state.name());
        }
        if ctx.api_version >= 5 {
            l.group_type = StrBytes::from_static_str("consumer");
        }
        resp.groups.push(l);
    }
    resp
}
