//! OffsetDelete (key 47), v0: deletes a group's committed offsets for partitions of topics its
//! members do not subscribe to (GROUP_SUBSCRIBED_TO_TOPIC otherwise).

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, _ctx: &RequestContext, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), p.partition_index)))
        .collect();
    let mut resp = OffsetDeleteResponse::default();
    match broker.groups.delete_offsets(&req.group_id.0, &partitions) {
        Err(e) => resp.error_code = e.code(),
        Ok(errors) => {
            let mut errors = errors.into_iter();
            for t in req.topics {
                let mut tr = OffsetDeleteResponseTopic::default();
                tr.name = t.name;
                for p in t.partitions {
                    let mut pr = OffsetDeleteResponsePartition::default();
                    pr.partition_index = p.partition_index;
                    pr.error_code = crate::error::code(errors.next().flatten());
                    tr.partitions.push(pr);
                }
                resp.topics.push(tr);
            }
        }
    }
    resp
}
