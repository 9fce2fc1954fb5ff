//! The transaction coordinator (Kafka's `TransactionCoordinator`, `TransactionStateManager` and
//! marker channel, for one node): transactional ids, their producer id and epoch, and the
//! state machine `Empty → Ongoing → PrepareCommit/PrepareAbort → CompleteCommit/CompleteAbort`.
//!
//! - Every state change is written to `__transaction_state` (see [`store`]) before it is
//!   acknowledged; startup replays it.
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
//! Thread-safety: one `tokio::sync::Mutex` per transactional id, held across the appends of one
//! operation (appends are synchronous page-cache writes); the id map's `std::sync::Mutex` is held
//! only for lookups. Locks are always taken in the order transaction, then partition.

pub mod store;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use kafka_protocol::ResponseError;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::broker::{Broker, LEADER_EPOCH};
use crate::group::store::{append_to, partition_for, scan_batches, OFFSETS_TOPIC};

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
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    /// When the current transaction began (its first AddPartitionsToTxn), -1 when none.
    pub start_ms: i64,
    pub last_update_ms: i64,
}

impl TxnMetadata {
    /// Bumps the epoch (KIP-360); at the last epoch, with `allow_new_id`, a new producer id.
    fn bump(&mut self, new_id: Option<i64>) {
        self.last_producer_id = self.producer_id;
        self.last_producer_epoch = self.producer_epoch;
        if self.producer_epoch >= i16::MAX - 1 {
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
        Self {
            max_timeout_ms: c.get_i64("transaction.max.timeout.ms").unwrap_or(900_000),
            num_partitions: c.get_i64("transaction.state.log.num.partitions").unwrap_or(50) as i32,
            id_expiration_ms: c.get_i64("transactional.id.expiration.ms").unwrap_or(604_800_000),
            abort_interval_ms: c
                .get_i64("transaction.abort.timed.out.transaction.cleanup.interval.ms")
                .unwrap_or(10_000),
        }
    }
}

type TxnRef = Arc<AsyncMutex<TxnMetadata>>;

/// A verified transactional write: holds the transaction's lock until the append is done.
pub type TxnGuard = OwnedMutexGuard<TxnMetadata>;

/// See the module docs.
pub struct TxnCoordinator {
    config: TxnConfig,
    txns: StdMutex<HashMap<String, TxnRef>>,
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
    pub fn new(config: TxnConfig) -> Self {
        Self { config, txns: StdMutex::new(HashMap::new()), by_producer: StdMutex::new(HashMap::new()) }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, TxnRef>> {
        self.txns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn producers(&self) -> std::sync::MutexGuard<'_, HashMap<i64, String>> {
        self.by_producer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, id: &str) -> Option<TxnRef> {
        self.map().get(id).cloned()
    }

    /// Writes `m` to `__transaction_state`.
    fn persist(&self, broker: &Broker, m: &TxnMetadata) -> Result<(), ResponseError> {
        self.write(broker, &m.transactional_id, Some(store::value(m)))
    }

    fn write(&self, broker: &Broker, id: &str, value: Option<bytes::Bytes>) -> Result<(), ResponseError> {
        let meta = broker.metadata.topic(store::TXN_TOPIC).ok_or(ResponseError::CoordinatorNotAvailable)?;
        let log = broker
            .partition(&meta, partition_for(id, meta.partitions))
            .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
        append_to(&log, vec![(store::key(id), value)], None).map_err(|e| {
            tracing::warn!(transactional_id = id, error = %e.message, "persisting transaction state failed");
            ResponseError::CoordinatorNotAvailable
        })
    }

    /// Moves `m` to `next` once `next` is durable.
    fn transition(&self, broker: &Broker, m: &mut TxnMetadata, next: TxnMetadata) -> Result<(), ResponseError> {
        self.persist(broker, &next)?;
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
    fn complete(&self, broker: &Broker, m: &mut TxnMetadata) -> bool {
        let commit = m.state == TxnState::PrepareCommit;
        for (topic, index) in &m.partitions {
            let Some(meta) = broker.metadata.topic(topic) else { continue }; // deleted meanwhile
            let log = match broker.partition(&meta, *index) {
                Ok(l) => l,
                Err(e) if e.code == ResponseError::UnknownTopicOrPartition => continue,
                Err(e) => {
                    tracing::warn!(transactional_id = %m.transactional_id, topic, partition = index, error = %e.message, "writing transaction marker failed");
                    return false;
                }
            };
            match log.append_marker(m.producer_id, m.producer_epoch, COORDINATOR_EPOCH, commit, LEADER_EPOCH) {
                Ok(_) => {
                    if topic == OFFSETS_TOPIC {
                        broker.groups.complete_txn(m.producer_id, *index, commit);
                    }
                }
                Err(sluice_storage::StorageError::Deleted(_)) => {}
                Err(e) => {
                    tracing::warn!(transactional_id = %m.transactional_id, topic, partition = index, error = %e, "writing transaction marker failed");
                    return false;
                }
            }
        }
        let mut next = m.clone();
        next.state = if commit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        next.partitions.clear();
        next.start_ms = -1;
        next.last_update_ms = crate::handlers::now_ms();
        if self.transition(broker, m, next).is_err() {
            return false;
        }
        broker.metrics.transactions.completed(commit);
        true
    }

    /// Aborts the ongoing transaction with a bumped epoch, fencing the producer that ran it.
    fn fence_and_abort(&self, broker: &Broker, m: &mut TxnMetadata) -> Result<(), ResponseError> {
        let mut next = m.clone();
        next.bump(None);
        next.state = TxnState::PrepareAbort;
        next.last_update_ms = crate::handlers::now_ms();
        self.transition(broker, m, next)?;
        if self.complete(broker, m) {
            Ok(())
        } else {
            Err(ResponseError::ConcurrentTransactions)
        }
    }

    /// Completes a decision left pending; `Err(CONCURRENT_TRANSACTIONS)` while it stays pending.
    fn settle(&self, broker: &Broker, m: &mut TxnMetadata) -> Result<(), ResponseError> {
        if m.state == TxnState::PrepareEpochFence {
            m.state = TxnState::PrepareAbort;
        }
        if m.state.is_prepare() && !self.complete(broker, m) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(())
    }

    /// InitProducerId with a transactional id: a new producer id for a new id, otherwise the
    /// epoch bumped (an open transaction is aborted first). `expected` is the id and epoch a
    /// v3+ client sends to recover (KIP-360).
    pub async fn init_producer_id(
        &self,
        broker: &Broker,
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
                let pid = allocate_producer_id(broker).await?;
                let m = TxnMetadata {
                    transactional_id: id.to_string(),
                    producer_id: pid,
                    producer_epoch: -1,
                    last_producer_id: -1,
                    last_producer_epoch: -1,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    start_ms: -1,
                    last_update_ms: crate::handlers::now_ms(),
                };
                self.map().entry(id.to_string()).or_insert_with(|| Arc::new(AsyncMutex::new(m))).clone()
            }
        };
        let mut m = txn.lock().await;
        self.settle(broker, &mut m)?;
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
            self.fence_and_abort(broker, &mut m)?;
        }
        let new_id = if m.producer_epoch >= i16::MAX - 1 { Some(allocate_producer_id(broker).await?) } else { None };
        let mut next = m.clone();
        next.bump(new_id);
        next.timeout_ms = timeout_ms;
        next.state = TxnState::Empty;
        next.partitions.clear();
        next.start_ms = -1;
        next.last_update_ms = crate::handlers::now_ms();
        self.transition(broker, &mut m, next)?;
        Ok((m.producer_id, m.producer_epoch))
    }

