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
//!
//! Every resource a client can make the broker hold is bounded here ([`Admission`]):
//! - connections: `max.connections` in all, `max.connections.per.ip` (with
//!   `max.connections.per.ip.overrides`) per address; extra connections are closed at once;
//! - requests being worked on, broker-wide: `queued.max.requests` of them and
//!   `queued.max.request.bytes` of frames (Kafka's request queue and memory pool); a reader waits
//!   for room before it reads the next frame body, so a flood of requests queues in the kernel's
//!   socket buffers, not in the broker's heap;
//! - responses waiting to be written, per connection: `queued.max.response.bytes`; a connection
//!   whose responses are not being read stops being read itself, and a writer that makes no
//!   progress for `connections.max.idle.ms` closes the connection and frees what it held.
//!
//! Metrics: connections are counted open/accepted/closed-by-reason here; each request's count and
//! bytes are counted once its header parses, and its total time (frame read to response written)
//! is observed by the writer task. Handler-level metrics are recorded in `dispatch`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use sluice_protocol::frame::{frame_body_len, FRAME_PREFIX_BYTES};
use sluice_protocol::request::{parse_request, HeaderError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::authz::KafkaPrincipal;
use crate::broker::Broker;
use crate::config::Config;
use crate::handlers::{dispatch, Reply, RequestContext};
use crate::limits::{MAX_IOVECS, MAX_RESPONSES_PER_WRITE, READ_BUFFER_BYTES, RESPONSE_QUEUE_DEPTH};
use crate::metrics::{CloseLabel, ConnectionMetrics, OpenConnection};

/// What the broker lets clients hold, shared by every listener (see the module docs).
pub struct Admission {
    connections: Arc<Semaphore>,
    max_connections: usize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_per_ip: usize,
    per_ip_overrides: HashMap<IpAddr, usize>,
    /// `queued.max.requests`: requests read and not yet answered, broker-wide.
    requests: Arc<Semaphore>,
    /// `queued.max.request.bytes` as a pool of permits (one per byte, capped at the
    /// semaphore's maximum); `None` when unbounded.
    request_bytes: Option<(Arc<Semaphore>, usize)>,
    response_bytes_per_connection: usize,
}

/// A connection's hold on its slots; released (and the per-address count decremented) on drop.
struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    ip: IpAddr,
    admission: Arc<Admission>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut per_ip = self.admission.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// Why a new connection was refused.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    Total(usize),
    PerIp(usize),
}

impl Admission {
    pub fn new(config: &Config) -> Arc<Admission> {
        let request_bytes = config.queued_max_request_bytes.map(|n| {
            let n = n.clamp(1, Semaphore::MAX_PERMITS);
            (Arc::new(Semaphore::new(n)), n)
        });
        Arc::new(Admission {
            connections: Arc::new(Semaphore::new(config.max_connections.clamp(1, Semaphore::MAX_PERMITS))),
            max_connections: config.max_connections,
            per_ip: Mutex::new(HashMap::new()),
            max_per_ip: config.max_connections_per_ip,
            per_ip_overrides: config.max_connections_per_ip_overrides.iter().copied().collect(),
            requests: Arc::new(Semaphore::new(config.queued_max_requests.clamp(1, Semaphore::MAX_PERMITS))),
            request_bytes,
            response_bytes_per_connection: config.queued_max_response_bytes.clamp(1, Semaphore::MAX_PERMITS),
        })
    }

