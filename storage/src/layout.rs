//! On-disk names, exactly as Kafka spells them: partition directory names
//! (`<topic>-<partition>`, `<topic>-<partition>.<uuid>-delete` for deletions in progress and
//! `<topic>-<partition>.<uuid>-future` for a replica being moved to another log dir),
//! segment file names (20-digit zero-padded base offset plus `.log`/`.index`/`.timeindex`), the
//! per-dir marker and checkpoint file names, and Kafka's base64url topic-id encoding.
//!
//! Pure functions, no I/O, no state: safe to call from anywhere.

use std::path::{Path, PathBuf};

use crate::TopicPartition;

pub const LOG_SUFFIX: &str = ".log";
pub const INDEX_SUFFIX: &str = ".index";
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// A segment file scheduled for deletion (`file.delete.delay.ms`); removed at startup.
pub const DELETED_SUFFIX: &str = ".deleted";
/// A segment file being written by the cleaner; removed at startup (the swap was not decided).
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// A cleaned segment whose swap was decided; recovery completes the swap (Kafka's LogLoader).
pub const SWAP_SUFFIX: &str = ".swap";
/// Suffixes of files left behind by an interrupted delete or compaction that recovery removes.
/// (`.swap` files are not removed but completed, see [`SWAP_SUFFIX`].)
pub const LEFTOVER_SUFFIXES: [&str; 3] = [DELETED_SUFFIX, CLEANED_SUFFIX, ".tmp"];
/// Sluice's sidecar of a cleaned segment: the offset after the last old segment it replaces, so
/// recovery knows exactly which old segments a `.swap` supersedes even when cleaning dropped the
/// group's last records. Only ever present with a `.cleaned` or `.swap` suffix.
pub const GROUP_END_SUFFIX: &str = ".groupend";
/// Kafka's per-dir checkpoint of each compacted log's first dirty offset.
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";
pub const DELETE_DIR_SUFFIX: &str = "-delete";
/// Kafka's `UnifiedLog.FutureDirSuffix`: the copy of a partition being moved to another log dir
/// (AlterReplicaLogDirs) until it replaces the current one.
pub const FUTURE_DIR_SUFFIX: &str = "-future";
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// Kafka keeps the high watermark per dir in this file (written by its ReplicaManager).
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";

/// Legal topic characters (Kafka's `[a-zA-Z0-9._-]`, at most 249 of them). Checked before a name
/// becomes a path so that no topic can escape its log dir.
pub fn is_legal_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// `<topic>-<partition>`.
pub fn partition_dir_name(tp: &TopicPartition) -> String {
    format!("{}-{}", tp.topic, tp.partition)
}

/// Parses `<topic>-<partition>` by the LAST '-' (topic names may contain '-').
pub fn parse_partition_dir_name(name: &str) -> Option<TopicPartition> {
    let (topic, partition) = name.rsplit_once('-')?;
    if !is_legal_topic(topic) || partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let partition: i32 = partition.parse().ok()?;
    Some(TopicPartition { topic: topic.to_string(), partition })
}

/// `<topic>-<partition>.<32 hex>-delete`: the name a partition dir is renamed to when deleted.
pub fn delete_dir_name(tp: &TopicPartition, unique: u128) -> String {
    format!("{}.{unique:032x}{DELETE_DIR_SUFFIX}", partition_dir_name(tp))
}

pub fn is_delete_dir_name(name: &str) -> bool {
    name.ends_with(DELETE_DIR_SUFFIX) && name.contains('.')
}

/// `<topic>-<partition>.<32 hex>-future` (Kafka's `logFutureDirName`): where a partition's
/// future replica is copied before it replaces the current log.
pub fn future_dir_name(tp: &TopicPartition, unique: u128) -> String {
    format!("{}.{unique:032x}{FUTURE_DIR_SUFFIX}", partition_dir_name(tp))
}

/// The partition of a [`future_dir_name`], `None` for any other name.
pub fn parse_future_dir_name(name: &str) -> Option<TopicPartition> {
    let stem = name.strip_suffix(FUTURE_DIR_SUFFIX)?;
    let (partition_dir, unique) = stem.rsplit_once('.')?;
    if unique.len() != 32 || !unique.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    parse_partition_dir_name(partition_dir)
}

/// Length of a [`future_dir_name`] for `tp`: Kafka refuses to move a partition whose future
/// dir name would pass 255 bytes (the file name limit of most file systems).
pub fn future_dir_name_len(tp: &TopicPartition) -> usize {
    partition_dir_name(tp).len() + 1 + 32 + FUTURE_DIR_SUFFIX.len()
}

/// The 20-digit zero-padded base offset Kafka names segment files by.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

pub fn log_file(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{}{LOG_SUFFIX}", file_stem(base_offset)))
}

