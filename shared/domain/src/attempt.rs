//! A payment attempt as stored on its session: the types only, so the session record and
//! the payment rules (`payment.rs`) both build on them without importing each other.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::model::PaymentMethodKind;

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
    /// A `first_in_series` payment: the customer's acceptance of the mandate terms shown
    /// with the form, kept until the payment succeeds and the mandate is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mandate_acceptance: Option<crate::mandate::CustomerAcceptance>,
    #[serde(serialize_with = "crate::rfc3339::serialize", deserialize_with = "crate::rfc3339::deserialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::serialize", deserialize_with = "crate::rfc3339::deserialize")]
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

/// A pending card attempt of 100, for tests.
#[cfg(test)]
pub(crate) fn card_attempt(id: &str, now: DateTime<Utc>) -> PaymentAttempt {
    PaymentAttempt {
        id: id.into(),
        method: PaymentMethodKind::Card,
        status: AttemptStatus::Pending,
        failure_code: None,
        amount: 100,
        card: None,
        next_action_url: None,
        save_requested: false,
        mandate_acceptance: None,
        created_at: now,
        updated_at: now,
    }
}
