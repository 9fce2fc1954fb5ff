//! Cluster metadata on one node: the cluster id, every topic's name, id, partition count and
//! explicit configs, the log dir of each partition moved by AlterReplicaLogDirs (by the dir's
//! `directory.id`, as KIP-858 records replica directories), dynamic broker configs and the
//! finalized feature levels. Persisted as JSON in the first log dir (`sluice-metadata.json`, replaced
//! atomically: write temp, fsync, rename, fsync dir) so topics and ids survive restarts.
//!
//! The store stands in for Kafka's metadata log (`__cluster_metadata`-0) on a node that is its
//! only voter: every change (topic created or deleted, partitions added, a topic or broker config
//! changed) is one more record, so [`MetadataStore::metadata_offset`] — the metadata log end offset
//! and high watermark DescribeQuorum reports — only grows. Each start is a leader election of the
//! one-voter quorum: the quorum epoch goes up by one and so does the offset (Kafka's leader change
//! record). Both are persisted with the state they describe.
//!
//! Thread-safety: a `std::sync::RwLock` guards the in-memory state; it is never held across an
//! `.await`. Writers persist before publishing, so a crash never leaves readers ahead of disk.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Config;
use crate::features::FinalizedFeatures;
use crate::topic_config::{BrokerLayers, BrokerView, DynamicBrokerConfigs, TopicConfig};

/// One topic as the cluster knows it.
#[derive(Debug, Clone)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Configs set explicitly on the topic.
    pub configs: BTreeMap<String, String>,
    /// The effective typed config (explicit values over broker defaults).
    pub config: TopicConfig,
    pub internal: bool,
    /// The log dir (its `directory.id` in `meta.properties`) of each partition placed by
    /// AlterReplicaLogDirs; the others live wherever they were created.
    pub log_dirs: BTreeMap<i32, String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PersistedTopic {
    name: String,
    id: Uuid,
    partitions: i32,
    replication_factor: i16,
    configs: BTreeMap<String, String>,
    #[serde(default)]
    internal: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    log_dirs: BTreeMap<i32, String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Persisted {
    version: u32,
    topics: Vec<PersistedTopic>,
    /// Dynamic broker configs by resource name: `""` the cluster default, `"<node id>"` one
    /// broker's (AlterConfigs / IncrementalAlterConfigs on BROKER resources).
    #[serde(default)]
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// The finalized feature levels (absent in a store written before Sluice finalized any).
    #[serde(default)]
    features: Option<FinalizedFeatures>,
    /// Records in the metadata log so far: one per change (see the module docs).
    #[serde(default)]
    metadata_offset: i64,
    /// The quorum leader epoch: one more at each start.
    #[serde(default)]
    quorum_epoch: i32,
}

/// Why a topic operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' collides with existing topic '{1}' ('.' and '_' are interchangeable in metric names)")]
    TopicCollision(String, String),
    #[error("invalid topic name '{0}': {1}")]
    InvalidTopic(String, String),
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("{0} is not a configured log dir")]
    UnknownLogDir(PathBuf),
    #[error("metadata could not be persisted: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Clone)]
struct State {
    topics: BTreeMap<String, Arc<TopicMeta>>,
    by_id: HashMap<Uuid, String>,
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    features: FinalizedFeatures,
    /// The metadata log end offset: every persisted change is one record.
    metadata_offset: i64,
    quorum_epoch: i32,
}

impl State {
    fn dynamic(&self, node_id: i32) -> DynamicBrokerConfigs {
        DynamicBrokerConfigs {
            per_broker: self.broker_configs.get(&node_id.to_string()).cloned().unwrap_or_default(),
            cluster_default: self.broker_configs.get("").cloned().unwrap_or_default(),
        }
    }
}

/// The node's cluster metadata.
pub struct MetadataStore {
    path: PathBuf,
    cluster_id: String,
    node_id: i32,
    /// Each configured log dir with its `directory.id`.
    dir_ids: Vec<(PathBuf, String)>,
    /// What readers see; replaced whole after the new state is persisted, so a reader never
    /// waits for an fsync.
    state: RwLock<State>,
    /// Serializes writers: each works on a copy, persists it without holding `state`, then
    /// swaps it in.
    writer: std::sync::Mutex<()>,
    /// `directory.id` of the first log dir, which holds the metadata (DescribeQuorum v2's
    /// replica directory id).
    metadata_directory_id: Uuid,
}

