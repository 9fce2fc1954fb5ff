//! I/O failures take one log dir offline; the others keep working.

use std::fs;

use super::*;
use crate::{LogConfig, StorageError};

fn is_offline<T: std::fmt::Debug>(r: crate::Result<T>) -> bool {
    matches!(r, Err(StorageError::LogDirOffline(_)))
}

#[test]
fn injected_failure_takes_only_that_dir_offline() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mgr, _) = open(&[d1.path(), d2.path()]);
    let a = mgr.get_or_create(&tp("a", 0), TOPIC_ID, small_config()).unwrap();
    let b = mgr.get_or_create(&tp("b", 0), TOPIC_ID, small_config()).unwrap();
    assert_eq!(a.dir().parent().unwrap(), d1.path());
    assert_eq!(b.dir().parent().unwrap(), d2.path());
    a.append(&[batch(2, 10, 0)], 0).unwrap();
    b.append(&[batch(2, 10, 0)], 0).unwrap();

    mgr.fail_log_dir_for_test(d1.path());
    assert_eq!(mgr.offline_dirs(), [d1.path().to_path_buf()]);
    assert!(is_offline(a.append(&[batch(1, 10, 0)], 0)));
    assert!(is_offline(a.read(0, 1000, i64::MAX, true)));
    assert!(is_offline(a.flush()));
    assert!(is_offline(a.offset_for_timestamp(0)));
    assert!(is_offline(a.max_timestamp()));
    assert!(is_offline(mgr.get_or_create(&tp("a", 0), TOPIC_ID, small_config())));

    // The other dir is unaffected, and new partitions go there.
    b.append(&[batch(1, 10, 0)], 0).unwrap();
    assert_eq!(batches_of(&b.read(0, 1000, i64::MAX, true).unwrap().records).len(), 2);
    let c = mgr.get_or_create(&tp("c", 0), TOPIC_ID, small_config()).unwrap();
    assert_eq!(c.dir().parent().unwrap(), d2.path());

    // Shutdown succeeds for the online dir and leaves the offline one unmarked.
    mgr.shutdown().unwrap();
    assert!(!d1.path().join(".kafka_cleanshutdown").exists());
    assert!(d2.path().join(".kafka_cleanshutdown").exists());
    drop(mgr);
    // After a restart the failed dir is recovered and usable again.
    let (mgr, report) = open(&[d1.path(), d2.path()]);
    assert_eq!(report.unclean_dirs, [d1.path().to_path_buf()]);
    assert_eq!(mgr.get(&tp("a", 0)).unwrap().offsets().log_end_offset, 2);
    assert!(mgr.offline_dirs().is_empty());
}

#[test]
fn real_io_error_on_roll_takes_dir_offline() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mgr, _) = open(&[d1.path(), d2.path()]);
    let config = LogConfig { segment_bytes: 1, ..small_config() };
    let a = mgr.get_or_create(&tp("a", 0), TOPIC_ID, config.clone()).unwrap();
    let b = mgr.get_or_create(&tp("b", 0), TOPIC_ID, config).unwrap();
    a.append(&[batch(1, 10, 0)], 0).unwrap();
    // Replace the partition directory by a plain file: the open fds still work (even as root),
    // but creating the next segment's files fails with ENOTDIR.
    let dir = a.dir();
    fs::rename(&dir, d1.path().join("moved-away")).unwrap();
    fs::write(&dir, b"not a directory").unwrap();
    let err = a.append(&[batch(1, 10, 0)], 0).unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    assert_eq!(mgr.offline_dirs(), [d1.path().to_path_buf()]);
    assert!(is_offline(a.append(&[batch(1, 10, 0)], 0)));
    assert!(is_offline(a.read(0, 1000, i64::MAX, true)));
    b.append(&[batch(1, 10, 0)], 0).unwrap();
    b.append(&[batch(1, 10, 0)], 0).unwrap();
    assert_eq!(b.segment_base_offsets(), [0, 1]);
}

#[test]
fn fsync_failure_is_never_retried() {
    // A flush that fails leaves the dir offline; a second flush does not touch the disk.
    let d1 = tempfile::tempdir().unwrap();
    let (mgr, _) = open(&[d1.path()]);
    let config = LogConfig { segment_bytes: 1, ..small_config() };
    let a = mgr.get_or_create(&tp("a", 0), TOPIC_ID, config).unwrap();
    a.append(&[batch(1, 10, 0)], 0).unwrap();
    a.append(&[batch(1, 10, 0)], 0).unwrap(); // rolled: the dir entry needs an fsync
    let dir = a.dir();
    fs::rename(&dir, d1.path().join("moved-away")).unwrap();
    let err = a.flush().unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    assert!(is_offline(a.flush()));
    assert!(mgr.checkpoint().is_ok(), "offline dirs are skipped");
    assert_eq!(a.recovery_point(), 0);
}
