//! The payment-session record, its API representation and its events.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::create::SessionSpec;
use crate::lifecycle::{
    ExpirationMode, InvalidTransition, PaymentType, SessionEvent, SessionStatus, TransitionContext, allowed_actions, effective_status,
    transition,
};
use crate::model::*;

/// Payment attempts allowed per session before it fails (API.md).
pub const MAX_ATTEMPTS: u32 = 5;

pub use crate::payment::{AttemptStatus, CardSummary, PaymentAttempt};

/// A stored payment session. Internal fields (`merchant_id`, `version`, `page_token_hash`)
/// never reach the API: see [`PaymentSession::to_api`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentSession {
    pub id: String,
    pub merchant_id: String,
    pub status: SessionStatus,
    pub session_type: SessionType,
    pub amount: i64,
    pub currency: String,
    pub customer_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<Customer>,
    pub reference: String,
    pub due_date: Option<NaiveDate>,
    pub purpose: Option<Purpose>,
    pub items: Vec<LineItem>,
    pub recipients: Vec<Recipient>,
    pub allowed_domains: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub expiration_mode: ExpirationMode,
    pub payment_type: PaymentType,
    pub payment_methods: Vec<PaymentMethodKind>,
    pub mode: Mode,
    pub auto_confirm: bool,
    pub save_payment_method: Option<SavePaymentMethod>,
    pub show_saved_payment_methods: bool,
    pub mandate: Option<MandateSpec>,
    pub mandate_id: Option<String>,
    pub statement_descriptor: Option<String>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub state: Option<String>,
    pub locale: String,
    pub metadata: BTreeMap<String, String>,
    pub url: Option<String>,
    pub payment_request_id: Option<String>,
    pub payments: Vec<PaymentAttempt>,
    pub payment_method_id: Option<String>,
    pub attempts_remaining: u32,
    pub cancellation_reason: Option<CancellationReason>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Optimistic-lock counter: every write is conditional on the version it read.
    pub version: u64,
    /// SHA-256 of the hosted-page token, for looking the session up from its URL.
    pub page_token_hash: Option<String>,
    /// Bank-transfer-style instructions shown to the payer (`mode: api` returns them).
    #[serde(default)]
    pub instructions: Instructions,
    /// One-time-code verification of the hosted page (internal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<OtpState>,
}

