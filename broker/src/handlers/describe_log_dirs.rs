//! DescribeLogDirs (key 35), v1–v4: every log dir (by its absolute path, as Kafka reports it)
//! with the size and offset lag of each partition in it (all partitions, or the requested ones),
//! including the future replicas of partitions being moved by AlterReplicaLogDirs
//! (`is_future_key`, their lag being how far they are behind the current log), as Kafka's
//! `ReplicaManager.describeLogDirs`; an offline dir is reported with KAFKA_STORAGE_ERROR and no
//! partitions. Total and usable bytes (v4) are those of the dir's file system.

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
    let dirs = crate::context::spawn_blocking(move || {
        logs.dir_infos()
            .into_iter()
            .map(|(path, offline, infos)| {
                let space = sluice_storage::LogManager::dir_space(&path);
                (path, offline, infos, space)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut resp = DescribeLogDirsResponse::default();
    for (path, offline, infos, space) in dirs {
        let mut r = DescribeLogDirsResult::default();
        let absolute = std::path::absolute(&path).unwrap_or(path);
        r.log_dir = StrBytes::from_string(absolute.display().to_string());
        // Kafka's `adjustForLargeFileSystems` never applies: these are unsigned and in range.
        let (total, usable) =
            space.map_or((-1, -1), |(t, u)| (t.min(i64::MAX as u64) as i64, u.min(i64::MAX as u64) as i64));
        r.total_bytes = total;
        r.usable_bytes = usable;
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
            p.is_future_key = info.is_future;
            by_topic.entry(tp.topic.clone()).or_default().push(p);
        }
        for (topic, mut partitions) in by_topic {
            partitions.sort_by_key(|p| (p.partition_index, p.is_future_key));
            let mut t = DescribeLogDirsTopic::default();
            t.name = TopicName(StrBytes::from_string(topic));
            t.partitions = partitions;
            r.topics.push(t);
        }
        resp.results.push(r);
    }
    resp
}
