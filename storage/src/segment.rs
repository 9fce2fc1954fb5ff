//! One log segment (Kafka's `LogSegment`): the `.log` file of whole batches, its offset and time
//! indexes, and the bookkeeping appends need (size, bytes since the last index entry, the largest
//! timestamp so far and the offset of the batch carrying it, the time the segment became
//! rollable).
//!
//! Also owns the file-level scanning primitives used outside the partition lock:
//! [`SegmentView`] is an immutable snapshot (shared fd + committed size) that reads batches with
//! positional reads, and [`BatchScanner`] streams whole batches for recovery.
//!
//! Invariants: the log file holds exactly `size` bytes of whole batches (anything beyond is a
//! torn tail that recovery removes); index entries point at batch starts below `size`. A
//! `LogSegment` is mutated only under its partition's lock; a `SegmentView` is read-only and may
//! be used from any thread because bytes below a snapshot's `end` never change while the log is
//! online (segments are append-only; truncation happens only during recovery, before sharing).

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::batch::{BatchError, RecordBatch};
use sluice_protocol::batch_header::{BatchHeader, BatchHeaderBuf, BATCH_HEADER_BYTES as HEADER_SIZE};
use sluice_protocol::limits::DECOMPRESSED_BATCH_BYTES_MAX;

use crate::index::{OffsetIndex, TimeIndex};
use crate::layout;
use crate::limits::SCAN_CHUNK_BYTES as SCAN_CHUNK;
use crate::{LogConfig, StorageError, TimestampOffset};

pub fn io_err(path: &Path, source: io::Error) -> StorageError {
    StorageError::Io { path: path.to_path_buf(), source }
}

fn corrupt(path: &Path, position: u64, reason: impl ToString) -> StorageError {
    StorageError::Corrupt { path: path.to_path_buf(), position, reason: reason.to_string() }
}

/// The header at the start of `b`, checked for what a scan must trust to step to the next batch
/// (Kafka's `FileLogInputStream` reads only these bytes per batch, so that locating a batch costs
/// one small positional read, not a copy of the batch): a whole header, a length covering at
/// least the header, magic 2, and offsets a log can hold.
pub fn scan_header(b: &[u8]) -> Result<BatchHeader<'_>, BatchError> {
    let h = BatchHeader::parse(b)?;
    if !h.offsets_valid() {
        return Err(BatchError::InvalidOffsets {
            base_offset: h.base_offset(),
            last_offset_delta: h.last_offset_delta(),
        });
    }
    Ok(h)
}

/// Reads as many bytes as are available (up to `buf.len()`) at `pos`.
fn read_up_to_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], pos + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// `write_all` for a vector of slices (`Write::write_all_vectored` is unstable).
fn write_all_vectored(mut file: &File, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "short vectored write")),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A record's timestamp as Kafka reports it: LogAppendTime batches give every record the
/// batch's max timestamp.
fn record_timestamp(batch: &RecordBatch, log_append_time: bool, timestamp_delta: i64) -> i64 {
    if log_append_time {
        batch.max_timestamp()
    } else {
        batch.base_timestamp().wrapping_add(timestamp_delta)
    }
}

/// An immutable snapshot of a segment for reading outside the partition lock.
#[derive(Debug, Clone)]
pub struct SegmentView {
    pub file: Arc<File>,
    pub path: Arc<PathBuf>,
    /// Committed size when the snapshot was taken; bytes past it are ignored.
    pub end: u64,
}

/// What a bounded read of one segment produced.
#[derive(Debug)]
pub struct Chunk {
    pub bytes: Bytes,
    /// A limit (bytes or `max_offset`) stopped the read; later segments must not be read.
    pub limited: bool,
}

impl SegmentView {
    /// The header of the batch at `pos`, checked to lie within the snapshot.
    pub fn header_at(&self, pos: u64) -> crate::Result<BatchHeaderBuf> {
        let mut buf = [0u8; HEADER_SIZE];
        let n = read_up_to_at(&self.file, &mut buf, pos).map_err(|e| io_err(&self.path, e))?;
        let h = scan_header(&buf[..n]).map_err(|r| corrupt(&self.path, pos, r))?;
        if pos + h.size_in_bytes() > self.end {
            return Err(corrupt(
                &self.path,
                pos,
                format!("batch of {} bytes runs past segment end {}", h.size_in_bytes(), self.end),
            ));
        }
        Ok(h.to_buf())
    }

