//! Request and response headers.
//!
//! A request frame is a header (API key, version, correlation id, client id and, for flexible
//! versions, tagged fields) followed by the body. The header version depends on the API key and
//! version, so the first eight bytes are read before anything else: they are enough to answer, or
//! to name the connection's problem in a log line, even when the rest is garbage.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use thiserror::Error;

/// Why a request header could not be read.
#[derive(Debug, Error)]
pub enum HeaderError {
    #[error("request frame of {0} bytes is shorter than a request header")]
    Truncated(usize),
    #[error("unknown api key {api_key} (version {api_version}, correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, api_version: i16, correlation_id: i32 },
    #[error("malformed request header for api key {api_key} version {api_version}: {reason}")]
    Malformed { api_key: i16, api_version: i16, correlation_id: i32, reason: String },
}

/// The fixed prefix every request header version shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl HeaderPrefix {
    /// Reads the first eight bytes of a request frame.
    pub fn peek(frame: &[u8]) -> Result<Self, HeaderError> {
        if frame.len() < 8 {
            return Err(HeaderError::Truncated(frame.len()));
        }
        Ok(Self {
            api_key: i16::from_be_bytes([frame[0], frame[1]]),
            api_version: i16::from_be_bytes([frame[2], frame[3]]),
            correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
        })
    }
}

/// A request whose header has been decoded; the body is still raw bytes (a slice of the frame).
#[derive(Debug, Clone)]
pub struct RequestFrame {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

/// Decodes the request header of a frame (without its size prefix).
///
/// The header version is chosen from the API key and version as Kafka does. For an ApiVersions
/// request at a version newer than any we know, Kafka still answers (KIP-511), so the header is
/// read the same way as for the newest known version.
pub fn parse_request(frame: Bytes) -> Result<RequestFrame, HeaderError> {
    let prefix = HeaderPrefix::peek(&frame)?;
    let api_key = ApiKey::try_from(prefix.api_key).map_err(|_| HeaderError::UnknownApiKey {
        api_key: prefix.api_key,
        api_version: prefix.api_version,
        correlation_id: prefix.correlation_id,
    })?;
    let header_version = api_key.request_header_version(prefix.api_version);
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, header_version).map_err(|e| HeaderError::Malformed {
        api_key: prefix.api_key,
        api_version: prefix.api_version,
        correlation_id: prefix.correlation_id,
        reason: e.to_string(),
    })?;
    Ok(RequestFrame { api_key, header, body: buf })
}

/// Encodes a whole response frame: size prefix, response header and body.
///
/// `header_version` 0 is the bare correlation id; 1 adds an (empty) tagged-field section.
pub fn encode_response<M: Encodable>(
    correlation_id: i32,
    header_version: i16,
    api_version: i16,
    body: &M,
) -> anyhow_free::Result<Bytes> {
    let body_len = body.compute_size(api_version).map_err(anyhow_free::Error::from_display)?;
    let header_len = if header_version >= 1 { 5 } else { 4 };
    let total = header_len + body_len;
    let mut buf = BytesMut::with_capacity(4 + total);
    buf.put_i32(total as i32);
    buf.put_i32(correlation_id);
    if header_version >= 1 {
        buf.put_u8(0); // no tagged fields
    }
    body.encode(&mut buf, api_version).map_err(anyhow_free::Error::from_display)?;
    Ok(buf.freeze())
}

/// Encodes a request frame (size prefix, header, body) — used by tests and tools that act as a client.
pub fn encode_request<M: Encodable>(header: &RequestHeader, body: &M) -> anyhow_free::Result<Bytes> {
    let api_key = ApiKey::try_from(header.request_api_key)
        .map_err(|_| anyhow_free::Error(format!("unknown api key {}", header.request_api_key)))?;
    let version = header.request_api_version;
    let header_version = api_key.request_header_version(version);
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header.encode(&mut buf, header_version).map_err(anyhow_free::Error::from_display)?;
    body.encode(&mut buf, version).map_err(anyhow_free::Error::from_display)?;
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// A small error type so this crate's public API does not expose `anyhow`.
pub mod anyhow_free {
    /// An encoding failure, as text.
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    pub struct Error(pub String);

    impl Error {
        pub fn from_display(e: impl std::fmt::Display) -> Self {
            Self(e.to_string())
        }
    }

    pub type Result<T> = std::result::Result<T, Error>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiVersionsRequest;
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn header_round_trip_for_flexible_and_legacy_versions() {
        for version in 0..=4i16 {
            let mut header = RequestHeader::default();
            header.request_api_key = ApiKey::ApiVersions as i16;
            header.request_api_version = version;
            header.correlation_id = 42;
            header.client_id = Some(StrBytes::from_static_str("test-client"));
            let mut body = ApiVersionsRequest::default();
            if version >= 3 {
                body.client_software_name = StrBytes::from_static_str("sluice");
                body.client_software_version = StrBytes::from_static_str("1.0");
            }
            let frame = encode_request(&header, &body).expect("encode");
            let parsed = parse_request(frame.slice(4..)).expect("parse");
            assert_eq!(parsed.api_key, ApiKey::ApiVersions);
            assert_eq!(parsed.header.correlation_id, 42);
            assert_eq!(parsed.header.client_id.as_deref(), Some("test-client"));
            let mut b = parsed.body.clone();
            let decoded = ApiVersionsRequest::decode(&mut b, version).expect("body");
            assert_eq!(decoded, body);
        }
    }

    #[test]
    fn unknown_key_and_truncated_headers_are_errors() {
        assert!(matches!(HeaderPrefix::peek(&[0, 1, 2]), Err(HeaderError::Truncated(3))));
        let mut frame = vec![0x7f, 0x00, 0, 1, 0, 0, 0, 9];
        frame.extend_from_slice(&[0, 0]);
        match parse_request(Bytes::from(frame)) {
            Err(HeaderError::UnknownApiKey { api_key, correlation_id, .. }) => {
                assert_eq!(api_key, 0x7f00);
                assert_eq!(correlation_id, 9);
            }
            other => panic!("unexpected {other:?}"),
        }
        // A Metadata v1 header whose client id length runs past the end.
        let frame = Bytes::from(vec![0, 3, 0, 1, 0, 0, 0, 7, 0, 50, b'a']);
        assert!(matches!(parse_request(frame), Err(HeaderError::Malformed { correlation_id: 7, .. })));
    }
}
