//! The table stream's consumer: outbox fan-out of committed events, session expiry from TTL
//! deletions of expiry items, the recurring-charge schedules of changed mandates, the
//! reconciliation schedules of refunds owed a processor answer and of expired
//! authorisations (run by `processor-sync`), and the optional EventBridge bus.
//!
//! Records arrive in the Lambda DynamoDB-event shape (the local poller converts to the same
//! shape), already filtered by the event source mapping; the checks are repeated here so a
//! wider filter can never turn a manual delete into an expiry.

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use paysession_app::Core;
use paysession_app::expiry::expire_if_due;
use paysession_app::ports::{ChargeScheduler, DeliveryQueue, QueuedDelivery, SessionStore, SettingsStore, StoreError, WebhookStore};
use paysession_app::recurring::reschedule;
use paysession_app::webhooks::{BatchMerchants, Collecting, fan_out_to};
use paysession_domain::mandate::Mandate;
use paysession_domain::session::EventRecord;
use serde_json::{Value, json};

use crate::bus::{BusEvent, EventBus};
use crate::keys::{AUTHORISATION_SK_PREFIX, EVENT_SK_PREFIX, EXPIRY_SK, MANDATE_SK, REFUND_SK_PREFIX, SESSION_SK, SYNC_MS, merchant_of};

/// The principal of deletions made by DynamoDB's TTL process.
pub const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

fn string_attr<'a>(image: &'a Value, name: &str) -> Option<&'a str> {
    image.get(name).and_then(|v| v.get("S").or_else(|| v.get("N"))).and_then(Value::as_str)
}

/// The JSON of an image's `body`, `None` when it has none: a compressed `B` (base64 in the
/// record, `crate::body`) or an `S` written before bodies were compressed.
fn body_json(image: &Value) -> Result<Option<Vec<u8>>, String> {
    use aws_sdk_dynamodb::types::AttributeValue as AV;
    use base64::Engine;
    let Some(value) = image.get("body") else { return Ok(None) };
    // The record's JSON form as the attribute value; `crate::body::decode` reads both forms.
    let stored = match (value.get("B").and_then(Value::as_str), value.get("S").and_then(Value::as_str)) {
        (Some(encoded), _) => AV::B(aws_sdk_dynamodb::primitives::Blob::new(
            base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|e| format!("body is not base64: {e}"))?,
        )),
        (None, Some(text)) => AV::S(text.to_string()),
        (None, None) => AV::Null(true),
    };
    crate::body::decode(&stored).map(Some)
}

/// What a record asks for.
#[derive(Debug, PartialEq)]
pub enum StreamWork {
    FanOut {
        merchant_id: String,
        event: Box<EventRecord>,
    },
    Expire {
        merchant_id: String,
        session_id: String,
    },
    Reschedule {
        old: Option<Box<Mandate>>,
        new: Box<Mandate>,
    },
    /// A refund written with a processor sync due (at business time `due_ms`).
    ScheduleSync {
        merchant_id: String,
        refund_id: String,
        due_ms: i64,
    },
    /// A session written with a pending attempt's sync due (at business time `due_ms`).
    ScheduleAttemptSync {
        merchant_id: String,
        session_id: String,
        attempt_id: String,
        due_ms: i64,
    },
    /// An authorisation's TTL item was deleted: its `capture_before` has passed.
    VoidExpired {
        merchant_id: String,
        session_id: String,
        payment_id: String,
    },
    Ignore,
}

/// The `sync_ms` of a change's new image when it is newly due (or moved): a write that kept
/// it needs no trigger of its own.
fn newly_due(change: &Value) -> Option<i64> {
    let due = |image: &Value| string_attr(image, SYNC_MS).and_then(|v| v.parse::<i64>().ok());
    due(&change["NewImage"]).filter(|d| Some(*d) != due(&change["OldImage"]))
}

