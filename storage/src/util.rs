//! Small helpers with no state of their own: wall-clock milliseconds and cheap randomness
//! (segment roll jitter, unique names for deleted partition dirs) without extra dependencies.
//! Safe to call from any thread.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A random 64-bit value: std's randomly keyed SipHash over a counter and the time. Good enough
/// for jitter and unique names; not for cryptography.
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    COUNTER.fetch_add(1, Ordering::Relaxed).hash(&mut h);
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0).hash(&mut h);
    h.finish()
}

/// A random 128-bit value (the `<uuid>` in `-delete` dir names).
pub fn random_u128() -> u128 {
    (u128::from(random_u64()) << 64) | u128::from(random_u64())
}