    /// Scans headers from `pos` (a batch start, e.g. from the offset index) for the first batch
    /// whose last offset is `>= target`: the batch that contains `target`, or the first one after
    /// it when `target` falls in a gap. `None` when the snapshot ends first.
    pub fn find_batch(&self, mut pos: u64, target: i64) -> crate::Result<Option<(u64, BatchHeaderBuf)>> {
        while pos < self.end {
            let buf = self.header_at(pos)?;
            let h = buf.header();
            if h.last_offset() >= target {
                return Ok(Some((pos, buf)));
            }
            pos += h.size_in_bytes();
        }
        Ok(None)
    }

    /// Reads whole batches starting at `pos` (a batch start): stops before a batch whose last
    /// offset is `>= max_offset` or that would take the total past `max_bytes`, except that with
    /// `min_one_batch` a first batch larger than `max_bytes` is returned alone and whole.
    pub fn read_batches(
        &self,
        pos: u64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> crate::Result<Chunk> {
        let available = self.end.saturating_sub(pos);
        if available == 0 {
            return Ok(Chunk { bytes: Bytes::new(), limited: false });
        }
        let want = available.min(max_bytes as u64) as usize;
        let mut buf = read_at_uninit(&self.file, want, pos).map_err(|e| io_err(&self.path, e))?;
        let mut off = 0usize;
        let mut prev_next_offset = i64::MIN;
        loop {
            if pos + off as u64 >= self.end {
                // The whole snapshot was consumed.
                buf.truncate(off);
                return Ok(Chunk { bytes: Bytes::from(buf), limited: false });
            }
            let h = if off + HEADER_SIZE <= buf.len() {
                scan_header(&buf[off..off + HEADER_SIZE])
                    .map_err(|r| corrupt(&self.path, pos + off as u64, r))?
                    .to_buf()
            } else {
                // The buffer ends inside this header; only the size and offsets matter now.
                self.header_at(pos + off as u64)?
            };
            let h = h.header();
            let at = pos + off as u64;
            if at + h.size_in_bytes() > self.end {
                return Err(corrupt(&self.path, at, "batch runs past segment end"));
            }
            if h.base_offset() < prev_next_offset {
                return Err(corrupt(
                    &self.path,
                    at,
                    format!("offset {} below previous batch end {prev_next_offset}", h.base_offset()),
                ));
            }
            if h.last_offset() >= max_offset {
                buf.truncate(off);
                return Ok(Chunk { bytes: Bytes::from(buf), limited: true });
            }
            let size = h.size_in_bytes() as usize;
            if off + size > max_bytes {
                if off == 0 && min_one_batch {
                    // Return the oversized first batch whole, alone.
                    let whole = read_at_uninit(&self.file, size, at).map_err(|e| io_err(&self.path, e))?;
                    return Ok(Chunk { bytes: Bytes::from(whole), limited: true });
                }
                buf.truncate(off);
                return Ok(Chunk { bytes: Bytes::from(buf), limited: true });
            }
            prev_next_offset = h.next_offset();
            off += size;
        }
    }

    /// Reads the whole batch at `pos`.
    pub fn read_batch(&self, pos: u64, h: &BatchHeader<'_>) -> crate::Result<RecordBatch> {
        let mut buf = vec![0u8; h.size_in_bytes() as usize];
        self.file.read_exact_at(&mut buf, pos).map_err(|e| io_err(&self.path, e))?;
        RecordBatch::new(Bytes::from(buf)).map_err(|e| corrupt(&self.path, pos, e.to_string()))
    }

    /// Kafka's `FileRecords.searchForTimestamp`: from `pos`, the first record with timestamp
    /// `>= target` and offset `>= starting_offset`.
    pub fn search_for_timestamp(
        &self,
        mut pos: u64,
        target: i64,
        starting_offset: i64,
    ) -> crate::Result<Option<TimestampOffset>> {
        while pos < self.end {
            let buf = self.header_at(pos)?;
            let h = buf.header();
            if h.max_timestamp() >= target && h.last_offset() >= starting_offset {
                let batch = self.read_batch(pos, &h)?;
                let records =
                    batch.records(DECOMPRESSED_BATCH_BYTES_MAX).map_err(|e| corrupt(&self.path, pos, e.to_string()))?;
                let lat = h.is_log_append_time();
                for r in &records {
                    let ts = record_timestamp(&batch, lat, r.timestamp_delta);
                    let offset = h.base_offset() + i64::from(r.offset_delta);
                    if ts >= target && offset >= starting_offset {
                        return Ok(Some(TimestampOffset {
                            timestamp: ts,
                            offset,
                            leader_epoch: h.partition_leader_epoch(),
                        }));
                    }
                }
            }
            pos += h.size_in_bytes();
        }
        Ok(None)
    }

    /// The first record carrying `max_timestamp`, in the first batch from `pos` whose max
    /// timestamp equals it (Kafka's `offsetOfMaxTimestamp`).
    pub fn find_max_timestamp_record(
        &self,
        mut pos: u64,
        max_timestamp: i64,
    ) -> crate::Result<Option<TimestampOffset>> {
        while pos < self.end {
            let buf = self.header_at(pos)?;
            let h = buf.header();
            if h.max_timestamp() == max_timestamp {
                let batch = self.read_batch(pos, &h)?;
                let records =
                    batch.records(DECOMPRESSED_BATCH_BYTES_MAX).map_err(|e| corrupt(&self.path, pos, e.to_string()))?;
                let lat = h.is_log_append_time();
                let offset = records
                    .iter()
                    .find(|r| record_timestamp(&batch, lat, r.timestamp_delta) == max_timestamp)
                    .map(|r| h.base_offset() + i64::from(r.offset_delta))
                    // A batch whose records disagree with its header still names the batch.
                    .unwrap_or(h.last_offset());
                return Ok(Some(TimestampOffset {
                    timestamp: max_timestamp,
                    offset,
                    leader_epoch: h.partition_leader_epoch(),
                }));
            }
            pos += h.size_in_bytes();
        }
        Ok(None)
    }
}

/// One step of a [`BatchScanner`].
#[derive(Debug)]
pub enum Scanned {
    Batch {
        position: u64,
        batch: RecordBatch,
    },
    /// Clean end of file.
    End,
    /// A header that cannot be trusted or a batch cut short by the end of the file.
    Invalid {
        position: u64,
        reason: String,
    },
}

/// Streams whole batches from a file with large positional reads (recovery reads every byte,
/// so one syscall per batch would dominate).
pub struct BatchScanner<'a> {
    file: &'a File,
    file_len: u64,
    /// Unconsumed bytes starting at `buf_pos`.
    buf: Bytes,
    buf_pos: u64,
}

