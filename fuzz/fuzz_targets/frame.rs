//! Frame and header decoding, then the request body for that API and version, the way the
//! network layer cuts and parses every frame before dispatch. Nothing here may panic, and (run
//! with `-malloc_limit_mb`) no wire count may make a decoder allocate far beyond the frame.

#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::RequestKind;
use libfuzzer_sys::fuzz_target;
use sluice_protocol::frame::{frame_body_len, FRAME_PREFIX_BYTES};
use sluice_protocol::request::{parse_request, HeaderPrefix};

fuzz_target!(|data: &[u8]| {
    if data.len() >= FRAME_PREFIX_BYTES {
        let prefix = [data[0], data[1], data[2], data[3]];
        let _ = frame_body_len(prefix, 100 << 20);
    }
    let _ = HeaderPrefix::peek(data);
    if let Ok(frame) = parse_request(Bytes::copy_from_slice(data)) {
        let mut body = frame.body.clone();
        let _ = RequestKind::decode(frame.api_key, &mut body, frame.header.request_api_version);
    }
});
