//! Taking a payment: claim → processor → outcome, each step one conditional write on the
//! session (see `paysession_domain::payment`), so two tabs paying at once reach the
//! processor once. The hosted page parses forms and renders what these return; the sandbox
//! endpoints call [`receive`].

use chrono::{DateTime, Utc};
use paysession_domain::card::CardInput;
use paysession_domain::mandate::{CustomerAcceptance, Mandate};
use paysession_domain::model::{MandateSpec, MandateType, PaymentMethodKind, SavePaymentMethod, SessionType};
use paysession_domain::payment::{AttemptStatus, CardSummary, PaymentAttempt, PaymentError, SavedPaymentMethod};
use paysession_domain::session::{EventData, EventRecord, PaymentSession, events_for};

use crate::context::{Core, Payments};
use crate::ids::{new_event_id, new_id, sha256_hex};
use crate::ports::{MandateStore, SessionStore, StoreError};
use crate::processor::{Answer, Outcome, PaymentCall, PaymentProcessor, RedirectMethod, SavedCharge};
use crate::retry::{Races, won};
use crate::sessions::{UpdateError, reread, update_with};

#[derive(Debug, thiserror::Error)]
pub enum PaymentFailure {
    /// The domain refused the step (an attempt already running, wrong amount, expired…).
    #[error(transparent)]
    Refused(#[from] PaymentError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<UpdateError<PaymentError>> for PaymentFailure {
    fn from(e: UpdateError<PaymentError>) -> Self {
        match e {
            UpdateError::Refused(e) => PaymentFailure::Refused(e),
            UpdateError::Store(e) => PaymentFailure::Store(e),
        }
    }
}

/// Where a payment step left the attempt, with the session as written.
#[derive(Debug)]
pub struct Step {
    pub session: PaymentSession,
    pub attempt_id: String,
    pub status: AttemptStatus,
}

/// How the customer pays by card: a typed card (never stored) or one of their saved methods.
pub enum CardSource {
    Typed(CardInput),
    Saved(String),
}

#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// Not a saved method of this customer, or the session does not offer saved methods.
    #[error("no such saved payment method")]
    UnknownSavedMethod,
    #[error(transparent)]
    Failed(#[from] PaymentFailure),
}

/// Whether a successful card payment is saved: always for a `first_in_series` payment (its
/// mandate charges the method) and for `always`, on the customer's tick for `prompt`, never
/// otherwise.
pub fn save_requested(session: &PaymentSession, customer_ticked: bool) -> bool {
    if session.spec.session_type == SessionType::FirstInSeries {
        return true;
    }
    match session.spec.save_payment_method {
        Some(SavePaymentMethod::Always) => true,
        Some(SavePaymentMethod::Prompt) => customer_ticked,
        _ => false,
    }
}

/// The customer's saved methods the page may offer (none unless the session shows them).
pub async fn offered_methods<S: SessionStore + ?Sized>(cx: &Core<S>, session: &PaymentSession) -> Vec<SavedPaymentMethod> {
    if !session.spec.show_saved_payment_methods {
        return Vec::new();
    }
    cx.store.list_payment_methods(&session.merchant_id, &session.spec.customer_id).await.unwrap_or_default()
}

/// A keyed fingerprint of a card number: the same card saved twice is one method, and the
/// number cannot be recovered from it.
fn fingerprint<S: ?Sized>(cx: &Core<S>, card: &CardInput) -> String {
    cx.keys.derive(&format!("card-fingerprint:{}", card.number.digits()))[..24].to_string()
}

fn new_attempt(
    processor: &dyn PaymentProcessor,
    session: &PaymentSession,
    method: PaymentMethodKind,
    amount: i64,
    card: Option<CardSummary>,
    save_requested: bool,
    now: DateTime<Utc>,
) -> PaymentAttempt {
    PaymentAttempt {
        card,
        save_requested,
        processor: Payments::recorded_name(processor),
        ..PaymentAttempt::new(crate::ids::new_child_id("pay", &session.id), method, amount, now)
    }
}

/// The processor call of attempt `attempt_id` of `session`: our id is its idempotency key.
pub fn payment_call<'a>(session: &'a PaymentSession, attempt_id: &'a str) -> PaymentCall<'a> {
    let attempt = session.payments.iter().find(|a| a.id == attempt_id);
    let method = attempt.map_or(PaymentMethodKind::Card, |a| a.method);
    PaymentCall {
        id: attempt_id,
        merchant_id: &session.merchant_id,
        session_id: &session.id,
        customer_id: &session.spec.customer_id,
        claimed_at: attempt.map_or(session.created_at, |a| a.created_at),
        return_url: None,
        amount: attempt.map_or(session.spec.amount.minor(), |a| a.amount),
        currency: session.spec.currency.code(),
        method,
        capture: if paysession_domain::payment::CaptureMethod::applies_to(method) {
            session.spec.capture_method
        } else {
            paysession_domain::payment::CaptureMethod::Automatic
        },
        reference: attempt.and_then(|a| a.processor_reference.as_deref()),
    }
}

fn saved_charge<'a>(method: &'a SavedPaymentMethod, mandate_id: Option<&'a str>) -> SavedCharge<'a> {
    SavedCharge { token: &method.processor_token, mandate_id, network_transaction_id: method.network_transaction_id.as_deref() }
}

/// Writes the claim of a new attempt; only then may the processor be called.
async fn claim<S: SessionStore + ?Sized>(
    cx: &Core<S>,
    session: PaymentSession,
    attempt: PaymentAttempt,
) -> Result<PaymentSession, PaymentFailure> {
    let written = update_with(cx, session, true, |s, now| s.claim_attempt(attempt.clone(), now).map(Some)).await?;
    Ok(written.expect("a claim always writes"))
}

/// Pays `session` by card. `page_path` (`/pay/{token}`) roots the challenge URL of a card
/// that needs 3-D Secure.
pub async fn pay_card<S: SessionStore + MandateStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    session: PaymentSession,
    source: CardSource,
    customer_ticked_save: bool,
    acceptance: Option<CustomerAcceptance>,
    page_path: &str,
) -> Result<Step, CardError> {
    let save = save_requested(&session, customer_ticked_save);
    let (typed, saved) = match source {
        CardSource::Typed(card) => (Some(card), None),
        CardSource::Saved(id) => {
            let found = offered_methods(cx, &session).await.into_iter().find(|m| m.id == id);
            (None, Some(found.ok_or(CardError::UnknownSavedMethod)?))
        }
    };
    let summary = match (&typed, &saved) {
        (Some(c), _) => CardSummary {
            brand: c.number.brand().into(),
            last4: c.number.last4().into(),
            exp_month: c.exp_month,
            exp_year: c.exp_year,
            fingerprint: fingerprint(cx, c),
        },
        (None, Some(m)) => m.card.clone(),
        (None, None) => unreachable!("one of the two is set"),
    };
    let processor = pay.for_merchant(&session.merchant_id).await.map_err(PaymentFailure::Store)?;
    let mut attempt = new_attempt(
        &*processor,
        &session,
        PaymentMethodKind::Card,
        session.spec.amount.minor(),
        Some(summary.clone()),
        save,
        cx.clock.now(),
    );
    if session.spec.session_type == SessionType::FirstInSeries {
        attempt.mandate_acceptance = acceptance;
    }
    let attempt_id = attempt.id.clone();
    let session = claim(cx, session, attempt).await?;
    let return_url = format!("{}{page_path}/challenge/{attempt_id}?returned=1", cx.config.public_url);
    let call = PaymentCall { return_url: Some(&return_url), ..payment_call(&session, &attempt_id) };
    let outcome = match (&typed, &saved) {
        (Some(card), _) => processor.authorize_card(&call, card, save).await,
        (None, Some(m)) => processor.charge_saved(&call, &saved_charge(m, None)).await,
        (None, None) => unreachable!("one of the two is set"),
    };
    Ok(finish(cx, session, &attempt_id, outcome, Some(summary), saved.map(|m| m.id), page_path).await?)
}

