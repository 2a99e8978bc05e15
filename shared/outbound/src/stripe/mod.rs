//! The Stripe connector: PaymentIntents and Refunds behind the processor port.
//!
//! Every money call carries our id as Stripe's `Idempotency-Key` (an attempt's `pay_…`, a
//! refund's `re_…`; capture and cancel add a suffix), so a retry after a lost answer is
//! Stripe's replay of the first, never a second charge. 429, 5xx, timeouts and dropped
//! connections are retried with back-off; after the last try the answer is `Unknown` and
//! reconciliation asks again by our id. Card numbers go into the request body to Stripe and
//! nowhere else: no log line here carries a body.

pub mod signature;
pub mod transformers;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use paysession_app::ports::SettingsStore;
use paysession_app::processor::{
    ActionOutcome, Answer, Outcome, PaymentCall, PaymentProcessor, ProcessorEvent, ProcessorEventKind, RedirectMethod, RefundAnswer,
    RefundCall, RefundOutcome, SavedCharge, WebhookRejected,
};
use paysession_app::secret::Secret;
use paysession_domain::card::CardInput;
use paysession_domain::refund::RefundStatus;
use transformers::{ApiError, ErrorBody, Event, Form, List, PaymentIntent, Refund, StripeDispute};

/// The processor name payments made through this connector show.
pub const NAME: &str = "stripe";

/// Where and how the connector talks to Stripe.
#[derive(Debug, Clone)]
pub struct StripeOptions {
    /// `https://api.stripe.com`, or a stand-in (`PAYSESSION_STRIPE_API_BASE`).
    pub api_base: String,
    /// Per request (Stripe answers within seconds; a card network's slowest within ~30 s).
    pub timeout: Duration,
    /// Tries per call, the first included.
    pub tries: u32,
    /// The wait before the second try; doubled for each further one.
    pub backoff: Duration,
}

impl StripeOptions {
    pub const API_BASE_ENV: &str = "PAYSESSION_STRIPE_API_BASE";

    pub fn from_env() -> StripeOptions {
        StripeOptions {
            api_base: std::env::var(Self::API_BASE_ENV).unwrap_or_else(|_| "https://api.stripe.com".into()),
            timeout: Duration::from_secs(30),
            tries: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// A PaymentIntent not found by search this long after its claim was never created (the
/// search index lags by up to a minute; our first sync asks after one).
const SEARCH_VISIBLE_AFTER: chrono::Duration = chrono::Duration::hours(1);

pub struct StripeConnector {
    options: StripeOptions,
    secret_key: Secret<String>,
    webhook_secret: Option<Secret<String>>,
    /// Where the Stripe Customer made for each merchant customer is kept.
    customers: Arc<dyn SettingsStore>,
    http: OnceLock<reqwest::Client>,
}

/// What one call came back with.
enum Reply {
    Ok(bytes::Bytes),
    /// Stripe answered with an error it means (4xx other than 409/429).
    Refused {
        status: u16,
        error: ApiError,
    },
    /// No answer we can act on after every try.
    NoAnswer(String),
}

impl StripeConnector {
    pub fn new(
        options: StripeOptions,
        secret_key: Secret<String>,
        webhook_secret: Option<Secret<String>>,
        customers: Arc<dyn SettingsStore>,
    ) -> StripeConnector {
        StripeConnector { options, secret_key, webhook_secret, customers, http: OnceLock::new() }
    }

    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .use_preconfigured_tls(crate::tls_config(&[]))
                .redirect(reqwest::redirect::Policy::none())
                .timeout(self.options.timeout)
                .connect_timeout(Duration::from_secs(5))
                .build()
                .expect("static client configuration")
        })
    }

