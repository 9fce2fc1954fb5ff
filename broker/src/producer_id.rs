//! Producer id allocation for InitProducerId (Kafka's `ProducerIdManager`): ids are handed out
//! from blocks of [`BLOCK_SIZE`]; before the first id of a block is used, the block's end is
//! persisted (crash-safe write with fsync) to `producer-id-block` in the first log dir. A restart
//! resumes at the persisted end, skipping whatever was left of the last block, so an id is never
//! handed out twice, even after `kill -9`.
//!
//! Thread-safe: one short `std::sync::Mutex` section per id (the file write happens once per
//! block, inside it, so two connections never both allocate a block).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// Ids per persisted block (Kafka's controller hands out blocks of 1000).
pub const BLOCK_SIZE: i64 = 1000;
/// File holding the end of the last allocated block, in the first log dir.
pub const BLOCK_FILE: &str = "producer-id-block";

#[derive(Debug)]
struct Block {
    next: i64,
    end: i64,
}

#[derive(Debug)]
pub struct ProducerIdManager {
    path: PathBuf,
    block: Mutex<Block>,
}

impl ProducerIdManager {
    /// Reads the persisted block end in `log_dir` (0 when there is none yet).
    pub fn open(log_dir: &Path) -> io::Result<Self> {
        let path = log_dir.join(BLOCK_FILE);
        let end = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{}: bad producer id block: {e}", path.display()))
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(Self { path, block: Mutex::new(Block { next: end, end }) })
    }

    /// A producer id never handed out before.
    pub fn generate(&self) -> io::Result<i64> {
        let mut b = self.block.lock().unwrap_or_else(PoisonError::into_inner);
        if b.next >= b.end {
            let end = b.next + BLOCK_SIZE;
            sluice_storage::checkpoint::write_atomically(&self.path, format!("{end}\n").as_bytes())?;
            b.end = end;
            tracing::info!(block_start = b.next, block_end = end, "allocated producer id block");
        }
        let id = b.next;
        b.next += 1;
        Ok(id)
    }

    /// Whether `producer_id` was handed out by this broker (before or since the restart).
    pub fn was_allocated(&self, producer_id: i64) -> bool {
        let b = self.block.lock().unwrap_or_else(PoisonError::into_inner);
        producer_id >= 0 && producer_id < b.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_repeat_across_restarts() {
        let dir = tempfile::tempdir().expect("tmp");
        let m = ProducerIdManager::open(dir.path()).expect("open");
        let a: Vec<i64> = (0..3).map(|_| m.generate().expect("id")).collect();
        assert_eq!(a, vec![0, 1, 2]);
        drop(m);
        let m = ProducerIdManager::open(dir.path()).expect("reopen");
        let b = m.generate().expect("id");
        assert_eq!(b, BLOCK_SIZE, "a restart skips the rest of the block");
        assert!(m.was_allocated(2) && !m.was_allocated(BLOCK_SIZE + 1));
        for _ in 0..BLOCK_SIZE {
            m.generate().expect("id");
        }
        assert_eq!(m.generate().expect("id"), 2 * BLOCK_SIZE + 1);
        assert_eq!(std::fs::read_to_string(dir.path().join(BLOCK_FILE)).expect("read").trim(), "3000");
    }
}
