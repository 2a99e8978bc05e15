//! Scheduled recurring charges: occurrence `n` of a scheduled mandate becomes exactly one
//! `next_in_series` session (id-independent: found again by its derived reference), charged
//! off-session; soft declines retry on the same session after 1, 3 and 5 days; the outcome
//! moves the mandate (counts, failure streak, next occurrence, completion, suspension).
//!
//! Any number of triggers for the same occurrence charge once: the session is found by its
//! reference before one is created, a second charge of a session with an attempt running is
//! refused by the attempt claim, and recording an occurrence that is no longer pending
//! writes nothing. The local server triggers this from a sweep on the test clock; in AWS a
//! one-time EventBridge schedule per occurrence will (not built yet).

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use paysession_domain::mandate::{Mandate, MandateStatus, OccurrenceOutcome};
use paysession_domain::model::MandateType;
use paysession_domain::payment::AttemptStatus;
use paysession_domain::schedule;
use paysession_domain::session::{PaymentSession, events_for};
use paysession_domain::{SessionStatus, parse_create_session};
use serde_json::json;

use crate::context::{Core, Payments};
use crate::ids::new_id;
use crate::mandates::{self, MandateError};
use crate::payments::{self, PaymentFailure};
use crate::ports::{MandateStore, MerchantStore, SessionQuery, SessionStore, StoreError};
use crate::sessions::{UpdateError, update_with};

/// How long an occurrence's session stays payable: long enough for every retry.
const OCCURRENCE_SESSION_LIFETIME: Duration = Duration::days(14);

/// What one trigger did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Triggered {
    /// Nothing was due (not yet, already recorded, or the mandate is not active).
    NothingDue,
    Charged {
        occurrence: u32,
        session_id: String,
    },
    /// Soft decline: the occurrence retries at this time.
    RetryAt {
        occurrence: u32,
        at: DateTime<Utc>,
    },
    Failed {
        occurrence: u32,
        session_id: String,
    },
}

/// Stores that can list scheduled mandates due at `now` (the embedded store; in AWS the
/// scheduler names the mandate).
#[async_trait]
pub trait DueMandates: Send + Sync {
    async fn due_mandates(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<(String, String)>, StoreError>;
}

/// The session of occurrence `n`: found by its derived reference, or created.
async fn occurrence_session<S: SessionStore + MerchantStore + ?Sized>(
    cx: &Core<S>,
    mandate: &Mandate,
    n: u32,
    now: DateTime<Utc>,
) -> Result<PaymentSession, StoreError> {
    let reference = mandate.occurrence_reference(n);
    let query = SessionQuery {
        customer_id: Some(mandate.customer_id.clone()),
        reference: Some(reference.clone()),
        limit: 1,
        now,
        ..Default::default()
    };
    if let Some(existing) = cx.store.list_sessions(&mandate.merchant_id, &query).await?.items.into_iter().next() {
        return Ok(existing);
    }
    let merchant = cx
        .store
        .get_merchant(&mandate.merchant_id)
        .await?
        .ok_or_else(|| StoreError::Backend(format!("merchant {} of mandate {} is missing", mandate.merchant_id, mandate.id)))?;
    let amount = mandate.amount.ok_or_else(|| StoreError::Backend(format!("scheduled mandate {} has no amount", mandate.id)))?;
    let body = json!({
        "amount": amount.minor(), "currency": mandate.currency.code(), "customer_id": mandate.customer_id,
        "reference": reference, "session_type": "next_in_series", "mandate_id": mandate.id,
        "mode": "api", "expires_at": now + OCCURRENCE_SESSION_LIFETIME,
    });
    let spec = parse_create_session(&body, now, &merchant.policy())
        .map_err(|e| StoreError::Backend(format!("occurrence {n} of mandate {}: {e:?}", mandate.id)))?;
    let session = PaymentSession::create(spec, new_id("ps"), merchant.id.clone(), None, now);
    let events = events_for(None, &session, now, || new_id("evt"));
    match cx.store.create_session(&session, &events, None).await {
        Ok(()) => Ok(session),
        // Another trigger of the same occurrence created it first: use that one.
        Err(StoreError::DuplicateReference) => cx
            .store
            .list_sessions(&mandate.merchant_id, &query)
            .await?
            .items
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Backend(format!("occurrence session {reference} vanished"))),
        Err(e) => Err(e),
    }
}

