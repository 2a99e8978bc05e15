//! Reconciliation as deployed, on real parts: a refund written to DynamoDB Local → its table
//! stream → the stream-consumer handler → `CreateSchedule` on moto's EventBridge Scheduler
//! targeting `processor-sync`; moto never fires schedules, so the test invokes the
//! `processor-sync` handler with exactly the input the schedule holds, and again (a replayed
//! delivery). And an authorisation voided at `capture_before` by DynamoDB Local really
//! deleting its TTL item. Also counts the DynamoDB requests and write units of a refund, a
//! capture and a sync (docs/PERFORMANCE.md).

use std::time::Duration;

use chrono::Utc;
use paysession_app::merchants::{NewMerchant, provision};
use paysession_app::payments::{CardSource, pay_card};
use paysession_app::ports::{ChargeScheduler, RefundStore as _, SessionStore as _};
use paysession_app::{Core, Payments, captures, refunds, sessions};
use paysession_aws::DynamoStore;
use paysession_aws::scheduler::{EventBridgeScheduler, ScheduleTarget, handle_sync, scheduler_client};
use paysession_aws::stream::{StreamSinks, handle_stream_event};
use paysession_aws::stream_poller::{StreamPoller, streams_client};
use paysession_domain::model::PaymentMethodKind;
use paysession_domain::payment::{AttemptStatus, PaymentAttempt};
use paysession_domain::refund::{RefundRequest, RefundStatus};
use paysession_domain::session::{PaymentSession, events_for};
use paysession_tests::aws::{consume_until, deps, fresh_queues};
use paysession_tests::dynamo::counted_table;
use serde_json::{Value, json};

const SYNC_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:paysession-processor-sync";

async fn scheduler(group: &str) -> EventBridgeScheduler {
    let client = scheduler_client().await.unwrap();
    client.create_schedule_group().name(group).send().await.expect("create the schedule group on moto");
    let target = ScheduleTarget::from_lookup(|k| {
        Some(match k {
            "PAYSESSION_SCHEDULE_GROUP" => group.to_string(),
            "PAYSESSION_RECURRING_CHARGE_ARN" => "arn:aws:lambda:us-east-1:123456789012:function:paysession-recurring-charge".into(),
            "PAYSESSION_PROCESSOR_SYNC_ARN" => SYNC_ARN.into(),
            "PAYSESSION_SCHEDULER_ROLE_ARN" => "arn:aws:iam::123456789012:role/paysession-scheduler".into(),
            _ => "arn:aws:sqs:us-east-1:123456789012:paysession-schedule-dlq".into(),
        })
    })
    .unwrap();
    EventBridgeScheduler::new(client, target)
}

/// Every schedule in the group: (name, expression, target ARN, input).
async fn schedules(group: &str) -> Vec<(String, String, String, Value)> {
    let client = scheduler_client().await.unwrap();
    let listed = client.list_schedules().group_name(group).send().await.expect("list schedules");
    let mut out = Vec::new();
    for s in listed.schedules {
        let name = s.name.unwrap();
        let got = client.get_schedule().group_name(group).name(&name).send().await.expect("get schedule");
        let target = got.target().unwrap();
        let input = serde_json::from_str(target.input().unwrap()).unwrap();
        out.push((name, got.schedule_expression().unwrap().to_string(), target.arn().to_string(), input));
    }
    out
}

/// A merchant and one of its sessions paid by `card` (manual capture when asked).
async fn paid(cx: &Core<DynamoStore>, pay: &Payments, card: &str, manual: bool) -> (String, PaymentSession) {
    let merchant = provision(cx.store.as_ref(), &cx.keys, &NewMerchant { name: "Refunds".into(), ..Default::default() }, None, Utc::now())
        .await
        .unwrap()
        .merchant;
    let now = cx.clock.now();
    let mut body = json!({"amount": 1000, "currency": "EUR", "customer_id": "cus_re", "reference": paysession_app::ids::new_id("ref")});
    if manual {
        body["capture_method"] = json!("manual");
    }
    let spec = paysession_domain::parse_create_session(&body, now, &merchant.policy()).unwrap();
    let session = sessions::create(cx, &merchant, spec, |s, _| (s.clone(), None)).await.unwrap();
    let card = paysession_domain::card::parse_card(card, "12/34", "123", now).unwrap();
    pay_card(cx, pay, session.clone(), CardSource::Typed(card), false, None, "/pay/x").await.unwrap();
    let paid = cx.store.get_session(&merchant.id, &session.id).await.unwrap().unwrap();
    (merchant.id, paid)
}

