//! `sluice-protocol`: Kafka's wire format as bytes in, typed values out, and back.
//!
//! This crate owns everything that is pure encoding: cutting size-prefixed frames, request and
//! response headers, a zero-copy view over v2 record batches (header accessors, CRC-32C,
//! in-place offset stamping), record encoding/decoding and the compression codecs. It performs no
//! I/O, spawns nothing and never panics on input: every decoder returns a `Result`.
//!
//! API message bodies come from the `kafka-protocol` crate, re-exported as [`kafka_protocol`].

pub mod batch;
pub mod batch_header;
pub mod compression;
pub mod fetch;
pub mod frame;
pub mod limits;
pub mod records;
pub mod request;
pub mod types;

#[cfg(test)]
mod interop_tests;

pub use kafka_protocol;