impl StreamWork {
    /// The due time of a sync this work would schedule.
    fn sync_due(&self) -> Option<i64> {
        match self {
            StreamWork::ScheduleSync { due_ms, .. } | StreamWork::ScheduleAttemptSync { due_ms, .. } => Some(*due_ms),
            _ => None,
        }
    }
}

/// Whether a later record of the batch rewrote the item of `records[i]` so that the sync
/// due at `due_ms` it asked for is no longer owed: the attempt or refund was answered (or
/// its due moved, which that record schedules itself). A card payment writes its attempt
/// ahead and its outcome a moment later, so the pair almost always shares a batch; the
/// write-ahead's schedule would cost a `CreateSchedule`, an invocation and a sync that
/// finds nothing due.
fn superseded(records: &[Value], i: usize, due_ms: i64) -> bool {
    fn key(r: &Value) -> (Option<&str>, Option<&str>) {
        (string_attr(&r["dynamodb"]["Keys"], "PK"), string_attr(&r["dynamodb"]["Keys"], "SK"))
    }
    let item = key(&records[i]);
    let due = |r: &Value| string_attr(&r["dynamodb"]["NewImage"], SYNC_MS).and_then(|v| v.parse::<i64>().ok());
    records[i + 1..].iter().any(|later| key(later) == item && due(later) != Some(due_ms))
}

pub fn classify(record: &Value) -> Result<StreamWork, String> {
    let change = &record["dynamodb"];
    let sk = string_attr(&change["Keys"], "SK").unwrap_or_default();
    match record["eventName"].as_str() {
        Some("INSERT") if sk.starts_with(EVENT_SK_PREFIX) => {
            let image = &change["NewImage"];
            let body = body_json(image)?.ok_or("event item without body")?;
            // Items written before events stopped repeating it carry `merchant_id`.
            let merchant_id = string_attr(image, "merchant_id")
                .or_else(|| string_attr(&change["Keys"], "PK").and_then(merchant_of))
                .ok_or("event item outside a merchant partition")?;
            let event: EventRecord = serde_json::from_slice(&body).map_err(|e| format!("corrupt event item: {e}"))?;
            Ok(StreamWork::FanOut { merchant_id: merchant_id.to_string(), event: Box::new(event) })
        }
        Some("REMOVE") if sk == EXPIRY_SK && record["userIdentity"]["principalId"].as_str() == Some(TTL_PRINCIPAL) => {
            let image = &change["OldImage"];
            match (string_attr(image, "merchant_id"), string_attr(image, "session_id")) {
                (Some(m), Some(s)) => Ok(StreamWork::Expire { merchant_id: m.to_string(), session_id: s.to_string() }),
                _ => Err("expiry item without merchant_id/session_id".into()),
            }
        }
        Some("INSERT" | "MODIFY") if sk == SESSION_SK => {
            let Some(due_ms) = newly_due(change) else { return Ok(StreamWork::Ignore) };
            let body = body_json(&change["NewImage"])?.ok_or("session item without body")?;
            let session: paysession_domain::session::PaymentSession =
                serde_json::from_slice(&body).map_err(|e| format!("corrupt session item: {e}"))?;
            let Some((attempt, _)) = session.attempt_sync_due() else { return Ok(StreamWork::Ignore) };
            Ok(StreamWork::ScheduleAttemptSync {
                attempt_id: attempt.id.clone(),
                merchant_id: session.merchant_id,
                session_id: session.id,
                due_ms,
            })
        }
        Some("INSERT" | "MODIFY") if sk.starts_with(REFUND_SK_PREFIX) => {
            let image = &change["NewImage"];
            let Some(due_ms) = newly_due(change) else { return Ok(StreamWork::Ignore) };
            let body = body_json(image)?.ok_or("refund item without body")?;
            let refund: paysession_domain::refund::Refund =
                serde_json::from_slice(&body).map_err(|e| format!("corrupt refund item: {e}"))?;
            Ok(StreamWork::ScheduleSync { merchant_id: refund.merchant_id, refund_id: refund.id, due_ms })
        }
        Some("REMOVE")
            if sk.starts_with(AUTHORISATION_SK_PREFIX) && record["userIdentity"]["principalId"].as_str() == Some(TTL_PRINCIPAL) =>
        {
            let image = &change["OldImage"];
            match (string_attr(image, "merchant_id"), string_attr(image, "session_id"), string_attr(image, "payment_id")) {
                (Some(m), Some(s), Some(p)) => {
                    Ok(StreamWork::VoidExpired { merchant_id: m.to_string(), session_id: s.to_string(), payment_id: p.to_string() })
                }
                _ => Err("authorisation item without merchant_id/session_id/payment_id".into()),
            }
        }
        Some("INSERT" | "MODIFY") if sk == MANDATE_SK => {
            let mandate = |image: &Value| -> Result<Option<Box<Mandate>>, String> {
                body_json(image)?
                    .map(|b| serde_json::from_slice(&b).map(Box::new).map_err(|e| format!("corrupt mandate item: {e}")))
                    .transpose()
            };
            let new = mandate(&change["NewImage"])?.ok_or("mandate item without body")?;
            Ok(StreamWork::Reschedule { old: mandate(&change["OldImage"])?, new })
        }
        _ => Ok(StreamWork::Ignore),
    }
}

