//! ListOffsets (key 2), v1–v10: earliest (-2), latest (-1: the high watermark, or the last stable
//! offset for read_committed), max timestamp (-3, KIP-734), earliest local (-4, KIP-405),
//! earliest pending upload (-5, KIP-1023), and the first offset whose record timestamp is at or
//! after a given time (record timestamps, never file times; on a tiered topic the remote
//! segments below the local log start are searched first, as Kafka does).

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;
use sluice_storage::{TimestampOffset, UnifiedLog};

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::{Broker, LEADER_EPOCH};

pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const EARLIEST_PENDING_UPLOAD: i64 = -5;

fn partition_error(index: i32, code: ResponseError) -> ListOffsetsPartitionResponse {
    let mut r = ListOffsetsPartitionResponse::default();
    r.partition_index = index;
    r.error_code = code.code();
    r.timestamp = -1;
    r.offset = -1;
    r.leader_epoch = -1;
    r
}

/// The first record whose timestamp is `>= timestamp` across the whole log, as Kafka searches:
/// the remote tier first (its segments below the local log start, through their cached time
/// indexes), then the local log.
async fn offset_for_timestamp(
    broker: &Broker,
    log: &UnifiedLog,
    timestamp: i64,
) -> Result<Option<TimestampOffset>, ResponseError> {
    if let Some(found) = crate::remote_log::offset_for_timestamp(broker, log, timestamp).await? {
        return Ok(Some(found));
    }
    log.offset_for_timestamp(timestamp).map_err(|e| crate::error::storage_error(&e))
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: ListOffsetsRequest) -> ListOffsetsResponse {
    // Kafka's lastFetchableOffset: what a consumer of this isolation level may read up to.
    let read_committed = req.isolation_level == 1;
    let mut resp = ListOffsetsResponse::default();
    for t in req.topics {
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name.clone();
        let topic = broker.metadata.topic(&t.name.0);
        let describable = ctx.authorize(AclOperation::Describe, Resource::Topic(&t.name.0));
        for p in t.partitions {
            if !describable {
                tr.partitions.push(partition_error(p.partition_index, ResponseError::TopicAuthorizationFailed));
                continue;
            }
            let Some(meta) = &topic else {
                tr.partitions.push(partition_error(p.partition_index, ResponseError::UnknownTopicOrPartition));
                continue;
            };
            let log = match broker.partition(meta, p.partition_index) {
                Ok(l) => l,
                Err(e) => {
                    tr.partitions.push(partition_error(p.partition_index, e.code));
                    continue;
                }
            };
            if p.current_leader_epoch >= 0 && p.current_leader_epoch != LEADER_EPOCH {
                let code = if p.current_leader_epoch > LEADER_EPOCH {
                    ResponseError::UnknownLeaderEpoch
                } else {
                    ResponseError::FencedLeaderEpoch
                };
                tr.partitions.push(partition_error(p.partition_index, code));
                continue;
            }
            let offsets = log.offsets();
            let bound = if read_committed { offsets.last_stable_offset } else { offsets.high_watermark };
            let mut r = ListOffsetsPartitionResponse::default();
            r.partition_index = p.partition_index;
            r.timestamp = -1;
            r.leader_epoch = LEADER_EPOCH;
            let found = match p.timestamp {
                LATEST => Ok(Some((-1, bound))),
                EARLIEST => {
                    let remote = broker.remote.as_ref().and_then(|r| r.log_start_offset(log.topic_partition()));
                    Ok(Some((-1, remote.map_or(offsets.log_start_offset, |r| r.min(offsets.log_start_offset)))))
                }
                EARLIEST_LOCAL => Ok(Some((-1, offsets.log_start_offset))),
                // No tier yet: nothing is pending upload.
                EARLIEST_PENDING_UPLOAD => Ok(Some((-1, -1))),
                MAX_TIMESTAMP => log.max_timestamp().map(|o| o.map(|o| (o.timestamp, o.offset))),
                ts if ts < 0 => {
                    tr.partitions.push(partition_error(p.partition_index, ResponseError::InvalidRequest));
                    continue;
                }
                ts => match offset_for_timestamp(broker, &log, ts).await {
                    Ok(found) => Ok(found.filter(|o| o.offset < bound).map(|o| (o.timestamp, o.offset))),
                    Err(code) => {
                        tr.partitions.push(partition_error(p.partition_index, code));
                        continue;
                    }
                },
            };
            match found {
                Ok(Some((ts, off))) => {
                    r.timestamp = ts;
                    r.offset = off;
                }
                Ok(None) => {
                    r.offset = -1;
                    r.leader_epoch = -1;
                }
                Err(e) => {
                    tr.partitions.push(partition_error(p.partition_index, crate::error::storage_error(&e)));
                    continue;
                }
            }
            if ctx.api_version < 4 {
                // The leader epoch field exists from v4 on.
                r.leader_epoch = -1;
            }
            tr.partitions.push(r);
        }
        resp.topics.push(tr);
    }
    resp
}
