//! The transaction coordinator (Kafka's `TransactionCoordinator`, `TransactionStateManager` and
//! marker channel, for one node): transactional ids, their producer id and epoch, and the
//! state machine `Empty → Ongoing → PrepareCommit/PrepareAbort → CompleteCommit/CompleteAbort`.
//!
//! - Every state change is written to `__transaction_state` (see [`records`], Kafka's
//!   `TransactionLog`) before it is acknowledged; startup replays it.
//! - EndTxn persists the decision (`Prepare*`), writes a COMMIT/ABORT marker to every partition
//!   of the transaction (on `__consumer_offsets` this also applies or drops the transaction's
//!   offset commits), then persists `Complete*`. If a marker cannot be written, the decision
//!   stays `Prepare*` and the periodic task retries; a restart completes it too.
//! - Fencing: InitProducerId with a transactional id bumps the epoch; an open transaction of the
//!   old epoch is aborted first with the bumped epoch, so every partition fences the old
//!   producer. An expired transaction (`transaction.timeout.ms`) is aborted the same way.
//! - Produce of a transactional batch and TxnOffsetCommit are checked here (KIP-890 part 1
//!   verification): the partition must be in the producer's ongoing transaction. They hold the
//!   transaction's lock until their append is done, so no write of a transaction can land after
//!   its marker.
//!
//! - State is kept per `__transaction_state` partition ([`TxnPartition`]), so a partition can be
//!   loaded or dropped on its own when its leadership moves; on one node all are loaded at start.
//! - The coordinator sees the broker only through narrow handles ([`TxnCoordinatorDeps`]): its
//!   internal log, a clock, the topics view, producer ids, a marker writer for data partitions,
//!   and the group coordinator's [`TxnCompletionListener`].
//!
//! Thread-safety: one `tokio::sync::Mutex` per transactional id, held across the appends of one
//! operation (appends are synchronous page-cache writes); the id map's `std::sync::Mutex` is held
//! only for lookups. Locks are always taken in the order transaction, then partition.

pub mod records;

/// The record formats under the name they had before.
pub use self::records as store;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use kafka_protocol::ResponseError;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::clock::Clock;
use crate::group::records::OFFSETS_TOPIC;
use crate::group::TopicsView;
use crate::internal_log::InternalLog;
use crate::metrics::transactions::TransactionMetrics;
use crate::shutdown::Shutdown;

/// One node is always the coordinator, in its first (and only) epoch.
pub const COORDINATOR_EPOCH: i32 = 0;

/// Kafka's `TransactionState`, with its wire ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty = 0,
    Ongoing = 1,
    PrepareCommit = 2,
    PrepareAbort = 3,
    CompleteCommit = 4,
    CompleteAbort = 5,
    Dead = 6,
    PrepareEpochFence = 7,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn from_i8(v: i8) -> Option<Self> {
        Self::ALL.get(usize::try_from(v).ok()?).copied()
    }

    /// The name Kafka's admin APIs use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.name() == s)
    }

    fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence)
    }
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The id and epoch before the last bump (a client retrying a bump whose answer it lost).
    pub last_producer_id: i64,
    pub last_producer_epoch: i16,
    /// Transactions v2: the producer id a decided commit or abort moves to when the epoch is
    /// exhausted (Kafka's `nextProducerId`), -1 otherwise.
    pub next_producer_id: i64,
    /// The `transaction.version` the client runs the transaction with (0 or 2; Kafka's
    /// `clientTransactionVersion`).
    pub client_transaction_version: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    /// When the current transaction began (its first AddPartitionsToTxn), -1 when none.
    pub start_ms: i64,
    pub last_update_ms: i64,
}

/// Kafka's `TransactionMetadata.isEpochExhausted`: the last epoch a producer may use, so the
/// coordinator can always fence it with one more.
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

impl TxnMetadata {
    /// Fences the producer (Kafka's `prepareFenceProducerEpoch`): one epoch up, up to the last.
    fn fence(&mut self) {
        self.last_producer_id = self.producer_id;
        self.last_producer_epoch = self.producer_epoch;
        self.producer_epoch = self.producer_epoch.saturating_add(1);
    }

    /// Bumps the epoch (KIP-360); at the last epoch, with `allow_new_id`, a new producer id.
    fn bump(&mut self, new_id: Option<i64>) {
        self.last_producer_id = self.producer_id;
        self.last_producer_epoch = self.producer_epoch;
        if epoch_exhausted(self.producer_epoch) {
            if let Some(id) = new_id {
                self.producer_id = id;
                self.producer_epoch = 0;
            }
        } else {
            self.producer_epoch += 1;
        }
    }
}

