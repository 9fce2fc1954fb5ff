//! OffsetForLeaderEpoch (key 23), v2–v4 (Kafka 4 dropped v0–v1): for each partition, the largest
//! leader epoch at or below the requested one and where it ends, from the partition's leader-epoch
//! cache (Kafka's `Partition.lastOffsetForLeaderEpoch` over `LeaderEpochFileCache.endOffsetFor`).
//! Consumers use it to validate their position after a leader change (KIP-320), followers to find
//! where to truncate. An epoch the cache does not know (newer than any, or -1) answers no error
//! with UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET (-1, -1); the latest epoch ends at the log end
//! offset. `current_leader_epoch` (-1 = not checked) older than the partition's is
//! FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH. Unknown topics and partitions are
//! UNKNOWN_TOPIC_OR_PARTITION, a partition in an offline log dir KAFKA_STORAGE_ERROR.
//!
//! `replica_id` (v3+) names the asking broker (-1 a consumer, -2 a debugging tool). This node
//! leads every partition, so a follower and a consumer get the same answer; as in Kafka, the id
//! matters only for authorization: CLUSTER_ACTION on the cluster (what brokers hold) allows every
//! topic, otherwise each topic needs DESCRIBE (TOPIC_AUTHORIZATION_FAILED per partition, listed
//! after the allowed topics).

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderTopic;
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::{Broker, LEADER_EPOCH};

fn partition_error(partition: i32, code: ResponseError) -> EpochEndOffset {
    let mut r = EpochEndOffset::default();
    r.partition = partition;
    r.error_code = code.code();
    r
}

/// Kafka's `checkCurrentLeaderEpoch`.
fn check_current_leader_epoch(current: i32) -> Option<ResponseError> {
    match current {
        -1 => None,
        c if c < LEADER_EPOCH => Some(ResponseError::FencedLeaderEpoch),
        c if c > LEADER_EPOCH => Some(ResponseError::UnknownLeaderEpoch),
        _ => None,
    }
}

fn end_offsets(broker: &Broker, t: &OffsetForLeaderTopic) -> OffsetForLeaderTopicResult {
    let mut tr = OffsetForLeaderTopicResult::default();
    tr.topic = t.topic.clone();
    let meta = broker.metadata.topic(&t.topic.0);
    for p in &t.partitions {
        let Some(meta) = meta.as_ref().filter(|m| p.partition >= 0 && p.partition < m.partitions) else {
            tr.partitions.push(partition_error(p.partition, ResponseError::UnknownTopicOrPartition));
            continue;
        };
        if broker.is_partition_offline(meta, p.partition) {
            tr.partitions.push(partition_error(p.partition, ResponseError::KafkaStorageError));
            continue;
        }
        if let Some(code) = check_current_leader_epoch(p.current_leader_epoch) {
            tr.partitions.push(partition_error(p.partition, code));
            continue;
        }
        let log = match broker.partition(meta, p.partition) {
            Ok(log) => log,
            Err(e) => {
                tr.partitions.push(partition_error(p.partition, e.code));
                continue;
            }
        };
        let mut r = EpochEndOffset::default();
        r.partition = p.partition;
        // Unknown to the cache: no error, UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
        if let Some((epoch, end_offset)) = log.end_offset_for_epoch(p.leader_epoch) {
            r.leader_epoch = epoch;
            r.end_offset = end_offset;
        }
        tr.partitions.push(r);
    }
    tr
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut resp = OffsetForLeaderEpochResponse::default();
    let cluster_action = ctx.authorize(AclOperation::ClusterAction, Resource::Cluster);
    let mut refused = Vec::new();
    for t in &req.topics {
        if cluster_action || ctx.authorize(AclOperation::Describe, Resource::Topic(&t.topic.0)) {
            resp.topics.push(end_offsets(broker, t));
        } else {
            let mut tr = OffsetForLeaderTopicResult::default();
            tr.topic = t.topic.clone();
            tr.partitions = t
                .partitions
                .iter()
                .map(|p| partition_error(p.partition, ResponseError::TopicAuthorizationFailed))
                .collect();
            refused.push(tr);
        }
    }
    resp.topics.extend(refused);
    resp
}
