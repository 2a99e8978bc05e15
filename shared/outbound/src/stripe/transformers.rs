//! Stripe's wire shapes: request builders (our port's calls → Stripe's form-encoded
//! parameters) and response mappers (Stripe's JSON → our port's answers), pure functions
//! in the manner of hyperswitch's `<connector>/transformers.rs`. The connector (`mod.rs`)
//! only sends what these build and hands back what these map.

use paysession_app::processor::{ActionOutcome, Answer, Outcome, PaymentCall, RefundAnswer, RefundOutcome, SavedCharge};
use paysession_domain::card::CardInput;
use paysession_domain::payment::{CaptureMethod, Dispute};
use paysession_domain::refund::RefundStatus;
use serde::Deserialize;

/// The API version every request pins (`Stripe-Version`): the shapes below are this one's.
pub const API_VERSION: &str = "2024-06-20";

/// Form parameters in order (`a[b][c]=v`, Stripe's nesting).
pub type Form = Vec<(String, String)>;

/// What we put in `metadata` so a webhook or a search finds our objects.
pub const META_PAYMENT: &str = "paysession_payment_id";
pub const META_SESSION: &str = "paysession_session_id";
pub const META_MERCHANT: &str = "paysession_merchant_id";
pub const META_REFUND: &str = "paysession_refund_id";
pub const META_CUSTOMER: &str = "paysession_customer_id";

fn push(form: &mut Form, k: &str, v: impl Into<String>) {
    form.push((k.to_string(), v.into()));
}

/// The parameters every PaymentIntent we create carries: amount, currency, capture,
/// card only, our ids as metadata, and the charge expanded for its network id.
fn intent_base(call: &PaymentCall<'_>) -> Form {
    let mut f = Form::new();
    push(&mut f, "amount", call.amount.to_string());
    push(&mut f, "currency", call.currency.to_ascii_lowercase());
    push(&mut f, "confirm", "true");
    push(&mut f, "capture_method", if call.capture == CaptureMethod::Manual { "manual" } else { "automatic" });
    push(&mut f, "payment_method_types[0]", "card");
    push(&mut f, &format!("metadata[{META_PAYMENT}]"), call.id);
    push(&mut f, &format!("metadata[{META_SESSION}]"), call.session_id);
    push(&mut f, &format!("metadata[{META_MERCHANT}]"), call.merchant_id);
    push(&mut f, "expand[0]", "latest_charge");
    f
}

/// `POST /v1/payment_intents`: create and confirm with the typed card. With `customer`
/// (a method to save) the card is set up for later merchant-initiated charges.
pub fn authorize(call: &PaymentCall<'_>, card: &CardInput, customer: Option<&str>) -> Form {
    let mut f = intent_base(call);
    push(&mut f, "payment_method_data[type]", "card");
    push(&mut f, "payment_method_data[card][number]", card.number.digits());
    push(&mut f, "payment_method_data[card][exp_month]", card.exp_month.to_string());
    push(&mut f, "payment_method_data[card][exp_year]", card.exp_year.to_string());
    push(&mut f, "payment_method_data[card][cvc]", card.cvc.digits());
    if let Some(url) = call.return_url {
        push(&mut f, "return_url", url);
    }
    if let Some(customer) = customer {
        push(&mut f, "customer", customer);
        push(&mut f, "setup_future_usage", "off_session");
    }
    f
}

/// A saved method's token: the Stripe Customer and PaymentMethod it charges.
pub fn saved_token(customer: &str, payment_method: &str) -> String {
    format!("{customer}/{payment_method}")
}

fn split_token(token: &str) -> Option<(&str, &str)> {
    token.split_once('/').filter(|(c, p)| c.starts_with("cus_") && p.starts_with("pm_"))
}

/// `POST /v1/payment_intents` charging a saved method: merchant-initiated (`off_session`)
/// under a mandate, else the customer paying on the page with a saved card.
pub fn charge_saved(call: &PaymentCall<'_>, saved: &SavedCharge<'_>) -> Option<Form> {
    let (customer, payment_method) = split_token(saved.token)?;
    let mut f = intent_base(call);
    push(&mut f, "customer", customer);
    push(&mut f, "payment_method", payment_method);
    if saved.mandate_id.is_some() {
        push(&mut f, "off_session", "true");
    } else if let Some(url) = call.return_url {
        push(&mut f, "return_url", url);
    }
    Some(f)
}

