//! Future replicas: moving a partition to another log dir while it stays online
//! (AlterReplicaLogDirs; Kafka's future log, `ReplicaAlterLogDirsThread` and
//! `LogManager.replaceCurrentWithFutureLog`).
//!
//! A move creates an empty *future replica* in the target dir, named
//! `<topic>-<partition>.<32 hex>-future`, that starts at the current log's first segment. The
//! broker's mover task copies whole batches from the current log into it
//! ([`LogManager::copy_to_future`]: bytes and offsets unchanged, producer state and aborted
//! transactions replayed from them, its log start offset and high watermark following the
//! current log's), while producers and consumers keep using the current log. Once it has
//! caught up, [`LogManager::complete_future`] pauses appends, copies the last batches, fsyncs the
//! future, has the broker record the target dir in its metadata (the decision), renames the
//! future to `<topic>-<partition>` and the old dir to `…-delete`, and swaps the two states inside
//! the one [`UnifiedLog`] object everybody holds (see [`UnifiedLog::replace_with_future`]).
//!
//! Crash safety (Kafka's `recoverAbandonedFutureLogs` with KIP-858's commit order), decided by
//! [`LogManager::reconcile_log_dirs`] at startup from the dir the metadata assigns each
//! partition:
//! - a future replica whose dir the metadata names was already decided: it replaces the
//!   current log, which is deleted (a crash between the decision and the renames);
//! - two `<topic>-<partition>` dirs (a crash between the two renames): the one in the assigned
//!   dir is the partition, the other is deleted;
//! - any other future replica is resumed; one that is ahead of the current log (a power loss
//!   took a tail of the current log that the future had copied) is copied again from scratch.
//!
//! Neither copy is ever deleted before the other holds every record, and exactly one of them is
//! the partition at any time.
//!
//! Concurrency: starting, cancelling and completing moves, and deletions, are serialized by
//! `future_admin`; the log cleaner leaves a moving partition alone; copying reads the current
//! log like a consumer (its lock only to snapshot segment views) and appends to the future under
//! the future's own lock.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};

use crate::layout;
use crate::log::{split_copied_batches, UnifiedLog};
use crate::manager::{create_log_at, LogDir, LogManager};
use crate::util::random_u128;
use crate::{Result, StorageError, TopicPartition};

/// Bytes one copy step reads at most (Kafka's `replica.fetch.max.bytes` default).
pub const COPY_STEP_BYTES: usize = 1 << 20;

/// Log dirs remembered for partitions that do not exist yet, at most (Kafka keeps them without
/// a bound; any client could make that grow without end).
pub const MAX_PREFERRED_LOG_DIRS: usize = 10_000;

/// Where the swap of a move may be stopped to simulate a crash (tests only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveCrashPoint {
    /// The future replica is caught up and fsynced; nothing decided.
    BeforeDecision,
    /// The new log dir is recorded; nothing renamed.
    AfterDecision,
    /// The future dir is renamed to `<topic>-<partition>`; the old copy is still in place.
    AfterFutureRenamed,
    /// The old copy is renamed to `…-delete` too.
    AfterCurrentRenamed,
}

/// What [`LogManager::start_future`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FutureStart {
    /// The partition already lives in that dir (a move elsewhere, if any, was cancelled).
    AlreadyThere,
    /// A future replica in that dir is already being copied.
    AlreadyMoving,
    /// A future replica was created there.
    Started,
}

/// One copy step ([`LogManager::copy_to_future`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyProgress {
    /// Batch bytes copied by this step.
    pub bytes: usize,
    /// The future reached the current log's end as it was when the step read it.
    pub caught_up: bool,
    /// Offsets the future is behind the current log after this step.
    pub lag: i64,
}

/// What [`LogManager::reconcile_log_dirs`] found and did at startup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Future replicas whose swap was decided before a crash, now the partition.
    pub promoted: Vec<TopicPartition>,
    /// Future replicas whose copy goes on.
    pub resumed: Vec<TopicPartition>,
    /// Future replicas discarded and started again (they were ahead of the current log).
    pub restarted: Vec<TopicPartition>,
    /// Stale second copies of a partition that were deleted.
    pub duplicates_removed: Vec<TopicPartition>,
}