/// The current one-time code: only its hash, except in sandbox where the test endpoint
/// must be able to show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpState {
    pub code_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox_code: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub tries_left: u32,
    pub sent_to: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instructions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_account: Option<VirtualAccount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr: Option<QrCode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualAccount {
    pub bank_name: String,
    pub account_number: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QrCode {
    pub payload_id: String,
    /// The string encoded in the QR image.
    pub payload: String,
}

/// Kinds of secondary keys that find a session without knowing its merchant.
pub const ALIAS_PAGE: &str = "page";
pub const ALIAS_VIRTUAL_ACCOUNT: &str = "va";
pub const ALIAS_QR: &str = "qr";

/// The hosted page of a redirect-mode session: the URL handed to the merchant and the hash
/// under which the store finds the session again.
pub struct HostedPage {
    pub url: String,
    pub token_hash: String,
}

impl PaymentSession {
    /// A new session from a validated spec. `page` is `None` in `api` mode.
    pub fn create(spec: SessionSpec, id: String, merchant_id: String, page: Option<HostedPage>, now: DateTime<Utc>) -> Self {
        let status = match (spec.auto_confirm, spec.payment_type) {
            (false, _) => SessionStatus::RequiresConfirmation,
            (true, PaymentType::Single) => SessionStatus::Open,
            (true, PaymentType::Multiple) => SessionStatus::Active,
        };
        let (url, page_token_hash) = match page {
            Some(p) => (Some(p.url), Some(p.token_hash)),
            None => (None, None),
        };
        PaymentSession {
            id,
            merchant_id,
            status,
            session_type: spec.session_type,
            amount: spec.amount.minor(),
            currency: spec.currency.code().to_string(),
            customer_id: spec.customer_id,
            customer: spec.customer,
            reference: spec.reference,
            due_date: spec.due_date,
            purpose: spec.purpose,
            items: spec.items,
            recipients: spec.recipients,
            allowed_domains: spec.allowed_domains.iter().map(|d| d.as_str().to_string()).collect(),
            expires_at: spec.expires_at,
            expiration_mode: spec.expiration_mode,
            payment_type: spec.payment_type,
            payment_methods: spec.payment_methods,
            mode: spec.mode,
            auto_confirm: spec.auto_confirm,
            save_payment_method: spec.save_payment_method,
            show_saved_payment_methods: spec.show_saved_payment_methods,
            mandate: spec.mandate,
            mandate_id: spec.mandate_id,
            statement_descriptor: spec.statement_descriptor,
            success_url: spec.success_url,
            cancel_url: spec.cancel_url,
            state: spec.state,
            locale: spec.locale,
            metadata: spec.metadata,
            url,
            payment_request_id: None,
            payments: Vec::new(),
            payment_method_id: None,
            attempts_remaining: MAX_ATTEMPTS,
            cancellation_reason: None,
            created_at: now,
            updated_at: now,
            version: 1,
            page_token_hash,
            instructions: Instructions::default(),
            otp: None,
        }
    }

    /// Secondary keys written with the session: the hosted-page token hash, the virtual
    /// account number, the QR payload id.
    pub fn aliases(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        out.extend(self.page_token_hash.clone().map(|h| (ALIAS_PAGE, h)));
        out.extend(self.instructions.virtual_account.as_ref().map(|v| (ALIAS_VIRTUAL_ACCOUNT, v.account_number.clone())));
        out.extend(self.instructions.qr.as_ref().map(|q| (ALIAS_QR, q.payload_id.clone())));
        out
    }

    pub fn past_expiry(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now
    }

    pub fn transition_context(&self, now: DateTime<Utc>) -> TransitionContext {
        self.context(now)
    }

    fn context(&self, now: DateTime<Utc>) -> TransitionContext {
        TransitionContext { payment_type: self.payment_type, expiration_mode: self.expiration_mode, past_expiry: self.past_expiry(now) }
    }

    /// The status as of `now` (an idle session past `expires_at` reads as expired).
    pub fn status_at(&self, now: DateTime<Utc>) -> SessionStatus {
        effective_status(self.status, self.expiration_mode, self.past_expiry(now))
    }

    /// Applies a merchant action, returning the next version of the session.
    pub fn apply(&self, action: MerchantAction, now: DateTime<Utc>) -> Result<PaymentSession, InvalidTransition> {
        let event = action.event();
        let effective = self.status_at(now);
        // An idle session already past its expiry accepts only the expiry itself, which
        // then writes down what readers already see.
        if effective != self.status && event != SessionEvent::Expire {
            return Err(InvalidTransition { from: effective, event });
        }
        let to = transition(self.status, event, self.context(now))?;
        let mut next = self.clone();
        next.status = to;
        next.updated_at = now;
        next.version += 1;
        match action {
            MerchantAction::Confirm { payment_request_id } => next.payment_request_id = Some(payment_request_id),
            MerchantAction::Cancel { reason } => next.cancellation_reason = Some(reason),
            // Loose mode with an attempt running: the attempt may finish, but the session
            // counts as past its expiry from now on.
            MerchantAction::Expire => next.expires_at = next.expires_at.min(now),
        }
        Ok(next)
    }

    /// The session as the API shows it at `now`.
    pub fn to_api(&self, now: DateTime<Utc>) -> Value {
        let status = self.status_at(now);
        let Value::Object(mut fields) = serde_json::to_value(self).expect("session serialises") else {
            unreachable!("a struct serialises to an object")
        };
        for internal in ["merchant_id", "version", "page_token_hash", "otp", "id", "status"] {
            fields.shift_remove(internal);
        }
        let mut out = Map::new();
        out.insert("id".into(), Value::String(self.id.clone()));
        out.insert("object".into(), Value::String("payment_session".into()));
        out.insert("status".into(), Value::String(status.as_str().into()));
        out.extend(fields);
        let ctx = TransitionContext { past_expiry: self.past_expiry(now), ..self.context(now) };
        out.insert("allowed_actions".into(), serde_json::json!(allowed_actions(status, ctx)));
        out.insert("livemode".into(), Value::Bool(false));
        Value::Object(out)
    }
}

/// What the merchant can do to a session through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MerchantAction {
    Confirm { payment_request_id: String },
    Cancel { reason: CancellationReason },
    Expire,
}