/// The work other than fan-out, one record at a time: a mandate's schedule follows its
/// changes in order.
async fn run<S: SessionStore + WebhookStore + SettingsStore + ?Sized>(
    cx: &Core<S>,
    sinks: &StreamSinks<'_>,
    work: &StreamWork,
) -> Result<(), StoreError> {
    // Each record on its merchant's clock (its sandbox test clock).
    match work {
        StreamWork::Reschedule { old, new } => {
            reschedule(&cx.at_merchant(&new.merchant_id).await?, sinks.scheduler, old.as_deref(), new).await.map(|_| ())
        }
        StreamWork::Expire { merchant_id, session_id } => {
            expire_if_due(&cx.at_merchant(merchant_id).await?, merchant_id, session_id).await.map(|_| ())
        }
        StreamWork::ScheduleSync { merchant_id, refund_id, due_ms } => {
            let due = chrono::DateTime::from_timestamp_millis(*due_ms).unwrap_or_default();
            let cx = cx.at_merchant(merchant_id).await?;
            paysession_app::reconcile::schedule_refund_sync(&cx, sinks.scheduler, merchant_id, refund_id, due).await
        }
        StreamWork::ScheduleAttemptSync { merchant_id, session_id, attempt_id, due_ms } => {
            let due = chrono::DateTime::from_timestamp_millis(*due_ms).unwrap_or_default();
            let cx = cx.at_merchant(merchant_id).await?;
            paysession_app::reconcile::schedule_attempt_sync(&cx, sinks.scheduler, merchant_id, session_id, attempt_id, due).await
        }
        StreamWork::VoidExpired { merchant_id, session_id, payment_id } => {
            let cx = cx.at_merchant(merchant_id).await?;
            paysession_app::reconcile::schedule_void(&cx, sinks.scheduler, merchant_id, session_id, payment_id).await
        }
        // Never passed here: the caller runs fan-outs through `fan_out_run` and drops
        // ignored records when it classifies them.
        StreamWork::FanOut { .. } | StreamWork::Ignore => Ok(()),
    }
}

/// How many fan-outs of one batch run at once. Each is, per endpoint, a conditional put, an
/// SQS send and a mark: one at a time, a 100-record batch waits on some 300 round trips in
/// a row. Events carry no order a receiver may rely on (Standard Webhooks), and each
/// fan-out is idempotent, so they may overlap.
pub const FAN_OUT_CONCURRENCY: usize = 16;