/// Settings (Kafka's `transaction.*` broker configs).
#[derive(Debug, Clone)]
pub struct TxnConfig {
    pub max_timeout_ms: i64,
    pub num_partitions: i32,
    pub id_expiration_ms: i64,
    pub abort_interval_ms: i64,
}

impl TxnConfig {
    pub fn from_broker(c: &crate::config::Config) -> Self {
        let t = &c.transactions;
        Self {
            max_timeout_ms: t.max_timeout_ms.into(),
            num_partitions: t.state_log_num_partitions,
            id_expiration_ms: t.id_expiration_ms.into(),
            abort_interval_ms: t.abort_timed_out_transaction_cleanup_interval_ms.into(),
        }
    }
}

/// Fresh producer ids (InitProducerId), never reused. Blocking: called on a blocking thread.
pub trait ProducerIdSource: Send + Sync {
    fn generate(&self) -> std::io::Result<i64>;
}

/// Why a transaction marker was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerError {
    /// The topic or partition was deleted meanwhile: nothing to mark.
    PartitionGone,
    /// A write failed; the decision stays `Prepare*` and is retried.
    Failed(String),
}

/// Writes COMMIT/ABORT control batches to the partitions of a transaction.
pub trait TxnMarkerWriter: Send + Sync {
    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
    ) -> Result<(), MarkerError>;
}

/// The finalized `transaction.version` (see [`crate::features`]): which `__transaction_state`
/// value format is written, and how aborts the coordinator decides itself bump the epoch.
pub trait TxnVersionSource: Send + Sync {
    fn transaction_version(&self) -> i16;
}

/// A fixed `transaction.version`, for tests.
pub struct FixedTxnVersion(pub i16);

impl TxnVersionSource for FixedTxnVersion {
    fn transaction_version(&self) -> i16 {
        self.0
    }
}

/// Told when a marker lands on a `__consumer_offsets` partition, so the group coordinator
/// applies (commit) or drops (abort) the offsets the transaction committed there.
pub trait TxnCompletionListener: Send + Sync {
    fn on_txn_completed(&self, producer_id: i64, offsets_partition: i32, commit: bool);
}

/// What the transaction coordinator is built from besides its config.
pub struct TxnCoordinatorDeps {
    /// `__transaction_state`.
    pub log: Arc<dyn InternalLog>,
    pub clock: Arc<dyn Clock>,
    pub shutdown: Shutdown,
    pub topics: Arc<dyn TopicsView>,
    pub producer_ids: Arc<dyn ProducerIdSource>,
    pub markers: Arc<dyn TxnMarkerWriter>,
    pub offsets: Arc<dyn TxnCompletionListener>,
    pub metrics: TransactionMetrics,
    pub versions: Arc<dyn TxnVersionSource>,
}

type TxnRef = Arc<AsyncMutex<TxnMetadata>>;

/// The transactional ids whose state lives in one `__transaction_state` partition.
#[derive(Default)]
pub struct TxnPartition {
    txns: HashMap<String, TxnRef>,
}

/// A verified transactional write: holds the transaction's lock until the append is done.
pub type TxnGuard = OwnedMutexGuard<TxnMetadata>;

/// See the module docs.
pub struct TxnCoordinator {
    config: TxnConfig,
    log: Arc<dyn InternalLog>,
    clock: Arc<dyn Clock>,
    shutdown: Shutdown,
    topics: Arc<dyn TopicsView>,
    producer_ids: Arc<dyn ProducerIdSource>,
    markers: Arc<dyn TxnMarkerWriter>,
    offsets: Arc<dyn TxnCompletionListener>,
    metrics: TransactionMetrics,
    versions: Arc<dyn TxnVersionSource>,
    /// `__transaction_state` partition index → its transactional ids.
    partitions: StdMutex<BTreeMap<i32, TxnPartition>>,
    /// Producer id → transactional id, over every loaded partition.
    by_producer: StdMutex<HashMap<i64, String>>,
}

/// PRODUCER_FENCED where the API version knows it (KIP-588), INVALID_PRODUCER_EPOCH before.
pub fn fenced_code(version: i16, since: i16) -> ResponseError {
    if version >= since {
        ResponseError::ProducerFenced
    } else {
        ResponseError::InvalidProducerEpoch
    }
}

