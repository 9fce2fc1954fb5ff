//! Sparse per-segment indexes in Kafka's file formats:
//! - [`OffsetIndex`] (`.index`): 8-byte entries, relative offset u32 BE + file position u32 BE,
//!   mapping the last offset of a batch to the position where that batch starts;
//! - [`TimeIndex`] (`.timeindex`): 12-byte entries, timestamp i64 BE + relative offset u32 BE,
//!   the largest timestamp seen so far and the (last) offset of the batch that carried it.
//!
//! Kafka mmaps preallocated index files; we cannot (no `unsafe`), so the entries live in a `Vec`
//! and new ones are appended to the file with positional writes ("pending" until written). The
//! file therefore never has a preallocated tail to trim.
//!
//! The entry codecs and [`parse_offset_index`]/[`parse_time_index`] are the one reader of these
//! formats: the remote tier parses the copies it fetched from the object store with them.
//!
//! Invariants: entries are strictly increasing by offset (offset index) and by timestamp with
//! non-decreasing offsets (time index); `persisted <= entries.len()`. Not thread-safe on its own:
//! an index belongs to a segment, which is only touched under its partition's lock.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::limits::{OFFSET_ENTRY_SIZE, TIME_ENTRY_SIZE};

/// One offset index entry, made absolute: the batch whose last offset is `offset` starts at
/// `position` in the segment's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    pub offset: i64,
    pub position: u64,
}

/// One time index entry, made absolute: the largest timestamp up to `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeIndexEntry {
    pub timestamp: i64,
    pub offset: i64,
}

/// An offset index entry as stored: `(relative offset, position)`.
fn decode_offset_entry(e: &[u8]) -> (u32, u32) {
    let be = |at: usize| e.get(at..at + 4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_be_bytes);
    (be(0), be(4))
}

/// A time index entry as stored: `(timestamp, relative offset)`.
fn decode_time_entry(e: &[u8]) -> (i64, u32) {
    let ts = e.get(0..8).and_then(|b| b.try_into().ok()).map_or(0, i64::from_be_bytes);
    let rel = e.get(8..12).and_then(|b| b.try_into().ok()).map_or(0, u32::from_be_bytes);
    (ts, rel)
}

/// The entries of an offset index file of the segment starting at `base_offset`, read leniently
/// (the way a copy fetched from the remote tier is read): a preallocated zero tail or anything
/// not strictly increasing ends the index, and a partial trailing entry is ignored.
pub fn parse_offset_index(base_offset: i64, bytes: &[u8]) -> Vec<OffsetPosition> {
    let mut entries: Vec<OffsetPosition> = Vec::with_capacity(bytes.len() / OFFSET_ENTRY_SIZE);
    for e in bytes.chunks_exact(OFFSET_ENTRY_SIZE) {
        let (rel, pos) = decode_offset_entry(e);
        let entry = OffsetPosition { offset: base_offset + i64::from(rel), position: u64::from(pos) };
        if entries.last().is_some_and(|last| entry.offset <= last.offset || entry.position <= last.position) {
            break;
        }
        entries.push(entry);
    }
    entries
}

/// The entries of a time index file of the segment starting at `base_offset`, read leniently:
/// a zero tail or anything not increasing ends it.
pub fn parse_time_index(base_offset: i64, bytes: &[u8]) -> Vec<TimeIndexEntry> {
    let mut entries: Vec<TimeIndexEntry> = Vec::with_capacity(bytes.len() / TIME_ENTRY_SIZE);
    for e in bytes.chunks_exact(TIME_ENTRY_SIZE) {
        let (timestamp, rel) = decode_time_entry(e);
        let entry = TimeIndexEntry { timestamp, offset: base_offset + i64::from(rel) };
        if entries.last().is_some_and(|last| entry.timestamp <= last.timestamp || entry.offset < last.offset) {
            break;
        }
        entries.push(entry);
    }
    entries
}

/// Opens (creating if missing) an index file for positional reads and writes.
fn open_index_file(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
}

/// Why a loaded index cannot be trusted (the caller rebuilds it from the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexProblem(pub String);

/// An offset index: see the module docs.
#[derive(Debug)]
pub struct OffsetIndex {
    base_offset: i64,
    path: PathBuf,
    file: Arc<File>,
    /// `(relative offset, position)`.
    entries: Vec<(u32, u32)>,
    persisted: usize,
    max_entries: usize,
}

impl OffsetIndex {
    /// Creates an empty index file (truncating any stale one).
    pub fn create(path: &Path, base_offset: i64, max_index_bytes: u64) -> io::Result<Self> {
        let file = open_index_file(path)?;
        file.set_len(0)?;
        Ok(Self::from_parts(path, base_offset, max_index_bytes, file, Vec::new()))
    }