impl<'a> BatchScanner<'a> {
    pub fn new(file: &'a File, file_len: u64, start: u64) -> Self {
        Self { file, file_len, buf: Bytes::new(), buf_pos: start }
    }

    /// Makes at least `n` bytes available in `buf` if the file has them.
    fn fill(&mut self, n: usize) -> io::Result<()> {
        if self.buf.len() >= n {
            return Ok(());
        }
        let left_in_file = self.file_len.saturating_sub(self.buf_pos);
        let want = (n.max(SCAN_CHUNK) as u64).min(left_in_file) as usize;
        if want <= self.buf.len() {
            return Ok(());
        }
        let mut next = Vec::with_capacity(want);
        next.extend_from_slice(&self.buf);
        next.resize(want, 0);
        let have = self.buf.len();
        let got = read_up_to_at(self.file, &mut next[have..], self.buf_pos + have as u64)?;
        next.truncate(have + got);
        self.buf = Bytes::from(next);
        Ok(())
    }

    pub fn next_batch(&mut self) -> io::Result<Scanned> {
        let position = self.buf_pos;
        if position >= self.file_len {
            return Ok(Scanned::End);
        }
        self.fill(HEADER_SIZE)?;
        let size = match scan_header(&self.buf[..self.buf.len().min(HEADER_SIZE)]) {
            Ok(h) => h.size_in_bytes(),
            Err(e) => return Ok(Scanned::Invalid { position, reason: e.to_string() }),
        };
        if position + size > self.file_len {
            let reason = format!("batch of {size} bytes truncated at file end {}", self.file_len);
            return Ok(Scanned::Invalid { position, reason });
        }
        self.fill(size as usize)?;
        if self.buf.len() < size as usize {
            return Ok(Scanned::Invalid { position, reason: "file shrank while scanning".into() });
        }
        let bytes = self.buf.split_to(size as usize);
        self.buf_pos += size;
        match RecordBatch::new(bytes) {
            Ok(batch) => Ok(Scanned::Batch { position, batch }),
            Err(e) => Ok(Scanned::Invalid { position, reason: e.to_string() }),
        }
    }
}

