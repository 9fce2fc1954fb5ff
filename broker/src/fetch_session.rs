//! Incremental fetch sessions (KIP-227), as the Java client and franz-go use them.
//!
//! A session remembers, per partition, the fetch offset and byte limit the client last sent and
//! the offsets the broker last reported. Incremental requests then carry only changed partitions
//! (plus `forgotten_topics_data`), and responses carry only partitions with news: records, an
//! error, or a moved high watermark / log start offset. The session id and epoch rules follow
//! Kafka's `FetchSession`: epoch 0 opens a session, -1 closes one (or means "sessionless"), and
//! each incremental request must carry the next epoch.
//!
//! Bounded: at most `max.incremental.fetch.session.cache.slots` sessions, each of at most
//! `max.incremental.fetch.session.partitions` partitions; when the cache is full, the least
//! recently used idle session is evicted, otherwise the fetch proceeds sessionless, as does a
//! fetch of more partitions than a session may hold. Lookups are O(1) per partition.
//! Thread-safety: the session map has one `std::sync::Mutex`, held only to find, add or remove a
//! session; each session has its own, held while its partitions are updated. Neither is held
//! across an `.await`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use uuid::Uuid;

/// Sessions unused for this long may be evicted to make room for new ones.
const EVICTABLE_AFTER: Duration = Duration::from_secs(120);

/// Identifies a partition within a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionPartition {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

/// What the client asked for a partition, and what we last told it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionFetchState {
    pub fetch_offset: i64,
    pub max_bytes: i32,
    pub current_leader_epoch: i32,
    /// Last high watermark / log start / LSO sent (-1 = never sent).
    pub last_high_watermark: i64,
    pub last_log_start_offset: i64,
    pub last_stable_offset: i64,
}

/// A session's partitions in the client's order, with an index for O(1) lookups (a fetch of
/// many partitions must not cost partitions² work).
#[derive(Default)]
struct SessionPartitions {
    ordered: Vec<(SessionPartition, PartitionFetchState)>,
    index: HashMap<SessionPartition, usize>,
}

impl SessionPartitions {
    fn from_full(parts: Vec<(SessionPartition, PartitionFetchState)>) -> Self {
        let mut s = SessionPartitions::default();
        for (k, st) in parts {
            s.upsert(k, |_| {}, st);
        }
        s
    }

    /// Updates `key` with `update`, or appends it with `new`.
    fn upsert(
        &mut self,
        key: SessionPartition,
        update: impl FnOnce(&mut PartitionFetchState),
        new: PartitionFetchState,
    ) {
        match self.index.get(&key) {
            Some(&i) => update(&mut self.ordered[i].1),
            None => {
                self.index.insert(key.clone(), self.ordered.len());
                self.ordered.push((key, new));
            }
        }
    }

    fn get_mut(&mut self, key: &SessionPartition) -> Option<&mut PartitionFetchState> {
        let i = *self.index.get(key)?;
        Some(&mut self.ordered[i].1)
    }

    /// Removes every partition `drop` selects, keeping the order of the rest.
    fn remove_where(&mut self, drop: impl Fn(&SessionPartition) -> bool) {
        let before = self.ordered.len();
        self.ordered.retain(|(k, _)| !drop(k));
        if self.ordered.len() != before {
            self.index = self.ordered.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
        }
    }

    fn len(&self) -> usize {
        self.ordered.len()
    }

    /// Moves the partitions `moved` selects to the end, each group keeping its order.
    fn move_to_end(&mut self, moved: impl Fn(&SessionPartition) -> bool) {
        let (mut stay, go): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.ordered).into_iter().partition(|(k, _)| !moved(k));
        stay.extend(go);
        self.ordered = stay;
        self.index = self.ordered.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
    }
}

struct Session {
    epoch: i32,
    partitions: SessionPartitions,
    last_used: Instant,
}

