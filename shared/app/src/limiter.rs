//! Limits failed client authentications per key (a client id, a source address) in fixed
//! windows, with a hard cap on the keys remembered so memory stays bounded whatever the
//! request mix. In-process: each Lambda instance and the local server count their own.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// One limit: at most `max_failures` in each `window`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max_failures: u32,
    pub window: Duration,
}

/// Failed client authentications allowed per client id, per minute.
pub const PER_CLIENT: Limit = Limit { max_failures: 10, window: Duration::minutes(1) };
/// …and per source address, per minute (several clients may share an egress address).
pub const PER_ADDRESS: Limit = Limit { max_failures: 30, window: Duration::minutes(1) };
/// Keys remembered at most: about 2 MB.
pub const MAX_KEYS: usize = 10_000;
/// Longest key remembered; longer ones are cut (client ids are at most 200 characters).
const MAX_KEY_LEN: usize = 220;

struct Window {
    started: DateTime<Utc>,
    failures: u32,
    limit: Limit,
}

impl Window {
    fn expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.started + self.limit.window
    }
}

pub struct FailureLimiter {
    windows: Mutex<HashMap<String, Window>>,
    capacity: usize,
}

impl Default for FailureLimiter {
    fn default() -> Self {
        FailureLimiter::with_capacity(MAX_KEYS)
    }
}

fn cut(key: &str) -> String {
    key.chars().take(MAX_KEY_LEN).collect()
}

impl FailureLimiter {
    pub fn with_capacity(capacity: usize) -> Self {
        FailureLimiter { windows: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    /// Takes one attempt against every key, counted as a failure until [`Self::succeeded`]
    /// gives it back: check and count are one step under the lock, so concurrent attempts
    /// can never exceed a limit. `Err(retry_after)` (nothing counted) when a key has used up
    /// its limit in its current window.
    pub fn attempt(&self, keys: &[(&str, Limit)], now: DateTime<Utc>) -> Result<(), Duration> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        Self::refused(&windows, keys, now)?;
        self.count(&mut windows, keys, now);
        Ok(())
    }

    /// Gives back an attempt that succeeded.
    pub fn succeeded(&self, keys: &[(&str, Limit)], now: DateTime<Utc>) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        for (key, _) in keys {
            if let Some(w) = windows.get_mut(&cut(key)).filter(|w| !w.expired(now)) {
                w.failures = w.failures.saturating_sub(1);
            }
        }
    }

    /// `Err(retry_after)` when any key has used up its limit in its current window (tests
    /// inspect the limiter with it; callers take attempts).
    #[cfg(test)]
    fn check(&self, keys: &[(&str, Limit)], now: DateTime<Utc>) -> Result<(), Duration> {
        Self::refused(&self.windows.lock().unwrap_or_else(|p| p.into_inner()), keys, now)
    }

    fn refused(windows: &HashMap<String, Window>, keys: &[(&str, Limit)], now: DateTime<Utc>) -> Result<(), Duration> {
        let wait = keys
            .iter()
            .filter_map(|(k, _)| windows.get(&cut(k)))
            .filter(|w| !w.expired(now) && w.failures >= w.limit.max_failures)
            .map(|w| w.started + w.limit.window - now)
            .max();
        match wait {
            Some(w) => Err(w.max(Duration::seconds(1))),
            None => Ok(()),
        }
    }

    /// Counts one failure against each key, limit or not (tests fill windows with it).
    #[cfg(test)]
    fn record_failure(&self, keys: &[(&str, Limit)], now: DateTime<Utc>) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        self.count(&mut windows, keys, now);
    }

    fn count(&self, windows: &mut HashMap<String, Window>, keys: &[(&str, Limit)], now: DateTime<Utc>) {
        for (key, limit) in keys {
            let key = cut(key);
            if !windows.contains_key(&key) && windows.len() >= self.capacity {
                windows.retain(|_, w| !w.expired(now));
                if windows.len() >= self.capacity {
                    // Still full of live windows: forget the oldest, the one closest to its end.
                    let oldest = windows.iter().min_by_key(|(_, w)| w.started).map(|(k, _)| k.clone());
                    if let Some(oldest) = oldest {
                        windows.remove(&oldest);
                    }
                }
            }
            let w = windows.entry(key).or_insert(Window { started: now, failures: 0, limit: *limit });
            if w.expired(now) {
                *w = Window { started: now, failures: 0, limit: *limit };
            }
            w.failures = w.failures.saturating_add(1);
        }
    }

    /// Keys remembered now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.windows.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_key_is_limited_for_the_rest_of_its_window() {
        let l = FailureLimiter::default();
        let keys = [("client:cid_1", PER_CLIENT), ("addr:203.0.113.1", PER_ADDRESS)];
        for i in 0..10 {
            assert!(l.check(&keys, t(i)).is_ok(), "failure {i} is still allowed");
            l.record_failure(&keys, t(i));
        }
        assert_eq!(l.check(&keys, t(10)), Err(Duration::seconds(50)));
        assert!(l.check(&[("client:cid_2", PER_CLIENT)], t(10)).is_ok(), "another client is not limited");
        assert!(l.check(&keys, t(60)).is_ok(), "a new window");
        // The address limit is separate and higher: many clients, one address.
        for i in 0..29 {
            l.record_failure(&[(&format!("client:cid_{i}"), PER_CLIENT), ("addr:203.0.113.1", PER_ADDRESS)], t(60 + i));
        }
        assert!(l.check(&[("client:cid_new", PER_CLIENT), ("addr:203.0.113.1", PER_ADDRESS)], t(89)).is_ok());
        l.record_failure(&[("addr:203.0.113.1", PER_ADDRESS)], t(89));
        assert_eq!(l.check(&[("client:cid_new", PER_CLIENT), ("addr:203.0.113.1", PER_ADDRESS)], t(90)), Err(Duration::seconds(30)));
    }

    #[test]
    fn concurrent_attempts_never_exceed_the_limit() {
        let l = std::sync::Arc::new(FailureLimiter::default());
        let admitted = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..64 {
                s.spawn(|| {
                    if l.attempt(&[("client:cid_1", PER_CLIENT)], t(0)).is_ok() {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 10);
        let ok = FailureLimiter::default();
        for _ in 0..100 {
            ok.attempt(&[("client:cid_2", PER_CLIENT)], t(0)).unwrap();
            ok.succeeded(&[("client:cid_2", PER_CLIENT)], t(0));
        }
        assert!(ok.check(&[("client:cid_2", PER_CLIENT)], t(0)).is_ok(), "successes give their attempt back");
    }

    #[test]
    fn memory_stays_bounded() {
        let l = FailureLimiter::with_capacity(100);
        for i in 0..10_000 {
            l.record_failure(&[(&format!("addr:{i}"), PER_ADDRESS)], t(i % 50));
        }
        assert!(l.len() <= 100);
        let long = "x".repeat(100_000);
        l.record_failure(&[(&long, PER_CLIENT)], t(0));
        assert!(l.len() <= 100);
    }
}
