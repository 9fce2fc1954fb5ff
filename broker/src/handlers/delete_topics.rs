//! DeleteTopics (key 20), v1–v6: by name, and from v6 by topic id. Unknown names get
//! UNKNOWN_TOPIC_OR_PARTITION, unknown ids UNKNOWN_TOPIC_ID.

use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mut resp = DeleteTopicsResponse::default();
    let targets: Vec<(Option<TopicName>, uuid::Uuid)> = if ctx.api_version >= 6 {
        req.topics.into_iter().map(|t| (t.name, t.topic_id)).collect()
    } else {
        req.topic_names.into_iter().map(|n| (Some(n), uuid::Uuid::nil())).collect()
    };
    for (name, id) in targets {
        let mut r = DeletableTopicResult::default();
        r.name = name.clone();
        r.topic_id = id;
        let resolved = match &name {
            Some(n) => Ok(n.0.to_string()),
            None => broker.metadata.topic_by_id(&id).map(|t| t.name.clone()).ok_or(ResponseError::UnknownTopicId),
        };
        let outcome = match resolved {
            Ok(n) if !ctx.authorize(AclOperation::Delete, Resource::Topic(&n)) => {
                Err((ResponseError::TopicAuthorizationFailed, None))
            }
            Ok(n) => broker.delete_topic_blocking(n).await.map_err(|e| (e.code, Some(e.message))),
            Err(code) => Err((code, None)),
        };
        match outcome {
            Ok(meta) => {
                r.name = Some(TopicName(StrBytes::from_string(meta.name.clone())));
                r.topic_id = meta.id;
            }
            Err((code, message)) => {
                r.error_code = code.code();
                r.error_message = message.map(StrBytes::from_string);
            }
        }
        resp.responses.push(r);
    }
    resp
}
