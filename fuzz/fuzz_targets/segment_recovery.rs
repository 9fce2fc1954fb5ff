//! Recovery of a segment file with arbitrary contents after an unclean shutdown: the input is
//! the partition's only `.log` file (and, after a separator byte pattern, its offset index).
//! Opening the log must never panic, must keep only whole valid batches, and everything it
//! keeps must read back in offset order.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_storage::{LogConfig, LogManager, LogManagerConfig, TopicPartition};

const INDEX_SEPARATOR: &[u8] = b"--index--";

fuzz_target!(|data: &[u8]| {
    let (log, index) = match data.windows(INDEX_SEPARATOR.len()).position(|w| w == INDEX_SEPARATOR) {
        Some(at) => (&data[..at], Some(&data[at + INDEX_SEPARATOR.len()..])),
        None => (data, None),
    };
    // On tmpfs where there is one: opening and shutting down a log manager fsyncs files and
    // directories, which on a disk caps the run at a few inputs a second.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("temp dir");
    let partition_dir = dir.path().join("fuzz-0");
    std::fs::create_dir_all(&partition_dir).expect("partition dir");
    std::fs::write(partition_dir.join("00000000000000000000.log"), log).expect("write log");
    if let Some(index) = index {
        std::fs::write(partition_dir.join("00000000000000000000.index"), index).expect("write index");
    }
    let config = LogManagerConfig { log_dirs: vec![dir.path().to_path_buf()] };
    let Ok((manager, _report)) = LogManager::open(config, &|_| LogConfig::default()) else { return };
    let tp = TopicPartition { topic: "fuzz".into(), partition: 0 };
    if let Some(partition) = manager.get(&tp) {
        let offsets = partition.offsets();
        let mut next = offsets.log_start_offset;
        let mut last_seen = -1;
        while next < offsets.log_end_offset {
            let Ok(read) = partition.read(next, 1 << 20, offsets.log_end_offset, true) else { break };
            let mut progressed = false;
            for batch in sluice_protocol::batch::BatchIter::new(read.records.clone()).flatten() {
                assert!(batch.base_offset() > last_seen, "recovered batches out of order");
                batch.validate().expect("recovery kept an invalid batch");
                last_seen = batch.last_offset();
                next = batch.next_offset();
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
    }
    let _ = manager.shutdown();
});
