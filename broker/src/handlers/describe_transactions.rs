//! DescribeTransactions (key 65), v0: the coordinator's state of each transactional id: state,
//! producer id and epoch, timeout, start time and the partitions of the ongoing transaction.
//! Unknown ids get TRANSACTIONAL_ID_NOT_FOUND.

use std::sync::Arc;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut resp = DescribeTransactionsResponse::default();
    for id in req.transactional_ids {
        let mut s = TransactionState::default();
        if !ctx.authorize(AclOperation::Describe, Resource::TransactionalId(&id.0)) {
            s.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
            s.producer_id = ProducerId(-1);
            s.producer_epoch = -1;
            s.transaction_start_time_ms = -1;
            s.transactional_id = id;
            resp.transaction_states.push(s);
            continue;
        }
        match broker.txns.describe(&id.0).await {
            Some(m) => {
                s.transaction_state = StrBytes::from_static_str(m.state.name());
                s.transaction_timeout_ms = m.timeout_ms;
                s.transaction_start_time_ms = m.start_ms;
                s.producer_id = ProducerId(m.producer_id);
                s.producer_epoch = m.producer_epoch;
                // Partitions of topics the principal may not describe are left out, as in Kafka.
                for (topic, partition) in m.partitions {
                    if !ctx.authorize(AclOperation::Describe, Resource::Topic(&topic)) {
                        continue;
                    }
                    if s.topics.last().is_none_or(|t: &TopicData| t.topic.0.as_str() != topic) {
                        let mut t = TopicData::default();
                        t.topic = TopicName(StrBytes::from_string(topic));
                        s.topics.push(t);
                    }
                    if let Some(t) = s.topics.last_mut() {
                        t.partitions.push(partition);
                    }
                }
            }
            None => {
                s.error_code = ResponseError::TransactionalIdNotFound.code();
                s.producer_id = ProducerId(-1);
                s.producer_epoch = -1;
                s.transaction_start_time_ms = -1;
            }
        }
        s.transactional_id = id;
        resp.transaction_states.push(s);
    }
    resp
}
