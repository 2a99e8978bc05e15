//! Faults between paysession and DynamoDB, injected by a proxy in front of DynamoDB Local
//! (`paysession_tests::faults`): lost answers (applied, never answered), 500s and
//! throttling on every call. Invariants, not timings.

use std::collections::BTreeMap;
use std::sync::Arc;

use paysession_app::merchants::{NewMerchant, provision};
use paysession_app::ports::{EventQuery, MerchantStore as _, SessionQuery, SessionStore as _, WebhookStore as _};
use paysession_http::Route;
use paysession_http::lambda_http::request::from_str;
use paysession_http::mount::{Mounted, invoke};
use paysession_tests::faults::{FaultProxy, Faults};
use serde_json::Value;

/// 100 creates through the session-create function's handler, its every DynamoDB call
/// behind 5 % lost answers, 5 % 500s and 5 % throttling; the client retries a 5xx with the
/// same Idempotency-Key. Each create ends in exactly one session with one created event,
/// none is lost, and every answer for a key is the same session.
#[tokio::test]
async fn every_create_retried_with_its_key_ends_in_exactly_one_session() {
    let clean = paysession_tests::dynamo::fresh_table().await;
    let target = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap();
    let proxy = FaultProxy::start(&target, BTreeMap::from([("*".to_string(), Faults::each(50))]), 20261207).await;
    let config = paysession_aws::sdk_config_with(&[("AWS_ENDPOINT_URL_DYNAMODB", &proxy.url)]).await.unwrap();
    let faulty = paysession_aws::DynamoStore::from_config(&config, clean.table()).await.unwrap();
    let raw_key = paysession_app::ids::random_key();
    let key = || paysession_app::secret::Secret::new(raw_key.clone());
    let core = paysession_runtime::build_core(Arc::new(faulty), key(), "https://pay.example".into(), false).await.unwrap();
    let deps = Mounted { core, payments: paysession_app::Payments::sandbox(), queue: Arc::new(paysession_app::ports::PolledQueue) };
    // The merchant is made without faults: what is measured is the creates.
    let clean_core = paysession_runtime::build_core(Arc::new(clean.clone()), key(), "https://pay.example".into(), false).await.unwrap();
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
    let fixture = std::fs::read_to_string(format!("{}/fixtures/apigw-v2/session-create.json", env!("CARGO_MANIFEST_DIR"))).unwrap();

    let mut retries = 0;
    let mut answered: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..100 {
        let reference = format!("fault-{i}");
        let text = fixture.replace("{{token}}", &token).replace("{{request_id}}", &format!("r-{i}")).replace("{{reference}}", &reference);
        let mut event: Value = serde_json::from_str(&text).unwrap();
        event["headers"]["idempotency-key"] = Value::String(format!("key-{i}"));
        let event = event.to_string();
        let mut attempts = 0;
        loop {
            attempts += 1;
            assert!(attempts <= 20, "create {i} did not succeed in 20 tries");
            let resp = invoke(Route::CreateSession, &deps, from_str(&event).unwrap()).await;
            let status = resp.status().as_u16();
            if status >= 500 || status == 409 {
                // A server error, or the key still held by the lost first try: retry later.
                retries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
            assert_eq!(status, 201, "create {i}: {:?}", resp.body());
            let id = paysession_tests::lambda_json(&resp)["id"].as_str().unwrap().to_string();
            if let Some(before) = answered.insert(reference.clone(), id.clone()) {
                assert_eq!(before, id, "one key, one session");
            }
            break;
        }
    }
    let injected = proxy.injected();
    println!("injected {injected:?} over {:?} calls; client retries {retries}", proxy.calls());
    assert!(injected.values().sum::<usize>() > 0, "the proxy injected faults");

    // Read back without faults: 100 sessions, one per reference, one created event each.
    let now = chrono::Utc::now();
    let mut sessions = Vec::new();
    let mut q = SessionQuery { limit: 100, now, ..Default::default() };
    loop {
        let page = clean.list_sessions(&provisioned.merchant.id, &q).await.unwrap();
        let last = page.items.last().map(|s| paysession_app::ports::Cursor { created_at: s.created_at, id: s.id.clone() });
        sessions.extend(page.items);
        if !page.has_more {
            break;
        }
        q.after = last;
    }
    assert_eq!(sessions.len(), 100, "no create lost, none doubled");
    let mut by_reference: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &sessions {
        *by_reference.entry(s.spec.reference.as_str()).or_default() += 1;
        assert_eq!(answered.get(&s.spec.reference), Some(&s.id), "the answer named the stored session");
        let created = clean.session_events(&provisioned.merchant.id, &s.id).await.unwrap();
        assert_eq!(created.iter().filter(|e| e.event_type == "payment_session.created").count(), 1, "{}", s.id);
    }
    assert!(by_reference.values().all(|n| *n == 1));
    let events = clean.list_events(&provisioned.merchant.id, &EventQuery { limit: 100, ..Default::default() }).await.unwrap();
    assert!(events.items.len() <= 100);
}

/// 30 refunds through the refund-create handler and their reconciliation (the local
/// reconciler's sweep), every DynamoDB call of both behind 5 % of each fault: each refund
/// reaches `succeeded` once, its payment shows it once, and the processor received one
/// refund call per refund.
#[tokio::test]
async fn every_refund_reaches_a_final_state_once() {
    use paysession_app::payments::{CardSource, pay_card};
    use paysession_app::ports::RefundStore as _;

    let clean = paysession_tests::dynamo::fresh_table().await;
    let target = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap();
    let proxy = FaultProxy::start(&target, BTreeMap::from([("*".to_string(), Faults::each(50))]), 7).await;
    let config = paysession_aws::sdk_config_with(&[("AWS_ENDPOINT_URL_DYNAMODB", &proxy.url)]).await.unwrap();
    let faulty = Arc::new(paysession_aws::DynamoStore::from_config(&config, clean.table()).await.unwrap());
    let raw_key = paysession_app::ids::random_key();
    let key = || paysession_app::secret::Secret::new(raw_key.clone());
    let pay = paysession_app::Payments::sandbox();
    let core = paysession_runtime::build_core(faulty.clone(), key(), "https://pay.example".into(), true).await.unwrap();
    let deps = Mounted { core, payments: pay.clone(), queue: Arc::new(paysession_app::ports::PolledQueue) };
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
    let merchant = provisioned.merchant.clone();
    let client = clean_core.store.get_client(&provisioned.client_id).await.unwrap().unwrap();
    let token = clean_core.keys.issue(&client, &paysession_app::auth::Scope::ALL);
    let fixture = std::fs::read_to_string(format!("{}/fixtures/apigw-v2/session-create.json", env!("CARGO_MANIFEST_DIR"))).unwrap();

    // 30 payments, made without faults.
    let mut payments = Vec::new();
    for i in 0..30 {
        let body = serde_json::json!({"amount": 1000, "currency": "EUR", "customer_id": "c", "reference": format!("paid-{i}")});
        let spec = paysession_domain::parse_create_session(&body, clean_core.clock.now(), &merchant.policy()).unwrap();
        let session = paysession_app::sessions::create(&clean_core, &merchant, spec, |s, _| (s.clone(), None)).await.unwrap();
        let card = paysession_domain::card::parse_card("4242424242424242", "12/34", "123", clean_core.clock.now()).unwrap();
        let paid = pay_card(&clean_core, &pay, session, CardSource::Typed(card), false, None, "/pay/x").await.unwrap().session;
        payments.push((paid.id.clone(), paid.payments[0].id.clone()));
    }

    // Their refunds, each retried on 5xx (or 409: its key still held) with its key.
    let mut retries = 0;
    let mut refunds = Vec::new();
    for (i, (_, payment)) in payments.iter().enumerate() {
        let text = fixture.replace("{{token}}", &token).replace("{{request_id}}", &format!("r-{i}")).replace("{{reference}}", "x");
        let mut event: Value = serde_json::from_str(&text).unwrap();
        let body = serde_json::json!({"payment_id": payment, "amount": 400}).to_string();
        event["rawPath"] = "/v1/refunds".into();
        event["routeKey"] = "POST /v1/refunds".into();
        event["requestContext"]["http"]["path"] = "/v1/refunds".into();
        event["headers"]["content-length"] = body.len().to_string().into();
        event["headers"]["idempotency-key"] = Value::String(format!("refund-{i}"));
        event["body"] = body.into();
        let event = event.to_string();
        let mut attempts = 0;
        loop {
            attempts += 1;
            assert!(attempts <= 20, "refund {i} did not succeed in 20 tries");
            let resp = invoke(Route::CreateRefund, &deps, from_str(&event).unwrap()).await;
            let status = resp.status().as_u16();
            if status >= 500 || status == 409 {
                retries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
            assert_eq!(status, 201, "refund {i}: {:?}", resp.body());
            refunds.push(paysession_tests::lambda_json(&resp)["id"].as_str().unwrap().to_string());
            break;
        }
    }

    // Reconciliation on the faulty store until every refund is final (horizon: 50 passes).
    let clock = deps.core.test_clock.clone().unwrap();
    let mut passes = 0;
    loop {
        clock.advance(chrono::Duration::seconds(10)).unwrap();
        passes += 1;
        let _ = paysession_app::reconcile::sweep(&deps.core, &pay, faulty.as_ref()).await;
        let mut open = Vec::new();
        for id in &refunds {
            let r = clean.get_refund(&merchant.id, id).await.unwrap().unwrap();
            if r.status != paysession_domain::refund::RefundStatus::Succeeded {
                open.push((id.clone(), r.status));
            }
        }
        if open.is_empty() {
            break;
        }
        assert!(passes < 50, "refunds not final after {passes} passes: {open:?}");
    }
    println!("injected {:?} over {:?} calls; client retries {retries}; reconciliation passes {passes}", proxy.injected(), proxy.calls());
    for ((session, payment), refund) in payments.iter().zip(&refunds) {
        let money = clean.payment_money(&merchant.id, session, payment).await.unwrap().unwrap();
        assert_eq!((money.refunded, money.refundable, money.refund_count), (400, 600, 1), "{payment}");
        let calls = pay.sandbox_calls.of(refund);
        assert_eq!(calls.get("refund"), Some(&1), "{refund}: {calls:?}");
        let events = clean.session_events(&merchant.id, session).await.unwrap();
        let count = |t: &str| events.iter().filter(|e| e.event_type == t).count();
        assert_eq!((count("refund.created"), count("refund.succeeded")), (1, 1), "{session}");
    }
}

/// 30 card payments (the page's use case, the customer trying again on an error) on the
/// faulty store: each session succeeds, and the sandbox received exactly one successful
/// authorisation per session.
#[tokio::test]
async fn every_card_payment_succeeds_with_one_authorisation() {
    use paysession_app::payments::{CardSource, pay_card};

    let clean = paysession_tests::dynamo::fresh_table().await;
    let target = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap();
    let proxy = FaultProxy::start(&target, BTreeMap::from([("*".to_string(), Faults::each(50))]), 30).await;
    let config = paysession_aws::sdk_config_with(&[("AWS_ENDPOINT_URL_DYNAMODB", &proxy.url)]).await.unwrap();
    let faulty = Arc::new(paysession_aws::DynamoStore::from_config(&config, clean.table()).await.unwrap());
    let raw_key = paysession_app::ids::random_key();
    let key = || paysession_app::secret::Secret::new(raw_key.clone());
    let pay = paysession_app::Payments::sandbox();
    let core = paysession_runtime::build_core(faulty.clone(), key(), "https://pay.example".into(), true).await.unwrap();
    let clean_core = paysession_runtime::build_core(Arc::new(clean.clone()), key(), "https://pay.example".into(), true).await.unwrap();
    let merchant = provision(
        clean_core.store.as_ref(),
        &clean_core.keys,
        &NewMerchant { name: "Faults".into(), ..Default::default() },
        None,
        chrono::Utc::now(),
    )
    .await
    .unwrap()
    .merchant;
    let mut tries = 0;
    for i in 0..30 {
        let body = serde_json::json!({"amount": 1000, "currency": "EUR", "customer_id": "c", "reference": format!("card-{i}")});
        let spec = paysession_domain::parse_create_session(&body, clean_core.clock.now(), &merchant.policy()).unwrap();
        let session = paysession_app::sessions::create(&clean_core, &merchant, spec, |s, _| (s.clone(), None)).await.unwrap();
        for attempt in 0..2 {
            tries += 1;
            let current = clean.get_session(&merchant.id, &session.id).await.unwrap().unwrap();
            if current.status == paysession_domain::SessionStatus::Succeeded {
                break;
            }
            let card = paysession_domain::card::parse_card("4242424242424242", "12/34", "123", core.clock.now()).unwrap();
            match pay_card(&core, &pay, current, CardSource::Typed(card), false, None, "/pay/x").await {
                Ok(step) if step.session.status == paysession_domain::SessionStatus::Succeeded => break,
                other => println!("payment {i}, try {attempt}: {:?}", other.map(|s| s.status)),
            }
        }
    }
    println!("injected {:?} over {:?} calls; customer tries {tries}", proxy.injected(), proxy.calls());
    let mut wrong = Vec::new();
    for i in 0..30 {
        let q = SessionQuery {
            customer_id: Some("c".into()),
            reference: Some(format!("card-{i}")),
            limit: 1,
            now: chrono::Utc::now(),
            ..Default::default()
        };
        let s = clean.list_sessions(&merchant.id, &q).await.unwrap().items.remove(0);
        let authorised: usize =
            s.payments.iter().map(|a| pay.sandbox_calls.of(&a.id).get("authorize").copied().unwrap_or(0) as usize).sum();
        if s.status != paysession_domain::SessionStatus::Succeeded || authorised != 1 {
            wrong.push((s.id.clone(), s.status, authorised, s.payments.iter().map(|a| a.status).collect::<Vec<_>>()));
        }
    }
    assert!(wrong.is_empty(), "sessions not paid exactly once: {wrong:?}");
}
