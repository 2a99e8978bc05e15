//! Reconciliation: payment attempts and refunds whose processor answer is owed (pending,
//! unknown, an outcome whose write failed, or a refund success that may still be reversed)
//! are asked about again at their `next_sync_at`, and authorisations past `capture_before`
//! are voided. The local server runs [`sweep`]; on AWS the table stream creates a one-time
//! Scheduler schedule per due sync for the `processor-sync` function, and the TTL deletion
//! of an authorisation item voids it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::context::{Core, Payments};
use crate::payments::{AttemptSynced, PaymentFailure};
use crate::ports::{
    ChargeScheduler, MandateStore, MerchantStore, RefundStore, SessionStore, SettingsStore, StoreError, SyncSubject, SyncTrigger,
};

/// Stores that can list what is due (the embedded store; DynamoDB for the local server).
#[async_trait]
pub trait DueMoney: Send + Sync {
    /// `(merchant_id, refund_id)` of refunds (of `merchant`, or of anyone) whose sync is due at `now`.
    async fn due_refunds(&self, merchant: Option<&str>, now: DateTime<Utc>, limit: usize) -> Result<Vec<(String, String)>, StoreError>;
    /// `(merchant_id, session_id, payment_id)` of authorisations past `capture_before` at `now`.
    async fn due_authorisations(
        &self,
        merchant: Option<&str>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(String, String, String)>, StoreError>;
    /// `(merchant_id, session_id, attempt_id)` of pending attempts whose sync is due at `now`.
    async fn due_attempts(
        &self,
        merchant: Option<&str>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(String, String, String)>, StoreError>;
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub attempts_synced: usize,
    pub refunds_synced: usize,
    pub authorisations_voided: usize,
}

/// Syncs a pending attempt; one that settles an occurrence of a mandate lets the mandate
/// record it (or schedule its retry), as the charge's own trigger would have.
pub async fn sync_attempt<S: SessionStore + MandateStore + MerchantStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    merchant_id: &str,
    session_id: &str,
    attempt_id: &str,
) -> Result<AttemptSynced, PaymentFailure> {
    let synced = crate::payments::sync_attempt(cx, pay, merchant_id, session_id, attempt_id).await?;
    if let AttemptSynced::Settled(_) = synced
        && let Some(session) = cx.store.get_session(merchant_id, session_id).await?
        && session.spec.session_type == paysession_domain::model::SessionType::NextInSeries
        && let Some(mandate_id) = &session.spec.mandate_id
    {
        crate::recurring::trigger(cx, pay, merchant_id, mandate_id, None).await?;
    }
    Ok(synced)
}

/// One pass: each merchant on its own clock. A failure on one object is logged and left for
/// the next pass; it does not stop the others.
pub async fn sweep<S: SessionStore + RefundStore + MandateStore + MerchantStore + SettingsStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    source: &dyn DueMoney,
) -> Result<Swept, StoreError> {
    let mut swept = Swept::default();
    for (merchant, now) in cx.sweep_clocks().await? {
        for (merchant_id, session_id, attempt_id) in source.due_attempts(merchant.as_deref(), now, 100).await? {
            match sync_attempt(&cx.at_merchant(&merchant_id).await?, pay, &merchant_id, &session_id, &attempt_id).await {
                Ok(_) => swept.attempts_synced += 1,
                Err(e) => tracing::warn!(attempt_id = %attempt_id, error = %e, "attempt sync failed; next pass retries"),
            }
        }
        for (merchant_id, id) in source.due_refunds(merchant.as_deref(), now, 100).await? {
            match crate::refunds::sync(&cx.at_merchant(&merchant_id).await?, pay, &merchant_id, &id).await {
                Ok(_) => swept.refunds_synced += 1,
                Err(e) => tracing::warn!(refund_id = %id, error = %e, "refund sync failed; next pass retries"),
            }
        }
        for (merchant_id, session_id, payment_id) in source.due_authorisations(merchant.as_deref(), now, 100).await? {
            match crate::captures::void_if_expired(&cx.at_merchant(&merchant_id).await?, pay, &merchant_id, &session_id, &payment_id).await
            {
                Ok(true) => swept.authorisations_voided += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(payment_id = %payment_id, error = %e, "authorisation void failed; next pass retries"),
            }
        }
    }
    Ok(swept)
}

