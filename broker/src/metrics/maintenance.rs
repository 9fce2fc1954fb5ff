//! Log maintenance metrics: the cleaner (runs, bytes read and written, records and tombstones
//! removed, time per run, and the dirtiest compacted log's ratio read at scrape) and retention
//! (passes and segments deleted). Counted by `log_tasks` after each pass — off the request path.

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, Opts, Registry};

use super::register;

pub struct MaintenanceMetrics {
    pub cleaner_runs: IntCounter,
    pub cleaner_bytes_read: IntCounter,
    pub cleaner_bytes_written: IntCounter,
    pub cleaner_records_removed: IntCounter,
    pub cleaner_tombstones_removed: IntCounter,
    pub cleaner_run_seconds: Histogram,
    pub cleaner_errors: IntCounter,
    pub cleaner_max_dirty_ratio: Gauge,
    pub retention_passes: IntCounter,
    pub retention_segments_deleted: IntCounter,
}

impl MaintenanceMetrics {
    pub fn new(r: &Registry) -> Self {
        let counter =
            |name: &str, help: &str| register(r, IntCounter::with_opts(Opts::new(name, help)).expect("valid metric"));
        MaintenanceMetrics {
            cleaner_runs: counter("sluice_cleaner_runs_total", "Log cleaner passes that compacted a log."),
            cleaner_bytes_read: counter(
                "sluice_cleaner_bytes_read_total",
                "Bytes of segments the cleaner rewrote (before).",
            ),
            cleaner_bytes_written: counter(
                "sluice_cleaner_bytes_written_total",
                "Bytes of cleaned segments written (after).",
            ),
            cleaner_records_removed: counter(
                "sluice_cleaner_records_removed_total",
                "Records dropped as superseded or expired.",
            ),
            cleaner_tombstones_removed: counter(
                "sluice_cleaner_tombstones_removed_total",
                "Tombstones dropped after delete.retention.ms.",
            ),
            cleaner_run_seconds: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new("sluice_cleaner_run_seconds", "Duration of one cleaner pass.")
                        .buckets(vec![0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0]),
                )
                .expect("valid metric"),
            ),
            cleaner_errors: counter("sluice_cleaner_errors_total", "Cleaner passes that failed."),
            cleaner_max_dirty_ratio: register(
                r,
                Gauge::with_opts(Opts::new(
                    "sluice_cleaner_max_dirty_ratio",
                    "Dirty bytes over total bytes of the dirtiest compacted log, as of the last cleaner pass.",
                ))
                .expect("valid metric"),
            ),
            retention_passes: counter("sluice_retention_passes_total", "Retention task passes."),
            retention_segments_deleted: counter(
                "sluice_retention_segments_deleted_total",
                "Segments deleted by retention (time, size or log start offset).",
            ),
        }
    }
}
