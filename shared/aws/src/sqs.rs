//! The webhook delivery queue on SQS, and the dispatcher's handling of an SQS batch.
//!
//! A fan-out's message carries its delivery and the body it sends
//! ([`QueuedDelivery`]); the record is written once, with the first attempt's outcome. From
//! then on the record in DynamoDB is the truth. Retries do not create new messages: the
//! dispatcher keeps the message and sets its visibility timeout to the retry delay (SQS
//! allows up to 12 h, the schedule's longest wait is 10 h), so a crash at any point leaves
//! the message to come back. Exhausted deliveries are copied to the dead-letter queue; the
//! queue's own redrive policy is the backstop for messages that keep crashing the function.

use std::time::Duration;

use async_trait::async_trait;
use paysession_app::Core;
use paysession_app::clock::Clock;
use paysession_app::ports::{DeliveryQueue, QueuedDelivery, StoreError};
use paysession_app::ports::{SettingsStore, WebhookSender, WebhookStore};
use paysession_app::webhooks::{DispatchOutcome, dispatch};
use serde_json::{Value, json};

/// SQS caps message delay at 15 minutes.
const MAX_DELAY: Duration = Duration::from_secs(900);
/// …and visibility timeouts at 12 hours.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

fn sqs_error<E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    e: aws_sdk_sqs::error::SdkError<E, R>,
) -> StoreError {
    StoreError::Backend(match e.as_service_error() {
        Some(se) => format!("SQS {}: {}", se.code().unwrap_or("error"), se.message().unwrap_or("no message")),
        None => format!("SQS: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)),
    })
}

/// An SQS client from the standard AWS environment (`AWS_ENDPOINT_URL_SQS` for moto).
pub async fn sqs_client() -> Result<aws_sdk_sqs::Client, String> {
    Ok(aws_sdk_sqs::Client::new(&crate::sdk_config().await?))
}

pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        SqsQueue { client, queue_url: queue_url.into() }
    }
}

#[async_trait]
impl DeliveryQueue for SqsQueue {
    async fn enqueue(&self, message: &QueuedDelivery, delay: Duration) -> Result<(), StoreError> {
        let body = serde_json::to_string(message).expect("serialises");
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(delay.min(MAX_DELAY).as_secs() as i32)
            .send()
            .await
            .map_err(sqs_error)?;
        Ok(())
    }
}

/// The queues the dispatcher function reads and dead-letters to.
pub struct DispatcherQueues {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dead_letter_url: String,
}

/// Handles an SQS event (`ReportBatchItemFailures`): each message is one delivery attempt,
/// all of a batch's attempts run concurrently (each may take the full 15 s). Returns the
/// Lambda response naming the messages to keep.
pub async fn handle_sqs_event<S: WebhookStore + SettingsStore + ?Sized>(
    cx: &Core<S>,
    sender: &dyn WebhookSender,
    wall: &dyn Clock,
    queues: &DispatcherQueues,
    event: &Value,
) -> Value {
    let records = event["Records"].as_array().map(Vec::as_slice).unwrap_or_default();
    let kept = futures_util::future::join_all(records.iter().map(|r| handle_message(cx, sender, wall, queues, r))).await;
    let failures: Vec<Value> = kept.into_iter().flatten().map(|id| json!({"itemIdentifier": id})).collect();
    json!({"batchItemFailures": failures})
}

/// One message; `Some(message_id)` when SQS must keep it.
async fn handle_message<S: WebhookStore + SettingsStore + ?Sized>(
    cx: &Core<S>,
    sender: &dyn WebhookSender,
    wall: &dyn Clock,
    queues: &DispatcherQueues,
    record: &Value,
) -> Option<String> {
    let message_id = record["messageId"].as_str().unwrap_or_default();
    let receipt = record["receiptHandle"].as_str().unwrap_or_default();
    let body = record["body"].as_str().unwrap_or_default();
    let Ok(wake) = serde_json::from_str::<QueuedDelivery>(body) else {
        // Not ours and never will be: dropping it is the only way to stop it looping.
        tracing::error!(message_id, "unreadable webhook queue message dropped");
        return None;
    };
    // Retry times follow the merchant's clock (its sandbox test clock).
    let merchant_cx = match cx.at_merchant(&wake.merchant_id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(message_id, error = %e, "merchant clock unavailable; the message comes back");
            return Some(message_id.to_string());
        }
    };
    let keep = match dispatch(&merchant_cx, sender, wall, &wake).await {
        Ok(DispatchOutcome::Finished) => false,
        Ok(DispatchOutcome::RetryIn(wait)) => {
            let secs = wait.max(Duration::from_secs(1)).min(MAX_VISIBILITY).as_secs() as i32;
            let delayed = queues
                .client
                .change_message_visibility()
                .queue_url(&queues.queue_url)
                .receipt_handle(receipt)
                .visibility_timeout(secs)
                .send()
                .await;
            if let Err(e) = delayed {
                tracing::warn!(error = %sqs_error(e), message_id, "cannot delay the retry; it comes back after the default visibility timeout");
            }
            true
        }
        Ok(DispatchOutcome::DeadLettered) => {
            match queues.client.send_message().queue_url(&queues.dead_letter_url).message_body(body).send().await {
                Ok(_) => false,
                Err(e) => {
                    tracing::error!(error = %sqs_error(e), message_id, "cannot dead-letter; keeping the message");
                    true
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, message_id, delivery_id = %wake.delivery_id, "dispatch failed; SQS retries it");
            true
        }
    };
    keep.then(|| message_id.to_string())
}