/// Fans out a run of consecutive `FanOut` records, up to `concurrency` at once, each on its
/// merchant's clock and endpoints (read once per merchant per batch), then sends the
/// messages of new deliveries they made, ten to a request. One result per record, in
/// order, except that a record whose merchant could not be read ends the list with its
/// error: the records after it are not started (the batch resumes there anyway). A record
/// fails if a message of its own was refused.
async fn fan_out_run<S: WebhookStore + SettingsStore + ?Sized>(
    cx: &Core<S>,
    queue: &dyn DeliveryQueue,
    merchants: &mut BatchMerchants<S>,
    run: &[(&str, &EventRecord)],
    concurrency: usize,
) -> Vec<Result<(), StoreError>> {
    let held = fan_out_holding(cx, queue, merchants, run, concurrency).await;
    send_held(queue, held).await
}

/// Sends what each record's fan-out held in one `enqueue_all`, and folds each message's
/// result into its record's.
async fn send_held(queue: &dyn DeliveryQueue, held: Vec<Result<Vec<QueuedDelivery>, StoreError>>) -> Vec<Result<(), StoreError>> {
    let mut owners = Vec::new();
    let mut messages = Vec::new();
    let mut out = Vec::with_capacity(held.len());
    for (i, result) in held.into_iter().enumerate() {
        out.push(result.map(|mine| {
            owners.extend(std::iter::repeat_n(i, mine.len()));
            messages.extend(mine);
        }));
    }
    if messages.is_empty() {
        return out;
    }
    for (i, sent) in owners.into_iter().zip(queue.enqueue_all(&messages).await) {
        if let (Err(e), Ok(())) = (sent, &out[i]) {
            out[i] = Err(e);
        }
    }
    out
}

/// [`fan_out_run`]'s fan-outs, each holding the messages of the deliveries it made.
async fn fan_out_holding<S: WebhookStore + SettingsStore + ?Sized>(
    cx: &Core<S>,
    queue: &dyn DeliveryQueue,
    merchants: &mut BatchMerchants<S>,
    run: &[(&str, &EventRecord)],
    concurrency: usize,
) -> Vec<Result<Vec<QueuedDelivery>, StoreError>> {
    let mut ready = run.len();
    let mut unreadable = None;
    for (i, &(merchant_id, _)) in run.iter().enumerate() {
        if let Err(e) = merchants.of(cx, merchant_id).await {
            (ready, unreadable) = (i, Some(e));
            break;
        }
    }
    // A hand-driven window rather than `StreamExt::buffered` over a closure: the closure's
    // borrowed arguments make the future fail `Send` for the tasks this runs in.
    let mut window = FuturesOrdered::new();
    let mut waiting = run[..ready].iter();
    let mut results = Vec::with_capacity(run.len());
    loop {
        while window.len() < concurrency.max(1) {
            let Some(&(merchant_id, event)) = waiting.next() else { break };
            window.push_back(fan_out_one(merchants, queue, merchant_id, event));
        }
        match window.next().await {
            Some(result) => results.push(result),
            None => break,
        }
    }
    results.extend(unreadable.map(Err));
    results
}

async fn fan_out_one<S: WebhookStore + ?Sized>(
    merchants: &BatchMerchants<S>,
    queue: &dyn DeliveryQueue,
    merchant_id: &str,
    event: &EventRecord,
) -> Result<Vec<QueuedDelivery>, StoreError> {
    match merchants.get(merchant_id) {
        Some((at, theirs)) => {
            let holding = Collecting::new(queue);
            fan_out_to(at, &holding, theirs, merchant_id, event).await?;
            Ok(holding.take())
        }
        None => Err(StoreError::Backend(format!("merchant {merchant_id} of the batch was not read"))),
    }
}

/// Where the stream's work goes: the webhook queue, the charge schedules and, when the
/// deployment configures one, an EventBridge bus.
pub struct StreamSinks<'a> {
    pub queue: &'a dyn DeliveryQueue,
    pub scheduler: &'a dyn ChargeScheduler,
    pub bus: Option<&'a EventBus>,
}

