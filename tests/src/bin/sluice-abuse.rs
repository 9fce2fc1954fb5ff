//! `sluice-abuse`: the ways one client (or one resource limit) has been seen to take a broker
//! down, each run against the real `sluice` binary while a well-behaved producer keeps writing.
//!
//! For every case it prints what was done, what the abusing client got, whether the broker
//! stayed up (it must still answer, and the good producer's records must all be acknowledged),
//! the good producer's p99 during the abuse, and the broker's peak RSS. The exit status is
//! non-zero if any case did not get the answer Kafka's semantics call for or the broker went
//! down. `--scale` sizes the memory-heavy cases (1.0: 60 pipelined 50 MiB Fetches; CI runs a
//! small fraction).
//!
//! usage: sluice-abuse [--broker PATH] [--scale F] [--only NAME[,NAME...]]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest,
    ProduceResponse, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use sluice_testkit::batch::kafka_protocol_batch;
use sluice_testkit::broker::ExternalBroker;
use sluice_testkit::client::{decode_response, BlockingClient};
use sluice_testkit::now_ms;
use sluice_testkit::requests::fetch_request;

/// One abuse case: sets the broker up (`overrides`, a lowered fd or address-space limit), does
/// its thing, and says what the abusing client got and whether that is what Kafka would do.
struct Case {
    name: &'static str,
    action: String,
    overrides: Vec<(&'static str, String)>,
    /// `prlimit` options the broker starts under (e.g. `--nofile=1024:1024`, as a shell's
    /// `ulimit -n 1024` would leave it).
    start_under: Vec<String>,
    /// `prlimit` options applied to the running broker before the abuse (e.g. `--as=4294967296`).
    limits: Vec<String>,
    run: Box<dyn Fn(&Ctx) -> Outcome>,
}

struct Ctx {
    addr: SocketAddr,
    pid: u32,
    data_dir: PathBuf,
    scale: f64,
}

struct Outcome {
    client_got: String,
    as_expected: bool,
}

impl Outcome {
    fn new(as_expected: bool, client_got: impl Into<String>) -> Outcome {
        Outcome { client_got: client_got.into(), as_expected }
    }
}

struct Row {
    name: &'static str,
    action: String,
    client_got: String,
    as_expected: bool,
    broker_up: bool,
    good_p99_ms: f64,
    good_failures: u64,
    peak_rss_mib: f64,
}

/// A producer that writes one small record at a time (acks=1) on its own connection, as a
/// well-behaved client would, and records each round trip.
struct GoodClient {
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
    latencies: Arc<Mutex<Vec<Duration>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GoodClient {
    fn start(addr: SocketAddr, topic: &str) -> GoodClient {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(AtomicU64::new(0));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let (s, f, l, topic) = (stop.clone(), failures.clone(), latencies.clone(), topic.to_string());
        let thread = std::thread::spawn(move || {
            let mut conn: Option<BlockingClient> = None;
            while !s.load(Ordering::Relaxed) {
                if conn.is_none() {
                    // BlockingClient panics when it cannot connect; a refused connection is a failure here.
                    conn = std::panic::catch_unwind(|| BlockingClient::connect(addr)).ok();
                }
                let Some(c) = conn.as_mut() else {
                    f.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let started = Instant::now();
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| produce_one(c, &topic)));
                match result {
                    Ok(Ok(0)) => l.lock().unwrap().push(started.elapsed()),
                    Ok(Ok(_)) => {
                        f.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(_)) | Err(_) => {
                        f.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        GoodClient { stop, failures, latencies, thread: Some(thread) }
    }

    /// Stops the client; returns (p99 in ms, failed requests).
    fn finish(mut self) -> (f64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut l = self.latencies.lock().unwrap().clone();
        l.sort();
        let p99 = if l.is_empty() { f64::NAN } else { l[(l.len() * 99 / 100).min(l.len() - 1)].as_secs_f64() * 1e3 };
        (p99, self.failures.load(Ordering::Relaxed))
    }
}

/// One Produce v9 of one record to partition 0; returns the partition's error code. I/O errors
/// (a read timeout included) are returned as such.
fn produce_one(conn: &mut BlockingClient, topic: &str) -> std::io::Result<i16> {
    let batch = kafka_protocol_batch(&[b"good"], now_ms());
    let req = produce_request(topic, 0, batch.freeze(), 1);
    let c = conn.send(ApiKey::Produce, 9, &req);
    let frame = conn.read_frame()?;
    let resp: ProduceResponse = decode_response(frame, ApiKey::Produce, 9, c);
    Ok(resp.responses.first().and_then(|t| t.partition_responses.first()).map(|p| p.error_code).unwrap_or(-1))
}

/// A Produce request for one partition, with a 10 s timeout (slower than a test's: the broker
/// is under abuse).
fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    let mut req = sluice_testkit::requests::produce_request(topic, partition, records, acks);
    req.timeout_ms = 10_000;
    req
}

fn create_topics(addr: SocketAddr, topics: &[(&str, i32)], timeout: Duration) -> Result<Vec<(i16, String)>, String> {
    let mut conn = BlockingClient::connect(addr);
    conn.stream.set_read_timeout(Some(timeout)).expect("timeout");
    let mut req = CreateTopicsRequest::default();
    req.timeout_ms = 30_000;
    for (name, partitions) in topics {
        let mut t = CreatableTopic::default();
        t.name = TopicName(StrBytes::from_string(name.to_string()));
        t.num_partitions = *partitions;
        t.replication_factor = 1;
        req.topics.push(t);
    }
    let c = conn.send(ApiKey::CreateTopics, 7, &req);
    let frame = conn.read_frame().map_err(|e| format!("no answer: {e}"))?;
    let resp: CreateTopicsResponse = decode_response(frame, ApiKey::CreateTopics, 7, c);
    Ok(resp
        .topics
        .iter()
        .map(|t| (t.error_code, t.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default()))
        .collect())
}

fn code_name(code: i16) -> String {
    match kafka_protocol::ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?}"),
        None if code == 0 => "NONE".into(),
        None => format!("code {code}"),
    }
}

/// Holds `n` idle connections (as many as the broker accepts).
fn open_idle(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n).filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()).collect()
}

/// Whether the broker still answers ApiVersions on a new connection.
fn answers(addr: SocketAddr) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else { return false };
    drop(stream);
    let mut conn = BlockingClient::connect(addr);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| conn.assert_alive("after abuse"))).is_ok()
}

