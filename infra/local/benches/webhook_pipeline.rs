//! Webhook pipeline benchmark: events per second through the local outbox → queue →
//! dispatcher pipeline, and latency from the committed state change (the event's
//! `created_at`) to arrival at a receiver on loopback.
//!
//! Baseline, measured in the same run against the same receiver: plain HTTP POSTs of an
//! event-sized body straight to the receiver, at the same concurrency. Figures are reported
//! as ratios to it.
//!
//! `cargo bench -p paysession-local --bench webhook_pipeline [-- EVENTS CONCURRENCY]`

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use paysession_local::{LocalOptions, start};
use serde_json::{Value, json};

type Arrivals = Arc<Mutex<HashMap<String, DateTime<Utc>>>>;

async fn receiver() -> (String, Arrivals) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let arrivals: Arrivals = Arc::default();
    let a = arrivals.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let a = a.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let a = a.clone();
                    async move {
                        let id = req.headers().get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                        let _ = req.into_body().collect().await;
                        a.lock().unwrap().insert(id, Utc::now());
                        let mut resp = hyper::Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = hyper::StatusCode::NO_CONTENT;
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    (url, arrivals)
}

async fn read(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Creates `count` sessions (references from `first`), `concurrency` at a time, each client
/// waiting `pace` between its creates.
async fn create_sessions(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    first: usize,
    count: usize,
    concurrency: usize,
    pace: Option<Duration>,
) {
    let (h, b, tk) = (http.clone(), base.to_string(), token.to_string());
    run(count, concurrency, move |i| {
        let (h, b, tk) = (h.clone(), b.clone(), tk.clone());
        async move {
            let started = Instant::now();
            let body = json!({"amount": 1000 + i as i64, "currency": "EUR", "customer_id": "cus_bench", "reference": format!("bench-{}", first + i)});
            let r = h.post(format!("{b}/v1/payment_sessions")).bearer_auth(&tk).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 201);
            if let Some(p) = pace {
                tokio::time::sleep(p.saturating_sub(started.elapsed())).await;
            }
            0.0
        }
    })
    .await;
}

