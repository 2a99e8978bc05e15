//! The Lambda path: API Gateway HTTP API v2 event JSON, parsed by `lambda_http` exactly as
//! the runtime does, handed to the same invoke function the deployed binaries run.

use paysession_http::Route;
use paysession_http::lambda_http::request::from_str;
use paysession_http::mount::invoke;
use paysession_tests::Server;
use paysession_tests::lambda_json;
use serde_json::{Value, json};

fn event(method: &str, path: &str, token: &str, body: Option<&Value>, path_params: Value) -> String {
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "authorization": format!("Bearer {token}"),
            "content-type": "application/json",
            "host": "abc123.execute-api.eu-west-1.amazonaws.com",
            "x-request-id": "fixture-1"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "fixture"},
            "requestId": "req-fixture",
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "21/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1_795_250_000_000u64
        },
        "pathParameters": path_params,
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false
    })
    .to_string()
}

#[tokio::test]
async fn create_and_get_through_api_gateway_events() {
    let s = Server::start().await;
    let deps = &s.running.as_ref().unwrap().local.app;
    let token = s.token().await;

    let create =
        from_str(&event("POST", "/v1/payment_sessions", &token, Some(&paysession_tests::session_body("fx-1")), json!(null))).unwrap();
    let resp = invoke(Route::CreateSession, deps, create).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-request-id"], "fixture-1");
    let id = lambda_json(&resp)["id"].as_str().unwrap().to_string();

    let path = format!("/v1/payment_sessions/{id}");
    let get = from_str(&event("GET", &path, &token, None, json!({"id": id}))).unwrap();
    let resp = invoke(Route::GetSession, deps, get).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(lambda_json(&resp)["reference"], "fx-1");

    let unauth = from_str(&event("GET", &path, "nope", None, json!({"id": id}))).unwrap();
    assert_eq!(invoke(Route::GetSession, deps, unauth).await.status(), 401);
}
