//! Payments as objects (`GET /v1/payments…`) and what happens to an authorisation after the
//! customer left: capture, void, and the automatic void at `capture_before`.
//!
//! A payment lives on its session (`payments[]`); its refund counters beside it
//! ([`crate::ports::RefundStore`]). Capture and void ask the processor first (our payment id
//! is its idempotency key) and then write the session conditionally: a write lost after the
//! processor acted is repaired by the retry of the same request, which asks again and is
//! answered the same.

use chrono::{DateTime, Utc};
use paysession_domain::payment::{AttemptStatus, PaymentError, VOID_EXPIRED, VOID_REQUESTED};
use paysession_domain::refund::PaymentMoney;
use paysession_domain::session::{PaymentSession, ViewJson};
use serde_json::Value;

use crate::context::{Core, Payments};
use crate::payments::payment_call;
use crate::ports::{IdempotencyCompletion, Page, RefundStore, SessionQuery, SessionStore, StoreError};
use crate::processor::ActionOutcome;
use crate::refunds::find_payment;
use crate::retry::Races;
use crate::sessions::reread;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("no payment with id {0}")]
    NotFound(String),
    #[error(transparent)]
    Refused(#[from] PaymentError),
    /// The processor declined the capture or void.
    #[error("the processor refused: {0}")]
    ProcessorRefused(&'static str),
    /// The processor did not answer; nothing was written, and a retry asks again.
    #[error("the processor did not answer; retry with the same Idempotency-Key")]
    ProcessorUnavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The API object of payment `payment_id` of `session` as of `now`, with its refund counters.
pub fn view(session: &PaymentSession, payment_id: &str, money: Option<PaymentMoney>, now: DateTime<Utc>) -> Option<Value> {
    session.payments.iter().find(|a| a.id == payment_id).map(|a| session.payment_view(a, money, now))
}

pub async fn get<S: SessionStore + RefundStore + ?Sized>(cx: &Core<S>, merchant_id: &str, id: &str) -> Result<Option<Value>, StoreError> {
    let Some(found) = find_payment(cx, merchant_id, id).await? else { return Ok(None) };
    let money = cx.store.payment_money(merchant_id, &found.session.id, id).await?;
    Ok(Some(found.session.payment_view(found.attempt(), money, cx.clock.now())))
}

/// Every payment of a session, newest first, with their counters.
pub async fn of_session<S: RefundStore + ?Sized>(cx: &Core<S>, session: &PaymentSession) -> Result<Vec<Value>, StoreError> {
    let money = if session.payments.iter().any(|a| a.status == AttemptStatus::Succeeded) {
        cx.store.session_money(&session.merchant_id, &session.id).await?
    } else {
        Vec::new()
    };
    let of = |id: &str| money.iter().find(|(p, _)| p == id).map(|(_, m)| *m);
    let now = cx.clock.now();
    Ok(session.payments.iter().rev().map(|a| session.payment_view(a, of(&a.id), now)).collect())
}

/// The sum a session's payments have refunded (`amount_refunded` of the session object).
pub async fn session_refunded<S: RefundStore + ?Sized>(cx: &Core<S>, session: &PaymentSession) -> Result<i64, StoreError> {
    if !session.payments.iter().any(|a| a.status == AttemptStatus::Succeeded) {
        return Ok(0);
    }
    Ok(cx.store.session_money(&session.merchant_id, &session.id).await?.iter().map(|(_, m)| m.refunded).sum())
}

/// Filters of `GET /v1/payments`.
#[derive(Debug, Clone, Default)]
pub struct PaymentQuery {
    pub session_id: Option<String>,
    pub status: Option<AttemptStatus>,
    pub limit: usize,
    /// Continue after this payment (exclusive).
    pub after: Option<String>,
}

/// A merchant's payments, newest session first and a session's newest payment first.
/// Sessions are read a page at a time; a payment is found in its session's record.
pub async fn list<S: SessionStore + RefundStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    q: &PaymentQuery,
) -> Result<Page<Value>, StoreError> {
    let mut out = Vec::new();
    let wanted = |v: &Value| q.status.is_none_or(|s| v["status"] == s.as_str());
    let mut skip_until = q.after.clone();
    let mut sessions_after = None;
    if let Some(after) = &q.after
        && let Some(found) = find_payment(cx, merchant_id, after).await?
    {
        sessions_after = Some(crate::ports::Cursor { created_at: found.session.created_at, id: found.session.id.clone() });
        for v in of_session(cx, &found.session).await? {
            if skip_until.is_some() {
                if v["id"] == after.as_str() {
                    skip_until = None;
                }
                continue;
            }
            if wanted(&v) {
                out.push(v);
            }
        }
    }
    if let Some(session_id) = &q.session_id {
        if q.after.is_none()
            && let Some(s) = cx.store.get_session(merchant_id, session_id).await?
        {
            out.extend(of_session(cx, &s).await?.into_iter().filter(|v| wanted(v)));
        }
        if q.after.as_ref().is_some_and(|_| sessions_after.as_ref().is_none_or(|c| &c.id != session_id)) {
            out.clear();
        }
        return Ok(Page::from_overfetched(out, q.limit));
    }
    let now = cx.clock.now();
    while out.len() <= q.limit {
        let page = cx
            .store
            .list_sessions(merchant_id, &SessionQuery { limit: 100, after: sessions_after.clone(), now, ..Default::default() })
            .await?;
        for s in &page.items {
            if !s.payments.is_empty() {
                out.extend(of_session(cx, s).await?.into_iter().filter(|v| wanted(v)));
            }
        }
        match page.items.last() {
            Some(last) if page.has_more => sessions_after = Some(crate::ports::Cursor { created_at: last.created_at, id: last.id.clone() }),
            _ => break,
        }
    }
    Ok(Page::from_overfetched(out, q.limit))
}

/// Captures `amount` (default: all) of an authorisation. `respond` renders the answer from
/// the session written and, under an idempotency claim, the completion written with it.
pub async fn capture<S: SessionStore + ?Sized, R>(
    cx: &Core<S>,
    pay: &Payments,
    merchant_id: &str,
    id: &str,
    amount: Option<i64>,
    respond: impl Fn(&PaymentSession, &ViewJson) -> (R, Option<IdempotencyCompletion>),
) -> Result<R, CaptureError> {
    change(cx, pay, merchant_id, id, Change::Capture(amount), respond).await
}

/// Voids an authorisation the merchant will not capture.
pub async fn void<S: SessionStore + ?Sized, R>(
    cx: &Core<S>,
    pay: &Payments,
    merchant_id: &str,
    id: &str,
    respond: impl Fn(&PaymentSession, &ViewJson) -> (R, Option<IdempotencyCompletion>),
) -> Result<R, CaptureError> {
    change(cx, pay, merchant_id, id, Change::Void(VOID_REQUESTED), respond).await
}

/// Voids payment `payment_id` of `session_id` if its authorisation has expired: what the
/// sweeper and the TTL deletion of its authorisation item run. `false` when nothing was due
/// (captured, voided already, or not yet expired), so replays are harmless.
pub async fn void_if_expired<S: SessionStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    merchant_id: &str,
    session_id: &str,
    payment_id: &str,
) -> Result<bool, CaptureError> {
    let Some(session) = cx.store.get_session(merchant_id, session_id).await? else { return Ok(false) };
    if !session.expired_authorisations(cx.clock.now()).iter().any(|p| p == payment_id) {
        return Ok(false);
    }
    match change(cx, pay, merchant_id, payment_id, Change::Void(VOID_EXPIRED), |_, _| ((), None)).await {
        Ok(()) => Ok(true),
        Err(CaptureError::Refused(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

#[derive(Clone, Copy)]
enum Change {
    Capture(Option<i64>),
    Void(&'static str),
}

async fn change<S: SessionStore + ?Sized, R>(
    cx: &Core<S>,
    pay: &Payments,
    merchant_id: &str,
    id: &str,
    what: Change,
    respond: impl Fn(&PaymentSession, &ViewJson) -> (R, Option<IdempotencyCompletion>),
) -> Result<R, CaptureError> {
    let mut current = find_payment(cx, merchant_id, id).await?.ok_or_else(|| CaptureError::NotFound(id.to_string()))?.session;
    let session_id = current.id.clone();
    let decide = |s: &PaymentSession, now| match what {
        Change::Capture(amount) => s.capture(id, amount, now),
        Change::Void(reason) => s.void(id, reason, now),
    };
    // Refused by the rules before the processor hears of it.
    decide(&current, cx.clock.now())?;
    let call = payment_call(&current, id);
    let processor = pay.of_payment(&current, id).await?;
    let said = match what {
        Change::Capture(amount) => {
            let capturable = current.payments.iter().find(|a| a.id == id).map_or(0, |a| a.amount_capturable());
            processor.capture(&call, amount.unwrap_or(capturable)).await
        }
        Change::Void(_) => processor.void(&call).await,
    };
    match said {
        ActionOutcome::Done => {}
        ActionOutcome::Failed { code } => return Err(CaptureError::ProcessorRefused(code)),
        ActionOutcome::Unknown => return Err(CaptureError::ProcessorUnavailable),
    }
    let mut races = Races::new(format!("session {session_id}"));
    loop {
        let now = cx.clock.now();
        let next = decide(&current, now)?;
        let view = ViewJson::of(&next, now);
        let events = paysession_domain::session::events_with_view(Some(&current), &next, &view, now, || crate::ids::new_event_id(&next.id));
        let (answer, completion) = respond(&next, &view);
        if crate::retry::won(cx.store.update_session(&next, current.version, &events, completion.as_ref()).await)?.is_some() {
            tracing::info!(payment_id = id, "payment {}", if matches!(what, Change::Capture(_)) { "captured" } else { "voided" });
            return Ok(answer);
        }
        races.lost()?;
        current = reread(cx, &current).await?;
    }
}
