//! A payment attempt as stored on its session: the types only, so the session record and
//! the payment rules (`payment.rs`) both build on them without importing each other.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::model::PaymentMethodKind;

/// A claimed attempt whose outcome is not written this long after its claim is asked about
/// (its worker died, or the write of the answer failed): longer than any processor call may
/// take, so an answer still in flight is never taken for no answer.
pub const CLAIM_SYNC_AFTER: Duration = Duration::seconds(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// Claimed or submitted, outcome not known yet.
    Pending,
    RequiresAction,
    Succeeded,
    Failed,
    /// Authorised with manual capture: the customer's part is done, the money is not taken
    /// until `POST /v1/payments/{id}/capture` (or released by a void).
    RequiresCapture,
    /// An authorisation voided before capture.
    Canceled,
}

impl AttemptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Pending => "pending",
            AttemptStatus::RequiresAction => "requires_action",
            AttemptStatus::Succeeded => "succeeded",
            AttemptStatus::Failed => "failed",
            AttemptStatus::RequiresCapture => "requires_capture",
            AttemptStatus::Canceled => "canceled",
        }
    }

    pub const ALL: [AttemptStatus; 6] = [
        AttemptStatus::Pending,
        AttemptStatus::RequiresAction,
        AttemptStatus::RequiresCapture,
        AttemptStatus::Succeeded,
        AttemptStatus::Failed,
        AttemptStatus::Canceled,
    ];

    pub fn parse(s: &str) -> Option<AttemptStatus> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The customer's part is done and the processor authorised the amount.
    pub fn is_paid(self) -> bool {
        matches!(self, AttemptStatus::Succeeded | AttemptStatus::RequiresCapture)
    }

    /// Nothing more happens to the attempt itself (captures and refunds aside).
    pub fn is_settled(self) -> bool {
        matches!(self, AttemptStatus::Succeeded | AttemptStatus::Failed | AttemptStatus::Canceled)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMethod {
    #[default]
    Automatic,
    Manual,
}

impl CaptureMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureMethod::Automatic => "automatic",
            CaptureMethod::Manual => "manual",
        }
    }
    pub fn parse(s: &str) -> Option<CaptureMethod> {
        [CaptureMethod::Automatic, CaptureMethod::Manual].into_iter().find(|v| v.as_str() == s)
    }
    pub fn is_automatic(&self) -> bool {
        *self == CaptureMethod::Automatic
    }
    /// Methods that can authorise now and capture later; the others always capture.
    pub fn applies_to(method: PaymentMethodKind) -> bool {
        matches!(method, PaymentMethodKind::Card | PaymentMethodKind::Ewallet)
    }
}

/// An authorisation is voided automatically this long after it was made (API.md).
pub const AUTHORISATION_VALIDITY: Duration = Duration::days(7);

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
    /// `manual`: a success authorises only (`requires_capture`). Absent on records written
    /// before capture existed, which were all automatic.
    #[serde(default, skip_serializing_if = "CaptureMethod::is_automatic")]
    pub capture_method: CaptureMethod,
    /// What the capture took: set when a manual payment is captured; an automatic payment
    /// received its `amount` (see [`PaymentAttempt::amount_received`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_before: Option<DateTime<Utc>>,
    /// `requested` or `authorization_expired`, for a voided authorisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    /// The processor's own id of this payment (its PaymentIntent, say); `None` on records
    /// written before processors returned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor_reference: Option<String>,
    /// The processor the attempt was sent to (`stripe`); absent for the sandbox, which every
    /// attempt went to before merchants chose one. Later calls about it go to the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor: Option<String>,
    /// The customer's bank disputes the payment (reported by the processor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute: Option<Dispute>,
    /// While pending: when reconciliation next asks the processor about it by our id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sync_at: Option<DateTime<Utc>>,
    /// Syncs that found it still pending: the back-off step of the next one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sync_attempts: u32,
    #[serde(serialize_with = "crate::rfc3339::serialize", deserialize_with = "crate::rfc3339::deserialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::serialize", deserialize_with = "crate::rfc3339::deserialize")]
    pub updated_at: DateTime<Utc>,
}