/// `POST /v1/customers`: the merchant's customer, once.
pub fn customer(merchant_id: &str, customer_id: &str) -> Form {
    let mut f = Form::new();
    push(&mut f, &format!("metadata[{META_MERCHANT}]"), merchant_id);
    push(&mut f, &format!("metadata[{META_CUSTOMER}]"), customer_id);
    f
}

/// `POST /v1/payment_intents/{id}/capture`.
pub fn capture(amount: i64) -> Form {
    vec![("amount_to_capture".into(), amount.to_string())]
}

/// `POST /v1/refunds`.
pub fn refund(payment_intent: &str, refund_id: &str, amount: i64) -> Form {
    let mut f = Form::new();
    push(&mut f, "payment_intent", payment_intent);
    push(&mut f, "amount", amount.to_string());
    push(&mut f, &format!("metadata[{META_REFUND}]"), refund_id);
    f
}

/// The search query that finds our payment when its PaymentIntent id was never recorded.
pub fn search_by_payment(payment_id: &str) -> String {
    format!("metadata['{META_PAYMENT}']:'{payment_id}'")
}

// ---- responses ----

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub amount: i64,
    #[serde(default)]
    pub customer: Option<Expandable>,
    #[serde(default)]
    pub payment_method: Option<Expandable>,
    #[serde(default)]
    pub setup_future_usage: Option<String>,
    #[serde(default)]
    pub next_action: Option<NextAction>,
    #[serde(default)]
    pub last_payment_error: Option<ApiError>,
    #[serde(default)]
    pub latest_charge: Option<Expandable>,
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// A field Stripe gives as an id, or as the object when expanded.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Expandable {
    Id(String),
    Object(Box<serde_json::Value>),
}

