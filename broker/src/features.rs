//! Feature versions (KIP-584, KIP-1022): what this node supports, what the cluster has finalized,
//! and the rules by which UpdateFeatures changes a finalized level, after Kafka 4.1's
//! `BrokerFeatures`, `Feature`, `MetadataVersion` and the controller's `FeatureControlManager`.
//!
//! - Supported: `metadata.version` 7–27 (3.3-IV3 to 4.1-IV1), `kraft.version` 0–1,
//!   `transaction.version` 0–2, `group.version` 0–1, `eligible.leader.replicas.version` 0–1.
//!   Kafka 4.1 also knows `share.version` and `streams.version`; Sluice serves neither (share
//!   groups, streams groups), so, as Kafka does for a feature whose highest level is 0, they are
//!   not listed, and only level 0 can be set for them.
//! - A fresh node finalizes what a fresh Kafka 4.1 node formatted with `--standalone` does:
//!   `metadata.version` 27, `kraft.version` 1, `transaction.version` 2, `group.version` 1,
//!   `eligible.leader.replicas.version` 1 (Kafka's defaults for the latest production
//!   metadata.version). A data dir from a Sluice that finalized nothing gets the same at its first
//!   start, since that Sluice behaved as no lower level.
//! - What the levels change here: `transaction.version` ≥ 1 writes `__transaction_state` values in
//!   their flexible v1 form, and Kafka 4.x clients use transactions v2 (KIP-890 part 2) only when it
//!   is ≥ 2; `group.version` 0 refuses the KIP-848 APIs (UNSUPPORTED_VERSION, as Kafka). The others
//!   are recorded and reported: one node has no quorum to reconfigure and no replicas to elect.
//! - The finalized levels and their epoch are part of the node's metadata
//!   ([`crate::metadata::MetadataStore`]); the epoch grows by one with every change, so clients
//!   (which keep the highest epoch they saw) always take the newest levels.
//!
//! No I/O here: [`plan_update`] is the controller's decision, the metadata store persists it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const METADATA_VERSION: &str = "metadata.version";
pub const KRAFT_VERSION: &str = "kraft.version";
pub const TRANSACTION_VERSION: &str = "transaction.version";
pub const GROUP_VERSION: &str = "group.version";
pub const ELIGIBLE_LEADER_REPLICAS_VERSION: &str = "eligible.leader.replicas.version";

/// Kafka's `MetadataVersion` levels this node knows, from `MINIMUM_VERSION` (3.3-IV3) to
/// `LATEST_PRODUCTION` of 4.1 (4.1-IV1): (feature level, release name, `didMetadataChange`).
pub const METADATA_VERSIONS: &[(i16, &str, bool)] = &[
    (7, "3.3-IV3", true),
    (8, "3.4-IV0", true),
    (9, "3.5-IV0", false),
    (10, "3.5-IV1", false),
    (11, "3.5-IV2", true),
    (12, "3.6-IV0", false),
    (13, "3.6-IV1", true),
    (14, "3.6-IV2", true),
    (15, "3.7-IV0", true),
    (16, "3.7-IV1", false),
    (17, "3.7-IV2", true),
    (18, "3.7-IV3", false),
    (19, "3.7-IV4", false),
    (20, "3.8-IV0", false),
    (21, "3.9-IV0", false),
    (22, "4.0-IV0", false),
    (23, "4.0-IV1", true),
    (24, "4.0-IV2", false),
    (25, "4.0-IV3", false),
    (26, "4.1-IV0", false),
    (27, "4.1-IV1", false),
];

/// `MetadataVersion.MINIMUM_VERSION` (3.3-IV3).
pub const METADATA_VERSION_MIN: i16 = 7;
/// `MetadataVersion.LATEST_PRODUCTION` of Kafka 4.1 (4.1-IV1).
pub const METADATA_VERSION_LATEST: i16 = 27;
/// `metadata.version` 4.0-IV1, which `eligible.leader.replicas.version` 1 depends on.
const IBP_4_0_IV1: i16 = 23;

/// What this node supports: (name, min level, max level), as ApiVersions reports it.
pub const SUPPORTED: &[(&str, i16, i16)] = &[
    (METADATA_VERSION, METADATA_VERSION_MIN, METADATA_VERSION_LATEST),
    (KRAFT_VERSION, 0, 1),
    (TRANSACTION_VERSION, 0, 2),
    (GROUP_VERSION, 0, 1),
    (ELIGIBLE_LEADER_REPLICAS_VERSION, 0, 1),
];

