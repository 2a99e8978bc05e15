//! The AWS side on real parts: Deps over DynamoDB Local with the webhook queue on moto's
//! SQS, and the table stream read by the same poller the local server uses.

use std::sync::Arc;

use paysession_app::Core;
use paysession_app::ports::{DeliveryQueue, WebhookSender};
use paysession_aws::DynamoStore;
use paysession_aws::sqs::{DispatcherQueues, SqsQueue};
use paysession_domain::webhook::UrlPolicy;
use serde_json::{Value, json};

fn loopback(var: &str, what: &str) -> String {
    let endpoint = std::env::var(var)
        .unwrap_or_else(|_| panic!("{what} is not running: run the suite with scripts/test (it starts it and sets {var})"));
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "refusing to use {endpoint}: tests only use local AWS stand-ins"
    );
    endpoint
}

pub async fn sqs() -> aws_sdk_sqs::Client {
    loopback("AWS_ENDPOINT_URL_SQS", "moto (SQS)");
    paysession_aws::sqs::sqs_client().await.unwrap()
}

/// The ARN of a queue (what redrive policies and EventBridge targets name).
pub async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> String {
    let attrs = client.get_queue_attributes().queue_url(url).attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn).send().await;
    attrs.unwrap().attributes.unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone()
}

/// A fresh queue and dead-letter queue on moto, wired like template.yaml.
pub async fn fresh_queues() -> DispatcherQueues {
    let client = sqs().await;
    let name = paysession_app::ids::new_id("hooks");
    let dlq = client.create_queue().queue_name(format!("{name}-dlq")).send().await.expect("create DLQ").queue_url.unwrap();
    let dlq_arn = queue_arn(&client, &dlq).await;
    let queue = client
        .create_queue()
        .queue_name(&name)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "180")
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "20"}).to_string(),
        )
        .send()
        .await
        .expect("create queue")
        .queue_url
        .unwrap();
    DispatcherQueues { client, queue_url: queue, dead_letter_url: dlq }
}

/// What the event functions use, as a deployed function has it (sandbox, so the test clock
/// works), with a sender that may reach the loopback receiver.
pub struct AwsDeps {
    pub core: Core<DynamoStore>,
    pub queue: Arc<dyn DeliveryQueue>,
    pub sender: Arc<dyn WebhookSender>,
}

impl std::ops::Deref for AwsDeps {
    type Target = Core<DynamoStore>;
    fn deref(&self) -> &Core<DynamoStore> {
        &self.core
    }
}

pub async fn deps(store: DynamoStore, queues: &DispatcherQueues) -> AwsDeps {
    let key = paysession_app::secret::Secret::new(paysession_app::ids::random_key());
    let mut core = paysession_runtime::build_core(Arc::new(store), key, "https://pay.example".into(), true).await.unwrap();
    core.config.allow_private_webhooks = true;
    AwsDeps {
        core,
        queue: Arc::new(SqsQueue::new(queues.client.clone(), queues.queue_url.clone())),
        sender: Arc::new(paysession_runtime::outbound::GuardedSender::new(UrlPolicy { allow_private: true })),
    }
}

/// Receives what is visible now (up to 10 messages) as a Lambda SQS event.
pub async fn receive_event(queues: &DispatcherQueues, url: &str, wait_seconds: i32) -> Option<Value> {
    let out =
        queues.client.receive_message().queue_url(url).max_number_of_messages(10).wait_time_seconds(wait_seconds).send().await.unwrap();
    let messages = out.messages.unwrap_or_default();
    (!messages.is_empty()).then(|| {
        json!({"Records": messages.iter().map(|m| json!({
            "messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body,
            "eventSource": "aws:sqs",
        })).collect::<Vec<_>>()})
    })
}

/// A table-stream INSERT of an event item, in the Lambda DynamoDB-event shape the stream
/// consumer reads (what the poller hands it), keyed as the store writes event items.
pub fn event_insert(sequence: u64, merchant_id: &str, subject_id: &str, event: &paysession_domain::session::EventRecord) -> Value {
    use paysession_aws::keys::{event_sk, session_pk};
    json!({
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "SequenceNumber": format!("{sequence:021}"),
            "Keys": {"PK": {"S": session_pk(merchant_id, subject_id)}, "SK": {"S": event_sk(1, 0)}},
            "NewImage": {
                "type": {"S": event.event_type},
                "body": {"S": serde_json::to_string(event).expect("an event serialises")},
            },
        },
    })
}

