//! Test harness: a real `paysession-local` server in-process on a free port, over a
//! temporary data directory, and a small HTTP client for it; and the storage contract.

pub mod aws;
pub mod capacity;
pub mod contract;
pub mod dynamo;
pub mod faults;
pub mod lambda_process;
pub mod logs;
pub mod loopback;
pub mod page;
pub mod receiver;
pub mod stripe;
pub mod subscription;

use std::path::{Path, PathBuf};

use paysession_local::{LocalOptions, Running, start};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub struct Server {
    pub running: Option<Running>,
    pub base: String,
    pub client_id: String,
    pub client_secret: String,
    pub dir: PathBuf,
    /// Started with `--allow-private-webhooks` (receivers on loopback).
    pub allow_private_webhooks: bool,
    /// Where Stripe-configured merchants reach Stripe (a stand-in), kept across restarts.
    pub stripe_api_base: Option<String>,
    _tmp: Option<tempfile::TempDir>,
    pub http: reqwest::Client,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// Field paths of a problem's `errors`.
    pub fn error_fields(&self) -> Vec<(String, String)> {
        self.json()["errors"]
            .as_array()
            .map(|a| a.iter().map(|e| (e["field"].as_str().unwrap().to_string(), e["code"].as_str().unwrap().to_string())).collect())
            .unwrap_or_default()
    }
}

async fn start_in(dir: &Path, allow_private_webhooks: bool) -> Running {
    start_in_with(dir, allow_private_webhooks, None).await
}

