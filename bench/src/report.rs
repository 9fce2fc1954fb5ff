//! Output: Markdown tables for stdout (so a run pastes straight into `docs/benchmarks.md`) and a
//! JSON document with the machine, the options and every number.
//!
//! Ratios are Sluice / baseline for the same workload in the same run: for throughput below 1 is
//! worse, for latency, memory and CPU above 1 is worse.

use std::fmt::Write as _;

use serde::Serialize;

use crate::broker_proc::BrokerKind;
use crate::load::LatencySummary;
use crate::workloads::{RunOptions, RunResult};

/// Where the numbers came from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let mem_kb: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Self {
            nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_model,
            mem_total_gib: mem_kb / 1024.0 / 1024.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
        }
    }
}

/// Sluice / baseline for one workload.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub workload: String,
    pub records_per_sec: f64,
    pub produce_p99: Option<f64>,
    pub end_to_end_p99: Option<f64>,
    pub end_to_end_p999: Option<f64>,
    pub broker_peak_rss: f64,
    pub broker_cpu_seconds: f64,
}

/// Pairs each Sluice result with the baseline result of the same workload.
pub fn ratios(results: &[RunResult]) -> Vec<Ratio> {
    let div = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let opt = |a: Option<f64>, b: Option<f64>| Some(div(a?, b?));
    results
        .iter()
        .filter(|r| r.broker == BrokerKind::Sluice)
        .filter_map(|s| {
            let n = results.iter().find(|r| r.broker == BrokerKind::Null && r.workload == s.workload)?;
            Some(Ratio {
                workload: s.workload.clone(),
                records_per_sec: div(s.records_per_sec, n.records_per_sec),
                produce_p99: opt(s.produce_latency.map(|l| l.p99_ms), n.produce_latency.map(|l| l.p99_ms)),
                end_to_end_p99: opt(s.end_to_end_latency.map(|l| l.p99_ms), n.end_to_end_latency.map(|l| l.p99_ms)),
                end_to_end_p999: opt(s.end_to_end_latency.map(|l| l.p999_ms), n.end_to_end_latency.map(|l| l.p999_ms)),
                broker_peak_rss: div(s.broker_peak_rss_mib, n.broker_peak_rss_mib),
                broker_cpu_seconds: div(s.broker_cpu_seconds, n.broker_cpu_seconds),
            })
        })
        .collect()
}

/// The whole JSON document.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub tool: &'static str,
    pub date_utc: String,
    pub machine: Machine,
    pub options: &'a RunOptions,
    pub results: &'a [RunResult],
    pub ratios: Vec<Ratio>,
}

/// `date -u` without a date crate: the one thing the report needs a calendar for.
pub fn date_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn lat(l: &Option<LatencySummary>) -> [String; 4] {
    match l {
        Some(l) => [ms(l.p50_ms), ms(l.p99_ms), ms(l.p999_ms), ms(l.max_ms)],
        None => ["–".into(), "–".into(), "–".into(), "–".into()],
    }
}

fn ratio(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.2}×"),
        _ => "–".into(),
    }
}

/// The three tables: throughput and resources, latency, Sluice/baseline.
pub fn tables(results: &[RunResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Throughput and broker resources (MiB = 2^20 bytes of record values)\n");
    let _ = writeln!(
        out,
        "| workload | broker | records | s | records/s | MiB/s | broker peak RSS MiB | broker CPU s | client CPU s | notes |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in results {
        let mut notes = Vec::new();
        if let Some(c) = r.create_topic_ms {
            notes.push(format!("create topic {} ms", ms(c)));
        }
        if let Some(t) = r.restart_ms {
            notes.push(format!("restart {} ms", ms(t)));
        }
        notes.extend(r.errors.iter().map(|e| format!("ERROR: {e}")));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} | {:.0} | {:.1} | {:.0} | {:.2} | {:.2} | {} |",
            r.workload,
            r.broker.name(),
            r.records,
            r.seconds,
            r.records_per_sec,
            r.mib_per_sec,
            r.broker_peak_rss_mib,
            r.broker_cpu_seconds,
            r.client_cpu_seconds,
            notes.join("; ")
        );
    }
    let _ =
        writeln!(out, "\nLatency in ms (produce = send to delivery report; end-to-end = send to consumer receipt)\n");
    let _ = writeln!(out, "| workload | broker | produce p50 | p99 | p99.9 | max | e2e p50 | p99 | p99.9 | max |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let [a, b, c, d] = lat(&r.produce_latency);
        let [e, f, g, h] = lat(&r.end_to_end_latency);
        let _ =
            writeln!(out, "| {} | {} | {a} | {b} | {c} | {d} | {e} | {f} | {g} | {h} |", r.workload, r.broker.name());
    }
    let rs = ratios(results);
    if !rs.is_empty() {
        let _ = writeln!(out, "\nSluice / baseline (throughput: lower is worse; latency, RSS, CPU: higher is worse)\n");
        let _ = writeln!(out, "| workload | records/s | produce p99 | e2e p99 | e2e p99.9 | peak RSS | broker CPU s |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
        for r in &rs {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.workload,
                ratio(Some(r.records_per_sec)),
                ratio(r.produce_p99),
                ratio(r.end_to_end_p99),
                ratio(r.end_to_end_p999),
                ratio(Some(r.broker_peak_rss)),
                ratio(Some(r.broker_cpu_seconds)),
            );
        }
    }
    out
}