/// How a segment scan ended (see [`LogSegment::recover`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoverOutcome {
    pub valid_bytes: u64,
    pub truncated_bytes: u64,
    /// Offset after the last valid batch (the segment's base offset when empty).
    pub next_offset: i64,
    /// Why the tail was cut, when it was.
    pub reason: Option<String>,
    pub position: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct LogSegment {
    base_offset: i64,
    log_path: Arc<PathBuf>,
    log: Arc<File>,
    size: u64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    bytes_since_last_index_entry: u64,
    max_timestamp_so_far: i64,
    /// Last offset of the batch that carried `max_timestamp_so_far` (Kafka's "shallow" offset).
    offset_of_max_timestamp_so_far: i64,
    /// Max timestamp of the first batch; `segment.ms` is measured from it (Kafka's choice).
    rolling_based_timestamp: Option<i64>,
    /// Wall-clock creation/load time, the fallback when batches carry no timestamp.
    created_ms: i64,
    /// Random part of `segment.jitter.ms` chosen for this segment.
    roll_jitter_ms: i64,
}

fn open_log_file(path: &Path, create: bool) -> io::Result<File> {
    // O_APPEND: writes always land at the end; reads are positional and unaffected.
    OpenOptions::new().read(true).append(true).create(create).open(path)
}

