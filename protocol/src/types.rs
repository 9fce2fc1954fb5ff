//! Newtypes for the integers Kafka's protocol uses for different things, so that handing a
//! producer epoch where a leader epoch is expected, or a sequence where an offset is expected,
//! fails to compile instead of corrupting state.
//!
//! Each is `#[repr(transparent)]` over the wire type, `Copy` and ordered like it. Conversions are
//! explicit (`From` both ways, `new`/`get`); arithmetic is left to the caller on the raw value,
//! because Kafka's rules for each (wrapping sequences, epochs bumped by one) differ.

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident($raw:ty)) => {
        $(#[$doc])*
        #[repr(transparent)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name($raw);

        impl $name {
            pub const fn new(value: $raw) -> Self {
                Self(value)
            }
            pub const fn get(self) -> $raw {
                self.0
            }
        }

        impl From<$raw> for $name {
            fn from(value: $raw) -> Self {
                Self(value)
            }
        }

        impl From<$name> for $raw {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

newtype!(
    /// A position in a partition's log (`base_offset`, `log_end_offset`, ...).
    Offset(i64)
);
newtype!(
    /// An idempotent or transactional producer's id (`-1`: none).
    ProducerId(i64)
);
newtype!(
    /// A producer id's epoch, bumped when a transactional producer is fenced or re-initialised.
    ProducerEpoch(i16)
);
newtype!(
    /// A producer's per-partition record sequence number (wraps at `i32::MAX`).
    Sequence(i32)
);
newtype!(
    /// A partition leader's epoch, stamped into each batch and kept in the leader-epoch cache.
    LeaderEpoch(i32)
);

impl ProducerId {
    /// The id of batches from a non-idempotent producer.
    pub const NONE: ProducerId = ProducerId(-1);
}

impl ProducerEpoch {
    /// The epoch of batches from a non-idempotent producer.
    pub const NONE: ProducerEpoch = ProducerEpoch(-1);
}

impl Sequence {
    /// The base sequence of batches from a non-idempotent producer.
    pub const NONE: Sequence = Sequence(-1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip_and_order_like_the_raw_value() {
        assert_eq!(i64::from(Offset::from(42)), 42);
        assert_eq!(ProducerEpoch::new(3).get(), 3);
        assert!(Sequence::new(-1) < Sequence::new(0));
        assert_eq!(LeaderEpoch::from(7).to_string(), "7");
        assert_eq!(ProducerId::NONE.get(), -1);
    }
}
