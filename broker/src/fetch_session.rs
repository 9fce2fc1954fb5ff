//! Incremental fetch sessions (KIP-227), as the Java client and franz-go use them.
//!
//! A session remembers, per partition, the fetch offset and byte limit the client last sent and
//! the offsets the broker last reported. Incremental requests then carry only changed partitions
//! (plus `forgotten_topics_data`), and responses carry only partitions with news: records, an
//! error, or a moved high watermark / log start offset. The session id and epoch rules follow
//! Kafka's `FetchSession`: epoch 0 opens a session, -1 closes one (or means "sessionless"), and
//! each incremental request must carry the next epoch.
//!
//! Bounded: at most `max.incremental.fetch.session.cache.slots` sessions; when full, the least
//! recently used idle session is evicted, otherwise the fetch proceeds sessionless.
//! Thread-safety: one `std::sync::Mutex`, held only for map updates, never across an `.await`.

use std::collections::HashMap;
use std::sync::Mutex;
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

struct Session {
    epoch: i32,
    partitions: Vec<(SessionPartition, PartitionFetchState)>,
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

/// One partition's requested state, as decoded from the request.
pub type RequestedPartition = (SessionPartition, i64, i32, i32);

pub struct FetchSessionCache {
    max_sessions: usize,
    state: Mutex<(HashMap<i32, Session>, i32)>,
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

impl FetchSessionCache {
    pub fn new(max_sessions: usize) -> Self {
        Self { max_sessions, state: Mutex::new((HashMap::new(), 0)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<i32, Session>, i32)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
        let mut guard = self.lock();
        let (sessions, next_id) = &mut *guard;
        match (session_id, epoch) {
            // Sessionless full fetch (librdkafka), or closing a session.
            (id, -1) => {
                if id != 0 {
                    sessions.remove(&id);
                }
                Ok(SessionPlan { session_id: 0, incremental: false, partitions: full(requested) })
            }
            (0, 0) | (_, 0) => {
                if session_id != 0 {
                    sessions.remove(&session_id);
                }
                let partitions = full(requested);
                if self.max_sessions == 0 {
                    return Ok(SessionPlan { session_id: 0, incremental: false, partitions });
                }
                if sessions.len() >= self.max_sessions {
                    let lru = sessions
                        .iter()
                        .filter(|(_, s)| s.last_used.elapsed() >= EVICTABLE_AFTER)
                        .min_by_key(|(_, s)| s.last_used)
                        .map(|(id, _)| *id);
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
                sessions.insert(id, Session { epoch: 1, partitions: partitions.clone(), last_used: Instant::now() });
                Ok(SessionPlan { session_id: id, incremental: false, partitions })
            }
            (0, _) => Err(ResponseError::InvalidFetchSessionEpoch),
            (id, ep) => {
                let session = sessions.get_mut(&id).ok_or(ResponseError::FetchSessionIdNotFound)?;
                if session.epoch != ep {
                    return Err(ResponseError::InvalidFetchSessionEpoch);
                }
                session.partitions.retain(|(k, _)| !forgotten.contains(k));
                for (k, off, max, lep) in requested {
                    match session.partitions.iter_mut().find(|(pk, _)| *pk == k) {
                        Some((_, st)) => {
                            st.fetch_offset = off;
                            st.max_bytes = max;
                            st.current_leader_epoch = lep;
                        }
                        None => session.partitions.push((k, new_state(off, max, lep))),
                    }
                }
                session.epoch = session.epoch.wrapping_add(1).max(1);
                session.last_used = Instant::now();
                Ok(SessionPlan { session_id: id, incremental: true, partitions: session.partitions.clone() })
            }
        }
    }

    /// Records what a response told the client, so the next incremental response can skip
    /// partitions with nothing new.
    pub fn record_sent(&self, session_id: i32, sent: &[(SessionPartition, i64, i64, i64)]) {
        if session_id == 0 {
            return;
        }
        let mut guard = self.lock();
        if let Some(session) = guard.0.get_mut(&session_id) {
            for (k, hw, lso, log_start) in sent {
                if let Some((_, st)) = session.partitions.iter_mut().find(|(pk, _)| pk == k) {
                    st.last_high_watermark = *hw;
                    st.last_stable_offset = *lso;
                    st.last_log_start_offset = *log_start;
                }
            }
        }
    }

    /// Drops a deleted topic's partitions from every session.
    pub fn forget_topic(&self, topic: &str) {
        let mut guard = self.lock();
        for s in guard.0.values_mut() {
            s.partitions.retain(|(k, _)| k.topic != topic);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().0.len()
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
        let cache = FetchSessionCache::new(10);
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
    fn cache_is_bounded() {
        let cache = FetchSessionCache::new(1);
        let a = cache.begin(0, 0, vec![(key(0), 0, 1, -1)], vec![]).expect("a");
        assert!(a.session_id > 0);
        // Full and nothing idle long enough: the fetch proceeds sessionless.
        let b = cache.begin(0, 0, vec![(key(0), 0, 1, -1)], vec![]).expect("b");
        assert_eq!(b.session_id, 0);
        assert_eq!(cache.len(), 1);
    }
}
