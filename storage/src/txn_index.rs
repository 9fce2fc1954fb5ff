//! The aborted-transaction index of one partition (Kafka's `TransactionIndex`): for every
//! transaction aborted in this log, the producer id, the offsets of its first record and of its
//! ABORT marker, and the last stable offset right after the abort. `read_committed` fetches
//! send the entries overlapping the data they return, so consumers drop aborted records; the
//! cleaner uses them to remove aborted data.
//!
//! On disk: `<base>.txnindex` files of 34-byte entries (Kafka's layout: `i16 version = 0`, `i64
//! producer id`, `i64 first offset`, `i64 last offset`, `i64 last stable offset`). An entry goes
//! into the file named after the active segment's base offset when its marker is appended. A file
//! belongs to the segment containing its base offset (not necessarily one with the same base:
//! the cleaner merges segments and leaves their index files alone), and is deleted with that
//! segment — except on tiered logs, where it stays for remote reads. Files are fsynced with the log ([`TxnIndex::sync`] from the partition's flush).
//!
//! In memory: all entries of the partition, keyed by marker offset (a few dozen bytes per
//! aborted transaction). Loading reads every file; a torn last entry is dropped and entries at
//! or past the log end (a tail recovery cut off) are removed from memory and from the files.
//!
//! Not thread-safe: owned by the partition's `LogState`, under its mutex.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::layout;
use crate::limits::TXN_ENTRY_SIZE as ENTRY_SIZE;

pub const TXN_INDEX_SUFFIX: &str = ".txnindex";

/// One aborted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the ABORT marker.
    pub last_offset: i64,
    /// The partition's last stable offset once this transaction was aborted.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut b = [0u8; ENTRY_SIZE];
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            i64::from_be_bytes(a)
        };
        let version = i16::from_be_bytes([b[0], b[1]]);
        (version == 0).then(|| Self {
            producer_id: at(2),
            first_offset: at(10),
            last_offset: at(18),
            last_stable_offset: at(26),
        })
    }
}

