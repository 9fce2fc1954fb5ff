//! Committed offsets (Kafka's `OffsetMetadataManager`): OffsetCommit and TxnOffsetCommit,
//! OffsetFetch, OffsetDelete, offsets of deleted topics, retention expiry, and the offsets a
//! transaction holds until its marker applies or drops them.
//!
//! A group's offsets live in its [`ClassicGroup`] entry whatever the group's type (a KIP-848
//! group's id has an Empty classic entry holding only offsets), under that group's lock.
//! Transactional offsets wait per `__consumer_offsets` partition and producer id in the
//! partition's state until [`GroupCoordinator::complete_txn`].

use std::collections::BTreeMap;

use bytes::Buf;
use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use kafka_protocol::ResponseError;

use super::classic::{ClassicGroup, GroupState};
use super::records::{self, OffsetAndMetadata};
use super::{lock, GroupCoordinator, GroupRef};

/// One offset committed inside a transaction.
#[derive(Debug, Clone)]
pub(super) struct PendingTxnOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub value: OffsetAndMetadata,
}

/// Topics named in a consumer-protocol subscription (`ConsumerProtocolSubscription`); empty when
/// the metadata is not one. Versions newer than this build knows are read as the newest known,
/// as Kafka's `ConsumerProtocol` does: later versions only add fields at the end.
pub fn subscribed_topics(metadata: &Bytes) -> Vec<String> {
    let mut b = metadata.clone();
    if b.remaining() < 2 {
        return Vec::new();
    }
    let version = b.get_i16().clamp(0, 3);
    match ConsumerProtocolSubscription::decode(&mut b, version) {
        Ok(s) => s.topics.into_iter().map(|t| t.to_string()).collect(),
        Err(_) => Vec::new(),
    }
}

impl GroupCoordinator {
    /// Applies (commit) or drops (abort) the offsets `producer_id` committed in its transaction
    /// through `__consumer_offsets` partition `offsets_partition`, once its marker is written.
    pub fn complete_txn(&self, producer_id: i64, offsets_partition: i32, commit: bool) {
        let pending = self.state().get_mut(&offsets_partition).and_then(|s| s.pending_txn.remove(&producer_id));
        let Some(pending) = pending else { return };
        if !commit {
            return;
        }
        for p in pending {
            let g = self.get_or_create(&p.group);
            lock(&g).offsets.insert((p.topic, p.partition), p.value);
        }
    }

