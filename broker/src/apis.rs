//! The Kafka APIs Sluice serves and the version range it advertises for each: the one list that
//! ApiVersions answers from, dispatch checks against, and the per-API metrics are registered for.

use kafka_protocol::messages::ApiKey;

/// Every API Sluice serves, with the version range it advertises: Kafka 4.1's ranges for these
/// APIs (as encoded by the `kafka-protocol` crate). Each entry has a handler in `handlers/` and an
/// encode/decode round-trip test for every version.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    // Kafka 4 dropped v0-1; answered from each log's leader-epoch cache.
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ListConfigResources, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::UpdateFeatures, 0, 2),
    (ApiKey::AlterReplicaLogDirs, 1, 2),
    (ApiKey::InitProducerId, 0, 5),
    // Transactions. EndTxn v5 and TxnOffsetCommit v5 (with Produce v12+) are transactions v2
    // (KIP-890 part 2), which Kafka 4.x clients use when `transaction.version` ≥ 2 is finalized.
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::DescribeProducers, 0, 0),
    // Partition administration, answered as Kafka's controller answers on one node.
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    // The metadata quorum, with this node as its only voter.
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::DescribeTopicPartitions, 0, 0),
];

/// The advertised version range of `key`, if Sluice serves it.
pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS.iter().find(|(k, _, _)| *k == key).map(|(_, min, max)| (*min, *max))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compatibility table in README.md: `| Name (key) | Sluice versions or "not served" |
    /// ...` rows, by key.
    fn readme_rows() -> Vec<(i16, String, String)> {
        include_str!("../../README.md")
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let (name, key) = cells.get(1)?.strip_suffix(')')?.split_once(" (")?;
                let key: i16 = key.parse().ok()?;
                Some((key, name.to_string(), cells.get(2)?.to_string()))
            })
            .collect()
    }

    fn range_text(min: i16, max: i16) -> String {
        if min == max {
            min.to_string()
        } else {
            format!("{min}–{max}")
        }
    }

    /// Every advertised API has its README row with the advertised range, and every row that
    /// gives a range names an advertised API: the table users read is the one ApiVersions answers.
    #[test]
    fn readme_compatibility_table_matches_the_advertised_versions() {
        let rows = readme_rows();
        for (key, min, max) in SUPPORTED_APIS {
            let row = rows.iter().find(|(k, _, _)| *k == *key as i16);
            let (_, name, served) = row.unwrap_or_else(|| panic!("README has no row for {key:?}"));
            assert_eq!(name, &format!("{key:?}"), "README row name for key {}", *key as i16);
            assert_eq!(served, &range_text(*min, *max), "README range for {key:?}");
        }
        for (key, name, served) in &rows {
            if served != "not served" {
                let advertised = SUPPORTED_APIS.iter().any(|(k, _, _)| *k as i16 == *key);
                assert!(advertised, "README lists {name} ({key}) as served at {served}, but it is not advertised");
            }
        }
    }
}
