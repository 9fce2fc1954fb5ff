//! DescribeQuorum (key 55), v0–v2: the KRaft metadata quorum, `__cluster_metadata`-0, as a Kafka 4
//! broker answers it by forwarding to the controller's `KafkaRaftClient`. This node is the
//! quorum's leader and only voter, with no observers; its log end offset and the high watermark
//! are the metadata store's offset (one record per metadata change), the leader epoch is the
//! store's quorum epoch (one more at each start), and as leader its last fetch and caught-up times
//! are now (Kafka's `RaftUtil.toReplicaState`). v2 adds the voter's directory id and its node with
//! the listeners it is reached on. A request for anything but exactly `__cluster_metadata`
//! partition 0 is UNKNOWN_TOPIC_OR_PARTITION per requested partition.
//!
//! Authorization: DESCRIBE on the cluster (`ControllerApis.handleDescribeQuorum`); a refusal is
//! CLUSTER_AUTHORIZATION_FAILED at the top with no topics.

use std::sync::Arc;

use kafka_protocol::messages::describe_quorum_response::{Listener, Node, PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;
use crate::error::default_message;

/// Kafka's metadata log topic.
pub const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// Error messages exist from v2 on; Kafka leaves them null without an error.
fn message(ctx: &RequestContext, code: Option<ResponseError>) -> Option<StrBytes> {
    match code {
        Some(c) if ctx.api_version >= 2 => Some(StrBytes::from_static_str(default_message(c))),
        _ => None,
    }
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let mut resp = DescribeQuorumResponse::default();
    resp.error_message = None;
    if !ctx.authorize(AclOperation::Describe, Resource::Cluster) {
        let code = ResponseError::ClusterAuthorizationFailed;
        resp.error_code = code.code();
        resp.error_message = message(ctx, Some(code));
        return resp;
    }
    let valid = matches!(req.topics.as_slice(), [t] if t.topic_name.0.as_str() == CLUSTER_METADATA_TOPIC
        && matches!(t.partitions.as_slice(), [p] if p.partition_index == 0));
    if !valid {
        // Kafka's `DescribeQuorumRequest.getPartitionLevelErrorResponse`.
        let code = ResponseError::UnknownTopicOrPartition;
        resp.topics = req
            .topics
            .iter()
            .map(|t| {
                let mut td = TopicData::default();
                td.topic_name = t.topic_name.clone();
                td.partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut pd = PartitionData::default();
                        pd.partition_index = p.partition_index;
                        pd.error_code = code.code();
                        pd.error_message = message(ctx, Some(code));
                        pd
                    })
                    .collect();
                td
            })
            .collect();
        return resp;
    }
    let node = broker.node_id();
    let offset = broker.metadata.metadata_offset();
    let now = crate::clock::now_ms();
    let mut voter = ReplicaState::default();
    voter.replica_id = BrokerId(node);
    voter.log_end_offset = offset;
    // The leader is always fetching from itself and caught up (`RaftUtil.toReplicaState`).
    if ctx.api_version >= 1 {
        voter.last_fetch_timestamp = now;
        voter.last_caught_up_timestamp = now;
    }
    if ctx.api_version >= 2 {
        voter.replica_directory_id = broker.metadata.metadata_directory_id();
    }
    let mut pd = PartitionData::default();
    pd.partition_index = 0;
    pd.error_message = None;
    pd.leader_id = BrokerId(node);
    pd.leader_epoch = broker.metadata.quorum_epoch();
    pd.high_watermark = offset;
    pd.current_voters = vec![voter];
    let mut td = TopicData::default();
    td.topic_name = TopicName(StrBytes::from_static_str(CLUSTER_METADATA_TOPIC));
    td.partitions = vec![pd];
    resp.topics = vec![td];
    if ctx.api_version >= 2 {
        let mut n = Node::default();
        n.node_id = BrokerId(node);
        n.listeners = broker
            .advertised
            .iter()
            .map(|l| {
                let mut out = Listener::default();
                out.name = StrBytes::from_string(l.name.clone());
                out.host = StrBytes::from_string(l.host.clone());
                out.port = l.port;
                out
            })
            .collect();
        resp.nodes = vec![n];
    }
    resp
}
