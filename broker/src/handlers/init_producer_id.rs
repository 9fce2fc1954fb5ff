//! InitProducerId (key 22), v0–v5, for idempotent producers (no `transactional.id`).
//!
//! A request without a producer id gets a fresh id (never reused, see
//! [`crate::producer_id`]) with epoch 0. A request carrying the id and epoch this broker gave
//! out (v3+, KIP-360: an idempotent producer resetting its sequences after an error) gets the
//! same id with the epoch bumped; when the epoch would overflow, or the id is not one of ours,
//! a fresh id. Partitions accept the new epoch from sequence 0 and fence the old one.
//!
//! Transactional ids need the transaction coordinator, which Sluice does not have yet: such a
//! request gets COORDINATOR_NOT_AVAILABLE (the transactional APIs are not advertised either).

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::broker::Broker;

fn failed(code: ResponseError) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    resp.error_code = code.code();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    resp
}

pub async fn handle(broker: &Arc<Broker>, _ctx: &RequestContext, req: InitProducerIdRequest) -> InitProducerIdResponse {
    if req.transactional_id.as_ref().is_some_and(|t| !t.0.is_empty()) {
        return failed(ResponseError::CoordinatorNotAvailable);
    }
    let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
    // Epochs stop short of i16::MAX like Kafka's, so a bumped epoch is always valid.
    if pid >= 0 && epoch >= 0 && broker.producer_ids.was_allocated(pid) && epoch < i16::MAX - 1 {
        let mut resp = InitProducerIdResponse::default();
        resp.producer_id = ProducerId(pid);
        resp.producer_epoch = epoch + 1;
        return resp;
    }
    let ids = broker.producer_ids.clone();
    match tokio::task::spawn_blocking(move || ids.generate()).await {
        Ok(Ok(id)) => {
            let mut resp = InitProducerIdResponse::default();
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
            resp
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "producer id allocation failed");
            failed(ResponseError::KafkaStorageError)
        }
        Err(e) => {
            tracing::error!(error = %e, "producer id allocation panicked");
            failed(ResponseError::UnknownServerError)
        }
    }
}
