//! Crash checker (Jepsen-style): idempotent producers, transactional producers that commit or
//! abort (about 1 in 4, at random) and read_committed consumers run while the broker process is
//! killed with SIGKILL and restarted on the same data dir and port, several times. Then, from a
//! final clean read (read_committed and read_uncommitted, from offset 0), the history is checked
//! (see `sluice_tests::chaos`): no acknowledged record lost, no duplicates, no record of an aborted
//! transaction ever read by a read_committed consumer, per-producer per-partition order, and
//! committed (or unknown-outcome) transactions all-or-nothing. Beside librdkafka's transactional
//! producers (transactions v1) run transactions-v2 producers (Produce v12 adding the partitions,
//! EndTxn v5 bumping the epoch), under the same checks.
//!
//! CI runs a short version; a long one:
//! `SLUICE_CHAOS_CYCLES=50 SLUICE_CHAOS_SECONDS=20 cargo test --release -p sluice-tests chaos -- --nocapture`
//! (`SLUICE_CHAOS_SEED=<n>` repeats the random choices of a run).

use sluice_tests::chaos::{run, ChaosConfig};
use sluice_tests::*;

const BIN: &str = env!("CARGO_BIN_EXE_sluice-test-broker");

#[test]
fn chaos_kill9_idempotent_and_transactional_producers_read_committed() {
    let cfg = ChaosConfig::from_env();
    check!(
        "{} kill -9 cycles of ~{}s with {} idempotent + {} transactional (v1) + {} transactional (v2) producers and {} read_committed consumers",
        cfg.cycles,
        cfg.seconds_per_cycle,
        cfg.idempotent_producers,
        cfg.transactional_producers,
        cfg.v2_producers,
        cfg.consumers
    );
    let report = run(BIN, &cfg);
    println!("{}", report.summary());
    for (note, n) in &report.txn_notes {
        println!("[chaos] {n} x {note}");
    }
    for line in &report.details {
        println!("[chaos] VIOLATION {line}");
    }
    check!("the workload did something: acknowledged records, committed and aborted transactions, reads");
    assert!(report.idem_acked > 0, "no idempotent record acknowledged");
    assert!(report.committed_txns > 0, "no transaction committed");
    if cfg.v2_producers > 0 {
        assert!(report.v2_committed_txns > 0, "no transactions-v2 transaction committed");
    }
    assert!(report.aborted_txns > 0, "no transaction aborted");
    assert!(report.run_reads > 0 && report.read > 0, "nothing read");
    check!(
        "no acknowledged record lost, no duplicate, no aborted record read, order kept, transactions all-or-nothing"
    );
    assert!(report.ok(), "{}\n{}", report.summary(), report.details.join("\n"));
}