    /// Sends one call, retrying what may succeed on a retry. Only calls that are safe to
    /// repeat are retried: reads, and writes under an idempotency key.
    async fn send(&self, method: reqwest::Method, path: &str, form: Option<&Form>, key: Option<&str>) -> Reply {
        let url = format!("{}{path}", self.options.api_base.trim_end_matches('/'));
        let retryable = method == reqwest::Method::GET || key.is_some();
        let mut last = String::new();
        for attempt in 0..self.options.tries.max(1) {
            if attempt > 0 {
                tokio::time::sleep(self.options.backoff * 2u32.pow(attempt - 1)).await;
            }
            let mut req = self
                .http()
                .request(method.clone(), &url)
                .bearer_auth(self.secret_key.expose())
                .header("stripe-version", transformers::API_VERSION)
                .header("user-agent", concat!("paysession/", env!("CARGO_PKG_VERSION")));
            if let Some(key) = key {
                req = req.header("idempotency-key", key);
            }
            if let Some(form) = form {
                req = req.header("content-type", "application/x-www-form-urlencoded").body(transformers::encode(form));
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = match resp.bytes().await {
                        Ok(b) => b,
                        Err(e) => {
                            last = format!("reading the answer: {}", crate::describe(&e));
                            if retryable {
                                continue;
                            }
                            break;
                        }
                    };
                    if (200..300).contains(&status) {
                        return Reply::Ok(body);
                    }
                    let error = serde_json::from_slice::<ErrorBody>(&body).map(|b| b.error).unwrap_or_default();
                    // 409: the same key in flight (or a lock); 429: rate limited; 5xx: Stripe's side.
                    if status == 409 || status == 429 || status >= 500 {
                        last = format!("HTTP {status} {}", error.code.as_deref().unwrap_or(""));
                        if retryable {
                            continue;
                        }
                        break;
                    }
                    return Reply::Refused { status, error };
                }
                Err(e) => {
                    last = crate::describe(&e);
                    if !retryable {
                        break;
                    }
                }
            }
        }
        tracing::warn!(path, error = %last, "no answer from Stripe");
        Reply::NoAnswer(last)
    }

    fn note_unknown_code(code: &str) {
        static SEEN: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
        let mut seen = SEEN.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() < 1_000 && seen.insert(code.to_string()) {
            tracing::warn!(code, "unknown Stripe decline code; mapped to processing_error");
        }
    }

    fn answer(pi: &PaymentIntent) -> Answer {
        transformers::answer(pi, &Self::note_unknown_code)
    }

    /// A PaymentIntent create's reply as an answer: a decline comes back as 402 with the
    /// intent inside the error.
    fn intent_reply(reply: Reply) -> Answer {
        match reply {
            Reply::Ok(body) => match serde_json::from_slice::<PaymentIntent>(&body) {
                Ok(pi) => Self::answer(&pi),
                Err(e) => {
                    tracing::error!(error = %e, "unreadable PaymentIntent from Stripe");
                    Answer::of(Outcome::Unknown, None)
                }
            },
            Reply::Refused { status, error } => {
                if let Some(pi) = &error.payment_intent {
                    return Self::answer(pi);
                }
                let code = transformers::failure_code(&error).unwrap_or_else(|| {
                    if status == 402 {
                        Self::note_unknown_code(error.decline_code.as_deref().or(error.code.as_deref()).unwrap_or("none"));
                    } else {
                        tracing::error!(status, code = error.code.as_deref().unwrap_or(""), "Stripe refused the payment request");
                    }
                    "processing_error"
                });
                Answer::of(Outcome::Failed { code }, None)
            }
            Reply::NoAnswer(_) => Answer::of(Outcome::Unknown, None),
        }
    }

    /// The Stripe Customer of the merchant's customer: made once, its id kept in the store.
    async fn customer(&self, call: &PaymentCall<'_>) -> Result<String, String> {
        let key = format!("stripe-customer:{}:{}", call.merchant_id, call.customer_id);
        if let Some(id) = self.customers.get_setting(&key).await.map_err(|e| e.to_string())? {
            return Ok(id);
        }
        let idempotency = format!("cus-{}", &paysession_app::ids::sha256_hex(key.as_bytes())[..40]);
        let form = transformers::customer(call.merchant_id, call.customer_id);
        match self.send(reqwest::Method::POST, "/v1/customers", Some(&form), Some(&idempotency)).await {
            Reply::Ok(body) => {
                let id = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_string))
                    .ok_or("no customer id in Stripe's answer")?;
                self.customers.put_setting(&key, &id).await.map_err(|e| e.to_string())?;
                Ok(id)
            }
            Reply::Refused { status, error } => Err(format!("HTTP {status} {}", error.code.unwrap_or_default())),
            Reply::NoAnswer(e) => Err(e),
        }
    }

    async fn retrieve(&self, id: &str) -> Reply {
        self.send(reqwest::Method::GET, &format!("/v1/payment_intents/{id}?expand[]=latest_charge"), None, None).await
    }

    fn action(reply: Reply) -> ActionOutcome {
        match reply {
            Reply::Ok(_) => ActionOutcome::Done,
            Reply::Refused { error, .. } => transformers::action_refused(&error),
            Reply::NoAnswer(_) => ActionOutcome::Unknown,
        }
    }

    /// The effect of a verified event on our objects.
    async fn effect(&self, event: &Event) -> Result<ProcessorEventKind, WebhookRejected> {
        let object = &event.data.object;
        let malformed = |e: serde_json::Error| WebhookRejected::Malformed(format!("{}: {e}", event.kind));
        Ok(match event.kind.as_str() {
            "payment_intent.succeeded"
            | "payment_intent.payment_failed"
            | "payment_intent.canceled"
            | "payment_intent.amount_capturable_updated"
            | "payment_intent.processing"
            | "payment_intent.requires_action" => {
                let pi: PaymentIntent = serde_json::from_value(object.clone()).map_err(malformed)?;
                match (pi.metadata.get(transformers::META_SESSION), pi.metadata.get(transformers::META_PAYMENT)) {
                    (Some(session), Some(payment)) => {
                        ProcessorEventKind::Payment { session_id: session.clone(), payment_id: payment.clone(), answer: Self::answer(&pi) }
                    }
                    _ => ProcessorEventKind::Ignored,
                }
            }
            "charge.refund.updated" | "refund.updated" | "refund.created" | "refund.failed" => {
                let refund: Refund = serde_json::from_value(object.clone()).map_err(malformed)?;
                refund_effect(&refund)
            }
            "charge.refunded" => {
                // Newer API versions list no refunds on the charge; `refund.updated` follows.
                let refunds: Vec<Refund> =
                    object.pointer("/refunds/data").and_then(|d| serde_json::from_value(d.clone()).ok()).unwrap_or_default();
                refunds.iter().map(refund_effect).find(|e| *e != ProcessorEventKind::Ignored).unwrap_or(ProcessorEventKind::Ignored)
            }
            "charge.dispute.created" => {
                let d: StripeDispute = serde_json::from_value(object.clone()).map_err(malformed)?;
                let Some(pi_id) = d.payment_intent.as_ref().and_then(|p| p.id()) else { return Ok(ProcessorEventKind::Ignored) };
                // A dispute names the PaymentIntent, not our ids: its metadata does.
                let pi = match self.retrieve(pi_id).await {
                    Reply::Ok(body) => serde_json::from_slice::<PaymentIntent>(&body).map_err(malformed)?,
                    Reply::Refused { status: 404, .. } => return Ok(ProcessorEventKind::Ignored),
                    Reply::Refused { status, .. } => return Err(WebhookRejected::Unavailable(format!("HTTP {status}"))),
                    Reply::NoAnswer(e) => return Err(WebhookRejected::Unavailable(e)),
                };
                match (pi.metadata.get(transformers::META_SESSION), pi.metadata.get(transformers::META_PAYMENT)) {
                    (Some(session), Some(payment)) => ProcessorEventKind::Dispute {
                        session_id: session.clone(),
                        payment_id: payment.clone(),
                        dispute: transformers::dispute(&d),
                    },
                    _ => ProcessorEventKind::Ignored,
                }
            }
            _ => ProcessorEventKind::Ignored,
        })
    }
}

