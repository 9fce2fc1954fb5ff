//! The broker's side of the coordinators' narrow interfaces: internal-topic logs, the topics
//! view, transaction markers on data partitions, producer ids and the finalized
//! `transaction.version`, each backed by the broker's
//! metadata and partition logs. The coordinators are built inside `Arc::new_cyclic` with the
//! broker, so these hold a `Weak<Broker>`; once the broker is gone every call fails (or reports
//! nothing), which only happens while the process exits.

use std::sync::{Arc, Weak};

use kafka_protocol::ResponseError;
use sluice_protocol::batch::{BatchIter, RecordBatch};
use sluice_storage::UnifiedLog;

use crate::broker::{ApiError, Broker, LEADER_EPOCH};
use crate::group::consumer::TopicsImage;
use crate::group::TopicsView;
use crate::internal_log::{build_batch, InternalLog, KeyValue};
use crate::txn::{MarkerError, ProducerIdSource, TxnMarkerWriter, TxnVersionSource};

fn gone() -> ApiError {
    ApiError::new(ResponseError::CoordinatorNotAvailable, "the broker is shutting down")
}

/// An internal topic (`__consumer_offsets`, `__transaction_state`) in the broker's logs.
pub struct BrokerInternalLog {
    broker: Weak<Broker>,
    topic: &'static str,
}

impl BrokerInternalLog {
    pub fn new(broker: Weak<Broker>, topic: &'static str) -> Self {
        Self { broker, topic }
    }

    fn partition(&self, index: i32) -> Result<Arc<UnifiedLog>, ApiError> {
        let broker = self.broker.upgrade().ok_or_else(gone)?;
        let meta = broker.metadata.topic(self.topic).ok_or_else(|| {
            ApiError::new(ResponseError::CoordinatorNotAvailable, format!("{} is missing", self.topic))
        })?;
        broker.partition(&meta, index)
    }
}

impl InternalLog for BrokerInternalLog {
    fn num_partitions(&self) -> Option<i32> {
        Some(self.broker.upgrade()?.metadata.topic(self.topic)?.partitions)
    }

    fn append(
        &self,
        partition: i32,
        records: Vec<KeyValue>,
        txn: Option<(i64, i16)>,
        timestamp_ms: i64,
    ) -> Result<(), ApiError> {
        append_to(&*self.partition(partition)?, records, txn, timestamp_ms)
    }

    fn scan(&self, partition: i32, apply: &mut dyn FnMut(&RecordBatch, i64)) -> Result<(), ApiError> {
        let log = self.partition(partition)?;
        let log_start = log.offsets().log_start_offset;
        scan_batches(&log, |batch| apply(batch, log_start)).map_err(ApiError::from)
    }
}

/// Appends one batch of records to an internal partition and advances its high watermark,
/// exactly as an acks=all produce would.
fn append_to(
    partition: &UnifiedLog,
    records: Vec<KeyValue>,
    txn: Option<(i64, i16)>,
    timestamp_ms: i64,
) -> Result<(), ApiError> {
    let batch = build_batch(records, txn, timestamp_ms)?;
    let info = partition.append(std::slice::from_ref(&batch), LEADER_EPOCH).map_err(ApiError::from)?;
    partition.advance_high_watermark(info.last_offset + 1);
    Ok(())
}

/// Calls `apply` with every batch of an internal partition below its high watermark, in order.
fn scan_batches(
    partition: &UnifiedLog,
    mut apply: impl FnMut(&RecordBatch),
) -> Result<(), sluice_storage::StorageError> {
    let offsets = partition.offsets();
    let mut next = offsets.log_start_offset;
    while next < offsets.high_watermark {
        let read = partition.read(next, 4 << 20, offsets.high_watermark, true)?;
        if read.records.is_empty() {
            break;
        }
        for batch in BatchIter::new(read.records) {
            let Ok(batch) = batch else { break };
            next = batch.next_offset();
            apply(&batch);
        }
    }
    Ok(())
}

/// The broker's topics, as the coordinators ask about them.
pub struct BrokerTopics(pub Weak<Broker>);

