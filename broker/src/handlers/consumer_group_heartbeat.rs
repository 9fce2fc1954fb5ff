//! ConsumerGroupHeartbeat (key 68), v0–v1: the single RPC of KIP-848 consumer groups — join
//! (epoch 0), heartbeat with reconciliation, leave (epoch -1, static -2). v1 (KIP-1082) requires
//! the client to generate its member id; v0 lets the coordinator generate it on join.
//! The state machine is in `group::consumer`, the coordinator side in `group::consumer_ops`.
//! With the finalized `group.version` below 1 the protocol is off: UNSUPPORTED_VERSION, as Kafka.

use std::sync::Arc;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;
use crate::error::ApiError;
use crate::group::consumer::assignor;
use crate::group::consumer::HeartbeatArgs;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    if broker.metadata.feature_level(crate::features::GROUP_VERSION) < 1 {
        let mut resp = ConsumerGroupHeartbeatResponse::default();
        resp.error_code = kafka_protocol::ResponseError::UnsupportedVersion.code();
        return resp;
    }
    let mut member_id = req.member_id.to_string();
    if ctx.api_version == 0 && req.member_epoch == 0 && member_id.is_empty() {
        member_id = uuid::Uuid::new_v4().to_string();
    }
    let owned = req.topic_partitions.as_ref().map(|tps| {
        let mut a = assignor::Assignment::new();
        for tp in tps {
            a.entry(tp.topic_id).or_default().extend(tp.partitions.iter().copied());
        }
        a
    });
    let args = HeartbeatArgs {
        member_id,
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .as_ref()
            .map(|v| v.iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: if ctx.api_version >= 1 {
            req.subscribed_topic_regex.as_ref().map(|s| s.to_string())
        } else {
            None
        },
        server_assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned,
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", ctx.peer.ip()),
    };
    let mut resp = ConsumerGroupHeartbeatResponse::default();
    let denied = if !ctx.authorize(AclOperation::Read, Resource::Group(&req.group_id.0)) {
        Some((kafka_protocol::ResponseError::GroupAuthorizationFailed, String::new()))
    } else {
        // Kafka refuses a subscription to topics the member may not describe.
        let hidden: Vec<&str> = args
            .subscribed_topic_names
            .iter()
            .flatten()
            .map(String::as_str)
            .filter(|t| !ctx.authorize(AclOperation::Describe, Resource::Topic(t)))
            .collect();
        (!hidden.is_empty()).then(|| {
            (
                kafka_protocol::ResponseError::TopicAuthorizationFailed,
                format!("The member is not authorized to access topics: [{}]", hidden.join(", ")),
            )
        })
    };
    if let Some((code, message)) = denied {
        resp.error_code = code.code();
        resp.error_message = (!message.is_empty()).then(|| StrBytes::from_string(message));
        return resp;
    }
    resp.heartbeat_interval_ms = broker.groups.consumer_heartbeat_interval_ms();
    let strings = [req.group_id.0.as_str(), args.member_id.as_str()]
        .into_iter()
        .chain(args.instance_id.as_deref())
        .chain(args.rack_id.as_deref())
        .chain(args.server_assignor.as_deref())
        .chain(args.subscribed_topic_regex.as_deref());
    let outcome = if crate::group::records::storable(strings) {
        broker.groups.consumer_heartbeat(&req.group_id.0, ctx.api_version, args)
    } else {
        Err(ApiError::new(
            kafka_protocol::ResponseError::InvalidRequest,
            "an id is longer than 32767 bytes".to_string(),
        ))
    };
    match outcome {
        Ok(r) => {
            resp.member_id = Some(StrBytes::from_string(r.member_id));
            resp.member_epoch = r.member_epoch;
            resp.assignment = r.assignment.map(|a| {
                let mut out = Assignment::default();
                out.topic_partitions = a
                    .into_iter()
                    .map(|(topic_id, parts)| {
                        let mut tp = TopicPartitions::default();
                        tp.topic_id = topic_id;
                        tp.partitions = parts.into_iter().collect();
                        tp
                    })
                    .collect();
                out
            });
        }
        Err(ApiError { code, message }) => {
            resp.error_code = code.code();
            resp.error_message = (!message.is_empty()).then(|| StrBytes::from_string(message));
            // Kafka echoes neither member id nor epoch nor interval on errors.
            resp.heartbeat_interval_ms = 0;
        }
    }
    resp
}
