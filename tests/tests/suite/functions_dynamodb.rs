//! Every HTTP function through its real `lambda_http` handler, fed API Gateway HTTP API v2
//! event fixtures (tests/fixtures/apigw-v2), on DynamoDB Local. Also counts the DynamoDB
//! requests each operation makes.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use paysession_app::merchants::{NewMerchant, provision};
use paysession_http::Route;
use paysession_http::lambda_http::request::from_str;
use paysession_http::mount::{Mounted, invoke};
use paysession_runtime::{FunctionEnv, KeySource, build_core, decode_key};
use paysession_tests::lambda_json;
use serde_json::Value;

fn fixture(name: &str, vars: &[(&str, &str)]) -> String {
    let path = format!("{}/fixtures/apigw-v2/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (k, v) in vars {
        text = text.replace(&format!("{{{{{k}}}}}"), v);
    }
    // Bodies are JSON strings inside the event: placeholders there were escaped with it.
    assert!(!text.contains("{{"), "unfilled placeholder in {name}: {text}");
    text
}

const KEY_B64: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

#[tokio::test]
async fn every_function_on_dynamodb_local() {
    let (store, counter) = paysession_tests::dynamo::counted_table().await;
    let store = Arc::new(store);
    let mut core = build_core(store.clone(), decode_key(KEY_B64, "key").unwrap(), "https://pay.example".into(), false).await.unwrap();
    // The counts below are a warm instance's: what it read stays fresh for the whole test
    // however slow the machine (the freshness window itself is tested in `paysession_app::recent`).
    core.recent = Arc::new(paysession_app::recent::RecentMerchants::new(std::time::Duration::from_secs(3600)));
    let deps = Mounted { core, payments: paysession_app::Payments::sandbox(), queue: Arc::new(paysession_app::ports::PolledQueue) };
    let merchant = provision(
        deps.core.store.as_ref(),
        &deps.core.keys,
        &NewMerchant { name: "Fixture".into(), ..Default::default() },
        None,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    counter.take();
    let mut counts: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();

    let basic = base64::engine::general_purpose::STANDARD.format_basic(&merchant.client_id, merchant.client_secret.expose());
    let resp =
        invoke(Route::OAuthToken, &deps, from_str(&fixture("oauth-token", &[("basic", &basic), ("request_id", "r-token")])).unwrap()).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    counts.insert("POST /oauth/token", counter.take());
    let token = lambda_json(&resp)["access_token"].as_str().unwrap().to_string();
    let wrong = base64::engine::general_purpose::STANDARD.format_basic(&merchant.client_id, "sk_wrong");
    let resp =
        invoke(Route::OAuthToken, &deps, from_str(&fixture("oauth-token", &[("basic", &wrong), ("request_id", "r-token-2")])).unwrap())
            .await;
    assert_eq!(resp.status(), 401, "{:?}", resp.body());
    counts.insert("POST /oauth/token (wrong secret)", counter.take());
    let v = |extra: &[(&'static str, String)]| {
        let mut all = vec![("token", token.clone()), ("request_id", "r-1".to_string())];
        all.extend(extra.iter().cloned());
        all
    };
    let call = |route: Route, name: &'static str, vars: Vec<(&'static str, String)>| {
        let deps = deps.clone();
        async move {
            let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            invoke(route, &deps, from_str(&fixture(name, &refs)).unwrap()).await
        }
    };

    let resp = call(Route::CreateSession, "session-create", v(&[("reference", "fx-1".into())])).await;
    assert_eq!(resp.status(), 201, "{:?}", resp.body());
    assert_eq!(resp.headers()["x-request-id"], "r-1");
    counts.insert("POST /v1/payment_sessions (cold instance)", counter.take());
    let id = lambda_json(&resp)["id"].as_str().unwrap().to_string();
    assert!(lambda_json(&resp)["url"].as_str().unwrap().starts_with("https://pay.example/pay/"));
    counter.take_written();
    let resp = call(Route::CreateSession, "session-create", v(&[("reference", "fx-1b".into())])).await;
    assert_eq!(resp.status(), 201, "{:?}", resp.body());
    counts.insert("POST /v1/payment_sessions", counter.take());
    let create_written = counter.take_written();

    let dup = call(Route::CreateSession, "session-create", v(&[("reference", "fx-1".into())])).await;
    assert_eq!(dup.status(), 409);
    counts.insert("POST /v1/payment_sessions (duplicate)", counter.take());

    let resp = call(Route::GetSession, "session-get", v(&[("id", id.clone())])).await;
    assert_eq!((resp.status().as_u16(), lambda_json(&resp)["id"].as_str()), (200, Some(id.as_str())));
    counts.insert("GET /v1/payment_sessions/{id}", counter.take());

    let resp = call(Route::ListSessions, "session-list", v(&[])).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(lambda_json(&resp)["data"].as_array().unwrap().len(), 2);
    counts.insert("GET /v1/payment_sessions?customer_id", counter.take());
    // The merchant's whole list: its 16 shards and the unsharded partition, merged.
    let text = fixture("session-list", &[("token", &token), ("request_id", "r-1")]);
    let mut event: Value = serde_json::from_str(&text).unwrap();
    event["queryStringParameters"].as_object_mut().unwrap().remove("customer_id");
    event["rawQueryString"] = Value::String("limit=10".into());
    let resp = invoke(Route::ListSessions, &deps, from_str(&event.to_string()).unwrap()).await;
    assert_eq!((resp.status().as_u16(), lambda_json(&resp)["data"].as_array().unwrap().len()), (200, 2));
    counts.insert("GET /v1/payment_sessions", counter.take());

    let resp = call(Route::ConfirmSession, "session-confirm", v(&[("id", id.clone())])).await;
    assert_eq!(resp.status(), 409, "auto-confirmed sessions cannot be confirmed again");
    counts.insert("POST …/confirm (refused)", counter.take());

    let resp = call(Route::CancelSession, "session-cancel", v(&[("id", id.clone())])).await;
    assert_eq!((resp.status().as_u16(), lambda_json(&resp)["status"].as_str()), (200, Some("cancelled")));
    counts.insert("POST …/cancel", counter.take());

    let resp = call(Route::ExpireSession, "session-expire", v(&[("id", id.clone())])).await;
    assert_eq!(resp.status(), 409);
    counts.insert("POST …/expire (refused)", counter.take());

    let resp = call(Route::SessionEvents, "session-events", v(&[("id", id.clone())])).await;
    assert_eq!(resp.status(), 200);
    let events = lambda_json(&resp);
    let types: Vec<&str> = events["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["payment_session.created", "payment_session.updated", "payment_session.cancelled"]);
    counts.insert("GET …/events", counter.take());

    let resp = call(Route::OpenApi, "openapi", vec![("request_id", "r-2".into())]).await;
    assert_eq!(resp.status(), 200);
    counts.insert("GET /openapi.json", counter.take());

    // A second session, expired by the merchant, for the expire path that writes.
    let resp = call(Route::CreateSession, "session-create", v(&[("reference", "fx-2".into())])).await;
    let id2 = lambda_json(&resp)["id"].as_str().unwrap().to_string();
    counter.take();
    let resp = call(Route::ExpireSession, "session-expire", v(&[("id", id2.clone())])).await;
    assert_eq!((resp.status().as_u16(), lambda_json(&resp)["status"].as_str()), (200, Some("expired")));
    counts.insert("POST …/expire", counter.take());

    // With an Idempotency-Key: the record is put in the create's own transaction; a replay
    // costs that cancelled write and a read of the record.
    let with_key = |reference: &str| {
        let text = fixture("session-create", &[("token", &token), ("request_id", "r-3"), ("reference", reference)]);
        let mut event: Value = serde_json::from_str(&text).unwrap();
        event["headers"]["idempotency-key"] = Value::String("fx-key-1".into());
        from_str(&event.to_string()).unwrap()
    };
    counter.take_written();
    let first = invoke(Route::CreateSession, &deps, with_key("fx-3")).await;
    assert_eq!(first.status(), 201);
    counts.insert("POST /v1/payment_sessions + Idempotency-Key", counter.take());
    let keyed_written = counter.take_written();
    let replay = invoke(Route::CreateSession, &deps, with_key("fx-3")).await;
    assert_eq!((replay.status().as_u16(), replay.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap())), (201, Some("true")));
    assert_eq!(lambda_json(&replay), lambda_json(&first));
    counts.insert("POST /v1/payment_sessions (replay)", counter.take());

    println!("DynamoDB requests per API operation:");
    for (op, c) in &counts {
        let total: usize = c.values().sum();
        println!("  {op:42} {total}  {c:?}");
    }
    // The measured figures, pinned so a change to the access pattern is noticed.
    let total = |op: &str| counts[op].values().sum::<usize>();
    let pinned = [
        ("POST /oauth/token", 1, "one GetItem of the client; a success counts nothing"),
        ("POST /oauth/token (wrong secret)", 2, "GetItem of the client + the failure's one conditional UpdateItem"),
        // A cold instance reads the signing profile and the merchant once; then they are
        // kept for a few seconds (paysession_app::recent).
        ("POST /v1/payment_sessions (cold instance)", 3, "signing profile + merchant + one TransactWriteItems"),
        ("POST /v1/payment_sessions", 1, "one TransactWriteItems"),
        ("POST /v1/payment_sessions (duplicate)", 1, "the TransactWriteItems its session's condition cancels"),
        ("GET /v1/payment_sessions/{id}", 1, "GetItem"),
        ("GET /v1/payment_sessions?customer_id", 1, "Query of the customer's GSI2 partition"),
        ("GET /v1/payment_sessions", 17, "Query of each of the 16 shards and the unsharded partition"),
        ("POST …/confirm (refused)", 1, "GetItem; the domain refuses"),
        ("POST …/cancel", 2, "GetItem + one TransactWriteItems"),
        ("POST …/expire", 2, "GetItem + one TransactWriteItems"),
        ("GET …/events", 2, "GetItem + Query"),
        ("GET /openapi.json", 0, "static"),
        ("POST /v1/payment_sessions + Idempotency-Key", 1, "one TransactWriteItems: the record is put with the session"),
        ("POST /v1/payment_sessions (replay)", 2, "the TransactWriteItems the taken key cancels + GetItem of the record"),
    ];
    for (op, expected, why) in pinned {
        assert_eq!(total(op), expected, "{op}: {why}");
    }
    // What one create writes (docs/PERFORMANCE.md, "write units per create"): session
    // (whose key, derived from the reference, guards it, and whose GSI3 entry indexes the
    // virtual-account number), expiry item, the created event; with a key also the record
    // holding the response it replays. The page and QR find the session by the locator they
    // carry, so no lookup items.
    println!("create writes {create_written:?}; with Idempotency-Key {keyed_written:?}");
    assert_eq!((create_written.items, keyed_written.items), (3, 4));
    // Bodies are compressed (paysession_aws body.rs) so each item of a create is within one
    // KB: 2 write units apiece in a transaction.
    assert!(create_written.sizes.iter().all(|&size| size <= 1024), "{create_written:?}");
    assert_eq!(create_written.write_units, 6, "{create_written:?}");
    assert_eq!(keyed_written.write_units, 8, "{keyed_written:?}");
}

#[tokio::test]
async fn function_configuration_is_checked_at_init() {
    let env =
        |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
    let err = FunctionEnv::from_lookup(env(&[])).unwrap_err();
    assert!(err.contains("PAYSESSION_TABLE"), "{err}");
    let err = FunctionEnv::from_lookup(env(&[("PAYSESSION_TABLE", "t")])).unwrap_err();
    assert!(err.contains("PAYSESSION_TOKEN_SIGNING_KEY"), "{err}");
    let err = FunctionEnv::from_lookup(env(&[("PAYSESSION_TABLE", "t"), ("PAYSESSION_TOKEN_SIGNING_KEY", "c2hvcnQ=")])).unwrap_err();
    assert!(err.contains("at least 32 bytes"), "{err}");
    let err = FunctionEnv::from_lookup(env(&[
        ("PAYSESSION_TABLE", "t"),
        ("PAYSESSION_TOKEN_SIGNING_KEY", KEY_B64),
        ("PAYSESSION_PUBLIC_URL", "pay.example"),
    ]))
    .unwrap_err();
    assert!(err.contains("PAYSESSION_PUBLIC_URL"), "{err}");
    let ok = FunctionEnv::from_lookup(env(&[
        ("PAYSESSION_TABLE", "t"),
        ("PAYSESSION_TOKEN_SIGNING_KEY_PARAMETER", "/paysession/key"),
        ("PAYSESSION_PUBLIC_URL", "https://pay.example"),
        ("PAYSESSION_SANDBOX", "true"),
    ]))
    .unwrap();
    assert!(matches!(ok.signing_key, KeySource::SsmParameter(ref p) if p == "/paysession/key"));
    assert!(ok.sandbox);
    assert!(!ok.allow_private_webhooks, "private webhook addresses only when asked for");
    let open = FunctionEnv::from_lookup(env(&[
        ("PAYSESSION_TABLE", "t"),
        ("PAYSESSION_TOKEN_SIGNING_KEY", KEY_B64),
        ("PAYSESSION_PUBLIC_URL", "https://pay.example"),
        ("PAYSESSION_ALLOW_PRIVATE_WEBHOOKS", "true"),
    ]))
    .unwrap();
    assert!(open.allow_private_webhooks);
    let err = FunctionEnv::from_lookup(env(&[
        ("PAYSESSION_TABLE", "t"),
        ("PAYSESSION_TOKEN_SIGNING_KEY", KEY_B64),
        ("PAYSESSION_PUBLIC_URL", "https://pay.example"),
        ("PAYSESSION_ALLOW_PRIVATE_WEBHOOKS", "yes"),
    ]))
    .unwrap_err();
    assert!(err.contains("PAYSESSION_ALLOW_PRIVATE_WEBHOOKS must be true or false"), "{err}");
}

trait BasicAuth {
    fn format_basic(&self, id: &str, secret: &str) -> String;
}
impl<E: Engine> BasicAuth for E {
    fn format_basic(&self, id: &str, secret: &str) -> String {
        self.encode(format!("{id}:{secret}"))
    }
}

/// The `test-clock` function as deployed in sandbox mode, on DynamoDB Local: its two routes
/// through the function's own `serve_test_clock`; an advance is one atomic `UpdateItem`.
#[tokio::test]
async fn the_test_clock_function_on_dynamodb_local() {
    let (store, counter) = paysession_tests::dynamo::counted_table().await;
    let store = Arc::new(store);
    let core = build_core(store.clone(), decode_key(KEY_B64, "key").unwrap(), "https://pay.example".into(), true).await.unwrap();
    let merchant =
        provision(core.store.as_ref(), &core.keys, &NewMerchant { name: "Clock".into(), ..Default::default() }, None, chrono::Utc::now())
            .await
            .unwrap();
    let deps = Mounted { core, payments: paysession_app::Payments::sandbox(), queue: Arc::new(paysession_app::ports::PolledQueue) };
    let basic = base64::engine::general_purpose::STANDARD.format_basic(&merchant.client_id, merchant.client_secret.expose());
    let resp =
        invoke(Route::OAuthToken, &deps, from_str(&fixture("oauth-token", &[("basic", &basic), ("request_id", "r-t")])).unwrap()).await;
    let token = lambda_json(&resp)["access_token"].as_str().unwrap().to_string();
    let call = async |name: &str, route: Route| {
        let req: paysession_http::lambda_http::Request = from_str(&fixture(name, &[("token", &token), ("request_id", "r-c")])).unwrap();
        let info = route.info();
        let params = paysession_http::routes::match_path(info.path, req.uri().path()).unwrap();
        paysession_http::handlers::misc::serve_test_clock(&deps.core, info, params, req).await
    };
    counter.take();
    for hours in [1, 2] {
        let resp = call("test-clock-advance", Route::TestClockAdvance).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.body());
        assert_eq!(lambda_json(&resp)["offset_seconds"], hours * 3600);
    }
    let writes = counter.take();
    println!("DynamoDB requests of two advances: {writes:?}");
    assert_eq!(writes.get("UpdateItem"), Some(&2), "one atomic UpdateItem per advance: {writes:?}");
    let resp = call("test-clock-get", Route::TestClockGet).await;
    assert_eq!((resp.status().as_u16(), lambda_json(&resp)["offset_seconds"].clone()), (200, serde_json::json!(7200)));
}

