//! Writing down expiry: one conditional transition to `expired` with its events, the same
//! for every trigger (the local sweeper; the DynamoDB TTL stream consumer). Readers already
//! see an expired session as expired; this makes it final and tells the merchant.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::convert::Infallible;

use crate::context::Core;
use crate::ports::{MerchantStore, SessionStore, SettingsStore, StoreError};
use crate::sessions::{UpdateError, update_with};

/// Expires the session if it is due. `Ok(true)` when this call wrote the expiry; a second
/// trigger for the same session (a replayed record, a sweep racing another) writes nothing.
pub async fn expire_if_due<S: SessionStore + ?Sized>(cx: &Core<S>, merchant_id: &str, session_id: &str) -> Result<bool, StoreError> {
    let Some(current) = cx.store.get_session(merchant_id, session_id).await? else { return Ok(false) };
    match update_with(cx, current, true, |s, now| Ok::<_, Infallible>(s.expire_due(now))).await {
        Ok(written) => {
            if written.is_some() {
                tracing::info!(session_id, "payment session expired");
            }
            Ok(written.is_some())
        }
        Err(UpdateError::Store(e)) => Err(e),
        Err(UpdateError::Refused(never)) => match never {},
    }
}

/// Stores that can list sessions due for expiry (the embedded store; on DynamoDB, TTL
/// items and the table stream play this part).
#[async_trait]
pub trait ExpirySweep: Send + Sync {
    /// `(merchant_id, session_id)` of up to `limit` sessions (of `merchant`, or of anyone)
    /// whose `expires_at <= now` and whose status can still expire.
    async fn due_for_expiry(&self, merchant: Option<&str>, now: DateTime<Utc>, limit: usize) -> Result<Vec<(String, String)>, StoreError>;
}

/// One pass of the sweeper: expires everything due, each session on its merchant's clock;
/// returns how many it wrote.
pub async fn sweep<S: SessionStore + SettingsStore + MerchantStore + ?Sized>(
    cx: &Core<S>,
    source: &dyn ExpirySweep,
) -> Result<usize, StoreError> {
    let mut written = 0;
    for (merchant, now) in cx.sweep_clocks().await? {
        loop {
            let due = source.due_for_expiry(merchant.as_deref(), now, 100).await?;
            let batch = due.len();
            let mut progressed = false;
            for (merchant, id) in due {
                if expire_if_due(&cx.at_merchant(&merchant).await?, &merchant, &id).await? {
                    written += 1;
                    progressed = true;
                }
            }
            // Loose sessions with an attempt running stay due but are not expired yet.
            if batch < 100 || !progressed {
                break;
            }
        }
    }
    Ok(written)
}
