//! ListPartitionReassignments (key 46), v0: the reassignments in flight, as Kafka's controller
//! lists them (`ReplicationControlManager.listPartitionReassignments`): only partitions being
//! reassigned appear, and a topic only with at least one of them; unknown topics and partitions
//! are left out without an error. A reassignment on one node completes as it starts
//! (AlterPartitionReassignments), so the answer is always empty.
//!
//! Authorization: DESCRIBE on the cluster (`ControllerApis`); a refusal is
//! CLUSTER_AUTHORIZATION_FAILED at the top, with every requested partition listed bare (Kafka's
//! `ListPartitionReassignmentsRequest.getErrorResponse`).

use std::sync::Arc;

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;
use crate::error::default_message;

pub async fn handle(
    _broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let mut resp = ListPartitionReassignmentsResponse::default();
    // Null without an error, as Kafka's controller answers (the generated default is "").
    resp.error_message = None;
    if !ctx.authorize(AclOperation::Describe, Resource::Cluster) {
        let code = ResponseError::ClusterAuthorizationFailed;
        resp.error_code = code.code();
        resp.error_message = Some(StrBytes::from_static_str(default_message(code)));
        for t in req.topics.iter().flatten() {
            let mut tr = OngoingTopicReassignment::default();
            tr.name = t.name.clone();
            tr.partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let mut pr = OngoingPartitionReassignment::default();
                    pr.partition_index = p;
                    pr
                })
                .collect();
            resp.topics.push(tr);
        }
        return resp;
    }
    // No partition is ever being reassigned: every topic, named or not, has none to list.
    resp
}
