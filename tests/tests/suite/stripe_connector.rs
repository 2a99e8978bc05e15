//! The Stripe connector against the loopback stand-in: the exact form body and headers of
//! each flow, the idempotency key reused on retries, and the mapping of declines, 404, 429,
//! 500 and a lost answer. Nothing leaves the machine.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use paysession_app::processor::{ActionOutcome, Answer, Outcome, PaymentCall, PaymentProcessor, RefundCall, RefundOutcome, SavedCharge};
use paysession_app::secret::Secret;
use paysession_domain::model::PaymentMethodKind;
use paysession_domain::payment::CaptureMethod;
use paysession_domain::refund::RefundStatus;
use paysession_embedded::EmbeddedStore;
use paysession_runtime::outbound::stripe::{StripeConnector, StripeOptions};
use paysession_tests::stripe::{Fault, StripeStandIn};
use serde_json::json;

struct Rig {
    standin: StripeStandIn,
    stripe: StripeConnector,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let standin = StripeStandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open_dir(dir.path()).unwrap());
    let options =
        StripeOptions { api_base: standin.url.clone(), timeout: Duration::from_millis(800), tries: 3, backoff: Duration::from_millis(10) };
    let stripe = StripeConnector::new(options, Secret::new("sk_test_standin".into()), Some(Secret::new("whsec_standin".into())), store);
    Rig { standin, stripe, _dir: dir }
}

fn call(id: &str) -> PaymentCall<'_> {
    PaymentCall {
        id,
        merchant_id: "mer_1",
        session_id: "ps_1",
        customer_id: "cus_merchant_1",
        claimed_at: Utc::now(),
        return_url: Some("https://pay.example/pay/tok/challenge/pay_1?returned=1"),
        amount: 1050,
        currency: "EUR",
        method: PaymentMethodKind::Card,
        capture: CaptureMethod::Automatic,
        reference: None,
    }
}

