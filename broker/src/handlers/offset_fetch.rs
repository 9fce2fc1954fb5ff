//! OffsetFetch (key 9), v1–v9: committed offsets by partition, all of a group's offsets when the
//! topic list is null (v2+), and several groups per request from v8. Partitions without a commit
//! answer offset -1. v9 (KIP-848) carries the member id and epoch, checked against a consumer
//! group's member (UNKNOWN_MEMBER_ID / STALE_MEMBER_EPOCH as the group's error). With
//! `require_stable` (v7+), a partition whose offset an open transaction is committing answers
//! UNSTABLE_OFFSET_COMMIT.

use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;
use crate::group::records::OffsetAndMetadata;

type Found = Vec<((String, i32), Option<OffsetAndMetadata>)>;
/// Offsets grouped by topic: (topic, [(partition, committed)]).
type ByTopic = Vec<(String, Vec<(i32, Option<OffsetAndMetadata>)>)>;

fn grouped(found: Found) -> ByTopic {
    let mut out: ByTopic = Vec::new();
    for ((topic, partition), v) in found {
        match out.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, parts)) => parts.push((partition, v)),
            None => out.push((topic, vec![(partition, v)])),
        }
    }
    out
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    // KIP-447: with require_stable (v7+), offsets an open transaction is committing are not
    // answered yet; the client retries once the transaction completes.
    let require_stable = ctx.api_version >= 7 && req.require_stable;
    let unstable =
        |group: &str, topic: &str, p: i32| require_stable && broker.groups.has_pending_txn_offset(group, topic, p);
    let epoch = |v: &Option<OffsetAndMetadata>| {
        if ctx.api_version >= 5 {
            v.as_ref().map(|v| v.leader_epoch).unwrap_or(-1)
        } else {
            -1
        }
    };
    // Committed offsets of topics the principal may not describe are not shown: an explicitly
    // named partition gets TOPIC_AUTHORIZATION_FAILED, an all-topics fetch leaves them out.
    let describable = |topic: &str| ctx.authorize(AclOperation::Describe, Resource::Topic(topic));
    let group_denied = |group: &str| !ctx.authorize(AclOperation::Describe, Resource::Group(group));
    if ctx.api_version >= 8 {
        for g in req.groups {
            if group_denied(&g.group_id.0) {
                let mut gr = OffsetFetchResponseGroup::default();
                gr.error_code = ResponseError::GroupAuthorizationFailed.code();
                gr.group_id = g.group_id;
                resp.groups.push(gr);
                continue;
            }
            let explicit = g.topics.is_some();
            let wanted = g.topics.map(|ts| {
                ts.iter().flat_map(|t| t.partition_indexes.iter().map(move |p| (t.name.0.to_string(), *p))).collect()
            });
            let mut gr = OffsetFetchResponseGroup::default();
            if ctx.api_version >= 9 {
                if let Err(e) =
                    broker.groups.validate_offset_fetch(&g.group_id.0, g.member_id.as_deref(), g.member_epoch)
                {
                    gr.error_code = e.code();
                    gr.group_id = g.group_id;
                    resp.groups.push(gr);
                    continue;
                }
            }
            let found = broker.groups.fetch_offsets(&g.group_id.0, wanted);
            for (topic, parts) in grouped(found) {
                let allowed = describable(&topic);
                if !allowed && !explicit {
                    continue;
                }
                let mut tr = OffsetFetchResponseTopics::default();
                for (p, v) in parts {
                    let mut pr = OffsetFetchResponsePartitions::default();
                    pr.partition_index = p;
                    if !allowed {
                        pr.committed_offset = -1;
                        pr.committed_leader_epoch = -1;
                        pr.error_code = ResponseError::TopicAuthorizationFailed.code();
                        tr.partitions.push(pr);
                        continue;
                    }
                    pr.committed_offset = v.as_ref().map(|v| v.offset).unwrap_or(-1);
                    pr.committed_leader_epoch = epoch(&v);
                    pr.metadata = Some(StrBytes::from_string(v.map(|v| v.metadata).unwrap_or_default()));
                    if unstable(&g.group_id.0, &topic, p) {
                        pr.error_code = ResponseError::UnstableOffsetCommit.code();
                        pr.committed_offset = -1;
                    }
                    tr.partitions.push(pr);
                }
                tr.name = TopicName(StrBytes::from_string(topic));
                gr.topics.push(tr);
            }
            gr.group_id = g.group_id;
            resp.groups.push(gr);
        }
        return resp;
    }
    if group_denied(&req.group_id.0) {
        // Before v2 there is no top-level error: every partition carries it.
        resp.error_code = ResponseError::GroupAuthorizationFailed.code();
        for t in req.topics.unwrap_or_default() {
            let mut tr = OffsetFetchResponseTopic::default();
            for p in t.partition_indexes {
                let mut pr = OffsetFetchResponsePartition::default();
                pr.partition_index = p;
                pr.committed_offset = -1;
                pr.committed_leader_epoch = -1;
                pr.error_code = ResponseError::GroupAuthorizationFailed.code();
                tr.partitions.push(pr);
            }
            tr.name = t.name;
            resp.topics.push(tr);
        }
        return resp;
    }
    let explicit = req.topics.is_some();
    let wanted = req.topics.map(|ts| {
        ts.iter().flat_map(|t| t.partition_indexes.iter().map(move |p| (t.name.0.to_string(), *p))).collect()
    });
    let found = broker.groups.fetch_offsets(&req.group_id.0, wanted);
    for (topic, parts) in grouped(found) {
        let allowed = describable(&topic);
        if !allowed && !explicit {
            continue;
        }
        let mut tr = OffsetFetchResponseTopic::default();
        for (p, v) in parts {
            let mut pr = OffsetFetchResponsePartition::default();
            pr.partition_index = p;
            if !allowed {
                pr.committed_offset = -1;
                pr.committed_leader_epoch = -1;
                pr.error_code = ResponseError::TopicAuthorizationFailed.code();
                tr.partitions.push(pr);
                continue;
            }
            pr.committed_offset = v.as_ref().map(|v| v.offset).unwrap_or(-1);
            pr.committed_leader_epoch = epoch(&v);
            pr.metadata = Some(StrBytes::from_string(v.map(|v| v.metadata).unwrap_or_default()));
            if unstable(&req.group_id.0, &topic, p) {
                pr.error_code = ResponseError::UnstableOffsetCommit.code();
                pr.committed_offset = -1;
            }
            tr.partitions.push(pr);
        }
        tr.name = TopicName(StrBytes::from_string(topic));
        resp.topics.push(tr);
    }
    resp
}
