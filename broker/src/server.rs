//! Broker lifecycle: open storage and metadata, bind listeners, run background tasks, and shut
//! down cleanly — stop accepting, let connections answer what they are working on, flush every
//! log, write checkpoints and the clean-shutdown marker. The metrics listener is bound first, so
//! `/health/live` answers during log recovery and `/health/ready` turns 200 once the Kafka
//! listeners are bound.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sluice_storage::{LogManager, LogManagerConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::config::{Config, Listener};
use crate::fetch_session::FetchSessionCache;
use crate::metadata::MetadataStore;
use crate::metrics::Metrics;
use crate::topic_config::TopicConfig;

/// How long shutdown waits for open connections to finish their current request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A running broker.
pub struct BrokerHandle {
    broker: Arc<Broker>,
    addrs: Vec<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    shutdown_tx: watch::Sender<bool>,
    tasks: JoinSet<()>,
    conns: Arc<tokio::sync::Mutex<JoinSet<()>>>,
}

impl BrokerHandle {
    /// The bound address of the first listener (the real port when configured with port 0).
    pub fn kafka_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Bound addresses of every listener, in `listeners` order.
    pub fn listener_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// `host:port` for a client's `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.kafka_addr().to_string()
    }

    /// The bound address of `metrics.listener` (the real port when configured with port 0);
    /// `None` when it is disabled with `none`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// This broker's metrics (its own Prometheus registry).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.broker.metrics
    }

    /// The shared broker state (for tests and embedding).
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Clean shutdown: stop accepting, answer in-flight requests, flush, write the clean marker.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.broker.metrics.set_ready(false);
        let _ = self.shutdown_tx.send(true);
        while self.tasks.join_next().await.is_some() {}
        let mut conns = std::mem::take(&mut *self.conns.lock().await);
        if tokio::time::timeout(SHUTDOWN_GRACE, async { while conns.join_next().await.is_some() {} }).await.is_err() {
            tracing::warn!("connections still open after the shutdown grace period; closing them");
            conns.abort_all();
        }
        let logs = self.broker.logs.clone();
        tokio::task::spawn_blocking(move || logs.shutdown()).await.context("log shutdown task")??;
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Starts a broker with `config`; returns once it is accepting connections.
pub async fn start(config: Config) -> anyhow::Result<BrokerHandle> {
    start_with_authorizer(config, Arc::new(crate::authz::AllowEveryone)).await
}

