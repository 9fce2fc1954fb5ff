//! Topic administration through librdkafka's admin client and raw Metadata: CreateTopics (with
//! configs, validate_only creates nothing, duplicate -> TOPIC_ALREADY_EXISTS, bad partition
//! counts -> INVALID_PARTITIONS, bad config value -> INVALID_CONFIG), DeleteTopics (then the topic
//! is unknown; deleting an unknown topic -> UNKNOWN_TOPIC_OR_PARTITION; recreating starts empty
//! with a new topic id), and auto-creation via Metadata and via Produce (with num.partitions), and
//! no auto-creation when `auto.create.topics.enable=false`.

use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;
use sluice_testkit::client::BlockingClient;
use sluice_tests::*;

/// Raw Metadata v12 for one topic: (error code, partition count, topic id as string).
pub fn raw_topic_metadata(addr: std::net::SocketAddr, topic: &str, auto_create: bool) -> (i16, usize, String) {
    let mut conn = BlockingClient::connect(addr);
    let mut t = MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![t]);
    req.allow_auto_topic_creation = auto_create;
    let resp: MetadataResponse = conn.request(ApiKey::Metadata, 12, &req);
    assert_eq!(resp.topics.len(), 1, "one topic in the Metadata response");
    let t = &resp.topics[0];
    assert_eq!(t.name.as_ref().map(|n| n.0.to_string()).as_deref(), Some(topic));
    (t.error_code, t.partitions.len(), t.topic_id.to_string())
}

/// Raw CreateTopics v5: `(name, partitions, replication factor)` -> `(name, error code)` each.
pub fn raw_create_topics(addr: std::net::SocketAddr, topics: &[(&str, i32, i16)]) -> Vec<(String, i16)> {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
    let mut conn = BlockingClient::connect(addr);
    let mut req = CreateTopicsRequest::default();
    req.timeout_ms = 10_000;
    req.topics = topics
        .iter()
        .map(|(name, parts, rf)| {
            let mut t = CreatableTopic::default();
            t.name = TopicName(StrBytes::from_string(name.to_string()));
            t.num_partitions = *parts;
            t.replication_factor = *rf;
            t
        })
        .collect();
    let resp: CreateTopicsResponse = conn.request(ApiKey::CreateTopics, 5, &req);
    resp.topics.iter().map(|t| (t.name.0.to_string(), t.error_code)).collect()
}

const NIL_UUID: &str = "00000000-0000-0000-0000-000000000000";

#[tokio::test]
async fn create_topics_variants() {
    let broker = TestBroker::start_default();
    let admin = admin(&broker.bootstrap());
    let opts = admin_opts();
    let (good, dry, bad0, badneg, badcfg) =
        (topic_name("good"), topic_name("dry"), topic_name("zero"), topic_name("neg"), topic_name("badcfg"));

    check!("create {good} with 3 partitions and configs: succeeds; Metadata shows 3 partitions and a topic id");
    let t = NewTopic::new(&good, 3, TopicReplication::Fixed(1))
        .set("retention.ms", "86400000")
        .set("cleanup.policy", "delete")
        .set("segment.bytes", "1048576");
    let res = admin.create_topics(&[t], &opts).await.expect("CreateTopics");
    assert_eq!(res, vec![Ok(good.clone())]);
    let (err, parts, id) = raw_topic_metadata(broker.addr(), &good, false);
    assert_eq!((err, parts), (0, 3));
    assert_ne!(id, NIL_UUID, "created topic must have a real topic id");

    check!("validate_only: success reported, topic not created");
    let res = admin
        .create_topics(&[NewTopic::new(&dry, 2, TopicReplication::Fixed(1))], &admin_opts().validate_only(true))
        .await
        .expect("CreateTopics validate_only");
    assert_eq!(res, vec![Ok(dry.clone())]);
    assert_eq!(raw_topic_metadata(broker.addr(), &dry, false).0, 3, "validate_only must not create the topic");

    check!("duplicate create -> TopicAlreadyExists (36)");
    let res = admin.create_topics(&[NewTopic::new(&good, 3, TopicReplication::Fixed(1))], &opts).await.unwrap();
    assert_eq!(res, vec![Err((good.clone(), RDKafkaErrorCode::TopicAlreadyExists))]);

    // librdkafka's admin client refuses these locally, so they go over the raw protocol.
    check!("raw CreateTopics v5: 0 and -5 partitions -> INVALID_PARTITIONS (37), replication factor 2 on one broker -> INVALID_REPLICATION_FACTOR (38), -1/-1 -> broker defaults");
    let badrf = topic_name("rf2");
    let defaults = topic_name("defaults");
    let res = raw_create_topics(broker.addr(), &[(&bad0, 0, 1), (&badneg, -5, 1), (&badrf, 1, 2), (&defaults, -1, -1)]);
    assert_eq!(res, vec![(bad0.clone(), 37), (badneg.clone(), 37), (badrf.clone(), 38), (defaults.clone(), 0)]);
    for t in [&bad0, &badneg, &badrf] {
        assert_eq!(raw_topic_metadata(broker.addr(), t, false).0, 3, "{t} must not exist");
    }
    assert_eq!(raw_topic_metadata(broker.addr(), &defaults, false).1, 1, "num.partitions default is 1");

    check!("cleanup.policy=bogus -> InvalidConfig (40); nothing created");
    let t = NewTopic::new(&badcfg, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "bogus");
    let res = admin.create_topics(&[t], &opts).await.unwrap();
    assert_eq!(res, vec![Err((badcfg.clone(), RDKafkaErrorCode::InvalidConfig))]);
    assert_eq!(raw_topic_metadata(broker.addr(), &badcfg, false).0, 3);
}

