//! DeleteRecords (key 21), v0–v2: moves each partition's log start offset up to the requested
//! offset (`-1` = the high watermark) and answers with the new low watermark. An offset above the
//! high watermark is OFFSET_OUT_OF_RANGE; a compact-only topic POLICY_VIOLATION. The log start
//! offsets are checkpointed before answering so they survive a crash. On a tiered topic the new
//! log start is also committed in the partition's remote metadata (durable too) and the remote
//! segments wholly below it are deleted (`remote_log::delete_records`).

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut resp = DeleteRecordsResponse::default();
    let mut moved = false;
    for t in req.topics {
        let mut tr = DeleteRecordsTopicResult::default();
        tr.name = t.name.clone();
        let meta = broker.metadata.topic(&t.name.0);
        let deletable = ctx.authorize(AclOperation::Delete, Resource::Topic(&t.name.0));
        for p in t.partitions {
            let mut pr = DeleteRecordsPartitionResult::default();
            pr.partition_index = p.partition_index;
            pr.low_watermark = -1;
            let log = match &meta {
                _ if !deletable => Err(ResponseError::TopicAuthorizationFailed),
                // Kafka's ReplicaManager: "Cannot delete records of internal topic".
                Some(m) if m.internal => Err(ResponseError::InvalidTopicException),
                Some(m) => broker.partition(m, p.partition_index).map_err(|e| e.code),
                None => Err(ResponseError::UnknownTopicOrPartition),
            };
            match log {
                Err(code) => pr.error_code = code.code(),
                Ok(log) => {
                    let offset = p.offset;
                    let local = log.clone();
                    match crate::context::spawn_blocking(move || local.delete_records(offset)).await {
                        Ok(Ok(low)) => {
                            moved = true;
                            // -1 resolved to the high watermark, which the local log answered.
                            let target = if offset == -1 { low } else { offset };
                            match crate::remote_log::delete_records(broker, &log, target, low).await {
                                Ok(low) => pr.low_watermark = low,
                                Err(code) => pr.error_code = code.code(),
                            }
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(topic = %t.name.0, partition = p.partition_index, error = %e, "delete records refused");
                            pr.error_code = crate::error::storage_error(&e).code();
                        }
                        Err(_) => pr.error_code = ResponseError::UnknownServerError.code(),
                    }
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    if moved {
        let logs = broker.logs.clone();
        if let Ok(Err(e)) = crate::context::spawn_blocking(move || logs.checkpoint()).await {
            tracing::warn!(error = %e, "checkpoint after delete records failed");
        }
    }
    resp
}
