//! Clock adapters: the system clock, and the sandbox test clock that can be advanced.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};
pub use paysession_domain::clock::Clock;

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The setting of a deployment-wide offset kept by earlier versions: the starting offset of
/// every merchant that has not advanced its own clock.
pub const LEGACY_TEST_CLOCK_SETTING: &str = "test_clock_offset_ms";

/// The setting holding one merchant's test-clock offset in milliseconds.
pub fn test_clock_setting(merchant_id: &str) -> String {
    format!("test_clock_offset_ms:{merchant_id}")
}

/// How far ahead of the wall clock the test clock may run in total: far beyond any schedule
/// or retention a test needs, and far from the end of the representable time.
pub const MAX_OFFSET: Duration = Duration::days(100 * 366);

/// System time plus an offset that only moves forward (sandbox `POST /v1/test_clock/advance`),
/// never beyond [`MAX_OFFSET`].
#[derive(Clone, Default)]
pub struct TestClock {
    offset_ms: Arc<AtomicI64>,
}

/// An advance that would take the clock past [`MAX_OFFSET`] (or not forward at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the test clock may run at most {} days ahead; {} seconds are left", MAX_OFFSET.num_days(), .left.num_seconds())]
pub struct TooFar {
    pub left: Duration,
}

impl TestClock {
    /// A stored offset out of range (corrupt, or from a version without the bound) is
    /// clamped, so a restart never fails on it.
    pub fn with_offset(offset: Duration) -> Self {
        let ms = offset.num_milliseconds().clamp(0, MAX_OFFSET.num_milliseconds());
        TestClock { offset_ms: Arc::new(AtomicI64::new(ms)) }
    }
    pub fn offset(&self) -> Duration {
        Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
    /// Moves the clock forward by `by` (> 0), returning the new offset.
    pub fn advance(&self, by: Duration) -> Result<Duration, TooFar> {
        let (ms, max) = (by.num_milliseconds(), MAX_OFFSET.num_milliseconds());
        let moved = self
            .offset_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |current| current.checked_add(ms).filter(|next| ms > 0 && *next <= max));
        match moved {
            Ok(previous) => Ok(Duration::milliseconds(previous + ms)),
            Err(current) => Err(TooFar { left: Duration::milliseconds(max - current) }),
        }
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_bounded() {
        let c = TestClock::default();
        let ten_years = Duration::days(10 * 366);
        for _ in 0..10 {
            c.advance(ten_years).unwrap();
        }
        assert_eq!(c.offset(), MAX_OFFSET);
        assert_eq!(c.advance(Duration::seconds(1)), Err(TooFar { left: Duration::zero() }));
        assert!(c.advance(Duration::zero()).is_err() && c.advance(Duration::seconds(-5)).is_err(), "only forward");
        assert_eq!(c.offset(), MAX_OFFSET, "a refused advance changes nothing");
        assert!(c.now() > Utc::now());
        assert_eq!(TestClock::with_offset(Duration::days(1_000_000)).offset(), MAX_OFFSET, "a stored offset out of range is clamped");
        assert_eq!(TestClock::with_offset(Duration::days(-3)).offset(), Duration::zero());
    }
}
