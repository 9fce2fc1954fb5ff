//! DescribeProducers (key 61), v0: the producer state of partitions (KIP-664): each producer id
//! with its epoch, last sequence, last timestamp, coordinator epoch and the first offset of its
//! open transaction (-1 when none).

use std::sync::Arc;

use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let mut resp = DescribeProducersResponse::default();
    for t in req.topics {
        let mut tr = TopicResponse::default();
        let meta = broker.metadata.topic(&t.name.0);
        let readable = ctx.authorize(AclOperation::Read, Resource::Topic(&t.name.0));
        for p in t.partition_indexes {
            let mut pr = PartitionResponse::default();
            pr.partition_index = p;
            let log = match &meta {
                _ if !readable => Err(crate::broker::ApiError::new(
                    kafka_protocol::ResponseError::TopicAuthorizationFailed,
                    "Authorization failed.",
                )),
                Some(m) => broker.partition(m, p),
                None => Err(crate::broker::ApiError::new(
                    kafka_protocol::ResponseError::UnknownTopicOrPartition,
                    format!("topic {} does not exist", t.name.0),
                )),
            };
            match log {
                Ok(log) => {
                    for (pid, e) in log.producer_entries() {
                        let mut s = ProducerState::default();
                        s.producer_id = ProducerId(pid);
                        s.producer_epoch = i32::from(e.epoch);
                        s.last_sequence = e.batches.back().map(|b| b.last_seq).unwrap_or(-1);
                        s.last_timestamp = e.last_timestamp;
                        s.coordinator_epoch = e.coordinator_epoch;
                        s.current_txn_start_offset = e.current_txn_first_offset.unwrap_or(-1);
                        pr.active_producers.push(s);
                    }
                }
                Err(e) => {
                    pr.error_code = e.code.code();
                    pr.error_message = Some(StrBytes::from_string(e.message));
                }
            }
            tr.partitions.push(pr);
        }
        tr.name = t.name;
        resp.topics.push(tr);
    }
    resp
}
