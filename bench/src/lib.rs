//! `sluice-bench`: a load generator for Sluice and a "null broker" baseline to compare it with.
//!
//! - [`load`]: librdkafka producers and consumers in this process (throughput, rate-limited
//!   latency runs, delivery and end-to-end latency histograms).
//! - [`broker_proc`]: the broker under test as a child process (start, readiness, clean restart,
//!   a few raw admin requests).
//! - [`null_broker`]: the baseline, an in-memory broker with just enough protocol for the load.
//! - [`proc_stats`]: RSS and CPU of a process from `/proc`.
//! - [`workloads`]: the standard workloads W1–W6 and how one run is measured.
//! - [`report`]: tables and JSON.
//!
//! A dev tool: it is not part of the broker and not run by CI beyond a tiny smoke test.

pub mod broker_proc;
pub mod load;
pub mod null_broker;
pub mod proc_stats;
pub mod report;
pub mod workloads;