    fn from_parts(path: &Path, base_offset: i64, max_index_bytes: u64, file: File, entries: Vec<(u32, u32)>) -> Self {
        let persisted = entries.len();
        Self {
            base_offset,
            path: path.to_path_buf(),
            file: Arc::new(file),
            entries,
            persisted,
            max_entries: max_entries(max_index_bytes, OFFSET_ENTRY_SIZE),
        }
    }

    /// Loads an existing index. `Ok(Err(problem))` when the file exists but is inconsistent
    /// (size not a multiple of 8, offsets not increasing, positions past `log_size`); a missing
    /// file is a problem too, so the caller rebuilds it.
    pub fn load(
        path: &Path,
        base_offset: i64,
        max_index_bytes: u64,
        log_size: u64,
    ) -> io::Result<std::result::Result<Self, IndexProblem>> {
        if !path.exists() {
            return Ok(Err(IndexProblem("offset index missing".into())));
        }
        let bytes = std::fs::read(path)?;
        if bytes.len() % OFFSET_ENTRY_SIZE != 0 {
            return Ok(Err(IndexProblem(format!("offset index size {} is not a multiple of 8", bytes.len()))));
        }
        let mut entries = Vec::with_capacity(bytes.len() / OFFSET_ENTRY_SIZE);
        for chunk in bytes.chunks_exact(OFFSET_ENTRY_SIZE) {
            let (rel, pos) = decode_offset_entry(chunk);
            if let Some(&(last_rel, last_pos)) = entries.last() {
                if rel <= last_rel || pos <= last_pos {
                    return Ok(Err(IndexProblem(format!(
                        "offset index entries not increasing at relative offset {rel}"
                    ))));
                }
            }
            if u64::from(pos) >= log_size {
                return Ok(Err(IndexProblem(format!("offset index position {pos} past log size {log_size}"))));
            }
            entries.push((rel, pos));
        }
        let file = open_index_file(path)?;
        Ok(Ok(Self::from_parts(path, base_offset, max_index_bytes, file, entries)))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records that the file was renamed (the open handle is unaffected by a rename).
    pub fn set_path(&mut self, path: PathBuf) {
        self.path = path;
    }

    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// Bytes the index occupies once pending entries are written.
    pub fn size_bytes(&self) -> u64 {
        (self.entries.len() * OFFSET_ENTRY_SIZE) as u64
    }

    /// The last entry as `(absolute offset, position)`.
    pub fn last_entry(&self) -> Option<(i64, u64)> {
        self.entries.last().map(|&(rel, pos)| (self.base_offset + i64::from(rel), u64::from(pos)))
    }

    /// Adds an entry in memory; ignored unless `offset` is above the last entry (entries must
    /// stay strictly increasing for binary search) and representable as a relative offset.
    pub fn append(&mut self, offset: i64, position: u64) {
        let Ok(rel) = u32::try_from(offset - self.base_offset) else { return };
        let Ok(pos) = u32::try_from(position) else { return };
        if self.entries.last().is_some_and(|&(last, _)| rel <= last) {
            return;
        }
        self.entries.push((rel, pos));
    }

    /// The largest entry with offset `<= target` as `(offset, position)`, or `(base_offset, 0)`.
    pub fn lookup(&self, target: i64) -> (i64, u64) {
        let rel = target - self.base_offset;
        if rel < 0 {
            return (self.base_offset, 0);
        }
        let rel = u32::try_from(rel).unwrap_or(u32::MAX);
        let n = self.entries.partition_point(|&(r, _)| r <= rel);
        match n.checked_sub(1).map(|i| self.entries[i]) {
            Some((r, pos)) => (self.base_offset + i64::from(r), u64::from(pos)),
            None => (self.base_offset, 0),
        }
    }

    /// Writes entries not yet in the file.
    pub fn write_pending(&mut self) -> io::Result<()> {
        if self.persisted == self.entries.len() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity((self.entries.len() - self.persisted) * OFFSET_ENTRY_SIZE);
        for &(rel, pos) in &self.entries[self.persisted..] {
            buf.extend_from_slice(&rel.to_be_bytes());
            buf.extend_from_slice(&pos.to_be_bytes());
        }
        self.file.write_all_at(&buf, (self.persisted * OFFSET_ENTRY_SIZE) as u64)?;
        self.persisted = self.entries.len();
        Ok(())
    }

    /// Drops every entry (memory and file), before a rebuild.
    pub fn reset(&mut self) -> io::Result<()> {
        self.entries.clear();
        self.persisted = 0;
        self.file.set_len(0)
    }
}

/// A time index: see the module docs.
#[derive(Debug)]
pub struct TimeIndex {
    base_offset: i64,
    path: PathBuf,
    file: Arc<File>,
    /// `(timestamp, relative offset)`.
    entries: Vec<(i64, u32)>,
    persisted: usize,
    max_entries: usize,
}

impl TimeIndex {
    pub fn create(path: &Path, base_offset: i64, max_index_bytes: u64) -> io::Result<Self> {
        let file = open_index_file(path)?;
        file.set_len(0)?;
        Ok(Self::from_parts(path, base_offset, max_index_bytes, file, Vec::new()))
    }