impl Expandable {
    pub fn id(&self) -> Option<&str> {
        match self {
            Expandable::Id(id) => Some(id),
            Expandable::Object(o) => o.get("id").and_then(|v| v.as_str()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct NextAction {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub redirect_to_url: Option<RedirectToUrl>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedirectToUrl {
    pub url: Option<String>,
}

/// Stripe's error object (`{"error": {…}}`), and a PaymentIntent's `last_payment_error`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApiError {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub payment_intent: Option<Box<PaymentIntent>>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Refund {
    pub id: String,
    pub status: Option<String>,
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StripeDispute {
    pub id: String,
    pub amount: i64,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub payment_intent: Option<Expandable>,
    #[serde(default)]
    pub created: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: serde_json::Value,
}

/// Our failure code for a Stripe error: `decline_code` first (the issuer's reason), then
/// `code` (an unknown decline code under `card_declined` stays a card decline). `None` for
/// a code we do not know (the caller logs it once and uses `processing_error`).
pub fn failure_code(e: &ApiError) -> Option<&'static str> {
    let known = |c: &str| -> Option<&'static str> {
        Some(match c {
            "insufficient_funds" => "insufficient_funds",
            "expired_card" => "expired_card",
            "incorrect_cvc" | "invalid_cvc" => "incorrect_cvc",
            "authentication_required" | "authentication_not_handled" | "payment_intent_authentication_failure" => "authentication_required",
            "processing_error" => "processing_error",
            "generic_decline"
            | "do_not_honor"
            | "card_declined"
            | "lost_card"
            | "stolen_card"
            | "fraudulent"
            | "pickup_card"
            | "restricted_card"
            | "card_not_supported"
            | "currency_not_supported"
            | "transaction_not_allowed"
            | "card_velocity_exceeded"
            | "incorrect_number"
            | "invalid_number"
            | "invalid_expiry_month"
            | "invalid_expiry_year" => "card_declined",
            _ => return None,
        })
    };
    match (e.decline_code.as_deref(), e.code.as_deref()) {
        (Some(d), _) if known(d).is_some() => known(d),
        (_, Some(c)) => known(c),
        _ => None,
    }
}

/// The saved method's token a succeeded intent set up for later use, if it did.
fn token_of(pi: &PaymentIntent) -> Option<String> {
    pi.setup_future_usage.as_ref()?;
    Some(saved_token(pi.customer.as_ref()?.id()?, pi.payment_method.as_ref()?.id()?))
}

/// The network transaction id on the expanded charge (Stripe quotes it itself on later
/// off-session charges of the method; we keep it with the saved method as for any processor).
fn network_id(pi: &PaymentIntent) -> Option<String> {
    match pi.latest_charge.as_ref()? {
        Expandable::Object(charge) => {
            charge.pointer("/payment_method_details/card/network_transaction_id").and_then(|v| v.as_str()).map(str::to_string)
        }
        Expandable::Id(_) => None,
    }
}

/// What a PaymentIntent says about our payment. `unknown_code` is called with a decline
/// code we do not map.
pub fn answer(pi: &PaymentIntent, unknown_code: &dyn Fn(&str)) -> Answer {
    let failed = |e: Option<&ApiError>| {
        let code = match e {
            Some(e) => failure_code(e).unwrap_or_else(|| {
                unknown_code(e.decline_code.as_deref().or(e.code.as_deref()).unwrap_or("none"));
                "processing_error"
            }),
            None => "processing_error",
        };
        Outcome::Failed { code }
    };
    let (outcome, redirect_url) = match pi.status.as_str() {
        // `requires_capture`: authorised, as asked with manual capture.
        "succeeded" | "requires_capture" => (Outcome::Succeeded { token: token_of(pi) }, None),
        "processing" => (Outcome::Processing, None),
        "requires_action" => {
            let url = pi.next_action.as_ref().filter(|a| a.kind == "redirect_to_url").and_then(|a| a.redirect_to_url.as_ref()?.url.clone());
            match url {
                Some(url) => (Outcome::RequiresAction, Some(url)),
                // An action only Stripe.js can perform: the hosted page cannot, so the payment
                // fails as needing authentication rather than waiting forever.
                None => (Outcome::Failed { code: "authentication_required" }, None),
            }
        }
        // A confirmed intent back at `requires_payment_method` was declined.
        "requires_payment_method" => (failed(pi.last_payment_error.as_ref()), None),
        "canceled" => (Outcome::Failed { code: "processing_error" }, None),
        _ => (Outcome::Unknown, None),
    };
    Answer { outcome, reference: Some(pi.id.clone()), network_transaction_id: network_id(pi), redirect_url }
}

/// A Stripe refund's state as our refund's.
pub fn refund_answer(r: &Refund) -> RefundAnswer {
    let status = match r.status.as_deref() {
        Some("succeeded") => RefundStatus::Succeeded,
        Some("failed") => RefundStatus::Failed,
        Some("canceled") => RefundStatus::Canceled,
        Some("requires_action") => RefundStatus::RequiresAction,
        _ => RefundStatus::Pending,
    };
    let failure_reason = (status == RefundStatus::Failed).then(|| r.failure_reason.clone().unwrap_or_else(|| "unknown".into()));
    // Pending: asked again in a minute (a webhook usually comes first). A success can still
    // fail later; Stripe says so with `charge.refund.updated`, not by being asked.
    let check_after = (status == RefundStatus::Pending).then(|| chrono::Duration::minutes(1));
    RefundAnswer { outcome: RefundOutcome::Known { status, failure_reason }, reference: Some(r.id.clone()), check_after }
}

/// A capture or cancel answered with an error body: refused (Stripe did nothing).
pub fn action_refused(_e: &ApiError) -> ActionOutcome {
    ActionOutcome::Failed { code: "processing_error" }
}

/// A dispute as our domain records it.
pub fn dispute(d: &StripeDispute) -> Dispute {
    Dispute {
        id: d.id.clone(),
        amount: d.amount,
        reason: d.reason.clone().unwrap_or_else(|| "general".into()),
        status: d.status.clone().unwrap_or_else(|| "needs_response".into()),
        created_at: chrono::DateTime::from_timestamp(d.created, 0).unwrap_or_default(),
    }
}

/// Form-encodes parameters (`application/x-www-form-urlencoded`, brackets escaped as
/// Stripe's own libraries send them).
pub fn encode(form: &Form) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        s.append_pair(k, v);
    }
    s.finish()
}
