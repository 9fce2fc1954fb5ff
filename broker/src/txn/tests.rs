//! The transaction coordinator on its own: an in-memory `__transaction_state`, a manual clock,
//! and recording fakes for markers, producer ids and the group coordinator's listener.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use kafka_protocol::ResponseError;

use super::{
    FixedTxnVersion, MarkerError, ProducerIdSource, TxnCompletionListener, TxnConfig, TxnCoordinator,
    TxnCoordinatorDeps, TxnMarkerWriter, TxnState,
};
use crate::clock::ManualClock;
use crate::group::consumer::TopicsImage;
use crate::group::TopicsView;
use crate::internal_log::InternalLog;
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
            versions: Arc::new(FixedTxnVersion(2)),
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
    let added = c.add_partitions("tx", pid, epoch, &[("t".into(), 0)], ResponseError::ProducerFenced, 0).await;
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

/// Transactions v2: the leader adds the partition itself, every EndTxn v5 bumps the epoch and
/// writes the markers at the bumped epoch, a retry gets the same answer, and the producer of
/// the previous epoch is fenced everywhere.
#[tokio::test]
async fn transactions_v2_bump_the_epoch_at_every_end() {
    let f = fixture_on(Arc::new(MemoryLog::new(50)), Arc::new(ManualClock::default()));
    let c = &f.coordinator;
    let (pid, epoch) = c.init_producer_id("tx", 60_000, None, 5).await.expect("init");
    let guard = c.add_write(Some("tx"), pid, epoch, "t", 0).await.expect("implicit add");
    assert_eq!(guard.state, TxnState::Ongoing);
    assert!(guard.partitions.contains(&("t".to_string(), 0)));
    assert_eq!(guard.client_transaction_version, 2);
    drop(guard);
    // Adding again is a no-op; by producer id without the transactional id works too.
    drop(c.add_write(None, pid, epoch, "t", 0).await.expect("again"));

    let (pid1, epoch1) = c.end_txn_v2("tx", pid, epoch, true).await.expect("commit");
    assert_eq!((pid1, epoch1), (pid, epoch + 1));
    assert_eq!(*f.markers.0.lock().expect("lock"), vec![("t".to_string(), 0, pid, epoch + 1, true)]);
    let m = c.describe("tx").await.expect("txn");
    assert_eq!((m.state, m.producer_epoch, m.last_producer_epoch), (TxnState::CompleteCommit, epoch + 1, epoch));
    // A retry of the commit (the old epoch) gets the same answer; an abort at the old epoch is
    // INVALID_TXN_STATE; the old epoch can no longer write.
    assert_eq!(c.end_txn_v2("tx", pid, epoch, true).await, Ok((pid, epoch + 1)));
    assert_eq!(c.end_txn_v2("tx", pid, epoch, false).await, Err(ResponseError::InvalidTxnState));
    assert_eq!(c.add_write(Some("tx"), pid, epoch, "t", 0).await.err(), Some(ResponseError::ProducerFenced));
    assert_eq!(c.end_txn_v2("tx", pid, epoch - 1, true).await, Err(ResponseError::ProducerFenced));
    assert_eq!(c.end_txn_v2("tx", pid + 1, epoch1, true).await, Err(ResponseError::InvalidProducerIdMapping));
    // A commit with nothing in the transaction is INVALID_TXN_STATE; an abort bumps anyway.
    assert_eq!(c.end_txn_v2("tx", pid, epoch1, true).await, Err(ResponseError::InvalidTxnState));
    assert_eq!(c.end_txn_v2("tx", pid, epoch1, false).await, Ok((pid, epoch1 + 1)));
    assert_eq!(f.markers.0.lock().expect("lock").len(), 1, "an empty abort writes no marker");
    // An abort of a transaction with data.
    let epoch2 = epoch1 + 1;
    drop(c.add_write(Some("tx"), pid, epoch2, "t", 0).await.expect("add"));
    assert_eq!(c.end_txn_v2("tx", pid, epoch2, false).await, Ok((pid, epoch2 + 1)));
    assert_eq!(f.markers.0.lock().expect("lock").last().cloned(), Some(("t".to_string(), 0, pid, epoch2 + 1, false)));

    // Everything replays: the flexible records carry the client's transaction.version.
    let replayed = fixture_on(f.log.clone(), f.clock.clone());
    assert_eq!(replayed.coordinator.load(), 1);
    let m = replayed.coordinator.describe("tx").await.expect("txn");
    assert_eq!((m.state, m.producer_epoch, m.client_transaction_version), (TxnState::CompleteAbort, epoch2 + 1, 2));
}

