//! Mandate use cases: charging a mandate's saved method for a `next_in_series` session.
//! (The mandate itself is created with the first payment: `payments`.)

use paysession_domain::errors::FieldCode;
use paysession_domain::session::{PaymentSession, events_for};
use paysession_domain::{FieldError, SessionSpec};

use crate::context::{Core, Payments};
use crate::entities::Merchant;
use crate::ids::new_id;
use crate::payments;
use crate::ports::{MandateStore, SessionStore};
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
    let session = PaymentSession::create(spec, new_id("ps"), merchant.id.clone(), None, now);
    let events = events_for(None, &session, now, || new_id("evt"));
    cx.store.create_session(&session, &events, None).await?;
    tracing::info!(session_id = %session.id, mandate_id = %mandate.id, "next_in_series session created");
    payments::charge_off_session(cx, pay, session, &method, true).await.map_err(|f| match f {
        payments::PaymentFailure::Refused(e) => SessionError::Payment(e),
        payments::PaymentFailure::Store(e) => SessionError::Store(e),
    })
}
