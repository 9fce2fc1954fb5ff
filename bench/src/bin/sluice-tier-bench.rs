//! `sluice-tier-bench`: reads the same log data locally and through the remote tier and prints
//! both side by side (MiB/s and per-read latency). It writes `--mib` MiB of 1 KiB records into
//! one partition (segments of `--segment-mib`), uploads the rolled segments with the remote log
//! manager to a `file://` tier (a temp dir) and to `memory://`, then reads every rolled segment
//! sequentially in `--fetch-kib` reads, as a consumer from offset 0 does: once from the local
//! log (`UnifiedLog::read`) and once per tier (`RemoteLogManager::read`, the Fetch path below the
//! local log start). Every read is checked to advance without gaps. Not a timed assertion: see
//! `docs/benchmarks.md` for numbers and how to read them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use sluice_protocol::batch::{BatchIter, RecordBatch};
use sluice_protocol::records::{BatchBuilder, Record};
use sluice_storage::{LogConfig, LogManager, LogManagerConfig, TopicPartition, UnifiedLog};
use sluice_tiered::{open_url, RemoteLogManager, RemoteLogMetadataFile, RemoteTier};

#[derive(Parser)]
#[command(about = "Remote (tiered) reads vs local reads of the same segments")]
struct Cli {
    /// MiB of record values to write and read back.
    #[arg(long, default_value_t = 256)]
    mib: u64,
    /// Segment size (MiB).
    #[arg(long, default_value_t = 32)]
    segment_mib: u64,
    /// Bytes per read (a consumer's `max.partition.fetch.bytes`).
    #[arg(long, default_value_t = 1024)]
    fetch_kib: usize,
    /// Record value size in bytes.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Records per batch.
    #[arg(long, default_value_t = 64)]
    batch_records: usize,
    /// Passes over the data per source (the first pass of a tier also fills its index cache).
    #[arg(long, default_value_t = 3)]
    passes: usize,
}

struct Stats {
    source: String,
    bytes: u64,
    elapsed: Duration,
    latency_us: Histogram<u64>,
}

fn build_batch(first: i64, n: usize, record_bytes: usize) -> anyhow::Result<RecordBatch> {
    let records = (0..n)
        .map(|i| Record {
            offset_delta: i as i32,
            timestamp_delta: i as i64,
            value: Some(Bytes::from(vec![b'a' + ((first as usize + i) % 26) as u8; record_bytes])),
            ..Record::default()
        })
        .collect();
    let b = BatchBuilder { base_timestamp: 1_000_000 + first, records, ..BatchBuilder::default() };
    Ok(RecordBatch::new(b.build()?)?)
}

/// Reads `[0, end)` with `read`, checking that offsets advance without gaps.
async fn read_through<F, Fut>(source: &str, end: i64, passes: usize, mut read: F) -> anyhow::Result<Stats>
where
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Bytes>>,
{
    let mut latency_us = Histogram::<u64>::new(3)?;
    let mut bytes = 0u64;
    let started = Instant::now();
    for _ in 0..passes {
        let mut next = 0i64;
        while next < end {
            let t = Instant::now();
            let data = read(next).await?;
            latency_us.record(t.elapsed().as_micros() as u64)?;
            if data.is_empty() {
                bail!("{source}: empty read at offset {next}");
            }
            bytes += data.len() as u64;
            for batch in BatchIter::new(data) {
                let batch = batch?;
                if batch.base_offset() > next {
                    bail!("{source}: gap at {next} (batch at {})", batch.base_offset());
                }
                next = next.max(batch.last_offset() + 1);
            }
        }
    }
    Ok(Stats { source: source.to_string(), bytes, elapsed: started.elapsed(), latency_us })
}

fn mib_per_s(s: &Stats) -> f64 {
    s.bytes as f64 / (1 << 20) as f64 / s.elapsed.as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let dir = tempfile::Builder::new().prefix("sluice-tier-bench-").tempdir()?;
    let bucket = tempfile::Builder::new().prefix("sluice-tier-bench-bucket-").tempdir()?;
    let config = LogConfig {
        segment_bytes: cli.segment_mib << 20,
        remote_storage_enable: true,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let c = config.clone();
    let (mgr, _) =
        LogManager::open(LogManagerConfig { log_dirs: vec![dir.path().to_path_buf()] }, &move |_: &str| c.clone())?;
    let tp = TopicPartition { topic: "bench".into(), partition: 0 };
    let p: Arc<UnifiedLog> = mgr.get_or_create(&tp, [9; 16], config)?;

    // Write.
    let batches = (cli.mib << 20) / (cli.record_bytes * cli.batch_records) as u64;
    let t = Instant::now();
    let mut next = 0i64;
    for _ in 0..batches {
        p.append(&[build_batch(next, cli.batch_records, cli.record_bytes)?], 0)?;
        next += cli.batch_records as i64;
    }
    p.flush()?;
    p.advance_high_watermark(next);
    let hw = p.offsets().high_watermark;
    let bases = p.segment_base_offsets();
    let end = *bases.last().context("no segment")?; // rolled segments only: what is uploaded
    println!(
        "wrote {} MiB in {} batches ({} segments) in {:.1} s; reading offsets [0, {end}) of {hw}, {} KiB per read, {} passes",
        cli.mib,
        batches,
        bases.len(),
        t.elapsed().as_secs_f64(),
        cli.fetch_kib,
        cli.passes
    );
    let max_bytes = cli.fetch_kib << 10;

    let mut results = Vec::new();
    let local = p.clone();
    results.push(
        read_through("local log", end, cli.passes, |o| {
            let local = local.clone();
            async move { Ok(local.read(o, max_bytes, end, true)?.records) }
        })
        .await?,
    );
    let mut uploads = Vec::new();
    for (name, url) in [("file://", format!("file://{}", bucket.path().display())), ("memory://", "memory://".into())] {
        // The remote segment list lives in the partition dir: start each tier from an empty one.
        let _ = std::fs::remove_file(RemoteLogMetadataFile::path(&p.dir()));
        let tier: Arc<dyn RemoteTier> = Arc::new(open_url(&url)?);
        let rlm = Arc::new(RemoteLogManager::new(tier));
        let t = Instant::now();
        let stats = rlm.sync(&p, 0).await?;
        uploads.push((name, stats.bytes_uploaded, t.elapsed()));
        let r = rlm.clone();
        let tp = tp.clone();
        results.push(
            read_through(&format!("remote {name}"), end, cli.passes, move |o| {
                let (r, tp) = (r.clone(), tp.clone());
                async move { r.read(&tp, o, max_bytes, end).await?.context("offset not in the remote tier") }
            })
            .await?,
        );
    }

    println!();
    println!("| source | MiB read | MiB/s | read p50 µs | read p99 µs | read max µs | vs local |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let local_rate = mib_per_s(&results[0]);
    for s in &results {
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {:.2}× |",
            s.source,
            s.bytes >> 20,
            mib_per_s(s),
            s.latency_us.value_at_quantile(0.5),
            s.latency_us.value_at_quantile(0.99),
            s.latency_us.max(),
            mib_per_s(s) / local_rate
        );
    }
    println!();
    for (name, bytes, elapsed) in uploads {
        println!(
            "upload to {name}: {} MiB in {:.2} s ({:.0} MiB/s)",
            bytes >> 20,
            elapsed.as_secs_f64(),
            bytes as f64 / (1 << 20) as f64 / elapsed.as_secs_f64()
        );
    }
    Ok(())
}
