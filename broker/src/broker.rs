//! The broker's shared state: configuration, cluster metadata, the log manager, metrics and the fetch
//! session cache, plus the topic operations several handlers share (create with logs, delete with
//! logs, partition lookup).
//!
//! Thread-safety: `Broker` is shared as `Arc<Broker>` by every connection task. Its parts carry their
//! own locks; none is held across an `.await`.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use sluice_storage::{LogManager, TopicPartition, UnifiedLog};
use tokio::sync::watch;

use crate::config::{Config, Listener};
use crate::fetch_session::FetchSessionCache;
use crate::group::GroupCoordinator;
use crate::metadata::{MetadataStore, TopicMeta};
use crate::metrics::Metrics;
use crate::topic_config::validate_topic_configs;

/// Leader epoch of every partition on a single node. Replication will make this per-partition;
/// what each log's data was written in is its leader-epoch cache (OffsetForLeaderEpoch).
pub const LEADER_EPOCH: i32 = 0;

pub use crate::error::ApiError;

pub struct Broker {
    pub config: Config,
    pub metadata: MetadataStore,
    pub logs: Arc<LogManager>,
    pub fetch_sessions: FetchSessionCache,
    /// Consumer groups and committed offsets.
    pub groups: Arc<GroupCoordinator>,
    /// Advertised listeners with real ports (a configured port 0 is replaced by the bound one).
    pub advertised: Vec<Listener>,
    /// Flips to `true` when shutdown begins; long polls and connection loops watch it.
    pub shutdown: watch::Receiver<bool>,
    /// This broker's Prometheus registry and metric handles.
    pub metrics: Arc<Metrics>,
    /// The remote log manager when `remote.log.storage.system.enable=true` (KIP-405).
    pub remote: Option<Arc<sluice_tiered::RemoteLogManager>>,
    /// Producer ids for InitProducerId, persisted in blocks in the first log dir.
    pub producer_ids: Arc<crate::producer_id::ProducerIdManager>,
    /// Transactional ids and their transactions.
    pub txns: Arc<crate::txn::TxnCoordinator>,
    /// Serializes topic and partition creation, so the partition limits are checked and
    /// consumed atomically (Kafka's controller is one thread for the same reason).
    pub topic_admin: std::sync::Mutex<()>,
    /// Decides every request's access to topics, groups, transactional ids and the cluster.
    pub authorizer: Arc<dyn crate::authz::Authorizer>,
}

impl Broker {
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The endpoint advertised to a client connected through `listener_name`.
    pub fn advertised_for(&self, listener_name: &str) -> Option<&Listener> {
        self.advertised.iter().find(|l| l.name == listener_name).or_else(|| self.advertised.first())
    }