/// Starts a wallet or bank payment: the customer goes on to the provider's page.
pub async fn start_redirect<S: SessionStore + MandateStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    session: PaymentSession,
    method: RedirectMethod,
    page_path: &str,
) -> Result<Step, PaymentFailure> {
    let kind = match method {
        RedirectMethod::Ewallet => PaymentMethodKind::Ewallet,
        RedirectMethod::BankTransfer => PaymentMethodKind::BankTransfer,
    };
    let processor = pay.for_merchant(&session.merchant_id).await?;
    let attempt = new_attempt(&*processor, &session, kind, session.spec.amount.minor(), None, false, cx.clock.now());
    let attempt_id = attempt.id.clone();
    let session = claim(cx, session, attempt).await?;
    let outcome = processor.start_redirect(&payment_call(&session, &attempt_id), method).await;
    finish(cx, session, &attempt_id, outcome, None, None, page_path).await
}

/// The customer's answer on a challenge or provider page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
    /// The sandbox bank settles a submitted transfer.
    Settle,
    /// The customer is back from the processor's own page (3-D Secure at the issuer): the
    /// processor is asked what came of it.
    Returned,
}

/// Applies the customer's decision to an attempt waiting for one. `Ok(None)` when the
/// attempt does not wait for this decision (the page shows the session again).
pub async fn decide<S: SessionStore + MandateStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    session: PaymentSession,
    attempt_id: &str,
    decision: Decision,
    page_path: &str,
) -> Result<Option<Step>, PaymentFailure> {
    let Some(attempt) = session.payments.iter().find(|a| a.id == attempt_id).cloned() else { return Ok(None) };
    let p = pay.of_payment(&session, attempt_id).await?;
    let approved = decision == Decision::Approve;
    let call = payment_call(&session, &attempt.id);
    let outcome = match (attempt.method, attempt.status, decision) {
        (_, AttemptStatus::RequiresAction, Decision::Returned) => match p.sync_payment(&call).await {
            // Still waiting for the customer, or no answer: the page shows the step again.
            None => return Ok(None),
            Some(Answer { outcome: Outcome::RequiresAction | Outcome::Unknown, .. }) => return Ok(None),
            Some(answer) => answer,
        },
        (PaymentMethodKind::Card, AttemptStatus::RequiresAction, Decision::Approve | Decision::Deny) => {
            p.complete_authentication(&call, approved, attempt.save_requested).await
        }
        (PaymentMethodKind::Ewallet, AttemptStatus::RequiresAction, Decision::Approve | Decision::Deny) => {
            p.provider_decision(&call, RedirectMethod::Ewallet, approved).await
        }
        (PaymentMethodKind::BankTransfer, AttemptStatus::RequiresAction, Decision::Approve | Decision::Deny) => {
            p.provider_decision(&call, RedirectMethod::BankTransfer, approved).await
        }
        (PaymentMethodKind::BankTransfer, AttemptStatus::Pending, Decision::Settle) => p.settle(&call).await,
        _ => return Ok(None),
    };
    finish(cx, session, &attempt.id, outcome, attempt.card.clone(), None, page_path).await.map(Some)
}

