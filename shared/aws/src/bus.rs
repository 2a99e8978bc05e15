//! The optional second delivery channel: every committed event also put on an Amazon
//! EventBridge bus (`PAYSESSION_EVENT_BUS`), for operators who route events with rules
//! rather than receive webhooks.
//!
//! Entries go out in `PutEvents` calls of at most 10 entries and 256 KiB. Entries that
//! EventBridge refuses are retried with back-off; one that still fails makes the stream
//! batch resume at its record. A replayed batch must not put an event twice, and
//! EventBridge has no idempotency key, so each put event leaves a marker item in the table
//! (TTL two days, past the stream's 24 h retention) and events with a marker are skipped.
//! A crash between the put and the marker can still repeat one put: the at-least-once
//! that EventBridge itself promises, which consumers absorb by the event `id`.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use paysession_domain::session::EventRecord;

use crate::keys::{PK, SK, TTL};

/// The deployment's bus name or ARN; unset means no bus.
pub const ENV: &str = "PAYSESSION_EVENT_BUS";
/// `Source` of every entry: rules match on it.
pub const SOURCE: &str = "paysession";
const MAX_ENTRIES: usize = 10;
/// EventBridge's request limit, counted as it counts entry sizes.
const MAX_REQUEST_BYTES: usize = 256 * 1024;
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MARKER_TTL_SECONDS: i64 = 2 * 86_400;
const MARKER_SK: &str = "BUS";
/// DynamoDB's limit per BatchGetItem.
const MAX_BATCH_GET: usize = 100;

/// One `PutEvents` call: per entry, in order, `None` when accepted or the error code.
#[async_trait]
pub trait PutEvents: Send + Sync {
    async fn put_events(&self, entries: Vec<PutEventsRequestEntry>) -> Result<Vec<Option<String>>, String>;
}

#[async_trait]
impl PutEvents for aws_sdk_eventbridge::Client {
    async fn put_events(&self, entries: Vec<PutEventsRequestEntry>) -> Result<Vec<Option<String>>, String> {
        let count = entries.len();
        let out = self.put_events().set_entries(Some(entries)).send().await.map_err(|e| crate::describe(&e))?;
        let results = out.entries();
        if results.len() != count {
            return Err(format!("PutEvents answered {} results for {count} entries", results.len()));
        }
        Ok(results.iter().map(|r| r.error_code().map(|c| format!("{c}: {}", r.error_message().unwrap_or("")))).collect())
    }
}

/// An event of a stream batch on its way to the bus.
pub struct BusEvent<'a> {
    /// The stream record's sequence number: where the batch resumes if this event fails.
    pub sequence: &'a str,
    pub event: &'a EventRecord,
}

pub struct EventBus {
    events: Box<dyn PutEvents>,
    bus: String,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
}

impl EventBus {
    /// The bus named by [`ENV`], if one is configured.
    pub fn from_env(aws: &aws_types::SdkConfig, table: &str) -> Option<EventBus> {
        let bus = std::env::var(ENV).ok().filter(|b| !b.trim().is_empty())?;
        Some(EventBus::new(Box::new(aws_sdk_eventbridge::Client::new(aws)), bus, aws_sdk_dynamodb::Client::new(aws), table.to_string()))
    }

    pub fn new(events: Box<dyn PutEvents>, bus: String, dynamodb: aws_sdk_dynamodb::Client, table: String) -> Self {
        EventBus { events, bus, dynamodb, table }
    }

    /// Puts every event not already on the bus. `Err` carries the sequence number of the
    /// first event that could not be put (the batch resumes there) and why.
    pub async fn publish(&self, batch: &[BusEvent<'_>]) -> Result<(), (String, String)> {
        if batch.is_empty() {
            return Ok(());
        }
        let first = || batch[0].sequence.to_string();
        let done = self.already_published(batch).await.map_err(|e| (first(), e))?;
        let todo: Vec<&BusEvent<'_>> = batch.iter().filter(|b| !done.contains(&b.event.id)).collect();
        let mut published = Vec::new();
        let mut failed: Option<(usize, String)> = None;
        for chunk in chunks(&todo, |b| self.entry(b.event)) {
            let (ok, err) = self.put_with_retries(&chunk).await;
            published.extend(ok.into_iter().map(|i| chunk[i].0));
            if let Some((i, why)) = err {
                let index = chunk[i].0;
                failed = Some(failed.map_or((index, why.clone()), |(f, w)| if f < index { (f, w) } else { (index, why) }));
            }
        }
        // The events are on the bus either way; a lost marker costs a repeat only if this
        // batch is replayed, so it is logged rather than failing the batch.
        if let Err(e) = self.mark(published.iter().map(|&i| todo[i].event.id.as_str())).await {
            tracing::warn!(error = %e, "could not record events put on the bus; a replay may put them again");
        }
        match failed {
            Some((i, why)) => Err((todo[i].sequence.to_string(), why)),
            None => Ok(()),
        }
    }

    fn entry(&self, event: &EventRecord) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(&event.event_type)
            .detail(event.to_api().to_json())
            .time(DateTime::from_millis(event.created_at.timestamp_millis()))
            .build()
    }

