//! InitProducerId (key 22), v0–v5.
//!
//! Without a transactional id (idempotent producers): a fresh producer id (never reused, see
//! [`crate::producer_id`]) with epoch 0; a request carrying the id and epoch this broker gave out
//! (v3+, KIP-360: an idempotent producer resetting its sequences after an error) gets the same
//! id with the epoch bumped, or a fresh id when the epoch would overflow or the id is not ours.
//! Partitions accept the new epoch from sequence 0 and fence the old one.
//!
//! With a transactional id: the transaction coordinator ([`crate::txn`]) validates
//! `transaction.timeout.ms` against `transaction.max.timeout.ms`, aborts an open transaction of
//! the previous epoch, and bumps the epoch, fencing the previous producer.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

fn failed(code: ResponseError) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    resp.error_code = code.code();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    resp
}

fn granted(id: i64, epoch: i16) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(id);
    resp.producer_epoch = epoch;
    resp
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
    if let Some(id) = req.transactional_id.as_ref().filter(|t| !t.0.is_empty()) {
        if !ctx.authorize(AclOperation::Write, Resource::TransactionalId(&id.0)) {
            return failed(ResponseError::TransactionalIdAuthorizationFailed);
        }
        if !crate::group::records::storable([id.0.as_str()]) {
            // `__transaction_state` keys hold the id with an i16 length; a longer one could not
            // be stored without becoming another id.
            return failed(ResponseError::InvalidRequest);
        }
        let expected = (pid >= 0).then_some((pid, epoch));
        return match broker.txns.init_producer_id(&id.0, req.transaction_timeout_ms, expected, ctx.api_version).await {
            Ok((id, epoch)) => granted(id, epoch),
            Err(code) => failed(code),
        };
    }
    // An idempotent producer needs IDEMPOTENT_WRITE on the cluster, or WRITE on some topic.
    let may_write = ctx.authorize(AclOperation::IdempotentWrite, Resource::Cluster)
        || broker.metadata.topics().iter().any(|t| ctx.authorize(AclOperation::Write, Resource::Topic(&t.name)));
    if !may_write {
        return failed(ResponseError::ClusterAuthorizationFailed);
    }
    // Epochs stop short of i16::MAX like Kafka's, so a bumped epoch is always valid.
    if pid >= 0 && epoch >= 0 && broker.producer_ids.was_allocated(pid) && epoch < i16::MAX - 1 {
        return granted(pid, epoch + 1);
    }
    match broker.txns.allocate_producer_id().await {
        Ok(id) => granted(id, 0),
        Err(code) => failed(code),
    }
}
