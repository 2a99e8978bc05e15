//! The deployed pipeline on real parts: DynamoDB Local's table stream → stream-consumer
//! handler → SQS on moto → webhook-dispatcher handler → a receiver on loopback; and session
//! expiry driven by DynamoDB Local really deleting TTL-expired items.

use std::time::{Duration, Instant};

use chrono::Utc;
use paysession_app::ports::SweptLocally;
use paysession_app::ports::{SessionStore as _, WebhookStore as _};
use paysession_app::webhooks;
use paysession_aws::sqs::handle_sqs_event;
use paysession_aws::stream::{StreamSinks, handle_stream_event};
use paysession_aws::stream_poller::{StreamPoller, streams_client};
use paysession_domain::model::PaymentMethodKind;
use paysession_domain::session::{MerchantAction, PaymentSession, events_for};
use paysession_domain::webhook::{UrlPolicy, parse_endpoint_create};
use paysession_domain::{MerchantPolicy, SessionStatus, parse_create_session};
use paysession_tests::aws::{AwsDeps, deps, fresh_queues, receive_event};
use paysession_tests::dynamo::fresh_table;
use paysession_tests::receiver::{Receiver, verify_with_official_library};
use serde_json::{Value, json};

const MERCHANT: &str = "mer_stream";

/// A session valid as of `created` (the validation window is relative to it).
fn new_session(reference: &str, created: chrono::DateTime<Utc>, expires_in: i64) -> PaymentSession {
    let policy = MerchantPolicy { payment_methods: PaymentMethodKind::ALL.to_vec(), redirect_urls: vec![] };
    let body = json!({"amount": 1050, "currency": "EUR", "customer_id": "cus_1", "reference": reference,
                      "expires_at": (created + chrono::Duration::seconds(expires_in)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)});
    let spec = parse_create_session(&body, created, &policy).unwrap();
    PaymentSession::create(spec, MERCHANT.into(), created)
}

async fn create(deps: &AwsDeps, session: &PaymentSession) {
    let events = events_for(None, session, session.created_at, || paysession_app::ids::new_id("evt"));
    deps.store.create_session(session, &events, None).await.unwrap();
}

