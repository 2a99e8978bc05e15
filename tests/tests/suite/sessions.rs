//! Session endpoints over HTTP: create, get, list, validation, errors, tenancy.

use paysession_tests::{Server, session_body};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn create_then_get() {
    let s = Server::start().await;
    let t = s.token().await;
    let body = json!({
        "amount": 1050, "currency": "EUR", "customer_id": "cus_1", "reference": "order-1",
        "customer": {"name": "Ada", "email": "ada@example.com", "country": "DE"},
        "items": [{"name": "Rent", "quantity": 1, "unit_amount": 1050, "type": "property"}],
        "recipients": [{"name": "Landlord", "amount": 1050, "account": {"iban": "DE89370400440532013000"}}],
        "allowed_domains": ["https://shop.example"], "metadata": {"order": "1"}, "state": "xyz",
        "success_url": "https://shop.example/success?x=1", "statement_descriptor": "DEMO SHOP"
    });
    let r = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&body), &[("x-request-id", "my-req-1")]).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("x-request-id"), Some("my-req-1"));
    let created = r.json();
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("ps_"));
    assert_eq!(created["object"], "payment_session");
    assert_eq!(created["status"], "open");
    assert_eq!(created["livemode"], false);
    assert_eq!(created["attempts_remaining"], 5);
    assert_eq!(created["allowed_actions"], json!(["cancel", "expire"]));
    for internal in ["merchant_id", "version", "page_token_hash"] {
        assert!(created.get(internal).is_none(), "{internal} leaked");
    }
    let url = created["url"].as_str().unwrap();
    // The token is the session's locator then a 256-bit random secret (API.md: unguessable,
    // not derivable from `id`).
    let token = url.rsplit('/').next().unwrap();
    let [secret, located, merchant] = token.rsplitn(3, '.').collect::<Vec<_>>()[..] else { panic!("token shape: {url}") };
    assert!(located == id && merchant.starts_with("mer_"), "{url}");
    assert!(secret.len() >= 43 && !secret.contains(&id[3..]), "url must be unguessable and not derived from id: {url}");

    let got = s.get(&format!("/v1/payment_sessions/{id}"), &t).await;
    assert_eq!(got.status, 200);
    assert!(got.header("x-request-id").is_some());
    // A read adds what the session's payments refunded (the create's answer cannot know).
    let mut got = got.json();
    assert_eq!(got.as_object_mut().unwrap().remove("amount_refunded"), Some(json!(0)));
    assert_eq!(got, created);
}

#[tokio::test]
async fn api_mode_has_no_url() {
    let s = Server::start().await;
    let t = s.token().await;
    let mut b = session_body("api-1");
    b["mode"] = json!("api");
    let r = s.create(&t, &b).await;
    assert_eq!(r.status, 201);
    assert!(r.json()["url"].is_null());
}

