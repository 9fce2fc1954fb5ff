//! Request dispatch: one handler module per Kafka API.
//!
//! [`SUPPORTED_APIS`] is the single list of what Sluice advertises in ApiVersions; a request for
//! any other API or version never reaches a handler. Each handler takes the decoded request and
//! returns the typed response; this module decodes, checks versions and encodes, so handlers hold
//! only Kafka semantics. Every request passes through [`dispatch`] — the future home of the
//! authorization check (ACLs) and quota throttling.

pub mod api_versions;
pub mod create_topics;
pub mod delete_topics;
pub mod describe_cluster;
pub mod fetch;
pub mod list_offsets;
pub mod metadata;
pub mod produce;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use sluice_protocol::request::encode_response;

use crate::broker::Broker;

/// Every API Sluice serves, with the version range it advertises: Kafka 4.1's ranges for these
/// APIs (as encoded by the `kafka-protocol` crate). Each entry has a handler below and an
/// encode/decode round-trip test for every version.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeCluster, 0, 2),
];

/// The advertised version range of `key`, if Sluice serves it.
pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS.iter().find(|(k, _, _)| *k == key).map(|(_, min, max)| (*min, *max))
}

/// What one request produced.
pub enum Reply {
    /// A complete response frame (size prefix included).
    Response(Bytes),
    /// Nothing to send (`acks=0` produce).
    NoResponse,
    /// Close the connection, for the logged reason.
    Close(String),
}

/// Who sent a request, and how.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// The listener the connection arrived on.
    pub listener: Arc<str>,
    pub peer: SocketAddr,
}

impl RequestContext {
    /// Encodes `body` as this request's response.
    pub fn respond<M: Encodable>(&self, body: &M) -> Reply {
        let header_version = self.api_key.response_header_version(self.api_version);
        match encode_response(self.correlation_id, header_version, self.api_version, body) {
            Ok(b) => Reply::Response(b),
            Err(e) => Reply::Close(format!("encoding {:?} v{} response failed: {e}", self.api_key, self.api_version)),
        }
    }
}

fn decode<R: Decodable>(ctx: &RequestContext, mut body: Bytes) -> Result<R, Reply> {
    R::decode(&mut body, ctx.api_version).map_err(|e| {
        Reply::Close(format!("malformed {:?} v{} request: {e}", ctx.api_key, ctx.api_version))
    })
}

/// Routes one request to its handler.
pub async fn dispatch(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let Some((min, max)) = supported_range(ctx.api_key) else {
        return Reply::Close(format!("unsupported api {:?}", ctx.api_key));
    };
    if ctx.api_version < min || ctx.api_version > max {
        if ctx.api_key == ApiKey::ApiVersions {
            // KIP-511: answer an unknown ApiVersions version with a v0 response carrying
            // UNSUPPORTED_VERSION and our list, so the client can retry with a version we know.
            return api_versions::unsupported_version(ctx);
        }
        return Reply::Close(format!("unsupported version {} of {:?}", ctx.api_version, ctx.api_key));
    }
    macro_rules! call {
        ($handler:path) => {
            match decode(ctx, body) {
                Ok(req) => ctx.respond(&$handler(broker, ctx, req).await),
                Err(reply) => reply,
            }
        };
    }
    match ctx.api_key {
        ApiKey::ApiVersions => call!(api_versions::handle),
        ApiKey::Metadata => call!(metadata::handle),
        ApiKey::Produce => match decode(ctx, body) {
            Ok(req) => match produce::handle(broker, ctx, req).await {
                produce::ProduceReply::Response(resp) => ctx.respond(&resp),
                produce::ProduceReply::Silent => Reply::NoResponse,
                produce::ProduceReply::Close(reason) => Reply::Close(reason),
            },
            Err(reply) => reply,
        },
        ApiKey::Fetch => call!(fetch::handle),
        ApiKey::ListOffsets => call!(list_offsets::handle),
        ApiKey::CreateTopics => call!(create_topics::handle),
        ApiKey::DeleteTopics => call!(delete_topics::handle),
        ApiKey::DescribeCluster => call!(describe_cluster::handle),
        other => Reply::Close(format!("no handler for {other:?}")),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
