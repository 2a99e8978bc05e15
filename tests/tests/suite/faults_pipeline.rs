//! Faults on the deployed pipeline: DynamoDB Local and moto (SQS, Scheduler, EventBridge)
//! each behind the fault-injecting proxy (5 % lost answers, 5 % 500s, 5 % throttling on
//! every call). The stream-consumer and dispatcher handlers run as Lambda runs them: a
//! stream batch reporting failures is retried from its first failed record; SQS messages
//! not reported failed are deleted, the others come back after their visibility timeout.
//! Invariants, not timings.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use paysession_app::merchants::{NewMerchant, provision};
use paysession_app::payments::{CardSource, pay_card};
use paysession_app::ports::{ChargeScheduler, SessionStore as _, WebhookStore as _};
use paysession_app::{Core, Payments, webhooks};
use paysession_aws::DynamoStore;
use paysession_aws::bus::{EventBus, SOURCE};
use paysession_aws::scheduler::{EventBridgeScheduler, ScheduleTarget};
use paysession_aws::sqs::{DispatcherQueues, SqsQueue, handle_sqs_event};
use paysession_aws::stream::{StreamSinks, handle_stream_event};
use paysession_aws::stream_poller::{StreamPoller, streams_client};
use paysession_domain::model::PaymentMethodKind;
use paysession_domain::payment::{AttemptStatus, PaymentAttempt};
use paysession_domain::webhook::{UrlPolicy, parse_endpoint_create};
use paysession_tests::aws::{queue_arn, receive_event, sqs};
use paysession_tests::faults::{FaultProxy, Faults};
use paysession_tests::receiver::Receiver;
use serde_json::{Value, json};

const SESSIONS: usize = 100;
const PAID: usize = 30;
/// Sessions whose attempt is written ahead and never answered (the worker died): each owes
/// a sync, so each must get its schedule.
const CLAIMED: usize = 10;
const MANDATES: usize = 10;

/// A queue on moto: `visibility` seconds before an undeleted message comes back.
async fn queue(client: &aws_sdk_sqs::Client, name: &str, visibility: &str) -> String {
    let created = client.create_queue().queue_name(name).attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, visibility);
    created.send().await.expect("create a queue on moto").queue_url.unwrap()
}