    fn from_parts(path: &Path, base_offset: i64, max_index_bytes: u64, file: File, entries: Vec<(i64, u32)>) -> Self {
        let persisted = entries.len();
        Self {
            base_offset,
            path: path.to_path_buf(),
            file: Arc::new(file),
            entries,
            persisted,
            max_entries: max_entries(max_index_bytes, TIME_ENTRY_SIZE),
        }
    }

    /// Loads an existing time index; `Ok(Err(_))` when missing or inconsistent (size not a
    /// multiple of 12, timestamps not increasing, offsets decreasing).
    pub fn load(
        path: &Path,
        base_offset: i64,
        max_index_bytes: u64,
    ) -> io::Result<std::result::Result<Self, IndexProblem>> {
        if !path.exists() {
            return Ok(Err(IndexProblem("time index missing".into())));
        }
        let bytes = std::fs::read(path)?;
        if bytes.len() % TIME_ENTRY_SIZE != 0 {
            return Ok(Err(IndexProblem(format!("time index size {} is not a multiple of 12", bytes.len()))));
        }
        let mut entries: Vec<(i64, u32)> = Vec::with_capacity(bytes.len() / TIME_ENTRY_SIZE);
        for chunk in bytes.chunks_exact(TIME_ENTRY_SIZE) {
            let (ts, rel) = decode_time_entry(chunk);
            if let Some(&(last_ts, last_rel)) = entries.last() {
                if ts <= last_ts || rel < last_rel {
                    return Ok(Err(IndexProblem(format!("time index entries not increasing at timestamp {ts}"))));
                }
            }
            entries.push((ts, rel));
        }
        let file = open_index_file(path)?;
        Ok(Ok(Self::from_parts(path, base_offset, max_index_bytes, file, entries)))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records that the file was renamed (the open handle is unaffected by a rename).
    pub fn set_path(&mut self, path: PathBuf) {
        self.path = path;
    }

    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// The last entry as `(timestamp, absolute offset)`.
    pub fn last_entry(&self) -> Option<(i64, i64)> {
        self.entries.last().map(|&(ts, rel)| (ts, self.base_offset + i64::from(rel)))
    }

    /// Adds `(timestamp, offset)` if the timestamp is above the last entry's (Kafka's
    /// `maybeAppend`). Callers check `is_full` first except for the final entry on roll/close.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) {
        let Ok(rel) = u32::try_from(offset - self.base_offset) else { return };
        if let Some(&(last_ts, last_rel)) = self.entries.last() {
            if timestamp <= last_ts || rel < last_rel {
                return;
            }
        }
        self.entries.push((timestamp, rel));
    }

    /// The largest entry with timestamp `<= target` as `(timestamp, offset)`, or
    /// `(-1, base_offset)` when there is none.
    pub fn lookup(&self, target: i64) -> (i64, i64) {
        let n = self.entries.partition_point(|&(ts, _)| ts <= target);
        match n.checked_sub(1).map(|i| self.entries[i]) {
            Some((ts, rel)) => (ts, self.base_offset + i64::from(rel)),
            None => (-1, self.base_offset),
        }
    }

    pub fn write_pending(&mut self) -> io::Result<()> {
        if self.persisted == self.entries.len() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity((self.entries.len() - self.persisted) * TIME_ENTRY_SIZE);
        for &(ts, rel) in &self.entries[self.persisted..] {
            buf.extend_from_slice(&ts.to_be_bytes());
            buf.extend_from_slice(&rel.to_be_bytes());
        }
        self.file.write_all_at(&buf, (self.persisted * TIME_ENTRY_SIZE) as u64)?;
        self.persisted = self.entries.len();
        Ok(())
    }

