//! Transactions through librdkafka (`transactional.id`): commits visible to `read_committed`
//! consumers, aborts invisible to them and visible to `read_uncommitted` ones, multi-partition
//! atomicity, the last stable offset holding consumers back while a transaction is open,
//! consume-transform-produce with offsets committed inside the transaction, zombie fencing,
//! timeouts, and transactions open across a broker restart.

use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_tests::*;

const T: Duration = Duration::from_secs(20);

fn txn_producer(bootstrap: &str, id: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut cfg = vec![("transactional.id", id), ("enable.idempotence", "true"), ("linger.ms", "1")];
    cfg.extend_from_slice(extra);
    let p = producer(bootstrap, &cfg);
    p.init_transactions(T).expect("init_transactions");
    p
}

fn values(prefix: &str, partition: i32, n: usize) -> Vec<TestRecord> {
    (0..n).map(|i| TestRecord::value(format!("{prefix}-{i}")).to_partition(partition)).collect()
}

/// Sends `records` inside a transaction and commits (or aborts) it.
async fn transaction(p: &FutureProducer, topic: &str, records: &[TestRecord], commit: bool) {
    p.begin_transaction().expect("begin_transaction");
    produce_ok(p, topic, records).await;
    if commit {
        p.commit_transaction(T).expect("commit_transaction");
    } else {
        p.abort_transaction(T).expect("abort_transaction");
    }
}

fn read(bootstrap: &str, topic: &str, partitions: &[i32], committed: bool) -> Vec<String> {
    let level = if committed { "read_committed" } else { "read_uncommitted" };
    let c = consumer(bootstrap, &[("isolation.level", level)]);
    consume_to_end(&c, topic, partitions, Offset::Beginning, WAIT).iter().map(|c| c.value_str()).collect()
}

fn strings(records: &[TestRecord]) -> Vec<String> {
    records.iter().map(|r| String::from_utf8(r.value.clone().unwrap_or_default()).expect("utf8")).collect()
}

#[tokio::test]
async fn committed_transactions_are_visible_and_aborted_ones_only_to_read_uncommitted() {
    let broker = TestBroker::start_default();
    let b = broker.bootstrap();
    let topic = topic_name("txn-basic");
    create_topic(&b, &topic, 1, &[]).await;
    let p = txn_producer(&b, &topic_name("tid"), &[]);
    let (one, two, three) = (values("c1", 0, 10), values("a2", 0, 10), values("c3", 0, 5));
    transaction(&p, &topic, &one, true).await;
    transaction(&p, &topic, &two, false).await;
    transaction(&p, &topic, &three, true).await;

    check!("read_committed sees the two committed transactions, in order, and nothing aborted");
    let mut want = strings(&one);
    want.extend(strings(&three));
    assert_eq!(read(&b, &topic, &[0], true), want);
    check!("read_uncommitted sees all 25 records");
    let mut all = strings(&one);
    all.extend(strings(&two));
    all.extend(strings(&three));
    assert_eq!(read(&b, &topic, &[0], false), all);
    check!("the log holds 25 records plus 3 markers");
    assert_eq!(watermarks(&b, &topic, 0).1, 28);
}

#[tokio::test]
async fn a_three_partition_transaction_is_all_or_nothing() {
    let broker = TestBroker::start_default();
    let b = broker.bootstrap();
    let topic = topic_name("txn-3p");
    create_topic(&b, &topic, 3, &[]).await;
    let p = txn_producer(&b, &topic_name("tid"), &[]);
    let spread = |prefix: &str| -> Vec<TestRecord> {
        (0..30).map(|i| TestRecord::value(format!("{prefix}-{i}")).to_partition(i % 3)).collect()
    };
    let committed = spread("commit");
    transaction(&p, &topic, &spread("abort"), false).await;
    transaction(&p, &topic, &committed, true).await;
    check!("each partition shows exactly its share of the committed transaction, none of the aborted one");
    for part in 0..3 {
        let want: Vec<String> =
            strings(&committed.iter().filter(|r| r.partition == Some(part)).cloned().collect::<Vec<_>>());
        assert_eq!(read(&b, &topic, &[part], true), want, "partition {part}");
        assert_eq!(read(&b, &topic, &[part], false).len(), 20, "partition {part} read_uncommitted");
    }
}

