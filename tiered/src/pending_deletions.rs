//! [`PendingDeletions`]: the durable journal of deleted topics whose remote data is still to be
//! deleted (`<state dir>/remote-log-pending-deletions.json`), Kafka's answer being the
//! `DELETE_PARTITION_MARKED` state of its remote log metadata topic.
//!
//! A topic's record is written (and fsynced) before its metadata is deleted and is acted on only
//! after that deletion is over; a record whose topic still exists (the deletion failed, or the
//! broker crashed before it) is dropped, never acted on. The remote log manager deletes the
//! objects and then the record, so a crash or a down store only delays the deletion.
//!
//! Thread-safety: shared; the journal's `std` mutex is held while the file is written (on a
//! blocking thread: callers run [`PendingDeletions::edit`] off the runtime).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TieredError};
use crate::manager::lock;

/// File (in the manager's state dir) of topic deletions whose remote data is not yet deleted.
pub const PENDING_DELETIONS_FILE: &str = "remote-log-pending-deletions.json";

/// A deleted topic whose remote objects are still to be deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTopicDeletion {
    /// Kafka's base64url topic id (the first component of its object keys).
    pub topic_id: String,
    pub partitions: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingDeletionsFile {
    pub(crate) topics: Vec<PendingTopicDeletion>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct PendingDeletions {
    /// Where the journal lives; `None` keeps it in memory only.
    state_dir: Option<PathBuf>,
    /// The journal (mirrors the file); the lock is held while the file is written.
    pending: Mutex<PendingDeletionsFile>,
    /// Topic ids whose deletion is under way right now (recorded, metadata not yet deleted).
    in_flight: Mutex<HashMap<String, usize>>,
    wakeup: tokio::sync::Notify,
}

impl PendingDeletions {
    /// Loads the journal a previous run left in `dir` (none: empty) and keeps it there.
    pub(crate) fn load(dir: PathBuf) -> Result<Self> {
        let path = dir.join(PENDING_DELETIONS_FILE);
        let pending = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| TieredError::Io {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PendingDeletionsFile::default(),
            Err(source) => return Err(TieredError::Io { path, source }),
        };
        Ok(Self { state_dir: Some(dir), pending: Mutex::new(pending), ..Self::default() })
    }

    /// Records a topic before its metadata is deleted (blocking: writes and fsyncs the file).
    pub(crate) fn begin(&self, topic_id: &str, partitions: i32) -> Result<()> {
        *lock(&self.in_flight).entry(topic_id.to_string()).or_default() += 1;
        let entry = PendingTopicDeletion { topic_id: topic_id.to_string(), partitions };
        let result = self.edit(|p| {
            if !p.topics.contains(&entry) {
                p.topics.push(entry);
            }
        });
        if result.is_err() {
            self.over(topic_id);
        }
        result
    }

    fn over(&self, topic_id: &str) {
        let mut in_flight = lock(&self.in_flight);
        if let Some(n) = in_flight.get_mut(topic_id) {
            *n -= 1;
            if *n == 0 {
                in_flight.remove(topic_id);
            }
        }
    }

    /// The topic's metadata deletion is over (done or failed): wakes the deleting task.
    pub(crate) fn end(&self, topic_id: &str) {
        self.over(topic_id);
        self.wakeup.notify_one();
    }

    /// Whether the topic's metadata deletion is still under way (its record must wait).
    pub(crate) fn in_flight(&self, topic_id: &str) -> bool {
        lock(&self.in_flight).contains_key(topic_id)
    }

    /// Waits until a topic deletion asks for remote deletion.
    pub(crate) async fn requested(&self) {
        self.wakeup.notified().await;
    }

    /// The recorded deletions.
    pub(crate) fn list(&self) -> Vec<PendingTopicDeletion> {
        lock(&self.pending).topics.clone()
    }

    /// Drops a record once its data is deleted (blocking: writes and fsyncs the file).
    pub(crate) fn remove(&self, entry: &PendingTopicDeletion) -> Result<()> {
        self.edit(|p| p.topics.retain(|t| t != entry))
    }

    /// Edits the journal and writes it durably (blocking: file write and fsync).
    fn edit(&self, edit: impl FnOnce(&mut PendingDeletionsFile)) -> Result<()> {
        let mut guard = lock(&self.pending);
        let mut next = guard.clone();
        edit(&mut next);
        if let Some(dir) = &self.state_dir {
            store(dir, &next)?;
        }
        *guard = next;
        Ok(())
    }
}

fn store(dir: &Path, pending: &PendingDeletionsFile) -> Result<()> {
    let path = dir.join(PENDING_DELETIONS_FILE);
    let json = serde_json::to_vec_pretty(pending)
        .map_err(|e| TieredError::Io { path: path.clone(), source: std::io::Error::other(e) })?;
    sluice_storage::checkpoint::write_atomically(&path, &json).map_err(|source| TieredError::Io { path, source })
}
