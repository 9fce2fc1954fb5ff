//! All partition logs across `log.dirs` ([`LogManager`], Kafka's `LogManager`) and the state of
//! each log dir ([`LogDir`]: online/offline).
//!
//! Owns: startup (load every `<topic>-<partition>` dir, recovery of dirs without
//! `.kafka_cleanshutdown`, finishing interrupted deletions, removing the marker), placement of new
//! partitions (the online dir with the fewest), deletion (rename to `…-delete`, then remove),
//! periodic `flush.ms` flushing, the background flush of rolled segments (queued per dir by
//! rolls, run by the broker's flusher, followed by a recovery-point checkpoint), checkpoints and
//! clean shutdown.
//!
//! Invariants: a topic-partition is in at most one dir; once a dir is offline it stays offline
//! for the life of the process (Kafka never retries a failed fsync or write).
//!
//! Thread-safety contract: the partition map is an `RwLock` held only for map operations (never
//! across I/O); creation is serialized by a separate mutex so that its disk work does not block
//! lookups; checkpoint writes per dir are serialized by that dir's mutex.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::Notify;

use crate::checkpoint::{self, fsync_dir, read_offset_checkpoint, write_offset_checkpoint};
use crate::cleaner::{offset_map_capacity, Cleanable};
use crate::layout::{
    self, CLEANER_OFFSET_CHECKPOINT, CLEAN_SHUTDOWN_FILE, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT,
};
use crate::log::{roll_jitter, LogState, UnifiedLog};
use crate::recovery::{load_partition, CheckpointHints};
use crate::segment::{io_err, LogSegment};
use crate::util::now_ms;
use crate::{
    CleanerConfig, CleanerStats, LoadReport, LogConfig, LogManagerConfig, PartitionDirInfo, Result, StorageError,
    TopicPartition,
};

/// One `log.dirs` entry and whether it is still usable.
#[derive(Debug)]
pub struct LogDir {
    path: PathBuf,
    offline: AtomicBool,
    checkpoint_lock: Mutex<()>,
    /// `.deleted` files and when they may be removed (`file.delete.delay.ms`). Files left here
    /// by a crash are removed by recovery at the next startup.
    pending_deletes: Mutex<Vec<(i64, PathBuf)>>,
    /// Partitions that rolled a segment, with the offset to flush them to (the newest roll's
    /// base offset): one entry per partition, so the queue is bounded by the partition count.
    roll_flushes: Mutex<BTreeMap<TopicPartition, i64>>,
    /// Wakes the flusher (shared by every dir of one manager).
    roll_notify: Arc<Notify>,
}

impl LogDir {
    fn new(path: PathBuf, roll_notify: Arc<Notify>) -> Self {
        Self {
            path,
            offline: AtomicBool::new(false),
            checkpoint_lock: Mutex::new(()),
            pending_deletes: Mutex::new(Vec::new()),
            roll_flushes: Mutex::new(BTreeMap::new()),
            roll_notify,
        }
    }

    /// Asks for `tp` to be flushed up to `offset` (a roll's new base offset) in the background.
    pub(crate) fn request_roll_flush(&self, tp: &TopicPartition, offset: i64) {
        let mut pending = self.roll_flushes.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = pending.entry(tp.clone()).or_insert(offset);
        *entry = (*entry).max(offset);
        self.roll_notify.notify_one();
    }

