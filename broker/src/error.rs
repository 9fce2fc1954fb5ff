//! The one place where internal errors become Kafka error codes (Kafka's `Errors.java`).
//!
//! Codes are part of the protocol: clients decide whether to retry from them, so every internal
//! error maps to the specific code Kafka sends, never a catch-all.

use kafka_protocol::ResponseError;
use sluice_protocol::batch::BatchError;
use sluice_storage::StorageError;

/// The error code for a storage failure.
pub fn storage_error(e: &StorageError) -> ResponseError {
    match e {
        StorageError::Io { .. } | StorageError::LogDirOffline(_) => ResponseError::KafkaStorageError,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::Deleted(_) => ResponseError::UnknownTopicOrPartition,
        StorageError::Corrupt { .. } => ResponseError::CorruptMessage,
        StorageError::PolicyViolation(_) => ResponseError::PolicyViolation,
        StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        StorageError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        StorageError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
    }
}

/// The error code for a batch a producer sent that failed validation.
pub fn batch_error(e: &BatchError) -> ResponseError {
    match e {
        BatchError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
        BatchError::UnknownCodec(_) => ResponseError::UnsupportedCompressionType,
        BatchError::CountMismatch { .. } | BatchError::MalformedRecords(_) => ResponseError::InvalidRecord,
        BatchError::Truncated { .. }
        | BatchError::InvalidLength(_)
        | BatchError::InvalidOffsets { .. }
        | BatchError::CrcMismatch { .. }
        | BatchError::Compression(_) => ResponseError::CorruptMessage,
    }
}

/// `Some(code)` for an error, `0` for success, as the wire wants it.
pub fn code(e: Option<ResponseError>) -> i16 {
    e.map(|e| e.code()).unwrap_or(0)
}
