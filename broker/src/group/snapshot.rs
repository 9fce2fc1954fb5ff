//! A point-in-time view of every classic group for metrics: state, member count and committed
//! offsets. Taken group by group under each group's lock, so it is consistent per group, not
//! across groups — good enough for lag gauges computed at scrape time.

use std::collections::BTreeMap;

use super::{lock, GroupCoordinator, GroupRef};

/// One group as the metrics see it.
#[derive(Debug, Clone)]
pub struct GroupSnapshot {
    pub group_id: String,
    /// Kafka's state name (`Stable`, `Empty`, …).
    pub state: &'static str,
    pub members: usize,
    /// (topic, partition) → committed offset.
    pub offsets: BTreeMap<(String, i32), i64>,
}

impl GroupCoordinator {
    /// Every classic group's state, member count and committed offsets.
    pub fn snapshot(&self) -> Vec<GroupSnapshot> {
        let groups: Vec<GroupRef> = self.classic_groups();
        groups
            .iter()
            .map(|g| {
                let g = lock(g);
                GroupSnapshot {
                    group_id: g.group_id.clone(),
                    state: g.state.name(),
                    members: g.members.len(),
                    offsets: g.offsets.iter().map(|(k, v)| (k.clone(), v.offset)).collect(),
                }
            })
            .collect()
    }
}
