//! Session lifecycle over HTTP: confirm, cancel, expire, events, the test clock, races,
//! and persistence across restarts.

use paysession_tests::{Server, session_body};
use serde_json::json;

fn types(events: &serde_json::Value) -> Vec<String> {
    events["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn confirm_then_cancel_with_events() {
    let s = Server::start().await;
    let t = s.token().await;
    let mut b = session_body("lc-1");
    b["auto_confirm"] = json!(false);
    let created = s.create(&t, &b).await.json();
    assert_eq!(created["status"], "requires_confirmation");
    assert_eq!(created["allowed_actions"], json!(["confirm", "cancel", "expire"]));
    let id = created["id"].as_str().unwrap();

    let confirmed = s.post(&format!("/v1/payment_sessions/{id}/confirm"), &t, &json!({})).await;
    assert_eq!(confirmed.status, 200);
    let c = confirmed.json();
    assert_eq!(c["status"], "open");
    assert!(c["payment_request_id"].as_str().unwrap().starts_with("pr_"));

    let again = s.post(&format!("/v1/payment_sessions/{id}/confirm"), &t, &json!({})).await;
    assert_eq!((again.status.as_u16(), again.json()["code"].as_str()), (409, Some("invalid_state_transition")));

    let bad = s.post(&format!("/v1/payment_sessions/{id}/cancel"), &t, &json!({"reason": "bored"})).await;
    assert_eq!(bad.status, 422);
    let cancelled = s.post(&format!("/v1/payment_sessions/{id}/cancel"), &t, &json!({"reason": "duplicate"})).await.json();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["cancellation_reason"], "duplicate");
    assert_eq!(cancelled["allowed_actions"], json!([]));

    let events = s.get(&format!("/v1/payment_sessions/{id}/events"), &t).await.json();
    assert_eq!(
        types(&events),
        ["payment_session.created", "payment_session.updated", "payment_session.updated", "payment_session.cancelled"]
    );
    let data = events["data"].as_array().unwrap();
    assert_eq!(data[1]["data"]["previous_status"], "requires_confirmation");
    assert_eq!(data[1]["data"]["object"]["status"], "open");
    assert_eq!(data[3]["data"]["previous_status"], "open");
    assert!(data.iter().all(|e| e["id"].as_str().unwrap().starts_with("evt_")));
}

#[tokio::test]
async fn multiple_sessions_confirm_to_active() {
    let s = Server::start().await;
    let t = s.token().await;
    let mut b = session_body("multi");
    b["payment_type"] = json!("multiple");
    b["auto_confirm"] = json!(false);
    let id = s.create(&t, &b).await.json()["id"].as_str().unwrap().to_string();
    let r = s.post(&format!("/v1/payment_sessions/{id}/confirm"), &t, &json!({})).await.json();
    assert_eq!(r["status"], "active");
}

#[tokio::test]
async fn concurrent_transitions_one_wins() {
    let s = Server::start().await;
    let t = s.token().await;
    for round in 0..5 {
        let id = s.create(&t, &session_body(&format!("race-{round}"))).await.json()["id"].as_str().unwrap().to_string();
        let cancel_path = format!("/v1/payment_sessions/{id}/cancel");
        let expire_path = format!("/v1/payment_sessions/{id}/expire");
        let empty = json!({});
        let (a, b) = tokio::join!(s.post(&cancel_path, &t, &empty), s.post(&expire_path, &t, &empty));
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "round {round}: {} / {}", a.text, b.text);
        let loser = if a.status == 409 { &a } else { &b };
        assert_eq!(loser.json()["code"], "invalid_state_transition");
        let events = s.get(&format!("/v1/payment_sessions/{id}/events"), &t).await.json();
        assert_eq!(types(&events).len(), 3, "created + updated + one terminal event");
    }
}

