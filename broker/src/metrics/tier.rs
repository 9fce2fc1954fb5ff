//! Tiered-storage and idempotent-producer metrics.
//!
//! Counters are bumped by the remote log manager task (uploads, remote deletions, errors) and by
//! Fetch when it reads below the local log start (remote fetch bytes, latency, errors). Two
//! gauges are computed at scrape from the partitions: bytes of tiered logs not yet uploaded (the
//! upload lag) and idempotent producers with state (Kafka's producer-id count).

use std::sync::{Mutex, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::register;
use crate::broker::Broker;

pub struct TierMetrics {
    pub segments_uploaded: IntCounter,
    pub bytes_uploaded: IntCounter,
    pub remote_segments_deleted: IntCounter,
    /// `op` = `upload` (a manager round failed), `fetch` (a remote read or timestamp search
    /// failed) or `delete` (deleting a deleted topic's remote data failed).
    pub errors: IntCounterVec,
    pub fetch_bytes: IntCounter,
    pub fetch_seconds: Histogram,
}

impl TierMetrics {
    pub fn new(r: &Registry) -> Self {
        let counter =
            |name: &str, help: &str| register(r, IntCounter::with_opts(Opts::new(name, help)).expect("valid metric"));
        let errors = register(
            r,
            IntCounterVec::new(Opts::new("sluice_tier_errors_total", "Remote tier failures by operation."), &["op"])
                .expect("valid metric"),
        );
        // Export both series from the start (at 0) so dashboards and alerts see them.
        for op in ["upload", "fetch", "delete"] {
            errors.with_label_values(&[op]);
        }
        TierMetrics {
            segments_uploaded: counter("sluice_tier_segments_uploaded_total", "Segments copied to the remote tier."),
            bytes_uploaded: counter("sluice_tier_bytes_uploaded_total", "Segment bytes copied to the remote tier."),
            remote_segments_deleted: counter(
                "sluice_tier_remote_segments_deleted_total",
                "Remote segments deleted by remote retention.",
            ),
            errors,
            fetch_bytes: counter("sluice_tier_fetch_bytes_total", "Bytes served to Fetch from the remote tier."),
            fetch_seconds: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new("sluice_tier_fetch_seconds", "Latency of one remote read for Fetch.")
                        .buckets(vec![0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
                )
                .expect("valid metric"),
            ),
        }
    }
}

/// Upload lag and producer counts, read from the partitions at scrape time.
pub struct PartitionStateCollector {
    broker: Weak<Broker>,
    upload_lag: IntGauge,
    producers: IntGauge,
    descs: Vec<Desc>,
    lock: Mutex<()>,
}

impl PartitionStateCollector {
    pub fn new(broker: Weak<Broker>) -> Self {
        let upload_lag = IntGauge::with_opts(Opts::new(
            "sluice_tier_upload_lag_bytes",
            "Bytes of tiered logs above the highest offset committed remotely (not yet uploaded).",
        ))
        .expect("valid metric");
        let producers = IntGauge::with_opts(Opts::new(
            "sluice_idempotent_producers",
            "Producer ids with sequence state, summed over partitions.",
        ))
        .expect("valid metric");
        let mut descs: Vec<Desc> = upload_lag.desc().into_iter().cloned().collect();
        descs.extend(producers.desc().into_iter().cloned());
        PartitionStateCollector { broker, upload_lag, producers, descs, lock: Mutex::new(()) }
    }
}

impl Collector for PartitionStateCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(broker) = self.broker.upgrade() else { return Vec::new() };
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let (mut lag, mut producers) = (0u64, 0usize);
        for p in broker.logs.partitions() {
            producers += p.producer_count();
            if p.config().remote_storage_enable {
                lag += p.size_bytes_above(p.highest_remote_offset());
            }
        }
        self.upload_lag.set(lag as i64);
        self.producers.set(producers as i64);
        let mut out = self.upload_lag.collect();
        out.extend(self.producers.collect());
        out
    }
}