/// Every feature Kafka 4.1 defines (`Feature.PRODUCTION_FEATURES` plus `metadata.version`):
/// names outside this list are "not found", names in it that [`SUPPORTED`] lacks are supported
/// at level 0 only.
const KNOWN: &[&str] = &[
    METADATA_VERSION,
    KRAFT_VERSION,
    TRANSACTION_VERSION,
    GROUP_VERSION,
    ELIGIBLE_LEADER_REPLICAS_VERSION,
    "share.version",
    "streams.version",
];

/// The levels a fresh node finalizes.
pub const DEFAULTS: &[(&str, i16)] = &[
    (METADATA_VERSION, METADATA_VERSION_LATEST),
    (KRAFT_VERSION, 1),
    (TRANSACTION_VERSION, 2),
    (GROUP_VERSION, 1),
    (ELIGIBLE_LEADER_REPLICAS_VERSION, 1),
];

/// The finalized levels and their epoch. A feature at level 0 is absent, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizedFeatures {
    pub epoch: i64,
    pub levels: BTreeMap<String, i16>,
}

impl Default for FinalizedFeatures {
    fn default() -> Self {
        Self { epoch: 1, levels: DEFAULTS.iter().map(|(n, l)| (n.to_string(), *l)).collect() }
    }
}

impl FinalizedFeatures {
    /// The finalized level of `name` (0 when absent).
    pub fn level(&self, name: &str) -> i16 {
        self.levels.get(name).copied().unwrap_or(0)
    }

    pub fn transaction_version(&self) -> i16 {
        self.level(TRANSACTION_VERSION)
    }

    pub fn group_version(&self) -> i16 {
        self.level(GROUP_VERSION)
    }

    /// `group.version` ≥ 1: the KIP-848 consumer protocol is enabled.
    pub fn consumer_protocol_enabled(&self) -> bool {
        self.group_version() >= 1
    }
}

/// KIP-584/KIP-1022 upgrade types (`FeatureUpdate.UpgradeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeType {
    Unknown,
    Upgrade,
    SafeDowngrade,
    UnsafeDowngrade,
}

impl UpgradeType {
    pub fn from_code(code: i8) -> Self {
        match code {
            1 => UpgradeType::Upgrade,
            2 => UpgradeType::SafeDowngrade,
            3 => UpgradeType::UnsafeDowngrade,
            _ => UpgradeType::Unknown,
        }
    }
}

/// The supported range of `name` on this node; `(0, 0)` (Kafka's `DISABLED`) when not supported.
pub fn supported_range(name: &str) -> (i16, i16) {
    SUPPORTED.iter().find(|(n, _, _)| *n == name).map_or((0, 0), |(_, min, max)| (*min, *max))
}

/// Kafka's `VersionRange.toString`.
fn range_string((min, max): (i16, i16)) -> String {
    if min == max {
        min.to_string()
    } else {
        format!("{min}-{max}")
    }
}

fn invalid_update(feature: &str, level: i16, why: &str) -> String {
    format!("Invalid update version {level} for feature {feature}. {why}")
}

fn invalid_metadata_version(level: i16, why: &str) -> String {
    format!("Invalid metadata.version {level}. {why}")
}

/// `MetadataVersion.checkIfMetadataChanged`: whether any version in `(low, high]` changed the
/// metadata format, walking down from `high` as Kafka does.
fn metadata_changed(a: i16, b: i16) -> bool {
    let (low, high) = if a < b { (a, b) } else { (b, a) };
    if low == high {
        return false;
    }
    let flag = |l: i16| METADATA_VERSIONS.iter().find(|(v, _, _)| *v == l).is_some_and(|(_, _, c)| *c);
    let mut v = high;
    while !flag(v) && v != low && v > METADATA_VERSION_MIN {
        v -= 1;
    }
    v != low
}