/// [`start`] with the authorizer every request is checked against (tests and embedders that
/// bring their own; the binary allows everyone, as Kafka does without `authorizer.class.name`).
pub async fn start_with_authorizer(
    mut config: Config,
    authorizer: Arc<dyn crate::authz::Authorizer>,
) -> anyhow::Result<BrokerHandle> {
    crate::limits::apply(&mut config);
    for key in &config.unknown_keys {
        tracing::warn!(key = %key, "ignoring unknown config");
    }
    // Created first so the metrics listener can report liveness while logs load. If startup fails
    // below, dropping `shutdown_tx` stops the metrics server.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::new());
    let mut tasks = JoinSet::new();
    let metrics_addr = match config.metrics_listener {
        Some(addr) => {
            let listener = crate::metrics::http::bind(addr).await?;
            let bound = listener.local_addr().context("metrics.listener local address")?;
            tracing::info!(addr = %bound, "metrics listening");
            tasks.spawn(crate::metrics::http::serve(listener, metrics.clone(), shutdown_rx.clone()));
            Some(bound)
        }
        None => None,
    };
    let metadata = MetadataStore::open(&config).context("opening cluster metadata")?;
    let topic_configs: std::collections::HashMap<String, TopicConfig> =
        metadata.topics().iter().map(|t| (t.name.clone(), t.config.clone())).collect();
    let default_topic = TopicConfig::resolve(&Default::default(), &config);
    let log_cfg = LogManagerConfig { log_dirs: config.log_dirs.clone() };
    let started = std::time::Instant::now();
    let (logs, report) = tokio::task::spawn_blocking(move || {
        LogManager::open(log_cfg, &|topic: &str| {
            topic_configs.get(topic).map(|t| t.log.clone()).unwrap_or_else(|| default_topic.log.clone())
        })
    })
    .await
    .context("log loading task")?
    .context("loading logs")?;
    tracing::info!(
        partitions = report.partitions_loaded,
        unclean_dirs = report.unclean_dirs.len(),
        segments_recovered = report.segments_recovered,
        bytes_truncated = report.bytes_truncated,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "logs loaded"
    );

    // Bind every listener before advertising: port 0 becomes the real port.
    let mut bound = Vec::new();
    for l in &config.listeners {
        let listener = TcpListener::bind(l.bind_addr())
            .await
            .with_context(|| format!("binding listener {} on {}", l.name, l.bind_addr()))?;
        let addr = listener.local_addr()?;
        bound.push((l.clone(), listener, addr));
    }
    let advertised: Vec<Listener> = config
        .advertised_listeners
        .iter()
        .map(|a| {
            let mut a = a.clone();
            if let Some((_, _, addr)) = bound.iter().find(|(l, _, _)| l.name == a.name) {
                if a.port == 0 {
                    a.port = addr.port();
                }
                if a.host.is_empty() || a.host == "0.0.0.0" || a.host == "::" {
                    a.host = if addr.ip().is_unspecified() { "localhost".to_string() } else { addr.ip().to_string() };
                }
            }
            a
        })
        .collect();

    if let Err(e) = metrics.registry().register(Box::new(crate::metrics::storage::StorageCollector::new(
        logs.clone(),
        config.metrics_per_partition_enable,
    ))) {
        tracing::warn!(error = %e, "storage metrics unavailable");
    }
    let remote = crate::remote_log::open(&config)?;
    let producer_ids = Arc::new(open_producer_ids(&config)?);
    let broker = Arc::new_cyclic(|weak: &std::sync::Weak<Broker>| {
        let (groups, txns) = crate::coordinator_io::coordinators(weak, &config, &shutdown_rx, &metrics, &producer_ids);
        Broker {
            fetch_sessions: FetchSessionCache::new(
                config.max_incremental_fetch_session_cache_slots,
                config.max_incremental_fetch_session_partitions,
            ),
            groups,
            metadata,
            logs,
            advertised,
            shutdown: shutdown_rx,
            metrics,
            remote,
            producer_ids,
            txns,
            topic_admin: std::sync::Mutex::new(()),
            authorizer,
            config,
        }
    });
    // Moves between log dirs a crash interrupted: completed where the metadata already records
    // the new dir, resumed otherwise (before anything reads or writes a log).
    // A failure here stops the start, as Kafka stops on a partition found in two dirs: serving
    // either copy could lose what the other holds.
    let reconcile = {
        let b = broker.clone();
        tokio::task::spawn_blocking(move || {
            b.logs.reconcile_log_dirs(&|tp| {
                b.metadata.topic(&tp.topic).and_then(|t| b.metadata.partition_log_dir(&t, tp.partition))
            })
        })
        .await
        .context("log dir reconciliation task")?
        .context("settling interrupted moves between log dirs")?
    };
    if reconcile != Default::default() {
        tracing::info!(
            promoted = reconcile.promoted.len(),
            resumed = reconcile.resumed.len(),
            restarted = reconcile.restarted.len(),
            duplicates_removed = reconcile.duplicates_removed.len(),
            "settled interrupted moves between log dirs"
        );
    }
    broker.remove_orphan_logs();
    // Becoming leader with itself as the only in-sync replica: everything in the log is
    // replicated, so the high watermark starts at the log end (Kafka's maybeIncrementLeaderHW).
    // Its leader epoch starts at the log end unless the log already has it (Kafka's makeLeader).
    for p in broker.logs.partitions() {
        p.advance_high_watermark(p.offsets().log_end_offset);
        p.assign_leader_epoch(crate::broker::LEADER_EPOCH);
    }
    let (group, txn) = (&broker.config.group, &broker.config.transactions);
    broker.ensure_internal_topic(
        crate::group::records::OFFSETS_TOPIC,
        group.offsets_topic_num_partitions,
        group.offsets_topic_segment_bytes,
    )?;
    broker.ensure_internal_topic(
        crate::txn::records::TXN_TOPIC,
        txn.state_log_num_partitions,
        txn.state_log_segment_bytes,
    )?;
    if let Err(e) = broker
        .metrics
        .registry()
        .register(Box::new(crate::metrics::tier::PartitionStateCollector::new(Arc::downgrade(&broker))))
    {
        tracing::warn!(error = %e, "tier and producer metrics unavailable");
    }
    if let Err(e) = broker
        .metrics
        .registry()
        .register(Box::new(crate::metrics::groups::GroupCollector::new(Arc::downgrade(&broker))))
    {
        tracing::warn!(error = %e, "group metrics unavailable");
    }
    let loaded = broker.groups.load();
    tracing::info!(records = loaded, "group metadata loaded");
    let loaded = broker.txns.load();
    tracing::info!(transactional_ids = loaded, "transaction state loaded");
    if let Err(e) = broker
        .metrics
        .registry()
        .register(Box::new(crate::metrics::transactions::TransactionCollector::new(Arc::downgrade(&broker))))
    {
        tracing::warn!(error = %e, "transaction metrics unavailable");
    }

    let admission = crate::network::Admission::new(&broker.config);
    let conns = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
    let mut addrs = Vec::new();
    for (l, listener, addr) in bound {
        tracing::info!(listener = %l.name, %addr, "listening");
        broker.metrics.network.listener(&l.name);
        addrs.push(addr);
        tasks.spawn(crate::network::accept_loop(
            broker.clone(),
            listener,
            Arc::from(l.name.as_str()),
            admission.clone(),
            conns.clone(),
        ));
    }
    tasks.spawn(flush_task(broker.clone()));
    tasks.spawn(checkpoint_task(broker.clone()));
    tasks.spawn(producer_expiration_task(broker.clone()));
    crate::log_tasks::spawn(&broker, &mut tasks);
    crate::remote_log::spawn(&broker, &mut tasks);
    tasks.spawn(broker.groups.clone().run());
    tasks.spawn(broker.txns.clone().run());
    broker.metrics.set_ready(true);
    Ok(BrokerHandle { broker, addrs, metrics_addr, shutdown_tx, tasks, conns })
}

