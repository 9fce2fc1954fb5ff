//! The transaction coordinator's state machine at the wire level: states through a transaction's
//! life (DescribeTransactions), Kafka's error codes for wrong ids, epochs and states, partition
//! verification of transactional produce, fencing by a new InitProducerId, the last stable offset
//! in ListOffsets and Fetch (with the aborted transactions list), and an open transaction
//! surviving a restart.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::records::{BatchBuilder, Record};
use sluice_testkit::batch::{sluice_batch_one, sluice_producer_batch};
use sluice_testkit::broker::{connect, start_in_process};
use sluice_testkit::client::AsyncClient;
use sluice_testkit::now_ms;
use sluice_testkit::requests::{create_topic, fetch_request, name, produce_request};

fn tid(s: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(s.to_string()))
}

async fn init(c: &mut AsyncClient, id: &str, expected: (i64, i16)) -> (i16, i64, i16) {
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = Some(tid(id));
    req.transaction_timeout_ms = 60000;
    req.producer_id = ProducerId(expected.0);
    req.producer_epoch = expected.1;
    let r: InitProducerIdResponse = c.call(ApiKey::InitProducerId, 4, &req).await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

async fn add(c: &mut AsyncClient, id: &str, pid: i64, epoch: i16, parts: &[(&str, i32)]) -> Vec<i16> {
    let mut req = AddPartitionsToTxnRequest::default();
    req.v3_and_below_transactional_id = tid(id);
    req.v3_and_below_producer_id = ProducerId(pid);
    req.v3_and_below_producer_epoch = epoch;
    for (t, p) in parts {
        let mut topic = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
        topic.name = name(t);
        topic.partitions = vec![*p];
        req.v3_and_below_topics.push(topic);
    }
    let r: AddPartitionsToTxnResponse = c.call(ApiKey::AddPartitionsToTxn, 3, &req).await;
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| t.results_by_partition.iter().map(|p| p.partition_error_code))
        .collect()
}

async fn end(c: &mut AsyncClient, id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let mut req = EndTxnRequest::default();
    req.transactional_id = tid(id);
    req.producer_id = ProducerId(pid);
    req.producer_epoch = epoch;
    req.committed = commit;
    let r: EndTxnResponse = c.call(ApiKey::EndTxn, 3, &req).await;
    r.error_code
}

async fn state(c: &mut AsyncClient, id: &str) -> (String, i16, Vec<i32>) {
    let mut req = DescribeTransactionsRequest::default();
    req.transactional_ids = vec![tid(id)];
    let r: DescribeTransactionsResponse = c.call(ApiKey::DescribeTransactions, 0, &req).await;
    let s = &r.transaction_states[0];
    assert_eq!(s.error_code, 0);
    (s.transaction_state.to_string(), s.producer_epoch, s.topics.iter().flat_map(|t| t.partitions.clone()).collect())
}

fn txn_batch(pid: i64, epoch: i16, seq: i32, value: &str) -> Bytes {
    sluice_producer_batch(pid, epoch, seq, true, &[value])
}

async fn produce(c: &mut AsyncClient, topic: &str, records: Bytes) -> i16 {
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &produce_request(topic, 0, records, -1)).await;
    r.responses[0].partition_responses[0].error_code
}

