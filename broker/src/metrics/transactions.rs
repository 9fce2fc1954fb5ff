//! Transaction metrics: transactions completed by outcome and aborted on timeout (counted by the
//! coordinator), and, computed at scrape, transactional ids by coordinator state and open
//! transactions summed over partitions (what holds last stable offsets back).

use std::sync::{Mutex, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::register;
use crate::broker::Broker;
use crate::txn::TxnState;

pub struct TransactionMetrics {
    /// `result` = `commit` or `abort`.
    pub completed: IntCounterVec,
    pub timed_out: IntCounter,
}

impl TransactionMetrics {
    pub fn new(r: &Registry) -> Self {
        let completed = register(
            r,
            IntCounterVec::new(
                Opts::new("sluice_transactions_completed_total", "Transactions completed, by result."),
                &["result"],
            )
            .expect("valid metric"),
        );
        for result in ["commit", "abort"] {
            completed.with_label_values(&[result]);
        }
        let timed_out = register(
            r,
            IntCounter::with_opts(Opts::new(
                "sluice_transactions_timed_out_total",
                "Transactions aborted by the coordinator because transaction.timeout.ms passed.",
            ))
            .expect("valid metric"),
        );
        TransactionMetrics { completed, timed_out }
    }

    pub fn completed(&self, commit: bool) {
        self.completed.with_label_values(&[if commit { "commit" } else { "abort" }]).inc();
    }
}

/// Transactional ids by state and open partition transactions, read at scrape time.
pub struct TransactionCollector {
    broker: Weak<Broker>,
    by_state: IntGaugeVec,
    open: IntGauge,
    descs: Vec<Desc>,
    lock: Mutex<()>,
}

impl TransactionCollector {
    pub fn new(broker: Weak<Broker>) -> Self {
        let by_state = IntGaugeVec::new(
            Opts::new("sluice_transactional_ids", "Transactional ids known to the coordinator, by state."),
            &["state"],
        )
        .expect("valid metric");
        let open = IntGauge::with_opts(Opts::new(
            "sluice_open_partition_transactions",
            "Transactions open in a partition (data written, no marker yet), summed over partitions.",
        ))
        .expect("valid metric");
        let mut descs: Vec<Desc> = by_state.desc().into_iter().cloned().collect();
        descs.extend(open.desc().into_iter().cloned());
        TransactionCollector { broker, by_state, open, descs, lock: Mutex::new(()) }
    }
}

impl Collector for TransactionCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(broker) = self.broker.upgrade() else { return Vec::new() };
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let counts = broker.txns.count_by_state();
        for state in TxnState::ALL {
            self.by_state.with_label_values(&[state.name()]).set(counts.get(&state).copied().unwrap_or(0) as i64);
        }
        let open: usize = broker.logs.partitions().iter().map(|p| p.open_transactions()).sum();
        self.open.set(open as i64);
        let mut out = self.by_state.collect();
        out.extend(self.open.collect());
        out
    }
}
