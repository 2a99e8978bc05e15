//! The stream consumer's fan-out on real parts: DynamoDB Local for the deliveries, moto's
//! SQS for the queue. Each round hands `handle_stream_event_with` a fresh batch of 100
//! `payment_session.created` records (the event source mapping's batch size) for a merchant
//! with one endpoint, once one record at a time and once with the shipped overlap,
//! alternated, and prints each batch's time and the paired ratio.
//!
//! Needs the services `scripts/test` starts (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_SQS,
//! AWS credentials and region in the environment).
//! Usage: cargo bench -p paysession-tests --bench stream_fan_out [-- ROUNDS]

use std::time::Instant;

use paysession_app::ports::SweptLocally;
use paysession_aws::stream::{FAN_OUT_CONCURRENCY, StreamSinks, handle_stream_event_with};
use paysession_domain::webhook::{UrlPolicy, parse_endpoint_create};
use paysession_tests::aws::{created_events_batch, deps, drain_wake_ups, fresh_queues};
use serde_json::json;

const MERCHANT: &str = "mer_bench";
const BATCH: usize = 100;

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(5);
    let queues = fresh_queues().await;
    let deps = deps(paysession_tests::dynamo::fresh_table().await, &queues).await;
    let spec = parse_endpoint_create(&json!({"url": "https://hooks.example/bench", "events": ["*"]}), UrlPolicy { allow_private: false })
        .expect("a valid endpoint");
    paysession_app::webhooks::create_endpoint(&deps.core, MERCHANT, spec).await.expect("endpoint created");
    let sinks = StreamSinks { queue: deps.queue.as_ref(), scheduler: &SweptLocally, bus: None };

    let mut sequence = 0;
    let mut times: Vec<(usize, f64)> = Vec::new();
    // A warm-up batch (connections, DynamoDB Local's JIT), then the measured rounds.
    for round in 0..=rounds {
        for concurrency in [1, FAN_OUT_CONCURRENCY] {
            let (_, batch) = created_events_batch(MERCHANT, BATCH, sequence);
            sequence += BATCH as u64;
            let started = Instant::now();
            let answer = handle_stream_event_with(&deps.core, &sinks, &batch, concurrency).await;
            let ms = started.elapsed().as_secs_f64() * 1e3;
            assert_eq!(answer, json!({"batchItemFailures": []}));
            let queued = drain_wake_ups(&queues).await.len();
            assert_eq!(queued, BATCH, "one message per event");
            if round > 0 {
                println!(
                    "round {round}: concurrency {concurrency:>2}: {ms:8.1} ms per batch of {BATCH}, {:7.0} events/s",
                    BATCH as f64 / ms * 1e3
                );
                times.push((concurrency, ms));
            }
        }
    }
    let median = |c: usize| {
        let mut v: Vec<f64> = times.iter().filter(|(k, _)| *k == c).map(|(_, ms)| *ms).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratios: Vec<f64> = times.chunks(2).map(|pair| pair[0].1 / pair[1].1).collect();
    let (one, many) = (median(1), median(FAN_OUT_CONCURRENCY));
    println!(
        "median: one at a time {one:.1} ms ({:.0} events/s); {FAN_OUT_CONCURRENCY} at once {many:.1} ms ({:.0} events/s); paired speed-up per round: {}",
        BATCH as f64 / one * 1e3,
        BATCH as f64 / many * 1e3,
        ratios.iter().map(|r| format!("{r:.2}x")).collect::<Vec<_>>().join(" ")
    );
}
