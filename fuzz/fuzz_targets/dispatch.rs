//! Every advertised request body through `dispatch` against one in-process broker. The first
//! byte picks the API from `SUPPORTED_APIS`, the second its version within the advertised range,
//! and the rest is the body as the network layer hands it over (header already cut), so every
//! input reaches a body decoder and, when it decodes, a handler. Handlers run with a short
//! deadline (long polls, rebalance waits) and are dropped when it passes, as a closed connection
//! drops them. Nothing may panic, and the broker must still answer ApiVersions afterwards.

#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use libfuzzer_sys::fuzz_target;
use sluice::handlers::{dispatch, Reply, RequestContext, SUPPORTED_APIS};
use sluice::metrics::ConnectionMetrics;
use sluice::{BrokerHandle, Config};

/// How long a handler may run before it is dropped: long enough for an append, far shorter than
/// any long poll, so one input costs milliseconds.
const HANDLER_DEADLINE: Duration = Duration::from_millis(50);

struct Harness {
    runtime: tokio::runtime::Runtime,
    handle: BrokerHandle,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let log_dirs = dir.path().to_string_lossy().into_owned();
        let config = Config::from_overrides(&[
            ("listeners", "PLAINTEXT://127.0.0.1:0"),
            ("log.dirs", &log_dirs),
            ("metrics.listener", "none"),
            ("group.initial.rebalance.delay.ms", "0"),
        ])
        .expect("config");
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let handle = runtime.block_on(sluice::start(config)).expect("broker starts");
        Harness { runtime, handle, _dir: dir }
    })
}

fn context(api_key: ApiKey, api_version: i16, authorizer: Arc<dyn sluice::authz::Authorizer>) -> RequestContext {
    RequestContext::anonymous(api_key, api_version, "PLAINTEXT", SocketAddr::from(([127, 0, 0, 1], 40000)), authorizer)
}

fuzz_target!(|data: &[u8]| {
    let [api, version, body @ ..] = data else { return };
    let (api_key, min, max) = SUPPORTED_APIS[*api as usize % SUPPORTED_APIS.len()];
    let api_version = min + (*version as i16 % (max - min + 1));
    let h = harness();
    let broker = h.handle.broker().clone();
    let body = Bytes::copy_from_slice(body);
    h.runtime.block_on(async move {
        let mut conn = ConnectionMetrics::new(broker.metrics.clone());
        let ctx = context(api_key, api_version, broker.authorizer.clone());
        let _ = tokio::time::timeout(HANDLER_DEADLINE, dispatch(&broker, &ctx, body, &mut conn)).await;

        // Still serving: ApiVersions v3 answers with every supported API.
        let mut request = bytes::BytesMut::new();
        let mut api_versions = ApiVersionsRequest::default();
        // v3+ requires a client software name and version (INVALID_REQUEST otherwise).
        api_versions.client_software_name = StrBytes::from_static_str("sluice-fuzz");
        api_versions.client_software_version = StrBytes::from_static_str("1");
        api_versions.encode(&mut request, 3).expect("encode");
        let ctx = context(ApiKey::ApiVersions, 3, broker.authorizer.clone());
        let Reply::Response(frame) = dispatch(&broker, &ctx, request.freeze(), &mut conn).await else {
            panic!("ApiVersions did not answer");
        };
        // Size prefix, correlation id, then (flexible response header v0 for ApiVersions) the body.
        let mut response = frame.slice(8..);
        let response = ApiVersionsResponse::decode(&mut response, 3).expect("ApiVersions response decodes");
        assert_eq!(response.error_code, 0);
        assert_eq!(response.api_keys.len(), SUPPORTED_APIS.len());
    });
});