#[tokio::test]
async fn an_open_transaction_holds_read_committed_consumers_at_the_last_stable_offset() {
    let broker = TestBroker::start_default();
    let b = broker.bootstrap();
    let topic = topic_name("txn-lso");
    create_topic(&b, &topic, 1, &[]).await;
    let plain = producer(&b, &[]);
    produce_ok(&plain, &topic, &values("before", 0, 3)).await;
    let p = txn_producer(&b, &topic_name("tid"), &[]);
    p.begin_transaction().expect("begin");
    produce_ok(&p, &topic, &values("open", 0, 4)).await;
    produce_ok(&plain, &topic, &values("after", 0, 2)).await;

    check!("while the transaction is open, read_committed stops before its first record");
    assert_eq!(read(&b, &topic, &[0], true), strings(&values("before", 0, 3)));
    check!("read_uncommitted sees everything written so far");
    assert_eq!(read(&b, &topic, &[0], false).len(), 9);
    p.commit_transaction(T).expect("commit");
    check!("after the commit, read_committed sees all 9 records in log order");
    let mut want = strings(&values("before", 0, 3));
    want.extend(strings(&values("open", 0, 4)));
    want.extend(strings(&values("after", 0, 2)));
    assert_eq!(read(&b, &topic, &[0], true), want);
}

#[tokio::test]
async fn consume_transform_produce_commits_offsets_inside_the_transaction() {
    let broker = TestBroker::start_default();
    let b = broker.bootstrap();
    let (input, output) = (topic_name("ctp-in"), topic_name("ctp-out"));
    create_topic(&b, &input, 1, &[]).await;
    create_topic(&b, &output, 1, &[]).await;
    produce_ok(&producer(&b, &[]), &input, &values("in", 0, 20)).await;
    let group = topic_name("ctp-group");
    let c = consumer(&b, &[("group.id", group.as_str()), ("isolation.level", "read_committed")]);
    let got = consume_to_end(&c, &input, &[0], Offset::Beginning, WAIT);
    assert_eq!(got.len(), 20);
    let p = txn_producer(&b, &topic_name("tid"), &[]);
    let meta = c.group_metadata().expect("group metadata");

    let step = |from: usize, commit: bool| {
        let transformed: Vec<TestRecord> = got[from..from + 10]
            .iter()
            .map(|m| TestRecord::value(m.value_str().to_uppercase()).to_partition(0))
            .collect();
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset(&input, 0, Offset::Offset(from as i64 + 10)).expect("tpl");
        (transformed, offsets, commit)
    };
    for (transformed, offsets, commit) in [step(0, true), step(10, false)] {
        p.begin_transaction().expect("begin");
        produce_ok(&p, &output, &transformed).await;
        p.send_offsets_to_transaction(&offsets, &meta, T).expect("send_offsets_to_transaction");
        if commit {
            p.commit_transaction(T).expect("commit");
        } else {
            p.abort_transaction(T).expect("abort");
        }
    }
    check!("the committed transaction's offset (10) is the group's committed offset; the aborted one's (20) is not");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&input, 0);
    let committed = c.committed_offsets(tpl, T).expect("committed offsets");
    assert_eq!(committed.find_partition(&input, 0).expect("partition").offset(), Offset::Offset(10));
    check!("the output holds only the committed transaction's 10 transformed records");
    let want: Vec<String> = (0..10).map(|i| format!("IN-{i}")).collect();
    assert_eq!(read(&b, &output, &[0], true), want);
}

