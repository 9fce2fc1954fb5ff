//! The broker's fixed limits in one place, with compile-time checks of how they relate, and the
//! process resource limits and the budgets derived from them.
//!
//! Every connection holds one file descriptor and every partition log at least three (its active
//! segment's `.log`, `.index` and `.timeindex`), and the two compete for one limit,
//! `RLIMIT_NOFILE`. Startup raises the soft limit to the hard limit (as Kafka's start scripts
//! expect the operator to do) and then splits what it has: half for client connections, the rest
//! for logs, a reserve for everything else (checkpoints, snapshots, the metrics listener,
//! blocking-pool files). Explicitly configured `max.connections` / `max.broker.partitions` win
//! over the derived values; startup logs which applied.

use std::time::Duration;

use crate::config::Config;

/// Responses queued per connection before the reader waits for the writer (with
/// `queued.max.response.bytes`, bounds what a client that does not read can pin).
pub const RESPONSE_QUEUE_DEPTH: usize = 32;

/// Responses the writer sends with one `writev` at most (their chunks still go out in order).
pub const MAX_RESPONSES_PER_WRITE: usize = 32;

/// Iovecs per `writev` call (Linux allows 1024; small responses use one).
pub const MAX_IOVECS: usize = 64;

/// Initial read buffer per connection; grows to the largest frame in flight.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

/// A connection's metrics cache at most this many topics before starting over (bounds memory
/// for a client touching many topics).
pub const TOPIC_CACHE_MAX: usize = 1024;

/// Concurrent connections to the metrics listener (Prometheus uses one per target).
pub const MAX_METRICS_CONNECTIONS: usize = 16;

/// A metrics client must send its request headers within this time.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Most cleaner workers, whatever `log.cleaner.threads` says.
pub const MAX_CLEANER_THREADS: usize = 16;

/// Most offending records a rejected Produce lists (Kafka lists all of them; a batch can hold
/// millions). Each entry is an index and a message of about 100 bytes, so a rejection stays
/// near 1 MiB; records past the limit fail with the rest of the batch.
pub const RECORD_ERRORS_MAX: usize = 10_000;

// The writer drains at most what the queue can hold, and never fewer than one response.
const _: () = assert!(MAX_RESPONSES_PER_WRITE >= 1 && MAX_RESPONSES_PER_WRITE <= RESPONSE_QUEUE_DEPTH);
// A response is at least a size prefix and a body chunk; linux's IOV_MAX is 1024.
const _: () = assert!(MAX_IOVECS >= 2 && MAX_IOVECS <= 1024);
// The read buffer must hold at least a frame's size prefix.
const _: () = assert!(READ_BUFFER_BYTES >= sluice_protocol::frame::FRAME_PREFIX_BYTES);
// A partition log needs its segment's three files; the reserve covers the non-log files.
const _: () = assert!(FDS_PER_PARTITION >= 3 && RESERVED_FDS >= 64);

/// File descriptors kept back for files that are neither connections nor segments: checkpoint
/// and snapshot writes, metadata files, `.txnindex` files, the metrics listener, tiered reads.
pub const RESERVED_FDS: u64 = 256;

/// Descriptors one partition log needs while it has a single segment.
pub const FDS_PER_PARTITION: u64 = 3;

/// The open-file limit before and after startup raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. Never fails startup: a limit that cannot be
/// read or raised is reported and the current one is used.
pub fn raise_nofile_limit() -> NofileLimit {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Nofile);
    // An unlimited hard limit is not a number a budget can be split from; 1 Mi is what most
    // distributions' `fs.nr_open` allows.
    let hard = current.maximum.unwrap_or(1 << 20);
    let soft_before = current.current.unwrap_or(hard);
    if soft_before >= hard {
        return NofileLimit { soft_before, soft: soft_before, hard };
    }
    match setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: current.maximum }) {
        Ok(()) => NofileLimit { soft_before, soft: hard, hard },
        Err(e) => {
            tracing::warn!(soft = soft_before, hard, error = %e, "could not raise the open-file limit");
            NofileLimit { soft_before, soft: soft_before, hard }
        }
    }
}

/// The budgets startup applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max_connections: usize,
    pub max_broker_partitions: usize,
}

/// Splits the open-file limit between connections and partition logs, honouring explicit
/// settings of `max.connections` and `max.broker.partitions`.
pub fn budget(config: &Config, nofile_soft: u64) -> Budget {
    let usable = nofile_soft.saturating_sub(RESERVED_FDS).max(2);
    let explicit_connections = config.explicit.contains_key("max.connections");
    let explicit_partitions = config.explicit.contains_key("max.broker.partitions");
    let max_connections = if explicit_connections { config.max_connections } else { (usable / 2).max(1) as usize };
    let max_broker_partitions = if explicit_partitions {
        config.max_broker_partitions
    } else {
        let for_logs = usable.saturating_sub(max_connections.min(usable as usize) as u64);
        (for_logs / FDS_PER_PARTITION).max(1) as usize
    };
    Budget { max_connections, max_broker_partitions }
}

/// Raises the open-file limit, derives the budgets and writes them into `config`.
pub fn apply(config: &mut Config) -> NofileLimit {
    let limit = raise_nofile_limit();
    let b = budget(config, limit.soft);
    tracing::info!(
        soft_before = limit.soft_before,
        soft = limit.soft,
        hard = limit.hard,
        max_connections = b.max_connections,
        max_broker_partitions = b.max_broker_partitions,
        "open-file limit"
    );
    config.max_connections = b.max_connections;
    config.max_broker_partitions = b.max_broker_partitions;
    limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_budget_splits_the_limit_and_explicit_settings_win() {
        let c = Config::from_overrides(&[]).expect("config");
        let b = budget(&c, 1024);
        assert_eq!(b.max_connections, 384);
        assert_eq!(b.max_broker_partitions, 128);
        let c = Config::from_overrides(&[("max.connections", "10"), ("max.broker.partitions", "7")]).expect("config");
        assert_eq!(budget(&c, 1024), Budget { max_connections: 10, max_broker_partitions: 7 });
        // A tiny limit still leaves one of each.
        let c = Config::from_overrides(&[]).expect("config");
        let b = budget(&c, 10);
        assert!(b.max_connections >= 1 && b.max_broker_partitions >= 1);
    }
}
