//! Settings as last read or written by this process. In sandbox mode every API request reads
//! its merchant's test-clock offset (`Core::at_merchant`): a second SQLite lookup per get
//! (~9 % of a GET's CPU in a profile before statements were cached; a few percent after).
//!
//! Holding them is exact, not "fresh for a while", because this store's own `put_setting`
//! is the only writer of a setting that changes: the test clock moves only through the local
//! server's sandbox endpoint, and `paysession-admin` (the one other process that opens a data
//! directory) never writes one once the server has started (it creates the deployment signing
//! key only when none exists, and the server reads that key once, at start).

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct Settings {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Bumped by every write, so a read that raced a write does not keep what it read.
    generation: u64,
    values: HashMap<String, Option<String>>,
}

/// Where a read stands: the value held, or the generation to present with the stored one.
pub enum Held {
    Value(Option<String>),
    Miss(u64),
}

impl Settings {
    pub fn get(&self, key: &str) -> Held {
        let state = self.lock();
        match state.values.get(key) {
            Some(v) => Held::Value(v.clone()),
            None => Held::Miss(state.generation),
        }
    }

    /// Keeps `value`, read from the store, unless a write began since `generation` was taken
    /// (the read may predate that write's commit).
    pub fn fill(&self, key: &str, value: &Option<String>, generation: u64) {
        let mut state = self.lock();
        if state.generation == generation {
            state.values.insert(key.to_string(), value.clone());
        }
    }

    /// After a write to `key` (committed or not): forget it, so the next read goes to the store.
    pub fn forget(&self, key: &str) {
        let mut state = self.lock();
        state.generation = state.generation.wrapping_add(1);
        state.values.remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain data, consistent after every statement: a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_a_write_is_not_kept() {
        let s = Settings::default();
        let Held::Miss(generation) = s.get("k") else { panic!("nothing held yet") };
        s.forget("k"); // a write committed after the read above took the old value
        s.fill("k", &Some("old".into()), generation);
        assert!(matches!(s.get("k"), Held::Miss(_)), "the stale read was kept");
    }

    #[test]
    fn reads_are_held_until_a_write_to_the_key() {
        let s = Settings::default();
        let Held::Miss(generation) = s.get("k") else { panic!() };
        s.fill("k", &None, generation);
        assert!(matches!(s.get("k"), Held::Value(None)), "an absent setting is held too");
        s.forget("k");
        let Held::Miss(generation) = s.get("k") else { panic!("a write forgets the key") };
        s.fill("k", &Some("1".into()), generation);
        assert!(matches!(s.get("k"), Held::Value(Some(v)) if v == "1"));
    }
}