    /// Takes a connection slot for `ip`, or says which limit refused it.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refused> {
        let limit = self.per_ip_overrides.get(&ip).copied().unwrap_or(self.max_per_ip);
        let mut per_ip = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        let n = per_ip.get(&ip).copied().unwrap_or(0);
        if n >= limit {
            return Err(Refused::PerIp(limit));
        }
        let permit = self.connections.clone().try_acquire_owned().map_err(|_| Refused::Total(self.max_connections))?;
        per_ip.insert(ip, n + 1);
        Ok(ConnectionSlot { _permit: permit, ip, admission: self.clone() })
    }

    /// Waits for room for one more request of `frame_len` bytes in the broker-wide queue.
    async fn reserve_request(&self, frame_len: usize) -> Option<RequestPermits> {
        let request = self.requests.clone().acquire_owned().await.ok()?;
        let bytes = match &self.request_bytes {
            // A frame larger than the whole pool waits for all of it (Kafka's pool would refuse
            // it; `socket.request.max.bytes` is the per-frame bound).
            Some((pool, size)) => Some(pool.clone().acquire_many_owned(frame_len.clamp(1, *size) as u32).await.ok()?),
            None => None,
        };
        Some(RequestPermits { _request: request, _bytes: bytes })
    }
}

/// A request's place in the broker-wide queue, held until its response is handed to the writer.
struct RequestPermits {
    _request: OwnedSemaphorePermit,
    _bytes: Option<OwnedSemaphorePermit>,
}

