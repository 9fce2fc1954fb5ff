//! [`RetryTier`]: retries each call of an inner [`RemoteTier`] with exponential backoff, a
//! bounded number of times (a down store must not stall the remote log manager forever: the
//! next round retries anyway). Stateless apart from its settings; thread-safe like the inner tier.

use std::time::Duration;

use bytes::Bytes;
use sluice_storage::remote::{
    BoxFuture, RemoteFileKind, RemoteListing, RemoteLogSegmentMetadata, RemoteStorageError, RemoteTier, SegmentFiles,
};

/// See the module docs.
#[derive(Debug)]
pub struct RetryTier<T> {
    inner: T,
    attempts_max: u32,
    backoff_initial: Duration,
}

impl<T: RemoteTier> RetryTier<T> {
    pub fn new(inner: T, attempts_max: u32, backoff_initial: Duration) -> Self {
        Self { inner, attempts_max: attempts_max.max(1), backoff_initial }
    }

    async fn retry<'a, R>(
        &'a self,
        what: &'static str,
        mut op: impl FnMut() -> BoxFuture<'a, Result<R, RemoteStorageError>>,
    ) -> Result<R, RemoteStorageError> {
        let mut backoff = self.backoff_initial;
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(r) => return Ok(r),
                // Not there is an answer, not a failure.
                Err(e @ RemoteStorageError::NotFound(_)) => return Err(e),
                Err(e) if attempt >= self.attempts_max => return Err(e),
                Err(error) => {
                    tracing::debug!(operation = what, attempt, %error, "remote storage call failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
            }
        }
    }
}

impl<T: RemoteTier> RemoteTier for RetryTier<T> {
    fn copy_segment<'a>(
        &'a self,
        metadata: &'a RemoteLogSegmentMetadata,
        files: &'a SegmentFiles,
    ) -> BoxFuture<'a, Result<(), RemoteStorageError>> {
        Box::pin(self.retry("copy_segment", move || self.inner.copy_segment(metadata, files)))
    }

    fn fetch<'a>(
        &'a self,
        metadata: &'a RemoteLogSegmentMetadata,
        kind: RemoteFileKind,
        start: u64,
        end: u64,
    ) -> BoxFuture<'a, Result<Bytes, RemoteStorageError>> {
        Box::pin(self.retry("fetch", move || self.inner.fetch(metadata, kind, start, end)))
    }

    fn delete_segment<'a>(
        &'a self,
        metadata: &'a RemoteLogSegmentMetadata,
    ) -> BoxFuture<'a, Result<(), RemoteStorageError>> {
        Box::pin(self.retry("delete_segment", move || self.inner.delete_segment(metadata)))
    }

    fn list_segments<'a>(
        &'a self,
        topic_id: &'a str,
        partition: i32,
    ) -> BoxFuture<'a, Result<RemoteListing, RemoteStorageError>> {
        Box::pin(self.retry("list_segments", move || self.inner.list_segments(topic_id, partition)))
    }

    fn delete_stem<'a>(&'a self, key_stem: &'a str) -> BoxFuture<'a, Result<(), RemoteStorageError>> {
        Box::pin(self.retry("delete_stem", move || self.inner.delete_stem(key_stem)))
    }
}
