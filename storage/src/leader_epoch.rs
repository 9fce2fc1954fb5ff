//! The leader-epoch cache of one partition (Kafka's `LeaderEpochFileCache`): which leader epoch
//! wrote the log from which offset on, as `(epoch, start_offset)` entries increasing in both, and
//! its file `leader-epoch-checkpoint` in the partition dir, in Kafka's format
//! (`0\n<count>\n<epoch> <start offset>\n…`), replaced crash-safely (temp file, fsync, rename,
//! fsync dir).
//!
//! It answers OffsetForLeaderEpoch ([`LeaderEpochCache::end_offset_for`], Kafka's `endOffsetFor`).
//! Entries are added when an append carries a newer epoch (or when the partition's leader takes a
//! new epoch), dropped from the end when the log is truncated below them and moved up when the log
//! start offset passes them. An entry is written to disk before the batch it describes, so after a
//! crash the file may only be ahead of the log, which loading cuts back; a missing or unreadable
//! file is rebuilt from the batches' own partition leader epochs.
//!
//! Not thread-safe: it lives in the partition's log state, under the log's mutex.

use std::io;
use std::path::Path;

use crate::checkpoint::write_atomically;

/// Kafka's `leader-epoch-checkpoint` file name.
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// Kafka's `UNDEFINED_EPOCH` and `UNDEFINED_EPOCH_OFFSET`.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

const VERSION: i32 = 0;

