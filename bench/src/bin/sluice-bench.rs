//! `sluice-bench`: runs the standard workloads against the release `sluice` binary and the
//! in-memory baseline (`all`), or one custom workload (`run`). See `docs/benchmarks.md`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use sluice_bench::broker_proc::{free_port, BrokerKind, BrokerProcess, Target};
use sluice_bench::load::{Keys, ProduceSpec};
use sluice_bench::report::{self, Machine, Report};
use sluice_bench::workloads::{self, RunOptions, RunResult, WorkloadId};

#[derive(Parser)]
#[command(about = "Load generator for Sluice with a null-broker baseline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The standard workloads W1–W6 against Sluice and the baseline; tables to stdout, JSON to a file.
    All(AllArgs),
    /// One custom produce workload (with a tailing consumer) against one broker.
    Run(RunArgs),
}

#[derive(Args)]
struct Common {
    /// Multiplies every workload's size (1.0 = full scale: W1 2 GiB, W2 10 M records).
    #[arg(long, default_value_t = 0.25)]
    scale: f64,
    /// Producer instances (each its own librdkafka client and thread).
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Producer `linger.ms`.
    #[arg(long, default_value_t = 5)]
    linger_ms: u32,
    /// Producer `batch.size` in bytes (librdkafka's default).
    #[arg(long, default_value_t = 1_000_000)]
    batch_bytes: usize,
    /// The broker binary (default: `sluice` next to this executable).
    #[arg(long)]
    sluice_bin: Option<PathBuf>,
    /// The baseline binary (default: `sluice-null-broker` next to this executable).
    #[arg(long)]
    null_bin: Option<PathBuf>,
    /// Where brokers keep their data (default: a temp dir, removed afterwards).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// No consumer alongside the producers (no end-to-end latency, no read-back check).
    #[arg(long)]
    no_tail: bool,
    /// Do not build `sluice` and `sluice-null-broker` first.
    #[arg(long)]
    no_build: bool,
    /// Write the JSON report here.
    #[arg(long, default_value = "target/sluice-bench/results.json")]
    json: PathBuf,
}

#[derive(Args)]
struct AllArgs {
    #[command(flatten)]
    common: Common,
    /// Only these workloads (W3 also runs W1, whose topic it reads).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<WorkloadId>,
    /// Only these brokers.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [BrokerKind::Sluice, BrokerKind::Null])]
    brokers: Vec<BrokerKind>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, value_enum, default_value_t = BrokerKind::Sluice)]
    broker: BrokerKind,
    /// Use a broker that is already running here (e.g. under a profiler) instead of starting one.
    #[arg(long)]
    bootstrap: Option<std::net::SocketAddr>,
    /// With --bootstrap: the broker's pid, to read its RSS and CPU.
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    #[arg(long, default_value = "all")]
    acks: String,
    /// none, lz4, zstd, snappy or gzip.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Target rate in MiB/s of record values (default: unthrottled).
    #[arg(long)]
    rate_mib: Option<f64>,
    /// Round-robin keys and partitions instead of keyless records.
    #[arg(long)]
    round_robin: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::All(args) => {
            let (opts, _work_dir) = options(&args.common)?;
            let selected: Vec<WorkloadId> = if args.only.is_empty() {
                vec![WorkloadId::W1, WorkloadId::W2, WorkloadId::W3, WorkloadId::W4, WorkloadId::W5, WorkloadId::W6]
            } else {
                args.only.clone()
            };
            run_and_report(&args.common, &opts, |opts, progress| {
                workloads::run_workloads(opts, &selected, &args.brokers, progress)
            })
        }
        Command::Run(args) => {
            let (opts, _work_dir) = options(&args.common)?;
            let spec = ProduceSpec {
                topic: format!("bench-custom-{}", std::process::id()),
                partitions: args.partitions,
                records: args.records,
                record_bytes: args.record_bytes,
                acks: args.acks.clone(),
                compression: args.compression.clone(),
                linger_ms: opts.linger_ms,
                batch_bytes: opts.batch_bytes,
                rate: args.rate_mib.map(|m| m * 1024.0 * 1024.0 / args.record_bytes as f64),
                keys: if args.round_robin { Keys::RoundRobin } else { Keys::None },
                producers: opts.producers,
            };
            run_and_report(&args.common, &opts, |opts, progress| {
                let bin = match args.broker {
                    BrokerKind::Sluice => &opts.sluice_bin,
                    BrokerKind::Null => &opts.null_bin,
                };
                if let Some(addr) = args.bootstrap {
                    let target = Target { kind: args.broker, addr, pid: args.pid };
                    let r = workloads::measure_produce(&target, "custom", "custom workload", &spec, opts.tail)?;
                    progress(&r);
                    return Ok(vec![r]);
                }
                let mut broker =
                    BrokerProcess::start(args.broker, bin, &opts.work_dir.join(args.broker.name()), free_port()?)?;
                let r = workloads::measure_produce(&broker.target(), "custom", "custom workload", &spec, opts.tail)?;
                progress(&r);
                broker.stop()?;
                Ok(vec![r])
            })
        }
    }
}