/// (high watermark, last stable offset) from ListOffsets latest at both isolation levels.
async fn latest(c: &mut AsyncClient, topic: &str) -> (i64, i64) {
    let mut out = [0i64; 2];
    for (i, level) in [0i8, 1].into_iter().enumerate() {
        let mut req = ListOffsetsRequest::default();
        req.replica_id = BrokerId(-1);
        req.isolation_level = level;
        let mut t = list_offsets_request::ListOffsetsTopic::default();
        t.name = name(topic);
        let mut p = list_offsets_request::ListOffsetsPartition::default();
        p.timestamp = -1;
        t.partitions.push(p);
        req.topics.push(t);
        let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req).await;
        out[i] = r.topics[0].partitions[0].offset;
    }
    (out[0], out[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_state_machine_and_error_codes() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    assert_eq!(create_topic(&mut c, "tx", 2, &[]).await.topics[0].error_code, 0);
    let (code, pid, epoch) = init(&mut c, "sm", (-1, -1)).await;
    assert_eq!((code, epoch), (0, 0));
    assert_eq!(state(&mut c, "sm").await.0, "Empty");

    // Nothing to end yet; wrong ids and epochs.
    assert_eq!(end(&mut c, "sm", pid, epoch, true).await, 48, "INVALID_TXN_STATE");
    assert_eq!(add(&mut c, "sm", pid + 1000, epoch, &[("tx", 0)]).await, vec![49], "INVALID_PRODUCER_ID_MAPPING");
    assert_eq!(add(&mut c, "sm", pid, epoch + 1, &[("tx", 0)]).await, vec![90], "PRODUCER_FENCED");
    assert_eq!(add(&mut c, "nobody", pid, epoch, &[("tx", 0)]).await, vec![49]);
    assert_eq!(
        add(&mut c, "sm", pid, epoch, &[("tx", 0), ("nope", 0)]).await,
        vec![55, 3],
        "OPERATION_NOT_ATTEMPTED + UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(state(&mut c, "sm").await.0, "Empty", "a failed add changes nothing");

    // A transactional write to a partition not in the transaction is refused.
    assert_eq!(produce(&mut c, "tx", txn_batch(pid, epoch, 0, "early")).await, 48);
    assert_eq!(add(&mut c, "sm", pid, epoch, &[("tx", 0)]).await, vec![0]);
    assert_eq!(state(&mut c, "sm").await, ("Ongoing".to_string(), 0, vec![0]));
    assert_eq!(produce(&mut c, "tx", txn_batch(pid, epoch, 0, "a")).await, 0);
    assert_eq!(produce(&mut c, "tx", sluice_batch_one("plain")).await, 0);
    assert_eq!(latest(&mut c, "tx").await, (2, 0), "the open transaction holds the LSO at its first offset");
    assert_eq!(end(&mut c, "sm", pid, epoch, false).await, 0);
    assert_eq!(state(&mut c, "sm").await.0, "CompleteAbort");
    assert_eq!(latest(&mut c, "tx").await, (3, 3), "the ABORT marker took offset 2");
    assert_eq!(end(&mut c, "sm", pid, epoch, false).await, 0, "a retried EndTxn succeeds");
    assert_eq!(end(&mut c, "sm", pid, epoch, true).await, 48, "the other outcome does not");

    // read_committed Fetch returns the aborted transaction with the data.
    let mut req = fetch_request("tx", 0, 0, 0, 1 << 20, 1 << 20);
    req.isolation_level = 1;
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.high_watermark, p.last_stable_offset), (3, 3));
    let aborted = p.aborted_transactions.as_ref().expect("aborted list");
    assert_eq!(aborted.iter().map(|a| (a.producer_id.0, a.first_offset)).collect::<Vec<_>>(), vec![(pid, 0)]);

    // A new InitProducerId while a transaction is open aborts it and fences the old epoch.
    assert_eq!(add(&mut c, "sm", pid, epoch, &[("tx", 1)]).await, vec![0]);
    let (code, pid2, epoch2) = init(&mut c, "sm", (-1, -1)).await;
    assert_eq!((code, pid2), (0, pid));
    assert_eq!(epoch2, epoch + 2, "one bump for the fencing abort, one for the new producer");
    assert_eq!(state(&mut c, "sm").await, ("Empty".to_string(), epoch2, vec![]));
    assert_eq!(end(&mut c, "sm", pid, epoch, true).await, 90, "the zombie's EndTxn is fenced");
    assert_eq!(produce(&mut c, "tx", txn_batch(pid, epoch, 1, "zombie")).await, 47, "INVALID_PRODUCER_EPOCH");
    // KIP-360: the producer recovering with its current id and epoch gets the next epoch; a
    // stale pair is fenced.
    assert_eq!(init(&mut c, "sm", (pid, epoch2)).await, (0, pid, epoch2 + 1));
    assert_eq!(init(&mut c, "sm", (pid, epoch)).await.0, 90);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_survives_a_restart_and_commits() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    assert_eq!(create_topic(&mut c, "tx", 1, &[]).await.topics[0].error_code, 0);
    let (_, pid, epoch) = init(&mut c, "restart", (-1, -1)).await;
    assert_eq!(add(&mut c, "restart", pid, epoch, &[("tx", 0)]).await, vec![0]);
    for seq in 0..3 {
        assert_eq!(produce(&mut c, "tx", txn_batch(pid, epoch, seq, "x")).await, 0);
    }
    broker.shutdown().await.expect("shutdown");

    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    assert_eq!(state(&mut c, "restart").await, ("Ongoing".to_string(), epoch, vec![0]));
    assert_eq!(latest(&mut c, "tx").await, (3, 0), "still open after the restart");
    assert_eq!(produce(&mut c, "tx", txn_batch(pid, epoch, 3, "y")).await, 0, "sequences continue");
    assert_eq!(end(&mut c, "restart", pid, epoch, true).await, 0);
    assert_eq!(latest(&mut c, "tx").await, (5, 5));
    broker.shutdown().await.expect("shutdown");
}