/// The one-time trigger of a refund's sync due at business time `due`: named by the refund
/// and that time (hex seconds; 61 characters at most, Scheduler allows 64), so a replayed
/// stream record names the same trigger and a moved sync gets one of its own.
pub async fn schedule_refund_sync<S: ?Sized>(
    cx: &Core<S>,
    scheduler: &dyn ChargeScheduler,
    merchant_id: &str,
    refund_id: &str,
    due: DateTime<Utc>,
) -> Result<(), StoreError> {
    let trigger = SyncTrigger {
        name: format!("rs-{refund_id}-{:x}", due.timestamp()),
        subject: SyncSubject::Refund { merchant_id: merchant_id.to_string(), refund_id: refund_id.to_string() },
        at: crate::recurring::trigger_time(cx, due),
    };
    scheduler.create_sync(&trigger).await
}

/// The one-time trigger of a pending attempt's sync due at business time `due` (named as a
/// refund's: `ps-` + the 50-character attempt id + hex seconds, 62 characters).
pub async fn schedule_attempt_sync<S: ?Sized>(
    cx: &Core<S>,
    scheduler: &dyn ChargeScheduler,
    merchant_id: &str,
    session_id: &str,
    attempt_id: &str,
    due: DateTime<Utc>,
) -> Result<(), StoreError> {
    let trigger = SyncTrigger {
        name: format!("ps-{attempt_id}-{:x}", due.timestamp()),
        subject: SyncSubject::Attempt {
            merchant_id: merchant_id.to_string(),
            session_id: session_id.to_string(),
            attempt_id: attempt_id.to_string(),
        },
        at: crate::recurring::trigger_time(cx, due),
    };
    scheduler.create_sync(&trigger).await
}

/// The trigger that voids an authorisation whose `capture_before` has passed (its TTL item
/// was deleted): at once.
pub async fn schedule_void<S: ?Sized>(
    cx: &Core<S>,
    scheduler: &dyn ChargeScheduler,
    merchant_id: &str,
    session_id: &str,
    payment_id: &str,
) -> Result<(), StoreError> {
    let trigger = SyncTrigger {
        name: format!("av-{payment_id}"),
        subject: SyncSubject::Authorisation {
            merchant_id: merchant_id.to_string(),
            session_id: session_id.to_string(),
            payment_id: payment_id.to_string(),
        },
        at: crate::recurring::trigger_time(cx, cx.clock.now()),
    };
    scheduler.create_sync(&trigger).await
}

/// Runs what a reconciliation trigger names: one attempt or refund sync, or one void. What
/// was done: `Ok(None)` when nothing was due (a replayed trigger).
pub async fn run_trigger<S: SessionStore + RefundStore + MandateStore + MerchantStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    subject: &SyncSubject,
) -> Result<Option<String>, String> {
    match subject {
        SyncSubject::Refund { merchant_id, refund_id } => match crate::refunds::sync(cx, pay, merchant_id, refund_id).await {
            Ok(crate::refunds::Synced::Asked(refund)) => Ok(Some(refund.status.as_str().to_string())),
            Ok(crate::refunds::Synced::NothingDue) => Ok(None),
            Err(e) => Err(e.to_string()),
        },
        SyncSubject::Attempt { merchant_id, session_id, attempt_id } => {
            match sync_attempt(cx, pay, merchant_id, session_id, attempt_id).await.map_err(|e| e.to_string())? {
                AttemptSynced::Settled(status) => Ok(Some(status.as_str().to_string())),
                AttemptSynced::StillPending => Ok(Some("pending".to_string())),
                AttemptSynced::NothingDue => Ok(None),
            }
        }
        SyncSubject::Authorisation { merchant_id, session_id, payment_id } => {
            let voided = crate::captures::void_if_expired(cx, pay, merchant_id, session_id, payment_id).await.map_err(|e| e.to_string())?;
            Ok(voided.then(|| "voided".to_string()))
        }
    }
}
