//! Request headers and bodies whose declared array counts and string/bytes lengths cannot fit in
//! the bytes that follow: each must decode to an error without allocating beyond the frame.
//!
//! The test binary's allocator is capped ([`cap::Cap`]), so a decoder that preallocates from a
//! wire count (the 150 GB `Vec::with_capacity` a four-byte Metadata body used to ask for) aborts
//! the run instead of passing; the counted bytes per decode are asserted as well. Tests in this
//! file take [`serial`] so one test's allocations are not counted against another's.

use std::alloc::System;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use cap::Cap;
use kafka_protocol::messages::{ApiKey, RequestKind};
use sluice_protocol::request::{parse_request, HeaderError};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Headroom above what the process already holds; far below any wire-count preallocation.
const ALLOCATION_LIMIT_BYTES: usize = 256 << 20;
/// What decoding a body of a few dozen bytes may allocate in total (decoded structs, error text).
const PER_DECODE_BYTES_MAX: usize = 64 << 10;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    ALLOCATOR.set_limit(ALLOCATOR.allocated() + ALLOCATION_LIMIT_BYTES).expect("limit above current use");
    guard
}

/// Decodes `body` as `api_key` at `version`, returning the outcome and the bytes allocated.
fn decode(api_key: ApiKey, version: i16, body: &[u8]) -> (Result<RequestKind, String>, usize) {
    let mut buf = Bytes::copy_from_slice(body);
    let before = ALLOCATOR.total_allocated();
    let outcome = RequestKind::decode(api_key, &mut buf, version).map_err(|e| format!("{e:#}"));
    let used = ALLOCATOR.total_allocated() - before;
    (outcome, used)
}

fn assert_refused(api_key: ApiKey, version: i16, body: &[u8], reason: &str) {
    let (outcome, used) = decode(api_key, version, body);
    match outcome {
        Err(e) => assert!(e.contains(reason), "{api_key:?} v{version} {body:02x?}: {e}"),
        Ok(r) => panic!("{api_key:?} v{version} {body:02x?} decoded: {r:?}"),
    }
    assert!(used <= PER_DECODE_BYTES_MAX, "{api_key:?} v{version} {body:02x?} allocated {used} bytes");
}

const I32_MAX: [u8; 4] = [0x7f, 0xff, 0xff, 0xff];
/// Unsigned varint 0xffff_ffff: a compact array of u32::MAX - 1 elements, or a compact string or
/// bytes of that length.
const VARINT_MAX: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x0f];

#[test]
fn metadata_with_huge_topic_counts_is_refused() {
    let _serial = serial();
    // v0–v3: a plain array; v4–v8: a nullable one; v9+: a compact (varint) one.
    for version in 0..=8 {
        assert_refused(ApiKey::Metadata, version, &I32_MAX, "Tried to allocate a collection of size 2147483647");
    }
    for version in 9..=13 {
        assert_refused(ApiKey::Metadata, version, &VARINT_MAX, "Tried to allocate a collection of size 4294967294");
    }
}

#[test]
fn create_topics_with_huge_counts_is_refused() {
    let _serial = serial();
    // Top-level topics array.
    assert_refused(ApiKey::CreateTopics, 2, &I32_MAX, "Tried to allocate a collection");
    assert_refused(ApiKey::CreateTopics, 5, &VARINT_MAX, "Tried to allocate a collection");
    // One topic "t", then a nested assignments array with a huge count.
    let mut v2 = vec![0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    v2.extend_from_slice(&I32_MAX);
    assert_refused(ApiKey::CreateTopics, 2, &v2, "Tried to allocate a collection of size 2147483647");
    let mut v5 = vec![2, 2, b't', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    v5.extend_from_slice(&VARINT_MAX);
    assert_refused(ApiKey::CreateTopics, 5, &v5, "Tried to allocate a collection of size 4294967294");
    // A huge compact topic name length.
    let mut name = vec![2];
    name.extend_from_slice(&VARINT_MAX);
    assert_refused(ApiKey::CreateTopics, 5, &name, "");
}

#[test]
fn huge_string_and_bytes_lengths_are_refused() {
    let _serial = serial();
    // SyncGroup v0: group "g", generation 0, member "m", one assignment whose bytes claim 2 GiB.
    let mut sync = vec![0, 1, b'g', 0, 0, 0, 0, 0, 1, b'm', 0, 0, 0, 1, 0, 1, b'm'];
    sync.extend_from_slice(&I32_MAX);
    assert_refused(ApiKey::SyncGroup, 0, &sync, "");
    // JoinGroup v6 (flexible): a compact group id of 4 GiB.
    let mut join = Vec::new();
    join.extend_from_slice(&VARINT_MAX);
    assert_refused(ApiKey::JoinGroup, 6, &join, "");
    // A legacy string of 32767 bytes with two present.
    assert_refused(ApiKey::FindCoordinator, 0, &[0x7f, 0xff, b'a', b'b'], "");
}

/// Every request type the codec knows, at every version, with a hostile count or length at
/// each of the first sixteen field positions (the fields before it read as zeros: empty strings,
/// zero integers, null or empty arrays), decodes with bounded allocation and never panics.
#[test]
fn every_request_type_decodes_hostile_counts_with_bounded_allocation() {
    let _serial = serial();
    let mut refused = 0;
    for api_key in ApiKey::iter() {
        let range = api_key.valid_versions();
        for version in range.min..=range.max {
            for zeros in 0..16 {
                for hostile in [&I32_MAX[..], &VARINT_MAX[..], &[0x7f, 0xff][..]] {
                    let mut body = vec![0u8; zeros];
                    body.extend_from_slice(hostile);
                    let (outcome, used) = decode(api_key, version, &body);
                    assert!(used <= PER_DECODE_BYTES_MAX, "{api_key:?} v{version} {body:02x?} allocated {used} bytes");
                    refused += usize::from(outcome.is_err());
                }
            }
        }
    }
    // Nearly every such body is malformed; a few read as valid (a count lands in an integer).
    assert!(refused > 1000, "only {refused} hostile bodies were refused");
}

#[test]
fn hostile_request_headers_are_refused() {
    let _serial = serial();
    let before = ALLOCATOR.total_allocated();
    // Metadata v1 (header v1): client id of 32767 bytes with one present.
    let frame = Bytes::from_static(&[0, 3, 0, 1, 0, 0, 0, 7, 0x7f, 0xff, b'a']);
    assert!(matches!(parse_request(frame), Err(HeaderError::Malformed { correlation_id: 7, .. })));
    // Metadata v12 (header v2): empty client id, then a tagged-field count of u32::MAX.
    let mut frame = vec![0, 3, 0, 12, 0, 0, 0, 8, 0, 0];
    frame.extend_from_slice(&VARINT_MAX);
    assert!(matches!(parse_request(Bytes::from(frame)), Err(HeaderError::Malformed { correlation_id: 8, .. })));
    // Header v2: one tagged field whose size claims 4 GiB.
    let mut frame = vec![0, 3, 0, 12, 0, 0, 0, 9, 0, 0, 1, 0];
    frame.extend_from_slice(&VARINT_MAX);
    assert!(matches!(parse_request(Bytes::from(frame)), Err(HeaderError::Malformed { correlation_id: 9, .. })));
    let used = ALLOCATOR.total_allocated() - before;
    assert!(used <= PER_DECODE_BYTES_MAX, "headers allocated {used} bytes");
}