/// A crash after EndTxn made its decision durable (`PrepareCommit` in `__transaction_state`) but
/// before any marker was written: the restarted coordinator completes the commit by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_left_pending_by_a_crash_is_completed_at_startup() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    assert_eq!(create_topic(&mut c, "tx", 1, &[]).await.topics[0].error_code, 0);
    let (_, pid, epoch) = init(&mut c, "pending", (-1, -1)).await;
    assert_eq!(add(&mut c, "pending", pid, epoch, &[("tx", 0)]).await, vec![0]);
    assert_eq!(produce(&mut c, "tx", txn_batch(pid, epoch, 0, "decided")).await, 0);
    broker.shutdown().await.expect("shutdown");

    // Write what EndTxn writes first — PrepareCommit — straight into the coordinator's log.
    {
        use sluice::txn::{store, TxnMetadata, TxnState};
        let cfg = sluice_storage::LogManagerConfig { log_dirs: vec![dir.path().to_path_buf()] };
        let (logs, _) =
            sluice_storage::LogManager::open(cfg, &|_: &str| sluice_storage::LogConfig::default()).expect("open logs");
        let index = sluice::group::store::partition_for("pending", 50);
        let log = logs
            .get(&sluice_storage::TopicPartition { topic: store::TXN_TOPIC.to_string(), partition: index })
            .expect("transaction state partition");
        let m = TxnMetadata {
            transactional_id: "pending".into(),
            producer_id: pid,
            producer_epoch: epoch,
            last_producer_id: -1,
            last_producer_epoch: -1,
            next_producer_id: -1,
            client_transaction_version: 0,
            timeout_ms: 60000,
            state: TxnState::PrepareCommit,
            partitions: [("tx".to_string(), 0)].into_iter().collect(),
            start_ms: now_ms(),
            last_update_ms: now_ms(),
        };
        let rec = BatchBuilder {
            base_timestamp: now_ms(),
            records: vec![Record {
                key: Some(store::key("pending")),
                value: Some(store::value(&m, 2)),
                ..Default::default()
            }],
            ..Default::default()
        }
        .build()
        .expect("batch");
        let batch = sluice_protocol::batch::RecordBatch::new(rec).expect("batch");
        log.append(std::slice::from_ref(&batch), 0).expect("append");
        logs.shutdown().expect("close logs");
    }

    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while state(&mut c, "pending").await.0 != "CompleteCommit" {
        assert!(std::time::Instant::now() < deadline, "the pending commit was never completed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(latest(&mut c, "tx").await, (2, 2), "the COMMIT marker is written and the LSO moved past it");
    broker.shutdown().await.expect("shutdown");
}

/// Produce v12 of a transactional batch: the leader adds the partition to the transaction itself
/// (transactions v2; the client sends no AddPartitionsToTxn).
async fn produce_v2(c: &mut AsyncClient, id: &str, topic: &str, records: Bytes) -> i16 {
    let mut req = produce_request(topic, 0, records, -1);
    req.transactional_id = Some(tid(id));
    let r: ProduceResponse = c.call(ApiKey::Produce, 12, &req).await;
    r.responses[0].partition_responses[0].error_code
}

/// EndTxn v5: (error, producer id, epoch).
async fn end_v2(c: &mut AsyncClient, id: &str, pid: i64, epoch: i16, commit: bool) -> (i16, i64, i16) {
    let mut req = EndTxnRequest::default();
    req.transactional_id = tid(id);
    req.producer_id = ProducerId(pid);
    req.producer_epoch = epoch;
    req.committed = commit;
    let r: EndTxnResponse = c.call(ApiKey::EndTxn, 5, &req).await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// Transactions v2 at the wire level: Produce v12 starts the transaction and adds the partition,
/// EndTxn v5 bumps the epoch and writes the marker at the bumped epoch, the next transaction runs
/// at the new epoch from sequence 0, a write or an EndTxn at the old epoch is fenced, and
/// TxnOffsetCommit v5 adds the offsets partition itself; read_committed sees exactly the
/// committed data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_v2_add_partitions_implicitly_and_bump_the_epoch() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    assert_eq!(create_topic(&mut c, "tx", 1, &[]).await.topics[0].error_code, 0);
    let (code, pid, epoch) = init(&mut c, "v2", (-1, -1)).await;
    assert_eq!(code, 0);

    assert_eq!(produce_v2(&mut c, "v2", "tx", txn_batch(pid, epoch, 0, "a")).await, 0);
    assert_eq!(state(&mut c, "v2").await, ("Ongoing".to_string(), epoch, vec![0]), "added by the produce");
    assert_eq!(produce_v2(&mut c, "v2", "tx", txn_batch(pid, epoch, 1, "b")).await, 0);
    assert_eq!(latest(&mut c, "tx").await, (2, 0));
    assert_eq!(end_v2(&mut c, "v2", pid, epoch, true).await, (0, pid, epoch + 1));
    assert_eq!(latest(&mut c, "tx").await, (3, 3), "the COMMIT marker took offset 2");
    let (s, e, parts) = state(&mut c, "v2").await;
    assert_eq!((s.as_str(), e, parts), ("CompleteCommit", epoch + 1, vec![]));
    // The marker carried the bumped epoch: the partition knows the producer at it.
    let mut dp = DescribeProducersRequest::default();
    let mut t = describe_producers_request::TopicRequest::default();
    t.name = name("tx");
    t.partition_indexes = vec![0];
    dp.topics = vec![t];
    let r: DescribeProducersResponse = c.call(ApiKey::DescribeProducers, 0, &dp).await;
    let p = &r.topics[0].partitions[0].active_producers[0];
    assert_eq!((p.producer_id.0, p.producer_epoch), (pid, i32::from(epoch) + 1));

    // The old epoch is fenced everywhere; the new one starts over at sequence 0.
    assert_eq!(produce_v2(&mut c, "v2", "tx", txn_batch(pid, epoch, 2, "zombie")).await, 47, "INVALID_PRODUCER_EPOCH");
    assert_eq!(end_v2(&mut c, "v2", pid, epoch - 1, false).await.0, 90, "PRODUCER_FENCED");
    let epoch1 = epoch + 1;
    assert_eq!(produce_v2(&mut c, "v2", "tx", txn_batch(pid, epoch1, 0, "c")).await, 0);
    // Offsets in the same transaction, without AddOffsetsToTxn.
    let mut req = TxnOffsetCommitRequest::default();
    req.transactional_id = tid("v2");
    req.group_id = GroupId(StrBytes::from_static_str("v2-group"));
    req.producer_id = ProducerId(pid);
    req.producer_epoch = epoch1;
    req.generation_id = -1;
    let mut p = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default();
    p.committed_offset = 3;
    p.committed_leader_epoch = -1;
    let mut t = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
    t.name = name("tx");
    t.partitions = vec![p];
    req.topics = vec![t];
    let r: TxnOffsetCommitResponse = c.call(ApiKey::TxnOffsetCommit, 5, &req).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(state(&mut c, "v2").await.2.len(), 2, "tx-0 and the group's __consumer_offsets partition");
    // Abort: the data and the offsets go.
    assert_eq!(end_v2(&mut c, "v2", pid, epoch1, false).await, (0, pid, epoch1 + 1));
    let mut of = OffsetFetchRequest::default();
    of.group_id = GroupId(StrBytes::from_static_str("v2-group"));
    of.topics = None;
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 2, &of).await;
    assert!(r.topics.iter().all(|t| t.partitions.iter().all(|p| p.committed_offset == -1)), "{r:?}");
    let mut req = fetch_request("tx", 0, 0, 0, 1 << 20, 1 << 20);
    req.isolation_level = 1;
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.high_watermark, p.last_stable_offset), (5, 5));
    let aborted = p.aborted_transactions.as_ref().expect("aborted list");
    assert_eq!(aborted.iter().map(|a| (a.producer_id.0, a.first_offset)).collect::<Vec<_>>(), vec![(pid, 3)]);
    broker.shutdown().await.expect("shutdown");
}
