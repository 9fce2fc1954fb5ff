//! The broker under test as a child process — the release `sluice` binary or the
//! `sluice-null-broker` baseline — so its RSS and CPU time can be read from `/proc` and compared
//! like for like, and so its start-up time can be measured from process spawn.
//!
//! Readiness is "the Kafka port accepts and a Metadata request succeeds" (optionally: and lists a
//! given topic with its partitions), checked with a tiny blocking client over `std::net`.
//! Shutdown is SIGTERM (via `kill`, so no `unsafe`), which Sluice answers with a clean shutdown
//! (flush, checkpoints, clean marker); a broker still running after a grace period is killed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde::Serialize;
use sluice_protocol::request::encode_request;

/// Which broker a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    Sluice,
    Null,
}

impl BrokerKind {
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Sluice => "sluice",
            BrokerKind::Null => "null",
        }
    }
}

/// How long a broker gets to start or to shut down cleanly.
const START_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A free loopback port (bound, read and released: a tiny race another process could win, which
/// start-up then reports as a bind failure).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A broker to measure: one this tool started, or one already running (e.g. under a profiler),
/// whose resource use is read only if its pid is known.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub kind: BrokerKind,
    pub addr: SocketAddr,
    pub pid: Option<u32>,
}

impl Target {
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }
}

/// The command line of a broker on `addr`; Sluice keeps its logs in `data_dir`.
fn broker_command(kind: BrokerKind, bin: &Path, addr: SocketAddr, data_dir: &Path) -> Command {
    let mut cmd = Command::new(bin);
    match kind {
        BrokerKind::Sluice => {
            cmd.arg("--override")
                .arg(format!("listeners=PLAINTEXT://{addr}"))
                .arg("--override")
                .arg(format!("log.dirs={}", data_dir.display()))
                .arg("--override")
                .arg("metrics.listener=none")
                // Info logs (one per created partition) would be measured as broker work.
                .env("RUST_LOG", "warn");
        }
        BrokerKind::Null => {
            cmd.arg("--listen").arg(addr.to_string());
        }
    }
    cmd
}

/// A running broker process.
pub struct BrokerProcess {
    pub kind: BrokerKind,
    child: Child,
    pub addr: SocketAddr,
    /// Sluice's `log.dirs` (unused by the null broker).
    pub data_dir: PathBuf,
    log_path: PathBuf,
    bin: PathBuf,
    /// Spawn until the first successful Metadata request.
    pub startup: Duration,
}

impl BrokerProcess {
    /// Spawns `bin` on `127.0.0.1:port` with `data_dir` and waits until it answers Metadata.
    pub fn start(kind: BrokerKind, bin: &Path, data_dir: &Path, port: u16) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let log_path = data_dir.with_extension("log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let mut cmd = broker_command(kind, bin, addr, data_dir);
        let started = Instant::now();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let mut me = Self {
            kind,
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
            log_path,
            bin: bin.to_path_buf(),
            startup: Duration::ZERO,
        };
        me.wait_ready(started, None)?;
        Ok(me)
    }

