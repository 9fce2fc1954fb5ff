//! Topic and broker configs, CreatePartitions, DeleteRecords and DescribeLogDirs through the raw
//! protocol against a live broker: IncrementalAlterConfigs operations (SET, DELETE, APPEND,
//! SUBTRACT) with Kafka's error codes, sources and synonyms in DescribeConfigs, dynamic broker
//! defaults flowing into topics, persistence across a restart, and live effect on the log.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_testkit::batch::sluice_batch;
use sluice_testkit::broker::{connect, start_in_process};
use sluice_testkit::client::AsyncClient;
use sluice_testkit::now_ms;
use sluice_testkit::requests::{create_topic, name};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

async fn create(c: &mut AsyncClient, topic: &str, partitions: i32, configs: &[(&str, &str)]) -> i16 {
    create_topic(c, topic, partitions, configs).await.topics[0].error_code
}

/// (error code, message) of one IncrementalAlterConfigs resource with `ops` = (key, op, value).
async fn incremental(
    c: &mut AsyncClient,
    kind: i8,
    resource: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    let mut req = IncrementalAlterConfigsRequest::default();
    let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
    res.resource_type = kind;
    res.resource_name = StrBytes::from_string(resource.to_string());
    for (k, op, v) in ops {
        let mut cfg = incremental_alter_configs_request::AlterableConfig::default();
        cfg.name = StrBytes::from_string(k.to_string());
        cfg.config_operation = *op;
        cfg.value = v.map(|v| StrBytes::from_string(v.to_string()));
        res.configs.push(cfg);
    }
    req.resources.push(res);
    req.validate_only = validate_only;
    let r: IncrementalAlterConfigsResponse = c.call(ApiKey::IncrementalAlterConfigs, 1, &req).await;
    (r.responses[0].error_code, r.responses[0].error_message.as_ref().map(|m| m.to_string()))
}

/// name -> (value, source, read_only, synonyms as (name, source)).
type Described = std::collections::BTreeMap<String, (Option<String>, i8, bool, Vec<(String, i8)>)>;

