//! ElectLeaders (key 43), v0–v2: preferred (0) or unclean (1) leader election, as Kafka's
//! controller runs it (`ReplicationControlManager.electLeaders`). On one node every partition's
//! only replica is this broker and it already leads, so an election is never needed:
//! ELECTION_NOT_NEEDED per partition. A partition in an offline log dir has no leader and no
//! other replica to take over: PREFERRED_LEADER_NOT_AVAILABLE (preferred) or
//! ELIGIBLE_LEADERS_NOT_AVAILABLE (unclean). Unknown topics and partitions are
//! UNKNOWN_TOPIC_OR_PARTITION. A null topic list means every partition, and then (as Kafka) only
//! partitions that needed an election or failed are listed, under every topic.
//!
//! Authorization: ALTER on the cluster (`ControllerApis.handleElectLeaders`); a refusal is the
//! request's error response: CLUSTER_AUTHORIZATION_FAILED at the top (v1+) and on every requested
//! partition. An unknown election type is INVALID_REQUEST the same way.

use std::sync::Arc;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;
use crate::error::default_message;
use crate::metadata::TopicMeta;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

fn result(partition_id: i32, code: ResponseError, message: Option<String>) -> PartitionResult {
    let mut r = PartitionResult::default();
    r.partition_id = partition_id;
    r.error_code = code.code();
    r.error_message = message.map(StrBytes::from_string);
    r
}

/// Kafka's `ElectLeadersRequest.getErrorResponse`: `code` at the top and on every requested
/// partition (v0 has no top-level error code).
fn error_response(
    ctx: &RequestContext,
    req: &ElectLeadersRequest,
    code: ResponseError,
    message: &str,
) -> ElectLeadersResponse {
    let mut resp = ElectLeadersResponse::default();
    if ctx.api_version >= 1 {
        resp.error_code = code.code();
    }
    for t in req.topic_partitions.iter().flatten() {
        let mut tr = ReplicaElectionResult::default();
        tr.topic = t.topic.clone();
        tr.partition_result = t.partitions.iter().map(|&p| result(p, code, Some(message.to_string()))).collect();
        resp.replica_election_results.push(tr);
    }
    resp
}

/// Kafka's `electLeader` for one partition on this node.
fn elect(broker: &Broker, topic: Option<&TopicMeta>, name: &str, partition: i32, election_type: i8) -> PartitionResult {
    let Some(meta) = topic else {
        return result(partition, ResponseError::UnknownTopicOrPartition, Some(format!("No such topic as {name}")));
    };
    if partition < 0 || partition >= meta.partitions {
        return result(
            partition,
            ResponseError::UnknownTopicOrPartition,
            Some(format!("No such partition as {name}-{partition}")),
        );
    }
    if broker.is_partition_offline(meta, partition) {
        // The only replica is offline: nobody can be elected.
        let code = if election_type == PREFERRED {
            ResponseError::PreferredLeaderNotAvailable
        } else {
            ResponseError::EligibleLeadersNotAvailable
        };
        return result(partition, code, Some(default_message(code).to_string()));
    }
    let code = ResponseError::ElectionNotNeeded;
    result(partition, code, Some(default_message(code).to_string()))
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: ElectLeadersRequest) -> ElectLeadersResponse {
    if !ctx.authorize(AclOperation::Alter, Resource::Cluster) {
        let code = ResponseError::ClusterAuthorizationFailed;
        return error_response(ctx, &req, code, default_message(code));
    }
    // v0 has no election type: it is always a preferred election.
    let election_type = if ctx.api_version == 0 { PREFERRED } else { req.election_type };
    if election_type != PREFERRED && election_type != UNCLEAN {
        return error_response(
            ctx,
            &req,
            ResponseError::InvalidRequest,
            &format!("Unknown election type {election_type}"),
        );
    }
    let mut resp = ElectLeadersResponse::default();
    match &req.topic_partitions {
        None => {
            // Every partition; those that need no election are left out, their topics are not.
            for meta in broker.metadata.topics() {
                let mut tr = ReplicaElectionResult::default();
                tr.topic = TopicName(StrBytes::from_string(meta.name.clone()));
                tr.partition_result = (0..meta.partitions)
                    .map(|p| elect(broker, Some(&meta), &meta.name, p, election_type))
                    .filter(|r| r.error_code != ResponseError::ElectionNotNeeded.code())
                    .collect();
                resp.replica_election_results.push(tr);
            }
        }
        Some(topics) => {
            for t in topics {
                let meta = broker.metadata.topic(&t.topic.0);
                let mut tr = ReplicaElectionResult::default();
                tr.topic = t.topic.clone();
                tr.partition_result = t
                    .partitions
                    .iter()
                    .map(|&p| elect(broker, meta.as_deref(), &t.topic.0, p, election_type))
                    .collect();
                resp.replica_election_results.push(tr);
            }
        }
    }
    resp
}
