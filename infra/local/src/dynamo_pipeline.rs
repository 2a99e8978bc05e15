//! The local server on DynamoDB (`--store dynamodb`): the table's real stream is read the
//! way the Lambda event source mapping reads it and handed to the same stream-consumer
//! handler (outbox fan-out, TTL expiry); deliveries wait in an in-memory queue, as they
//! would in SQS, and the same dispatcher use case sends them.
//!
//! Unlike the embedded pipeline this queue is not durable: a restart drops the wake-ups of
//! pending retries (their delivery records stay, and in AWS SQS holds them).

use std::time::Duration;

use async_trait::async_trait;
use paysession_app::clock::SystemClock;
use paysession_app::ports::SweptLocally;
use paysession_app::ports::{DeliveryQueue, QueuedDelivery, StoreError};
use paysession_app::webhooks::{DispatchOutcome, dispatch};
use paysession_aws::stream::{StreamSinks, handle_stream_event};
use paysession_aws::stream_poller::{StreamPoller, streams_client_at};
use tokio::sync::{mpsc, watch};

use crate::local::Local as Deps;

pub struct MemoryQueue(mpsc::UnboundedSender<QueuedDelivery>);

#[async_trait]
impl DeliveryQueue for MemoryQueue {
    async fn enqueue(&self, message: &QueuedDelivery, _delay: Duration) -> Result<(), StoreError> {
        self.0.send(message.clone()).map_err(|_| StoreError::Backend("the local delivery queue stopped".into()))
    }
}

pub fn memory_queue() -> (MemoryQueue, mpsc::UnboundedReceiver<QueuedDelivery>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (MemoryQueue(tx), rx)
}

/// Dispatches queued deliveries, re-checking a waiting one at least once a second so
/// test-clock advances take effect.
pub async fn run_dispatcher(deps: Deps, mut queue: mpsc::UnboundedReceiver<QueuedDelivery>, stop: watch::Receiver<bool>) {
    while let Some(message) = queue.recv().await {
        let (deps, mut stop) = (deps.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let dispatched = match deps.app.core.at_merchant(&message.merchant_id).await {
                    Ok(cx) => dispatch(&cx, deps.sender.as_ref(), &SystemClock, &message).await,
                    Err(e) => Err(e),
                };
                let wait = match dispatched {
                    Ok(DispatchOutcome::RetryIn(d)) => d.min(Duration::from_secs(1)),
                    Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, delivery_id = %message.delivery_id, "webhook dispatch failed; retrying");
                        Duration::from_secs(1)
                    }
                };
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        });
    }
}

/// Polls the table's stream and runs the stream-consumer handler on each batch; a batch
/// that reports a failure is polled again from the failed record's shard position on the
/// next pass (the poller does not advance past what it handed out, so the simplest
/// faithful retry is to hand the same batch again).
pub async fn run_stream(
    deps: Deps,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    endpoint: Option<String>,
    mut stop: watch::Receiver<bool>,
) {
    let streams = match streams_client_at(endpoint.as_deref()).await {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "cannot configure the stream client; expiry and webhooks will not run"),
    };
    let mut poller = match StreamPoller::for_table(&dynamodb, streams, &table).await {
        Ok(p) => p,
        Err(e) => return tracing::error!(error = %e, "cannot read the table stream; expiry and webhooks will not run"),
    };
    loop {
        match poller.poll().await {
            Ok(Some(batch)) => loop {
                let response = handle_stream_event(
                    &deps.app.core,
                    &StreamSinks { queue: deps.app.queue.as_ref(), scheduler: &SweptLocally, bus: None },
                    &batch,
                )
                .await;
                if response["batchItemFailures"].as_array().is_none_or(Vec::is_empty) {
                    break;
                }
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "stream poll failed; retrying"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}