#[tokio::test]
async fn a_new_producer_with_the_same_transactional_id_fences_the_old_one() {
    let broker = TestBroker::start_default();
    let b = broker.bootstrap();
    let topic = topic_name("txn-fence");
    create_topic(&b, &topic, 1, &[]).await;
    let id = topic_name("tid");
    let zombie = txn_producer(&b, &id, &[]);
    zombie.begin_transaction().expect("begin");
    produce_ok(&zombie, &topic, &values("zombie", 0, 5)).await;

    check!("a second producer with the same transactional.id initializes, aborting the zombie's transaction");
    let fresh = txn_producer(&b, &id, &[]);
    check!("the zombie can no longer write or commit");
    let late = produce_all(&zombie, &topic, &values("zombie-late", 0, 1)).await;
    let commit = zombie.commit_transaction(T);
    assert!(late[0].is_err() || commit.is_err(), "the zombie was not fenced: {late:?} / {commit:?}");
    assert!(commit.is_err(), "the zombie's commit must fail");
    transaction(&fresh, &topic, &values("fresh", 0, 5), true).await;
    check!("read_committed sees only the new producer's transaction");
    assert_eq!(read(&b, &topic, &[0], true), strings(&values("fresh", 0, 5)));
}

#[tokio::test]
async fn transaction_timeouts_are_validated_and_enforced() {
    let broker = TestBroker::start(&[
        ("transaction.max.timeout.ms", "60000"),
        ("transaction.abort.timed.out.transaction.cleanup.interval.ms", "200"),
    ]);
    let b = broker.bootstrap();
    let topic = topic_name("txn-timeout");
    create_topic(&b, &topic, 1, &[]).await;
    check!("a transaction.timeout.ms above transaction.max.timeout.ms is refused by InitProducerId");
    let too_long = producer(
        &b,
        &[("transactional.id", "too-long"), ("transaction.timeout.ms", "120000"), ("enable.idempotence", "true")],
    );
    let err = too_long.init_transactions(T).expect_err("timeout above the maximum");
    assert!(format!("{err}").contains("Transaction timeout is larger than the maximum"), "{err}");

    check!("an abandoned transaction is aborted after its timeout; read_committed consumers move past it");
    {
        let p = txn_producer(
            &b,
            &topic_name("abandoned"),
            &[("transaction.timeout.ms", "2000"), ("socket.timeout.ms", "2000"), ("message.timeout.ms", "2000")],
        );
        p.begin_transaction().expect("begin");
        produce_ok(&p, &topic, &values("abandoned", 0, 3)).await;
        std::mem::forget(p); // a crashed client: no abort, no close
    }
    let p = txn_producer(&b, &topic_name("next"), &[]);
    transaction(&p, &topic, &values("next", 0, 2), true).await;
    let deadline = std::time::Instant::now() + T;
    loop {
        let got = read(&b, &topic, &[0], true);
        if got == strings(&values("next", 0, 2)) {
            break;
        }
        assert!(got.is_empty(), "read_committed saw {got:?}");
        assert!(std::time::Instant::now() < deadline, "the abandoned transaction was never aborted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn transactions_survive_a_broker_restart() {
    let port = free_port();
    let listeners = format!("PLAINTEXT://127.0.0.1:{port}");
    let broker = TestBroker::start(&[("listeners", listeners.as_str())]);
    let b = broker.bootstrap();
    let topic = topic_name("txn-restart");
    create_topic(&b, &topic, 2, &[]).await;
    let p = txn_producer(&b, &topic_name("tid"), &[]);
    transaction(&p, &topic, &values("committed", 0, 5), true).await;
    transaction(&p, &topic, &values("aborted", 1, 5), false).await;
    p.begin_transaction().expect("begin");
    let open: Vec<TestRecord> = (0..6).map(|i| TestRecord::value(format!("open-{i}")).to_partition(i % 2)).collect();
    produce_ok(&p, &topic, &open).await;

    let broker = broker.restart();
    check!("after a restart, the transaction that was open commits and every partition shows it");
    p.commit_transaction(T).expect("commit after restart");
    let mut want0 = strings(&values("committed", 0, 5));
    want0.extend(strings(&open.iter().filter(|r| r.partition == Some(0)).cloned().collect::<Vec<_>>()));
    assert_eq!(read(&b, &topic, &[0], true), want0);
    check!("the transaction aborted before the restart stays invisible to read_committed");
    let want1 = strings(&open.iter().filter(|r| r.partition == Some(1)).cloned().collect::<Vec<_>>());
    assert_eq!(read(&b, &topic, &[1], true), want1);
    assert_eq!(read(&b, &topic, &[1], false).len(), 8);
    drop(p);
    drop(broker);
}
