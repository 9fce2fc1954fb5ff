//! ListConfigResources (key 74), v0–v1: the config resources the cluster knows, as Kafka's
//! `KafkaApis.handleListConfigResources` lists them. v0 (KIP-714's ListClientMetricsResources)
//! lists client-metrics resources only; v1 (KIP-1142) filters by resource type among TOPIC,
//! BROKER, BROKER_LOGGER, CLIENT_METRICS and GROUP, an empty filter meaning all of them, and a
//! type outside those fails the whole request with UNSUPPORTED_VERSION. Listed in Kafka's order:
//! groups with group configs, client-metrics resources, each broker as a broker logger, each
//! broker, then every topic. Sluice has no group configs and no client-metrics subscriptions, so
//! those two types list nothing. Needs DESCRIBE_CONFIGS on the cluster.

use std::sync::Arc;

use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

/// Kafka's `ConfigResource.Type` ids.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;

/// Kafka's `ListConfigResourcesRequest.supportedResourceTypes`.
fn supported(version: i16) -> &'static [i8] {
    if version >= 1 {
        &[TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP]
    } else {
        &[CLIENT_METRICS]
    }
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    let mut resp = ListConfigResourcesResponse::default();
    if !ctx.authorize(AclOperation::DescribeConfigs, Resource::Cluster) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return resp;
    }
    let supported = supported(ctx.api_version);
    let wanted: Vec<i8> = if req.resource_types.is_empty() { supported.to_vec() } else { req.resource_types };
    if wanted.iter().any(|t| !supported.contains(t)) {
        resp.error_code = ResponseError::UnsupportedVersion.code();
        return resp;
    }
    let mut push = |name: String, resource_type: i8| {
        let mut r = ConfigResource::default();
        r.resource_name = StrBytes::from_string(name);
        // v0 has no type field: it is only ever CLIENT_METRICS there.
        r.resource_type = resource_type;
        resp.config_resources.push(r);
    };
    // GROUP: groups with explicit group configs, and CLIENT_METRICS: subscriptions — Sluice has
    // neither kind of resource, so nothing is listed for them.
    let node = broker.node_id().to_string();
    if wanted.contains(&BROKER_LOGGER) {
        push(node.clone(), BROKER_LOGGER);
    }
    if wanted.contains(&BROKER) {
        push(node, BROKER);
    }
    if wanted.contains(&TOPIC) {
        for t in broker.metadata.topics() {
            push(t.name.clone(), TOPIC);
        }
    }
    resp
}
