//! DescribeTopicPartitions (key 75), v0: topics and their partitions, paged by a cursor (KIP-966),
//! which Kafka 4's `kafka-topics.sh --describe` and Admin `describeTopics` use. As Kafka's
//! `DescribeTopicPartitionsRequestHandler` and `KRaftMetadataCache`: an empty topic list means
//! every topic; topics are described in name order from the cursor (its topic from its partition
//! on, later topics from partition 0); one response holds at most
//! `min(response_partition_limit, max.request.partition.size.limit)` partitions (at least one) and,
//! when it stops early, `next_cursor` names the first partition left out. A cursor whose topic is
//! not among the named topics, or whose partition is negative, is INVALID_REQUEST for every
//! requested topic. Named topics that do not exist are UNKNOWN_TOPIC_OR_PARTITION
//! (INVALID_TOPIC_EXCEPTION for an illegal name); listing every topic skips nothing but what the
//! principal may not see.
//!
//! Authorization: DESCRIBE on each topic. Listing all topics leaves the others out; a named topic
//! that may not be described is TOPIC_AUTHORIZATION_FAILED with no id, after the described ones
//! (those the page reached).
//! Every topic described carries the principal's authorized operations on it.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::{Broker, LEADER_EPOCH};
use crate::metadata::{is_internal_topic, validate_topic_name, TopicMeta};

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn error_topic(name: &str, code: ResponseError, internal: bool) -> DescribeTopicPartitionsResponseTopic {
    let mut t = DescribeTopicPartitionsResponseTopic::default();
    t.error_code = code.code();
    t.name = Some(topic_name(name));
    t.topic_id = uuid::Uuid::nil();
    t.is_internal = internal;
    t
}

/// Kafka's `DescribeTopicPartitionsRequest.getErrorResponse`: `code` on every requested topic.
fn error_response(req: &DescribeTopicPartitionsRequest, code: ResponseError) -> DescribeTopicPartitionsResponse {
    let mut resp = DescribeTopicPartitionsResponse::default();
    resp.topics = req.topics.iter().map(|t| error_topic(&t.name.0, code, false)).collect();
    resp
}

fn describe_partition(broker: &Broker, meta: &TopicMeta, index: i32) -> DescribeTopicPartitionsResponsePartition {
    let node = BrokerId(broker.node_id());
    let mut p = DescribeTopicPartitionsResponsePartition::default();
    p.partition_index = index;
    p.leader_epoch = LEADER_EPOCH;
    p.replica_nodes = vec![node];
    // No eligible leader replicas on one node: the lists are empty, not null.
    p.eligible_leader_replicas = Some(Vec::new());
    p.last_known_elr = Some(Vec::new());
    if broker.is_partition_offline(meta, index) {
        p.leader_id = BrokerId(-1);
        p.offline_replicas = vec![node];
    } else {
        p.leader_id = node;
        p.isr_nodes = vec![node];
    }
    p
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let fetch_all = req.topics.is_empty();
    let cursor_topic = req.cursor.as_ref().map(|c| c.topic_name.0.to_string()).unwrap_or_default();
    let names: BTreeSet<String> = if fetch_all {
        broker.metadata.topics().iter().map(|t| t.name.clone()).filter(|n| *n >= cursor_topic).collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).filter(|n| *n >= cursor_topic).collect()
    };
    if let Some(cursor) = &req.cursor {
        // The cursor's topic must be one of the named topics, and its partition valid.
        if (!fetch_all && !names.contains(cursor.topic_name.0.as_str())) || cursor.partition_index < 0 {
            return error_response(&req, ResponseError::InvalidRequest);
        }
    }
    let limit =
        (req.response_partition_limit.max(0) as usize).min(broker.config.max_request_partition_size_limit).max(1);
    let mut resp = DescribeTopicPartitionsResponse::default();
    let mut refused = Vec::new();
    let mut remaining = limit;
    for name in names {
        if !ctx.authorize(AclOperation::Describe, Resource::Topic(&name)) {
            if !fetch_all {
                refused.push(error_topic(&name, ResponseError::TopicAuthorizationFailed, false));
            }
            continue;
        }
        if remaining == 0 {
            // The previous topic filled the page exactly: the next page starts here.
            let mut c = Cursor::default();
            c.topic_name = topic_name(&name);
            c.partition_index = 0;
            resp.next_cursor = Some(c);
            break;
        }
        let mut topic = match broker.metadata.topic(&name) {
            Some(meta) => {
                let start = match &req.cursor {
                    Some(c) if c.topic_name.0.as_str() == name => c.partition_index,
                    _ => 0,
                };
                let upper = meta.partitions.min(start.saturating_add(remaining as i32));
                let mut t = DescribeTopicPartitionsResponseTopic::default();
                t.name = Some(topic_name(&name));
                t.topic_id = meta.id;
                t.is_internal = meta.internal;
                t.partitions = (start..upper).map(|i| describe_partition(broker, &meta, i)).collect();
                remaining -= t.partitions.len();
                if upper < meta.partitions {
                    let mut c = Cursor::default();
                    c.topic_name = topic_name(&name);
                    c.partition_index = upper;
                    resp.next_cursor = Some(c);
                }
                t
            }
            None if fetch_all => continue,
            None => {
                let code = if validate_topic_name(&name).is_ok() {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    ResponseError::InvalidTopicException
                };
                error_topic(&name, code, is_internal_topic(&name))
            }
        };
        topic.topic_authorized_operations = ctx.authorized_operations(Resource::Topic(&name));
        resp.topics.push(topic);
        if resp.next_cursor.is_some() {
            // Kafka stops walking the topics here: later ones, refused or not, are the next
            // page's.
            break;
        }
    }
    resp.topics.extend(refused);
    resp
}
