//! The mandate API over HTTP: read, list and filter; suspend, resume, revoke with their
//! state rules; a customer's saved methods, and detaching one revokes its mandates.

use paysession_tests::Server;
use paysession_tests::page::Customer;
use serde_json::{Value, json};

const SHOP: &str = "https://shop.example";

/// A paid first_in_series session of `customer`: (mandate id, payment method id).
async fn first_payment(s: &Server, t: &str, customer: &str) -> (String, String) {
    let body = json!({
        "amount": 1050, "currency": "EUR", "customer_id": customer, "reference": paysession_app::ids::new_id("r"),
        "customer": {"email": "ada@example.com"}, "allowed_domains": [SHOP],
        "session_type": "first_in_series", "mandate": {"type": "on_demand", "max_amount": 5000}
    });
    let r = s.create(t, &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let sess = r.json();
    let mut c = Customer::new(s, &sess);
    c.open_from(SHOP).await;
    assert_eq!(c.pay_card("4242424242424242").await.status, 303);
    let api = s.get(&format!("/v1/payment_sessions/{}", sess["id"].as_str().unwrap()), t).await.json();
    (api["mandate_id"].as_str().unwrap().to_string(), api["payment_method_id"].as_str().unwrap().to_string())
}

fn ids(list: &Value) -> Vec<String> {
    list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn mandate_api_reads_acts_and_detaches() {
    let s = Server::start().await;
    let t = s.token().await;
    let (md_a, pm_a) = first_payment(&s, &t, "cus_m1").await;
    let (md_b, _) = first_payment(&s, &t, "cus_m2").await;

    let m = s.get(&format!("/v1/mandates/{md_a}"), &t).await;
    assert_eq!(m.status, 200, "{}", m.text);
    let m = m.json();
    assert_eq!((m["object"].as_str(), m["status"].as_str(), m["type"].as_str()), (Some("mandate"), Some("active"), Some("on_demand")));
    assert_eq!(m["payment_method_id"], pm_a.as_str());
    assert_eq!(m["max_amount"], 5000);
    assert_eq!(m["customer_acceptance"]["type"], "online");
    assert_eq!(s.get("/v1/mandates/md_nope", &t).await.status, 404);

    assert_eq!(ids(&s.get("/v1/mandates", &t).await.json()), [md_b.clone(), md_a.clone()], "newest first");
    assert_eq!(ids(&s.get("/v1/mandates?customer_id=cus_m1", &t).await.json()), vec![md_a.clone()]);
    let page = s.get("/v1/mandates?limit=1", &t).await.json();
    assert_eq!((ids(&page), page["has_more"].as_bool()), (vec![md_b.clone()], Some(true)));
    let next = s.get(&format!("/v1/mandates?limit=1&starting_after={md_b}"), &t).await.json();
    assert_eq!(ids(&next), vec![md_a.clone()]);
    let bad = s.get("/v1/mandates?status=paused&limit=0", &t).await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.error_fields().len(), 2, "{}", bad.text);

    let suspended = s.post(&format!("/v1/mandates/{md_a}/suspend"), &t, &json!({})).await;
    assert_eq!((suspended.status.as_u16(), suspended.json()["status"].as_str()), (200, Some("suspended")));
    assert_eq!(s.post(&format!("/v1/mandates/{md_a}/suspend"), &t, &json!({})).await.status, 409);
    assert_eq!(ids(&s.get("/v1/mandates?status=suspended", &t).await.json()), vec![md_a.clone()]);
    let events = s.get("/v1/events?type=mandate.suspended", &t).await.json();
    assert_eq!(events["data"][0]["data"]["object"]["id"], md_a.as_str(), "{events}");
    assert_eq!(events["data"][0]["data"]["previous_status"], "active");
    let resumed = s.post(&format!("/v1/mandates/{md_a}/resume"), &t, &json!({})).await;
    assert_eq!(resumed.json()["status"], "active");
    assert_eq!(s.post(&format!("/v1/mandates/{md_a}/resume"), &t, &json!({"extra": 1})).await.status, 422);

    // Reads need sessions:read; changes need mandates:write.
    let reader = s.token_for(&s.client_id, &s.client_secret, Some("sessions:read")).await;
    assert_eq!(s.get(&format!("/v1/mandates/{md_a}"), &reader).await.status, 200);
    assert_eq!(s.post(&format!("/v1/mandates/{md_a}/revoke"), &reader, &json!({})).await.status, 403);

    let methods = s.get("/v1/customers/cus_m1/payment_methods", &t).await.json();
    assert_eq!(ids(&methods), vec![pm_a.clone()]);
    assert_eq!(methods["data"][0]["card"]["last4"], "4242");
    assert!(ids(&s.get("/v1/customers/cus_m9/payment_methods", &t).await.json()).is_empty());

    let detach = s.call(reqwest::Method::DELETE, &format!("/v1/customers/cus_m1/payment_methods/{pm_a}"), &t, None, &[]).await;
    assert_eq!((detach.status.as_u16(), detach.json()["deleted"].as_bool()), (200, Some(true)));
    let gone = s.call(reqwest::Method::DELETE, &format!("/v1/customers/cus_m1/payment_methods/{pm_a}"), &t, None, &[]).await;
    assert_eq!(gone.status, 404);
    let revoked = s.get(&format!("/v1/mandates/{md_a}"), &t).await.json();
    assert_eq!((revoked["status"].as_str(), revoked["revocation_reason"].as_str()), (Some("revoked"), Some("payment_method_detached")));
    assert_eq!(s.post(&format!("/v1/mandates/{md_a}/resume"), &t, &json!({})).await.status, 409, "revoked is terminal");
    let detached = s.get("/v1/events?type=payment_method.detached", &t).await.json();
    assert_eq!(detached["data"].as_array().unwrap().len(), 1, "one event for the one detach: {detached}");
    assert_eq!(detached["data"][0]["data"]["object"]["id"], pm_a.as_str());
    assert!(detached["data"][0]["data"]["object"].get("processor_token").is_none(), "the snapshot never carries the token");
    let attached = s.get("/v1/events?type=payment_method.attached", &t).await.json();
    assert_eq!(attached["data"][0]["data"]["object"]["object"], "payment_method", "snapshots sit under data.object");

    let revoked_b = s.post(&format!("/v1/mandates/{md_b}/revoke"), &t, &json!({"reason": "customer_cancelled"})).await.json();
    assert_eq!((revoked_b["status"].as_str(), revoked_b["revocation_reason"].as_str()), (Some("revoked"), Some("customer_cancelled")));

    // Another merchant sees none of it.
    let (other_id, other_secret) = s.other_merchant().await;
    let other = s.token_for(&other_id, &other_secret, None).await;
    assert_eq!(s.get(&format!("/v1/mandates/{md_b}"), &other).await.status, 404);
    assert!(ids(&s.get("/v1/mandates", &other).await.json()).is_empty());
    assert_eq!(s.post(&format!("/v1/mandates/{md_b}/suspend"), &other, &json!({})).await.status, 404);
}

/// Path and query values follow the body's rules: a customer id a create would refuse
/// (over 255 characters) is a 422 naming `customer_id` wherever it appears, and so is a
/// reference filter that no session can have.
#[tokio::test]
async fn over_long_ids_in_paths_and_queries_are_422() {
    let s = Server::start().await;
    let t = s.token().await;
    let long = "c".repeat(256);
    for path in [
        format!("/v1/payment_sessions?customer_id={long}"),
        format!("/v1/mandates?customer_id={long}"),
        format!("/v1/customers/{long}/payment_methods"),
    ] {
        let r = s.get(&path, &t).await;
        assert_eq!(r.status, 422, "{path}: {}", r.text);
        assert_eq!(r.error_fields(), [("customer_id".to_string(), "too_long".to_string())], "{path}");
    }
    let r = s.call(reqwest::Method::DELETE, &format!("/v1/customers/{long}/payment_methods/pm_1"), &t, None, &[]).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = s.get("/v1/payment_sessions?reference=not%20a%20reference", &t).await;
    assert_eq!(r.error_fields(), [("reference".to_string(), "invalid_format".to_string())]);
    // At the limit, still a read: 255 characters find nothing and say so with an empty list.
    let r = s.get(&format!("/v1/customers/{}/payment_methods", "c".repeat(255)), &t).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["data"], json!([]));
}

/// A first payment of a series is paid by card only (its mandate charges the saved card):
/// its response carries no virtual-account or QR instructions, which a one-time session of
/// the same merchant does.
#[tokio::test]
async fn first_in_series_sessions_show_only_what_their_page_offers() {
    let s = Server::start().await;
    let t = s.token().await;
    let body = json!({"amount": 990, "currency": "EUR", "customer_id": "cus_fis", "reference": "fis-1",
                      "session_type": "first_in_series", "mandate": {"type": "on_demand", "max_amount": 5000}});
    let first = s.create(&t, &body).await.json();
    assert!(first["instructions"].get("virtual_account").is_none_or(Value::is_null), "{}", first["instructions"]);
    assert!(first["instructions"].get("qr").is_none_or(Value::is_null), "{}", first["instructions"]);
    let one_time = s.create(&t, &json!({"amount": 990, "currency": "EUR", "customer_id": "cus_fis", "reference": "ot-1"})).await.json();
    assert!(one_time["instructions"]["virtual_account"]["account_number"].is_string());
    assert!(one_time["instructions"]["qr"]["payload_id"].is_string());
}
