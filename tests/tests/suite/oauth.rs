//! POST /oauth/token (RFC 6749 §4.4, errors §5.2) and bearer-token checks (RFC 6750).

use paysession_tests::{Server, session_body};
use serde_json::Value;

#[tokio::test]
async fn client_credentials_with_basic_and_form() {
    let s = Server::start().await;
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth(&s.client_id, Some(&s.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "sessions:read sessions:write mandates:write webhooks:manage keys:manage refunds:write");

    let r = s
        .http
        .post(s.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &s.client_id),
            ("client_secret", &s.client_secret),
            ("scope", "sessions:read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["scope"], "sessions:read");
}

#[tokio::test]
async fn token_errors_follow_rfc6749() {
    let s = Server::start().await;
    let post = |form: Vec<(&'static str, String)>, basic: Option<(String, String)>| {
        let mut rb = s.http.post(s.url("/oauth/token")).form(&form);
        if let Some((id, secret)) = basic {
            rb = rb.basic_auth(id, Some(secret));
        }
        async move {
            let r = rb.send().await.unwrap();
            let status = r.status().as_u16();
            let www = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
            (status, www, r.json::<Value>().await.unwrap())
        }
    };
    let creds = || Some((s.client_id.clone(), s.client_secret.clone()));
    let grant = || vec![("grant_type", "client_credentials".to_string())];

    let (st, www, b) = post(grant(), Some((s.client_id.clone(), "wrong".into()))).await;
    assert_eq!((st, b["error"].as_str()), (401, Some("invalid_client")));
    assert!(www.unwrap().starts_with("Basic"));
    let (st, _, b) = post(grant(), Some(("cid_nobody".into(), "x".into()))).await;
    assert_eq!((st, b["error"].as_str()), (401, Some("invalid_client")));
    let (st, _, b) = post(grant(), None).await;
    assert_eq!((st, b["error"].as_str()), (401, Some("invalid_client")));
    let (st, _, b) = post(vec![("grant_type", "password".into())], creds()).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("unsupported_grant_type")));
    let (st, _, b) = post(vec![], creds()).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_request")));
    let (st, _, b) = post(vec![("grant_type", "client_credentials".into()), ("scope", "admin".into())], creds()).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_scope")));
    let (st, _, b) = post(vec![("grant_type", "client_credentials".into()), ("client_id", s.client_id.clone())], creds()).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_request")), "two client authentication methods");

    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth(&s.client_id, Some(&s.client_secret))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "JSON instead of a form");
}

#[tokio::test]
async fn bearer_errors_follow_rfc6750() {
    let s = Server::start().await;
    let r = s.http.get(s.url("/v1/payment_sessions")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));

    let r = s.get("/v1/payment_sessions", "not.a.token").await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().contains("invalid_token"));
    assert_eq!(r.json()["code"], "invalid_token");

    // A token signed by another key (a forged one) is refused.
    let good = s.token().await;
    let mut parts: Vec<&str> = good.split('.').collect();
    parts[2] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(s.get("/v1/payment_sessions", &parts.join(".")).await.status, 401);

    let read_only = s.token_for(&s.client_id, &s.client_secret, Some("sessions:read")).await;
    let r = s.create(&read_only, &session_body("r1")).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "insufficient_scope");
    assert!(r.header("www-authenticate").unwrap().contains("insufficient_scope"));
    assert_eq!(s.get("/v1/payment_sessions", &read_only).await.status, 200);
}

#[tokio::test]
async fn rotated_secret_stops_old_one() {
    let s = Server::start().await;
    let (id, secret) = s.other_merchant().await;
    s.token_for(&id, &secret, None).await;
    let core = &s.running.as_ref().unwrap().local.app.core;
    let new = paysession_app::merchants::rotate_secret(core.store.as_ref(), &core.keys, &id, None).await.unwrap().unwrap();
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.token_for(&id, new.expose(), None).await;
}

#[tokio::test]
async fn repeated_parameters_are_refused() {
    let s = Server::start().await;
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth(&s.client_id, Some(&s.client_secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=sessions:read&scope=sessions:write")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"], "invalid_request");
    assert!(b["error_description"].as_str().unwrap().contains("scope"));
}

