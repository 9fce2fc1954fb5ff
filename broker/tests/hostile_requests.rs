//! Hostile request bodies through the real decode path: every advertised API and version goes
//! through `dispatch` on an in-process broker with bodies whose first count or length claims far
//! more than the frame holds. Each must close the connection as malformed (or, where the bytes
//! happen to read as a valid request, be answered) without a large allocation: the test binary's
//! allocator is capped ([`cap::Cap`]), so a decoder preallocating from a wire count aborts it.
//! A global allocator is per binary, so this is a test binary of its own (not a module of `it`):
//! there the cap would bound every other test's broker too.

use std::alloc::System;
use std::net::SocketAddr;

use bytes::Bytes;
use cap::Cap;
use kafka_protocol::messages::ApiKey;
use sluice::handlers::{dispatch, Reply, RequestContext, SUPPORTED_APIS};
use sluice::metrics::ConnectionMetrics;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Headroom above what the broker holds once started; far below any wire-count preallocation.
const ALLOCATION_LIMIT_BYTES: usize = 512 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_counts_close_the_connection_for_every_advertised_api() {
    let dir = tempfile::tempdir().expect("tmp");
    let handle = sluice_testkit::broker::start_in_process(dir.path(), &[]).await;
    let broker = handle.broker().clone();
    ALLOCATOR.set_limit(ALLOCATOR.allocated() + ALLOCATION_LIMIT_BYTES).expect("limit");

    let bodies: [&[u8]; 2] = [&[0x7f, 0xff, 0xff, 0xff], &[0xff, 0xff, 0xff, 0xff, 0x0f]];
    let mut closed = 0;
    for (api_key, min, max) in SUPPORTED_APIS {
        for api_version in *min..=*max {
            for body in bodies {
                let ctx = RequestContext::anonymous(
                    *api_key,
                    api_version,
                    "PLAINTEXT",
                    SocketAddr::from(([127, 0, 0, 1], 40000)),
                    broker.authorizer.clone(),
                );
                let mut conn = ConnectionMetrics::new(broker.metrics.clone());
                let reply = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    dispatch(&broker, &ctx, Bytes::from_static(body), &mut conn),
                )
                .await
                .unwrap_or_else(|_| panic!("{api_key:?} v{api_version} {body:02x?} did not finish"));
                match reply {
                    Reply::Close(reason) => {
                        assert!(reason.contains("malformed"), "{api_key:?} v{api_version}: {reason}");
                        closed += 1;
                    }
                    // ApiVersions v0 has no body and Heartbeat-like requests may read four bytes as
                    // a valid string: answered, which is what Kafka does with a valid request.
                    Reply::Response(_) | Reply::Chunks(_) | Reply::NoResponse => {}
                }
            }
        }
    }
    // The Metadata and CreateTopics frames that used to abort the broker are among the closed.
    for (api_key, version, body) in
        [(ApiKey::Metadata, 0, &bodies[0]), (ApiKey::Metadata, 12, &bodies[1]), (ApiKey::CreateTopics, 2, &bodies[0])]
    {
        let ctx = RequestContext::anonymous(
            api_key,
            version,
            "PLAINTEXT",
            SocketAddr::from(([127, 0, 0, 1], 40000)),
            broker.authorizer.clone(),
        );
        let mut conn = ConnectionMetrics::new(broker.metrics.clone());
        match dispatch(&broker, &ctx, Bytes::from_static(body), &mut conn).await {
            Reply::Close(reason) => assert!(reason.contains("Tried to allocate a collection"), "{reason}"),
            _ => panic!("{api_key:?} v{version} was not refused"),
        }
    }
    assert!(closed > 300, "only {closed} hostile bodies closed the connection");
    ALLOCATOR.set_limit(usize::MAX).expect("limit");
    handle.shutdown().await.expect("shutdown");
}
