//! Small durable files: the per-dir offset checkpoints (`recovery-point-offset-checkpoint`,
//! `log-start-offset-checkpoint`, `replication-offset-checkpoint`) in Kafka's text format
//! (`0\n<count>\n<topic> <partition> <offset>\n…`), the per-partition `partition.metadata`, and
//! the crash-safe write they all share (tmp file, fsync, rename, fsync dir).
//!
//! Invariant: a reader sees either the old or the new content, never a torn file. Functions are
//! stateless; callers serialize writers of the same file (the log manager holds a per-dir lock).

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::layout::{decode_topic_id, encode_topic_id};
use crate::TopicPartition;

const CHECKPOINT_VERSION: i32 = 0;

/// fsyncs a directory so renames and file creations inside it survive a crash.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    crate::io::sync_dir(dir)
}

/// Replaces `path` with `contents` atomically and durably.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(tmp)?;
        f.write_all(contents)?;
        crate::io::sync_all(&f)?;
    }
    fs::rename(tmp, path)?;
    match path.parent() {
        Some(parent) => fsync_dir(parent),
        None => Ok(()),
    }
}

/// Kafka's offset checkpoint text for the given entries.
pub fn format_offset_checkpoint(entries: &BTreeMap<TopicPartition, i64>) -> String {
    let mut out = format!("{CHECKPOINT_VERSION}\n{}\n", entries.len());
    for (tp, offset) in entries {
        out.push_str(&format!("{} {} {offset}\n", tp.topic, tp.partition));
    }
    out
}

/// Parses Kafka's offset checkpoint text; `Err` describes the first problem.
pub fn parse_offset_checkpoint(text: &str) -> Result<BTreeMap<TopicPartition, i64>, String> {
    let mut lines = text.lines();
    let version = lines.next().ok_or("missing version line")?;
    if version.trim() != CHECKPOINT_VERSION.to_string() {
        return Err(format!("unsupported checkpoint version {version:?}"));
    }
    let count: usize =
        lines.next().ok_or("missing count line")?.trim().parse().map_err(|e| format!("bad count: {e}"))?;
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let line = lines.next().ok_or("fewer entries than the count says")?;
        let mut parts = line.split(' ');
        let (Some(topic), Some(partition), Some(offset), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("malformed entry {line:?}"));
        };
        let partition: i32 = partition.parse().map_err(|e| format!("bad partition in {line:?}: {e}"))?;
        let offset: i64 = offset.parse().map_err(|e| format!("bad offset in {line:?}: {e}"))?;
        out.insert(TopicPartition { topic: topic.to_string(), partition }, offset);
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err("more entries than the count says".to_string());
    }
    Ok(out)
}

pub fn write_offset_checkpoint(path: &Path, entries: &BTreeMap<TopicPartition, i64>) -> io::Result<()> {
    write_atomically(path, format_offset_checkpoint(entries).as_bytes())
}

/// Reads a checkpoint. A missing file is `Ok(None)`; a malformed one is logged and also treated
/// as missing, which is safe: recovery then scans everything and log start falls back to the
/// first segment.
pub fn read_offset_checkpoint(path: &Path) -> io::Result<Option<BTreeMap<TopicPartition, i64>>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => String::new(),
        Err(e) => return Err(e),
    };
    match parse_offset_checkpoint(&text) {
        Ok(entries) => Ok(Some(entries)),
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason, "ignoring malformed offset checkpoint");
            Ok(None)
        }
    }
}

/// `partition.metadata` content, Kafka's format.
pub fn format_partition_metadata(topic_id: &[u8; 16]) -> String {
    format!("version: 0\ntopic_id: {}", encode_topic_id(topic_id))
}

/// Reads the topic id from `partition.metadata`; `None` when missing or unreadable (Kafka
/// regenerates it from metadata in that case, so it never blocks loading).
pub fn read_partition_metadata(path: &Path) -> io::Result<Option<[u8; 16]>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::InvalidData => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut version_ok = false;
    let mut id = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("version:") {
            version_ok = v.trim() == "0";
        } else if let Some(v) = line.strip_prefix("topic_id:") {
            id = decode_topic_id(v);
        }
    }
    if !version_ok || id.is_none() {
        tracing::warn!(path = %path.display(), "ignoring malformed partition metadata");
        return Ok(None);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition { topic: t.into(), partition: p }
    }

    #[test]
    fn checkpoint_round_trip_in_kafka_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recovery-point-offset-checkpoint");
        let mut entries = BTreeMap::new();
        entries.insert(tp("a-b", 0), 42);
        entries.insert(tp("a-b", 1), 0);
        entries.insert(tp("z.y_x", 7), 1234567890123);
        write_offset_checkpoint(&path, &entries).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, "0\n3\na-b 0 42\na-b 1 0\nz.y_x 7 1234567890123\n");
        assert_eq!(read_offset_checkpoint(&path).unwrap(), Some(entries));
        // No temp file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn empty_missing_and_malformed_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        assert_eq!(read_offset_checkpoint(&path).unwrap(), None);
        write_offset_checkpoint(&path, &BTreeMap::new()).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "0\n0\n");
        assert_eq!(read_offset_checkpoint(&path).unwrap(), Some(BTreeMap::new()));
        for bad in ["", "1\n0\n", "0\n2\nt 0 1\n", "0\n1\nt x 1\n", "0\n1\nt 0 1\nu 0 2\n", "0\n1\nt 0\n"] {
            assert!(parse_offset_checkpoint(bad).is_err(), "{bad:?}");
            fs::write(&path, bad).unwrap();
            assert_eq!(read_offset_checkpoint(&path).unwrap(), None);
        }
    }

    #[test]
    fn partition_metadata_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partition.metadata");
        let id = [7u8; 16];
        write_atomically(&path, format_partition_metadata(&id).as_bytes()).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("version: 0\ntopic_id: "));
        assert_eq!(read_partition_metadata(&path).unwrap(), Some(id));
        fs::write(&path, "version: 1\ntopic_id: x").unwrap();
        assert_eq!(read_partition_metadata(&path).unwrap(), None);
    }
}