    fn wait_ready(&mut self, started: Instant, topic: Option<(&str, i32)>) -> anyhow::Result<()> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("{} exited during start-up ({status}); log tail:\n{}", self.kind.name(), self.log_tail());
            }
            if metadata_ready(self.addr, topic) {
                self.startup = started.elapsed();
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                anyhow::bail!("{} not ready after {START_TIMEOUT:?}; log tail:\n{}", self.kind.name(), self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the measurement needs to know about this broker.
    pub fn target(&self) -> Target {
        Target { kind: self.kind, addr: self.addr, pid: Some(self.pid()) }
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Clean shutdown (SIGTERM), then a fresh process on the same data dir and port; the new
    /// process's `startup` is the time until Metadata lists `topic` with `partitions`.
    pub fn restart(mut self, topic: &str, partitions: i32) -> anyhow::Result<Self> {
        self.stop()?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path)?;
        let mut cmd = broker_command(self.kind, &self.bin, self.addr, &self.data_dir);
        let started = Instant::now();
        self.child = cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).spawn()?;
        // The null broker keeps nothing across restarts: wait for Metadata only.
        let want = (self.kind == BrokerKind::Sluice).then_some((topic, partitions));
        self.wait_ready(started, want)?;
        Ok(self)
    }

    /// SIGTERM and wait; SIGKILL after [`STOP_TIMEOUT`].
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                // The null broker has no SIGTERM handler: death by signal is its normal exit.
                if !status.success() && self.kind == BrokerKind::Sluice {
                    anyhow::bail!("sluice exited with {status} on shutdown; log tail:\n{}", self.log_tail());
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        anyhow::bail!("{} did not stop within {STOP_TIMEOUT:?}; killed", self.kind.name())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        // Never leave a broker running behind a failed run.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One Metadata round trip: all topics, or just `topic`, which must then have `partitions`.
pub fn metadata_ready(addr: SocketAddr, topic: Option<(&str, i32)>) -> bool {
    metadata(addr, topic.map(|(t, _)| t)).is_ok_and(|m| match topic {
        None => true,
        Some((name, partitions)) => m.topics.iter().any(|t| {
            t.error_code == 0
                && t.name.as_ref().is_some_and(|n| n.0.as_str() == name)
                && t.partitions.len() == partitions as usize
        }),
    })
}

/// Sends a Metadata v4 request (all topics, or just `topic`, never auto-creating it) and decodes
/// the answer.
pub fn metadata(addr: SocketAddr, topic: Option<&str>) -> anyhow::Result<MetadataResponse> {
    const VERSION: i16 = 4;
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::Metadata as i16;
    header.request_api_version = VERSION;
    header.correlation_id = 1;
    header.client_id = Some(StrBytes::from_static_str("sluice-bench"));
    let mut req = MetadataRequest::default();
    req.allow_auto_topic_creation = false;
    req.topics = topic.map(|t| {
        let mut rt = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
        rt.name = Some(kafka_protocol::messages::TopicName(StrBytes::from_string(t.to_string())));
        vec![rt]
    });
    let mut body = round_trip(addr, &encode_request(&header, &req)?, 1)?;
    MetadataResponse::decode(&mut body, VERSION)
}

/// Creates `name` with `partitions` through CreateTopics v4 and waits until Metadata lists it.
/// Returns the time from sending the request to the topic being listed.
pub fn create_topic(addr: SocketAddr, name: &str, partitions: i32) -> anyhow::Result<Duration> {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
    const VERSION: i16 = 4;
    let started = Instant::now();
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::CreateTopics as i16;
    header.request_api_version = VERSION;
    header.correlation_id = 2;
    header.client_id = Some(StrBytes::from_static_str("sluice-bench"));
    let mut topic = CreatableTopic::default();
    topic.name = TopicName(StrBytes::from_string(name.to_string()));
    topic.num_partitions = partitions;
    topic.replication_factor = 1;
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![topic];
    req.timeout_ms = 120_000;
    let mut body = round_trip(addr, &encode_request(&header, &req)?, 2)?;
    let resp = CreateTopicsResponse::decode(&mut body, VERSION)?;
    let result = resp.topics.first().context("CreateTopics response without topics")?;
    anyhow::ensure!(
        result.error_code == 0,
        "creating {name}: error {} {:?}",
        result.error_code,
        result.error_message.as_ref().map(|m| m.to_string())
    );
    while !metadata_ready(addr, Some((name, partitions))) {
        anyhow::ensure!(started.elapsed() < START_TIMEOUT, "{name} not in Metadata after {START_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(started.elapsed())
}

/// Writes one request frame and reads its response; returns the body after the v0 response
/// header (correlation id only), which is what the request versions used here get.
fn round_trip(addr: SocketAddr, frame: &[u8], correlation_id: i32) -> anyhow::Result<Bytes> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    // Creating thousands of partitions can take a while.
    stream.set_read_timeout(Some(Duration::from_secs(180)))?;
    stream.set_nodelay(true)?;
    stream.write_all(frame)?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    anyhow::ensure!((4..=64 << 20).contains(&len), "bad response size {len}");
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body)?;
    let mut body = Bytes::from(body);
    let correlation = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    anyhow::ensure!(correlation == correlation_id, "correlation id {correlation}, expected {correlation_id}");
    let _ = body.split_to(4);
    Ok(body)
}
