//! EndTxn (key 26), v0–v4: commits or aborts the producer's transaction. The coordinator makes
//! the decision durable, writes the COMMIT/ABORT markers to every partition of the transaction
//! (applying its offset commits on commit), then answers. v5 (KIP-890 part 2, which bumps the
//! epoch at every transaction) is for clients with `transaction.version` 2, which Sluice does
//! not advertise, so it is not served.

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: EndTxnRequest) -> EndTxnResponse {
    let mut resp = EndTxnResponse::default();
    if !ctx.authorize(AclOperation::Write, Resource::TransactionalId(&req.transactional_id.0)) {
        resp.error_code = kafka_protocol::ResponseError::TransactionalIdAuthorizationFailed.code();
        return resp;
    }
    let fenced = crate::txn::fenced_code(ctx.api_version, 2);
    let outcome = broker
        .txns
        .end_txn(&req.transactional_id.0, req.producer_id.0, req.producer_epoch, req.committed, fenced)
        .await;
    resp.error_code = crate::error::wire_code(outcome.err());
    resp
}
