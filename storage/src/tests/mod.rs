//! Tests of the crate through its public API (partition logs, the log manager, recovery, offline
//! dirs), plus shared helpers. Unit tests of single modules live beside them.

mod cleaner;
mod durability;
mod leader_epoch;
mod model;
mod move_dirs;
mod offline;
mod producer;
mod recovery;
mod retention;
mod transactions;
mod unit;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::batch::{BatchIter, RecordBatch, TimestampType};
use sluice_protocol::records::{BatchBuilder, Record};

use crate::{LoadReport, LogConfig, LogManager, LogManagerConfig, TopicPartition};

pub const TOPIC_ID: [u8; 16] = [9; 16];

pub fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition { topic: topic.to_string(), partition }
}

/// A CreateTime batch with one record per timestamp, values of `value_len` bytes.
pub fn batch_with_timestamps(timestamps: &[i64], value_len: usize) -> RecordBatch {
    let base_timestamp = timestamps.first().copied().unwrap_or(0);
    let records = timestamps
        .iter()
        .enumerate()
        .map(|(i, ts)| Record {
            offset_delta: i as i32,
            timestamp_delta: ts - base_timestamp,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(vec![b'v'.wrapping_add(i as u8); value_len])),
            ..Record::default()
        })
        .collect();
    let builder = BatchBuilder { base_timestamp, records, ..BatchBuilder::default() };
    RecordBatch::new(builder.build().unwrap()).unwrap()
}

/// A batch of `count` records, timestamps `ts, ts+1, …`.
pub fn batch(count: usize, value_len: usize, ts: i64) -> RecordBatch {
    let timestamps: Vec<i64> = (0..count as i64).map(|i| ts + i).collect();
    batch_with_timestamps(&timestamps, value_len)
}

pub fn log_append_time_batch(count: usize, now: i64) -> RecordBatch {
    let records = (0..count)
        .map(|i| Record { offset_delta: i as i32, value: Some(Bytes::from_static(b"x")), ..Record::default() })
        .collect();
    let builder = BatchBuilder {
        records,
        timestamp_type: TimestampType::LogAppendTime,
        max_timestamp: Some(now),
        ..BatchBuilder::default()
    };
    RecordBatch::new(builder.build().unwrap()).unwrap()
}

/// The bytes a batch has on disk once appended at `base_offset` with `epoch`.
pub fn stored(batch: &RecordBatch, base_offset: i64, epoch: i32) -> Bytes {
    batch.with_offset(base_offset, epoch).into_bytes()
}

/// Splits a read result into batches, asserting each is whole and valid.
pub fn batches_of(bytes: &Bytes) -> Vec<RecordBatch> {
    let mut it = BatchIter::new(bytes.clone());
    let out: Vec<RecordBatch> = it.by_ref().map(|b| b.unwrap()).collect();
    assert!(it.remaining().is_empty(), "read returned a partial batch");
    for b in &out {
        b.validate().unwrap();
    }
    out
}

pub fn small_config() -> LogConfig {
    LogConfig { index_interval_bytes: 128, ..LogConfig::default() }
}

pub fn open(dirs: &[&Path]) -> (Arc<LogManager>, LoadReport) {
    open_with(dirs, small_config())
}

pub fn open_with(dirs: &[&Path], config: LogConfig) -> (Arc<LogManager>, LoadReport) {
    let config_for = move |_: &str| config.clone();
    LogManager::open(LogManagerConfig { log_dirs: dirs.iter().map(|d| d.to_path_buf()).collect() }, &config_for)
        .unwrap()
}

/// `.log` files of a partition dir, sorted.
pub fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}