#[tokio::test]
async fn test_clock_expires_sessions_on_read() {
    let s = Server::start().await;
    let t = s.token().await;
    let now = s.get("/v1/test_clock", &t).await.json()["now"].as_str().unwrap().to_string();
    let now = chrono::DateTime::parse_from_rfc3339(&now).unwrap();
    let mut b = session_body("exp-1");
    b["expires_at"] = json!((now + chrono::Duration::seconds(61)).to_rfc3339());
    let id = s.create(&t, &b).await.json()["id"].as_str().unwrap().to_string();
    let path = format!("/v1/payment_sessions/{id}");

    let adv = s.advance_clock(&t, 120).await;
    assert_eq!(adv.status, 200);
    assert_eq!(adv.json()["offset_seconds"], 120);
    let got = s.get(&path, &t).await.json();
    assert_eq!(got["status"], "expired");
    assert_eq!(got["allowed_actions"], json!([]));
    let listed = s.get("/v1/payment_sessions?status=expired", &t).await.json();
    assert_eq!(listed["data"][0]["id"], id.as_str());
    assert_eq!(s.get("/v1/payment_sessions?status=open", &t).await.json()["data"], json!([]));

    let cancel = s.post(&format!("{path}/cancel"), &t, &json!({})).await;
    assert_eq!((cancel.status.as_u16(), cancel.json()["code"].as_str()), (409, Some("invalid_state_transition")));
    // An explicit expire writes down what readers already see, with its event — unless the
    // server's sweeper already did; either way there is exactly one expiry.
    let expire = s.post(&format!("{path}/expire"), &t, &json!({})).await;
    assert!(expire.status == 200 || expire.json()["code"] == "invalid_state_transition", "{}", expire.text);
    let events = s.get(&format!("{path}/events"), &t).await.json();
    assert_eq!(types(&events).iter().filter(|t| *t == "payment_session.expired").count(), 1);

    let bad = s.advance_clock(&t, 0).await;
    assert_eq!(bad.status, 422);
    assert_eq!(s.post("/v1/test_clock/advance", &t, &json!({"seconds": 5, "x": 1})).await.status, 422);
}

#[tokio::test]
async fn state_survives_restart() {
    let mut s = Server::start().await;
    let t = s.token().await;
    let id = s.create(&t, &session_body("persist")).await.json()["id"].as_str().unwrap().to_string();
    s.post(&format!("/v1/payment_sessions/{id}/cancel"), &t, &json!({})).await;
    s.advance_clock(&t, 30).await;
    let secret_before = s.client_secret.clone();

    s.restart().await;
    assert_eq!(s.client_secret, secret_before, "demo credentials are stable across restarts");
    let t = s.token().await;
    let got = s.get(&format!("/v1/payment_sessions/{id}"), &t).await.json();
    assert_eq!(got["status"], "cancelled");
    assert_eq!(s.get(&format!("/v1/payment_sessions/{id}/events"), &t).await.json()["data"].as_array().unwrap().len(), 3);
    assert_eq!(s.get("/v1/test_clock", &t).await.json()["offset_seconds"], 30);
    assert_eq!(s.create(&t, &session_body("persist")).await.status, 409);
}

async fn event_types(s: &Server, t: &str, id: &str) -> Vec<String> {
    types(&s.get(&format!("/v1/payment_sessions/{id}/events"), t).await.json())
}