/// Writes a processor outcome onto the attempt. A successful card payment the customer
/// chose to keep becomes a saved method, its id derived from (merchant, customer,
/// fingerprint) so saving the same card again is idempotent.
async fn finish<S: SessionStore + MandateStore + ?Sized>(
    cx: &Core<S>,
    session: PaymentSession,
    attempt_id: &str,
    answer: Answer,
    card: Option<CardSummary>,
    existing_method: Option<String>,
    page_path: &str,
) -> Result<Step, PaymentFailure> {
    let Answer { outcome, reference, network_transaction_id, redirect_url } = answer;
    let challenge_url = format!("{page_path}/challenge/{attempt_id}");
    let (status, code, next_url) = match &outcome {
        Outcome::Succeeded { .. } => (AttemptStatus::Succeeded, None, None),
        Outcome::Failed { code } => (AttemptStatus::Failed, Some(code.to_string()), None),
        // The processor's own page when it has one; the customer reaches it through ours.
        Outcome::RequiresAction => (AttemptStatus::RequiresAction, None, Some(redirect_url.unwrap_or_else(|| challenge_url.clone()))),
        Outcome::Processing => (AttemptStatus::Pending, None, Some(challenge_url)),
        // Left pending: never guessed either way.
        Outcome::Unknown => (AttemptStatus::Pending, None, None),
    };
    if session.spec.session_type == SessionType::FirstInSeries && status == AttemptStatus::Succeeded {
        return match (&outcome, card) {
            (Outcome::Succeeded { token: Some(token) }, Some(card)) => {
                complete_first_payment(cx, session, attempt_id, token, card, reference, network_transaction_id).await
            }
            // Without a reusable token no mandate can charge later, and a first payment never
            // succeeds without its mandate: the attempt fails instead.
            _ => {
                tracing::error!(session_id = %session.id, attempt_id, "the processor returned no reusable token for a first_in_series payment");
                let failed = Answer::of(Outcome::Failed { code: "processing_error" }, reference);
                Box::pin(finish(cx, session, attempt_id, failed, None, None, page_path)).await
            }
        };
    }
    let mut method_id = existing_method;
    if let (Outcome::Succeeded { token: Some(token) }, Some(card)) = (&outcome, &card) {
        let pm = saved_method(&session, card.clone(), token.clone(), network_transaction_id.clone(), cx.clock.now());
        if let Err(e) = cx.store.save_payment_method(&pm).await {
            tracing::error!(session_id = %session.id, error = %e, "could not save payment method");
        } else {
            method_id = Some(pm.id);
        }
    }
    let session_id = session.id.clone();
    let written = update_with(cx, session, true, |s, now| {
        let mut next = s.update_attempt(attempt_id, status, code.clone(), next_url.clone(), now)?;
        next.set_processor_reference(attempt_id, reference.clone());
        if status == AttemptStatus::Succeeded && method_id.is_some() {
            next.payment_method_id = method_id.clone();
        }
        Ok(Some(next))
    })
    .await?;
    tracing::info!(session_id = %session_id, attempt_id, status = ?status, "payment attempt updated");
    Ok(Step { session: written.expect("an outcome always writes"), attempt_id: attempt_id.to_string(), status })
}