async fn wait_for(arrivals: &Arrivals, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while arrivals.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} events arrived", arrivals.lock().unwrap().len());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Commit-to-arrival latency (ms) of every arrived event, matched through the events API
/// (the event's `created_at` is the commit time; the receiver stamps arrival).
async fn latencies(http: &reqwest::Client, base: &str, token: &str, arrivals: &Arrivals) -> Vec<f64> {
    let arrived = arrivals.lock().unwrap().clone();
    let mut out = Vec::new();
    let mut path = "/v1/events?type=payment_session.created&limit=100".to_string();
    loop {
        let page = read(http.get(format!("{base}{path}")).bearer_auth(token)).await;
        for e in page["data"].as_array().unwrap() {
            let committed: DateTime<Utc> = DateTime::parse_from_rfc3339(e["created_at"].as_str().unwrap()).unwrap().into();
            if let Some(a) = arrived.get(e["id"].as_str().unwrap()) {
                out.push((*a - committed).num_microseconds().unwrap() as f64 / 1000.0);
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/events?type=payment_session.created&limit=100&starting_after={c}"),
            None => break,
        }
    }
    assert_eq!(out.len(), arrived.len(), "every arrival matched to its event");
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Figures {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `n` jobs with `concurrency` workers; each returns its latency in ms.
async fn run<F, Fut>(n: usize, concurrency: usize, job: F) -> (Duration, Vec<f64>)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = f64> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (job, next) = (job.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    return out;
                }
                out.push(job(i).await);
            }
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    (started.elapsed(), latencies)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(1000);
    let concurrency = args.get(1).copied().unwrap_or(16);
    let dir = tempfile::tempdir().unwrap();
    let running = start(LocalOptions {
        host: "127.0.0.1".into(),
        port: 0,
        data_dir: dir.path().to_path_buf(),
        table: None,
        dynamodb_endpoint: None,
        public_url: None,
        allow_private_webhooks: true,
        demo_client_id: None,
        demo_client_secret: None,
        stripe_api_base: None,
    })
    .await
    .unwrap();
    let base = running.base_url.clone();
    let http = reqwest::Client::new();
    let token: Value = read(
        http.post(format!("{base}/oauth/token"))
            .basic_auth(&running.demo.client_id, Some(&running.demo.client_secret))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    let token = token["access_token"].as_str().unwrap().to_string();
    let (url, arrivals) = receiver().await;

    // Baseline: event-sized POSTs straight to the receiver.
    let sample_body = Arc::new(
        json!({"id": "evt_x", "object": "event", "type": "payment_session.created", "data": {"object": {"pad": "x".repeat(1500)}}})
            .to_string(),
    );
    let (h, u, b) = (http.clone(), url.clone(), sample_body.clone());
    let (elapsed, mut lat) = run(n, concurrency, move |i| {
        let (h, u, b) = (h.clone(), u.clone(), b.clone());
        async move {
            let t = Instant::now();
            h.post(&u).header("webhook-id", format!("base_{i}")).body(b.to_string()).send().await.unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        }
    })
    .await;
    lat.sort_by(f64::total_cmp);
    let baseline = Figures { per_second: n as f64 / elapsed.as_secs_f64(), p50_ms: percentile(&lat, 0.5), p99_ms: percentile(&lat, 0.99) };

    // Pipeline: one payment_session.created per session, committed by the API.
    let ep = read(
        http.post(format!("{base}/v1/webhook_endpoints"))
            .bearer_auth(&token)
            .json(&json!({"url": url, "events": ["payment_session.created"]})),
    )
    .await;
    assert!(ep["id"].is_string(), "endpoint: {ep}");
    arrivals.lock().unwrap().clear();
    // Phase 1, saturation: creates as fast as `concurrency` clients go; events/s from the
    // first create to the last arrival.
    let t0 = Instant::now();
    create_sessions(&http, &base, &token, 0, n, concurrency, None).await;
    // The events' source: the pipeline cannot go faster than the creates that feed it.
    let created = n as f64 / t0.elapsed().as_secs_f64();
    wait_for(&arrivals, n).await;
    let saturated = n as f64 / t0.elapsed().as_secs_f64();
    let saturated_lat = latencies(&http, &base, &token, &arrivals).await;

    // Phase 2, latency at a steady load well under saturation (a quarter of it, at most
    // 100 events/s): one create at a time, paced.
    arrivals.lock().unwrap().clear();
    let rate = (saturated / 4.0).min(100.0);
    let paced_n = n.min(500);
    create_sessions(&http, &base, &token, n, paced_n, 1, Some(Duration::from_secs_f64(1.0 / rate))).await;
    wait_for(&arrivals, paced_n).await;
    let mut lat = latencies(&http, &base, &token, &arrivals).await;
    lat.sort_by(f64::total_cmp);
    let paced = Figures { per_second: rate, p50_ms: percentile(&lat, 0.5), p99_ms: percentile(&lat, 0.99) };
    let mut sat = saturated_lat;
    sat.sort_by(f64::total_cmp);

    println!("webhook pipeline benchmark: release build, embedded store (SQLite, synchronous=FULL), loopback receiver");
    println!(
        "  baseline   direct POST to receiver, {concurrency} clients : {:>8.0} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms",
        baseline.per_second, baseline.p50_ms, baseline.p99_ms
    );
    println!(
        "  saturation {n} creates, {concurrency} clients           : {:>8.0} ev/s   p50 {:>8.2} ms  p99 {:>8.2} ms (backlog); creates alone {:.0}/s",
        saturated,
        percentile(&sat, 0.5),
        percentile(&sat, 0.99),
        created
    );
    println!(
        "  steady     {paced_n} creates at {:.0}/s                : state change → arrival p50 {:>8.2} ms  p99 {:>8.2} ms",
        paced.per_second, paced.p50_ms, paced.p99_ms
    );
    println!(
        "  ratios     saturation / baseline throughput {:.4}×; steady p50 / baseline p50 {:.1}×, p99 / p99 {:.1}×",
        saturated / baseline.per_second,
        paced.p50_ms / baseline.p50_ms,
        paced.p99_ms / baseline.p99_ms
    );
    running.stop().await;
}
