//! Refunds: reserve, ask the processor, apply what it says; reconciliation asks again.
//!
//! The reservation is one conditional write on the payment's counters with the refund and
//! its `refund.created` event (and the idempotency completion), made before the processor is
//! called: concurrent refunds can never sum above `amount_received`, and a retry of the
//! request replays the first answer instead of refunding again. The answer is the refund as
//! reserved (`pending`); what the processor then says moves it on, visible on `GET` and in
//! the `refund.*` events. An answer that never came leaves it `pending` with a sync due.

use chrono::{DateTime, Utc};
use paysession_domain::payment::{AttemptStatus, PaymentAttempt};
use paysession_domain::refund::{MoneyDelta, PaymentMoney, Refund, RefundRequest, RefundStatus, sync_delay};
use paysession_domain::session::{PaymentSession, owning_session_id};

use crate::context::{Core, Payments};
use crate::ids::{new_child_id, new_event_id};
use crate::payments::payment_call;
use crate::ports::{IdempotencyCompletion, RefundStore, SessionStore, StoreError};
use crate::processor::{RefundAnswer, RefundCall, RefundOutcome};
use crate::retry::{Races, won};

#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error("no payment with id {0}")]
    PaymentNotFound(String),
    #[error("no refund with id {0}")]
    NotFound(String),
    /// The payment cannot be refunded in its state (`requires_capture`: cancel it instead).
    #[error("{0}")]
    NotRefundable(String),
    #[error("the amount exceeds what is refundable ({refundable})")]
    ExceedsRefundable { refundable: i64 },
    #[error("the payment has {0} refunds, the most it may have")]
    LimitReached(u32),
    #[error("a {from} refund cannot become {to}")]
    InvalidTransition { from: &'static str, to: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A payment found by its id: its session and its attempt.
pub struct FoundPayment {
    pub session: PaymentSession,
    pub index: usize,
}

impl FoundPayment {
    pub fn attempt(&self) -> &PaymentAttempt {
        &self.session.payments[self.index]
    }
}

/// The payment `payment_id` of `merchant_id`: its id names its session, one read. A payment
/// made before ids named their session (`pay_` + 32 hex digits, whose first 12 are its
/// creation time in milliseconds) is looked for among the sessions created in the 31 days
/// before it (the longest a session accepts payments is 30 days), newest first, at most
/// [`LEGACY_SCAN_SESSIONS`] of them: stored payments read as payments with no migration.
pub async fn find_payment<S: SessionStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    payment_id: &str,
) -> Result<Option<FoundPayment>, StoreError> {
    let in_session =
        |session: PaymentSession| session.payments.iter().position(|a| a.id == payment_id).map(|index| FoundPayment { session, index });
    if let Some(session_id) = owning_session_id(payment_id) {
        return Ok(cx.store.get_session(merchant_id, &session_id).await?.and_then(in_session));
    }
    let Some(made) = legacy_payment_time(payment_id) else { return Ok(None) };
    let oldest = made - chrono::Duration::days(31);
    let mut q = crate::ports::SessionQuery {
        limit: 100,
        after: Some(crate::ports::Cursor { created_at: made + chrono::Duration::milliseconds(1), id: String::new() }),
        now: cx.clock.now(),
        ..Default::default()
    };
    let mut seen = 0;
    while seen < LEGACY_SCAN_SESSIONS {
        let page = cx.store.list_sessions(merchant_id, &q).await?;
        seen += page.items.len();
        let last = page.items.last().map(|s| crate::ports::Cursor { created_at: s.created_at, id: s.id.clone() });
        if let Some(found) = page.items.into_iter().find_map(in_session) {
            return Ok(Some(found));
        }
        match last {
            Some(cursor) if page.has_more && cursor.created_at >= oldest => q.after = Some(cursor),
            _ => break,
        }
    }
    Ok(None)
}

/// Sessions a lookup of an old payment id reads at most.
pub const LEGACY_SCAN_SESSIONS: usize = 2_000;

/// The creation time an old-style payment id carries (`crate::ids::new_id`).
fn legacy_payment_time(id: &str) -> Option<DateTime<Utc>> {
    let hex = id.strip_prefix("pay_").filter(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))?;
    DateTime::from_timestamp_millis(i64::from_str_radix(&hex[..12], 16).ok()?)
}

