//! The table stream's consumer: outbox fan-out of committed events, session expiry from TTL
//! deletions of expiry items, the recurring-charge schedules of changed mandates, and the
//! optional EventBridge bus.
//!
//! Records arrive in the Lambda DynamoDB-event shape (the local poller converts to the same
//! shape), already filtered by the event source mapping; the checks are repeated here so a
//! wider filter can never turn a manual delete into an expiry.

use paysession_app::Core;
use paysession_app::expiry::expire_if_due;
use paysession_app::ports::StoreError;
use paysession_app::ports::{ChargeScheduler, DeliveryQueue, SessionStore, SettingsStore, WebhookStore};
use paysession_app::recurring::reschedule;
use paysession_app::webhooks::{EndpointCache, fan_out};
use paysession_domain::mandate::Mandate;
use paysession_domain::session::EventRecord;
use serde_json::{Value, json};

use crate::bus::{BusEvent, EventBus};
use crate::keys::{EVENT_SK_PREFIX, EXPIRY_SK, MANDATE_SK};

/// The principal of deletions made by DynamoDB's TTL process.
pub const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

fn string_attr<'a>(image: &'a Value, name: &str) -> Option<&'a str> {
    image.get(name).and_then(|v| v.get("S").or_else(|| v.get("N"))).and_then(Value::as_str)
}

/// What a record asks for.
#[derive(Debug, PartialEq)]
pub enum StreamWork {
    FanOut { merchant_id: String, event: Box<EventRecord> },
    Expire { merchant_id: String, session_id: String },
    Reschedule { old: Option<Box<Mandate>>, new: Box<Mandate> },
    Ignore,
}

pub fn classify(record: &Value) -> Result<StreamWork, String> {
    let change = &record["dynamodb"];
    let sk = string_attr(&change["Keys"], "SK").unwrap_or_default();
    match record["eventName"].as_str() {
        Some("INSERT") if sk.starts_with(EVENT_SK_PREFIX) => {
            let image = &change["NewImage"];
            let body = string_attr(image, "body").ok_or("event item without body")?;
            let merchant_id = string_attr(image, "merchant_id").ok_or("event item without merchant_id")?;
            let event: EventRecord = serde_json::from_str(body).map_err(|e| format!("corrupt event item: {e}"))?;
            Ok(StreamWork::FanOut { merchant_id: merchant_id.to_string(), event: Box::new(event) })
        }
        Some("REMOVE") if sk == EXPIRY_SK && record["userIdentity"]["principalId"].as_str() == Some(TTL_PRINCIPAL) => {
            let image = &change["OldImage"];
            match (string_attr(image, "merchant_id"), string_attr(image, "session_id")) {
                (Some(m), Some(s)) => Ok(StreamWork::Expire { merchant_id: m.to_string(), session_id: s.to_string() }),
                _ => Err("expiry item without merchant_id/session_id".into()),
            }
        }
        Some("INSERT" | "MODIFY") if sk == MANDATE_SK => {
            let mandate = |image: &Value| -> Result<Option<Box<Mandate>>, String> {
                string_attr(image, "body")
                    .map(|b| serde_json::from_str(b).map(Box::new).map_err(|e| format!("corrupt mandate item: {e}")))
                    .transpose()
            };
            let new = mandate(&change["NewImage"])?.ok_or("mandate item without body")?;
            Ok(StreamWork::Reschedule { old: mandate(&change["OldImage"])?, new })
        }
        _ => Ok(StreamWork::Ignore),
    }
}

async fn run<S: SessionStore + WebhookStore + SettingsStore + ?Sized>(
    cx: &Core<S>,
    sinks: &StreamSinks<'_>,
    endpoints: &mut EndpointCache,
    work: StreamWork,
) -> Result<(), StoreError> {
    // Each record on its merchant's clock (its sandbox test clock).
    match work {
        StreamWork::Reschedule { old, new } => {
            reschedule(&cx.at_merchant(&new.merchant_id).await?, sinks.scheduler, old.as_deref(), &new).await.map(|_| ())
        }
        StreamWork::FanOut { merchant_id, event } => {
            fan_out(&cx.at_merchant(&merchant_id).await?, sinks.queue, endpoints, &merchant_id, &event).await.map(|_| ())
        }
        StreamWork::Expire { merchant_id, session_id } => {
            expire_if_due(&cx.at_merchant(&merchant_id).await?, &merchant_id, &session_id).await.map(|_| ())
        }
        StreamWork::Ignore => Ok(()),
    }
}

/// Where the stream's work goes: the webhook queue, the charge schedules and, when the
/// deployment configures one, an EventBridge bus.
pub struct StreamSinks<'a> {
    pub queue: &'a dyn DeliveryQueue,
    pub scheduler: &'a dyn ChargeScheduler,
    pub bus: Option<&'a EventBus>,
}

/// Handles a DynamoDB stream event (`ReportBatchItemFailures`). Records are processed in
/// order; at the first failure the rest of the batch is left for the retry, which starts
/// at the failed record. Re-running a record is safe: fan-out finds its deliveries already
/// queued, an expiry finds the session already expired, a schedule finds itself created,
/// an event already on the bus is not put again.
pub async fn handle_stream_event<S: SessionStore + WebhookStore + SettingsStore + ?Sized>(
    cx: &Core<S>,
    sinks: &StreamSinks<'_>,
    event: &Value,
) -> Value {
    let mut endpoints = EndpointCache::default();
    let mut for_bus: Vec<(String, EventRecord)> = Vec::new();
    let mut failed_at: Option<String> = None;
    for record in event["Records"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let sequence = record["dynamodb"]["SequenceNumber"].as_str().unwrap_or_default();
        let outcome = match classify(record) {
            Ok(work) => {
                let bus_event = match (sinks.bus, &work) {
                    (Some(_), StreamWork::FanOut { event, .. }) => Some((sequence.to_string(), (**event).clone())),
                    _ => None,
                };
                let done = run(cx, sinks, &mut endpoints, work).await.map_err(|e| e.to_string());
                if done.is_ok() {
                    for_bus.extend(bus_event);
                }
                done
            }
            // A record we cannot read will not improve on retry; blocking the shard would
            // stop every later event, so it is logged loudly and skipped.
            Err(why) => {
                tracing::error!(sequence, why, "unreadable stream record skipped");
                Ok(())
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(sequence, error = %e, "stream record failed; the batch resumes here");
            failed_at = Some(sequence.to_string());
            break;
        }
    }
    // Events before the failure (all of them, if none) go to the bus; the batch resumes at
    // the earlier of the failed record and the first event the bus refused.
    if let Some(bus) = sinks.bus {
        let batch: Vec<BusEvent<'_>> = for_bus.iter().map(|(sequence, event)| BusEvent { sequence, event }).collect();
        if let Err((sequence, why)) = bus.publish(&batch).await {
            tracing::warn!(sequence, error = %why, "event not put on the bus; the batch resumes here");
            failed_at = Some(sequence);
        }
    }
    match failed_at {
        Some(sequence) => json!({"batchItemFailures": [{"itemIdentifier": sequence}]}),
        None => json!({"batchItemFailures": []}),
    }
}
