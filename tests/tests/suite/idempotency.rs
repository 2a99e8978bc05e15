//! Idempotency-Key: replay byte for byte, reuse with another body, in-flight conflicts,
//! scoping per merchant.

use paysession_tests::{Server, session_body};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn same_key_same_body_replays_byte_for_byte() {
    let s = Server::start().await;
    let t = s.token().await;
    let body = session_body("idem-1");
    let first = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&body), &[("idempotency-key", "key-1")]).await;
    assert_eq!(first.status, 201);
    assert!(first.header("idempotent-replayed").is_none());
    let again = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&body), &[("idempotency-key", "key-1")]).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.text, first.text);
    let list = s.get("/v1/payment_sessions?reference=idem-1", &t).await.json();
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "the replay created nothing");

    let other = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&session_body("idem-2")), &[("idempotency-key", "key-1")]).await;
    assert_eq!((other.status.as_u16(), other.json()["code"].as_str()), (422, Some("idempotency_key_reuse")));
    // The same key on another endpoint is a different request, too.
    let id = first.json()["id"].as_str().unwrap().to_string();
    let cancel =
        s.call(Method::POST, &format!("/v1/payment_sessions/{id}/cancel"), &t, Some(&json!({})), &[("idempotency-key", "key-1")]).await;
    assert_eq!(cancel.status, 422);
}

#[tokio::test]
async fn conflicts_are_replayed_and_validation_is_not_recorded() {
    let s = Server::start().await;
    let t = s.token().await;
    s.create(&t, &session_body("taken")).await;
    let dup = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&session_body("taken")), &[("idempotency-key", "k-dup")]).await;
    assert_eq!(dup.status, 409);
    let dup2 = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&session_body("taken")), &[("idempotency-key", "k-dup")]).await;
    assert_eq!((dup2.status.as_u16(), dup2.header("idempotent-replayed")), (409, Some("true")));
    assert_eq!(dup2.text, dup.text);

    // A body that fails validation does not consume the key: fixing it and retrying works.
    let mut bad = session_body("fixed");
    bad["amount"] = json!(0);
    let r = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&bad), &[("idempotency-key", "k-fix")]).await;
    assert_eq!(r.status, 422);
    let r = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&session_body("fixed")), &[("idempotency-key", "k-fix")]).await;
    assert_eq!(r.status, 201);
}

/// A retry whose body no longer validates only because time moved on (an `expires_at` near
/// the 60 s minimum) is answered with the stored response, not `expires_at: too_soon`.
#[tokio::test]
async fn a_replay_wins_over_revalidation() {
    let s = Server::start().await;
    let t = s.token().await;
    let mut body = session_body("idem-late");
    let clock = s.get("/v1/test_clock", &t).await.json();
    let now = chrono::DateTime::parse_from_rfc3339(clock["now"].as_str().unwrap()).unwrap();
    body["expires_at"] = json!((now + chrono::Duration::seconds(63)).to_rfc3339());
    let first = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&body), &[("idempotency-key", "k-late")]).await;
    assert_eq!(first.status, 201, "{}", first.text);
    s.advance_clock(&t, 5).await;
    let fresh = s.create(&t, &body).await;
    assert_eq!(fresh.error_fields(), [("expires_at".to_string(), "too_soon".to_string())], "the body alone no longer validates");
    let again = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&body), &[("idempotency-key", "k-late")]).await;
    assert_eq!((again.status.as_u16(), again.header("idempotent-replayed")), (201, Some("true")), "{}", again.text);
    assert_eq!(again.text, first.text);
    // Nothing was stored for a key whose request never ran: the error stands, the key stays free.
    let late = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&body), &[("idempotency-key", "k-never")]).await;
    assert_eq!(late.status, 422);
    body["expires_at"] = json!((now + chrono::Duration::seconds(3600)).to_rfc3339());
    let fixed = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&body), &[("idempotency-key", "k-never")]).await;
    assert_eq!(fixed.status, 409, "the key ran: the reference is taken by k-late's session: {}", fixed.text);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_session() {
    let s = Server::start().await;
    let t = s.token().await;
    let body = session_body("idem-race");
    let calls = (0..10).map(|_| s.call(Method::POST, "/v1/payment_sessions", &t, Some(&body), &[("idempotency-key", "race-key")]));
    let results = futures::future::join_all(calls).await;
    let fresh = results.iter().filter(|r| r.status == 201 && r.header("idempotent-replayed").is_none()).count();
    assert_eq!(fresh, 1);
    for r in results.iter().filter(|r| !(r.status == 201 && r.header("idempotent-replayed").is_none())) {
        let replayed = r.status == 201 && r.header("idempotent-replayed") == Some("true");
        let in_use = r.status == 409 && r.json()["code"] == "idempotency_key_in_use";
        assert!(replayed || in_use, "unexpected {} {}", r.status, r.text);
    }
    let list = s.get("/v1/payment_sessions?reference=idem-race", &t).await.json();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn keys_are_scoped_per_merchant() {
    let s = Server::start().await;
    let t = s.token().await;
    let (cid, secret) = s.other_merchant().await;
    let other = s.token_for(&cid, &secret, None).await;
    let a = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&session_body("a")), &[("idempotency-key", "shared")]).await;
    let b = s.call(Method::POST, "/v1/payment_sessions", &other, Some(&session_body("b")), &[("idempotency-key", "shared")]).await;
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (201, 201));
    assert!(b.header("idempotent-replayed").is_none());
    assert_ne!(a.json()["id"], b.json()["id"]);
}

#[tokio::test]
async fn keys_expire_after_24_hours_of_business_time() {
    let s = Server::start().await;
    let t = s.token().await;
    let body = session_body("idem-ttl");
    let first = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&body), &[("idempotency-key", "ttl")]).await;
    assert_eq!(first.status, 201);
    s.advance_clock(&t, 24 * 3600 + 1).await;
    let later = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&body), &[("idempotency-key", "ttl")]).await;
    // Past retention the key is new again; the reference guard still prevents a duplicate.
    assert_eq!((later.status.as_u16(), later.json()["code"].as_str()), (409, Some("duplicate_reference")));
}