/// The outcome of applying a fetch request to the session cache.
#[derive(Debug)]
pub struct SessionPlan {
    /// Session id to return (0 when sessionless).
    pub session_id: i32,
    /// Whether the response should contain only changed partitions.
    pub incremental: bool,
    /// Every partition to read, in response order.
    pub partitions: Vec<(SessionPartition, PartitionFetchState)>,
}

/// What one response told the client about one partition.
#[derive(Debug, Clone)]
pub struct SentPartition {
    pub key: SessionPartition,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// Whether the response carried records of the partition.
    pub had_records: bool,
}

/// One partition's requested state, as decoded from the request.
pub type RequestedPartition = (SessionPartition, i64, i32, i32);

type Sessions = HashMap<i32, Arc<Mutex<Session>>>;

pub struct FetchSessionCache {
    max_sessions: usize,
    /// Largest session, in partitions; a bigger fetch proceeds sessionless.
    max_partitions: usize,
    /// The session map and the last id handed out. Held only to find, add or remove a session;
    /// each session's partitions have their own lock, so one huge session never stalls the
    /// fetches of others.
    state: Mutex<(Sessions, i32)>,
}

fn new_state(fetch_offset: i64, max_bytes: i32, epoch: i32) -> PartitionFetchState {
    PartitionFetchState {
        fetch_offset,
        max_bytes,
        current_leader_epoch: epoch,
        last_high_watermark: -1,
        last_log_start_offset: -1,
        last_stable_offset: -1,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FetchSessionCache {
    pub fn new(max_sessions: usize, max_partitions: usize) -> Self {
        Self { max_sessions, max_partitions, state: Mutex::new((HashMap::new(), 0)) }
    }

    fn session(&self, id: i32) -> Option<Arc<Mutex<Session>>> {
        lock(&self.state).0.get(&id).cloned()
    }

    /// Applies the request's session fields and partitions. `Err` is a top-level fetch error
    /// (FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH).
    pub fn begin(
        &self,
        session_id: i32,
        epoch: i32,
        requested: Vec<RequestedPartition>,
        forgotten: Vec<SessionPartition>,
    ) -> Result<SessionPlan, ResponseError> {
        let full = |parts: Vec<RequestedPartition>| -> Vec<(SessionPartition, PartitionFetchState)> {
            parts.into_iter().map(|(k, off, max, ep)| (k, new_state(off, max, ep))).collect()
        };
        match (session_id, epoch) {
            // Sessionless full fetch (librdkafka), or closing a session.
            (id, -1) => {
                if id != 0 {
                    lock(&self.state).0.remove(&id);
                }
                Ok(SessionPlan { session_id: 0, incremental: false, partitions: full(requested) })
            }
            (0, 0) | (_, 0) => {
                if session_id != 0 {
                    lock(&self.state).0.remove(&session_id);
                }
                let partitions = full(requested);
                if self.max_sessions == 0 || partitions.len() > self.max_partitions {
                    return Ok(SessionPlan { session_id: 0, incremental: false, partitions });
                }
                let mut guard = lock(&self.state);
                let (sessions, next_id) = &mut *guard;
                if sessions.len() >= self.max_sessions {
                    let lru = sessions
                        .iter()
                        .filter_map(|(id, s)| s.try_lock().ok().map(|s| (*id, s.last_used)))
                        .filter(|(_, used)| used.elapsed() >= EVICTABLE_AFTER)
                        .min_by_key(|(_, used)| *used)
                        .map(|(id, _)| id);
                    match lru {
                        Some(id) => {
                            sessions.remove(&id);
                        }
                        None => return Ok(SessionPlan { session_id: 0, incremental: false, partitions }),
                    }
                }
                let id = loop {
                    *next_id = next_id.wrapping_add(1).max(1);
                    if !sessions.contains_key(next_id) {
                        break *next_id;
                    }
                };
                let session = Session {
                    epoch: 1,
                    partitions: SessionPartitions::from_full(partitions.clone()),
                    last_used: Instant::now(),
                };
                sessions.insert(id, Arc::new(Mutex::new(session)));
                Ok(SessionPlan { session_id: id, incremental: false, partitions })
            }
            (0, _) => Err(ResponseError::InvalidFetchSessionEpoch),
            (id, ep) => {
                let session = self.session(id).ok_or(ResponseError::FetchSessionIdNotFound)?;
                let mut session = lock(&session);
                if session.epoch != ep {
                    return Err(ResponseError::InvalidFetchSessionEpoch);
                }
                if !forgotten.is_empty() {
                    let forgotten: std::collections::HashSet<SessionPartition> = forgotten.into_iter().collect();
                    session.partitions.remove_where(|k| forgotten.contains(k));
                }
                for (k, off, max, lep) in requested {
                    session.partitions.upsert(
                        k,
                        |st| {
                            st.fetch_offset = off;
                            st.max_bytes = max;
                            st.current_leader_epoch = lep;
                        },
                        new_state(off, max, lep),
                    );
                }
                if session.partitions.len() > self.max_partitions {
                    // Grown past the bound: the session ends and the client falls back to a
                    // full fetch, which then runs sessionless.
                    drop(session);
                    lock(&self.state).0.remove(&id);
                    return Err(ResponseError::FetchSessionIdNotFound);
                }
                session.epoch = session.epoch.wrapping_add(1).max(1);
                session.last_used = Instant::now();
                Ok(SessionPlan { session_id: id, incremental: true, partitions: session.partitions.ordered.clone() })
            }
        }
    }

    /// Records what a response told the client, so the next incremental response can skip
    /// partitions with nothing new. Partitions that returned records move to the end of the
    /// session, as in Kafka's incremental fetch context: the next fetch reads the others first,
    /// so a small `fetch.max.bytes` cannot keep one partition filling every response.
    pub fn record_sent(&self, session_id: i32, sent: &[SentPartition]) {
        if session_id == 0 {
            return;
        }
        if let Some(session) = self.session(session_id) {
            let mut session = lock(&session);
            let mut returned_records = HashSet::new();
            for p in sent {
                if let Some(st) = session.partitions.get_mut(&p.key) {
                    st.last_high_watermark = p.high_watermark;
                    st.last_stable_offset = p.last_stable_offset;
                    st.last_log_start_offset = p.log_start_offset;
                }
                if p.had_records {
                    returned_records.insert(&p.key);
                }
            }
            if !returned_records.is_empty() {
                session.partitions.move_to_end(|k| returned_records.contains(k));
            }
        }
    }

    /// Drops a deleted topic's partitions from every session.
    pub fn forget_topic(&self, topic: &str) {
        let sessions: Vec<_> = lock(&self.state).0.values().cloned().collect();
        for s in sessions {
            lock(&s).partitions.remove_where(|k| k.topic == topic);
        }
    }

    pub fn len(&self) -> usize {
        lock(&self.state).0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> SessionPartition {
        SessionPartition { topic: "t".into(), topic_id: Uuid::nil(), partition: p }
    }

    #[test]
    fn full_then_incremental_then_close() {
        let cache = FetchSessionCache::new(10, 1000);
        let plan = cache.begin(0, 0, vec![(key(0), 5, 100, -1), (key(1), 7, 100, -1)], vec![]).expect("open");
        assert!(plan.session_id > 0);
        assert!(!plan.incremental);
        let id = plan.session_id;
        // Incremental: only partition 1 moved; partition 0 keeps its stored offset.
        let plan = cache.begin(id, 1, vec![(key(1), 9, 100, -1)], vec![]).expect("incr");
        assert!(plan.incremental);
        assert_eq!(plan.partitions.len(), 2);
        assert_eq!(plan.partitions[0].1.fetch_offset, 5);
        assert_eq!(plan.partitions[1].1.fetch_offset, 9);
        // Forget partition 0.
        let plan = cache.begin(id, 2, vec![], vec![key(0)]).expect("forget");
        assert_eq!(plan.partitions.len(), 1);
        // Wrong epoch and unknown id.
        assert_eq!(cache.begin(id, 7, vec![], vec![]).expect_err("epoch"), ResponseError::InvalidFetchSessionEpoch);
        assert_eq!(cache.begin(999, 1, vec![], vec![]).expect_err("id"), ResponseError::FetchSessionIdNotFound);
        assert_eq!(cache.begin(0, 3, vec![], vec![]).expect_err("0/3"), ResponseError::InvalidFetchSessionEpoch);
        // Close.
        let plan = cache.begin(id, -1, vec![(key(0), 1, 1, -1)], vec![]).expect("close");
        assert_eq!(plan.session_id, 0);
        assert!(cache.is_empty());
    }

    #[test]
    fn partitions_that_returned_records_move_to_the_end() {
        let cache = FetchSessionCache::new(10, 1000);
        let parts = (0..3).map(|p| (key(p), 0, 100, -1)).collect();
        let id = cache.begin(0, 0, parts, vec![]).expect("open").session_id;
        let sent = |p: i32, had_records: bool| SentPartition {
            key: key(p),
            high_watermark: 10,
            last_stable_offset: 10,
            log_start_offset: 0,
            had_records,
        };
        let order = |epoch: i32| -> Vec<i32> {
            cache.begin(id, epoch, vec![], vec![]).expect("incr").partitions.iter().map(|(k, _)| k.partition).collect()
        };
        // Partition 0 filled the response; 1 was answered without records (a new high watermark).
        cache.record_sent(id, &[sent(0, true), sent(1, false)]);
        assert_eq!(order(1), vec![1, 2, 0]);
        // Now 1 and 2 returned records: they go behind 0, in their order.
        cache.record_sent(id, &[sent(1, true), sent(2, true)]);
        assert_eq!(order(2), vec![0, 1, 2]);
    }

    #[test]
    fn cache_is_bounded() {
        let cache = FetchSessionCache::new(1, 1000);
        let a = cache.begin(0, 0, vec![(key(0), 0, 1, -1)], vec![]).expect("a");
        assert!(a.session_id > 0);
        // Full and nothing idle long enough: the fetch proceeds sessionless.
        let b = cache.begin(0, 0, vec![(key(0), 0, 1, -1)], vec![]).expect("b");
        assert_eq!(b.session_id, 0);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn sessions_are_bounded_in_partitions_and_lookups_scale() {
        let cache = FetchSessionCache::new(10, 3);
        let big: Vec<_> = (0..4).map(|p| (key(p), 0, 1, -1)).collect();
        assert_eq!(cache.begin(0, 0, big, vec![]).expect("sessionless").session_id, 0);
        let id = cache.begin(0, 0, vec![(key(0), 0, 1, -1)], vec![]).expect("open").session_id;
        assert!(id > 0);
        let grow: Vec<_> = (1..4).map(|p| (key(p), 0, 1, -1)).collect();
        assert_eq!(cache.begin(id, 1, grow, vec![]).expect_err("grown"), ResponseError::FetchSessionIdNotFound);
        assert!(cache.is_empty());
        // 200k partitions in one session: linear, not quadratic (this would take minutes).
        let cache = FetchSessionCache::new(10, 1_000_000);
        let all: Vec<_> = (0..200_000).map(|p| (key(p), 0, 1, -1)).collect();
        let id = cache.begin(0, 0, all.clone(), vec![]).expect("open").session_id;
        let plan = cache.begin(id, 1, all, vec![key(5)]).expect("incremental");
        assert_eq!(plan.partitions.len(), 200_000);
        assert_eq!(plan.partitions[199_999].0.partition, 5, "a forgotten then re-added partition goes last");
    }
}