/// The controller's decision on one UpdateFeatures request (`FeatureControlManager.updateFeatures`):
/// the levels after every update, or the message of the first refused one (INVALID_UPDATE_VERSION;
/// the request changes nothing then). `updates` is in request order; a name given twice takes
/// its last entry, as Kafka's map does.
pub fn plan_update(
    current: &FinalizedFeatures,
    updates: &[(String, i16, UpgradeType)],
    node_id: i32,
) -> Result<BTreeMap<String, i16>, String> {
    let mut merged: Vec<(String, i16, UpgradeType)> = Vec::new();
    for (name, level, ty) in updates {
        merged.retain(|(n, _, _)| n != name);
        merged.push((name.clone(), *level, *ty));
    }
    // What the other features are checked against: the current levels with every update applied.
    let mut proposed = current.levels.clone();
    for (name, level, _) in &merged {
        proposed.insert(name.clone(), *level);
    }
    let mut next = current.levels.clone();
    for (name, level, ty) in &merged {
        let (name, level, ty) = (name.as_str(), *level, *ty);
        if ty == UpgradeType::Unknown {
            return Err(invalid_update(name, level, "The controller does not support the given upgrade type."));
        }
        let current_level = current.level(name);
        if level < 0 {
            return Err(invalid_update(name, level, "A feature version cannot be less than 0."));
        }
        let range = supported_range(name);
        if level < range.0 || level > range.1 {
            let why = if range.1 == 0 {
                format!("Local controller {node_id} does not support this feature.")
            } else {
                format!("Local controller {node_id} only supports versions {}", range_string(range))
            };
            return Err(invalid_update(name, level, &why));
        }
        if level < current_level && ty == UpgradeType::Upgrade {
            return Err(invalid_update(
                name,
                level,
                "Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade.",
            ));
        }
        if level > current_level && ty != UpgradeType::Upgrade {
            return Err(invalid_update(name, level, "Can't downgrade to a newer version."));
        }
        match name {
            METADATA_VERSION => {
                if level < current_level && metadata_changed(current_level, level) {
                    return Err(invalid_metadata_version(
                        level,
                        if ty == UpgradeType::UnsafeDowngrade {
                            "Unsafe metadata downgrade is not supported in this version."
                        } else {
                            "Refusing to perform the requested downgrade because it might delete metadata information."
                        },
                    ));
                }
            }
            KRAFT_VERSION => {
                // No quorum to reconfigure: an upgrade is recorded, a downgrade refused.
                if ty != UpgradeType::Upgrade && level != current_level {
                    return Err(invalid_update(name, level, "Can't downgrade the version of this feature."));
                }
            }
            _ => {
                if !KNOWN.contains(&name) {
                    return Err(invalid_update(name, level, &format!("Feature {name} not found.")));
                }
                // `Feature.validateVersion`: every level ≥ 1 needs the minimum metadata.version;
                // ELR 1 depends on metadata.version 4.0-IV1.
                let mv = proposed.get(METADATA_VERSION).copied().unwrap_or(0);
                if level >= 1 && mv < METADATA_VERSION_MIN {
                    return Err(invalid_update(
                        name,
                        level,
                        &format!(
                            "{name} could not be set to {level} because it depends on metadata.version={METADATA_VERSION_MIN} (3.3-IV3)"
                        ),
                    ));
                }
                if name == ELIGIBLE_LEADER_REPLICAS_VERSION && level >= 1 && mv < IBP_4_0_IV1 {
                    return Err(invalid_update(
                        name,
                        level,
                        &format!(
                            "{name} could not be set to {level} because it depends on {METADATA_VERSION} level {IBP_4_0_IV1}"
                        ),
                    ));
                }
            }
        }
        if level == 0 {
            next.remove(name);
        } else {
            next.insert(name.to_string(), level);
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(name: &str, level: i16, ty: UpgradeType) -> Vec<(String, i16, UpgradeType)> {
        vec![(name.to_string(), level, ty)]
    }

    #[test]
    fn defaults_are_a_fresh_kafka_4_1_node() {
        let f = FinalizedFeatures::default();
        assert_eq!(f.level(METADATA_VERSION), 27);
        assert_eq!(f.transaction_version(), 2);
        assert_eq!(f.group_version(), 1);
        assert_eq!(f.level(KRAFT_VERSION), 1);
        assert_eq!(f.level(ELIGIBLE_LEADER_REPLICAS_VERSION), 1);
        for (name, level) in DEFAULTS {
            let (min, max) = supported_range(name);
            assert!(min <= *level && *level <= max, "{name}");
        }
    }

    #[test]
    fn transaction_and_group_versions_move_both_ways() {
        let f = FinalizedFeatures::default();
        let next = plan_update(&f, &up(TRANSACTION_VERSION, 1, UpgradeType::SafeDowngrade), 1).expect("downgrade");
        assert_eq!(next.get(TRANSACTION_VERSION), Some(&1));
        let next = plan_update(&f, &up(GROUP_VERSION, 0, UpgradeType::UnsafeDowngrade), 1).expect("downgrade");
        assert_eq!(next.get(GROUP_VERSION), None, "level 0 is absent");
        let e = plan_update(&f, &up(TRANSACTION_VERSION, 1, UpgradeType::Upgrade), 1).unwrap_err();
        assert!(e.contains("without setting the upgrade type"), "{e}");
        let e = plan_update(&f, &up(TRANSACTION_VERSION, 3, UpgradeType::Upgrade), 1).unwrap_err();
        assert_eq!(
            e,
            "Invalid update version 3 for feature transaction.version. Local controller 1 only supports versions 0-2"
        );
        let low = FinalizedFeatures { epoch: 1, levels: next };
        let e = plan_update(&low, &up(GROUP_VERSION, 1, UpgradeType::SafeDowngrade), 1).unwrap_err();
        assert!(e.ends_with("Can't downgrade to a newer version."), "{e}");
        assert!(plan_update(&low, &up(GROUP_VERSION, 1, UpgradeType::Upgrade), 1).is_ok());
        let e = plan_update(&f, &up(GROUP_VERSION, -1, UpgradeType::UnsafeDowngrade), 1).unwrap_err();
        assert!(e.ends_with("A feature version cannot be less than 0."), "{e}");
        let e = plan_update(&f, &up(GROUP_VERSION, 1, UpgradeType::Unknown), 1).unwrap_err();
        assert!(e.ends_with("The controller does not support the given upgrade type."), "{e}");
    }

    #[test]
    fn metadata_version_downgrades_only_where_nothing_changed() {
        let f = FinalizedFeatures::default();
        let e = plan_update(&f, &up(METADATA_VERSION, 28, UpgradeType::Upgrade), 1).unwrap_err();
        assert!(e.ends_with("Local controller 1 only supports versions 7-27"), "{e}");
        // 4.0-IV2 … 4.1-IV1 changed nothing since 4.0-IV1.
        assert!(plan_update(&f, &up(METADATA_VERSION, 23, UpgradeType::SafeDowngrade), 1).is_ok());
        let e = plan_update(&f, &up(METADATA_VERSION, 22, UpgradeType::SafeDowngrade), 1).unwrap_err();
        assert_eq!(e, "Invalid metadata.version 22. Refusing to perform the requested downgrade because it might delete metadata information.");
        let e = plan_update(&f, &up(METADATA_VERSION, 22, UpgradeType::UnsafeDowngrade), 1).unwrap_err();
        assert!(e.ends_with("Unsafe metadata downgrade is not supported in this version."), "{e}");
        assert!(!metadata_changed(10, 9));
        assert!(metadata_changed(11, 10));
        assert!(plan_update(&f, &up(METADATA_VERSION, 27, UpgradeType::Upgrade), 1).is_ok());
    }

    #[test]
    fn unsupported_and_unknown_features() {
        let f = FinalizedFeatures::default();
        let e = plan_update(&f, &up("share.version", 1, UpgradeType::Upgrade), 1).unwrap_err();
        assert_eq!(
            e,
            "Invalid update version 1 for feature share.version. Local controller 1 does not support this feature."
        );
        assert!(plan_update(&f, &up("share.version", 0, UpgradeType::Upgrade), 1).is_ok());
        let e = plan_update(&f, &up("no.such", 0, UpgradeType::Upgrade), 1).unwrap_err();
        assert!(e.ends_with("Feature no.such not found."), "{e}");
        let e = plan_update(&f, &up(KRAFT_VERSION, 0, UpgradeType::SafeDowngrade), 1).unwrap_err();
        assert!(e.ends_with("Can't downgrade the version of this feature."), "{e}");
        assert!(plan_update(&f, &up(KRAFT_VERSION, 1, UpgradeType::Upgrade), 1).is_ok());
    }

    #[test]
    fn one_refused_update_refuses_the_request() {
        let f = FinalizedFeatures::default();
        let updates = vec![
            (TRANSACTION_VERSION.to_string(), 1, UpgradeType::SafeDowngrade),
            (GROUP_VERSION.to_string(), 5, UpgradeType::Upgrade),
        ];
        assert!(plan_update(&f, &updates, 1).is_err());
    }
}
