//! Webhooks end to end on the local server: endpoints API, the in-process outbox → queue →
//! dispatcher pipeline, a real receiver on loopback, and signatures checked with the
//! official Standard Webhooks library.

use paysession_tests::page::Customer;
use paysession_tests::receiver::{Received, Receiver, schema_errors, verify_v1a_independently, verify_with_official_library};
use paysession_tests::{Server, session_body};
use reqwest::Method;
use serde_json::{Value, json};

const SHOP: &str = "https://shop.example";

async fn endpoint(s: &Server, t: &str, url: &str, events: Value) -> Value {
    let r = s.post("/v1/webhook_endpoints", t, &json!({"url": url, "events": events, "description": "test receiver"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

fn reference() -> String {
    paysession_app::ids::new_id("ref")
}

fn types(got: &[Received]) -> Vec<String> {
    got.iter().map(Received::event_type).collect()
}

async fn deliveries(s: &Server, t: &str, endpoint_id: &str) -> Vec<Value> {
    let r = s.get(&format!("/v1/webhook_endpoints/{endpoint_id}/deliveries"), t).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["data"].as_array().unwrap().clone()
}

/// Attempts made by the endpoint's only delivery so far.
fn attempts(d: &[Value]) -> usize {
    d.first().map_or(0, |x| x["attempts"].as_array().unwrap().len())
}

/// Polls the deliveries list until `done` holds (the pipeline runs asynchronously).
async fn wait_deliveries(s: &Server, t: &str, endpoint_id: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..500 {
        let d = deliveries(s, t, endpoint_id).await;
        if done(&d) {
            return d;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("deliveries never reached the expected state: {:#}", json!(deliveries(s, t, endpoint_id).await));
}

#[tokio::test]
async fn a_paid_session_reaches_the_receiver_signed() {
    let s = Server::start_with_private_webhooks().await;
    let t = s.token().await;
    let rx = Receiver::start().await;
    let ep = endpoint(&s, &t, &rx.url(), json!(["*"])).await;
    let secret = ep["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(ep["status"], "enabled");

    let mut body = session_body(&reference());
    body["allowed_domains"] = json!([SHOP]);
    let sess = s.create(&t, &body).await.json();
    let mut c = Customer::new(&s, &sess);
    c.open_from(SHOP).await;
    assert_eq!(c.pay_card("4242424242424242").await.status, 303);

    let got = rx.wait_for("payment_session.succeeded", |g| types(g).iter().any(|t| t == "payment_session.succeeded")).await;
    let seen = types(&got);
    for expected in ["payment_session.created", "payment.updated", "payment_session.updated", "payment_session.succeeded"] {
        assert!(seen.iter().any(|t| t == expected), "missing {expected} in {seen:?}");
    }
    // Deliveries run in parallel, so arrival order is not commit order (receivers order
    // by `created_at` / `previous_status`); each event arrives exactly once.
    let mut ids: Vec<_> = got.iter().map(|r| r.header("webhook-id").unwrap().to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), got.len());

    let all: Vec<&Received> = got.iter().collect();
    let payloads: Vec<Value> = got.iter().map(Received::json).collect();
    assert_eq!(schema_errors("Event", &payloads), Vec::<String>::new(), "every payload matches the published Event schema");
    let verdicts = verify_with_official_library(&secret, &all);
    assert!(verdicts.iter().all(|v| v == &json!(true)), "official verifier refused: {verdicts:?}");
    let tampered = Received { body: got[0].body.replacen("\"id\"", "\"iD\"", 1), ..got[0].clone() };
    assert_ne!(verify_with_official_library(&secret, &[&tampered])[0], json!(true), "the verifier must catch a changed body");

    for r in &got {
        let v = r.json();
        assert_eq!(r.header("webhook-id"), v["id"].as_str(), "webhook-id is the event id");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - ts).abs() < 60, "timestamp is wall-clock seconds");
        // The payload is the event as the events API shows it.
        let api = s.get(&format!("/v1/events/{}", v["id"].as_str().unwrap()), &t).await.json();
        assert_eq!(api, v);
    }
    let succeeded = got.iter().find(|r| r.event_type() == "payment_session.succeeded").unwrap().json();
    assert_eq!(succeeded["data"]["object"]["status"], "succeeded");
    assert_eq!(succeeded["data"]["previous_status"], "open");
    let payment = got.iter().find(|r| r.event_type() == "payment.updated").unwrap().json();
    assert_eq!(payment["data"]["object"]["object"], "payment");

    let d =
        wait_deliveries(&s, &t, ep["id"].as_str().unwrap(), |d| d.len() == got.len() && d.iter().all(|x| x["status"] == "delivered")).await;
    assert_eq!(d[0]["attempts"][0]["status_code"], 204);
    assert!(d[0]["attempts"][0]["duration_ms"].is_u64());
}

#[tokio::test]
async fn receiver_outage_is_retried_on_the_schedule_across_a_restart() {
    let mut s = Server::start_with_private_webhooks().await;
    let t = s.token().await;
    let mut rx = Receiver::start().await;
    let ep = endpoint(&s, &t, &rx.url(), json!(["payment_session.created"])).await;
    let ep_id = ep["id"].as_str().unwrap().to_string();
    rx.script(&[500]);
    let sess = s.create(&t, &session_body(&reference())).await.json();

    // Attempt 1: the receiver answers 500.
    let d = wait_deliveries(&s, &t, &ep_id, |d| attempts(d) == 1).await;
    assert_eq!(d[0]["status"], "pending");
    assert_eq!(d[0]["attempts"][0]["status_code"], 500);
    let first_at = chrono::DateTime::parse_from_rfc3339(d[0]["attempts"][0]["attempted_at"].as_str().unwrap()).unwrap();
    let next_at = chrono::DateTime::parse_from_rfc3339(d[0]["next_attempt_at"].as_str().unwrap()).unwrap();
    assert_eq!((next_at - first_at).num_seconds(), 5);

    // The receiver goes down; 5 s of test clock later attempt 2 cannot connect.
    rx.stop();
    s.advance_clock(&t, 5).await;
    let d = wait_deliveries(&s, &t, &ep_id, |d| attempts(d) == 2).await;
    assert!(d[0]["attempts"][1]["status_code"].is_null());
    assert!(!d[0]["attempts"][1]["error"].as_str().unwrap().is_empty());
    assert_eq!(d[0]["status"], "pending");

    // The server restarts while the delivery waits for its 5-minute retry.
    s.restart().await;
    let t = s.token().await;
    rx.resume().await;
    s.advance_clock(&t, 60).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 1, "not due yet: only the first attempt reached the receiver");
    s.advance_clock(&t, 240).await;
    let got = rx.wait_for("the retried delivery", |g| g.len() == 2).await;
    assert_eq!(got[1].status, 204);
    assert_eq!(got[1].header("webhook-id"), got[0].header("webhook-id"), "same webhook-id on every attempt");
    assert_ne!(got[1].header("webhook-timestamp"), None);
    let verdicts = verify_with_official_library(ep["secret"].as_str().unwrap(), &[&got[0], &got[1]]);
    assert!(verdicts.iter().all(|v| v == &json!(true)), "{verdicts:?}");

    let d = wait_deliveries(&s, &t, &ep_id, |d| d.first().is_some_and(|x| x["status"] == "delivered")).await;
    let attempts = d[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    let at = |i: usize| chrono::DateTime::parse_from_rfc3339(attempts[i]["attempted_at"].as_str().unwrap()).unwrap();
    assert!((at(1) - at(0)).num_seconds() >= 5 && (at(2) - at(1)).num_seconds() >= 300, "{attempts:?}");
    // Nothing more arrives: delivered exactly once after the outage.
    s.advance_clock(&t, 3 * 3600).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 2);
    assert_eq!(sess["status"], "open");
}

#[tokio::test]
async fn every_attempt_fails_then_the_delivery_is_dead() {
    let s = Server::start_with_private_webhooks().await;
    let t = s.token().await;
    let rx = Receiver::start().await;
    rx.answer_always(503);
    let ep = endpoint(&s, &t, &rx.url(), json!(["payment_session.created"])).await;
    let ep_id = ep["id"].as_str().unwrap().to_string();
    s.create(&t, &session_body(&reference())).await;
    let schedule = paysession_domain::webhook::RETRY_DELAYS_SECONDS;
    for (i, wait) in schedule.iter().enumerate() {
        wait_deliveries(&s, &t, &ep_id, |d| attempts(d) == i + 1).await;
        s.advance_clock(&t, *wait).await;
    }
    let d = wait_deliveries(&s, &t, &ep_id, |d| d.first().is_some_and(|x| x["status"] == "failed")).await;
    let attempts = d[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 8);
    assert!(attempts.iter().all(|a| a["status_code"] == 503));
    let at = |i: usize| chrono::DateTime::parse_from_rfc3339(attempts[i]["attempted_at"].as_str().unwrap()).unwrap();
    for (i, wait) in schedule.iter().enumerate() {
        let gap = (at(i + 1) - at(i)).num_seconds();
        assert!(gap >= *wait && gap < wait + 5, "gap {i}: {gap} s, schedule {wait} s");
    }
    assert!(d[0]["next_attempt_at"].is_null());
    s.advance_clock(&t, 48 * 3600).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(rx.received().len(), 8, "a dead delivery is not attempted again");
}

#[tokio::test]
async fn gone_disables_the_endpoint() {
    let s = Server::start_with_private_webhooks().await;
    let t = s.token().await;
    let rx = Receiver::start().await;
    rx.answer_always(410);
    let ep = endpoint(&s, &t, &rx.url(), json!(["*"])).await;
    let ep_id = ep["id"].as_str().unwrap();
    s.create(&t, &session_body(&reference())).await;
    let d = wait_deliveries(&s, &t, ep_id, |d| d.first().is_some_and(|x| x["status"] == "failed")).await;
    assert_eq!(d[0]["attempts"][0]["status_code"], 410);
    let got = s.get(&format!("/v1/webhook_endpoints/{ep_id}"), &t).await.json();
    assert_eq!(got["status"], "disabled");
    assert!(got["disabled_reason"].as_str().unwrap().contains("410"));
    // A disabled endpoint receives nothing more.
    s.create(&t, &session_body(&reference())).await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(rx.received().len(), 1);
    assert_eq!(deliveries(&s, &t, ep_id).await.len(), 1);
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_for_a_day() {
    let s = Server::start_with_private_webhooks().await;
    let t = s.token().await;
    let rx = Receiver::start().await;
    let ep = endpoint(&s, &t, &rx.url(), json!(["payment_session.created"])).await;
    let ep_id = ep["id"].as_str().unwrap();
    let old = ep["secret"].as_str().unwrap().to_string();
    let rotated = s.post(&format!("/v1/webhook_endpoints/{ep_id}/rotate_secret"), &t, &json!({})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new = rotated.json()["secret"].as_str().unwrap().to_string();
    assert_ne!(old, new);
    assert!(rotated.json()["previous_secret_expires_at"].is_string());

    s.create(&t, &session_body(&reference())).await;
    let got = rx.wait_for("one delivery", |g| g.len() == 1).await;
    assert_eq!(got[0].header("webhook-signature").unwrap().split(' ').count(), 2);
    assert_eq!(verify_with_official_library(&old, &[&got[0]]), vec![json!(true)]);
    assert_eq!(verify_with_official_library(&new, &[&got[0]]), vec![json!(true)]);

    s.advance_clock(&t, 24 * 3600 + 1).await;
    s.create(&t, &session_body(&reference())).await;
    let got = rx.wait_for("a second delivery", |g| g.len() == 2).await;
    assert_eq!(got[1].header("webhook-signature").unwrap().split(' ').count(), 1);
    assert_eq!(verify_with_official_library(&new, &[&got[1]]), vec![json!(true)]);
    assert_ne!(verify_with_official_library(&old, &[&got[1]])[0], json!(true), "the old secret stopped signing");
}

#[tokio::test]
async fn endpoints_api_rules() {
    let s = Server::start().await; // no --allow-private-webhooks
    let t = s.token().await;
    let bad = s.post("/v1/webhook_endpoints", &t, &json!({"url": "http://127.0.0.1:9/x", "events": ["nope"], "extra": 1})).await;
    assert_eq!(bad.status, 422);
    assert_eq!(
        bad.error_fields(),
        vec![
            ("url".to_string(), "invalid_format".to_string()),
            ("events[0]".to_string(), "invalid_value".to_string()),
            ("extra".to_string(), "unknown_field".to_string()),
        ]
    );
    for url in
        ["https://127.0.0.1/x", "https://169.254.169.254/latest", "https://[::ffff:10.0.0.1]/", "https://2130706433/", "https://localhost/"]
    {
        let r = s.post("/v1/webhook_endpoints", &t, &json!({"url": url, "events": ["*"]})).await;
        assert_eq!(r.status, 422, "{url}: {}", r.text);
        assert_eq!(r.error_fields()[0].0, "url");
    }
    // Scope and tenancy.
    let narrow = s.token_for(&s.client_id, &s.client_secret, Some("sessions:read")).await;
    assert_eq!(s.post("/v1/webhook_endpoints", &narrow, &json!({"url": "https://hooks.example.com/x", "events": ["*"]})).await.status, 403);
    let key = [("idempotency-key", "we-create-1")];
    let body = json!({"url": "https://hooks.example.com/x", "events": ["payment_session.succeeded"]});
    let created = s.call(Method::POST, "/v1/webhook_endpoints", &t, Some(&body), &key).await;
    assert_eq!(created.status, 201);
    let replay = s.call(Method::POST, "/v1/webhook_endpoints", &t, Some(&body), &key).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.text, created.text, "replayed byte for byte, secret included");
    let secret = created.json()["secret"].as_str().unwrap().to_string();
    let id = created.json()["id"].as_str().unwrap().to_string();
    let dump = paysession_embedded::EmbeddedStore::open_dir(&s.dir).unwrap().dump_all_text().await.unwrap();
    assert!(!dump.contains(&secret["whsec_".len()..]), "the secret is stored only sealed");
    assert!(dump.contains(&id));

    let got = s.get(&format!("/v1/webhook_endpoints/{id}"), &t).await;
    assert_eq!(got.status, 200);
    assert!(got.json().get("secret").is_none(), "the secret is shown only on create and rotate");
    let list = s.get("/v1/webhook_endpoints", &t).await.json();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    let (oc, os) = s.other_merchant().await;
    let other = s.token_for(&oc, &os, None).await;
    assert_eq!(s.get(&format!("/v1/webhook_endpoints/{id}"), &other).await.status, 404);
    assert_eq!(s.call(Method::DELETE, &format!("/v1/webhook_endpoints/{id}"), &other, None, &[]).await.status, 404);
    assert_eq!(s.get(&format!("/v1/webhook_endpoints/{id}/deliveries"), &other).await.status, 404);
    assert!(s.get("/v1/webhook_endpoints", &other).await.json()["data"].as_array().unwrap().is_empty());

    let del = s.call(Method::DELETE, &format!("/v1/webhook_endpoints/{id}"), &t, None, &[]).await;
    assert_eq!(del.status, 200);
    assert_eq!(del.json()["deleted"], true);
    assert_eq!(s.get(&format!("/v1/webhook_endpoints/{id}"), &t).await.status, 404);
}

#[tokio::test]
async fn events_api_lists_filters_and_redelivers() {
    let s = Server::start_with_private_webhooks().await;
    let t = s.token().await;
    for _ in 0..3 {
        let sess = s.create(&t, &session_body(&reference())).await.json();
        s.post(&format!("/v1/payment_sessions/{}/cancel", sess["id"].as_str().unwrap()), &t, &json!({})).await;
    }
    let all = s.get("/v1/events?limit=100", &t).await.json();
    let data = all["data"].as_array().unwrap();
    assert_eq!(data.len(), 9, "3 × (created, updated, cancelled)");
    let created: Vec<&str> = data.iter().map(|e| e["created_at"].as_str().unwrap()).collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first");

    let cancelled = s.get("/v1/events?type=payment_session.cancelled", &t).await.json();
    assert_eq!(cancelled["data"].as_array().unwrap().len(), 3);
    assert!(cancelled["data"].as_array().unwrap().iter().all(|e| e["data"]["object"]["status"] == "cancelled"));

    // Pagination by cursor and by event id visits every event once.
    let mut seen = Vec::new();
    let mut path = "/v1/events?limit=4".to_string();
    loop {
        let page = s.get(&path, &t).await.json();
        seen.extend(page["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/events?limit=4&starting_after={c}"),
            None => break,
        }
    }
    let expected: Vec<String> = data.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(seen, expected);
    let after_third = s.get(&format!("/v1/events?limit=2&starting_after={}", expected[2]), &t).await.json();
    assert_eq!(after_third["data"][0]["id"], expected[3].as_str());
    let later = s.get(&format!("/v1/events?created_after={}", data[0]["created_at"].as_str().unwrap()), &t).await.json();
    assert!(later["data"].as_array().unwrap().is_empty());

    let bad = s.get("/v1/events?type=nope&limit=0&colour=red", &t).await;
    assert_eq!(bad.status, 422);
    assert_eq!(s.get("/v1/events/evt_missing", &t).await.status, 404);
    let (oc, os) = s.other_merchant().await;
    let other = s.token_for(&oc, &os, None).await;
    assert_eq!(s.get(&format!("/v1/events/{}", expected[0]), &other).await.status, 404);
    assert!(s.get("/v1/events", &other).await.json()["data"].as_array().unwrap().is_empty());

    // Redelivery: a new delivery of an old event, same webhook-id.
    let rx = Receiver::start().await;
    let ep = endpoint(&s, &t, &rx.url(), json!(["*"])).await;
    let again = s.post(&format!("/v1/events/{}/redeliver", expected[0]), &t, &json!({})).await;
    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(again.json()["data"][0]["redelivery"], true);
    let got = rx.wait_for("the redelivered event", |g| g.len() == 1).await;
    assert_eq!(got[0].header("webhook-id"), Some(expected[0].as_str()));
    assert_eq!(verify_with_official_library(ep["secret"].as_str().unwrap(), &[&got[0]]), vec![json!(true)]);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 1, "events from before the endpoint existed are not fanned out to it");
    assert_eq!(s.post(&format!("/v1/events/{}/redeliver", expected[0]), &other, &json!({})).await.status, 404);
}

/// A `v1a` endpoint: deliveries signed with Ed25519, verified by an independent library that
/// holds only the endpoint's public key; rotation signs with both keys during the overlap.
#[tokio::test]
async fn v1a_endpoints_sign_with_ed25519() {
    let s = Server::start_with_private_webhooks().await;
    let t = s.token().await;
    let rx = Receiver::start().await;
    let r = s.post("/v1/webhook_endpoints", &t, &json!({"url": rx.url(), "events": ["*"], "signature_scheme": "v1a"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let ep = r.json();
    assert_eq!(ep["signature_scheme"], "v1a");
    assert!(ep.get("secret").is_none(), "a v1a endpoint has no shared secret to show");
    let public = ep["public_key"].as_str().unwrap().to_string();
    assert!(public.starts_with("whpk_"), "{public}");
    let got = s.get(&format!("/v1/webhook_endpoints/{}", ep["id"].as_str().unwrap()), &t).await.json();
    assert_eq!(got["public_key"], public.as_str(), "the public key is readable at any time");
    let bad = s.post("/v1/webhook_endpoints", &t, &json!({"url": rx.url(), "events": ["*"], "signature_scheme": "v2"})).await;
    assert_eq!(bad.error_fields(), [("signature_scheme".to_string(), "invalid_value".to_string())]);

    s.create(&t, &session_body(&reference())).await;
    let first = rx.wait_for("payment_session.created", |g| !g.is_empty()).await;
    assert!(first[0].header("webhook-signature").unwrap().starts_with("v1a,"));
    assert_eq!(verify_v1a_independently(&public, &[&first[0]]), vec![json!(true)]);
    let tampered = Received { body: first[0].body.replacen("\"id\"", "\"iD\"", 1), ..first[0].clone() };
    assert_ne!(verify_v1a_independently(&public, &[&tampered])[0], json!(true), "the verifier must catch a changed body");

    let rotated = s.post(&format!("/v1/webhook_endpoints/{}/rotate_secret", ep["id"].as_str().unwrap()), &t, &json!({})).await.json();
    let new_public = rotated["public_key"].as_str().unwrap().to_string();
    assert_ne!(new_public, public);
    assert!(rotated.get("secret").is_none());
    s.create(&t, &session_body(&reference())).await;
    let both = rx.wait_for("a second delivery", |g| g.len() >= 2).await;
    let during = &both[1];
    assert_eq!(during.header("webhook-signature").unwrap().matches("v1a,").count(), 2, "both keys sign during the overlap");
    assert_eq!(verify_v1a_independently(&public, &[during]), vec![json!(true)], "old key still verifies");
    assert_eq!(verify_v1a_independently(&new_public, &[during]), vec![json!(true)], "new key verifies");
}
