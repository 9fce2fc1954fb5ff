//! Request dispatch: one handler module per Kafka API.
//!
//! [`SUPPORTED_APIS`] is the single list of what Sluice advertises in ApiVersions; a request for
//! any other API or version never reaches a handler. Each handler takes the decoded request and
//! returns the typed response; this module decodes, checks versions and encodes, so handlers hold
//! only Kafka semantics. Every request passes through [`dispatch`] — where request metrics are
//! taken (queue and processing time, response error codes, per-topic produce/fetch throughput) and
//! the future home of quota throttling. Each handler asks the request's context whether the
//! principal may act on each resource it touches ([`crate::authz`]), where Kafka's `KafkaApis` asks.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_replica_log_dirs;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_config_resources;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod update_features;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Decodable;

pub use crate::apis::{supported_range, SUPPORTED_APIS};
use crate::broker::Broker;
pub use crate::context::{Reply, RequestContext};
use crate::metrics::{ApiMetrics, ConnectionMetrics};

fn decode<R: Decodable>(ctx: &RequestContext, mut body: Bytes) -> Result<R, Reply> {
    R::decode(&mut body, ctx.api_version)
        // `{e:#}` names the cause under the codec's outer context ("Failed to decode …").
        .map_err(|e| Reply::Close(format!("malformed {:?} v{} request: {e:#}", ctx.api_key, ctx.api_version)))
}

/// Times a handler: queue time up to now, processing time until `finish`.
struct HandlerTimer<'a> {
    api: &'a ApiMetrics,
    started: Instant,
}

impl<'a> HandlerTimer<'a> {
    fn start(api: &'a ApiMetrics, conn: &ConnectionMetrics) -> Self {
        let started = Instant::now();
        api.queue_time.observe(started.saturating_duration_since(conn.received_at).as_secs_f64());
        HandlerTimer { api, started }
    }

    fn finish(self, reply: Reply) -> Reply {
        self.api.processing_time.observe(self.started.elapsed().as_secs_f64());
        reply
    }
}