fn check_producer(
    m: &TxnMetadata,
    producer_id: i64,
    epoch: i16,
    fenced_code: ResponseError,
) -> Result<(), ResponseError> {
    if m.producer_id != producer_id {
        return Err(ResponseError::InvalidProducerIdMapping);
    }
    if m.producer_epoch != epoch {
        return Err(fenced_code);
    }
    Ok(())
}

impl TxnCoordinator {
    pub fn new(config: TxnConfig, deps: TxnCoordinatorDeps) -> Self {
        Self {
            config,
            log: deps.log,
            clock: deps.clock,
            shutdown: deps.shutdown,
            topics: deps.topics,
            producer_ids: deps.producer_ids,
            markers: deps.markers,
            offsets: deps.offsets,
            metrics: deps.metrics,
            versions: deps.versions,
            partitions: StdMutex::new(BTreeMap::new()),
            by_producer: StdMutex::new(HashMap::new()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, TxnPartition>> {
        self.partitions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `__transaction_state` partition `transactional_id` lives in.
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        self.log.partition_for(transactional_id)
    }

    /// Every transaction, of every partition.
    fn all_refs(&self) -> Vec<(String, TxnRef)> {
        self.state().values().flat_map(|s| s.txns.iter().map(|(k, v)| (k.clone(), v.clone()))).collect()
    }

    fn producers(&self) -> std::sync::MutexGuard<'_, HashMap<i64, String>> {
        self.by_producer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, id: &str) -> Option<TxnRef> {
        let p = self.partition_for(id);
        self.state().get(&p)?.txns.get(id).cloned()
    }

    /// Writes `m` to `__transaction_state`.
    fn persist(&self, m: &TxnMetadata) -> Result<(), ResponseError> {
        self.write(&m.transactional_id, Some(records::value(m, self.versions.transaction_version())))
    }

    fn write(&self, id: &str, value: Option<bytes::Bytes>) -> Result<(), ResponseError> {
        if self.log.num_partitions().is_none() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let p = self.partition_for(id);
        self.log.append(p, vec![(records::key(id), value)], None, self.clock.now_ms()).map_err(|e| {
            tracing::warn!(transactional_id = id, error = %e.message, "persisting transaction state failed");
            ResponseError::CoordinatorNotAvailable
        })
    }

    /// Moves `m` to `next` once `next` is durable.
    fn transition(&self, m: &mut TxnMetadata, next: TxnMetadata) -> Result<(), ResponseError> {
        self.persist(&next)?;
        let mut p = self.producers();
        if next.producer_id != m.producer_id {
            p.remove(&m.producer_id);
        }
        p.insert(next.producer_id, next.transactional_id.clone());
        drop(p);
        *m = next;
        Ok(())
    }

    /// Writes the markers of a decided transaction and completes it. Returns false (state left
    /// `Prepare*`, to be retried) when a marker could not be written.
    fn complete(&self, m: &mut TxnMetadata) -> bool {
        let commit = m.state == TxnState::PrepareCommit;
        for (topic, index) in &m.partitions {
            match self.markers.write_marker(topic, *index, m.producer_id, m.producer_epoch, COORDINATOR_EPOCH, commit) {
                Ok(()) => {
                    if topic == OFFSETS_TOPIC {
                        self.offsets.on_txn_completed(m.producer_id, *index, commit);
                    }
                }
                Err(MarkerError::PartitionGone) => {} // deleted meanwhile
                Err(MarkerError::Failed(error)) => {
                    tracing::warn!(transactional_id = %m.transactional_id, topic, partition = index, %error, "writing transaction marker failed");
                    return false;
                }
            }
        }
        let mut next = m.clone();
        next.state = if commit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        next.partitions.clear();
        next.start_ms = -1;
        next.last_update_ms = self.clock.now_ms();
        if next.next_producer_id >= 0 {
            // Transactions v2 past the last epoch: the next transaction runs under a new id
            // (Kafka's `prepareComplete`); the markers above carried the old one.
            next.last_producer_id = m.producer_id;
            next.producer_id = next.next_producer_id;
            next.producer_epoch = 0;
            next.next_producer_id = -1;
        }
        if self.transition(m, next).is_err() {
            return false;
        }
        self.metrics.completed(commit);
        true
    }

    /// Aborts the ongoing transaction with a bumped epoch, fencing the producer that ran it. The
    /// markers carry the bumped epoch whatever the `transaction.version` (with 2, Kafka bumps in
    /// the abort itself rather than in a fencing step, to the same epoch).
    fn fence_and_abort(&self, m: &mut TxnMetadata) -> Result<(), ResponseError> {
        let mut next = m.clone();
        next.fence();
        next.client_transaction_version = self.versions.transaction_version().min(2);
        next.state = TxnState::PrepareAbort;
        next.last_update_ms = self.clock.now_ms();
        self.transition(m, next)?;
        if self.complete(m) {
            Ok(())
        } else {
            Err(ResponseError::ConcurrentTransactions)
        }
    }

    /// Completes a decision left pending; `Err(CONCURRENT_TRANSACTIONS)` while it stays pending.
    fn settle(&self, m: &mut TxnMetadata) -> Result<(), ResponseError> {
        if m.state == TxnState::PrepareEpochFence {
            m.state = TxnState::PrepareAbort;
        }
        if m.state.is_prepare() && !self.complete(m) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(())
    }

    /// InitProducerId with a transactional id: a new producer id for a new id, otherwise the
    /// epoch bumped (an open transaction is aborted first). `expected` is the id and epoch a
    /// v3+ client sends to recover (KIP-360).
    pub async fn init_producer_id(
        &self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        version: i16,
    ) -> Result<(i64, i16), ResponseError> {
        if timeout_ms <= 0 || i64::from(timeout_ms) > self.config.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        let txn = match self.get(id) {
            Some(t) => t,
            None => {
                let pid = self.allocate_producer_id().await?;
                let m = TxnMetadata {
                    transactional_id: id.to_string(),
                    producer_id: pid,
                    producer_epoch: -1,
                    last_producer_id: -1,
                    last_producer_epoch: -1,
                    next_producer_id: -1,
                    client_transaction_version: 0,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    start_ms: -1,
                    last_update_ms: self.clock.now_ms(),
                };
                let p = self.partition_for(id);
                self.state()
                    .entry(p)
                    .or_default()
                    .txns
                    .entry(id.to_string())
                    .or_insert_with(|| Arc::new(AsyncMutex::new(m)))
                    .clone()
            }
        };
        let mut m = txn.lock().await;
        self.settle(&mut m)?;
        if let Some((pid, epoch)) = expected {
            if (pid, epoch) == (m.last_producer_id, m.last_producer_epoch) && m.state == TxnState::Empty {
                // A retry of the bump we already did.
                return Ok((m.producer_id, m.producer_epoch));
            }
            if (pid, epoch) != (m.producer_id, m.producer_epoch) {
                return Err(fenced_code(version, 4));
            }
        }
        if m.state == TxnState::Ongoing {
            self.fence_and_abort(&mut m)?;
        }
        let new_id = if epoch_exhausted(m.producer_epoch) { Some(self.allocate_producer_id().await?) } else { None };
        let mut next = m.clone();
        next.bump(new_id);
        next.timeout_ms = timeout_ms;
        next.state = TxnState::Empty;
        next.partitions.clear();
        next.start_ms = -1;
        next.last_update_ms = self.clock.now_ms();
        self.transition(&mut m, next)?;
        Ok((m.producer_id, m.producer_epoch))
    }

    /// Locks the transaction and checks the producer, for the AddPartitions/AddOffsets/EndTxn family.
    async fn lock_checked(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        fenced_code: ResponseError,
    ) -> Result<TxnGuard, ResponseError> {
        let txn = self.get(id).ok_or(ResponseError::InvalidProducerIdMapping)?;
        let mut m = txn.lock_owned().await;
        check_producer(&m, producer_id, epoch, fenced_code)?;
        if m.state.is_prepare() {
            self.settle(&mut m)?;
        }
        Ok(m)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn's offsets partition). Partitions must exist; if
    /// one does not, it is UNKNOWN_TOPIC_OR_PARTITION and the rest OPERATION_NOT_ATTEMPTED.
    /// `client_tv` is the `transaction.version` the request implies: 0 from clients (v0–v3) and
    /// AddOffsetsToTxn, 2 from brokers (v4+), as Kafka records it.
    pub async fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        fenced_code: ResponseError,
        client_tv: i16,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        let unknown: Vec<bool> = partitions.iter().map(|(t, p)| !self.topics.partition_exists(t, *p)).collect();
        let mut m = self.lock_checked(id, producer_id, epoch, fenced_code).await?;
        if unknown.iter().any(|u| *u) {
            return Ok(unknown
                .iter()
                .map(|u| {
                    Some(if *u { ResponseError::UnknownTopicOrPartition } else { ResponseError::OperationNotAttempted })
                })
                .collect());
        }
        if m.state == TxnState::Ongoing && partitions.iter().all(|tp| m.partitions.contains(tp)) {
            return Ok(vec![None; partitions.len()]);
        }
        let now = self.clock.now_ms();
        let mut next = m.clone();
        if next.state != TxnState::Ongoing {
            next.start_ms = now;
            next.state = TxnState::Ongoing;
        }
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now;
        next.client_transaction_version = client_tv;
        self.transition(&mut m, next)?;
        Ok(vec![None; partitions.len()])
    }

    /// AddPartitionsToTxn v4+ with `verify_only`: which partitions are in the ongoing transaction.
    pub async fn verify_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        let txn = self.get(id).ok_or(ResponseError::InvalidProducerIdMapping)?;
        let m = txn.lock().await;
        check_producer(&m, producer_id, epoch, ResponseError::ProducerFenced)?;
        Ok(partitions
            .iter()
            .map(|tp| {
                (m.state != TxnState::Ongoing || !m.partitions.contains(tp)).then_some(ResponseError::InvalidTxnState)
            })
            .collect())
    }

    /// EndTxn v0–v4 (transactions v1): commit or abort the ongoing transaction. A retry of a
    /// completed EndTxn succeeds.
    pub async fn end_txn(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        fenced_code: ResponseError,
    ) -> Result<(), ResponseError> {
        let mut m = self.lock_checked(id, producer_id, epoch, fenced_code).await?;
        match m.state {
            TxnState::Ongoing => {}
            TxnState::CompleteCommit if commit => return Ok(()),
            TxnState::CompleteAbort if !commit => return Ok(()),
            _ => return Err(ResponseError::InvalidTxnState),
        }
        let mut next = m.clone();
        next.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
        next.last_update_ms = self.clock.now_ms();
        next.client_transaction_version = 0;
        self.transition(&mut m, next)?;
        // The decision is durable: it stands even if a marker must wait for the retry task.
        self.complete(&mut m);
        Ok(())
    }

    /// EndTxn v5 (transactions v2, KIP-890 part 2; Kafka's `endTransaction` for TV2): every
    /// commit or abort bumps the epoch, the markers carry the bumped epoch, and the answer is the
    /// producer id and epoch the next transaction uses — a new producer id when the epoch is
    /// exhausted. An abort with nothing in the transaction still bumps (the client's way out of an
    /// error before its first write). A retry is recognised by its epoch being one below the
    /// current one (or the last epoch of the previous producer id) and answered with the current
    /// id and epoch.
    pub async fn end_txn_v2(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(i64, i16), ResponseError> {
        let txn = self.get(id).ok_or(ResponseError::InvalidProducerIdMapping)?;
        let mut m = txn.lock().await;
        // A decision whose markers are still pending is Kafka's pending transition.
        self.settle(&mut m)?;
        let retry_on_overflow = m.last_producer_id == producer_id
            && m.last_producer_id != m.producer_id
            && epoch == i16::MAX - 1
            && m.producer_epoch == 0;
        let retry_on_bump = i32::from(m.producer_epoch) == i32::from(epoch) + 1;
        if m.producer_id != producer_id && !retry_on_overflow {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        let valid_epoch = match m.state {
            TxnState::CompleteCommit | TxnState::CompleteAbort => {
                retry_on_bump || retry_on_overflow || epoch == m.producer_epoch
            }
            _ => epoch == m.producer_epoch,
        };
        if !valid_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        let retry = retry_on_bump || retry_on_overflow;
        let current = (m.producer_id, m.producer_epoch);
        let empty_abort = match (m.state, commit) {
            (TxnState::Ongoing, _) => false,
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) if retry => return Ok(current),
            (TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Empty, false) if !retry => true,
            _ => return Err(ResponseError::InvalidTxnState),
        };
        let next_producer_id = if epoch_exhausted(m.producer_epoch) { self.allocate_producer_id().await? } else { -1 };
        let now = self.clock.now_ms();
        let mut next = m.clone();
        next.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
        next.last_producer_epoch = m.producer_epoch;
        next.producer_epoch = m.producer_epoch.saturating_add(1);
        next.next_producer_id = next_producer_id;
        next.client_transaction_version = 2;
        next.last_update_ms = now;
        if empty_abort {
            next.partitions.clear();
            next.start_ms = now;
        }
        self.transition(&mut m, next)?;
        // What the completion moves to, which is the answer even if a marker must wait.
        let answer = if next_producer_id >= 0 { (next_producer_id, 0) } else { (m.producer_id, m.producer_epoch) };
        self.complete(&mut m);
        Ok(answer)
    }

    /// Transactions v2 (Produce v12+, TxnOffsetCommit v5): the partition leader adds the
    /// partition to the producer's transaction itself (Kafka's AddPartitionsToTxn with
    /// `verify_only` false, sent by the leader), starting the transaction if none is open. The
    /// transaction is found by the request's transactional id, or else by the producer id. The
    /// returned guard must be held until the append is done, as for [`Self::verify_write`]: no
    /// marker can land between the add and the write. Errors are the coordinator's:
    /// INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED, CONCURRENT_TRANSACTIONS.
    pub async fn add_write(
        &self,
        transactional_id: Option<&str>,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<TxnGuard, ResponseError> {
        let id = match transactional_id {
            Some(id) => id.to_string(),
            None => self.producers().get(&producer_id).cloned().ok_or(ResponseError::InvalidProducerIdMapping)?,
        };
        let txn = self.get(&id).ok_or(ResponseError::InvalidProducerIdMapping)?;
        let mut m = txn.lock_owned().await;
        self.settle(&mut m)?;
        if m.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if m.producer_epoch != epoch {
            return Err(ResponseError::ProducerFenced);
        }
        let tp = (topic.to_string(), partition);
        if m.state == TxnState::Ongoing && m.partitions.contains(&tp) {
            return Ok(m);
        }
        let now = self.clock.now_ms();
        let mut next = m.clone();
        if next.state != TxnState::Ongoing {
            next.start_ms = now;
            next.state = TxnState::Ongoing;
        }
        next.partitions.insert(tp);
        next.last_update_ms = now;
        next.client_transaction_version = 2;
        self.transition(&mut m, next)?;
        Ok(m)
    }

    /// Verifies a transactional write to `topic`/`partition` by `producer_id` at `epoch` (Produce
    /// and TxnOffsetCommit): the partition must be in its ongoing transaction. The returned guard
    /// must be held until the append is done.
    pub async fn verify_write(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<TxnGuard, ResponseError> {
        let id = self.producers().get(&producer_id).cloned().ok_or(ResponseError::InvalidTxnState)?;
        let txn = self.get(&id).ok_or(ResponseError::InvalidTxnState)?;
        let m = txn.lock_owned().await;
        if m.producer_id != producer_id {
            return Err(ResponseError::InvalidTxnState);
        }
        if m.producer_epoch != epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if m.state != TxnState::Ongoing || !m.partitions.iter().any(|(t, p)| t == topic && *p == partition) {
            return Err(ResponseError::InvalidTxnState);
        }
        Ok(m)
    }

    /// The transactional id of `producer_id`, if it has one here.
    pub fn transactional_id_of(&self, producer_id: i64) -> Option<String> {
        self.producers().get(&producer_id).cloned()
    }

    /// A copy of one transaction's state (DescribeTransactions).
    pub async fn describe(&self, id: &str) -> Option<TxnMetadata> {
        let txn = self.get(id)?;
        let m = txn.lock().await;
        Some(m.clone())
    }

    /// Copies of every transaction's state (ListTransactions, metrics). Transactions locked by
    /// an operation in progress are read after it.
    pub async fn all(&self) -> Vec<TxnMetadata> {
        let txns: Vec<TxnRef> = self.all_refs().into_iter().map(|(_, t)| t).collect();
        let mut out = Vec::with_capacity(txns.len());
        for t in txns {
            out.push(t.lock().await.clone());
        }
        out
    }

    /// Counts by state without waiting for locks (metrics scrape).
    pub fn count_by_state(&self) -> HashMap<TxnState, usize> {
        let txns: Vec<TxnRef> = self.all_refs().into_iter().map(|(_, t)| t).collect();
        let mut out = HashMap::new();
        for t in txns {
            if let Ok(m) = t.try_lock() {
                *out.entry(m.state).or_insert(0) += 1;
            }
        }
        out
    }

    /// Replays every `__transaction_state` partition (startup on one node, which leads them
    /// all). Decisions left pending by a crash are completed by the first [`Self::tick`].
    /// Returns the number of transactional ids loaded.
    pub fn load(&self) -> usize {
        let n = self.log.num_partitions().unwrap_or(0);
        (0..n).map(|p| self.load_partition(p)).sum()
    }

    /// Replays one `__transaction_state` partition and makes its transactional ids this
    /// coordinator's, replacing whatever was held for it. Returns how many it loaded.
    pub fn load_partition(&self, p: i32) -> usize {
        let mut latest: HashMap<String, Option<TxnMetadata>> = HashMap::new();
        let result = self.log.scan(p, &mut |batch, log_start| {
            if batch.is_control() {
                return;
            }
            let Ok(recs) = batch.records(sluice_protocol::batch::DECOMPRESSED_BATCH_BYTES_MAX) else { return };
            for r in recs {
                if batch.base_offset() + i64::from(r.offset_delta) < log_start {
                    continue;
                }
                if let Some((id, m)) = r.key.as_ref().and_then(|k| records::decode(k, r.value.as_ref())) {
                    latest.insert(id, m);
                }
            }
        });
        if let Err(e) = result {
            tracing::warn!(partition = p, error = %e.message, "loading transaction state partition failed");
        }
        let mut part = TxnPartition::default();
        let mut producers = self.producers();
        for (id, m) in latest.into_iter().filter_map(|(id, m)| Some((id, m?))) {
            producers.insert(m.producer_id, id.clone());
            part.txns.insert(id, Arc::new(AsyncMutex::new(m)));
        }
        drop(producers);
        let n = part.txns.len();
        if let Some(old) = self.state().insert(p, part) {
            self.forget_producers(&old);
        }
        n
    }

    /// Drops one partition's transactional ids (its leadership moved away).
    pub fn unload_partition(&self, p: i32) {
        let old = self.state().remove(&p);
        if let Some(old) = old {
            self.forget_producers(&old);
        }
    }

    fn forget_producers(&self, part: &TxnPartition) {
        let ids: HashSet<&String> = part.txns.keys().collect();
        self.producers().retain(|_, id| !ids.contains(id));
    }

    /// Periodic work: completes pending decisions, aborts transactions past their timeout
    /// (fencing their producer), and forgets transactional ids idle for
    /// `transactional.id.expiration.ms`.
    pub fn tick(&self) {
        let now = self.clock.now_ms();
        let txns = self.all_refs();
        for (id, txn) in txns {
            let Ok(mut m) = txn.try_lock() else { continue };
            if m.state.is_prepare() {
                let _ = self.settle(&mut m);
            } else if m.state == TxnState::Ongoing && now - m.start_ms > i64::from(m.timeout_ms) {
                tracing::info!(transactional_id = %id, producer_id = m.producer_id, epoch = m.producer_epoch, timeout_ms = m.timeout_ms, "aborting timed-out transaction");
                if self.fence_and_abort(&mut m).is_ok() {
                    self.metrics.timed_out.inc();
                }
            } else if matches!(m.state, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort)
                && now - m.last_update_ms > self.config.id_expiration_ms
                && self.write(&id, None).is_ok()
            {
                tracing::info!(transactional_id = %id, "expired transactional id");
                self.producers().remove(&m.producer_id);
                m.state = TxnState::Dead;
                drop(m);
                let p = self.partition_for(&id);
                if let Some(s) = self.state().get_mut(&p) {
                    s.txns.remove(&id);
                }
            }
        }
    }

    /// The periodic task (`transaction.abort.timed.out.transaction.cleanup.interval.ms`).
    pub async fn run(self: Arc<Self>) {
        let every = Duration::from_millis(self.config.abort_interval_ms.max(10) as u64);
        // First pass right away: completes decisions a crash left pending.
        self.tick();
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.shutdown.wait() => return,
                _ = ticker.tick() => {}
            }
            self.tick();
        }
    }

    /// A fresh producer id (never reused, see [`crate::producer_id`]).
    pub async fn allocate_producer_id(&self) -> Result<i64, ResponseError> {
        let ids = self.producer_ids.clone();
        match tokio::task::spawn_blocking(move || ids.generate()).await {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "producer id allocation failed");
                Err(ResponseError::KafkaStorageError)
            }
            Err(e) => {
                tracing::error!(error = %e, "producer id allocation panicked");
                Err(ResponseError::UnknownServerError)
            }
        }
    }
}
