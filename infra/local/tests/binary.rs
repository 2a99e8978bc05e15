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
}

fn start(dir: &std::path::Path, extra_env: &[(&str, &str)]) -> Started {
    start_with(&["--data-dir", dir.to_str().unwrap()], extra_env)
}

fn start_with(args: &[&str], extra_env: &[(&str, &str)]) -> Started {
    let mut child = Command::new(env!("CARGO_BIN_EXE_paysession-local"))
        .args(["--port", "0"])
        .args(args)
        .envs(extra_env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut base, mut client_id, mut secret) = (None, None, None);
    while base.is_none() || client_id.is_none() || secret.is_none() {
        let line = lines.next().expect("output ends early").unwrap();
        if let Some(rest) = line.strip_prefix("paysession-local listening on ") {
            base = rest.split_whitespace().next().map(str::to_string);
        } else if let Some(v) = line.strip_prefix("client_id:") {
            client_id = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("client_secret:") {
            secret = Some(v.trim().to_string());
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Started { child, base: base.unwrap(), client_id: client_id.unwrap(), secret: secret.unwrap() }
}

fn stop(mut s: Started) {
    let pid = s.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = s.child.wait().unwrap();
    assert!(status.success(), "graceful exit on SIGTERM, got {status:?}");
}

async fn token(http: &reqwest::Client, s: &Started) -> String {
    let r = http
        .post(format!("{}/oauth/token", s.base))
        .basic_auth(&s.client_id, Some(&s.secret))
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

/// The same walk-through with the whole API on DynamoDB Local.
#[tokio::test]
async fn walk_through_on_dynamodb_local() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("run via scripts/test: it starts DynamoDB Local");
    assert!(endpoint.starts_with("http://127.0.0.1:"), "tests only use a local DynamoDB");
    let table = format!("local-{}", std::process::id());
    paysession_aws::table::create_table(&paysession_aws::dynamodb_client().await, &table).await.unwrap();
    walk_through(&["--store", "dynamodb", "--table", &table]).await;
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