/// Every DynamoDB call a function makes is one its template.yaml policy allows (an
/// `AccessDenied` is invisible on DynamoDB Local, which checks no IAM): the payment and
/// refund functions, the session reads that add `amount_refunded`, payments stored before
/// ids named their session (found through GSI1), and `processor-sync`, each run through its
/// real handler with the requests it made recorded as `Action@resource`.
#[tokio::test]
async fn each_function_may_make_the_calls_it_makes() {
    use paysession_app::payments::{CardSource, pay_card, receive};
    use paysession_app::ports::{MerchantStore as _, SessionStore as _};
    use paysession_domain::model::PaymentMethodKind;

    let (store, counter) = paysession_tests::dynamo::counted_table().await;
    let store = Arc::new(store);
    let core = build_core(store.clone(), decode_key(KEY_B64, "key").unwrap(), "https://pay.example".into(), true).await.unwrap();
    // Merchants on the sandbox, and one on Stripe (the stand-in) for processor-webhook.
    let stripe = paysession_tests::stripe::StripeStandIn::start().await;
    let payments = paysession_app::Payments::sandbox()
        .with_directory(paysession_runtime::processor_directory(store.clone(), Some(stripe.url.clone())));
    let deps = Mounted { core, payments, queue: Arc::new(paysession_app::ports::PolledQueue) };
    let cx = &deps.core;
    let pay = &deps.payments;
    let provisioned =
        provision(cx.store.as_ref(), &cx.keys, &NewMerchant { name: "Policies".into(), ..Default::default() }, None, chrono::Utc::now())
            .await
            .unwrap();
    let merchant = provisioned.merchant;
    let token = cx.keys.issue(&cx.store.get_client(&provisioned.client_id).await.unwrap().unwrap(), &paysession_app::auth::Scope::ALL);
    let session = async |reference: &str, extra: Value| {
        let mut body = serde_json::json!({"amount": 1000, "currency": "EUR", "customer_id": "cus_p", "reference": reference});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let spec = paysession_domain::parse_create_session(&body, cx.clock.now(), &merchant.policy()).unwrap();
        paysession_app::sessions::create(cx, &merchant, spec, |s, _| (s.clone(), None)).await.unwrap()
    };
    let card = |number: &str| CardSource::Typed(paysession_domain::card::parse_card(number, "12/34", "123", cx.clock.now()).unwrap());
    let paid = session("pol-paid", serde_json::json!({})).await;
    let paid = pay_card(cx, pay, paid, card("4242424242424242"), false, None, "/pay/x").await.unwrap().session;
    let payment = paid.payments[0].id.clone();
    let manual = |r: &'static str| session(r, serde_json::json!({"capture_method": "manual"}));
    let to_capture = pay_card(cx, pay, manual("pol-cap").await, card("4242424242424242"), false, None, "/pay/x").await.unwrap().session;
    let to_void = pay_card(cx, pay, manual("pol-void").await, card("4242424242424242"), false, None, "/pay/x").await.unwrap().session;
    let bank = session("pol-bank", serde_json::json!({"payment_methods": ["virtual_account"], "mode": "api"})).await;
    let bank = receive(cx, bank, PaymentMethodKind::VirtualAccount, 1000).await.unwrap();
    // A payment as an earlier release stored it: automatic, succeeded, an id of the old shape.
    let old = session("pol-old", serde_json::json!({})).await;
    let legacy = paysession_app::ids::new_id("pay");
    let mut before = old.clone();
    let mut attempt = paysession_domain::payment::PaymentAttempt::new(legacy.clone(), PaymentMethodKind::Card, 1000, old.created_at);
    attempt.status = paysession_domain::payment::AttemptStatus::Succeeded;
    before.payments.push(attempt);
    before.status = paysession_domain::SessionStatus::Succeeded;
    before.version += 1;
    cx.store.update_session(&before, old.version, &[], None).await.unwrap();

    let template: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(format!("{}/../template.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap()).unwrap();
    let allowed = |package: &str| -> std::collections::BTreeSet<String> {
        let (_, f) = template["Resources"]
            .as_mapping()
            .unwrap()
            .iter()
            .find(|(_, r)| r["Properties"]["CodeUri"].as_str() == Some(&format!("target/lambda/{package}/")))
            .unwrap_or_else(|| panic!("no function {package}"));
        let mut out = std::collections::BTreeSet::new();
        for st in f["Properties"]["Policies"][0]["Statement"].as_sequence().unwrap() {
            if st["Condition"].is_mapping() {
                continue; // conditioned on key prefixes (signature nonces): not a general grant
            }
            let resources = serde_yaml::to_string(&st["Resource"]).unwrap();
            let actions: Vec<String> = match &st["Action"] {
                serde_yaml::Value::Sequence(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
                other => vec![other.as_str().unwrap().to_string()],
            };
            for action in actions {
                if resources.contains("Table.Arn") && !resources.contains("index") || resources.contains("- !GetAtt Table.Arn") {
                    out.insert(format!("{action}@table"));
                }
                if resources.contains("/index/*") {
                    out.insert(format!("{action}@index"));
                }
            }
        }
        out
    };
    let template_event: Value =
        serde_json::from_str(&fixture("session-create", &[("token", &token), ("request_id", "r-p"), ("reference", "x")])).unwrap();
    let event = |method: &str, path: &str, body: Option<Value>, key: Option<&str>| {
        let mut e = template_event.clone();
        let (raw, query) = path.split_once('?').unwrap_or((path, ""));
        e["rawPath"] = raw.into();
        e["rawQueryString"] = query.into();
        e["routeKey"] = format!("{method} {raw}").into();
        e["requestContext"]["http"]["method"] = method.into();
        e["requestContext"]["http"]["path"] = raw.into();
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        e["headers"]["content-length"] = text.len().to_string().into();
        e["body"] = text.into();
        if let Some(k) = key {
            e["headers"]["idempotency-key"] = k.into();
        }
        from_str(&e.to_string()).unwrap()
    };
    let mut checked = Vec::new();
    let mut check = async |route: Route, method: &str, path: String, body: Option<Value>, key: Option<&str>, status: u16| {
        counter.take_permissions();
        let resp = invoke(route, &deps, event(method, &path, body, key)).await;
        assert_eq!(resp.status().as_u16(), status, "{method} {path}: {:?}", resp.body());
        let needed = counter.take_permissions();
        let package = route.info().function.unwrap();
        let granted = allowed(package);
        let missing: Vec<&String> = needed.difference(&granted).collect();
        assert!(missing.is_empty(), "{package} ({method} {path}) makes calls its policy does not allow: {missing:?}");
        checked.push(format!("{package}: {needed:?}"));
    };
    let (m, sid) = (&merchant.id, &paid.id);
    check(Route::GetSession, "GET", format!("/v1/payment_sessions/{sid}"), None, None, 200).await;
    check(Route::ListSessions, "GET", "/v1/payment_sessions".into(), None, None, 200).await;
    check(Route::GetPayment, "GET", format!("/v1/payments/{payment}"), None, None, 200).await;
    check(Route::GetPayment, "GET", format!("/v1/payments/{legacy}"), None, None, 200).await;
    check(Route::ListPayments, "GET", "/v1/payments".into(), None, None, 200).await;
    check(Route::ListPayments, "GET", format!("/v1/payments?session_id={sid}&starting_after={payment}"), None, None, 200).await;
    let cap = to_capture.payments[0].id.clone();
    check(Route::CapturePayment, "POST", format!("/v1/payments/{cap}/capture"), Some(serde_json::json!({"amount": 600})), Some("c1"), 200)
        .await;
    let void = to_void.payments[0].id.clone();
    check(Route::CancelPayment, "POST", format!("/v1/payments/{void}/cancel"), Some(serde_json::json!({})), None, 200).await;
    let body = |p: &str, amount: i64| Some(serde_json::json!({"payment_id": p, "amount": amount}));
    check(Route::CreateRefund, "POST", "/v1/refunds".into(), body(&payment, 100), Some("r1"), 201).await;
    check(Route::CreateRefund, "POST", "/v1/refunds".into(), body(&payment, 100), Some("r1"), 201).await; // the replay
    check(Route::CreateRefund, "POST", "/v1/refunds".into(), body(&legacy, 100), Some("r2"), 201).await;
    check(Route::CreateRefund, "POST", "/v1/refunds".into(), body(&payment, 100_000), Some("r3"), 422).await;
    let bank_payment = bank.payments[0].id.clone();
    let refund = async |key: &str| {
        let req = paysession_domain::refund::RefundRequest {
            payment_id: bank_payment.clone(),
            amount: Some(100),
            reason: None,
            metadata: Default::default(),
        };
        let _ = key;
        paysession_app::refunds::create(cx, pay, m, req, |r| (r.id.clone(), None)).await.unwrap()
    };
    let (a, b) = (refund("a").await, refund("b").await);
    check(Route::GetRefund, "GET", format!("/v1/refunds/{a}"), None, None, 200).await;
    check(Route::ListRefunds, "GET", format!("/v1/refunds?payment_id={bank_payment}"), None, None, 200).await;
    check(Route::ListRefunds, "GET", format!("/v1/refunds?starting_after={a}"), None, None, 200).await;
    check(Route::CancelRefund, "POST", format!("/v1/refunds/{a}/cancel"), Some(serde_json::json!({})), None, 200).await;
    check(Route::SandboxRefundComplete, "POST", format!("/sandbox/refunds/{b}/complete"), Some(serde_json::json!({})), None, 200).await;

    // processor-sync: a refund's sync and an expired authorisation's void.
    let pending = paysession_app::refunds::create(
        cx,
        pay,
        m,
        paysession_domain::refund::RefundRequest {
            payment_id: payment.clone(),
            amount: Some(1),
            reason: None,
            metadata: Default::default(),
        },
        |r| (r.id.clone(), None),
    )
    .await
    .unwrap();
    cx.test_clock.as_ref().unwrap().advance(paysession_domain::payment::AUTHORISATION_VALIDITY + chrono::Duration::minutes(5)).unwrap();
    let expired = pay_card(cx, pay, manual("pol-exp").await, card("4242424242424242"), false, None, "/pay/x").await.unwrap().session;
    cx.test_clock.as_ref().unwrap().advance(paysession_domain::payment::AUTHORISATION_VALIDITY).unwrap();
    for input in [
        serde_json::json!({"merchant_id": m, "refund_id": pending}),
        serde_json::json!({"merchant_id": m, "session_id": expired.id, "payment_id": expired.payments[0].id}),
    ] {
        counter.take_permissions();
        let result = paysession_aws::scheduler::handle_sync(cx, pay, &input).await.unwrap();
        assert_ne!(result["result"], "nothing_due", "{input}");
        let needed = counter.take_permissions();
        let granted = allowed("processor-sync");
        let missing: Vec<&String> = needed.difference(&granted).collect();
        assert!(missing.is_empty(), "processor-sync makes calls its policy does not allow: {missing:?}");
        checked.push(format!("processor-sync: {needed:?}"));
    }
    // processor-webhook: a Stripe merchant's dispute (its settings, the event id's
    // conditional write, the session's write).
    let on_stripe =
        provision(cx.store.as_ref(), &cx.keys, &NewMerchant { name: "On Stripe".into(), ..Default::default() }, None, chrono::Utc::now())
            .await
            .unwrap()
            .merchant;
    let secrets = tempfile::tempdir().unwrap();
    let file = |name: &str, value: &str| {
        let path = secrets.path().join(name);
        std::fs::write(&path, value).unwrap();
        paysession_app::processor_config::SecretRef::File(path.display().to_string())
    };
    let settings = paysession_app::processor_config::ProcessorSettings {
        processor: "stripe".into(),
        takes_new_payments: true,
        secret_key: file("sk", "sk_test_standin"),
        webhook_secret: Some(file("whsec", "whsec_policies")),
    };
    paysession_app::processor_config::put(cx.store.as_ref(), &on_stripe.id, Some(&settings)).await.unwrap();
    let body = serde_json::json!({"amount": 1000, "currency": "EUR", "customer_id": "cus_s", "reference": "pol-stripe"});
    let spec = paysession_domain::parse_create_session(&body, cx.clock.now(), &on_stripe.policy()).unwrap();
    let unpaid = paysession_app::sessions::create(cx, &on_stripe, spec, |s, _| (s.clone(), None)).await.unwrap();
    let paid = pay_card(cx, pay, unpaid, card("4242424242424242"), false, None, "/pay/x").await.unwrap().session;
    let pi = stripe.intent_of(&paid.payments[0].id).expect("paid through Stripe");
    let dispute = serde_json::json!({"id": "evt_pol_1", "object": "event", "type": "charge.dispute.created", "data": {"object": {
        "id": "dp_pol", "object": "dispute", "amount": 1000, "reason": "fraudulent", "status": "needs_response",
        "payment_intent": pi["id"], "created": 1_700_000_000}}})
    .to_string();
    let now = chrono::Utc::now().timestamp();
    let signature =
        format!("t={now},v1={}", paysession_runtime::outbound::stripe::signature::sign("whsec_policies", now, dispute.as_bytes()));
    let mut e = template_event.clone();
    let path = format!("/v1/processors/stripe/webhooks/{}", on_stripe.id);
    e["rawPath"] = path.clone().into();
    e["routeKey"] = format!("POST {path}").into();
    e["requestContext"]["http"]["path"] = path.into();
    e["headers"]["content-length"] = dispute.len().to_string().into();
    e["headers"]["stripe-signature"] = signature.into();
    e["body"] = dispute.into();
    counter.take_permissions();
    let resp = invoke(Route::StripeWebhook, &deps, from_str(&e.to_string()).unwrap()).await;
    assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.body());
    let needed = counter.take_permissions();
    let missing: Vec<String> = needed.difference(&allowed("processor-webhook")).cloned().collect();
    assert!(missing.is_empty(), "processor-webhook makes calls its policy does not allow: {missing:?}");
    assert!(cx.store.get_session(&on_stripe.id, &paid.id).await.unwrap().unwrap().payments[0].dispute.is_some());
    checked.push(format!("processor-webhook: {needed:?}"));
    println!("calls checked against the template's policies:\n  {}", checked.join("\n  "));
}
