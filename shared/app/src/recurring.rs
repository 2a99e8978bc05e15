//! Scheduled recurring charges: occurrence `n` of a scheduled mandate becomes exactly one
//! `next_in_series` session (id-independent: found again by its derived reference), charged
//! off-session; soft declines retry on the same session after 1, 3 and 5 days; the outcome
//! moves the mandate (counts, failure streak, next occurrence, completion, suspension).
//!
//! Any number of triggers for the same occurrence charge once: the session is found by its
//! reference before one is created, a second charge of a session with an attempt running is
//! refused by the attempt claim, and recording an occurrence that is no longer pending
//! writes nothing. The local server triggers this from a sweep on the test clock; in AWS a
//! one-time EventBridge schedule per pending charge does, created by [`reschedule`] from
//! the table stream (committed state), so no occurrence is lost between a commit and the
//! scheduler's API.

use async_trait::async_trait;
use chrono::Timelike;
use chrono::{DateTime, Duration, Utc};
use paysession_domain::mandate::{Mandate, MandateAction, MandateStatus, OccurrenceOutcome, schedule_change};
use paysession_domain::model::MandateType;
use paysession_domain::payment::AttemptStatus;
use paysession_domain::schedule;
use paysession_domain::session::{PaymentSession, events_for};
use paysession_domain::{SessionStatus, parse_create_session};
use serde_json::json;

use crate::context::{Core, Payments};
use crate::ids::new_event_id;
use crate::mandates::{self, MandateError};
use crate::payments::{self, PaymentFailure};
use crate::ports::{ChargeScheduler, ChargeTrigger, MandateStore, MerchantStore, SessionQuery, SessionStore, SettingsStore, StoreError};
use crate::sessions::{UpdateError, update_with};

/// How long an occurrence's session stays payable: long enough for every retry.
const OCCURRENCE_SESSION_LIFETIME: Duration = Duration::days(14);

/// What one trigger did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Triggered {
    /// Nothing was due (already recorded, another occurrence, or the mandate is not active).
    NothingDue,
    /// The named occurrence is pending but its time has not come (a trigger that fired
    /// early, or a clock behind the scheduler's): try again at `at`.
    NotYetDue {
        occurrence: u32,
        at: DateTime<Utc>,
    },
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
    /// `(merchant_id, mandate_id)` of up to `limit` mandates (of `merchant`, or of anyone)
    /// waiting for a charge due at `now`.
    async fn due_mandates(&self, merchant: Option<&str>, now: DateTime<Utc>, limit: usize) -> Result<Vec<(String, String)>, StoreError>;
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
    let session = PaymentSession::create(spec, merchant.id.clone(), now);
    let events = events_for(None, &session, now, || new_event_id(&session.id));
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

/// Moves the mandate past occurrence `n` (or to its retry time), with its events; whether
/// this call wrote it. A mandate gone meanwhile, or moved on by a concurrent trigger of the
/// same occurrence, has nothing to record.
async fn record<S: MandateStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    id: &str,
    change: impl Fn(&Mandate, DateTime<Utc>) -> Option<Mandate>,
) -> Result<bool, StoreError> {
    match mandates::update_with(cx, merchant_id, id, |m, now| Ok(change(m, now))).await {
        Ok(written) => Ok(written.is_some()),
        Err(MandateError::NotFound(_)) | Err(MandateError::Refused(_)) => Ok(false),
        Err(MandateError::Store(e)) => Err(e),
    }
}

