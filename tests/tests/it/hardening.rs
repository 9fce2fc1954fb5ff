//! Limits and durability through librdkafka's own clients: the admin client is refused the
//! internal topics (deletion, partition changes) and an oversized CreateTopics with Kafka's codes,
//! and a producer with acks=all on a durable-mode broker (`log.flush.interval.messages=1`) gets
//! every record acknowledged and read back in order.

use rdkafka::admin::{NewPartitions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;
use sluice_tests::*;

#[tokio::test]
async fn admin_client_is_refused_internal_topics_and_oversized_creates() {
    let broker = TestBroker::start_default();
    let admin = admin(&broker.bootstrap());
    let opts = admin_opts();

    check!("delete_topics([__consumer_offsets]): INVALID_TOPIC_EXCEPTION, the topic stays");
    let res = admin.delete_topics(&["__consumer_offsets"], &opts).await.expect("DeleteTopics");
    assert_eq!(res, vec![Err(("__consumer_offsets".to_string(), RDKafkaErrorCode::InvalidTopic))]);
    assert_eq!(partition_count(&broker.bootstrap(), "__consumer_offsets"), 50);

    check!("create_partitions(__transaction_state, 60): INVALID_PARTITIONS");
    let res = admin
        .create_partitions(&[NewPartitions::new("__transaction_state", 60)], &opts)
        .await
        .expect("CreatePartitions");
    assert_eq!(res, vec![Err(("__transaction_state".to_string(), RDKafkaErrorCode::InvalidPartitions))]);

    check!("create a topic of 20,000 partitions: POLICY_VIOLATION before anything is created");
    let wide = topic_name("wide");
    let res = admin
        .create_topics(&[NewTopic::new(&wide, 20_000, TopicReplication::Fixed(1))], &opts)
        .await
        .expect("CreateTopics");
    assert_eq!(res, vec![Err((wide.clone(), RDKafkaErrorCode::PolicyViolation))]);
    let made = std::fs::read_dir(broker.data_dir())
        .expect("data dir")
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with(wide.as_str())))
        .count();
    assert_eq!(made, 0, "no partition directory of the refused topic");
}

#[tokio::test]
async fn durable_mode_acknowledges_and_serves_every_record() {
    let broker = TestBroker::start(&[("log.flush.interval.messages", "1")]);
    let topic = topic_name("durable");
    let p = producer(&broker.bootstrap(), &[("acks", "all"), ("linger.ms", "1")]);
    let records: Vec<TestRecord> = (0..200).map(|i| TestRecord::value(format!("d{i}"))).collect();

    check!("200 records with acks=all to a durable-mode broker: all acknowledged at offsets 0..199");
    let acked = produce_ok(&p, &topic, &records).await;
    let mut offsets: Vec<i64> = acked.iter().map(|(_, o)| *o).collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (0..200).collect::<Vec<i64>>());

    check!("a consumer reads them back in order");
    let got = consume_exactly(&broker.bootstrap(), &topic, &[0], Offset::Beginning, 200);
    let values: Vec<String> = got.iter().map(|c| c.value_str()).collect();
    assert_eq!(values, (0..200).map(|i| format!("d{i}")).collect::<Vec<_>>());
}
