//! A fault-injecting HTTP proxy on loopback, in front of DynamoDB Local or moto: per
//! operation (the `X-Amz-Target` header's last part, `*` for any) a rate of lost answers
//! (the request is forwarded and applied, its answer never sent), of HTTP 500s and of
//! `ThrottlingException`s (neither forwarded), and added latency; every injection is logged.
//! Draws come from a seeded generator, so a failing run replays.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

/// What may happen to a call, in parts per thousand (so no float touches the rule).
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub lost_per_mille: u32,
    pub server_error_per_mille: u32,
    pub throttle_per_mille: u32,
    pub latency: Duration,
}

impl Faults {
    /// `per_mille` of each kind.
    pub fn each(per_mille: u32) -> Faults {
        Faults { lost_per_mille: per_mille, server_error_per_mille: per_mille, throttle_per_mille: per_mille, latency: Duration::ZERO }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Injected {
    /// Forwarded and applied; the answer was dropped with the connection.
    LostAnswer,
    ServerError,
    Throttled,
}

/// The key [`FaultProxy::calls`] counts the `Query`s of the local sweeps' due index under
/// (they are counted under `Query` too), when they reached DynamoDB.
pub const DUE_INDEX_QUERY: &str = "Query GSI4";
const DUE_INDEX_MARK: &[u8] = b"\"IndexName\":\"GSI4\"";

pub struct FaultProxy {
    pub url: String,
    faults: Arc<Mutex<Arc<BTreeMap<String, Faults>>>>,
    log: Arc<Mutex<Vec<(String, Injected)>>>,
    calls: Arc<Mutex<BTreeMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A small deterministic generator (SplitMix64): the draws of a run depend on its seed only.
fn draw(state: &AtomicU64) -> u64 {
    let mut z = state.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn aws_error(status: u16, kind: &str) -> Response<Full<Bytes>> {
    let body = format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"injected by the test proxy"}}"#);
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-errortype", kind)
        .body(Full::new(Bytes::from(body)))
        .expect("static response")
}

/// `config` with the SDK's standard retries (three attempts) but pauses from 20 ms instead
/// of 1 s: the same retries, so the same invariants, in a fraction of the time at the
/// unusual fault rates of these tests. The wire client follows the configuration as the
/// SDK clients do.
pub fn quick_retries(config: aws_types::SdkConfig) -> aws_types::SdkConfig {
    let retries = aws_smithy_types::retry::RetryConfig::standard().with_initial_backoff(Duration::from_millis(20));
    config.into_builder().retry_config(retries).build()
}

impl FaultProxy {
    /// Starts the proxy to `target` (e.g. `http://127.0.0.1:18000`) with `faults` by
    /// operation (`"*"` for every operation not named).
    pub async fn start(target: &str, faults: BTreeMap<String, Faults>, seed: u64) -> FaultProxy {
        let log: Arc<Mutex<Vec<(String, Injected)>>> = Arc::default();
        let calls: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let rng = Arc::new(AtomicU64::new(seed));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let (target, faults) = (target.trim_end_matches('/').to_string(), Arc::new(Mutex::new(Arc::new(faults))));
        let (log2, calls2, faults2) = (log.clone(), calls.clone(), faults.clone());
        let (url, task) = crate::loopback::serve(move |req: Request<Incoming>| {
            let (client, target, faults, log, calls, rng) =
                (client.clone(), target.clone(), faults2.clone(), log2.clone(), calls2.clone(), rng.clone());
            async move {
                let op = crate::loopback::amz_operation(req.headers());
                *calls.lock().unwrap().entry(op.clone()).or_default() += 1;
                let now = faults.lock().unwrap().clone();
                let f = now.get(&op).or_else(|| now.get("*")).copied().unwrap_or_default();
                if !f.latency.is_zero() {
                    tokio::time::sleep(f.latency).await;
                }
                let roll = u32::try_from(draw(&rng) % 1000).unwrap_or(0);
                let injected = if roll < f.lost_per_mille {
                    Some(Injected::LostAnswer)
                } else if roll < f.lost_per_mille + f.server_error_per_mille {
                    Some(Injected::ServerError)
                } else if roll < f.lost_per_mille + f.server_error_per_mille + f.throttle_per_mille {
                    Some(Injected::Throttled)
                } else {
                    None
                };
                if let Some(kind) = injected {
                    log.lock().unwrap().push((op.clone(), kind));
                }
                match injected {
                    Some(Injected::ServerError) => return Ok::<_, std::io::Error>(aws_error(500, "InternalServerError")),
                    Some(Injected::Throttled) => return Ok(aws_error(400, "ThrottlingException")),
                    _ => {}
                }
                let (parts, body) = req.into_parts();
                let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                // The local sweeps' reads of the due index, counted apart (`DUE_INDEX_QUERY`).
                if op == "Query" && body.windows(DUE_INDEX_MARK.len()).any(|w| w == DUE_INDEX_MARK) {
                    *calls.lock().unwrap().entry(DUE_INDEX_QUERY.to_string()).or_default() += 1;
                }
                let answer = crate::loopback::relay(&client, &target, &parts, body).await?;
                if injected == Some(Injected::LostAnswer) {
                    // Applied; the caller never hears of it.
                    return Err(std::io::Error::other("injected: answer lost"));
                }
                Ok(answer.into_response())
            }
        })
        .await;
        FaultProxy { url, faults, log, calls, task }
    }

    /// Replaces the rates from the next call on (setup without faults, then the flow under them).
    pub fn set(&self, faults: BTreeMap<String, Faults>) {
        *self.faults.lock().unwrap() = Arc::new(faults);
    }

    /// What was injected, by kind.
    pub fn injected(&self) -> BTreeMap<Injected, usize> {
        let mut out = BTreeMap::new();
        for (_, kind) in self.log.lock().unwrap().iter() {
            *out.entry(*kind).or_default() += 1;
        }
        out
    }

    /// Calls seen, by operation.
    pub fn calls(&self) -> BTreeMap<String, usize> {
        self.calls.lock().unwrap().clone()
    }
}
