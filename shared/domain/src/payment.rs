//! Payment attempts on a session and how their outcomes move the session.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lifecycle::{InvalidTransition, PaymentType, SessionEvent, SessionStatus};
use crate::model::PaymentMethodKind;
use crate::session::PaymentSession;

pub use crate::attempt::{
    AUTHORISATION_VALIDITY, AttemptStatus, CLAIM_SYNC_AFTER, CaptureMethod, CardSummary, Dispute, PaymentAttempt, SANDBOX_PROCESSOR,
};

/// `cancellation_reason` of a void the merchant asked for, and of one at `capture_before`.
pub const VOID_REQUESTED: &str = "requested";
pub const VOID_EXPIRED: &str = "authorization_expired";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
    #[error("a payment attempt is already in progress")]
    AttemptInProgress,
    #[error("no payment attempt {0} on this session")]
    UnknownAttempt(String),
    #[error("the session does not accept {0}")]
    MethodNotAllowed(&'static str),
    #[error("the amount must be {expected} for this session")]
    WrongAmount { expected: i64 },
    #[error("payment is refused until the session is confirmed")]
    NotConfirmed,
    /// Capture or void of a payment not waiting for capture (or past `capture_before`).
    #[error("the payment is {status}, not requires_capture")]
    NotCapturable { status: &'static str },
    #[error("the capture amount must be between 1 and {capturable}")]
    CaptureAmount { capturable: i64 },
}

impl PaymentSession {
    /// The session after `expires_at` has passed, when that changes anything: an idle
    /// session becomes expired; with an attempt in flight, strict mode expires it and voids
    /// the attempt while loose mode lets the attempt settle it. `None` when nothing is due
    /// (not yet past expiry, already final, or loose with an attempt running), so replayed
    /// expiry triggers write nothing.
    pub fn expire_due(&self, now: DateTime<Utc>) -> Option<PaymentSession> {
        if !self.past_expiry(now) || self.status.is_terminal() {
            return None;
        }
        let to = crate::lifecycle::transition(self.status, SessionEvent::Expire, self.transition_context(now)).ok()?;
        if to == self.status {
            return None;
        }
        let mut next = self.clone();
        next.status = to;
        for a in next.payments.iter_mut().filter(|a| matches!(a.status, AttemptStatus::Pending | AttemptStatus::RequiresAction)) {
            a.status = AttemptStatus::Failed;
            a.failure_code = Some("expired".into());
            a.updated_at = now;
        }
        next.updated_at = now;
        next.version += 1;
        Some(next)
    }

    /// The attempt still running, if any.
    pub fn open_attempt(&self) -> Option<&PaymentAttempt> {
        self.payments.iter().find(|a| a.is_open())
    }

    /// The pending attempt reconciliation asks about first, and when.
    pub fn attempt_sync_due(&self) -> Option<(&PaymentAttempt, DateTime<Utc>)> {
        self.payments.iter().filter_map(|a| Some((a, a.sync_due()?))).min_by_key(|(_, at)| *at)
    }

    /// A sync found the attempt still pending: the next one backs off (1 min … 24 h). No
    /// status changes, so no event.
    pub fn defer_attempt_sync(&self, attempt_id: &str, now: DateTime<Utc>) -> Result<PaymentSession, PaymentError> {
        let mut next = self.clone();
        let a = next
            .payments
            .iter_mut()
            .find(|a| a.id == attempt_id && a.status == AttemptStatus::Pending)
            .ok_or_else(|| PaymentError::UnknownAttempt(attempt_id.to_string()))?;
        a.next_sync_at = Some(now + crate::refund::sync_delay(a.sync_attempts));
        a.sync_attempts += 1;
        next.version += 1;
        Ok(next)
    }

    /// Whether the session can be paid with `method`: one of its `payment_methods`, and for
    /// the first payment of a series only the card (it saves the method its mandate charges).
    /// The page offers, the instructions show and an attempt may use exactly these.
    pub fn accepts(&self, method: PaymentMethodKind) -> bool {
        self.spec.payment_methods.contains(&method)
            && (self.spec.session_type != crate::model::SessionType::FirstInSeries || method == PaymentMethodKind::Card)
    }

    /// Claims a new attempt: written before the processor is called, so two concurrent
    /// payments cannot both reach it. The session status does not change.
    pub fn claim_attempt(&self, attempt: PaymentAttempt, now: DateTime<Utc>) -> Result<PaymentSession, PaymentError> {
        if !self.accepts(attempt.method) {
            return Err(PaymentError::MethodNotAllowed(attempt.method.as_str()));
        }
        let status = self.status_at(now);
        if status == SessionStatus::RequiresConfirmation {
            return Err(PaymentError::NotConfirmed);
        }
        if !matches!(status, SessionStatus::Open | SessionStatus::Active) {
            return Err(InvalidTransition { from: status, event: SessionEvent::AttemptProcessing }.into());
        }
        if self.open_attempt().is_some() {
            return Err(PaymentError::AttemptInProgress);
        }
        if self.spec.payment_type == PaymentType::Single && attempt.amount != self.spec.amount.minor() {
            return Err(PaymentError::WrongAmount { expected: self.spec.amount.minor() });
        }
        let mut next = self.clone();
        // Asked about if its outcome is not written in time.
        let next_sync_at = Some(now + CLAIM_SYNC_AFTER);
        next.payments.push(PaymentAttempt { status: AttemptStatus::Pending, next_sync_at, created_at: now, updated_at: now, ..attempt });
        next.updated_at = now;
        next.version += 1;
        Ok(next)
    }

    /// Records an attempt's new status and moves the session by the lifecycle table.
    pub fn update_attempt(
        &self,
        attempt_id: &str,
        status: AttemptStatus,
        failure_code: Option<String>,
        next_action_url: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<PaymentSession, PaymentError> {
        let idx =
            self.payments.iter().position(|a| a.id == attempt_id).ok_or_else(|| PaymentError::UnknownAttempt(attempt_id.to_string()))?;
        let current = &self.payments[idx];
        if current.status.is_settled() || current.status == AttemptStatus::RequiresCapture {
            return Err(InvalidTransition { from: self.status, event: SessionEvent::AttemptSucceeded }.into());
        }
        // A manual-capture session's card or wallet success is an authorisation only.
        let authorises = self.spec.capture_method == CaptureMethod::Manual && CaptureMethod::applies_to(current.method);
        let status = match status {
            AttemptStatus::Succeeded | AttemptStatus::RequiresCapture if authorises => AttemptStatus::RequiresCapture,
            AttemptStatus::RequiresCapture => AttemptStatus::Succeeded,
            // Only a void cancels an attempt; a processor that calls it off has failed it.
            AttemptStatus::Canceled => AttemptStatus::Failed,
            other => other,
        };
        let remaining_after_failure = self.attempts_remaining.saturating_sub(1);
        let event = match status {
            AttemptStatus::Pending => SessionEvent::AttemptProcessing,
            AttemptStatus::RequiresAction => SessionEvent::AttemptRequiresAction,
            AttemptStatus::Succeeded | AttemptStatus::RequiresCapture if self.spec.payment_type == PaymentType::Multiple => {
                SessionEvent::PaymentReceived
            }
            AttemptStatus::Succeeded | AttemptStatus::RequiresCapture => SessionEvent::AttemptSucceeded,
            AttemptStatus::Failed | AttemptStatus::Canceled => SessionEvent::AttemptFailed { attempts_remaining: remaining_after_failure },
        };
        let mut next = self.clone();
        next.status = if self.spec.payment_type == PaymentType::Multiple && status == AttemptStatus::Failed {
            // A failed deposit into a multiple session leaves it active.
            self.status
        } else {
            crate::lifecycle::transition(self.status, event, self.transition_context(now))?
        };
        let a = &mut next.payments[idx];
        a.status = status;
        a.failure_code = failure_code;
        a.next_action_url = next_action_url;
        a.updated_at = now;
        // Still pending (submitted, or no answer): asked about again after a back-off step.
        a.next_sync_at = (status == AttemptStatus::Pending).then(|| now + crate::refund::sync_delay(a.sync_attempts));
        if status == AttemptStatus::Pending {
            a.sync_attempts += 1;
        }
        if status == AttemptStatus::RequiresCapture {
            a.capture_method = CaptureMethod::Manual;
            a.capture_before = Some(now + AUTHORISATION_VALIDITY);
        }
        if status == AttemptStatus::Failed && self.spec.payment_type == PaymentType::Single {
            next.attempts_remaining = remaining_after_failure;
        }
        next.updated_at = now;
        next.version += 1;
        Ok(next)
    }

    /// Records the processor's reference of an attempt (no status change, no event of its own).
    pub fn set_processor_reference(&mut self, attempt_id: &str, reference: Option<String>) {
        if let Some(a) = self.payments.iter_mut().find(|a| a.id == attempt_id)
            && reference.is_some()
        {
            a.processor_reference = reference;
        }
    }

    /// Records the processor's dispute of a payment that took money. `Ok(None)` when the
    /// payment already carries it (a processor's redelivery); a later dispute of the same
    /// payment replaces the first.
    pub fn record_dispute(&self, payment_id: &str, dispute: Dispute, now: DateTime<Utc>) -> Result<Option<PaymentSession>, PaymentError> {
        let idx =
            self.payments.iter().position(|a| a.id == payment_id).ok_or_else(|| PaymentError::UnknownAttempt(payment_id.to_string()))?;
        if self.payments[idx].dispute.as_ref().is_some_and(|d| d.id == dispute.id) {
            return Ok(None);
        }
        let mut next = self.clone();
        let attempt = &mut next.payments[idx];
        attempt.dispute = Some(dispute);
        attempt.updated_at = now;
        next.version += 1;
        next.updated_at = now;
        Ok(Some(next))
    }

    /// The payment waiting for capture, checked at `now` (an authorisation past its
    /// `capture_before` is void, whether or not the void has been written yet).
    fn capturable(&self, payment_id: &str, now: DateTime<Utc>) -> Result<usize, PaymentError> {
        let idx =
            self.payments.iter().position(|a| a.id == payment_id).ok_or_else(|| PaymentError::UnknownAttempt(payment_id.to_string()))?;
        let a = &self.payments[idx];
        let expired = a.capture_before.is_some_and(|t| now >= t);
        if a.status != AttemptStatus::RequiresCapture || expired {
            let status = if a.status == AttemptStatus::RequiresCapture { "expired" } else { a.status.as_str() };
            return Err(PaymentError::NotCapturable { status });
        }
        Ok(idx)
    }

    /// Captures `amount` (default: all) of an authorisation; the rest is released. One
    /// capture per payment.
    pub fn capture(&self, payment_id: &str, amount: Option<i64>, now: DateTime<Utc>) -> Result<PaymentSession, PaymentError> {
        let idx = self.capturable(payment_id, now)?;
        let capturable = self.payments[idx].amount_capturable();
        let amount = amount.unwrap_or(capturable);
        if amount <= 0 || amount > capturable {
            return Err(PaymentError::CaptureAmount { capturable });
        }
        let mut next = self.clone();
        let a = &mut next.payments[idx];
        a.status = AttemptStatus::Succeeded;
        a.captured_amount = Some(amount);
        a.updated_at = now;
        next.updated_at = now;
        next.version += 1;
        Ok(next)
    }

    /// Voids an authorisation: `requested` by the merchant, or `authorization_expired` at
    /// `capture_before` (then `now` may be past it).
    pub fn void(&self, payment_id: &str, reason: &str, now: DateTime<Utc>) -> Result<PaymentSession, PaymentError> {
        let idx = if reason == VOID_EXPIRED {
            let idx = self
                .payments
                .iter()
                .position(|a| a.id == payment_id)
                .ok_or_else(|| PaymentError::UnknownAttempt(payment_id.to_string()))?;
            let a = &self.payments[idx];
            if a.status != AttemptStatus::RequiresCapture || a.capture_before.is_none_or(|t| now < t) {
                return Err(PaymentError::NotCapturable { status: a.status.as_str() });
            }
            idx
        } else {
            self.capturable(payment_id, now)?
        };
        let mut next = self.clone();
        let a = &mut next.payments[idx];
        a.status = AttemptStatus::Canceled;
        a.cancellation_reason = Some(reason.to_string());
        a.updated_at = now;
        next.updated_at = now;
        next.version += 1;
        Ok(next)
    }

    /// Authorisations of this session whose `capture_before` has passed at `now`.
    pub fn expired_authorisations(&self, now: DateTime<Utc>) -> Vec<String> {
        self.payments
            .iter()
            .filter(|a| a.status == AttemptStatus::RequiresCapture && a.capture_before.is_some_and(|t| now >= t))
            .map(|a| a.id.clone())
            .collect()
    }

    /// The outcome of an off-session charge the merchant asked for: no customer is there
    /// to try again, so a failure ends the session (`failed`) at once.
    pub fn settle_off_session(
        &self,
        attempt_id: &str,
        status: AttemptStatus,
        failure_code: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<PaymentSession, PaymentError> {
        let mut last_chance = self.clone();
        if status == AttemptStatus::Failed {
            last_chance.attempts_remaining = 1;
        }
        last_chance.update_attempt(attempt_id, status, failure_code, None, now)
    }

    /// Ends an open session whose last attempt failed and that will not be tried again (a
    /// scheduled occurrence past its retries): `failed`, through the lifecycle table's
    /// last-failure row. `None` when the session is not in that state.
    pub fn give_up(&self, now: DateTime<Utc>) -> Option<PaymentSession> {
        let last_failed = self.payments.last().is_some_and(|a| a.status == AttemptStatus::Failed);
        if self.status != SessionStatus::Open || !last_failed {
            return None;
        }
        let event = SessionEvent::AttemptFailed { attempts_remaining: 0 };
        let mut next = self.clone();
        next.status = crate::lifecycle::transition(self.status, event, self.transition_context(now)).ok()?;
        next.attempts_remaining = 0;
        next.updated_at = now;
        next.version += 1;
        Some(next)
    }
}

/// A payment method saved for a customer (card only): what the hosted page may offer again
/// and what off-session charges use. Holds a processor token, never card data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPaymentMethod {
    pub id: String,
    pub merchant_id: String,
    pub customer_id: String,
    pub method: PaymentMethodKind,
    pub card: CardSummary,
    pub processor_token: String,
    /// The card network's id of the payment that saved it (merchant-initiated charges quote
    /// it); absent on methods saved before processors returned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_transaction_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl SavedPaymentMethod {
    /// The API view: `{id, object, type, card: {brand, last4, exp_month, exp_year, fingerprint}}`.
    pub fn to_api(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id, "object": "payment_method", "type": self.method.as_str(),
            "customer_id": self.customer_id, "card": self.card, "created_at": self.created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::ExpirationMode;
    use crate::{MerchantPolicy, parse_create_session};
    use chrono::{Duration, TimeZone};

    fn session(mode: &str) -> PaymentSession {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
        let policy = MerchantPolicy { payment_methods: PaymentMethodKind::ALL.to_vec(), redirect_urls: vec![] };
        let body = serde_json::json!({"amount": 100, "currency": "EUR", "customer_id": "c", "reference": "r", "expiration_mode": mode});
        PaymentSession::create(parse_create_session(&body, now, &policy).unwrap(), "mer_1".into(), now)
    }

    /// A pending card attempt of 100 minor units.
    use crate::attempt::card_attempt;

    fn in_flight(s: &PaymentSession) -> PaymentSession {
        let now = s.created_at;
        let attempt = card_attempt("pay_1", now);
        let claimed = s.claim_attempt(attempt, now).unwrap();
        claimed.update_attempt("pay_1", AttemptStatus::RequiresAction, None, None, now).unwrap()
    }

    #[test]
    fn a_pending_attempt_blocks_new_ones_until_its_outcome_is_known_and_is_synced_with_back_off() {
        let s = session("loose");
        let now = s.created_at;
        let claimed = s.claim_attempt(card_attempt("pay_1", now), now).unwrap();
        assert_eq!(claimed.attempt_sync_due().map(|(a, at)| (a.id.as_str(), at)), Some(("pay_1", now + CLAIM_SYNC_AFTER)));
        // Long after (the worker died): never closed unasked, and never claimed over.
        let later = now + Duration::minutes(10);
        assert_eq!(claimed.claim_attempt(card_attempt("pay_2", later), later).unwrap_err(), PaymentError::AttemptInProgress);
        // A sync that finds it still pending backs off, 1 min then 2 min, with no event.
        let deferred = claimed.defer_attempt_sync("pay_1", later).unwrap();
        assert_eq!(deferred.attempt_sync_due().unwrap().1, later + Duration::minutes(1));
        let again = deferred.defer_attempt_sync("pay_1", later).unwrap();
        assert_eq!(again.attempt_sync_due().unwrap().1, later + Duration::minutes(2));
        let types = crate::session::event_types_for(Some(&claimed), &again);
        assert!(!types.iter().any(|(t, _)| t.starts_with("payment.")), "bookkeeping changes no payment: {types:?}");
        // Its outcome ends the syncs; the next claim may follow.
        let paid = again.update_attempt("pay_1", AttemptStatus::Failed, Some("card_declined".into()), None, later).unwrap();
        assert_eq!(paid.attempt_sync_due(), None);
        assert!(paid.claim_attempt(card_attempt("pay_2", later), later).is_ok());
        assert_eq!(paid.defer_attempt_sync("pay_1", later).unwrap_err(), PaymentError::UnknownAttempt("pay_1".into()));
    }

    #[test]
    fn expiry_rules() {
        let s = session("loose");
        assert!(s.expire_due(s.spec.expires_at - Duration::seconds(1)).is_none(), "not yet");
        let expired = s.expire_due(s.spec.expires_at).unwrap();
        assert_eq!(expired.status, SessionStatus::Expired);
        assert!(expired.expire_due(expired.spec.expires_at + Duration::hours(1)).is_none(), "a replay writes nothing");

        let loose = in_flight(&s);
        assert!(loose.expire_due(loose.spec.expires_at).is_none(), "loose: the running attempt settles the session");
        let settled =
            loose.update_attempt("pay_1", AttemptStatus::Failed, Some("card_declined".into()), None, loose.spec.expires_at).unwrap();
        assert_eq!(settled.status, SessionStatus::Expired, "a failure after expiry expires it");

        let strict = in_flight(&session("strict"));
        assert_eq!(strict.spec.expiration_mode, ExpirationMode::Strict);
        let voided = strict.expire_due(strict.spec.expires_at).unwrap();
        assert_eq!(voided.status, SessionStatus::Expired);
        assert_eq!(voided.payments[0].failure_code.as_deref(), Some("expired"));
        assert!(
            voided.update_attempt("pay_1", AttemptStatus::Succeeded, None, None, voided.spec.expires_at).is_err(),
            "nothing completes after expiry in strict mode"
        );
    }

    /// A payment racing the expiry instant, 50 ms either side of `expires_at`. Nobody claims
    /// at or after expiry; strict mode never records a success at or after expiry; loose
    /// mode lets an attempt that reached requires_action/processing in time finish (API.md).
    /// A claim whose processor answer lands after expiry without having reached those
    /// states is refused in both modes (the processor `void` gap in ARCHITECTURE.md).
    #[test]
    fn payments_at_the_expiry_instant() {
        let ms = Duration::milliseconds;
        for mode in ["loose", "strict"] {
            let s = session(mode);
            let attempt = |id: &str| card_attempt(id, s.created_at);
            assert!(s.claim_attempt(attempt("late"), s.spec.expires_at + ms(50)).is_err(), "{mode}: no claim after expiry");
            assert!(s.claim_attempt(attempt("at"), s.spec.expires_at).is_err(), "{mode}: no claim at expires_at");
            let claimed = s.claim_attempt(attempt("pay_1"), s.spec.expires_at - ms(50)).unwrap();
            let early = claimed.update_attempt("pay_1", AttemptStatus::Succeeded, None, None, s.spec.expires_at - ms(1)).unwrap();
            assert_eq!(early.status, SessionStatus::Succeeded, "{mode}: settled before expiry");
            assert!(claimed.update_attempt("pay_1", AttemptStatus::Succeeded, None, None, s.spec.expires_at + ms(50)).is_err());
            let in_3ds = claimed.update_attempt("pay_1", AttemptStatus::RequiresAction, None, None, s.spec.expires_at - ms(50)).unwrap();
            let late = in_3ds.update_attempt("pay_1", AttemptStatus::Succeeded, None, None, s.spec.expires_at + ms(50));
            match mode {
                "strict" => {
                    assert!(late.is_err(), "strict: a success after expiry is refused");
                    assert_eq!(in_3ds.expire_due(s.spec.expires_at + ms(50)).unwrap().status, SessionStatus::Expired);
                }
                _ => {
                    assert_eq!(late.unwrap().status, SessionStatus::Succeeded, "loose: the running attempt may finish");
                    assert!(in_3ds.expire_due(s.spec.expires_at + ms(50)).is_none(), "loose: the sweeper leaves it running");
                }
            }
        }
    }

    #[test]
    fn giving_up_fails_an_open_session_after_a_failed_attempt() {
        let s = session("loose");
        assert!(s.give_up(s.created_at).is_none(), "no attempt yet");
        let now = s.created_at;
        let attempt = card_attempt("pay_9", now);
        let claimed = s.claim_attempt(attempt, now).unwrap();
        assert!(claimed.give_up(now).is_none(), "an attempt still running");
        let failed = claimed.update_attempt("pay_9", AttemptStatus::Failed, Some("card_declined".into()), None, now).unwrap();
        assert_eq!(failed.status, SessionStatus::Open, "attempts remain for a customer");
        let given_up = failed.give_up(now).unwrap();
        assert_eq!((given_up.status, given_up.attempts_remaining, given_up.version), (SessionStatus::Failed, 0, failed.version + 1));
        assert!(given_up.give_up(now).is_none());
    }

    #[test]
    fn manual_capture_authorises_then_captures_part_or_voids() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
        let policy = MerchantPolicy { payment_methods: PaymentMethodKind::ALL.to_vec(), redirect_urls: vec![] };
        let body = serde_json::json!({"amount": 100, "currency": "EUR", "customer_id": "c", "reference": "r", "capture_method": "manual"});
        let s = PaymentSession::create(parse_create_session(&body, now, &policy).unwrap(), "mer_1".into(), now);
        let claimed = s.claim_attempt(card_attempt("pay_1", now), now).unwrap();
        let authorised = claimed.update_attempt("pay_1", AttemptStatus::Succeeded, None, None, now).unwrap();
        let a = &authorised.payments[0];
        assert_eq!(
            (authorised.status, a.status),
            (SessionStatus::Succeeded, AttemptStatus::RequiresCapture),
            "the customer's part is done"
        );
        assert_eq!((a.amount_capturable(), a.amount_received(), a.capture_before), (100, 0, Some(now + AUTHORISATION_VALIDITY)));

        assert_eq!(authorised.capture("pay_1", Some(101), now), Err(PaymentError::CaptureAmount { capturable: 100 }));
        let captured = authorised.capture("pay_1", Some(60), now).unwrap();
        assert_eq!(
            (captured.payments[0].status, captured.payments[0].amount_received()),
            (AttemptStatus::Succeeded, 60),
            "the rest is released"
        );
        assert!(captured.capture("pay_1", None, now).is_err(), "one capture per payment");
        assert!(captured.void("pay_1", VOID_REQUESTED, now).is_err(), "a captured payment is not voided");

        let voided = authorised.void("pay_1", VOID_REQUESTED, now).unwrap();
        assert_eq!((voided.payments[0].status, voided.payments[0].amount_received()), (AttemptStatus::Canceled, 0));
        let late = now + AUTHORISATION_VALIDITY;
        assert_eq!(authorised.capture("pay_1", None, late), Err(PaymentError::NotCapturable { status: "expired" }));
        assert!(authorised.void("pay_1", VOID_EXPIRED, late - Duration::seconds(1)).is_err(), "not expired yet");
        assert_eq!(authorised.expired_authorisations(late), vec!["pay_1".to_string()]);
        let read = authorised.payment_view(&authorised.payments[0], None, late);
        assert_eq!(
            (&read["status"], &read["cancellation_reason"], &read["amount_capturable"]),
            (&serde_json::json!("canceled"), &serde_json::json!("authorization_expired"), &serde_json::json!(0)),
            "voided on read"
        );
        assert_eq!(authorised.payment_view(&authorised.payments[0], None, late - Duration::seconds(1))["status"], "requires_capture");
        let expired = authorised.void("pay_1", VOID_EXPIRED, late).unwrap();
        assert_eq!(expired.payments[0].cancellation_reason.as_deref(), Some(VOID_EXPIRED));
        let types: Vec<_> = crate::session::event_types_for(Some(&authorised), &expired).into_iter().map(|(t, _)| t).collect();
        assert_eq!(types, ["payment.updated", "payment.canceled"]);
        let types: Vec<_> = crate::session::event_types_for(Some(&authorised), &captured).into_iter().map(|(t, _)| t).collect();
        assert_eq!(types, ["payment.updated", "payment.captured"]);
    }

    #[test]
    fn manual_capture_needs_a_method_that_can_authorise() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
        let policy = MerchantPolicy { payment_methods: PaymentMethodKind::ALL.to_vec(), redirect_urls: vec![] };
        let body = serde_json::json!({"amount": 100, "currency": "EUR", "customer_id": "c", "reference": "r", "capture_method": "manual",
            "payment_methods": ["virtual_account", "qr"]});
        let errors = parse_create_session(&body, now, &policy).unwrap_err();
        assert_eq!((errors[0].field.as_str(), errors[0].code.as_str()), ("capture_method", "unsupported_for_method"));
        // Mixed methods: the bank ones ignore it.
        let body = serde_json::json!({"amount": 100, "currency": "EUR", "customer_id": "c", "reference": "r", "capture_method": "manual",
            "payment_methods": ["card", "qr"]});
        let s = PaymentSession::create(parse_create_session(&body, now, &policy).unwrap(), "mer_1".into(), now);
        let qr = PaymentAttempt::new("pay_q".into(), PaymentMethodKind::Qr, 100, now);
        let paid = s.claim_attempt(qr, now).unwrap().update_attempt("pay_q", AttemptStatus::Succeeded, None, None, now).unwrap();
        assert_eq!(paid.payments[0].status, AttemptStatus::Succeeded);
    }
}