/// Routes one request to its handler; `conn` carries the connection's metrics state.
pub async fn dispatch(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes, conn: &mut ConnectionMetrics) -> Reply {
    let metrics = &broker.metrics;
    let api = metrics.requests.api(ctx.api_key);
    let resolve_id = |id: &uuid::Uuid| broker.metadata.topic_by_id(id).map(|t| t.name.clone());
    let Some((min, max)) = supported_range(ctx.api_key) else {
        return Reply::Close(format!("unsupported api {:?}", ctx.api_key));
    };
    if ctx.api_version < min || ctx.api_version > max {
        if ctx.api_key == ApiKey::ApiVersions {
            // KIP-511: answer an unknown ApiVersions version with a v0 response carrying
            // UNSUPPORTED_VERSION and our list, so the client can retry with a version we know.
            api.error_code(kafka_protocol::ResponseError::UnsupportedVersion.code());
            return api_versions::unsupported_version(ctx);
        }
        return Reply::Close(format!("unsupported version {} of {:?}", ctx.api_version, ctx.api_key));
    }
    // `$observe` sees the typed response before it is encoded (error codes, throughput).
    macro_rules! call {
        ($handler:path) => {
            call!($handler, |_resp| {})
        };
        ($handler:path, $observe:expr) => {
            match decode(ctx, body) {
                Ok(req) => {
                    let timer = HandlerTimer::start(api, conn);
                    let resp = $handler(broker, ctx, req).await;
                    api.response_errors(&resp);
                    #[allow(clippy::redundant_closure_call)]
                    ($observe)(&resp);
                    timer.finish(ctx.respond(&resp))
                }
                Err(reply) => reply,
            }
        };
    }
    match ctx.api_key {
        ApiKey::ApiVersions => call!(api_versions::handle),
        ApiKey::Metadata => call!(metadata::handle),
        ApiKey::Produce => match decode::<kafka_protocol::messages::ProduceRequest>(ctx, body) {
            Ok(req) => {
                let timer = HandlerTimer::start(api, conn);
                conn.note_produce(&req, ctx.api_version >= 13);
                let reply = match produce::handle(broker, ctx, req).await {
                    produce::ProduceReply::Response(resp) => {
                        api.response_errors(&resp);
                        conn.count_produced(Some(&resp), resolve_id);
                        ctx.respond(&resp)
                    }
                    produce::ProduceReply::Silent => {
                        // acks=0 and every partition appended: count them as NONE.
                        for _ in 0..conn.produce_scratch.len() {
                            api.error_code(0);
                        }
                        conn.count_produced(None, resolve_id);
                        Reply::NoResponse
                    }
                    produce::ProduceReply::Close(reason) => Reply::Close(reason),
                };
                timer.finish(reply)
            }
            Err(reply) => reply,
        },
        ApiKey::Fetch => {
            let by_id = ctx.api_version >= 13;
            match decode::<kafka_protocol::messages::FetchRequest>(ctx, body) {
                Ok(req) => {
                    let timer = HandlerTimer::start(api, conn);
                    let resp = fetch::handle(broker, ctx, req).await;
                    api.response_errors(&resp);
                    conn.count_fetched(&resp, by_id, resolve_id);
                    timer.finish(ctx.respond_fetch(&resp))
                }
                Err(reply) => reply,
            }
        }
        ApiKey::ListOffsets => call!(list_offsets::handle),
        ApiKey::CreateTopics => call!(create_topics::handle),
        ApiKey::DeleteTopics => {
            call!(delete_topics::handle, |resp: &kafka_protocol::messages::DeleteTopicsResponse| {
                for r in resp.responses.iter().filter(|r| r.error_code == 0) {
                    if let Some(name) = &r.name {
                        metrics.topics.forget(name.0.as_str());
                    }
                }
            })
        }
        ApiKey::DescribeCluster => call!(describe_cluster::handle),
        ApiKey::FindCoordinator => call!(find_coordinator::handle),
        ApiKey::JoinGroup => call!(join_group::handle),
        ApiKey::SyncGroup => call!(sync_group::handle),
        ApiKey::Heartbeat => call!(heartbeat::handle),
        ApiKey::LeaveGroup => call!(leave_group::handle),
        ApiKey::OffsetCommit => call!(offset_commit::handle),
        ApiKey::OffsetFetch => call!(offset_fetch::handle),
        ApiKey::ListGroups => call!(list_groups::handle),
        ApiKey::DescribeGroups => call!(describe_groups::handle),
        ApiKey::DeleteGroups => call!(delete_groups::handle),
        ApiKey::ConsumerGroupHeartbeat => call!(consumer_group_heartbeat::handle),
        ApiKey::ConsumerGroupDescribe => call!(consumer_group_describe::handle),
        ApiKey::OffsetDelete => call!(offset_delete::handle),
        ApiKey::DescribeConfigs => call!(describe_configs::handle),
        ApiKey::AlterConfigs => call!(alter_configs::handle),
        ApiKey::IncrementalAlterConfigs => call!(incremental_alter_configs::handle),
        ApiKey::CreatePartitions => call!(create_partitions::handle),
        ApiKey::DeleteRecords => call!(delete_records::handle),
        ApiKey::DescribeLogDirs => call!(describe_log_dirs::handle),
        ApiKey::UpdateFeatures => call!(update_features::handle),
        ApiKey::AlterReplicaLogDirs => call!(alter_replica_log_dirs::handle),
        ApiKey::InitProducerId => call!(init_producer_id::handle),
        ApiKey::AddPartitionsToTxn => call!(add_partitions_to_txn::handle),
        ApiKey::AddOffsetsToTxn => call!(add_offsets_to_txn::handle),
        ApiKey::EndTxn => call!(end_txn::handle),
        ApiKey::TxnOffsetCommit => call!(txn_offset_commit::handle),
        ApiKey::DescribeTransactions => call!(describe_transactions::handle),
        ApiKey::ListTransactions => call!(list_transactions::handle),
        ApiKey::DescribeProducers => call!(describe_producers::handle),
        ApiKey::ElectLeaders => call!(elect_leaders::handle),
        ApiKey::AlterPartitionReassignments => call!(alter_partition_reassignments::handle),
        ApiKey::ListPartitionReassignments => call!(list_partition_reassignments::handle),
        ApiKey::DescribeQuorum => call!(describe_quorum::handle),
        ApiKey::DescribeTopicPartitions => call!(describe_topic_partitions::handle),
        ApiKey::OffsetForLeaderEpoch => call!(offset_for_leader_epoch::handle),
        ApiKey::ListConfigResources => call!(list_config_resources::handle),
        other => Reply::Close(format!("no handler for {other:?}")),
    }
}

/// Kept for callers outside the crate; the clock lives in [`crate::clock`].
pub use crate::clock::now_ms;
