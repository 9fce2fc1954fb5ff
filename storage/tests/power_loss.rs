//! Power-loss simulation over a fixed set of seeds (see `power_loss/workload.rs` for what each
//! seed does and checks; `cargo run --release -p sluice-storage --example power_loss -- --seeds
//! N` runs many more). `POWER_LOSS_SEEDS` overrides the count.

#[path = "power_loss/workload.rs"]
mod workload;

/// Seeds that once found a bug; they run first, always (without retention, which joined the
/// workload later):
/// - 30, 54: a torn tail ending exactly at a batch boundary in a rolled segment that was never
///   flushed, while later segments survived: recovery kept the later segments after the gap;
/// - 24, 8: a roll in the middle of an append snapshotted producer state that already held the
///   append's batch; a power loss took the batch, and recovery forgot the producer's earlier
///   batches with it (a retry of the last surviving one was written twice);
/// - 542, 714: a segment file created by recovery (every segment lost) never had its directory
///   entry fsynced: data fsynced into it later vanished with it;
/// - 1306, 1248, 399: a `.txnindex` file rebuilt by recovery, then a crash before any flush: the
///   next recovery found it in the page cache, never fsynced it, and a power loss took it after
///   the recovery point had passed it (an abort lost for good);
/// - 1738, 2508, 2510: an ABORT marker that rolled the segment was already applied to the
///   producer state snapshotted at the roll; a power loss took the marker, and recovery started
///   from a snapshot without the open transaction (its abort then began at a later offset, and
///   read_committed consumers would have read part of an aborted transaction).
const REGRESSION_SEEDS: &[u64] = &[30, 54, 24, 8, 542, 714, 1306, 1248, 399, 1738, 2508, 2510];

/// Seeds of the workload with retention that once found a bug:
/// - 70: DeleteRecords moved the recovery point up to the new log start, past unflushed records
///   of a segment that stays; a power loss then took data below the recovery point;
/// - 563: recovery replayed the remaining segments on top of a producer snapshot older than the
///   first segment, so a producer whose newer batches were deleted came back with an old
///   sequence and its next batch was refused.
const RETENTION_REGRESSION_SEEDS: &[u64] = &[70, 563];

#[test]
fn no_acknowledged_or_fsynced_data_is_lost_and_recovery_always_succeeds() {
    let seeds: u64 = std::env::var("POWER_LOSS_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let mut findings = Vec::new();
    let mut crashes = 0;
    let mut lost = 0;
    let mut durable_seeds = 0;
    let from: u64 = std::env::var("POWER_LOSS_FROM").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let regressions = REGRESSION_SEEDS
        .iter()
        .map(|s| workload::run_seed_with(*s, false))
        .chain(RETENTION_REGRESSION_SEEDS.iter().map(|s| workload::run_seed_with(*s, true)));
    for outcome in regressions.chain((from..from + seeds).map(workload::run_seed)) {
        crashes += outcome.crashes;
        lost += outcome.batches_lost;
        durable_seeds += usize::from(outcome.durable);
        findings.extend(outcome.findings);
    }
    eprintln!(
        "{seeds} seeds ({durable_seeds} in durable mode), {crashes} crashes, {lost} unflushed batches lost, {} findings",
        findings.len()
    );
    assert!(findings.is_empty(), "{}", findings.join("\n"));
    // The simulation bites: the default mode does lose unflushed tails.
    assert!(lost > 0);
}