/// Runs a stream batch as Lambda does with `ReportBatchItemFailures`: while the handler
/// reports failures, the batch is retried from the first failed record. The retries taken.
async fn run_batch(cx: &Core<DynamoStore>, sinks: &StreamSinks<'_>, batch: &Value) -> usize {
    let mut records = batch["Records"].as_array().unwrap().clone();
    for retries in 0..50 {
        let response = handle_stream_event(cx, sinks, &json!({ "Records": records })).await;
        let failed: BTreeSet<&str> =
            response["batchItemFailures"].as_array().unwrap().iter().filter_map(|f| f["itemIdentifier"].as_str()).collect();
        let Some(first) = records.iter().position(|r| failed.contains(r["dynamodb"]["SequenceNumber"].as_str().unwrap())) else {
            return retries;
        };
        records.drain(..first);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("a stream batch kept failing for 50 tries");
}

/// 100 sessions created and 30 of them paid (without faults), then the stream consumer and
/// the dispatcher on the faulty parts: every committed event reaches the webhook receiver
/// and the bus at least once, none under an id that was not committed; every claimed
/// attempt's reconciliation schedule exists, once; each active mandate's occurrence is
/// scheduled once and a revoked one's not at all; the stream retried batches from the
/// failed record and the queue kept what failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_event_is_delivered_and_every_sync_scheduled_under_faults() {
    let clean = paysession_tests::dynamo::fresh_table_for_a_long_test().await;
    let (dynamodb, table) = (clean.client().clone(), clean.table().to_string());
    let each = || BTreeMap::from([("*".to_string(), Faults::each(50))]);
    let ddb_proxy = FaultProxy::start(&std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap(), each(), 41).await;
    let moto_proxy = FaultProxy::start(&std::env::var("AWS_ENDPOINT_URL_SQS").unwrap(), each(), 42).await;
    let config = paysession_tests::faults::quick_retries(
        paysession_aws::sdk_config_with(&[
            ("AWS_ENDPOINT_URL_DYNAMODB", &ddb_proxy.url),
            ("AWS_ENDPOINT_URL_SQS", &moto_proxy.url),
            ("AWS_ENDPOINT_URL_SCHEDULER", &moto_proxy.url),
            ("AWS_ENDPOINT_URL_EVENTBRIDGE", &moto_proxy.url),
        ])
        .await
        .unwrap(),
    );
    let faulty = DynamoStore::from_config(&config, &table).await.unwrap();
    let raw_key = paysession_app::ids::random_key();
    let key = || paysession_app::secret::Secret::new(raw_key.clone());
    let mut cx = paysession_runtime::build_core(Arc::new(faulty.clone()), key(), "https://pay.example".into(), true).await.unwrap();
    cx.config.allow_private_webhooks = true;
    let clean_cx = paysession_runtime::build_core(Arc::new(clean.clone()), key(), "https://pay.example".into(), true).await.unwrap();

    // The queues (a message not deleted is back 2 s later), the schedule group, the bus and
    // its catch-all rule into a queue: made without faults.
    let sqs_clean = sqs().await;
    let name = paysession_app::ids::new_id("faulty-hooks");
    let hooks = queue(&sqs_clean, &name, "2").await;
    let dlq = queue(&sqs_clean, &format!("{name}-dlq"), "30").await;
    let faulty_sqs = aws_sdk_sqs::Client::new(&config);
    let queues = DispatcherQueues { client: faulty_sqs.clone(), queue_url: hooks.clone(), dead_letter_url: dlq };
    let wake_ups = SqsQueue::new(faulty_sqs, hooks.clone());
    let group = paysession_app::ids::new_id("faulty-sync");
    let clean_config = paysession_aws::sdk_config().await.unwrap();
    let schedules = aws_sdk_scheduler::Client::new(&clean_config);
    schedules.create_schedule_group().name(&group).send().await.unwrap();
    let target = ScheduleTarget::from_lookup(|k| {
        Some(match k {
            "PAYSESSION_SCHEDULE_GROUP" => group.clone(),
            "PAYSESSION_SCHEDULER_ROLE_ARN" => "arn:aws:iam::123456789012:role/paysession-scheduler".into(),
            _ => format!("arn:aws:lambda:us-east-1:123456789012:function:{k}"),
        })
    })
    .unwrap();
    let scheduler = EventBridgeScheduler::new(aws_sdk_scheduler::Client::new(&config), target);
    let events_clean = aws_sdk_eventbridge::Client::new(&clean_config);
    let bus_name = paysession_app::ids::new_id("faulty-bus");
    events_clean.create_event_bus().name(&bus_name).send().await.unwrap();
    let bus_queue = queue(&sqs_clean, &format!("{bus_name}-all"), "30").await;
    let bus_queue_arn = queue_arn(&sqs_clean, &bus_queue).await;
    events_clean
        .put_rule()
        .name("all")
        .event_bus_name(&bus_name)
        .event_pattern(json!({"source": [SOURCE]}).to_string())
        .send()
        .await
        .unwrap();
    let rule_target = aws_sdk_eventbridge::types::Target::builder().id("all").arn(&bus_queue_arn).build().unwrap();
    events_clean.put_targets().rule("all").event_bus_name(&bus_name).targets(rule_target).send().await.unwrap();
    let bus = EventBus::new(Box::new(aws_sdk_eventbridge::Client::new(&config)), bus_name.clone(), faulty.client().clone(), table.clone());
    let sinks = StreamSinks { queue: &wake_ups, scheduler: &scheduler as &dyn ChargeScheduler, bus: Some(&bus) };

    // The merchant, its endpoint for every event, the sessions and payments.
    let merchant =
        provision(&clean, &clean_cx.keys, &NewMerchant { name: "Pipeline".into(), ..Default::default() }, None, chrono::Utc::now())
            .await
            .unwrap()
            .merchant;
    let rx = Receiver::start().await;
    let spec = parse_endpoint_create(&json!({"url": rx.url(), "events": ["*"]}), UrlPolicy { allow_private: true }).unwrap();
    webhooks::create_endpoint(&clean_cx, &merchant.id, spec).await.unwrap();
    let sender = paysession_runtime::outbound::GuardedSender::new(UrlPolicy { allow_private: true });
    let to_receive = DispatcherQueues { client: sqs_clean.clone(), queue_url: hooks.clone(), dead_letter_url: String::new() };
    let mut poller = StreamPoller::for_table(&dynamodb, streams_client().await.unwrap(), &table).await.unwrap();
    let pay = Payments::sandbox_on(Arc::new(clean.clone()));
    let mut sessions = Vec::new();
    for i in 0..SESSIONS {
        let body = json!({"amount": 700, "currency": "EUR", "customer_id": "cus_p", "reference": format!("pipe-{i}")});
        let spec = paysession_domain::parse_create_session(&body, clean_cx.clock.now(), &merchant.policy()).unwrap();
        let session = paysession_app::sessions::create(&clean_cx, &merchant, spec, |s, _| (s.clone(), None)).await.unwrap();
        if i < PAID {
            let card = paysession_domain::card::parse_card("4242424242424242", "12/34", "123", clean_cx.clock.now()).unwrap();
            pay_card(&clean_cx, &pay, session.clone(), CardSource::Typed(card), false, None, "/pay/x").await.unwrap();
        } else if i < PAID + CLAIMED {
            let now = clean_cx.clock.now();
            let id = paysession_app::ids::new_child_id("pay", &session.id);
            let attempt = PaymentAttempt::new(id, PaymentMethodKind::Card, 700, now);
            paysession_app::sessions::update_with(&clean_cx, session.clone(), true, |s, t| s.claim_attempt(attempt.clone(), t).map(Some))
                .await
                .unwrap()
                .unwrap();
        }
        sessions.push(session.id);
    }
    // Scheduled mandates from first payments; half of them revoked at once, so the stream
    // both creates and deletes their schedules.
    let mut mandates = Vec::new();
    let start = (clean_cx.clock.now() + chrono::Duration::days(1)).date_naive().to_string();
    for i in 0..MANDATES {
        let body = json!({
            "amount": 990, "currency": "EUR", "customer_id": format!("sub-{i}"), "reference": format!("first-{i}"),
            "session_type": "first_in_series",
            "mandate": {"type": "scheduled", "schedule": {"interval": "month", "interval_count": 1, "start_date": start, "max_charges": 3}}
        });
        let spec = paysession_domain::parse_create_session(&body, clean_cx.clock.now(), &merchant.policy()).unwrap();
        let session = paysession_app::sessions::create(&clean_cx, &merchant, spec, |s, _| (s.clone(), None)).await.unwrap();
        let now = clean_cx.clock.now();
        let card = paysession_domain::card::parse_card("4242424242424242", "12/34", "123", now).unwrap();
        let acceptance = paysession_domain::mandate::CustomerAcceptance { accepted_at: now, ip_address: None, user_agent: None };
        let paid = pay_card(&clean_cx, &pay, session, CardSource::Typed(card), false, Some(acceptance), "/pay/x").await.unwrap().session;
        let mandate_id = paid.spec.mandate_id.clone().expect("the first payment created a mandate");
        let revoked = i % 2 == 1;
        if revoked {
            let action = paysession_domain::mandate::MandateAction::Revoke { reason: "customer_request".into() };
            paysession_app::mandates::act(&clean_cx, &merchant.id, &mandate_id, &action).await.unwrap();
        }
        sessions.push(paid.id);
        mandates.push((mandate_id, revoked));
    }
    // Every event the merchant has (sessions', mandates', saved methods').
    let mut committed = BTreeSet::new();
    let mut q = paysession_app::ports::EventQuery { limit: 100, ..Default::default() };
    loop {
        let page = clean.list_events(&merchant.id, &q).await.unwrap();
        q.after = page.items.last().map(|e| paysession_app::ports::Cursor { created_at: e.created_at, id: e.id.clone() });
        committed.extend(page.items.into_iter().map(|e| e.id));
        if !page.has_more {
            break;
        }
    }
    // (attempt, whether it was answered)
    let mut attempts = Vec::new();
    for id in sessions.iter().take(SESSIONS) {
        let s = clean.get_session(&merchant.id, id).await.unwrap().unwrap();
        attempts.extend(s.payments.iter().map(|a| (a.id.clone(), a.status == AttemptStatus::Succeeded)));
    }
    assert_eq!(attempts.iter().filter(|a| a.1).count(), PAID);
    assert_eq!(attempts.len(), PAID + CLAIMED);

    // The pipeline until everything committed has arrived. The horizon is progress, not a
    // time: it fails once a minute passes in which nothing new arrived anywhere.
    let (mut stream_retries, mut batches, mut kept_messages) = (0, 0, 0);
    let mut on_bus: BTreeMap<String, usize> = BTreeMap::new();
    let delivered = |rx: &Receiver| rx.received().iter().map(|r| r.json()["id"].as_str().unwrap().to_string()).collect::<BTreeSet<_>>();
    let mut last_progress = (std::time::Instant::now(), 0);
    loop {
        while let Some(polled) = poller.poll().await.unwrap() {
            // As the event source mapping's filters hand it over (template.yaml).
            let Some(batch) = paysession_tests::aws::filtered(&polled) else { continue };
            batches += 1;
            stream_retries += run_batch(&cx, &sinks, &batch).await;
        }
        while let Some(event) = receive_event(&to_receive, &hooks, 0).await {
            let response = handle_sqs_event(&cx, &sender, &paysession_app::clock::SystemClock, &queues, &event).await;
            let kept: BTreeSet<&str> =
                response["batchItemFailures"].as_array().unwrap().iter().filter_map(|f| f["itemIdentifier"].as_str()).collect();
            kept_messages += kept.len();
            // What Lambda's event source mapping does with the messages not kept.
            for record in event["Records"].as_array().unwrap() {
                if !kept.contains(record["messageId"].as_str().unwrap()) {
                    let receipt = record["receiptHandle"].as_str().unwrap();
                    sqs_clean.delete_message().queue_url(&hooks).receipt_handle(receipt).send().await.unwrap();
                }
            }
        }
        for e in paysession_tests::aws::drain_json(&sqs_clean, &bus_queue).await {
            *on_bus.entry(e["detail"]["id"].as_str().unwrap().to_string()).or_default() += 1;
        }
        let missing_hooks: Vec<_> = committed.difference(&delivered(&rx)).cloned().collect();
        let missing_bus: Vec<_> = committed.iter().filter(|id| !on_bus.contains_key(*id)).cloned().collect();
        if missing_hooks.is_empty() && missing_bus.is_empty() {
            break;
        }
        let progress = rx.received().len() + on_bus.values().sum::<usize>() + batches;
        if progress != last_progress.1 {
            last_progress = (std::time::Instant::now(), progress);
        }
        assert!(
            last_progress.0.elapsed() < std::time::Duration::from_secs(60),
            "nothing new for a minute ({kept_messages} messages kept so far); not delivered: {} webhooks {missing_hooks:?}, \
             {} bus events {missing_bus:?}",
            missing_hooks.len(),
            missing_bus.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let received = rx.received();
    println!(
        "{} events committed; {} webhook requests, {} bus entries; stream batches {batches}, retried {stream_retries}; \
         queue messages kept for a retry {kept_messages}; injected on DynamoDB {:?} over {:?}, on moto {:?} over {:?}",
        committed.len(),
        received.len(),
        on_bus.values().sum::<usize>(),
        ddb_proxy.injected(),
        ddb_proxy.calls(),
        moto_proxy.injected(),
        moto_proxy.calls()
    );
    assert!(ddb_proxy.injected().values().sum::<usize>() > 0 && moto_proxy.injected().values().sum::<usize>() > 0);
    // At least once, and only as the events committed: a duplicate repeats the same id and
    // the same webhook-id.
    assert_eq!(delivered(&rx), committed, "every committed event delivered, and nothing else");
    let mut webhook_ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &received {
        webhook_ids.entry(r.json()["id"].as_str().unwrap().to_string()).or_default().insert(r.header("webhook-id").unwrap().to_string());
    }
    assert!(webhook_ids.values().all(|ids| ids.len() == 1), "one webhook-id per event: {webhook_ids:?}");
    assert_eq!(on_bus.keys().cloned().collect::<BTreeSet<_>>(), committed, "every committed event on the bus, nothing else");

    // Each unanswered attempt's sync schedule: exactly one, none lost to a failed
    // CreateSchedule. An answered one's: at most one (none when the answer shared the
    // write-ahead's batch, one when a batch boundary fell between them).
    let mut names: Vec<String> = Vec::new();
    let mut listing = schedules.list_schedules().group_name(&group).max_results(100).into_paginator().send();
    while let Some(page) = listing.next().await {
        names.extend(page.unwrap().schedules().iter().filter_map(|s| s.name().map(str::to_string)));
    }
    for (attempt, answered) in &attempts {
        let count = names.iter().filter(|n| n.starts_with(&format!("ps-{attempt}-"))).count();
        if *answered {
            assert!(count <= 1, "{attempt}: {names:?}");
        } else {
            assert_eq!(count, 1, "{attempt}: {names:?}");
        }
    }
    // Each active mandate's first occurrence: exactly one schedule; a revoked one's: none
    // left, whichever of its create and delete met a fault.
    for (mandate, revoked) in &mandates {
        let count = names.iter().filter(|n| n.contains(mandate.as_str())).count();
        assert_eq!(count, usize::from(!revoked), "{mandate} (revoked: {revoked}): {names:?}");
    }
    paysession_tests::dynamo::drop_table(&clean).await;
}