impl LogSegment {
    /// Creates an empty segment (files truncated if stale ones exist).
    pub fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        roll_jitter_ms: i64,
    ) -> io::Result<Self> {
        Self::create_with_suffix(dir, base_offset, config, now_ms, roll_jitter_ms, "")
    }

    /// Creates an empty segment whose three files carry `suffix` after their usual names
    /// (`.cleaned` while the cleaner writes it).
    pub fn create_with_suffix(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        roll_jitter_ms: i64,
        suffix: &str,
    ) -> io::Result<Self> {
        let log_path = layout::with_suffix(&layout::log_file(dir, base_offset), suffix);
        let log = open_log_file(&log_path, true)?;
        log.set_len(0)?;
        let index_path = layout::with_suffix(&layout::index_file(dir, base_offset), suffix);
        let time_path = layout::with_suffix(&layout::time_index_file(dir, base_offset), suffix);
        let offset_index = OffsetIndex::create(&index_path, base_offset, config.segment_index_bytes)?;
        let time_index = TimeIndex::create(&time_path, base_offset, config.segment_index_bytes)?;
        Ok(Self::from_parts(base_offset, log_path, log, 0, offset_index, time_index, now_ms, roll_jitter_ms))
    }

    /// Renames the segment's files to their usual names plus `suffix` (`""` for the final names),
    /// index files first and the log last: the log file's name is what recovery decides by. The
    /// open handles (and any [`SegmentView`] of them) keep working. Does not fsync the directory.
    pub fn rename_with_suffix(&mut self, dir: &Path, suffix: &str) -> io::Result<()> {
        let base = self.base_offset;
        let index_to = layout::with_suffix(&layout::index_file(dir, base), suffix);
        if self.offset_index.path() != index_to {
            std::fs::rename(self.offset_index.path(), &index_to)?;
            self.offset_index.set_path(index_to);
        }
        let time_to = layout::with_suffix(&layout::time_index_file(dir, base), suffix);
        if self.time_index.path() != time_to {
            std::fs::rename(self.time_index.path(), &time_to)?;
            self.time_index.set_path(time_to);
        }
        let log_to = layout::with_suffix(&layout::log_file(dir, base), suffix);
        if *self.log_path != log_to {
            std::fs::rename(&*self.log_path, &log_to)?;
            self.log_path = Arc::new(log_to);
        }
        Ok(())
    }

    /// Points the segment at `dir` after its directory was renamed (the files keep their names;
    /// open handles and views keep working).
    pub fn set_dir(&mut self, dir: &Path) {
        let base = self.base_offset;
        self.offset_index.set_path(layout::index_file(dir, base));
        self.time_index.set_path(layout::time_index_file(dir, base));
        self.log_path = Arc::new(layout::log_file(dir, base));
    }

    /// The log file's modification time in ms (retention's fallback when batches carry no
    /// timestamps, as Kafka's `largestTimestamp` falls back to `lastModified`).
    pub fn last_modified_ms(&self) -> i64 {
        self.log
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(self.created_ms)
    }

    /// Kafka's `largestTimestamp`: the largest record timestamp, or the file's mtime without one.
    pub fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp_so_far >= 0 {
            self.max_timestamp_so_far
        } else {
            self.last_modified_ms()
        }
    }

    /// Whether `segment.ms` (minus this segment's jitter) has elapsed at `now_ms` since the
    /// segment's first batch (or its creation). Used to roll an idle active segment.
    pub fn time_to_roll(&self, config: &LogConfig, now_ms: i64) -> bool {
        if self.size == 0 {
            return false;
        }
        let start = self.rolling_based_timestamp.filter(|t| *t >= 0).unwrap_or(self.created_ms);
        now_ms.saturating_sub(start) > config.segment_ms.saturating_sub(self.roll_jitter_ms)
    }

    #[allow(clippy::too_many_arguments)]
    fn from_parts(
        base_offset: i64,
        log_path: PathBuf,
        log: File,
        size: u64,
        offset_index: OffsetIndex,
        time_index: TimeIndex,
        now_ms: i64,
        roll_jitter_ms: i64,
    ) -> Self {
        Self {
            base_offset,
            log_path: Arc::new(log_path),
            log: Arc::new(log),
            size,
            offset_index,
            time_index,
            bytes_since_last_index_entry: 0,
            max_timestamp_so_far: -1,
            offset_of_max_timestamp_so_far: -1,
            rolling_based_timestamp: None,
            created_ms: now_ms,
            roll_jitter_ms,
        }
    }

    /// Opens an existing segment. Returns the segment and, when an index is missing or
    /// inconsistent, why (the indexes are then empty and the caller must [`recover`] it).
    ///
    /// [`recover`]: LogSegment::recover
    pub fn open(dir: &Path, base_offset: i64, config: &LogConfig, now_ms: i64) -> io::Result<(Self, Option<String>)> {
        let log_path = layout::log_file(dir, base_offset);
        let log = open_log_file(&log_path, false)?;
        let size = log.metadata()?.len();
        let index_path = layout::index_file(dir, base_offset);
        let time_path = layout::time_index_file(dir, base_offset);
        let mut problem = None;
        let offset_index = match OffsetIndex::load(&index_path, base_offset, config.segment_index_bytes, size)? {
            Ok(i) => i,
            Err(p) => {
                problem = Some(p.0);
                OffsetIndex::create(&index_path, base_offset, config.segment_index_bytes)?
            }
        };
        let time_index = match TimeIndex::load(&time_path, base_offset, config.segment_index_bytes)? {
            Ok(i) if problem.is_none() => i,
            Ok(_) => TimeIndex::create(&time_path, base_offset, config.segment_index_bytes)?,
            Err(p) => {
                problem.get_or_insert(p.0);
                TimeIndex::create(&time_path, base_offset, config.segment_index_bytes)?
            }
        };
        let mut seg = Self::from_parts(base_offset, log_path, log, size, offset_index, time_index, now_ms, 0);
        // Kafka restores the max timestamp from the time index's last entry, which close/roll
        // always writes.
        if let Some((ts, offset)) = seg.time_index.last_entry() {
            seg.max_timestamp_so_far = ts;
            seg.offset_of_max_timestamp_so_far = offset;
        }
        if problem.is_some() {
            seg.offset_index.reset()?;
            seg.time_index.reset()?;
        }
        Ok((seg, problem))
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn max_timestamp_so_far(&self) -> i64 {
        self.max_timestamp_so_far
    }

    pub fn offset_of_max_timestamp_so_far(&self) -> i64 {
        self.offset_of_max_timestamp_so_far
    }

    pub fn set_roll_jitter_ms(&mut self, jitter: i64) {
        self.roll_jitter_ms = jitter;
    }

    pub fn view(&self) -> SegmentView {
        SegmentView { file: self.log.clone(), path: self.log_path.clone(), end: self.size }
    }

    /// Kafka's `shouldRoll`: would appending this batch require a new segment first?
    pub fn should_roll(
        &self,
        config: &LogConfig,
        batch_size: u64,
        batch_max_timestamp: i64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        if self.size == 0 {
            // A segment always accepts its first batch; offsets always fit (base == LEO).
            return false;
        }
        if self.size + batch_size > config.segment_bytes {
            return true;
        }
        let rolling = self.rolling_based_timestamp.filter(|t| *t >= 0);
        let waited = match rolling {
            Some(t) if batch_max_timestamp >= 0 => batch_max_timestamp.saturating_sub(t),
            _ => now_ms.saturating_sub(self.created_ms),
        };
        if waited > config.segment_ms.saturating_sub(self.roll_jitter_ms) {
            return true;
        }
        if self.offset_index.is_full() || self.time_index.is_full() {
            return true;
        }
        // Relative offsets are ints in Kafka's index format.
        last_offset - self.base_offset > i64::from(i32::MAX)
    }

    /// Records a batch written at `position` (== the old size) in memory: size, sparse index
    /// entries every `index_interval_bytes`, max timestamp. Kafka's `LogSegment.append`
    /// bookkeeping; also used by recovery to rebuild indexes.
    pub fn track_batch(
        &mut self,
        position: u64,
        size: u64,
        last_offset: i64,
        max_timestamp: i64,
        index_interval_bytes: u64,
    ) {
        if self.rolling_based_timestamp.is_none() && position == 0 {
            self.rolling_based_timestamp = Some(max_timestamp);
        }
        if max_timestamp > self.max_timestamp_so_far {
            self.max_timestamp_so_far = max_timestamp;
            self.offset_of_max_timestamp_so_far = last_offset;
        }
        if self.bytes_since_last_index_entry > index_interval_bytes {
            self.offset_index.append(last_offset, position);
            self.time_index.maybe_append(self.max_timestamp_so_far, self.offset_of_max_timestamp_so_far);
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += size;
        self.size = position + size;
    }

    /// Writes batch slices (header patches and batch bodies) at the end of the log file.
    pub fn write(&self, slices: &mut [IoSlice<'_>]) -> io::Result<()> {
        write_all_vectored(&self.log, slices)
    }

    pub fn write_pending_indexes(&mut self) -> io::Result<()> {
        self.offset_index.write_pending()?;
        self.time_index.write_pending()
    }

    /// Kafka's `onBecomeInactiveSegment`/close: the final time index entry (even when full), all
    /// entries written and the index files fsynced.
    pub fn close_indexes(&mut self, sync: bool) -> io::Result<()> {
        if self.max_timestamp_so_far >= 0 {
            self.time_index.maybe_append(self.max_timestamp_so_far, self.offset_of_max_timestamp_so_far);
        }
        self.write_pending_indexes()?;
        if sync {
            crate::io::sync_data(self.offset_index.file())?;
            crate::io::sync_data(self.time_index.file())?;
        }
        Ok(())
    }

    /// Reads the first batch's max timestamp (after load) so `segment.ms` keeps working.
    pub fn load_rolling_timestamp(&mut self) -> crate::Result<()> {
        if self.size > 0 {
            let h = self.view().header_at(0)?;
            self.rolling_based_timestamp = Some(h.header().max_timestamp());
        }
        Ok(())
    }

    /// Kafka's `readNextOffset` after a clean shutdown: scans headers from the last offset index
    /// entry only. `Err(Corrupt)` if the tail is not a clean chain of batches ending at `size`.
    pub fn read_next_offset(&self) -> crate::Result<i64> {
        let view = self.view();
        let (entry_offset, mut pos) = self.offset_index.last_entry().unwrap_or((self.base_offset, 0));
        let mut next = self.base_offset;
        let mut first = true;
        while pos < self.size {
            let buf = view.header_at(pos)?;
            let h = buf.header();
            if first && self.offset_index.last_entry().is_some() && h.last_offset() != entry_offset {
                return Err(corrupt(&self.log_path, pos, "offset index entry does not match the batch it points at"));
            }
            if h.base_offset() < next || h.last_offset() - self.base_offset > i64::from(i32::MAX) {
                return Err(corrupt(&self.log_path, pos, format!("unexpected batch offset {}", h.base_offset())));
            }
            first = false;
            next = h.next_offset();
            pos += h.size_in_bytes();
        }
        Ok(next)
    }

    /// Kafka's `LogSegment.recover`: rebuilds both indexes from the log, validating every batch
    /// (CRC and structure) and that offsets increase; truncates the file at the first invalid
    /// batch. `max_offset_exclusive` bounds offsets (the next segment's base offset).
    pub fn recover(
        &mut self,
        index_interval_bytes: u64,
        max_offset_exclusive: Option<i64>,
    ) -> io::Result<RecoverOutcome> {
        self.offset_index.reset()?;
        self.time_index.reset()?;
        self.size = 0;
        self.bytes_since_last_index_entry = 0;
        self.max_timestamp_so_far = -1;
        self.offset_of_max_timestamp_so_far = -1;
        self.rolling_based_timestamp = None;
        let file_len = self.log.metadata()?.len();
        let log = self.log.clone();
        let mut scanner = BatchScanner::new(&log, file_len, 0);
        let mut next_offset = self.base_offset;
        let mut failure: Option<(u64, String)> = None;
        loop {
            match scanner.next_batch()? {
                Scanned::End => break,
                Scanned::Invalid { position, reason } => {
                    failure = Some((position, reason));
                    break;
                }
                Scanned::Batch { position, batch } => {
                    let problem = if let Err(e) = batch.validate() {
                        Some(e.to_string())
                    } else if batch.base_offset() < next_offset {
                        Some(format!("batch base offset {} below expected {next_offset}", batch.base_offset()))
                    } else if batch.last_offset() - self.base_offset > i64::from(i32::MAX) {
                        Some(format!("batch last offset {} beyond the segment's offset range", batch.last_offset()))
                    } else if max_offset_exclusive.is_some_and(|m| batch.last_offset() >= m) {
                        Some(format!("batch last offset {} reaches into the next segment", batch.last_offset()))
                    } else {
                        None
                    };
                    if let Some(reason) = problem {
                        failure = Some((position, reason));
                        break;
                    }
                    let size = batch.size_in_bytes() as u64;
                    self.track_batch(position, size, batch.last_offset(), batch.max_timestamp(), index_interval_bytes);
                    next_offset = batch.next_offset();
                }
            }
        }
        let valid_bytes = self.size;
        let truncated_bytes = file_len - valid_bytes;
        if truncated_bytes > 0 {
            self.log.set_len(valid_bytes)?;
            // Durable before anything is appended after the cut: otherwise a later crash could
            // bring the invalid tail back between flushed data.
            crate::io::sync_data(&self.log)?;
        }
        // Like Kafka, end with the max-timestamp entry so a later clean load restores it.
        if self.max_timestamp_so_far >= 0 {
            self.time_index.maybe_append(self.max_timestamp_so_far, self.offset_of_max_timestamp_so_far);
        }
        self.write_pending_indexes()?;
        let (position, reason) = match failure {
            Some((p, r)) => (p, Some(r)),
            None => (valid_bytes, None),
        };
        Ok(RecoverOutcome { valid_bytes, truncated_bytes, next_offset, reason, position })
    }

    /// The segment's files with their paths, for fsync outside the partition lock.
    pub fn files(&self) -> [(Arc<File>, PathBuf); 3] {
        [
            (self.log.clone(), self.log_path.to_path_buf()),
            (self.offset_index.file().clone(), self.offset_index.path().to_path_buf()),
            (self.time_index.file().clone(), self.time_index.path().to_path_buf()),
        ]
    }

    /// All files of this segment.
    pub fn paths(&self) -> [PathBuf; 3] {
        [self.log_path.to_path_buf(), self.offset_index.path().to_path_buf(), self.time_index.path().to_path_buf()]
    }
}

/// Whether the page holding `pos` is in the page cache: a one-byte `RWF_NOWAIT` read, which the
/// kernel refuses with EAGAIN instead of going to the disk. Where the file system cannot tell
/// (EOPNOTSUPP), the answer is "cached", the behaviour before this probe existed.
pub fn is_cached(file: &File, pos: u64) -> bool {
    let mut byte = [0u8; 1];
    let mut bufs = [io::IoSliceMut::new(&mut byte)];
    !matches!(
        rustix::io::preadv2(file, &mut bufs, pos, rustix::io::ReadWriteFlags::NOWAIT),
        Err(rustix::io::Errno::AGAIN)
    )
}

/// Reads exactly `len` bytes at `pos` into a fresh buffer without zero-filling it first: the
/// kernel's copy is the only write to the memory. (Zero-filling 1 MiB fetch buffers showed up as
/// a sixth of broker CPU in the W1 profile.)
fn read_at_uninit(file: &File, len: usize, pos: u64) -> std::io::Result<Vec<u8>> {
    let mut v: Vec<u8> = Vec::with_capacity(len);
    while v.len() < len {
        let at = pos + v.len() as u64;
        // Reads into the spare capacity and extends the Vec by what was read; any bytes past
        // `len` (if the allocation is larger) are cut off below.
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut v), at) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    v.truncate(len);
    Ok(v)
}
