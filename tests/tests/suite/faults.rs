//! Faults between paysession and DynamoDB, injected by a proxy in front of DynamoDB Local
//! (`paysession_tests::faults`): lost answers (applied, never answered), 500s and
//! throttling on every call. Invariants, not timings.

use std::collections::BTreeMap;
use std::sync::Arc;

use paysession_app::merchants::{NewMerchant, provision};
use paysession_app::payments::{CardSource, pay_card};
use paysession_app::ports::{MerchantStore as _, RefundStore as _, SessionQuery, SessionStore as _};
use paysession_app::{Core, Payments};
use paysession_aws::DynamoStore;
use paysession_domain::SessionStatus;
use paysession_http::Route;
use paysession_http::lambda_http::request::from_str;
use paysession_http::mount::{Mounted, invoke};
use paysession_tests::faults::{FaultProxy, Faults};
use serde_json::Value;

/// A table seen two ways: `clean` (no faults; setup and read-back) and `deps` (the
/// functions' handlers on a store whose every DynamoDB call goes through the proxy), one
/// merchant, its token, and the sandbox processor shared by both.
struct Rig {
    clean: DynamoStore,
    faulty: Arc<DynamoStore>,
    proxy: FaultProxy,
    deps: Mounted<DynamoStore>,
    clean_core: Core<DynamoStore>,
    merchant: paysession_app::entities::Merchant,
    token: String,
    pay: Payments,
}