#[tokio::test]
async fn local_sweeper_expires_under_the_test_clock() {
    let s = Server::start().await;
    let t = s.token().await;
    let id = s.create(&t, &session_body("sweep-1")).await.json()["id"].as_str().unwrap().to_string();
    let mut strict = session_body("sweep-2");
    strict["expiration_mode"] = json!("strict");
    let id2 = s.create(&t, &strict).await.json()["id"].as_str().unwrap().to_string();
    // One second short of expiry: real time carries the clock over `expires_at`, and the
    // server's own sweeper (one pass a second) writes the expiry; nothing here calls it.
    s.advance_clock(&t, 15 * 60 - 1).await;
    let mut seen = Vec::new();
    for _ in 0..60 {
        seen = event_types(&s, &t, &id).await;
        if seen.contains(&"payment_session.expired".to_string()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, ["payment_session.created", "payment_session.updated", "payment_session.expired"]);
    let session = s.get(&format!("/v1/payment_sessions/{id}"), &t).await.json();
    let events = s.get(&format!("/v1/payment_sessions/{id}/events"), &t).await.json();
    let at = |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    let delay = at(&events["data"][2]["created_at"]) - at(&session["expires_at"]);
    println!("expires_at → payment_session.expired, local sweeper: {} ms", delay.num_milliseconds());
    assert!(delay >= chrono::Duration::zero(), "never before expires_at");
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(event_types(&s, &t, &id).await.len(), 3, "later sweeps write nothing more");
    assert!(event_types(&s, &t, &id2).await.contains(&"payment_session.expired".to_string()));
    let listed = s.get("/v1/payment_sessions?status=expired", &t).await.json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn concurrent_expiry_triggers_write_once() {
    let s = Server::start().await;
    let t = s.token().await;
    let deps = s.running.as_ref().unwrap().local.app.core.clone();
    let principal_merchant = s.running.as_ref().unwrap().demo.merchant_id.clone();
    for round in 0..5 {
        let id = s.create(&t, &session_body(&format!("race-exp-{round}"))).await.json()["id"].as_str().unwrap().to_string();
        s.advance_clock(&t, 15 * 60 + 1).await;
        // The demo merchant's clock (advancing it moved no one else's).
        let deps = deps.at_merchant(&principal_merchant).await.unwrap();
        let triggers = (0..6).map(|_| {
            let (deps, m, id) = (deps.clone(), principal_merchant.clone(), id.clone());
            tokio::spawn(async move { paysession_app::expiry::expire_if_due(&deps, &m, &id).await.unwrap() })
        });
        let wrote: usize = futures::future::join_all(triggers).await.into_iter().map(|r| usize::from(r.unwrap())).sum();
        let types = event_types(&s, &t, &id).await;
        let expired = types.iter().filter(|t| *t == "payment_session.expired").count();
        assert_eq!(expired, 1, "round {round}: {types:?}");
        assert!(wrote <= 1, "round {round}: {wrote} triggers claimed the write");
    }
}

/// Repeated advances stop at the bound with a clear 422 (they used to overflow and abort the
/// process, and again on every restart because the offset was saved); the server restarts.
#[tokio::test]
async fn the_test_clock_is_bounded_and_survives_a_restart() {
    let mut s = Server::start().await;
    let t = s.token().await;
    let ten_years = 10 * 366 * 86_400;
    for _ in 0..10 {
        assert_eq!(s.advance_clock(&t, ten_years).await.status, 200);
    }
    let r = s.advance_clock(&t, ten_years).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.error_fields(), [("seconds".to_string(), "out_of_range".to_string())]);
    assert!(r.json()["errors"][0]["message"].as_str().unwrap().contains("at most 36600 days ahead"), "{}", r.text);
    let before = s.get("/v1/test_clock", &t).await.json()["offset_seconds"].clone();
    s.restart().await;
    let t = s.token().await;
    assert_eq!(s.get("/v1/test_clock", &t).await.json()["offset_seconds"], before, "the saved offset is restored");
    assert_eq!(s.create(&t, &paysession_tests::session_body("far-future")).await.status, 201, "and the server works");
}

/// Concurrent advances all count: 20 × 31 days move the clock exactly 620 days (each
/// used to add to the offset it had read and overwrite the others').
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_test_clock_advances_sum_exactly() {
    let s = std::sync::Arc::new(Server::start().await);
    let t = s.token().await;
    let month = 31 * 86_400;
    let advances = (0..20).map(|_| {
        let (s, t) = (s.clone(), t.clone());
        tokio::spawn(async move { s.advance_clock(&t, month).await.status })
    });
    for status in futures::future::join_all(advances).await {
        assert_eq!(status.unwrap(), 200);
    }
    assert_eq!(s.get("/v1/test_clock", &t).await.json()["offset_seconds"], 20 * month);
}

/// Each merchant has its own test clock: merchant B's advance moves B's sessions, sweeps and
/// clock view, and nothing of merchant A's.
#[tokio::test]
async fn test_clocks_are_per_merchant() {
    let s = Server::start().await;
    let a = s.token().await;
    let (b_id, b_secret) = s.other_merchant().await;
    let b = s.token_for(&b_id, &b_secret, None).await;
    let a_session = s.create(&a, &session_body("clock-a")).await.json()["id"].as_str().unwrap().to_string();
    let b_session = s.create(&b, &session_body("clock-b")).await.json()["id"].as_str().unwrap().to_string();

    assert_eq!(s.advance_clock(&b, 3600).await.status, 200);
    assert_eq!(s.get("/v1/test_clock", &b).await.json()["offset_seconds"], 3600);
    assert_eq!(s.get("/v1/test_clock", &a).await.json()["offset_seconds"], 0, "A's clock did not move");
    assert_eq!(s.get(&format!("/v1/payment_sessions/{b_session}"), &b).await.json()["status"], "expired");
    assert_eq!(s.get(&format!("/v1/payment_sessions/{a_session}"), &a).await.json()["status"], "open");
    // The sweeper writes B's expiry on B's clock, and leaves A's session alone.
    let mut b_types = Vec::new();
    for _ in 0..40 {
        b_types = event_types(&s, &b, &b_session).await;
        if b_types.contains(&"payment_session.expired".to_string()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(b_types.contains(&"payment_session.expired".to_string()), "{b_types:?}");
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert_eq!(event_types(&s, &a, &a_session).await, ["payment_session.created"], "A's session never expired");
    assert_eq!(s.get(&format!("/v1/payment_sessions/{a_session}"), &a).await.json()["status"], "open");
}