    /// Locks the transaction and checks the producer, for the AddPartitions/AddOffsets/EndTxn family.
    async fn lock_checked(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        epoch: i16,
        fenced_code: ResponseError,
    ) -> Result<TxnGuard, ResponseError> {
        let txn = self.get(id).ok_or(ResponseError::InvalidProducerIdMapping)?;
        let mut m = txn.lock_owned().await;
        check_producer(&m, producer_id, epoch, fenced_code)?;
        if m.state.is_prepare() {
            self.settle(broker, &mut m)?;
        }
        Ok(m)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn's offsets partition). Partitions must exist; if
    /// one does not, it is UNKNOWN_TOPIC_OR_PARTITION and the rest OPERATION_NOT_ATTEMPTED.
    pub async fn add_partitions(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        fenced_code: ResponseError,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        let unknown: Vec<bool> = partitions
            .iter()
            .map(|(t, p)| !broker.metadata.topic(t).is_some_and(|m| *p >= 0 && *p < m.partitions))
            .collect();
        let mut m = self.lock_checked(broker, id, producer_id, epoch, fenced_code).await?;
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
        let now = crate::handlers::now_ms();
        let mut next = m.clone();
        if next.state != TxnState::Ongoing {
            next.start_ms = now;
            next.state = TxnState::Ongoing;
        }
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now;
        self.transition(broker, &mut m, next)?;
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

    /// EndTxn: commit or abort the ongoing transaction. A retry of a completed EndTxn succeeds.
    pub async fn end_txn(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        fenced_code: ResponseError,
    ) -> Result<(), ResponseError> {
        let mut m = self.lock_checked(broker, id, producer_id, epoch, fenced_code).await?;
        match m.state {
            TxnState::Ongoing => {}
            TxnState::CompleteCommit if commit => return Ok(()),
            TxnState::CompleteAbort if !commit => return Ok(()),
            _ => return Err(ResponseError::InvalidTxnState),
        }
        let mut next = m.clone();
        next.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
        next.last_update_ms = crate::handlers::now_ms();
        self.transition(broker, &mut m, next)?;
        // The decision is durable: it stands even if a marker must wait for the retry task.
        self.complete(broker, &mut m);
        Ok(())
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
        let txns: Vec<TxnRef> = self.map().values().cloned().collect();
        let mut out = Vec::with_capacity(txns.len());
        for t in txns {
            out.push(t.lock().await.clone());
        }
        out
    }

    /// Counts by state without waiting for locks (metrics scrape).
    pub fn count_by_state(&self) -> HashMap<TxnState, usize> {
        let txns: Vec<TxnRef> = self.map().values().cloned().collect();
        let mut out = HashMap::new();
        for t in txns {
            if let Ok(m) = t.try_lock() {
                *out.entry(m.state).or_insert(0) += 1;
            }
        }
        out
    }

    /// Replays `__transaction_state` (startup). Decisions left pending by a crash are completed
    /// by the first [`Self::tick`].
    pub fn load(&self, broker: &Broker) -> usize {
        let Some(meta) = broker.metadata.topic(store::TXN_TOPIC) else { return 0 };
        let mut latest: HashMap<String, Option<TxnMetadata>> = HashMap::new();
        for p in 0..meta.partitions {
            let Ok(log) = broker.partition(&meta, p) else { continue };
            let log_start = log.offsets().log_start_offset;
            let result = scan_batches(&log, |batch| {
                if batch.is_control() {
                    return;
                }
                let Ok(records) = batch.records(sluice_protocol::batch::DECOMPRESSED_BATCH_BYTES_MAX) else { return };
                for r in records {
                    if batch.base_offset() + i64::from(r.offset_delta) < log_start {
                        continue;
                    }
                    if let Some((id, m)) = r.key.as_ref().and_then(|k| store::decode(k, r.value.as_ref())) {
                        latest.insert(id, m);
                    }
                }
            });
            if let Err(e) = result {
                tracing::warn!(partition = p, error = %e, "loading transaction state partition failed");
            }
        }
        let mut map = self.map();
        let mut producers = self.producers();
        for (id, m) in latest.into_iter().filter_map(|(id, m)| Some((id, m?))) {
            producers.insert(m.producer_id, id.clone());
            map.insert(id, Arc::new(AsyncMutex::new(m)));
        }
        map.len()
    }

    /// Periodic work: completes pending decisions, aborts transactions past their timeout
    /// (fencing their producer), and forgets transactional ids idle for
    /// `transactional.id.expiration.ms`.
    pub fn tick(&self, broker: &Broker) {
        let now = crate::handlers::now_ms();
        let txns: Vec<(String, TxnRef)> = self.map().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (id, txn) in txns {
            let Ok(mut m) = txn.try_lock() else { continue };
            if m.state.is_prepare() {
                let _ = self.settle(broker, &mut m);
            } else if m.state == TxnState::Ongoing && now - m.start_ms > i64::from(m.timeout_ms) {
                tracing::info!(transactional_id = %id, producer_id = m.producer_id, epoch = m.producer_epoch, timeout_ms = m.timeout_ms, "aborting timed-out transaction");
                if self.fence_and_abort(broker, &mut m).is_ok() {
                    broker.metrics.transactions.timed_out.inc();
                }
            } else if matches!(m.state, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort)
                && now - m.last_update_ms > self.config.id_expiration_ms
                && self.write(broker, &id, None).is_ok()
            {
                tracing::info!(transactional_id = %id, "expired transactional id");
                self.producers().remove(&m.producer_id);
                m.state = TxnState::Dead;
                drop(m);
                self.map().remove(&id);
            }
        }
    }

    /// The periodic task (`transaction.abort.timed.out.transaction.cleanup.interval.ms`).
    pub async fn run(broker: Arc<Broker>) {
        let every = Duration::from_millis(broker.txns.config.abort_interval_ms.max(10) as u64);
        let mut shutdown = broker.shutdown.clone();
        // First pass right away: completes decisions a crash left pending.
        broker.txns.tick(&broker);
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = ticker.tick() => {}
            }
            broker.txns.tick(&broker);
        }
    }
}

/// A fresh producer id (never reused, see [`crate::producer_id`]).
pub async fn allocate_producer_id(broker: &Broker) -> Result<i64, ResponseError> {
    let ids = broker.producer_ids.clone();
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