    /// Whether an open transaction holds an offset commit for this group partition
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.state()
            .values()
            .flat_map(|s| s.pending_txn.values().flatten())
            .any(|p| p.group == group_id && p.topic == topic && p.partition == partition)
    }

    /// OffsetCommit (at `api_version`), and TxnOffsetCommit with `txn` (producer id, epoch):
    /// validates membership and generation as Kafka's OffsetMetadataManager does, then persists
    /// every valid offset. Transactional offsets are written as part of the producer's
    /// transaction and take effect only when it commits. Partitions of topics that do not exist
    /// get UNKNOWN_TOPIC_OR_PARTITION before any group check (Kafka answers them from its
    /// metadata cache first), and when no partition is left the group is not touched. Returns a
    /// top-level error, or per-partition errors keyed like the input.
    #[allow(clippy::too_many_arguments)]
    pub fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<(String, i32, OffsetAndMetadata)>,
        txn: Option<(i64, i16)>,
        api_version: i16,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let topic_known: Vec<bool> =
            offsets.iter().map(|(topic, _, _)| self.topics.partition_exists(topic, 0)).collect();
        if !topic_known.iter().any(|k| *k) {
            return Ok(vec![Some(ResponseError::UnknownTopicOrPartition); offsets.len()]);
        }
        let validated = self.validate_commit(group_id, generation, member_id, instance_id, txn.is_some(), api_version);
        let group = match validated {
            Ok(group) => group,
            Err(e) if topic_known.iter().all(|k| *k) => return Err(e),
            Err(e) => {
                return Ok(topic_known
                    .iter()
                    .map(|known| Some(if *known { e } else { ResponseError::UnknownTopicOrPartition }))
                    .collect())
            }
        };
        let mut g = lock(&group);
        let mut errors = Vec::with_capacity(offsets.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for (topic, partition, value) in offsets {
            let known = self.topics.partition_exists(&topic, partition);
            if value.metadata.len() > self.config.offset_metadata_max_bytes {
                errors.push(Some(ResponseError::OffsetMetadataTooLarge));
            } else if !known {
                errors.push(Some(ResponseError::UnknownTopicOrPartition));
            } else {
                records.push((records::offset_key(group_id, &topic, partition), Some(records::offset_value(&value))));
                accepted.push((topic, partition, value));
                errors.push(None);
            }
        }
        let offsets_partition = match self.append_for_group(group_id, records, txn) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(group = group_id, error = %e.message, "persisting offsets failed");
                return Err(if e.code == ResponseError::KafkaStorageError {
                    ResponseError::CoordinatorNotAvailable
                } else {
                    e.code
                });
            }
        };
        match txn {
            Some((producer_id, _)) => {
                let mut state = self.state();
                let entry = state.entry(offsets_partition).or_default().pending_txn.entry(producer_id).or_default();
                for (topic, partition, value) in accepted {
                    entry.push(PendingTxnOffset { group: group_id.to_string(), topic, partition, value });
                }
            }
            None => {
                for (topic, partition, value) in accepted {
                    g.offsets.insert((topic, partition), value);
                }
            }
        }
        Ok(errors)
    }

    /// The group an offset commit goes to, once the committer may commit to it (Kafka's
    /// `validateOffsetCommit` / `validateTransactionalOffsetCommit` and the groups' own checks).
    fn validate_commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        transactional: bool,
        api_version: i16,
    ) -> Result<GroupRef, ResponseError> {
        let is_consumer = self.is_consumer_group(group_id);
        let group = match self.get(group_id) {
            Some(group) => group,
            // A consumer group keeps its offsets in a classic group entry created with it.
            None if is_consumer => self.get_or_create(group_id),
            // No such group: a commit without group management (admin tools, consumers that
            // `assign()`) creates a simple group; anything else names a generation that never was.
            None if generation < 0 => self.get_or_create(group_id),
            None if !transactional && api_version >= 9 => return Err(ResponseError::GroupIdNotFound),
            None => return Err(ResponseError::IllegalGeneration),
        };
        let mut g = lock(&group);
        if g.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        // A KIP-848 group: the member epoch stands in for the generation.
        if let Some(check) =
            self.consumer_commit_check(group_id, member_id, instance_id, generation, transactional, api_version)
        {
            check?;
        } else if generation < 0 && g.state == GroupState::Empty {
            // Without group management: accepted while the group has no members.
        } else if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            if let Some(instance) = instance_id {
                if g.static_members.get(instance).is_some_and(|id| id != member_id) {
                    return Err(ResponseError::FencedInstanceId);
                }
            }
            if !g.members.contains_key(member_id) {
                return Err(ResponseError::UnknownMemberId);
            }
            if generation != g.generation {
                return Err(ResponseError::IllegalGeneration);
            }
        } else if !transactional {
            // No member id and no generation (the oldest clients): only into an empty group.
            return Err(ResponseError::UnknownMemberId);
        }
        if self.consumer_group(group_id).is_none() {
            if !transactional && g.state == GroupState::CompletingRebalance {
                return Err(ResponseError::RebalanceInProgress);
            }
            if let Some(m) = g.members.get_mut(member_id) {
                m.last_heartbeat = self.clock.now();
            }
        }
        drop(g);
        Ok(group)
    }

    /// OffsetFetch: the committed offsets of `partitions` (or of every partition when `None`).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Vec<((String, i32), Option<OffsetAndMetadata>)> {
        let group = self.get(group_id);
        let g = group.as_ref().map(lock);
        match partitions {
            Some(list) => list
                .into_iter()
                .map(|tp| {
                    let v = g.as_ref().and_then(|g| g.offsets.get(&tp).cloned());
                    (tp, v)
                })
                .collect(),
            None => {
                g.map(|g| g.offsets.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect()).unwrap_or_default()
            }
        }
    }

    /// OffsetDelete: removes committed offsets unless the group's members subscribe to the topic.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        let group = self.get(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let mut g = lock(&group);
        if g.state == GroupState::Dead {
            return Err(ResponseError::GroupIdNotFound);
        }
        let protocol = g.protocol.clone().unwrap_or_default();
        let mut subscribed: Vec<String> = if g.protocol_type.as_deref() == Some("consumer") {
            g.members.values().flat_map(|m| subscribed_topics(&m.metadata_for(&protocol))).collect()
        } else {
            Vec::new()
        };
        for (t, _) in partitions {
            if self.consumer_subscribed_to(group_id, t) {
                subscribed.push(t.clone());
            }
        }
        let mut errors = Vec::new();
        let mut records = Vec::new();
        let mut removed = Vec::new();
        for (t, p) in partitions {
            if subscribed.contains(t) {
                errors.push(Some(ResponseError::GroupSubscribedToTopic));
            } else {
                if g.offsets.contains_key(&(t.clone(), *p)) {
                    records.push((records::offset_key(group_id, t, *p), None));
                    removed.push((t.clone(), *p));
                }
                errors.push(None);
            }
        }
        self.append(group_id, records).map_err(|_| ResponseError::CoordinatorNotAvailable)?;
        for k in removed {
            g.offsets.remove(&k);
        }
        Ok(errors)
    }

    /// Removes every group's offsets for a deleted topic.
    pub fn on_topic_deleted(&self, topic: &str) {
        let groups: Vec<GroupRef> = self.classic_groups();
        for group in groups {
            let mut g = lock(&group);
            let keys: Vec<(String, i32)> = g.offsets.keys().filter(|(t, _)| t == topic).cloned().collect();
            if keys.is_empty() {
                continue;
            }
            let records = keys.iter().map(|(t, p)| (records::offset_key(&g.group_id, t, *p), None)).collect();
            let id = g.group_id.clone();
            if self.append(&id, records).is_ok() {
                for k in keys {
                    g.offsets.remove(&k);
                }
            }
        }
    }

    /// `offsets.retention.minutes`: a consumer group's offsets expire once it has been empty that
    /// long; offsets committed outside any group protocol expire by their own commit time.
    pub(super) fn expire_offsets(&self, g: &mut ClassicGroup, now_ms: i64) {
        let retention = self.config.offsets_retention_ms;
        let expired: Vec<(String, i32)> = if g.protocol_type.is_some() {
            if g.state == GroupState::Empty && now_ms.saturating_sub(g.state_timestamp_ms) >= retention {
                g.offsets.keys().cloned().collect()
            } else {
                Vec::new()
            }
        } else if g.members.is_empty() {
            g.offsets
                .iter()
                .filter(|(_, v)| now_ms.saturating_sub(v.commit_timestamp) >= retention)
                .map(|(k, _)| k.clone())
                .collect()
        } else {
            Vec::new()
        };
        if expired.is_empty() {
            return;
        }
        let records = expired.iter().map(|(t, p)| (records::offset_key(&g.group_id, t, *p), None)).collect();
        if self.append(&g.group_id.clone(), records).is_ok() {
            tracing::info!(group = %g.group_id, count = expired.len(), "expired committed offsets");
            for k in expired {
                g.offsets.remove(&k);
            }
        }
    }

    /// Runs offset retention as if the clock read `now_ms` (the ticker passes the real time;
    /// tests pass a future one instead of waiting days).
    pub fn expire_offsets_at(&self, now_ms: i64) {
        let groups: Vec<GroupRef> = self.classic_groups();
        for group in groups {
            let mut g = lock(&group);
            self.expire_offsets(&mut g, now_ms);
        }
    }

    /// Committed offsets of every group, for metrics and tools: group → (topic, partition) → offset.
    pub fn all_offsets(&self) -> BTreeMap<String, BTreeMap<(String, i32), i64>> {
        let groups: Vec<GroupRef> = self.classic_groups();
        groups
            .iter()
            .map(|g| {
                let g = lock(g);
                (g.group_id.clone(), g.offsets.iter().map(|(k, v)| (k.clone(), v.offset)).collect())
            })
            .collect()
    }
}