    pub fn reset(&mut self) -> io::Result<()> {
        self.entries.clear();
        self.persisted = 0;
        self.file.set_len(0)
    }
}

/// Kafka sizes indexes by `segment.index.bytes` rounded down to whole entries; at least one entry
/// so a tiny setting still lets a segment hold data.
fn max_entries(max_index_bytes: u64, entry_size: usize) -> usize {
    usize::try_from(max_index_bytes / entry_size as u64).unwrap_or(usize::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_parsers_stop_at_a_zero_tail_and_make_entries_absolute() {
        let mut offsets = Vec::new();
        for (rel, pos) in [(0u32, 0u32), (10, 500), (20, 1000), (0, 0), (30, 1500)] {
            offsets.extend_from_slice(&rel.to_be_bytes());
            offsets.extend_from_slice(&pos.to_be_bytes());
        }
        offsets.push(7); // A partial trailing entry.
        let parsed = parse_offset_index(100, &offsets);
        assert_eq!(
            parsed,
            vec![
                OffsetPosition { offset: 100, position: 0 },
                OffsetPosition { offset: 110, position: 500 },
                OffsetPosition { offset: 120, position: 1000 },
            ]
        );
        let mut times = Vec::new();
        for (ts, rel) in [(1000i64, 5u32), (2000, 20), (0, 0)] {
            times.extend_from_slice(&ts.to_be_bytes());
            times.extend_from_slice(&rel.to_be_bytes());
        }
        assert_eq!(
            parse_time_index(50, &times),
            vec![TimeIndexEntry { timestamp: 1000, offset: 55 }, TimeIndexEntry { timestamp: 2000, offset: 70 }]
        );
    }

    #[test]
    fn offset_index_lookup_finds_largest_entry_at_or_below() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        let mut idx = OffsetIndex::create(&path, 100, 1024).unwrap();
        assert_eq!(idx.lookup(150), (100, 0));
        idx.append(110, 500);
        idx.append(120, 1000);
        idx.append(130, 1500);
        idx.append(125, 1700); // not increasing: ignored
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.lookup(99), (100, 0));
        assert_eq!(idx.lookup(100), (100, 0));
        assert_eq!(idx.lookup(109), (100, 0));
        assert_eq!(idx.lookup(110), (110, 500));
        assert_eq!(idx.lookup(119), (110, 500));
        assert_eq!(idx.lookup(120), (120, 1000));
        assert_eq!(idx.lookup(10_000), (130, 1500));
        assert_eq!(idx.last_entry(), Some((130, 1500)));

        idx.write_pending().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[..8], &[0, 0, 0, 10, 0, 0, 1, 0xf4]);

        let loaded = OffsetIndex::load(&path, 100, 1024, 2000).unwrap().unwrap();
        assert_eq!(loaded.lookup(125), (120, 1000));
        assert_eq!(loaded.len(), 3);
        // A position at or past the log end means the index is stale.
        assert!(OffsetIndex::load(&path, 100, 1024, 1500).unwrap().is_err());
    }

    #[test]
    fn offset_index_detects_corruption_and_fullness() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        std::fs::write(&path, [0u8; 7]).unwrap();
        assert!(OffsetIndex::load(&path, 0, 1024, 100).unwrap().is_err());
        let mut bad = Vec::new();
        for (rel, pos) in [(5u32, 10u32), (3, 20)] {
            bad.extend_from_slice(&rel.to_be_bytes());
            bad.extend_from_slice(&pos.to_be_bytes());
        }
        std::fs::write(&path, &bad).unwrap();
        assert!(OffsetIndex::load(&path, 0, 1024, 100).unwrap().is_err());
        assert!(OffsetIndex::load(&dir.path().join("missing.index"), 0, 1024, 100).unwrap().is_err());

        let mut idx = OffsetIndex::create(&path, 0, 16).unwrap();
        assert!(!idx.is_full());
        idx.append(1, 10);
        idx.append(2, 20);
        assert!(idx.is_full());
        idx.reset().unwrap();
        assert!(idx.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn time_index_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000050.timeindex");
        let mut idx = TimeIndex::create(&path, 50, 1200).unwrap();
        assert_eq!(idx.lookup(1000), (-1, 50));
        idx.maybe_append(1000, 55);
        idx.maybe_append(1000, 60); // same timestamp: skipped
        idx.maybe_append(2000, 70);
        idx.maybe_append(1500, 80); // older timestamp: skipped
        idx.maybe_append(3000, 90);
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.lookup(999), (-1, 50));
        assert_eq!(idx.lookup(1000), (1000, 55));
        assert_eq!(idx.lookup(1999), (1000, 55));
        assert_eq!(idx.lookup(2500), (2000, 70));
        assert_eq!(idx.lookup(i64::MAX), (3000, 90));
        assert_eq!(idx.last_entry(), Some((3000, 90)));
        idx.write_pending().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 36);
        let loaded = TimeIndex::load(&path, 50, 1200).unwrap().unwrap();
        assert_eq!(loaded.lookup(2500), (2000, 70));
        std::fs::write(&path, [1u8; 13]).unwrap();
        assert!(TimeIndex::load(&path, 50, 1200).unwrap().is_err());
    }
}
