//! Produce-time validation of record batches against a topic's configs — Sluice's LogValidator.
//!
//! The hot path touches only the batch header: CRC, counts, sizes and the header timestamps.
//! Records are read only when a check needs them (timestamp bounds that the header cannot
//! settle, keys on compacted topics, recompression to the topic's codec), so an uncompressed batch
//! to a `compression.type=producer` topic is never parsed record by record. When they are, they
//! are walked in place: the cost is one pass over the (bounded) decompressed bytes, with nothing
//! allocated per record.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use sluice_protocol::batch::{BatchError, RecordBatch, TimestampType, DECOMPRESSED_BATCH_BYTES_MAX};
use sluice_protocol::records::BatchBuilder;

use crate::limits::RECORD_ERRORS_MAX;
use crate::topic_config::{TopicCompression, TopicConfig};

/// A rejected batch: the partition error, an optional message and per-record errors (KIP-467).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub code: ResponseError,
    pub message: Option<String>,
    pub record_errors: Vec<(i32, String)>,
}

impl Rejection {
    fn new(code: ResponseError, message: impl Into<String>) -> Self {
        Self { code, message: Some(message.into()), record_errors: Vec::new() }
    }
}

/// The batch to append and whether it carries LogAppendTime.
pub struct Validated {
    pub batch: RecordBatch,
    pub log_append_time: Option<i64>,
}

fn batch_rejection(e: &BatchError) -> Rejection {
    let code = match e {
        // Kafka 4: produce v3+ carries magic v2 only; anything else is INVALID_RECORD.
        BatchError::UnsupportedMagic(_) => ResponseError::InvalidRecord,
        other => crate::error::batch_error(other),
    };
    Rejection::new(code, e.to_string())
}

/// Splits a partition's `records` into exactly one batch, as produce v3+ requires.
pub fn single_batch(records: Option<&Bytes>) -> Result<RecordBatch, Rejection> {
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Err(Rejection::new(
            ResponseError::InvalidRecord,
            "Produce requests must have at least one record batch per partition",
        ));
    };
    let mut buf = records.clone();
    let batch = match RecordBatch::split_first(&mut buf) {
        Ok(Some(b)) => b,
        Ok(None) => return Err(Rejection::new(ResponseError::CorruptMessage, "record batch is truncated")),
        Err(e) => return Err(batch_rejection(&e)),
    };
    if !buf.is_empty() {
        return Err(Rejection::new(
            ResponseError::InvalidRecord,
            "Produce requests must have exactly one record batch per partition",
        ));
    }
    Ok(batch)
}

