//! How a stored session is read back. The record keeps the validated spec flattened into
//! its own keys (`PaymentSession::spec`), and serde reads a `#[serde(flatten)]` field by
//! buffering every key it does not know into a generic tree first: under load that buffer
//! was the largest cost of reading a session (perf of a local `GET`: 17 % of the server's
//! CPU). This struct names the same keys flat, so they deserialise in one pass.
//!
//! Drift does not build: the conversion below builds `PaymentSession` and `SessionSpec` with
//! struct literals, which must name all of their fields, and a field here that it does not
//! read is dead code, which `clippy -D warnings` refuses.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::{Instructions, OtpState, PaymentAttempt, PaymentSession};
use crate::create::SessionSpec;
use crate::lifecycle::{ExpirationMode, PaymentType, SessionStatus};
use crate::model::*;
use crate::money::{Amount, Currency};

#[derive(Deserialize)]
pub(super) struct StoredSession {
    id: String,
    merchant_id: String,
    status: SessionStatus,
    // The spec's keys, as `SessionSpec` names them.
    session_type: SessionType,
    amount: Amount,
    currency: Currency,
    customer_id: String,
    customer: Option<Customer>,
    reference: String,
    due_date: Option<NaiveDate>,
    purpose: Option<Purpose>,
    items: Vec<LineItem>,
    recipients: Vec<Recipient>,
    allowed_domains: Vec<AllowedDomain>,
    #[serde(deserialize_with = "crate::rfc3339::deserialize")]
    expires_at: DateTime<Utc>,
    expiration_mode: ExpirationMode,
    payment_type: PaymentType,
    payment_methods: Vec<PaymentMethodKind>,
    #[serde(default)]
    capture_method: crate::attempt::CaptureMethod,
    mode: Mode,
    auto_confirm: bool,
    save_payment_method: Option<SavePaymentMethod>,
    show_saved_payment_methods: bool,
    mandate: Option<MandateSpec>,
    mandate_id: Option<String>,
    statement_descriptor: Option<String>,
    success_url: Option<String>,
    cancel_url: Option<String>,
    state: Option<String>,
    locale: String,
    metadata: BTreeMap<String, String>,
    // The session's own keys after the spec.
    url: Option<String>,
    payment_request_id: Option<String>,
    payments: Vec<PaymentAttempt>,
    payment_method_id: Option<String>,
    attempts_remaining: u32,
    cancellation_reason: Option<CancellationReason>,
    #[serde(deserialize_with = "crate::rfc3339::deserialize")]
    created_at: DateTime<Utc>,
    #[serde(deserialize_with = "crate::rfc3339::deserialize")]
    updated_at: DateTime<Utc>,
    version: u64,
    page_token_hash: Option<String>,
    #[serde(default)]
    instructions: Instructions,
    #[serde(default)]
    otp: Option<OtpState>,
}

impl From<StoredSession> for PaymentSession {
    fn from(s: StoredSession) -> Self {
        let spec = SessionSpec {
            session_type: s.session_type,
            amount: s.amount,
            currency: s.currency,
            customer_id: s.customer_id,
            customer: s.customer,
            reference: s.reference,
            due_date: s.due_date,
            purpose: s.purpose,
            items: s.items,
            recipients: s.recipients,
            allowed_domains: s.allowed_domains,
            expires_at: s.expires_at,
            expiration_mode: s.expiration_mode,
            payment_type: s.payment_type,
            payment_methods: s.payment_methods,
            capture_method: s.capture_method,
            mode: s.mode,
            auto_confirm: s.auto_confirm,
            save_payment_method: s.save_payment_method,
            show_saved_payment_methods: s.show_saved_payment_methods,
            mandate: s.mandate,
            mandate_id: s.mandate_id,
            statement_descriptor: s.statement_descriptor,
            success_url: s.success_url,
            cancel_url: s.cancel_url,
            state: s.state,
            locale: s.locale,
            metadata: s.metadata,
        };
        PaymentSession {
            id: s.id,
            merchant_id: s.merchant_id,
            status: s.status,
            spec,
            url: s.url,
            payment_request_id: s.payment_request_id,
            payments: s.payments,
            payment_method_id: s.payment_method_id,
            attempts_remaining: s.attempts_remaining,
            cancellation_reason: s.cancellation_reason,
            created_at: s.created_at,
            updated_at: s.updated_at,
            version: s.version,
            page_token_hash: s.page_token_hash,
            instructions: s.instructions,
            otp: s.otp,
        }
    }
}
