//! The local server (`--store dynamodb`) on a table behind the fault-injecting proxy, used
//! over HTTP as merchants and customers use it: its every DynamoDB call, its stream reads
//! included, meets 5 % lost answers, 5 % 500s and 5 % throttling once setup is done.

use std::collections::{BTreeMap, BTreeSet};

use paysession_app::ports::SessionStore as _;
use paysession_app::processor::SandboxLedger as _;
use paysession_domain::SessionStatus;
use paysession_domain::payment::AttemptStatus;
use paysession_tests::Server;
use paysession_tests::faults::{FaultProxy, Faults};
use paysession_tests::page::Customer;
use paysession_tests::receiver::Receiver;
use reqwest::Method;
use serde_json::json;

const SHOP: &str = "https://shop.example";
const SESSIONS: usize = 100;
/// Reads of one pass of the local sweepers on DynamoDB (a `Query` of the due index, or on
/// their first pass a `Scan`, each): due mandates, attempts, refunds, authorisations.
const READS_PER_SWEEP: usize = 4;
/// Business minutes of reconciliation (each a test-clock step of 61 s and a second of the
/// local reconciler): a lost outcome is settled in two, one whose sync write fails too in a
/// few more.
const HORIZON_PASSES: u32 = 30;

/// `call` until it is answered other than with a 5xx or a 409 `idempotency_key_in_use`:
/// what a client retrying with its key does, backing off (50 ms doubling to 5 s) for up to
/// two minutes, since a try whose answer was lost may hold the key for its lock (60 s).
async fn until_answered(s: &Server, path: &str, token: &str, body: &serde_json::Value, key: &str) -> (paysession_tests::Resp, usize) {
    let (started, mut pause) = (std::time::Instant::now(), std::time::Duration::from_millis(50));
    for retries in 0.. {
        let r = s.call(Method::POST, path, token, Some(body), &[("idempotency-key", key)]).await;
        if r.status.as_u16() < 500 && r.status.as_u16() != 409 {
            return (r, retries);
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "{path} not answered in {retries} tries: {} {}", r.status, r.text);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(5));
    }
    unreachable!()
}

