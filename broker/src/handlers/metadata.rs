//! Metadata (key 3), v0–v13: brokers (the advertised endpoint of the listener the client came in
//! on), cluster id, controller id, and topics with real topic ids. Unknown topics are auto-created
//! when `auto.create.topics.enable` is on and the request allows it (always for v0–v3).

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::{Broker, LEADER_EPOCH};
use crate::metadata::TopicMeta;

/// `authorized_operations` when the client did not ask for them.
const OPS_NOT_REQUESTED: i32 = i32::MIN;

pub fn broker_list(broker: &Broker, ctx: &RequestContext) -> Vec<MetadataResponseBroker> {
    let mut b = MetadataResponseBroker::default();
    b.node_id = BrokerId(broker.node_id());
    if let Some(l) = broker.advertised_for(&ctx.listener) {
        b.host = StrBytes::from_string(l.host.clone());
        b.port = l.port as i32;
    }
    vec![b]
}

fn describe_topic(broker: &Broker, ctx: &RequestContext, meta: &TopicMeta, include_ops: bool) -> MetadataResponseTopic {
    let node = broker.node_id();
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(meta.name.clone())));
    t.topic_id = meta.id;
    t.is_internal = meta.internal;
    t.topic_authorized_operations =
        if include_ops { ctx.authorized_operations(Resource::Topic(&meta.name)) } else { OPS_NOT_REQUESTED };
    t.partitions = (0..meta.partitions)
        .map(|i| {
            let mut p = MetadataResponsePartition::default();
            p.partition_index = i;
            p.leader_epoch = LEADER_EPOCH;
            p.replica_nodes = vec![BrokerId(node)];
            if broker.is_partition_offline(meta, i) {
                p.error_code = ResponseError::KafkaStorageError.code();
                p.leader_id = BrokerId(-1);
                p.offline_replicas = vec![BrokerId(node)];
            } else {
                p.leader_id = BrokerId(node);
                p.isr_nodes = vec![BrokerId(node)];
            }
            p
        })
        .collect();
    t
}

fn error_topic(name: Option<TopicName>, id: uuid::Uuid, code: ResponseError) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.error_code = code.code();
    t.name = name;
    t.topic_id = id;
    t.topic_authorized_operations = OPS_NOT_REQUESTED;
    t
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: MetadataRequest) -> MetadataResponse {
    let mut resp = MetadataResponse::default();
    resp.brokers = broker_list(broker, ctx);
    resp.cluster_id = Some(StrBytes::from_string(broker.metadata.cluster_id().to_string()));
    resp.controller_id = BrokerId(broker.node_id());
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        ctx.authorized_operations(Resource::Cluster)
    } else {
        OPS_NOT_REQUESTED
    };
    let include_ops = req.include_topic_authorized_operations;
    // v0: an empty list means all topics; v1+: null means all topics.
    let all = match &req.topics {
        None => true,
        Some(list) => list.is_empty() && ctx.api_version == 0,
    };
    if all {
        // Only the topics the principal may describe exist for it.
        resp.topics = broker
            .metadata
            .topics()
            .iter()
            .filter(|t| ctx.authorize(AclOperation::Describe, Resource::Topic(&t.name)))
            .map(|t| describe_topic(broker, ctx, t, include_ops))
            .collect();
        return resp;
    }
    let allow_auto_create =
        broker.config.auto_create_topics_enable && (ctx.api_version < 4 || req.allow_auto_topic_creation);
    for rt in req.topics.unwrap_or_default() {
        let topic = match &rt.name {
            Some(name) => {
                let name_str = name.0.to_string();
                let may_create = || {
                    ctx.authorize(AclOperation::Create, Resource::Cluster)
                        || ctx.authorize(AclOperation::Create, Resource::Topic(&name_str))
                };
                match broker.metadata.topic(&name_str) {
                    // Whether a topic exists is not told to who may not describe it.
                    _ if !ctx.authorize(AclOperation::Describe, Resource::Topic(&name_str)) => {
                        error_topic(Some(name.clone()), uuid::Uuid::nil(), ResponseError::TopicAuthorizationFailed)
                    }
                    Some(meta) => describe_topic(broker, ctx, &meta, include_ops),
                    None if crate::metadata::validate_topic_name(&name_str).is_err() => {
                        error_topic(Some(name.clone()), uuid::Uuid::nil(), ResponseError::InvalidTopicException)
                    }
                    None if allow_auto_create && !may_create() => {
                        error_topic(Some(name.clone()), uuid::Uuid::nil(), ResponseError::TopicAuthorizationFailed)
                    }
                    None if allow_auto_create => {
                        match broker.create_topic_blocking(name_str.clone(), -1, -1, Default::default(), false).await {
                            Ok(meta) => describe_topic(broker, ctx, &meta, include_ops),
                            // Another request created it between our lookup and create.
                            Err(e) if e.code == ResponseError::TopicAlreadyExists => {
                                match broker.metadata.topic(&name_str) {
                                    Some(meta) => describe_topic(broker, ctx, &meta, include_ops),
                                    None => error_topic(
                                        Some(name.clone()),
                                        uuid::Uuid::nil(),
                                        ResponseError::UnknownTopicOrPartition,
                                    ),
                                }
                            }
                            Err(e) => error_topic(Some(name.clone()), uuid::Uuid::nil(), e.code),
                        }
                    }
                    None => error_topic(Some(name.clone()), uuid::Uuid::nil(), ResponseError::UnknownTopicOrPartition),
                }
            }
            None => match broker.metadata.topic_by_id(&rt.topic_id) {
                Some(meta) if !ctx.authorize(AclOperation::Describe, Resource::Topic(&meta.name)) => {
                    error_topic(None, rt.topic_id, ResponseError::TopicAuthorizationFailed)
                }
                Some(meta) => describe_topic(broker, ctx, &meta, include_ops),
                None => error_topic(None, rt.topic_id, ResponseError::UnknownTopicId),
            },
        };
        resp.topics.push(topic);
    }
    resp
}