fn card(number: &str) -> paysession_domain::card::CardInput {
    paysession_domain::card::parse_card(number, "12/34", "123", Utc::now()).unwrap()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The parameters every PaymentIntent of `call(id)` carries, then `rest`.
fn intent_form(id: &str, rest: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut form = pairs(&[
        ("amount", "1050"),
        ("currency", "eur"),
        ("confirm", "true"),
        ("capture_method", "automatic"),
        ("payment_method_types[0]", "card"),
        ("metadata[paysession_payment_id]", id),
        ("metadata[paysession_session_id]", "ps_1"),
        ("metadata[paysession_merchant_id]", "mer_1"),
        ("expand[0]", "latest_charge"),
    ]);
    form.extend(pairs(rest));
    form
}

#[tokio::test]
async fn authorise_sends_the_card_to_stripe_under_our_id_with_the_pinned_version() {
    let r = rig().await;
    let answer = r.stripe.authorize_card(&call("pay_1"), &card("4242424242424242"), false).await;
    let sent = r.standin.requests();
    assert_eq!(sent.len(), 1);
    let req = &sent[0];
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/v1/payment_intents"));
    assert_eq!(req.header("authorization"), Some("Bearer sk_test_standin"));
    assert_eq!(req.header("stripe-version"), Some("2024-06-20"));
    assert_eq!(req.header("idempotency-key"), Some("pay_1"));
    assert_eq!(req.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(
        req.form(),
        intent_form(
            "pay_1",
            &[
                ("payment_method_data[type]", "card"),
                ("payment_method_data[card][number]", "4242424242424242"),
                ("payment_method_data[card][exp_month]", "12"),
                ("payment_method_data[card][exp_year]", "2034"),
                ("payment_method_data[card][cvc]", "123"),
                ("return_url", "https://pay.example/pay/tok/challenge/pay_1?returned=1"),
            ]
        )
    );
    let pi = r.standin.intent_of("pay_1").unwrap();
    assert_eq!(answer.outcome, Outcome::Succeeded { token: None });
    assert_eq!(answer.reference.as_deref(), pi["id"].as_str());
    assert!(answer.network_transaction_id.is_some(), "the expanded charge's network id");
}

#[tokio::test]
async fn saving_makes_the_customer_once_and_returns_a_reusable_token() {
    let r = rig().await;
    let first = r.stripe.authorize_card(&call("pay_1"), &card("4242424242424242"), true).await;
    let second = r.stripe.authorize_card(&call("pay_2"), &card("4242424242424242"), true).await;
    let customers = r.standin.requests_to("POST", "/v1/customers");
    assert_eq!(customers.len(), 1, "one Stripe Customer per merchant customer");
    assert_eq!(
        customers[0].form(),
        pairs(&[("metadata[paysession_merchant_id]", "mer_1"), ("metadata[paysession_customer_id]", "cus_merchant_1")])
    );
    assert!(customers[0].header("idempotency-key").unwrap().starts_with("cus-"));
    let intents = r.standin.requests_to("POST", "/v1/payment_intents");
    let form = intents[1].form();
    let customer = r.standin.intent_of("pay_2").unwrap()["customer"].as_str().unwrap().to_string();
    assert!(form.contains(&("customer".into(), customer.clone())) && form.contains(&("setup_future_usage".into(), "off_session".into())));
    for answer in [first, second] {
        let Outcome::Succeeded { token: Some(token) } = answer.outcome else { panic!("{answer:?}") };
        assert!(token.starts_with(&format!("{customer}/pm_")), "{token}");
    }
}

#[tokio::test]
async fn three_d_secure_sends_the_customer_to_stripe_and_back_then_asks_stripe() {
    let r = rig().await;
    let answer = r.stripe.authorize_card(&call("pay_1"), &card("4000002760003184"), false).await;
    assert_eq!(answer.outcome, Outcome::RequiresAction);
    let url = answer.redirect_url.clone().expect("Stripe's page");
    assert!(url.starts_with(&r.standin.url));
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let back = browser.get(format!("{url}?result=approve")).send().await.unwrap();
    assert_eq!(back.status(), 302);
    assert!(back.headers()["location"].to_str().unwrap().starts_with("https://pay.example/pay/tok/challenge/pay_1?returned=1"));
    let pi = answer.reference.clone().unwrap();
    let done = r.stripe.complete_authentication(&PaymentCall { reference: Some(&pi), ..call("pay_1") }, true, false).await;
    assert_eq!(done.outcome, Outcome::Succeeded { token: None });
    let retrieve = r.standin.requests_to("GET", "/v1/payment_intents/");
    assert_eq!(retrieve.last().unwrap().path, format!("/v1/payment_intents/{pi}?expand[]=latest_charge"));
    // Denied at the issuer: a failed authentication.
    let denied = r.stripe.authorize_card(&call("pay_2"), &card("4000002760003184"), false).await;
    browser.get(format!("{}?result=deny", denied.redirect_url.unwrap())).send().await.unwrap();
    let pi = denied.reference.unwrap();
    let failed = r.stripe.complete_authentication(&PaymentCall { reference: Some(&pi), ..call("pay_2") }, true, false).await;
    assert_eq!(failed.outcome, Outcome::Failed { code: "authentication_required" });
}

#[tokio::test]
async fn capture_void_refund_and_sync_each_send_what_stripe_expects() {
    let r = rig().await;
    let manual = |id| PaymentCall { capture: CaptureMethod::Manual, ..call(id) };
    let authorised = r.stripe.authorize_card(&manual("pay_1"), &card("4242424242424242"), false).await;
    assert_eq!(authorised.outcome, Outcome::Succeeded { token: None }, "requires_capture is authorised");
    let pi = authorised.reference.unwrap();
    assert_eq!(r.standin.intent(&pi).unwrap()["capture_method"], "manual");
    let with_ref = PaymentCall { reference: Some(&pi), ..manual("pay_1") };
    assert_eq!(r.stripe.capture(&with_ref, 600).await, ActionOutcome::Done);
    let capture = r.standin.requests_to("POST", &format!("/v1/payment_intents/{pi}/capture")).pop().unwrap();
    assert_eq!(capture.form(), pairs(&[("amount_to_capture", "600")]));
    assert_eq!(capture.header("idempotency-key"), Some("pay_1-capture"));
    assert_eq!(r.standin.intent(&pi).unwrap()["amount_received"], 600);

    let other = r.stripe.authorize_card(&manual("pay_2"), &card("4242424242424242"), false).await.reference.unwrap();
    assert_eq!(r.stripe.void(&PaymentCall { reference: Some(&other), ..manual("pay_2") }).await, ActionOutcome::Done);
    let cancel = r.standin.requests_to("POST", &format!("/v1/payment_intents/{other}/cancel")).pop().unwrap();
    assert_eq!((cancel.body.as_str(), cancel.header("idempotency-key")), ("", Some("pay_2-void")));
    assert_eq!(r.standin.intent(&other).unwrap()["status"], "canceled");

    let now = Utc::now();
    let refund = RefundCall { id: "re_ours_1", amount: 400, currency: "EUR", payment: with_ref, created_at: now, now };
    let said = r.stripe.refund(&refund).await;
    let sent = r.standin.requests_to("POST", "/v1/refunds").pop().unwrap();
    assert_eq!(sent.form(), pairs(&[("payment_intent", &pi), ("amount", "400"), ("metadata[paysession_refund_id]", "re_ours_1")]));
    assert_eq!(sent.header("idempotency-key"), Some("re_ours_1"));
    assert_eq!(said.outcome, RefundOutcome::Known { status: RefundStatus::Pending, failure_reason: None });
    assert!(said.check_after.is_some(), "a pending refund is asked about again");
    let stripe_refund = r.standin.refund_of("re_ours_1").unwrap();
    r.standin.set_refund(stripe_refund["id"].as_str().unwrap(), "succeeded", None);
    let synced = r.stripe.sync_refund(&refund).await;
    assert_eq!(synced.outcome, RefundOutcome::Known { status: RefundStatus::Succeeded, failure_reason: None });
    assert_eq!(r.standin.requests_to("GET", "/v1/refunds").pop().unwrap().path, format!("/v1/refunds?payment_intent={pi}&limit=100"));
    let never = RefundCall { id: "re_never", ..refund };
    assert_eq!(r.stripe.sync_refund(&never).await.outcome, RefundOutcome::NotFound);

    // Sync: by the PaymentIntent when we know it, by search on our id when we do not.
    let synced = r.stripe.sync_payment(&call("pay_1")).await.unwrap();
    assert_eq!(synced.reference.as_deref(), Some(pi.as_str()));
    let search = r.standin.requests_to("GET", "/v1/payment_intents/search").pop().unwrap();
    assert_eq!(url_decode(&search.path), "/v1/payment_intents/search?query=metadata['paysession_payment_id']:'pay_1'");
    assert_eq!(r.stripe.sync_payment(&PaymentCall { reference: Some("pi_missing"), ..call("pay_9") }).await, None, "404 resource_missing");
    let unseen = r.stripe.sync_payment(&call("pay_unseen")).await.unwrap();
    assert_eq!(unseen.outcome, Outcome::Unknown, "search may lag: not yet a failure");
    let old = PaymentCall { claimed_at: Utc::now() - chrono::Duration::hours(2), ..call("pay_unseen") };
    assert_eq!(r.stripe.sync_payment(&old).await, None, "long after its claim: never created");
}

fn url_decode(s: &str) -> String {
    url::form_urlencoded::parse(s.as_bytes()).map(|(k, v)| if v.is_empty() { k.into_owned() } else { format!("{k}={v}") }).collect()
}

#[tokio::test]
async fn an_off_session_charge_quotes_the_saved_method_and_maps_authentication_required() {
    let r = rig().await;
    let token = |a: Answer| match a.outcome {
        Outcome::Succeeded { token: Some(t) } => t,
        other => panic!("{other:?}"),
    };
    let good = token(r.stripe.authorize_card(&call("pay_1"), &card("4242424242424242"), true).await);
    let bad = token(r.stripe.authorize_card(&call("pay_2"), &card("4000000000000341"), true).await);
    let mit = |t| SavedCharge { token: t, mandate_id: Some("md_1"), network_transaction_id: Some("ntid_x") };
    let charged = r.stripe.charge_saved(&call("pay_3"), &mit(&good)).await;
    assert_eq!(charged.outcome, Outcome::Succeeded { token: None });
    let sent = r.standin.requests_to("POST", "/v1/payment_intents").pop().unwrap();
    let (customer, pm) = good.split_once('/').unwrap();
    assert_eq!(
        sent.form(),
        intent_form("pay_3", &[("customer", customer), ("payment_method", pm), ("off_session", "true")]),
        "merchant-initiated: the saved method, off_session, no card data and no return URL"
    );
    assert_eq!((sent.header("idempotency-key"), sent.header("stripe-version")), (Some("pay_3"), Some("2024-06-20")));
    let declined = r.stripe.charge_saved(&call("pay_4"), &mit(&bad)).await;
    assert_eq!(declined.outcome, Outcome::Failed { code: "authentication_required" });
    assert!(declined.reference.is_some(), "the declined intent is named");
    let foreign = r.stripe.charge_saved(&call("pay_5"), &mit("tok_sandbox_abc")).await;
    assert_eq!(foreign.outcome, Outcome::Failed { code: "processing_error" }, "a sandbox token is not Stripe's");
}

#[tokio::test]
async fn declines_map_to_our_codes_and_an_unknown_code_to_processing_error() {
    let logs = paysession_tests::logs::capture(tracing::Level::INFO);
    let r = rig().await;
    for (number, code) in [
        ("4000000000000002", "card_declined"),
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000069", "expired_card"),
        ("4000000000000127", "incorrect_cvc"),
        ("4000000000000119", "processing_error"),
        ("4000000000000101", "processing_error"),
    ] {
        let answer = r.stripe.authorize_card(&call(&format!("pay_{number}")), &card(number), false).await;
        assert_eq!(answer.outcome, Outcome::Failed { code }, "{number}");
        assert!(answer.reference.is_some(), "{number}: a declined intent still has its id");
    }
    // The unknown code again: mapped the same, logged only the first time.
    let again = r.stripe.authorize_card(&call("pay_again"), &card("4000000000000101"), false).await;
    assert_eq!(again.outcome, Outcome::Failed { code: "processing_error" });
    let logged = paysession_tests::logs::text(&logs);
    let warnings: Vec<&str> = logged.lines().filter(|l| l.contains("unknown Stripe decline code")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("card_decline_rate_limit_exceeded"));
}

#[tokio::test]
async fn retries_reuse_the_key_and_an_answer_never_had_is_unknown() {
    let r = rig().await;
    let rate_limited = json!({"error": {"type": "invalid_request_error", "code": "rate_limit"}});
    r.standin.fault_next("/v1/payment_intents", Fault::Status(429, rate_limited));
    let answer = r.stripe.authorize_card(&call("pay_429"), &card("4242424242424242"), false).await;
    assert!(matches!(answer.outcome, Outcome::Succeeded { .. }));
    let keys: Vec<_> = r.standin.requests().iter().map(|q| q.header("idempotency-key").unwrap().to_string()).collect();
    assert_eq!(keys, ["pay_429", "pay_429"]);

    let server_error = json!({"error": {"type": "api_error"}});
    for _ in 0..3 {
        r.standin.fault_next("/v1/payment_intents", Fault::Status(500, server_error.clone()));
    }
    let answer = r.stripe.authorize_card(&call("pay_500"), &card("4242424242424242"), false).await;
    assert_eq!(answer.outcome, Outcome::Unknown, "three 500s: no answer, reconciliation asks");
    assert_eq!(
        r.standin.requests_to("POST", "/v1/payment_intents").iter().filter(|q| q.header("idempotency-key") == Some("pay_500")).count(),
        3
    );
    assert!(r.standin.intent_of("pay_500").is_none());

    // Applied, then the answer is lost: the retry under the same key is Stripe's replay.
    r.standin.fault_next("/v1/payment_intents", Fault::LoseAnswer);
    let answer = r.stripe.authorize_card(&call("pay_lost"), &card("4242424242424242"), false).await;
    assert!(matches!(answer.outcome, Outcome::Succeeded { .. }), "{answer:?}");
    let tries = r
        .standin
        .requests_to("POST", "/v1/payment_intents")
        .into_iter()
        .filter(|q| q.header("idempotency-key") == Some("pay_lost"))
        .count();
    assert_eq!(tries, 2);
    assert_eq!(answer.reference.as_deref(), r.standin.intent_of("pay_lost").unwrap()["id"].as_str(), "one intent, replayed");

    // A timeout: applied, the answer later than the client waits; the retry is the replay.
    r.standin.fault_next("/v1/payment_intents", Fault::Timeout);
    let answer = r.stripe.authorize_card(&call("pay_slow"), &card("4242424242424242"), false).await;
    assert!(matches!(answer.outcome, Outcome::Succeeded { .. }), "{answer:?}");
    assert_eq!(r.standin.requests().iter().filter(|q| q.header("idempotency-key") == Some("pay_slow")).count(), 2);

    // Every try's answer lost: unknown, and the sync finds the payment Stripe made.
    for _ in 0..3 {
        r.standin.fault_next("/v1/payment_intents", Fault::LoseAnswer);
    }
    let answer = r.stripe.authorize_card(&call("pay_gone"), &card("4242424242424242"), false).await;
    assert_eq!(answer.outcome, Outcome::Unknown);
    let synced = r.stripe.sync_payment(&call("pay_gone")).await.unwrap();
    assert!(matches!(synced.outcome, Outcome::Succeeded { .. }));
}

/// Opt-in: the connector against Stripe's real test mode. Runs only with
/// `PAYSESSION_STRIPE_LIVE_SECRET_KEY=sk_test_…` set (an account with raw card data APIs
/// enabled for test mode); CI sets nothing and this returns at once.
#[tokio::test]
async fn live_stripe_test_mode_when_asked() {
    let Ok(key) = std::env::var("PAYSESSION_STRIPE_LIVE_SECRET_KEY") else {
        println!("skipped: PAYSESSION_STRIPE_LIVE_SECRET_KEY is not set");
        return;
    };
    assert!(key.starts_with("sk_test_"), "only a test-mode key");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open_dir(dir.path()).unwrap());
    let options = StripeOptions { api_base: "https://api.stripe.com".into(), ..StripeOptions::from_env() };
    let stripe = StripeConnector::new(options, Secret::new(key), None, store);
    let id = paysession_app::ids::new_id("pay");
    let answer = stripe.authorize_card(&call(&id), &card("4242424242424242"), true).await;
    assert!(matches!(answer.outcome, Outcome::Succeeded { token: Some(_) }), "{answer:?}");
    let pi = answer.reference.clone().unwrap();
    let now = Utc::now();
    let refund = RefundCall {
        id: "re_live",
        amount: 100,
        currency: "EUR",
        payment: PaymentCall { reference: Some(&pi), ..call(&id) },
        created_at: now,
        now,
    };
    let said = stripe.refund(&RefundCall { id: &paysession_app::ids::new_id("re"), ..refund }).await;
    assert!(matches!(said.outcome, RefundOutcome::Known { .. }), "{said:?}");
}

/// Settings reads and writes, counted: what the connector and the directory add to a
/// payment's store requests.
struct Counting {
    inner: EmbeddedStore,
    gets: std::sync::atomic::AtomicUsize,
    puts: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl paysession_app::ports::SettingsStore for Counting {
    async fn get_setting(&self, key: &str) -> Result<Option<String>, paysession_app::ports::StoreError> {
        self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.get_setting(key).await
    }
    async fn put_setting(&self, key: &str, value: &str) -> Result<(), paysession_app::ports::StoreError> {
        self.puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.put_setting(key, value).await
    }
    async fn add_to_setting(&self, key: &str, start: i64, delta: i64, max: i64) -> Result<Option<i64>, paysession_app::ports::StoreError> {
        self.inner.add_to_setting(key, start, delta, max).await
    }
}

/// Store requests the connector adds: none for a one-time payment; for a saved card one read
/// of the customer's Stripe id (and one write, once per customer); the merchant's processor
/// settings one read per minute per process, however many payments.
#[tokio::test]
async fn the_connector_adds_a_settings_read_per_minute_and_one_per_saved_card() {
    use std::sync::atomic::Ordering::SeqCst;
    let standin = StripeStandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Counting { inner: EmbeddedStore::open_dir(dir.path()).unwrap(), gets: 0.into(), puts: 0.into() });
    let key_file = dir.path().join("sk");
    std::fs::write(&key_file, "sk_test_standin").unwrap();
    let settings = paysession_app::processor_config::ProcessorSettings {
        processor: "stripe".into(),
        takes_new_payments: true,
        secret_key: paysession_app::processor_config::SecretRef::File(key_file.display().to_string()),
        webhook_secret: None,
    };
    paysession_app::processor_config::put(&*store, "mer_1", Some(&settings)).await.unwrap();
    let directory = paysession_runtime::processor_directory(store.clone(), Some(standin.url.clone()));
    let (gets, puts) = (|| store.gets.load(SeqCst), || store.puts.load(SeqCst));
    let g0 = gets();
    let mut processor = None;
    for _ in 0..10 {
        processor = directory.configured("mer_1").await.unwrap();
    }
    assert_eq!(gets() - g0, 1, "ten lookups within a minute: one settings read");
    let stripe = processor.expect("configured");
    assert_eq!(stripe.name(), "stripe");
    let (g1, p1) = (gets(), puts());
    stripe.authorize_card(&call("pay_1"), &card("4242424242424242"), false).await;
    assert_eq!((gets() - g1, puts() - p1), (0, 0), "a one-time payment: no store request");
    stripe.authorize_card(&call("pay_2"), &card("4242424242424242"), true).await;
    assert_eq!((gets() - g1, puts() - p1), (1, 1), "the first saved card: the customer looked up and recorded");
    stripe.authorize_card(&call("pay_3"), &card("4242424242424242"), true).await;
    assert_eq!((gets() - g1, puts() - p1), (2, 1), "a later saved card: looked up only");
    assert_eq!(directory.configured("mer_none").await.unwrap().map(|p| p.name()), None, "unconfigured: the sandbox serves");
}

/// Each event type the connector reads, as the port's effect: payments and refunds found by
/// the ids we put in metadata, a dispute through its PaymentIntent, anything else ignored.
#[tokio::test]
async fn webhook_events_map_to_their_effects() {
    use paysession_app::processor::ProcessorEventKind as K;
    let r = rig().await;
    let paid = r.stripe.authorize_card(&call("pay_1"), &card("4242424242424242"), false).await;
    let pi = r.standin.intent(paid.reference.as_deref().unwrap()).unwrap();
    let now = Utc::now();
    let receive = async |kind: &str, object: serde_json::Value| {
        let body = json!({"id": format!("evt_{kind}"), "type": kind, "data": {"object": object}}).to_string();
        let header = format!(
            "t={},v1={}",
            now.timestamp(),
            paysession_runtime::outbound::stripe::signature::sign("whsec_standin", now.timestamp(), body.as_bytes())
        );
        r.stripe.incoming_webhook(&[("Stripe-Signature".into(), header)], body.as_bytes(), now).await.unwrap().kind
    };
    for kind in ["payment_intent.succeeded", "payment_intent.amount_capturable_updated"] {
        let K::Payment { session_id, payment_id, answer } = receive(kind, pi.clone()).await else { panic!("{kind}") };
        assert_eq!((session_id.as_str(), payment_id.as_str(), &answer.outcome), ("ps_1", "pay_1", &Outcome::Succeeded { token: None }));
    }
    let mut failed = pi.clone();
    failed["status"] = json!("requires_payment_method");
    failed["last_payment_error"] = json!({"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds"});
    let K::Payment { answer, .. } = receive("payment_intent.payment_failed", failed).await else { panic!() };
    assert_eq!(answer.outcome, Outcome::Failed { code: "insufficient_funds" });
    let refund = json!({"id": "re_s1", "object": "refund", "status": "failed", "failure_reason": "lost_or_stolen_card", "metadata": {"paysession_refund_id": "re_ours"}});
    for kind in ["refund.updated", "charge.refund.updated"] {
        assert_eq!(
            receive(kind, refund.clone()).await,
            K::Refund { refund_id: "re_ours".into(), status: RefundStatus::Failed, failure_reason: Some("lost_or_stolen_card".into()) },
            "{kind}"
        );
    }
    let charge = json!({"id": "ch_1", "object": "charge", "refunds": {"object": "list", "data": [
        {"id": "re_other", "status": "succeeded", "metadata": {}},
        {"id": "re_s2", "status": "succeeded", "metadata": {"paysession_refund_id": "re_ours2"}}]}});
    assert_eq!(
        receive("charge.refunded", charge).await,
        K::Refund { refund_id: "re_ours2".into(), status: RefundStatus::Succeeded, failure_reason: None }
    );
    let dispute = json!({"id": "dp_1", "object": "dispute", "amount": 1050, "reason": "fraudulent", "status": "needs_response", "payment_intent": pi["id"], "created": 1_700_000_000});
    let K::Dispute { session_id, payment_id, dispute } = receive("charge.dispute.created", dispute).await else { panic!() };
    assert_eq!((session_id.as_str(), payment_id.as_str(), dispute.id.as_str(), dispute.amount), ("ps_1", "pay_1", "dp_1", 1050));
    assert_eq!(receive("customer.created", json!({"id": "cus_1", "object": "customer"})).await, K::Ignored);
    let foreign = json!({"id": "pi_x", "object": "payment_intent", "status": "succeeded", "metadata": {}});
    assert_eq!(receive("payment_intent.succeeded", foreign).await, K::Ignored, "not one of ours");
}