    /// The log of an existing partition of an existing topic, creating the log if it is missing
    /// (a crash between persisting metadata and creating directories leaves that state).
    pub fn partition(&self, topic: &TopicMeta, partition: i32) -> Result<Arc<UnifiedLog>, ApiError> {
        if partition < 0 || partition >= topic.partitions {
            return Err(ApiError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("partition {partition} of topic {} does not exist", topic.name),
            ));
        }
        let tp = TopicPartition { topic: topic.name.clone(), partition };
        if let Some(p) = self.logs.get(&tp) {
            return Ok(p);
        }
        let dir = self.metadata.partition_log_dir(topic, partition);
        let log = self
            .logs
            .get_or_create_in(&tp, *topic.id.as_bytes(), topic.config.log.clone(), dir.as_deref())
            .map_err(ApiError::from)?;
        // This broker leads the new partition from its start (Kafka's makeLeader).
        log.assign_leader_epoch(LEADER_EPOCH);
        Ok(log)
    }

    /// Whether partition `partition` of `topic` lives in an offline log dir (its leader is then
    /// gone: Metadata answers KAFKA_STORAGE_ERROR and no leader). A partition whose log cannot be
    /// opened counts as offline too.
    pub fn is_partition_offline(&self, topic: &TopicMeta, partition: i32) -> bool {
        let offline = self.logs.offline_dirs();
        !offline.is_empty()
            && self
                .partition(topic, partition)
                .map(|log| offline.iter().any(|d| log.dir().starts_with(d)))
                .unwrap_or(true)
    }

    /// Creates an internal compacted topic (`__consumer_offsets`, `__transaction_state`) on
    /// first start, as Kafka does on first use; creating it up front keeps that latency out of
    /// client requests.
    pub fn ensure_internal_topic(&self, name: &str, partitions: i32, segment_bytes: i32) -> anyhow::Result<()> {
        if self.metadata.topic(name).is_some() {
            return Ok(());
        }
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        configs.insert("segment.bytes".to_string(), segment_bytes.to_string());
        configs.insert("compression.type".to_string(), "producer".to_string());
        self.create_topic(name, partitions, 1, configs, false)
            .map_err(|e| anyhow::anyhow!("creating {name}: {}", e.message))?;
        Ok(())
    }

    /// Creates a topic: validates it, records it in the metadata, creates its partition logs.
    /// With `validate_only`, stops after validation and returns what would have been created.
    pub fn create_topic(
        &self,
        name: &str,
        num_partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<TopicMeta>, ApiError> {
        crate::metadata::validate_topic_name(name)
            .map_err(|e| ApiError::new(ResponseError::InvalidTopicException, e.to_string()))?;
        let partitions = if num_partitions == -1 { self.config.num_partitions } else { num_partitions };
        if partitions <= 0 {
            return Err(ApiError::new(ResponseError::InvalidPartitions, "Number of partitions must be larger than 0."));
        }
        let rf = if replication_factor == -1 { self.config.default_replication_factor } else { replication_factor };
        if rf <= 0 {
            return Err(ApiError::new(
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0.",
            ));
        }
        if rf > 1 {
            return Err(ApiError::new(
                ResponseError::InvalidReplicationFactor,
                format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only 1 broker(s) are registered."),
            ));
        }
        let configs =
            validate_topic_configs(&configs).map_err(|e| ApiError::new(ResponseError::InvalidConfig, e.to_string()))?;
        let dynamic = self.metadata.dynamic_broker_configs();
        crate::topic_config::validate_effective(&configs, &self.broker_view(&dynamic))
            .map_err(|e| ApiError::new(ResponseError::InvalidConfig, e.to_string()))?;
        let _admin = self.topic_admin.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.metadata.topic(name).is_some() {
            return Err(ApiError::new(ResponseError::TopicAlreadyExists, format!("Topic '{name}' already exists.")));
        }
        // The coordinators' own topics are created at startup, before any client, whatever the
        // limits say.
        if !crate::metadata::is_internal_topic(name) {
            self.check_partition_limits(partitions as usize, 0)?;
        }
        if validate_only {
            return Ok(Arc::new(TopicMeta {
                name: name.to_string(),
                id: uuid::Uuid::nil(),
                partitions,
                replication_factor: rf,
                config: crate::topic_config::TopicConfig::resolve(&configs, &self.broker_view(&dynamic)),
                configs,
                internal: false,
                log_dirs: BTreeMap::new(),
            }));
        }
        let meta = self.metadata.create_topic(name, partitions, rf, configs, &self.broker_view(&dynamic))?;
        // All or nothing: a topic whose logs cannot all be created is removed again, so the
        // client's error is the whole truth and nothing half-made remains.
        if let Err(e) = self.create_partition_logs(&meta, 0) {
            if let Err(undo) = self.metadata.delete_topic(name) {
                tracing::error!(topic = name, error = %undo, "could not remove a half-created topic");
            }
            return Err(e);
        }
        tracing::info!(topic = name, partitions, topic_id = %meta.id, "created topic");
        Ok(meta)
    }

    /// Refuses `adding` partitions (with `in_request` already counted for this request) when
    /// they would pass `max.partitions.per.request` or `max.broker.partitions`. Checked before
    /// anything is allocated; POLICY_VIOLATION as Kafka's controller answers an oversized batch.
    pub fn check_partition_limits(&self, adding: usize, in_request: usize) -> Result<(), ApiError> {
        let per_request = self.config.max_partitions_per_request;
        if adding.saturating_add(in_request) > per_request {
            return Err(ApiError::new(
                ResponseError::PolicyViolation,
                format!(
                    "Unable to perform excessively large batch operation: {} partitions in one request, at most {per_request} (max.partitions.per.request).",
                    adding.saturating_add(in_request)
                ),
            ));
        }
        let existing: usize = self.metadata.topics().iter().map(|t| t.partitions.max(0) as usize).sum();
        let limit = self.config.max_broker_partitions;
        if existing.saturating_add(adding) > limit {
            return Err(ApiError::new(
                ResponseError::PolicyViolation,
                format!(
                    "Cannot add {adding} partitions: this broker has {existing} and its limit is {limit} (max.broker.partitions, derived from the open-file limit unless set)."
                ),
            ));
        }
        Ok(())
    }

    /// Creates the logs of `meta`'s partitions from `first` on; on the first failure removes
    /// the ones it created and reports which partition failed.
    pub fn create_partition_logs(&self, meta: &TopicMeta, first: i32) -> Result<(), ApiError> {
        for p in first..meta.partitions {
            if let Err(e) = self.partition(meta, p) {
                tracing::warn!(topic = %meta.name, partition = p, error = %e.message, "creating partition log failed; undoing");
                for created in first..p {
                    let tp = TopicPartition { topic: meta.name.clone(), partition: created };
                    if let Err(error) = self.logs.delete(&tp) {
                        tracing::warn!(topic = %meta.name, partition = created, %error, "removing a partition log failed");
                    }
                }
                return Err(ApiError::new(
                    e.code,
                    format!("Could not create partition {p} of {}: {}", meta.name, e.message),
                ));
            }
        }
        Ok(())
    }

    /// [`create_topic`](Self::create_topic) on a blocking thread: creating thousands of
    /// partition directories must not stall the runtime's workers.
    pub async fn create_topic_blocking(
        self: &Arc<Self>,
        name: String,
        num_partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<TopicMeta>, ApiError> {
        let broker = self.clone();
        crate::context::spawn_blocking(move || {
            broker.create_topic(&name, num_partitions, replication_factor, configs, validate_only)
        })
        .await
        .unwrap_or_else(|e| Err(ApiError::new(ResponseError::UnknownServerError, e.to_string())))
    }

    /// [`delete_topic`](Self::delete_topic) on a blocking thread (it renames and removes files).
    pub async fn delete_topic_blocking(self: &Arc<Self>, name: String) -> Result<Arc<TopicMeta>, ApiError> {
        let broker = self.clone();
        crate::context::spawn_blocking(move || broker.delete_topic(&name))
            .await
            .unwrap_or_else(|e| Err(ApiError::new(ResponseError::UnknownServerError, e.to_string())))
    }

    /// Deletes a topic and its logs.
    pub fn delete_topic(&self, name: &str) -> Result<Arc<TopicMeta>, ApiError> {
        if !self.config.delete_topic_enable {
            return Err(ApiError::new(ResponseError::TopicDeletionDisabled, "Topic deletion is disabled."));
        }
        if crate::metadata::is_internal_topic(name) && self.metadata.topic(name).is_some() {
            // Deleting a coordinator's log would wipe every committed offset or transaction.
            return Err(ApiError::new(
                ResponseError::InvalidTopicException,
                format!("Topic {name} is an internal topic and cannot be deleted."),
            ));
        }
        // Durable before the metadata goes; its data is deleted when this guard drops.
        let _remote_deletion = crate::remote_log::begin_topic_deletion(self, name)?;
        let meta = self.metadata.delete_topic(name)?;
        for p in 0..meta.partitions {
            let tp = TopicPartition { topic: name.to_string(), partition: p };
            if let Err(e) = self.logs.delete(&tp) {
                tracing::warn!(topic = name, partition = p, error = %e, "deleting partition log failed");
            }
        }
        self.fetch_sessions.forget_topic(name);
        self.groups.on_topic_deleted(name);
        tracing::info!(topic = name, "deleted topic");
        Ok(meta)
    }

    /// Removes logs whose topic no longer exists (a crash between deleting the metadata and the
    /// logs) or whose partition index is beyond the topic's partition count, and the future
    /// replicas of such partitions.
    pub fn remove_orphan_logs(&self) {
        for f in self.logs.futures() {
            let tp = f.topic_partition().clone();
            if self.metadata.topic(&tp.topic).is_none_or(|t| tp.partition >= t.partitions) {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, "removing future replica of a deleted topic");
                if let Err(e) = self.logs.cancel_future(&tp) {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "removing orphan future replica failed");
                }
            }
        }
        for p in self.logs.partitions() {
            let tp = p.topic_partition().clone();
            let keep = self.metadata.topic(&tp.topic).is_some_and(|t| tp.partition < t.partitions);
            if !keep {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, "removing log of a deleted topic");
                if let Err(e) = self.logs.delete(&tp) {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "removing orphan log failed");
                }
            }
        }
    }
}
