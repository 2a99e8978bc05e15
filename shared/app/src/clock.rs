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

/// System time plus an offset that only moves forward (sandbox `POST /v1/test_clock/advance`).
#[derive(Clone, Default)]
pub struct TestClock {
    offset_ms: Arc<AtomicI64>,
}

impl TestClock {
    pub fn with_offset(offset: Duration) -> Self {
        TestClock { offset_ms: Arc::new(AtomicI64::new(offset.num_milliseconds())) }
    }
    pub fn offset(&self) -> Duration {
        Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
    pub fn advance(&self, by: Duration) -> Duration {
        let ms = by.num_milliseconds();
        Duration::milliseconds(self.offset_ms.fetch_add(ms, Ordering::SeqCst) + ms)
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }
}
