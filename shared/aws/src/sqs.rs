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

    async fn enqueue_all(&self, messages: &[QueuedDelivery]) -> Vec<Result<(), StoreError>> {
        let bodies: Vec<String> = messages.iter().map(|m| serde_json::to_string(m).expect("serialises")).collect();
        let sizes: Vec<usize> = bodies.iter().map(String::len).collect();
        let sends = batches(&sizes).into_iter().map(|run| self.send_batch(&bodies[run]));
        futures_util::future::join_all(sends).await.into_iter().flatten().collect()
    }
}

/// SQS's limits on one `SendMessageBatch`: ten entries, 256 KiB of bodies in all.
const BATCH_ENTRIES: usize = 10;
const BATCH_BYTES: usize = 256 * 1024;

/// Consecutive runs of `sizes` that each fit one `SendMessageBatch`; a body too large for
/// any batch goes alone (and SQS refuses it, as it would a single send).
fn batches(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (i - start == BATCH_ENTRIES || bytes + size > BATCH_BYTES) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

impl SqsQueue {
    async fn send_batch(&self, bodies: &[String]) -> Vec<Result<(), StoreError>> {
        let entries: Vec<_> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .expect("id and body are set")
            })
            .collect();
        match self.client.send_message_batch().queue_url(&self.queue_url).set_entries(Some(entries)).send().await {
            Err(e) => {
                let text = match sqs_error(e) {
                    StoreError::Backend(text) => text,
                    other => other.to_string(),
                };
                bodies.iter().map(|_| Err(StoreError::Backend(text.clone()))).collect()
            }
            Ok(out) => {
                let mut results: Vec<Result<(), StoreError>> = bodies.iter().map(|_| Ok(())).collect();
                for failed in out.failed() {
                    if let Some(slot) = failed.id().parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                        *slot = Err(StoreError::Backend(format!("SQS {}: {}", failed.code(), failed.message().unwrap_or("no message"))));
                    }
                }
                results
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_ten_messages_and_256_kib_at_most() {
        assert_eq!(batches(&[]), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(batches(&[100; 25]), [0..10, 10..20, 20..25]);
        assert_eq!(batches(&[200 * 1024, 100 * 1024, 10]), [0..1, 1..3], "the second would pass 256 KiB");
        assert_eq!(batches(&[128 * 1024, 128 * 1024, 1]), [0..2, 2..3], "exactly 256 KiB fits");
        assert_eq!(batches(&[300 * 1024, 1]), [0..1, 1..2], "too large for any batch: alone, for SQS to refuse");
    }
}
