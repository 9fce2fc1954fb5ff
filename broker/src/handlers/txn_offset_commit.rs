//! TxnOffsetCommit (key 28), v0–v5: offsets committed inside a transaction (consume-transform-
//! produce). Up to v4 the group's `__consumer_offsets` partition must be in the producer's ongoing
//! transaction (AddOffsetsToTxn); v5 (transactions v2, whose clients skip AddOffsetsToTxn) adds it
//! to the transaction itself, as Kafka's leader does for a v5 request. From v3 the member and
//! generation are checked as OffsetCommit checks them. The offsets are written as transactional records and become visible to
//! OffsetFetch only when the transaction commits.

use std::sync::Arc;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::group::records::{partition_for, OffsetAndMetadata, OFFSETS_TOPIC};

async fn commit(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: &TxnOffsetCommitRequest,
) -> Result<Vec<Option<ResponseError>>, ResponseError> {
    if !ctx.authorize(AclOperation::Write, Resource::TransactionalId(&req.transactional_id.0)) {
        return Err(ResponseError::TransactionalIdAuthorizationFailed);
    }
    if !ctx.authorize(AclOperation::Read, Resource::Group(&req.group_id.0)) {
        return Err(ResponseError::GroupAuthorizationFailed);
    }
    // Partitions of topics the principal may not read are refused; the rest are committed.
    let denied: Vec<bool> =
        req.topics.iter().map(|t| !ctx.authorize(AclOperation::Read, Resource::Topic(&t.name.0))).collect();
    let meta = broker.metadata.topic(OFFSETS_TOPIC).ok_or(ResponseError::CoordinatorNotAvailable)?;
    if req.group_id.0.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    let strings = [req.group_id.0.as_str(), req.transactional_id.0.as_str(), req.member_id.as_str()]
        .into_iter()
        .chain(req.group_instance_id.as_deref());
    if !crate::group::records::storable(strings) {
        return Err(ResponseError::InvalidGroupId);
    }
    let partition = partition_for(&req.group_id.0, meta.partitions);
    // Held until the offsets are appended: EndTxn can not write the marker in between.
    let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
    let guard = if ctx.api_version >= 5 {
        broker.txns.add_write(Some(&req.transactional_id.0), pid, epoch, OFFSETS_TOPIC, partition).await
    } else {
        broker.txns.verify_write(pid, epoch, OFFSETS_TOPIC, partition).await
    }
    .map_err(|e| match e {
        ResponseError::InvalidProducerEpoch | ResponseError::ProducerFenced => {
            crate::txn::fenced_code(ctx.api_version, 3)
        }
        other => other,
    })?;
    if broker.txns.transactional_id_of(req.producer_id.0).as_deref() != Some(req.transactional_id.0.as_str()) {
        return Err(ResponseError::InvalidProducerIdMapping);
    }
    let now = now_ms();
    let offsets: Vec<(String, i32, OffsetAndMetadata)> = req
        .topics
        .iter()
        .zip(&denied)
        .filter(|(_, d)| !**d)
        .flat_map(|(t, _)| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    OffsetAndMetadata {
                        offset: p.committed_offset,
                        leader_epoch: if ctx.api_version >= 2 { p.committed_leader_epoch } else { -1 },
                        metadata: p.committed_metadata.as_deref().unwrap_or("").to_string(),
                        commit_timestamp: now,
                    },
                )
            })
        })
        .collect();
    let (generation, member) =
        if ctx.api_version >= 3 { (req.generation_id, req.member_id.as_str()) } else { (-1, "") };
    let result = broker.groups.commit(
        &req.group_id.0,
        generation,
        member,
        req.group_instance_id.as_deref(),
        offsets,
        Some((req.producer_id.0, req.producer_epoch)),
        ctx.api_version,
    );
    drop(guard);
    if !denied.iter().any(|d| *d) {
        return result;
    }
    let mut committed = match result {
        Ok(codes) => codes.into_iter(),
        Err(e) => {
            vec![Some(e); req.topics.iter().zip(&denied).filter(|(_, d)| !**d).map(|(t, _)| t.partitions.len()).sum()]
                .into_iter()
        }
    };
    Ok(req
        .topics
        .iter()
        .zip(denied)
        .flat_map(|(t, d)| t.partitions.iter().map(move |_| d))
        .map(|d| if d { Some(ResponseError::TopicAuthorizationFailed) } else { committed.next().flatten() })
        .collect())
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let result = commit(broker, ctx, &req).await;
    let mut codes = super::offset_commit::partition_codes(&result);
    let mut resp = TxnOffsetCommitResponse::default();
    for t in req.topics {
        let mut tr = TxnOffsetCommitResponseTopic::default();
        tr.name = t.name;
        for p in t.partitions {
            let mut pr = TxnOffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = codes();
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}
