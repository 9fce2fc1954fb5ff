//! The coordinators' handle on their internal topics, `__consumer_offsets` (group coordinator)
//! and `__transaction_state` (transaction coordinator): append records, scan a partition on load,
//! and find the partition a key lives in.
//!
//! A coordinator sees only [`InternalLog`]; the broker gives it one backed by the partition logs
//! (`crate::coordinator_io`), tests give it a [`MemoryLog`]. Appends are synchronous and durable
//! by the broker's acks=all rule when they return, so a coordinator may acknowledge a request
//! right after. Implementations are `Send + Sync`; each append is one batch, written atomically.

use std::sync::Mutex;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use sluice_protocol::batch::RecordBatch;
use sluice_protocol::records::{BatchBuilder, Record};

use crate::error::ApiError;

/// Key and value (`None` is a tombstone) of one record.
pub type KeyValue = (Bytes, Option<Bytes>);

/// One internal topic, as its coordinator uses it.
pub trait InternalLog: Send + Sync {
    /// Partitions of the topic; `None` while it does not exist.
    fn num_partitions(&self) -> Option<i32>;

    /// Appends `records` as one batch to `partition` and advances the high watermark. With `txn`
    /// (producer id, epoch) the batch is transactional and unsequenced, as Kafka's group
    /// coordinator writes TxnOffsetCommit: it takes effect only with its producer's COMMIT marker.
    fn append(
        &self,
        partition: i32,
        records: Vec<KeyValue>,
        txn: Option<(i64, i16)>,
        timestamp_ms: i64,
    ) -> Result<(), ApiError>;

    /// Calls `apply` with every batch of `partition` below its high watermark, in offset order,
    /// with the log start offset (records below it are gone).
    fn scan(&self, partition: i32, apply: &mut dyn FnMut(&RecordBatch, i64)) -> Result<(), ApiError>;

    /// The partition `key` lives in (Kafka's `abs(key.hashCode()) % partitions`).
    fn partition_for(&self, key: &str) -> i32 {
        partition_for(key, self.num_partitions().unwrap_or(1))
    }
}

/// Java's `String.hashCode`, which decides a group's or transactional id's partition in Kafka.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// Kafka's `Utils.abs(key.hashCode()) % partitions`.
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    // Kafka's Utils.abs maps i32::MIN to 0 rather than overflowing.
    let h = java_string_hash(key);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// The batch an internal append writes: one record per key, offsets from 0, stamped `timestamp_ms`.
pub fn build_batch(
    records: Vec<KeyValue>,
    txn: Option<(i64, i16)>,
    timestamp_ms: i64,
) -> Result<RecordBatch, ApiError> {
    let (producer_id, producer_epoch) = txn.unwrap_or((-1, -1));
    let builder = BatchBuilder {
        base_timestamp: timestamp_ms,
        transactional: txn.is_some(),
        producer_id,
        producer_epoch,
        records: records
            .into_iter()
            .enumerate()
            .map(|(i, (k, v))| Record { offset_delta: i as i32, key: Some(k), value: v, ..Default::default() })
            .collect(),
        ..Default::default()
    };
    let bytes = builder.build().map_err(|e| ApiError::new(ResponseError::UnknownServerError, e.to_string()))?;
    RecordBatch::new(bytes).map_err(|e| ApiError::new(ResponseError::UnknownServerError, e.to_string()))
}

/// An internal topic held in memory, for coordinator tests: batches are kept as appended (base
/// offset 0 each, which the coordinators' replay never looks at), and appends can be made to fail.
#[derive(Debug)]
pub struct MemoryLog {
    partitions: Mutex<Vec<Vec<RecordBatch>>>,
    fail_appends: Mutex<bool>,
}

impl MemoryLog {
    pub fn new(num_partitions: i32) -> Self {
        Self {
            partitions: Mutex::new(vec![Vec::new(); num_partitions.max(1) as usize]),
            fail_appends: Mutex::new(false),
        }
    }

    /// Every later append fails with KAFKA_STORAGE_ERROR while `fail` is set.
    pub fn fail_appends(&self, fail: bool) {
        *self.fail_appends.lock().unwrap_or_else(|e| e.into_inner()) = fail;
    }

    /// The batches appended to `partition`, in order.
    pub fn batches(&self, partition: i32) -> Vec<RecordBatch> {
        let parts = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        usize::try_from(partition).ok().and_then(|p| parts.get(p)).cloned().unwrap_or_default()
    }
}

impl InternalLog for MemoryLog {
    fn num_partitions(&self) -> Option<i32> {
        Some(self.partitions.lock().unwrap_or_else(|e| e.into_inner()).len() as i32)
    }

    fn append(
        &self,
        partition: i32,
        records: Vec<KeyValue>,
        txn: Option<(i64, i16)>,
        timestamp_ms: i64,
    ) -> Result<(), ApiError> {
        if *self.fail_appends.lock().unwrap_or_else(|e| e.into_inner()) {
            return Err(ApiError::new(ResponseError::KafkaStorageError, "appends fail in this test"));
        }
        let batch = build_batch(records, txn, timestamp_ms)?;
        let mut parts = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        let log = usize::try_from(partition)
            .ok()
            .and_then(|p| parts.get_mut(p))
            .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition, "no such partition"))?;
        log.push(batch);
        Ok(())
    }

    fn scan(&self, partition: i32, apply: &mut dyn FnMut(&RecordBatch, i64)) -> Result<(), ApiError> {
        for batch in self.batches(partition) {
            apply(&batch, 0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_kafka_partitioning() {
        // "abc".hashCode() == 96354 in Java.
        assert_eq!(java_string_hash("abc"), 96354);
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(partition_for("abc", 50), 96354 % 50);
        assert_eq!(MemoryLog::new(50).partition_for("abc"), 96354 % 50);
    }
}
