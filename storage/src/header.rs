//! The fixed v2 batch header fields the storage layer needs while scanning segment files
//! (base offset, length, leader epoch, magic, attributes, last offset delta, max timestamp),
//! parsed from the first 61 bytes without touching the records or the CRC.
//!
//! Scans read only these bytes per batch (Kafka's `FileLogInputStream` does the same) so that
//! locating a batch costs one small positional read, not a copy of the batch. Pure functions.

use sluice_protocol::batch::{ATTR_TIMESTAMP_TYPE, LOG_OVERHEAD, MAGIC_V2, RECORD_BATCH_OVERHEAD};

/// Bytes needed to parse a [`BatchHeader`].
pub const HEADER_SIZE: usize = RECORD_BATCH_OVERHEAD;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub max_timestamp: i64,
    pub producer_id: i64,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

impl BatchHeader {
    /// Parses a header, checking only what a scan must trust to step to the next batch: the
    /// length covers at least a header, magic is 2 and the offset delta is non-negative.
    pub fn parse(b: &[u8]) -> Result<Self, String> {
        if b.len() < HEADER_SIZE {
            return Err(format!("batch header truncated: {} of {HEADER_SIZE} bytes", b.len()));
        }
        let h = BatchHeader {
            base_offset: be_i64(b, 0),
            batch_length: be_i32(b, 8),
            partition_leader_epoch: be_i32(b, 12),
            magic: b[16] as i8,
            attributes: i16::from_be_bytes([b[21], b[22]]),
            last_offset_delta: be_i32(b, 23),
            max_timestamp: be_i64(b, 35),
            producer_id: be_i64(b, 43),
        };
        if (h.batch_length as i64) < (RECORD_BATCH_OVERHEAD - LOG_OVERHEAD) as i64 {
            return Err(format!("invalid batch length {}", h.batch_length));
        }
        if h.magic != MAGIC_V2 {
            return Err(format!("unsupported magic {}", h.magic));
        }
        if h.last_offset_delta < 0 || h.base_offset < 0 {
            return Err(format!("invalid offsets: base {} delta {}", h.base_offset, h.last_offset_delta));
        }
        Ok(h)
    }

    /// Whole batch size on disk, including the log overhead.
    pub fn size(&self) -> u64 {
        LOG_OVERHEAD as u64 + self.batch_length as u64
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_rejects_garbage() {
        let mut b = vec![0u8; HEADER_SIZE];
        b[0..8].copy_from_slice(&100i64.to_be_bytes());
        b[8..12].copy_from_slice(&60i32.to_be_bytes());
        b[12..16].copy_from_slice(&5i32.to_be_bytes());
        b[16] = 2;
        b[21..23].copy_from_slice(&(ATTR_TIMESTAMP_TYPE).to_be_bytes());
        b[23..27].copy_from_slice(&3i32.to_be_bytes());
        b[35..43].copy_from_slice(&777i64.to_be_bytes());
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.base_offset, 100);
        assert_eq!(h.size(), 72);
        assert_eq!(h.partition_leader_epoch, 5);
        assert_eq!(h.last_offset(), 103);
        assert_eq!(h.next_offset(), 104);
        assert_eq!(h.max_timestamp, 777);
        assert!(h.is_log_append_time());
        assert!(BatchHeader::parse(&b[..60]).is_err());
        b[16] = 1;
        assert!(BatchHeader::parse(&b).is_err());
        b[16] = 2;
        b[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(BatchHeader::parse(&b).is_err());
    }
}