/// Writes `m` straight into the coordinator's log, as a crash or an old run left it.
fn seed(f: &Fixture, m: &super::TxnMetadata) {
    let p = f.coordinator.partition_for(&m.transactional_id);
    let value = super::records::value(m, 1);
    f.log.append(p, vec![(super::records::key(&m.transactional_id), Some(value))], None, 0).expect("seed");
}

fn at_epoch(id: &str, pid: i64, epoch: i16, state: TxnState) -> super::TxnMetadata {
    super::TxnMetadata {
        transactional_id: id.into(),
        producer_id: pid,
        producer_epoch: epoch,
        last_producer_id: pid,
        last_producer_epoch: -1,
        next_producer_id: -1,
        client_transaction_version: 2,
        timeout_ms: 60_000,
        state,
        partitions: if state == TxnState::Empty { Default::default() } else { [("t".to_string(), 0)].into() },
        start_ms: 0,
        last_update_ms: 0,
    }
}

/// At the last epoch a v2 commit moves the producer to a new id at epoch 0: the markers carry the
/// old id at the bumped (last) epoch, the answer the new id, and a retry with the old id gets it
/// too (Kafka's overflow retry).
#[tokio::test]
async fn transactions_v2_move_to_a_new_producer_id_when_the_epoch_is_exhausted() {
    let f = fixture_on(Arc::new(MemoryLog::new(50)), Arc::new(ManualClock::default()));
    seed(&f, &at_epoch("tx", 7, i16::MAX - 1, TxnState::Ongoing));
    assert_eq!(f.coordinator.load(), 1);
    let c = &f.coordinator;
    let (pid, epoch) = c.end_txn_v2("tx", 7, i16::MAX - 1, true).await.expect("commit");
    assert_eq!((pid, epoch), (1000, 0), "a fresh producer id");
    assert_eq!(*f.markers.0.lock().expect("lock"), vec![("t".to_string(), 0, 7, i16::MAX, true)]);
    assert_eq!(c.transactional_id_of(1000).as_deref(), Some("tx"));
    assert_eq!(c.transactional_id_of(7), None);
    assert_eq!(c.end_txn_v2("tx", 7, i16::MAX - 1, true).await, Ok((1000, 0)), "the retry");
    drop(c.add_write(Some("tx"), 1000, 0, "t", 0).await.expect("the new id writes"));
    assert_eq!(c.add_write(Some("tx"), 7, i16::MAX, "t", 0).await.err(), Some(ResponseError::InvalidProducerIdMapping));
}

/// A crash after a v2 decision at the last epoch (PrepareCommit with its next producer id durable)
/// completes, after restart, to the next producer id.
#[tokio::test]
async fn a_pending_v2_decision_completes_to_its_next_producer_id_after_a_restart() {
    let f = fixture_on(Arc::new(MemoryLog::new(50)), Arc::new(ManualClock::default()));
    let mut m = at_epoch("tx", 7, i16::MAX, TxnState::PrepareCommit);
    m.last_producer_epoch = i16::MAX - 1;
    m.next_producer_id = 55;
    seed(&f, &m);
    assert_eq!(f.coordinator.load(), 1);
    f.coordinator.tick();
    let m = f.coordinator.describe("tx").await.expect("txn");
    assert_eq!((m.state, m.producer_id, m.producer_epoch), (TxnState::CompleteCommit, 55, 0));
    assert_eq!(*f.markers.0.lock().expect("lock"), vec![("t".to_string(), 0, 7, i16::MAX, true)]);
}