#[tokio::test]
async fn delete_topics() {
    let broker = TestBroker::start_default();
    let topic = topic_name("del");
    create_topic(&broker.bootstrap(), &topic, 2, &[]).await;
    let (_, _, old_id) = raw_topic_metadata(broker.addr(), &topic, false);
    let p = producer(&broker.bootstrap(), &[]);
    produce_ok(&p, &topic, &[TestRecord::value("before-delete").to_partition(1)]).await;
    drop(p);

    let admin = admin(&broker.bootstrap());
    check!("delete {topic}: succeeds, then Metadata says UNKNOWN_TOPIC_OR_PARTITION (3)");
    let res = admin.delete_topics(&[&topic], &admin_opts()).await.expect("DeleteTopics");
    assert_eq!(res, vec![Ok(topic.clone())]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (err, _, _) = raw_topic_metadata(broker.addr(), &topic, false);
        if err == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "topic still listed 10 s after delete (error {err})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    check!("deleting it again -> UnknownTopicOrPartition");
    let res = admin.delete_topics(&[&topic], &admin_opts()).await.expect("DeleteTopics");
    assert_eq!(res, vec![Err((topic.clone(), RDKafkaErrorCode::UnknownTopicOrPartition))]);

    check!("recreated topic is empty and has a new topic id");
    create_topic(&broker.bootstrap(), &topic, 2, &[]).await;
    let (err, parts, new_id) = raw_topic_metadata(broker.addr(), &topic, false);
    assert_eq!((err, parts), (0, 2));
    assert_ne!(new_id, old_id, "a recreated topic gets a new id");
    assert_eq!(watermarks(&broker.bootstrap(), &topic, 1), (0, 0), "old data must be gone");
}

#[tokio::test]
async fn auto_create_via_metadata_and_produce() {
    let broker = TestBroker::start(&[("num.partitions", "3")]);
    let via_md = topic_name("auto-md");
    check!("Metadata with allow_auto_topic_creation=false does not create {via_md}");
    assert_eq!(raw_topic_metadata(broker.addr(), &via_md, false).0, 3);
    check!("Metadata with allow_auto_topic_creation=true creates it with num.partitions=3");
    let (err, parts, id) = raw_topic_metadata(broker.addr(), &via_md, true);
    // Kafka answers LEADER_NOT_AVAILABLE (5) on the creating request; 0 is fine too.
    assert!(err == 0 || err == 5, "auto-create metadata error {err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut err, mut parts, mut id) = (err, parts, id);
    while err != 0 {
        assert!(Instant::now() < deadline, "auto-created topic never became available");
        tokio::time::sleep(Duration::from_millis(50)).await;
        (err, parts, id) = raw_topic_metadata(broker.addr(), &via_md, false);
    }
    assert_eq!(parts, 3);
    assert_ne!(id, NIL_UUID);

    let via_produce = topic_name("auto-produce");
    check!("producing to unknown {via_produce} auto-creates it (3 partitions) and the record lands at offset 0");
    let p = producer(&broker.bootstrap(), &[]);
    let acked = produce_ok(&p, &via_produce, &[TestRecord::value("auto").to_partition(2)]).await;
    assert_eq!(acked, vec![(2, 0)]);
    assert_eq!(partition_count(&broker.bootstrap(), &via_produce), 3);
    let got = consume_exactly(&broker.bootstrap(), &via_produce, &[0, 1, 2], Offset::Beginning, 1);
    assert_eq!((got[0].partition, got[0].value_str()), (2, "auto".to_string()));
}

#[tokio::test]
async fn no_auto_create_when_disabled() {
    let broker = TestBroker::start(&[("auto.create.topics.enable", "false")]);
    let topic = topic_name("no-auto");
    check!("auto.create.topics.enable=false: Metadata(allow_auto=true) -> UNKNOWN_TOPIC_OR_PARTITION, not created");
    assert_eq!(raw_topic_metadata(broker.addr(), &topic, true).0, 3);
    assert_eq!(raw_topic_metadata(broker.addr(), &topic, false).0, 3);
    check!("producing to it fails with an unknown-topic error");
    let p = producer(&broker.bootstrap(), &[("message.timeout.ms", "3000")]);
    let res = produce_all(&p, &topic, &[TestRecord::value("x")]).await;
    match &res[0] {
        Err(KafkaError::MessageProduction(
            RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::MessageTimedOut,
        )) => {}
        other => panic!("expected an unknown-topic failure, got {other:?}"),
    }
    assert_eq!(raw_topic_metadata(broker.addr(), &topic, false).0, 3, "topic must still not exist");
}