    /// Puts one chunk, retrying refused entries. Returns the chunk positions put and the
    /// first position that never was, with its error.
    async fn put_with_retries(&self, chunk: &[(usize, PutEventsRequestEntry)]) -> (Vec<usize>, Option<(usize, String)>) {
        let mut pending: Vec<usize> = (0..chunk.len()).collect();
        let mut put = Vec::new();
        let mut last_error = String::new();
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let entries = pending.iter().map(|&i| chunk[i].1.clone()).collect();
            match self.events.put_events(entries).await {
                Ok(results) => {
                    let mut still = Vec::new();
                    for (&i, result) in pending.iter().zip(results) {
                        match result {
                            None => put.push(i),
                            Some(code) => {
                                last_error = code;
                                still.push(i);
                            }
                        }
                    }
                    pending = still;
                }
                Err(e) => last_error = e,
            }
            if pending.is_empty() {
                break;
            }
            tracing::warn!(attempt, refused = pending.len(), error = %last_error, "EventBridge refused entries; retrying");
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 4;
            }
        }
        (put, pending.into_iter().min().map(|i| (i, last_error)))
    }

    async fn already_published(&self, batch: &[BusEvent<'_>]) -> Result<HashSet<String>, String> {
        let mut found = HashSet::new();
        for part in batch.chunks(MAX_BATCH_GET) {
            let ids: HashSet<&str> = part.iter().map(|b| b.event.id.as_str()).collect();
            let keys = ids.into_iter().map(marker_key).collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .projection_expression("#pk")
                    .expression_attribute_names("#pk", PK)
                    .build()
                    .map_err(|e| e.to_string())?,
            );
            while let Some(keys) = request.take() {
                let out = self.dynamodb.batch_get_item().request_items(&self.table, keys).send().await.map_err(|e| crate::describe(&e))?;
                for item in out.responses().and_then(|r| r.get(&self.table)).into_iter().flatten() {
                    if let Some(id) = item.get(PK).and_then(|v| v.as_s().ok()).and_then(|pk| pk.strip_prefix(MARKER_PREFIX)) {
                        found.insert(id.to_string());
                    }
                }
                request = out.unprocessed_keys().and_then(|u| u.get(&self.table)).cloned();
            }
        }
        Ok(found)
    }

    /// One PutItem per event, concurrently: BatchWriteItem would also grant deletes.
    async fn mark<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Result<(), String> {
        let expires = (chrono::Utc::now().timestamp() + MARKER_TTL_SECONDS).to_string();
        let puts = ids.map(|id| {
            let mut item = marker_key(id);
            item.insert(TTL.to_string(), AttributeValue::N(expires.clone()));
            self.dynamodb.put_item().table_name(&self.table).set_item(Some(item)).send()
        });
        for result in futures_util::future::join_all(puts).await {
            result.map_err(|e| crate::describe(&e))?;
        }
        Ok(())
    }
}

const MARKER_PREFIX: &str = "BUS#";

fn marker_key(event_id: &str) -> std::collections::HashMap<String, AttributeValue> {
    [(PK.to_string(), AttributeValue::S(format!("{MARKER_PREFIX}{event_id}"))), (SK.to_string(), AttributeValue::S(MARKER_SK.into()))]
        .into()
}

/// An entry's size as EventBridge counts it against the request limit.
fn entry_size(e: &PutEventsRequestEntry) -> usize {
    let len = |s: Option<&str>| s.map_or(0, str::len);
    14 + len(e.source()) + len(e.detail_type()) + len(e.detail()) + e.resources().iter().map(String::len).sum::<usize>()
}

/// Splits entries, in order, into requests within the entry-count and size limits; each
/// entry keeps its position in `items`.
fn chunks<T>(items: &[T], entry: impl Fn(&T) -> PutEventsRequestEntry) -> Vec<Vec<(usize, PutEventsRequestEntry)>> {
    let mut out: Vec<Vec<(usize, PutEventsRequestEntry)>> = Vec::new();
    let mut bytes = 0;
    for (i, item) in items.iter().enumerate() {
        let e = entry(item);
        let size = entry_size(&e);
        match out.last_mut() {
            Some(last) if last.len() < MAX_ENTRIES && bytes + size <= MAX_REQUEST_BYTES => {
                bytes += size;
                last.push((i, e));
            }
            _ => {
                bytes = size;
                out.push(vec![(i, e)]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(detail_len: usize) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder().source(SOURCE).detail_type("t").detail("x".repeat(detail_len)).build()
    }

    #[test]
    fn requests_hold_at_most_ten_entries_and_256_kib() {
        let sizes = vec![10; 23];
        let c = chunks(&sizes, |&n| entry(n));
        assert_eq!(c.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 3]);
        assert_eq!(c[2][0].0, 20, "positions are kept");
        let big = vec![100 * 1024, 100 * 1024, 100 * 1024, 10];
        let c = chunks(&big, |&n| entry(n));
        assert_eq!(c.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2]);
        assert!(c.iter().all(|r| r.iter().map(|(_, e)| entry_size(e)).sum::<usize>() <= MAX_REQUEST_BYTES));
    }
}
