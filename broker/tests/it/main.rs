//! The broker's integration tests, one test binary: each module starts its own in-process broker
//! (on an ephemeral port, in a temp dir) through `sluice-testkit` and talks to it with the raw
//! client, so tests run in parallel and the broker links once.
//!
//! Not in here: `hostile_requests.rs` and `validate_memory.rs` install a counting, capped
//! `#[global_allocator]` (`cap::Cap`). A global allocator is per binary, so those two stay test
//! binaries of their own: in here their cap would apply to every other test's broker, and their
//! allocation counts would include every other test's allocations.

mod authorization;
mod configs;
mod durability;
mod every_api_version;
mod groups;
mod idempotence;
mod log_dirs;
mod metrics;
mod semantics;
mod tier_metrics;
mod transactions;