impl LogManager {
    /// The future replica of a partition being moved, if any.
    pub fn future(&self, tp: &TopicPartition) -> Option<Arc<UnifiedLog>> {
        self.futures.read().unwrap_or_else(PoisonError::into_inner).get(tp).cloned()
    }

    /// Every future replica.
    pub fn futures(&self) -> Vec<Arc<UnifiedLog>> {
        self.futures.read().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }

    /// The configured log dir a client names by `path` (as configured, or its absolute form as
    /// DescribeLogDirs reports it); `LogDirNotFound` otherwise (Kafka's `isLogDirOnline`).
    pub fn configured_log_dir(&self, path: &str) -> Result<PathBuf> {
        let wanted = Path::new(path);
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        self.dirs
            .iter()
            .find(|d| d.path() == wanted || (wanted.is_absolute() && absolute(d.path()) == wanted))
            .map(|d| d.path().to_path_buf())
            .ok_or_else(|| StorageError::LogDirNotFound(wanted.to_path_buf()))
    }

    fn dir_at(&self, path: &Path) -> Result<Arc<LogDir>> {
        self.dirs
            .iter()
            .find(|d| d.path() == path)
            .cloned()
            .ok_or_else(|| StorageError::LogDirNotFound(path.to_path_buf()))
    }

    /// Total and usable bytes of the file system holding the log dir `dir` (DescribeLogDirs v4,
    /// Kafka's `FileStore.getTotalSpace`/`getUsableSpace`); `None` when it cannot be read.
    pub fn dir_space(dir: &Path) -> Option<(u64, u64)> {
        let st = rustix::fs::statvfs(dir).ok()?;
        let unit = if st.f_frsize > 0 { st.f_frsize } else { st.f_bsize };
        Some((st.f_blocks.saturating_mul(unit), st.f_bavail.saturating_mul(unit)))
    }

    /// Remembers that `tp`, which does not exist yet, is to be created in `dir` (Kafka's
    /// `maybeUpdatePreferredLogDir`). Bounded by [`MAX_PREFERRED_LOG_DIRS`]: past it, nothing
    /// more is remembered. Returns whether it was recorded.
    pub fn set_preferred_log_dir(&self, tp: &TopicPartition, dir: &Path) -> bool {
        let mut preferred = self.preferred_dirs.lock().unwrap_or_else(PoisonError::into_inner);
        if preferred.len() >= MAX_PREFERRED_LOG_DIRS && !preferred.contains_key(tp) {
            return false;
        }
        preferred.insert(tp.clone(), dir.to_path_buf());
        true
    }

    /// The dir a not-yet-created partition was asked to be created in.
    pub fn preferred_log_dir(&self, tp: &TopicPartition) -> Option<PathBuf> {
        self.preferred_dirs.lock().unwrap_or_else(PoisonError::into_inner).get(tp).cloned()
    }

    /// Starts moving `tp` to the log dir `dir` (Kafka's `maybeCreateFutureReplica`): a future
    /// replica being copied to another dir is cancelled first; the partition already in `dir`
    /// needs nothing. Refused while any log dir is offline (as Kafka: a future replica must not
    /// be created twice for one partition), for a `dir` that is offline or not configured,
    /// and for a partition that does not exist (`Deleted`).
    pub fn start_future(&self, tp: &TopicPartition, dir: &Path) -> Result<FutureStart> {
        let _admin = self.future_admin.lock().unwrap_or_else(PoisonError::into_inner);
        let target = self.dir_at(dir)?;
        if target.is_offline() {
            return Err(StorageError::LogDirOffline(target.path().to_path_buf()));
        }
        let Some(current) = self.get(tp) else { return Err(StorageError::Deleted(tp.clone())) };
        current.check()?;
        if let Some(f) = self.future(tp) {
            if Arc::ptr_eq(&f.log_dir(), &target) && !f.is_deleted() {
                return Ok(FutureStart::AlreadyMoving);
            }
            self.cancel_future_locked(tp)?;
        }
        if Arc::ptr_eq(&current.log_dir(), &target) {
            return Ok(FutureStart::AlreadyThere);
        }
        if let Some(offline) = self.offline_dirs().into_iter().next() {
            return Err(StorageError::LogDirOffline(offline));
        }
        self.create_future(tp, &current, &target)?;
        self.future_notify.notify_one();
        Ok(FutureStart::Started)
    }

