//! OffsetCommit (key 8), v2–v9: validated against the group's generation and membership, then
//! written to `__consumer_offsets` before the answer. Commits with generation -1 and no member id
//! (standalone consumers, admin tools) are accepted for groups without members.

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::group::records::OffsetAndMetadata;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let now = now_ms();
    let strings = [req.group_id.0.as_str(), req.member_id.as_str()].into_iter().chain(req.group_instance_id.as_deref());
    if !crate::group::records::storable(strings) {
        return error_response(&req, kafka_protocol::ResponseError::InvalidGroupId);
    }
    if !ctx.authorize(AclOperation::Read, Resource::Group(&req.group_id.0)) {
        return error_response(&req, kafka_protocol::ResponseError::GroupAuthorizationFailed);
    }
    // Partitions of topics the principal may not read are answered here and never committed.
    let readable: Vec<bool> =
        req.topics.iter().map(|t| ctx.authorize(AclOperation::Read, Resource::Topic(&t.name.0))).collect();
    let mut offsets = Vec::new();
    for t in req.topics.iter().zip(&readable).filter(|(_, ok)| **ok).map(|(t, _)| t) {
        for p in &t.partitions {
            offsets.push((
                t.name.0.to_string(),
                p.partition_index,
                OffsetAndMetadata {
                    offset: p.committed_offset,
                    leader_epoch: if ctx.api_version >= 6 { p.committed_leader_epoch } else { -1 },
                    metadata: p.committed_metadata.as_deref().unwrap_or("").to_string(),
                    commit_timestamp: now,
                },
            ));
        }
    }
    let result = broker.groups.commit(
        &req.group_id.0,
        req.generation_id_or_member_epoch,
        &req.member_id,
        req.group_instance_id.as_deref(),
        offsets,
        None,
        ctx.api_version,
    );
    let mut codes = partition_codes(&result);
    let mut resp = OffsetCommitResponse::default();
    for (t, readable) in req.topics.into_iter().zip(readable) {
        let mut tr = OffsetCommitResponseTopic::default();
        tr.name = t.name;
        for p in t.partitions {
            let mut pr = OffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code =
                if readable { codes() } else { kafka_protocol::ResponseError::TopicAuthorizationFailed.code() };
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}

/// The error code of each partition in request order, one call per partition: the request's
/// error for all of them, or each partition's own.
pub fn partition_codes(
    result: &Result<Vec<Option<kafka_protocol::ResponseError>>, kafka_protocol::ResponseError>,
) -> impl FnMut() -> i16 + '_ {
    let mut i = 0;
    move || {
        let code = match result {
            Err(e) => e.code(),
            Ok(errors) => crate::error::wire_code(errors.get(i).copied().flatten()),
        };
        i += 1;
        code
    }
}

/// The same error for every partition of the request.
fn error_response(req: &OffsetCommitRequest, code: kafka_protocol::ResponseError) -> OffsetCommitResponse {
    let mut resp = OffsetCommitResponse::default();
    for t in &req.topics {
        let mut tr = OffsetCommitResponseTopic::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let mut pr = OffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = code.code();
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}