#[tokio::test]
async fn refund_syncs_are_scheduled_from_the_stream_and_run_by_processor_sync() {
    let (store, counter) = counted_table().await;
    let (dynamodb, table) = (store.client().clone(), store.table().to_string());
    let queues = fresh_queues().await;
    let d = deps(store, &queues).await;
    let cx = &d.core;
    let pay = Payments::sandbox();
    let group = paysession_app::ids::new_id("paysession-sync");
    let scheduler = scheduler(&group).await;
    let sinks = StreamSinks { queue: d.queue.as_ref(), scheduler: &scheduler as &dyn ChargeScheduler, bus: None };
    let mut poller = StreamPoller::for_table(&dynamodb, streams_client().await.unwrap(), &table).await.unwrap();
    let run = async |batch: &Value| handle_stream_event(cx, &sinks, batch).await;

    // The timeout card: the refund call's answer is lost.
    let (m, session) = paid(cx, &pay, "4000000000000077", false).await;
    let payment = session.payments[0].id.clone();
    counter.take();
    counter.take_written();
    let req = RefundRequest { payment_id: payment.clone(), amount: Some(400), reason: None, metadata: Default::default() };
    let created = refunds::create(cx, &pay, &m, req, |r| (r.clone(), None)).await.unwrap();
    let create_requests = counter.take();
    let create_written = counter.take_written();
    println!("refund create: requests {create_requests:?}, written {create_written:?}");
    let stored = cx.store.get_refund(&m, &created.id).await.unwrap().unwrap();
    assert_eq!(stored.status, RefundStatus::Pending, "an unknown answer is not guessed");
    let due = stored.next_sync_at.expect("a sync is due");

    // The stream schedules the sync: one one-time schedule targeting processor-sync.
    let name = format!("rs-{}-{:x}", created.id, due.timestamp());
    consume_until(&mut poller, 20, run, async || schedules(&group).await.iter().any(|s| s.0 == name)).await;
    let all = schedules(&group).await;
    let (_, expression, arn, input) = all.iter().find(|s| s.0 == name).unwrap();
    assert_eq!(arn, SYNC_ARN);
    assert_eq!(input, &json!({"merchant_id": m, "refund_id": created.id}));
    assert!(expression.starts_with("at("), "{expression}");

    // The delivery, twice: the first syncs (succeeded), the replay finds nothing due.
    d.test_clock.as_ref().unwrap().advance(chrono::Duration::minutes(2)).unwrap();
    counter.take();
    counter.take_written();
    assert_eq!(handle_sync(cx, &pay, input).await.unwrap()["result"], "succeeded");
    let sync_requests = counter.take();
    let sync_written = counter.take_written();
    println!("refund sync: requests {sync_requests:?}, written {sync_written:?}");
    assert_eq!(handle_sync(cx, &pay, input).await.unwrap()["result"], "nothing_due", "a replayed delivery is harmless");
    let calls = pay.sandbox_calls.of(&created.id);
    assert_eq!((calls.get("refund"), calls.get("sync_refund")), (Some(&1), Some(&1)), "{calls:?}");
    let money = cx.store.payment_money(&m, &session.id, &payment).await.unwrap().unwrap();
    assert_eq!((money.refundable, money.refunded), (600, 400));
    // The succeeded refund owes nothing: its write schedules nothing more.
    let before = schedules(&group).await.len();
    consume_until(&mut poller, 5, run, async || true).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    consume_until(&mut poller, 5, run, async || true).await;
    assert_eq!(schedules(&group).await.len(), before);
    assert!(handle_sync(cx, &pay, &json!({"refund_id": "x"})).await.is_err(), "an unreadable input fails the invocation");

    // A capture's requests.
    let (m2, manual) = paid(cx, &pay, "4242424242424242", true).await;
    let auth = manual.payments[0].id.clone();
    assert_eq!(manual.payments[0].status, AttemptStatus::RequiresCapture);
    counter.take();
    counter.take_written();
    captures::capture(cx, &pay, &m2, &auth, Some(700), |_, _| ((), None)).await.unwrap();
    println!("capture: requests {:?}, written {:?}", counter.take(), counter.take_written());

    // A refund the processor answers "pending" (a card; it settles seconds later).
    let (m3, card_paid) = paid(cx, &pay, "4242424242424242", false).await;
    counter.take();
    counter.take_written();
    let req = RefundRequest { payment_id: card_paid.payments[0].id.clone(), amount: Some(100), reason: None, metadata: Default::default() };
    refunds::create(cx, &pay, &m3, req, |r| (r.clone(), None)).await.unwrap();
    let answered_requests = counter.take();
    println!("refund create, answered: requests {answered_requests:?}, written {:?}", counter.take_written());

    // Pinned: a refund is a GetItem of the session and one TransactWriteItems reserving
    // (counters, refund, refund.created); an answer that leaves it pending (or none) writes
    // nothing more, one that moves it (succeeded, failed, requires_action) one PutItem. A
    // sync reads the merchant's test clock (sandbox), the refund and the session and writes
    // one transaction.
    let total = |c: &std::collections::BTreeMap<String, usize>| c.values().sum::<usize>();
    assert_eq!((create_requests.get("TransactWriteItems"), total(&create_requests)), (Some(&1), 2), "{create_requests:?}");
    assert_eq!((answered_requests.get("TransactWriteItems"), total(&answered_requests)), (Some(&1), 2), "{answered_requests:?}");
    assert_eq!((sync_requests.get("TransactWriteItems"), total(&sync_requests)), (Some(&1), 4), "{sync_requests:?}");
}