/// `n` `payment_session.created` events of fresh sessions of `merchant_id`, and a stream
/// batch inserting them (sequence numbers from `first_sequence`).
pub fn created_events_batch(merchant_id: &str, n: usize, first_sequence: u64) -> (Vec<paysession_domain::session::EventRecord>, Value) {
    use paysession_domain::model::PaymentMethodKind;
    use paysession_domain::session::{PaymentSession, events_for};
    let policy = paysession_domain::MerchantPolicy { payment_methods: PaymentMethodKind::ALL.to_vec(), redirect_urls: vec![] };
    let now = chrono::Utc::now();
    let mut events = Vec::new();
    let mut records = Vec::new();
    for i in 0..n {
        let reference = paysession_app::ids::new_id("ref");
        let body = json!({"amount": 1050, "currency": "EUR", "customer_id": "cus_batch", "reference": reference});
        let spec = paysession_domain::parse_create_session(&body, now, &policy).expect("a valid session");
        let session = PaymentSession::create(spec, merchant_id.into(), now);
        let event = events_for(None, &session, now, || paysession_app::ids::new_id("evt")).remove(0);
        records.push(event_insert(first_sequence + i as u64, merchant_id, &session.id, &event));
        events.push(event);
    }
    (events, json!({ "Records": records }))
}

/// Every message on a queue now (received until it is empty), as (merchant, delivery) ids.
pub async fn drain_wake_ups(queues: &DispatcherQueues) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some(event) = receive_event(queues, &queues.queue_url, 1).await {
        for record in event["Records"].as_array().unwrap() {
            let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
            out.push((body["merchant_id"].as_str().unwrap().to_string(), body["delivery_id"].as_str().unwrap().to_string()));
            queues
                .client
                .delete_message()
                .queue_url(&queues.queue_url)
                .receipt_handle(record["receiptHandle"].as_str().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    out
}

/// Drains a table's stream through `run` (the stream-consumer handler) until `done` holds or
/// `seconds` pass (DynamoDB Local publishes within a second); every batch must succeed.
/// The stream consumer's event filters in template.yaml (`FilterCriteria`), parsed once.
pub fn stream_filters() -> &'static [Value] {
    static FILTERS: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    FILTERS.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).expect("template.yaml");
        let t: serde_yaml::Value = serde_yaml::from_str(&text).expect("template.yaml parses");
        let consumer = &t["Resources"]["StreamConsumerFunction"]["Properties"]["Events"];
        let stream = consumer.as_mapping().expect("its events").values().find(|e| e["Type"] == "DynamoDB").expect("a stream source");
        stream["Properties"]["FilterCriteria"]["Filters"]
            .as_sequence()
            .expect("filters")
            .iter()
            .map(|f| serde_json::from_str(f["Pattern"].as_str().expect("a pattern")).expect("a JSON pattern"))
            .collect()
    })
}

/// Whether `record` passes one of `filters` as Lambda's event filtering decides (the subset
/// of the pattern syntax the template uses): every key of a pattern matches; a list matches
/// a value equal to one of its strings, or passing one of its `prefix` or `exists` tests.
pub fn passes(filters: &[Value], record: &Value) -> bool {
    fn matches(pattern: &Value, value: Option<&Value>) -> bool {
        match pattern {
            Value::Object(keys) => keys.iter().all(|(k, p)| matches(p, value.and_then(|v| v.get(k)))),
            Value::Array(options) => options.iter().any(|o| match (o, value) {
                (Value::Object(test), _) if test.contains_key("exists") => test["exists"].as_bool() == Some(value.is_some()),
                (Value::Object(test), Some(Value::String(v))) => test["prefix"].as_str().is_some_and(|p| v.starts_with(p)),
                (wanted, Some(v)) => wanted == v,
                _ => false,
            }),
            _ => false,
        }
    }
    filters.iter().any(|f| matches(f, Some(record)))
}

/// The records of a batch the template's filters let through, as the event source mapping
/// hands them; `None` when none is left (no invocation).
pub fn filtered(batch: &Value) -> Option<Value> {
    let records: Vec<Value> = batch["Records"].as_array()?.iter().filter(|r| passes(stream_filters(), r)).cloned().collect();
    (!records.is_empty()).then(|| json!({ "Records": records }))
}

/// Hands each batch the poller reads, filtered as the template's event source mapping
/// filters it, to `run` until `done`.
pub async fn consume_until(
    poller: &mut paysession_aws::stream_poller::StreamPoller,
    seconds: u64,
    run: impl AsyncFn(&Value) -> Value,
    mut done: impl AsyncFnMut() -> bool,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let mut batches = Vec::new();
    loop {
        if let Some(batch) = poller.poll().await.unwrap().as_ref().and_then(filtered) {
            let response = run(&batch).await;
            assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{response}");
            batches.push(batch);
        }
        if done().await {
            return batches;
        }
        assert!(std::time::Instant::now() < deadline, "the stream did not produce what was expected within {seconds} s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Every message waiting on `url` now, its body as JSON, deleted as read (what a rule's
/// queue target holds).
pub async fn drain_json(client: &aws_sdk_sqs::Client, url: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let got = client.receive_message().queue_url(url).max_number_of_messages(10).wait_time_seconds(1).send().await.unwrap();
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            return out;
        }
        for m in messages {
            out.push(serde_json::from_str(m.body.as_deref().unwrap()).unwrap());
            client.delete_message().queue_url(url).receipt_handle(m.receipt_handle.unwrap()).send().await.unwrap();
        }
    }
}
