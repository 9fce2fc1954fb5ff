//! Produce (key 0), v3–v13: validate each partition's single batch against its topic's configs,
//! append it, advance the high watermark, answer with the base offset. Transactional batches
//! go to the transaction coordinator first: up to v11 (transactions v1) it verifies that the
//! partition is in the producer's transaction (KIP-890 part 1); from v12 (transactions v2,
//! KIP-890 part 2: the client no longer sends AddPartitionsToTxn) it adds the partition to the
//! transaction, as Kafka's leader does through AddPartitionsToTxnManager. `acks=0` gets no response
//! (and, as in Kafka, an error closes the connection so the client notices).

use std::sync::Arc;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use sluice_storage::{StorageError, UnifiedLog};

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::{Broker, LEADER_EPOCH};
use crate::clock::now_ms;
use crate::metadata::TopicMeta;
use crate::validate::{single_batch, validate_batch, Rejection};

/// What the connection does with a produce request's outcome.
pub enum ProduceReply {
    Response(ProduceResponse),
    /// `acks=0` and everything succeeded.
    Silent,
    /// `acks=0` and something failed: close so the client learns of it.
    Close(String),
}

fn error_response(index: i32, code: ResponseError, message: Option<String>) -> PartitionProduceResponse {
    let mut r = PartitionProduceResponse::default();
    r.index = index;
    r.error_code = code.code();
    r.base_offset = -1;
    r.log_append_time_ms = -1;
    r.log_start_offset = -1;
    r.error_message = message.map(StrBytes::from_string);
    r
}

fn rejection_response(index: i32, rej: Rejection) -> PartitionProduceResponse {
    let mut r = error_response(index, rej.code, rej.message);
    r.record_errors = rej
        .record_errors
        .into_iter()
        .map(|(i, msg)| {
            let mut e = BatchIndexAndErrorMessage::default();
            e.batch_index = i;
            e.batch_index_error_message = Some(StrBytes::from_string(msg));
            e
        })
        .collect();
    r
}

async fn produce_partition(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    transactional_id: Option<&str>,
    topic: &TopicMeta,
    index: i32,
    records: Option<bytes::Bytes>,
) -> PartitionProduceResponse {
    let log = match broker.partition(topic, index) {
        Ok(l) => l,
        Err(e) => return error_response(index, e.code, Some(e.message)),
    };
    let tp_name = format!("{}-{index}", topic.name);
    let now = now_ms();
    let validated = match single_batch(records.as_ref()).and_then(|b| validate_batch(b, &tp_name, &topic.config, now)) {
        Ok(v) => v,
        Err(rej) => {
            tracing::debug!(topic_partition = %tp_name, code = ?rej.code, message = ?rej.message, "produce rejected");
            return rejection_response(index, rej);
        }
    };
    // A transactional batch must belong to its producer's ongoing transaction: verified
    // (KIP-890 part 1) or, from v12, added (part 2). The guard keeps the coordinator from writing
    // the transaction's marker before this append.
    let _txn_guard = if validated.batch.is_transactional() && validated.batch.producer_id() >= 0 {
        let b = &validated.batch;
        let (pid, epoch) = (b.producer_id(), b.producer_epoch());
        let outcome = if ctx.api_version >= 12 {
            // Kafka's leader answers a fenced producer with INVALID_PRODUCER_EPOCH.
            broker.txns.add_write(transactional_id, pid, epoch, &topic.name, index).await.map_err(|e| match e {
                ResponseError::ProducerFenced => ResponseError::InvalidProducerEpoch,
                other => other,
            })
        } else {
            broker.txns.verify_write(pid, epoch, &topic.name, index).await
        };
        match outcome {
            Ok(g) => Some(g),
            Err(code) => {
                tracing::debug!(topic_partition = %tp_name, ?code, producer_id = b.producer_id(), "transactional produce rejected");
                return error_response(index, code, None);
            }
        }
    } else {
        None
    };
    // The append itself goes to the page cache and is quick. With `flush.messages` (1 = the
    // durable mode) the batch is fsynced before it is acknowledged, whatever `acks` says (as in
    // Kafka, the flush policy belongs to the log); the wait never blocks the runtime.
    let appended = match log.append_deferring_flush(std::slice::from_ref(&validated.batch), LEADER_EPOCH) {
        Ok((info, Some(flush_to))) => wait_flushed(&log, flush_to).await.map(|()| info),
        Ok((info, None)) => Ok(info),
        Err(e) => Err(e),
    };
    match appended {
        Ok(info) => {
            // One replica: the leader's log end is the high watermark.
            log.advance_high_watermark(info.last_offset + 1);
            let mut r = PartitionProduceResponse::default();
            r.index = index;
            r.base_offset = info.first_offset;
            r.log_append_time_ms = validated.log_append_time.unwrap_or(-1);
            r.log_start_offset = info.log_start_offset;
            r
        }
        Err(e) => {
            tracing::warn!(topic_partition = %tp_name, error = %e, "append failed");
            error_response(index, crate::error::storage_error(&e), Some(e.to_string()))
        }
    }
}

