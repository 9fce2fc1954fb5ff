//! The raw Kafka-protocol client: a request is a `kafka-protocol` message encoded at a chosen
//! version behind a request header with the next correlation id, framed with its size; a response
//! is one size-prefixed frame whose correlation id must match and whose body must decode at that
//! version with no bytes left over.
//!
//! One [`Client`] over two transports: [`AsyncClient`] (Tokio, for tests whose broker runs on the
//! test's own runtime) and [`BlockingClient`] (`std::net`, for threads and blocking tests). Both
//! share the header, framing and decoding below; only the socket reads and writes differ.
//! Not thread-safe: one client is one connection with one correlation-id counter.

use std::fmt::Debug;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest response frame a test accepts (anything bigger is a broken length prefix).
const RESPONSE_FRAME_BYTES_MAX: i32 = 256 << 20;

/// One connection to a broker and its correlation-id counter.
pub struct Client<S> {
    /// The socket, public for tests that write or read raw bytes around the framed calls.
    pub stream: S,
    next_correlation_id: i32,
}

/// A client on a Tokio socket.
pub type AsyncClient = Client<tokio::net::TcpStream>;
/// A client on a blocking `std::net` socket.
pub type BlockingClient = Client<std::net::TcpStream>;

impl<S> Client<S> {
    pub fn new(stream: S) -> Client<S> {
        Client { stream, next_correlation_id: 1 }
    }

    /// A request header for `key` at `version` carrying the next correlation id.
    pub fn header(&mut self, key: ApiKey, version: i16) -> RequestHeader {
        let mut h = RequestHeader::default();
        h.request_api_key = key as i16;
        h.request_api_version = version;
        h.correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        h.client_id = Some(StrBytes::from_static_str("sluice-testkit"));
        h
    }

    /// The size-prefixed frame of `body` behind the next header; returns it with its correlation id.
    fn frame<M: Encodable>(&mut self, key: ApiKey, version: i16, body: &M) -> (Bytes, i32) {
        let h = self.header(key, version);
        let frame = sluice_protocol::request::encode_request(&h, body)
            .unwrap_or_else(|e| panic!("{key:?} v{version}: encode request: {e}"));
        (frame, h.correlation_id)
    }
}

/// Decodes a response frame (without its size prefix): the correlation id must match, a flexible
/// response header must carry no tagged fields, and the body must consume every byte.
pub fn decode_response<R: Decodable>(mut frame: Bytes, key: ApiKey, version: i16, correlation_id: i32) -> R {
    assert!(frame.remaining() >= 4, "{key:?} v{version}: response shorter than its header");
    assert_eq!(frame.get_i32(), correlation_id, "{key:?} v{version}: correlation id");
    if key.response_header_version(version) >= 1 {
        assert_eq!(frame.get_u8(), 0, "{key:?} v{version}: response header tagged fields");
    }
    let body = R::decode(&mut frame, version).unwrap_or_else(|e| panic!("{key:?} v{version}: decode response: {e}"));
    assert!(frame.is_empty(), "{key:?} v{version}: {} trailing bytes after the response", frame.len());
    body
}

