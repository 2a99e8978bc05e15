//! The README's first command, as a new user runs it: start the binary, read the printed
//! URL and credentials, use the API, stop it with SIGTERM, start it again, find the data.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

struct Started {
    child: Child,
    base: String,
    client_id: String,
    secret: String,
    /// The printed "signing key:" line.
    #[cfg_attr(not(feature = "dynamodb"), allow(dead_code))]
    key_source: String,
}

fn start(dir: &std::path::Path, extra_env: &[(&str, &str)]) -> Started {
    start_with(&["--data-dir", dir.to_str().unwrap()], extra_env)
}

fn start_with(args: &[&str], extra_env: &[(&str, &str)]) -> Started {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paysession-local"));
    cmd.args(["--port", "0"]).args(args).envs(extra_env.iter().copied());
    spawn(cmd)
}

/// The binary under an open-file limit of `files` (set by the shell, as an operator would).
fn start_limited(dir: &std::path::Path, files: u32) -> Started {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("ulimit -n {files} && exec \"$0\" \"$@\""), env!("CARGO_BIN_EXE_paysession-local")]);
    cmd.args(["--port", "0", "--data-dir", dir.to_str().unwrap()]);
    spawn(cmd)
}

fn spawn(cmd: Command) -> Started {
    spawn_logging(cmd, "warn", |_| {})
}

/// Starts the binary at log level `level`; `rest` gets every output line after the banner.
fn spawn_logging(mut cmd: Command, level: &str, rest: impl Fn(String) + Send + 'static) -> Started {
    let mut child = cmd.env("RUST_LOG", level).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut base, mut client_id, mut secret, mut key_source) = (None, None, None, String::new());
    while base.is_none() || client_id.is_none() || secret.is_none() {
        let line = lines.next().expect("output ends early").unwrap();
        if let Some(v) = line.strip_prefix("signing key:") {
            key_source = v.trim().to_string();
        } else if let Some(rest) = line.strip_prefix("paysession-local listening on ") {
            base = rest.split_whitespace().next().map(str::to_string);
        } else if let Some(v) = line.strip_prefix("client_id:") {
            client_id = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("client_secret:") {
            secret = Some(v.trim().to_string());
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(rest));
    Started { child, base: base.unwrap(), client_id: client_id.unwrap(), secret: secret.unwrap(), key_source }
}

fn stop(mut s: Started) {
    let pid = s.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = s.child.wait().unwrap();
    assert!(status.success(), "graceful exit on SIGTERM, got {status:?}");
}

async fn token(http: &reqwest::Client, s: &Started) -> String {
    token_for(http, s, &s.client_id, &s.secret).await
}

async fn token_for(http: &reqwest::Client, s: &Started, client_id: &str, secret: &str) -> String {
    let r = http
        .post(format!("{}/oauth/token", s.base))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn walk_through_then_restart() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--data-dir", dir.path().to_str().unwrap()];
    walk_through(&args).await;
}

/// Checks that the DynamoDB endpoint is the DynamoDB Local `scripts/test` started.
#[cfg(feature = "dynamodb")]
fn local_dynamodb() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("run via scripts/test: it starts DynamoDB Local");
    assert!(endpoint.starts_with("http://127.0.0.1:"), "tests only use a local DynamoDB, not {endpoint}");
}

/// The same walk-through with the whole API on DynamoDB Local.
#[cfg(feature = "dynamodb")]
#[tokio::test]
async fn walk_through_on_dynamodb_local() {
    local_dynamodb();
    let table = format!("local-{}", std::process::id());
    paysession_aws::table::create_table(&paysession_aws::dynamodb_client().await.unwrap(), &table).await.unwrap();
    walk_through(&["--store", "dynamodb", "--table", &table]).await;
}

/// `paysession-admin` beside this binary (the workspace build makes both).
#[cfg(feature = "dynamodb")]
fn admin(args: &[&str], env: &[(&str, &str)]) -> (bool, Value, String) {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_paysession-local")).with_file_name("paysession-admin");
    assert!(exe.exists(), "{} is built by the workspace build (cargo nextest run --workspace)", exe.display());
    let mut cmd = Command::new(exe);
    cmd.env_remove("PAYSESSION_TOKEN_SIGNING_KEY").env_remove("PAYSESSION_TOKEN_SIGNING_KEY_PARAMETER");
    let out = cmd.envs(env.iter().copied()).args(args).output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), json, String::from_utf8_lossy(&out.stderr).into())
}

