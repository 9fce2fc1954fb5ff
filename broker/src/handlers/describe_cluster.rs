//! DescribeCluster (key 60), v0–v2: the cluster id, controller and brokers, as the Admin client's
//! `describeCluster` (and so every CLI tool) asks for them first.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

/// `endpoint_type` values (KIP-919).
const ENDPOINT_BROKERS: i8 = 1;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let mut resp = DescribeClusterResponse::default();
    resp.endpoint_type = req.endpoint_type;
    if ctx.api_version >= 1 && req.endpoint_type != ENDPOINT_BROKERS {
        // Controllers are described only through a controller listener, which Sluice does not have.
        resp.error_code = ResponseError::UnsupportedEndpointType.code();
        resp.error_message = Some(StrBytes::from_static_str("The broker listener only describes brokers."));
        return resp;
    }
    if !ctx.authorize(AclOperation::Describe, Resource::Cluster) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return resp;
    }
    resp.cluster_id = StrBytes::from_string(broker.metadata.cluster_id().to_string());
    resp.controller_id = BrokerId(broker.node_id());
    let mut b = DescribeClusterBroker::default();
    b.broker_id = BrokerId(broker.node_id());
    if let Some(l) = broker.advertised_for(&ctx.listener) {
        b.host = StrBytes::from_string(l.host.clone());
        b.port = l.port as i32;
    }
    resp.brokers = vec![b];
    resp.cluster_authorized_operations =
        if req.include_cluster_authorized_operations { ctx.authorized_operations(Resource::Cluster) } else { i32::MIN };
    resp
}
