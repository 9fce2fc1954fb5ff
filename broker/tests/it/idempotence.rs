//! Idempotent produce at the wire level: InitProducerId ids and epochs, a retried batch stored
//! once and answered with its original offset, sequence gaps (OUT_OF_ORDER_SEQUENCE_NUMBER, 45),
//! fenced epochs (INVALID_PRODUCER_EPOCH, 47), and producer state surviving a restart.

use bytes::Bytes;
use kafka_protocol::messages::*;
use sluice_protocol::batch::{BatchIter, RecordBatch};
use sluice_testkit::batch::sluice_producer_batch;
use sluice_testkit::broker::{connect, start_in_process};
use sluice_testkit::client::AsyncClient;
use sluice_testkit::requests::{create_topic, fetch_request, produce_request};

async fn create(c: &mut AsyncClient, topic: &str) {
    assert_eq!(create_topic(c, topic, 1, &[]).await.topics[0].error_code, 0);
}

async fn init_producer_id(c: &mut AsyncClient, pid: i64, epoch: i16) -> (i64, i16) {
    let mut req = InitProducerIdRequest::default();
    req.transaction_timeout_ms = 60000;
    req.producer_id = ProducerId(pid);
    req.producer_epoch = epoch;
    let r: InitProducerIdResponse = c.call(ApiKey::InitProducerId, 4, &req).await;
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

fn idempotent_batch(pid: i64, epoch: i16, base_sequence: i32, values: &[&str]) -> Bytes {
    sluice_producer_batch(pid, epoch, base_sequence, false, values)
}

async fn produce(c: &mut AsyncClient, topic: &str, records: Bytes) -> (i16, i64) {
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &produce_request(topic, 0, records, -1)).await;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Every record value in the partition, in offset order, with its offset.
async fn fetch_all(c: &mut AsyncClient, topic: &str) -> Vec<(i64, String)> {
    let req = fetch_request(topic, 0, 0, 0, 1 << 20, 1 << 20);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let batches: Vec<RecordBatch> =
        BatchIter::new(p.records.clone().unwrap_or_default()).collect::<Result<_, _>>().expect("batches");
    let mut out = Vec::new();
    for b in batches {
        for r in b.records(1 << 20).expect("records") {
            let v = String::from_utf8(r.value.clone().unwrap_or_default().to_vec()).expect("utf8");
            out.push((b.base_offset() + i64::from(r.offset_delta), v));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_batch_is_stored_once_and_gaps_and_old_epochs_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    create(&mut c, "idem").await;
    let (pid, epoch) = init_producer_id(&mut c, -1, -1).await;
    let (pid2, _) = init_producer_id(&mut c, -1, -1).await;
    assert_ne!(pid, pid2, "ids are never reused");

    let first = idempotent_batch(pid, epoch, 0, &["a", "b"]);
    assert_eq!(produce(&mut c, "idem", first.clone()).await, (0, 0));
    assert_eq!(produce(&mut c, "idem", idempotent_batch(pid, epoch, 2, &["c"])).await, (0, 2));
    // The same batch again (a client retry): success with the original offset, nothing written.
    assert_eq!(produce(&mut c, "idem", first).await, (0, 0));
    assert_eq!(produce(&mut c, "idem", idempotent_batch(pid, epoch, 2, &["c"])).await, (0, 2));
    // A gap.
    assert_eq!(produce(&mut c, "idem", idempotent_batch(pid, epoch, 5, &["x"])).await.0, 45);
    // In order again.
    assert_eq!(produce(&mut c, "idem", idempotent_batch(pid, epoch, 3, &["d"])).await, (0, 3));
    // KIP-360 epoch bump: the new epoch starts at 0 and fences the old one.
    let (same, bumped) = init_producer_id(&mut c, pid, epoch).await;
    assert_eq!((same, bumped), (pid, epoch + 1));
    assert_eq!(produce(&mut c, "idem", idempotent_batch(pid, bumped, 3, &["y"])).await.0, 45);
    assert_eq!(produce(&mut c, "idem", idempotent_batch(pid, bumped, 0, &["e"])).await, (0, 4));
    assert_eq!(produce(&mut c, "idem", idempotent_batch(pid, epoch, 4, &["z"])).await.0, 47);
    let values: Vec<(i64, String)> = fetch_all(&mut c, "idem").await;
    let expected: Vec<(i64, String)> =
        ["a", "b", "c", "d", "e"].iter().enumerate().map(|(i, v)| (i as i64, v.to_string())).collect();
    assert_eq!(values, expected);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_state_and_ids_survive_restarts() {
    let dir = tempfile::tempdir().expect("tmp");
    // Small segments so rolls write producer snapshots.
    let broker = start_in_process(dir.path(), &[("log.segment.bytes", "200")]).await;
    let mut c = connect(&broker).await;
    create(&mut c, "idem-restart").await;
    let (pid, epoch) = init_producer_id(&mut c, -1, -1).await;
    let mut batches = Vec::new();
    for seq in 0..6 {
        let b = idempotent_batch(pid, epoch, seq, &[&format!("v{seq}")]);
        assert_eq!(produce(&mut c, "idem-restart", b.clone()).await, (0, i64::from(seq)));
        batches.push(b);
    }
    broker.shutdown().await.expect("shutdown");

    let broker = start_in_process(dir.path(), &[("log.segment.bytes", "200")]).await;
    let mut c = connect(&broker).await;
    // The last batch is still recognised as a duplicate; a gap is still a gap.
    assert_eq!(produce(&mut c, "idem-restart", batches[5].clone()).await, (0, 5));
    assert_eq!(produce(&mut c, "idem-restart", idempotent_batch(pid, epoch, 9, &["gap"])).await.0, 45);
    assert_eq!(produce(&mut c, "idem-restart", idempotent_batch(pid, epoch, 6, &["v6"])).await, (0, 6));
    let (pid2, _) = init_producer_id(&mut c, -1, -1).await;
    assert!(pid2 > pid, "a restart never hands out an earlier id");
    assert_eq!(fetch_all(&mut c, "idem-restart").await.len(), 7);
    broker.shutdown().await.expect("shutdown");
}
