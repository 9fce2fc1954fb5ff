//! ConsumerGroupDescribe (key 69), v0–v1: KIP-848 groups with their epochs, assignor, and each
//! member's subscription, current assignment and target assignment (topic ids and names).
//! Classic groups are GROUP_ID_NOT_FOUND ("is not a consumer group"), as in Kafka. With the
//! finalized `group.version` below 1 every group is UNSUPPORTED_VERSION, as Kafka answers.

use std::sync::Arc;

use kafka_protocol::messages::consumer_group_describe_response::{Assignment, DescribedGroup, Member, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;
use crate::error::ApiError;
use crate::group::consumer::assignor;

fn assignment(broker: &Broker, a: &assignor::Assignment) -> Assignment {
    let mut out = Assignment::default();
    out.topic_partitions = a
        .iter()
        .map(|(id, parts)| {
            let mut tp = TopicPartitions::default();
            tp.topic_id = *id;
            tp.topic_name = TopicName(StrBytes::from_string(
                broker.metadata.topic_by_id(id).map(|t| t.name.clone()).unwrap_or_default(),
            ));
            tp.partitions = parts.iter().copied().collect();
            tp
        })
        .collect();
    out
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let mut resp = ConsumerGroupDescribeResponse::default();
    if broker.metadata.feature_level(crate::features::GROUP_VERSION) < 1 {
        for id in req.group_ids {
            let mut g = DescribedGroup::default();
            g.group_id = id;
            g.error_code = ResponseError::UnsupportedVersion.code();
            resp.groups.push(g);
        }
        return resp;
    }
    for id in req.group_ids {
        let mut d = DescribedGroup::default();
        d.authorized_operations = if req.include_authorized_operations {
            ctx.authorized_operations(Resource::Group(&id.0))
        } else {
            i32::MIN
        };
        if id.0.is_empty() {
            d.error_code = ResponseError::InvalidGroupId.code();
        } else if !ctx.authorize(AclOperation::Describe, Resource::Group(&id.0)) {
            d.error_code = ResponseError::GroupAuthorizationFailed.code();
            d.authorized_operations = i32::MIN;
        } else {
            match broker.groups.consumer_describe(&id.0) {
                Err(ApiError { code, message }) => {
                    d.error_code = code.code();
                    d.error_message = Some(StrBytes::from_string(message));
                    d.group_state = StrBytes::from_static_str("Dead");
                }
                Ok(desc) => {
                    let g = desc.group;
                    d.group_state = StrBytes::from_static_str(desc.state.name());
                    d.group_epoch = g.group_epoch;
                    d.assignment_epoch = g.target_assignment_epoch;
                    d.assignor_name = StrBytes::from_string(desc.assignor);
                    for m in g.members.values() {
                        let mut dm = Member::default();
                        dm.member_id = StrBytes::from_string(m.member_id.clone());
                        dm.instance_id = m.instance_id.clone().map(StrBytes::from_string);
                        dm.rack_id = m.rack_id.clone().map(StrBytes::from_string);
                        dm.member_epoch = m.member_epoch;
                        dm.client_id = StrBytes::from_string(m.client_id.clone());
                        dm.client_host = StrBytes::from_string(m.client_host.clone());
                        dm.subscribed_topic_names = m
                            .subscribed_topic_names
                            .iter()
                            .map(|n| TopicName(StrBytes::from_string(n.clone())))
                            .collect();
                        dm.subscribed_topic_regex = m.subscribed_topic_regex.clone().map(StrBytes::from_string);
                        dm.assignment = assignment(broker, &m.assigned);
                        dm.target_assignment =
                            assignment(broker, &g.target.get(&m.member_id).cloned().unwrap_or_default());
                        if ctx.api_version >= 1 {
                            // 1 = the consumer protocol (0 would be a classic member).
                            dm.member_type = 1;
                        }
                        d.members.push(dm);
                    }
                }
            }
        }
        d.group_id = id;
        resp.groups.push(d);
    }
    resp
}
