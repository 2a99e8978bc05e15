//! A real HTTP receiver on loopback (webhooks; a stand-in DynamoDB endpoint): records every
//! request and answers with a scripted status and body (204 once the script is used up). It can be stopped and started again
//! on the same port to simulate an outage.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("webhook body is JSON")
    }
    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_string()
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    script: VecDeque<(u16, &'static str)>,
    default_status: Option<u16>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        let mut r = Receiver { addr, state: Arc::default(), task: None };
        r.serve(listener);
        r
    }

    fn serve(&mut self, listener: TcpListener) {
        let state = self.state.clone();
        self.task = Some(tokio::spawn(async move {
            // Connections live in this set, so stopping the receiver also drops kept-alive
            // connections (an outage must refuse the sender's pooled connection too).
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = state.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move {
                            let headers =
                                req.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
                            let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                            let mut s = state.lock().unwrap();
                            let (status, answer) = s.script.pop_front().or(s.default_status.map(|d| (d, ""))).unwrap_or((204, ""));
                            s.received.push(Received {
                                headers,
                                body: String::from_utf8_lossy(&body).into_owned(),
                                status,
                                at: Instant::now(),
                            });
                            let mut resp = hyper::Response::new(Full::new(Bytes::from_static(answer.as_bytes())));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            if (300..400).contains(&status) {
                                resp.headers_mut().insert("location", "http://127.0.0.1:9/elsewhere".parse().unwrap());
                            }
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        }));
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// Answers the next requests with these statuses, in order.
    pub fn script(&self, statuses: &[u16]) {
        self.state.lock().unwrap().script.extend(statuses.iter().map(|s| (*s, "")));
    }

    /// Answers the next requests with these statuses and bodies, in order.
    pub fn script_answers(&self, answers: &[(u16, &'static str)]) {
        self.state.lock().unwrap().script.extend(answers);
    }

    /// The status once the script is used up.
    pub fn answer_always(&self, status: u16) {
        self.state.lock().unwrap().default_status = Some(status);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Simulates an outage: the port refuses connections.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&mut self) {
        let mut last = None;
        for _ in 0..50 {
            match TcpListener::bind(self.addr).await {
                Ok(l) => return self.serve(l),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot listen on {} again: {last:?}", self.addr);
    }

    /// Waits until `done` holds for what arrived; panics with what did arrive after 20 s.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            if Instant::now() > deadline {
                let types: Vec<String> = got.iter().map(|r| format!("{} → {}", r.event_type(), r.status)).collect();
                panic!("receiver never saw {what}; got {types:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Verifies requests with the official `standardwebhooks` Python package (PyPI), through
/// `tests/webhooks/verify.py`. `PAYSESSION_PYTHON` names the interpreter (scripts/test
/// points it at its venv); each result is `true` or the library's error.
pub fn verify_with_official_library(secret: &str, messages: &[&Received]) -> Vec<Value> {
    let v = run_python("verify.py", "the standardwebhooks verifier", &json!({"secret": secret, "messages": messages_json(messages)}));
    v["results"].as_array().unwrap().clone()
}

/// Schema errors of `documents` against `components/schemas/<schema>` of docs/openapi.json,
/// checked by the independent `jsonschema` package (empty: they conform).
pub fn schema_errors(schema: &str, documents: &[Value]) -> Vec<String> {
    let v = run_python("schema.py", "the jsonschema validator", &json!({"schema": schema, "documents": documents}));
    v["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect()
}

/// Verdicts of the independent `cryptography` package on `v1a` (Ed25519) deliveries, holding
/// only the endpoint's `whpk_` public key: `true`, or why not.
pub fn verify_v1a_independently(public_key: &str, messages: &[&Received]) -> Vec<Value> {
    let v = run_python("verify_v1a.py", "the Ed25519 verifier", &json!({"public_key": public_key, "messages": messages_json(messages)}));
    v["results"].as_array().unwrap().clone()
}

/// Verdicts of botocore's SigV4 signer (`tests/aws/verify_sigv4.py`) on requests signed
/// for `endpoint` with `credentials` (`[access key, secret, session token]`) in `region`
/// for `service`: `true`, or what it computed instead.
pub fn verify_sigv4_independently(
    endpoint: &str,
    region: &str,
    service: &str,
    credentials: [&str; 3],
    messages: &[&Received],
) -> Vec<Value> {
    let input = json!({
        "endpoint": endpoint, "region": region, "service": service,
        "access_key": credentials[0], "secret_key": credentials[1], "token": credentials[2],
        "messages": messages_json(messages),
    });
    python_script("aws/verify_sigv4.py", "botocore's SigV4 signer", &input)["results"].as_array().unwrap().clone()
}

/// Runs one of the independent verifiers in `tests/webhooks/` (Python, from PAYSESSION_PYTHON,
/// the venv scripts/test installs) with `input` on stdin; its JSON answer.
fn run_python(script: &str, what: &str, input: &Value) -> Value {
    python_script(&format!("webhooks/{script}"), what, input)
}

/// Runs `tests/<script>` with the tools interpreter, JSON in on stdin and out on stdout.
pub fn python_script(script: &str, what: &str, input: &Value) -> Value {
    use std::io::Write;
    let python = std::env::var("PAYSESSION_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = format!("{}/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = std::process::Command::new(&python)
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} (set PAYSESSION_PYTHON, or run scripts/test): {e}"));
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{what} failed (run scripts/test, which installs it): {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn messages_json(messages: &[&Received]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| {
            json!({
                "headers": m.headers.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
                "body": m.body,
            })
        })
        .collect()
}
