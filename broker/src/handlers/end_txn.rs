//! EndTxn (key 26), v0–v5: commits or aborts the producer's transaction. The coordinator makes
//! the decision durable, writes the COMMIT/ABORT markers to every partition of the transaction
//! (applying its offset commits on commit), then answers.
//!
//! v5 is transactions v2 (KIP-890 part 2): every commit and abort bumps the producer epoch, the
//! markers carry the bumped epoch, and the response carries the producer id and epoch for the
//! next transaction (a new producer id once the epoch is exhausted). As in Kafka the request
//! version decides, not the finalized `transaction.version`: that level is what makes Kafka 4.x
//! clients send v5 at all.

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: EndTxnRequest) -> EndTxnResponse {
    let mut resp = EndTxnResponse::default();
    if !ctx.authorize(AclOperation::Write, Resource::TransactionalId(&req.transactional_id.0)) {
        resp.error_code = kafka_protocol::ResponseError::TransactionalIdAuthorizationFailed.code();
        return resp;
    }
    let id = &req.transactional_id.0;
    if ctx.api_version >= 5 {
        match broker.txns.end_txn_v2(id, req.producer_id.0, req.producer_epoch, req.committed).await {
            Ok((producer_id, epoch)) => {
                resp.producer_id = ProducerId(producer_id);
                resp.producer_epoch = epoch;
            }
            Err(e) => resp.error_code = e.code(),
        }
        return resp;
    }
    let fenced = crate::txn::fenced_code(ctx.api_version, 2);
    let outcome = broker.txns.end_txn(id, req.producer_id.0, req.producer_epoch, req.committed, fenced).await;
    resp.error_code = crate::error::wire_code(outcome.err());
    resp
}
