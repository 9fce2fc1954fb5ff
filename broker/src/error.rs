//! The one place where internal errors become Kafka error codes (Kafka's `Errors.java`).
//!
//! Codes are part of the protocol: clients decide whether to retry from them, so every internal
//! error maps to the specific code Kafka sends, never a catch-all. Each layer's error type has one
//! exhaustive mapping here ([`storage_error`], [`batch_error`], [`metadata_error`],
//! [`tiered_error`]); [`Error`]
//! gathers them, and [`code`] is the mapping a handler applies to any of them.

use kafka_protocol::ResponseError;
use sluice_protocol::batch::BatchError;
use sluice_storage::StorageError;
use sluice_tiered::TieredError;

use crate::metadata::MetadataError;

/// A refusal decided by Kafka's rules: the code and the message the client sees.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ResponseError,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// Any failure of a request or of one partition of it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Tiered(#[from] TieredError),
}

/// The Kafka error code of any failure.
pub fn code(e: &Error) -> ResponseError {
    match e {
        Error::Api(e) => e.code,
        Error::Storage(e) => storage_error(e),
        Error::Batch(e) => batch_error(e),
        Error::Metadata(e) => metadata_error(e),
        Error::Tiered(e) => tiered_error(e),
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Api(e) => e,
            other => ApiError::new(code(&other), other.to_string()),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        Error::from(e).into()
    }
}

impl From<MetadataError> for ApiError {
    fn from(e: MetadataError) -> Self {
        Error::from(e).into()
    }
}

/// The error code for a storage failure.
pub fn storage_error(e: &StorageError) -> ResponseError {
    match e {
        StorageError::Io { .. } | StorageError::LogDirOffline(_) => ResponseError::KafkaStorageError,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::LogDirNotFound(_) => ResponseError::LogDirNotFound,
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

/// The error code for a metadata change that failed.
pub fn metadata_error(e: &MetadataError) -> ResponseError {
    match e {
        MetadataError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        MetadataError::TopicCollision(..) | MetadataError::InvalidTopic(..) => ResponseError::InvalidTopicException,
        MetadataError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        MetadataError::UnknownLogDir(_) => ResponseError::LogDirNotFound,
        MetadataError::Io(_) => ResponseError::KafkaStorageError,
    }
}

/// The error code for a remote tier failure: CORRUPT_MESSAGE for damaged remote data (what
/// Kafka's `RemoteLogReader` answers for the `CorruptRecordException` a damaged batch raises),
/// KAFKA_STORAGE_ERROR when the store or the local tier state failed (the client retries).
pub fn tiered_error(e: &TieredError) -> ResponseError {
    match e {
        TieredError::Corrupt { .. } | TieredError::Truncated { .. } => ResponseError::CorruptMessage,
        TieredError::Storage(e) => storage_error(e),
        TieredError::Remote(_)
        | TieredError::Io { .. }
        | TieredError::TaskFailed(_)
        | TieredError::SimulatedCrash(_) => ResponseError::KafkaStorageError,
    }
}

/// `Some(code)` for an error, `0` for success, as the wire wants it.
pub fn wire_code(e: Option<ResponseError>) -> i16 {
    e.map(|e| e.code()).unwrap_or(0)
}

/// Kafka's default message of `code` (`Errors.java`), for the responses whose message Kafka fills
/// from the error alone (`new ApiError(Errors.X)`); the protocol crate only knows the codes' names.
pub fn default_message(code: ResponseError) -> &'static str {
    match code {
        ResponseError::ElectionNotNeeded => "Leader election not needed for topic partition.",
        ResponseError::PreferredLeaderNotAvailable => "The preferred leader was not available.",
        ResponseError::EligibleLeadersNotAvailable => "Eligible topic partition leaders are not available.",
        ResponseError::ClusterAuthorizationFailed => "Cluster authorization failed.",
        ResponseError::NoReassignmentInProgress => "No partition reassignment is in progress.",
        ResponseError::UnknownTopicOrPartition => "This server does not host this topic-partition.",
        _ => "",
    }
}
