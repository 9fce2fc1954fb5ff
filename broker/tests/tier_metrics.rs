//! Tier and idempotent-producer metrics: an idempotent producer writes to a tiered topic on a
//! `memory://` tier; uploads, a remote read below the local log start, the upload lag and the
//! producer count all show up in the broker's metrics with the values the workload implies.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{connect, name, now_ms, start_broker, Client};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::batch::BatchIter;
use sluice_protocol::records::{BatchBuilder, Record};

fn batch(pid: i64, seq: i32, n: usize) -> Bytes {
    BatchBuilder {
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: seq,
        base_timestamp: now_ms(),
        records: (0..n)
            .map(|i| Record {
                offset_delta: i as i32,
                value: Some(Bytes::from(format!("v{seq}-{i}-{}", "x".repeat(100)))),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
    .build()
    .expect("batch")
}

async fn fetch_from(c: &mut Client, topic: &str, offset: i64) -> (i16, Vec<i64>) {
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_bytes = 1 << 20;
    req.session_epoch = -1;
    let mut ft = fetch_request::FetchTopic::default();
    ft.topic = name(topic);
    let mut fp = fetch_request::FetchPartition::default();
    fp.fetch_offset = offset;
    fp.partition_max_bytes = 1 << 20;
    ft.partitions.push(fp);
    req.topics.push(ft);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    let p = &r.responses[0].partitions[0];
    let bases =
        BatchIter::new(p.records.clone().unwrap_or_default()).filter_map(|b| b.ok()).map(|b| b.base_offset()).collect();
    (p.error_code, bases)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_remote_reads_lag_and_producers_are_counted() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_broker(
        dir.path(),
        &[
            ("remote.log.storage.system.enable", "true"),
            ("remote.log.storage.url", "memory://"),
            ("remote.log.manager.task.interval.ms", "100"),
            ("log.retention.check.interval.ms", "100"),
        ],
    )
    .await;
    let mut c = connect(&broker).await;
    let mut req = CreateTopicsRequest::default();
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = name("tm");
    t.num_partitions = 1;
    t.replication_factor = 1;
    for (k, v) in [
        ("remote.storage.enable", "true"),
        ("segment.bytes", "4096"),
        ("local.retention.ms", "300"),
        ("file.delete.delay.ms", "0"),
    ] {
        let mut cfg = create_topics_request::CreatableTopicConfig::default();
        cfg.name = StrBytes::from_static_str(k);
        cfg.value = Some(StrBytes::from_static_str(v));
        t.configs.push(cfg);
    }
    req.topics.push(t);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(r.topics[0].error_code, 0);
    let r: InitProducerIdResponse = c
        .call(ApiKey::InitProducerId, 4, &{
            let mut q = InitProducerIdRequest::default();
            q.transaction_timeout_ms = 60_000;
            q.producer_id = ProducerId(-1);
            q.producer_epoch = -1;
            q
        })
        .await;
    assert_eq!(r.error_code, 0);
    let pid = r.producer_id.0;
    for i in 0..40 {
        let mut req = ProduceRequest::default();
        req.acks = -1;
        req.timeout_ms = 5000;
        let mut td = produce_request::TopicProduceData::default();
        td.name = name("tm");
        let mut pd = produce_request::PartitionProduceData::default();
        pd.records = Some(batch(pid, i * 5, 5));
        td.partition_data.push(pd);
        req.topic_data.push(td);
        let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let m = &broker.broker().metrics;
    let log =
        broker.broker().logs.get(&sluice_storage::TopicPartition { topic: "tm".into(), partition: 0 }).expect("log");
    let deadline = Instant::now() + Duration::from_secs(20);
    while m.tier.segments_uploaded.get() == 0 || log.offsets().log_start_offset == 0 {
        assert!(Instant::now() < deadline, "no upload + local deletion: {:?}", log.offsets());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(m.tier.bytes_uploaded.get() > 0);
    // Offset 0 now lives only in the remote tier.
    let (code, bases) = fetch_from(&mut c, "tm", 0).await;
    assert_eq!(code, 0);
    assert_eq!(bases.first(), Some(&0), "remote read returns the first batch");
    assert!(m.tier.fetch_bytes.get() > 0, "remote fetch bytes counted");
    assert_eq!(m.tier.fetch_seconds.get_sample_count(), 1);
    let text = m.render();
    assert!(text.contains("sluice_idempotent_producers 1"), "one producer with state");
    assert!(text.contains("sluice_tier_upload_lag_bytes"), "upload lag exported");
    assert!(text.contains("sluice_tier_segments_uploaded_total"));
    broker.shutdown().await.expect("shutdown");
}