fn cases(scale: f64) -> Vec<Case> {
    let fetch_mib = ((50.0 * scale).round() as usize).max(2);
    let cold_mib = ((1024.0 * scale).round() as usize).max(16);
    vec![
        Case {
            name: "fd-exhaustion",
            action: "started with 1024 fds: 1100 connections, release 50, create a 3-partition topic, produce; \
                     close them all, produce"
                .into(),
            overrides: vec![],
            start_under: vec!["--nofile=1024:1024".into()],
            limits: vec![],
            run: Box::new(|ctx| {
                let mut idle = open_idle(ctx.addr, 1100);
                std::thread::sleep(Duration::from_millis(300));
                let held = idle.len();
                // Free a few connection slots (the oldest connections hold them).
                idle.drain(..50.min(held));
                std::thread::sleep(Duration::from_millis(300));
                let created = create_topics(ctx.addr, &[("after-emfile", 3)], Duration::from_secs(30));
                let produce_all = || -> Vec<i16> {
                    let mut conn = BlockingClient::connect(ctx.addr);
                    (0..3).map(|p| produce_to(&mut conn, "after-emfile", p).unwrap_or(-2)).collect()
                };
                let during = produce_all();
                drop(idle);
                std::thread::sleep(Duration::from_millis(500));
                let after = produce_all();
                let created_ok = matches!(&created, Ok(r) if r[0].0 == 0);
                let ok = created_ok && during.iter().chain(&after).all(|c| *c == 0);
                let names = |codes: &[i16]| codes.iter().map(|c| code_name(*c)).collect::<Vec<_>>().join(",");
                Outcome::new(
                    ok,
                    format!(
                        "{held} connected; create {}; produce while held: {}; after: {}",
                        match &created {
                            Ok(r) => code_name(r[0].0),
                            Err(e) => e.clone(),
                        },
                        names(&during),
                        names(&after)
                    ),
                )
            }),
        },
        Case {
            name: "create-2e9-partitions",
            action: "CreateTopics num_partitions=2000000000".into(),
            overrides: vec![],
            start_under: vec![],
            limits: vec![],
            run: Box::new(|ctx| match create_topics(ctx.addr, &[("huge", 2_000_000_000)], Duration::from_secs(30)) {
                Ok(r) => {
                    let made = ctx.data_dir.join("huge-0").exists();
                    Outcome::new(r[0].0 != 0 && !made, format!("{}: {}; dirs left: {made}", code_name(r[0].0), r[0].1))
                }
                Err(e) => Outcome::new(false, e),
            }),
        },
        Case {
            name: "create-100k-partitions",
            action: "CreateTopics num_partitions=100000 beside a 1-partition topic".into(),
            overrides: vec![],
            start_under: vec![],
            limits: vec![],
            run: Box::new(|ctx| {
                match create_topics(ctx.addr, &[("wide", 100_000), ("narrow", 1)], Duration::from_secs(60)) {
                    Ok(r) => {
                        let wide_dirs = std::fs::read_dir(&ctx.data_dir)
                            .map(|d| {
                                d.filter(|e| {
                                    e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with("wide-"))
                                })
                                .count()
                            })
                            .unwrap_or(0);
                        // Either every partition exists or none does, and the other topic is unaffected.
                        let ok = (r[0].0 != 0 && wide_dirs == 0 || r[0].0 == 0 && wide_dirs == 100_000) && r[1].0 == 0;
                        Outcome::new(
                            ok,
                            format!("wide: {} ({wide_dirs} dirs), narrow: {}", code_name(r[0].0), code_name(r[1].0)),
                        )
                    }
                    Err(e) => Outcome::new(false, e),
                }
            }),
        },
        Case {
            name: "delete-consumer-offsets",
            action: "DeleteTopics [__consumer_offsets] after FindCoordinator created it".into(),
            overrides: vec![],
            start_under: vec![],
            limits: vec![],
            run: Box::new(|ctx| {
                let mut conn = BlockingClient::connect(ctx.addr);
                let mut fc = FindCoordinatorRequest::default();
                fc.key = StrBytes::from_static_str("abuse-group");
                let _: FindCoordinatorResponse = conn.request(ApiKey::FindCoordinator, 2, &fc);
                let mut req = DeleteTopicsRequest::default();
                req.topic_names = vec![TopicName(StrBytes::from_static_str("__consumer_offsets"))];
                req.timeout_ms = 10_000;
                let resp: DeleteTopicsResponse = conn.request(ApiKey::DeleteTopics, 5, &req);
                let code = resp.responses.first().map(|r| r.error_code).unwrap_or(0);
                let still_there = ctx.data_dir.join("__consumer_offsets-0").exists();
                Outcome::new(
                    code != 0 && still_there,
                    format!("{}; partition 0 still on disk: {still_there}", code_name(code)),
                )
            }),
        },
        Case {
            name: "produce-internal-topic",
            action: "Produce a batch to __consumer_offsets".into(),
            overrides: vec![],
            start_under: vec![],
            limits: vec![],
            run: Box::new(|ctx| {
                let mut conn = BlockingClient::connect(ctx.addr);
                let mut fc = FindCoordinatorRequest::default();
                fc.key = StrBytes::from_static_str("abuse-group");
                let _: FindCoordinatorResponse = conn.request(ApiKey::FindCoordinator, 2, &fc);
                let code = produce_to(&mut conn, "__consumer_offsets", 0).unwrap_or(-2);
                Outcome::new(code != 0, code_name(code))
            }),
        },
        Case {
            name: "slow-reader",
            action: format!("60 pipelined Fetches of {fetch_mib} MiB, never read"),
            overrides: vec![],
            start_under: vec![],
            limits: vec![],
            run: Box::new(move |ctx| {
                let mut conn = BlockingClient::connect(ctx.addr);
                let _ = create_topics(ctx.addr, &[("big", 1)], Duration::from_secs(30));
                let value = vec![7u8; 512 * 1024];
                for _ in 0..fetch_mib * 2 {
                    let batch = kafka_protocol_batch(&[&value], now_ms());
                    let req = produce_request("big", 0, batch.freeze(), 1);
                    let c = conn.send(ApiKey::Produce, 9, &req);
                    let _ = conn.read_frame();
                    let _ = c;
                }
                let before = rss_mib(ctx.pid, "VmRSS:");
                let mut slow = BlockingClient::connect(ctx.addr);
                // The broker is expected to stop reading: writes then time out instead of blocking.
                slow.stream.set_write_timeout(Some(Duration::from_secs(2))).expect("write timeout");
                let req = fetch_request("big", 0, 0, 1, (fetch_mib as i32) << 20, (fetch_mib as i32) << 20);
                let mut sent = 0;
                for _ in 0..60 {
                    let h = slow.header(ApiKey::Fetch, 12);
                    let frame = sluice_protocol::request::encode_request(&h, &req).expect("encode");
                    if slow.try_send_bytes(&frame).is_err() {
                        break;
                    }
                    sent += 1;
                }
                std::thread::sleep(Duration::from_secs(3));
                let peak = rss_mib(ctx.pid, "VmHWM:");
                drop(slow);
                std::thread::sleep(Duration::from_secs(2));
                let after = rss_mib(ctx.pid, "VmRSS:");
                let requested = 60.0 * fetch_mib as f64;
                // Bounded: the broker holds a small, fixed amount of queued response bytes per
                // connection, not everything the client asked for.
                let bound = (requested / 3.0).max(160.0);
                Outcome::new(
                    peak - before < bound,
                    format!(
                        "{sent}/60 requests written; RSS {before:.0} -> peak {peak:.0} -> {after:.0} MiB after close \
                         ({requested:.0} MiB requested)"
                    ),
                )
            }),
        },
        Case {
            name: "metadata-huge-array",
            action: "4 GiB address space: Metadata v9 with topics count 0x7fffffff in a 4-byte body".into(),
            overrides: vec![],
            start_under: vec![],
            limits: vec!["--as=4294967296".into()],
            run: Box::new(|ctx| {
                let mut conn = BlockingClient::connect(ctx.addr);
                let h = conn.header(ApiKey::Metadata, 4);
                let mut body = BytesMut::new();
                h.encode(&mut body, ApiKey::Metadata.request_header_version(4)).expect("header");
                // The whole body: a (non-null) topics array count of i32::MAX.
                body.put_i32(i32::MAX);
                let mut frame = BytesMut::new();
                frame.put_i32(body.len() as i32);
                frame.put_slice(&body);
                let _ = conn.try_send_bytes(&frame);
                conn.stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut buf = [0u8; 64];
                let got = match conn.stream.read(&mut buf) {
                    Ok(0) => "connection closed".to_string(),
                    Ok(n) => format!("{n}-byte response"),
                    Err(e) => format!("read error: {e}"),
                };
                Outcome::new(true, got)
            }),
        },
        Case {
            name: "zstd-tiny-records",
            action: "a ~1 MiB zstd batch of millions of empty records".into(),
            overrides: vec![],
            start_under: vec![],
            limits: vec![],
            run: Box::new(move |ctx| {
                let _ = create_topics(ctx.addr, &[("tiny", 1)], Duration::from_secs(30));
                // ~10 bytes a record uncompressed, under the default 64 MiB decompressed bound.
                let count = ((6_000_000.0 * ctx.scale.min(1.0)) as i32).max(100_000);
                let before = rss_mib(ctx.pid, "VmRSS:");
                let batch = tiny_records_batch(count);
                let size = batch.len();
                let mut conn = BlockingClient::connect(ctx.addr);
                let req = produce_request("tiny", 0, batch, 1);
                let c = conn.send(ApiKey::Produce, 9, &req);
                conn.stream.set_read_timeout(Some(Duration::from_secs(60))).ok();
                match conn.read_frame() {
                    Ok(frame) => {
                        let resp: ProduceResponse = decode_response(frame, ApiKey::Produce, 9, c);
                        let code = resp.responses[0].partition_responses[0].error_code;
                        let growth = rss_mib(ctx.pid, "VmHWM:") - before;
                        // Validation walks the records in place: the decompressed bytes, not a
                        // structure per record.
                        Outcome::new(
                            code == 0 && growth < 256.0,
                            format!(
                                "{count} records in {} KiB: {}, RSS +{growth:.0} MiB",
                                size / 1024,
                                code_name(code)
                            ),
                        )
                    }
                    Err(e) => Outcome::new(false, format!("no answer: {e}")),
                }
            }),
        },
        Case {
            name: "transactional-id-40000",
            action: "InitProducerId v4 with a 40,000-character transactional id".into(),
            overrides: vec![],
            start_under: vec![],
            limits: vec![],
            run: Box::new(|ctx| {
                let mut conn = BlockingClient::connect(ctx.addr);
                let mut req = InitProducerIdRequest::default();
                req.transactional_id = Some(TransactionalId(StrBytes::from_string("t".repeat(40_000))));
                req.transaction_timeout_ms = 60_000;
                req.producer_id = kafka_protocol::messages::ProducerId(-1);
                req.producer_epoch = -1;
                let resp: InitProducerIdResponse = conn.request(ApiKey::InitProducerId, 4, &req);
                Outcome::new(resp.error_code != 0, code_name(resp.error_code))
            }),
        },
        Case {
            name: "alter-internal-topic",
            action: "CreatePartitions __consumer_offsets to 60; IncrementalAlterConfigs cleanup.policy=delete on it"
                .into(),
            overrides: vec![],
            start_under: vec![],
            limits: vec![],
            run: Box::new(|ctx| {
                use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
                use kafka_protocol::messages::incremental_alter_configs_request::{
                    AlterConfigsResource, AlterableConfig,
                };
                use kafka_protocol::messages::{
                    CreatePartitionsRequest, CreatePartitionsResponse, IncrementalAlterConfigsRequest,
                    IncrementalAlterConfigsResponse,
                };
                let mut conn = BlockingClient::connect(ctx.addr);
                let mut t = CreatePartitionsTopic::default();
                t.name = TopicName(StrBytes::from_static_str("__consumer_offsets"));
                t.count = 60;
                let mut req = CreatePartitionsRequest::default();
                req.topics = vec![t];
                req.timeout_ms = 10_000;
                let resp: CreatePartitionsResponse = conn.request(ApiKey::CreatePartitions, 3, &req);
                let partitions_code = resp.results.first().map(|r| r.error_code).unwrap_or(0);
                let mut c = AlterableConfig::default();
                c.name = StrBytes::from_static_str("cleanup.policy");
                c.config_operation = 0;
                c.value = Some(StrBytes::from_static_str("delete"));
                let mut r = AlterConfigsResource::default();
                r.resource_type = 2;
                r.resource_name = StrBytes::from_static_str("__consumer_offsets");
                r.configs = vec![c];
                let mut req = IncrementalAlterConfigsRequest::default();
                req.resources = vec![r];
                let resp: IncrementalAlterConfigsResponse = conn.request(ApiKey::IncrementalAlterConfigs, 1, &req);
                let config_code = resp.responses.first().map(|r| r.error_code).unwrap_or(0);
                let extra = ctx.data_dir.join("__consumer_offsets-50").exists();
                Outcome::new(
                    partitions_code != 0 && config_code != 0 && !extra,
                    format!(
                        "partitions: {}; config: {}; partition 50 on disk: {extra}",
                        code_name(partitions_code),
                        code_name(config_code)
                    ),
                )
            }),
        },
        Case {
            name: "connections-per-ip",
            action: "max.connections.per.ip=30: open 100 connections from one address".into(),
            overrides: vec![("max.connections.per.ip", "30".into())],
            start_under: vec![],
            limits: vec![],
            run: Box::new(|ctx| {
                let conns = open_idle(ctx.addr, 100);
                std::thread::sleep(Duration::from_millis(500));
                let mut open = 0;
                for mut s in conns {
                    s.set_read_timeout(Some(Duration::from_millis(100))).ok();
                    let mut b = [0u8; 1];
                    match s.read(&mut b) {
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                            open += 1
                        }
                        _ => {}
                    }
                }
                // 30 per address, one of them the good client's.
                Outcome::new((25..=29).contains(&open), format!("{open}/100 kept open by the broker"))
            }),
        },
        Case {
            name: "group-id-40000",
            action: "JoinGroup and OffsetCommit with a 40,000-character group id".into(),
            overrides: vec![],
            start_under: vec![],
            limits: vec![],
            run: Box::new(|ctx| {
                use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
                use kafka_protocol::messages::offset_commit_request::{
                    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
                };
                use kafka_protocol::messages::{
                    GroupId, JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest, OffsetCommitResponse,
                };
                let group = GroupId(StrBytes::from_string("g".repeat(40_000)));
                let mut conn = BlockingClient::connect(ctx.addr);
                let mut join = JoinGroupRequest::default();
                join.group_id = group.clone();
                join.session_timeout_ms = 10_000;
                join.rebalance_timeout_ms = 10_000;
                join.protocol_type = StrBytes::from_static_str("consumer");
                let mut p = JoinGroupRequestProtocol::default();
                p.name = StrBytes::from_static_str("range");
                join.protocols = vec![p];
                let joined: JoinGroupResponse = conn.request(ApiKey::JoinGroup, 9, &join);
                let mut part = OffsetCommitRequestPartition::default();
                part.partition_index = 0;
                part.committed_offset = 1;
                let mut topic = OffsetCommitRequestTopic::default();
                topic.name = TopicName(StrBytes::from_static_str("good"));
                topic.partitions = vec![part];
                let mut commit = OffsetCommitRequest::default();
                commit.group_id = group;
                commit.generation_id_or_member_epoch = -1;
                commit.topics = vec![topic];
                let committed: OffsetCommitResponse = conn.request(ApiKey::OffsetCommit, 9, &commit);
                let commit_code = committed.topics[0].partitions[0].error_code;
                Outcome::new(
                    joined.error_code != 0 && commit_code != 0,
                    format!("join: {}; commit: {}", code_name(joined.error_code), code_name(commit_code)),
                )
            }),
        },
        Case {
            name: "cold-read",
            action: format!("a consumer reads {cold_mib} MiB from disk (page cache dropped) while a producer writes"),
            overrides: vec![],
            start_under: vec![],
            limits: vec![],
            run: Box::new(move |ctx| {
                let _ = create_topics(ctx.addr, &[("cold", 1)], Duration::from_secs(30));
                let mut conn = BlockingClient::connect(ctx.addr);
                let value = vec![3u8; 512 * 1024];
                for _ in 0..cold_mib * 2 {
                    let batch = kafka_protocol_batch(&[&value], now_ms());
                    let req = produce_request("cold", 0, batch.freeze(), 1);
                    let _ = conn.send(ApiKey::Produce, 9, &req);
                    let _ = conn.read_frame();
                }
                // Root only (CI and this machine): without it the read is warm and says so.
                let dropped =
                    Command::new("sync").status().is_ok() && std::fs::write("/proc/sys/vm/drop_caches", "1").is_ok();
                let good = GoodClient::start(ctx.addr, "good");
                let started = Instant::now();
                let mut offset = 0i64;
                let mut bytes = 0usize;
                let mut reader = BlockingClient::connect(ctx.addr);
                reader.stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
                while offset < (cold_mib * 2) as i64 {
                    let mut req = fetch_request("cold", 0, 0, 1, 1 << 20, 1 << 20);
                    req.topics[0].partitions[0].fetch_offset = offset;
                    let c = reader.send(ApiKey::Fetch, 12, &req);
                    let Ok(frame) = reader.read_frame() else { break };
                    let resp: kafka_protocol::messages::FetchResponse = decode_response(frame, ApiKey::Fetch, 12, c);
                    let records = resp.responses[0].partitions[0].records.clone();
                    let n = sluice_testkit::batch::kafka_protocol_count_records(records.as_ref());
                    if n == 0 {
                        break;
                    }
                    bytes += records.map_or(0, |r| r.len());
                    offset += n as i64;
                }
                let elapsed = started.elapsed();
                let (p99, failures) = good.finish();
                Outcome::new(
                    offset == (cold_mib * 2) as i64 && failures == 0,
                    format!(
                        "read {} MiB in {:.2} s ({}); meanwhile the producer's p99 {p99:.1} ms, {failures} failed",
                        bytes >> 20,
                        elapsed.as_secs_f64(),
                        if dropped { "cold" } else { "warm: could not drop the page cache" }
                    ),
                )
            }),
        },
        Case {
            name: "garbage-frames",
            action: "200 connections of random bytes and bogus size prefixes".into(),
            overrides: vec![],
            start_under: vec![],
            limits: vec![],
            run: Box::new(|ctx| {
                let mut closed = 0;
                for i in 0..200u64 {
                    let Ok(mut s) = TcpStream::connect_timeout(&ctx.addr, Duration::from_secs(2)) else { continue };
                    let mut junk = sluice_tests::pseudo_random_bytes(i, 64 + (i as usize * 37) % 4000);
                    if i % 3 == 0 {
                        junk[..4].copy_from_slice(&i32::MAX.to_be_bytes());
                    }
                    let _ = s.write_all(&junk);
                    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                    let mut b = [0u8; 16];
                    if matches!(s.read(&mut b), Ok(0) | Err(_)) {
                        closed += 1;
                    }
                }
                Outcome::new(closed == 200, format!("{closed}/200 connections closed by the broker"))
            }),
        },
    ]
}

