//! Events on an EventBridge bus, on real parts: a paid first payment written to DynamoDB
//! Local → its table stream → the stream-consumer handler → `PutEvents` on moto's
//! EventBridge → rules on that bus → SQS queues read back. One rule forwards only
//! `payment_session.succeeded` (the README's example); a catch-all rule shows every event
//! arrives exactly once, through refused entries and replayed batches.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
use paysession_app::Payments;
use paysession_app::ports::{SessionStore as _, SweptLocally};
use paysession_aws::bus::{EventBus, PutEvents, SOURCE};
use paysession_aws::stream::{StreamSinks, StreamWork, classify, handle_stream_event};
use paysession_aws::stream_poller::{StreamPoller, streams_client};
use paysession_domain::session::{EventRecord, MerchantAction};
use paysession_tests::aws::{deps, fresh_queues, queue_arn, sqs};
use paysession_tests::dynamo::fresh_table;
use paysession_tests::subscription::first_payment;
use serde_json::{Value, json};

/// moto's EventBridge, which refuses entries a test names: `first_only` refuses each such
/// entry once (a throttle), otherwise every time (an outage).
struct Refusing {
    inner: aws_sdk_eventbridge::Client,
    refuse: Mutex<HashSet<String>>,
    first_only: bool,
    /// Entries per call, as the test reads them back.
    calls: Arc<Mutex<Vec<usize>>>,
}

#[async_trait]
impl PutEvents for Refusing {
    async fn put_events(&self, entries: Vec<PutEventsRequestEntry>) -> Result<Vec<Option<String>>, String> {
        self.calls.lock().unwrap().push(entries.len());
        let mut refused = Vec::new();
        let mut passed = Vec::new();
        {
            let mut refuse = self.refuse.lock().unwrap();
            for e in entries {
                let ty = e.detail_type().unwrap_or_default().to_string();
                let hit = if self.first_only { refuse.remove(&ty) } else { refuse.contains(&ty) };
                refused.push(hit);
                if !hit {
                    passed.push(e);
                }
            }
        }
        let mut results = if passed.is_empty() { Vec::new() } else { PutEvents::put_events(&self.inner, passed).await? }.into_iter();
        Ok(refused
            .into_iter()
            .map(|r| if r { Some("ThrottlingException: Rate exceeded".into()) } else { results.next().unwrap() })
            .collect())
    }
}

async fn eventbridge() -> aws_sdk_eventbridge::Client {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_EVENTBRIDGE").expect("moto (EventBridge) is not running: use scripts/test");
    assert!(endpoint.starts_with("http://127.0.0.1:"), "tests only use local AWS stand-ins");
    aws_sdk_eventbridge::Client::new(&paysession_aws::sdk_config().await.unwrap())
}

/// A queue on moto and its ARN.
async fn queue(client: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let url = client.create_queue().queue_name(name).send().await.unwrap().queue_url.unwrap();
    let arn = queue_arn(client, &url).await;
    (url, arn)
}

/// Stream batches until `n` events have been seen (DynamoDB Local publishes within a second).
async fn batches_with_events(poller: &mut StreamPoller, n: usize) -> (Vec<Value>, Vec<EventRecord>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut batches, mut events) = (Vec::new(), Vec::new());
    while events.len() < n {
        if let Some(batch) = poller.poll().await.unwrap() {
            for r in batch["Records"].as_array().unwrap() {
                if let Ok(StreamWork::FanOut { event, .. }) = classify(r) {
                    events.push(*event);
                }
            }
            batches.push(batch);
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(Instant::now() < deadline, "only {} of {n} events reached the stream", events.len());
    }
    (batches, events)
}