/// Moves the test clock, retrying on 5xx without a key: a move repeated after a lost
/// answer only moves business time further, which every wait here tolerates.
async fn advance(s: &Server, token: &str, seconds: u64) {
    for _ in 0..50 {
        let r = s.call(Method::POST, "/v1/test_clock/advance", token, Some(&json!({"seconds": seconds})), &[]).await;
        if r.status.as_u16() < 500 {
            assert_eq!(r.status, 200, "{}", r.text);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("/v1/test_clock/advance answered 5xx 50 times");
}

/// 100 creates retried with their keys, then each session paid on its hosted page by a
/// customer who tries again whenever the page offers the form, while the test clock moves
/// a minute at a time: each create is one session, each session succeeds with exactly one
/// authorisation, and every committed event reaches the merchant's receiver under its own
/// id and one webhook-id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_server_on_a_faulty_table_creates_pays_and_delivers() {
    let clean = paysession_tests::dynamo::fresh_table_for_a_long_test().await;
    let proxy = FaultProxy::start(&std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap(), BTreeMap::new(), 51).await;
    let mut s = Server::start_on_table_with(clean.table(), Some(proxy.url.clone()), true).await;
    let t = s.token().await;
    let rx = Receiver::start().await;
    let endpoint = s.post("/v1/webhook_endpoints", &t, &json!({"url": rx.url(), "events": ["*"]})).await;
    assert_eq!(endpoint.status, 201, "{}", endpoint.text);
    proxy.set(BTreeMap::from([("*".to_string(), Faults::each(50))]));

    let mut client_retries = 0;
    let mut sessions = Vec::new();
    for i in 0..SESSIONS {
        let body = json!({
            "amount": 1050, "currency": "EUR", "customer_id": "cus_local", "reference": format!("local-{i}"),
            "allowed_domains": [SHOP], "expires_at": (chrono::Utc::now() + chrono::Duration::hours(6)).to_rfc3339(),
        });
        let (r, retries) = until_answered(&s, "/v1/payment_sessions", &t, &body, &format!("local-key-{i}")).await;
        assert_eq!(r.status, 201, "create {i}: {}", r.text);
        client_retries += retries;
        sessions.push(r.json());
    }
    let m = s.running.as_ref().unwrap().demo.merchant_id.clone();
    let read = async |id: &str| clean.get_session(&m, id).await.unwrap().unwrap();

    let (mut customer_tries, mut passes) = (0, 0);
    loop {
        let mut open = Vec::new();
        for session in &sessions {
            let id = session["id"].as_str().unwrap();
            let stored = read(id).await;
            if stored.status == SessionStatus::Succeeded {
                continue;
            }
            open.push(format!(
                "{id} {} {:?}",
                stored.status.as_str(),
                stored.payments.iter().map(|a| a.status.as_str()).collect::<Vec<_>>()
            ));
            let mut c = Customer::new(&s, session);
            let page = c.open_from(SHOP).await;
            // The form is offered when no attempt runs (a running one shows "in progress").
            if page.status == 200 && page.body.contains("card_number") {
                customer_tries += 1;
                c.pay_card("4242424242424242").await;
            }
        }
        if open.is_empty() {
            break;
        }
        assert!(passes < HORIZON_PASSES, "not succeeded after {passes} passes: {open:?}");
        passes += 1;
        advance(&s, &t, 61).await;
        // A pass counts once the local sweepers have swept about three times since the clock
        // moved (under load a sweep through the faulty table takes longer than its second).
        let sweeps = || {
            let calls = proxy.calls();
            ["Scan", paysession_tests::faults::DUE_INDEX_QUERY].iter().map(|op| calls.get(*op).copied().unwrap_or(0)).sum::<usize>()
        };
        let (before, waited) = (sweeps(), std::time::Instant::now());
        while sweeps() < before + 3 * READS_PER_SWEEP && waited.elapsed() < std::time::Duration::from_secs(60) {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    let mut committed = BTreeSet::new();
    for session in &sessions {
        let stored = read(session["id"].as_str().unwrap()).await;
        // What the sandbox did is its ledger (on this faulty table too: a call whose record
        // was lost on every retry is one the sandbox may or may not have made, as with a
        // real processor), read without faults: one attempt charged, the one that succeeded.
        let mut charged = Vec::new();
        for a in &stored.payments {
            let entry = clean.recall(&a.id).await.unwrap().map(|e| serde_json::from_str::<serde_json::Value>(&e).unwrap());
            if entry.is_some_and(|e| e["o"] == "succeeded") {
                charged.push((a.id.clone(), a.status));
            }
        }
        let succeeded: Vec<_> =
            stored.payments.iter().filter(|a| a.status == AttemptStatus::Succeeded).map(|a| (a.id.clone(), a.status)).collect();
        assert_eq!((charged.len(), &charged), (1, &succeeded), "{}: {:?}", stored.id, stored.payments);
        committed.extend(clean.session_events(&m, &stored.id).await.unwrap().into_iter().map(|e| e.id));
    }
    let delivered = |rx: &Receiver| rx.received().iter().map(|r| r.json()["id"].as_str().unwrap().to_string()).collect::<BTreeSet<_>>();
    // The horizon is progress: a minute with no new webhook request fails. Business time
    // moves two minutes a round, so an attempt that failed (a send that timed out on this
    // loaded machine) is retried on its schedule (5 s, 5 min, 30 min …) within it.
    let mut last_progress = (std::time::Instant::now(), 0);
    while delivered(&rx) != committed {
        let seen = delivered(&rx);
        let missing: Vec<_> = committed.difference(&seen).collect();
        if rx.received().len() != last_progress.1 {
            last_progress = (std::time::Instant::now(), rx.received().len());
        }
        assert!(last_progress.0.elapsed() < std::time::Duration::from_secs(60), "{} events not delivered: {missing:?}", missing.len());
        advance(&s, &t, 120).await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let mut webhook_ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in rx.received() {
        webhook_ids.entry(r.json()["id"].as_str().unwrap().to_string()).or_default().insert(r.header("webhook-id").unwrap().to_string());
    }
    assert!(webhook_ids.values().all(|ids| ids.len() == 1), "one webhook-id per event: {webhook_ids:?}");
    println!(
        "injected {:?} over {:?} calls; client retries {client_retries}; customer tries {customer_tries} for {SESSIONS} sessions; \
         passes {passes}; {} events committed, {} webhook requests",
        proxy.injected(),
        proxy.calls(),
        committed.len(),
        rx.received().len()
    );
    s.running.take().expect("running").stop().await;
    paysession_tests::dynamo::drop_table(&clean).await;
}