    /// Notified whenever a move starts: the broker's mover waits on it while nothing moves.
    pub fn future_notify(&self) -> Arc<tokio::sync::Notify> {
        self.future_notify.clone()
    }

    /// Creates the empty future replica of `current` in `target`, starting at its first segment.
    fn create_future(&self, tp: &TopicPartition, current: &UnifiedLog, target: &Arc<LogDir>) -> Result<()> {
        let base = current.segment_base_offsets().first().copied().unwrap_or(current.offsets().log_start_offset);
        let path = target.path().join(layout::future_dir_name(tp, random_u128()));
        let future = create_log_at(target, &path, tp, current.topic_id(), current.config(), base)
            .map_err(|e| target.fail_dir(e))?;
        self.futures.write().unwrap_or_else(PoisonError::into_inner).insert(tp.clone(), Arc::new(future));
        // A stale entry for the partition in the target dir's checkpoints (from an earlier stay
        // there) must not be taken for the future's after a crash.
        self.checkpoint_dir(target)?;
        tracing::info!(partition = %tp.topic, index = tp.partition, from = %current.log_dir_path().display(), to = %target.path().display(), base_offset = base, "created future replica");
        Ok(())
    }

    /// Cancels the move of `tp`: its future replica is deleted. Returns whether there was one.
    pub fn cancel_future(&self, tp: &TopicPartition) -> Result<bool> {
        let _admin = self.future_admin.lock().unwrap_or_else(PoisonError::into_inner);
        self.cancel_future_locked(tp)
    }

