//! Produce validation of a zstd batch holding millions of empty records runs in memory bounded by
//! the decompressed bytes, not by the record count: no record is materialised, and error strings
//! are built for at most `RECORD_ERRORS_MAX` offending records. The test binary's allocator counts (and caps) every allocation
//! ([`cap::Cap`]); tests take [`serial`] so they do not count each other's allocations.
//! A global allocator is per binary, so this is a test binary of its own (not a module of `it`):
//! there it would count every other test's allocations too.

use std::alloc::System;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use cap::Cap;
use kafka_protocol::ResponseError;
use sluice::limits::RECORD_ERRORS_MAX;
use sluice::topic_config::TopicConfig;
use sluice::validate::{single_batch, validate_batch};
use sluice_protocol::batch::RecordBatch;
use sluice_protocol::compression::Compression;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

const RECORDS: i32 = 2_000_000;
/// Large enough for the test batch: the check under test is memory, not the size limit.
const MAX_MESSAGE_BYTES: &str = "16777216";
const NOW_MS: i64 = 1_700_000_000_000;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `RECORDS` records with sequential offset deltas, timestamp delta 0, an empty value and an
/// empty (`Some`) or null key, as one zstd batch. Returns the batch and its decompressed size.
fn zstd_batch(keyed: bool) -> (Bytes, usize) {
    sluice_testkit::batch::sluice_zstd_batch_of_empty_records(RECORDS, keyed, true, NOW_MS)
}

fn topic_config(overrides: &[(&str, &str)]) -> TopicConfig {
    let mut explicit: BTreeMap<String, String> =
        overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    explicit.insert("max.message.bytes".into(), MAX_MESSAGE_BYTES.into());
    TopicConfig::resolve(&explicit, &sluice::Config::from_overrides(&[]).expect("config"))
}

/// Validates `batch` under a cap of `budget` bytes above current use (exceeding it aborts the
/// test binary) and returns the outcome with the bytes allocated while validating.
fn validate_counted(
    batch: &Bytes,
    config: &TopicConfig,
    budget: usize,
) -> (Result<RecordBatch, sluice::validate::Rejection>, usize) {
    let batch = single_batch(Some(batch)).expect("one batch");
    ALLOCATOR.set_limit(ALLOCATOR.allocated() + budget).expect("limit");
    let before = ALLOCATOR.total_allocated();
    let outcome = validate_batch(batch, "memory-0", config, NOW_MS).map(|v| v.batch);
    let used = ALLOCATOR.total_allocated() - before;
    ALLOCATOR.set_limit(usize::MAX).expect("limit");
    (outcome, used)
}

#[test]
fn keyless_records_on_a_compacted_topic_are_rejected_in_bounded_memory() {
    let _serial = serial();
    let (batch, decompressed) = zstd_batch(false);
    let config = topic_config(&[("cleanup.policy", "compact")]);
    // The bytes counted are cumulative: the decompressed section's output buffer, grown by
    // doubling, counts at about three times its length. Materialising the records instead costs
    // about 100 bytes per record on top (200 MB here), and an error string per record as much
    // again; the listed offenders (RECORD_ERRORS_MAX strings of about 100 bytes) fit in 4 MiB.
    let budget = 4 * decompressed + (4 << 20);
    let (outcome, used) = validate_counted(&batch, &config, budget);
    eprintln!(
        "keyless: {RECORDS} records, {} bytes compressed, {decompressed} bytes decompressed, {used} bytes allocated",
        batch.len()
    );
    let rejection = outcome.expect_err("keyless records on a compacted topic");
    assert_eq!(rejection.code, ResponseError::InvalidRecord);
    // Every record is an offender; the first RECORD_ERRORS_MAX are listed, in order.
    assert_eq!(rejection.record_errors.len(), RECORD_ERRORS_MAX);
    assert!(rejection.record_errors.iter().enumerate().all(|(i, e)| e.0 == i as i32));
    assert!(rejection.record_errors[0].1.contains("without key"), "{:?}", rejection.record_errors);
    assert!(used <= budget, "validation allocated {used} bytes for {decompressed} decompressed bytes");
}

#[test]
fn keyed_empty_records_are_accepted_and_recompressed_in_bounded_memory() {
    let _serial = serial();
    let (batch, decompressed) = zstd_batch(true);
    let config = topic_config(&[("cleanup.policy", "compact"), ("compression.type", "lz4")]);
    // The decompressed section (counted as above) plus its lz4 recompression.
    let budget = 6 * decompressed + (1 << 20);
    let (outcome, used) = validate_counted(&batch, &config, budget);
    eprintln!("keyed, recompressed: {RECORDS} records, {decompressed} bytes decompressed, {used} bytes allocated");
    let validated = outcome.expect("keyed records are valid");
    assert!(used <= budget, "validation allocated {used} bytes for {decompressed} decompressed bytes");
    assert_eq!(validated.compression().expect("codec"), Compression::Lz4);
    assert_eq!(validated.records_count(), RECORDS);
    assert_eq!(validated.last_offset_delta(), RECORDS - 1);
    assert_eq!(validated.max_timestamp(), NOW_MS);
    validated.validate_for_produce().expect("the rewritten batch is valid");
    // Same records under the new codec, read back without materialising them.
    let mut seen = 0;
    let (_, summary) = validated
        .walk_records(sluice_protocol::batch::DECOMPRESSED_BATCH_BYTES_MAX, |i, r| {
            assert_eq!(r.offset_delta as usize, i);
            assert_eq!((r.key, r.value), (Some(&[][..]), Some(&[][..])));
            seen += 1;
        })
        .expect("walk");
    assert_eq!((seen, summary.count), (RECORDS, RECORDS as usize));
}

#[test]
fn out_of_range_timestamps_are_rejected_with_a_bounded_list_of_offenders() {
    let _serial = serial();
    let (batch, decompressed) = zstd_batch(true);
    let config = topic_config(&[]);
    // Validate an hour and a half later than the records' time: every record is too old once
    // `message.timestamp.before.max.ms` is an hour.
    let config = TopicConfig { timestamp_before_max_ms: 3_600_000, ..config };
    let batch = single_batch(Some(&batch)).expect("one batch");
    let budget = 4 * decompressed + (4 << 20);
    ALLOCATOR.set_limit(ALLOCATOR.allocated() + budget).expect("limit");
    let before = ALLOCATOR.total_allocated();
    let outcome = validate_batch(batch, "memory-0", &config, NOW_MS + 5_400_000);
    let used = ALLOCATOR.total_allocated() - before;
    ALLOCATOR.set_limit(usize::MAX).expect("limit");
    let rejection = outcome.err().expect("records are too old");
    assert_eq!(rejection.code, ResponseError::InvalidTimestamp);
    assert_eq!(rejection.record_errors.len(), RECORD_ERRORS_MAX);
    assert_eq!(rejection.record_errors[0].0, 0);
    assert!(rejection.record_errors[0].1.starts_with(&format!("Timestamp {NOW_MS} of message with offset 0")));
    assert!(used <= budget, "validation allocated {used} bytes for {decompressed} decompressed bytes");
}