/// The saved method of a card payment: its id derives from (merchant, customer,
/// fingerprint), so saving the same card again is the same method.
fn saved_method(
    session: &PaymentSession,
    card: CardSummary,
    token: String,
    network_transaction_id: Option<String>,
    now: DateTime<Utc>,
) -> SavedPaymentMethod {
    let key = format!("{}:{}:{}", session.merchant_id, session.spec.customer_id, card.fingerprint);
    SavedPaymentMethod {
        id: format!("pm_{}", &sha256_hex(key.as_bytes())[..32]),
        merchant_id: session.merchant_id.clone(),
        customer_id: session.spec.customer_id.clone(),
        method: PaymentMethodKind::Card,
        card,
        processor_token: token,
        network_transaction_id,
        created_at: now,
    }
}

/// The success of a `first_in_series` payment: the session's success, the saved method and
/// the mandate (with the acceptance recorded on the attempt) in one conditional write, with
/// their events; a lost race re-reads and decides again.
async fn complete_first_payment<S: SessionStore + MandateStore + ?Sized>(
    cx: &Core<S>,
    mut current: PaymentSession,
    attempt_id: &str,
    token: &str,
    card: CardSummary,
    reference: Option<String>,
    network_transaction_id: Option<String>,
) -> Result<Step, PaymentFailure> {
    let mut races = Races::new(format!("session {}", current.id));
    loop {
        let now = cx.clock.now();
        let pm = saved_method(&current, card.clone(), token.to_string(), network_transaction_id.clone(), now);
        let mut next = current.update_attempt(attempt_id, AttemptStatus::Succeeded, None, None, now)?;
        next.set_processor_reference(attempt_id, reference.clone());
        let attempt = current.payments.iter().find(|a| a.id == attempt_id).expect("update_attempt found it");
        let acceptance = attempt.mandate_acceptance.clone().unwrap_or(CustomerAcceptance {
            accepted_at: attempt.created_at,
            ip_address: None,
            user_agent: None,
        });
        let spec =
            current.spec.mandate.clone().unwrap_or(MandateSpec { mandate_type: MandateType::OnDemand, max_amount: None, schedule: None });
        let mandate = Mandate::from_first_payment(
            new_id("md"),
            current.merchant_id.clone(),
            &spec,
            current.spec.customer_id.clone(),
            pm.id.clone(),
            current.spec.currency,
            current.spec.amount,
            current.id.clone(),
            acceptance,
            now,
        );
        next.payment_method_id = Some(pm.id.clone());
        next.spec.mandate_id = Some(mandate.id.clone());
        let mut events = events_for(Some(&current), &next, now, || new_event_id(&next.id));
        for (event_type, data) in [("payment_method.attached", pm.to_api()), ("mandate.created", mandate.to_api())] {
            events.push(EventRecord {
                id: new_event_id(&current.id),
                event_type: event_type.into(),
                created_at: now,
                session_id: current.id.clone(),
                data: EventData::of(&data, None),
            });
        }
        let events = paysession_domain::event::in_write_order(events);
        if won(cx.store.complete_first_payment(&next, current.version, &events, &pm, &mandate).await)?.is_some() {
            tracing::info!(session_id = %next.id, mandate_id = %mandate.id, "first payment succeeded; mandate created");
            let status = next.payments.iter().find(|a| a.id == attempt_id).map_or(AttemptStatus::Succeeded, |a| a.status);
            return Ok(Step { session: next, attempt_id: attempt_id.to_string(), status });
        }
        races.lost()?;
        current = reread(cx, &current).await?;
    }
}