pub fn index_file(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{}{INDEX_SUFFIX}", file_stem(base_offset)))
}

pub fn time_index_file(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{}{TIME_INDEX_SUFFIX}", file_stem(base_offset)))
}

pub fn group_end_file(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{}{GROUP_END_SUFFIX}", file_stem(base_offset)))
}

/// `path` with `suffix` appended to its file name (`x.log` + `.swap` = `x.log.swap`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The base offset of a segment file name with the given suffix (`00000000000000000042.log`).
pub fn parse_segment_file_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Kafka's `Uuid.toString()`: base64url without padding (22 characters for 16 bytes).
pub fn encode_topic_id(id: &[u8; 16]) -> String {
    let mut out = String::with_capacity(22);
    for chunk in id.chunks(3) {
        let mut v = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            v |= u32::from(*b) << (16 - 8 * i);
        }
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (v >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(B64URL[idx as usize]));
        }
    }
    out
}

/// Inverse of [`encode_topic_id`]; `None` unless exactly 16 bytes decode.
pub fn decode_topic_id(s: &str) -> Option<[u8; 16]> {
    let s = s.trim();
    if s.len() != 22 {
        return None;
    }
    let mut bits = 0u32;
    let mut nbits = 0u32;
    let mut out = Vec::with_capacity(16);
    for c in s.bytes() {
        let v = B64URL.iter().position(|&x| x == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push(((bits >> nbits) & 0xff) as u8);
        }
    }
    out.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_name_parses_by_last_dash() {
        let tp = parse_partition_dir_name("my-topic.v2_x-12").unwrap();
        assert_eq!(tp.topic, "my-topic.v2_x");
        assert_eq!(tp.partition, 12);
        assert_eq!(partition_dir_name(&tp), "my-topic.v2_x-12");
        assert!(parse_partition_dir_name("topic").is_none());
        assert!(parse_partition_dir_name("topic-").is_none());
        assert!(parse_partition_dir_name("-3").is_none());
        assert!(parse_partition_dir_name("t-x1").is_none());
        // "t--1" is partition 1 of topic "t-", never partition -1.
        assert_eq!(parse_partition_dir_name("t--1").unwrap().topic, "t-");
        assert!(parse_partition_dir_name("t-99999999999").is_none());
        assert!(parse_partition_dir_name("a/b-1").is_none());
    }

    #[test]
    fn delete_dir_names() {
        let tp = TopicPartition { topic: "a-b".into(), partition: 3 };
        let name = delete_dir_name(&tp, 0xabc);
        assert_eq!(name, "a-b-3.00000000000000000000000000000abc-delete");
        assert!(is_delete_dir_name(&name));
        assert!(!is_delete_dir_name("a-b-3"));
        // A delete dir name never parses as a live partition dir.
        assert!(parse_partition_dir_name(&name).is_none());
    }

    #[test]
    fn future_dir_names() {
        let tp = TopicPartition { topic: "a-b.c".into(), partition: 7 };
        let name = future_dir_name(&tp, 0xabc);
        assert_eq!(name, "a-b.c-7.00000000000000000000000000000abc-future");
        assert_eq!(name.len(), future_dir_name_len(&tp));
        assert_eq!(parse_future_dir_name(&name), Some(tp.clone()));
        // Neither a live partition dir nor a deletion.
        assert!(parse_partition_dir_name(&name).is_none());
        assert!(!is_delete_dir_name(&name));
        assert!(parse_future_dir_name("a-b.c-7").is_none());
        assert!(parse_future_dir_name("a-b.c-7.xyz-future").is_none());
        assert!(parse_future_dir_name(&delete_dir_name(&tp, 1)).is_none());
    }

    #[test]
    fn segment_file_names() {
        assert_eq!(file_stem(42), "00000000000000000042");
        assert_eq!(log_file(Path::new("/d"), 7), PathBuf::from("/d/00000000000000000007.log"));
        assert_eq!(parse_segment_file_name("00000000000000000042.log", LOG_SUFFIX), Some(42));
        assert_eq!(parse_segment_file_name("00000000000000000042.index", LOG_SUFFIX), None);
        assert_eq!(parse_segment_file_name("42.log", LOG_SUFFIX), None);
    }

    #[test]
    fn topic_id_base64url_round_trip() {
        // Kafka: Uuid(0x0123456789abcdef, 0xfedcba9876543210).toString()
        let id: [u8; 16] =
            [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10];
        let s = encode_topic_id(&id);
        assert_eq!(s, "ASNFZ4mrze_-3LqYdlQyEA");
        assert_eq!(decode_topic_id(&s), Some(id));
        assert_eq!(encode_topic_id(&[0u8; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(decode_topic_id("short"), None);
    }
}
