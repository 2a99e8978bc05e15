//! Failed attempts on SQLite: one transaction of the single writer reads both counts and
//! adds to them, so concurrent failures never pass a limit.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use paysession_app::limiter::{AttemptPolicy, subject_key};
use paysession_app::ports::{AttemptLimiter, StoreError};
use rusqlite::{OptionalExtension, params};

use crate::cached::Cached;
use crate::{EmbeddedStore, backend, ms};

/// The subject under which a source's total is kept.
const TOTAL: &str = "";

#[async_trait]
impl AttemptLimiter for EmbeddedStore {
    async fn count_failure(&self, policy: &AttemptPolicy, source: &str, subject: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let (source, subject) = (policy.source_key(source), subject_key(subject));
        let (window, until, now_ms) = (policy.window_index(now), ms(policy.window_end(now)), ms(now));
        let (per_source, per_subject) = (i64::from(policy.per_source), i64::from(policy.per_subject));
        self.tx(move |c| {
            c.run("DELETE FROM attempts WHERE until_ms <= ?1", [now_ms]).map_err(backend)?;
            let count = |who: &str| -> Result<i64, StoreError> {
                let n: Option<i64> = c
                    .row("SELECT n FROM attempts WHERE source = ?1 AND window = ?2 AND subject = ?3", params![source, window, who], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(backend)?;
                Ok(n.unwrap_or(0))
            };
            if count(TOTAL)? >= per_source || count(&subject)? >= per_subject {
                return Ok(false);
            }
            for who in [TOTAL, subject.as_str()] {
                c.run(
                    "INSERT INTO attempts(source, window, subject, n, until_ms) VALUES (?1, ?2, ?3, 1, ?4)
                     ON CONFLICT(source, window, subject) DO UPDATE SET n = n + 1",
                    params![source, window, who, until],
                )
                .map_err(backend)?;
            }
            Ok(true)
        })
        .await
    }
}
