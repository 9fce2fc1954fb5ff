//! [`ObjectStoreTier`]: the remote tier on an `object_store` backend, and [`open_url`].
//!
//! Object keys are deterministic: `<prefix>/<topic id>/<partition>/<20-digit base offset>-<segment
//! id>.{log,index,timeindex,snapshot,txnindex,json}` (the producer snapshot and transaction index
//! only when the segment has them). The `.json` manifest (the segment's metadata) is
//! written last, so a listing tells complete uploads from orphans. Segments larger than
//! [`MULTIPART_THRESHOLD`] go up as multipart uploads, streamed from the file in
//! [`MULTIPART_PART_BYTES`] parts (never the whole segment in memory).
//!
//! Thread-safety: shared freely (`object_store` clients are `Send + Sync`).

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, RetryConfig, WriteMultipart};
use sluice_storage::remote::{
    BoxFuture, RemoteFileKind, RemoteListing, RemoteLogSegmentMetadata, RemoteStorageError, RemoteTier, SegmentFiles,
};
use tokio::io::AsyncReadExt;

pub use crate::limits::{MULTIPART_PART_BYTES, MULTIPART_THRESHOLD};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct ObjectStoreTier {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

/// Opens the tier named by `remote.log.storage.url`: `s3://bucket[/prefix]` (credentials,
/// region and endpoint from the standard `AWS_*` variables, e.g. `AWS_ENDPOINT_URL` and
/// `AWS_ALLOW_HTTP=true` for a local S3 server), `file:///abs/path` (created if missing) or
/// `memory://` (a fresh in-memory store, for tests).
pub fn open_url(url: &str) -> Result<ObjectStoreTier, RemoteStorageError> {
    let bad = |reason: String| RemoteStorageError::Store { key: url.to_string(), reason };
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("missing bucket name".into()));
        }
        // Few, short retries inside object_store: a down store must fail the round quickly (our
        // RetryTier and the next round retry), not hold it for object_store's default 3 minutes.
        let retry = RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(10), ..RetryConfig::default() };
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(ObjectStoreTier::new(Arc::new(store), prefix))
    } else if let Some(path) = url.strip_prefix("file://") {
        std::fs::create_dir_all(path).map_err(|e| bad(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(path).map_err(|e| bad(e.to_string()))?;
        Ok(ObjectStoreTier::new(Arc::new(store), ""))
    } else if url.starts_with("memory://") {
        Ok(ObjectStoreTier::new(Arc::new(InMemory::new()), ""))
    } else {
        Err(bad("unsupported scheme (expected s3://, file:// or memory://)".into()))
    }
}

fn store_err(key: &str, e: object_store::Error) -> RemoteStorageError {
    match e {
        object_store::Error::NotFound { .. } => RemoteStorageError::NotFound(key.to_string()),
        other => RemoteStorageError::Store { key: key.to_string(), reason: other.to_string() },
    }
}

fn io_err(path: &FsPath, source: std::io::Error) -> RemoteStorageError {
    RemoteStorageError::Io { path: path.to_path_buf(), source }
}

impl ObjectStoreTier {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        Self { store, prefix: prefix.trim_matches('/').to_string() }
    }

    /// The underlying store (tests and tools list it directly).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn key(&self, rest: &str) -> String {
        if self.prefix.is_empty() {
            rest.to_string()
        } else {
            format!("{}/{rest}", self.prefix)
        }
    }

    fn object(&self, metadata: &RemoteLogSegmentMetadata, kind: RemoteFileKind) -> Path {
        Path::from(self.key(&format!("{}{}", metadata.key_stem(), kind.suffix())))
    }

    async fn upload_file(&self, location: &Path, file: &FsPath) -> Result<(), RemoteStorageError> {
        let key = location.to_string();
        let len = std::fs::metadata(file).map_err(|e| io_err(file, e))?.len();
        if len < MULTIPART_THRESHOLD {
            let data = tokio::fs::read(file).await.map_err(|e| io_err(file, e))?;
            self.store.put(location, PutPayload::from(data)).await.map_err(|e| store_err(&key, e))?;
            return Ok(());
        }
        let upload = self.store.put_multipart(location).await.map_err(|e| store_err(&key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART_BYTES);
        let mut f = tokio::fs::File::open(file).await.map_err(|e| io_err(file, e))?;
        let mut buf = vec![0u8; MULTIPART_PART_BYTES];
        loop {
            // Bounded memory: at most a few parts in flight.
            writer.wait_for_capacity(2).await.map_err(|e| store_err(&key, e))?;
            let n = f.read(&mut buf).await.map_err(|e| io_err(file, e))?;
            if n == 0 {
                break;
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(|e| store_err(&key, e))?;
        Ok(())
    }

    async fn copy(&self, metadata: &RemoteLogSegmentMetadata, files: &SegmentFiles) -> Result<(), RemoteStorageError> {
        self.upload_file(&self.object(metadata, RemoteFileKind::Log), &files.log).await?;
        self.upload_file(&self.object(metadata, RemoteFileKind::OffsetIndex), &files.offset_index).await?;
        self.upload_file(&self.object(metadata, RemoteFileKind::TimeIndex), &files.time_index).await?;
        if let Some(snapshot) = &files.producer_snapshot {
            self.upload_file(&self.object(metadata, RemoteFileKind::ProducerSnapshot), snapshot).await?;
        }
        if let Some(txn_index) = &files.transaction_index {
            self.upload_file(&self.object(metadata, RemoteFileKind::TransactionIndex), txn_index).await?;
        }
        let manifest = self.object(metadata, RemoteFileKind::Manifest);
        let json = serde_json_bytes(metadata);
        self.store.put(&manifest, PutPayload::from(json)).await.map_err(|e| store_err(manifest.as_ref(), e))?;
        Ok(())
    }

    async fn delete_stem_inner(&self, stem: &str) -> Result<(), RemoteStorageError> {
        // Manifest first: once it is gone the segment no longer lists as complete.
        for kind in [
            RemoteFileKind::Manifest,
            RemoteFileKind::Log,
            RemoteFileKind::OffsetIndex,
            RemoteFileKind::TimeIndex,
            RemoteFileKind::ProducerSnapshot,
            RemoteFileKind::TransactionIndex,
        ] {
            let location = Path::from(self.key(&format!("{stem}{}", kind.suffix())));
            match self.store.delete(&location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_err(location.as_ref(), e)),
            }
        }
        Ok(())
    }

    async fn list(&self, topic_id: &str, partition: i32) -> Result<RemoteListing, RemoteStorageError> {
        let dir = Path::from(self.key(&format!("{topic_id}/{partition}")));
        let metas: Vec<_> = self.store.list(Some(&dir)).try_collect().await.map_err(|e| store_err(dir.as_ref(), e))?;
        let mut stems = std::collections::BTreeMap::<String, bool>::new();
        for meta in &metas {
            let Some(name) = meta.location.filename() else { continue };
            let Some((stem, ext)) = name.rsplit_once('.') else { continue };
            let complete = stems.entry(format!("{topic_id}/{partition}/{stem}")).or_default();
            *complete |= ext == "json";
        }
        let mut listing = RemoteListing::default();
        for (stem, complete) in stems {
            if !complete {
                listing.orphan_stems.push(stem);
                continue;
            }
            let manifest = Path::from(self.key(&format!("{stem}.json")));
            let bytes = self
                .store
                .get(&manifest)
                .await
                .map_err(|e| store_err(manifest.as_ref(), e))?
                .bytes()
                .await
                .map_err(|e| store_err(manifest.as_ref(), e))?;
            match serde_json::from_slice::<RemoteLogSegmentMetadata>(&bytes) {
                Ok(m) => listing.complete.push(m),
                Err(error) => {
                    tracing::warn!(key = %manifest, %error, "unreadable remote segment manifest, treating as orphan");
                    listing.orphan_stems.push(stem);
                }
            }
        }
        listing.complete.sort_by_key(|m| m.base_offset);
        Ok(listing)
    }
}

fn serde_json_bytes(metadata: &RemoteLogSegmentMetadata) -> Vec<u8> {
    let mut committed = metadata.clone();
    committed.state = sluice_storage::remote::RemoteSegmentState::CopySegmentFinished;
    serde_json::to_vec(&committed).unwrap_or_default()
}

impl RemoteTier for ObjectStoreTier {
    fn copy_segment<'a>(
        &'a self,
        metadata: &'a RemoteLogSegmentMetadata,
        files: &'a SegmentFiles,
    ) -> BoxFuture<'a, Result<(), RemoteStorageError>> {
        Box::pin(self.copy(metadata, files))
    }

    fn fetch<'a>(
        &'a self,
        metadata: &'a RemoteLogSegmentMetadata,
        kind: RemoteFileKind,
        start: u64,
        end: u64,
    ) -> BoxFuture<'a, Result<Bytes, RemoteStorageError>> {
        Box::pin(async move {
            let location = self.object(metadata, kind);
            let end = if kind == RemoteFileKind::Log { end.min(metadata.size_bytes) } else { end };
            if kind == RemoteFileKind::Log {
                if start >= end {
                    return Ok(Bytes::new());
                }
                return self.store.get_range(&location, start..end).await.map_err(|e| store_err(location.as_ref(), e));
            }
            // Index files are small and their size is not in the metadata: fetch whole.
            let all = self
                .store
                .get(&location)
                .await
                .map_err(|e| store_err(location.as_ref(), e))?
                .bytes()
                .await
                .map_err(|e| store_err(location.as_ref(), e))?;
            let end = (end.min(all.len() as u64)) as usize;
            let start = (start as usize).min(end);
            Ok(all.slice(start..end))
        })
    }

    fn delete_segment<'a>(
        &'a self,
        metadata: &'a RemoteLogSegmentMetadata,
    ) -> BoxFuture<'a, Result<(), RemoteStorageError>> {
        Box::pin(async move { self.delete_stem_inner(&metadata.key_stem()).await })
    }

    fn list_segments<'a>(
        &'a self,
        topic_id: &'a str,
        partition: i32,
    ) -> BoxFuture<'a, Result<RemoteListing, RemoteStorageError>> {
        Box::pin(self.list(topic_id, partition))
    }

    fn delete_stem<'a>(&'a self, key_stem: &'a str) -> BoxFuture<'a, Result<(), RemoteStorageError>> {
        Box::pin(self.delete_stem_inner(key_stem))
    }
}
