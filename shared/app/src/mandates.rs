//! Mandate use cases: charging a mandate's saved method for a `next_in_series` session,
//! the merchant's actions on a mandate, and detaching a saved method. (The mandate itself is
//! created with the first payment: `payments`.)

use chrono::{DateTime, Utc};
use paysession_domain::errors::FieldCode;
use paysession_domain::mandate::{InvalidMandateTransition, Mandate, MandateAction, mandate_events};
use paysession_domain::payment::SavedPaymentMethod;
use paysession_domain::session::{EventData, EventRecord, PaymentSession, events_for};
use paysession_domain::{FieldError, SessionSpec};

use crate::context::{Core, Payments};
use crate::entities::Merchant;
use crate::ids::new_event_id;
use crate::payments;
use crate::ports::{Cursor, MandateQuery, MandateStore, SessionStore, StoreError};
use crate::retry::{Races, won};
use crate::sessions::SessionError;

/// A `next_in_series` session: checks the mandate (active, same customer and currency,
/// amount within its limit) and its saved method, creates the session, and charges the
/// method off-session; the session returned is final (`succeeded`, or `failed` with the
/// payment's `failure_code`) when the processor answers synchronously.
pub async fn charge<S: SessionStore + MandateStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    merchant: &Merchant,
    spec: SessionSpec,
) -> Result<PaymentSession, SessionError> {
    let field = |field: &str, code: FieldCode, message: &str| {
        SessionError::Invalid(vec![FieldError { field: field.into(), code, message: message.into() }])
    };
    let mandate_id = spec.mandate_id.clone().ok_or_else(|| field("mandate_id", FieldCode::Required, "is required"))?;
    let mandate = cx
        .store
        .get_mandate(&merchant.id, &mandate_id)
        .await?
        .ok_or_else(|| field("mandate_id", FieldCode::NotFound, "no mandate with this id"))?;
    mandate.check_charge(&spec.customer_id, spec.currency, spec.amount).map_err(|e| SessionError::Invalid(vec![e]))?;
    let method = cx
        .store
        .list_payment_methods(&merchant.id, &spec.customer_id)
        .await?
        .into_iter()
        .find(|m| m.id == mandate.payment_method_id)
        .ok_or_else(|| field("mandate_id", FieldCode::Inactive, "the mandate's payment method was detached"))?;
    let now = cx.clock.now();
    let session = PaymentSession::create(spec, merchant.id.clone(), now);
    let events = events_for(None, &session, now, || new_event_id(&session.id));
    cx.store.create_session(&session, &events, None).await?;
    tracing::info!(session_id = %session.id, mandate_id = %mandate.id, "next_in_series session created");
    payments::charge_off_session(cx, pay, session, &method, true).await.map_err(|f| match f {
        payments::PaymentFailure::Refused(e) => SessionError::Payment(e),
        payments::PaymentFailure::Store(e) => SessionError::Store(e),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum MandateError {
    #[error("no mandate with id {0}")]
    NotFound(String),
    #[error(transparent)]
    Refused(#[from] InvalidMandateTransition),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The one read-decide-write loop of a mandate: `change` returns the next version (or
/// `None`: nothing to write), written conditionally on the version read with its events and
/// re-read after a lost race. Returns what was written.
pub async fn update_with<S: MandateStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    id: &str,
    change: impl Fn(&Mandate, DateTime<Utc>) -> Result<Option<Mandate>, InvalidMandateTransition>,
) -> Result<Option<Mandate>, MandateError> {
    let mut races = Races::new(format!("mandate {id}"));
    loop {
        let current = cx.store.get_mandate(merchant_id, id).await?.ok_or_else(|| MandateError::NotFound(id.to_string()))?;
        let now = cx.clock.now();
        let Some(next) = change(&current, now)? else { return Ok(None) };
        let events = mandate_events(&current, &next, now, || new_event_id(&next.id));
        if won(cx.store.update_mandate(&next, current.version, &events).await)?.is_some() {
            tracing::info!(mandate_id = id, status = next.status.as_str(), "mandate updated");
            return Ok(Some(next));
        }
        races.lost()?;
    }
}

/// Suspends, resumes or revokes a mandate.
pub async fn act<S: MandateStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    id: &str,
    action: &MandateAction,
) -> Result<Mandate, MandateError> {
    let written = update_with(cx, merchant_id, id, |m, now| m.apply(action, now).map(Some)).await?;
    Ok(written.expect("an allowed action always writes"))
}

/// Detaches a customer's saved method and revokes every mandate that charges it
/// (`revocation_reason: payment_method_detached`). `None` when there was no such method.
pub async fn detach<S: MandateStore + SessionStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    customer_id: &str,
    method_id: &str,
) -> Result<Option<SavedPaymentMethod>, StoreError> {
    let methods = cx.store.list_payment_methods(merchant_id, customer_id).await?;
    let Some(method) = methods.into_iter().find(|m| m.id == method_id) else { return Ok(None) };
    let now = cx.clock.now();
    let detached = EventRecord {
        id: new_event_id(&method.id),
        event_type: "payment_method.detached".into(),
        session_id: method.id.clone(),
        created_at: now,
        data: EventData::of(&method.to_api(), None),
    };
    // Its mandates are revoked first and the method deleted last: a crash in between
    // leaves the method attached (a retried detach finishes the job), never an active
    // mandate on a method that is gone. Revoking is idempotent, so concurrent detaches
    // both get through it; only the one whose delete removes the method reports.
    let revoke = MandateAction::Revoke { reason: "payment_method_detached".into() };
    let mut after = None;
    loop {
        let query = MandateQuery { customer_id: Some(customer_id.to_string()), status: None, limit: 100, after: after.take() };
        let page = cx.store.list_mandates(merchant_id, &query).await?;
        for m in page.items.iter().filter(|m| m.payment_method_id == method_id && !m.status.is_terminal()) {
            match act(cx, merchant_id, &m.id, &revoke).await {
                Ok(_) | Err(MandateError::Refused(_)) | Err(MandateError::NotFound(_)) => {}
                Err(MandateError::Store(e)) => return Err(e),
            }
        }
        match (page.has_more, page.items.last()) {
            (true, Some(last)) => after = Some(Cursor { created_at: last.created_at, id: last.id.clone() }),
            _ => break,
        }
    }
    if !cx.store.delete_payment_method(&method, &[detached]).await? {
        return Ok(None);
    }
    tracing::info!(payment_method_id = method_id, "payment method detached");
    Ok(Some(method))
}
