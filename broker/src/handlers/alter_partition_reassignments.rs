//! AlterPartitionReassignments (key 45), v0–v1, as Kafka's controller answers it
//! (`ReplicationControlManager.alterPartitionReassignments`). On one node every partition's
//! replica set is `[this broker]` and no reassignment is ever in flight:
//!
//! - a target of exactly `[node.id]` is the current assignment: accepted, nothing to move, done
//!   at once (Kafka issues no partition change either);
//! - a target naming another broker is INVALID_REPLICA_ASSIGNMENT ("no such broker is
//!   registered"), a broker named twice INVALID_REPLICA_ASSIGNMENT, an empty list
//!   INVALID_REPLICA_ASSIGNMENT (`validateManualPartitionAssignment`);
//! - v1 `allow_replication_factor_change = false` (KIP-860) refuses a target whose length differs
//!   from the partition's replica count with INVALID_REPLICATION_FACTOR (checked after the
//!   assignment itself is valid); the response echoes the flag;
//! - a null replica list cancels a reassignment: NO_REASSIGNMENT_IN_PROGRESS;
//! - unknown topics and partitions are UNKNOWN_TOPIC_OR_PARTITION.
//!
//! Authorization: ALTER on the cluster (`ControllerApis`); a refusal is the request's error
//! response, CLUSTER_AUTHORIZATION_FAILED at the top and on every partition.

use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_request::ReassignablePartition;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::{ApiError, Broker};
use crate::error::default_message;

/// Kafka's `alterPartitionReassignment` for one partition on this node.
fn reassign(
    broker: &Broker,
    topic: &str,
    target: &ReassignablePartition,
    allow_replication_factor_change: bool,
) -> Result<(), ApiError> {
    let unknown = |m: String| ApiError::new(ResponseError::UnknownTopicOrPartition, m);
    let meta = broker.metadata.topic(topic).ok_or_else(|| unknown(format!("Unable to find a topic named {topic}.")))?;
    let partition = target.partition_index;
    if partition < 0 || partition >= meta.partitions {
        return Err(unknown(format!("Unable to find partition {topic}:{partition}.")));
    }
    let Some(replicas) = &target.replicas else {
        // Cancelling: nothing is ever being reassigned here.
        let code = ResponseError::NoReassignmentInProgress;
        return Err(ApiError::new(code, default_message(code)));
    };
    let invalid = |m: String| ApiError::new(ResponseError::InvalidReplicaAssignment, m);
    if replicas.is_empty() {
        return Err(invalid("The manual partition assignment includes an empty replica list.".into()));
    }
    let mut sorted: Vec<i32> = replicas.iter().map(|b| b.0).collect();
    sorted.sort_unstable();
    let mut previous = None;
    for id in sorted {
        if id != broker.node_id() {
            return Err(invalid(format!(
                "The manual partition assignment includes broker {id}, but no such broker is registered."
            )));
        }
        if previous == Some(id) {
            return Err(invalid(format!("The manual partition assignment includes the broker {id} more than once.")));
        }
        previous = Some(id);
    }
    // The partition's replica set is [node.id]; no reassignment is in progress to count.
    let current = 1;
    if !allow_replication_factor_change && replicas.len() != current {
        return Err(ApiError::new(
            ResponseError::InvalidReplicationFactor,
            format!("The replication factor is changed from {current} to {}", replicas.len()),
        ));
    }
    // The target is the current assignment: the reassignment is complete as it starts.
    Ok(())
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let mut resp = AlterPartitionReassignmentsResponse::default();
    // Kafka's messages are null without an error (the generated default is "").
    resp.error_message = None;
    // v0 has no flag and always allows a change (the field's default is true).
    let allow_rf_change = ctx.api_version < 1 || req.allow_replication_factor_change;
    if ctx.api_version >= 1 {
        resp.allow_replication_factor_change = allow_rf_change;
    }
    let refused = if ctx.authorize(AclOperation::Alter, Resource::Cluster) {
        None
    } else {
        let code = ResponseError::ClusterAuthorizationFailed;
        resp.error_code = code.code();
        resp.error_message = Some(StrBytes::from_static_str(default_message(code)));
        Some(code)
    };
    for t in &req.topics {
        let mut tr = ReassignableTopicResponse::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let mut pr = ReassignablePartitionResponse::default();
            pr.partition_index = p.partition_index;
            pr.error_message = None;
            let outcome = match refused {
                Some(code) => Err(ApiError::new(code, default_message(code))),
                None => reassign(broker, &t.name.0, p, allow_rf_change),
            };
            if let Err(e) = outcome {
                tracing::info!(topic = %t.name.0, partition = p.partition_index, error = %e.message, "partition reassignment refused");
                pr.error_code = e.code.code();
                pr.error_message = Some(StrBytes::from_string(e.message));
            }
            tr.partitions.push(pr);
        }
        resp.responses.push(tr);
    }
    resp
}