/// `<dir>/<20-digit base>.txnindex`.
pub fn txn_index_file(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{}{TXN_INDEX_SUFFIX}", layout::file_stem(base)))
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct TxnIndex {
    /// By marker offset.
    entries: BTreeMap<i64, AbortedTxn>,
    /// Base offsets of the files on disk.
    files: BTreeSet<i64>,
    /// Files written since the last sync.
    dirty: BTreeSet<i64>,
}

impl TxnIndex {
    /// Reads every `.txnindex` file in `dir`, dropping entries at or past `log_end_offset` and
    /// files below `first_segment_base` (left over by a retention pass a crash interrupted) —
    /// unless `tiered`: a tiered log keeps the index files of segments that live on only in the
    /// remote tier (see [`Self::take_files_below`]).
    pub fn load(dir: &Path, first_segment_base: i64, log_end_offset: i64, tiered: bool) -> io::Result<Self> {
        let mut index = Self::default();
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if let Some(base) =
                entry.file_name().to_str().and_then(|n| layout::parse_segment_file_name(n, TXN_INDEX_SUFFIX))
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        // Entries dropped here must stay dropped: brought back by a crash after the log grew
        // past them again, they would mark new data as aborted.
        let mut changed = false;
        for base in bases {
            let path = txn_index_file(dir, base);
            if base < first_segment_base && !tiered {
                fs::remove_file(&path)?;
                changed = true;
                continue;
            }
            let bytes = fs::read(&path)?;
            let mut kept = Vec::new();
            let mut dropped = bytes.len() % ENTRY_SIZE != 0;
            for chunk in bytes.chunks_exact(ENTRY_SIZE) {
                match AbortedTxn::decode(chunk) {
                    Some(e) if e.last_offset < log_end_offset => kept.push(e),
                    _ => dropped = true,
                }
            }
            if dropped {
                tracing::info!(file = %path.display(), kept = kept.len(), "truncating transaction index");
                rewrite(&path, &kept)?;
                changed = true;
            }
            if kept.is_empty() {
                fs::remove_file(&path)?;
                changed = true;
                continue;
            }
            for e in kept {
                index.entries.insert(e.last_offset, e);
            }
            index.files.insert(base);
        }
        if changed {
            crate::io::sync_dir(dir)?;
        }
        Ok(index)
    }

    /// Records an abort whose marker lies in the segment based at `segment_base`. Entries already
    /// known (log replay at load) are not written again. Returns whether it created the file:
    /// its directory entry then needs an fsync too, or a power loss can take the file whole.
    pub fn append(&mut self, dir: &Path, segment_base: i64, entry: AbortedTxn) -> io::Result<bool> {
        if self.entries.contains_key(&entry.last_offset) {
            return Ok(false);
        }
        let path = txn_index_file(dir, segment_base);
        let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
        f.write_all(&entry.encode())?;
        self.entries.insert(entry.last_offset, entry);
        let created = self.files.insert(segment_base);
        self.dirty.insert(segment_base);
        Ok(created)
    }

    /// The aborted transactions a fetch of `[fetch_offset, upper_bound)` must report (Kafka's
    /// `collectAbortedTxns`): those ending at or after the fetch offset and starting below the
    /// bound. Entries are in marker order, so the scan stops at the first one whose last stable
    /// offset reaches the bound: every later transaction started at or after it.
    pub fn collect(&self, fetch_offset: i64, upper_bound: i64) -> Vec<AbortedTxn> {
        let mut out = Vec::new();
        for e in self.entries.range(fetch_offset..).map(|(_, e)| e) {
            if e.first_offset < upper_bound {
                out.push(*e);
            }
            if e.last_stable_offset >= upper_bound {
                break;
            }
        }
        out
    }

    /// Every entry, in marker order (the cleaner's view).
    pub fn all(&self) -> Vec<AbortedTxn> {
        self.entries.values().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Files of the segments below `first_segment_base`, which retention is deleting: they are
    /// taken out of the index (the caller renames and deletes them with the segments). A
    /// `tiered` log keeps both its entries and its files: the older data is still readable from
    /// the remote tier and read_committed fetches of it need the aborts, also after a restart
    /// (34 bytes per aborted transaction).
    pub fn take_files_below(&mut self, dir: &Path, first_segment_base: i64, tiered: bool) -> Vec<PathBuf> {
        if tiered {
            return Vec::new();
        }
        let below: Vec<i64> = self.files.range(..first_segment_base).copied().collect();
        for b in &below {
            self.files.remove(b);
            self.dirty.remove(b);
        }
        self.entries = self.entries.split_off(&first_segment_base);
        below.into_iter().map(|b| txn_index_file(dir, b)).collect()
    }

    /// Counts the files of segments from `base` on as written since the last sync. Recovery
    /// calls it for the segments it rescans: their files may be in the page cache only (written
    /// before a process crash), and the next flush must make them durable before the recovery
    /// point passes them, since the replay that would rebuild their entries finds them present.
    pub fn mark_unsynced_from(&mut self, base: i64) {
        let unsynced: Vec<i64> = self.files.range(base..).copied().collect();
        self.dirty.extend(unsynced);
    }

    /// Paths of the files written since the last sync; they count as synced once returned.
    pub fn take_dirty(&mut self, dir: &Path) -> Vec<PathBuf> {
        std::mem::take(&mut self.dirty).into_iter().map(|b| txn_index_file(dir, b)).collect()
    }

    /// The file holding entries of the segment `[base, next_base)`, if any (tier uploads).
    pub fn file_for_segment(&self, dir: &Path, base: i64, next_base: i64) -> Option<PathBuf> {
        self.files.range(base..next_base).next().map(|b| txn_index_file(dir, *b))
    }
}

/// fsyncs one index file.
pub fn sync(path: &Path) -> io::Result<()> {
    crate::io::sync_path(path)
}

fn rewrite(path: &Path, entries: &[AbortedTxn]) -> io::Result<()> {
    let tmp = layout::with_suffix(path, ".tmp");
    let mut bytes = Vec::with_capacity(entries.len() * ENTRY_SIZE);
    for e in entries {
        bytes.extend_from_slice(&e.encode());
    }
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    crate::io::sync_data(&f)?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn { producer_id: pid, first_offset: first, last_offset: last, last_stable_offset: lso }
    }

    #[test]
    fn append_collect_reload_and_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TxnIndex::default();
        idx.append(dir.path(), 0, txn(1, 0, 5, 3)).unwrap();
        idx.append(dir.path(), 0, txn(2, 3, 9, 10)).unwrap();
        idx.append(dir.path(), 10, txn(3, 12, 20, 21)).unwrap();
        idx.append(dir.path(), 10, txn(3, 12, 20, 21)).unwrap(); // replayed: not written twice
        assert_eq!(idx.collect(0, 4), vec![txn(1, 0, 5, 3), txn(2, 3, 9, 10)]);
        assert_eq!(idx.collect(6, 11), vec![txn(2, 3, 9, 10)]);
        assert_eq!(idx.collect(10, 30), vec![txn(3, 12, 20, 21)]);
        assert!(idx.collect(21, 30).is_empty());
        assert_eq!(idx.take_dirty(dir.path()).len(), 2);

        // A torn entry and an entry past the log end are dropped at load.
        let mut f = OpenOptions::new().append(true).open(txn_index_file(dir.path(), 10)).unwrap();
        f.write_all(&[0, 0, 1]).unwrap();
        let idx = TxnIndex::load(dir.path(), 0, 15, false).unwrap();
        assert_eq!(idx.all(), vec![txn(1, 0, 5, 3), txn(2, 3, 9, 10)]);
        assert!(!txn_index_file(dir.path(), 10).exists());

        let mut idx = TxnIndex::load(dir.path(), 0, 100, false).unwrap();
        let gone = idx.take_files_below(dir.path(), 8, false);
        assert_eq!(gone, vec![txn_index_file(dir.path(), 0)]);
        assert_eq!(idx.all(), vec![txn(2, 3, 9, 10)]);
        // Files below the first segment are leftovers.
        let idx = TxnIndex::load(dir.path(), 5, 100, true).unwrap();
        assert_eq!(idx.len(), 2, "a tiered log keeps the index of segments that are only remote");
        let mut idx = TxnIndex::load(dir.path(), 5, 100, false).unwrap();
        assert!(idx.is_empty() && !txn_index_file(dir.path(), 0).exists());
        assert!(idx.take_files_below(dir.path(), 50, true).is_empty());
    }
}
