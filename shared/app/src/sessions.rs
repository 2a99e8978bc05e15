//! The one way a session changes outside the merchant API's idempotent handlers: decide in
//! the domain, write conditionally on the version read with the change's events, and on a
//! lost race re-read and decide again.

use chrono::{DateTime, Utc};
use paysession_domain::session::{events_for, PaymentSession};

use crate::ids::new_id;
use crate::ports::{Deps, StoreError};

/// Re-reads after this many lost races before giving up.
const MAX_RACES: usize = 5;

#[derive(Debug)]
pub enum UpdateError<E> {
    /// The domain refused the change.
    Refused(E),
    Store(StoreError),
}

/// Applies `change` to `current` (re-read after each lost race). `change` returns the next
/// version, or `None` when there is nothing to write. With `emit_events` the write carries
/// the change's events; internal bookkeeping (one-time codes) writes none.
/// Returns the written session, or `None` when nothing was written.
pub async fn update_with<E>(
    deps: &Deps,
    mut current: PaymentSession,
    emit_events: bool,
    change: impl Fn(&PaymentSession, DateTime<Utc>) -> Result<Option<PaymentSession>, E>,
) -> Result<Option<PaymentSession>, UpdateError<E>> {
    for _ in 0..MAX_RACES {
        let now = deps.clock.now();
        let Some(next) = change(&current, now).map_err(UpdateError::Refused)? else { return Ok(None) };
        let events = if emit_events { events_for(Some(&current), &next, now, || new_id("evt")) } else { Vec::new() };
        match deps.sessions.update_session(&next, current.version, &events, None).await {
            Ok(()) => return Ok(Some(next)),
            Err(StoreError::VersionConflict) => {
                current = match deps.sessions.get_session(&current.merchant_id, &current.id).await {
                    Ok(Some(s)) => s,
                    Ok(None) => return Err(UpdateError::Store(StoreError::Backend(format!("session {} vanished", current.id)))),
                    Err(e) => return Err(UpdateError::Store(e)),
                };
            }
            Err(e) => return Err(UpdateError::Store(e)),
        }
    }
    Err(UpdateError::Store(StoreError::Backend(format!("session {} kept changing", current.id))))
}