    fn cancel_future_locked(&self, tp: &TopicPartition) -> Result<bool> {
        let Some(future) = self.futures.write().unwrap_or_else(PoisonError::into_inner).remove(tp) else {
            return Ok(false);
        };
        tracing::info!(partition = %tp.topic, index = tp.partition, dir = %future.dir().display(), "deleting future replica");
        match remove_log_files(tp, &future) {
            // Already swapped or deleted, or its dir is offline: nothing to remove now.
            Ok(()) | Err(StorageError::Deleted(_)) | Err(StorageError::LogDirOffline(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// One copy step of the move of `tp` (Kafka's `ReplicaAlterLogDirsThread` fetch): reads up
    /// to `max_bytes` of whole batches from the current log at the future's log end and appends
    /// them to the future unchanged, then lets the future follow the current log's log start
    /// offset and high watermark. `Ok(None)` when the partition is not moving (or its current
    /// log is gone). An error leaves both logs as they were or the future behind; the caller
    /// may retry, or cancel the move.
    pub fn copy_to_future(&self, tp: &TopicPartition, max_bytes: usize) -> Result<Option<CopyProgress>> {
        let (Some(current), Some(future)) = (self.get(tp), self.future(tp)) else { return Ok(None) };
        current.check()?;
        future.check()?;
        let f_leo = future.offsets().log_end_offset;
        let c = current.offsets();
        if f_leo > c.log_end_offset {
            return Err(StorageError::Corrupt {
                path: future.dir(),
                position: 0,
                reason: format!("the future replica ends at {f_leo}, past the current log's end {}", c.log_end_offset),
            });
        }
        let from = f_leo.max(c.log_start_offset);
        let (batches, c) = if from < c.log_end_offset {
            let read = current.read(from, max_bytes, i64::MAX, true)?;
            let c = crate::LogOffsets {
                log_start_offset: read.log_start_offset,
                high_watermark: read.high_watermark,
                last_stable_offset: read.high_watermark,
                log_end_offset: read.log_end_offset,
            };
            (split_copied_batches(read.records, f_leo, &future.dir())?, c)
        } else {
            (Vec::new(), c)
        };
        let bytes = batches.iter().map(|b| b.size_in_bytes()).sum();
        if batches.is_empty() {
            // Nothing left to read below the current log's end: the offsets between are
            // below its log start or were emptied by a cleaning.
            future.skip_to(c.log_end_offset)?;
        } else {
            future.append_replicated(&batches)?;
        }
        future.follow_current(c.high_watermark, c.log_start_offset)?;
        let f_leo = future.offsets().log_end_offset;
        Ok(Some(CopyProgress { bytes, caught_up: f_leo >= c.log_end_offset, lag: c.log_end_offset - f_leo }))
    }

    /// Completes the move of `tp` once its future replica has (nearly) caught up: a last copy
    /// and fsync without pausing appends, then the swap with appends paused
    /// ([`UnifiedLog::replace_with_future`]). `commit(dir)` must durably record `dir` as the
    /// partition's log dir (it is called with the source dir again to revert a swap that failed
    /// after its decision). Returns `false` without doing anything when the partition is not
    /// moving or a cleaning of it is still running (try again later).
    pub fn complete_future(
        &self,
        tp: &TopicPartition,
        commit: &dyn Fn(&Path) -> std::result::Result<(), String>,
    ) -> Result<bool> {
        self.complete_future_with_crash(tp, commit, None)
    }

    /// [`Self::complete_future`] stopping at `crash` as if the process died there (tests): the
    /// files are left as that crash would leave them; the manager must not be used afterwards.
    #[doc(hidden)]
    pub fn complete_future_with_crash(
        &self,
        tp: &TopicPartition,
        commit: &dyn Fn(&Path) -> std::result::Result<(), String>,
        crash: Option<MoveCrashPoint>,
    ) -> Result<bool> {
        let _admin = self.future_admin.lock().unwrap_or_else(PoisonError::into_inner);
        let (Some(current), Some(future)) = (self.get(tp), self.future(tp)) else { return Ok(false) };
        if !self.cleaning.lock().unwrap_or_else(PoisonError::into_inner).insert(tp.clone()) {
            return Ok(false);
        }
        let swapped = (|| {
            for _ in 0..16 {
                match self.copy_to_future(tp, 8 * COPY_STEP_BYTES)? {
                    Some(p) if !p.caught_up => continue,
                    _ => break,
                }
            }
            future.flush()?;
            let target = future.log_dir();
            let commit = |dir: &Path| -> std::result::Result<(), String> {
                if dir == target.path() {
                    // The future's offsets in its dir's checkpoints before the decision: once
                    // it is the partition, a crash must not rescan it from a stale recovery
                    // point.
                    self.checkpoint_dir(&target).map_err(|e| e.to_string())?;
                }
                commit(dir)
            };
            current.replace_with_future(&future, &commit, random_u128(), crash)
        })();
        self.cleaning.lock().unwrap_or_else(PoisonError::into_inner).remove(tp);
        let removed = swapped?;
        self.futures.write().unwrap_or_else(PoisonError::into_inner).remove(tp);
        if let Some(old) = removed {
            if let Err(error) = fs::remove_dir_all(&old) {
                tracing::warn!(dir = %old.display(), %error, "could not remove the moved partition's old dir, will retry at startup");
            }
        }
        tracing::info!(partition = %tp.topic, index = tp.partition, log_dir = %current.log_dir_path().display(), "moved partition to its new log dir");
        self.checkpoint()?;
        Ok(true)
    }

    /// Startup: settles what an interrupted move left, from `assigned(tp)`, the log dir the
    /// broker's metadata records for the partition (see the module docs). Runs before any
    /// request is served.
    pub fn reconcile_log_dirs(&self, assigned: &dyn Fn(&TopicPartition) -> Option<PathBuf>) -> Result<ReconcileReport> {
        let _admin = self.future_admin.lock().unwrap_or_else(PoisonError::into_inner);
        let mut report = ReconcileReport::default();
        let duplicates = std::mem::take(&mut *self.duplicates.lock().unwrap_or_else(PoisonError::into_inner));
        for dup in duplicates {
            let tp = dup.topic_partition().clone();
            let current = self.get(&tp);
            match assigned(&tp) {
                Some(a) if a == dup.log_dir_path() => {
                    tracing::warn!(partition = %tp.topic, index = tp.partition, dir = %dup.dir().display(), "keeping the copy of a partition in its assigned log dir, deleting the stale one");
                    self.map_mut().insert(tp.clone(), dup);
                    if let Some(stale) = current {
                        remove_log_files(&tp, &stale)?;
                    }
                    report.duplicates_removed.push(tp);
                }
                Some(a) if current.as_ref().is_some_and(|c| c.log_dir_path() == a) => {
                    tracing::warn!(partition = %tp.topic, index = tp.partition, dir = %dup.dir().display(), "deleting the stale copy of a moved partition");
                    remove_log_files(&tp, &dup)?;
                    report.duplicates_removed.push(tp);
                }
                _ => {
                    tracing::error!(partition = %tp.topic, index = tp.partition, dir = %dup.dir().display(), "two copies of a partition and no log dir recorded for it: keeping the first, leaving the other on disk");
                }
            }
        }
        for future in self.futures() {
            let tp = future.topic_partition().clone();
            let current = self.get(&tp);
            let decided = assigned(&tp).is_some_and(|a| a == future.log_dir_path());
            let orphan = current.is_none() && self.offline_dirs().is_empty();
            if decided || orphan {
                tracing::info!(partition = %tp.topic, index = tp.partition, dir = %future.dir().display(), decided, "completing the swap of a future replica interrupted by a crash");
                if let Some(stale) = current {
                    self.map_mut().remove(&tp);
                    remove_log_files(&tp, &stale)?;
                }
                let final_dir = future.log_dir_path().join(layout::partition_dir_name(&tp));
                future.rename_dir(final_dir)?;
                self.futures.write().unwrap_or_else(PoisonError::into_inner).remove(&tp);
                self.map_mut().insert(tp.clone(), future);
                report.promoted.push(tp);
                continue;
            }
            let Some(current) = current else {
                tracing::warn!(partition = %tp.topic, index = tp.partition, dir = %future.dir().display(), "future replica whose current log is in an offline dir: left as it is");
                continue;
            };
            if future.offsets().log_end_offset > current.offsets().log_end_offset {
                // The future copied a tail the current log lost in a power loss: start over.
                tracing::warn!(partition = %tp.topic, index = tp.partition, "future replica ahead of the current log after a crash, copying again");
                let target = future.log_dir();
                self.cancel_future_locked(&tp)?;
                self.create_future(&tp, &current, &target)?;
                report.restarted.push(tp);
            } else {
                tracing::info!(partition = %tp.topic, index = tp.partition, dir = %future.dir().display(), "resuming the move of a partition");
                report.resumed.push(tp);
            }
        }
        if !report.promoted.is_empty() || !report.duplicates_removed.is_empty() {
            self.checkpoint()?;
        }
        Ok(report)
    }
}

/// Deletes a log's files: renamed to `<topic>-<partition>.<id>-delete` (durable), then removed
/// (a failure there is finished at the next startup). The log is marked deleted.
pub(crate) fn remove_log_files(tp: &TopicPartition, log: &UnifiedLog) -> Result<()> {
    let unique = random_u128();
    let dir = log.mark_deleted_and_rename(|old| {
        let name = layout::delete_dir_name(tp, unique);
        old.parent().map(|p| p.join(&name)).unwrap_or_else(|| PathBuf::from(name))
    })?;
    // The rename made the deletion durable; a failure here is finished at next startup.
    if let Err(error) = fs::remove_dir_all(&dir) {
        tracing::warn!(dir = %dir.display(), %error, "could not remove deleted log dir, will retry at startup");
    }
    Ok(())
}
