//! Sluice's test kit: everything test code needs to talk to a real broker, in one place.
//!
//! - [`client`]: one raw Kafka-protocol client (framed requests over TCP, encoded and decoded with
//!   `kafka-protocol`, correlation ids checked), async (Tokio) or blocking (`std::net`).
//! - [`broker`]: the broker fixture — in-process on the caller's runtime, in-process on its own
//!   runtime thread, or the built binary as a child process — with a temp data dir and random
//!   ports.
//! - [`batch`]: record batches from two independent codecs, named by where they come from
//!   (`kafka_protocol_batch` and `sluice_batch`), so tests can cross-check ours against another.
//! - [`requests`]: builders for the request bodies tests send most.
//! - [`now_ms`]: wall-clock milliseconds, as Kafka timestamps are.

pub mod batch;
pub mod broker;
pub mod client;
pub mod requests;

pub use kafka_protocol;

/// Milliseconds since the Unix epoch (a Kafka record timestamp).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock before 1970").as_millis() as i64
}
