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