fn produce_to(conn: &mut BlockingClient, topic: &str, partition: i32) -> std::io::Result<i16> {
    let batch = kafka_protocol_batch(&[b"abuse"], now_ms());
    let req = produce_request(topic, partition, batch.freeze(), 1);
    let c = conn.send(ApiKey::Produce, 9, &req);
    let frame = conn.read_frame()?;
    let resp: ProduceResponse = decode_response(frame, ApiKey::Produce, 9, c);
    Ok(resp.responses.first().and_then(|t| t.partition_responses.first()).map(|p| p.error_code).unwrap_or(-1))
}

/// A zstd batch of `count` records with no key, no value and no headers (7 bytes each
/// uncompressed), with a valid CRC.
fn tiny_records_batch(count: i32) -> Bytes {
    sluice_testkit::batch::sluice_zstd_batch_of_empty_records(count, false, false, now_ms()).0
}

/// `VmRSS:` or `VmHWM:` of `pid`, in MiB.
fn rss_mib(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn run_case(broker_bin: &str, case: &Case, scale: f64) -> Row {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let overrides: Vec<(&str, &str)> = case.overrides.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Resource limits a broker starts under are inherited through `prlimit`; a wrapper script
    // keeps `ExternalBroker` unaware of them.
    let wrapper;
    let binary = if case.start_under.is_empty() {
        broker_bin.to_string()
    } else {
        wrapper = dir.path().join("sluice-limited");
        let script = format!("#!/bin/sh\nexec prlimit {} {broker_bin} \"$@\"\n", case.start_under.join(" "));
        std::fs::write(&wrapper, script).expect("wrapper script");
        std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        wrapper.to_string_lossy().into_owned()
    };
    let broker = ExternalBroker::start(&binary, &data_dir, &overrides);
    let addr: SocketAddr = broker.bootstrap().parse().expect("addr");
    let pid = broker.pid();
    // The good client's topic exists before any limit is lowered.
    let _ = create_topics(addr, &[("good", 1)], Duration::from_secs(30));
    for limit in &case.limits {
        let status = Command::new("prlimit").arg("--pid").arg(pid.to_string()).arg(limit).status();
        assert!(status.is_ok_and(|s| s.success()), "prlimit {limit} on the broker");
    }
    let good = GoodClient::start(addr, "good");
    std::thread::sleep(Duration::from_millis(300));
    let ctx = Ctx { addr, pid, data_dir: data_dir.clone(), scale };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.run)(&ctx)))
        .unwrap_or_else(|_| Outcome::new(false, "the abusing client panicked (connection lost?)"));
    std::thread::sleep(Duration::from_millis(300));
    let (p99, failures) = good.finish();
    let mut broker = broker;
    let alive = matches!(broker.child.try_wait(), Ok(None)) && answers(addr);
    let peak = rss_mib(pid, "VmHWM:");
    if !alive {
        let log = broker.log();
        let tail: String = log.chars().skip(log.chars().count().saturating_sub(3000)).collect();
        eprintln!("--- {} broker log tail ---\n{tail}", case.name);
    }
    Row {
        name: case.name,
        action: case.action.clone(),
        client_got: outcome.client_got,
        as_expected: outcome.as_expected,
        broker_up: alive,
        good_p99_ms: p99,
        good_failures: failures,
        peak_rss_mib: peak,
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut broker_bin: Option<String> = None;
    let mut scale = 1.0;
    let mut only: Vec<String> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--broker" => broker_bin = args.next(),
            "--scale" => scale = args.next().and_then(|s| s.parse().ok()).unwrap_or(1.0),
            "--only" => only = args.next().map(|s| s.split(',').map(String::from).collect()).unwrap_or_default(),
            _ => {
                eprintln!("usage: sluice-abuse [--broker PATH] [--scale F] [--only NAME[,NAME...]]");
                return ExitCode::from(2);
            }
        }
    }
    // The fd case holds over a thousand connections from this process.
    let _ =
        Command::new("prlimit").arg("--pid").arg(std::process::id().to_string()).arg("--nofile=65536:65536").status();
    let broker_bin = broker_bin.unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("current exe");
        exe.with_file_name("sluice").to_string_lossy().into_owned()
    });
    let mut rows = Vec::new();
    for case in cases(scale) {
        if !only.is_empty() && !only.iter().any(|o| o == case.name) {
            continue;
        }
        eprintln!("[abuse] {} ...", case.name);
        rows.push(run_case(&broker_bin, &case, scale));
    }
    println!("| case | what was done | what the abusing client got | as Kafka | broker up | good p99 ms (failed) | peak RSS MiB |");
    println!("|---|---|---|---|---|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {:.1} ({}) | {:.0} |",
            r.name,
            r.action,
            r.client_got,
            if r.as_expected { "yes" } else { "NO" },
            if r.broker_up { "yes" } else { "NO" },
            r.good_p99_ms,
            r.good_failures,
            r.peak_rss_mib
        );
    }
    let failed: Vec<&str> = rows.iter().filter(|r| !(r.as_expected && r.broker_up)).map(|r| r.name).collect();
    if failed.is_empty() {
        println!("abuse: {} cases, all handled", rows.len());
        ExitCode::SUCCESS
    } else {
        println!("abuse: FAILED {}", failed.join(", "));
        ExitCode::FAILURE
    }
}