/// Reserves and submits a refund. `respond` renders the answer from the refund as reserved
/// and, under an idempotency claim, the completion written with the reservation.
pub async fn create<S: SessionStore + RefundStore + ?Sized, R>(
    cx: &Core<S>,
    pay: &Payments,
    merchant_id: &str,
    req: RefundRequest,
    respond: impl Fn(&Refund) -> (R, Option<IdempotencyCompletion>),
) -> Result<R, RefundError> {
    let found =
        find_payment(cx, merchant_id, &req.payment_id).await?.ok_or_else(|| RefundError::PaymentNotFound(req.payment_id.clone()))?;
    let attempt = found.attempt();
    match attempt.status {
        AttemptStatus::Succeeded => {}
        AttemptStatus::RequiresCapture => {
            return Err(RefundError::NotRefundable(
                "the payment is requires_capture: nothing was taken yet; void it with POST /v1/payments/{id}/cancel".into(),
            ));
        }
        other => {
            return Err(RefundError::NotRefundable(format!("the payment is {}; only succeeded payments are refunded", other.as_str())));
        }
    }
    let received = attempt.amount_received();
    // The counters are read only to default the amount to all that is left, or to say what
    // is left when the amount is more than was ever received; otherwise the reservation's
    // condition is the check (a payment's first reservation creates the counters from
    // `received`, so an amount above it must not reach the write).
    let money = async || -> Result<PaymentMoney, StoreError> {
        Ok(cx.store.payment_money(merchant_id, &found.session.id, &attempt.id).await?.unwrap_or(PaymentMoney::untouched(received)))
    };
    let amount = match req.amount {
        Some(amount) => amount,
        None => money().await?.refundable,
    };
    if amount <= 0 || amount > received {
        return Err(RefundError::ExceedsRefundable { refundable: money().await?.refundable.max(0) });
    }
    let now = cx.clock.now();
    let refund = Refund {
        id: new_child_id("re", &found.session.id),
        merchant_id: merchant_id.to_string(),
        payment_id: attempt.id.clone(),
        session_id: found.session.id.clone(),
        amount,
        currency: found.session.spec.currency.code().to_string(),
        reason: req.reason,
        status: RefundStatus::Pending,
        failure_reason: None,
        processor_reference: None,
        metadata: req.metadata,
        // Reconciliation asks first after a few seconds (a refund often settles that fast),
        // then backs off; an answer that moves the refund on replaces this.
        next_sync_at: Some(now + FIRST_SYNC_AFTER),
        sync_attempts: 0,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let events = refund.events(None, now, || new_event_id(&refund.id));
    let (answer, completion) = respond(&refund);
    match cx.store.create_refund(&refund, received, &events, completion.as_ref()).await {
        Ok(()) => {}
        Err(StoreError::RefundRefused { refund_count, .. }) if refund_count >= paysession_domain::refund::MAX_REFUNDS_PER_PAYMENT => {
            return Err(RefundError::LimitReached(refund_count));
        }
        Err(StoreError::RefundRefused { refundable, .. }) => return Err(RefundError::ExceedsRefundable { refundable: refundable.max(0) }),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(refund_id = %refund.id, payment_id = %refund.payment_id, amount, "refund reserved");
    let call = refund_call(&found.session, &refund, now);
    let said = match pay.of_payment(&found.session, &refund.payment_id).await {
        Ok(processor) => processor.refund(&call).await,
        Err(e) => {
            tracing::error!(refund_id = %refund.id, error = %e, "no processor for the refund's payment; reconciliation will submit it");
            RefundAnswer::of(RefundOutcome::Unknown)
        }
    };
    match &said.outcome {
        RefundOutcome::Unknown | RefundOutcome::NotFound => {
            tracing::warn!(refund_id = %refund.id, "no answer to the refund call; reconciliation will ask");
            return Ok(answer);
        }
        // Still pending: nothing to write; the sync the reservation set due asks again (and
        // records the processor's reference). One write fewer on the usual path.
        RefundOutcome::Known { status: RefundStatus::Pending, .. } => return Ok(answer),
        RefundOutcome::Known { .. } => {}
    }
    if let Err(e) = apply(cx, refund, said, false).await {
        // The refund is reserved and its sync is due: reconciliation finishes it.
        tracing::warn!(error = %e, "could not record the processor's refund answer; reconciliation will");
    }
    Ok(answer)
}

fn refund_call<'a>(session: &'a PaymentSession, refund: &'a Refund, now: DateTime<Utc>) -> RefundCall<'a> {
    RefundCall {
        id: &refund.id,
        amount: refund.amount,
        currency: &refund.currency,
        payment: payment_call(session, &refund.payment_id),
        created_at: refund.created_at,
        now,
    }
}

/// Writes what the processor said about `refund`, re-reading on a lost race. `synced`: the
/// answer came from a sync, which counts towards the back-off.
pub async fn apply<S: RefundStore + ?Sized>(
    cx: &Core<S>,
    mut refund: Refund,
    said: RefundAnswer,
    synced: bool,
) -> Result<Refund, RefundError> {
    let mut races = Races::new(format!("refund {}", refund.id));
    loop {
        let now = cx.clock.now();
        let mut next = refund.clone();
        let mut delta = MoneyDelta::default();
        if let RefundOutcome::Known { status, failure_reason } = &said.outcome {
            match refund.moved(*status, failure_reason.clone(), now) {
                Ok(Some((moved, d))) => {
                    next = moved;
                    delta = d;
                }
                Ok(None) => {}
                // An answer about a state the refund has left (a sync racing a cancel): the
                // refund as it is stands.
                Err(e) => {
                    tracing::warn!(refund_id = %refund.id, error = %e, "processor answer does not apply");
                    return Ok(refund);
                }
            }
        }
        if said.reference.is_some() && next.processor_reference != said.reference {
            next.processor_reference = said.reference.clone();
        }
        if synced {
            next.sync_attempts += 1;
        }
        next.next_sync_at = match (&said.outcome, next.status) {
            (_, RefundStatus::Failed | RefundStatus::Canceled | RefundStatus::RequiresAction) => None,
            (RefundOutcome::Unknown | RefundOutcome::NotFound, _) => Some(now + sync_delay(next.sync_attempts)),
            (_, RefundStatus::Pending) => Some(now + said.check_after.unwrap_or_else(|| sync_delay(next.sync_attempts))),
            // A success the processor may still reverse is looked at again then.
            (_, RefundStatus::Succeeded) => said.check_after.map(|after| now + after),
        };
        if next == refund {
            return Ok(refund);
        }
        if next.version == refund.version {
            next.version += 1;
            next.updated_at = now;
        }
        let events = next.events(Some(&refund), now, || new_event_id(&next.id));
        if won(cx.store.update_refund(&next, refund.version, delta, &events).await)?.is_some() {
            if next.status != refund.status {
                tracing::info!(refund_id = %next.id, from = refund.status.as_str(), to = next.status.as_str(), "refund updated");
            }
            return Ok(next);
        }
        races.lost()?;
        refund = cx.store.get_refund(&refund.merchant_id, &refund.id).await?.ok_or_else(|| RefundError::NotFound(refund.id.clone()))?;
    }
}

const EARLY_SYNC_TOLERANCE: chrono::Duration = chrono::Duration::minutes(1);

/// When reconciliation first asks about a refund the processor left pending.
pub const FIRST_SYNC_AFTER: chrono::Duration = chrono::Duration::seconds(5);

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    /// No such refund, or no sync due (a replayed or superseded trigger): nothing done.
    NothingDue,
    /// The processor was asked; the refund as it now is.
    Asked(Box<Refund>),
}

/// Asks the processor about a refund whose sync is due: what reconciliation runs (the local
/// sweeper, the `processor-sync` function). A replayed trigger finds nothing due and does
/// nothing.
pub async fn sync<S: SessionStore + RefundStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    merchant_id: &str,
    refund_id: &str,
) -> Result<Synced, RefundError> {
    let Some(refund) = cx.store.get_refund(merchant_id, refund_id).await? else { return Ok(Synced::NothingDue) };
    let now = cx.clock.now();
    // A trigger a little early by our clock (Scheduler's is another) still syncs: asking
    // early costs one call, skipping would leave the refund without a trigger.
    if refund.next_sync_at.is_none_or(|due| due > now + EARLY_SYNC_TOLERANCE) {
        return Ok(Synced::NothingDue);
    }
    let session = cx.store.get_session(merchant_id, &refund.session_id).await?.ok_or_else(|| RefundError::NotFound(refund.id.clone()))?;
    let call = refund_call(&session, &refund, now);
    let processor = pay.of_payment(&session, &refund.payment_id).await?;
    let mut said = processor.sync_refund(&call).await;
    if said.outcome == RefundOutcome::NotFound {
        // Reserved, but the processor never received it (the creating request stopped
        // between its write and its call): submitted now, under the same id.
        tracing::warn!(refund_id = %refund.id, "the processor never received the refund; submitting it");
        said = processor.refund(&call).await;
    }
    apply(cx, refund, said, true).await.map(|r| Synced::Asked(Box::new(r)))
}

