//! AlterReplicaLogDirs (key 34), v1–v2: moves partitions to another of the configured `log.dirs`
//! while they stay online (KIP-113; Kafka's `ReplicaManager.alterReplicaLogDirs`). Per partition,
//! in Kafka's order:
//!
//! - a future dir name past 255 bytes: INVALID_TOPIC_EXCEPTION;
//! - a path that is not a configured log dir (as configured, or absolute as DescribeLogDirs
//!   reports it): LOG_DIR_NOT_FOUND; an offline one: KAFKA_STORAGE_ERROR;
//! - a move of the partition to another dir in progress is cancelled first;
//! - a partition that does not exist: the dir is remembered for when it is created (Kafka's
//!   `maybeUpdatePreferredLogDir`) and the answer is REPLICA_NOT_AVAILABLE;
//! - already in that dir (or moving there): success, nothing more;
//! - otherwise a future replica is created there and the broker's mover copies it in the
//!   background and swaps it in once caught up (`log_tasks`, `sluice_storage`'s `future`), so the
//!   answer comes before the move ends: DescribeLogDirs shows the future replica meanwhile. Any
//!   offline log dir refuses new moves (KAFKA_STORAGE_ERROR), as Kafka does.
//!
//! The whole request needs ALTER on the cluster (CLUSTER_AUTHORIZATION_FAILED for every partition
//! otherwise). Partitions of tiered topics (`remote.storage.enable=true`) are not moved:
//! INVALID_REQUEST (their remote segment metadata lives in the partition dir; Sluice does not
//! carry it over yet).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, TopicName};
use kafka_protocol::ResponseError;
use sluice_storage::{layout, FutureStart, StorageError, TopicPartition};

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    // Kafka's `partitionDirs`: a partition named under two dirs goes to the last one.
    let mut wanted: Vec<(TopicName, i32, String)> = Vec::new();
    let mut index: HashMap<(TopicName, i32), usize> = HashMap::new();
    for dir in req.dirs {
        let path = dir.path.to_string();
        for t in dir.topics {
            for p in t.partitions {
                match index.entry((t.name.clone(), p)) {
                    Entry::Occupied(e) => wanted[*e.get()].2 = path.clone(),
                    Entry::Vacant(e) => {
                        e.insert(wanted.len());
                        wanted.push((t.name.clone(), p, path.clone()));
                    }
                }
            }
        }
    }
    let allowed = ctx.authorize(AclOperation::Alter, Resource::Cluster);
    let mut resp = AlterReplicaLogDirsResponse::default();
    let mut topics: HashMap<TopicName, usize> = HashMap::new();
    for (name, partition, path) in wanted {
        let outcome = if !allowed {
            Err(ResponseError::ClusterAuthorizationFailed)
        } else {
            let b = broker.clone();
            let topic = name.0.to_string();
            crate::context::spawn_blocking(move || alter_one(&b, &topic, partition, &path))
                .await
                .unwrap_or(Err(ResponseError::UnknownServerError))
        };
        let mut pr = AlterReplicaLogDirPartitionResult::default();
        pr.partition_index = partition;
        pr.error_code = crate::error::wire_code(outcome.err());
        match topics.entry(name.clone()) {
            Entry::Occupied(e) => resp.results[*e.get()].partitions.push(pr),
            Entry::Vacant(e) => {
                e.insert(resp.results.len());
                let mut t = AlterReplicaLogDirTopicResult::default();
                t.topic_name = name;
                t.partitions.push(pr);
                resp.results.push(t);
            }
        }
    }
    resp
}

/// One partition's move, on a blocking thread (it may create or delete directories).
fn alter_one(broker: &Broker, topic: &str, partition: i32, path: &str) -> Result<(), ResponseError> {
    let tp = TopicPartition { topic: topic.to_string(), partition };
    if layout::future_dir_name_len(&tp) > 255 {
        return Err(ResponseError::InvalidTopicException);
    }
    let dir = broker.logs.configured_log_dir(path).map_err(|e| crate::error::storage_error(&e))?;
    if broker.logs.offline_dirs().contains(&dir) {
        return Err(ResponseError::KafkaStorageError);
    }
    let meta = broker.metadata.topic(topic).filter(|m| partition >= 0 && partition < m.partitions);
    let Some(meta) = meta else {
        // Not hosted here: cancel nothing, remember where it is to be created.
        if layout::is_legal_topic(topic) && partition >= 0 {
            broker.logs.set_preferred_log_dir(&tp, &dir);
        }
        return Err(ResponseError::ReplicaNotAvailable);
    };
    if meta.config.log.remote_storage_enable {
        return Err(ResponseError::InvalidRequest);
    }
    // A partition whose log is missing is created where it was asked to be.
    if broker.logs.get(&tp).is_none() {
        broker.logs.set_preferred_log_dir(&tp, &dir);
    }
    broker.partition(&meta, partition).map_err(|e| e.code)?;
    match broker.logs.start_future(&tp, &dir) {
        Ok(FutureStart::Started) => {
            tracing::info!(topic, partition, log_dir = %dir.display(), "moving partition to another log dir");
            Ok(())
        }
        Ok(FutureStart::AlreadyThere | FutureStart::AlreadyMoving) => Ok(()),
        Err(StorageError::Deleted(_)) => Err(ResponseError::ReplicaNotAvailable),
        Err(e) => {
            tracing::warn!(topic, partition, log_dir = %dir.display(), error = %e, "could not move partition");
            Err(crate::error::storage_error(&e))
        }
    }
}
