//! DescribeLogDirs (key 35), v1–v4: every log dir with the size and offset lag of each partition
//! in it (all partitions, or the requested ones); an offline dir is reported with
//! KAFKA_STORAGE_ERROR and no partitions. Total and usable bytes (v4) are -1 (unknown).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    if !ctx.authorize(AclOperation::Describe, Resource::Cluster) {
        let mut resp = DescribeLogDirsResponse::default();
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return resp;
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> =
        req.topics.map(|ts| ts.into_iter().map(|t| (t.topic.0.to_string(), t.partitions)).collect());
    let logs = broker.logs.clone();
    let dirs = crate::context::spawn_blocking(move || logs.dir_infos()).await.unwrap_or_default();
    let mut resp = DescribeLogDirsResponse::default();
    for (path, offline, infos) in dirs {
        let mut r = DescribeLogDirsResult::default();
        r.log_dir = StrBytes::from_string(path.display().to_string());
        r.total_bytes = -1;
        r.usable_bytes = -1;
        if offline {
            r.error_code = ResponseError::KafkaStorageError.code();
            resp.results.push(r);
            continue;
        }
        let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
        for info in infos {
            let tp = &info.topic_partition;
            let keep =
                wanted.as_ref().is_none_or(|w| w.iter().any(|(t, ps)| *t == tp.topic && ps.contains(&tp.partition)));
            if !keep {
                continue;
            }
            let mut p = DescribeLogDirsPartition::default();
            p.partition_index = tp.partition;
            p.partition_size = info.size_bytes as i64;
            p.offset_lag = info.offset_lag;
            by_topic.entry(tp.topic.clone()).or_default().push(p);
        }
        for (topic, mut partitions) in by_topic {
            partitions.sort_by_key(|p| p.partition_index);
            let mut t = DescribeLogDirsTopic::default();
            t.name = TopicName(StrBytes::from_string(topic));
            t.partitions = partitions;
            r.topics.push(t);
        }
        resp.results.push(r);
    }
    resp
}
