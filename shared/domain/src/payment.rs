//! Payment attempts on a session and how their outcomes move the session.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::lifecycle::{InvalidTransition, PaymentType, SessionEvent, SessionStatus};
use crate::model::PaymentMethodKind;
use crate::session::PaymentSession;

/// A claimed attempt whose outcome was never written (its worker died) stops blocking new
/// attempts after this long.
pub const ABANDONED_AFTER: Duration = Duration::seconds(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// Claimed or submitted, outcome not known yet.
    Pending,
    RequiresAction,
    Succeeded,
    Failed,
}

/// What is kept of a card: never the number or the CVC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardSummary {
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentAttempt {
    pub id: String,
    pub method: PaymentMethodKind,
    pub status: AttemptStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
    pub amount: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<CardSummary>,
    /// Where the customer must go next (3-D Secure, wallet approval, bank page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_action_url: Option<String>,
    /// The customer asked to save the method (`save_payment_method: prompt`).
    #[serde(default)]
    pub save_requested: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PaymentAttempt {
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        match self.status {
            AttemptStatus::RequiresAction => true,
            AttemptStatus::Pending => now - self.updated_at < ABANDONED_AFTER,
            _ => false,
        }
    }
}

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
}

impl PaymentSession {
    /// The attempt still running, if any.
    pub fn open_attempt(&self, now: DateTime<Utc>) -> Option<&PaymentAttempt> {
        self.payments.iter().find(|a| a.is_open(now))
    }

    /// Claims a new attempt: written before the processor is called, so two concurrent
    /// payments cannot both reach it. The session status does not change.
    pub fn claim_attempt(&self, attempt: PaymentAttempt, now: DateTime<Utc>) -> Result<PaymentSession, PaymentError> {
        if !self.payment_methods.contains(&attempt.method) {
            return Err(PaymentError::MethodNotAllowed(attempt.method.as_str()));
        }
        let status = self.status_at(now);
        if status == SessionStatus::RequiresConfirmation {
            return Err(PaymentError::NotConfirmed);
        }
        if !matches!(status, SessionStatus::Open | SessionStatus::Active) {
            return Err(InvalidTransition { from: status, event: SessionEvent::AttemptProcessing }.into());
        }
        if self.open_attempt(now).is_some() {
            return Err(PaymentError::AttemptInProgress);
        }
        if self.payment_type == PaymentType::Single && attempt.amount != self.amount {
            return Err(PaymentError::WrongAmount { expected: self.amount });
        }
        let mut next = self.clone();
        // A claim abandoned by a dead worker is closed as a processing error.
        for a in next.payments.iter_mut().filter(|a| a.status == AttemptStatus::Pending) {
            a.status = AttemptStatus::Failed;
            a.failure_code = Some("processing_error".into());
            a.updated_at = now;
        }
        next.payments.push(PaymentAttempt { status: AttemptStatus::Pending, created_at: now, updated_at: now, ..attempt });
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
        let idx = self
            .payments
            .iter()
            .position(|a| a.id == attempt_id)
            .ok_or_else(|| PaymentError::UnknownAttempt(attempt_id.to_string()))?;
        let current = &self.payments[idx];
        if matches!(current.status, AttemptStatus::Succeeded | AttemptStatus::Failed) {
            return Err(InvalidTransition { from: self.status, event: SessionEvent::AttemptSucceeded }.into());
        }
        let remaining_after_failure = self.attempts_remaining.saturating_sub(1);
        let event = match status {
            AttemptStatus::Pending => SessionEvent::AttemptProcessing,
            AttemptStatus::RequiresAction => SessionEvent::AttemptRequiresAction,
            AttemptStatus::Succeeded if self.payment_type == PaymentType::Multiple => SessionEvent::PaymentReceived,
            AttemptStatus::Succeeded => SessionEvent::AttemptSucceeded,
            AttemptStatus::Failed => SessionEvent::AttemptFailed { attempts_remaining: remaining_after_failure },
        };
        let mut next = self.clone();
        next.status = if self.payment_type == PaymentType::Multiple && status == AttemptStatus::Failed {
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
        if status == AttemptStatus::Failed && self.payment_type == PaymentType::Single {
            next.attempts_remaining = remaining_after_failure;
        }
        next.updated_at = now;
        next.version += 1;
        Ok(next)
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