async fn describe(c: &mut AsyncClient, kind: i8, resource: &str) -> (i16, Described) {
    let mut req = DescribeConfigsRequest::default();
    let mut res = describe_configs_request::DescribeConfigsResource::default();
    res.resource_type = kind;
    res.resource_name = StrBytes::from_string(resource.to_string());
    res.configuration_keys = None;
    req.resources.push(res);
    req.include_synonyms = true;
    req.include_documentation = true;
    let r: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &req).await;
    let out = r.results[0]
        .configs
        .iter()
        .map(|e| {
            let syn = e.synonyms.iter().map(|s| (s.name.to_string(), s.source)).collect();
            (e.name.to_string(), (e.value.as_ref().map(|v| v.to_string()), e.config_source, e.read_only, syn))
        })
        .collect();
    (r.results[0].error_code, out)
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_alter_configs_operations_and_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[("log.retention.hours", "10")]).await;
    let mut c = connect(&broker).await;
    assert_eq!(create(&mut c, "cfg", 1, &[("cleanup.policy", "delete")]).await, 0);

    // Sources and synonyms: retention.ms from the static log.retention.hours.
    let (err, d) = describe(&mut c, TOPIC, "cfg").await;
    assert_eq!(err, 0);
    let (value, source, read_only, syn) = &d["retention.ms"];
    assert_eq!(value.as_deref(), Some("36000000"));
    assert_eq!((*source, *read_only), (4, false), "STATIC_BROKER_CONFIG");
    assert_eq!(syn.first(), Some(&("log.retention.hours".to_string(), 4)));
    assert_eq!(syn.last(), Some(&("log.retention.ms".to_string(), 5)));
    assert_eq!(d["cleanup.policy"].1, 1, "TOPIC_CONFIG");
    assert_eq!(d["segment.bytes"].1, 5, "DEFAULT_CONFIG");

    // SET and APPEND.
    assert_eq!(
        incremental(
            &mut c,
            TOPIC,
            "cfg",
            &[("retention.ms", 0, Some("5000")), ("cleanup.policy", 2, Some("compact"))],
            false
        )
        .await
        .0,
        0
    );
    let (_, d) = describe(&mut c, TOPIC, "cfg").await;
    assert_eq!(d["retention.ms"].0.as_deref(), Some("5000"));
    assert_eq!(d["retention.ms"].1, 1);
    assert_eq!(d["cleanup.policy"].0.as_deref(), Some("delete,compact"));
    // SUBTRACT and DELETE.
    assert_eq!(
        incremental(&mut c, TOPIC, "cfg", &[("cleanup.policy", 3, Some("delete")), ("retention.ms", 1, None)], false)
            .await
            .0,
        0
    );
    let (_, d) = describe(&mut c, TOPIC, "cfg").await;
    assert_eq!(d["cleanup.policy"].0.as_deref(), Some("compact"));
    assert_eq!(d["retention.ms"].0.as_deref(), Some("36000000"));
    // The live log sees the change.
    let p =
        broker.broker().logs.get(&sluice_storage::TopicPartition { topic: "cfg".into(), partition: 0 }).expect("log");
    assert!(p.config().cleanup_compact && !p.config().cleanup_delete);

    // Errors: bad value, append to a non-list, unknown key, duplicate key, validate_only.
    let (e, msg) = incremental(&mut c, TOPIC, "cfg", &[("retention.ms", 0, Some("soon"))], false).await;
    assert_eq!(e, code(ResponseError::InvalidConfig));
    assert!(msg.expect("message").contains("retention.ms"));
    assert_eq!(
        incremental(&mut c, TOPIC, "cfg", &[("retention.ms", 2, Some("1"))], false).await.0,
        code(ResponseError::InvalidConfig)
    );
    assert_eq!(
        incremental(&mut c, TOPIC, "cfg", &[("no.such.config", 0, Some("1"))], false).await.0,
        code(ResponseError::InvalidConfig)
    );
    assert_eq!(
        incremental(&mut c, TOPIC, "cfg", &[("min.cleanable.dirty.ratio", 0, Some("1.5"))], false).await.0,
        code(ResponseError::InvalidConfig)
    );
    assert_eq!(
        incremental(
            &mut c,
            TOPIC,
            "cfg",
            &[("min.compaction.lag.ms", 0, Some("10")), ("max.compaction.lag.ms", 0, Some("5"))],
            false
        )
        .await
        .0,
        code(ResponseError::InvalidConfig)
    );
    assert_eq!(
        incremental(&mut c, TOPIC, "cfg", &[("retention.ms", 0, Some("1")), ("retention.ms", 1, None)], false).await.0,
        code(ResponseError::InvalidRequest)
    );
    assert_eq!(
        incremental(&mut c, TOPIC, "nope", &[("retention.ms", 0, Some("1"))], false).await.0,
        code(ResponseError::UnknownTopicOrPartition)
    );
    assert_eq!(incremental(&mut c, TOPIC, "cfg", &[("segment.bytes", 0, Some("4096"))], true).await.0, 0);
    assert_eq!(describe(&mut c, TOPIC, "cfg").await.1["segment.bytes"].1, 5, "validate_only changed nothing");

    // Broker configs: read-only keys refused, dynamic ones accepted, unknown broker id refused.
    assert_eq!(
        incremental(&mut c, BROKER, "1", &[("num.io.threads", 0, Some("4"))], false).await.0,
        code(ResponseError::InvalidRequest)
    );
    assert_eq!(
        incremental(&mut c, BROKER, "7", &[("log.retention.ms", 0, Some("4"))], false).await.0,
        code(ResponseError::InvalidRequest)
    );
    assert_eq!(
        incremental(&mut c, BROKER, "", &[("log.retention.ms", 0, Some("-7"))], false).await.0,
        code(ResponseError::InvalidConfig)
    );
    assert_eq!(
        incremental(&mut c, BROKER, "", &[("log.cleanup.policy", 0, Some("shred"))], false).await.0,
        code(ResponseError::InvalidConfig)
    );
    assert_eq!(incremental(&mut c, BROKER, "", &[("log.retention.ms", 0, Some("120000"))], false).await.0, 0);
    assert_eq!(incremental(&mut c, BROKER, "1", &[("log.segment.bytes", 0, Some("70000"))], false).await.0, 0);
    let (_, d) = describe(&mut c, TOPIC, "cfg").await;
    assert_eq!(d["retention.ms"].0.as_deref(), Some("120000"));
    assert_eq!(d["retention.ms"].1, 3, "DYNAMIC_DEFAULT_BROKER_CONFIG");
    assert_eq!(d["segment.bytes"].0.as_deref(), Some("70000"));
    assert_eq!(d["segment.bytes"].1, 2, "DYNAMIC_BROKER_CONFIG");
    assert_eq!(p.config().segment_bytes, 70000, "dynamic broker default applied to the live log");
    let (_, b) = describe(&mut c, BROKER, "1").await;
    assert_eq!(b["log.segment.bytes"].0.as_deref(), Some("70000"));
    assert_eq!(b["log.segment.bytes"].1, 2);
    assert!(!b["log.segment.bytes"].2);
    assert!(b["num.io.threads"].2, "read-only");
    assert_eq!(b["log.retention.hours"].1, 4);
    let (_, defaults) = describe(&mut c, BROKER, "").await;
    assert_eq!(defaults.keys().collect::<Vec<_>>(), vec!["log.retention.ms"]);
    // New topics take the dynamic defaults too.
    assert_eq!(create(&mut c, "cfg2", 1, &[]).await, 0);
    assert_eq!(describe(&mut c, TOPIC, "cfg2").await.1["retention.ms"].0.as_deref(), Some("120000"));

    // Everything persists across a restart.
    drop(c);
    drop(p);
    broker.shutdown().await.expect("shutdown");
    let broker = start_in_process(dir.path(), &[("log.retention.hours", "10")]).await;
    let mut c = connect(&broker).await;
    let (_, d) = describe(&mut c, TOPIC, "cfg").await;
    assert_eq!(d["cleanup.policy"].0.as_deref(), Some("compact"));
    assert_eq!(d["retention.ms"].0.as_deref(), Some("120000"));
    assert_eq!(d["segment.bytes"].0.as_deref(), Some("70000"));
    let p =
        broker.broker().logs.get(&sluice_storage::TopicPartition { topic: "cfg".into(), partition: 0 }).expect("log");
    assert_eq!(p.config().segment_bytes, 70000);
    // DELETE on the broker resource falls back to the static value.
    assert_eq!(incremental(&mut c, BROKER, "", &[("log.retention.ms", 1, None)], false).await.0, 0);
    assert_eq!(describe(&mut c, TOPIC, "cfg").await.1["retention.ms"].0.as_deref(), Some("36000000"));
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_configs_replaces_the_whole_set() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    assert_eq!(create(&mut c, "ac", 1, &[("retention.ms", "1000"), ("segment.bytes", "5000")]).await, 0);
    let mut req = AlterConfigsRequest::default();
    let mut res = alter_configs_request::AlterConfigsResource::default();
    res.resource_type = TOPIC;
    res.resource_name = StrBytes::from_static_str("ac");
    let mut cfg = alter_configs_request::AlterableConfig::default();
    cfg.name = StrBytes::from_static_str("max.message.bytes");
    cfg.value = Some(StrBytes::from_static_str("2000"));
    res.configs.push(cfg);
    req.resources.push(res.clone());
    let r: AlterConfigsResponse = c.call(ApiKey::AlterConfigs, 2, &req).await;
    assert_eq!(r.responses[0].error_code, 0);
    let (_, d) = describe(&mut c, TOPIC, "ac").await;
    assert_eq!(d["max.message.bytes"].0.as_deref(), Some("2000"));
    assert_eq!(d["retention.ms"].1, 5, "keys not given are removed");
    assert_eq!(d["segment.bytes"].1, 5);
    // A produce above the new max.message.bytes is refused at once.
    let mut pr = ProduceRequest::default();
    pr.acks = -1;
    pr.timeout_ms = 5000;
    let mut td = produce_request::TopicProduceData::default();
    td.name = name("ac");
    let mut pd = produce_request::PartitionProduceData::default();
    pd.records = Some(sluice_batch(&[&"x".repeat(3000)], now_ms()));
    td.partition_data.push(pd);
    pr.topic_data.push(td);
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &pr).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, code(ResponseError::MessageTooLarge));
    // Duplicate resources: both refused.
    let mut req = AlterConfigsRequest::default();
    req.resources.push(res.clone());
    req.resources.push(res);
    let r: AlterConfigsResponse = c.call(ApiKey::AlterConfigs, 1, &req).await;
    assert!(r.responses.iter().all(|x| x.error_code == code(ResponseError::InvalidRequest)));
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_delete_records_and_log_dirs() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = start_in_process(dir.path(), &[]).await;
    let mut c = connect(&broker).await;
    assert_eq!(create(&mut c, "cp", 2, &[("segment.bytes", "200")]).await, 0);

    let call_cp = |count: i32, validate_only: bool| {
        let mut req = CreatePartitionsRequest::default();
        let mut t = create_partitions_request::CreatePartitionsTopic::default();
        t.name = name("cp");
        t.count = count;
        t.assignments = None;
        req.topics.push(t);
        req.validate_only = validate_only;
        req.timeout_ms = 5000;
        req
    };
    let r: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 3, &call_cp(1, false)).await;
    assert_eq!(r.results[0].error_code, code(ResponseError::InvalidPartitions));
    let r: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 3, &call_cp(2, false)).await;
    assert_eq!(r.results[0].error_code, code(ResponseError::InvalidPartitions));
    let r: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 3, &call_cp(5, true)).await;
    assert_eq!(r.results[0].error_code, 0);
    assert_eq!(broker.broker().metadata.topic("cp").expect("topic").partitions, 2, "validate_only");
    let r: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 3, &call_cp(5, false)).await;
    assert_eq!(r.results[0].error_code, 0);
    let mut md = MetadataRequest::default();
    let mut mt = metadata_request::MetadataRequestTopic::default();
    mt.name = Some(name("cp"));
    md.topics = Some(vec![mt]);
    let m: MetadataResponse = c.call(ApiKey::Metadata, 12, &md).await;
    assert_eq!(m.topics[0].partitions.len(), 5);

    // Ten single-record batches into partition 4 (a new one), one per segment.
    for i in 0..10 {
        let mut pr = ProduceRequest::default();
        pr.acks = -1;
        pr.timeout_ms = 5000;
        let mut td = produce_request::TopicProduceData::default();
        td.name = name("cp");
        let mut pd = produce_request::PartitionProduceData::default();
        pd.index = 4;
        pd.records = Some(sluice_batch(&[&format!("v{i}-{}", "x".repeat(100))], now_ms()));
        td.partition_data.push(pd);
        pr.topic_data.push(td);
        let r: ProduceResponse = c.call(ApiKey::Produce, 9, &pr).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let delete = |offset: i64, partition: i32| {
        let mut req = DeleteRecordsRequest::default();
        let mut t = delete_records_request::DeleteRecordsTopic::default();
        t.name = name("cp");
        let mut p = delete_records_request::DeleteRecordsPartition::default();
        p.partition_index = partition;
        p.offset = offset;
        t.partitions.push(p);
        req.topics.push(t);
        req.timeout_ms = 5000;
        req
    };
    let r: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, 2, &delete(4, 4)).await;
    assert_eq!((r.topics[0].partitions[0].error_code, r.topics[0].partitions[0].low_watermark), (0, 4));
    let r: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, 2, &delete(11, 4)).await;
    assert_eq!(r.topics[0].partitions[0].error_code, code(ResponseError::OffsetOutOfRange));
    let r: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, 2, &delete(0, 9)).await;
    assert_eq!(r.topics[0].partitions[0].error_code, code(ResponseError::UnknownTopicOrPartition));
    // ListOffsets earliest reflects the new log start; a fetch below it is out of range.
    let mut lo = ListOffsetsRequest::default();
    lo.replica_id = BrokerId(-1);
    let mut lt = list_offsets_request::ListOffsetsTopic::default();
    lt.name = name("cp");
    let mut lp = list_offsets_request::ListOffsetsPartition::default();
    lp.partition_index = 4;
    lp.timestamp = -2;
    lt.partitions.push(lp);
    lo.topics.push(lt);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &lo).await;
    assert_eq!(r.topics[0].partitions[0].offset, 4);
    let mut fr = FetchRequest::default();
    fr.max_wait_ms = 0;
    fr.max_bytes = 1 << 20;
    fr.session_epoch = -1;
    fr.replica_id = BrokerId(-1);
    let mut ft = fetch_request::FetchTopic::default();
    ft.topic = name("cp");
    let mut fp = fetch_request::FetchPartition::default();
    fp.partition = 4;
    fp.fetch_offset = 1;
    fp.partition_max_bytes = 1 << 20;
    ft.partitions.push(fp);
    fr.topics.push(ft);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fr).await;
    assert_eq!(r.responses[0].partitions[0].error_code, code(ResponseError::OffsetOutOfRange));
    assert_eq!(r.responses[0].partitions[0].log_start_offset, 4);
    // -1 = up to the high watermark.
    let r: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, 0, &delete(-1, 4)).await;
    assert_eq!(r.topics[0].partitions[0].low_watermark, 10);

    // DescribeLogDirs: one dir, every partition with its size.
    let mut all = DescribeLogDirsRequest::default();
    all.topics = None;
    let r: DescribeLogDirsResponse = c.call(ApiKey::DescribeLogDirs, 4, &all).await;
    assert_eq!(r.results.len(), 1);
    let t = r.results[0].topics.iter().find(|t| t.name.0.as_str() == "cp").expect("topic");
    assert_eq!(t.partitions.len(), 5);
    let mut req = DescribeLogDirsRequest::default();
    let mut dt = describe_log_dirs_request::DescribableLogDirTopic::default();
    dt.topic = name("cp");
    dt.partitions = vec![4];
    req.topics = Some(vec![dt]);
    let r: DescribeLogDirsResponse = c.call(ApiKey::DescribeLogDirs, 1, &req).await;
    assert_eq!(r.results[0].topics.len(), 1);
    let p = &r.results[0].topics[0].partitions[0];
    assert_eq!(p.partition_index, 4);
    assert!(p.partition_size > 0 && p.partition_size < 1000, "only the active segment is left: {}", p.partition_size);
    // An offline dir is reported with KAFKA_STORAGE_ERROR.
    broker.broker().logs.fail_log_dir_for_test(dir.path());
    let r: DescribeLogDirsResponse = c.call(ApiKey::DescribeLogDirs, 4, &all).await;
    assert_eq!(r.results[0].error_code, code(ResponseError::KafkaStorageError));
    broker.shutdown().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_and_cleaner_run_in_the_background() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker =
        start_in_process(dir.path(), &[("log.retention.check.interval.ms", "100"), ("log.cleaner.backoff.ms", "100")])
            .await;
    let mut c = connect(&broker).await;
    assert_eq!(
        create(
            &mut c,
            "ret",
            1,
            &[("segment.bytes", "200"), ("segment.ms", "500"), ("retention.ms", "300"), ("file.delete.delay.ms", "0")]
        )
        .await,
        0
    );
    assert_eq!(
        create(
            &mut c,
            "cmp",
            1,
            &[("segment.bytes", "300"), ("cleanup.policy", "compact"), ("min.cleanable.dirty.ratio", "0.01")]
        )
        .await,
        0
    );
    for topic in ["ret", "cmp"] {
        for i in 0..8 {
            let mut pr = ProduceRequest::default();
            pr.acks = -1;
            pr.timeout_ms = 5000;
            let mut td = produce_request::TopicProduceData::default();
            td.name = name(topic);
            let mut pd = produce_request::PartitionProduceData::default();
            // Same key "k0" every time; values differ.
            pd.records = Some(sluice_batch(&[&format!("v{i}-{}", "x".repeat(100))], now_ms()));
            td.partition_data.push(pd);
            pr.topic_data.push(td);
            let r: ProduceResponse = c.call(ApiKey::Produce, 9, &pr).await;
            assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
        }
    }
    let ret =
        broker.broker().logs.get(&sluice_storage::TopicPartition { topic: "ret".into(), partition: 0 }).expect("log");
    let cmp =
        broker.broker().logs.get(&sluice_storage::TopicPartition { topic: "cmp".into(), partition: 0 }).expect("log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let retained = ret.offsets().log_start_offset == 8;
        let compacted = cmp.cleaner_checkpoint().is_some_and(|c| c >= 7);
        if retained && compacted {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention {:?} / cleaner {:?} did not run",
            ret.offsets(),
            cmp.cleaner_checkpoint()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Everything of "ret" aged out (idle active segment rolled); "cmp" keeps one value per key
    // below its active segment.
    assert_eq!(ret.segment_base_offsets(), vec![8]);
    let r = cmp.read(0, 1 << 20, i64::MAX, false).expect("read");
    let mut values = Vec::new();
    for b in sluice_protocol::batch::BatchIter::new(r.records) {
        for rec in b.expect("batch").records(1 << 20).expect("records") {
            values.push(String::from_utf8_lossy(rec.value.as_deref().unwrap_or_default()).to_string());
        }
    }
    assert!(values.len() < 8, "compacted: {values:?}");
    assert!(values.last().expect("latest").starts_with("v7-"));
    // The passes are visible in the metrics.
    let m = &broker.broker().metrics.maintenance;
    assert!(m.cleaner_runs.get() >= 1, "cleaner runs counted");
    assert!(m.cleaner_records_removed.get() >= 1, "records removed counted");
    assert!(m.cleaner_bytes_read.get() > m.cleaner_bytes_written.get(), "cleaning shrank the log");
    assert!(m.retention_passes.get() >= 1);
    assert!(m.retention_segments_deleted.get() >= 1, "retention deletions counted");
    let text = broker.broker().metrics.render();
    assert!(text.contains("sluice_cleaner_runs_total") && text.contains("sluice_retention_segments_deleted_total"));
    drop((ret, cmp));
    broker.shutdown().await.expect("shutdown");
}
