//! Session use cases: create, the merchant's actions (confirm, cancel, expire), and the one
//! way any other change is written ([`update_with`]): decide in the domain, write
//! conditionally on the version read with the change's events, and on a lost race re-read
//! and decide again.

use chrono::{DateTime, Utc};
use paysession_domain::errors::FieldCode;
use paysession_domain::lifecycle::InvalidTransition;
use paysession_domain::model::{Mode, PaymentMethodKind, SessionType};
use paysession_domain::session::{
    HostedPage, MerchantAction, PaymentSession, QrCode, ViewJson, VirtualAccount, events_for, events_with_view, page_locator, page_token,
    qr_locator, qr_payload_id,
};
use paysession_domain::{FieldError, SessionSpec, parse_create_session};
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::context::Core;
use crate::entities::Merchant;
use crate::ids::{new_event_id, new_id, new_token, sha256_hex};
use crate::ports::{IdempotencyCompletion, MerchantStore, SessionStore, StoreError};
use crate::retry::{Races, won};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Every failing field of the request.
    #[error("the request is invalid")]
    Invalid(Vec<FieldError>),
    #[error("no payment session with id {0}")]
    NotFound(String),
    #[error(transparent)]
    Refused(#[from] InvalidTransition),
    #[error("merchant {0} of a valid token is missing")]
    MerchantMissing(String),
    #[error(transparent)]
    Payment(#[from] paysession_domain::payment::PaymentError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates a create body against the merchant's settings at business time `now`.
pub async fn validate_create<S: MerchantStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    body: &Value,
) -> Result<(std::sync::Arc<Merchant>, SessionSpec), SessionError> {
    let merchant = cx.merchant(merchant_id).await?.ok_or_else(|| SessionError::MerchantMissing(merchant_id.to_string()))?;
    let spec = parse_create_session(body, cx.clock.now(), &merchant.policy()).map_err(SessionError::Invalid)?;
    Ok((merchant, spec))
}

/// Creates the session with its events; `respond` renders the answer from the session's
/// view (serialised once, for it and the events) and, when the request holds an
/// idempotency claim, the completion written in the same transaction.
pub async fn create<S: SessionStore + ?Sized, R>(
    cx: &Core<S>,
    merchant: &Merchant,
    spec: SessionSpec,
    respond: impl Fn(&PaymentSession, &ViewJson) -> (R, Option<IdempotencyCompletion>),
) -> Result<R, SessionError> {
    if spec.session_type == SessionType::NextInSeries {
        return Err(SessionError::Invalid(vec![FieldError {
            field: "session_type".into(),
            code: FieldCode::InvalidValue,
            message: "next_in_series sessions are created by charge_mandate".into(),
        }]));
    }
    let now = cx.clock.now();
    let mut session = PaymentSession::create(spec, merchant.id.clone(), now);
    if session.spec.mode == Mode::Redirect {
        let token = page_token(&merchant.id, &session.id, &new_token());
        let url = format!("{}/pay/{token}", cx.config.public_url.trim_end_matches('/'));
        session = session.with_page(HostedPage { url, token_hash: sha256_hex(token.as_bytes()) });
    }
    let mut draw = 0;
    loop {
        add_instructions(&mut session, draw);
        let view = ViewJson::of(&session, now);
        let events = events_with_view(None, &session, &view, now, || new_event_id(&session.id));
        let (answer, completion) = respond(&session, &view);
        match cx.store.create_session(&session, &events, completion.as_ref()).await {
            Ok(()) => {
                tracing::info!(session_id = %session.id, "payment session created");
                return Ok(answer);
            }
            // The number is a hash of the id and the draw: the next draw gives another.
            // Nothing was written, so the caller never sees the number refused.
            Err(StoreError::VirtualAccountTaken(number)) if draw < VIRTUAL_ACCOUNT_DRAWS => {
                draw += 1;
                tracing::warn!(session_id = %session.id, %number, "virtual account number taken; drawing another");
            }
            Err(StoreError::VirtualAccountTaken(_)) => {
                return Err(StoreError::Backend("every virtual account number drawn was taken".into()).into());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// How many more numbers a create draws when its virtual-account number is taken
/// (each draw collides with probability sessions / 10¹²).
const VIRTUAL_ACCOUNT_DRAWS: u32 = 3;

/// Confirm, cancel or expire on the merchant's behalf: one conditional write with the
/// change's events (and the idempotency completion `respond` gives).
pub async fn act<S: SessionStore + ?Sized, R>(
    cx: &Core<S>,
    merchant_id: &str,
    id: &str,
    action: MerchantAction,
    respond: impl Fn(&PaymentSession, &ViewJson) -> (R, Option<IdempotencyCompletion>),
) -> Result<R, SessionError> {
    let mut races = Races::new(format!("session {id}"));
    loop {
        let current = cx.store.get_session(merchant_id, id).await?.ok_or_else(|| SessionError::NotFound(id.to_string()))?;
        let now = cx.clock.now();
        let next = current.apply(action.clone(), now)?;
        let view = ViewJson::of(&next, now);
        let events = events_with_view(Some(&current), &next, &view, now, || new_event_id(&next.id));
        let (answer, completion) = respond(&next, &view);
        if won(cx.store.update_session(&next, current.version, &events, completion.as_ref()).await)?.is_some() {
            tracing::info!(session_id = %id, status = next.status.as_str(), "payment session updated");
            return Ok(answer);
        }
        races.lost()?;
    }
}

/// A new payment-request id for a confirmation.
pub fn confirm_action() -> MerchantAction {
    MerchantAction::Confirm { payment_request_id: new_id("pr") }
}

#[derive(Debug)]
pub enum UpdateError<E> {
    /// The domain refused the change.
    Refused(E),
    Store(StoreError),
}

impl<E> From<StoreError> for UpdateError<E> {
    fn from(e: StoreError) -> Self {
        UpdateError::Store(e)
    }
}

/// Applies `change` to `current` (re-read after each lost race). `change` returns the next
/// version, or `None` when there is nothing to write. With `emit_events` the write carries
/// the change's events; internal bookkeeping (one-time codes) writes none.
/// Returns the written session, or `None` when nothing was written.
pub async fn update_with<S: SessionStore + ?Sized, E>(
    cx: &Core<S>,
    current: PaymentSession,
    emit_events: bool,
    change: impl Fn(&PaymentSession, DateTime<Utc>) -> Result<Option<PaymentSession>, E>,
) -> Result<Option<PaymentSession>, UpdateError<E>> {
    let mut races = Races::new(format!("session {}", current.id));
    let mut current = current;
    loop {
        let now = cx.clock.now();
        let Some(next) = change(&current, now).map_err(UpdateError::Refused)? else { return Ok(None) };
        let events = if emit_events { events_for(Some(&current), &next, now, || new_event_id(&next.id)) } else { Vec::new() };
        if won(cx.store.update_session(&next, current.version, &events, None).await)?.is_some() {
            return Ok(Some(next));
        }
        races.lost()?;
        current = reread(cx, &current).await?;
    }
}

/// The stored version of a session after a lost race (it never disappears: sessions are
/// not deleted).
pub async fn reread<S: SessionStore + ?Sized>(cx: &Core<S>, session: &PaymentSession) -> Result<PaymentSession, StoreError> {
    cx.store
        .get_session(&session.merchant_id, &session.id)
        .await?
        .ok_or_else(|| StoreError::Backend(format!("session {} vanished", session.id)))
}

/// The session a hosted-page link opens: read by the locator the token carries, and only
/// if the whole token hashes to the one stored (compared in constant time), so a forged
/// locator with any secret finds nothing.
pub async fn find_by_page_token<S: SessionStore + ?Sized>(store: &S, token: &str) -> Result<Option<PaymentSession>, StoreError> {
    let Some(at) = page_locator(token) else { return Ok(None) };
    let Some(session) = store.get_session(at.merchant_id, at.session_id).await? else { return Ok(None) };
    let presented = sha256_hex(token.as_bytes());
    let matches = session.page_token_hash.as_deref().is_some_and(|stored| bool::from(stored.as_bytes().ct_eq(presented.as_bytes())));
    Ok(matches.then_some(session))
}

/// The session a QR payment is for: the payload id is its locator, and must be the one the
/// session shows (a session without the QR method has none).
pub async fn find_by_qr_payload<S: SessionStore + ?Sized>(store: &S, payload_id: &str) -> Result<Option<PaymentSession>, StoreError> {
    let Some(at) = qr_locator(payload_id) else { return Ok(None) };
    let session = store.get_session(at.merchant_id, at.session_id).await?;
    Ok(session.filter(|s| s.instructions.qr.as_ref().is_some_and(|q| q.payload_id == payload_id)))
}

/// Instructions for the payment methods that need them, derived from the session so they
/// are stable. The QR payload id is the session's locator (unique by construction); the
/// virtual-account number is 12 digits of a SHA-256 of the id (and of the `draw`, after the
/// first), so it can be taken: a store that guards numbers refuses the create ([`create`]
/// draws again), one that cannot refuses a deposit to a number of two sessions rather than
/// guess.
pub fn add_instructions(session: &mut PaymentSession, draw: u32) {
    if session.accepts(PaymentMethodKind::VirtualAccount) {
        let digest = match draw {
            0 => sha256_hex(session.id.as_bytes()),
            n => sha256_hex(format!("{}#{n}", session.id).as_bytes()),
        };
        let n = u64::from_str_radix(&digest[..12], 16).unwrap_or(0) % 1_000_000_000_000;
        session.instructions.virtual_account =
            Some(VirtualAccount { bank_name: "Sandbox Bank".into(), account_number: format!("8808{n:012}") });
    }
    if session.accepts(PaymentMethodKind::Qr) {
        let payload_id = qr_payload_id(&session.merchant_id, &session.id);
        session.instructions.qr = Some(QrCode {
            payload: format!("PAYSESSION|{payload_id}|{}|{}", session.spec.amount.minor(), session.spec.currency),
            payload_id,
        });
    }
}
