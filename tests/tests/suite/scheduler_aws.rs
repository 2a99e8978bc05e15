//! Recurring charges as deployed, on real parts: a first payment's mandate written to
//! DynamoDB Local → its table stream → the stream-consumer handler → `CreateSchedule` on
//! moto's EventBridge Scheduler. Moto stores schedules but never fires them, so the test
//! reads the stored schedule and invokes the `recurring-charge` handler with exactly the
//! input Scheduler would deliver (its context attribute substituted), three times.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::Utc;
use paysession_app::ports::{ChargeScheduler, ChargeTrigger, MandateStore as _, SessionQuery, SessionStore as _, StoreError};
use paysession_app::{Payments, mandates};
use paysession_aws::scheduler::{EventBridgeScheduler, ScheduleTarget, handle_scheduled_charge, scheduler_client};
use paysession_aws::stream::{StreamSinks, handle_stream_event};
use paysession_aws::stream_poller::{StreamPoller, streams_client};
use paysession_domain::mandate::{MandateAction, MandateStatus};
use paysession_tests::aws::{consume_until, deps, fresh_queues};
use paysession_tests::dynamo::counted_table;
use paysession_tests::subscription::first_payment;
use serde_json::{Value, json};

/// Counts the scheduler calls the stream consumer makes, passing each to moto.
struct Counting {
    inner: EventBridgeScheduler,
    creates: AtomicUsize,
    deletes: AtomicUsize,
}

#[async_trait]
impl ChargeScheduler for Counting {
    async fn create(&self, t: &ChargeTrigger) -> Result<(), StoreError> {
        self.creates.fetch_add(1, Ordering::SeqCst);
        self.inner.create(t).await
    }
    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.deletes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(name).await
    }
}

impl Counting {
    fn take(&self) -> (usize, usize) {
        (self.creates.swap(0, Ordering::SeqCst), self.deletes.swap(0, Ordering::SeqCst))
    }
}