/// Validates `batch` for `config` at wall time `now_ms` and returns the batch to write.
pub fn validate_batch(
    batch: RecordBatch,
    topic_partition: &str,
    config: &TopicConfig,
    now_ms: i64,
) -> Result<Validated, Rejection> {
    if batch.size_in_bytes() > config.max_message_bytes {
        return Err(Rejection::new(
            ResponseError::MessageTooLarge,
            format!(
                "The record batch is {} bytes, larger than max.message.bytes {}",
                batch.size_in_bytes(),
                config.max_message_bytes
            ),
        ));
    }
    batch.validate_for_produce().map_err(|e| batch_rejection(&e))?;
    if batch.is_control() {
        return Err(Rejection::new(ResponseError::InvalidRecord, "Producers may not write control batches"));
    }
    let codec = batch.compression().map_err(|e| batch_rejection(&e))?;

    // Timestamp bounds (CreateTime only): the header's base and max timestamps settle the common
    // case; records are read only to find the offenders.
    let lower = now_ms.saturating_sub(config.timestamp_before_max_ms);
    let upper = now_ms.saturating_add(config.timestamp_after_max_ms);
    let header_ok = batch.max_timestamp() <= upper && (batch.base_timestamp() >= lower || batch.base_timestamp() < 0);
    let check_records_ts = !config.log_append_time && !header_ok;
    let recompress = recompress_to(config, codec);
    let log_append_time = config.log_append_time.then_some(now_ms);
    if !(check_records_ts || config.compact || recompress.is_some()) {
        let batch = match log_append_time {
            Some(now) => batch.with_log_append_time(now),
            None => batch,
        };
        return Ok(Validated { batch, log_append_time });
    }

    // One pass over the records in place. Only what a rejection or a rewrite needs is kept: the
    // offending records (at most RECORD_ERRORS_MAX of them) and the largest timestamp, so memory
    // does not grow with the record count (a 1 MiB zstd batch can hold millions of records).
    let base_timestamp = batch.base_timestamp();
    let mut record_errors: Vec<(i32, String)> = Vec::new();
    let mut any_bad_timestamp = false;
    let mut max_timestamp: Option<i64> = None;
    let (section, summary) = batch
        .walk_records(DECOMPRESSED_BATCH_BYTES_MAX, |index, record| {
            // Wrapping, as `BatchBuilder` computes the max timestamp of a batch it encodes.
            let timestamp = base_timestamp.wrapping_add(record.timestamp_delta);
            max_timestamp = Some(max_timestamp.map_or(timestamp, |m| m.max(timestamp)));
            // Kafka's LogValidator reports one error per record, the missing key before the
            // timestamp.
            // The message is built only for records that will be listed.
            let listed = record_errors.len() < RECORD_ERRORS_MAX;
            if config.compact && record.key.is_none() {
                if listed {
                    record_errors.push((
                        record_index(index),
                        format!("Compacted topic cannot accept message without key in topic partition {topic_partition}."),
                    ));
                }
            } else if check_records_ts {
                let ts = base_timestamp.saturating_add(record.timestamp_delta);
                if ts >= 0 && (ts < lower || ts > upper) {
                    any_bad_timestamp = true;
                    if listed {
                        record_errors.push((
                            record_index(index),
                            format!(
                                "Timestamp {ts} of message with offset {} is out of range. The timestamp should be within [{lower}, {upper}]",
                                record.offset_delta
                            ),
                        ));
                    }
                }
            }
        })
        .map_err(|e| batch_rejection(&e))?;

    // Kafka lists every offending record (librdkafka fails those with INVALID_RECORD and the rest
    // of the batch with _INVALID_DIFFERENT_RECORD), and answers INVALID_TIMESTAMP if any of them
    // has a bad timestamp, INVALID_RECORD otherwise.
    if !record_errors.is_empty() {
        let (code, why) = if any_bad_timestamp {
            (ResponseError::InvalidTimestamp, "invalid timestamp")
        } else {
            (ResponseError::InvalidRecord, "missing keys")
        };
        return Err(Rejection {
            code,
            message: Some(format!("One or more records have been rejected due to {why} in {topic_partition}")),
            record_errors,
        });
    }

    let batch = match recompress {
        // The records section is the same under any codec: compress the decompressed bytes as
        // they are rather than decoding and re-encoding every record.
        Some((target, level)) => {
            let builder = BatchBuilder {
                base_offset: 0,
                compression: target,
                compression_level: level,
                timestamp_type: if config.log_append_time {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                },
                max_timestamp: Some(log_append_time.or(max_timestamp).unwrap_or(base_timestamp)),
                ..BatchBuilder::from_header(&batch, Vec::new()).map_err(|e| batch_rejection(&e))?
            };
            let bytes = builder
                .build_from_section(&section, batch.records_count(), summary.max_offset_delta.unwrap_or(0))
                .map_err(|e| batch_rejection(&e))?;
            RecordBatch::new(bytes).map_err(|e| batch_rejection(&e))?
        }
        None => match log_append_time {
            Some(now) => batch.with_log_append_time(now),
            None => batch,
        },
    };
    Ok(Validated { batch, log_append_time })
}

/// A record's index within its batch as the response carries it. The walk reads at most
/// `records_count` (an `i32`) records, so the saturation never happens.
fn record_index(index: usize) -> i32 {
    i32::try_from(index).unwrap_or(i32::MAX)
}

/// The codec to recompress to, when the topic's `compression.type` differs from the batch's.
fn recompress_to(
    config: &TopicConfig,
    codec: sluice_protocol::compression::Compression,
) -> Option<(sluice_protocol::compression::Compression, Option<i32>)> {
    match config.compression {
        TopicCompression::Producer => None,
        TopicCompression::Codec(c, level) if c != codec => Some((c, level)),
        TopicCompression::Codec(..) => None,
    }
}