/// [`decode_response`], and the body must re-encode to exactly the bytes received (a field the
/// broker set that this version cannot carry shows up here).
pub fn decode_round_trip<R: Decodable + Encodable + Debug>(
    frame: Bytes,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> R {
    let body_start = 4 + usize::from(key.response_header_version(version) >= 1);
    let original = frame.slice(body_start.min(frame.len())..);
    let resp: R = decode_response(frame, key, version, correlation_id);
    let mut again = BytesMut::new();
    resp.encode(&mut again, version).unwrap_or_else(|e| panic!("{key:?} v{version}: re-encode: {e}"));
    assert_eq!(&again[..], &original[..], "{key:?} v{version}: response does not round-trip");
    resp
}

fn frame_len(len: [u8; 4]) -> usize {
    let len = i32::from_be_bytes(len);
    assert!((0..=RESPONSE_FRAME_BYTES_MAX).contains(&len), "response frame size {len} out of range");
    len as usize
}

/// An ApiVersions v3 request, the "is it alive?" probe.
fn api_versions_probe() -> ApiVersionsRequest {
    let mut req = ApiVersionsRequest::default();
    req.client_software_name = StrBytes::from_static_str("sluice-testkit");
    req.client_software_version = StrBytes::from_static_str("0.1");
    req
}

fn assert_alive_response(resp: &ApiVersionsResponse, what: &str) {
    assert_eq!(resp.error_code, 0, "{what}: ApiVersions v3 error code");
    assert!(!resp.api_keys.is_empty(), "{what}: ApiVersions lists no APIs");
}

impl AsyncClient {
    pub async fn connect(addr: SocketAddr) -> AsyncClient {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Client::new(stream)
    }

    /// Encodes and sends a request; returns its correlation id.
    pub async fn send<M: Encodable>(&mut self, key: ApiKey, version: i16, body: &M) -> i32 {
        let (frame, correlation_id) = self.frame(key, version, body);
        self.stream.write_all(&frame).await.unwrap_or_else(|e| panic!("{key:?} v{version}: write: {e}"));
        correlation_id
    }

    /// Reads one size-prefixed frame (without the prefix).
    pub async fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await?;
        let mut body = vec![0u8; frame_len(len)];
        self.stream.read_exact(&mut body).await?;
        Ok(Bytes::from(body))
    }

    async fn recv_frame(&mut self, key: ApiKey, version: i16) -> Bytes {
        self.read_frame().await.unwrap_or_else(|e| panic!("{key:?} v{version}: no response ({e})"))
    }

    /// Send, then receive and decode (see [`decode_response`]).
    pub async fn request<Q: Encodable, R: Decodable>(&mut self, key: ApiKey, version: i16, body: &Q) -> R {
        let c = self.send(key, version, body).await;
        decode_response(self.recv_frame(key, version).await, key, version, c)
    }

    /// Send, then receive, decode and check the response round-trips (see [`decode_round_trip`]).
    pub async fn call<Q: Encodable, R: Decodable + Encodable + Debug>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &Q,
    ) -> R {
        let c = self.send(key, version, body).await;
        decode_round_trip(self.recv_frame(key, version).await, key, version, c)
    }

    /// ApiVersions v3 must succeed on this connection.
    pub async fn assert_alive(&mut self, what: &str) {
        let resp: ApiVersionsResponse = self.request(ApiKey::ApiVersions, 3, &api_versions_probe()).await;
        assert_alive_response(&resp, what);
    }
}

impl BlockingClient {
    /// Connects with a 5 s connect timeout and a 15 s read timeout.
    pub fn connect(addr: SocketAddr) -> BlockingClient {
        let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client::new(stream)
    }

    pub fn send_bytes(&mut self, b: &[u8]) {
        self.stream.write_all(b).expect("write");
    }

    /// Writes, tolerating a peer that already closed (for hostile input).
    pub fn try_send_bytes(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(b)
    }

    /// Encodes and sends a request; returns its correlation id.
    pub fn send<M: Encodable>(&mut self, key: ApiKey, version: i16, body: &M) -> i32 {
        let (frame, correlation_id) = self.frame(key, version, body);
        self.send_bytes(&frame);
        correlation_id
    }

    /// Reads one size-prefixed frame (without the prefix).
    pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let mut buf = vec![0u8; frame_len(len)];
        self.stream.read_exact(&mut buf)?;
        Ok(Bytes::from(buf))
    }

    /// Reads a response frame and decodes it (see [`decode_response`]).
    pub fn recv<R: Decodable>(&mut self, key: ApiKey, version: i16, correlation_id: i32) -> R {
        let frame = self.read_frame().unwrap_or_else(|e| panic!("reading {key:?} v{version} response: {e}"));
        decode_response(frame, key, version, correlation_id)
    }

    /// Send + receive.
    pub fn request<Q: Encodable, R: Decodable>(&mut self, key: ApiKey, version: i16, body: &Q) -> R {
        let c = self.send(key, version, body);
        self.recv(key, version, c)
    }

    /// ApiVersions v3 must succeed on this connection.
    pub fn assert_alive(&mut self, what: &str) {
        let resp: ApiVersionsResponse = self.request(ApiKey::ApiVersions, 3, &api_versions_probe());
        assert_alive_response(&resp, what);
    }

    /// Asserts the broker closes this connection within `within`, without sending anything.
    pub fn assert_closed_by_broker(&mut self, within: Duration, what: &str) {
        self.stream.set_read_timeout(Some(within)).expect("timeout");
        let mut buf = [0u8; 256];
        let start = Instant::now();
        match self.stream.read(&mut buf) {
            Ok(0) => println!("[check] {what}: broker closed the connection after {:?}", start.elapsed()),
            Ok(n) => panic!("{what}: expected the broker to close the connection, got {n} bytes: {:?}", &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
                ) =>
            {
                println!("[check] {what}: broker reset the connection ({e})")
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("{what}: connection still open {within:?} later (Kafka closes it)")
            }
            Err(e) => panic!("{what}: unexpected read error {e}"),
        }
    }
}
