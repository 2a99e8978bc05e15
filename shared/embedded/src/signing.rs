//! Signing profiles and spent signature nonces on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use paysession_app::ports::{SigningStore, StoreError};
use paysession_app::signing::SigningProfile;
use rusqlite::params;

use crate::cached::Cached;
use crate::{EmbeddedStore, backend, ms, one, to_json};

#[async_trait]
impl SigningStore for EmbeddedStore {
    async fn get_signing_profile(&self, merchant_id: &str) -> Result<Option<SigningProfile>, StoreError> {
        let merchant = merchant_id.to_string();
        self.lookup(move |c| one(c, "SELECT body FROM signing_profiles WHERE merchant_id = ?1", [merchant])).await
    }

    async fn put_signing_profile(&self, profile: &SigningProfile) -> Result<(), StoreError> {
        let (merchant, version, body) = (profile.merchant_id.clone(), profile.version as i64, to_json(profile)?);
        self.tx(move |c| {
            let changed = if version <= 1 {
                c.run(
                    "INSERT OR IGNORE INTO signing_profiles(merchant_id, version, body) VALUES (?1, ?2, ?3)",
                    params![merchant, version, body],
                )
            } else {
                c.run(
                    "UPDATE signing_profiles SET version = ?2, body = ?3 WHERE merchant_id = ?1 AND version = ?2 - 1",
                    params![merchant, version, body],
                )
            }
            .map_err(backend)?;
            if changed == 1 { Ok(()) } else { Err(StoreError::VersionConflict) }
        })
        .await
    }

    /// One local transaction: its answer cannot be lost, so the claimant is not kept.
    async fn claim_nonce(
        &self,
        merchant_id: &str,
        nonce: &str,
        _claimant: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (merchant, nonce, now, until) = (merchant_id.to_string(), nonce.to_string(), ms(now), ms(until));
        self.tx(move |c| {
            // Spent nonces past their time are garbage; the upsert below only revives one
            // whose time has passed, so a live nonce is never claimed twice.
            c.run("DELETE FROM nonces WHERE until_ms <= ?1", [now]).map_err(backend)?;
            let claimed = c
                .run(
                    "INSERT INTO nonces(merchant_id, nonce, until_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT(merchant_id, nonce) DO UPDATE SET until_ms = excluded.until_ms WHERE nonces.until_ms <= ?4",
                    params![merchant, nonce, until, now],
                )
                .map_err(backend)?;
            Ok(claimed == 1)
        })
        .await
    }
}