/// Flushes logs whose `flush.ms` has elapsed (Kafka's `log.flush.scheduler.interval.ms` loop).
async fn flush_task(broker: Arc<Broker>) {
    let interval = match broker.config.log_flush_scheduler_interval_ms {
        ms if ms <= 0 || ms == i64::MAX => Duration::from_secs(1),
        ms => Duration::from_millis(ms as u64).min(Duration::from_secs(1)),
    };
    periodic(broker, interval, |b| {
        let now = crate::clock::now_ms();
        b.logs.flush_due(now).map_err(|e| e.to_string())
    })
    .await
}

/// Opens the producer id allocator on the first log dir.
fn open_producer_ids(config: &Config) -> anyhow::Result<crate::producer_id::ProducerIdManager> {
    let dir = config.log_dirs.first().ok_or_else(|| anyhow::anyhow!("no log.dirs"))?;
    crate::producer_id::ProducerIdManager::open(dir)
        .map_err(|e| anyhow::anyhow!("reading producer id block in {}: {e}", dir.display()))
}

/// Forgets idempotent producers idle for `producer.id.expiration.ms`, every
/// `producer.id.expiration.check.interval.ms` (Kafka's `removeExpiredProducers`).
async fn producer_expiration_task(broker: Arc<Broker>) {
    let ms = broker.broker_config_i64("producer.id.expiration.check.interval.ms").max(100) as u64;
    periodic(broker, Duration::from_millis(ms), |b| {
        let expiration_ms = b.broker_config_i64("producer.id.expiration.ms");
        let now = crate::clock::now_ms();
        let expired: usize = b.logs.partitions().iter().map(|p| p.expire_producers(now, expiration_ms)).sum();
        if expired > 0 {
            tracing::debug!(expired, "expired idle producers");
        }
        Ok(())
    })
    .await
}

/// Writes recovery-point checkpoints so that recovery after a crash scans only recent data.
async fn checkpoint_task(broker: Arc<Broker>) {
    let ms = broker.config.log_flush_offset_checkpoint_interval_ms.max(100) as u64;
    periodic(broker, Duration::from_millis(ms), |b| b.logs.checkpoint().map_err(|e| e.to_string())).await
}

async fn periodic(broker: Arc<Broker>, every: Duration, work: fn(&Broker) -> Result<(), String>) {
    let mut shutdown = broker.shutdown.clone();
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticker.tick() => {}
        }
        let b = broker.clone();
        match tokio::task::spawn_blocking(move || work(&b)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "background log task failed"),
            Err(e) => tracing::error!(error = %e, "background log task panicked"),
        }
    }
}
