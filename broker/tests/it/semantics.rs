//! Kafka semantics of the core APIs through a live broker, at the wire level where real clients
//! would hide the detail: long polling, the whole-batch and one-batch fetch rules, fetch sessions,
//! produce validation error codes (KIP-467 record errors), topic configs applied on produce,
//! acks=0, the ApiVersions fallback, connection limits, auto-create and admin validation, and
//! storage errors confined to one log dir.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::batch::{BatchIter, RecordBatch, TimestampType};
use sluice_protocol::compression::Compression;
use sluice_testkit::batch::{sluice_batch, sluice_batch_one};
use sluice_testkit::broker::{connect, start_in_process};
use sluice_testkit::client::AsyncClient;
use sluice_testkit::now_ms;
use sluice_testkit::requests::{create_topic, fetch_request, name, produce_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn create(c: &mut AsyncClient, topic: &str, partitions: i32, configs: &[(&str, &str)]) -> CreateTopicsResponse {
    create_topic(c, topic, partitions, configs).await
}

async fn produce(
    c: &mut AsyncClient,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> produce_response::PartitionProduceResponse {
    let r: ProduceResponse = c.call(ApiKey::Produce, 12, &produce_request(topic, partition, records, -1)).await;
    r.responses[0].partition_responses[0].clone()
}

fn batches(p: &fetch_response::PartitionData) -> Vec<RecordBatch> {
    BatchIter::new(p.records.clone().unwrap_or_default()).collect::<Result<_, _>>().expect("whole batches")
}

fn values(b: &RecordBatch) -> Vec<String> {
    b.records(1 << 20)
        .expect("records")
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap_or_default().to_vec()).expect("utf8"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_long_poll_is_woken_by_an_append() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    create(&mut c, "lp", 1, &[]).await;
    let mut producer = connect(&broker).await;
    let appender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        produce(&mut producer, "lp", 0, sluice_batch_one("wake-up")).await
    });
    let started = Instant::now();
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("lp", 0, 30_000, 1, 1 << 20, 1 << 20)).await;
    let waited = started.elapsed();
    let p = &r.responses[0].partitions[0];
    let got = batches(p);
    assert_eq!(got.len(), 1);
    assert_eq!(values(&got[0]), vec!["wake-up"]);
    assert_eq!(appender.await.expect("join").error_code, 0);
    // Woken by the append, not by the 30 s timeout.
    assert!(waited < Duration::from_secs(20), "fetch waited {waited:?}");
    // With nothing new, max_wait_ms bounds the wait and the answer is empty.
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("lp", 1, 200, 1, 1 << 20, 1 << 20)).await;
    assert!(batches(&r.responses[0].partitions[0]).is_empty());
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_returns_whole_batches_and_at_least_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    create(&mut c, "wb", 1, &[]).await;
    let big = "x".repeat(1000);
    assert_eq!(produce(&mut c, "wb", 0, sluice_batch(&["a", "b", "c", "d", "e"], now_ms())).await.base_offset, 0);
    assert_eq!(produce(&mut c, "wb", 0, sluice_batch(&[&big], now_ms())).await.base_offset, 5);
    assert_eq!(produce(&mut c, "wb", 0, sluice_batch(&[&big], now_ms())).await.base_offset, 6);
    // Offset 3 lies inside the first batch: the whole batch comes back, from offset 0.
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("wb", 3, 0, 0, 1 << 20, 1 << 20)).await;
    let got = batches(&r.responses[0].partitions[0]);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].base_offset(), 0);
    assert_eq!(values(&got[0]), vec!["a", "b", "c", "d", "e"]);
    // A limit smaller than one batch still returns exactly that one batch, whole.
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("wb", 5, 0, 0, 10, 10)).await;
    let got = batches(&r.responses[0].partitions[0]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].base_offset(), 5);
    assert_eq!(values(&got[0]), vec![big.clone()]);
    // A limit of 1.5 batches returns one, never a split second batch.
    let one = got[0].size_in_bytes() as i32;
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("wb", 5, 0, 0, one * 3 / 2, 1 << 20)).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.records.as_ref().map(|r| r.len()), Some(one as usize));
    // Out of range: below the start or beyond the end.
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("wb", 99, 0, 0, 1 << 20, 1 << 20)).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 1);
    assert_eq!(r.responses[0].partitions[0].high_watermark, 7);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_fetch_sessions_send_only_changes() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    create(&mut c, "fs", 2, &[]).await;
    produce(&mut c, "fs", 0, sluice_batch_one("p0-first")).await;
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_bytes = 1 << 20;
    req.session_id = 0;
    req.session_epoch = 0;
    let mut ft = fetch_request::FetchTopic::default();
    ft.topic = name("fs");
    for p in 0..2 {
        let mut fp = fetch_request::FetchPartition::default();
        fp.partition = p;
        // Partition 0's only record was consumed already: the client fetches from its end.
        fp.fetch_offset = if p == 0 { 1 } else { 0 };
        fp.partition_max_bytes = 1 << 20;
        ft.partitions.push(fp);
    }
    req.topics.push(ft);
    let full: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    assert_eq!(full.error_code, 0);
    let session = full.session_id;
    assert!(session > 0, "a session was created");
    assert_eq!(full.responses[0].partitions.len(), 2, "a full response lists every partition");
    // Incremental, nothing changed: no partitions at all.
    let mut incr = FetchRequest::default();
    incr.replica_id = BrokerId(-1);
    incr.max_bytes = 1 << 20;
    incr.session_id = session;
    incr.session_epoch = 1;
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &incr).await;
    assert_eq!((r.error_code, r.session_id), (0, session));
    assert!(r.responses.iter().all(|t| t.partitions.is_empty()), "{r:?}");
    // Partition 1 gets data: only it appears; partition 0 has nothing new.
    produce(&mut c, "fs", 1, sluice_batch_one("p1-new")).await;
    incr.session_epoch = 2;
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &incr).await;
    let parts: Vec<_> = r.responses.iter().flat_map(|t| t.partitions.iter()).collect();
    assert!(parts.iter().any(|p| p.partition_index == 1 && !batches(p).is_empty()));
    assert!(parts.iter().all(|p| p.partition_index == 1), "{parts:?}");
    // Wrong epoch, unknown session.
    incr.session_epoch = 9;
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &incr).await;
    assert_eq!(r.error_code, 71, "INVALID_FETCH_SESSION_EPOCH");
    incr.session_id = session + 1000;
    incr.session_epoch = 1;
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &incr).await;
    assert_eq!(r.error_code, 70, "FETCH_SESSION_ID_NOT_FOUND");
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_validation_uses_kafka_error_codes() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    create(&mut c, "pv", 1, &[]).await;
    create(&mut c, "small", 1, &[("max.message.bytes", "100")]).await;
    create(&mut c, "compacted", 1, &[("cleanup.policy", "compact")]).await;

    // A flipped byte inside the CRC-covered region: CORRUPT_MESSAGE, nothing written.
    let mut bad = sluice_batch_one("corrupt me").to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(produce(&mut c, "pv", 0, Bytes::from(bad)).await.error_code, 2);
    // Two batches in one partition: INVALID_RECORD.
    let mut two = sluice_batch_one("one").to_vec();
    two.extend_from_slice(&sluice_batch_one("two"));
    assert_eq!(produce(&mut c, "pv", 0, Bytes::from(two)).await.error_code, 87);
    // Too large for the topic's max.message.bytes.
    assert_eq!(produce(&mut c, "small", 0, sluice_batch_one(&"y".repeat(200))).await.error_code, 10);
    // A record two hours in the future (after.max.ms defaults to one hour): INVALID_TIMESTAMP with
    // a per-record error naming record 1.
    let now = now_ms();
    let mut b = sluice_protocol::records::BatchBuilder { base_timestamp: now, ..Default::default() };
    for (i, delta) in [0i64, 2 * 3600 * 1000, 0].iter().enumerate() {
        b.records.push(sluice_protocol::records::Record {
            offset_delta: i as i32,
            timestamp_delta: *delta,
            value: Some(Bytes::from_static(b"v")),
            ..Default::default()
        });
    }
    let r = produce(&mut c, "pv", 0, b.build().expect("batch")).await;
    assert_eq!(r.error_code, 32);
    assert_eq!(r.record_errors.iter().map(|e| e.batch_index).collect::<Vec<_>>(), vec![1]);
    // A compacted topic needs keys: every keyless record is listed (librdkafka fails exactly
    // those with INVALID_RECORD, and the rest of the batch with _INVALID_DIFFERENT_RECORD).
    let keyless = sluice_protocol::records::BatchBuilder {
        base_timestamp: now,
        records: (0..4)
            .map(|i| sluice_protocol::records::Record {
                offset_delta: i,
                key: (i % 2 == 0).then(|| Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v")),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let r = produce(&mut c, "compacted", 0, keyless.build().expect("batch")).await;
    assert_eq!(r.error_code, 87);
    assert_eq!(r.record_errors.iter().map(|e| e.batch_index).collect::<Vec<_>>(), vec![1, 3]);
    // Unknown topic, bad acks.
    assert_eq!(produce(&mut c, "nope", 0, sluice_batch_one("x")).await.error_code, 3);
    assert_eq!(produce(&mut c, "pv", 5, sluice_batch_one("x")).await.error_code, 3);
    let r: ProduceResponse = c.call(ApiKey::Produce, 12, &produce_request("pv", 0, sluice_batch_one("x"), 2)).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 21);
    // None of the rejected batches reached the log.
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("pv", 0, 0, 0, 1 << 20, 1 << 20)).await;
    assert_eq!(r.responses[0].partitions[0].high_watermark, 0);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_configs_apply_on_produce() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    create(&mut c, "lat", 1, &[("message.timestamp.type", "LogAppendTime")]).await;
    create(&mut c, "gz", 1, &[("compression.type", "gzip")]).await;
    let before = now_ms();
    let r = produce(&mut c, "lat", 0, sluice_batch(&["t1", "t2"], 1_000)).await;
    assert_eq!(r.error_code, 0);
    assert!(r.log_append_time_ms >= before, "log append time {}", r.log_append_time_ms);
    let f: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("lat", 0, 0, 0, 1 << 20, 1 << 20)).await;
    let got = batches(&f.responses[0].partitions[0]);
    assert_eq!(got[0].timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(got[0].max_timestamp(), r.log_append_time_ms);
    got[0].validate().expect("valid crc after stamping");
    // An uncompressed batch to a gzip topic is stored gzip, with the same records.
    let r = produce(&mut c, "gz", 0, sluice_batch(&["g1", "g2", "g3"], now_ms())).await;
    assert_eq!(r.error_code, 0);
    let f: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("gz", 0, 0, 0, 1 << 20, 1 << 20)).await;
    let got = batches(&f.responses[0].partitions[0]);
    assert_eq!(got[0].compression().expect("codec"), Compression::Gzip);
    assert_eq!(values(&got[0]), vec!["g1", "g2", "g3"]);
    assert_eq!(got[0].last_offset(), 2);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_gets_no_response_and_api_versions_falls_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    create(&mut c, "a0", 1, &[]).await;
    // Send an acks=0 produce by hand, then a request that does get an answer: the next frame on
    // the wire must be that answer.
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::Produce as i16;
    header.request_api_version = 9;
    header.correlation_id = 777;
    let frame =
        sluice_protocol::request::encode_request(&header, &produce_request("a0", 0, sluice_batch_one("silent"), 0))
            .expect("enc");
    c.stream.write_all(&frame).await.expect("write");
    let meta: MetadataResponse = c.call(ApiKey::Metadata, 12, &MetadataRequest::default()).await;
    assert_eq!(meta.brokers.len(), 1);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("a0", 0, 0, 0, 1 << 20, 1 << 20)).await;
    assert_eq!(r.responses[0].partitions[0].high_watermark, 1, "the acks=0 record was written");

    // ApiVersions at a version we do not know: a v0-shaped answer with UNSUPPORTED_VERSION and
    // the full list, and the connection stays open.
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::ApiVersions as i16;
    header.request_api_version = 3;
    header.correlation_id = 4242;
    let mut body = ApiVersionsRequest::default();
    body.client_software_name = StrBytes::from_static_str("future-client");
    body.client_software_version = StrBytes::from_static_str("9.9");
    let mut frame = sluice_protocol::request::encode_request(&header, &body).expect("enc").to_vec();
    // The same request claiming version 127 (no encoder knows that version).
    frame[6..8].copy_from_slice(&127i16.to_be_bytes());
    c.stream.write_all(&frame).await.expect("write");
    let mut len = [0u8; 4];
    c.stream.read_exact(&mut len).await.expect("len");
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    c.stream.read_exact(&mut body).await.expect("body");
    let mut buf = Bytes::from(body);
    use bytes::Buf;
    assert_eq!(buf.get_i32(), 4242);
    let resp = <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut buf, 0).expect("v0");
    assert_eq!(resp.error_code, 35);
    assert_eq!(resp.api_keys.len(), sluice::handlers::SUPPORTED_APIS.len());
    let _: MetadataResponse = c.call(ApiKey::Metadata, 1, &MetadataRequest::default()).await;
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_and_idle_close() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[("max.connections", "2"), ("connections.max.idle.ms", "300")]).await;
    let mut a = connect(&broker).await;
    let mut b = connect(&broker).await;
    let _: MetadataResponse = a.call(ApiKey::Metadata, 12, &MetadataRequest::default()).await;
    let _: MetadataResponse = b.call(ApiKey::Metadata, 12, &MetadataRequest::default()).await;
    // A third connection is closed at once.
    let mut third = tokio::net::TcpStream::connect(broker.kafka_addr()).await.expect("connect");
    let mut one = [0u8; 1];
    let n =
        tokio::time::timeout(Duration::from_secs(5), third.read(&mut one)).await.expect("closed promptly").unwrap_or(0);
    assert_eq!(n, 0, "over-limit connection closed");
    // Idle connections are closed after connections.max.idle.ms.
    let n =
        tokio::time::timeout(Duration::from_secs(5), a.stream.read(&mut one)).await.expect("idle close").unwrap_or(0);
    assert_eq!(n, 0);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_create_and_admin_validation() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[("num.partitions", "3")]).await;
    let mut c = connect(&broker).await;
    let meta_req = |topic: &str, allow: bool| {
        let mut req = MetadataRequest::default();
        let mut t = metadata_request::MetadataRequestTopic::default();
        t.name = Some(name(topic));
        req.topics = Some(vec![t]);
        req.allow_auto_topic_creation = allow;
        req
    };
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &meta_req("auto-no", false)).await;
    assert_eq!(r.topics[0].error_code, 3);
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &meta_req("auto-yes", true)).await;
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].partitions.len(), 3, "num.partitions applies");
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &meta_req("bad name!", true)).await;
    assert_eq!(r.topics[0].error_code, 17);

    let mut req = CreateTopicsRequest::default();
    for (topic, partitions, rf) in [("rf3", 1, 3i16), ("p0", 0, 1), ("ok", -1, -1), ("auto-yes", 1, 1)] {
        let mut t = create_topics_request::CreatableTopic::default();
        t.name = name(topic);
        t.num_partitions = partitions;
        t.replication_factor = rf;
        req.topics.push(t);
    }
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = name("badcfg");
    t.num_partitions = 1;
    t.replication_factor = 1;
    let mut cfg = create_topics_request::CreatableTopicConfig::default();
    cfg.name = StrBytes::from_static_str("retention.ms");
    cfg.value = Some(StrBytes::from_static_str("soon"));
    t.configs.push(cfg);
    req.topics.push(t);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![38, 37, 0, 36, 40]);
    assert_eq!(r.topics[2].num_partitions, 3);
    // validate_only creates nothing.
    let mut req = CreateTopicsRequest::default();
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = name("dry");
    t.num_partitions = 2;
    t.replication_factor = 1;
    req.topics.push(t);
    req.validate_only = true;
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!((r.topics[0].error_code, r.topics[0].num_partitions), (0, 2));
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &meta_req("dry", false)).await;
    assert_eq!(r.topics[0].error_code, 3);
    // Delete by id, then the id is unknown.
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &meta_req("ok", false)).await;
    let id = r.topics[0].topic_id;
    let mut del = DeleteTopicsRequest::default();
    let mut s = delete_topics_request::DeleteTopicState::default();
    s.topic_id = id;
    del.topics.push(s);
    let r: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 6, &del).await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(r.responses[0].name.as_ref().map(|n| n.0.to_string()), Some("ok".to_string()));
    let r: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 6, &del).await;
    assert_eq!(r.responses[0].error_code, 100);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_record_timestamp() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    create(&mut c, "lo", 1, &[]).await;
    let t0 = now_ms() - 60_000;
    for i in 0..5i64 {
        // Record timestamps 10 s apart; offsets i*2, i*2+1.
        produce(&mut c, "lo", 0, sluice_batch(&["a", "b"], t0 + i * 10_000)).await;
    }
    let query = |ts: i64| {
        let mut req = ListOffsetsRequest::default();
        req.replica_id = BrokerId(-1);
        let mut t = list_offsets_request::ListOffsetsTopic::default();
        t.name = name("lo");
        let mut p = list_offsets_request::ListOffsetsPartition::default();
        p.timestamp = ts;
        t.partitions.push(p);
        req.topics.push(t);
        req
    };
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 8, &query(t0 + 25_000)).await;
    assert_eq!((r.topics[0].partitions[0].offset, r.topics[0].partitions[0].timestamp), (6, t0 + 30_000));
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 8, &query(t0 + 999_000)).await;
    assert_eq!(r.topics[0].partitions[0].offset, -1, "nothing that late");
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 8, &query(-3)).await;
    assert_eq!(r.topics[0].partitions[0].timestamp, t0 + 40_000, "max timestamp");
    assert!(r.topics[0].partitions[0].offset >= 8);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 8, &query(-1)).await;
    assert_eq!(r.topics[0].partitions[0].offset, 10);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_log_dir_fails_only_its_partitions() {
    let a = tempfile::tempdir().expect("tmp");
    let b = tempfile::tempdir().expect("tmp");
    let dirs = format!("{},{}", a.path().display(), b.path().display());
    let broker = start_in_process(a.path(), &[("log.dirs", &dirs)]).await;
    let mut c = connect(&broker).await;
    // Two partitions land in different dirs (least-loaded placement).
    create(&mut c, "disk", 2, &[]).await;
    let logs = broker.broker().logs.clone();
    let p0 = logs.get(&sluice_storage::TopicPartition { topic: "disk".into(), partition: 0 }).expect("p0");
    let p1 = logs.get(&sluice_storage::TopicPartition { topic: "disk".into(), partition: 1 }).expect("p1");
    let (failed, healthy) = (p0.dir(), p1.dir());
    assert_ne!(failed.parent(), healthy.parent(), "partitions spread over both dirs");
    logs.fail_log_dir_for_test(failed.parent().expect("dir"));
    assert_eq!(produce(&mut c, "disk", 0, sluice_batch_one("lost")).await.error_code, 56, "KAFKA_STORAGE_ERROR");
    let ok = produce(&mut c, "disk", 1, sluice_batch_one("kept")).await;
    assert_eq!((ok.error_code, ok.base_offset), (0, 0));
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("disk", 0, 0, 0, 1 << 20, 1 << 20)).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 56);
    broker.shutdown().await.ok();
}

/// `max.request.partition.size.limit` caps what one DescribeTopicPartitions response describes,
/// whatever `response_partition_limit` the client asks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_topic_partitions_pages_are_capped_by_the_broker_limit() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[("max.request.partition.size.limit", "2")]).await;
    let mut c = connect(&broker).await;
    assert_eq!(create_topic(&mut c, "capped", 5, &[]).await.topics[0].error_code, 0);
    let mut req = DescribeTopicPartitionsRequest::default();
    let mut t = describe_topic_partitions_request::TopicRequest::default();
    t.name = name("capped");
    req.topics.push(t);
    req.response_partition_limit = 2000;
    let resp: DescribeTopicPartitionsResponse = c.call(ApiKey::DescribeTopicPartitions, 0, &req).await;
    let indexes: Vec<i32> = resp.topics[0].partitions.iter().map(|p| p.partition_index).collect();
    assert_eq!(indexes, vec![0, 1]);
    let cursor = resp.next_cursor.expect("more pages");
    assert_eq!((cursor.topic_name.0.as_str(), cursor.partition_index), ("capped", 2));
    broker.shutdown().await.expect("shutdown");
}