/// `POST /v1/refunds/{id}/cancel`: only a refund waiting for action can be called off.
pub async fn cancel<S: RefundStore + ?Sized>(cx: &Core<S>, merchant_id: &str, id: &str) -> Result<Refund, RefundError> {
    let refund = cx.store.get_refund(merchant_id, id).await?.ok_or_else(|| RefundError::NotFound(id.to_string()))?;
    if refund.status != RefundStatus::RequiresAction {
        return Err(RefundError::InvalidTransition { from: refund.status.as_str(), to: "canceled" });
    }
    let said = RefundAnswer {
        outcome: RefundOutcome::Known { status: RefundStatus::Canceled, failure_reason: None },
        reference: None,
        check_after: None,
    };
    apply(cx, refund, said, false).await
}

/// The processor (the sandbox's `POST /sandbox/refunds/{id}/complete`, a processor webhook)
/// reports a refund's final state.
pub async fn processor_reports<S: RefundStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    id: &str,
    status: RefundStatus,
    failure_reason: Option<String>,
) -> Result<Refund, RefundError> {
    let refund = cx.store.get_refund(merchant_id, id).await?.ok_or_else(|| RefundError::NotFound(id.to_string()))?;
    if refund.status != status && !refund.status.can_move_to(status) {
        return Err(RefundError::InvalidTransition { from: refund.status.as_str(), to: status.as_str() });
    }
    let said = RefundAnswer { outcome: RefundOutcome::Known { status, failure_reason }, reference: None, check_after: None };
    apply(cx, refund, said, false).await
}