/// Leader epoch `epoch` wrote the log from `start_offset` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The entries of one partition, oldest first; both fields strictly increase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Kafka's `assign`: records that `epoch` starts at `start_offset`, unless that is already
    /// the latest entry (same epoch, no earlier start). Entries that would break monotonicity
    /// (epoch or start offset not below the new one) are dropped first. Negative values are
    /// ignored (batches without a leader epoch). Returns whether anything changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if self.latest().is_some_and(|l| l.epoch == epoch && l.start_offset <= start_offset) {
            return false;
        }
        while self.entries.last().is_some_and(|e| e.epoch >= epoch || e.start_offset >= start_offset) {
            self.entries.pop();
        }
        self.entries.push(EpochEntry { epoch, start_offset });
        true
    }

    /// Kafka's `truncateFromEnd`: the log now ends at `end_offset`; entries starting at or after
    /// it go. Returns whether anything changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        if end_offset >= 0 {
            while self.entries.last().is_some_and(|e| e.start_offset >= end_offset) {
                self.entries.pop();
            }
        }
        before != self.entries.len()
    }

    /// Kafka's `truncateFromStart`: the log now starts at `start_offset`; the entry covering it
    /// is moved up to start there and the ones before it go. Returns whether anything changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let covered = self.entries.iter().take_while(|e| e.start_offset <= start_offset).count();
        if covered == 0 {
            return false;
        }
        let epoch = self.entries[covered - 1].epoch;
        let unchanged = covered == 1 && self.entries[0].start_offset == start_offset;
        self.entries.drain(..covered);
        self.entries.insert(0, EpochEntry { epoch, start_offset });
        !unchanged
    }

    /// Kafka's `endOffsetFor`: for `requested`, the largest epoch at or below it and where that
    /// epoch ends (the start of the next epoch, or `log_end_offset` for the latest); for an epoch
    /// below every entry, `requested` with the first entry's start; for an unknown (newer)
    /// epoch, an empty cache or [`UNDEFINED_EPOCH`], `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest().is_some_and(|l| l.epoch == requested) {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => (floor.epoch, higher.start_offset),
            None => (requested, higher.start_offset),
        }
    }

    /// The file's text (Kafka's `LeaderEpochCheckpointFile` format).
    pub fn format(&self) -> String {
        let mut out = format!("{VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            out.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        out
    }

    /// Parses the file's text; `Err` names the first problem. Entries must increase in epoch and
    /// start offset, as only [`assign`](Self::assign) makes them.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text.lines();
        let version = lines.next().ok_or("missing version line")?;
        if version.trim() != VERSION.to_string() {
            return Err(format!("unsupported version {version:?}"));
        }
        let count: usize =
            lines.next().ok_or("missing count line")?.trim().parse().map_err(|e| format!("bad count: {e}"))?;
        let mut entries: Vec<EpochEntry> = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let line = lines.next().ok_or("fewer entries than the count says")?;
            let mut parts = line.split_whitespace();
            let (Some(epoch), Some(offset), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("malformed entry {line:?}"));
            };
            let epoch: i32 = epoch.parse().map_err(|e| format!("bad epoch in {line:?}: {e}"))?;
            let start_offset: i64 = offset.parse().map_err(|e| format!("bad offset in {line:?}: {e}"))?;
            if epoch < 0
                || start_offset < 0
                || entries.last().is_some_and(|l| l.epoch >= epoch || l.start_offset >= start_offset)
            {
                return Err(format!("entry {line:?} does not follow the previous one"));
            }
            entries.push(EpochEntry { epoch, start_offset });
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return Err("more entries than the count says".to_string());
        }
        Ok(Self { entries })
    }

    /// Reads `dir`'s checkpoint: `Ok(None)` when it is missing or unreadable (the caller rebuilds
    /// it from the log), an error only when the file cannot be read at all.
    pub fn read(dir: &Path) -> io::Result<Option<Self>> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                tracing::warn!(path = %path.display(), "leader epoch checkpoint is not text; rebuilding it");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        match Self::parse(&text) {
            Ok(cache) => Ok(Some(cache)),
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "malformed leader epoch checkpoint; rebuilding it");
                Ok(None)
            }
        }
    }

    /// Replaces `dir`'s checkpoint with the current entries, durably.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        write_atomically(&dir.join(LEADER_EPOCH_CHECKPOINT_FILE), self.format().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::default();
        for &(e, o) in entries {
            assert!(c.assign(e, o));
        }
        c
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries().iter().map(|e| (e.epoch, e.start_offset)).collect()
    }

    #[test]
    fn assign_keeps_epochs_and_offsets_increasing() {
        let mut c = cache(&[(0, 0), (2, 10)]);
        // The same epoch again, later: nothing new.
        assert!(!c.assign(2, 15));
        // Negative epochs (batches without one) are ignored.
        assert!(!c.assign(-1, 20));
        assert!(c.assign(5, 20));
        assert_eq!(pairs(&c), vec![(0, 0), (2, 10), (5, 20)]);
        // An older epoch at a later offset replaces the entries it contradicts (a follower's
        // divergence), as Kafka's maybeTruncateNonMonotonicEntries.
        assert!(c.assign(3, 25));
        assert_eq!(pairs(&c), vec![(0, 0), (2, 10), (3, 25)]);
        // A newer epoch starting at an offset an entry already starts at replaces that entry.
        assert!(c.assign(4, 25));
        assert_eq!(pairs(&c), vec![(0, 0), (2, 10), (4, 25)]);
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let empty = LeaderEpochCache::default();
        assert_eq!(empty.end_offset_for(0, 10), (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET));
        let c = cache(&[(1, 5), (3, 10), (6, 20)]);
        let leo = 30;
        // The latest epoch ends at the log end.
        assert_eq!(c.end_offset_for(6, leo), (6, 30));
        // An epoch in the cache ends where the next one starts.
        assert_eq!(c.end_offset_for(3, leo), (3, 20));
        assert_eq!(c.end_offset_for(1, leo), (1, 10));
        // An epoch between entries: the largest epoch below it, ending where the next starts.
        assert_eq!(c.end_offset_for(2, leo), (1, 10));
        assert_eq!(c.end_offset_for(5, leo), (3, 20));
        // Below every entry: the requested epoch, ending where the first entry starts.
        assert_eq!(c.end_offset_for(0, leo), (0, 5));
        // Newer than every entry, or undefined: unknown.
        assert_eq!(c.end_offset_for(7, leo), (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET));
        assert_eq!(c.end_offset_for(UNDEFINED_EPOCH, leo), (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET));
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(0, 0), (1, 10), (2, 20)]);
        assert!(!c.truncate_from_end(25));
        assert!(c.truncate_from_end(20));
        assert_eq!(pairs(&c), vec![(0, 0), (1, 10)]);
        assert!(!c.truncate_from_start(0));
        // Kafka's truncateFromStart is inclusive of the new start: epoch 1 now starts at 12.
        assert!(c.truncate_from_start(12));
        assert_eq!(pairs(&c), vec![(1, 12)]);
        assert!(!c.truncate_from_start(12));
        assert!(c.truncate_from_start(15));
        assert_eq!(pairs(&c), vec![(1, 15)]);
        assert!(c.truncate_from_end(15));
        assert!(c.entries().is_empty());
    }

    #[test]
    fn checkpoint_round_trip_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(LeaderEpochCache::read(dir.path()).unwrap(), None);
        let c = cache(&[(0, 0), (4, 17)]);
        c.write(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n4 17\n");
        assert_eq!(LeaderEpochCache::read(dir.path()).unwrap(), Some(c));
        // No temp file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        for bad in ["", "1\n0\n", "0\n2\n0 0\n", "0\n1\n0\n", "0\n2\n3 5\n2 9\n", "0\n1\nx 1\n", "0\n1\n0 0\n1 1\n"] {
            std::fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE), bad).unwrap();
            assert_eq!(LeaderEpochCache::read(dir.path()).unwrap(), None, "{bad:?}");
        }
        std::fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE), [0xff, 0xfe, 0x00]).unwrap();
        assert_eq!(LeaderEpochCache::read(dir.path()).unwrap(), None);
    }
}
