//! The metrics listener through a live broker: exact counter values after raw-protocol produce and
//! fetch (requests, error codes by name, records and bytes per topic), scrape-time storage gauges,
//! connection counts by close reason, health endpoints, per-broker registries, the
//! `metrics.per.partition.enable` switch, and startup failing on a busy `metrics.listener`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use sluice_testkit::batch::{sluice_batch, sluice_batch_one};
use sluice_testkit::broker::{connect, start_in_process};
use sluice_testkit::client::AsyncClient;
use sluice_testkit::now_ms;
use sluice_testkit::requests::{create_topic, fetch_request, name, produce_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET path` over a fresh connection; returns (status, body).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect metrics");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf8");
    let (head, body) = text.split_once("\r\n\r\n").expect("http response");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    (status, body.to_string())
}

async fn scrape(broker: &sluice::BrokerHandle) -> String {
    let (status, body) = http_get(broker.metrics_addr().expect("metrics enabled"), "/metrics").await;
    assert_eq!(status, 200);
    body
}

/// The value of one series (`name{labels}` exactly as exposed), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().expect("number"))
}

fn must(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("series {series} missing from:\n{text}"))
}

async fn start(dir: &std::path::Path, extra: &[(&str, &str)]) -> sluice::BrokerHandle {
    let mut pairs = vec![("metrics.listener", "127.0.0.1:0")];
    pairs.extend_from_slice(extra);
    start_in_process(dir, &pairs).await
}

async fn create(c: &mut AsyncClient, topic: &str, partitions: i32) -> CreateTopicsResponse {
    create_topic(c, topic, partitions, &[]).await
}

async fn produce(c: &mut AsyncClient, topic: &str, partition: i32, records: Bytes) -> i16 {
    let r: ProduceResponse = c.call(ApiKey::Produce, 12, &produce_request(topic, partition, records, -1)).await;
    r.responses[0].partition_responses[0].error_code
}

async fn fetch(c: &mut AsyncClient, topic: &str, offset: i64) -> usize {
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request(topic, offset, 0, 0, 1 << 20, 1 << 20)).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    r.responses[0].partitions[0].records.as_ref().map_or(0, |b| b.len())
}

#[tokio::test]
async fn produce_and_fetch_are_counted_exactly() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    assert_eq!(create(&mut c, "m", 2).await.topics[0].error_code, 0);

    // 3 batches of 1, 2 and 3 records: 6 records, 3 Produce requests.
    let batches =
        [sluice_batch(&["a"], now_ms()), sluice_batch(&["b", "c"], now_ms()), sluice_batch(&["d", "e", "f"], now_ms())];
    let bytes: usize = batches.iter().map(Bytes::len).sum();
    for b in &batches {
        assert_eq!(produce(&mut c, "m", 0, b.clone()).await, 0);
    }
    // A flipped byte inside the CRC-covered region: CORRUPT_MESSAGE, not counted as produced.
    let mut bad = sluice_batch_one("corrupt me").to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(produce(&mut c, "m", 0, Bytes::from(bad)).await, 2);
    // A partition that does not exist.
    assert_eq!(produce(&mut c, "m", 7, sluice_batch_one("x")).await, 3);
    let fetched = fetch(&mut c, "m", 0).await;
    assert_eq!(fetched, bytes, "one fetch returns the three batches");

    let text = scrape(&broker).await;
    assert_eq!(must(&text, "sluice_requests_total{api=\"Produce\"}"), 5.0);
    assert_eq!(must(&text, "sluice_requests_total{api=\"Fetch\"}"), 1.0);
    assert_eq!(must(&text, "sluice_requests_total{api=\"CreateTopics\"}"), 1.0);
    // By version: every produce above was v12.
    assert_eq!(must(&text, "sluice_requests_by_version_total{api=\"Produce\",version=\"12\"}"), 5.0);
    assert_eq!(must(&text, "sluice_request_errors_total{api=\"Produce\",error=\"NONE\"}"), 3.0);
    assert_eq!(must(&text, "sluice_request_errors_total{api=\"Produce\",error=\"CORRUPT_MESSAGE\"}"), 1.0);
    assert_eq!(must(&text, "sluice_request_errors_total{api=\"Produce\",error=\"UNKNOWN_TOPIC_OR_PARTITION\"}"), 1.0);
    // Fetch: the top-level code and the one partition's code.
    assert_eq!(must(&text, "sluice_request_errors_total{api=\"Fetch\",error=\"NONE\"}"), 2.0);
    assert_eq!(must(&text, "sluice_request_errors_total{api=\"CreateTopics\",error=\"NONE\"}"), 1.0);
    assert_eq!(must(&text, "sluice_produce_records_total{topic=\"m\"}"), 6.0);
    assert_eq!(must(&text, "sluice_produce_bytes_total{topic=\"m\"}"), bytes as f64);
    assert_eq!(must(&text, "sluice_fetch_bytes_total{topic=\"m\"}"), bytes as f64);
    assert_eq!(must(&text, "sluice_request_processing_time_seconds_count{api=\"Produce\"}"), 5.0);
    assert_eq!(must(&text, "sluice_request_queue_time_seconds_count{api=\"Produce\"}"), 5.0);
    assert_eq!(must(&text, "sluice_request_total_time_seconds_count{api=\"Produce\"}"), 5.0);
    assert!(must(&text, "sluice_request_bytes_total{api=\"Produce\"}") > bytes as f64);
    assert!(must(&text, "sluice_response_bytes_total{api=\"Fetch\"}") > bytes as f64);

    // Storage gauges, read at scrape.
    // Internal topics (__consumer_offsets) count too: compare before and after the deletion below.
    let partitions_before = must(&text, "sluice_partitions");
    assert!(partitions_before >= 2.0);
    assert_eq!(must(&text, "sluice_topic_partitions{topic=\"m\"}"), 2.0);
    assert_eq!(must(&text, "sluice_log_end_offset{partition=\"0\",topic=\"m\"}"), 6.0);
    assert_eq!(must(&text, "sluice_high_watermark{partition=\"0\",topic=\"m\"}"), 6.0);
    assert_eq!(must(&text, "sluice_log_start_offset{partition=\"0\",topic=\"m\"}"), 0.0);
    assert_eq!(must(&text, "sluice_log_end_offset{partition=\"1\",topic=\"m\"}"), 0.0);
    assert_eq!(must(&text, "sluice_log_segments{partition=\"0\",topic=\"m\"}"), 1.0);
    assert_eq!(must(&text, "sluice_log_size_bytes{partition=\"0\",topic=\"m\"}"), bytes as f64);
    assert_eq!(must(&text, "sluice_topic_log_size_bytes{topic=\"m\"}"), bytes as f64);
    assert_eq!(must(&text, "sluice_log_dirs_offline"), 0.0);
    assert_eq!(must(&text, "sluice_connections_open{listener=\"PLAINTEXT\"}"), 1.0);
    assert!(value(&text, "sluice_build_info{version=\"0.1.0\"}").is_some());
    #[cfg(target_os = "linux")]
    {
        assert!(must(&text, "sluice_process_resident_memory_bytes") > 0.0);
        assert!(must(&text, "sluice_process_open_fds") > 0.0);
        assert!(value(&text, "sluice_process_cpu_seconds_total").is_some());
    }

    // Deleting the topic removes its throughput and storage series.
    let mut del = DeleteTopicsRequest::default();
    del.topic_names.push(name("m"));
    del.timeout_ms = 5000;
    let r: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 4, &del).await;
    assert_eq!(r.responses[0].error_code, 0);
    let text = scrape(&broker).await;
    assert!(!text.contains("topic=\"m\""), "series of a deleted topic remain:\n{text}");
    assert_eq!(must(&text, "sluice_partitions"), partitions_before - 2.0);
    // A re-created topic starts from zero, even on a connection that cached the old counters.
    create(&mut c, "m", 1).await;
    assert_eq!(produce(&mut c, "m", 0, sluice_batch_one("again")).await, 0);
    let text = scrape(&broker).await;
    assert_eq!(must(&text, "sluice_produce_records_total{topic=\"m\"}"), 1.0);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn connections_are_counted_by_close_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start(dir.path(), &[]).await;
    let text = scrape(&broker).await;
    assert_eq!(must(&text, "sluice_connections_open{listener=\"PLAINTEXT\"}"), 0.0);
    assert_eq!(must(&text, "sluice_connections_closed_total{listener=\"PLAINTEXT\",reason=\"peer\"}"), 0.0);

    let c = connect(&broker).await;
    drop(c);
    // A bad frame: a negative size prefix.
    let mut s = TcpStream::connect(broker.kafka_addr()).await.expect("connect");
    s.write_all(&(-5i32).to_be_bytes()).await.expect("write");
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(&broker).await;
        let peer = must(&text, "sluice_connections_closed_total{listener=\"PLAINTEXT\",reason=\"peer\"}");
        let bad = must(&text, "sluice_connections_closed_total{listener=\"PLAINTEXT\",reason=\"bad_frame\"}");
        if peer == 1.0 && bad == 1.0 {
            assert_eq!(must(&text, "sluice_connections_accepted_total{listener=\"PLAINTEXT\"}"), 2.0);
            assert_eq!(must(&text, "sluice_connections_open{listener=\"PLAINTEXT\"}"), 0.0);
            break;
        }
        assert!(Instant::now() < deadline, "close reasons not counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn health_endpoints_and_unknown_paths() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start(dir.path(), &[]).await;
    let addr = broker.metrics_addr().expect("metrics enabled");
    assert_eq!(http_get(addr, "/health/live").await.0, 200);
    assert_eq!(http_get(addr, "/health/ready").await, (200, "ready\n".to_string()));
    assert_eq!(http_get(addr, "/nope").await.0, 404);
    let (_, text) = http_get(addr, "/metrics").await;
    assert!(text.contains("# TYPE sluice_request_processing_time_seconds histogram"));
    broker.shutdown().await.expect("shutdown");
    // Stopped with the broker.
    assert!(TcpStream::connect(addr).await.is_err(), "metrics listener still open after shutdown");
}

#[tokio::test]
async fn each_broker_has_its_own_registry() {
    let (d1, d2) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let b1 = start(d1.path(), &[]).await;
    let b2 = start(d2.path(), &[]).await;
    let mut c = connect(&b1).await;
    create(&mut c, "only-on-b1", 1).await;
    assert_eq!(must(&scrape(&b1).await, "sluice_requests_total{api=\"CreateTopics\"}"), 1.0);
    assert_eq!(must(&scrape(&b2).await, "sluice_requests_total{api=\"CreateTopics\"}"), 0.0);
    b1.shutdown().await.expect("shutdown");
    b2.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn per_partition_gauges_can_be_switched_off() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start(dir.path(), &[("metrics.per.partition.enable", "false")]).await;
    let mut c = connect(&broker).await;
    create(&mut c, "agg", 3).await;
    assert_eq!(produce(&mut c, "agg", 1, sluice_batch_one("v")).await, 0);
    let text = scrape(&broker).await;
    assert!(!text.contains("sluice_log_end_offset"), "{text}");
    assert!(!text.contains("sluice_high_watermark"), "{text}");
    assert_eq!(must(&text, "sluice_topic_partitions{topic=\"agg\"}"), 3.0);
    assert!(must(&text, "sluice_topic_log_size_bytes{topic=\"agg\"}") > 0.0);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn disabled_listener_and_busy_port() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[]).await; // common helper: metrics.listener=none
    assert_eq!(broker.metrics_addr(), None);
    // The registry still counts: it is the broker's, not the listener's.
    let mut c = connect(&broker).await;
    create(&mut c, "x", 1).await;
    assert!(broker.metrics().render().contains("sluice_requests_total{api=\"CreateTopics\"} 1"));
    broker.shutdown().await.expect("shutdown");

    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().display().to_string();
    let config = sluice::Config::from_overrides(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("log.dirs", &d),
        ("metrics.listener", &port),
    ])
    .expect("config");
    let err = match sluice::start(config).await {
        Ok(_) => panic!("started with a busy metrics.listener"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("metrics.listener"), "{err}");
}
