//! The transaction coordinator on its own: an in-memory `__transaction_state`, a manual clock,
//! and recording fakes for markers, producer ids and the group coordinator's listener.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use kafka_protocol::ResponseError;

use super::{
    MarkerError, ProducerIdSource, TxnCompletionListener, TxnConfig, TxnCoordinator, TxnCoordinatorDeps,
    TxnMarkerWriter, TxnState,
};
use crate::clock::ManualClock;
use crate::group::consumer::TopicsImage;
use crate::group::TopicsView;
use crate::internal_log::MemoryLog;
use crate::metrics::transactions::TransactionMetrics;
use crate::shutdown::Shutdown;

struct OneTopic;

impl TopicsView for OneTopic {
    fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        topic == "t" && partition == 0
    }

    fn image(&self) -> TopicsImage {
        TopicsImage::default()
    }
}

struct Counter(AtomicI64);

impl ProducerIdSource for Counter {
    fn generate(&self) -> std::io::Result<i64> {
        Ok(self.0.fetch_add(1, Ordering::SeqCst))
    }
}

/// (topic, partition, producer id, epoch, commit) of one marker.
type Marker = (String, i32, i64, i16, bool);

/// Every marker written.
#[derive(Default)]
struct Markers(Mutex<Vec<Marker>>);

impl TxnMarkerWriter for Markers {
    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        _coordinator_epoch: i32,
        commit: bool,
    ) -> Result<(), MarkerError> {
        self.0.lock().expect("lock").push((topic.to_string(), partition, producer_id, producer_epoch, commit));
        Ok(())
    }
}

#[derive(Default)]
struct Completed(Mutex<Vec<(i64, i32, bool)>>);

impl TxnCompletionListener for Completed {
    fn on_txn_completed(&self, producer_id: i64, offsets_partition: i32, commit: bool) {
        self.0.lock().expect("lock").push((producer_id, offsets_partition, commit));
    }
}

struct Fixture {
    coordinator: TxnCoordinator,
    clock: Arc<ManualClock>,
    log: Arc<MemoryLog>,
    markers: Arc<Markers>,
}

fn fixture_on(log: Arc<MemoryLog>, clock: Arc<ManualClock>) -> Fixture {
    let markers = Arc::new(Markers::default());
    let config = TxnConfig {
        max_timeout_ms: 900_000,
        num_partitions: 50,
        id_expiration_ms: 604_800_000,
        abort_interval_ms: 10_000,
    };
    let coordinator = TxnCoordinator::new(
        config,
        TxnCoordinatorDeps {
            log: log.clone(),
            clock: clock.clone(),
            shutdown: Shutdown::never(),
            topics: Arc::new(OneTopic),
            producer_ids: Arc::new(Counter(AtomicI64::new(1000))),
            markers: markers.clone(),
            offsets: Arc::new(Completed::default()),
            metrics: TransactionMetrics::new(&prometheus::Registry::new()),
        },
    );
    Fixture { coordinator, clock, log, markers }
}

#[tokio::test]
async fn an_ongoing_transaction_is_aborted_with_a_bumped_epoch_after_its_timeout() {
    let f = fixture_on(Arc::new(MemoryLog::new(50)), Arc::new(ManualClock::default()));
    let c = &f.coordinator;
    let (pid, epoch) = c.init_producer_id("tx", 1_000, None, 4).await.expect("init");
    assert_eq!((pid, epoch), (1000, 0));
    let added = c.add_partitions("tx", pid, epoch, &[("t".into(), 0)], ResponseError::ProducerFenced).await;
    assert_eq!(added, Ok(vec![None]));

    f.clock.advance_ms(1_000);
    c.tick();
    assert_eq!(c.describe("tx").await.expect("txn").state, TxnState::Ongoing, "the timeout has not passed");
    assert!(f.markers.0.lock().expect("lock").is_empty());

    f.clock.advance_ms(1);
    c.tick();
    let m = c.describe("tx").await.expect("txn");
    assert_eq!(m.state, TxnState::CompleteAbort);
    assert_eq!((m.producer_id, m.producer_epoch), (pid, epoch + 1), "the epoch is bumped to fence the producer");
    assert!(m.partitions.is_empty());
    assert_eq!(*f.markers.0.lock().expect("lock"), vec![("t".to_string(), 0, pid, epoch + 1, false)]);
    assert_eq!(f.coordinator.metrics.timed_out.get(), 1);

    // The producer that ran it is fenced.
    let end = c.end_txn("tx", pid, epoch, true, ResponseError::ProducerFenced).await;
    assert_eq!(end, Err(ResponseError::ProducerFenced));

    // The abort is durable: a coordinator replaying the log sees it.
    let replayed = fixture_on(f.log.clone(), f.clock.clone());
    assert_eq!(replayed.coordinator.load(), 1);
    let m = replayed.coordinator.describe("tx").await.expect("txn");
    assert_eq!((m.state, m.producer_epoch), (TxnState::CompleteAbort, epoch + 1));
}

#[tokio::test]
async fn a_partition_loads_and_unloads_on_its_own() {
    let f = fixture_on(Arc::new(MemoryLog::new(50)), Arc::new(ManualClock::default()));
    let (pid, _) = f.coordinator.init_producer_id("tx", 1_000, None, 4).await.expect("init");
    let p = f.coordinator.partition_for("tx");

    let replayed = fixture_on(f.log.clone(), f.clock.clone());
    let c = &replayed.coordinator;
    assert_eq!(c.load_partition((p + 1) % 50), 0);
    assert!(c.describe("tx").await.is_none());
    assert_eq!(c.load_partition(p), 1);
    assert_eq!(c.transactional_id_of(pid).as_deref(), Some("tx"));
    c.unload_partition(p);
    assert!(c.describe("tx").await.is_none());
    assert_eq!(c.transactional_id_of(pid), None);
}