async fn token_status(s: &Server, id: &str, secret: &str) -> (u16, Option<String>) {
    let r =
        s.http.post(s.url("/oauth/token")).basic_auth(id, Some(secret)).form(&[("grant_type", "client_credentials")]).send().await.unwrap();
    (r.status().as_u16(), r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string()))
}

/// Sleeps into a limiter window with at least 40 s left (windows are whole minutes), so
/// a burst of failures falls in one window.
async fn fresh_window() {
    let into = chrono::Utc::now().timestamp_millis().rem_euclid(60_000);
    if into > 20_000 {
        tokio::time::sleep(std::time::Duration::from_millis((60_000 - into + 50) as u64)).await;
    }
}

/// Failed client authentication is counted per (client id, address), 10 a minute, and
/// per address, 30 a minute; past either, failures get 429 with Retry-After. A correct
/// secret is never refused, whoever failed before it.
#[tokio::test]
async fn failed_client_authentication_is_limited_without_locking_anyone_out() {
    let s = Server::start().await;
    fresh_window().await;
    for i in 0..10 {
        assert_eq!(token_status(&s, &s.client_id, "sk_wrong").await.0, 401, "failure {i}");
    }
    let (status, retry_after) = token_status(&s, &s.client_id, "sk_wrong").await;
    assert_eq!(status, 429);
    let wait: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(token_status(&s, &s.client_id, &s.client_secret).await.0, 200, "the right secret after 10 failures of others");
    // 30 failures from one address in all: then every failure from it is 429, and the
    // correct secret of another client behind that address still gets its token.
    let (other_id, other_secret) = s.other_merchant().await;
    let mut statuses = Vec::new();
    for i in 0..25 {
        statuses.push(token_status(&s, &format!("cid_guess_{i}"), "sk_wrong").await.0);
    }
    assert_eq!(statuses.iter().filter(|&&c| c == 401).count(), 20, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&c| c == 429).count(), 5, "{statuses:?}");
    assert_eq!(token_status(&s, &other_id, &other_secret).await.0, 200, "another client's right secret");
    assert_eq!(token_status(&s, &other_id, "sk_wrong").await.0, 429, "its failures are held by the address");
    // Waiting exactly the advertised Retry-After is enough.
    let (status, retry_after) = token_status(&s, &s.client_id, "sk_wrong").await;
    assert_eq!(status, 429);
    tokio::time::sleep(std::time::Duration::from_secs(retry_after.unwrap().parse().unwrap())).await;
    assert_eq!(token_status(&s, &s.client_id, "sk_wrong").await.0, 401, "counted again after the advertised wait");
}

/// Secrets are stored as keyed hashes; an Argon2 record of an earlier version still works
/// and is rewritten in the keyed form on its first use.
#[tokio::test]
async fn legacy_argon2_secrets_migrate_on_use() {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let s = Server::start().await;
    let (id, secret) = s.other_merchant().await;
    let core = &s.running.as_ref().unwrap().local.app.core;
    let mut client = core.store.get_client(&id).await.unwrap().unwrap();
    assert!(client.secret_hash.starts_with("hmac-sha256$"), "{}", client.secret_hash);
    client.secret_hash = argon2::Argon2::default().hash_password(secret.as_bytes(), &SaltString::generate(&mut OsRng)).unwrap().to_string();
    core.store.put_client(&client).await.unwrap();
    assert_eq!(token_status(&s, &id, "sk_wrong").await.0, 401);
    assert!(core.store.get_client(&id).await.unwrap().unwrap().secret_hash.starts_with("$argon2id$"), "a failure rewrites nothing");
    assert_eq!(token_status(&s, &id, &secret).await.0, 200);
    let migrated = core.store.get_client(&id).await.unwrap().unwrap().secret_hash;
    assert!(migrated.starts_with("hmac-sha256$"), "{migrated}");
    assert_eq!(token_status(&s, &id, &secret).await.0, 200, "and it keeps working");
}