/// Waits until the partition's recovery point reaches `offset` (everything below it fsynced).
/// Group commit: one flush runs at a time, on a blocking thread, started by whichever waiter
/// finds none running; it covers every append made before it began, and the others wait on the
/// recovery point watch, so concurrent producers share fsyncs instead of queueing for their own.
async fn wait_flushed(log: &Arc<UnifiedLog>, offset: i64) -> Result<(), StorageError> {
    let mut flushed = log.watch_recovery_point();
    loop {
        if *flushed.borrow_and_update() >= offset {
            return Ok(());
        }
        // A failed flush takes the log dir offline and wakes every waiter.
        log.check()?;
        if !log.flush_in_progress() {
            let l = log.clone();
            match crate::context::spawn_blocking(move || l.try_flush()).await {
                Ok(Some(result)) => {
                    result?;
                    continue;
                }
                // Another waiter started one first: wait for it like the rest.
                Ok(None) => {}
                Err(e) => {
                    return Err(StorageError::Io { path: log.dir(), source: std::io::Error::other(e.to_string()) })
                }
            }
        }
        // Sent after every flush ends; the sender lives as long as the partition we hold.
        if flushed.changed().await.is_err() {
            log.check()?;
            return Err(StorageError::Deleted(log.topic_partition().clone()));
        }
    }
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: ProduceRequest) -> ProduceReply {
    let by_id = ctx.api_version >= 13;
    let acks_valid = matches!(req.acks, -1..=1);
    // A transactional produce needs WRITE on its transactional id; every topic needs WRITE.
    let txn_denied = req
        .transactional_id
        .as_ref()
        .is_some_and(|id| !ctx.authorize(AclOperation::Write, Resource::TransactionalId(&id.0)));
    let mut resp = ProduceResponse::default();
    let mut any_error = false;
    for td in req.topic_data {
        let mut tr = TopicProduceResponse::default();
        tr.name = td.name.clone();
        tr.topic_id = td.topic_id;
        let topic = if by_id { broker.metadata.topic_by_id(&td.topic_id) } else { broker.metadata.topic(&td.name.0) };
        let writable = topic.as_ref().is_none_or(|t| ctx.authorize(AclOperation::Write, Resource::Topic(&t.name)));
        for pd in td.partition_data {
            let pr = if !acks_valid {
                error_response(pd.index, ResponseError::InvalidRequiredAcks, None)
            } else if txn_denied {
                error_response(pd.index, ResponseError::TransactionalIdAuthorizationFailed, None)
            } else if !writable {
                error_response(pd.index, ResponseError::TopicAuthorizationFailed, None)
            } else {
                match &topic {
                    // Kafka's ReplicaManager: only the coordinators append to internal topics.
                    Some(t) if t.internal => error_response(
                        pd.index,
                        ResponseError::InvalidTopicException,
                        Some(format!("Cannot append to internal topic {}", t.name)),
                    ),
                    Some(t) => {
                        let txn_id = req.transactional_id.as_ref().map(|id| id.0.as_str());
                        produce_partition(broker, ctx, txn_id, t, pd.index, pd.records).await
                    }
                    None if by_id => error_response(pd.index, ResponseError::UnknownTopicId, None),
                    None => error_response(pd.index, ResponseError::UnknownTopicOrPartition, None),
                }
            };
            any_error |= pr.error_code != 0;
            tr.partition_responses.push(pr);
        }
        resp.responses.push(tr);
    }
    if req.acks == 0 {
        return if any_error { ProduceReply::Close("acks=0 produce failed".into()) } else { ProduceReply::Silent };
    }
    ProduceReply::Response(resp)
}
