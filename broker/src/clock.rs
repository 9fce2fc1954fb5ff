//! Time as the broker reads it: wall-clock milliseconds (record timestamps, retention, commit
//! times) and a monotonic [`Instant`] (session and rebalance deadlines).
//!
//! The coordinators take a [`Clock`] rather than reading the system clock themselves, so their
//! deadlines can be driven by a [`ManualClock`] in tests: advance it, call the coordinator's
//! `tick`, and the expiry happens with no waiting. Both clocks are `Send + Sync`; a
//! `ManualClock` only moves forward, when a test advances it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A source of time for code whose deadlines tests must control.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A monotonic reading, for deadlines that must not jump with the wall clock.
    fn now(&self) -> Instant;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that stands still until [`advance`](Self::advance)d; both readings move together.
#[derive(Debug)]
pub struct ManualClock {
    wall_start_ms: i64,
    instant_start: Instant,
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    /// A clock reading `wall_start_ms` now.
    pub fn new(wall_start_ms: i64) -> Self {
        Self { wall_start_ms, instant_start: Instant::now(), elapsed: Mutex::new(Duration::ZERO) }
    }

    pub fn advance(&self, by: Duration) {
        *self.elapsed.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }

    pub fn advance_ms(&self, ms: u64) {
        self.advance(Duration::from_millis(ms));
    }

    fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new(1_700_000_000_000)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.wall_start_ms.saturating_add(self.elapsed().as_millis() as i64)
    }

    fn now(&self) -> Instant {
        self.instant_start + self.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let c = ManualClock::new(1000);
        let (ms, at) = (c.now_ms(), c.now());
        assert_eq!((c.now_ms(), c.now()), (ms, at));
        c.advance_ms(250);
        assert_eq!(c.now_ms(), 1250);
        assert_eq!(c.now() - at, Duration::from_millis(250));
    }
}
