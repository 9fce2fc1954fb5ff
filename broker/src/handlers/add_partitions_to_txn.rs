//! AddPartitionsToTxn (key 24), v0–v5: adds partitions to a producer's transaction before it
//! writes to them. v0–v3 come from clients (librdkafka sends v0) with one transaction; v4+ batch
//! several transactions (KIP-890, sent by brokers) and may only verify (`verify_only`) that the
//! partitions are in the transaction, answering INVALID_TXN_STATE for those that are not. An add
//! from a broker is a transactions-v2 add (Kafka records `transaction.version` 2 for it).

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

/// Per-partition results grouped by topic, in request order.
fn topic_results(
    partitions: &[(String, i32)],
    outcome: &Result<Vec<Option<ResponseError>>, ResponseError>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for (i, (topic, partition)) in partitions.iter().enumerate() {
        let code = match outcome {
            Err(e) => Some(*e),
            Ok(codes) => codes.get(i).copied().flatten(),
        };
        let mut pr = AddPartitionsToTxnPartitionResult::default();
        pr.partition_index = *partition;
        pr.partition_error_code = crate::error::wire_code(code);
        if out.last().is_none_or(|t| t.name.0.as_str() != topic) {
            let mut tr = AddPartitionsToTxnTopicResult::default();
            tr.name = TopicName(StrBytes::from_string(topic.clone()));
            out.push(tr);
        }
        if let Some(t) = out.last_mut() {
            t.results_by_partition.push(pr);
        }
    }
    out
}

/// Kafka's answer when the principal may not write the transactional id or one of the topics:
/// the refused partitions carry the authorization error, the rest OPERATION_NOT_ATTEMPTED, and
/// nothing is added.
fn refused(ctx: &RequestContext, id: &str, partitions: &[(String, i32)]) -> Option<Vec<Option<ResponseError>>> {
    if !ctx.authorize(AclOperation::Write, Resource::TransactionalId(id)) {
        return Some(vec![Some(ResponseError::TransactionalIdAuthorizationFailed); partitions.len()]);
    }
    let denied: Vec<bool> =
        partitions.iter().map(|(t, _)| !ctx.authorize(AclOperation::Write, Resource::Topic(t))).collect();
    denied.iter().any(|d| *d).then(|| {
        denied
            .into_iter()
            .map(|d| {
                Some(if d { ResponseError::TopicAuthorizationFailed } else { ResponseError::OperationNotAttempted })
            })
            .collect()
    })
}

fn flatten(
    topics: &[kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic],
) -> Vec<(String, i32)> {
    topics.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), *p))).collect()
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let mut resp = AddPartitionsToTxnResponse::default();
    let fenced = crate::txn::fenced_code(ctx.api_version, 2);
    if ctx.api_version <= 3 {
        let partitions = flatten(&req.v3_and_below_topics);
        if let Some(codes) = refused(ctx, &req.v3_and_below_transactional_id.0, &partitions) {
            resp.results_by_topic_v3_and_below = topic_results(&partitions, &Ok(codes));
            return resp;
        }
        let outcome = broker
            .txns
            .add_partitions(
                &req.v3_and_below_transactional_id.0,
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
                &partitions,
                fenced,
                0,
            )
            .await;
        resp.results_by_topic_v3_and_below = topic_results(&partitions, &outcome);
        return resp;
    }
    // From v4 the request comes from brokers verifying a transactional produce (KIP-890).
    if !ctx.authorize(AclOperation::ClusterAction, Resource::Cluster) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return resp;
    }
    for t in &req.transactions {
        let partitions = flatten(&t.topics);
        let outcome = if let Some(codes) = refused(ctx, &t.transactional_id.0, &partitions) {
            Ok(codes)
        } else if t.verify_only {
            broker.txns.verify_partitions(&t.transactional_id.0, t.producer_id.0, t.producer_epoch, &partitions).await
        } else {
            broker
                .txns
                .add_partitions(&t.transactional_id.0, t.producer_id.0, t.producer_epoch, &partitions, fenced, 2)
                .await
        };
        let mut r = AddPartitionsToTxnResult::default();
        r.transactional_id = t.transactional_id.clone();
        r.topic_results = topic_results(&partitions, &outcome);
        resp.results_by_transaction.push(r);
    }
    resp
}
