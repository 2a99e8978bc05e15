//! A function binary run as Lambda runs it: its own process polling a Runtime API (the
//! 2018-06-01 interface: `invocation/next`, `…/response`, `…/error`, `init/error`) that this
//! module serves on loopback, with the headers Lambda sends (request id, deadline, function
//! ARN, X-Ray trace id) and Lambda's environment. Its stdout is kept line by line, as
//! CloudWatch would receive it.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use serde_json::Value;

/// Builds function packages (`fn-<name>`, the debug profile) and returns their binaries by name.
pub fn function_binaries(names: &[&str]) -> HashMap<String, PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace).args(["build", "--quiet", "--message-format=json"]);
    for f in names {
        cmd.args(["-p", &format!("fn-{f}")]);
    }
    let out = cmd.output().expect("cargo runs");
    assert!(out.status.success(), "building the functions failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let mut paths = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else { continue };
        if let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str()) {
            paths.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    for f in names {
        assert!(paths.contains_key(*f), "no executable reported for {f}");
    }
    paths
}

/// One invocation as the Runtime API hands it out.
struct Pending {
    request_id: String,
    trace_id: String,
    payload: Vec<u8>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Pending>,
    /// request id → (the function's answer, whether it reported an error)
    answers: HashMap<String, (Value, bool)>,
    init_error: Option<String>,
}

/// A function process behind its own Runtime API.
pub struct LambdaProcess {
    child: Child,
    state: Arc<Mutex<State>>,
    lines: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl LambdaProcess {
    /// Starts `binary` as function `name` with `env` on top of Lambda's own variables.
    pub async fn start(binary: &Path, name: &str, env: &[(&str, &str)]) -> LambdaProcess {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let (base, server) = crate::loopback::serve(move |req| {
            let state = shared.clone();
            async move { Ok(runtime_api(&state, req).await) }
        })
        .await;
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", base.trim_start_matches("http://"))
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        LambdaProcess { child, state, lines, server }
    }

    /// Hands the function `payload` with Lambda's request and X-Ray trace ids and waits for its
    /// answer: (answer, whether the function reported an error).
    pub async fn invoke(&mut self, request_id: &str, xray_trace_id: &str, payload: &Value) -> (Value, bool) {
        self.state.lock().unwrap().queue.push_back(Pending {
            request_id: request_id.into(),
            trace_id: xray_trace_id.into(),
            payload: serde_json::to_vec(payload).unwrap(),
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(answer) = self.state.lock().unwrap().answers.remove(request_id) {
                return answer;
            }
            if let Some(e) = &self.state.lock().unwrap().init_error {
                panic!("the function failed at init: {e}");
            }
            assert!(self.child.try_wait().unwrap().is_none(), "the function exited; its log: {:?}", self.lines());
            assert!(Instant::now() < deadline, "no answer to {request_id}; the function's log: {:?}", self.lines());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every line the function wrote to stdout so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Stops the function, waits for the rest of its output, and returns all of it.
    pub fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.server.abort();
        std::thread::sleep(Duration::from_millis(50));
        self.lines()
    }
}

async fn runtime_api(state: &Mutex<State>, req: hyper::Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let reply = |status: u16| Response::builder().status(status).body(Full::new(Bytes::new())).unwrap();
    if path.ends_with("/runtime/invocation/next") {
        loop {
            let next = state.lock().unwrap().queue.pop_front();
            if let Some(p) = next {
                let deadline = chrono::Utc::now().timestamp_millis() + 60_000;
                return Response::builder()
                    .header("Lambda-Runtime-Aws-Request-Id", &p.request_id)
                    .header("Lambda-Runtime-Deadline-Ms", deadline.to_string())
                    .header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:test")
                    .header("Lambda-Runtime-Trace-Id", &p.trace_id)
                    .body(Full::new(Bytes::from(p.payload)))
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    if path.ends_with("/runtime/init/error") {
        state.lock().unwrap().init_error = Some(String::from_utf8_lossy(&body).into_owned());
        return reply(202);
    }
    let mut parts = path.trim_start_matches("/2018-06-01/runtime/invocation/").splitn(2, '/');
    match (parts.next(), parts.next()) {
        (Some(id), Some(kind @ ("response" | "error"))) => {
            let answer = serde_json::from_slice(&body).unwrap_or(Value::Null);
            state.lock().unwrap().answers.insert(id.to_string(), (answer, kind == "error"));
            reply(202)
        }
        _ => reply(404),
    }
}
