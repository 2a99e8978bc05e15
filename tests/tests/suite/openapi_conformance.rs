//! Real responses against the published document: every object the API returns, with every
//! optional field both present and absent, validated against `docs/openapi.json` by the
//! independent `jsonschema` package. (schemathesis, run by scripts/test, fuzzes every
//! operation; this covers the objects it cannot create by itself.)

use paysession_tests::Server;
use paysession_tests::page::Customer;
use paysession_tests::receiver::schema_errors;
use serde_json::{Value, json};

const SHOP: &str = "https://shop.example";

fn conforms(schema: &str, documents: &[Value]) {
    assert_eq!(schema_errors(schema, documents), Vec::<String>::new(), "{schema}: {}", serde_json::to_string_pretty(documents).unwrap());
}

#[tokio::test]
async fn responses_match_the_published_schemas() {
    let s = Server::start().await;
    let t = s.token().await;
    let minimal = s.create(&t, &json!({"amount": 1050, "currency": "EUR", "customer_id": "cus_oa", "reference": "oa-min"})).await.json();
    let due = (chrono::Utc::now() + chrono::Duration::days(10)).date_naive().to_string();
    let full = s
        .create(
            &t,
            &json!({
                "amount": 3000, "currency": "EUR", "customer_id": "cus_oa", "reference": "oa-full",
                "customer": {"name": "Ada", "email": "ada@example.com", "phone": "+491701234567", "country": "DE"},
                "items": [{"name": "Lamp", "quantity": 2, "unit_amount": 1500, "type": "product"}],
                "recipients": [{"name": "Shop GmbH", "amount": 3000, "currency": "EUR", "account": {"iban": "DE89370400440532013000"}}],
                "allowed_domains": [SHOP], "metadata": {"order": "42"}, "purpose": "goods", "due_date": due,
                "statement_descriptor": "SHOP 42", "success_url": "https://shop.example/success",
                "cancel_url": "https://shop.example/cancel", "state": "st", "mode": "api", "payment_methods": ["virtual_account", "qr"],
            }),
        )
        .await;
    assert_eq!(full.status, 201, "{}", full.text);
    let full = full.json();
    let id = minimal["id"].as_str().unwrap();
    let cancelled = s.post(&format!("/v1/payment_sessions/{id}/cancel"), &t, &json!({"reason": "abandoned"})).await.json();
    let listed = s.get("/v1/payment_sessions?customer_id=cus_oa", &t).await.json();

    // A first payment: session with a mandate, the mandate, the saved method.
    let start = (chrono::Utc::now() + chrono::Duration::days(1)).date_naive().to_string();
    let first = s
        .create(
            &t,
            &json!({
                "amount": 990, "currency": "EUR", "customer_id": "cus_oa", "reference": "oa-first", "customer": {"email": "ada@example.com"},
                "allowed_domains": [SHOP], "session_type": "first_in_series",
                "mandate": {"type": "scheduled", "schedule": {"interval": "month", "interval_count": 1, "start_date": start, "max_charges": 3}},
            }),
        )
        .await
        .json();
    let mut c = Customer::new(&s, &first);
    c.open_from(SHOP).await;
    assert_eq!(c.pay_card("4242424242424242").await.status, 303);
    let paid = s.get(&format!("/v1/payment_sessions/{}", first["id"].as_str().unwrap()), &t).await.json();
    let md = paid["mandate_id"].as_str().unwrap();
    let mandate = s.get(&format!("/v1/mandates/{md}"), &t).await.json();
    let mandates = s.get("/v1/mandates?customer_id=cus_oa", &t).await.json();
    let methods = s.get("/v1/customers/cus_oa/payment_methods", &t).await.json();
    let charge = s
        .create(&t, &json!({"amount": 990, "currency": "EUR", "customer_id": "cus_oa", "reference": "oa-charge", "session_type": "next_in_series", "mandate_id": md}))
        .await
        .json();

    let mut sessions = vec![minimal.clone(), full, cancelled, paid, charge, first];
    sessions.extend(listed["data"].as_array().unwrap().iter().cloned());
    conforms("PaymentSession", &sessions);
    let mut all_mandates = vec![mandate];
    all_mandates.extend(mandates["data"].as_array().unwrap().iter().cloned());
    conforms("Mandate", &all_mandates);
    conforms("PaymentMethod", methods["data"].as_array().unwrap());

    let events = s.get("/v1/events?limit=100", &t).await.json();
    let events = events["data"].as_array().unwrap();
    assert!(events.len() >= 10, "{}", events.len());
    conforms("Event", events);

    let endpoint = s.post("/v1/webhook_endpoints", &t, &json!({"url": "https://hooks.example/pay", "events": ["*"]})).await.json();
    let got = s.get(&format!("/v1/webhook_endpoints/{}", endpoint["id"].as_str().unwrap()), &t).await.json();
    let v1a = s
        .post("/v1/webhook_endpoints", &t, &json!({"url": "https://hooks.example/v1a", "events": ["*"], "signature_scheme": "v1a"}))
        .await
        .json();
    conforms("WebhookEndpoint", &[endpoint, got, v1a]);
    conforms("TestClock", &[s.get("/v1/test_clock", &t).await.json()]);
    let problem = s.create(&t, &json!({"amount": 10.5})).await.json();
    conforms("Problem", &[problem]);
}
