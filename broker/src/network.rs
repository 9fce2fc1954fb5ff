//! Listeners and connections.
//!
//! One tokio task accepts per listener and one task serves each connection. A connection reads a
//! size prefix, checks it against `socket.request.max.bytes` *before* buffering the body, decodes
//! the header and hands the request to [`crate::handlers::dispatch`]. Requests on one connection
//! are processed in arrival order — as Kafka does, which also keeps a producer's pipelined
//! batches in order — while a separate writer task sends responses, so reading the next request
//! overlaps with writing the previous response. Anything that cannot be answered (garbage, an
//! oversized or truncated frame, an unknown API key, an unsupported version) closes only that
//! connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sluice_protocol::frame::{frame_body_len, FRAME_PREFIX_BYTES};
use sluice_protocol::request::{parse_request, HeaderError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::handlers::{dispatch, Reply, RequestContext};

/// Responses queued per connection before the reader waits for the writer (bounds memory held by
/// a client that does not read its responses).
const RESPONSE_QUEUE_DEPTH: usize = 32;

/// Accepts connections on `listener` until shutdown; each connection is tracked in `conns` so
/// shutdown can wait for in-flight requests to be answered.
pub async fn accept_loop(
    broker: Arc<Broker>,
    listener: TcpListener,
    listener_name: Arc<str>,
    connection_slots: Arc<Semaphore>,
    conns: Arc<tokio::sync::Mutex<JoinSet<()>>>,
) {
    let mut shutdown = broker.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connection_slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = broker.config.max_connections, "connection limit reached; closing new connection");
            drop(stream);
            continue;
        };
        let broker = broker.clone();
        let name = listener_name.clone();
        let mut set = conns.lock().await;
        // Reap finished connection tasks so the set stays bounded by open connections.
        while set.try_join_next().is_some() {}
        set.spawn(async move {
            serve_connection(broker, stream, peer, name).await;
            drop(permit);
        });
    }
}

/// Why a connection was closed (logged at debug; clients see only the close).
#[derive(Debug)]
enum CloseReason {
    PeerClosed,
    Idle,
    Shutdown,
    Io(std::io::Error),
    Frame(String),
    Request(String),
}

async fn serve_connection(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr, listener: Arc<str>) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(RESPONSE_QUEUE_DEPTH);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let reason = read_loop(&broker, BufReader::with_capacity(64 * 1024, rd), peer, &listener, &tx).await;
    drop(tx);
    let _ = writer.await;
    match reason {
        CloseReason::PeerClosed | CloseReason::Shutdown | CloseReason::Idle => {
            tracing::debug!(%peer, ?reason, "connection closed")
        }
        CloseReason::Io(e) => tracing::info!(%peer, error = %e, "closing connection after i/o error"),
        CloseReason::Frame(why) => tracing::info!(%peer, reason = %why, "closing connection: bad frame"),
        CloseReason::Request(why) => tracing::info!(%peer, reason = %why, "closing connection: bad request"),
    }
}

async fn read_loop(
    broker: &Arc<Broker>,
    mut rd: BufReader<tokio::net::tcp::OwnedReadHalf>,
    peer: SocketAddr,
    listener: &Arc<str>,
    tx: &mpsc::Sender<Bytes>,
) -> CloseReason {
    let mut shutdown = broker.shutdown.clone();
    let idle = match broker.config.connections_max_idle_ms {
        ms if ms < 0 => Duration::from_secs(u64::MAX / 4),
        ms => Duration::from_millis(ms as u64),
    };
    let max_frame = broker.config.socket_request_max_bytes;
    loop {
        if *shutdown.borrow() {
            return CloseReason::Shutdown;
        }
        let mut prefix = [0u8; FRAME_PREFIX_BYTES];
        let read = tokio::select! {
            _ = shutdown.changed() => return CloseReason::Shutdown,
            r = tokio::time::timeout(idle, rd.read_exact(&mut prefix)) => r,
        };
        match read {
            Err(_) => return CloseReason::Idle,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return CloseReason::PeerClosed,
            Ok(Err(e)) => return CloseReason::Io(e),
            Ok(Ok(_)) => {}
        }
        let len = match frame_body_len(prefix, max_frame) {
            Ok(n) => n,
            Err(e) => return CloseReason::Frame(e.to_string()),
        };
        let mut body = BytesMut::zeroed(len);
        // A frame cut short by the peer is just a close; a slow one is bounded by the idle timeout.
        match tokio::time::timeout(idle, rd.read_exact(&mut body)).await {
            Err(_) => return CloseReason::Idle,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return CloseReason::Frame(format!("connection closed mid-frame ({len} bytes declared)"))
            }
            Ok(Err(e)) => return CloseReason::Io(e),
            Ok(Ok(_)) => {}
        }
        let frame = match parse_request(body.freeze()) {
            Ok(f) => f,
            Err(e @ (HeaderError::UnknownApiKey { .. } | HeaderError::Malformed { .. } | HeaderError::Truncated(_))) => {
                return CloseReason::Request(e.to_string())
            }
        };
        let ctx = RequestContext {
            api_key: frame.api_key,
            api_version: frame.header.request_api_version,
            correlation_id: frame.header.correlation_id,
            client_id: frame.header.client_id.as_ref().map(|s| s.to_string()),
            listener: listener.clone(),
            peer,
        };
        match dispatch(broker, &ctx, frame.body).await {
            Reply::Response(bytes) => {
                if tx.send(bytes).await.is_err() {
                    return CloseReason::PeerClosed;
                }
            }
            Reply::NoResponse => {}
            Reply::Close(reason) => return CloseReason::Request(reason),
        }
    }
}
