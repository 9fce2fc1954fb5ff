//! `sluice-null-broker --listen 127.0.0.1:PORT`: the in-memory baseline broker as its own process,
//! so the benchmark measures its RSS and CPU exactly as it measures Sluice's.

use std::net::SocketAddr;

use clap::Parser;

#[derive(Parser)]
#[command(about = "In-memory Kafka-protocol baseline broker for sluice-bench")]
struct Args {
    /// Address to listen on (and to advertise in Metadata).
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// Tokio worker threads (default: one per core, like Sluice).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n);
    }
    rt.enable_all().thread_name("null-broker").build()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let broker = sluice_bench::null_broker::NullBroker::new(listener.local_addr()?);
        sluice_bench::null_broker::serve(broker, listener).await?;
        Ok(())
    })
}
