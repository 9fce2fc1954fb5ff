//! AddOffsetsToTxn (key 25), v0–v4: adds the group's `__consumer_offsets` partition to the
//! producer's transaction, so a following TxnOffsetCommit commits or aborts with it.

use std::sync::Arc;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;
use crate::group::records::{partition_for, OFFSETS_TOPIC};

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let mut resp = AddOffsetsToTxnResponse::default();
    if !ctx.authorize(AclOperation::Write, Resource::TransactionalId(&req.transactional_id.0)) {
        resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return resp;
    }
    if !ctx.authorize(AclOperation::Read, Resource::Group(&req.group_id.0)) {
        resp.error_code = ResponseError::GroupAuthorizationFailed.code();
        return resp;
    }
    let Some(meta) = broker.metadata.topic(OFFSETS_TOPIC) else {
        resp.error_code = ResponseError::CoordinatorNotAvailable.code();
        return resp;
    };
    if req.group_id.0.is_empty() {
        resp.error_code = ResponseError::InvalidGroupId.code();
        return resp;
    }
    let partition = (OFFSETS_TOPIC.to_string(), partition_for(&req.group_id.0, meta.partitions));
    let fenced = crate::txn::fenced_code(ctx.api_version, 2);
    let outcome = broker
        .txns
        .add_partitions(&req.transactional_id.0, req.producer_id.0, req.producer_epoch, &[partition], fenced, 0)
        .await;
    resp.error_code = match outcome {
        Err(e) => e.code(),
        Ok(codes) => crate::error::wire_code(codes.into_iter().next().flatten()),
    };
    resp
}
