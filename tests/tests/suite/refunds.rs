//! Money after the payment, end to end on the local server (embedded store, sandbox
//! processor, test clock): the payment object, manual capture and void, refunds with their
//! idempotency and limits, reconciliation of unknown and pending answers, the late failure,
//! and every transition's webhook verified by the official Standard Webhooks library.

use paysession_tests::page::Customer;
use paysession_tests::receiver::{Receiver, schema_errors, verify_with_official_library};
use paysession_tests::{Resp, Server};
use reqwest::Method;
use serde_json::{Value, json};

const SHOP: &str = "https://shop.example";

fn reference() -> String {
    paysession_app::ids::new_id("ref")
}

/// A session of `amount` EUR paid by `card` on the hosted page; its payment's id.
async fn paid(s: &Server, t: &str, card: &str, amount: i64, extra: Value) -> (Value, String) {
    let mut body =
        json!({"amount": amount, "currency": "EUR", "customer_id": "cus_money", "reference": reference(), "allowed_domains": [SHOP]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let created = s.create(t, &body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let session = created.json();
    let mut c = Customer::new(s, &session);
    c.open_from(SHOP).await;
    assert_eq!(c.pay_card(card).await.status, 303);
    let id = session["id"].as_str().unwrap();
    let now = s.get(&format!("/v1/payment_sessions/{id}"), t).await.json();
    let payment = now["payments"][0]["id"].as_str().unwrap().to_string();
    (now, payment)
}

async fn refund(s: &Server, t: &str, key: &str, body: &Value) -> Resp {
    s.call(Method::POST, "/v1/refunds", t, Some(body), &[("idempotency-key", key)]).await
}

/// Polls `path` until `done` holds (the reconciler runs once a second).
async fn wait_until(s: &Server, t: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..300 {
        let v = s.get(path, t).await.json();
        if done(&v) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{path} never reached the expected state: {}", s.get(path, t).await.text);
}

async fn calls(s: &Server, t: &str, id: &str) -> Value {
    s.get(&format!("/sandbox/processor_calls/{id}"), t).await.json()["calls"].clone()
}

#[tokio::test]
async fn payments_read_as_objects_and_refunds_follow_the_rules() {
    let s = Server::start().await;
    let t = s.token().await;
    let (session, pay) = paid(&s, &t, "4242424242424242", 100, json!({})).await;
    let sid = session["id"].as_str().unwrap();
    assert_eq!(session["amount_refunded"], 0);

    let p = s.get(&format!("/v1/payments/{pay}"), &t).await;
    assert_eq!(p.status, 200, "{}", p.text);
    let p = p.json();
    assert_eq!(
        (&p["object"], &p["status"], &p["amount_received"], &p["amount_capturable"], &p["capture_method"]),
        (&json!("payment"), &json!("succeeded"), &json!(100), &json!(0), &json!("automatic"))
    );
    assert_eq!(p["processor"]["name"], "sandbox");
    assert!(p["processor"]["reference"].as_str().unwrap().starts_with("sbx_"), "{p}");
    let listed = s.get(&format!("/v1/payments?session_id={sid}"), &t).await.json();
    assert_eq!(listed["data"][0]["id"].as_str(), Some(pay.as_str()));
    assert_eq!(s.get("/v1/payments/pay_unknown", &t).await.status, 404);
    let (other, other_secret) = s.other_merchant().await;
    let foreign = s.token_for(&other, &other_secret, None).await;
    assert_eq!(s.get(&format!("/v1/payments/{pay}"), &foreign).await.status, 404, "another tenant's payment does not exist");
    assert_eq!(refund(&s, &foreign, "k-foreign", &json!({"payment_id": pay, "amount": 1})).await.status, 422);

    // No key: refused before anything is read.
    let r = s.post("/v1/refunds", &t, &json!({"payment_id": pay, "amount": 10})).await;
    assert_eq!((r.status.as_u16(), r.json()["code"].as_str()), (400, Some("idempotency_key_required")));
    // A refund, then its retry: the first answer byte for byte.
    let first = refund(&s, &t, "k-1", &json!({"payment_id": pay, "amount": 60, "reason": "requested_by_customer"})).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = refund(&s, &t, "k-1", &json!({"payment_id": pay, "amount": 60, "reason": "requested_by_customer"})).await;
    assert_eq!((again.status, again.text.as_str(), again.header("idempotent-replayed")), (first.status, first.text.as_str(), Some("true")));
    let reused = refund(&s, &t, "k-1", &json!({"payment_id": pay, "amount": 30})).await;
    assert_eq!((reused.status.as_u16(), reused.json()["code"].as_str()), (422, Some("idempotency_key_reuse")));
    let r1 = first.json();
    assert_eq!(
        (&r1["object"], &r1["status"], &r1["amount"], &r1["currency"]),
        (&json!("refund"), &json!("pending"), &json!(60), &json!("EUR"))
    );
    assert_eq!(calls(&s, &t, r1["id"].as_str().unwrap()).await["refund"], 1, "the retry did not reach the processor");

    // Remaining + 1 is refused with what is left; the exact remainder is accepted.
    let over = refund(&s, &t, "k-2", &json!({"payment_id": pay, "amount": 41})).await;
    assert_eq!(
        (over.status.as_u16(), over.json()["code"].as_str(), over.json()["refundable"].as_i64()),
        (422, Some("amount_exceeds_refundable"), Some(40))
    );
    let exact = refund(&s, &t, "k-3", &json!({"payment_id": pay, "amount": 40})).await;
    assert_eq!(exact.status, 201, "{}", exact.text);
    let none_left = refund(&s, &t, "k-4", &json!({"payment_id": pay})).await;
    assert_eq!((none_left.status.as_u16(), none_left.json()["refundable"].as_i64()), (422, Some(0)));

    // Bad input: every field at once.
    let bad = refund(&s, &t, "k-5", &json!({"amount": -1, "reason": "bored", "extra": 1})).await;
    assert_eq!(bad.status, 422);
    let fields: Vec<String> = bad.error_fields().into_iter().map(|(f, _)| f).collect();
    for f in ["payment_id", "amount", "reason", "extra"] {
        assert!(fields.iter().any(|x| x == f), "{f} in {fields:?}");
    }

    // The refunds settle (sandbox: a few seconds of its clock) and the payment, the session
    // and the receipt show them.
    s.advance_clock(&t, 10).await;
    let done = wait_until(&s, &t, &format!("/v1/payments/{pay}"), |p| p["amount_refunded"] == 100).await;
    assert_eq!(done["amount_received"], 100);
    let listed = s.get(&format!("/v1/refunds?payment_id={pay}"), &t).await.json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    assert!(listed["data"].as_array().unwrap().iter().all(|r| r["status"] == "succeeded"));
    assert_eq!(s.get(&format!("/v1/payment_sessions/{sid}"), &t).await.json()["amount_refunded"], 100);
    let mut c = Customer::new(&s, &session);
    let receipt = c.open_from(SHOP).await;
    assert!(receipt.body.contains("id=\"refunded\""), "{}", receipt.body);
}

#[tokio::test]
async fn twenty_concurrent_refunds_of_ten_on_a_hundred_refund_exactly_a_hundred() {
    let s = Server::start().await;
    let t = s.token().await;
    let (_, pay) = paid(&s, &t, "4242424242424242", 100, json!({})).await;
    let tries = (0..20).map(|i| {
        let (s, t, pay) = (&s, &t, &pay);
        async move { refund(s, t, &format!("conc-{i}"), &json!({"payment_id": pay, "amount": 10})).await }
    });
    let answers = futures::future::join_all(tries).await;
    let created = answers.iter().filter(|r| r.status == 201).count();
    let refused: Vec<&Resp> = answers.iter().filter(|r| r.status == 422).collect();
    assert_eq!((created, refused.len()), (10, 10), "{:?}", answers.iter().map(|r| &r.text).collect::<Vec<_>>());
    assert!(refused.iter().all(|r| r.json()["code"] == "amount_exceeds_refundable"));
    let all = s.get(&format!("/v1/refunds?payment_id={pay}&limit=100"), &t).await.json();
    let sum: i64 = all["data"].as_array().unwrap().iter().map(|r| r["amount"].as_i64().unwrap()).sum();
    assert_eq!(sum, 100, "the refunds never sum above what was received");

    // At most 20 refunds per payment, whatever is left.
    let (_, big) = paid(&s, &t, "4242424242424242", 1000, json!({})).await;
    for i in 0..20 {
        assert_eq!(refund(&s, &t, &format!("many-{i}"), &json!({"payment_id": big, "amount": 1})).await.status, 201);
    }
    let r21 = refund(&s, &t, "many-20", &json!({"payment_id": big, "amount": 1})).await;
    assert_eq!((r21.status.as_u16(), r21.json()["code"].as_str()), (409, Some("refund_limit_reached")));
}

#[tokio::test]
async fn manual_capture_authorises_then_captures_voids_or_expires() {
    let s = Server::start().await;
    let t = s.token().await;
    let manual = json!({"capture_method": "manual"});
    let bad = s
        .create(&t, &json!({"amount": 100, "currency": "EUR", "customer_id": "c", "reference": reference(), "capture_method": "manual", "payment_methods": ["qr"]}))
        .await;
    assert_eq!(bad.error_fields(), [("capture_method".to_string(), "unsupported_for_method".to_string())]);

    let (session, pay) = paid(&s, &t, "4242424242424242", 1050, manual.clone()).await;
    assert_eq!((session["status"].as_str(), session["payments"][0]["status"].as_str()), (Some("succeeded"), Some("requires_capture")));
    let p = s.get(&format!("/v1/payments/{pay}"), &t).await.json();
    assert_eq!((&p["status"], &p["amount_capturable"], &p["amount_received"]), (&json!("requires_capture"), &json!(1050), &json!(0)));
    assert!(p["capture_before"].is_string());
    let early = refund(&s, &t, "early", &json!({"payment_id": pay})).await;
    assert_eq!(early.status, 409, "nothing was taken yet: {}", early.text);
    assert!(early.json()["detail"].as_str().unwrap().contains("cancel"));
    let too_much = s.post(&format!("/v1/payments/{pay}/capture"), &t, &json!({"amount": 1051})).await;
    assert_eq!(too_much.status, 422);
    let captured = s.post(&format!("/v1/payments/{pay}/capture"), &t, &json!({"amount": 600})).await;
    assert_eq!(captured.status, 200, "{}", captured.text);
    let captured = captured.json();
    assert_eq!(
        (&captured["status"], &captured["amount_received"], &captured["amount_capturable"]),
        (&json!("succeeded"), &json!(600), &json!(0))
    );
    assert_eq!(s.post(&format!("/v1/payments/{pay}/capture"), &t, &json!({})).await.status, 409, "one capture per payment");
    assert_eq!(s.post(&format!("/v1/payments/{pay}/cancel"), &t, &json!({})).await.status, 409);
    let over = refund(&s, &t, "cap-1", &json!({"payment_id": pay, "amount": 601})).await;
    assert_eq!(over.json()["refundable"], 600, "refundable is what was received, not the amount");
    assert_eq!(calls(&s, &t, &pay).await["capture"], 1);

    let (_, voided) = paid(&s, &t, "4242424242424242", 500, manual.clone()).await;
    let v = s.post(&format!("/v1/payments/{voided}/cancel"), &t, &json!({})).await;
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!((v.json()["status"].as_str(), v.json()["cancellation_reason"].as_str()), (Some("canceled"), Some("requested")));

    // An authorisation left alone is voided at capture_before (the reconciler, on the test clock).
    let (_, left) = paid(&s, &t, "4242424242424242", 700, manual).await;
    s.advance_clock(&t, 7 * 86_400 + 5).await;
    // Read at once it is void (as a session past expires_at reads expired); the reconciler
    // writes the void with its event within a second.
    let expired = s.get(&format!("/v1/payments/{left}"), &t).await.json();
    assert_eq!((&expired["status"], &expired["cancellation_reason"]), (&json!("canceled"), &json!("authorization_expired")));
    assert_eq!(s.post(&format!("/v1/payments/{left}/capture"), &t, &json!({})).await.status, 409, "past capture_before");
    let events = wait_until(&s, &t, "/v1/events?type=payment.canceled", |e| e["data"].as_array().unwrap().len() == 2).await;
    assert_eq!(events["data"][0]["data"]["object"]["id"].as_str(), Some(left.as_str()), "the requested void and the expiry");
    assert_eq!(calls(&s, &t, &left).await["void"], 1);
    assert_eq!(s.get("/v1/events?type=payment.captured", &t).await.json()["data"].as_array().unwrap().len(), 1);
}

/// The timeout card: the refund call's answer is lost, the refund stays pending, and
/// reconciliation finds it succeeded; the processor saw one refund call.
#[tokio::test]
async fn a_refund_whose_answer_was_lost_is_reconciled_and_never_sent_twice() {
    let s = Server::start().await;
    let t = s.token().await;
    let (_, pay) = paid(&s, &t, "4000000000000077", 300, json!({})).await;
    let r = refund(&s, &t, "lost-1", &json!({"payment_id": pay, "amount": 300})).await.json();
    let id = r["id"].as_str().unwrap();
    let stored = s.get(&format!("/v1/refunds/{id}"), &t).await.json();
    assert_eq!((stored["status"].as_str(), stored.get("processor_reference")), (Some("pending"), None), "unknown is not guessed");
    // A retry of the request replays; it never reaches the processor again.
    assert_eq!(refund(&s, &t, "lost-1", &json!({"payment_id": pay, "amount": 300})).await.status, 201);
    s.advance_clock(&t, 120).await;
    let done = wait_until(&s, &t, &format!("/v1/refunds/{id}"), |r| r["status"] == "succeeded").await;
    assert!(done["processor_reference"].is_string());
    let seen = calls(&s, &t, id).await;
    assert_eq!(seen["refund"], 1, "{seen}");
    assert!(seen["sync_refund"].as_u64().unwrap() >= 1, "{seen}");
}

/// The late-failure card, with every transition delivered as a webhook, verified by the
/// official library and valid against the published Event schema.
#[tokio::test]
async fn a_late_failure_gives_the_amount_back_and_every_transition_is_delivered() {
    let s = Server::start_with_private_webhooks().await;
    let t = s.token().await;
    let receiver = Receiver::start().await;
    let events = ["refund.created", "refund.updated", "refund.succeeded", "refund.failed"];
    let ep = s.post("/v1/webhook_endpoints", &t, &json!({"url": receiver.url(), "events": events})).await;
    assert_eq!(ep.status, 201, "{}", ep.text);
    let ep = ep.json();
    let (_, pay) = paid(&s, &t, "4000000000005126", 500, json!({})).await;
    let r = refund(&s, &t, "late-1", &json!({"payment_id": pay, "amount": 500, "metadata": {"ticket": "T-1"}})).await.json();
    let id = r["id"].as_str().unwrap().to_string();
    s.advance_clock(&t, 10).await;
    wait_until(&s, &t, &format!("/v1/refunds/{id}"), |r| r["status"] == "succeeded").await;
    assert_eq!(s.get(&format!("/v1/payments/{pay}"), &t).await.json()["amount_refunded"], 500);
    assert_eq!(refund(&s, &t, "late-2", &json!({"payment_id": pay, "amount": 1})).await.status, 422, "nothing left while it stands");
    s.advance_clock(&t, 86_400).await;
    let failed = wait_until(&s, &t, &format!("/v1/refunds/{id}"), |r| r["status"] == "failed").await;
    assert_eq!(failed["failure_reason"], "expired_or_canceled_card");
    let p = s.get(&format!("/v1/payments/{pay}"), &t).await.json();
    assert_eq!(p["amount_refunded"], 0, "{p}");
    assert_eq!(refund(&s, &t, "late-3", &json!({"payment_id": pay, "amount": 500})).await.status, 201, "refundable again");

    let want = ["refund.created", "refund.updated", "refund.succeeded", "refund.updated", "refund.failed"];
    let got = receiver
        .wait_for("the refund's transitions", |got| {
            let mine: Vec<String> =
                got.iter().filter(|m| m.json()["data"]["object"]["id"] == id.as_str()).map(|m| m.event_type()).collect();
            mine.len() >= want.len()
        })
        .await;
    let mine: Vec<_> = got.iter().filter(|m| m.json()["data"]["object"]["id"] == id.as_str()).collect();
    let types: Vec<String> = mine.iter().map(|m| m.event_type()).collect();
    assert_eq!(types, want);
    assert_eq!(mine[3].json()["data"]["previous_status"], "succeeded");
    let payloads: Vec<Value> = mine.iter().map(|m| m.json()).collect();
    assert_eq!(schema_errors("Event", &payloads), Vec::<String>::new());
    let secret = ep["secret"].as_str().unwrap();
    assert!(verify_with_official_library(secret, &mine).iter().all(|v| v == &json!(true)));
}

/// Refunds of bank methods wait for the bank: completed through the sandbox, or canceled.
#[tokio::test]
async fn bank_method_refunds_require_action_until_completed_or_canceled() {
    let s = Server::start().await;
    let t = s.token().await;
    let created = s
        .create(&t, &json!({"amount": 800, "currency": "EUR", "customer_id": "c", "reference": reference(), "mode": "api", "payment_methods": ["virtual_account"]}))
        .await
        .json();
    let number = created["instructions"]["virtual_account"]["account_number"].as_str().unwrap();
    let dep = s.call(Method::POST, &format!("/sandbox/virtual_accounts/{number}/deposits"), &t, Some(&json!({"amount": 800})), &[]).await;
    assert_eq!(dep.status, 200, "{}", dep.text);
    let sid = created["id"].as_str().unwrap();
    let pay = s.get(&format!("/v1/payments?session_id={sid}"), &t).await.json()["data"][0]["id"].as_str().unwrap().to_string();
    let a = refund(&s, &t, "bank-1", &json!({"payment_id": pay, "amount": 300})).await.json();
    let b = refund(&s, &t, "bank-2", &json!({"payment_id": pay, "amount": 500})).await.json();
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    assert_eq!(s.get(&format!("/v1/refunds/{a}"), &t).await.json()["status"], "requires_action");
    let done = s.post(&format!("/sandbox/refunds/{a}/complete"), &t, &json!({})).await;
    assert_eq!((done.status.as_u16(), done.json()["status"].as_str()), (200, Some("succeeded")), "{}", done.text);
    let canceled = s.post(&format!("/v1/refunds/{b}/cancel"), &t, &json!({})).await;
    assert_eq!((canceled.status.as_u16(), canceled.json()["status"].as_str()), (200, Some("canceled")), "{}", canceled.text);
    assert_eq!(s.post(&format!("/v1/refunds/{a}/cancel"), &t, &json!({})).await.status, 409, "a succeeded refund is not canceled");
    let p = s.get(&format!("/v1/payments/{pay}"), &t).await.json();
    assert_eq!(p["amount_refunded"], 300);
    assert_eq!(
        refund(&s, &t, "bank-3", &json!({"payment_id": pay, "amount": 500})).await.status,
        201,
        "the canceled 500 is refundable again"
    );
}

/// A payment stored before payment ids named their session (`pay_` + 32 hex digits) reads
/// as a succeeded payment and is refunded like any other: no migration.
#[tokio::test]
async fn payments_stored_before_ids_named_their_session_are_found_and_refunded() {
    use paysession_domain::model::PaymentMethodKind;
    use paysession_domain::payment::{AttemptStatus, PaymentAttempt};
    let s = Server::start().await;
    let t = s.token().await;
    let created = s.create(&t, &json!({"amount": 900, "currency": "EUR", "customer_id": "c", "reference": reference()})).await.json();
    let store = s.running.as_ref().unwrap().local.app.core.store.clone();
    let sid = created["id"].as_str().unwrap();
    let m = s.running.as_ref().unwrap().demo.merchant_id.clone();
    let session = store.get_session(&m, sid).await.unwrap().unwrap();
    // As an earlier release wrote it: an automatic attempt, succeeded, under an old-style id.
    let legacy_id = paysession_app::ids::new_id("pay");
    let now = session.created_at;
    let mut old = PaymentAttempt::new(legacy_id.clone(), PaymentMethodKind::Card, 900, now);
    old.status = AttemptStatus::Succeeded;
    let mut paid = session.clone();
    paid.payments.push(old);
    paid.status = paysession_domain::SessionStatus::Succeeded;
    paid.version += 1;
    store.update_session(&paid, session.version, &[], None).await.unwrap();
    let stored: serde_json::Value = serde_json::to_value(&store.get_session(&m, sid).await.unwrap().unwrap().payments[0]).unwrap();
    assert!(stored.get("capture_method").is_none() && stored.get("processor_reference").is_none(), "written as before: {stored}");

    let p = s.get(&format!("/v1/payments/{legacy_id}"), &t).await;
    assert_eq!(p.status, 200, "{}", p.text);
    let p = p.json();
    assert_eq!((&p["status"], &p["amount_received"], &p["capture_method"]), (&json!("succeeded"), &json!(900), &json!("automatic")));
    assert_eq!(p["processor"], json!({"name": "sandbox", "reference": null}));
    let r = refund(&s, &t, "legacy-1", &json!({"payment_id": legacy_id, "amount": 900})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    s.advance_clock(&t, 10).await;
    wait_until(&s, &t, &format!("/v1/payments/{legacy_id}"), |p| p["amount_refunded"] == 900).await;
    assert_eq!(s.post(&format!("/v1/payments/{legacy_id}/capture"), &t, &json!({})).await.status, 409, "automatic: nothing to capture");
    // An old-style id of no payment is looked for and not found.
    assert_eq!(s.get(&format!("/v1/payments/{}", paysession_app::ids::new_id("pay")), &t).await.status, 404);
}

/// The concurrent refunds through `paysession-local --store dynamodb`: the conditional
/// write on DynamoDB Local keeps the sum within what was received.
#[tokio::test]
async fn concurrent_refunds_on_the_local_server_over_dynamodb_local() {
    let store = paysession_tests::dynamo::fresh_table().await;
    let s = Server::start_on_table(store.table()).await;
    let t = s.token().await;
    let (_, pay) = paid(&s, &t, "4242424242424242", 100, json!({})).await;
    let tries = (0..20).map(|i| {
        let (s, t, pay) = (&s, &t, &pay);
        async move { refund(s, t, &format!("ddb-{i}"), &json!({"payment_id": pay, "amount": 10})).await.status.as_u16() }
    });
    let mut statuses = futures::future::join_all(tries).await;
    statuses.sort();
    assert_eq!(statuses, [[201u16; 10], [422u16; 10]].concat(), "exactly ten refunds of 10 on 100");
    let p = s.get(&format!("/v1/payments/{pay}"), &t).await.json();
    assert_eq!(p["amount_received"], 100);
    let all = s.get(&format!("/v1/refunds?payment_id={pay}&limit=100"), &t).await.json();
    assert_eq!(all["data"].as_array().unwrap().iter().map(|r| r["amount"].as_i64().unwrap()).sum::<i64>(), 100);
}

/// A refund reserved whose processor call never happened (the request stopped between its
/// write and the call): reconciliation asks, the processor has no such refund, and it is
/// submitted then, under the same id: once.
#[tokio::test]
async fn a_reserved_refund_the_processor_never_received_is_submitted_by_reconciliation() {
    let s = Server::start().await;
    let t = s.token().await;
    let (session, pay) = paid(&s, &t, "4242424242424242", 700, json!({})).await;
    let store = s.running.as_ref().unwrap().local.app.core.store.clone();
    let now = chrono::Utc::now();
    let sid = session["id"].as_str().unwrap();
    let id = paysession_domain::session::child_id("re", sid, "00000000000000ff");
    let mut refund = paysession_tests::contract::refund(&id, &s.running.as_ref().unwrap().demo.merchant_id, sid, &pay, 300, now);
    refund.next_sync_at = Some(now);
    let events = refund.events(None, now, || paysession_app::ids::new_id("evt"));
    store.create_refund(&refund, 700, &events, None).await.unwrap();
    assert_eq!(calls(&s, &t, &id).await, json!({}), "reserved, never sent");
    s.advance_clock(&t, 10).await;
    let done = wait_until(&s, &t, &format!("/v1/refunds/{id}"), |r| r["status"] == "succeeded").await;
    assert!(done["processor_reference"].is_string());
    let seen = calls(&s, &t, &id).await;
    assert_eq!(seen["refund"], 1, "submitted once: {seen}");
    assert_eq!(s.get(&format!("/v1/payments/{pay}"), &t).await.json()["amount_refunded"], 300);
}