/// Every schedule in the group: name → (expression, target).
async fn schedules(
    client: &aws_sdk_scheduler::Client,
    group: &str,
) -> Vec<(String, aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput)> {
    let listed = client.list_schedules().group_name(group).send().await.expect("list schedules");
    let mut out = Vec::new();
    for s in listed.schedules {
        let name = s.name.unwrap();
        let got = client.get_schedule().group_name(group).name(&name).send().await.expect("get schedule");
        out.push((name, got));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// What Scheduler delivers: the target's input with `<aws.scheduler.scheduled-time>` filled.
fn delivered_input(schedule: &aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput) -> Value {
    let at = schedule.schedule_expression().unwrap().trim_start_matches("at(").trim_end_matches(')').to_string();
    let input = schedule.target().unwrap().input().unwrap().replace("<aws.scheduler.scheduled-time>", &format!("{at}Z"));
    serde_json::from_str(&input).unwrap()
}

#[tokio::test]
async fn mandate_changes_create_and_delete_one_time_schedules() {
    let (store, counter) = counted_table().await;
    let (dynamodb, table) = (store.client().clone(), store.table().to_string());
    let queues = fresh_queues().await;
    let d = deps(store, &queues).await;
    let cx = &d.core;
    let pay = Payments::sandbox();
    let client = scheduler_client().await.unwrap();
    let group = paysession_app::ids::new_id("paysession-recurring");
    client.create_schedule_group().name(&group).send().await.expect("create the schedule group on moto");
    let target = ScheduleTarget::from_lookup(|k| {
        Some(match k {
            "PAYSESSION_SCHEDULE_GROUP" => group.clone(),
            "PAYSESSION_RECURRING_CHARGE_ARN" => "arn:aws:lambda:us-east-1:123456789012:function:paysession-recurring-charge".into(),
            "PAYSESSION_SCHEDULER_ROLE_ARN" => "arn:aws:iam::123456789012:role/paysession-scheduler".into(),
            _ => "arn:aws:sqs:us-east-1:123456789012:paysession-schedule-dlq".into(),
        })
    })
    .unwrap();
    let scheduler = Counting { inner: EventBridgeScheduler::new(client.clone(), target), creates: 0.into(), deletes: 0.into() };
    let mut poller = StreamPoller::for_table(&dynamodb, streams_client().await.unwrap(), &table).await.unwrap();
    let run = async |batch: &Value| {
        handle_stream_event(cx, &StreamSinks { queue: d.queue.as_ref(), scheduler: &scheduler, bus: None }, batch).await
    };

    // A first payment of a monthly mandate, through the use cases the hosted page calls.
    let (merchant, mandate) = first_payment(cx, &pay, "cus_sched", "4242424242424242", 3).await;
    let md = mandate.id.clone();
    let first = mandate.pending_charge().unwrap();

    // The committed mandate reaches the scheduler through the stream: one schedule.
    let batches = consume_until(&mut poller, 20, run, async || !schedules(&client, &group).await.is_empty()).await;
    assert_eq!(scheduler.take(), (1, 0), "one CreateSchedule for the first occurrence");
    let stored = schedules(&client, &group).await;
    assert_eq!(stored.len(), 1);
    let (name, s) = &stored[0];
    assert_eq!(name, &format!("{md}-0-{}", first.at.timestamp()));
    assert_eq!(s.schedule_expression(), Some(format!("at({})", first.at.format("%Y-%m-%dT%H:%M:%S")).as_str()), "no test-clock offset yet");
    assert_eq!(s.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(s.action_after_completion().map(|a| a.as_str()), Some("DELETE"));
    let t = s.target().unwrap();
    assert_eq!(t.arn(), "arn:aws:lambda:us-east-1:123456789012:function:paysession-recurring-charge");
    assert_eq!(t.role_arn(), "arn:aws:iam::123456789012:role/paysession-scheduler");
    assert_eq!(t.dead_letter_config().and_then(|c| c.arn()), Some("arn:aws:sqs:us-east-1:123456789012:paysession-schedule-dlq"));
    let retry = t.retry_policy().unwrap();
    assert_eq!((retry.maximum_retry_attempts(), retry.maximum_event_age_in_seconds()), (Some(185), Some(86_400)));
    let input: Value = serde_json::from_str(t.input().unwrap()).unwrap();
    assert_eq!(
        input,
        json!({"merchant_id": merchant.id, "mandate_id": md, "occurrence": 0, "scheduled_time": "<aws.scheduler.scheduled-time>"})
    );

    // A replayed stream batch (Lambda retries after a timeout): the schedule exists, no error.
    for batch in &batches {
        assert_eq!(run(batch).await["batchItemFailures"], json!([]));
    }
    assert_eq!(schedules(&client, &group).await.len(), 1);
    scheduler.take();

    // Delivered early (Scheduler's clock ahead of ours by more than the tolerance): nothing.
    let delivery = delivered_input(s);
    assert_eq!(handle_scheduled_charge(cx, &pay, &delivery).await.unwrap()["result"], "nothing_due");
    // Due: three deliveries of the same occurrence, concurrently, charge once.
    d.test_clock.as_ref().unwrap().advance(first.at - cx.clock.now() + chrono::Duration::seconds(1)).unwrap();
    let (a, b, c) = tokio::join!(
        handle_scheduled_charge(cx, &pay, &delivery),
        handle_scheduled_charge(cx, &pay, &delivery),
        handle_scheduled_charge(cx, &pay, &delivery)
    );
    let results: Vec<Value> = [a, b, c].into_iter().map(|r| r.expect("no delivery fails")["result"].clone()).collect();
    assert_eq!(results.iter().filter(|r| *r == "charged").count(), 1, "{results:?}");
    assert_eq!(handle_scheduled_charge(cx, &pay, &delivery).await.unwrap()["result"], "nothing_due", "a fourth, late delivery");
    let query = SessionQuery {
        customer_id: Some("cus_sched".into()),
        reference: Some(format!("{md}-0")),
        limit: 10,
        now: cx.clock.now(),
        ..Default::default()
    };
    let charged = cx.store.list_sessions(&merchant.id, &query).await.unwrap().items;
    assert_eq!(charged.len(), 1, "one session for the occurrence");
    assert_eq!(charged[0].payments.len(), 1, "one attempt: charged once");
    // Merchant-initiated: the charge quoted the network id the first payment saved.
    let calls = pay.sandbox_calls.of(&charged[0].payments[0].id);
    assert_eq!((calls.get("charge_saved"), calls.get("charge_saved_without_network_id")), (Some(&1), None), "{calls:?}");
    let saved = cx.store.list_payment_methods(&merchant.id, "cus_sched").await.unwrap();
    assert!(saved[0].network_transaction_id.as_deref().is_some_and(|n| n.starts_with("sbx_ntid_")), "{saved:?}");
    let after = cx.store.get_mandate(&merchant.id, &md).await.unwrap().unwrap();
    assert_eq!((after.charges_count, after.next_occurrence), (1, 1));

    // The recorded occurrence schedules the next one; the fired schedule deletes itself in
    // AWS (moto keeps it: it never fires), so nothing is deleted.
    let second = after.pending_charge().unwrap();
    let second_name = format!("{md}-1-{}", second.at.timestamp());
    consume_until(&mut poller, 20, run, async || schedules(&client, &group).await.iter().any(|(n, _)| *n == second_name)).await;
    assert_eq!(scheduler.take(), (1, 0), "one CreateSchedule per occurrence, no DeleteSchedule");
    let stored = schedules(&client, &group).await;
    let (_, s2) = stored.iter().find(|(n, _)| *n == second_name).unwrap();
    let wall = second.at - d.test_clock.as_ref().unwrap().offset();
    let wall = wall.with_timezone(&Utc).format("%Y-%m-%dT%H:%M:%S").to_string();
    assert!(s2.schedule_expression().unwrap().starts_with("at("), "{:?}", s2.schedule_expression());
    let expr_at = chrono::NaiveDateTime::parse_from_str(&s2.schedule_expression().unwrap()[3..22], "%Y-%m-%dT%H:%M:%S").unwrap().and_utc();
    let wall_at = chrono::NaiveDateTime::parse_from_str(&wall, "%Y-%m-%dT%H:%M:%S").unwrap().and_utc();
    assert!((expr_at - wall_at).num_seconds().abs() <= 1, "the wall-clock time of a test-clock business time: {expr_at} vs {wall_at}");
    assert_eq!(delivered_input(s2)["occurrence"], 1);

    // One delivery charging occurrence 1: its DynamoDB requests, counted.
    d.test_clock.as_ref().unwrap().advance(second.at - cx.clock.now() + chrono::Duration::seconds(1)).unwrap();
    counter.take();
    assert_eq!(handle_scheduled_charge(cx, &pay, &delivered_input(s2)).await.unwrap()["result"], "charged");
    let requests = counter.take();
    println!("DynamoDB requests of one scheduled off-session charge: {requests:?}");
    assert_eq!(
        requests,
        // 4 GetItem + the merchant's test clock (this deployment is in sandbox mode).
        // The occurrence recorded on the mandate is a transaction: it carries mandate.updated.
        [("GetItem", 5), ("Query", 1), ("TransactWriteItems", 4)].into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        "requests per scheduled charge (docs/PERFORMANCE.md)"
    );
    let third = cx.store.get_mandate(&merchant.id, &md).await.unwrap().unwrap().pending_charge().unwrap();
    let third_name = format!("{md}-2-{}", third.at.timestamp());
    consume_until(&mut poller, 20, run, async || schedules(&client, &group).await.iter().any(|(n, _)| *n == third_name)).await;
    assert_eq!(scheduler.take(), (1, 0));
    let has_third = async || schedules(&client, &group).await.iter().any(|(n, _)| *n == third_name);

    // Suspending deletes the waiting schedule; resuming creates it again; revoking deletes it.
    mandates::act(cx, &merchant.id, &md, &MandateAction::Suspend).await.unwrap();
    consume_until(&mut poller, 20, run, async || !has_third().await).await;
    assert_eq!(scheduler.take(), (0, 1));
    mandates::act(cx, &merchant.id, &md, &MandateAction::Resume).await.unwrap();
    consume_until(&mut poller, 20, run, has_third).await;
    assert_eq!(scheduler.take(), (1, 0));
    let revoked = mandates::act(cx, &merchant.id, &md, &MandateAction::Revoke { reason: "requested_by_customer".into() }).await.unwrap();
    assert_eq!(revoked.status, MandateStatus::Revoked);
    consume_until(&mut poller, 20, run, async || !has_third().await).await;
    assert_eq!(scheduler.take(), (0, 1));
    // The charge function re-checks the mandate: a delivery that raced the deletion does nothing.
    let stored = schedules(&client, &group).await;
    let third_input = json!({"merchant_id": merchant.id, "mandate_id": md, "occurrence": 2, "scheduled_time": "x"});
    assert!(stored.iter().all(|(n, _)| *n != third_name));
    d.test_clock.as_ref().unwrap().advance(third.at - cx.clock.now() + chrono::Duration::seconds(1)).unwrap();
    assert_eq!(handle_scheduled_charge(cx, &pay, &third_input).await.unwrap()["result"], "nothing_due");
    assert_eq!(cx.store.get_mandate(&merchant.id, &md).await.unwrap().unwrap().charges_count, 2);

    // An unreadable input fails the invocation (Scheduler retries it, then dead-letters it).
    assert!(handle_scheduled_charge(cx, &pay, &json!({"mandate_id": md})).await.is_err());
}