/// Accepts connections on `listener` until shutdown; each connection is tracked in `conns` so
/// shutdown can wait for in-flight requests to be answered.
pub async fn accept_loop(
    broker: Arc<Broker>,
    listener: TcpListener,
    listener_name: Arc<str>,
    admission: Arc<Admission>,
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
        let open = broker.metrics.network.accepted(&listener_name);
        let slot = match admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                match refused {
                    Refused::Total(max) => {
                        tracing::warn!(%peer, max, "max.connections reached; closing new connection")
                    }
                    Refused::PerIp(max) => {
                        tracing::warn!(%peer, max, "max.connections.per.ip reached; closing new connection")
                    }
                }
                drop(stream);
                drop(open);
                broker.metrics.network.closed(&listener_name, CloseLabel::Limit);
                continue;
            }
        };
        let broker = broker.clone();
        let name = listener_name.clone();
        let admission = admission.clone();
        let mut set = conns.lock().await;
        // Reap finished connection tasks so the set stays bounded by open connections.
        while set.try_join_next().is_some() {}
        set.spawn(async move {
            serve_connection(broker, admission, stream, peer, name, open).await;
            drop(slot);
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

impl CloseReason {
    fn label(&self) -> CloseLabel {
        match self {
            CloseReason::PeerClosed => CloseLabel::Peer,
            CloseReason::Idle => CloseLabel::Idle,
            CloseReason::Shutdown => CloseLabel::Shutdown,
            CloseReason::Io(_) => CloseLabel::Io,
            CloseReason::Frame(_) => CloseLabel::BadFrame,
            CloseReason::Request(_) => CloseLabel::BadRequest,
        }
    }
}

/// A response on its way to the writer, with what the writer needs to observe the request's
/// total time.
struct Outgoing {
    /// The response frame, possibly in several pieces.
    frame: Vec<Bytes>,
    api_key: ApiKey,
    received_at: Instant,
    /// Its share of the connection's `queued.max.response.bytes`, released once written.
    _bytes: OwnedSemaphorePermit,
}

/// Writes every chunk, in order, with as few `writev` calls as the socket allows; fails with
/// `TimedOut` when the socket accepts nothing for `stall` (a client that stopped reading).
async fn write_all_vectored(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    mut chunks: Vec<Bytes>,
    stall: Duration,
) -> std::io::Result<()> {
    chunks.retain(|c| !c.is_empty());
    let mut first = 0;
    while first < chunks.len() {
        let end = (first + MAX_IOVECS).min(chunks.len());
        let slices: Vec<std::io::IoSlice<'_>> = chunks[first..end].iter().map(|c| std::io::IoSlice::new(c)).collect();
        let mut written = tokio::time::timeout(stall, wr.write_vectored(&slices))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while first < chunks.len() && written >= chunks[first].len() {
            written -= chunks[first].len();
            first += 1;
        }
        if written > 0 {
            chunks[first].advance(written);
        }
    }
    Ok(())
}

async fn serve_connection(
    broker: Arc<Broker>,
    admission: Arc<Admission>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<str>,
    open: OpenConnection,
) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Outgoing>(RESPONSE_QUEUE_DEPTH);
    let metrics = broker.metrics.clone();
    let stall = idle_timeout(&broker);
    let writer = tokio::spawn(async move {
        let mut batch: Vec<Outgoing> = Vec::new();
        while let Some(out) = rx.recv().await {
            // Responses that are already waiting go out with the same writev (pipelined small
            // responses, e.g. acks=1 produce, then cost one syscall instead of one each).
            batch.push(out);
            while batch.len() < MAX_RESPONSES_PER_WRITE {
                match rx.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            let chunks: Vec<Bytes> = batch.iter_mut().flat_map(|o| std::mem::take(&mut o.frame)).collect();
            if write_all_vectored(&mut wr, chunks, stall).await.is_err() {
                // The peer is gone or stopped reading: dropping the receiver fails the reader's
                // next send, which closes the connection and frees every queued response.
                break;
            }
            for out in batch.drain(..) {
                metrics.requests.api(out.api_key).total_time.observe(out.received_at.elapsed().as_secs_f64());
            }
        }
        let _ = wr.shutdown().await;
    });
    let reason = read_loop(&broker, &admission, rd, peer, &listener, &tx).await;
    drop(tx);
    let _ = writer.await;
    broker.metrics.network.closed(&listener, reason.label());
    drop(open);
    match reason {
        CloseReason::PeerClosed | CloseReason::Shutdown | CloseReason::Idle => {
            tracing::debug!(%peer, ?reason, "connection closed")
        }
        CloseReason::Io(e) => tracing::info!(%peer, error = %e, "closing connection after i/o error"),
        CloseReason::Frame(why) => tracing::info!(%peer, reason = %why, "closing connection: bad frame"),
        CloseReason::Request(why) => tracing::info!(%peer, reason = %why, "closing connection: bad request"),
    }
}

/// `connections.max.idle.ms` as a duration (-1: never).
fn idle_timeout(broker: &Broker) -> Duration {
    match broker.config.connections_max_idle_ms {
        ms if ms < 0 => Duration::from_secs(u64::MAX / 4),
        ms => Duration::from_millis(ms as u64),
    }
}

async fn read_loop(
    broker: &Arc<Broker>,
    admission: &Admission,
    mut rd: tokio::net::tcp::OwnedReadHalf,
    peer: SocketAddr,
    listener: &Arc<str>,
    tx: &mpsc::Sender<Outgoing>,
) -> CloseReason {
    let mut shutdown = broker.shutdown.clone();
    let idle = idle_timeout(broker);
    let response_budget = Arc::new(Semaphore::new(admission.response_bytes_per_connection));
    let max_frame = broker.config.socket_request_max_bytes;
    let mut conn_metrics = ConnectionMetrics::new(broker.metrics.clone());
    // Every listener is PLAINTEXT today: no authentication, so every request is anonymous.
    let principal = KafkaPrincipal::anonymous();
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    loop {
        if *shutdown.borrow() {
            return CloseReason::Shutdown;
        }
        // Frames are cut out of one per-connection buffer filled by `read_buf`, which reads into
        // spare capacity without zero-filling it first: a produce request's batches are then
        // slices of this buffer all the way to the segment write.
        while buf.len() < FRAME_PREFIX_BYTES {
            let read = tokio::select! {
                _ = shutdown.changed() => return CloseReason::Shutdown,
                // The writer gave up on a peer that stopped reading: stop waiting for requests.
                _ = tx.closed() => return CloseReason::Io(std::io::ErrorKind::TimedOut.into()),
                r = tokio::time::timeout(idle, rd.read_buf(&mut buf)) => r,
            };
            match read {
                Err(_) => return CloseReason::Idle,
                Ok(Ok(0)) if buf.is_empty() => return CloseReason::PeerClosed,
                Ok(Ok(0)) => return CloseReason::Frame("connection closed inside a size prefix".into()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return CloseReason::Io(e),
            }
        }
        let prefix = [buf[0], buf[1], buf[2], buf[3]];
        let len = match frame_body_len(prefix, max_frame) {
            Ok(n) => n,
            Err(e) => return CloseReason::Frame(e.to_string()),
        };
        let frame_len = FRAME_PREFIX_BYTES + len;
        // Room in the broker-wide request queue before the body is buffered.
        let queued = tokio::select! {
            _ = shutdown.changed() => return CloseReason::Shutdown,
            p = admission.reserve_request(frame_len) => p,
        };
        let Some(_queued) = queued else { return CloseReason::Shutdown };
        // The size was checked against socket.request.max.bytes above, so this reservation is
        // bounded; a slow sender is bounded by the idle timeout.
        buf.reserve(frame_len.saturating_sub(buf.len()));
        while buf.len() < frame_len {
            match tokio::time::timeout(idle, rd.read_buf(&mut buf)).await {
                Err(_) => return CloseReason::Idle,
                Ok(Ok(0)) => return CloseReason::Frame(format!("connection closed mid-frame ({len} bytes declared)")),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return CloseReason::Io(e),
            }
        }
        let mut frame_bytes = buf.split_to(frame_len);
        frame_bytes.advance(FRAME_PREFIX_BYTES);
        let body = frame_bytes;
        if buf.capacity() == 0 {
            buf.reserve(READ_BUFFER_BYTES);
        }
        conn_metrics.received_at = Instant::now();
        let frame = match parse_request(body.freeze()) {
            Ok(f) => f,
            Err(
                e @ (HeaderError::UnknownApiKey { .. } | HeaderError::Malformed { .. } | HeaderError::Truncated(_)),
            ) => return CloseReason::Request(e.to_string()),
        };
        let api_metrics = broker.metrics.requests.api(frame.api_key);
        api_metrics.requests.inc();
        api_metrics.version(frame.header.request_api_version);
        api_metrics.request_bytes.inc_by((FRAME_PREFIX_BYTES + len) as u64);
        let ctx = RequestContext {
            api_key: frame.api_key,
            api_version: frame.header.request_api_version,
            correlation_id: frame.header.correlation_id,
            client_id: frame.header.client_id.as_ref().map(|s| s.to_string()),
            listener: listener.clone(),
            peer,
            principal: principal.clone(),
            authorizer: broker.authorizer.clone(),
        };
        // One span per request: every event a handler logs carries what the request was.
        let span = tracing::info_span!(
            "request",
            api = ?ctx.api_key,
            version = ctx.api_version,
            correlation_id = ctx.correlation_id,
            client_id = ctx.client_id.as_deref().unwrap_or(""),
            peer = %peer,
        );
        let reply = dispatch(broker, &ctx, frame.body, &mut conn_metrics).instrument(span).await;
        match reply {
            reply @ (Reply::Response(_) | Reply::Chunks(_)) => {
                let frame = match reply {
                    Reply::Response(bytes) => vec![bytes],
                    Reply::Chunks(chunks) => chunks,
                    _ => Vec::new(),
                };
                let len: usize = frame.iter().map(Bytes::len).sum();
                api_metrics.response_bytes.inc_by(len as u64);
                // A response larger than the whole budget waits for all of it: it goes alone.
                let want = len.clamp(1, admission.response_bytes_per_connection) as u32;
                let Ok(bytes) = response_budget.clone().acquire_many_owned(want).await else {
                    return CloseReason::PeerClosed;
                };
                if tx.is_closed() {
                    return CloseReason::PeerClosed;
                }
                let out =
                    Outgoing { frame, api_key: ctx.api_key, received_at: conn_metrics.received_at, _bytes: bytes };
                if tx.send(out).await.is_err() {
                    return CloseReason::PeerClosed;
                }
            }
            Reply::NoResponse => {}
            Reply::Close(reason) => return CloseReason::Request(reason),
        }
    }
}
