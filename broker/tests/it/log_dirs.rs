//! AlterReplicaLogDirs and DescribeLogDirs on a broker with two log dirs: a move is answered at
//! once and runs in the background (DescribeLogDirs shows the future replica with its lag while
//! it copies, within `replica.alter.log.dirs.io.max.bytes.per.second`, a dynamic config), the
//! errors are Kafka's, a partition asked for before it exists is created in that dir, the new
//! dir is remembered across a restart, and CLUSTER ALTER is required.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice::authz::{AclOperation, Action, Authorizer, ResourceType};
use sluice_testkit::batch::sluice_batch_one;
use sluice_testkit::broker::{connect, start_in_process};
use sluice_testkit::client::AsyncClient;
use sluice_testkit::requests::{create_topic, fetch_request, name, produce_request};

/// Each copy of each partition DescribeLogDirs reports: (topic, partition, is future) ->
/// (dir, size, offset lag).
type Placement = BTreeMap<(String, i32, bool), (PathBuf, i64, i64)>;

async fn describe(c: &mut AsyncClient) -> (DescribeLogDirsResponse, Placement) {
    let mut req = DescribeLogDirsRequest::default();
    req.topics = None;
    let resp: DescribeLogDirsResponse = c.call(ApiKey::DescribeLogDirs, 4, &req).await;
    let mut out = Placement::new();
    for r in &resp.results {
        for t in &r.topics {
            for p in &t.partitions {
                out.insert(
                    (t.name.0.to_string(), p.partition_index, p.is_future_key),
                    (PathBuf::from(r.log_dir.as_str()), p.partition_size, p.offset_lag),
                );
            }
        }
    }
    (resp, out)
}

/// Each partition's answer: `None` for success, else its error.
async fn alter(c: &mut AsyncClient, moves: &[(&str, i32, &Path)]) -> Vec<(String, i32, Option<ResponseError>)> {
    let mut req = AlterReplicaLogDirsRequest::default();
    for (topic, partition, dir) in moves {
        let mut d = alter_replica_log_dirs_request::AlterReplicaLogDir::default();
        d.path = StrBytes::from_string(dir.display().to_string());
        let mut t = alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default();
        t.name = name(topic);
        t.partitions = vec![*partition];
        d.topics.push(t);
        req.dirs.push(d);
    }
    let resp: AlterReplicaLogDirsResponse = c.call(ApiKey::AlterReplicaLogDirs, 2, &req).await;
    resp.results
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (t.topic_name.0.to_string(), p.partition_index, ResponseError::try_from_code(p.error_code))
            })
        })
        .collect()
}

async fn produce(c: &mut AsyncClient, topic: &str, count: usize, size: usize) {
    for i in 0..count {
        let value = format!("{i:06}-{}", "v".repeat(size));
        let resp: ProduceResponse =
            c.call(ApiKey::Produce, 9, &produce_request(topic, 0, sluice_batch_one(&value), -1)).await;
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    }
}

async fn wait_for(c: &mut AsyncClient, what: &str, cond: impl Fn(&Placement) -> bool) -> Placement {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, placed) = describe(c).await;
        if cond(&placed) {
            return placed;
        }
        assert!(Instant::now() < deadline, "{what}: {placed:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn two_dirs(root: &Path) -> (PathBuf, PathBuf, String) {
    let (a, b) = (root.join("a"), root.join("b"));
    let both = format!("{},{}", a.display(), b.display());
    (a, b, both)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_runs_in_the_background_within_the_quota_and_is_remembered() {
    let root = tempfile::tempdir().expect("tmp");
    let (a, b, both) = two_dirs(root.path());
    let overrides = [
        ("log.dirs", both.as_str()),
        ("log.segment.bytes", "16384"),
        ("replica.alter.log.dirs.io.max.bytes.per.second", "50000"),
    ];
    let broker = start_in_process(root.path(), &overrides).await;
    let mut c = connect(&broker).await;
    assert_eq!(create_topic(&mut c, "moving", 1, &[]).await.topics[0].error_code, 0);
    let (resp, placed) = describe(&mut c).await;
    // Absolute paths and the file system's sizes, as Kafka reports them.
    assert_eq!(resp.results.len(), 2);
    for r in &resp.results {
        assert!(Path::new(r.log_dir.as_str()).is_absolute());
        assert!(r.total_bytes > 0 && r.usable_bytes > 0 && r.usable_bytes <= r.total_bytes, "{r:?}");
    }
    let (from, _, _) = placed[&("moving".to_string(), 0, false)].clone();
    let to = if from == a { b.clone() } else { a.clone() };
    produce(&mut c, "moving", 200, 1000).await;

    // Moving to where it is: nothing to do.
    assert_eq!(alter(&mut c, &[("moving", 0, &from)]).await, vec![("moving".to_string(), 0, None)]);
    assert_eq!(alter(&mut c, &[("moving", 0, &to)]).await, vec![("moving".to_string(), 0, None)]);
    // ~200 KB at 50 KB/s: the future replica shows, with its lag, while producers go on.
    let placed = wait_for(&mut c, "future replica listed", |p| p.contains_key(&("moving".to_string(), 0, true))).await;
    let (future_dir, _, lag) = placed[&("moving".to_string(), 0, true)].clone();
    assert_eq!(future_dir, to);
    assert!(lag > 0, "lag {lag}");
    assert_eq!(placed[&("moving".to_string(), 0, false)].0, from);
    assert_eq!(placed[&("moving".to_string(), 0, false)].2, 0, "a leader's own lag is 0");
    produce(&mut c, "moving", 20, 100).await;
    // Lift the quota (dynamic): the move completes.
    let mut req = IncrementalAlterConfigsRequest::default();
    let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
    res.resource_type = 4;
    res.resource_name = StrBytes::from_static_str("");
    let mut cfg = incremental_alter_configs_request::AlterableConfig::default();
    cfg.name = StrBytes::from_static_str("replica.alter.log.dirs.io.max.bytes.per.second");
    cfg.value = Some(StrBytes::from_static_str("100000000"));
    res.configs.push(cfg);
    req.resources.push(res);
    let r: IncrementalAlterConfigsResponse = c.call(ApiKey::IncrementalAlterConfigs, 1, &req).await;
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0].error_message);
    let placed = wait_for(&mut c, "moved", |p| {
        p.get(&("moving".to_string(), 0, false)).is_some_and(|(d, _, _)| *d == to)
            && !p.contains_key(&("moving".to_string(), 0, true))
    })
    .await;
    assert!(placed[&("moving".to_string(), 0, false)].1 > 200_000);
    // Every record is there, at continuous offsets, and appends go on.
    produce(&mut c, "moving", 5, 10).await;
    let fetched = fetch_all(&mut c, "moving").await;
    assert_eq!(fetched, (0..225).collect::<Vec<i64>>());
    broker.shutdown().await.expect("shutdown");

    // The metadata remembers the new dir: after a restart it is there, and a partition whose
    // log went missing is created there again.
    let broker = start_in_process(root.path(), &overrides).await;
    let mut c = connect(&broker).await;
    let (_, placed) = describe(&mut c).await;
    assert_eq!(placed[&("moving".to_string(), 0, false)].0, to);
    assert_eq!(fetch_all(&mut c, "moving").await.len(), 225);
    broker.shutdown().await.expect("shutdown");
    std::fs::remove_dir_all(to.join("moving-0")).expect("remove log");
    let broker = start_in_process(root.path(), &overrides).await;
    let mut c = connect(&broker).await;
    produce(&mut c, "moving", 1, 10).await;
    let (_, placed) = describe(&mut c).await;
    assert_eq!(placed[&("moving".to_string(), 0, false)].0, to);
    broker.shutdown().await.expect("shutdown");
}

