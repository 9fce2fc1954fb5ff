//! Fetch (key 1), v4–v18: whole batches from the batch containing the fetch offset, bounded by the
//! high watermark (read_uncommitted) or last stable offset (read_committed), `max_bytes` and
//! `partition_max_bytes` with Kafka's rule that the first partition with data may exceed them by
//! one batch. Long polling: with fewer than `min_bytes` available the request waits up to
//! `max_wait_ms`, woken by high-watermark moves on the partitions it reads. Topic ids from v13;
//! fetch sessions (KIP-227) from v7.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_protocol::batch::BatchIter;
use sluice_storage::UnifiedLog;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::{Broker, LEADER_EPOCH};
use crate::fetch_session::{PartitionFetchState, SentPartition, SessionPartition};

/// A partition to read: its session key, what the client asked, and its log (or why there is none).
type PartitionToRead = (SessionPartition, PartitionFetchState, Result<Arc<UnifiedLog>, ResponseError>);

/// Per-partition outcome of one read pass.
struct PartitionRead {
    error: Option<ResponseError>,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    records: Bytes,
    /// read_committed: the aborted transactions overlapping `records`.
    aborted: Vec<sluice_storage::txn_index::AbortedTxn>,
}

impl PartitionRead {
    fn error(code: ResponseError) -> Self {
        Self {
            error: Some(code),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            records: Bytes::new(),
            aborted: Vec::new(),
        }
    }
}

/// The last offset of the last whole batch in `records` (slices batch headers, copies nothing).
fn last_offset(records: &Bytes) -> Option<i64> {
    BatchIter::new(records.clone()).map_while(Result::ok).last().map(|b| b.last_offset())
}

fn check_leader_epoch(requested: i32) -> Option<ResponseError> {
    // -1 means the client does not know the epoch; Kafka skips the check.
    if requested < 0 || requested == LEADER_EPOCH {
        None
    } else if requested > LEADER_EPOCH {
        Some(ResponseError::UnknownLeaderEpoch)
    } else {
        Some(ResponseError::FencedLeaderEpoch)
    }
}

/// [`read_pass`] inline when every read hits the page cache, else on a blocking thread: a cold
/// read waits for the disk, and a runtime worker must not.
async fn read_pass_off_runtime(
    logs: &Arc<Vec<PartitionToRead>>,
    max_bytes: usize,
    read_committed: bool,
) -> (Vec<PartitionRead>, usize) {
    let cold = logs.iter().any(|(_, st, log)| {
        log.as_ref().is_ok_and(|l| !l.read_is_cached(st.fetch_offset, (st.max_bytes.max(0) as usize).min(max_bytes)))
    });
    if !cold {
        return read_pass(logs, max_bytes, read_committed);
    }
    let moved = logs.clone();
    match crate::context::spawn_blocking(move || read_pass(&moved, max_bytes, read_committed)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "fetch read task failed");
            (logs.iter().map(|_| PartitionRead::error(ResponseError::UnknownServerError)).collect(), 0)
        }
    }
}

/// Reads every partition once. Returns the results and the number of record bytes found.
fn read_pass(logs: &[PartitionToRead], max_bytes: usize, read_committed: bool) -> (Vec<PartitionRead>, usize) {
    let mut remaining = max_bytes;
    let mut total = 0usize;
    let mut out = Vec::with_capacity(logs.len());
    for (_, st, log) in logs {
        let log = match log {
            Ok(l) => l,
            Err(code) => {
                out.push(PartitionRead::error(*code));
                continue;
            }
        };
        if let Some(code) = check_leader_epoch(st.current_leader_epoch) {
            out.push(PartitionRead::error(code));
            continue;
        }
        let offsets = log.offsets();
        let lso = offsets.last_stable_offset;
        let bound = if read_committed { lso } else { offsets.high_watermark };
        let part_max = (st.max_bytes.max(0) as usize).min(remaining);
        let min_one = total == 0;
        match log.read(st.fetch_offset, part_max, bound, min_one) {
            Ok(r) => {
                total += r.records.len();
                remaining = remaining.saturating_sub(r.records.len());
                let aborted = if read_committed && !r.records.is_empty() {
                    // Kafka's collectAbortedTxns up to the end of the data returned.
                    let upper = last_offset(&r.records).map_or(bound, |o| o + 1);
                    log.aborted_transactions(st.fetch_offset, upper)
                } else {
                    Vec::new()
                };
                out.push(PartitionRead {
                    error: None,
                    high_watermark: r.high_watermark,
                    last_stable_offset: lso,
                    log_start_offset: r.log_start_offset,
                    records: r.records,
                    aborted,
                });
            }
            Err(e) => {
                let code = crate::error::storage_error(&e);
                out.push(PartitionRead {
                    error: Some(code),
                    high_watermark: offsets.high_watermark,
                    last_stable_offset: lso,
                    log_start_offset: offsets.log_start_offset,
                    records: Bytes::new(),
                    aborted: Vec::new(),
                });
            }
        }
    }
    (out, total)
}