#[tokio::test]
async fn validation_reports_every_field() {
    let s = Server::start().await;
    let t = s.token().await;
    let r = s
        .create(
            &t,
            &json!({"amount": 10.5, "currency": "eur", "reference": "bad ref", "amount_limit": 1,
            "items": [{"name": "", "quantity": 0, "unit_amount": 1, "type": "x"}]}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let p = r.json();
    assert_eq!(p["code"], "validation_failed");
    assert_eq!(p["status"], 422);
    let fields = r.error_fields();
    for (f, c) in [
        ("amount", "invalid_type"),
        ("currency", "invalid_currency"),
        ("customer_id", "required"),
        ("reference", "invalid_format"),
        ("amount_limit", "unknown_field"),
        ("items[0].name", "too_short"),
        ("items[0].quantity", "must_be_positive"),
        ("items[0].type", "invalid_value"),
    ] {
        assert!(fields.contains(&(f.to_string(), c.to_string())), "{f}/{c} missing from {fields:?}");
    }
    let mut only_unknown = session_body("u1");
    only_unknown["amount_limt"] = json!(5);
    let r = s.create(&t, &only_unknown).await;
    assert_eq!((r.status.as_u16(), r.json()["code"].as_str()), (422, Some("unknown_field")));
}

#[tokio::test]
async fn transport_errors() {
    let s = Server::start().await;
    let t = s.token().await;
    let raw = |ct: &'static str, body: Vec<u8>| {
        s.http.post(s.url("/v1/payment_sessions")).bearer_auth(&t).header("content-type", ct).body(body).send()
    };
    let r = raw("application/json", b"{\"amount\": ".to_vec()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "malformed_request");
    let r = raw("text/plain", session_body("x").to_string().into_bytes()).await.unwrap();
    assert_eq!(r.status(), 415);
    let r = raw("application/json", vec![b' '; 64 * 1024 + 1]).await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "payload_too_large");
    let r = s.call(Method::DELETE, "/v1/payment_sessions/ps_x", &t, None, &[]).await;
    assert_eq!(r.status, 405);
    assert!(r.header("allow").unwrap().contains("GET"));
    assert_eq!(s.get("/v1/nothing", &t).await.status, 404);
    let r = s.get("/v1/payment_sessions/ps_doesnotexist", &t).await;
    assert_eq!((r.status.as_u16(), r.json()["code"].as_str()), (404, Some("not_found")));
    let r = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&session_body("k")), &[("idempotency-key", "")]).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn duplicate_reference_is_409_even_concurrently() {
    let s = Server::start().await;
    let t = s.token().await;
    assert_eq!(s.create(&t, &session_body("dup-1")).await.status, 201);
    let r = s.create(&t, &session_body("dup-1")).await;
    assert_eq!((r.status.as_u16(), r.json()["code"].as_str()), (409, Some("duplicate_reference")));
    // Same reference for another customer is fine.
    let mut other = session_body("dup-1");
    other["customer_id"] = json!("cus_2");
    assert_eq!(s.create(&t, &other).await.status, 201);

    let race_body = session_body("race-1");
    let attempts = (0..20).map(|_| s.create(&t, &race_body));
    let results = futures::future::join_all(attempts).await;
    let created = results.iter().filter(|r| r.status == 201).count();
    let conflicts = results.iter().filter(|r| r.status == 409 && r.json()["code"] == "duplicate_reference").count();
    assert_eq!((created, conflicts), (1, 19));
    let list = s.get("/v1/payment_sessions?reference=race-1", &t).await.json();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let s = Server::start().await;
    let t = s.token().await;
    let id = s.create(&t, &session_body("mine")).await.json()["id"].as_str().unwrap().to_string();
    let (cid, secret) = s.other_merchant().await;
    let other = s.token_for(&cid, &secret, None).await;
    assert_eq!(s.get(&format!("/v1/payment_sessions/{id}"), &other).await.status, 404);
    assert_eq!(s.get(&format!("/v1/payment_sessions/{id}/events"), &other).await.status, 404);
    assert_eq!(s.post(&format!("/v1/payment_sessions/{id}/cancel"), &other, &json!({})).await.status, 404);
    assert_eq!(s.get("/v1/payment_sessions", &other).await.json()["data"], json!([]));
    // Same reference and customer under another merchant is not a duplicate.
    assert_eq!(s.create(&other, &session_body("mine")).await.status, 201);
    // The other merchant's attempt left ours untouched.
    assert_eq!(s.get(&format!("/v1/payment_sessions/{id}"), &t).await.json()["status"], "open");
}