/// A dispute (chargeback) of a payment as the processor reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute {
    /// The processor's id of the dispute (`dp_…`).
    pub id: String,
    pub amount: i64,
    /// The processor's reason (`fraudulent`, `product_not_received`, …).
    pub reason: String,
    pub status: String,
    #[serde(serialize_with = "crate::rfc3339::serialize", deserialize_with = "crate::rfc3339::deserialize")]
    pub created_at: DateTime<Utc>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl PaymentAttempt {
    /// The money taken: the capture of a manual payment, the whole amount of an automatic
    /// one that succeeded, nothing otherwise.
    pub fn amount_received(&self) -> i64 {
        match self.status {
            AttemptStatus::Succeeded => self.captured_amount.unwrap_or(self.amount),
            _ => 0,
        }
    }

    pub fn amount_capturable(&self) -> i64 {
        if self.status == AttemptStatus::RequiresCapture { self.amount } else { 0 }
    }

    /// The attempt as of `now`: an authorisation past `capture_before` reads as voided
    /// (`authorization_expired`) whether or not its void is written yet (the local
    /// reconciler writes it within a second; on AWS the TTL deletion of its item, which
    /// follows the wall clock, not a sandbox test clock), as a session past `expires_at`
    /// reads as expired.
    pub fn as_of(&self, now: DateTime<Utc>) -> std::borrow::Cow<'_, PaymentAttempt> {
        match self.capture_before {
            Some(before) if self.status == AttemptStatus::RequiresCapture && now >= before => {
                let mut voided = self.clone();
                voided.status = AttemptStatus::Canceled;
                voided.cancellation_reason = Some("authorization_expired".into());
                std::borrow::Cow::Owned(voided)
            }
            _ => std::borrow::Cow::Borrowed(self),
        }
    }

    /// A new attempt, not yet claimed on its session.
    pub fn new(id: String, method: PaymentMethodKind, amount: i64, now: DateTime<Utc>) -> PaymentAttempt {
        PaymentAttempt {
            id,
            method,
            status: AttemptStatus::Pending,
            failure_code: None,
            amount,
            card: None,
            next_action_url: None,
            save_requested: false,
            mandate_acceptance: None,
            capture_method: CaptureMethod::Automatic,
            captured_amount: None,
            capture_before: None,
            cancellation_reason: None,
            processor_reference: None,
            processor: None,
            dispute: None,
            next_sync_at: None,
            sync_attempts: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// Running: waiting for the customer, or pending until its outcome is known. A pending
    /// attempt is never given up on unasked (the processor may have taken the money):
    /// reconciliation settles it ([`PaymentAttempt::sync_due`]).
    pub fn is_open(&self) -> bool {
        matches!(self.status, AttemptStatus::Pending | AttemptStatus::RequiresAction)
    }

    /// When reconciliation asks the processor about this attempt: while it is pending. One
    /// stored before syncs were tracked is due a claim's wait after its last change.
    pub fn sync_due(&self) -> Option<DateTime<Utc>> {
        (self.status == AttemptStatus::Pending).then(|| self.next_sync_at.unwrap_or(self.updated_at + CLAIM_SYNC_AFTER))
    }

    /// The attempt as a merchant sees it: without reconciliation's bookkeeping, whose
    /// changes are no event.
    pub fn without_sync(&self) -> PaymentAttempt {
        PaymentAttempt { next_sync_at: None, sync_attempts: 0, ..self.clone() }
    }
}

/// A pending card attempt of 100, for tests.
#[cfg(test)]
pub(crate) fn card_attempt(id: &str, now: DateTime<Utc>) -> PaymentAttempt {
    PaymentAttempt::new(id.into(), PaymentMethodKind::Card, 100, now)
}

/// The processor of an attempt that names none.
pub const SANDBOX_PROCESSOR: &str = "sandbox";

/// What a payment object shows of its session.
pub struct PaymentContext<'a> {
    /// The instant the object is shown at ([`PaymentAttempt::as_of`]).
    pub now: DateTime<Utc>,
    pub session_id: &'a str,
    pub currency: &'a str,
    pub payment_method_id: Option<&'a str>,
    pub mandate_id: Option<&'a str>,
}

/// The payment object of API.md ("Payments: capture, void, refunds"): an attempt with its
/// money. `money` is the refund counters kept beside the payment once it has a refund;
/// without them nothing is refunded. A record written before payments were objects reads
/// as what it was: an automatic payment, succeeded with its whole amount.
pub fn payment_view(attempt: &PaymentAttempt, cx: &PaymentContext<'_>, money: Option<crate::refund::PaymentMoney>) -> serde_json::Value {
    let attempt = &*attempt.as_of(cx.now);
    let mut v = serde_json::json!({
        "id": attempt.id, "object": "payment", "session_id": cx.session_id, "method": attempt.method.as_str(),
        "status": attempt.status.as_str(), "amount": attempt.amount, "currency": cx.currency,
        "amount_capturable": attempt.amount_capturable(), "amount_received": attempt.amount_received(),
        "amount_refunded": money.map_or(0, |m| m.refunded), "capture_method": attempt.capture_method.as_str(),
        "capture_before": attempt.capture_before,
        "processor": {"name": attempt.processor.as_deref().unwrap_or(SANDBOX_PROCESSOR), "reference": attempt.processor_reference},
        "created_at": attempt.created_at, "updated_at": attempt.updated_at,
    });
    let charged = matches!(attempt.status, AttemptStatus::Succeeded | AttemptStatus::RequiresCapture | AttemptStatus::Canceled);
    let extra = [
        ("payment_method_id", cx.payment_method_id.filter(|_| charged && attempt.method == PaymentMethodKind::Card)),
        ("mandate_id", cx.mandate_id),
        ("failure_code", attempt.failure_code.as_deref()),
        ("cancellation_reason", attempt.cancellation_reason.as_deref()),
        ("next_action_url", attempt.next_action_url.as_deref()),
    ];
    for (k, val) in extra {
        if let Some(val) = val {
            v[k] = val.into();
        }
    }
    if let Some(dispute) = &attempt.dispute {
        v["dispute"] = serde_json::to_value(dispute).expect("a dispute serialises");
    }
    if let Some(card) = &attempt.card {
        v["card"] = serde_json::to_value(card).expect("a card summary serialises");
    }
    v
}