fn refund_effect(refund: &Refund) -> ProcessorEventKind {
    let Some(ours) = refund.metadata.get(transformers::META_REFUND) else { return ProcessorEventKind::Ignored };
    match transformers::refund_answer(refund).outcome {
        RefundOutcome::Known { status, failure_reason } => ProcessorEventKind::Refund { refund_id: ours.clone(), status, failure_reason },
        _ => ProcessorEventKind::Ignored,
    }
}

fn not_offered() -> Answer {
    // The connector takes cards; a merchant on Stripe offers no redirect methods.
    Answer::of(Outcome::Failed { code: "processing_error" }, None)
}

#[async_trait]
impl PaymentProcessor for StripeConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn offers(&self, method: paysession_domain::model::PaymentMethodKind) -> bool {
        method == paysession_domain::model::PaymentMethodKind::Card
    }

    async fn authorize_card(&self, call: &PaymentCall<'_>, card: &CardInput, save: bool) -> Answer {
        let customer = if save {
            match self.customer(call).await {
                Ok(c) => Some(c),
                Err(e) => {
                    // Nothing was charged: the payment fails and the customer may try again.
                    tracing::error!(payment_id = call.id, error = %e, "could not make the Stripe customer to save the card");
                    return Answer::of(Outcome::Failed { code: "processing_error" }, None);
                }
            }
        } else {
            None
        };
        let form = transformers::authorize(call, card, customer.as_deref());
        Self::intent_reply(self.send(reqwest::Method::POST, "/v1/payment_intents", Some(&form), Some(call.id)).await)
    }

    async fn complete_authentication(&self, call: &PaymentCall<'_>, _approved: bool, _save: bool) -> Answer {
        // The customer authenticated on Stripe's page, not ours: Stripe knows the result.
        self.sync_payment(call).await.unwrap_or_else(|| Answer::of(Outcome::Failed { code: "processing_error" }, None))
    }

    async fn start_redirect(&self, _call: &PaymentCall<'_>, _method: RedirectMethod) -> Answer {
        not_offered()
    }

    async fn provider_decision(&self, _call: &PaymentCall<'_>, _method: RedirectMethod, _approved: bool) -> Answer {
        not_offered()
    }

    async fn settle(&self, _call: &PaymentCall<'_>) -> Answer {
        not_offered()
    }

    async fn charge_saved(&self, call: &PaymentCall<'_>, saved: &SavedCharge<'_>) -> Answer {
        let Some(form) = transformers::charge_saved(call, saved) else {
            tracing::error!(payment_id = call.id, "the saved method was not saved with Stripe");
            return Answer::of(Outcome::Failed { code: "processing_error" }, None);
        };
        Self::intent_reply(self.send(reqwest::Method::POST, "/v1/payment_intents", Some(&form), Some(call.id)).await)
    }

    async fn capture(&self, call: &PaymentCall<'_>, amount: i64) -> ActionOutcome {
        let Some(pi) = call.reference else { return ActionOutcome::Failed { code: "processing_error" } };
        let key = format!("{}-capture", call.id);
        Self::action(
            self.send(
                reqwest::Method::POST,
                &format!("/v1/payment_intents/{pi}/capture"),
                Some(&transformers::capture(amount)),
                Some(&key),
            )
            .await,
        )
    }

    async fn void(&self, call: &PaymentCall<'_>) -> ActionOutcome {
        let Some(pi) = call.reference else { return ActionOutcome::Failed { code: "processing_error" } };
        let key = format!("{}-void", call.id);
        Self::action(self.send(reqwest::Method::POST, &format!("/v1/payment_intents/{pi}/cancel"), Some(&Form::new()), Some(&key)).await)
    }

    async fn refund(&self, call: &RefundCall<'_>) -> RefundAnswer {
        let failed = |reason: String| RefundAnswer::of(RefundOutcome::Known { status: RefundStatus::Failed, failure_reason: Some(reason) });
        let Some(pi) = call.payment.reference else {
            tracing::error!(refund_id = call.id, "the payment has no Stripe PaymentIntent to refund");
            return failed("unknown".into());
        };
        let form = transformers::refund(pi, call.id, call.amount);
        match self.send(reqwest::Method::POST, "/v1/refunds", Some(&form), Some(call.id)).await {
            Reply::Ok(body) => serde_json::from_slice::<Refund>(&body)
                .map_or(RefundAnswer::of(RefundOutcome::Unknown), |r| transformers::refund_answer(&r)),
            // Refused (already refunded, more than was paid…): Stripe made no refund.
            Reply::Refused { error, .. } => failed(error.code.unwrap_or_else(|| "refused".into())),
            Reply::NoAnswer(_) => RefundAnswer::of(RefundOutcome::Unknown),
        }
    }

    async fn sync_payment(&self, call: &PaymentCall<'_>) -> Option<Answer> {
        let reply = match call.reference {
            Some(pi) => self.retrieve(pi).await,
            None => {
                let query = transformers::encode(&vec![("query".into(), transformers::search_by_payment(call.id))]);
                match self.send(reqwest::Method::GET, &format!("/v1/payment_intents/search?{query}"), None, None).await {
                    Reply::Ok(body) => match serde_json::from_slice::<List<PaymentIntent>>(&body) {
                        Ok(list) => match list.data.into_iter().next() {
                            Some(pi) => return Some(Self::answer(&pi)),
                            None if Utc::now() - call.claimed_at > SEARCH_VISIBLE_AFTER => return None,
                            None => return Some(Answer::of(Outcome::Unknown, None)),
                        },
                        Err(_) => return Some(Answer::of(Outcome::Unknown, None)),
                    },
                    other => other,
                }
            }
        };
        match reply {
            Reply::Ok(body) => {
                Some(serde_json::from_slice::<PaymentIntent>(&body).map_or(Answer::of(Outcome::Unknown, None), |pi| Self::answer(&pi)))
            }
            Reply::Refused { status: 404, .. } => None,
            Reply::Refused { .. } | Reply::NoAnswer(_) => Some(Answer::of(Outcome::Unknown, None)),
        }
    }

    async fn sync_refund(&self, call: &RefundCall<'_>) -> RefundAnswer {
        let Some(pi) = call.payment.reference else { return RefundAnswer::of(RefundOutcome::NotFound) };
        let reply = self.send(reqwest::Method::GET, &format!("/v1/refunds?payment_intent={pi}&limit=100"), None, None).await;
        let Reply::Ok(body) = reply else { return RefundAnswer::of(RefundOutcome::Unknown) };
        match serde_json::from_slice::<List<Refund>>(&body) {
            Ok(list) => list
                .data
                .iter()
                .find(|r| r.metadata.get(transformers::META_REFUND).map(String::as_str) == Some(call.id))
                .map_or(RefundAnswer::of(RefundOutcome::NotFound), transformers::refund_answer),
            Err(_) => RefundAnswer::of(RefundOutcome::Unknown),
        }
    }

    async fn incoming_webhook(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<ProcessorEvent, WebhookRejected> {
        let Some(secret) = &self.webhook_secret else { return Err(WebhookRejected::Unsupported) };
        let header = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("stripe-signature"))
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| WebhookRejected::BadSignature("no Stripe-Signature header".into()))?;
        signature::verify(header, body, secret.expose(), now.timestamp()).map_err(WebhookRejected::BadSignature)?;
        let event: Event = serde_json::from_slice(body).map_err(|e| WebhookRejected::Malformed(e.to_string()))?;
        let kind = self.effect(&event).await?;
        Ok(ProcessorEvent { id: event.id, event_type: event.kind, kind })
    }
}