/// A payment attempt whose worker died: once after the sandbox answered (its outcome never
/// written), once before it called the sandbox. The session item's `sync_ms` reaches the
/// stream consumer, which schedules `processor-sync`; that function, in another process
/// (its own sandbox instance on the same ledger in the table), asks by our id and writes
/// the true outcome: the first session succeeds with its one authorisation, the second
/// attempt fails (the processor never saw it) and the customer may pay again.
/// A card payment writes its attempt ahead (a sync due) and its answer a moment later: the
/// two records reach the consumer in one batch through the template's filters, and no
/// schedule is created for a sync that is no longer owed (the test below shows one is when
/// the answer never comes).
#[tokio::test]
async fn a_payment_answered_within_the_batch_schedules_no_sync() {
    let (store, _counter) = counted_table().await;
    let (dynamodb, table) = (store.client().clone(), store.table().to_string());
    let queues = fresh_queues().await;
    let d = deps(store, &queues).await;
    let cx = &d.core;
    let group = paysession_app::ids::new_id("paysession-sync");
    let scheduler = scheduler(&group).await;
    let sinks = StreamSinks { queue: d.queue.as_ref(), scheduler: &scheduler as &dyn ChargeScheduler, bus: None };
    let mut poller = StreamPoller::for_table(&dynamodb, streams_client().await.unwrap(), &table).await.unwrap();
    let run = async |batch: &Value| handle_stream_event(cx, &sinks, batch).await;

    let (_, session) = paid(cx, &Payments::sandbox(), "4242424242424242", false).await;
    assert_eq!(session.payments[0].status, AttemptStatus::Succeeded);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let batches = consume_until(&mut poller, 5, run, async || true).await;
    let session_records: Vec<&Value> =
        batches.iter().flat_map(|b| b["Records"].as_array().unwrap()).filter(|r| r["dynamodb"]["Keys"]["SK"]["S"] == "SESSION").collect();
    assert_eq!(session_records.len(), 2, "the write-ahead and the answer, in one batch: {session_records:?}");
    assert!(schedules(&group).await.is_empty(), "a sync no longer owed was scheduled");
}