/// Charges a saved method with no customer present (a `next_in_series` session). With
/// `final_on_failure` (a charge the merchant asked for) a decline fails the session;
/// otherwise the session stays open for a retry. A processor asking for customer action
/// cannot be served off-session and counts as `authentication_required`.
pub async fn charge_off_session<S: SessionStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    session: PaymentSession,
    method: &SavedPaymentMethod,
    final_on_failure: bool,
) -> Result<PaymentSession, PaymentFailure> {
    let amount = session.spec.amount.minor();
    let processor = pay.for_merchant(&session.merchant_id).await?;
    let attempt = new_attempt(&*processor, &session, PaymentMethodKind::Card, amount, Some(method.card.clone()), false, cx.clock.now());
    let attempt_id = attempt.id.clone();
    let claimed = claim(cx, session, attempt).await?;
    let mandate_id = claimed.spec.mandate_id.clone();
    let Answer { outcome, reference, .. } =
        processor.charge_saved(&payment_call(&claimed, &attempt_id), &saved_charge(method, mandate_id.as_deref())).await;
    let (status, code) = match outcome {
        Outcome::Succeeded { .. } => (AttemptStatus::Succeeded, None),
        Outcome::Failed { code } => (AttemptStatus::Failed, Some(code.to_string())),
        Outcome::RequiresAction | Outcome::Processing => (AttemptStatus::Failed, Some("authentication_required".to_string())),
        // The charge may have been made: pending until reconciliation asks (a retry of the
        // occurrence cannot claim a new attempt meanwhile).
        Outcome::Unknown => (AttemptStatus::Pending, None),
    };
    let written = update_with(cx, claimed, true, |s, now| {
        let mut next = if final_on_failure {
            s.settle_off_session(&attempt_id, status, code.clone(), now)?
        } else {
            s.update_attempt(&attempt_id, status, code.clone(), None, now)?
        };
        next.set_processor_reference(&attempt_id, reference.clone());
        if status == AttemptStatus::Succeeded {
            next.payment_method_id = Some(method.id.clone());
        }
        Ok(Some(next))
    })
    .await?;
    let written = written.expect("an outcome always writes");
    tracing::info!(session_id = %written.id, attempt_id, status = ?status, "off-session charge");
    Ok(written)
}

/// What a sync of a pending attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptSynced {
    /// Not pending, or not due yet (a replayed trigger, or settled meanwhile).
    NothingDue,
    /// The processor's answer is written: the attempt's status now.
    Settled(AttemptStatus),
    /// Still pending at the processor (or no answer): asked again after a back-off step.
    StillPending,
}

