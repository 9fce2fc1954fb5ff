//! Who sent a request and how ([`RequestContext`]), and what handling it produced ([`Reply`]).
//!
//! The network layer builds a context per request; handlers read it, answer through it and ask it
//! the one authorization question ([`RequestContext::authorize`], in [`crate::authz`]).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;
use sluice_protocol::request::encode_response;

use crate::authz::{Authorizer, KafkaPrincipal};

/// What one request produced.
pub enum Reply {
    /// A complete response frame (size prefix included).
    Response(Bytes),
    /// A response frame in pieces, written with one vectored write (Fetch: record batches are
    /// passed through from the log without being copied into a response buffer).
    Chunks(Vec<Bytes>),
    /// Nothing to send (`acks=0` produce).
    NoResponse,
    /// Close the connection, for the logged reason.
    Close(String),
}

/// Who sent a request, and how.
#[derive(Clone)]
pub struct RequestContext {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// The listener the connection arrived on.
    pub listener: Arc<str>,
    pub peer: SocketAddr,
    /// Who the connection authenticated as (`User:ANONYMOUS` without authentication).
    pub principal: KafkaPrincipal,
    /// The broker's authorizer, which [`RequestContext::authorize`] asks.
    pub authorizer: Arc<dyn Authorizer>,
}

impl RequestContext {
    /// A request of the anonymous principal without a client id, as tests and fuzz targets
    /// dispatch them.
    pub fn anonymous(
        api_key: ApiKey,
        api_version: i16,
        listener: &str,
        peer: SocketAddr,
        authorizer: Arc<dyn Authorizer>,
    ) -> Self {
        RequestContext {
            api_key,
            api_version,
            correlation_id: 1,
            client_id: None,
            listener: Arc::from(listener),
            peer,
            principal: KafkaPrincipal::anonymous(),
            authorizer,
        }
    }

    /// Encodes `body` as this request's response.
    pub fn respond<M: Encodable>(&self, body: &M) -> Reply {
        let header_version = self.api_key.response_header_version(self.api_version);
        match encode_response(self.correlation_id, header_version, self.api_version, body) {
            Ok(b) => Reply::Response(b),
            Err(e) => Reply::Close(format!("encoding {:?} v{} response failed: {e}", self.api_key, self.api_version)),
        }
    }

    /// Encodes a Fetch response without copying its records.
    pub fn respond_fetch(&self, body: &kafka_protocol::messages::FetchResponse) -> Reply {
        match sluice_protocol::fetch::encode_fetch_response(self.correlation_id, self.api_version, body) {
            Ok(c) => Reply::Chunks(c.chunks),
            Err(e) => Reply::Close(format!("encoding Fetch v{} response failed: {e}", self.api_version)),
        }
    }
}

/// `tokio::task::spawn_blocking` that keeps the caller's tracing span: what blocking work done for
/// a request logs (a topic created, a log dir failing) carries that request's span.
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
}