async fn start_in_with(dir: &Path, allow_private_webhooks: bool, stripe_api_base: Option<String>) -> Running {
    start(LocalOptions {
        host: "127.0.0.1".into(),
        port: 0,
        data_dir: dir.to_path_buf(),
        table: None,
        dynamodb_endpoint: None,
        public_url: None,
        allow_private_webhooks,
        demo_client_id: None,
        demo_client_secret: None,
        stripe_api_base,
    })
    .await
    .expect("server starts")
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(false).await
    }

    /// A server that accepts webhook receivers on loopback (`--allow-private-webhooks`).
    pub async fn start_with_private_webhooks() -> Server {
        Server::start_with(true).await
    }

    async fn start_with(allow_private_webhooks: bool) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::start_at_with(&dir, allow_private_webhooks).await;
        s._tmp = Some(tmp);
        s
    }

    /// A server whose Stripe-configured merchants reach Stripe at `api_base` (a stand-in),
    /// delivering webhooks to loopback receivers.
    pub async fn start_with_stripe(api_base: &str) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let running = start_in_with(tmp.path(), true, Some(api_base.to_string())).await;
        Server {
            base: running.base_url.clone(),
            client_id: running.demo.client_id.clone(),
            client_secret: running.demo.client_secret.clone(),
            dir: tmp.path().to_path_buf(),
            allow_private_webhooks: true,
            stripe_api_base: Some(api_base.to_string()),
            running: Some(running),
            _tmp: Some(tmp),
            http: reqwest::Client::new(),
        }
    }

    /// `paysession-local --store dynamodb` on `table` (DynamoDB Local, from the environment).
    pub async fn start_on_table(table: &str) -> Server {
        Server::start_on_table_with(table, None, false).await
    }

    /// [`Server::start_on_table`] with DynamoDB at `dynamodb_endpoint` (a fault-injecting
    /// proxy, say), allowed to deliver webhooks to loopback receivers if asked.
    pub async fn start_on_table_with(table: &str, dynamodb_endpoint: Option<String>, allow_private_webhooks: bool) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let running = start(LocalOptions {
            host: "127.0.0.1".into(),
            port: 0,
            data_dir: tmp.path().to_path_buf(),
            table: Some(table.to_string()),
            dynamodb_endpoint,
            public_url: None,
            allow_private_webhooks,
            demo_client_id: None,
            demo_client_secret: None,
            stripe_api_base: None,
        })
        .await
        .expect("server starts");
        Server {
            base: running.base_url.clone(),
            client_id: running.demo.client_id.clone(),
            client_secret: running.demo.client_secret.clone(),
            dir: tmp.path().to_path_buf(),
            allow_private_webhooks,
            stripe_api_base: None,
            running: Some(running),
            _tmp: Some(tmp),
            http: reqwest::Client::new(),
        }
    }

    pub async fn start_at(dir: &Path) -> Server {
        Server::start_at_with(dir, false).await
    }

    async fn start_at_with(dir: &Path, allow_private_webhooks: bool) -> Server {
        let running = start_in(dir, allow_private_webhooks).await;
        Server {
            base: running.base_url.clone(),
            client_id: running.demo.client_id.clone(),
            client_secret: running.demo.client_secret.clone(),
            dir: dir.to_path_buf(),
            allow_private_webhooks,
            stripe_api_base: None,
            running: Some(running),
            _tmp: None,
            http: reqwest::Client::new(),
        }
    }

    /// Stops and starts the server on the same data directory (a new port).
    pub async fn restart(&mut self) {
        self.running.take().expect("running").stop().await;
        let running = start_in_with(&self.dir, self.allow_private_webhooks, self.stripe_api_base.clone()).await;
        self.base = running.base_url.clone();
        self.client_id = running.demo.client_id.clone();
        self.client_secret = running.demo.client_secret.clone();
        self.running = Some(running);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn token_for(&self, client_id: &str, secret: &str, scope: Option<&str>) -> String {
        client_token(&self.http, &self.base, client_id, secret, scope).await
    }

    pub async fn token(&self) -> String {
        self.token_for(&self.client_id, &self.client_secret, None).await
    }

    /// A second merchant with its own client, through the same provisioning the CLI uses.
    pub async fn other_merchant(&self) -> (String, String) {
        let core = &self.running.as_ref().unwrap().local.app.core;
        let p = paysession_app::merchants::provision(
            core.store.as_ref(),
            &core.keys,
            &paysession_app::merchants::NewMerchant { name: "Other".into(), ..Default::default() },
            None,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        (p.client_id, p.client_secret.expose().clone())
    }

    pub async fn call(&self, method: Method, path: &str, token: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> Resp {
        let mut rb = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            rb = rb.header("content-type", "application/json").body(b.to_string());
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.expect("request sent");
        Resp { status: r.status(), headers: r.headers().clone(), text: r.text().await.unwrap() }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, token, None, &[]).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.call(Method::POST, path, token, Some(body), &[]).await
    }

    pub async fn create(&self, token: &str, body: &Value) -> Resp {
        self.post("/v1/payment_sessions", token, body).await
    }

    pub async fn advance_clock(&self, token: &str, seconds: i64) -> Resp {
        self.post("/v1/test_clock/advance", token, &json!({"seconds": seconds})).await
    }
}

/// An access token from `base` by client credentials (HTTP Basic).
pub async fn client_token(http: &reqwest::Client, base: &str, client_id: &str, secret: &str, scope: Option<&str>) -> String {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let r = http.post(format!("{base}/oauth/token")).basic_auth(client_id, Some(secret)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 200, "token request failed");
    r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
}

/// A minimal valid create body with a given reference.
pub fn session_body(reference: &str) -> Value {
    json!({"amount": 1050, "currency": "EUR", "customer_id": "cus_1", "reference": reference})
}

/// Percent-decodes a query value.
pub fn decode(s: &str) -> String {
    paysession_http::request::percent_decode(s.split('&').next().unwrap_or(s)).unwrap_or_default()
}

/// The JSON body of a `lambda_http` response (`Null` when it has none).
pub fn lambda_json(resp: &http::Response<paysession_http::lambda_http::Body>) -> Value {
    use paysession_http::lambda_http::Body;
    match resp.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        Body::Binary(b) => serde_json::from_slice(b).unwrap(),
        _ => Value::Null,
    }
}