/// Polls the stream until a batch arrives (DynamoDB Local publishes within a second).
async fn next_batch(poller: &mut StreamPoller) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(batch) = poller.poll().await.unwrap() {
            return batch;
        }
        assert!(Instant::now() < deadline, "no stream records within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh table with its stream poller, fresh queues, and Deps over them.
struct Rig {
    deps: AwsDeps,
    queues: paysession_aws::sqs::DispatcherQueues,
    poller: StreamPoller,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
}

async fn rig() -> Rig {
    let store = fresh_table().await;
    let table = store.table().to_string();
    let dynamodb = store.client().clone();
    let queues = fresh_queues().await;
    let deps = deps(store, &queues).await;
    let poller = StreamPoller::for_table(&dynamodb, streams_client().await.unwrap(), &table).await.unwrap();
    Rig { deps, queues, poller, dynamodb, table }
}

/// What the TTL process of DynamoDB Local had to go on: its tables, this table's TTL
/// setting, and the expiry item with its `ttl` against the clock.
async fn ttl_diagnostic(dynamodb: &aws_sdk_dynamodb::Client, table: &str, session_id: &str) -> String {
    use aws_sdk_dynamodb::types::AttributeValue as AV;
    let tables = dynamodb.list_tables().limit(100).send().await.map(|t| t.table_names().len());
    let ttl = dynamodb.describe_time_to_live().table_name(table).send().await.map(|d| format!("{:?}", d.time_to_live_description()));
    let item = dynamodb
        .get_item()
        .table_name(table)
        .key("PK", AV::S(paysession_aws::keys::session_pk(MERCHANT, session_id)))
        .key("SK", AV::S(paysession_aws::keys::EXPIRY_SK.into()))
        .consistent_read(true)
        .send()
        .await
        .map(|o| o.item().and_then(|i| i.get(paysession_aws::keys::TTL)).map(|v| format!("{v:?}")));
    format!(
        "tables held (first 100 listed): {tables:?}; TTL of {table}: {ttl:?}; expiry item ttl: {item:?}; now: {}",
        Utc::now().timestamp()
    )
}

fn failures(response: &Value) -> usize {
    response["batchItemFailures"].as_array().unwrap().len()
}

#[tokio::test]
async fn outbox_stream_to_sqs_to_receiver() {
    let Rig { deps, queues, mut poller, .. } = rig().await;
    let rx = Receiver::start().await;
    let spec = parse_endpoint_create(&json!({"url": rx.url(), "events": ["*"]}), UrlPolicy { allow_private: true }).unwrap();
    let (endpoint, secret) = webhooks::create_endpoint(&deps.core, MERCHANT, spec).await.unwrap();

    let session = new_session("ref-1", Utc::now(), 3600);
    create(&deps, &session).await;
    let batch = next_batch(&mut poller).await;
    assert_eq!(
        failures(
            &handle_stream_event(&deps.core, &StreamSinks { queue: deps.queue.as_ref(), scheduler: &SweptLocally, bus: None }, &batch)
                .await
        ),
        0
    );

    let event = receive_event(&queues, &queues.queue_url, 2).await.expect("one message per (event, endpoint)");
    assert_eq!(event["Records"].as_array().unwrap().len(), 1);
    assert_eq!(
        failures(&handle_sqs_event(&deps.core, deps.sender.as_ref(), &paysession_app::clock::SystemClock, &queues, &event).await),
        0
    );
    let got = rx.wait_for("payment_session.created", |g| g.len() == 1).await;
    assert_eq!(got[0].event_type(), "payment_session.created");
    assert_eq!(verify_with_official_library(secret.expose(), &[&got[0]]), vec![json!(true)]);

    // A replayed stream batch (Lambda retries a batch after a timeout) queues nothing new.
    assert_eq!(
        failures(
            &handle_stream_event(&deps.core, &StreamSinks { queue: deps.queue.as_ref(), scheduler: &SweptLocally, bus: None }, &batch)
                .await
        ),
        0
    );
    assert!(receive_event(&queues, &queues.queue_url, 1).await.is_none(), "replay must not enqueue again");
    let listed = deps.store.list_deliveries(MERCHANT, &endpoint.id, 10, None).await.unwrap();
    assert_eq!(listed.items.len(), 1);

    // Receiver failure: the message stays (batch item failure) with its visibility set to
    // the 5 s retry delay, then comes back and is delivered.
    rx.script(&[500]);
    let cancelled =
        session.apply(MerchantAction::Cancel { reason: paysession_domain::model::CancellationReason::Abandoned }, Utc::now()).unwrap();
    let events = events_for(Some(&session), &cancelled, Utc::now(), || paysession_app::ids::new_id("evt"));
    deps.store.update_session(&cancelled, session.version, &events, None).await.unwrap();
    let batch = next_batch(&mut poller).await;
    assert_eq!(
        failures(
            &handle_stream_event(&deps.core, &StreamSinks { queue: deps.queue.as_ref(), scheduler: &SweptLocally, bus: None }, &batch)
                .await
        ),
        0
    );
    let event = receive_event(&queues, &queues.queue_url, 2).await.expect("updated + cancelled");
    let n = event["Records"].as_array().unwrap().len();
    assert_eq!(n, 2, "payment_session.updated and payment_session.cancelled");
    let response = handle_sqs_event(&deps.core, deps.sender.as_ref(), &paysession_app::clock::SystemClock, &queues, &event).await;
    assert_eq!(failures(&response), 1, "the 500 keeps its message: {response}");
    assert!(receive_event(&queues, &queues.queue_url, 1).await.is_none(), "hidden for the retry delay");
    deps.test_clock.as_ref().unwrap().advance(chrono::Duration::seconds(5)).unwrap();
    let again = receive_event(&queues, &queues.queue_url, 10).await.expect("the message is back after 5 s");
    assert_eq!(
        failures(&handle_sqs_event(&deps.core, deps.sender.as_ref(), &paysession_app::clock::SystemClock, &queues, &again).await),
        0
    );
    let got = rx.received();
    assert_eq!(got.len(), 4);
    assert_eq!(got[3].status, 204);
    assert_eq!(got[3].header("webhook-id"), got.iter().find(|r| r.status == 500).unwrap().header("webhook-id"));
    let all: Vec<_> = got.iter().collect();
    assert!(verify_with_official_library(secret.expose(), &all).iter().all(|v| v == &json!(true)));
}

#[tokio::test]
async fn exhausted_delivery_goes_to_the_dead_letter_queue() {
    let store = fresh_table().await;
    let queues = fresh_queues().await;
    let deps = deps(store, &queues).await;
    let rx = Receiver::start().await;
    rx.answer_always(500);
    let spec = parse_endpoint_create(&json!({"url": rx.url(), "events": ["*"]}), UrlPolicy { allow_private: true }).unwrap();
    let (endpoint, _) = webhooks::create_endpoint(&deps.core, MERCHANT, spec).await.unwrap();
    // A delivery of a stored event that already failed seven times: the next failure is its last.
    let now = deps.clock.now();
    let session = paysession_tests::contract::session(MERCHANT, "cus_dead", "dead", now);
    let events = paysession_domain::session::events_for(None, &session, now, || paysession_app::ids::new_id("evt"));
    deps.store.create_session(&session, &events, None).await.unwrap();
    let mut d = paysession_domain::webhook::Delivery::new(
        "whd_dead".into(),
        MERCHANT,
        &endpoint.id,
        &events[0].id,
        "payment_session.created",
        false,
        now,
    );
    for _ in 0..7 {
        let claimed = d.claim(now);
        d = claimed.record(now, paysession_domain::webhook::AttemptResult { status_code: Some(500), duration_ms: 1, error: None }, now).0;
    }
    d.next_attempt_at = Some(now);
    assert!(deps.store.create_delivery(&d).await.unwrap().is_none());
    deps.queue.enqueue(&paysession_app::ports::QueuedDelivery::named(&d), Duration::ZERO).await.unwrap();
    let event = receive_event(&queues, &queues.queue_url, 2).await.unwrap();
    assert_eq!(
        failures(&handle_sqs_event(&deps.core, deps.sender.as_ref(), &paysession_app::clock::SystemClock, &queues, &event).await),
        0
    );
    let dead = receive_event(&queues, &queues.dead_letter_url, 2).await.expect("dead-lettered");
    assert!(dead["Records"][0]["body"].as_str().unwrap().contains("whd_dead"));
    let stored = deps.store.get_delivery(MERCHANT, &endpoint.id, "whd_dead").await.unwrap().unwrap();
    assert_eq!(stored.status, paysession_domain::webhook::DeliveryStatus::Failed);
    assert_eq!(stored.attempts.len(), 8);
    assert!(receive_event(&queues, &queues.queue_url, 1).await.is_none());
}

/// Issue 6: DynamoDB Local deletes the expiry item once its TTL passes and emits a REMOVE
/// record with the service identity; the stream consumer (fed by the poller, as Lambda
/// would) expires the session. Nothing calls the expiry code directly.
#[tokio::test]
async fn ttl_deletion_expires_the_session() {
    let Rig { deps, mut poller, dynamodb, table, .. } = rig().await;

    // Created "59 s ago" with a 61 s expiry (just over the API minimum): due in 2 s.
    let short = new_session("ttl-short", Utc::now() - chrono::Duration::seconds(59), 61);
    create(&deps, &short).await;
    // A manual delete of another session's expiry item is not an expiry.
    let long = new_session("ttl-long", Utc::now(), 3600);
    create(&deps, &long).await;
    dynamodb
        .delete_item()
        .table_name(&table)
        .key("PK", aws_sdk_dynamodb::types::AttributeValue::S(paysession_aws::keys::session_pk(MERCHANT, &long.id)))
        .key("SK", aws_sdk_dynamodb::types::AttributeValue::S(paysession_aws::keys::EXPIRY_SK.into()))
        .send()
        .await
        .unwrap();

    // DynamoDB Local's TTL pass walks every table it holds, so its delay grows with the
    // tables other tests left (stale ones are dropped by `fresh_table`): a generous bound,
    // and on timeout what the emulator was doing rather than a bare "did not happen".
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut batches = Vec::new();
    let expired_event = loop {
        if let Some(batch) = poller.poll().await.unwrap() {
            assert_eq!(
                failures(
                    &handle_stream_event(
                        &deps.core,
                        &StreamSinks { queue: deps.queue.as_ref(), scheduler: &SweptLocally, bus: None },
                        &batch
                    )
                    .await
                ),
                0
            );
            batches.push(batch);
        }
        let events = deps.store.session_events(MERCHANT, &short.id).await.unwrap();
        if let Some(e) = events.iter().find(|e| e.event_type == "payment_session.expired") {
            break e.clone();
        }
        if Instant::now() >= deadline {
            panic!("DynamoDB Local did not delete the expiry item within 300 s: {}", ttl_diagnostic(&dynamodb, &table, &short.id).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let delay = expired_event.created_at - short.spec.expires_at;
    println!("expires_at → payment_session.expired on DynamoDB Local: {} ms", delay.num_milliseconds());
    assert!(delay >= chrono::Duration::zero());
    let stored = deps.store.get_session(MERCHANT, &short.id).await.unwrap().unwrap();
    assert_eq!(stored.status, SessionStatus::Expired);

    // The REMOVE came from the TTL process; replaying every batch writes nothing more.
    let removes: Vec<&Value> =
        batches.iter().flat_map(|b| b["Records"].as_array().unwrap()).filter(|r| r["eventName"] == "REMOVE").collect();
    assert!(removes.iter().any(|r| r["userIdentity"]["principalId"] == paysession_aws::stream::TTL_PRINCIPAL));
    assert!(removes.iter().any(|r| r["userIdentity"].is_null()), "the manual delete is in the stream too");
    for batch in &batches {
        assert_eq!(
            failures(
                &handle_stream_event(&deps.core, &StreamSinks { queue: deps.queue.as_ref(), scheduler: &SweptLocally, bus: None }, batch)
                    .await
            ),
            0
        );
    }
    let events = deps.store.session_events(MERCHANT, &short.id).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.event_type == "payment_session.expired").count(), 1);
    let long_now = deps.store.get_session(MERCHANT, &long.id).await.unwrap().unwrap();
    assert_eq!(long_now.status, SessionStatus::Open, "a manual delete is not an expiry");
}

/// `paysession-local --store dynamodb`: the same handlers fed by DynamoDB Local's stream.
#[tokio::test]
async fn local_server_on_dynamodb_delivers_from_the_stream() {
    let store = fresh_table().await;
    let running = paysession_local::start(paysession_local::LocalOptions {
        host: "127.0.0.1".into(),
        port: 0,
        data_dir: std::env::temp_dir(),
        table: Some(store.table().to_string()),
        dynamodb_endpoint: None,
        public_url: None,
        allow_private_webhooks: true,
        demo_client_id: None,
        demo_client_secret: None,
        stripe_api_base: None,
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let base = running.base_url.clone();
    let t = paysession_tests::client_token(&http, &base, &running.demo.client_id, &running.demo.client_secret, None).await;
    let rx = Receiver::start().await;
    let ep: Value = http
        .post(format!("{base}/v1/webhook_endpoints"))
        .bearer_auth(&t)
        .json(&json!({"url": rx.url(), "events": ["payment_session.created"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let created = http
        .post(format!("{base}/v1/payment_sessions"))
        .bearer_auth(&t)
        .json(&json!({"amount": 500, "currency": "EUR", "customer_id": "cus_1", "reference": "ddb-local-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let got = rx.wait_for("payment_session.created via the stream", |g| g.len() == 1).await;
    assert_eq!(verify_with_official_library(ep["secret"].as_str().unwrap(), &[&got[0]]), vec![json!(true)]);
    running.stop().await;
}

/// Fails the queueing of one delivery (the rest reach the real SQS queue).
struct FailingFor {
    inner: std::sync::Arc<dyn paysession_app::ports::DeliveryQueue>,
    delivery_id: std::sync::Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl paysession_app::ports::DeliveryQueue for FailingFor {
    async fn enqueue(
        &self,
        message: &paysession_app::ports::QueuedDelivery,
        delay: Duration,
    ) -> Result<(), paysession_app::ports::StoreError> {
        if self.delivery_id.lock().unwrap().as_deref() == Some(message.delivery_id.as_str()) {
            return Err(paysession_app::ports::StoreError::Backend("injected queue failure".into()));
        }
        self.inner.enqueue(message, delay).await
    }
}

/// Counts how a queue is asked to send: message by message, or many at once.
#[derive(Default)]
struct Calls {
    one: std::sync::atomic::AtomicUsize,
    many: std::sync::Mutex<Vec<usize>>,
}

struct Counting {
    inner: std::sync::Arc<dyn paysession_app::ports::DeliveryQueue>,
    calls: std::sync::Arc<Calls>,
}

#[async_trait::async_trait]
impl paysession_app::ports::DeliveryQueue for Counting {
    async fn enqueue(
        &self,
        message: &paysession_app::ports::QueuedDelivery,
        delay: Duration,
    ) -> Result<(), paysession_app::ports::StoreError> {
        self.calls.one.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.enqueue(message, delay).await
    }

    async fn enqueue_all(&self, messages: &[paysession_app::ports::QueuedDelivery]) -> Vec<Result<(), paysession_app::ports::StoreError>> {
        self.calls.many.lock().unwrap().push(messages.len());
        self.inner.enqueue_all(messages).await
    }
}

/// A stream batch's new deliveries are sent together (`SendMessageBatch`, ten a request on
/// SQS), not one request each: 30 events to 2 endpoints, one `enqueue_all` of 60 messages,
/// every one of which arrives on moto's queue once.
#[tokio::test]
async fn a_batch_sends_its_deliveries_ten_to_a_request() {
    use paysession_domain::webhook::Delivery;
    use paysession_tests::aws::created_events_batch;
    let (store, _counter) = paysession_tests::dynamo::counted_table().await;
    let queues = fresh_queues().await;
    let deps = deps(store, &queues).await;
    let mut endpoint_ids = Vec::new();
    for _ in 0..2 {
        let spec =
            parse_endpoint_create(&json!({"url": "http://127.0.0.1:9/hooks", "events": ["*"]}), UrlPolicy { allow_private: true }).unwrap();
        endpoint_ids.push(webhooks::create_endpoint(&deps.core, MERCHANT, spec).await.unwrap().0.id);
    }
    let (events, batch) = created_events_batch(MERCHANT, 30, 5_000);
    let calls = std::sync::Arc::new(Calls::default());
    let queue = Counting { inner: deps.queue.clone(), calls: calls.clone() };
    let sinks = StreamSinks { queue: &queue, scheduler: &SweptLocally, bus: None };
    let answer = paysession_aws::stream::handle_stream_event(&deps.core, &sinks, &batch).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(calls.one.load(std::sync::atomic::Ordering::SeqCst), 0, "no message sent alone");
    assert_eq!(*calls.many.lock().unwrap(), [60]);
    let mut arrived = std::collections::BTreeSet::new();
    while let Some(event) = receive_event(&queues, &queues.queue_url, 1).await {
        for record in event["Records"].as_array().unwrap() {
            let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
            assert!(arrived.insert(body["delivery_id"].as_str().unwrap().to_string()), "a message twice");
            let receipt = record["receiptHandle"].as_str().unwrap();
            queues.client.delete_message().queue_url(&queues.queue_url).receipt_handle(receipt).send().await.unwrap();
        }
    }
    let want: std::collections::BTreeSet<String> =
        events.iter().flat_map(|e| endpoint_ids.iter().map(|w| Delivery::fan_out_id(&e.id, e.created_at, w))).collect();
    assert_eq!(arrived, want);
}

/// A stream batch whose queueing fails part-way, retried by Lambda from the failed record
/// on: every (event, endpoint) is queued, those before the failure once; a delivery the
/// retry queues again (it ran after the failed record in the first pass) is sent once, the
/// twin finding the first's record. The fan-out writes nothing and each delivered webhook
/// is one `PutItem` of at most one KB (issue 35: ≤ 2 write units per delivery).
#[tokio::test]
async fn a_retried_fan_out_delivers_each_webhook_once_with_one_write() {
    use paysession_domain::webhook::{Delivery, DeliveryStatus};
    use paysession_tests::aws::created_events_batch;
    let (store, counter) = paysession_tests::dynamo::counted_table().await;
    let queues = fresh_queues().await;
    let deps = deps(store, &queues).await;
    let receivers = [Receiver::start().await, Receiver::start().await];
    let mut endpoint_ids = Vec::new();
    for rx in &receivers {
        let spec = parse_endpoint_create(&json!({"url": rx.url(), "events": ["*"]}), UrlPolicy { allow_private: true }).unwrap();
        endpoint_ids.push(webhooks::create_endpoint(&deps.core, MERCHANT, spec).await.unwrap().0.id);
    }
    let (events, batch) = created_events_batch(MERCHANT, 30, 1_000);
    let failing = Delivery::fan_out_id(&events[11].id, events[11].created_at, &endpoint_ids[0]);
    let queue = FailingFor { inner: deps.queue.clone(), delivery_id: std::sync::Mutex::new(Some(failing)) };
    let sinks = StreamSinks { queue: &queue, scheduler: &SweptLocally, bus: None };

    counter.take();
    counter.take_written();
    let answer = paysession_aws::stream::handle_stream_event_with(&deps.core, &sinks, &batch, 16).await;
    assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": format!("{:021}", 1_011)}]}), "resumes at the 12th record");
    // Lambda retries from the failed record on; this time the queue takes everything.
    *queue.delivery_id.lock().unwrap() = None;
    let rest = json!({"Records": batch["Records"].as_array().unwrap()[11..]});
    assert_eq!(paysession_aws::stream::handle_stream_event_with(&deps.core, &sinks, &rest, 16).await, json!({"batchItemFailures": []}));
    let fan_out = counter.take();
    assert_eq!(counter.take_written().items, 0, "the fan-out writes nothing: {fan_out:?}");

    // Each message alone, in order, as a batch of one.
    let mut queued: Vec<String> = Vec::new();
    while let Some(event) = receive_event(&queues, &queues.queue_url, 1).await {
        for record in event["Records"].as_array().unwrap() {
            let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
            assert_eq!(body["merchant_id"], MERCHANT);
            queued.push(body["delivery_id"].as_str().unwrap().to_string());
            let one = json!({"Records": [record]});
            let answer = handle_sqs_event(&deps.core, deps.sender.as_ref(), &paysession_app::clock::SystemClock, &queues, &one).await;
            assert_eq!(failures(&answer), 0, "{answer}");
            let receipt = record["receiptHandle"].as_str().unwrap();
            queues.client.delete_message().queue_url(&queues.queue_url).receipt_handle(receipt).send().await.unwrap();
        }
    }
    let id = |i: usize, e: &String| Delivery::fan_out_id(&events[i].id, events[i].created_at, e);
    for i in 0..30 {
        for e in &endpoint_ids {
            let times = queued.iter().filter(|d| **d == id(i, e)).count();
            assert!(times >= 1, "event {i} queued for {e}");
            if i < 11 {
                assert_eq!(times, 1, "event {i} came before the failure");
            }
            let stored = deps.store.get_delivery(MERCHANT, e, &id(i, e)).await.unwrap().unwrap();
            assert_eq!((stored.status, stored.attempts.len()), (DeliveryStatus::Delivered, 1));
        }
    }
    for rx in &receivers {
        let mut got: Vec<String> = rx.received().iter().map(|r| r.header("webhook-id").unwrap().to_string()).collect();
        got.sort();
        let mut want: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        want.sort();
        assert_eq!(got, want, "each event once at each endpoint ({} messages for 60 deliveries)", queued.len());
    }
    let requests = counter.take();
    let written = counter.take_written();
    println!("dispatching {} messages: requests {requests:?}, written {written:?}", queued.len());
    assert_eq!((requests.get("PutItem"), requests.get("UpdateItem"), requests.get("TransactWriteItems")), (Some(&60), None, None));
    assert!(written.sizes.iter().all(|&size| size <= 1024), "{written:?}");
    assert_eq!(written.write_units, 60, "one unit per delivery record");
    // Each record sits in its endpoint's list under `created#id`: no index entry to pay for.
    let (first, endpoint) = (id(0, &endpoint_ids[0]), &endpoint_ids[0]);
    let created = Delivery::created_ms_of(&first).expect("a fan-out id names its time");
    let raw = deps
        .store
        .client()
        .get_item()
        .table_name(deps.store.table())
        .key("PK", aws_sdk_dynamodb::types::AttributeValue::S(paysession_aws::keys::deliveries_partition(MERCHANT, endpoint, &first)))
        .key("SK", aws_sdk_dynamodb::types::AttributeValue::S(paysession_aws::keys::time_sort(created, &first)))
        .send()
        .await
        .unwrap()
        .item
        .expect("the record under its list key");
    assert!(raw.keys().all(|k| !k.starts_with("GSI")), "no index key: {:?}", raw.keys().collect::<Vec<_>>());
}
