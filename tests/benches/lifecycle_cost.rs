//! What one paid session costs in DynamoDB: the local server on a DynamoDB Local table,
//! behind the metering proxy (`tests/src/capacity.rs`), with one webhook endpoint subscribed
//! to every event; N sessions each created with an `Idempotency-Key`, opened and paid by
//! card on the hosted page, until every event reached the receiver. Prints requests, write
//! and read units and bytes per paid session by operation and by item type, and $ per
//! million paid sessions at on-demand list prices (us-east-1), both as DynamoDB Local reports
//! them and by AWS's rule (`capacity::aws_rule_units`). The local server's once-a-second
//! sweepers are the local path's, not the deployed one's: their idle reads are subtracted and
//! any `Scan` is counted apart (none, once the due index was read once per kind at start).
//!
//! Needs DynamoDB Local (AWS_ENDPOINT_URL_DYNAMODB and AWS credentials and region in the
//! environment, as `scripts/test` sets them).
//! Usage: cargo bench -p paysession-tests --bench lifecycle_cost [-- SESSIONS]

use std::time::{Duration, Instant};

use paysession_tests::capacity::{Baseline, count_arg, metered_server, print_report};
use paysession_tests::page::Customer;
use paysession_tests::receiver::Receiver;
use reqwest::Method;
use serde_json::json;

const SHOP: &str = "https://shop.example";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sessions = count_arg(20);
    let (proxy, s, _table) = metered_server().await;
    let t = s.token().await;
    let rx = Receiver::start().await;
    let ep = s.post("/v1/webhook_endpoints", &t, &json!({"url": rx.url(), "events": ["*"]})).await;
    assert_eq!(ep.status, 201, "{}", ep.text);

    // The sweepers' reads while nothing happens: subtracted per second of the run below.
    proxy.take();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = proxy.take();
    let idle_seconds = 5.0;

    let started = Instant::now();
    for i in 0..sessions {
        let body = json!({
            "amount": 1050, "currency": "EUR", "customer_id": "cus_cost", "reference": format!("cost-{i}"),
            "allowed_domains": [SHOP], "customer": {"email": "ada@example.com"},
        });
        let r = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&body), &[("idempotency-key", &format!("cost-{i}"))]).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let mut c = Customer::new(&s, &r.json());
        c.open_from(SHOP).await;
        assert_eq!(c.pay_card("4242424242424242").await.status, 303);
    }
    // Every event delivered: the count stops growing for 3 s.
    let (mut seen, mut still) = (0, Instant::now());
    while still.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = rx.received().len();
        if now != seen {
            (seen, still) = (now, Instant::now());
        }
    }
    let run = proxy.take();
    let seconds = started.elapsed().as_secs_f64();
    print_report(sessions, seen, &run, Some(Baseline { idle: &idle, scale: seconds / idle_seconds }));
}