/// Charges the pending occurrence of a scheduled mandate if it is due. `expected` names the
/// occurrence a trigger was made for (a scheduler's input); a trigger for any other
/// occurrence is stale and does nothing.
pub async fn trigger<S: SessionStore + MerchantStore + MandateStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    merchant_id: &str,
    mandate_id: &str,
    expected: Option<u32>,
) -> Result<Triggered, StoreError> {
    let now = cx.clock.now();
    let Some(mandate) = cx.store.get_mandate(merchant_id, mandate_id).await? else { return Ok(Triggered::NothingDue) };
    let n = mandate.next_occurrence;
    let waiting = mandate.status == MandateStatus::Active && mandate.mandate_type == MandateType::Scheduled;
    let (true, Some(at), true) = (waiting, mandate.next_charge_at, expected.is_none_or(|e| e == n)) else {
        return Ok(Triggered::NothingDue);
    };
    if at > now {
        return Ok(Triggered::NotYetDue { occurrence: n, at });
    }
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
            // Detaching revokes a method's mandates before it deletes the method; a mandate
            // still active without one is left by an interrupted detach of an earlier
            // release: revoked here, so it stops waiting for a charge that cannot be made.
            None => {
                let revoke = MandateAction::Revoke { reason: "payment_method_detached".into() };
                match mandates::act(cx, merchant_id, mandate_id, &revoke).await {
                    Ok(_) | Err(MandateError::Refused(_)) | Err(MandateError::NotFound(_)) => {}
                    Err(MandateError::Store(e)) => return Err(e),
                }
                return Ok(Triggered::NothingDue);
            }
        };
    }
    let failed: Vec<_> = session.payments.iter().filter(|a| a.status == AttemptStatus::Failed).collect();
    let outcome = match session.status {
        SessionStatus::Succeeded => OccurrenceOutcome::Charged,
        SessionStatus::Open if !failed.is_empty() => {
            let code = failed.last().and_then(|a| a.failure_code.clone()).unwrap_or_default();
            match schedule::retry_at(&code, failed.len(), now) {
                Some(at) => {
                    let recorded = record(cx, merchant_id, mandate_id, |m, t| m.retry_occurrence(n, at, t)).await?;
                    return Ok(if recorded { Triggered::RetryAt { occurrence: n, at } } else { Triggered::NothingDue });
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
    // Only the trigger that records the outcome reports it: the others found it done.
    if !record(cx, merchant_id, mandate_id, |m, t| m.record_occurrence(n, outcome, t)).await? {
        return Ok(Triggered::NothingDue);
    }
    Ok(match outcome {
        OccurrenceOutcome::Charged => Triggered::Charged { occurrence: n, session_id: session.id },
        OccurrenceOutcome::Failed => Triggered::Failed { occurrence: n, session_id: session.id },
    })
}

/// One pass of the local scheduler: triggers every due mandate on its merchant's clock;
/// returns what it charged.
pub async fn sweep<S: SessionStore + MerchantStore + MandateStore + SettingsStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    source: &dyn DueMandates,
) -> Result<Vec<Triggered>, StoreError> {
    let mut out = Vec::new();
    for (merchant, now) in cx.sweep_clocks().await? {
        for (merchant_id, id) in source.due_mandates(merchant.as_deref(), now, 100).await? {
            let t = trigger(&cx.at_merchant(&merchant_id).await?, pay, &merchant_id, &id, None).await?;
            if !matches!(t, Triggered::NothingDue | Triggered::NotYetDue { .. }) {
                tracing::info!(mandate_id = %id, result = ?t, "recurring charge");
                out.push(t);
            }
        }
    }
    Ok(out)
}

/// The earliest wall-clock time a trigger is created for: a pending charge already due
/// (stream lag, a sandbox test clock ahead of the wall clock) fires a minute from now.
const TRIGGER_LEAD: Duration = Duration::minutes(1);

/// The wall-clock time of a trigger for business time `at`: by the sandbox test clock's
/// offset, no earlier than [`TRIGGER_LEAD`] from now, rounded up to the second so it never
/// fires before what it triggers is due.
pub fn trigger_time<S: ?Sized>(cx: &Core<S>, at: DateTime<Utc>) -> DateTime<Utc> {
    let offset = cx.test_clock.as_ref().map(|c| c.offset()).unwrap_or_default();
    let earliest = cx.clock.now() + TRIGGER_LEAD;
    let wall = at.max(earliest) - offset;
    if wall.timestamp_subsec_nanos() == 0 { wall } else { wall.with_nanosecond(0).unwrap_or(wall) + Duration::seconds(1) }
}

/// Applies one committed change of a mandate to the scheduler: creates the trigger of its
/// new pending charge, deletes the one it no longer waits for. Returns the scheduler calls
/// made. Business times become wall-clock times by the sandbox test clock's offset, rounded
/// up to the second so a trigger never fires before its charge is due.
pub async fn reschedule<S: ?Sized>(
    cx: &Core<S>,
    scheduler: &dyn ChargeScheduler,
    old: Option<&Mandate>,
    new: &Mandate,
) -> Result<usize, StoreError> {
    let change = schedule_change(old, new);
    let mut calls = 0;
    if let Some(gone) = change.delete {
        scheduler.delete(&new.trigger_name(&gone)).await?;
        calls += 1;
    }
    if let Some(pending) = change.create {
        let wall = trigger_time(cx, pending.at);
        let trigger = ChargeTrigger {
            name: new.trigger_name(&pending),
            merchant_id: new.merchant_id.clone(),
            mandate_id: new.id.clone(),
            occurrence: pending.occurrence,
            at: wall,
        };
        scheduler.create(&trigger).await?;
        calls += 1;
    }
    Ok(calls)
}
