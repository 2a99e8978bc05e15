//! The functions' log lines as Lambda takes them: the real binaries run as Lambda runs them
//! (`paysession_tests::lambda_process`), with the variables template.yaml's `LoggingConfig`
//! makes Lambda set, on DynamoDB Local.

use std::sync::Arc;

use paysession_app::merchants::{NewMerchant, provision};
use paysession_app::ports::MerchantStore;
use paysession_runtime::{build_core, decode_key};
use paysession_tests::lambda_process::{LambdaProcess, function_binaries};
use serde_json::{Value, json};

const KEY_B64: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn create_event(request_id: &str, token: &str, reference: &str) -> Value {
    let body = json!({"amount": 1250, "currency": "EUR", "customer_id": "cus_logs", "reference": reference}).to_string();
    json!({
        "version": "2.0",
        "routeKey": "POST /v1/payment_sessions",
        "rawPath": "/v1/payment_sessions",
        "rawQueryString": "",
        "headers": {
            "authorization": format!("Bearer {token}"),
            "content-type": "application/json",
            "content-length": body.len().to_string(),
            "host": "api.example.com",
            "traceparent": format!("00-{TRACE}-{PARENT}-01"),
            "x-amzn-trace-id": "Root=1-691ffd08-3c5a0b1e2d4f6a7b8c9d0e1f",
        },
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
            "http": {"method": "POST", "path": "/v1/payment_sessions", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.17", "userAgent": "t"},
            "requestId": request_id, "routeKey": "POST /v1/payment_sessions", "stage": "$default",
            "time": "08/Dec/2026:02:00:00 +0000", "timeEpoch": 1796695200000_i64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// Every line is one JSON object with Lambda's top-level fields.
fn parsed(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l}"));
            assert!(v.is_object(), "{l}");
            assert!(chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap_or_default()).is_ok(), "timestamp: {l}");
            assert!(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&v["level"].as_str().unwrap_or_default()), "level: {l}");
            assert!(v["message"].is_string() && v.get("fields").is_none(), "message at the top level: {l}");
            v
        })
        .collect()
}

fn aws_env<'a>(table: &'a str, level: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", level),
        // Lambda's level wins over it.
        ("RUST_LOG", "debug"),
        ("PAYSESSION_TABLE", table),
        ("PAYSESSION_TOKEN_SIGNING_KEY", KEY_B64),
        ("PAYSESSION_PUBLIC_URL", "https://pay.example"),
        ("PAYSESSION_SANDBOX", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    for k in ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_SCHEDULER"] {
        if let Ok(v) = std::env::var(k) {
            env.push((k, Box::leak(v.into_boxed_str())));
        }
    }
    env
}

#[tokio::test]
async fn a_functions_lines_are_lambda_json_carrying_its_request_and_trace() {
    let store = Arc::new(paysession_tests::dynamo::fresh_table().await);
    let table = store.table().to_string();
    let core = build_core(store.clone(), decode_key(KEY_B64, "key").unwrap(), "https://pay.example".into(), false).await.unwrap();
    let merchant =
        provision(core.store.as_ref(), &core.keys, &NewMerchant { name: "Logs".into(), ..Default::default() }, None, chrono::Utc::now())
            .await
            .unwrap();
    let client = core.store.get_client(&merchant.client_id).await.unwrap().unwrap();
    let token = core.keys.issue(&client, &paysession_app::auth::Scope::ALL);
    let bins = function_binaries(&["session-create", "processor-sync"]);

    // session-create at INFO: its request line carries the API Gateway request id, the
    // caller's trace (a span of its own), the merchant it authenticated, and whether it was
    // the instance's first request.
    let mut create = LambdaProcess::start(&bins["session-create"], "paysession-session-create", &aws_env(&table, "INFO")).await;
    for (n, gateway_id) in ["gw-1", "gw-2"].into_iter().enumerate() {
        let (answer, failed) = create
            .invoke(
                &format!("lambda-{n}"),
                "Root=1-691ffd08-000000000000000000000001",
                &create_event(gateway_id, &token, &format!("logs-{n}")),
            )
            .await;
        assert!(!failed && answer["statusCode"] == 201, "{answer}");
    }
    let lines = parsed(&create.stop());
    let requests: Vec<&Value> = lines.iter().filter(|v| v["message"] == "request").collect();
    assert_eq!(requests.len(), 2, "one request line per call: {lines:?}");
    for (v, (id, cold)) in requests.iter().zip([("gw-1", true), ("gw-2", false)]) {
        assert_eq!((&v["request_id"], &v["cold_start"]), (&json!(id), &json!(cold)), "{v}");
        assert_eq!((&v["trace_id"], &v["merchant_id"]), (&json!(TRACE), &json!(merchant.merchant.id)), "{v}");
        assert_eq!(v["function"], "paysession-session-create", "{v}");
        let span = v["span_id"].as_str().unwrap();
        assert!(span.len() == 16 && span != PARENT, "a span of its own: {v}");
        assert_eq!((&v["status"], &v["route"]), (&json!(201), &json!("/v1/payment_sessions")), "{v}");
    }

    // ERROR silences info lines (RUST_LOG=debug notwithstanding); an event function's failed
    // invocation is logged with Lambda's request id and the X-Ray trace it was given.
    let mut create = LambdaProcess::start(&bins["session-create"], "paysession-session-create", &aws_env(&table, "ERROR")).await;
    let (answer, _) =
        create.invoke("lambda-quiet", "Root=1-691ffd08-000000000000000000000002", &create_event("gw-3", &token, "logs-3")).await;
    assert_eq!(answer["statusCode"], 201, "{answer}");
    let quiet = create.stop();
    assert!(parsed(&quiet).iter().all(|v| v["level"] == "ERROR"), "only errors at ERROR: {quiet:?}");

    let mut sync = LambdaProcess::start(&bins["processor-sync"], "paysession-processor-sync", &aws_env(&table, "ERROR")).await;
    let (_, failed) = sync
        .invoke("lambda-sync-1", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", &json!({"nonsense": true}))
        .await;
    assert!(failed, "a schedule input it cannot read fails the invocation");
    let lines = parsed(&sync.stop());
    let failure = lines.iter().find(|v| v["message"] == "invocation failed").unwrap_or_else(|| panic!("no failure line: {lines:?}"));
    assert_eq!(
        (&failure["request_id"], &failure["trace_id"]),
        (&json!("lambda-sync-1"), &json!("5759e988bd862e3fe1be46a994272793")),
        "{failure}"
    );
    assert_eq!(
        (&failure["function"], &failure["cold_start"], &failure["level"]),
        (&json!("paysession-processor-sync"), &json!(true), &json!("ERROR")),
        "{failure}"
    );
}
