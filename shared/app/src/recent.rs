//! What every API request of a merchant needs before its handler — the merchant's settings
//! and its signing profile — kept for a few seconds per process, so a warm function's
//! create is one store request, not three.
//!
//! The price is staleness, bounded by [`FRESH_FOR`]: a change made by another process (another
//! function instance, the admin CLI) reaches this one within that time. A change made through
//! this process is seen at once: its writer calls [`Recent::forget`].

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::entities::{Merchant, SigningProfile};

/// How long a read is used before it is read again (wall time, not business time).
pub const FRESH_FOR: Duration = Duration::from_secs(5);
/// Entries kept per cache; a full cache starts over (cheap, and bounds memory per process).
const CAPACITY: usize = 4096;

/// When a value was read, and what it was (`None`: absent, remembered too).
type Entry<V> = (Instant, Option<Arc<V>>);

/// Recently read values by key.
pub struct Recent<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
    fresh_for: Duration,
    /// Moved on by every [`Recent::forget`]: a read that started before a forget may have
    /// seen the old value, so it is not kept.
    forgets: AtomicU64,
}

impl<K: Eq + Hash + Clone, V> Recent<K, V> {
    pub fn new(fresh_for: Duration) -> Self {
        Recent { entries: Mutex::new(HashMap::new()), fresh_for, forgets: AtomicU64::new(0) }
    }

    /// The value read within `fresh_for`, else `load`'s (kept unless it failed).
    pub async fn get_or_load<E>(&self, key: &K, load: impl AsyncFnOnce() -> Result<Option<V>, E>) -> Result<Option<Arc<V>>, E> {
        if let Some(hit) = self.fresh(key) {
            return Ok(hit);
        }
        let read_at = Instant::now();
        let forgets = self.forgets.load(Ordering::SeqCst);
        let value = load().await?.map(Arc::new);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if self.forgets.load(Ordering::SeqCst) != forgets {
            return Ok(value);
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key.clone(), (read_at, value.clone()));
        Ok(value)
    }

    fn fresh(&self, key: &K) -> Option<Option<Arc<V>>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|(at, _)| at.elapsed() < self.fresh_for).map(|(_, v)| v.clone())
    }

    /// Drops what is kept for `key`: the next read goes to the store.
    pub fn forget(&self, key: &K) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.forgets.fetch_add(1, Ordering::SeqCst);
        entries.remove(key);
    }
}

/// The per-merchant reads of the request pipeline.
pub struct RecentMerchants {
    pub merchants: Recent<String, Merchant>,
    pub signing: Recent<String, SigningProfile>,
}

impl RecentMerchants {
    pub fn new(fresh_for: Duration) -> Self {
        RecentMerchants { merchants: Recent::new(fresh_for), signing: Recent::new(fresh_for) }
    }
}

impl Default for RecentMerchants {
    fn default() -> Self {
        RecentMerchants::new(FRESH_FOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kept_while_fresh_then_read_again() {
        let cache: Recent<String, u32> = Recent::new(Duration::from_millis(50));
        let key = "m".to_string();
        let reads = std::sync::atomic::AtomicU32::new(0);
        let load = async || -> Result<Option<u32>, ()> { Ok(Some(reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst))) };
        assert_eq!(*cache.get_or_load(&key, load).await.unwrap().unwrap(), 0);
        assert_eq!(*cache.get_or_load(&key, load).await.unwrap().unwrap(), 0, "still fresh: not read again");
        cache.forget(&key);
        assert_eq!(*cache.get_or_load(&key, load).await.unwrap().unwrap(), 1, "forgotten: read again");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(*cache.get_or_load(&key, load).await.unwrap().unwrap(), 2, "stale: read again");
        let failed = cache.get_or_load(&"x".to_string(), async || Err::<Option<u32>, _>("down")).await;
        assert_eq!(failed.unwrap_err(), "down");
        assert_eq!(*cache.get_or_load(&"x".to_string(), load).await.unwrap().unwrap(), 3, "a failed read is not kept");
    }

    #[tokio::test]
    async fn a_read_overtaken_by_a_forget_is_not_kept() {
        let cache: Recent<String, &str> = Recent::new(Duration::from_secs(60));
        let key = "m".to_string();
        // The read sees the old value, the change lands and forgets while it is in flight.
        let raced = cache
            .get_or_load(&key, async || {
                cache.forget(&key);
                Ok::<_, ()>(Some("old"))
            })
            .await;
        assert_eq!(raced.unwrap().as_deref(), Some(&"old"), "the caller still gets what it read");
        let next = cache.get_or_load(&key, async || Ok::<_, ()>(Some("new"))).await.unwrap();
        assert_eq!(next.as_deref(), Some(&"new"), "the old value was not kept");
    }
}
