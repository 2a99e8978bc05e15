//! A merchant configured with Stripe, on the local server, against the loopback Stripe
//! stand-in: the hosted page pays through PaymentIntents, 3-D Secure goes to Stripe's page
//! and back, a first_in_series payment saves the card with Stripe and a scheduled charge
//! uses it off-session, refunds go to Stripe and their late failure arrives by webhook.
//! Webhooks are signed by Stripe's official library (tests/stripe/sign.py). Card numbers
//! reach the stand-in's request bodies and nothing else: not the store, not a log line.

use std::time::Duration;

use paysession_app::processor_config::{ProcessorSettings, SecretRef};
use paysession_tests::Server;
use paysession_tests::page::Customer;
use paysession_tests::receiver::{Receiver, python_script};
use paysession_tests::stripe::StripeStandIn;
use reqwest::Method;
use serde_json::{Value, json};

const SHOP: &str = "https://shop.example";
const WEBHOOK_SECRET: &str = "whsec_standin_merchant";

struct Rig {
    s: Server,
    t: String,
    standin: StripeStandIn,
    merchant: String,
    rx: Receiver,
    _secrets: tempfile::TempDir,
}

/// The demo merchant moved to Stripe the way an operator does it (secrets in files).
async fn rig() -> Rig {
    let standin = StripeStandIn::start().await;
    let s = Server::start_with_stripe(&standin.url).await;
    let t = s.token().await;
    let secrets = tempfile::tempdir().unwrap();
    let (key, hook) = (secrets.path().join("sk"), secrets.path().join("whsec"));
    std::fs::write(&key, "sk_test_standin\n").unwrap();
    std::fs::write(&hook, format!("{WEBHOOK_SECRET}\n")).unwrap();
    let merchant = s.running.as_ref().unwrap().demo.merchant_id.clone();
    let settings = ProcessorSettings {
        processor: "stripe".into(),
        takes_new_payments: true,
        secret_key: SecretRef::File(key.display().to_string()),
        webhook_secret: Some(SecretRef::File(hook.display().to_string())),
    };
    let store = s.running.as_ref().unwrap().local.app.core.store.clone();
    paysession_app::processor_config::put(&*store, &merchant, Some(&settings)).await.unwrap();
    let rx = Receiver::start().await;
    let ep = s.post("/v1/webhook_endpoints", &t, &json!({"url": rx.url(), "events": ["*"]})).await;
    assert_eq!(ep.status, 201, "{}", ep.text);
    Rig { s, t, standin, merchant, rx, _secrets: secrets }
}

