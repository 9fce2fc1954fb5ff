//! Storage gauges read at scrape time from the log manager: partition count, offline log dirs,
//! log size per topic, and — with `metrics.per.partition.enable` — size, segment count, log start
//! offset, log end offset and high watermark per partition.
//!
//! Why at scrape: these values move on every append; keeping gauges current would put atomics
//! and label lookups on the produce path for numbers nobody reads between scrapes. A scrape walks
//! every partition, taking each partition's lock briefly (never the append path for long).
//!
//! Thread-safety: the collector is `Sync`; concurrent scrapes serialise on an internal mutex
//! because they refill the same gauge vectors.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, IntGaugeVec, Opts};
use sluice_storage::LogManager;

pub struct StorageCollector {
    logs: Arc<LogManager>,
    per_partition: bool,
    gauges: Mutex<Gauges>,
    descs: Vec<Desc>,
}

struct Gauges {
    partitions: IntGauge,
    offline_dirs: IntGauge,
    topic_size: IntGaugeVec,
    topic_partitions: IntGaugeVec,
    size: IntGaugeVec,
    segments: IntGaugeVec,
    log_start: IntGaugeVec,
    log_end: IntGaugeVec,
    high_watermark: IntGaugeVec,
}

impl StorageCollector {
    pub fn new(logs: Arc<LogManager>, per_partition: bool) -> Self {
        let tp = &["topic", "partition"];
        let gauge = |name: &str, help: &str| IntGauge::with_opts(Opts::new(name, help)).expect("valid metric");
        let vec = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let gauges = Gauges {
            partitions: gauge("sluice_partitions", "Partition logs hosted by this broker."),
            offline_dirs: gauge("sluice_log_dirs_offline", "Log directories taken offline after a disk error."),
            topic_size: vec("sluice_topic_log_size_bytes", "Bytes on disk across a topic's partitions.", &["topic"]),
            topic_partitions: vec(
                "sluice_topic_partitions",
                "Partition logs of a topic hosted by this broker.",
                &["topic"],
            ),
            size: vec("sluice_log_size_bytes", "Bytes on disk of a partition's segments.", tp),
            segments: vec("sluice_log_segments", "Segments in a partition's log.", tp),
            log_start: vec("sluice_log_start_offset", "A partition's log start offset.", tp),
            log_end: vec("sluice_log_end_offset", "A partition's log end offset (next offset to be written).", tp),
            high_watermark: vec(
                "sluice_high_watermark",
                "A partition's high watermark (last committed offset + 1).",
                tp,
            ),
        };
        let mut descs = Vec::new();
        descs.extend(gauges.partitions.desc().into_iter().cloned());
        descs.extend(gauges.offline_dirs.desc().into_iter().cloned());
        for v in [&gauges.topic_size, &gauges.topic_partitions] {
            descs.extend(v.desc().into_iter().cloned());
        }
        if per_partition {
            for v in [&gauges.size, &gauges.segments, &gauges.log_start, &gauges.log_end, &gauges.high_watermark] {
                descs.extend(v.desc().into_iter().cloned());
            }
        }
        StorageCollector { logs, per_partition, gauges: Mutex::new(gauges), descs }
    }
}

impl Collector for StorageCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // A panic elsewhere while holding this lock leaves only gauge vectors behind; still usable.
        let g = self.gauges.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let partitions = self.logs.partitions();
        g.partitions.set(partitions.len() as i64);
        g.offline_dirs.set(self.logs.offline_dirs().len() as i64);
        // Refill from scratch so deleted topics and partitions disappear.
        for v in [&g.topic_size, &g.topic_partitions, &g.size, &g.segments, &g.log_start, &g.log_end, &g.high_watermark]
        {
            v.reset();
        }
        let mut by_topic: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for p in &partitions {
            let tp = p.topic_partition();
            let size = p.size_bytes() as i64;
            let t = by_topic.entry(tp.topic.as_str()).or_default();
            t.0 += size;
            t.1 += 1;
            if self.per_partition {
                let partition = tp.partition.to_string();
                let labels = [tp.topic.as_str(), partition.as_str()];
                let offsets = p.offsets();
                g.size.with_label_values(&labels).set(size);
                g.segments.with_label_values(&labels).set(p.segment_base_offsets().len() as i64);
                g.log_start.with_label_values(&labels).set(offsets.log_start_offset);
                g.log_end.with_label_values(&labels).set(offsets.log_end_offset);
                g.high_watermark.with_label_values(&labels).set(offsets.high_watermark);
            }
        }
        for (topic, (size, count)) in by_topic {
            g.topic_size.with_label_values(&[topic]).set(size);
            g.topic_partitions.with_label_values(&[topic]).set(count);
        }
        let mut out = Vec::new();
        out.extend(g.partitions.collect());
        out.extend(g.offline_dirs.collect());
        out.extend(g.topic_size.collect());
        out.extend(g.topic_partitions.collect());
        if self.per_partition {
            for v in [&g.size, &g.segments, &g.log_start, &g.log_end, &g.high_watermark] {
                out.extend(v.collect());
            }
        }
        out
    }
}
