//! The metrics listener (`metrics.listener`, default 127.0.0.1:9644): a small HTTP/1.1 server on
//! hyper serving
//! - `GET /metrics` — Prometheus text format (0.0.4) of the broker's registry;
//! - `GET /health/live` — 200 while the process serves HTTP at all;
//! - `GET /health/ready` — 200 once logs are loaded and every Kafka listener is bound, 503 before
//!   that and again once shutdown begins (so a load balancer stops routing first).
//!
//! It is bound first thing in `sluice::start`, before logs load, so liveness answers during a long
//! recovery; a bind failure stops startup naming `metrics.listener`. It stops when the broker's
//! shutdown signal flips (or its sender is dropped, when startup fails later on).
//!
//! Limits: at most [`MAX_METRICS_CONNECTIONS`] concurrent scrape connections (more are closed at
//! accept), request headers must arrive within [`HEADER_READ_TIMEOUT`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::Metrics;

pub use crate::limits::{HEADER_READ_TIMEOUT, MAX_METRICS_CONNECTIONS};

/// Binds the metrics listener; the error names `metrics.listener`.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("binding metrics.listener on {addr}: {e}"))
}

/// Serves until `shutdown` flips to true or its sender is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_METRICS_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let accepted = tokio::select! {
            r = shutdown.changed() => match r {
                Ok(()) => continue,
                Err(_) => break,
            },
            r = listener.accept() => r,
        };
        while conns.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "metrics connection limit reached; closing");
            continue;
        };
        let metrics = metrics.clone();
        conns.spawn(async move {
            let service = service_fn(move |req| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(route(&metrics, &req)) }
            });
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "metrics connection ended with an error");
            }
            drop(permit);
        });
    }
    // Scrapes in progress are cut: the broker is going away.
    conns.shutdown().await;
}

fn route(metrics: &Metrics, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    match req.uri().path() {
        _ if !get => text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n"),
        "/metrics" => {
            let mut resp = Response::new(Full::new(Bytes::from(metrics.render())));
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(prometheus::TEXT_FORMAT));
            resp
        }
        "/health/live" => text(StatusCode::OK, "ok\n"),
        "/health/ready" if metrics.is_ready() => text(StatusCode::OK, "ready\n"),
        "/health/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => text(StatusCode::NOT_FOUND, "not found: try /metrics, /health/live or /health/ready\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}