/// Moves the mandate past occurrence `n` (or to its retry time), with its events. A mandate
/// gone meanwhile has nothing to record.
async fn record<S: MandateStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    id: &str,
    change: impl Fn(&Mandate, DateTime<Utc>) -> Option<Mandate>,
) -> Result<(), StoreError> {
    match mandates::update_with(cx, merchant_id, id, |m, now| Ok(change(m, now))).await {
        Ok(_) | Err(MandateError::NotFound(_)) | Err(MandateError::Refused(_)) => Ok(()),
        Err(MandateError::Store(e)) => Err(e),
    }
}

/// Charges the pending occurrence of a scheduled mandate if it is due.
pub async fn trigger<S: SessionStore + MerchantStore + MandateStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    merchant_id: &str,
    mandate_id: &str,
) -> Result<Triggered, StoreError> {
    let now = cx.clock.now();
    let Some(mandate) = cx.store.get_mandate(merchant_id, mandate_id).await? else { return Ok(Triggered::NothingDue) };
    let due = mandate.status == MandateStatus::Active
        && mandate.mandate_type == MandateType::Scheduled
        && mandate.next_charge_at.is_some_and(|at| at <= now);
    if !due {
        return Ok(Triggered::NothingDue);
    }
    let n = mandate.next_occurrence;
    let mut session = occurrence_session(cx, &mandate, n, now).await?;
    if session.status_at(now) == SessionStatus::Open {
        let method =
            cx.store.list_payment_methods(merchant_id, &mandate.customer_id).await?.into_iter().find(|m| m.id == mandate.payment_method_id);
        session = match method {
            Some(method) => match payments::charge_off_session(cx, pay, session.clone(), &method, false).await {
                Ok(s) => s,
                // Another trigger is charging it right now: it records the outcome.
                Err(PaymentFailure::Refused(_)) => return Ok(Triggered::NothingDue),
                Err(PaymentFailure::Store(e)) => return Err(e),
            },
            // A detached card revokes its mandates; a trigger racing that finds none.
            None => return Ok(Triggered::NothingDue),
        };
    }
    let failed: Vec<_> = session.payments.iter().filter(|a| a.status == AttemptStatus::Failed).collect();
    let outcome = match session.status {
        SessionStatus::Succeeded => OccurrenceOutcome::Charged,
        SessionStatus::Open if !failed.is_empty() => {
            let code = failed.last().and_then(|a| a.failure_code.clone()).unwrap_or_default();
            match schedule::retry_at(&code, failed.len(), now) {
                Some(at) => {
                    record(cx, merchant_id, mandate_id, |m, t| m.retry_occurrence(n, at, t)).await?;
                    return Ok(Triggered::RetryAt { occurrence: n, at });
                }
                None => {
                    // No retry left: the occurrence's session fails (and says so to webhooks).
                    update_with(cx, session.clone(), true, |s, t| Ok::<_, std::convert::Infallible>(s.give_up(t))).await.map_err(|e| {
                        match e {
                            UpdateError::Store(e) => e,
                            UpdateError::Refused(never) => match never {},
                        }
                    })?;
                    OccurrenceOutcome::Failed
                }
            }
        }
        SessionStatus::Open => return Ok(Triggered::NothingDue),
        _ => OccurrenceOutcome::Failed,
    };
    record(cx, merchant_id, mandate_id, |m, t| m.record_occurrence(n, outcome, t)).await?;
    Ok(match outcome {
        OccurrenceOutcome::Charged => Triggered::Charged { occurrence: n, session_id: session.id },
        OccurrenceOutcome::Failed => Triggered::Failed { occurrence: n, session_id: session.id },
    })
}

/// One pass of the local scheduler: triggers every due mandate; returns what it charged.
pub async fn sweep<S: SessionStore + MerchantStore + MandateStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    source: &dyn DueMandates,
) -> Result<Vec<Triggered>, StoreError> {
    let mut out = Vec::new();
    for (merchant_id, id) in source.due_mandates(cx.clock.now(), 100).await? {
        let t = trigger(cx, pay, &merchant_id, &id).await?;
        if t != Triggered::NothingDue {
            tracing::info!(mandate_id = %id, result = ?t, "recurring charge");
            out.push(t);
        }
    }
    Ok(out)
}
