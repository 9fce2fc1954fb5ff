//! Durable mode over the wire: with `flush.messages=1` a produce is answered only once its batch
//! is fsynced (the partition's recovery point covers it), with `acks=1` as with `acks=all`, and
//! concurrent producers share fsyncs.

use kafka_protocol::messages::*;
use sluice_storage::TopicPartition;
use sluice_testkit::batch::sluice_batch_one;
use sluice_testkit::broker::{connect, start_in_process};
use sluice_testkit::requests::{create_topic, produce_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_mode_answers_after_the_fsync_and_producers_share_fsyncs() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    let created = create_topic(&mut c, "durable", 1, &[("flush.messages", "1")]).await;
    assert_eq!(created.topics[0].error_code, 0);
    let producers = 8;
    let per_producer = 25;
    let mut clients = Vec::new();
    for _ in 0..producers {
        clients.push(connect(&broker).await);
    }
    let tp = TopicPartition { topic: "durable".into(), partition: 0 };
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        let logs = broker.broker().logs.clone();
        let tp = tp.clone();
        tasks.spawn(async move {
            let acks = if i % 2 == 0 { -1 } else { 1 };
            let mut offsets = Vec::new();
            for n in 0..per_producer {
                let req = produce_request("durable", 0, sluice_batch_one(&format!("p{i}-{n}")), acks);
                let r: ProduceResponse = client.call(ApiKey::Produce, 9, &req).await;
                let p = &r.responses[0].partition_responses[0];
                assert_eq!(p.error_code, 0);
                let partition = logs.get(&tp).expect("partition");
                assert!(partition.recovery_point() > p.base_offset, "acknowledged before its fsync");
                offsets.push(p.base_offset);
            }
            offsets
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.expect("producer task"));
    }
    all.sort_unstable();
    let total = producers * per_producer;
    assert_eq!(all, (0..total as i64).collect::<Vec<_>>());
    let partition = broker.broker().logs.get(&tp).expect("partition");
    assert_eq!(partition.recovery_point(), total as i64);
    let flushes = partition.flush_count();
    assert!(flushes < total as u64, "{flushes} fsync rounds for {total} produce requests: none shared");
}