impl TopicsView for BrokerTopics {
    fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.0
            .upgrade()
            .and_then(|b| b.metadata.topic(topic))
            .is_some_and(|t| partition >= 0 && partition < t.partitions)
    }

    fn image(&self) -> TopicsImage {
        let Some(broker) = self.0.upgrade() else { return TopicsImage::default() };
        TopicsImage {
            by_name: broker
                .metadata
                .topics()
                .into_iter()
                .filter(|t| !t.internal && t.name != crate::group::records::OFFSETS_TOPIC)
                .map(|t| (t.name.clone(), (t.id, t.partitions)))
                .collect(),
        }
    }
}

/// Writes COMMIT/ABORT markers into the broker's partition logs.
pub struct BrokerMarkerWriter(pub Weak<Broker>);

impl TxnMarkerWriter for BrokerMarkerWriter {
    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
    ) -> Result<(), MarkerError> {
        let broker = self.0.upgrade().ok_or_else(|| MarkerError::Failed(gone().message))?;
        let Some(meta) = broker.metadata.topic(topic) else { return Err(MarkerError::PartitionGone) };
        let log = match broker.partition(&meta, partition) {
            Ok(l) => l,
            Err(e) if e.code == ResponseError::UnknownTopicOrPartition => return Err(MarkerError::PartitionGone),
            Err(e) => return Err(MarkerError::Failed(e.message)),
        };
        match log.append_marker(producer_id, producer_epoch, coordinator_epoch, commit, LEADER_EPOCH) {
            Ok(_) => Ok(()),
            Err(sluice_storage::StorageError::Deleted(_)) => Err(MarkerError::PartitionGone),
            Err(e) => Err(MarkerError::Failed(e.to_string())),
        }
    }
}

/// The finalized `transaction.version` from the broker's metadata.
pub struct BrokerTxnVersion(pub Weak<Broker>);

impl TxnVersionSource for BrokerTxnVersion {
    fn transaction_version(&self) -> i16 {
        self.0.upgrade().map_or(0, |b| b.metadata.feature_level(crate::features::TRANSACTION_VERSION))
    }
}

impl ProducerIdSource for crate::producer_id::ProducerIdManager {
    fn generate(&self) -> std::io::Result<i64> {
        crate::producer_id::ProducerIdManager::generate(self)
    }
}

/// Builds both coordinators over the broker being constructed (`weak`), the group coordinator
/// listening for the transaction coordinator's completed transactions.
pub fn coordinators(
    weak: &Weak<Broker>,
    config: &crate::config::Config,
    shutdown: &tokio::sync::watch::Receiver<bool>,
    metrics: &crate::metrics::Metrics,
    producer_ids: &Arc<crate::producer_id::ProducerIdManager>,
) -> (Arc<crate::group::GroupCoordinator>, Arc<crate::txn::TxnCoordinator>) {
    let clock: Arc<dyn crate::clock::Clock> = Arc::new(crate::clock::SystemClock);
    let shutdown = crate::shutdown::Shutdown::new(shutdown.clone());
    let topics: Arc<dyn TopicsView> = Arc::new(BrokerTopics(weak.clone()));
    let groups = Arc::new(crate::group::GroupCoordinator::new(
        crate::group::GroupConfig::from_broker(config),
        Arc::new(BrokerInternalLog::new(weak.clone(), crate::group::records::OFFSETS_TOPIC)),
        clock.clone(),
        shutdown.clone(),
        topics.clone(),
    ));
    let txns = Arc::new(crate::txn::TxnCoordinator::new(
        crate::txn::TxnConfig::from_broker(config),
        crate::txn::TxnCoordinatorDeps {
            log: Arc::new(BrokerInternalLog::new(weak.clone(), crate::txn::records::TXN_TOPIC)),
            clock,
            shutdown,
            topics,
            producer_ids: producer_ids.clone(),
            markers: Arc::new(BrokerMarkerWriter(weak.clone())),
            offsets: groups.clone(),
            metrics: crate::metrics::transactions::TransactionMetrics {
                completed: metrics.transactions.completed.clone(),
                timed_out: metrics.transactions.timed_out.clone(),
            },
            versions: Arc::new(BrokerTxnVersion(weak.clone())),
        },
    ));
    (groups, txns)
}