impl Rig {
    async fn session(&self, extra: Value) -> Value {
        let mut body = json!({
            "amount": 2500, "currency": "EUR", "customer_id": "cus_stripe_flow", "reference": paysession_app::ids::new_id("r"),
            "allowed_domains": [SHOP],
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self.s.create(&self.t, &body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json()
    }

    async fn get(&self, path: &str) -> Value {
        self.s.get(path, &self.t).await.json()
    }

    /// Posts a Stripe event for the merchant, signed by Stripe's library with `secret` at `at`.
    async fn stripe_event(&self, event: &Value, secret: &str, at: i64) -> paysession_tests::Resp {
        let payload = event.to_string();
        let signed = python_script(
            "stripe/sign.py",
            "Stripe's library",
            &json!({"sign": [{"payload": payload, "secret": secret, "timestamp": at}]}),
        );
        let header = signed["headers"][0].as_str().unwrap().to_string();
        let url = self.s.url(&format!("/v1/processors/stripe/webhooks/{}", self.merchant));
        let r = self
            .s
            .http
            .request(Method::POST, url)
            .header("stripe-signature", header)
            .header("content-type", "application/json")
            .body(payload)
            .send()
            .await
            .unwrap();
        paysession_tests::Resp { status: r.status(), headers: r.headers().clone(), text: r.text().await.unwrap() }
    }
}

fn event(id: &str, kind: &str, object: Value) -> Value {
    json!({"id": id, "object": "event", "type": kind, "api_version": "2024-06-20", "created": chrono::Utc::now().timestamp(), "data": {"object": object}})
}

#[tokio::test]
async fn a_stripe_merchant_pays_authenticates_saves_charges_and_refunds_through_stripe() {
    let logs = paysession_tests::logs::capture(tracing::Level::TRACE);
    let r = rig().await;

    // A one-time card payment: one PaymentIntent, under the attempt's id.
    let sess = r.session(json!({})).await;
    let mut c = Customer::new(&r.s, &sess);
    let page = c.open_from(SHOP).await;
    assert!(
        page.body.contains("card_number") && !page.body.contains(r#"name="method" value="ewallet""#),
        "Stripe takes cards: only cards are offered"
    );
    assert_eq!(c.pay_card("4242424242424242").await.status, 303);
    let id = sess["id"].as_str().unwrap();
    let paid = r.get(&format!("/v1/payment_sessions/{id}")).await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    let payments = r.get(&format!("/v1/payments?session_id={id}")).await;
    let payment = &payments["data"][0];
    let pi = r.standin.intent_of(payment["id"].as_str().unwrap()).expect("a PaymentIntent for our payment");
    assert_eq!((payment["processor"]["name"].as_str(), payment["processor"]["reference"].as_str()), (Some("stripe"), pi["id"].as_str()));
    assert_eq!(pi["metadata"]["paysession_session_id"], id);
    assert_eq!(r.standin.requests_to("POST", "/v1/payment_intents").len(), 1, "one Stripe request per one-time card payment");

    // 3-D Secure: to Stripe's page, back to ours, and Stripe is asked what came of it.
    let sess = r.session(json!({})).await;
    let mut c = Customer::new(&r.s, &sess);
    c.open_from(SHOP).await;
    let paid = c.pay_card("4000002760003184").await;
    let to_challenge = paid.location.clone().expect("to the challenge route");
    let challenge = c.get(&format!("{}{to_challenge}", r.s.base), &[]).await;
    let stripe_page = challenge.location.clone().expect("on to Stripe's page");
    assert!(stripe_page.starts_with(&r.standin.url), "{stripe_page}");
    let back = c.get(&format!("{stripe_page}?result=approve"), &[]).await;
    let return_url = back.location.clone().unwrap();
    assert!(return_url.starts_with(&format!("{}/pay/", r.s.base)) && return_url.contains("returned=1"), "{return_url}");
    let landed = c.get(&return_url, &[]).await;
    assert_eq!(landed.status, 303, "back to the page");
    let id = sess["id"].as_str().unwrap();
    assert_eq!(r.get(&format!("/v1/payment_sessions/{id}")).await["status"], "succeeded");

    // first_in_series: the card is saved with Stripe (a Customer, setup_future_usage), and a
    // scheduled occurrence charges it off-session under the mandate.
    let start = (chrono::Utc::now() + chrono::Duration::days(1)).date_naive();
    let sess = r
        .session(json!({"session_type": "first_in_series", "customer": {"email": "ada@example.com"},
            "mandate": {"type": "scheduled", "schedule": {"interval": "month", "interval_count": 1, "start_date": start.to_string(), "max_charges": 2}}}))
        .await;
    let mut c = Customer::new(&r.s, &sess);
    c.open_from(SHOP).await;
    assert_eq!(c.pay_card("4242424242424242").await.status, 303);
    let first = r.get(&format!("/v1/payment_sessions/{}", sess["id"].as_str().unwrap())).await;
    let mandate_id = first["mandate_id"].as_str().expect("mandate created").to_string();
    assert_eq!(r.standin.requests_to("POST", "/v1/customers").len(), 1);
    let before = r.standin.requests_to("POST", "/v1/payment_intents").len();
    r.s.advance_clock(&r.t, 2 * 86_400).await;
    let mut charged = Value::Null;
    for _ in 0..100 {
        charged = r.get(&format!("/v1/mandates/{mandate_id}")).await;
        if charged["charges_count"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(charged["charges_count"], 1, "{charged}");
    let mit = r.standin.requests_to("POST", "/v1/payment_intents");
    assert_eq!(mit.len(), before + 1, "one Stripe request per saved-card charge");
    let form = mit.last().unwrap().form();
    assert!(
        form.contains(&("off_session".into(), "true".into())) && form.iter().any(|(k, v)| k == "payment_method" && v.starts_with("pm_"))
    );

    // A refund: sent to Stripe under its id; Stripe's refund.updated settles it, and a late
    // charge.refund.updated failure (out of order after it) moves it to failed once.
    let one_time = payment["id"].as_str().unwrap();
    let refund =
        r.s.call(Method::POST, "/v1/refunds", &r.t, Some(&json!({"payment_id": one_time, "amount": 1000})), &[("idempotency-key", "rf-1")])
            .await;
    assert_eq!(refund.status, 201, "{}", refund.text);
    let refund_id = refund.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.standin.requests_to("POST", "/v1/refunds").len(), 1, "one Stripe request per refund");
    let stripe_refund = r.standin.refund_of(&refund_id).unwrap();
    let sid = stripe_refund["id"].as_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    let ok = r.standin.set_refund(sid, "succeeded", None);
    assert_eq!(r.stripe_event(&event("evt_r1", "refund.updated", ok), WEBHOOK_SECRET, now).await.status, 200);
    assert_eq!(r.get(&format!("/v1/refunds/{refund_id}")).await["status"], "succeeded");
    let failed = r.standin.set_refund(sid, "failed", Some("expired_or_canceled_card"));
    let late = r.stripe_event(&event("evt_r2", "charge.refund.updated", failed), WEBHOOK_SECRET, now).await;
    assert_eq!(late.status, 200, "{}", late.text);
    let after = r.get(&format!("/v1/refunds/{refund_id}")).await;
    assert_eq!((after["status"].as_str(), after["failure_reason"].as_str()), (Some("failed"), Some("expired_or_canceled_card")));
    let got = r.rx.wait_for("refund.failed", |g| g.iter().any(|x| x.event_type() == "refund.failed")).await;
    assert_eq!(got.iter().filter(|x| x.event_type() == "refund.failed").count(), 1);
    // An older event arriving now (the refund still pending) moves nothing back.
    let stale = json!({"id": sid, "object": "refund", "status": "pending", "metadata": {"paysession_refund_id": refund_id}});
    assert_eq!(r.stripe_event(&event("evt_r0", "refund.updated", stale), WEBHOOK_SECRET, now).await.status, 200);
    assert_eq!(r.get(&format!("/v1/refunds/{refund_id}")).await["status"], "failed", "never backwards");

    // Card numbers went to Stripe's API and nowhere else.
    let store = paysession_embedded::EmbeddedStore::open_dir(&r.s.dir).unwrap();
    let dump = store.dump_all_text().await.unwrap();
    let logged = paysession_tests::logs::text(&logs);
    assert!(logged.contains("payment attempt updated"), "the capture reads the server's log lines");
    for card in ["4242424242424242", "4000002760003184"] {
        assert!(!dump.contains(card) && !dump.contains(&card[..12]), "PAN {card} in storage");
        assert!(!logged.contains(card) && !logged.contains(&card[..12]), "PAN {card} in a log line");
        assert!(r.standin.requests().iter().any(|q| q.body.contains(card)), "{card} was sent to Stripe");
    }
    assert!(!logged.contains("sk_test_standin") && !dump.contains("sk_test_standin"), "the API key is never logged or stored");
    assert!(!logged.contains(WEBHOOK_SECRET) && !dump.contains(WEBHOOK_SECRET), "the webhook secret is never logged or stored");
}

/// Stripe's webhooks: signed by Stripe's library they apply once; a wrong secret or a stale
/// timestamp is refused; a replayed event id changes nothing; an event that would move a
/// payment backwards is ignored; a dispute reaches the merchant as `payment.disputed`.
#[tokio::test]
async fn stripe_webhooks_verify_deduplicate_and_never_move_backwards() {
    let r = rig().await;
    // A payment whose answer never came: Stripe's webhook settles it.
    let sess = r.session(json!({})).await;
    let mut c = Customer::new(&r.s, &sess);
    c.open_from(SHOP).await;
    r.standin.fault_next("/v1/payment_intents", paysession_tests::stripe::Fault::LoseAnswer);
    r.standin.fault_next("/v1/payment_intents", paysession_tests::stripe::Fault::LoseAnswer);
    r.standin.fault_next("/v1/payment_intents", paysession_tests::stripe::Fault::LoseAnswer);
    c.pay_card("4242424242424242").await;
    let id = sess["id"].as_str().unwrap();
    let open = r.get(&format!("/v1/payment_sessions/{id}")).await;
    assert_eq!(open["status"], "processing", "no answer: the payment pending");
    let payments = r.get(&format!("/v1/payments?session_id={id}")).await;
    let payment_id = payments["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(payments["data"][0]["status"], "pending");
    let pi = r.standin.intent_of(&payment_id).expect("Stripe made it");
    let now = chrono::Utc::now().timestamp();
    let succeeded = event("evt_pi_ok", "payment_intent.succeeded", pi.clone());

    let wrong = r.stripe_event(&succeeded, "whsec_someone_else", now).await;
    assert_eq!((wrong.status.as_u16(), wrong.json()["code"].as_str()), (400, Some("malformed_request")), "{}", wrong.text);
    let stale = r.stripe_event(&succeeded, WEBHOOK_SECRET, now - 301).await;
    assert_eq!(stale.status, 400, "older than the 300 s tolerance");
    assert_eq!(r.get(&format!("/v1/payment_sessions/{id}")).await["status"], "processing", "refused events change nothing");

    let applied = r.stripe_event(&succeeded, WEBHOOK_SECRET, now).await;
    assert_eq!((applied.status.as_u16(), applied.json()["type"].as_str()), (200, Some("payment_intent.succeeded")), "{}", applied.text);
    assert_eq!(r.get(&format!("/v1/payment_sessions/{id}")).await["status"], "succeeded");
    let replay = r.stripe_event(&succeeded, WEBHOOK_SECRET, now).await;
    assert_eq!((replay.status.as_u16(), replay.json()["duplicate"].as_bool()), (200, Some(true)));

    // Out of order: a failure event for a payment that succeeded moves nothing.
    let mut failed_pi = pi.clone();
    failed_pi["status"] = json!("requires_payment_method");
    failed_pi["last_payment_error"] = json!({"type": "card_error", "code": "card_declined", "decline_code": "generic_decline"});
    let late = r.stripe_event(&event("evt_pi_failed", "payment_intent.payment_failed", failed_pi), WEBHOOK_SECRET, now).await;
    assert_eq!(late.status, 200);
    let after = r.get(&format!("/v1/payments/{payment_id}")).await;
    assert_eq!(after["status"], "succeeded", "{after}");

    // A dispute: recorded on the payment, announced once as payment.disputed.
    let dispute = json!({"id": "dp_standin_1", "object": "dispute", "amount": 2500, "reason": "fraudulent", "status": "needs_response",
        "payment_intent": pi["id"], "charge": pi["latest_charge"]["id"], "created": now});
    for _ in 0..2 {
        let d = r.stripe_event(&event("evt_dp_1", "charge.dispute.created", dispute.clone()), WEBHOOK_SECRET, now).await;
        assert_eq!(d.status, 200, "{}", d.text);
    }
    let disputed = r.get(&format!("/v1/payments/{payment_id}")).await;
    assert_eq!((disputed["dispute"]["id"].as_str(), disputed["dispute"]["reason"].as_str()), (Some("dp_standin_1"), Some("fraudulent")));
    let got = r.rx.wait_for("payment.disputed", |g| g.iter().any(|x| x.event_type() == "payment.disputed")).await;
    assert_eq!(got.iter().filter(|x| x.event_type() == "payment.disputed").count(), 1);
    assert_eq!(
        got.iter().find(|x| x.event_type() == "payment.disputed").unwrap().json()["data"]["object"]["dispute"]["id"],
        "dp_standin_1"
    );

    // Our own signer agrees with Stripe's library (its verify_header accepts ours).
    let body = succeeded.to_string();
    let ours = format!("t={now},v1={}", paysession_runtime::outbound::stripe::signature::sign(WEBHOOK_SECRET, now, body.as_bytes()));
    let verdict = python_script(
        "stripe/sign.py",
        "Stripe's library",
        &json!({"verify": [
            {"payload": body, "header": ours, "secret": WEBHOOK_SECRET},
            {"payload": body, "header": ours, "secret": "whsec_other"},
        ]}),
    );
    assert_eq!(verdict["verified"], json!([true, false]));

    // Moved back to the sandbox: new payments go there; the Stripe payment is still
    // refunded through Stripe and Stripe's webhooks about it still apply.
    let store = r.s.running.as_ref().unwrap().local.app.core.store.clone();
    let mut settings = paysession_app::processor_config::get(&*store, &r.merchant).await.unwrap().unwrap();
    settings.takes_new_payments = false;
    paysession_app::processor_config::put(&*store, &r.merchant, Some(&settings)).await.unwrap();
    // The settings are read again after a minute; a restart reads them now.
    let mut r = r;
    r.s.restart().await;
    let (s2, t2) = (&r.s, r.s.token().await);
    let sess = s2
        .create(
            &t2,
            &json!({"amount": 700, "currency": "EUR", "customer_id": "cus_back", "reference": "back-1", "allowed_domains": [SHOP]}),
        )
        .await
        .json();
    let mut c = Customer::new(s2, &sess);
    c.open_from(SHOP).await;
    assert_eq!(c.pay_card("4242424242424242").await.status, 303);
    let sandbox_payment = s2.get(&format!("/v1/payments?session_id={}", sess["id"].as_str().unwrap()), &t2).await.json();
    assert_eq!(sandbox_payment["data"][0]["processor"]["name"], "sandbox");
    let refunds_before = r.standin.requests_to("POST", "/v1/refunds").len();
    let refund = s2
        .call(Method::POST, "/v1/refunds", &t2, Some(&json!({"payment_id": payment_id, "amount": 500})), &[("idempotency-key", "back-rf")])
        .await;
    assert_eq!(refund.status, 201, "{}", refund.text);
    assert_eq!(r.standin.requests_to("POST", "/v1/refunds").len(), refunds_before + 1, "the Stripe payment's refund went to Stripe");
    let url = s2.url(&format!("/v1/processors/stripe/webhooks/{}", r.merchant));
    let body = event("evt_after", "payment_intent.succeeded", pi.clone()).to_string();
    let header = format!("t={now},v1={}", paysession_runtime::outbound::stripe::signature::sign(WEBHOOK_SECRET, now, body.as_bytes()));
    let after = s2.http.post(url).header("stripe-signature", header).body(body).send().await.unwrap();
    assert_eq!(after.status(), 200, "Stripe's webhooks still apply");

    // Not configured: a merchant with no Stripe settings has no Stripe webhooks.
    let url = s2.url("/v1/processors/stripe/webhooks/mer_nobody");
    let nobody = s2.http.post(url).header("stripe-signature", "t=1,v1=00").body("{}").send().await.unwrap();
    assert_eq!(nobody.status(), 404);
}