#[tokio::test]
async fn a_pending_attempt_is_synced_by_processor_sync_from_the_stream() {
    let (store, _counter) = counted_table().await;
    let (dynamodb, table) = (store.client().clone(), store.table().to_string());
    let ledger = std::sync::Arc::new(store.clone());
    let queues = fresh_queues().await;
    let d = deps(store, &queues).await;
    let cx = &d.core;
    // The page's process and processor-sync's: two sandboxes on one ledger.
    let (page, sync) = (Payments::sandbox_on(ledger.clone()), Payments::sandbox_on(ledger));
    let group = paysession_app::ids::new_id("paysession-sync");
    let scheduler = scheduler(&group).await;
    let sinks = StreamSinks { queue: d.queue.as_ref(), scheduler: &scheduler as &dyn ChargeScheduler, bus: None };
    let mut poller = StreamPoller::for_table(&dynamodb, streams_client().await.unwrap(), &table).await.unwrap();
    let run = async |batch: &Value| handle_stream_event(cx, &sinks, batch).await;
    let merchant = provision(cx.store.as_ref(), &cx.keys, &NewMerchant { name: "Died".into(), ..Default::default() }, None, Utc::now())
        .await
        .unwrap()
        .merchant;

    let mut inputs = Vec::new();
    for (reference, answered) in [("answered", true), ("never-called", false)] {
        let now = cx.clock.now();
        let body = json!({"amount": 1000, "currency": "EUR", "customer_id": "cus_d", "reference": reference});
        let spec = paysession_domain::parse_create_session(&body, now, &merchant.policy()).unwrap();
        let session = sessions::create(cx, &merchant, spec, |s, _| (s.clone(), None)).await.unwrap();
        let attempt = PaymentAttempt::new(paysession_app::ids::new_child_id("pay", &session.id), PaymentMethodKind::Card, 1000, now);
        let id = attempt.id.clone();
        let claimed =
            sessions::update_with(cx, session, true, |s, t| s.claim_attempt(attempt.clone(), t).map(Some)).await.unwrap().unwrap();
        if answered {
            let card = paysession_domain::card::parse_card("4242424242424242", "12/34", "123", now).unwrap();
            let answer = page.sandbox.authorize_card(&paysession_app::payments::payment_call(&claimed, &id), &card, false).await;
            assert!(matches!(answer.outcome, paysession_app::processor::Outcome::Succeeded { .. }));
        }
        // The worker dies here: the outcome is never written.
        let due = claimed.attempt_sync_due().unwrap().1;
        let name = format!("ps-{id}-{:x}", due.timestamp());
        consume_until(&mut poller, 20, run, async || schedules(&group).await.iter().any(|s| s.0 == name)).await;
        let all = schedules(&group).await;
        let (_, expression, arn, input) = all.iter().find(|s| s.0 == name).unwrap();
        assert_eq!((arn.as_str(), input), (SYNC_ARN, &json!({"merchant_id": merchant.id, "session_id": claimed.id, "attempt_id": id})));
        assert!(expression.starts_with("at("), "{expression}");
        inputs.push((claimed.id.clone(), id, input.clone()));
    }

    // Due a claim's wait later; each delivered twice (the replay finds nothing due).
    d.test_clock.as_ref().unwrap().advance(chrono::Duration::seconds(61)).unwrap();
    let (answered, never_called) = (&inputs[0], &inputs[1]);
    assert_eq!(handle_sync(cx, &sync, &answered.2).await.unwrap()["result"], "succeeded");
    assert_eq!(handle_sync(cx, &sync, &never_called.2).await.unwrap()["result"], "failed");
    for (_, _, input) in &inputs {
        assert_eq!(handle_sync(cx, &sync, input).await.unwrap()["result"], "nothing_due", "a replayed delivery is harmless");
    }
    let paid = cx.store.get_session(&merchant.id, &answered.0).await.unwrap().unwrap();
    assert_eq!((paid.status, paid.payments[0].status), (paysession_domain::SessionStatus::Succeeded, AttemptStatus::Succeeded));
    assert_eq!(page.sandbox_calls.of(&answered.1).get("authorize"), Some(&1));
    assert_eq!(sync.sandbox_calls.of(&answered.1).get("sync_payment"), Some(&1));
    let failed = cx.store.get_session(&merchant.id, &never_called.0).await.unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.payments[0].status, failed.payments[0].failure_code.as_deref()),
        (paysession_domain::SessionStatus::Open, AttemptStatus::Failed, Some("processing_error"))
    );
    let events = cx.store.session_events(&merchant.id, &answered.0).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.event_type == "payment_session.succeeded").count(), 1);
    // Settled sessions owe no sync: their writes schedule nothing more.
    let before = schedules(&group).await.len();
    consume_until(&mut poller, 5, run, async || true).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    consume_until(&mut poller, 5, run, async || true).await;
    assert_eq!(schedules(&group).await.len(), before);
}