/// Tiered topics (KIP-405): serves reads below the local log start offset from the remote tier
/// and reports the whole log's start offset (remote, when it holds data).
async fn remote_reads(
    broker: &Broker,
    logs: &[PartitionToRead],
    mut reads: Vec<PartitionRead>,
    max_bytes: usize,
    read_committed: bool,
) -> Vec<PartitionRead> {
    let Some(rlm) = &broker.remote else { return reads };
    let mut remaining = max_bytes.saturating_sub(reads.iter().map(|r| r.records.len()).sum());
    for ((_, st, log), read) in logs.iter().zip(reads.iter_mut()) {
        let Ok(log) = log else { continue };
        let tp = log.topic_partition();
        let Some(remote_start) = rlm.log_start_offset(tp) else { continue };
        let below_local = matches!(read.error, Some(ResponseError::OffsetOutOfRange))
            && st.fetch_offset < read.log_start_offset
            && st.fetch_offset >= remote_start;
        if below_local {
            let part_max = (st.max_bytes.max(0) as usize).min(remaining.max(1));
            let started = std::time::Instant::now();
            let bound = if read_committed { read.last_stable_offset } else { read.high_watermark };
            let result = rlm.read(tp, st.fetch_offset, part_max, bound).await;
            broker.metrics.tier.fetch_seconds.observe(started.elapsed().as_secs_f64());
            match result {
                Ok(Some(records)) => {
                    broker.metrics.tier.fetch_bytes.inc_by(records.len() as u64);
                    remaining = remaining.saturating_sub(records.len());
                    if read_committed {
                        let upper = last_offset(&records).map_or(bound, |o| o + 1);
                        read.aborted = log.aborted_transactions(st.fetch_offset, upper);
                    }
                    read.error = None;
                    read.records = records;
                }
                Ok(None) => {}
                Err(error) => {
                    broker.metrics.tier.errors.with_label_values(&["fetch"]).inc();
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, offset = st.fetch_offset, %error, "remote fetch failed");
                    read.error = Some(crate::error::tiered_error(&error));
                }
            }
        }
        if read.log_start_offset >= 0 {
            read.log_start_offset = read.log_start_offset.min(remote_start);
        }
    }
    reads
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: FetchRequest) -> FetchResponse {
    let by_id = ctx.api_version >= 13;
    let read_committed = req.isolation_level == 1;
    let mut resp = FetchResponse::default();

    // Resolve the request's partitions (by name, or by id from v13).
    let resolve = |name: &TopicName, id: &uuid::Uuid| -> (String, uuid::Uuid) {
        if by_id {
            match broker.metadata.topic_by_id(id) {
                Some(t) => (t.name.clone(), *id),
                None => (String::new(), *id),
            }
        } else {
            let id = broker.metadata.topic(&name.0).map(|t| t.id).unwrap_or_default();
            (name.0.to_string(), id)
        }
    };
    let mut requested = Vec::new();
    for t in &req.topics {
        let (name, id) = resolve(&t.topic, &t.topic_id);
        for p in &t.partitions {
            let key = SessionPartition { topic: name.clone(), topic_id: id, partition: p.partition };
            requested.push((key, p.fetch_offset, p.partition_max_bytes, p.current_leader_epoch));
        }
    }
    let mut forgotten = Vec::new();
    for t in &req.forgotten_topics_data {
        let (name, id) = resolve(&t.topic, &t.topic_id);
        for p in &t.partitions {
            forgotten.push(SessionPartition { topic: name.clone(), topic_id: id, partition: *p });
        }
    }
    let plan = match broker.fetch_sessions.begin(req.session_id, req.session_epoch, requested, forgotten) {
        Ok(plan) => plan,
        Err(code) => {
            resp.error_code = code.code();
            return resp;
        }
    };
    resp.session_id = plan.session_id;

    // A consumer needs READ on each topic (asked once per topic: partitions of a topic are adjacent).
    let mut readable: Option<(String, bool)> = None;
    let mut may_read = |topic: &str| match &readable {
        Some((t, ok)) if t == topic => *ok,
        _ => {
            let ok = ctx.authorize(AclOperation::Read, Resource::Topic(topic));
            readable = Some((topic.to_string(), ok));
            ok
        }
    };
    let logs: Arc<Vec<_>> = plan
        .partitions
        .into_iter()
        .map(|(key, st)| {
            let log = match broker.metadata.topic(&key.topic).filter(|t| !by_id || t.id == key.topic_id) {
                Some(_) if !may_read(&key.topic) => Err(ResponseError::TopicAuthorizationFailed),
                Some(meta) => broker.partition(&meta, key.partition).map_err(|e| e.code),
                None if by_id => Err(ResponseError::UnknownTopicId),
                None => Err(ResponseError::UnknownTopicOrPartition),
            };
            (key, st, log)
        })
        .collect::<Vec<_>>()
        .into();

    let max_bytes = (req.max_bytes.max(0) as usize).min(broker.config.fetch_max_bytes);
    let min_bytes = req.min_bytes.max(0) as usize;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    // Subscribe before the first read so an append between the read and the wait still wakes us.
    let mut watchers: Vec<_> =
        logs.iter().filter_map(|(_, _, l)| l.as_ref().ok().map(|l| l.watch_high_watermark())).collect();
    let mut shutdown = broker.shutdown.clone();
    let reads = loop {
        let (reads, total) = read_pass_off_runtime(&logs, max_bytes, read_committed).await;
        let has_error = reads.iter().any(|r| r.error.is_some());
        if total >= min_bytes
            || has_error
            || watchers.is_empty()
            || tokio::time::Instant::now() >= deadline
            || *shutdown.borrow()
        {
            break reads;
        }
        let woke = {
            let changes = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => false,
                _ = shutdown.changed() => false,
                (r, _, _) = changes => r.is_ok(),
            }
        };
        if !woke {
            break read_pass_off_runtime(&logs, max_bytes, read_committed).await.0;
        }
    };

    let reads = remote_reads(broker, &logs, reads, max_bytes, read_committed).await;

    let mut sent = Vec::new();
    for ((key, st, _), read) in logs.iter().zip(reads) {
        if plan.incremental {
            let changed = read.error.is_some()
                || !read.records.is_empty()
                || read.high_watermark != st.last_high_watermark
                || read.log_start_offset != st.last_log_start_offset
                || read.last_stable_offset != st.last_stable_offset;
            if !changed {
                continue;
            }
        }
        sent.push(SentPartition {
            key: key.clone(),
            high_watermark: read.high_watermark,
            last_stable_offset: read.last_stable_offset,
            log_start_offset: read.log_start_offset,
            had_records: !read.records.is_empty(),
        });
        let mut pd = PartitionData::default();
        pd.partition_index = key.partition;
        pd.error_code = crate::error::wire_code(read.error);
        pd.high_watermark = read.high_watermark;
        pd.last_stable_offset = read.last_stable_offset;
        pd.log_start_offset = read.log_start_offset;
        pd.aborted_transactions = read_committed.then(|| {
            read.aborted
                .iter()
                .map(|t| {
                    let mut a = AbortedTransaction::default();
                    a.producer_id = ProducerId(t.producer_id);
                    a.first_offset = t.first_offset;
                    a
                })
                .collect()
        });
        pd.preferred_read_replica = BrokerId(-1);
        pd.records = Some(read.records);
        let same_topic = resp.responses.last().is_some_and(|t: &FetchableTopicResponse| {
            if by_id {
                t.topic_id == key.topic_id
            } else {
                t.topic.0.as_str() == key.topic
            }
        });
        if !same_topic {
            let mut t = FetchableTopicResponse::default();
            if by_id {
                t.topic_id = key.topic_id;
            } else {
                t.topic = TopicName(StrBytes::from_string(key.topic.clone()));
            }
            resp.responses.push(t);
        }
        if let Some(t) = resp.responses.last_mut() {
            t.partitions.push(pd);
        }
    }
    broker.fetch_sessions.record_sent(plan.session_id, &sent);
    resp
}