impl crate::txn::TxnCompletionListener for GroupCoordinator {
    fn on_txn_completed(&self, producer_id: i64, offsets_partition: i32, commit: bool) {
        self.complete_txn(producer_id, offsets_partition, commit);
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;

    #[test]
    fn subscribed_topics_reads_every_subscription_version() {
        // v0 as clients write it: [i16 version][topics][user data].
        let mut v0 = BytesMut::new();
        v0.put_i16(0);
        v0.put_i32(2);
        for t in ["a", "b"] {
            v0.put_i16(1);
            v0.put_slice(t.as_bytes());
        }
        v0.put_i32(-1);
        assert_eq!(subscribed_topics(&v0.freeze()), vec!["a", "b"]);
        for version in 1..=3 {
            let mut s = ConsumerProtocolSubscription::default();
            s.topics = vec![StrBytes::from_static_str("t")];
            s.owned_partitions = vec![Default::default()];
            s.owned_partitions[0].topic = TopicName(StrBytes::from_static_str("t"));
            let mut b = BytesMut::new();
            b.put_i16(version);
            s.encode(&mut b, version).expect("encodes");
            assert_eq!(subscribed_topics(&b.freeze()), vec!["t"], "v{version}");
        }
        assert!(subscribed_topics(&Bytes::from_static(b"\x00")).is_empty());
        assert!(subscribed_topics(&Bytes::from_static(b"\x00\x00\x00\x00\x00\x05")).is_empty());
    }
}