/// Asks the processor, by our id, about a pending attempt whose sync is due (its outcome
/// was never written, or the processor had none yet) and writes what it says, as the
/// payment's own step would have. An attempt the processor never saw failed: its call never
/// reached it, and the claim's wait outlasts any call, so none is still on its way.
pub async fn sync_attempt<S: SessionStore + MandateStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    merchant_id: &str,
    session_id: &str,
    attempt_id: &str,
) -> Result<AttemptSynced, PaymentFailure> {
    let Some(session) = cx.store.get_session(merchant_id, session_id).await? else { return Ok(AttemptSynced::NothingDue) };
    let Some(attempt) = session.payments.iter().find(|a| a.id == attempt_id).cloned() else { return Ok(AttemptSynced::NothingDue) };
    if attempt.sync_due().is_none_or(|at| at > cx.clock.now()) {
        return Ok(AttemptSynced::NothingDue);
    }
    let processor = pay.of_payment(&session, attempt_id).await?;
    let answer = match processor.sync_payment(&payment_call(&session, attempt_id)).await {
        Some(answer) => answer,
        None => Answer::of(Outcome::Failed { code: "processing_error" }, None),
    };
    let answer = match answer.outcome {
        Outcome::Unknown | Outcome::Processing => {
            // Bookkeeping only: nothing a merchant sees changed, so no event.
            update_with(cx, session, false, |s, now| s.defer_attempt_sync(attempt_id, now).map(Some)).await?;
            return Ok(AttemptSynced::StillPending);
        }
        // The challenge or provider page the answer named was never shown (its write was
        // lost) and no one waits on it now: the payment was not completed.
        Outcome::RequiresAction => Answer { outcome: Outcome::Failed { code: "authentication_required" }, ..answer },
        _ => answer,
    };
    let step = finish(cx, session, attempt_id, answer, attempt.card.clone(), None, "").await?;
    tracing::info!(session_id, attempt_id, status = ?step.status, "pending attempt reconciled");
    Ok(AttemptSynced::Settled(step.status))
}

/// The processor reports a payment's state (its webhook): written as the payment's own
/// step would have written it, if the attempt still waits for it. A final attempt is never
/// moved (a late or out-of-order event, or one a sync already applied).
pub async fn processor_reports<S: SessionStore + MandateStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    session_id: &str,
    attempt_id: &str,
    answer: Answer,
) -> Result<Option<AttemptStatus>, PaymentFailure> {
    let Some(session) = cx.store.get_session(merchant_id, session_id).await? else { return Ok(None) };
    let Some(attempt) = session.payments.iter().find(|a| a.id == attempt_id).cloned() else { return Ok(None) };
    if !attempt.is_open() {
        return Ok(None);
    }
    match (&answer.outcome, attempt.status) {
        (Outcome::Unknown, _)
        | (Outcome::Processing, AttemptStatus::Pending)
        | (Outcome::RequiresAction, AttemptStatus::RequiresAction) => {
            return Ok(None);
        }
        _ => {}
    }
    let step = finish(cx, session, attempt_id, answer, attempt.card.clone(), None, "").await?;
    tracing::info!(session_id, attempt_id, status = ?step.status, "payment updated by the processor");
    Ok(Some(step.status))
}

/// The processor reports a dispute of a payment: recorded on it once, with
/// `payment.disputed`.
pub async fn record_dispute<S: SessionStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    session_id: &str,
    attempt_id: &str,
    dispute: paysession_domain::payment::Dispute,
) -> Result<bool, PaymentFailure> {
    let Some(session) = cx.store.get_session(merchant_id, session_id).await? else { return Ok(false) };
    let written = update_with(cx, session, true, |s, now| s.record_dispute(attempt_id, dispute.clone(), now)).await?;
    if written.is_some() {
        tracing::warn!(session_id, attempt_id, dispute_id = %dispute.id, "payment disputed");
    }
    Ok(written.is_some())
}

/// A payment received from outside (a virtual-account deposit, a QR scan): claim an
/// attempt and settle it, two conditional writes with their events.
pub async fn receive<S: SessionStore + ?Sized>(
    cx: &Core<S>,
    session: PaymentSession,
    method: PaymentMethodKind,
    amount: i64,
) -> Result<PaymentSession, PaymentFailure> {
    let attempt = PaymentAttempt::new(crate::ids::new_child_id("pay", &session.id), method, amount, cx.clock.now());
    let attempt_id = attempt.id.clone();
    let claimed = claim(cx, session, attempt).await?;
    let settle = |s: &PaymentSession, now| s.update_attempt(&attempt_id, AttemptStatus::Succeeded, None, None, now).map(Some);
    Ok(update_with(cx, claimed, true, settle).await?.expect("a settlement always writes"))
}
