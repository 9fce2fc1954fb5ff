//! Heartbeat (key 12), v0–v4: keeps a classic group member's session alive and tells it when a
//! rebalance is in progress.

use std::sync::Arc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, _ctx: &RequestContext, req: HeartbeatRequest) -> HeartbeatResponse {
    let mut resp = HeartbeatResponse::default();
    resp.error_code = crate::error::code(broker.groups.heartbeat(
        &req.group_id.0,
        req.generation_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
    ));
    resp
}