/// Offsets of every record of partition 0, fetched from the start.
async fn fetch_all(c: &mut AsyncClient, topic: &str) -> Vec<i64> {
    let mut offsets = Vec::new();
    let mut next = 0i64;
    loop {
        let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request(topic, next, 0, 0, 1 << 20, 1 << 20)).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let records = p.records.clone().unwrap_or_default();
        if records.is_empty() {
            return offsets;
        }
        let mut it = sluice_protocol::batch::BatchIter::new(records);
        for b in it.by_ref() {
            let b = b.expect("batch");
            for o in b.base_offset()..=b.last_offset() {
                if o >= next {
                    offsets.push(o);
                }
            }
            next = b.last_offset() + 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_kafkas_and_a_partition_asked_for_early_is_created_there() {
    let root = tempfile::tempdir().expect("tmp");
    let (a, b, both) = two_dirs(root.path());
    let broker = start_in_process(root.path(), &[("log.dirs", both.as_str())]).await;
    let mut c = connect(&broker).await;
    assert_eq!(create_topic(&mut c, "t", 1, &[]).await.topics[0].error_code, 0);
    let got = alter(
        &mut c,
        &[
            ("t", 0, Path::new("/no/such/dir")),
            ("t", 5, &a),
            ("later", 0, &b),
            ("later", 1, &a),
            (&"x".repeat(249), 0, &a),
        ],
    )
    .await;
    assert_eq!(
        got,
        vec![
            ("t".into(), 0, Some(ResponseError::LogDirNotFound)),
            ("t".into(), 5, Some(ResponseError::ReplicaNotAvailable)),
            ("later".into(), 0, Some(ResponseError::ReplicaNotAvailable)),
            ("later".into(), 1, Some(ResponseError::ReplicaNotAvailable)),
            // `<topic>-0.<32 hex>-future` would pass 255 bytes.
            ("x".repeat(249), 0, Some(ResponseError::InvalidTopicException)),
        ]
    );
    // Created later, each partition lands where it was asked for (not spread by load).
    assert_eq!(create_topic(&mut c, "later", 2, &[]).await.topics[0].error_code, 0);
    let (_, placed) = describe(&mut c).await;
    assert_eq!(placed[&("later".to_string(), 0, false)].0, b);
    assert_eq!(placed[&("later".to_string(), 1, false)].0, a);
    broker.shutdown().await.expect("shutdown");
}

/// Refuses ALTER on the cluster, allows everything else.
struct NoClusterAlter;

impl Authorizer for NoClusterAlter {
    fn authorize(&self, action: &Action<'_>) -> bool {
        !(action.operation == AclOperation::Alter && action.resource.resource_type() == ResourceType::Cluster)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_needs_alter_on_the_cluster() {
    let root = tempfile::tempdir().expect("tmp");
    let (a, b, both) = two_dirs(root.path());
    let config = sluice::Config::from_overrides(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("log.dirs", &both),
        ("metrics.listener", "none"),
    ])
    .expect("config");
    let handle = sluice::server::start_with_authorizer(config, Arc::new(NoClusterAlter)).await.expect("start");
    let mut c = connect(&handle).await;
    assert_eq!(create_topic(&mut c, "t", 1, &[]).await.topics[0].error_code, 0);
    let got = alter(&mut c, &[("t", 0, &a), ("t", 0, &b), ("u", 3, &b)]).await;
    assert_eq!(
        got,
        vec![
            ("t".into(), 0, Some(ResponseError::ClusterAuthorizationFailed)),
            ("u".into(), 3, Some(ResponseError::ClusterAuthorizationFailed))
        ]
    );
    assert!(handle.broker().logs.futures().is_empty());
    handle.shutdown().await.expect("shutdown");
}