fn by_id(received: &[Value]) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for r in received {
        *count.entry(r["detail"]["id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    count
}

#[tokio::test]
async fn committed_events_reach_rules_on_the_bus_exactly_once() {
    let store = fresh_table().await;
    let (dynamodb, table) = (store.client().clone(), store.table().to_string());
    let queues = fresh_queues().await;
    let d = deps(store, &queues).await;
    let cx = &d.core;
    let mut poller = StreamPoller::for_table(&dynamodb, streams_client().await.unwrap(), &table).await.unwrap();

    // The bus, and the two rules an operator would write, each forwarding to a queue.
    let events = eventbridge().await;
    let bus = paysession_app::ids::new_id("paysession-events");
    events.create_event_bus().name(&bus).send().await.expect("create the bus on moto");
    let sqs = sqs().await;
    let (succeeded_url, succeeded_arn) = queue(&sqs, &format!("{bus}-succeeded")).await;
    let (all_url, all_arn) = queue(&sqs, &format!("{bus}-all")).await;
    for (rule, pattern, arn) in [
        ("succeeded", json!({"source": [SOURCE], "detail-type": ["payment_session.succeeded"]}), &succeeded_arn),
        ("all", json!({"source": [SOURCE]}), &all_arn),
    ] {
        events.put_rule().name(rule).event_bus_name(&bus).event_pattern(pattern.to_string()).send().await.unwrap();
        let target = Target::builder().id(rule).arn(arn).build().unwrap();
        events.put_targets().rule(rule).event_bus_name(&bus).targets(target).send().await.unwrap();
    }
    let sinks_with = |b: &'static EventBus| StreamSinks { queue: d.queue.as_ref(), scheduler: &SweptLocally, bus: Some(b) };
    // A bus whose EventBridge refuses `types` (once each, or always); and its calls.
    let refusing = |types: &[&str], first_only: bool| -> (&'static EventBus, Arc<Mutex<Vec<usize>>>) {
        let calls = Arc::new(Mutex::default());
        let p = Refusing {
            inner: events.clone(),
            refuse: Mutex::new(types.iter().map(|t| t.to_string()).collect()),
            first_only,
            calls: calls.clone(),
        };
        (Box::leak(Box::new(EventBus::new(Box::new(p), bus.clone(), dynamodb.clone(), table.clone()))), calls)
    };

    // A paid first payment: session created and succeeded, payment method attached,
    // mandate created, and their updates. EventBridge throttles the succeeded event once.
    let (merchant, _) = first_payment(cx, &Payments::sandbox(), "cus_bus", "4242424242424242", 3).await;
    let (batches, written) = batches_with_events(&mut poller, 5).await;
    let (throttled, calls) = refusing(&["payment_session.succeeded"], true);
    for batch in &batches {
        let response = handle_stream_event(cx, &sinks_with(throttled), batch).await;
        assert_eq!(response["batchItemFailures"], json!([]), "the refused entry was retried: {response}");
    }
    let calls = calls.lock().unwrap().clone();
    assert!(calls.iter().all(|&n| n <= 10), "at most 10 entries per PutEvents: {calls:?}");
    assert_eq!(calls.iter().sum::<usize>(), written.len() + 1, "every event put once, the refused one twice: {calls:?}");

    let all = paysession_tests::aws::drain_json(&sqs, &all_url).await;
    let expected: BTreeMap<String, usize> = written.iter().map(|e| (e.id.clone(), 1)).collect();
    assert_eq!(by_id(&all), expected, "every committed event once, the throttled one included");
    for received in &all {
        let event = written.iter().find(|e| e.id == received["detail"]["id"]).unwrap();
        assert_eq!(received["source"], SOURCE);
        assert_eq!(received["detail-type"], event.event_type.as_str());
        assert_eq!(
            received["detail"],
            serde_json::to_value(event.to_api()).unwrap(),
            "Detail is the event envelope the API and webhooks carry"
        );
    }
    let succeeded = paysession_tests::aws::drain_json(&sqs, &succeeded_url).await;
    assert_eq!(succeeded.len(), 1, "the rule forwards only payment_session.succeeded");
    assert_eq!(succeeded[0]["detail"]["type"], "payment_session.succeeded");
    assert_eq!(succeeded[0]["detail"]["data"]["object"]["status"], "succeeded");

    // Lambda replays the same batches (a timeout after the work was done): nothing new.
    let (healthy, healthy_calls) = refusing(&[], false);
    for batch in &batches {
        assert_eq!(handle_stream_event(cx, &sinks_with(healthy), batch).await["batchItemFailures"], json!([]));
    }
    assert!(paysession_tests::aws::drain_json(&sqs, &all_url).await.is_empty(), "a replayed batch puts nothing again");
    assert!(healthy_calls.lock().unwrap().is_empty(), "events already on the bus are not even sent");

    // An outage for one event type: the batch resumes at that record, the events before it
    // are on the bus, and the retry from there puts the rest exactly once.
    let now = cx.clock.now();
    let body = json!({"amount": 500, "currency": "EUR", "customer_id": "cus_bus", "reference": "bus-cancel"});
    let spec = paysession_domain::parse_create_session(&body, now, &merchant.policy()).unwrap();
    let fresh = paysession_app::sessions::create(cx, &merchant, spec, |s, _| (s.clone(), None)).await.unwrap();
    let cancelled = fresh.apply(MerchantAction::Cancel { reason: paysession_domain::model::CancellationReason::Abandoned }, now).unwrap();
    let evs = paysession_domain::session::events_for(Some(&fresh), &cancelled, now, || paysession_app::ids::new_id("evt"));
    cx.store.update_session(&cancelled, fresh.version, &evs, None).await.unwrap();
    let (batches, written) = batches_with_events(&mut poller, 3).await;
    let (down, _) = refusing(&["payment_session.cancelled"], false);
    let mut resume_at = None;
    for batch in &batches {
        let response = handle_stream_event(cx, &sinks_with(down), batch).await;
        if let Some(f) = response["batchItemFailures"].as_array().unwrap().first() {
            resume_at = Some((batch.clone(), f["itemIdentifier"].as_str().unwrap().to_string()));
            break;
        }
    }
    let (batch, sequence) = resume_at.expect("the refused event fails its batch");
    let cancelled_id = &written.iter().find(|e| e.event_type == "payment_session.cancelled").unwrap().id;
    let record_of = |seq: &str| batch["Records"].as_array().unwrap().iter().position(|r| r["dynamodb"]["SequenceNumber"] == seq).unwrap();
    let failed_record = &batch["Records"][record_of(&sequence)];
    assert!(
        matches!(classify(failed_record), Ok(StreamWork::FanOut { event, .. }) if &event.id == cancelled_id),
        "resumes at the refused event"
    );
    let before = paysession_tests::aws::drain_json(&sqs, &all_url).await;
    assert!(!by_id(&before).contains_key(cancelled_id));
    // Lambda retries from the failed record onwards, with EventBridge back.
    let mut retry = batch.clone();
    retry["Records"] = json!(batch["Records"].as_array().unwrap()[record_of(&sequence)..]);
    assert_eq!(handle_stream_event(cx, &sinks_with(healthy), &retry).await["batchItemFailures"], json!([]));
    let after = paysession_tests::aws::drain_json(&sqs, &all_url).await;
    let mut seen = by_id(&before);
    for (id, n) in by_id(&after) {
        *seen.entry(id).or_default() += n;
    }
    let expected: BTreeMap<String, usize> = written.iter().map(|e| (e.id.clone(), 1)).collect();
    assert_eq!(seen, expected, "each event of the failed batch once across the failure and the retry");
}
