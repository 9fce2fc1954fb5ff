//! Server-side partition assignors of KIP-848 consumer groups (Kafka's `group.consumer.assignors`):
//! `uniform` (Kafka's `UniformAssignor`, the default) and `range` (Kafka's server-side
//! `RangeAssignor`).
//!
//! An assignor is a pure function from the group's subscriptions and topic metadata to a target
//! assignment: every partition of a subscribed topic goes to exactly one member subscribed to
//! it. Inputs and outputs are ordered maps, so the same input always gives the same output (the
//! target assignment is persisted and compared; nondeterminism would cause needless rebalances).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";
/// Every assignor this broker implements, in Kafka's default preference order.
pub const ASSIGNORS: &[&str] = &[UNIFORM, RANGE];

/// One member as an assignor sees it.
#[derive(Debug, Clone, Default)]
pub struct MemberSpec {
    /// Ids of the topics the member subscribes to (only existing topics).
    pub topics: BTreeSet<Uuid>,
    /// The member's current target assignment, which `uniform` keeps where it can (stickiness).
    pub current: Assignment,
}

/// Runs the assignor `name` (one of [`ASSIGNORS`]); `topics` gives each topic's partition count.
pub fn assign(
    name: &str,
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    match name {
        RANGE => range(members, topics),
        _ => uniform(members, topics),
    }
}

/// Kafka's server-side range assignor: per topic, its subscribers sorted by member id each get a
/// contiguous range of `partitions / subscribers` partitions, the first `partitions % subscribers`
/// one more. Members subscribed to the same topics get co-partitioned ranges.
pub fn range(members: &BTreeMap<String, MemberSpec>, topics: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members.keys().map(|m| (m.clone(), Assignment::new())).collect();
    for (topic, partitions) in topics {
        let subscribers: Vec<&String> =
            members.iter().filter(|(_, s)| s.topics.contains(topic)).map(|(m, _)| m).collect();
        if subscribers.is_empty() {
            continue;
        }
        let n = subscribers.len() as i32;
        let (quota, extra) = (partitions / n, partitions % n);
        let mut next = 0;
        for (i, m) in subscribers.iter().enumerate() {
            let count = quota + i32::from((i as i32) < extra);
            if count > 0 {
                let set = out.entry((*m).clone()).or_default().entry(*topic).or_default();
                set.extend(next..next + count);
            }
            next += count;
        }
    }
    out
}

