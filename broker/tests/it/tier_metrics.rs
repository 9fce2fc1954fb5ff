//! Tier and idempotent-producer metrics: an idempotent producer writes to a tiered topic on a
//! `memory://` tier; uploads, a remote read below the local log start, the upload lag and the
//! producer count all show up in the broker's metrics with the values the workload implies.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use sluice_protocol::batch::BatchIter;
use sluice_protocol::records::{BatchBuilder, Record};
use sluice_testkit::broker::{connect, start_in_process};
use sluice_testkit::client::AsyncClient;
use sluice_testkit::now_ms;
use sluice_testkit::requests::{create_topic, fetch_request, produce_request};

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

async fn fetch_from(c: &mut AsyncClient, topic: &str, offset: i64) -> (i16, Vec<i64>) {
    let req = fetch_request(topic, offset, 0, 0, 1 << 20, 1 << 20);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    let p = &r.responses[0].partitions[0];
    let bases =
        BatchIter::new(p.records.clone().unwrap_or_default()).filter_map(|b| b.ok()).map(|b| b.base_offset()).collect();
    (p.error_code, bases)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_remote_reads_lag_and_producers_are_counted() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(
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
    let configs = [
        ("remote.storage.enable", "true"),
        ("segment.bytes", "4096"),
        ("local.retention.ms", "300"),
        ("file.delete.delay.ms", "0"),
    ];
    let r = create_topic(&mut c, "tm", 1, &configs).await;
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
        let req = produce_request("tm", 0, batch(pid, i * 5, 5), -1);
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