    fn take_roll_flushes(&self) -> BTreeMap<TopicPartition, i64> {
        std::mem::take(&mut *self.roll_flushes.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Queues renamed-away files for removal at `due_ms` (immediately if already due).
    pub(crate) fn schedule_delete(&self, paths: Vec<PathBuf>, due_ms: i64) {
        self.pending_deletes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(paths.into_iter().map(|p| (due_ms, p)));
        self.delete_due_files(crate::util::now_ms());
    }

    /// Removes queued files whose delay has passed. A failure is logged and not retried (the
    /// file is removed at the next startup).
    fn delete_due_files(&self, now_ms: i64) {
        let due: Vec<PathBuf> = {
            let mut pending = self.pending_deletes.lock().unwrap_or_else(PoisonError::into_inner);
            let (due, keep): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(t, _)| *t <= now_ms);
            *pending = keep;
            due.into_iter().map(|(_, p)| p).collect()
        };
        for path in due {
            match fs::remove_file(&path) {
                Ok(()) => tracing::debug!(file = %path.display(), "removed deleted segment file"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(error) => tracing::warn!(file = %path.display(), %error, "could not remove deleted segment file"),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    /// Takes the dir offline after an I/O error (logged once).
    pub fn mark_offline(&self, tp: &TopicPartition, path: &Path, error: &io::Error) {
        if !self.offline.swap(true, Ordering::AcqRel) {
            tracing::error!(
                log_dir = %self.path.display(),
                partition = %tp.topic,
                index = tp.partition,
                file = %path.display(),
                %error,
                "log dir taken offline after i/o error"
            );
        }
    }

    fn mark_offline_dir(&self, path: &Path, error: &io::Error) {
        if !self.offline.swap(true, Ordering::AcqRel) {
            tracing::error!(log_dir = %self.path.display(), file = %path.display(), %error, "log dir taken offline after i/o error");
        }
    }

    /// Maps an error of a dir-level operation, taking the dir offline on I/O errors (not on
    /// resource exhaustion: that fails the one operation).
    pub(crate) fn fail_dir(&self, e: StorageError) -> StorageError {
        self.fail(e)
    }

    fn fail(&self, e: StorageError) -> StorageError {
        if let StorageError::Io { path, source } = &e {
            if !crate::is_resource_exhaustion(source) {
                self.mark_offline_dir(path, source);
            }
        }
        e
    }
}

/// All partition logs across `log.dirs` (see the module docs). Shared as `Arc<LogManager>`.
pub struct LogManager {
    pub(crate) dirs: Vec<Arc<LogDir>>,
    partitions: RwLock<HashMap<TopicPartition, Arc<UnifiedLog>>>,
    /// Future replicas: copies of partitions being moved to another log dir (`future.rs`).
    pub(crate) futures: RwLock<HashMap<TopicPartition, Arc<UnifiedLog>>>,
    /// Serializes starting, cancelling and swapping future replicas, and deletions.
    pub(crate) future_admin: Mutex<()>,
    /// Log dirs asked for partitions that do not exist yet (Kafka's `preferredLogDirs`): a
    /// partition created later is created there. In memory only, bounded.
    pub(crate) preferred_dirs: Mutex<HashMap<TopicPartition, PathBuf>>,
    /// Second copies of a partition found at startup (a crash in the middle of a swap), kept
    /// until [`LogManager::reconcile_log_dirs`] decides which copy is the partition.
    pub(crate) duplicates: Mutex<Vec<Arc<UnifiedLog>>>,
    create_lock: Mutex<()>,
    /// Partitions a cleaner thread is working on (at most one cleaner per log).
    pub(crate) cleaning: Mutex<std::collections::HashSet<TopicPartition>>,
    /// Notified when a segment rolls (see [`LogManager::flush_rolled_segments`]).
    roll_notify: Arc<Notify>,
    /// Notified when a future replica is created (wakes the broker's mover).
    pub(crate) future_notify: Arc<Notify>,
}

impl std::fmt::Debug for LogManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogManager").field("dirs", &self.dirs).finish_non_exhaustive()
    }
}

fn invalid_input(path: PathBuf, msg: String) -> StorageError {
    StorageError::Io { path, source: io::Error::new(io::ErrorKind::InvalidInput, msg) }
}

impl LogManager {
    /// Opens every `log.dirs` entry (creating it if missing), loads each `<topic>-<partition>`
    /// directory, runs recovery for dirs without a clean-shutdown marker, removes the marker (a
    /// later crash must be detectable), and finishes deletions left half-done.
    /// `config_for(topic)` gives each topic's log settings.
    ///
    /// A dir that fails with an I/O error is taken offline and the others still load (Kafka
    /// does the same); only when every dir fails is the error returned.
    pub fn open(
        config: LogManagerConfig,
        config_for: &dyn Fn(&str) -> LogConfig,
    ) -> Result<(Arc<LogManager>, LoadReport)> {
        let mut report = LoadReport::default();
        let mut loaded = Loaded::default();
        let mut dirs = Vec::new();
        let mut first_error = None;
        let roll_notify = Arc::new(Notify::new());
        for path in config.log_dirs {
            let dir = Arc::new(LogDir::new(path, roll_notify.clone()));
            if let Err(e) = load_dir(&dir, config_for, &mut report, &mut loaded) {
                let e = dir.fail(e);
                tracing::error!(log_dir = %dir.path.display(), error = %e, "failed to load log dir");
                first_error.get_or_insert(e);
            }
            dirs.push(dir);
        }
        if dirs.iter().all(|d| d.is_offline()) {
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        tracing::info!(
            partitions_loaded = report.partitions_loaded,
            unclean_dirs = report.unclean_dirs.len(),
            segments_recovered = report.segments_recovered,
            bytes_truncated = report.bytes_truncated,
            indexes_rebuilt = report.indexes_rebuilt,
            "log manager started"
        );
        let manager = LogManager {
            dirs,
            partitions: RwLock::new(loaded.partitions),
            futures: RwLock::new(loaded.futures),
            future_admin: Mutex::new(()),
            preferred_dirs: Mutex::new(HashMap::new()),
            duplicates: Mutex::new(loaded.duplicates),
            create_lock: Mutex::new(()),
            cleaning: Mutex::new(Default::default()),
            roll_notify,
            future_notify: Arc::new(Notify::new()),
        };
        Ok((Arc::new(manager), report))
    }

    fn map(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TopicPartition, Arc<UnifiedLog>>> {
        self.partitions.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn map_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<TopicPartition, Arc<UnifiedLog>>> {
        self.partitions.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<UnifiedLog>> {
        self.map().get(tp).cloned()
    }

    /// Every loaded partition.
    pub fn partitions(&self) -> Vec<Arc<UnifiedLog>> {
        self.map().values().cloned().collect()
    }

    /// Returns the partition, creating an empty log (in the least-loaded online dir) if needed.
    /// `topic_id` is recorded in the partition's `partition.metadata` file, as Kafka does.
    pub fn get_or_create(&self, tp: &TopicPartition, topic_id: [u8; 16], config: LogConfig) -> Result<Arc<UnifiedLog>> {
        self.get_or_create_in(tp, topic_id, config, None)
    }

    /// [`Self::get_or_create`] placing a new log in `dir` when it is an online log dir (the dir
    /// the broker's metadata assigns the partition), else in the dir an AlterReplicaLogDirs
    /// asked for before the partition existed, else in the least-loaded online dir.
    pub fn get_or_create_in(
        &self,
        tp: &TopicPartition,
        topic_id: [u8; 16],
        config: LogConfig,
        dir: Option<&Path>,
    ) -> Result<Arc<UnifiedLog>> {
        if let Some(p) = self.existing(tp)? {
            return Ok(p);
        }
        if !layout::is_legal_topic(&tp.topic) || tp.partition < 0 {
            // Not a disk failure: the dir stays online.
            return Err(invalid_input(
                PathBuf::from(&tp.topic),
                format!("illegal topic partition {}-{}", tp.topic, tp.partition),
            ));
        }
        let _creating = self.create_lock.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = self.existing(tp)? {
            return Ok(p);
        }
        let preferred = self.preferred_dirs.lock().unwrap_or_else(PoisonError::into_inner).get(tp).cloned();
        let chosen = [dir.map(Path::to_path_buf), preferred]
            .into_iter()
            .flatten()
            .find_map(|p| self.dirs.iter().find(|d| d.path == p && !d.is_offline()).cloned());
        let dir = chosen.or_else(|| {
            let map = self.map();
            let count = |d: &Arc<LogDir>| map.values().filter(|p| Arc::ptr_eq(&p.log_dir(), d)).count();
            self.dirs.iter().filter(|d| !d.is_offline()).min_by_key(|d| count(d)).cloned()
        });
        let Some(dir) = dir else {
            let path = self.dirs.first().map(|d| d.path.clone()).unwrap_or_default();
            return Err(StorageError::LogDirOffline(path));
        };
        let partition = create_partition(&dir, tp, topic_id, config).map_err(|e| dir.fail(e))?;
        let partition = Arc::new(partition);
        self.map_mut().insert(tp.clone(), partition.clone());
        self.preferred_dirs.lock().unwrap_or_else(PoisonError::into_inner).remove(tp);
        tracing::info!(partition = %tp.topic, index = tp.partition, log_dir = %dir.path.display(), "created log");
        Ok(partition)
    }

    fn existing(&self, tp: &TopicPartition) -> Result<Option<Arc<UnifiedLog>>> {
        match self.get(tp) {
            Some(p) if p.log_dir().is_offline() => Err(StorageError::LogDirOffline(p.log_dir().path.clone())),
            other => Ok(other),
        }
    }

    /// Removes a partition: renamed to `<topic>-<partition>.<id>-delete` at once (crash-safe),
    /// files removed afterwards. Later operations on a held `Arc<UnifiedLog>` fail with `Deleted`.
    pub fn delete(&self, tp: &TopicPartition) -> Result<()> {
        // A future replica goes first: a crash in between leaves a partition without one.
        if let Err(e) = self.cancel_future(tp) {
            tracing::warn!(partition = %tp.topic, index = tp.partition, error = %e, "could not delete the future replica");
        }
        let Some(partition) = self.map_mut().remove(tp) else { return Ok(()) };
        crate::future::remove_log_files(tp, &partition)?;
        tracing::info!(partition = %tp.topic, index = tp.partition, "deleted log");
        Ok(())
    }

    /// fsyncs partitions whose oldest unflushed append is older than their `flush.ms`.
    /// Partitions in offline dirs are skipped; the first new failure is returned after trying all.
    pub fn flush_due(&self, now_ms: i64) -> Result<()> {
        let mut first_error = None;
        for p in self.partitions() {
            if p.log_dir().is_offline() || p.is_deleted() || !p.flush_is_due(now_ms) {
                continue;
            }
            if let Err(e) = p.flush() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Flushes the segments rolled since the last call, each partition up to the base offset of
    /// its newest segment (Kafka schedules this flush right after a roll), then checkpoints the
    /// recovery points, so recovery after a crash rescans only what was written since. Runs on
    /// the broker's flusher thread whenever [`Self::roll_notify`] fires; appends never wait for
    /// it. Returns how many partitions it flushed; the first failure is returned after trying
    /// every partition.
    pub fn flush_rolled_segments(&self) -> Result<usize> {
        let mut flushed = 0;
        let mut first_error = None;
        for dir in &self.dirs {
            for (tp, offset) in dir.take_roll_flushes() {
                // The current log or the future replica, whichever lives in this dir.
                let Some(p) =
                    [self.get(&tp), self.future(&tp)].into_iter().flatten().find(|p| Arc::ptr_eq(&p.log_dir(), dir))
                else {
                    continue;
                };
                if p.log_dir().is_offline() || p.is_deleted() {
                    continue;
                }
                match p.flush_to(offset) {
                    Ok(()) => flushed += 1,
                    Err(StorageError::Deleted(_)) => {}
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        if flushed > 0 {
            if let Err(e) = self.checkpoint() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(flushed), Err)
    }

    /// Notified whenever a segment rolls and [`Self::flush_rolled_segments`] has work.
    pub fn roll_notify(&self) -> Arc<Notify> {
        self.roll_notify.clone()
    }

    /// Writes the recovery-point and log-start-offset checkpoint files of every online dir (and
    /// the high watermarks to `replication-offset-checkpoint`).
    pub fn checkpoint(&self) -> Result<()> {
        let logs = self.logs_to_checkpoint();
        let mut first_error = None;
        for dir in &self.dirs {
            if let Err(e) = self.checkpoint_dir_of(dir, &logs) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Every log the checkpoints record: future replicas too, each in its own dir, like Kafka's
    /// `logsByDir` (a dir never holds both copies of a partition).
    fn logs_to_checkpoint(&self) -> Vec<Arc<UnifiedLog>> {
        let mut logs = self.partitions();
        logs.extend(self.futures());
        logs
    }

    /// [`Self::checkpoint`] of one dir.
    pub(crate) fn checkpoint_dir(&self, dir: &Arc<LogDir>) -> Result<()> {
        self.checkpoint_dir_of(dir, &self.logs_to_checkpoint())
    }

    fn checkpoint_dir_of(&self, dir: &Arc<LogDir>, partitions: &[Arc<UnifiedLog>]) -> Result<()> {
        if dir.is_offline() {
            return Ok(());
        }
        let mut recovery_points = BTreeMap::new();
        let mut log_starts = BTreeMap::new();
        let mut high_watermarks = BTreeMap::new();
        let mut cleaner_offsets = BTreeMap::new();
        for p in partitions.iter().filter(|p| Arc::ptr_eq(&p.log_dir(), dir) && !p.is_deleted()) {
            let offsets = p.checkpoint_offsets();
            let (rp, lso, hw) = (offsets.recovery_point, offsets.log_start_offset, offsets.high_watermark);
            let tp = p.topic_partition().clone();
            if let Some(c) = p.cleaner_checkpoint() {
                cleaner_offsets.insert(tp.clone(), c);
            }
            recovery_points.insert(tp.clone(), rp);
            log_starts.insert(tp.clone(), lso);
            high_watermarks.insert(tp, hw);
        }
        let _guard = dir.checkpoint_lock.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, entries) in [
            (RECOVERY_POINT_CHECKPOINT, &recovery_points),
            (LOG_START_OFFSET_CHECKPOINT, &log_starts),
            (REPLICATION_OFFSET_CHECKPOINT, &high_watermarks),
            (CLEANER_OFFSET_CHECKPOINT, &cleaner_offsets),
        ] {
            let path = dir.path.join(name);
            if let Err(e) = write_offset_checkpoint(&path, entries) {
                return Err(dir.fail(io_err(&path, e)));
            }
        }
        Ok(())
    }

    /// Clean shutdown: flush every partition, write checkpoints and the clean-shutdown marker.
    /// Dirs that are (or go) offline get no marker, so their logs are recovered next time.
    pub fn shutdown(&self) -> Result<()> {
        let mut first_error = None;
        for p in self.partitions().into_iter().chain(self.futures()) {
            if p.log_dir().is_offline() || p.is_deleted() {
                continue;
            }
            if let Err(e) = p.close() {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = self.checkpoint() {
            first_error.get_or_insert(e);
        }
        for dir in &self.dirs {
            if dir.is_offline() {
                continue;
            }
            let marker = dir.path.join(CLEAN_SHUTDOWN_FILE);
            if let Err(e) =
                fs::File::create(&marker).and_then(|f| crate::io::sync_all(&f)).and_then(|_| fsync_dir(&dir.path))
            {
                first_error.get_or_insert(dir.fail(io_err(&marker, e)));
            }
        }
        tracing::info!(offline_dirs = self.offline_dirs().len(), "log manager shut down");
        first_error.map_or(Ok(()), Err)
    }

    /// One retention pass over every partition (Kafka's `log.retention.check.interval.ms` task):
    /// see [`UnifiedLog::apply_retention`]. Also removes `.deleted` files whose
    /// `file.delete.delay.ms` has passed. Returns the segments deleted; the first failure is
    /// returned after trying every partition.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize> {
        let mut deleted = 0;
        let mut moved = false;
        let mut first_error = None;
        for p in self.partitions() {
            if p.log_dir().is_offline() || p.is_deleted() {
                continue;
            }
            match p.apply_retention(now_ms) {
                Ok(stats) => {
                    deleted += stats.segments_deleted;
                    moved |= stats.segments_deleted > 0;
                }
                Err(StorageError::Deleted(_)) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        self.delete_due_files(now_ms);
        if moved {
            // The log start offsets moved: record them now rather than at the next checkpoint.
            if let Err(e) = self.checkpoint() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(deleted), Err)
    }

    /// Removes `.deleted` files whose delay has passed, in every dir.
    pub fn delete_due_files(&self, now_ms: i64) {
        for d in &self.dirs {
            d.delete_due_files(now_ms);
        }
    }

    /// Sizes of every partition for DescribeLogDirs, with the dirs (and whether each is offline).
    /// Future replicas are listed in their dir with `is_future` and, as their offset lag, how
    /// far their log end is behind the current log's (Kafka's `getLogEndOffsetLag`).
    pub fn dir_infos(&self) -> Vec<(PathBuf, bool, Vec<PartitionDirInfo>)> {
        let partitions = self.partitions();
        let futures = self.futures();
        self.dirs
            .iter()
            .map(|d| {
                let infos = if d.is_offline() {
                    Vec::new()
                } else {
                    let in_dir = |p: &&Arc<UnifiedLog>| Arc::ptr_eq(&p.log_dir(), d) && !p.is_deleted();
                    let mut infos: Vec<PartitionDirInfo> =
                        partitions.iter().filter(in_dir).map(|p| p.dir_info()).collect();
                    for f in futures.iter().filter(in_dir) {
                        let mut info = f.dir_info();
                        info.is_future = true;
                        info.offset_lag = match self.get(f.topic_partition()) {
                            Some(c) => c.offsets().log_end_offset - f.offsets().log_end_offset,
                            None => -1,
                        };
                        infos.push(info);
                    }
                    infos
                };
                (d.path.clone(), d.is_offline(), infos)
            })
            .collect()
    }

    /// Log dirs taken offline by I/O errors.
    pub fn offline_dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().filter(|d| d.is_offline()).map(|d| d.path.clone()).collect()
    }

    /// The configured log dirs, online or not.
    pub fn log_dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// Simulates an I/O failure in `dir` (tests): the dir goes offline exactly as after a real
    /// error.
    #[doc(hidden)]
    pub fn fail_log_dir_for_test(&self, dir: &Path) {
        for d in self.dirs.iter().filter(|d| d.path == dir) {
            d.mark_offline_dir(dir, &io::Error::other("injected failure"));
        }
    }

    // The log cleaner's scheduling (the cleaning itself is in `cleaner.rs`).

    /// Kafka's `grabFilthiestCompactedLog` + `Cleaner.clean`: picks the compacted log (not being
    /// cleaned by another thread) that must be cleaned (max compaction lag or a passed tombstone
    /// horizon) or has the highest dirty ratio above its `min.cleanable.dirty.ratio`, and cleans
    /// it. `Ok(None)` when no log needs cleaning. Writes the checkpoints afterwards so the first
    /// dirty offset survives a restart.
    pub fn clean_filthiest(&self, config: &CleanerConfig, now: i64) -> Result<Option<(TopicPartition, CleanerStats)>> {
        let capacity = offset_map_capacity(config);
        let mut best: Option<(Arc<UnifiedLog>, Cleanable)> = None;
        {
            let cleaning = self.cleaning.lock().unwrap_or_else(PoisonError::into_inner);
            let moving = self.futures.read().unwrap_or_else(PoisonError::into_inner);
            for p in self.partitions() {
                // Cleaning is paused while a partition moves (Kafka's abortAndPauseCleaning).
                if cleaning.contains(p.topic_partition())
                    || moving.contains_key(p.topic_partition())
                    || p.log_dir().is_offline()
                    || p.is_deleted()
                {
                    continue;
                }
                let Ok(Some(c)) = p.cleanable(now) else { continue };
                let min_ratio = p.config().min_cleanable_dirty_ratio;
                if !c.should_clean(min_ratio) {
                    continue;
                }
                let better = match &best {
                    None => true,
                    Some((_, b)) => (c.must_clean, c.dirty_ratio) > (b.must_clean, b.dirty_ratio),
                };
                if better {
                    best = Some((p, c));
                }
            }
        }
        let Some((partition, _)) = best else { return Ok(None) };
        let tp = partition.topic_partition().clone();
        if !self.cleaning.lock().unwrap_or_else(PoisonError::into_inner).insert(tp.clone()) {
            return Ok(None);
        }
        let result = partition.clean(capacity, now);
        self.cleaning.lock().unwrap_or_else(PoisonError::into_inner).remove(&tp);
        let stats = result?;
        if stats.is_some() {
            self.checkpoint()?;
        }
        Ok(stats.map(|s| (tp, s)))
    }

    /// Cleans one specific log now if it is compacted (tests, admin tools), whatever its ratio.
    pub fn clean_now(&self, tp: &TopicPartition, config: &CleanerConfig, now: i64) -> Result<Option<CleanerStats>> {
        let Some(p) = self.get(tp) else { return Ok(None) };
        if self.future(tp).is_some() {
            return Ok(None);
        }
        if !self.cleaning.lock().unwrap_or_else(PoisonError::into_inner).insert(tp.clone()) {
            return Ok(None);
        }
        let result = p.clean(offset_map_capacity(config), now);
        self.cleaning.lock().unwrap_or_else(PoisonError::into_inner).remove(tp);
        result
    }
}

/// Creates an empty partition log: dir, `partition.metadata`, first segment, dir fsyncs.
fn create_partition(
    dir: &Arc<LogDir>,
    tp: &TopicPartition,
    topic_id: [u8; 16],
    config: LogConfig,
) -> Result<UnifiedLog> {
    let path = dir.path.join(layout::partition_dir_name(tp));
    if path.exists() {
        // A dir that was not loaded (e.g. created by hand) is loaded rather than overwritten.
        let mut report = LoadReport::default();
        let partition =
            load_partition(&path, tp.clone(), dir.clone(), config, CheckpointHints::default(), false, &mut report)?;
        return Ok(partition);
    }
    create_log_at(dir, &path, tp, Some(topic_id), config, 0)
}

/// Creates an empty log at `path` in the log dir `dir` (a new partition, or a future replica)
/// whose first segment starts at `base`.
pub(crate) fn create_log_at(
    dir: &Arc<LogDir>,
    path: &Path,
    tp: &TopicPartition,
    topic_id: Option<[u8; 16]>,
    config: LogConfig,
    base: i64,
) -> Result<UnifiedLog> {
    let path = path.to_path_buf();
    let metadata = path.join(layout::PARTITION_METADATA_FILE);
    // No fsync here: creating a topic with thousands of partitions must not cost four fsyncs
    // each (it took 14 ms per partition). The new directory entries become durable with the
    // partition's first flush (`dir_needs_sync`), as its data does; a crash before that loses
    // only an empty log, which `Broker::partition` recreates, and a torn `partition.metadata`
    // reads as absent.
    fs::create_dir_all(&path).map_err(|e| io_err(&path, e))?;
    let written = match topic_id {
        Some(id) => fs::write(&metadata, checkpoint::format_partition_metadata(&id).as_bytes())
            .map_err(|e| io_err(&metadata, e)),
        None => Ok(()),
    };
    let created = written.and_then(|()| {
        LogSegment::create(&path, base, &config, now_ms(), roll_jitter(&config)).map_err(|e| io_err(&path, e))
    });
    let segment = match created {
        Ok(segment) => segment,
        Err(e) => {
            // Out of descriptors or memory half-way: leave nothing behind, so the partition is
            // either whole or absent (a half-made directory would be loaded at the next start).
            if let Err(error) = fs::remove_dir_all(&path) {
                tracing::warn!(dir = %path.display(), %error, "could not remove a half-created partition dir");
            }
            return Err(e);
        }
    };
    let state = LogState {
        dir: path,
        config,
        segments: BTreeMap::from([(base, segment)]),
        log_start_offset: base,
        log_end_offset: base,
        high_watermark: base,
        recovery_point: base,
        first_unflushed_append_ms: None,
        dir_needs_sync: true,
        roll_flush_offset: None,
        cleaner_checkpoint: None,
        tombstone_horizon: None,
        producer_state: Default::default(),
        highest_remote_offset: -1,
        txn_index: Default::default(),
        leader_epochs: Default::default(),
        leader_epochs_dirty: false,
    };
    Ok(UnifiedLog::from_state(tp.clone(), topic_id, dir.clone(), state))
}

/// What loading the log dirs found.
#[derive(Default)]
struct Loaded {
    partitions: HashMap<TopicPartition, Arc<UnifiedLog>>,
    futures: HashMap<TopicPartition, Arc<UnifiedLog>>,
    duplicates: Vec<Arc<UnifiedLog>>,
}

/// Loads one log dir into `loaded`.
fn load_dir(
    dir: &Arc<LogDir>,
    config_for: &dyn Fn(&str) -> LogConfig,
    report: &mut LoadReport,
    loaded: &mut Loaded,
) -> Result<()> {
    let root = &dir.path;
    let root_err = |e| io_err(root, e);
    fs::create_dir_all(root).map_err(root_err)?;
    let marker = root.join(CLEAN_SHUTDOWN_FILE);
    let clean = marker.exists();
    // A dir holding no partition yet (first start) has nothing to recover: no warning then.
    let has_partitions = fs::read_dir(root)
        .map(|entries| entries.flatten().any(|e| e.file_type().is_ok_and(|t| t.is_dir())))
        .unwrap_or(true);
    if !clean && has_partitions {
        report.unclean_dirs.push(root.clone());
        tracing::warn!(log_dir = %root.display(), "no clean shutdown marker, recovering unflushed segments");
    }
    let read_cp = |name: &str| {
        let path = root.join(name);
        read_offset_checkpoint(&path).map_err(|e| io_err(&path, e))
    };
    let recovery_points = read_cp(RECOVERY_POINT_CHECKPOINT)?;
    let log_starts = read_cp(LOG_START_OFFSET_CHECKPOINT)?.unwrap_or_default();
    let high_watermarks = read_cp(REPLICATION_OFFSET_CHECKPOINT)?.unwrap_or_default();
    let cleaner_offsets = read_cp(CLEANER_OFFSET_CHECKPOINT)?.unwrap_or_default();

    let mut entries: Vec<_> =
        fs::read_dir(root).map_err(root_err)?.collect::<std::io::Result<_>>().map_err(root_err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        let is_dir = entry.file_type().map_err(|e| io_err(&path, e))?.is_dir();
        if !is_dir {
            if name.ends_with(".tmp") {
                // A checkpoint write that never reached its rename.
                fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            }
            continue;
        }
        if layout::is_delete_dir_name(&name) {
            tracing::info!(dir = %path.display(), "finishing interrupted log deletion");
            fs::remove_dir_all(&path).map_err(|e| io_err(&path, e))?;
            continue;
        }
        let hints_for = |tp: &TopicPartition| CheckpointHints {
            recovery_point: recovery_points.as_ref().and_then(|m| m.get(tp).copied()),
            log_start_offset: log_starts.get(tp).copied(),
            high_watermark: high_watermarks.get(tp).copied(),
            cleaner_offset: cleaner_offsets.get(tp).copied(),
        };
        if let Some(tp) = layout::parse_future_dir_name(&name) {
            // A move in progress: the broker decides at startup whether it is resumed or, if its
            // swap was already decided, completed (`LogManager::reconcile_log_dirs`).
            if let Some(existing) = loaded.futures.get(&tp) {
                tracing::error!(partition = %tp.topic, index = tp.partition, dir = %path.display(), loaded_from = %existing.dir().display(), "second future replica of a partition, leaving it alone");
                continue;
            }
            let config = config_for(&tp.topic);
            let log = load_partition(&path, tp.clone(), dir.clone(), config, hints_for(&tp), clean, report)?;
            loaded.futures.insert(tp, Arc::new(log));
            continue;
        }
        let Some(tp) = layout::parse_partition_dir_name(&name) else {
            tracing::warn!(dir = %path.display(), "skipping directory that is not a partition log");
            continue;
        };
        let config = config_for(&tp.topic);
        if let Some(existing) = loaded.partitions.get(&tp) {
            // Only a crash between the two renames of a swap leaves two copies; the broker's
            // metadata says which one is the partition (`LogManager::reconcile_log_dirs`).
            tracing::warn!(
                partition = %tp.topic,
                index = tp.partition,
                dir = %path.display(),
                loaded_from = %existing.dir().display(),
                "second copy of a partition, kept aside until the metadata says which is current"
            );
            let log = load_partition(&path, tp.clone(), dir.clone(), config, hints_for(&tp), clean, report)?;
            loaded.duplicates.push(Arc::new(log));
            continue;
        }
        let partition = load_partition(&path, tp.clone(), dir.clone(), config, hints_for(&tp), clean, report)?;
        loaded.partitions.insert(tp, Arc::new(partition));
    }
    if clean {
        // From now on a crash must be detectable.
        fs::remove_file(&marker).map_err(|e| io_err(&marker, e))?;
        fsync_dir(root).map_err(root_err)?;
    }
    Ok(())
}