/// Handles a DynamoDB stream event (`ReportBatchItemFailures`), with
/// [`FAN_OUT_CONCURRENCY`].
pub async fn handle_stream_event<S: SessionStore + WebhookStore + SettingsStore + ?Sized>(
    cx: &Core<S>,
    sinks: &StreamSinks<'_>,
    event: &Value,
) -> Value {
    handle_stream_event_with(cx, sinks, event, FAN_OUT_CONCURRENCY).await
}

/// [`handle_stream_event`] with `concurrency` fan-outs at once (1: one record at a time).
/// Records take effect in order, except that consecutive fan-outs overlap; at the first
/// failure (in record order) the rest of the batch is left for the retry, which starts at
/// the failed record. Re-running a record is safe: fan-out finds its deliveries already
/// queued, an expiry finds the session already expired, a schedule finds itself created,
/// an event already on the bus is not put again.
pub async fn handle_stream_event_with<S: SessionStore + WebhookStore + SettingsStore + ?Sized>(
    cx: &Core<S>,
    sinks: &StreamSinks<'_>,
    event: &Value,
    concurrency: usize,
) -> Value {
    let mut works: Vec<(&str, StreamWork)> = Vec::new();
    let records = event["Records"].as_array().map(Vec::as_slice).unwrap_or_default();
    for (i, record) in records.iter().enumerate() {
        let sequence = record["dynamodb"]["SequenceNumber"].as_str().unwrap_or_default();
        match classify(record) {
            Ok(StreamWork::Ignore) => {}
            Ok(work) if work.sync_due().is_some_and(|due| superseded(records, i, due)) => {}
            Ok(work) => works.push((sequence, work)),
            // A record we cannot read will not improve on retry; blocking the shard would
            // stop every later event, so it is logged loudly and skipped.
            Err(why) => tracing::error!(sequence, why, "unreadable stream record skipped"),
        }
    }
    let mut merchants = BatchMerchants::default();
    let mut for_bus: Vec<(&str, &EventRecord)> = Vec::new();
    let mut failed_at: Option<String> = None;
    let mut next = 0;
    while next < works.len() {
        let is_fan_out = |w: &(&str, StreamWork)| matches!(w.1, StreamWork::FanOut { .. });
        let end = if is_fan_out(&works[next]) {
            works[next..].iter().position(|w| !is_fan_out(w)).map_or(works.len(), |n| next + n)
        } else {
            next + 1
        };
        let group = &works[next..end];
        let outcomes = if is_fan_out(&group[0]) {
            let run: Vec<(&str, &EventRecord)> = group
                .iter()
                .filter_map(|(_, w)| match w {
                    StreamWork::FanOut { merchant_id, event } => Some((merchant_id.as_str(), &**event)),
                    _ => None,
                })
                .collect();
            fan_out_run(cx, sinks.queue, &mut merchants, &run, concurrency).await
        } else {
            vec![run(cx, sinks, &group[0].1).await]
        };
        for ((sequence, work), outcome) in group.iter().zip(outcomes) {
            if let Err(e) = outcome {
                tracing::warn!(sequence, error = %e, "stream record failed; the batch resumes here");
                failed_at = Some(sequence.to_string());
                break;
            }
            if let (Some(_), StreamWork::FanOut { event, .. }) = (sinks.bus, work) {
                for_bus.push((sequence, event));
            }
        }
        if failed_at.is_some() {
            break;
        }
        next = end;
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn a_sync_is_superseded_only_by_a_later_write_of_its_item_that_no_longer_owes_it() {
        let record = |sk: &str, due: Option<&str>| {
            let mut image = json!({"PK": {"S": "MER#m#SES#k"}, "SK": {"S": sk}});
            if let Some(d) = due {
                image[SYNC_MS] = json!({"N": d});
            }
            json!({"eventName": "MODIFY", "dynamodb": {"Keys": {"PK": {"S": "MER#m#SES#k"}, "SK": {"S": sk}}, "NewImage": image}})
        };
        let ahead = record(SESSION_SK, Some("1000"));
        // The outcome written after: nothing owed.
        assert!(superseded(&[ahead.clone(), record(SESSION_SK, None)], 0, 1000));
        // Moved: the later record schedules its own.
        assert!(superseded(&[ahead.clone(), record(SESSION_SK, Some("2000"))], 0, 1000));
        // A later write that kept the due (another attempt's event, say): still owed.
        assert!(!superseded(&[ahead.clone(), record(SESSION_SK, Some("1000"))], 0, 1000));
        // Another item, or nothing after it: still owed.
        assert!(!superseded(&[ahead.clone(), record("RE#re_1", None)], 0, 1000));
        assert!(!superseded(&[record(SESSION_SK, None), ahead.clone()], 1, 1000));
        // Deleted after (no new image): nothing owed.
        let removed = json!({"eventName": "REMOVE", "dynamodb": {"Keys": {"PK": {"S": "MER#m#SES#k"}, "SK": {"S": SESSION_SK}}}});
        assert!(superseded(&[ahead, removed], 0, 1000));
    }

    #[test]
    fn a_body_reads_from_a_record_in_both_forms() {
        let json = br#"{"id":"evt_1","type":"payment_session.created"}"#;
        let aws_sdk_dynamodb::types::AttributeValue::B(blob) = crate::body::encode(json) else { unreachable!() };
        let compressed = json!({"body": {"B": base64::engine::general_purpose::STANDARD.encode(blob.as_ref())}});
        assert_eq!(body_json(&compressed).unwrap().unwrap(), json);
        let before = json!({"body": {"S": std::str::from_utf8(json).unwrap()}});
        assert_eq!(body_json(&before).unwrap().unwrap(), json);
        assert_eq!(body_json(&json!({"merchant_id": {"S": "mer_1"}})).unwrap(), None);
        assert!(body_json(&json!({"body": {"B": "not base64!"}})).unwrap_err().contains("base64"));
        assert!(body_json(&json!({"body": {"N": "1"}})).unwrap_err().contains("neither"));
    }

    #[test]
    fn an_event_item_names_its_merchant_by_its_partition_or_as_written_before() {
        let event = json!({"id": "evt_1", "type": "payment_session.created", "created_at": "2026-12-07T00:00:00Z", "session_id": "ps_1", "data": {"object": {}}});
        let record = |merchant_attr: Option<&str>, pk: &str| {
            let mut image = json!({"PK": {"S": pk}, "body": {"S": event.to_string()}});
            if let Some(m) = merchant_attr {
                image["merchant_id"] = json!({"S": m});
            }
            json!({"eventName": "INSERT", "dynamodb": {"Keys": {"PK": {"S": pk}, "SK": {"S": "EVT#1#0"}}, "NewImage": image}})
        };
        let merchant = |r: &Value| match classify(r) {
            Ok(StreamWork::FanOut { merchant_id, .. }) => Ok(merchant_id),
            Ok(_) => Err("not a fan-out".to_string()),
            Err(e) => Err(e),
        };
        assert_eq!(merchant(&record(None, "MER#mer_a#SES#k1")), Ok("mer_a".into()));
        assert_eq!(merchant(&record(None, "MER#mer_a#MD#md_1")), Ok("mer_a".into()));
        assert_eq!(merchant(&record(Some("mer_b"), "MER#mer_b#SES#k1")), Ok("mer_b".into()), "an item written before");
        assert!(merchant(&record(None, "CLIENT#c1")).unwrap_err().contains("outside a merchant partition"));
        assert_eq!(merchant_of("MER#mer_a"), Some("mer_a"));
        assert_eq!(merchant_of("MER##x"), None);
    }
}