type Runner<'a> = dyn FnMut(&RunResult) + 'a;

fn run_and_report(
    common: &Common,
    opts: &RunOptions,
    run: impl FnOnce(&RunOptions, &mut Runner<'_>) -> anyhow::Result<Vec<RunResult>>,
) -> anyhow::Result<()> {
    let machine = Machine::detect();
    eprintln!(
        "sluice-bench: scale {}, {} cores ({}), {:.1} GiB; brokers' data in {}",
        opts.scale,
        machine.nproc,
        machine.cpu_model,
        machine.mem_total_gib,
        opts.work_dir.display()
    );
    let mut progress = |r: &RunResult| {
        eprintln!(
            "  {:<8} {:<6} {:>10} records {:>8.1} s {:>10.0} rec/s {:>8.1} MiB/s{}",
            r.workload,
            r.broker.name(),
            r.records,
            r.seconds,
            r.records_per_sec,
            r.mib_per_sec,
            if r.errors.is_empty() { String::new() } else { format!("  ERRORS: {}", r.errors.join("; ")) }
        );
    };
    let results = run(opts, &mut progress)?;
    println!("{}", report::tables(&results));
    let doc = Report {
        tool: "sluice-bench",
        date_utc: report::date_utc(),
        machine,
        options: opts,
        ratios: report::ratios(&results),
        results: &results,
    };
    if let Some(dir) = common.json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&common.json, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", common.json.display()))?;
    eprintln!("sluice-bench: JSON written to {}", common.json.display());
    let failed = results.iter().filter(|r| !r.errors.is_empty()).count();
    anyhow::ensure!(failed == 0, "{failed} run(s) reported errors (see the notes column)");
    Ok(())
}

/// Resolves binaries and the work dir; builds the broker unless told not to.
fn options(common: &Common) -> anyhow::Result<(RunOptions, Option<tempfile::TempDir>)> {
    let exe_dir = std::env::current_exe()?.parent().map(Path::to_path_buf).unwrap_or_default();
    let sluice_bin = common.sluice_bin.clone().unwrap_or_else(|| exe_dir.join("sluice"));
    let null_bin = common.null_bin.clone().unwrap_or_else(|| exe_dir.join("sluice-null-broker"));
    if !common.no_build {
        build_brokers(&exe_dir)?;
    }
    for bin in [&sluice_bin, &null_bin] {
        anyhow::ensure!(
            bin.exists(),
            "{} not found: run `cargo build --release -p sluice -p sluice-bench` (or pass --sluice-bin/--null-bin)",
            bin.display()
        );
    }
    // A temp dir lives as long as the returned guard: the caller holds it for the whole run.
    let (work_dir, guard) = match &common.work_dir {
        Some(d) => (d.clone(), None),
        None => {
            let dir = tempfile::Builder::new().prefix("sluice-bench-").tempdir()?;
            (dir.path().to_path_buf(), Some(dir))
        }
    };
    let opts = RunOptions {
        scale: common.scale,
        producers: common.producers,
        linger_ms: common.linger_ms,
        batch_bytes: common.batch_bytes,
        tail: !common.no_tail,
        sluice_bin,
        null_bin,
        work_dir,
    };
    Ok((opts, guard))
}

/// Builds `sluice` and `sluice-null-broker` with the profile of this executable (`cargo run
/// --release` builds only the bench binary itself), in the workspace this tool was built from,
/// so `all` never measures a stale broker. Skipped (with a note) when cargo or the sources are
/// absent; cargo's own up-to-date check makes it quick when nothing changed.
fn build_brokers(exe_dir: &Path) -> anyhow::Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if !workspace.join("broker").exists() {
        eprintln!("sluice-bench: workspace sources not found; using the existing binaries");
        return Ok(());
    }
    let mut args =
        vec!["build", "-p", "sluice", "-p", "sluice-bench", "--bin", "sluice", "--bin", "sluice-null-broker"];
    if exe_dir.file_name().is_some_and(|n| n == "release") {
        args.push("--release");
    } else {
        eprintln!("sluice-bench: WARNING: not a release build; numbers will not mean much");
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("sluice-bench: cargo {}", args.join(" "));
    match std::process::Command::new(cargo).args(&args).current_dir(&workspace).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => anyhow::bail!("building the brokers failed ({s})"),
        Err(e) => {
            eprintln!("sluice-bench: cannot run cargo ({e}); using the existing binaries");
            Ok(())
        }
    }
}