/// A merchant an operator creates with `paysession-admin --table` gets tokens from the
/// local server on that table: both use the deployment's key when the environment names
/// one, and the table's stored key when the operator asks the admin CLI for it.
#[cfg(feature = "dynamodb")]
#[tokio::test]
async fn admin_created_merchants_authenticate_on_dynamodb() {
    local_dynamodb();
    let table = format!("admin-local-{}", std::process::id());
    let (ok, _, err) = admin(&["--table", &table, "init"], &[]);
    assert!(ok, "{err}");
    let http = reqwest::Client::new();
    let deployment_key = [("PAYSESSION_TOKEN_SIGNING_KEY", "c2lnbmluZy1rZXktb2YtdGhlLWRlcGxveW1lbnQtMDAx")];
    let (ok, created, err) = admin(&["--table", &table, "merchant", "create", "--name", "Ops Shop"], &deployment_key);
    assert!(ok, "{err}");
    let (id, secret) = (created["client_id"].as_str().unwrap(), created["client_secret"].as_str().unwrap());

    let s = start_with(&["--store", "dynamodb", "--table", &table], &deployment_key);
    assert!(s.key_source.contains("PAYSESSION_TOKEN_SIGNING_KEY"), "says which key: {}", s.key_source);
    token_for(&http, &s, id, secret).await;
    token(&http, &s).await;
    stop(s);

    // No key in the environment: the server keeps a key of the table's own and says how
    // the admin CLI matches it; the admin CLI refuses to guess.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paysession-local"));
    cmd.env_remove("PAYSESSION_TOKEN_SIGNING_KEY").env_remove("PAYSESSION_TOKEN_SIGNING_KEY_PARAMETER");
    cmd.args(["--port", "0", "--store", "dynamodb", "--table", &table]);
    let s = spawn(cmd);
    assert!(s.key_source.contains("--local-server-key"), "{}", s.key_source);
    let (ok, _, err) = admin(&["--table", &table, "merchant", "create", "--name", "Local Shop"], &[]);
    assert!(!ok && err.contains("--local-server-key"), "{err}");
    let (ok, created, err) = admin(&["--table", &table, "--local-server-key", "merchant", "create", "--name", "Local Shop"], &[]);
    assert!(ok, "{err}");
    token_for(&http, &s, created["client_id"].as_str().unwrap(), created["client_secret"].as_str().unwrap()).await;
    stop(s);
}

