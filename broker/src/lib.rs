//! `sluice`: the broker library behind the `sluice` binary.
//!
//! Owns the network (listeners, connections, request pipelining), one handler per Kafka API
//! (`handlers/`), cluster metadata, configuration, produce-time validation and the mapping of
//! internal errors to Kafka error codes (`error`).

pub mod apis;
pub mod authz;
pub mod broker;
pub mod clock;
pub mod config;
pub mod config_admin;
pub mod context;
pub mod coordinator_io;
pub mod error;
pub mod features;
pub mod fetch_session;
pub mod group;
pub mod handlers;
pub mod internal_log;
pub mod limits;
pub mod log_tasks;
pub mod metadata;
pub mod metrics;
pub mod network;
pub mod producer_id;
pub mod remote_log;
pub mod server;
pub mod shutdown;
pub mod topic_config;
pub mod txn;
pub mod validate;

pub use config::{Config, ConfigError};
pub use server::{start, BrokerHandle};

use std::process::ExitCode;

/// What the `sluice` binary runs: parses `[server.properties] [--override key=value]...`, sets up
/// logging, starts the broker and shuts it down cleanly on SIGINT/SIGTERM.
pub fn cli_main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("usage: sluice [server.properties] [--override key=value]...");
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sluice: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("sluice").build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sluice: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        // Listen for signals before starting, so a SIGTERM during startup is a clean exit too.
        let mut signal = Box::pin(wait_for_signal());
        let handle = tokio::select! {
            h = start(config) => h?,
            _ = &mut signal => {
                tracing::info!("signal received during startup; exiting");
                return Ok(());
            }
        };
        tracing::info!(bootstrap = %handle.bootstrap(), "sluice started");
        signal.await;
        tracing::info!("shutting down");
        handle.shutdown().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "sluice failed");
            eprintln!("sluice: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
