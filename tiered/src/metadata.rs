//! [`RemoteLogMetadataFile`]: the durable list of one partition's remote segments
//! (`<partition dir>/remote-log-segments.json`), Sluice's `RemoteLogMetadataManager`: the segment
//! list and the log start offset DeleteRecords set, below which nothing is read and whole
//! segments are deleted.
//!
//! Invariants: a segment appears as `CopySegmentFinished` only after every one of its objects is
//! uploaded (the file is replaced atomically, so a crash leaves either the old or the new list);
//! a segment marked `DeleteSegmentStarted` is never read and its objects are deleted before it
//! leaves the list.
//!
//! Thread-safety: a plain value; the file is written by one task per partition (the remote log
//! manager's, under the partition's commit lock).

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_storage::checkpoint::write_atomically;
use sluice_storage::remote::{RemoteLogSegmentMetadata, RemoteSegmentState, RemoteStorageError};
use sluice_storage::UnifiedLog;

/// File name of the per-partition remote segment list.
pub const REMOTE_LOG_METADATA_FILE: &str = "remote-log-segments.json";

/// Whether a partition's data may be in the remote tier: its topic is tiered, or was (its remote
/// segment list is still there).
pub fn may_be_tiered(p: &UnifiedLog) -> bool {
    p.config().remote_storage_enable || RemoteLogMetadataFile::path(&p.dir()).exists()
}

/// The durable list of a partition's remote segments (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteLogMetadataFile {
    /// Sorted by base offset.
    pub segments: Vec<RemoteLogSegmentMetadata>,
    /// The log start offset DeleteRecords set (0 when never moved): offsets below it are gone
    /// even where a remote segment still holds them, and segments wholly below it are deleted by
    /// the remote log manager (at its next round, or after a restart).
    #[serde(default)]
    pub log_start_offset_floor: i64,
}

impl RemoteLogMetadataFile {
    pub fn path(partition_dir: &Path) -> PathBuf {
        partition_dir.join(REMOTE_LOG_METADATA_FILE)
    }

    /// Loads the file; `None` when there is none (a new partition, or one to rebuild from the
    /// store). A torn or unparsable file is an error.
    pub fn load(partition_dir: &Path) -> Result<Option<Self>, RemoteStorageError> {
        let path = Self::path(partition_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| RemoteStorageError::Io { path, source: io::Error::new(io::ErrorKind::InvalidData, e) }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(RemoteStorageError::Io { path, source }),
        }
    }

    /// Replaces the file atomically and durably.
    pub fn store(&self, partition_dir: &Path) -> Result<(), RemoteStorageError> {
        let path = Self::path(partition_dir);
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| RemoteStorageError::Io { path: path.clone(), source: io::Error::other(e) })?;
        write_atomically(&path, &json).map_err(|source| RemoteStorageError::Io { path, source })
    }

    /// Committed (readable) segments, oldest first.
    pub fn committed(&self) -> impl Iterator<Item = &RemoteLogSegmentMetadata> {
        self.segments.iter().filter(|s| s.state == RemoteSegmentState::CopySegmentFinished)
    }

    /// Last offset held remotely, or -1.
    pub fn highest_offset(&self) -> i64 {
        self.committed().map(|s| s.end_offset).max().unwrap_or(-1)
    }

    /// First offset held remotely and not deleted by DeleteRecords, if any.
    pub fn log_start_offset(&self) -> Option<i64> {
        self.readable().map(|s| s.base_offset.max(self.log_start_offset_floor)).min()
    }

    /// Committed segments holding data at or above the floor, oldest first.
    pub fn readable(&self) -> impl Iterator<Item = &RemoteLogSegmentMetadata> {
        self.committed().filter(|s| s.end_offset >= self.log_start_offset_floor)
    }

    /// Committed segments wholly below the floor: to delete.
    pub fn below_floor(&self) -> impl Iterator<Item = &RemoteLogSegmentMetadata> {
        self.committed().filter(|s| s.end_offset < self.log_start_offset_floor)
    }

    /// Total bytes held remotely.
    pub fn size_bytes(&self) -> u64 {
        self.committed().map(|s| s.size_bytes).sum()
    }

    /// The committed segment holding `offset` (none below the floor).
    pub fn segment_for(&self, offset: i64) -> Option<&RemoteLogSegmentMetadata> {
        if offset < self.log_start_offset_floor {
            return None;
        }
        self.committed().find(|s| s.base_offset <= offset && offset <= s.end_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(base: i64, end: i64, state: RemoteSegmentState) -> RemoteLogSegmentMetadata {
        RemoteLogSegmentMetadata {
            topic_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            partition: 3,
            base_offset: base,
            end_offset: end,
            max_timestamp: 1,
            size_bytes: 10,
            segment_id: "0123456789abcdef0123456789abcdef".into(),
            state,
            has_producer_snapshot: false,
            has_transaction_index: false,
        }
    }

    #[test]
    fn metadata_file_round_trips_and_only_committed_segments_count() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RemoteLogMetadataFile::load(dir.path()).unwrap(), None);
        let file = RemoteLogMetadataFile {
            segments: vec![
                meta(0, 9, RemoteSegmentState::DeleteSegmentStarted),
                meta(10, 19, RemoteSegmentState::CopySegmentFinished),
                meta(20, 29, RemoteSegmentState::CopySegmentStarted),
            ],
            log_start_offset_floor: 0,
        };
        file.store(dir.path()).unwrap();
        let loaded = RemoteLogMetadataFile::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded, file);
        assert_eq!(loaded.highest_offset(), 19);
        assert_eq!(loaded.log_start_offset(), Some(10));
        assert_eq!(loaded.segment_for(15).map(|s| s.base_offset), Some(10));
        assert!(loaded.segment_for(5).is_none());
        assert!(loaded.segment_for(25).is_none());
        assert_eq!(
            meta(10, 19, RemoteSegmentState::CopySegmentFinished).key_stem(),
            "AAAAAAAAAAAAAAAAAAAAAA/3/00000000000000000010-0123456789abcdef0123456789abcdef"
        );
    }

    #[test]
    fn the_delete_records_floor_hides_and_dooms_segments_below_it() {
        let mut file = RemoteLogMetadataFile {
            segments: vec![
                meta(0, 9, RemoteSegmentState::CopySegmentFinished),
                meta(10, 19, RemoteSegmentState::CopySegmentFinished),
                meta(20, 29, RemoteSegmentState::CopySegmentFinished),
            ],
            log_start_offset_floor: 0,
        };
        assert_eq!(file.log_start_offset(), Some(0));
        file.log_start_offset_floor = 15;
        assert_eq!(file.log_start_offset(), Some(15));
        assert_eq!(file.below_floor().map(|s| s.base_offset).collect::<Vec<_>>(), vec![0]);
        assert_eq!(file.readable().map(|s| s.base_offset).collect::<Vec<_>>(), vec![10, 20]);
        assert!(file.segment_for(12).is_none(), "below the floor");
        assert_eq!(file.segment_for(15).map(|s| s.base_offset), Some(10));
        file.log_start_offset_floor = 30;
        assert_eq!(file.log_start_offset(), None);
        assert_eq!(file.below_floor().count(), 3);
        // Files written before the floor existed load with floor 0.
        let old = br#"{"segments":[]}"#;
        assert_eq!(serde_json::from_slice::<RemoteLogMetadataFile>(old).unwrap().log_start_offset_floor, 0);
    }
}
