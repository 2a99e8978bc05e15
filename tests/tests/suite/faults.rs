//! Faults between paysession and DynamoDB, injected by a proxy in front of DynamoDB Local
//! (`paysession_tests::faults`): lost answers (applied, never answered), 500s and
//! throttling on every call. Invariants, not timings.

use std::collections::BTreeMap;
use std::sync::Arc;

use paysession_app::merchants::{NewMerchant, provision};
use paysession_app::payments::{CardSource, pay_card};
use paysession_app::ports::{MandateStore as _, MerchantStore as _, RefundStore as _, SessionQuery, SessionStore as _};
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
    rig_at(seed, 50).await
}

/// `per_mille` of each fault on every call.
async fn rig_at(seed: u64, per_mille: u32) -> Rig {
    let clean = paysession_tests::dynamo::fresh_table_for_a_long_test().await;
    let target = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap();
    let proxy = FaultProxy::start(&target, BTreeMap::from([("*".to_string(), Faults::each(per_mille))]), seed).await;
    let config = paysession_tests::faults::quick_retries(
        paysession_aws::sdk_config_with(&[("AWS_ENDPOINT_URL_DYNAMODB", &proxy.url)]).await.unwrap(),
    );
    let faulty = Arc::new(DynamoStore::from_config(&config, clean.table()).await.unwrap());
    let raw_key = paysession_app::ids::random_key();
    let key = || paysession_app::secret::Secret::new(raw_key.clone());
    // The processor's own records are not behind our faults: the sandbox's ledger is the
    // table seen without them.
    let pay = Payments::sandbox_on(Arc::new(clean.clone()));
    // Starting up reads the table too; a cold start that fails is retried, as Lambda does.
    let mut core = paysession_runtime::build_core(faulty.clone(), key(), "https://pay.example".into(), true).await;
    for _ in 0..10 {
        if core.is_ok() {
            break;
        }
        core = paysession_runtime::build_core(faulty.clone(), key(), "https://pay.example".into(), true).await;
    }
    let core = core.expect("a cold start in 10 tries");
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

    /// A monthly mandate of customer `customer` (its first charge due tomorrow), from a
    /// first payment made without faults; the customer and the mandate id.
    async fn mandate(&self, customer: &str) -> (String, String) {
        let start = (self.clean_core.clock.now() + chrono::Duration::days(1)).date_naive();
        let terms = serde_json::json!({"type": "scheduled", "schedule": {"interval": "month", "interval_count": 1, "start_date": start.to_string(), "max_charges": 3}});
        self.mandate_of(customer, terms).await
    }

    /// A mandate of customer `customer` on `terms`, from a first payment made without
    /// faults; the customer and the mandate id.
    async fn mandate_of(&self, customer: &str, terms: Value) -> (String, String) {
        let cx = &self.clean_core;
        let now = cx.clock.now();
        let body = serde_json::json!({
            "amount": 990, "currency": "EUR", "customer_id": customer, "reference": format!("first-{customer}"),
            "session_type": "first_in_series", "mandate": terms
        });
        let spec = paysession_domain::parse_create_session(&body, now, &self.merchant.policy()).unwrap();
        let session = paysession_app::sessions::create(cx, &self.merchant, spec, |s, _| (s.clone(), None)).await.unwrap();
        let card = paysession_domain::card::parse_card("4242424242424242", "12/34", "123", now).unwrap();
        let acceptance = paysession_domain::mandate::CustomerAcceptance { accepted_at: now, ip_address: None, user_agent: None };
        let paid = pay_card(cx, &self.pay, session, CardSource::Typed(card), false, Some(acceptance), "/pay/x").await.unwrap().session;
        (customer.to_string(), paid.spec.mandate_id.expect("the first payment created a mandate"))
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
    paysession_tests::dynamo::drop_table(&r.clean).await;
}

/// 100 cancels through the session-cancel handler, each retried with its key on a 5xx:
/// every session ends cancelled with exactly one `payment_session.cancelled` event, and
/// every answer for a key says cancelled.
#[tokio::test]
async fn every_cancel_retried_with_its_key_cancels_once() {
    let r = rig(34).await;
    let (clean, m) = (&r.clean, &r.merchant.id);
    let mut ids = Vec::new();
    for i in 0..100 {
        let body = serde_json::json!({"amount": 500, "currency": "EUR", "customer_id": "cus_x", "reference": format!("cancel-{i}")});
        let spec = paysession_domain::parse_create_session(&body, r.clean_core.clock.now(), &r.merchant.policy()).unwrap();
        ids.push(paysession_app::sessions::create(&r.clean_core, &r.merchant, spec, |s, _| (s.clone(), None)).await.unwrap().id);
    }
    let mut retries = 0;
    for (i, id) in ids.iter().enumerate() {
        let event =
            r.post(&format!("/v1/payment_sessions/{id}/cancel"), &serde_json::json!({"reason": "abandoned"}), &format!("cancel-key-{i}"));
        let (answer, status, tries) = r.until_answered(Route::CancelSession, &event).await;
        assert_eq!((status, answer["status"].as_str()), (200, Some("cancelled")), "cancel {i}: {answer}");
        retries += tries;
    }
    println!("injected {:?} over {:?} calls; client retries {retries}", r.proxy.injected(), r.proxy.calls());
    for id in &ids {
        assert_eq!(clean.get_session(m, id).await.unwrap().unwrap().status, SessionStatus::Cancelled, "{id}");
        let events = clean.session_events(m, id).await.unwrap();
        assert_eq!(events.iter().filter(|e| e.event_type == "payment_session.cancelled").count(), 1, "{id}");
    }
    paysession_tests::dynamo::drop_table(&r.clean).await;
}

/// 100 refunds through the refund-create handler and their reconciliation (the local
/// reconciler's sweep), every DynamoDB call of both behind 5 % of each fault: each refund
/// reaches `succeeded` once, its payment shows it once, and the processor received one
/// refund call per refund.
#[tokio::test]
async fn every_refund_reaches_a_final_state_once() {
    let r = rig(7).await;
    let mut payments = Vec::new();
    for i in 0..100 {
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
    paysession_tests::dynamo::drop_table(&r.clean).await;
}

/// Sessions of `r`'s merchant of customer `customer` (up to 100), read without faults.
async fn sessions_of(r: &Rig, customer: &str) -> Vec<paysession_domain::session::PaymentSession> {
    let q = SessionQuery { customer_id: Some(customer.into()), limit: 100, now: chrono::Utc::now(), ..Default::default() };
    r.clean.list_sessions(&r.merchant.id, &q).await.unwrap().items
}

/// Successful calls of `op` the sandbox answered for the attempts of `session`.
fn calls(r: &Rig, session: &paysession_domain::session::PaymentSession, op: &str) -> u32 {
    session.payments.iter().map(|a| r.pay.sandbox_calls.of(&a.id).get(op).copied().unwrap_or(0)).sum()
}

/// The sessions left non-final and their attempts, for a failure message.
fn unsettled(sessions: &[paysession_domain::session::PaymentSession]) -> Vec<String> {
    sessions
        .iter()
        .filter(|s| s.status != SessionStatus::Succeeded)
        .map(|s| {
            let attempts: Vec<String> = s.payments.iter().map(|a| format!("{} {}", a.id, a.status.as_str())).collect();
            format!("{} {} [{}]", s.id, s.status.as_str(), attempts.join(", "))
        })
        .collect()
}

/// 100 card payments (the page's use case) on the faulty store, the customer paying again
/// whenever the page lets them (no attempt running and the last one failed), and the
/// reconciliation sweep on the faulty store once a business minute: every session
/// succeeds within the horizon, and the sandbox authorised exactly once per session —
/// an attempt whose outcome write failed is settled by asking the processor, never by a
/// second charge.
#[tokio::test]
async fn every_card_payment_succeeds_with_one_authorisation() {
    card_payments_converge(30, 50, 100).await;
}

/// The same at 20 % of each fault: the SDK's three tries no longer absorb them (about one
/// write in five fails for good), so outcome writes are lost and reconciliation settles
/// them. 40 sessions: the SDK's back-off on so many faults makes each slow.
#[tokio::test]
async fn every_card_payment_succeeds_with_one_authorisation_when_a_fifth_of_writes_fail() {
    card_payments_converge(31, 200, 40).await;
}

/// `sessions` card payments at `per_mille` of each fault (see the tests above).
async fn card_payments_converge(seed: u64, per_mille: u32, sessions: usize) {
    // Claim + 60 s, then the 1-minute back-off step: two passes settle a lost outcome; a
    // sync whose own write fails waits 2 more. 30 passes is ample and still catches a stuck one.
    const HORIZON_PASSES: u32 = 30;
    let r = rig_at(seed, per_mille).await;
    let (clean, m, core) = (&r.clean, &r.merchant.id, &r.deps.core);
    let clock = core.test_clock.clone().unwrap();
    let mut ids = Vec::new();
    for i in 0..sessions {
        let expires = (r.clean_core.clock.now() + chrono::Duration::hours(6)).to_rfc3339();
        let body = serde_json::json!({"amount": 1000, "currency": "EUR", "customer_id": "c", "reference": format!("card-{i}"), "expires_at": expires});
        let spec = paysession_domain::parse_create_session(&body, r.clean_core.clock.now(), &r.merchant.policy()).unwrap();
        ids.push(paysession_app::sessions::create(&r.clean_core, &r.merchant, spec, |s, _| (s.clone(), None)).await.unwrap().id);
    }
    let (mut tries, mut passes) = (0, 0);
    let mut converged_at: BTreeMap<String, u32> = BTreeMap::new();
    loop {
        for id in &ids {
            let current = clean.get_session(m, id).await.unwrap().unwrap();
            let can_pay = current.status == SessionStatus::Open && current.open_attempt().is_none();
            if !can_pay {
                continue;
            }
            tries += 1;
            let card = paysession_domain::card::parse_card("4242424242424242", "12/34", "123", core.clock.now()).unwrap();
            let _ = pay_card(core, &r.pay, current, CardSource::Typed(card), false, None, "/pay/x").await;
        }
        let mut open = Vec::new();
        for id in &ids {
            let s = clean.get_session(m, id).await.unwrap().unwrap();
            if s.status == SessionStatus::Succeeded {
                converged_at.entry(id.clone()).or_insert(passes);
            } else {
                open.push(s);
            }
        }
        if open.is_empty() {
            break;
        }
        assert!(passes < HORIZON_PASSES, "not succeeded after {passes} reconciliation passes: {:?}", unsettled(&open));
        clock.advance(chrono::Duration::seconds(61)).unwrap();
        passes += 1;
        let _ = paysession_app::reconcile::sweep(core, &r.pay, r.faulty.as_ref()).await;
    }
    let slowest = converged_at.values().max().copied().unwrap_or(0);
    println!(
        "injected {:?} over {:?} calls; customer tries {tries} for {sessions} sessions; reconciliation passes {passes}; \
         slowest payment converged after {slowest} passes ({} s of business time)",
        r.proxy.injected(),
        r.proxy.calls(),
        slowest * 61
    );
    let found = sessions_of(&r, "c").await;
    assert_eq!(found.len(), sessions);
    let twice: Vec<_> =
        found.iter().filter(|s| calls(&r, s, "authorize") != 1).map(|s| (s.id.clone(), calls(&r, s, "authorize"))).collect();
    assert!(twice.is_empty(), "sessions not authorised exactly once: {twice:?}");
    for s in &found {
        let events = clean.session_events(m, &s.id).await.unwrap();
        assert_eq!(events.iter().filter(|e| e.event_type == "payment_session.succeeded").count(), 1, "{}", s.id);
        assert!(s.payments.iter().all(|a| a.sync_due().is_none()), "{}: an attempt still owed a sync", s.id);
    }
    paysession_tests::dynamo::drop_table(&r.clean).await;
}

/// 100 scheduled mandates (first payments made without faults), their first occurrence
/// charged by the local scheduler's sweep on the faulty store and reconciled by the
/// reconciliation sweep on it: each occurrence is charged exactly once (one successful
/// off-session charge across its attempts, one recorded charge on the mandate), and no
/// occurrence session or attempt is left non-final.
#[tokio::test]
async fn every_scheduled_occurrence_is_charged_exactly_once() {
    const MANDATES: usize = 100;
    // A minute a pass for pending attempts, and a day every tenth pass for an occurrence
    // whose charge never reached the processor (retried a day later as a soft decline).
    const HORIZON_PASSES: u32 = 60;
    let r = rig(33).await;
    let (clean, m, core) = (&r.clean, &r.merchant.id, &r.deps.core);
    let mut mandates = Vec::new();
    for i in 0..MANDATES {
        mandates.push(r.mandate(&format!("sub-{i}")).await);
    }
    let clock = core.test_clock.clone().unwrap();
    clock.advance(chrono::Duration::days(2)).unwrap();
    let mut passes = 0;
    loop {
        let _ = paysession_app::recurring::sweep(core, &r.pay, r.faulty.as_ref()).await;
        let _ = paysession_app::reconcile::sweep(core, &r.pay, r.faulty.as_ref()).await;
        let mut open = Vec::new();
        for (customer, mandate_id) in &mandates {
            let mandate = clean.get_mandate(m, mandate_id).await.unwrap().unwrap();
            let occurrences: Vec<_> =
                sessions_of(&r, customer).await.into_iter().filter(|s| s.spec.mandate_id.as_deref() == Some(mandate_id.as_str())).collect();
            let occurrence = occurrences.iter().find(|s| s.spec.session_type == paysession_domain::model::SessionType::NextInSeries);
            if mandate.charges_count != 1 || occurrence.is_none_or(|s| s.status != SessionStatus::Succeeded) {
                open.push((mandate_id.clone(), mandate.charges_count, unsettled(&occurrences)));
            }
        }
        if open.is_empty() {
            break;
        }
        assert!(passes < HORIZON_PASSES, "occurrences not charged after {passes} passes: {open:?}");
        passes += 1;
        let step = if passes % 10 == 0 { chrono::Duration::days(1) } else { chrono::Duration::seconds(61) };
        clock.advance(step).unwrap();
    }
    println!("injected {:?} over {:?} calls; scheduler and reconciliation passes {passes}", r.proxy.injected(), r.proxy.calls());
    for (customer, mandate_id) in &mandates {
        let mandate = clean.get_mandate(m, mandate_id).await.unwrap().unwrap();
        assert_eq!((mandate.charges_count, mandate.next_occurrence), (1, 1), "{mandate_id}: occurrence 0 charged, 1 next");
        let occurrences: Vec<_> = sessions_of(&r, customer)
            .await
            .into_iter()
            .filter(|s| s.spec.session_type == paysession_domain::model::SessionType::NextInSeries)
            .collect();
        assert_eq!(occurrences.len(), 1, "{mandate_id}: one session per occurrence");
        assert_eq!(calls(&r, &occurrences[0], "charge_saved"), 1, "{mandate_id}: charged once");
        assert!(occurrences[0].payments.iter().all(|a| a.sync_due().is_none()), "{mandate_id}: an attempt still owed a sync");
    }
    paysession_tests::dynamo::drop_table(&r.clean).await;
}

/// 100 on-demand charges: `next_in_series` creates through the session-create handler on
/// the faulty store, each retried with its key on a 5xx, then the reconciliation sweep on
/// it: each key is one session, charged off-session exactly once, and it succeeds.
#[tokio::test]
async fn every_on_demand_charge_retried_with_its_key_charges_once() {
    const CHARGES: usize = 100;
    const HORIZON_PASSES: u32 = 30;
    let r = rig(35).await;
    let (clean, m, core) = (&r.clean, &r.merchant.id, &r.deps.core);
    let mut mandates = Vec::new();
    for i in 0..CHARGES {
        mandates.push(r.mandate_of(&format!("od-{i}"), serde_json::json!({"type": "on_demand", "max_amount": 5000})).await);
    }
    let mut retries = 0;
    for (i, (customer, mandate_id)) in mandates.iter().enumerate() {
        let body = serde_json::json!({
            "amount": 1234, "currency": "EUR", "customer_id": customer, "reference": format!("charge-{i}"),
            "session_type": "next_in_series", "mandate_id": mandate_id
        });
        let (answer, status, tries) =
            r.until_answered(Route::CreateSession, &r.post("/v1/payment_sessions", &body, &format!("charge-key-{i}"))).await;
        assert_eq!(status, 201, "charge {i}: {answer}");
        retries += tries;
    }
    let clock = core.test_clock.clone().unwrap();
    let mut passes = 0;
    let charges = |sessions: Vec<paysession_domain::session::PaymentSession>| -> Vec<paysession_domain::session::PaymentSession> {
        sessions.into_iter().filter(|s| s.spec.session_type == paysession_domain::model::SessionType::NextInSeries).collect()
    };
    loop {
        let mut open = Vec::new();
        for (customer, _) in &mandates {
            let found = charges(sessions_of(&r, customer).await);
            if found.len() != 1 || found[0].status != SessionStatus::Succeeded {
                open.extend(unsettled(&found));
            }
        }
        if open.is_empty() {
            break;
        }
        assert!(passes < HORIZON_PASSES, "charges not settled after {passes} passes: {open:?}");
        clock.advance(chrono::Duration::seconds(61)).unwrap();
        passes += 1;
        let _ = paysession_app::reconcile::sweep(core, &r.pay, r.faulty.as_ref()).await;
    }
    println!(
        "injected {:?} over {:?} calls; client retries {retries}; reconciliation passes {passes}",
        r.proxy.injected(),
        r.proxy.calls()
    );
    for (customer, mandate_id) in &mandates {
        let found = charges(sessions_of(&r, customer).await);
        assert_eq!(found.len(), 1, "{mandate_id}: one session per key");
        assert_eq!(calls(&r, &found[0], "charge_saved"), 1, "{mandate_id}: charged once");
        let events = clean.session_events(m, &found[0].id).await.unwrap();
        assert_eq!(events.iter().filter(|e| e.event_type == "payment_session.succeeded").count(), 1, "{mandate_id}");
        assert!(found[0].payments.iter().all(|a| a.sync_due().is_none()), "{mandate_id}: an attempt still owed a sync");
    }
    paysession_tests::dynamo::drop_table(&r.clean).await;
}

/// 100 sessions past their expiry, 50 expired by `POST …/expire` through its handler
/// (retried with its key on a 5xx) and 50 by their TTL items' removal records through the
/// stream consumer, which Lambda retries from the first failed record: every session ends
/// expired with exactly one `payment_session.expired` event. At 20 % of each fault, so
/// the stream's retry path is taken, not only the SDK's.
#[tokio::test]
async fn every_due_session_expires_once() {
    let r = rig_at(36, 200).await;
    let (clean, m, core) = (&r.clean, &r.merchant.id, &r.deps.core);
    let mut ids = Vec::new();
    for i in 0..100 {
        let expires = (r.clean_core.clock.now() + chrono::Duration::minutes(2)).to_rfc3339();
        let body = serde_json::json!({"amount": 500, "currency": "EUR", "customer_id": "cus_e", "reference": format!("exp-{i}"), "expires_at": expires});
        let spec = paysession_domain::parse_create_session(&body, r.clean_core.clock.now(), &r.merchant.policy()).unwrap();
        ids.push(paysession_app::sessions::create(&r.clean_core, &r.merchant, spec, |s, _| (s.clone(), None)).await.unwrap().id);
    }
    core.test_clock.clone().unwrap().advance(chrono::Duration::minutes(3)).unwrap();
    let (by_api, by_ttl) = ids.split_at(50);
    let mut retries = 0;
    for (i, id) in by_api.iter().enumerate() {
        let event = r.post(&format!("/v1/payment_sessions/{id}/expire"), &serde_json::json!({}), &format!("expire-key-{i}"));
        let (answer, status, tries) = r.until_answered(Route::ExpireSession, &event).await;
        assert_eq!((status, answer["status"].as_str()), (200, Some("expired")), "expire {i}: {answer}");
        retries += tries;
    }
    let records: Vec<Value> = by_ttl
        .iter()
        .enumerate()
        .map(|(i, id)| {
            serde_json::json!({
                "eventID": format!("e{i}"), "eventName": "REMOVE", "eventSource": "aws:dynamodb",
                "userIdentity": {"type": "Service", "principalId": paysession_aws::stream::TTL_PRINCIPAL},
                "dynamodb": {
                    "SequenceNumber": format!("{:021}", i + 1),
                    "Keys": {"PK": {"S": format!("SES#{id}")}, "SK": {"S": "EXPIRY"}},
                    "OldImage": {"merchant_id": {"S": m}, "session_id": {"S": id}}
                }
            })
        })
        .collect();
    let sinks = paysession_aws::stream::StreamSinks {
        queue: &paysession_app::ports::PolledQueue,
        scheduler: &paysession_app::ports::SweptLocally,
        bus: None,
    };
    let mut stream_retries = 0;
    let mut pending = records;
    while !pending.is_empty() {
        assert!(stream_retries < 50, "a stream batch kept failing for 50 tries");
        let response = paysession_aws::stream::handle_stream_event(core, &sinks, &serde_json::json!({ "Records": pending })).await;
        let failed: Vec<&str> =
            response["batchItemFailures"].as_array().unwrap().iter().filter_map(|f| f["itemIdentifier"].as_str()).collect();
        let first = pending.iter().position(|r| failed.contains(&r["dynamodb"]["SequenceNumber"].as_str().unwrap()));
        match first {
            Some(first) => {
                pending.drain(..first);
                stream_retries += 1;
            }
            None => pending.clear(),
        }
    }
    println!(
        "injected {:?} over {:?} calls; client retries {retries}; stream batch retries {stream_retries}",
        r.proxy.injected(),
        r.proxy.calls()
    );
    for id in &ids {
        assert_eq!(clean.get_session(m, id).await.unwrap().unwrap().status, SessionStatus::Expired, "{id}");
        let events = clean.session_events(m, id).await.unwrap();
        assert_eq!(events.iter().filter(|e| e.event_type == "payment_session.expired").count(), 1, "{id}");
    }
    paysession_tests::dynamo::drop_table(&r.clean).await;
}
