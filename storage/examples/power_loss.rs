//! Runs the power-loss simulation over many seeds and prints what it found:
//! `cargo run --release -p sluice-storage --example power_loss -- --seeds 10000 [--from 0]`.
//! Exits non-zero when any seed found a problem; each finding names its seed.

#[path = "../tests/power_loss/workload.rs"]
mod workload;

fn main() {
    let mut seeds = 1000u64;
    let mut from = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (arg.as_str(), value) {
            ("--seeds", Some(v)) => seeds = v,
            ("--from", Some(v)) => from = v,
            _ => {
                eprintln!("usage: power_loss [--seeds N] [--from FIRST_SEED]");
                std::process::exit(2);
            }
        }
    }
    let started = std::time::Instant::now();
    let mut total = workload::Outcome::default();
    let mut durable_seeds = 0;
    for seed in from..from + seeds {
        let o = workload::run_seed(seed);
        durable_seeds += u64::from(o.durable);
        total.crashes += o.crashes;
        total.appends += o.appends;
        total.batches_lost += o.batches_lost;
        total.files_torn += o.files_torn;
        total.dirs_reverted += o.dirs_reverted;
        for f in &o.findings {
            println!("FINDING {f}");
        }
        total.findings.extend(o.findings);
    }
    println!(
        "seeds {seeds} (from {from}; {durable_seeds} durable mode) crashes {} appends {} unflushed batches lost {} \
         files torn {} dirs reverted {} findings {} in {:.1}s",
        total.crashes,
        total.appends,
        total.batches_lost,
        total.files_torn,
        total.dirs_reverted,
        total.findings.len(),
        started.elapsed().as_secs_f64()
    );
    if !total.findings.is_empty() {
        std::process::exit(1);
    }
}