/// Kafka's internal topics (`Topic.isInternal`): the coordinators' logs. Clients may read them
/// but never write, delete, repartition or un-compact them.
pub fn is_internal_topic(name: &str) -> bool {
    matches!(name, "__consumer_offsets" | "__transaction_state" | "__share_group_state")
}

/// Kafka's topic name rule: 1–249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let bad = |why: &str| Err(MetadataError::InvalidTopic(name.to_string(), why.to_string()));
    if name.is_empty() {
        return bad("topic name is empty");
    }
    if name == "." || name == ".." {
        return bad("topic name cannot be '.' or '..'");
    }
    if name.len() > 249 {
        return bad("topic name is longer than 249 characters");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-') {
        return bad("topic name contains characters other than ASCII alphanumerics, '.', '_' and '-'");
    }
    Ok(())
}

impl MetadataStore {
    /// Loads (or creates) the cluster id from `meta.properties` in every log dir and the topic
    /// list from the first log dir.
    pub fn open(config: &Config) -> Result<Self, MetadataError> {
        let first = config.log_dirs.first().cloned().unwrap_or_else(|| PathBuf::from("./data"));
        let mut cluster_id = None;
        for dir in &config.log_dirs {
            std::fs::create_dir_all(dir)?;
            if let Some(id) = read_meta_properties(dir)?.get("cluster.id") {
                cluster_id.get_or_insert_with(|| id.clone());
            }
        }
        let cluster_id = cluster_id.unwrap_or_else(|| kafka_uuid_string(Uuid::new_v4()));
        let mut dir_ids = Vec::new();
        for dir in &config.log_dirs {
            dir_ids.push((dir.clone(), write_meta_properties(dir, &cluster_id, config.node_id)?));
        }
        let path = first.join("sluice-metadata.json");
        let mut topics = BTreeMap::new();
        let mut by_id = HashMap::new();
        let mut broker_configs = BTreeMap::new();
        let mut features = None;
        let mut metadata_offset = 0;
        let mut quorum_epoch = 0;
        if path.exists() {
            let text = std::fs::read_to_string(&path)?;
            let p: Persisted = serde_json::from_str(&text).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
            })?;
            broker_configs = p.broker_configs;
            features = p.features;
            metadata_offset = p.metadata_offset;
            quorum_epoch = p.quorum_epoch;
            let state = State {
                topics: BTreeMap::new(),
                by_id: HashMap::new(),
                broker_configs: broker_configs.clone(),
                features: FinalizedFeatures::default(),
                metadata_offset,
                quorum_epoch,
            };
            let dynamic = state.dynamic(config.node_id);
            let view = BrokerView { config, dynamic: &dynamic };
            for t in p.topics {
                let config_typed = TopicConfig::resolve(&t.configs, &view);
                by_id.insert(t.id, t.name.clone());
                topics.insert(
                    t.name.clone(),
                    Arc::new(TopicMeta {
                        name: t.name,
                        id: t.id,
                        partitions: t.partitions,
                        replication_factor: t.replication_factor,
                        configs: t.configs,
                        config: config_typed,
                        internal: t.internal,
                        log_dirs: t.log_dirs,
                    }),
                );
            }
        }
        // A store without finalized features (new, or from a Sluice that finalized none) gets a
        // fresh node's levels, written down at once so a later default can never move them.
        let features = features.unwrap_or_default();
        let metadata_directory_id = read_meta_properties(&first)?
            .get("directory.id")
            .and_then(|id| sluice_storage::layout::decode_topic_id(id))
            .map(Uuid::from_bytes)
            .unwrap_or_else(Uuid::nil);
        let store = Self {
            path,
            cluster_id,
            node_id: config.node_id,
            dir_ids,
            state: RwLock::new(State { topics, by_id, broker_configs, features, metadata_offset, quorum_epoch }),
            writer: std::sync::Mutex::new(()),
            metadata_directory_id,
        };
        // This start elects the one voter: a new epoch, recorded before anything is served. The
        // same write keeps a fresh node's feature levels, so a later default can never move them.
        store.mutate(|s| {
            s.quorum_epoch = s.quorum_epoch.saturating_add(1);
            Ok(())
        })?;
        Ok(store)
    }

    /// The finalized feature levels and their epoch.
    pub fn features(&self) -> FinalizedFeatures {
        self.read().features.clone()
    }

    /// The finalized level of one feature (0 when not finalized), without copying the rest.
    pub fn feature_level(&self, name: &str) -> i16 {
        self.read().features.level(name)
    }

    /// Replaces the finalized feature levels (persisted first), bumping the epoch. Returns the
    /// new finalized features.
    pub fn set_features(&self, levels: BTreeMap<String, i16>) -> Result<FinalizedFeatures, MetadataError> {
        self.mutate(|s| {
            s.features = FinalizedFeatures { epoch: s.features.epoch + 1, levels };
            Ok(s.features.clone())
        })
    }

    /// The metadata log end offset (and high watermark: the only voter commits at once): how
    /// many metadata records exist. Grows with every change and every start.
    pub fn metadata_offset(&self) -> i64 {
        self.read().metadata_offset
    }

    /// The quorum leader epoch of this start.
    pub fn quorum_epoch(&self) -> i32 {
        self.read().quorum_epoch
    }

    /// `directory.id` of the log dir holding the metadata (nil if it has none).
    pub fn metadata_directory_id(&self) -> Uuid {
        self.metadata_directory_id
    }

    /// This node's dynamic broker configs (per-broker and cluster default).
    pub fn dynamic_broker_configs(&self) -> DynamicBrokerConfigs {
        self.read().dynamic(self.node_id)
    }

    /// Replaces the dynamic broker configs of `resource_name` (`""` = cluster default) and
    /// re-resolves every topic's effective config against the new layers (persisted first).
    /// Returns the topics whose effective config changed.
    pub fn set_broker_configs(
        &self,
        resource_name: &str,
        configs: BTreeMap<String, String>,
        broker: &Config,
    ) -> Result<Vec<Arc<TopicMeta>>, MetadataError> {
        self.mutate(|s| {
            if configs.is_empty() {
                s.broker_configs.remove(resource_name);
            } else {
                s.broker_configs.insert(resource_name.to_string(), configs);
            }
            let dynamic = s.dynamic(self.node_id);
            let view = BrokerView { config: broker, dynamic: &dynamic };
            let mut changed = Vec::new();
            for meta in s.topics.values_mut() {
                let resolved = TopicConfig::resolve(&meta.configs, &view);
                if resolved != meta.config {
                    let mut m = (**meta).clone();
                    m.config = resolved;
                    *meta = Arc::new(m);
                    changed.push(meta.clone());
                }
            }
            Ok(changed)
        })
    }

    /// Replaces a topic's explicit configs (persisted first) and returns the updated topic.
    pub fn set_topic_configs<B: BrokerLayers + ?Sized>(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        broker: &B,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        self.update_topic(name, |m| {
            m.config = TopicConfig::resolve(&configs, broker);
            m.configs = configs;
        })
    }

    /// Records `dir` as the log dir of a partition (persisted first): the decision of an
    /// AlterReplicaLogDirs move, and what a restart settles an interrupted one by.
    pub fn set_partition_log_dir(&self, topic: &str, partition: i32, dir: &Path) -> Result<(), MetadataError> {
        let id = self
            .dir_ids
            .iter()
            .find(|(p, _)| p == dir)
            .map(|(_, id)| id.clone())
            .ok_or_else(|| MetadataError::UnknownLogDir(dir.to_path_buf()))?;
        self.update_topic(topic, |m| {
            m.log_dirs.insert(partition, id);
        })
        .map(|_| ())
    }

    /// The configured log dir recorded for a partition, if any.
    pub fn partition_log_dir(&self, topic: &TopicMeta, partition: i32) -> Option<PathBuf> {
        let id = topic.log_dirs.get(&partition)?;
        self.dir_ids.iter().find(|(_, i)| i == id).map(|(p, _)| p.clone())
    }

    /// Raises a topic's partition count (persisted first).
    pub fn set_partitions(&self, name: &str, partitions: i32) -> Result<Arc<TopicMeta>, MetadataError> {
        self.update_topic(name, |m| m.partitions = partitions)
    }

    fn update_topic(&self, name: &str, change: impl FnOnce(&mut TopicMeta)) -> Result<Arc<TopicMeta>, MetadataError> {
        self.mutate(|s| {
            let old = s.topics.get(name).cloned().ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
            let mut m = (*old).clone();
            change(&mut m);
            let new = Arc::new(m);
            s.topics.insert(name.to_string(), new.clone());
            Ok(new)
        })
    }

    /// Applies `change` to a copy of the state, persists the copy (no lock readers need is held
    /// meanwhile), then makes it visible. On any error nothing changes.
    fn mutate<R>(&self, change: impl FnOnce(&mut State) -> Result<R, MetadataError>) -> Result<R, MetadataError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = self.read().clone();
        let r = change(&mut next)?;
        next.metadata_offset = next.metadata_offset.saturating_add(1);
        self.persist(&next)?;
        *self.write() = next;
        Ok(r)
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn topic(&self, name: &str) -> Option<Arc<TopicMeta>> {
        self.read().topics.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<TopicMeta>> {
        let s = self.read();
        s.by_id.get(id).and_then(|n| s.topics.get(n)).cloned()
    }

    pub fn topics(&self) -> Vec<Arc<TopicMeta>> {
        self.read().topics.values().cloned().collect()
    }

    /// Validates and records a new topic (persisted before it becomes visible).
    pub fn create_topic<B: BrokerLayers + ?Sized>(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        broker: &B,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        validate_topic_name(name)?;
        self.mutate(|s| {
            if s.topics.contains_key(name) {
                return Err(MetadataError::TopicExists(name.to_string()));
            }
            let normalized = name.replace('.', "_");
            if let Some(other) = s.topics.keys().find(|t| t.replace('.', "_") == normalized) {
                return Err(MetadataError::TopicCollision(name.to_string(), other.clone()));
            }
            let meta = Arc::new(TopicMeta {
                name: name.to_string(),
                id: Uuid::new_v4(),
                partitions,
                replication_factor,
                config: TopicConfig::resolve(&configs, broker),
                configs,
                internal: is_internal_topic(name),
                log_dirs: BTreeMap::new(),
            });
            s.topics.insert(name.to_string(), meta.clone());
            s.by_id.insert(meta.id, name.to_string());
            Ok(meta)
        })
    }

    /// Removes a topic from the metadata (its logs are deleted by the caller).
    pub fn delete_topic(&self, name: &str) -> Result<Arc<TopicMeta>, MetadataError> {
        self.mutate(|s| {
            let meta = s.topics.remove(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
            s.by_id.remove(&meta.id);
            Ok(meta)
        })
    }

    fn persist(&self, s: &State) -> std::io::Result<()> {
        let p = Persisted {
            version: 1,
            topics: s
                .topics
                .values()
                .map(|t| PersistedTopic {
                    name: t.name.clone(),
                    id: t.id,
                    partitions: t.partitions,
                    replication_factor: t.replication_factor,
                    configs: t.configs.clone(),
                    internal: t.internal,
                    log_dirs: t.log_dirs.clone(),
                })
                .collect(),
            broker_configs: s.broker_configs.clone(),
            features: Some(s.features.clone()),
            metadata_offset: s.metadata_offset,
            quorum_epoch: s.quorum_epoch,
        };
        let text = serde_json::to_vec_pretty(&p).map_err(std::io::Error::other)?;
        write_atomic(&self.path, &text)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-read; the state is still valid
        // because writers persist before mutating visible state.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Kafka prints UUIDs (cluster ids, topic ids) as URL-safe base64 without padding.
pub fn kafka_uuid_string(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn read_meta_properties(dir: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let path = dir.join("meta.properties");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(crate::config::parse_properties(&text).into_iter().collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e),
    }
}

/// Writes `meta.properties` (cluster id, node id, a `directory.id` kept once chosen) unless it
/// already says the same; returns the dir's `directory.id`.
fn write_meta_properties(dir: &Path, cluster_id: &str, node_id: i32) -> std::io::Result<String> {
    let existing = read_meta_properties(dir)?;
    let directory_id = existing.get("directory.id").cloned().unwrap_or_else(|| kafka_uuid_string(Uuid::new_v4()));
    let text = format!(
        "#\n#Written by Sluice\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\ndirectory.id={directory_id}\n"
    );
    if existing.get("cluster.id").map(String::as_str) == Some(cluster_id)
        && existing.get("node.id").map(String::as_str) == Some(&node_id.to_string())
        && existing.contains_key("directory.id")
    {
        return Ok(directory_id);
    }
    write_atomic(&dir.join("meta.properties"), text.as_bytes())?;
    Ok(directory_id)
}

/// Replaces `path` atomically: temp file, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    #[test]
    fn kafka_uuid_encoding_is_22_chars() {
        let s = kafka_uuid_string(Uuid::nil());
        assert_eq!(s, "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(kafka_uuid_string(Uuid::new_v4()).len(), 22);
    }

    #[test]
    fn topics_and_cluster_id_persist() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path().display().to_string();
        let cfg = Config::from_overrides(&[("log.dirs", &d)]).expect("cfg");
        let store = MetadataStore::open(&cfg).expect("open");
        let mut configs = BTreeMap::new();
        configs.insert("segment.bytes".to_string(), "4096".to_string());
        let t = store.create_topic("a.b", 3, 1, configs, &cfg).expect("create");
        assert!(matches!(store.create_topic("a.b", 1, 1, BTreeMap::new(), &cfg), Err(MetadataError::TopicExists(_))));
        assert!(matches!(
            store.create_topic("a_b", 1, 1, BTreeMap::new(), &cfg),
            Err(MetadataError::TopicCollision(..))
        ));
        let cid = store.cluster_id().to_string();
        drop(store);
        let store = MetadataStore::open(&cfg).expect("reopen");
        assert_eq!(store.cluster_id(), cid);
        let t2 = store.topic("a.b").expect("topic");
        assert_eq!(t2.id, t.id);
        assert_eq!(t2.partitions, 3);
        assert_eq!(t2.config.log.segment_bytes, 4096);
        assert!(store.topic_by_id(&t.id).is_some());
        store.delete_topic("a.b").expect("delete");
        assert!(store.topic("a.b").is_none());
    }

    #[test]
    fn finalized_features_persist_with_their_epoch() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path().display().to_string();
        let cfg = Config::from_overrides(&[("log.dirs", &d)]).expect("cfg");
        let store = MetadataStore::open(&cfg).expect("open");
        assert_eq!(store.features(), FinalizedFeatures::default());
        let mut levels = store.features().levels;
        levels.insert(crate::features::TRANSACTION_VERSION.to_string(), 1);
        let f = store.set_features(levels).expect("set");
        assert_eq!((f.epoch, f.transaction_version()), (2, 1));
        drop(store);
        let store = MetadataStore::open(&cfg).expect("reopen");
        assert_eq!(store.features(), f);
        // A store written before features existed gets the defaults, written down at once.
        std::fs::write(dir.path().join("sluice-metadata.json"), r#"{"version":1,"topics":[]}"#).expect("write");
        let store = MetadataStore::open(&cfg).expect("reopen old");
        assert_eq!(store.features(), FinalizedFeatures::default());
        let text = std::fs::read_to_string(dir.path().join("sluice-metadata.json")).expect("read");
        assert!(text.contains("transaction.version"), "{text}");
    }

    #[test]
    fn metadata_offset_grows_with_every_change_and_every_start() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path().display().to_string();
        let cfg = Config::from_overrides(&[("log.dirs", &d)]).expect("cfg");
        let store = MetadataStore::open(&cfg).expect("open");
        // The first start's leader change is the first record.
        assert_eq!((store.metadata_offset(), store.quorum_epoch()), (1, 1));
        assert!(!store.metadata_directory_id().is_nil());
        store.create_topic("t", 1, 1, BTreeMap::new(), &cfg).expect("create");
        assert_eq!(store.metadata_offset(), 2);
        store.set_partitions("t", 3).expect("partitions");
        assert_eq!(store.metadata_offset(), 3);
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "1000".to_string());
        store.set_topic_configs("t", configs.clone(), &cfg).expect("topic config");
        assert_eq!(store.metadata_offset(), 4);
        store.set_broker_configs("", configs, &cfg).expect("broker config");
        assert_eq!(store.metadata_offset(), 5);
        // A refused change writes nothing.
        assert!(store.delete_topic("nope").is_err());
        assert_eq!(store.metadata_offset(), 5);
        store.delete_topic("t").expect("delete");
        assert_eq!(store.metadata_offset(), 6);
        let directory_id = store.metadata_directory_id();
        drop(store);
        let store = MetadataStore::open(&cfg).expect("reopen");
        assert_eq!((store.metadata_offset(), store.quorum_epoch()), (7, 2));
        assert_eq!(store.metadata_directory_id(), directory_id);
    }
}