impl MerchantAction {
    pub fn event(&self) -> SessionEvent {
        match self {
            MerchantAction::Confirm { .. } => SessionEvent::Confirm,
            MerchantAction::Cancel { .. } => SessionEvent::Cancel,
            MerchantAction::Expire => SessionEvent::Expire,
        }
    }
}

/// An event appended to a session's history in the same write as the change it reports
/// (the outbox webhooks are fed from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    pub session_id: String,
    pub data: Value,
}

impl EventRecord {
    /// The public envelope `{id, object, type, created_at, data}`.
    pub fn to_api(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "object": "event",
            "type": self.event_type,
            "created_at": self.created_at,
            "data": self.data,
        })
    }
}

/// The event types a change from `before` to `after` produces, in order, with the
/// previous status where one applies: `payment_session.created` on creation; then
/// `payment.updated` for each attempt that appeared or changed; then, if the status
/// changed, `payment_session.updated` and the terminal event. A change that is neither
/// (a loose-mode expiry request) is reported as `payment_session.updated`.
pub fn event_types_for(before: Option<&PaymentSession>, after: &PaymentSession) -> Vec<(&'static str, Option<SessionStatus>)> {
    let Some(before) = before else { return vec![("payment_session.created", None)] };
    let mut types: Vec<(&'static str, Option<SessionStatus>)> =
        changed_attempts(before, after).map(|_| ("payment.updated", None)).collect();
    if before.status != after.status || types.is_empty() {
        types.push(("payment_session.updated", Some(before.status)));
    }
    if before.status != after.status {
        let terminal = match after.status {
            SessionStatus::Succeeded => Some("payment_session.succeeded"),
            SessionStatus::Failed => Some("payment_session.failed"),
            SessionStatus::Expired => Some("payment_session.expired"),
            SessionStatus::Cancelled => Some("payment_session.cancelled"),
            _ => None,
        };
        types.extend(terminal.map(|t| (t, Some(before.status))));
    }
    types
}

fn changed_attempts<'a>(before: &'a PaymentSession, after: &'a PaymentSession) -> impl Iterator<Item = &'a PaymentAttempt> + 'a {
    after.payments.iter().filter(move |a| !before.payments.contains(a))
}

/// Builds the event records for a change; `ids` yields fresh `evt_` ids.
pub fn events_for(
    before: Option<&PaymentSession>,
    after: &PaymentSession,
    now: DateTime<Utc>,
    mut ids: impl FnMut() -> String,
) -> Vec<EventRecord> {
    let snapshot = after.to_api(now);
    let mut attempts = before.map(|b| changed_attempts(b, after).collect::<Vec<_>>()).unwrap_or_default().into_iter();
    event_types_for(before, after)
        .into_iter()
        .map(|(t, previous)| {
            let mut data = if t == "payment.updated" {
                let attempt = attempts.next().expect("one payment.updated per changed attempt");
                let mut object = serde_json::to_value(attempt).expect("attempt serialises");
                object["object"] = Value::String("payment".into());
                object["session_id"] = Value::String(after.id.clone());
                serde_json::json!({ "object": object })
            } else {
                serde_json::json!({ "object": snapshot.clone() })
            };
            if let Some(p) = previous {
                data["previous_status"] = Value::String(p.as_str().into());
            }
            EventRecord { id: ids(), event_type: t.to_string(), created_at: now, session_id: after.id.clone(), data }
        })
        .collect()
}