/// A sticky, balanced assignor for any mix of subscriptions (Kafka's `UniformAssignor`):
/// 1. every member keeps the partitions of its current assignment it is still subscribed to;
/// 2. unassigned partitions go, topics with the fewest subscribers first, to the subscribed member
///    holding the fewest partitions;
/// 3. a partition moves from member `a` to subscribed member `b` while `b` holds at least two
///    fewer partitions than `a`.
///
/// The result is balanced in Kafka's sense: no member could take a partition from a member
/// holding two or more partitions more than itself. Each move lowers the sum of squared counts, so
/// step 3 terminates.
pub fn uniform(members: &BTreeMap<String, MemberSpec>, topics: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    let mut owner: BTreeMap<(Uuid, i32), String> = BTreeMap::new();
    let mut count: BTreeMap<&str, usize> = members.keys().map(|m| (m.as_str(), 0)).collect();
    // 1. Stickiness: keep valid current partitions (first claimant wins should two overlap).
    for (m, spec) in members {
        for (topic, parts) in &spec.current {
            let Some(n) = topics.get(topic) else { continue };
            if !spec.topics.contains(topic) {
                continue;
            }
            for p in parts.iter().filter(|p| **p >= 0 && **p < *n) {
                if let std::collections::btree_map::Entry::Vacant(e) = owner.entry((*topic, *p)) {
                    e.insert(m.clone());
                    *count.entry(m.as_str()).or_default() += 1;
                }
            }
        }
    }
    // 2. Unassigned partitions, most constrained topics first.
    let subscribers = |topic: &Uuid| -> Vec<&str> {
        members.iter().filter(|(_, s)| s.topics.contains(topic)).map(|(m, _)| m.as_str()).collect()
    };
    let mut order: Vec<(&Uuid, &i32, Vec<&str>)> = topics.iter().map(|(t, n)| (t, n, subscribers(t))).collect();
    order.sort_by_key(|(t, _, subs)| (subs.len(), **t));
    for (topic, n, subs) in &order {
        if subs.is_empty() {
            continue;
        }
        for p in 0..**n {
            if owner.contains_key(&(**topic, p)) {
                continue;
            }
            let Some(best) = subs.iter().min_by_key(|m| (count[**m], **m)) else { continue };
            owner.insert((**topic, p), best.to_string());
            *count.entry(best).or_default() += 1;
        }
    }
    // 3. Balance: move partitions from over-full members to eligible under-full ones.
    loop {
        let mut moved = false;
        for (topic, _, subs) in &order {
            let parts: Vec<(i32, String)> =
                owner.iter().filter(|((t, _), _)| t == *topic).map(|((_, p), m)| (*p, m.clone())).collect();
            for (p, from) in parts.into_iter().rev() {
                let Some(to) = subs.iter().min_by_key(|m| (count[**m], **m)) else { continue };
                if count[to] + 1 < count[from.as_str()] {
                    if let Some(c) = count.get_mut(from.as_str()) {
                        *c -= 1;
                    }
                    *count.entry(to).or_default() += 1;
                    owner.insert((**topic, p), to.to_string());
                    moved = true;
                }
            }
        }
        if !moved {
            break;
        }
    }
    let mut out: BTreeMap<String, Assignment> = members.keys().map(|m| (m.clone(), Assignment::new())).collect();
    for ((topic, p), m) in owner {
        out.entry(m).or_default().entry(topic).or_default().insert(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    fn spec(topics: &[Uuid]) -> MemberSpec {
        MemberSpec { topics: topics.iter().copied().collect(), current: Assignment::new() }
    }

    fn counts(a: &BTreeMap<String, Assignment>) -> Vec<usize> {
        a.values().map(|x| x.values().map(|s| s.len()).sum()).collect()
    }

    /// Every partition of every subscribed topic is assigned exactly once, to a subscriber.
    fn assert_complete(
        members: &BTreeMap<String, MemberSpec>,
        topics: &BTreeMap<Uuid, i32>,
        a: &BTreeMap<String, Assignment>,
    ) {
        let mut seen = BTreeSet::new();
        for (m, asg) in a {
            for (topic, parts) in asg {
                assert!(members[m].topics.contains(topic), "{m} got an unsubscribed topic");
                for p in parts {
                    assert!(seen.insert((*topic, *p)), "partition {topic}/{p} assigned twice");
                }
            }
        }
        for (topic, n) in topics {
            if members.values().any(|s| s.topics.contains(topic)) {
                for p in 0..*n {
                    assert!(seen.contains(&(*topic, p)), "partition {topic}/{p} unassigned");
                }
            }
        }
    }

    #[test]
    fn uniform_balances_homogeneous_and_is_sticky() {
        let topics = BTreeMap::from([(t(1), 6)]);
        let mut members: BTreeMap<String, MemberSpec> =
            ["a", "b"].iter().map(|m| (m.to_string(), spec(&[t(1)]))).collect();
        let first = uniform(&members, &topics);
        assert_complete(&members, &topics, &first);
        assert_eq!(counts(&first), vec![3, 3]);
        // A third member joins: each old member keeps two of its three partitions.
        for (m, s) in members.iter_mut() {
            s.current = first[m].clone();
        }
        members.insert("c".into(), spec(&[t(1)]));
        let second = uniform(&members, &topics);
        assert_complete(&members, &topics, &second);
        assert_eq!(counts(&second), vec![2, 2, 2]);
        for m in ["a", "b"] {
            let kept = second[m][&t(1)].intersection(&first[m][&t(1)]).count();
            assert_eq!(kept, 2, "{m} keeps what it can");
        }
    }

    #[test]
    fn uniform_balances_members_with_different_subscriptions() {
        // a: t1+t2, b: t1 only, c: t2 only; 3+3 partitions → two each.
        let topics = BTreeMap::from([(t(1), 3), (t(2), 3)]);
        let members = BTreeMap::from([
            ("a".to_string(), spec(&[t(1), t(2)])),
            ("b".to_string(), spec(&[t(1)])),
            ("c".to_string(), spec(&[t(2)])),
        ]);
        let a = uniform(&members, &topics);
        assert_complete(&members, &topics, &a);
        assert_eq!(counts(&a), vec![2, 2, 2]);
        // Skewed: b alone on a 1-partition topic, a and c share 8 partitions of t2.
        let topics = BTreeMap::from([(t(1), 1), (t(2), 8)]);
        let members = BTreeMap::from([
            ("a".to_string(), spec(&[t(1), t(2)])),
            ("b".to_string(), spec(&[t(1)])),
            ("c".to_string(), spec(&[t(2)])),
        ]);
        let a = uniform(&members, &topics);
        assert_complete(&members, &topics, &a);
        assert_eq!(counts(&a), vec![4, 1, 4]);
    }

    #[test]
    fn range_gives_per_topic_ranges_in_member_order() {
        let topics = BTreeMap::from([(t(1), 7), (t(2), 2)]);
        let members = BTreeMap::from([
            ("a".to_string(), spec(&[t(1), t(2)])),
            ("b".to_string(), spec(&[t(1), t(2)])),
            ("c".to_string(), spec(&[t(1)])),
        ]);
        let a = range(&members, &topics);
        assert_complete(&members, &topics, &a);
        assert_eq!(a["a"][&t(1)], BTreeSet::from([0, 1, 2]));
        assert_eq!(a["b"][&t(1)], BTreeSet::from([3, 4]));
        assert_eq!(a["c"][&t(1)], BTreeSet::from([5, 6]));
        assert_eq!(a["a"][&t(2)], BTreeSet::from([0]));
        assert_eq!(a["b"][&t(2)], BTreeSet::from([1]));
        assert!(!a["c"].contains_key(&t(2)));
    }

    proptest::proptest! {
        #[test]
        fn uniform_is_complete_and_balanced(
            subs in proptest::collection::vec(proptest::collection::btree_set(0u8..4, 1..4), 1..7),
            parts in proptest::collection::vec(1i32..9, 4),
        ) {
            let topics: BTreeMap<Uuid, i32> = parts.iter().enumerate().map(|(i, n)| (t(i as u8), *n)).collect();
            let members: BTreeMap<String, MemberSpec> = subs
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("m{i}"), spec(&s.iter().map(|x| t(*x)).collect::<Vec<_>>())))
                .collect();
            let a = uniform(&members, &topics);
            assert_complete(&members, &topics, &a);
            // No member could take a partition from a member with two or more partitions more.
            let count = |m: &str| a[m].values().map(|s| s.len()).sum::<usize>();
            for (m, asg) in &a {
                for topic in asg.keys() {
                    for (other, s) in &members {
                        if s.topics.contains(topic) {
                            proptest::prop_assert!(count(other) + 1 >= count(m), "{other} could take from {m}");
                        }
                    }
                }
            }
        }
    }
}
