//! Partition heat of one merchant at 10,000 creates per second, in two parts.
//!
//! 1. Measured: K creates (with an `Idempotency-Key`) through the local server on DynamoDB
//!    Local behind the metering proxy, with a webhook endpoint subscribed to
//!    `payment_session.created` (a delivery per create), every item put recorded with its table and index
//!    partition keys and its write units. A partition written by more than one create is a
//!    shared one (a merchant's list partition); one written once is a create's own.
//! 2. Simulated from the key design: 10,000 creates a second for 60 s, each with a session
//!    id, a created event id and its delivery id made as the product makes them, each shared partition's
//!    key computed by the product's key functions (`paysession_aws::keys`: a sharded list's
//!    shard from the id's hash; any other shared partition the same key for every create),
//!    at the write units per write measured in part 1. Prints the maximum any partition takes
//!    in any second, against DynamoDB's 1,000 WCU/s per partition.
//!
//! Needs DynamoDB Local (as `scripts/test` sets it up).
//! Usage: cargo bench -p paysession-tests --bench partition_heat [-- CREATES]

use std::collections::{BTreeMap, HashMap};

use std::time::{Duration, Instant};

use paysession_aws::keys::{deliveries_partition, events_gsi1, sessions_gsi1};
use paysession_domain::webhook::Delivery;
use paysession_tests::capacity::{count_arg, metered_server};
use paysession_tests::receiver::Receiver;
use reqwest::Method;
use serde_json::json;

const RATE: usize = 10_000;
const SECONDS: usize = 60;
const PARTITION_LIMIT: f64 = 1_000.0;

/// How a simulated create names a shared partition.
#[derive(Debug, Clone, Copy)]
enum Keyed {
    BySession,
    ByEvent,
    ByDelivery,
    /// Not sharded: every create writes the one key.
    Same,
}

/// A partition key without its shard suffix (`…#07` → `…`).
fn family(pk: &str) -> &str {
    match pk.rsplit_once('#') {
        Some((head, tail)) if tail.len() == 2 && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => pk,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let creates = count_arg(200);
    let (proxy, s, _table) = metered_server().await;
    let t = s.token().await;
    let core = &s.running.as_ref().expect("running").local.app.core;
    let merchant = core.store.get_client(&s.client_id).await.unwrap().expect("the demo client").merchant_id;
    let rx = Receiver::start().await;
    let ep = s.post("/v1/webhook_endpoints", &t, &json!({"url": rx.url(), "events": ["payment_session.created"]})).await;
    assert_eq!(ep.status, 201, "{}", ep.text);
    let endpoint = ep.json()["id"].as_str().unwrap().to_string();
    proxy.take();
    for i in 0..creates {
        let body = json!({"amount": 1050, "currency": "EUR", "customer_id": format!("cus_{}", i % 997), "reference": format!("heat-{i}")});
        let r = s.call(Method::POST, "/v1/payment_sessions", &t, Some(&body), &[("idempotency-key", &format!("heat-{i}"))]).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // Every delivery made and recorded: the receiver has them all, then a moment for the records.
    let deadline = Instant::now() + Duration::from_secs(120);
    while rx.received().len() < creates {
        assert!(Instant::now() < deadline, "{} of {creates} webhooks within 120 s", rx.received().len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metered = proxy.take();

    // Part 1: the shared partitions as measured, by family.
    let mut families: BTreeMap<(String, String), (f64, u64, usize)> = BTreeMap::new();
    let mut own_max: (f64, String) = (0.0, String::new());
    for ((index, pk), (units, writes)) in &metered.partitions {
        if *writes > 1 {
            let f = families.entry((index.clone(), family(pk).to_string())).or_default();
            f.0 += units;
            f.1 += writes;
            f.2 += 1;
        } else if *units > own_max.0 {
            own_max = (*units, format!("{index} {pk}"));
        }
    }
    println!("measured: {creates} creates of one merchant; partitions written by more than one create, by family");
    println!("{:<6} {:<56} {:>10} {:>12} {:>12}", "index", "family", "partitions", "writes", "units/write");
    let sessions_family = family(&sessions_gsi1(&merchant, "x")).to_string();
    let events_family = family(&events_gsi1(&merchant, "x")).to_string();
    let deliveries_family = family(&deliveries_partition(&merchant, &endpoint, "x")).to_string();
    let mut shared = Vec::new();
    for ((index, fam), (units, writes, partitions)) in &families {
        println!("{index:<6} {fam:<56} {partitions:>10} {writes:>12} {:>12.2}", units / *writes as f64);
        let keyed = if *fam == sessions_family {
            Keyed::BySession
        } else if *fam == events_family {
            Keyed::ByEvent
        } else if *fam == deliveries_family {
            Keyed::ByDelivery
        } else {
            Keyed::Same
        };
        shared.push((index.clone(), fam.clone(), keyed, units / *writes as f64, *writes as f64 / creates as f64));
    }
    println!("a create's own partitions: at most {:.0} write units, once ({})", own_max.0, own_max.1);

    // Part 2: the simulation.
    let start = chrono::Utc::now();
    let mut hottest: (f64, String, usize) = (0.0, String::new(), 0);
    let mut per_partition_max: HashMap<String, f64> = HashMap::new();
    for second in 0..SECONDS {
        let mut load: HashMap<String, f64> = HashMap::new();
        for c in 0..RATE {
            let at = start + chrono::Duration::milliseconds((second * 1000 + c / 10) as i64);
            let n = second * RATE + c;
            let session = paysession_domain::session::session_id(&merchant, &format!("cus_{}", n % 997), &format!("sim-{n}"), at);
            let event = paysession_app::ids::new_id("evt");
            for (index, fam, keyed, units_per_write, writes_per_create) in &shared {
                let key = match keyed {
                    Keyed::BySession => sessions_gsi1(&merchant, &session),
                    Keyed::ByEvent => events_gsi1(&merchant, &event),
                    Keyed::ByDelivery => deliveries_partition(&merchant, &endpoint, &Delivery::fan_out_id(&event, at, &endpoint)),
                    Keyed::Same => fam.clone(),
                };
                *load.entry(format!("{index} {key}")).or_default() += units_per_write * writes_per_create;
            }
        }
        for (key, units) in load {
            let m = per_partition_max.entry(key.clone()).or_default();
            *m = m.max(units);
            if units > hottest.0 {
                hottest = (units, key, second);
            }
        }
    }
    let mut ranked: Vec<_> = per_partition_max.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!();
    println!(
        "simulated: {RATE} creates/s of one merchant for {SECONDS} s; {} shared partitions; the hottest, by their busiest second",
        ranked.len()
    );
    for (key, units) in ranked.iter().take(6) {
        let flag = if *units > PARTITION_LIMIT { "  > 1,000 WCU/s" } else { "" };
        println!("{key:<64} {units:>8.0}{flag}");
    }
    println!(
        "maximum: {:.0} WCU/s on {} in second {} ({:.2}x the per-partition limit)",
        hottest.0,
        hottest.1,
        hottest.2,
        hottest.0 / PARTITION_LIMIT
    );
}
