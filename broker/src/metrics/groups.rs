//! Consumer-group gauges computed at scrape time: groups per state, members per group, and per
//! group/topic/partition the committed offset and the lag (high watermark minus committed
//! offset, never negative) — the number operators otherwise need a separate lag exporter for.
//!
//! The collector holds a `Weak<Broker>`: it is registered after the broker exists and must not
//! keep a stopped broker alive through the registry.

use std::collections::BTreeMap;
use std::sync::{Mutex, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};
use sluice_storage::TopicPartition;

use crate::broker::Broker;

pub struct GroupCollector {
    broker: Weak<Broker>,
    gauges: Mutex<Gauges>,
    descs: Vec<Desc>,
}

struct Gauges {
    groups: IntGaugeVec,
    members: IntGaugeVec,
    committed: IntGaugeVec,
    lag: IntGaugeVec,
}

fn vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
}

impl Gauges {
    fn new() -> Self {
        let gtp = &["group", "topic", "partition"];
        Gauges {
            groups: vec("sluice_consumer_groups", "Consumer groups by state.", &["state"]),
            members: vec("sluice_consumer_group_members", "Members of a consumer group.", &["group"]),
            committed: vec(
                "sluice_consumer_group_committed_offset",
                "A group's committed offset for a partition.",
                gtp,
            ),
            lag: vec(
                "sluice_consumer_group_lag",
                "High watermark minus the group's committed offset for a partition (records behind).",
                gtp,
            ),
        }
    }
}

impl GroupCollector {
    pub fn new(broker: Weak<Broker>) -> Self {
        let gauges = Gauges::new();
        let mut descs = Vec::new();
        for v in [&gauges.groups, &gauges.members, &gauges.committed, &gauges.lag] {
            descs.extend(v.desc().into_iter().cloned());
        }
        GroupCollector { broker, gauges: Mutex::new(gauges), descs }
    }
}

impl Collector for GroupCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(broker) = self.broker.upgrade() else { return Vec::new() };
        let mut g = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        // Rebuilt each scrape so deleted groups and partitions disappear.
        *g = Gauges::new();
        let mut by_state: BTreeMap<&str, i64> = BTreeMap::new();
        for snap in broker.groups.snapshot() {
            *by_state.entry(snap.state).or_default() += 1;
            g.members.with_label_values(&[&snap.group_id]).set(snap.members as i64);
            for ((topic, partition), committed) in &snap.offsets {
                let p = partition.to_string();
                let labels = [snap.group_id.as_str(), topic.as_str(), p.as_str()];
                g.committed.with_label_values(&labels).set(*committed);
                let tp = TopicPartition { topic: topic.clone(), partition: *partition };
                if let Some(log) = broker.logs.get(&tp) {
                    let hw = log.offsets().high_watermark;
                    g.lag.with_label_values(&labels).set((hw - committed).max(0));
                }
            }
        }
        for (state, n) in by_state {
            g.groups.with_label_values(&[state]).set(n);
        }
        let mut out = Vec::new();
        for v in [&g.groups, &g.members, &g.committed, &g.lag] {
            out.extend(v.collect());
        }
        out
    }
}
