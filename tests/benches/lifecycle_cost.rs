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

use paysession_tests::capacity::{Metered, count_arg, metered_server};
use paysession_tests::page::Customer;
use paysession_tests::receiver::Receiver;
use reqwest::Method;
use serde_json::json;

const SHOP: &str = "https://shop.example";
/// On-demand list prices, us-east-1: $ per million write / read request units, SQS requests.
const WRU_PRICE: f64 = 0.625;
const RRU_PRICE: f64 = 0.125;

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
    report(sessions, seen, &run, &idle, seconds / idle_seconds);
}

fn report(sessions: usize, deliveries: usize, run: &Metered, idle: &Metered, idle_scale: f64) {
    let n = sessions as f64;
    println!("lifecycle cost: {sessions} paid sessions, {deliveries} webhook deliveries ({:.1} per session)", deliveries as f64 / n);
    println!("\nby operation, per paid session (Scans apart; the sweepers' idle reads subtracted, scaled to the run's length)");
    println!("WRU as DynamoDB Local reports them; AWS WRU by AWS's published rule for the same items (tests/src/capacity.rs)");
    println!("{:<20} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}", "operation", "requests", "WRU", "AWS WRU", "RRU", "req bytes", "resp bytes");
    let (mut wru, mut aws_wru, mut rru) = (0.0, 0.0, 0.0);
    for (op, t) in run.ops.iter().filter(|(op, _)| op.as_str() != "Scan") {
        let i = idle.ops.get(op).cloned().unwrap_or_default();
        let requests = (t.requests as f64 - i.requests as f64 * idle_scale).max(0.0) / n;
        let w = (t.write_units - i.write_units * idle_scale).max(0.0) / n;
        let aw = (t.aws_write_units - i.aws_write_units * idle_scale).max(0.0) / n;
        let r = (t.read_units - i.read_units * idle_scale).max(0.0) / n;
        (wru, aws_wru, rru) = (wru + w, aws_wru + aw, rru + r);
        println!(
            "{op:<20} {requests:>9.2} {w:>9.2} {aw:>9.2} {r:>9.2} {:>10.0} {:>10.0}",
            t.request_bytes as f64 / n,
            t.response_bytes as f64 / n
        );
    }
    println!("{:<20} {:>9} {wru:>9.2} {aws_wru:>9.2} {rru:>9.2}", "total", "");
    println!("\nwrites by item type, per paid session (a transaction's reported units split over its items by size)");
    println!("{:<12} {:>8} {:>10} {:>9} {:>9}", "item", "writes", "bytes", "WRU", "AWS WRU");
    for (kind, t) in &run.items {
        println!(
            "{kind:<12} {:>8.2} {:>10.0} {:>9.2} {:>9.2}",
            t.writes as f64 / n,
            t.bytes as f64 / n,
            t.write_units / n,
            t.aws_write_units / n
        );
    }
    let scans = run.ops.get("Scan").cloned().unwrap_or_default();
    println!(
        "\nlocal sweepers' Scans (the local server's, not the deployed path's): {:.2} per paid session, {:.2} RRU per paid session",
        scans.requests as f64 / n,
        scans.read_units / n
    );
    let dollars = |w: f64| w * WRU_PRICE + rru * RRU_PRICE;
    println!(
        "DynamoDB $ per million paid sessions (on demand, us-east-1: ${WRU_PRICE}/M WRU, ${RRU_PRICE}/M RRU; Scans apart): \
         as reported ${:.2} (writes ${:.2}, reads ${:.2}); by AWS's rule ${:.2}",
        dollars(wru),
        wru * WRU_PRICE,
        rru * RRU_PRICE,
        dollars(aws_wru)
    );
}
