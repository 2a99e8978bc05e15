//! Scheduled recurring charges on the local server, driven by the sandbox test clock: each
//! occurrence of a monthly mandate charges once, in order, across a restart, until the
//! schedule is exhausted; revoking stops it; a card that declines off-session fails three
//! occurrences in a row and the mandate is suspended.

use std::time::Duration;

use paysession_tests::Server;
use paysession_tests::page::Customer;
use paysession_tests::receiver::{Received, Receiver, schema_errors, verify_with_official_library};
use serde_json::{Value, json};

const SHOP: &str = "https://shop.example";
const DAY: i64 = 86_400;

async fn scheduled_mandate(s: &Server, t: &str, customer: &str, card: &str, max_charges: u32) -> String {
    let start = (chrono::Utc::now() + chrono::Duration::days(1)).date_naive();
    let body = json!({
        "amount": 990, "currency": "EUR", "customer_id": customer, "reference": paysession_app::ids::new_id("r"),
        "customer": {"email": "ada@example.com"}, "allowed_domains": [SHOP], "session_type": "first_in_series",
        "mandate": {"type": "scheduled", "schedule": {"interval": "month", "interval_count": 1, "start_date": start.to_string(), "max_charges": max_charges}}
    });
    let r = s.create(t, &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let sess = r.json();
    let mut c = Customer::new(s, &sess);
    c.open_from(SHOP).await;
    assert_eq!(c.pay_card(card).await.status, 303);
    let api = s.get(&format!("/v1/payment_sessions/{}", sess["id"].as_str().unwrap()), t).await.json();
    api["mandate_id"].as_str().unwrap().to_string()
}

async fn mandate(s: &Server, t: &str, id: &str) -> Value {
    s.get(&format!("/v1/mandates/{id}"), t).await.json()
}

/// Polls (the scheduler ticks once a second) until `done` holds for the mandate.
async fn wait_for(s: &Server, t: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let m = mandate(s, t, id).await;
        if done(&m) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("mandate {id} never reached the expected state: {}", mandate(s, t, id).await);
}

/// The subscription walk-through of the README: 13 months under the test clock, monthly with
/// `max_charges: 12` → exactly 12 charges (one across a restart), then `completed`; each charge
/// arrives at the merchant as webhooks the official Standard Webhooks library verifies.
#[tokio::test]
async fn monthly_mandate_charges_twelve_times_in_thirteen_months_then_completes() {
    let mut s = Server::start_with_private_webhooks().await;
    let t = s.token().await;
    let rx = Receiver::start().await;
    let ep = s.post("/v1/webhook_endpoints", &t, &json!({"url": rx.url(), "events": ["*"]})).await.json();
    let secret = ep["secret"].as_str().unwrap().to_string();
    let md = scheduled_mandate(&s, &t, "cus_rc1", "4242424242424242", 12).await;
    assert_eq!(mandate(&s, &t, &md).await["charges_count"], 0);

    s.advance_clock(&t, 2 * DAY).await;
    wait_for(&s, &t, &md, |m| m["charges_count"] == 1).await;
    s.restart().await;
    let t = s.token().await;
    for month in 2..=13u64 {
        s.advance_clock(&t, 31 * DAY).await;
        let want = month.min(12);
        wait_for(&s, &t, &md, |m| m["charges_count"] == want).await;
    }
    let done = wait_for(&s, &t, &md, |m| m["status"] == "completed").await;
    assert_eq!((done["charges_count"].as_u64(), done["next_charge_at"].as_str()), (Some(12), None));

    // Nothing after the last occurrence, however far the clock moves.
    s.advance_clock(&t, 70 * DAY).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(mandate(&s, &t, &md).await["charges_count"], 12);

    // Exactly one session per occurrence, found by its derived reference, each succeeded.
    for n in 0..12 {
        let list = s.get(&format!("/v1/payment_sessions?customer_id=cus_rc1&reference={md}-{n}"), &t).await.json();
        let data = list["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "occurrence {n}");
        assert_eq!((data[0]["status"].as_str(), data[0]["session_type"].as_str()), (Some("succeeded"), Some("next_in_series")));
        assert_eq!(data[0]["mandate_id"], md.as_str());
    }
    let all = s.get("/v1/payment_sessions?customer_id=cus_rc1&limit=100", &t).await.json();
    assert_eq!(all["data"].as_array().unwrap().len(), 13, "the first payment and twelve charges, nothing repeated");

    // The merchant heard of each charge, signed: 12 charge successes after the first payment's.
    let succeeded = |g: &[Received]| {
        g.iter()
            .filter(|r| r.event_type() == "payment_session.succeeded" && r.json()["data"]["object"]["session_type"] == "next_in_series")
            .count()
    };
    let got = rx
        .wait_for("12 charges and the completion", |g| succeeded(g) == 12 && g.iter().any(|r| r.event_type() == "mandate.completed"))
        .await;
    assert_eq!(succeeded(&got), 12);
    let verdicts = verify_with_official_library(&secret, &got.iter().collect::<Vec<_>>());
    let payloads: Vec<Value> = got.iter().map(Received::json).collect();
    assert_eq!(schema_errors("Event", &payloads), Vec::<String>::new(), "mandate, method and charge events match the Event schema");
    assert!(verdicts.iter().all(|v| v == &json!(true)), "official verifier refused: {verdicts:?}");
    // One mandate.updated per charge (charges_count and next_charge_at moved); the 12th is
    // also the completion, the one that carries previous_status.
    let got = rx.wait_for("12 mandate.updated", |g| g.iter().filter(|r| r.event_type() == "mandate.updated").count() >= 12).await;
    let updates: Vec<Value> = got.iter().filter(|r| r.event_type() == "mandate.updated").map(Received::json).collect();
    assert_eq!(updates.len(), 12, "one per charge");
    let mut counts: Vec<u64> = updates.iter().map(|u| u["data"]["object"]["charges_count"].as_u64().unwrap()).collect();
    counts.sort();
    assert_eq!(counts, (1..=12).collect::<Vec<u64>>());
    let with_previous: Vec<&Value> = updates.iter().filter(|u| u["data"].get("previous_status").is_some()).collect();
    assert_eq!(with_previous.len(), 1, "only the completion changed the status");
    assert_eq!(with_previous[0]["data"]["object"]["status"], "completed");
}

/// Revoking mid-series stops the charges: the clock moves on, nothing more is charged.
#[tokio::test]
async fn revoking_mid_series_stops_the_charges() {
    let s = Server::start().await;
    let t = s.token().await;
    let md = scheduled_mandate(&s, &t, "cus_rc4", "4242424242424242", 12).await;
    s.advance_clock(&t, 2 * DAY).await;
    wait_for(&s, &t, &md, |m| m["charges_count"] == 1).await;
    s.advance_clock(&t, 31 * DAY).await;
    wait_for(&s, &t, &md, |m| m["charges_count"] == 2).await;
    let r = s.post(&format!("/v1/mandates/{md}/revoke"), &t, &json!({"reason": "customer_cancelled"})).await;
    assert_eq!((r.status.as_u16(), r.json()["status"].as_str()), (200, Some("revoked")));
    for _ in 0..3 {
        s.advance_clock(&t, 31 * DAY).await;
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let m = mandate(&s, &t, &md).await;
    assert_eq!((m["status"].as_str(), m["charges_count"].as_u64(), m["next_charge_at"].as_str()), (Some("revoked"), Some(2), None));
    let all = s.get("/v1/payment_sessions?customer_id=cus_rc4&limit=100", &t).await.json();
    assert_eq!(all["data"].as_array().unwrap().len(), 3, "the first payment and the two charges before the revocation");
}

#[tokio::test]
async fn off_session_declines_suspend_the_mandate_after_three_occurrences() {
    let s = Server::start().await;
    let t = s.token().await;
    let md = scheduled_mandate(&s, &t, "cus_rc2", "4000000000000341", 12).await;
    s.advance_clock(&t, 2 * DAY).await;
    wait_for(&s, &t, &md, |m| m["failed_charges_in_a_row"] == 1).await;
    s.advance_clock(&t, 31 * DAY).await;
    wait_for(&s, &t, &md, |m| m["failed_charges_in_a_row"] == 2).await;
    s.advance_clock(&t, 31 * DAY).await;
    let m = wait_for(&s, &t, &md, |m| m["status"] == "suspended").await;
    assert_eq!((m["failed_charges_in_a_row"].as_u64(), m["charges_count"].as_u64()), (Some(3), Some(0)));
    let declined = s.get(&format!("/v1/payment_sessions?customer_id=cus_rc2&reference={md}-0"), &t).await.json();
    assert_eq!(declined["data"][0]["payments"][0]["failure_code"], "card_declined", "a hard decline is not retried");
    assert_eq!(declined["data"][0]["status"], "failed", "the occurrence's session ends failed");
    assert_eq!(declined["data"][0]["payments"].as_array().unwrap().len(), 1);
    let suspended = s.get("/v1/events?type=mandate.suspended", &t).await.json();
    assert_eq!(suspended["data"][0]["data"]["object"]["id"], md.as_str());
}

/// Any number of deliveries of the same occurrence (the scheduler's own tick among them)
/// charge once: one session, one attempt, one count.
#[tokio::test]
async fn many_deliveries_of_one_occurrence_charge_once() {
    use paysession_app::recurring::{Triggered, trigger};
    let s = Server::start().await;
    let t = s.token().await;
    let md = scheduled_mandate(&s, &t, "cus_rc3", "4242424242424242", 12).await;
    s.advance_clock(&t, 2 * DAY).await;
    let local = s.running.as_ref().unwrap().local.clone();
    let merchant = s.running.as_ref().unwrap().demo.merchant_id.clone();
    let (core, pay) = (&local.app.core, &local.app.payments);
    let (a, b, c) = tokio::join!(
        trigger(core, pay, &merchant, &md, Some(0)),
        trigger(core, pay, &merchant, &md, None),
        trigger(core, pay, &merchant, &md, Some(0))
    );
    for r in [a, b, c] {
        r.expect("a concurrent delivery is not an error");
    }
    wait_for(&s, &t, &md, |m| m["charges_count"] == 1).await;
    for _ in 0..3 {
        assert!(matches!(trigger(core, pay, &merchant, &md, Some(0)).await.unwrap(), Triggered::NothingDue), "stale: occurrence 0 is done");
    }
    assert!(matches!(trigger(core, pay, &merchant, &md, Some(1)).await.unwrap(), Triggered::NotYetDue { occurrence: 1, .. }));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(mandate(&s, &t, &md).await["charges_count"], 1);
    let list = s.get(&format!("/v1/payment_sessions?customer_id=cus_rc3&reference={md}-0"), &t).await.json();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["payments"].as_array().unwrap().len(), 1, "one attempt: charged once");
}
