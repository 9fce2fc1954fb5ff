//! Sluice integration tests: real Kafka clients (librdkafka via `rdkafka`, and a raw socket
//! client) against a real broker — in-process on an ephemeral port, or the broker binary as a
//! child process for crash tests. One test binary so librdkafka is linked once and tests run in
//! parallel, each with its own broker and data directory.

mod admin;
mod bad_input;
mod chaos;
mod cli;
mod crash;
mod groups;
mod groups_consumer_protocol;
mod hardening;
mod idempotence;
mod idempotence_retries;
mod log_dirs;
mod metadata;
mod offsets;
mod produce;
mod restart;
mod roundtrip;
mod tiered;
mod transactions;