#[tokio::test]
async fn list_paginates_newest_first_and_filters() {
    let s = Server::start().await;
    let t = s.token().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut b = session_body(&format!("list-{i}"));
        if i % 2 == 0 {
            b["customer_id"] = json!("cus_even");
        }
        ids.push(s.create(&t, &b).await.json()["id"].as_str().unwrap().to_string());
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut path = "/v1/payment_sessions?limit=2".to_string();
    loop {
        let page = s.get(&path, &t).await.json();
        assert_eq!(page["object"], "list");
        for d in page["data"].as_array().unwrap() {
            seen.push(d["id"].as_str().unwrap().to_string());
        }
        if page["has_more"] == false {
            assert!(page["next_cursor"].is_null());
            break;
        }
        path = format!("/v1/payment_sessions?limit=2&starting_after={}", page["next_cursor"].as_str().unwrap());
    }
    assert_eq!(seen, ids);

    let by_id = s.get(&format!("/v1/payment_sessions?limit=10&starting_after={}", ids[1]), &t).await.json();
    assert_eq!(by_id["data"].as_array().unwrap().len(), 3);

    let evens = s.get("/v1/payment_sessions?customer_id=cus_even", &t).await.json();
    assert_eq!(evens["data"].as_array().unwrap().len(), 3);
    let one = s.get("/v1/payment_sessions?reference=list-3&customer_id=cus_1", &t).await.json();
    assert_eq!(one["data"][0]["reference"], "list-3");
    s.post(&format!("/v1/payment_sessions/{}/cancel", ids[0]), &t, &json!({})).await;
    let cancelled = s.get("/v1/payment_sessions?status=cancelled", &t).await.json();
    assert_eq!(cancelled["data"].as_array().unwrap().len(), 1);
    let future = s.get("/v1/payment_sessions?created_after=2100-01-01T00:00:00Z", &t).await.json();
    assert_eq!(future["data"], json!([]));

    let r = s.get("/v1/payment_sessions?limit=0&status=nope&colour=red&starting_after=zzz", &t).await;
    assert_eq!(r.status, 422);
    let fields: Vec<String> = r.error_fields().into_iter().map(|(f, _)| f).collect();
    for f in ["limit", "status", "colour", "starting_after"] {
        assert!(fields.contains(&f.to_string()), "{f} missing from {fields:?}");
    }
}

#[tokio::test]
async fn health_and_request_ids() {
    let s = Server::start().await;
    let r = s.http.get(s.url("/health")).header("x-request-id", "bad id with spaces").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(rid.len(), 36, "invalid caller ids are replaced by a UUID");
}

/// Input edges: a key named twice, control characters, and errors that echo huge input.
#[tokio::test]
async fn duplicate_keys_control_characters_and_echo_limits() {
    let s = Server::start().await;
    let t = s.token().await;
    let raw = |body: String| {
        let (http, url, t) = (s.http.clone(), s.url("/v1/payment_sessions"), t.clone());
        async move {
            let r = http.post(url).bearer_auth(t).header("content-type", "application/json").body(body).send().await.unwrap();
            (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let valid = paysession_tests::session_body("edge-1").to_string();
    let doubled = format!("{{\"amount\":2000,{}", &valid[1..]);
    let (status, body) = raw(doubled).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("malformed_request")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("duplicate key \"amount\""), "{body}");
    assert!(s.get("/v1/payment_sessions?reference=edge-1", &t).await.json()["data"].as_array().unwrap().is_empty(), "nothing created");

    let mut body = paysession_tests::session_body("edge\u{0}2");
    body["metadata"] = json!({"note": "red \u{1b}[31m"});
    body["customer"] = json!({"name": "Ada\u{7f}"});
    let r = s.create(&t, &body).await;
    assert_eq!(r.status, 422);
    let mut fields = r.error_fields();
    fields.sort();
    let expected = ["customer.name", "metadata.note", "reference"].map(|f| (f.to_string(), "invalid_value".to_string()));
    assert_eq!(fields, expected);

    // A 60 KB query string of unknown parameters: a bounded error, not an echo of it all.
    let query: String = (0..3_000).map(|i| format!("p{i:05}=xxxxxxxxxx&")).collect();
    let r = s.get(&format!("/v1/payment_sessions?{query}"), &t).await;
    assert_eq!(r.status, 422);
    assert!(r.text.len() < 16 * 1024, "error body of {} bytes for a {}-byte query", r.text.len(), query.len());
    let long_id = "x".repeat(20_000);
    let r = s.get(&format!("/v1/payment_sessions/ps_{long_id}"), &t).await;
    assert_eq!(r.status, 404);
    assert!(r.text.len() < 2 * 1024, "{} bytes", r.text.len());
}