/// 5 % of each fault on every call, draws seeded with `seed`.
async fn rig(seed: u64) -> Rig {
    let clean = paysession_tests::dynamo::fresh_table().await;
    let target = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap();
    let proxy = FaultProxy::start(&target, BTreeMap::from([("*".to_string(), Faults::each(50))]), seed).await;
    let config = paysession_aws::sdk_config_with(&[("AWS_ENDPOINT_URL_DYNAMODB", &proxy.url)]).await.unwrap();
    let faulty = Arc::new(DynamoStore::from_config(&config, clean.table()).await.unwrap());
    let raw_key = paysession_app::ids::random_key();
    let key = || paysession_app::secret::Secret::new(raw_key.clone());
    let pay = Payments::sandbox();
    let core = paysession_runtime::build_core(faulty.clone(), key(), "https://pay.example".into(), true).await.unwrap();
    let deps = Mounted { core, payments: pay.clone(), queue: Arc::new(paysession_app::ports::PolledQueue) };
    // Setup is made without faults: what is measured is the flows under test.
    let clean_core = paysession_runtime::build_core(Arc::new(clean.clone()), key(), "https://pay.example".into(), true).await.unwrap();
    let provisioned = provision(
        clean_core.store.as_ref(),
        &clean_core.keys,
        &NewMerchant { name: "Faults".into(), ..Default::default() },
        None,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let client = clean_core.store.get_client(&provisioned.client_id).await.unwrap().unwrap();
    let token = clean_core.keys.issue(&client, &paysession_app::auth::Scope::ALL);
    Rig { clean, faulty, proxy, deps, clean_core, merchant: provisioned.merchant, token, pay }
}

impl Rig {
    /// An API Gateway event for `POST path` with `body` and `Idempotency-Key: key`.
    fn post(&self, path: &str, body: &Value, key: &str) -> String {
        let fixture = std::fs::read_to_string(format!("{}/fixtures/apigw-v2/session-create.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let mut event: Value =
            serde_json::from_str(&fixture.replace("{{token}}", &self.token).replace("{{request_id}}", key).replace("{{reference}}", "x"))
                .unwrap();
        let body = body.to_string();
        event["rawPath"] = path.into();
        event["routeKey"] = format!("POST {path}").into();
        event["requestContext"]["http"]["path"] = path.into();
        event["headers"]["content-length"] = body.len().to_string().into();
        event["headers"]["idempotency-key"] = key.into();
        event["body"] = body.into();
        event.to_string()
    }

    /// Sends `event` to `route`'s handler until it is answered other than with a 5xx (or a
    /// 409 `idempotency_key_in_use`: the key still held by a try whose answer was lost), as a
    /// client retrying with its key would; the answer and the retries it took.
    async fn until_answered(&self, route: Route, event: &str) -> (Value, u16, usize) {
        for retries in 0..20 {
            let resp = invoke(route, &self.deps, from_str(event).unwrap()).await;
            let status = resp.status().as_u16();
            if status < 500 && status != 409 {
                return (paysession_tests::lambda_json(&resp), status, retries);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no answer in 20 tries: {event}");
    }

    /// A session paid by card, made without faults; its id and payment id.
    async fn paid(&self, reference: &str) -> (String, String) {
        let cx = &self.clean_core;
        let body = serde_json::json!({"amount": 1000, "currency": "EUR", "customer_id": "c", "reference": reference});
        let spec = paysession_domain::parse_create_session(&body, cx.clock.now(), &self.merchant.policy()).unwrap();
        let session = paysession_app::sessions::create(cx, &self.merchant, spec, |s, _| (s.clone(), None)).await.unwrap();
        let card = paysession_domain::card::parse_card("4242424242424242", "12/34", "123", cx.clock.now()).unwrap();
        let paid = pay_card(cx, &self.pay, session, CardSource::Typed(card), false, None, "/pay/x").await.unwrap().session;
        (paid.id.clone(), paid.payments[0].id.clone())
    }
}

/// 100 creates through the session-create function's handler, its every DynamoDB call
/// behind 5 % lost answers, 5 % 500s and 5 % throttling; the client retries a 5xx with the
/// same Idempotency-Key. Each create ends in exactly one session with one created event,
/// none is lost, and every answer for a key is the same session.
#[tokio::test]
async fn every_create_retried_with_its_key_ends_in_exactly_one_session() {
    let r = rig(20261207).await;
    let mut retries = 0;
    let mut answered: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..100 {
        let reference = format!("fault-{i}");
        let body = serde_json::json!({"amount": 1050, "currency": "EUR", "customer_id": "cus_1", "reference": reference});
        let (answer, status, tries) =
            r.until_answered(Route::CreateSession, &r.post("/v1/payment_sessions", &body, &format!("key-{i}"))).await;
        assert_eq!(status, 201, "create {i}: {answer}");
        retries += tries;
        answered.insert(reference, answer["id"].as_str().unwrap().to_string());
    }
    let injected = r.proxy.injected();
    println!("injected {injected:?} over {:?} calls; client retries {retries}", r.proxy.calls());
    assert!(injected.values().sum::<usize>() > 0, "the proxy injected faults");

    // Read back without faults: 100 sessions, one per reference, one created event each.
    let (clean, m) = (&r.clean, &r.merchant.id);
    let mut sessions = Vec::new();
    let mut q = SessionQuery { limit: 100, now: chrono::Utc::now(), ..Default::default() };
    loop {
        let page = clean.list_sessions(m, &q).await.unwrap();
        let last = page.items.last().map(|s| paysession_app::ports::Cursor { created_at: s.created_at, id: s.id.clone() });
        sessions.extend(page.items);
        if !page.has_more {
            break;
        }
        q.after = last;
    }
    assert_eq!(sessions.len(), 100, "no create lost, none doubled");
    for s in &sessions {
        assert_eq!(answered.get(&s.spec.reference), Some(&s.id), "the answer named the stored session");
        let events = clean.session_events(m, &s.id).await.unwrap();
        assert_eq!(events.iter().filter(|e| e.event_type == "payment_session.created").count(), 1, "{}", s.id);
    }
}

/// 30 refunds through the refund-create handler and their reconciliation (the local
/// reconciler's sweep), every DynamoDB call of both behind 5 % of each fault: each refund
/// reaches `succeeded` once, its payment shows it once, and the processor received one
/// refund call per refund.
#[tokio::test]
async fn every_refund_reaches_a_final_state_once() {
    let r = rig(7).await;
    let mut payments = Vec::new();
    for i in 0..30 {
        payments.push(r.paid(&format!("paid-{i}")).await);
    }
    let mut retries = 0;
    let mut refunds = Vec::new();
    for (i, (_, payment)) in payments.iter().enumerate() {
        let body = serde_json::json!({"payment_id": payment, "amount": 400});
        let (answer, status, tries) = r.until_answered(Route::CreateRefund, &r.post("/v1/refunds", &body, &format!("refund-{i}"))).await;
        assert_eq!(status, 201, "refund {i}: {answer}");
        retries += tries;
        refunds.push(answer["id"].as_str().unwrap().to_string());
    }

    // Reconciliation on the faulty store until every refund is final (horizon: 50 passes).
    let (clean, m) = (&r.clean, &r.merchant.id);
    let clock = r.deps.core.test_clock.clone().unwrap();
    let mut passes = 0;
    loop {
        clock.advance(chrono::Duration::seconds(10)).unwrap();
        passes += 1;
        let _ = paysession_app::reconcile::sweep(&r.deps.core, &r.pay, r.faulty.as_ref()).await;
        let mut open = Vec::new();
        for id in &refunds {
            let refund = clean.get_refund(m, id).await.unwrap().unwrap();
            if refund.status != paysession_domain::refund::RefundStatus::Succeeded {
                open.push((id.clone(), refund.status));
            }
        }
        if open.is_empty() {
            break;
        }
        assert!(passes < 50, "refunds not final after {passes} passes: {open:?}");
    }
    println!(
        "injected {:?} over {:?} calls; client retries {retries}; reconciliation passes {passes}",
        r.proxy.injected(),
        r.proxy.calls()
    );
    for ((session, payment), refund) in payments.iter().zip(&refunds) {
        let money = clean.payment_money(m, session, payment).await.unwrap().unwrap();
        assert_eq!((money.refunded, money.refundable, money.refund_count), (400, 600, 1), "{payment}");
        let calls = r.pay.sandbox_calls.of(refund);
        assert_eq!(calls.get("refund"), Some(&1), "{refund}: {calls:?}");
        let events = clean.session_events(m, session).await.unwrap();
        let count = |t: &str| events.iter().filter(|e| e.event_type == t).count();
        assert_eq!((count("refund.created"), count("refund.succeeded")), (1, 1), "{session}");
    }
}

/// 30 card payments (the page's use case, the customer trying again on an error) on the
/// faulty store: each session succeeds, and the sandbox received exactly one successful
/// authorisation per session.
#[tokio::test]
async fn every_card_payment_succeeds_with_one_authorisation() {
    let r = rig(30).await;
    let (clean, m, core) = (&r.clean, &r.merchant.id, &r.deps.core);
    let mut tries = 0;
    for i in 0..30 {
        let body = serde_json::json!({"amount": 1000, "currency": "EUR", "customer_id": "c", "reference": format!("card-{i}")});
        let spec = paysession_domain::parse_create_session(&body, r.clean_core.clock.now(), &r.merchant.policy()).unwrap();
        let session = paysession_app::sessions::create(&r.clean_core, &r.merchant, spec, |s, _| (s.clone(), None)).await.unwrap();
        for attempt in 0..2 {
            tries += 1;
            let current = clean.get_session(m, &session.id).await.unwrap().unwrap();
            if current.status == SessionStatus::Succeeded {
                break;
            }
            let card = paysession_domain::card::parse_card("4242424242424242", "12/34", "123", core.clock.now()).unwrap();
            match pay_card(core, &r.pay, current, CardSource::Typed(card), false, None, "/pay/x").await {
                Ok(step) if step.session.status == SessionStatus::Succeeded => break,
                other => println!("payment {i}, try {attempt}: {:?}", other.map(|s| s.status)),
            }
        }
    }
    println!("injected {:?} over {:?} calls; customer tries {tries}", r.proxy.injected(), r.proxy.calls());
    let mut wrong = Vec::new();
    for i in 0..30 {
        let q = SessionQuery {
            customer_id: Some("c".into()),
            reference: Some(format!("card-{i}")),
            limit: 1,
            now: chrono::Utc::now(),
            ..Default::default()
        };
        let s = clean.list_sessions(m, &q).await.unwrap().items.remove(0);
        let authorised: u32 = s.payments.iter().map(|a| r.pay.sandbox_calls.of(&a.id).get("authorize").copied().unwrap_or(0)).sum();
        if s.status != SessionStatus::Succeeded || authorised != 1 {
            wrong.push((s.id.clone(), s.status, authorised, s.payments.iter().map(|a| a.status).collect::<Vec<_>>()));
        }
    }
    assert!(wrong.is_empty(), "sessions not paid exactly once: {wrong:?}");
}
