//! Failed attempts, counted in the store so that every Lambda instance and every local
//! process count together: per (subject, source) — a client id and the address it came
//! from — and per source, in fixed windows aligned to the epoch.
//!
//! Only failures are counted, after the credential was checked: a correct credential is
//! never refused, whoever failed before it. Client secrets are 256-bit random, so the limit
//! does not stop guessing (nothing could succeed anyway); it bounds the work and writes one
//! source can cause. A success costs no request; a failure one conditional write.

use chrono::{DateTime, Duration, Utc};

/// One kind of attempt and its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptPolicy {
    /// Names the kind of attempt in the stored key ("token", later dashboard sign-in).
    pub scope: &'static str,
    /// Failures one source may make against one subject per window.
    pub per_subject: u32,
    /// Failures one source may make in all per window (several clients may share an address).
    pub per_source: u32,
    pub window: Duration,
}

/// Client authentication at `POST /oauth/token`: 10 failures per client id and address,
/// 30 per address, per minute.
pub const CLIENT_AUTH: AttemptPolicy = AttemptPolicy { scope: "token", per_subject: 10, per_source: 30, window: Duration::minutes(1) };

/// The source of requests whose address is unknown (they share one count).
pub const UNKNOWN_SOURCE: &str = "-";

/// Longest source kept in a key (an IPv6 address with a zone fits).
const MAX_SOURCE_LEN: usize = 64;

impl AttemptPolicy {
    fn window_ms(&self) -> i64 {
        self.window.num_milliseconds().max(1)
    }

    /// The window `now` falls in (its number since the epoch).
    pub fn window_index(&self, now: DateTime<Utc>) -> i64 {
        now.timestamp_millis().div_euclid(self.window_ms())
    }

    /// When the window `now` falls in ends.
    pub fn window_end(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let end_ms = (self.window_index(now) + 1) * self.window_ms();
        DateTime::from_timestamp_millis(end_ms).unwrap_or(now)
    }

    /// Whole seconds until the window ends, rounded up: a client that waits exactly this
    /// long is in the next window (`Retry-After`).
    pub fn retry_after_secs(&self, now: DateTime<Utc>) -> u64 {
        let ms = (self.window_end(now) - now).num_milliseconds().max(1);
        (ms as u64).div_ceil(1000)
    }

    /// The stored key of `source`'s count: scope and source, the source cut to a bound.
    pub fn source_key(&self, source: &str) -> String {
        let source: String = source.chars().take(MAX_SOURCE_LEN).collect();
        format!("{}#{}", self.scope, if source.is_empty() { UNKNOWN_SOURCE } else { &source })
    }
}

/// The stored name of a subject's count: a short hash, so any client id (up to 200
/// characters, attacker-chosen when wrong) takes 16 bytes and is not stored in clear.
pub fn subject_key(subject: &str) -> String {
    let mut h = crate::ids::sha256_hex(subject.as_bytes());
    h.truncate(16);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_ms(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    #[test]
    fn retry_after_rounds_up_to_the_next_window() {
        let p = CLIENT_AUTH;
        // 1.5 s into a minute: 58.5 s left → 59, and waiting 59 s lands in the next window.
        let now = at_ms(60_000 * 1000 + 1_500);
        assert_eq!(p.retry_after_secs(now), 59);
        assert_eq!(p.window_index(now + Duration::seconds(59)), p.window_index(now) + 1);
        // On the boundary itself the whole window is left.
        assert_eq!(p.retry_after_secs(at_ms(60_000 * 1000)), 60);
        // 1 ms before the end: one second, never zero.
        assert_eq!(p.retry_after_secs(at_ms(60_000 * 1000 + 59_999)), 1);
        assert_eq!(p.window_end(now), at_ms(60_000 * 1000 + 60_000));
    }

    #[test]
    fn keys_are_bounded_and_opaque() {
        let p = CLIENT_AUTH;
        assert_eq!(p.source_key("203.0.113.7"), "token#203.0.113.7");
        assert_eq!(p.source_key(""), "token#-");
        assert!(p.source_key(&"x".repeat(10_000)).len() <= 70);
        let k = subject_key(&"cid_".repeat(100));
        assert_eq!(k.len(), 16);
        assert_ne!(subject_key("cid_a"), subject_key("cid_b"));
    }
}