#[tokio::test]
async fn an_authorisation_is_voided_when_dynamodb_local_deletes_its_ttl_item() {
    let (store, _counter) = counted_table().await;
    let (dynamodb, table) = (store.client().clone(), store.table().to_string());
    let queues = fresh_queues().await;
    let d = deps(store, &queues).await;
    let cx = &d.core;
    let pay = Payments::sandbox();
    let group = paysession_app::ids::new_id("paysession-void");
    let scheduler = scheduler(&group).await;
    let sinks = StreamSinks { queue: d.queue.as_ref(), scheduler: &scheduler as &dyn ChargeScheduler, bus: None };
    let mut poller = StreamPoller::for_table(&dynamodb, streams_client().await.unwrap(), &table).await.unwrap();
    let run = async |batch: &Value| handle_stream_event(cx, &sinks, batch).await;

    // A manual session authorised "7 days minus 2 s ago": its capture_before is 2 s away.
    let merchant = provision(cx.store.as_ref(), &cx.keys, &NewMerchant { name: "Voids".into(), ..Default::default() }, None, Utc::now())
        .await
        .unwrap()
        .merchant;
    let now = cx.clock.now();
    let body = json!({"amount": 500, "currency": "EUR", "customer_id": "c", "reference": "void-1", "capture_method": "manual"});
    let spec = paysession_domain::parse_create_session(&body, now, &merchant.policy()).unwrap();
    let session = sessions::create(cx, &merchant, spec, |s, _| (s.clone(), None)).await.unwrap();
    let at = now - paysession_domain::payment::AUTHORISATION_VALIDITY + chrono::Duration::seconds(2);
    let attempt = PaymentAttempt::new(
        paysession_app::ids::new_child_id("pay", &session.id),
        paysession_domain::model::PaymentMethodKind::Card,
        500,
        at,
    );
    let payment = attempt.id.clone();
    let claimed = session.claim_attempt(attempt, now).unwrap();
    let authorised = claimed.update_attempt(&payment, AttemptStatus::Succeeded, None, None, at).unwrap();
    assert_eq!(authorised.payments[0].status, AttemptStatus::RequiresCapture);
    cx.store.update_session(&claimed, session.version, &[], None).await.unwrap();
    let events = events_for(Some(&claimed), &authorised, now, || paysession_app::ids::new_id("evt"));
    cx.store.update_session(&authorised, claimed.version, &events, None).await.unwrap();

    // DynamoDB Local's TTL pass deletes the item; the stream schedules the void at once.
    let name = format!("av-{payment}");
    consume_until(&mut poller, 300, run, async || schedules(&group).await.iter().any(|s| s.0 == name)).await;
    let all = schedules(&group).await;
    let (_, _, arn, input) = all.iter().find(|s| s.0 == name).unwrap();
    assert_eq!(arn, SYNC_ARN);
    assert_eq!(input, &json!({"merchant_id": merchant.id, "session_id": session.id, "payment_id": payment}));
    assert_eq!(handle_sync(cx, &pay, input).await.unwrap()["result"], "voided");
    assert_eq!(handle_sync(cx, &pay, input).await.unwrap()["result"], "nothing_due", "a replayed delivery is harmless");
    let after = cx.store.get_session(&merchant.id, &session.id).await.unwrap().unwrap();
    let a = &after.payments[0];
    assert_eq!((a.status, a.cancellation_reason.as_deref()), (AttemptStatus::Canceled, Some("authorization_expired")));
    let types: Vec<String> = cx.store.session_events(&merchant.id, &session.id).await.unwrap().into_iter().map(|e| e.event_type).collect();
    assert!(types.ends_with(&["payment.updated".to_string(), "payment.canceled".to_string()]), "{types:?}");
}