/// Two instances on one table (as two Lambda instances would be) share one count of
/// failed authentications: 40 wrong secrets for one client, 20 to each, concurrently,
/// get exactly 10 checked answers (401) and 30 × 429 with Retry-After; the right secret
/// is never refused, and after the window failures are checked again.
#[cfg(feature = "dynamodb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_are_limited_across_instances() {
    local_dynamodb();
    let table = format!("limit-{}", std::process::id());
    paysession_aws::table::create_table(&paysession_aws::dynamodb_client().await.unwrap(), &table).await.unwrap();
    let key = [("PAYSESSION_TOKEN_SIGNING_KEY", "c2lnbmluZy1rZXktb2YtdGhlLWRlcGxveW1lbnQtMDAy")];
    let args = ["--store", "dynamodb", "--table", table.as_str()];
    let (a, b) = (start_with(&args, &key), start_with(&args, &key));
    assert_eq!((a.client_id.as_str(), a.secret.as_str()), (b.client_id.as_str(), b.secret.as_str()), "one deployment key, one demo secret");
    let http = reqwest::Client::new();
    let attempt = |base: String, secret: String| {
        let http = http.clone();
        let id = a.client_id.clone();
        async move {
            let r = http
                .post(format!("{base}/oauth/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap()))
        }
    };
    // Windows are whole minutes: start the burst with at least 40 s of one left.
    let into = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() % 60_000;
    if into > 20_000 {
        tokio::time::sleep(std::time::Duration::from_millis((60_000 - into + 50) as u64)).await;
    }
    let burst = (0..40).map(|i| attempt(if i % 2 == 0 { a.base.clone() } else { b.base.clone() }, format!("sk_wrong_{i}")));
    let answers = futures_join(burst).await;
    let checked = answers.iter().filter(|(status, _)| *status == 401).count();
    let limited: Vec<_> = answers.iter().filter(|(status, _)| *status == 429).collect();
    assert_eq!((checked, limited.len()), (10, 30), "{answers:?}");
    assert!(limited.iter().all(|(_, wait)| wait.is_some_and(|w| (1..=60).contains(&w))), "{limited:?}");
    assert_eq!(attempt(a.base.clone(), a.secret.clone()).await.0, 200, "the right secret on one instance");
    assert_eq!(attempt(b.base.clone(), b.secret.clone()).await.0, 200, "and on the other");
    let wait = limited[0].1.unwrap();
    let (status, wait_now) = attempt(b.base.clone(), "sk_wrong".into()).await;
    assert_eq!(status, 429);
    tokio::time::sleep(std::time::Duration::from_secs(wait_now.unwrap_or(wait))).await;
    assert_eq!(attempt(a.base.clone(), "sk_wrong".into()).await.0, 401, "a new window checks again");
    assert_eq!(attempt(b.base.clone(), b.secret.clone()).await.0, 200);
    stop(a);
    stop(b);
}

/// Runs the futures concurrently and collects their outputs in order.
#[cfg(feature = "dynamodb")]
async fn futures_join<F: std::future::Future + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

async fn walk_through(args: &[&str]) {
    let http = reqwest::Client::new();
    let s = start_with(args, &[]);
    assert_eq!(s.client_id, "cid_demo");
    assert_eq!(http.get(format!("{}/health", s.base)).send().await.unwrap().status(), 200);
    let t = token(&http, &s).await;
    let created: Value = http
        .post(format!("{}/v1/payment_sessions", s.base))
        .bearer_auth(&t)
        .json(&json!({"amount": 2500, "currency": "JPY", "customer_id": "cus_9", "reference": "walk-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(created["url"].as_str().unwrap().starts_with(&format!("{}/pay/", s.base)));
    let secret = s.secret.clone();
    stop(s);

    let s = start_with(args, &[]);
    assert_eq!(s.secret, secret, "same data dir, same demo secret");
    let t = token(&http, &s).await;
    let got: Value =
        http.get(format!("{}/v1/payment_sessions?reference=walk-1", s.base)).bearer_auth(&t).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["data"][0]["id"], id.as_str());
    stop(s);
}

/// Writes are committed in groups: an acknowledged create (201) survives `kill -9` in the
/// middle of a burst of concurrent creates, and an id-keyed retry after restart finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut s = start(dir.path(), &[]);
    let t = token(&http, &s).await;
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..32)
        .map(|w| {
            let (http, base, t, acknowledged) = (http.clone(), s.base.clone(), t.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let body = json!({"amount": 100, "currency": "EUR", "customer_id": "cus_k", "reference": format!("k9-{w}-{n}")});
                    match http.post(format!("{base}/v1/payment_sessions")).bearer_auth(&t).json(&body).send().await {
                        Ok(r) if r.status() == 201 => {
                            let id = r.json::<Value>().await.ok().and_then(|v| v["id"].as_str().map(str::to_string));
                            // A body cut off by the kill was not acknowledged.
                            if let Some(id) = id {
                                acknowledged.lock().unwrap().push(id);
                            }
                        }
                        Ok(r) => panic!("create answered {}", r.status()),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    // Kill once a few hundred creates are acknowledged, while the rest are in flight.
    while acknowledged.lock().unwrap().len() < 300 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    for w in workers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let s = start(dir.path(), &[]);
    let t = token(&http, &s).await;
    let mut missing = Vec::new();
    for id in &acknowledged {
        let r = http.get(format!("{}/v1/payment_sessions/{id}", s.base)).bearer_auth(&t).send().await.unwrap();
        if r.status() != 200 {
            missing.push(id.clone());
        }
    }
    assert!(missing.is_empty(), "{} of {} acknowledged creates lost: {missing:?}", missing.len(), acknowledged.len());
    stop(s);
}

/// Logs written to a pipe or file carry no colour codes; `--log-format json` writes one JSON
/// object per line, as the Lambda functions do.
#[tokio::test]
async fn logs_are_plain_in_a_pipe_and_json_on_request() {
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_paysession-local"));
        cmd.args(["--port", "0", "--data-dir", dir.path().to_str().unwrap(), "--log-format", format]);
        let s = spawn_logging(cmd, "info", move |line| sink.lock().unwrap().push(line));
        let http = reqwest::Client::new();
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let health = http.get(format!("{}/health", s.base)).header("traceparent", parent).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let request_id = health.headers()["x-request-id"].to_str().unwrap().to_string();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !seen.lock().unwrap().iter().any(|l| l.contains("/health")) {
            assert!(std::time::Instant::now() < deadline, "no request log line: {:?}", seen.lock().unwrap());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        stop(s);
        let lines = seen.lock().unwrap().clone();
        assert!(lines.iter().all(|l| !l.contains('\u{1b}')), "{format}: colour codes in a pipe: {lines:?}");
        let request = lines.iter().find(|l| l.contains("/health")).unwrap();
        if format == "json" {
            // Lambda's JSON log shape: everything at the top level, the request's span included.
            let v: Value = serde_json::from_str(request).unwrap_or_else(|e| panic!("not JSON ({e}): {request}"));
            assert_eq!(
                (&v["level"], &v["message"], &v["function"]),
                (&json!("INFO"), &json!("request"), &json!("paysession-local")),
                "{v}"
            );
            assert!(chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap()).is_ok(), "{v}");
            assert_eq!((&v["route"], &v["status"]), (&json!("/health"), &json!(200)), "{v}");
            assert_eq!(v["request_id"], json!(request_id), "{v}");
            assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "the caller's trace is continued: {v}");
            let span = v["span_id"].as_str().unwrap();
            assert!(span.len() == 16 && span != "00f067aa0ba902b7", "a span of its own: {v}");
            assert!(v["cold_start"].is_boolean() && v.get("fields").is_none(), "{v}");
        }
    }
}

#[tokio::test]
async fn demo_credentials_from_environment() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("PAYSESSION_DEMO_CLIENT_ID", "cid_fixed"), ("PAYSESSION_DEMO_CLIENT_SECRET", "fixed-secret-123")];
    let s = start(dir.path(), &env);
    assert_eq!((s.client_id.as_str(), s.secret.as_str()), ("cid_fixed", "fixed-secret-123"));
    token(&reqwest::Client::new(), &s).await;
    stop(s);
    // Changing the configured secret rotates the stored hash; the old one stops working.
    let s = start(dir.path(), &[("PAYSESSION_DEMO_CLIENT_ID", "cid_fixed"), ("PAYSESSION_DEMO_CLIENT_SECRET", "new-secret-456")]);
    let http = reqwest::Client::new();
    token(&http, &s).await;
    let old = http
        .post(format!("{}/oauth/token", s.base))
        .basic_auth("cid_fixed", Some("fixed-secret-123"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
    stop(s);
}

#[test]
fn bad_flags_are_explained() {
    let out = Command::new(env!("CARGO_BIN_EXE_paysession-local")).args(["--port", "http"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port"));
}

/// User plus system CPU seconds of a process so far (`/proc/PID/stat`).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Slowloris and a flood of idle connections beyond the open-file limit: the server closes
/// the slow ones after the header timeout, sheds the flood past its caps, does not spin in
/// its accept loop, and keeps answering /health throughout. (Bounded: 50 slow and 400 idle
/// connections against a 256-file limit.)
#[tokio::test]
async fn idle_and_slow_connections_do_not_take_it_down() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let dir = tempfile::tempdir().unwrap();
    let s = start_limited(dir.path(), 256);
    let addr = s.base.trim_start_matches("http://").to_string();
    let health = async || {
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build().unwrap();
        // A connection that lands past the hard cap is closed at once: a client retries.
        for _ in 0..20 {
            if let Ok(r) = http.get(format!("{}/health", s.base)).send().await {
                return r.status().as_u16();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        0
    };

    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).unwrap();
            c.write_all(b"GET /health HTTP/1.1\r\nHost: a\r\nX-Slow: ").unwrap();
            c
        })
        .collect();
    let idle: Vec<TcpStream> = (0..400).filter_map(|_| TcpStream::connect(&addr).ok()).collect();
    assert_eq!(health().await, 200, "answers while 50 slow and {} idle connections are held", idle.len());

    let before = cpu_seconds(s.child.id());
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let spent = cpu_seconds(s.child.id()) - before;
    assert!(spent < 1.0, "the accept loop must not spin: {spent:.2} CPU seconds in 2 s");
    assert_eq!(health().await, 200);

    // Past the header timeout every slow connection has been closed by the server.
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    // Closed: reading reaches the end (after any answer) or a reset; a read that times out
    // means the connection is still held open.
    let ended = |c: &mut TcpStream| {
        c.set_read_timeout(Some(std::time::Duration::from_millis(500))).unwrap();
        let mut buf = [0u8; 512];
        loop {
            match c.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return false,
                Err(_) => return true,
            }
        }
    };
    let closed = slow.iter_mut().map(ended).filter(|&closed| closed).count();
    assert_eq!(closed, 50, "slow connections closed by the header timeout");
    drop(idle);
    assert_eq!(health().await, 200);
    stop(s);
}
