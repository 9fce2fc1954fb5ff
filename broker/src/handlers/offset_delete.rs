//! OffsetDelete (key 47), v0: deletes a group's committed offsets for partitions of topics its
//! members do not subscribe to (GROUP_SUBSCRIBED_TO_TOPIC otherwise).

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let mut resp = OffsetDeleteResponse::default();
    if !ctx.authorize(AclOperation::Delete, Resource::Group(&req.group_id.0)) {
        resp.error_code = kafka_protocol::ResponseError::GroupAuthorizationFailed.code();
        return resp;
    }
    // Partitions of topics the principal may not read are answered without touching the group.
    let readable: Vec<bool> =
        req.topics.iter().map(|t| ctx.authorize(AclOperation::Read, Resource::Topic(&t.name.0))).collect();
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .zip(&readable)
        .filter(|(_, ok)| **ok)
        .flat_map(|(t, _)| t.partitions.iter().map(move |p| (t.name.0.to_string(), p.partition_index)))
        .collect();
    match broker.groups.delete_offsets(&req.group_id.0, &partitions) {
        Err(e) => resp.error_code = e.code(),
        Ok(errors) => {
            let mut errors = errors.into_iter();
            for (t, readable) in req.topics.into_iter().zip(readable) {
                let mut tr = OffsetDeleteResponseTopic::default();
                tr.name = t.name;
                for p in t.partitions {
                    let mut pr = OffsetDeleteResponsePartition::default();
                    pr.partition_index = p.partition_index;
                    pr.error_code = if readable {
                        crate::error::wire_code(errors.next().flatten())
                    } else {
                        kafka_protocol::ResponseError::TopicAuthorizationFailed.code()
                    };
                    tr.partitions.push(pr);
                }
                resp.topics.push(tr);
            }
        }
    }
    resp
}
