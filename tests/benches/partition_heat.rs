//! Partition heat of one merchant's creates: K creates (with an `Idempotency-Key`) through the
//! local server on DynamoDB Local behind the metering proxy, every item put recorded with its
//! table and index partition keys; scaled to 10,000 creates per second, the write units per
//! second each partition would take, against DynamoDB's 1,000 WCU/s per partition. A
//! partition every create writes (a merchant's list partitions) takes its share at the full
//! rate; one written by a single create (a session's own) takes its units once.
//!
//! Needs DynamoDB Local (as `scripts/test` sets it up).
//! Usage: cargo bench -p paysession-tests --bench partition_heat [-- CREATES]

use paysession_tests::capacity::{count_arg, metered_server};
use reqwest::Method;
use serde_json::json;

const RATE: f64 = 10_000.0;
const PARTITION_LIMIT: f64 = 1_000.0;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let creates = count_arg(200);
    let (proxy, s, _table) = metered_server().await;
    let t = s.token().await;
    proxy.take();
    for i in 0..creates {
        let body = json!({"amount": 1050, "currency": "EUR", "customer_id": format!("cus_{}", i % 997), "reference": format!("heat-{i}")});
        let r = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&body), &[("idempotency-key", &format!("heat-{i}"))]).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let metered = proxy.take();
    let mut heat: Vec<((String, String), f64)> = metered
        .partitions
        .into_iter()
        .map(|(k, (units, writes))| (k, if writes > 1 { units / creates as f64 * RATE } else { units }))
        .collect();
    heat.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("{creates} creates of one merchant, scaled to {RATE} creates/s: write units per second by partition (hottest first)");
    for ((index, pk), per_second) in heat.iter().take(8) {
        let flag = if *per_second > PARTITION_LIMIT { "  > 1,000 WCU/s" } else { "" };
        println!("{index:<6} {pk:<48} {per_second:>10.0}{flag}");
    }
    let (max_key, max) = heat.first().map(|((i, p), v)| (format!("{i} {p}"), *v)).unwrap_or_default();
    println!("maximum: {max:.0} WCU/s on {max_key} ({:.1}x the per-partition limit)", max / PARTITION_LIMIT);
}
