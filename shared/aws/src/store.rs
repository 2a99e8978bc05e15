//! `DynamoStore`: the storage ports on one DynamoDB table. Every state change is one
//! `TransactWriteItems` (new state + its events + guards + idempotency completion) with a
//! condition on the version read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue as AV, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use paysession_app::idempotency::{Decision, Seen, decide};
use paysession_app::merchants::{ApiClient, Merchant};
use paysession_app::ports::{
    Hold, IdempotencyBegin, IdempotencyCompletion, IdempotencyStore, MerchantStore, Page, SessionQuery, SessionStore, SettingsStore,
    StoreError, StoredResponse,
};
use paysession_domain::payment::SavedPaymentMethod;
use paysession_domain::session::{EventRecord, PaymentSession, id_reference_key, reference_key};

use crate::keys::*;
use crate::wire::{ServiceError, Wire, WireError};

pub(crate) use crate::wire::Item;

/// Transactions that lose to a concurrent transaction on the same items (DynamoDB's
/// `TransactionConflict`) are retried this many times before giving up.
const CONFLICT_RETRIES: u32 = 8;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// The hot calls (`TransactWriteItems`, `GetItem`) without the SDK (`wire` module).
    wire: Wire,
    /// The endpoint is DynamoDB Local (a loopback address): expiry items carry index keys
    /// for it ([`expiry_item`]), and due items the due index's ([`DynamoStore::with_due_index`]).
    emulated: bool,
    /// The kinds of [`DUE_KINDS`] (by bit) whose sweep scanned once for items written
    /// before the due index, which it cannot see.
    swept_before_index: Arc<AtomicU8>,
}

pub(crate) fn s(v: impl Into<String>) -> AV {
    AV::S(v.into())
}
pub(crate) fn n(v: i64) -> AV {
    AV::N(v.to_string())
}
pub(crate) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}
/// A customer's saved method, under the customer so one `Query` lists them.
pub(crate) fn method_item(method: &SavedPaymentMethod) -> Result<Item, StoreError> {
    Ok(item([
        (PK, s(payment_methods_pk(&method.merchant_id, &method.customer_id))),
        (SK, s(payment_method_sk(&method.id))),
        ("body", body(method)?),
    ]))
}

pub(crate) fn body<T: serde::Serialize>(v: &T) -> Result<AV, StoreError> {
    // A session or event body is ~1.7 KB: sized once rather than grown from 128 bytes.
    let mut text = Vec::with_capacity(4096);
    serde_json::to_writer(&mut text, v).map_err(backend)?;
    Ok(crate::body::encode(&text))
}
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    parse_stored(item, "body")
}
/// The value [`body`] stored under `name`.
fn parse_stored<T: serde::de::DeserializeOwned>(item: &Item, name: &str) -> Result<T, StoreError> {
    let json = crate::body::decode(item.get(name).ok_or_else(|| backend(format!("item without {name}")))?).map_err(backend)?;
    serde_json::from_slice(&json).map_err(|e| StoreError::Backend(format!("corrupt item: {e}")))
}
pub(crate) fn attr_i64(item: &Item, name: &str) -> Option<i64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}
pub(crate) fn attr_str<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

pub(crate) fn item(pairs: impl IntoIterator<Item = (&'static str, AV)>) -> Item {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A done idempotency record's response: the body (a `B`, `crate::body`) with its status and
/// type beside it; a record written before bodies were compressed holds the whole
/// `StoredResponse` as JSON text.
fn stored_response(record: &Item) -> Result<StoredResponse, StoreError> {
    let Some(compressed @ AV::B(_)) = record.get("response") else { return parse_stored(record, "response") };
    let body = crate::body::decode(compressed).map_err(backend)?;
    Ok(StoredResponse {
        status: attr_i64(record, "response_status")
            .and_then(|status| u16::try_from(status).ok())
            .ok_or_else(|| backend("done record without response_status"))?,
        content_type: attr_str(record, "response_type").ok_or_else(|| backend("done record without response_type"))?.to_string(),
        body: String::from_utf8(body).map_err(|e| backend(format!("corrupt item: {e}")))?,
    })
}

/// A failed transaction's outcome from its error and, when cancelled, each item's
/// cancellation code in request order: the first failed condition wins, then a conflict.
fn tx_outcome(e: &ServiceError) -> Result<TxOutcome, StoreError> {
    let reasons = || e.cancellation_codes.iter().map(Option::as_deref);
    match e.code.as_str() {
        "TransactionCanceledException" => {
            if let Some(i) = reasons().position(|r| r == Some("ConditionalCheckFailed")) {
                return Ok(TxOutcome::ConditionFailed(i));
            }
            if reasons().any(|r| r == Some("TransactionConflict")) {
                return Ok(TxOutcome::Conflict);
            }
            Err(StoreError::Backend(format!("transaction cancelled: {e}")))
        }
        "TransactionInProgressException" => Ok(TxOutcome::Conflict),
        _ => Err(StoreError::Backend(e.to_string())),
    }
}

/// What went wrong in a cancelled transaction, by the position of the failing item.
enum TxOutcome {
    Done,
    /// Lost to a concurrent transaction: run it again.
    Conflict,
    /// The item at this index failed its condition.
    ConditionFailed(usize),
}

impl DynamoStore {
    /// The store on `table` for `config`: its hot calls on the `wire` client
    /// (`sdk::wire_for`), the rest through the SDK client of `config`.
    pub async fn from_config(config: &aws_types::SdkConfig, table: impl Into<String>) -> Result<Self, String> {
        let wire = crate::sdk::wire_for(config).await?.ok_or("AWS configuration without a region or credentials")?;
        let emulated = is_loopback(wire.endpoint());
        Ok(DynamoStore { client: Client::new(config), table: table.into(), wire, emulated, swept_before_index: Arc::default() })
    }

    /// The same store with its SDK calls made by `client` (e.g. one with an interceptor).
    pub fn with_client(mut self, client: Client) -> Self {
        self.client = client;
        self
    }

    /// The same store with `observer` shown each request body its wire client sends.
    pub fn observed(mut self, observer: crate::wire::Observer) -> Self {
        self.wire = self.wire.observed(observer);
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// What the local server's sweeps find due: items of `kind` (one of [`DUE_KINDS`]: a
    /// sort-key prefix and the due-time attribute, epoch ms) due at or before `now`, mapped
    /// by `pick` (`None`: not wanted), at most `limit`. On DynamoDB Local a `Query` of the due
    /// index, after one filtered `Scan` per kind and process for items written before it (and
    /// instead of it on a table without it); elsewhere (a local server on AWS, which the due
    /// index is not written on) the filtered `Scan`. Deployed functions never sweep.
    pub(crate) async fn sweep_due<T>(
        &self,
        kind: (&str, &str),
        now: DateTime<Utc>,
        limit: usize,
        mut pick: impl FnMut(&Item) -> Result<Option<T>, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let bit = DUE_KINDS.iter().position(|k| *k == kind).map(|i| 1u8 << i).filter(|_| self.emulated);
        let Some(bit) = bit else { return self.filtered_scan(kind, now, limit, pick).await };
        if self.swept_before_index.load(Ordering::Relaxed) & bit == 0 {
            let found = self.filtered_scan(kind, now, limit, pick).await?;
            self.swept_before_index.fetch_or(bit, Ordering::Relaxed);
            return Ok(found);
        }
        match self.query_due(kind, now, limit, &mut pick).await {
            Ok(due) => Ok(due),
            // A table of an earlier release, before `paysession-admin init` added the index.
            Err(e) => {
                tracing::debug!(error = %e, "the due index cannot be read; sweeping by Scan");
                self.filtered_scan(kind, now, limit, pick).await
            }
        }
    }

    async fn query_due<T>(
        &self,
        (sk_prefix, due_attr): (&str, &str),
        now: DateTime<Utc>,
        limit: usize,
        mut pick: impl FnMut(&Item) -> Result<Option<T>, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        // Every sort key of a due time up to `now` sorts below this one.
        let range = SortRange { below: Some(time_sort(ms(now) + 1, "")), floor: None };
        let mut due = Vec::new();
        self.query_index((GSI4, GSI4PK, GSI4SK), due_gsi4(sk_prefix, due_attr), &range, true, limit, |it| {
            let Some(found) = pick(it)? else { return Ok(false) };
            due.push(found);
            Ok(true)
        })
        .await?;
        Ok(due)
    }

    async fn filtered_scan<T>(
        &self,
        (sk_prefix, due_attr): (&str, &str),
        now: DateTime<Utc>,
        limit: usize,
        mut pick: impl FnMut(&Item) -> Result<Option<T>, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut due = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(SK, :prefix) AND #due <= :now")
                .expression_attribute_names("#due", due_attr)
                .expression_attribute_values(":prefix", s(sk_prefix))
                .expression_attribute_values(":now", n(ms(now)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| backend(crate::describe(&e)))?;
            for it in out.items.unwrap_or_default() {
                if let Some(found) = pick(&it)? {
                    due.push(found);
                    if due.len() >= limit {
                        return Ok(due);
                    }
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(due);
            }
        }
    }

    /// `item` with the due index's keys if it is a kind of [`DUE_KINDS`] with a due time, on
    /// DynamoDB Local only (on AWS they would cost an index write per such write and put all
    /// of a kind in one partition). Every put of a whole item passes here, so an item that is
    /// no longer due leaves the index with the write that clears its due time.
    pub(crate) fn with_due_index(&self, mut item: Item) -> Item {
        if !self.emulated {
            return item;
        }
        let sk = attr_str(&item, SK).unwrap_or_default();
        let kind = DUE_KINDS.iter().find(|(prefix, attr)| sk.starts_with(prefix) && item.contains_key(*attr));
        if let Some((prefix, attr)) = kind {
            let (due, pk) = (attr_i64(&item, attr).unwrap_or_default(), attr_str(&item, PK).unwrap_or_default().to_string());
            item.insert(GSI4PK.into(), s(due_gsi4(prefix, attr)));
            item.insert(GSI4SK.into(), s(time_sort(due, &pk)));
        }
        item
    }

    /// A `Put` replacing an item only while its stored `version` is still `expected_version`
    /// (the optimistic lock of every state change).
    pub(crate) fn versioned_put(&self, item: Item, expected_version: u64) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.with_due_index(item)))
            .condition_expression("attribute_exists(PK) AND version = :expected")
            .expression_attribute_values(":expected", n(expected_version as i64))
            .build()
            .map_err(backend)
    }

    pub(crate) fn put(&self, item: Item, condition: Option<&str>) -> Put {
        let mut p = Put::builder().table_name(&self.table).set_item(Some(self.with_due_index(item)));
        if let Some(c) = condition {
            p = p.condition_expression(c);
        }
        p.build().expect("table and item are set")
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<TxOutcome, StoreError> {
        match self.wire.transact_write_items(&items).await {
            Ok(()) => Ok(TxOutcome::Done),
            Err(WireError::Service(e)) => tx_outcome(&e),
            Err(e) => Err(backend(e)),
        }
    }

    /// Runs a transaction, retrying conflicts with a short growing pause.
    pub(crate) async fn transact_retrying(&self, items: Vec<TransactWriteItem>) -> Result<Option<usize>, StoreError> {
        for attempt in 0..CONFLICT_RETRIES {
            match self.transact(items.clone()).await? {
                TxOutcome::Done => return Ok(None),
                TxOutcome::ConditionFailed(i) => return Ok(Some(i)),
                TxOutcome::Conflict => {
                    let jitter = u64::from(std::process::id() % 7 + attempt * 3);
                    tokio::time::sleep(std::time::Duration::from_millis(5 * u64::from(attempt + 1) + jitter)).await;
                }
            }
        }
        Err(StoreError::Backend("transaction kept conflicting with concurrent writers".into()))
    }

    pub(crate) fn session_item(&self, session: &PaymentSession) -> Result<Item, StoreError> {
        let created = time_sort(ms(session.created_at), &session.id);
        let mut it = item([
            (PK, s(session_pk(&session.merchant_id, &session.id))),
            (SK, s(SESSION_SK)),
            (GSI1PK, s(sessions_gsi1(&session.merchant_id, &session.id))),
            (GSI1SK, s(created.clone())),
            (GSI2PK, s(customer_gsi2(&session.merchant_id, &session.spec.customer_id))),
            (GSI2SK, s(created)),
            ("version", n(session.version as i64)),
            ("status", s(session.status.as_str())),
            ("body", body(session)?),
        ]);
        if let Some(number) = session.virtual_account_number() {
            it.insert(GSI3PK.into(), s(virtual_account_gsi3(number)));
        }
        // While an attempt's outcome is owed: the stream schedules its sync by this.
        if let Some((_, due)) = session.attempt_sync_due() {
            it.insert(SYNC_MS.into(), n(ms(due)));
        }
        Ok(it)
    }

    pub(crate) fn event_items(
        &self,
        merchant: &str,
        session: &PaymentSession,
        events: &[EventRecord],
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        self.subject_event_items(merchant, session_pk(merchant, &session.id), session.version, events)
    }

    /// Event items under their subject's partition (a session's or a mandate's), keyed by
    /// the version that wrote them so a lost race cannot leave an orphan event.
    pub(crate) fn subject_event_items(
        &self,
        merchant: &str,
        subject_pk: String,
        version: u64,
        events: &[EventRecord],
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        self.keyed_event_items(merchant, subject_pk, |i| event_sk(version, i), events)
    }

    /// Event items under `subject_pk` with the sort keys `sk` gives each (by position).
    pub(crate) fn keyed_event_items(
        &self,
        merchant: &str,
        subject_pk: String,
        sk: impl Fn(usize) -> String,
        events: &[EventRecord],
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        events
            .iter()
            .enumerate()
            .map(|(i, ev)| {
                let mut it = item([
                    (PK, s(subject_pk.clone())),
                    (SK, s(sk(i))),
                    (GSI1PK, s(events_gsi1(merchant, &ev.id))),
                    (GSI1SK, s(time_sort(ms(ev.created_at), &ev.id))),
                    ("type", s(ev.event_type.clone())),
                    ("body", body(ev)?),
                ]);
                // An id that names this partition is found by it (`get_event`); any other
                // keeps a by-id index entry, an index write more.
                if event_partition(merchant, &ev.id).as_ref() != Some(&subject_pk) {
                    it.extend(item([(GSI2PK, s(event_gsi2(merchant, &ev.id))), (GSI2SK, s(EVENT_GSI2SK))]));
                }
                Ok(TransactWriteItem::builder().put(self.put(it, Some("attribute_not_exists(PK)"))).build())
            })
            .collect()
    }

    /// The write that completes an idempotency record: an owned claim is finished in place;
    /// a fresh one puts the record where none is live (`decide`'s `Claim` cases: absent, or
    /// `expires_at_ms` passed, which an in-flight claim sets to its lock's end).
    fn completion_write(&self, c: &IdempotencyCompletion) -> Result<TransactWriteItem, StoreError> {
        // The body compressed on its own, not inside the StoredResponse's JSON, where its
        // quotes would be escaped and no longer match the dictionary (the record: 1,100 → 592 B).
        let pk = idempotency_pk(&c.merchant_id, &c.key);
        let (response, status, content_type) =
            (crate::body::encode(c.response.body.as_bytes()), n(i64::from(c.response.status)), s(c.response.content_type.clone()));
        if let Hold::Fresh { fingerprint, owner, now } = &c.hold {
            let record = item([
                (PK, s(pk)),
                (SK, s(IDEMPOTENCY_SK)),
                ("fingerprint", s(fingerprint.clone())),
                ("state", s("done")),
                ("owner", s(owner.clone())),
                ("locked_until_ms", n(ms(*now))),
                ("expires_at_ms", n(ms(c.expires_at))),
                ("response", response),
                ("response_status", status),
                ("response_type", content_type),
                (TTL, n(c.expires_at.timestamp())),
            ]);
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(record))
                .condition_expression("attribute_not_exists(PK) OR expires_at_ms <= :now")
                .expression_attribute_values(":now", n(ms(*now)))
                .build()
                .map_err(backend)?;
            return Ok(TransactWriteItem::builder().put(put).build());
        }
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(IDEMPOTENCY_SK))
            .update_expression(
                "SET #state = :done, #response = :resp, response_status = :resp_status, response_type = :resp_type, expires_at_ms = :exp, #ttl = :ttl",
            )
            .condition_expression("#state = :in_flight AND #owner = :owner")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#response", "response")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":in_flight", s("in_flight"))
            .expression_attribute_values(":owner", s(c.hold.owner()))
            .expression_attribute_values(":resp", response)
            .expression_attribute_values(":resp_status", status)
            .expression_attribute_values(":resp_type", content_type)
            .expression_attribute_values(":exp", n(ms(c.expires_at)))
            .expression_attribute_values(":ttl", n(c.expires_at.timestamp()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
            .build()
            .map_err(backend)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A change's transaction starts with its idempotency completion, if any: a cancelled
    /// transaction names the first failed condition, and a request whose key is taken must
    /// learn that before anything its twin set (a reference guard, a version).
    fn starting_with_completion(&self, idempotency: Option<&IdempotencyCompletion>) -> Result<Vec<TransactWriteItem>, StoreError> {
        idempotency.map(|c| self.completion_write(c)).into_iter().collect()
    }

    /// [`Self::completion_write`] for other modules' transactions, which put it first.
    pub(crate) fn completion_item(&self, c: &IdempotencyCompletion) -> Result<TransactWriteItem, StoreError> {
        self.completion_write(c)
    }

    /// One `PutItem`; whether its condition held.
    pub(crate) async fn put_item(&self, put: Put) -> Result<bool, StoreError> {
        self.wire.put_item(&put).await.map_err(backend)
    }

    /// One `UpdateItem`: `None` when its condition failed, else the updated attributes if
    /// `return_new` asked for them.
    pub(crate) async fn update_item(&self, update: Update, return_new: bool) -> Result<Option<Option<Item>>, StoreError> {
        self.wire.update_item(&update, return_new).await.map_err(backend)
    }

    /// One `DeleteItem`: `None` when its condition failed, else the deleted item's
    /// attributes if `return_old` asked for them and there was one.
    pub(crate) async fn delete_item(&self, delete: Delete, return_old: bool) -> Result<Option<Option<Item>>, StoreError> {
        self.wire.delete_item(&delete, return_old).await.map_err(backend)
    }

    pub(crate) async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        self.wire.get_item(&self.table, &item([(PK, s(pk)), (SK, s(sk))])).await.map_err(backend)
    }

    /// The session stored in partition `pk`, whatever its id.
    async fn session_at(&self, pk: String) -> Result<Option<PaymentSession>, StoreError> {
        self.get_item(pk, SESSION_SK).await?.map(|it| parse_body(&it)).transpose()
    }

    /// A newest-first page of an index's items (created-time sort keys) below `after`: up to
    /// `limit` of those `keep` accepts, each parsed once, and whether more follow.
    pub(crate) async fn newest_first<T: serde::de::DeserializeOwned + Send>(
        &self,
        index: (&str, &str, &str),
        pk: String,
        after: Option<&paysession_app::ports::Cursor>,
        limit: usize,
        keep: impl Fn(&T) -> bool + Sync,
    ) -> Result<Page<T>, StoreError> {
        self.newest_first_merged(index, vec![pk], after, limit, |item| {
            let parsed: T = parse_body(item)?;
            Ok(keep(&parsed).then_some(parsed))
        })
        .await
    }

    /// [`Self::newest_first`] over several partitions of one list (a sharded list's): each is
    /// read concurrently for up to `limit + 1` kept items below the cursor, and the union is
    /// merged by sort key. The first `limit` of the union are among the first `limit` of
    /// each partition, so the page is exact, and more follow if the union holds more.
    /// `keep` parses an item, or says it is not wanted.
    pub(crate) async fn newest_first_merged<T: Send>(
        &self,
        index: (&str, &str, &str),
        pks: Vec<String>,
        after: Option<&paysession_app::ports::Cursor>,
        limit: usize,
        keep: impl Fn(&Item) -> Result<Option<T>, StoreError> + Sync,
    ) -> Result<Page<T>, StoreError> {
        let range = SortRange { below: after.map(|c| time_sort(ms(c.created_at), &c.id)), floor: None };
        self.merged(index, pks, &range, limit, keep).await
    }

    /// The events of partition `pk` in sort-key order (strongly consistent), each handed to
    /// `visit` until it says stop (`true`).
    pub(crate) async fn partition_events(&self, pk: String, mut visit: impl FnMut(EventRecord) -> bool) -> Result<(), StoreError> {
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :evt)")
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":evt", s(EVENT_SK_PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| backend(crate::describe(&e)))?;
            for it in page.items.unwrap_or_default() {
                if visit(parse_body(&it)?) {
                    return Ok(());
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(()),
            }
        }
    }

    /// The merge itself, for a sort-key range (see [`Self::newest_first_merged`]).
    pub(crate) async fn merged<T: Send>(
        &self,
        index: (&str, &str, &str),
        pks: Vec<String>,
        range: &SortRange,
        limit: usize,
        keep: impl Fn(&Item) -> Result<Option<T>, StoreError> + Sync,
    ) -> Result<Page<T>, StoreError> {
        self.merged_sources(pks.into_iter().map(|pk| (index, pk)).collect(), range, limit, keep).await
    }

    /// [`Self::merged`] over partitions of several indexes (or the table, [`TABLE`]) whose
    /// sort keys share one order.
    pub(crate) async fn merged_sources<T: Send>(
        &self,
        sources: Vec<((&str, &str, &str), String)>,
        range: &SortRange,
        limit: usize,
        keep: impl Fn(&Item) -> Result<Option<T>, StoreError> + Sync,
    ) -> Result<Page<T>, StoreError> {
        let keep = &keep;
        let reads = sources.into_iter().map(|(index, pk)| async move {
            let mut kept: Vec<(String, T)> = Vec::new();
            self.query_index(index, pk, range, false, limit + 1, |it| {
                let Some(parsed) = keep(it)? else { return Ok(false) };
                kept.push((attr_str(it, index.2).unwrap_or_default().to_string(), parsed));
                Ok(true)
            })
            .await?;
            Ok::<_, StoreError>(kept)
        });
        let mut all: Vec<(String, T)> = futures_util::future::try_join_all(reads).await?.into_iter().flatten().collect();
        all.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(Page::from_overfetched(all.into_iter().map(|(_, t)| t).collect(), limit))
    }

    /// Items of one index partition within `range`, in sort order (newest first when
    /// `forward` is false), until `want` of them passed `keep`. Pages are sized to `want`, so
    /// a short list reads (and pays for) no more than it returns.
    pub(crate) async fn query_index(
        &self,
        (index, pk_attr, sk_attr): (&str, &str, &str),
        pk: String,
        range: &SortRange,
        forward: bool,
        want: usize,
        mut keep: impl FnMut(&Item) -> Result<bool, StoreError>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name((index != TABLE).then(|| index.to_string()))
                .expression_attribute_names("#pk", pk_attr)
                .expression_attribute_values(":pk", s(pk.clone()))
                .scan_index_forward(forward)
                .limit(want.clamp(1, 100) as i32)
                .set_exclusive_start_key(start.take());
            q = match (&range.floor, &range.below) {
                (None, None) => q.key_condition_expression("#pk = :pk"),
                (None, Some(below)) => {
                    q.key_condition_expression("#pk = :pk AND #sk < :below").expression_attribute_values(":below", s(below))
                }
                (Some(floor), None) => {
                    q.key_condition_expression("#pk = :pk AND #sk >= :floor").expression_attribute_values(":floor", s(floor))
                }
                // BETWEEN includes `below`, which the loop below skips.
                (Some(floor), Some(below)) => q
                    .key_condition_expression("#pk = :pk AND #sk BETWEEN :floor AND :below")
                    .expression_attribute_values(":floor", s(floor))
                    .expression_attribute_values(":below", s(below)),
            };
            if range.floor.is_some() || range.below.is_some() {
                q = q.expression_attribute_names("#sk", sk_attr);
            }
            let page = q.send().await.map_err(|e| backend(crate::describe(&e)))?;
            for it in page.items.unwrap_or_default() {
                if range.below.is_some() && attr_str(&it, sk_attr) == range.below.as_deref() {
                    continue;
                }
                if keep(&it)? {
                    out.push(it);
                    if out.len() >= want {
                        return Ok(out);
                    }
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

/// Bounds on an index's sort key: `floor` inclusive, `below` exclusive.
#[derive(Debug, Default)]
pub(crate) struct SortRange {
    pub below: Option<String>,
    pub floor: Option<String>,
}

impl SortRange {
    pub const ALL: SortRange = SortRange { below: None, floor: None };
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn create_session(
        &self,
        session: &PaymentSession,
        events: &[EventRecord],
        idempotency: Option<&IdempotencyCompletion>,
    ) -> Result<(), StoreError> {
        // The session's partition is its reference's (`session_pk`), so the session's own
        // condition guards the reference; a session whose id carried another key would slip past.
        let key = reference_key(&session.merchant_id, &session.spec.customer_id, &session.spec.reference);
        if id_reference_key(&session.id) != Some(key.as_str()) {
            return Err(backend(format!("session {} does not carry its reference's key {key}", session.id)));
        }
        let mut items = self.starting_with_completion(idempotency)?;
        let first = items.len();
        items.push(TransactWriteItem::builder().put(self.put(self.session_item(session)?, Some("attribute_not_exists(PK)"))).build());
        items.push(TransactWriteItem::builder().put(self.put(expiry_item(session, self.emulated), None)).build());
        items.extend(self.event_items(&session.merchant_id, session, events)?);
        match self.transact_retrying(items).await? {
            None => Ok(()),
            Some(i) if i < first => Err(StoreError::IdempotencyLost),
            Some(i) if i == first => Err(StoreError::DuplicateReference),
            Some(i) => Err(StoreError::Backend(format!("create condition failed on item {i}"))),
        }
    }

    async fn update_session(
        &self,
        session: &PaymentSession,
        expected_version: u64,
        events: &[EventRecord],
        idempotency: Option<&IdempotencyCompletion>,
    ) -> Result<(), StoreError> {
        let put = self.versioned_put(self.session_item(session)?, expected_version)?;
        let mut items = self.starting_with_completion(idempotency)?;
        let first = items.len();
        items.push(TransactWriteItem::builder().put(put).build());
        items.extend(self.event_items(&session.merchant_id, session, events)?);
        items.extend(self.authorisation_items(session));
        match self.transact_retrying(items).await? {
            None => Ok(()),
            Some(i) if i < first => Err(StoreError::IdempotencyLost),
            // The session's version moved on, or an event key already taken means another
            // writer wrote this version first.
            Some(_) => Err(StoreError::VersionConflict),
        }
    }

    async fn get_session(&self, merchant_id: &str, id: &str) -> Result<Option<PaymentSession>, StoreError> {
        // The partition is the reference's: an id with the same key and another time is not
        // this session.
        Ok(self.session_at(session_pk(merchant_id, id)).await?.filter(|s| s.id == id))
    }

    async fn list_sessions(&self, merchant_id: &str, q: &SessionQuery) -> Result<Page<PaymentSession>, StoreError> {
        // customer_id + reference name the session's partition.
        if let (Some(customer), Some(reference)) = (&q.customer_id, &q.reference) {
            let session = self.session_at(reference_session_pk(merchant_id, customer, reference)).await?;
            let items = session.into_iter().filter(|s| matches_query(s, q)).collect();
            return Ok(Page { items, has_more: false });
        }
        let (index, pks) = match &q.customer_id {
            Some(c) => ((GSI2, GSI2PK, GSI2SK), vec![customer_gsi2(merchant_id, c)]),
            None => ((GSI1, GSI1PK, GSI1SK), sessions_gsi1_partitions(merchant_id)),
        };
        // Status is compared as of `now` with the domain's own rule, so it is filtered here
        // rather than in a filter expression that would have to restate that rule.
        self.newest_first_merged(index, pks, q.after.as_ref(), q.limit, |it| {
            let session: PaymentSession = parse_body(it)?;
            Ok(matches_query(&session, q).then_some(session))
        })
        .await
    }

    async fn session_events(&self, merchant_id: &str, session_id: &str) -> Result<Vec<EventRecord>, StoreError> {
        let mut out = Vec::new();
        // The partition is the reference's: only this id's events are this session's.
        self.partition_events(session_pk(merchant_id, session_id), |event| {
            if event.session_id == session_id {
                out.push(event);
            }
            false
        })
        .await?;
        Ok(out)
    }

    async fn find_by_virtual_account(&self, number: &str) -> Result<Option<PaymentSession>, StoreError> {
        self.find_by_virtual_account_impl(number).await
    }

    async fn save_payment_method(&self, method: &SavedPaymentMethod) -> Result<(), StoreError> {
        self.put_item(self.put(method_item(method)?, None)).await.map(drop)
    }

    async fn list_payment_methods(&self, merchant_id: &str, customer_id: &str) -> Result<Vec<SavedPaymentMethod>, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :pm)")
            .expression_attribute_values(":pk", s(payment_methods_pk(merchant_id, customer_id)))
            .expression_attribute_values(":pm", s("PM#"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(crate::describe(&e)))?;
        let mut methods: Vec<SavedPaymentMethod> = page.items.unwrap_or_default().iter().map(parse_body).collect::<Result<_, _>>()?;
        methods.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(methods)
    }
}

impl DynamoStore {
    /// The index is eventually consistent (a deposit in the first moments after the create
    /// may not find it yet); the session itself is then read consistently.
    async fn find_by_virtual_account_impl(&self, number: &str) -> Result<Option<PaymentSession>, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI3)
            .key_condition_expression("GSI3PK = :pk")
            .expression_attribute_values(":pk", s(virtual_account_gsi3(number)))
            .limit(2)
            .send()
            .await
            .map_err(|e| backend(crate::describe(&e)))?;
        let entries = page.items.unwrap_or_default();
        match entries.as_slice() {
            [] => Ok(None),
            [entry] => match attr_str(entry, PK) {
                Some(pk) => self.session_at(pk.to_string()).await,
                None => Err(backend("virtual-account index entry without a key")),
            },
            _ => Err(StoreError::VirtualAccountTaken(number.to_string())),
        }
    }
}

/// The item whose TTL deletion at `expires_at` expires the session (see `stream.rs`).
/// Nothing reads it through an index; on DynamoDB Local (`emulated`) it carries every
/// index's keys all the same, because the emulator never TTL-deletes an item lacking any
/// ([`EXPIRY_SK`]). On AWS those keys would cost three index writes per create and three
/// more at its deletion, and put every create of a merchant in one GSI1 partition.
impl DynamoStore {
    /// The TTL item of each authorisation waiting for capture: its deletion at
    /// `capture_before` voids the payment (the stream consumer), as the expiry item expires
    /// its session. Written again, unchanged, by later writes of the session.
    pub(crate) fn authorisation_items(&self, session: &PaymentSession) -> Vec<TransactWriteItem> {
        use paysession_domain::payment::AttemptStatus;
        let (m, id) = (&session.merchant_id, &session.id);
        session
            .payments
            .iter()
            .filter(|a| a.status == AttemptStatus::RequiresCapture)
            .filter_map(|a| a.capture_before.map(|before| (a, before)))
            .map(|(a, before)| {
                let mut it = item([
                    (PK, s(session_pk(m, id))),
                    (SK, s(authorisation_sk(&a.id))),
                    ("merchant_id", s(m.clone())),
                    ("session_id", s(id.clone())),
                    ("payment_id", s(a.id.clone())),
                    (CAPTURE_BEFORE_MS, n(ms(before))),
                    (TTL, n(ttl_at_or_after(before))),
                ]);
                if self.emulated {
                    it.extend(item([
                        (GSI1PK, s(authorisation_index_pk(m, &a.id))),
                        (GSI1SK, s(time_sort(ms(before), &a.id))),
                        (GSI2PK, s(authorisation_index_pk(m, &a.id))),
                        (GSI2SK, s(AUTHORISATION_SK_PREFIX)),
                        (GSI3PK, s(authorisation_index_pk(m, &a.id))),
                    ]));
                }
                TransactWriteItem::builder().put(self.put(it, None)).build()
            })
            .collect()
    }
}

/// The TTL (epoch seconds) of an item whose deletion triggers work due at `at`: rounded up,
/// so the deletion never comes before the moment the work checks for (a truncated second
/// let DynamoDB Local delete an authorisation item up to a second early, and the void found
/// nothing due yet).
fn ttl_at_or_after(at: DateTime<Utc>) -> i64 {
    at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0)
}

fn expiry_item(session: &PaymentSession, emulated: bool) -> Item {
    let (m, id) = (&session.merchant_id, &session.id);
    let mut it = item([
        (PK, s(session_pk(m, id))),
        (SK, s(EXPIRY_SK)),
        ("merchant_id", s(m.clone())),
        ("session_id", s(id.clone())),
        (TTL, n(ttl_at_or_after(session.spec.expires_at))),
    ]);
    if emulated {
        it.extend(item([
            (GSI1PK, s(expiry_index_pk(m, id))),
            (GSI1SK, s(time_sort(ms(session.spec.expires_at), id))),
            (GSI2PK, s(expiry_index_pk(m, id))),
            (GSI2SK, s(EXPIRY_SK)),
            (GSI3PK, s(expiry_index_pk(m, id))),
            (GSI4PK, s(expiry_index_pk(m, id))),
            (GSI4SK, s(EXPIRY_SK)),
        ]));
    }
    it
}

/// DynamoDB Local is reached on a loopback address; AWS endpoints never are.
fn is_loopback(endpoint: &http::Uri) -> bool {
    match endpoint.host() {
        Some("localhost") => true,
        Some(host) => host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

fn matches_query(s: &PaymentSession, q: &SessionQuery) -> bool {
    q.customer_id.as_ref().is_none_or(|c| *c == s.spec.customer_id)
        && q.reference.as_ref().is_none_or(|r| *r == s.spec.reference)
        && q.created_after.is_none_or(|t| s.created_at > t)
        && q.status.is_none_or(|st| s.status_at(q.now) == st)
        && q.after.as_ref().is_none_or(|c| (s.created_at, s.id.as_str()) < (c.created_at, c.id.as_str()))
}

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn begin(
        &self,
        merchant_id: &str,
        key: &str,
        fingerprint: &str,
        owner: &str,
        now: DateTime<Utc>,
        locked_until: DateTime<Utc>,
    ) -> Result<IdempotencyBegin, StoreError> {
        let pk = idempotency_pk(merchant_id, key);
        // Read, decide, then claim conditionally; a lost race re-reads.
        for _ in 0..CONFLICT_RETRIES {
            let existing = self.get_item(pk.clone(), IDEMPOTENCY_SK).await?;
            // Our own claim: a put that landed but whose answer was lost is retried, and the
            // retry fails its condition on the record the first try wrote. Owners are made
            // per request, so no other request's claim looks like this.
            if existing.as_ref().is_some_and(|it| attr_str(it, "state") == Some("in_flight") && attr_str(it, "owner") == Some(owner)) {
                return Ok(IdempotencyBegin::Started);
            }
            let seen = existing.as_ref().map(|it| Seen {
                fingerprint: attr_str(it, "fingerprint").unwrap_or_default(),
                done: attr_str(it, "state") == Some("done"),
                locked_until_ms: attr_i64(it, "locked_until_ms").unwrap_or(0),
                expires_at_ms: attr_i64(it, "expires_at_ms").unwrap_or(0),
            });
            match decide(seen, fingerprint, now) {
                Decision::Replay => {
                    let it = existing.as_ref().expect("a replay decision has a record");
                    return Ok(IdempotencyBegin::Replay(stored_response(it)?));
                }
                Decision::InFlight => return Ok(IdempotencyBegin::InFlight),
                Decision::Mismatch => return Ok(IdempotencyBegin::Mismatch),
                Decision::Claim => {}
            }
            let claim = item([
                (PK, s(pk.clone())),
                (SK, s(IDEMPOTENCY_SK)),
                ("fingerprint", s(fingerprint)),
                ("state", s("in_flight")),
                ("owner", s(owner)),
                ("locked_until_ms", n(ms(locked_until))),
                ("expires_at_ms", n(ms(locked_until))),
                // Abandoned claims are collected a day after their lock lapses.
                (TTL, n(locked_until.timestamp() + 86_400)),
            ]);
            // Take the key only if it is still in the state we decided on.
            let mut put = Put::builder().table_name(&self.table).set_item(Some(claim));
            put = match &existing {
                None => put.condition_expression("attribute_not_exists(PK)"),
                Some(it) => put
                    .condition_expression("#owner = :seen_owner AND #state = :seen_state")
                    .expression_attribute_names("#owner", "owner")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":seen_owner", s(attr_str(it, "owner").unwrap_or_default()))
                    .expression_attribute_values(":seen_state", s(attr_str(it, "state").unwrap_or_default())),
            };
            if self.put_item(put.build().map_err(backend)?).await? {
                return Ok(IdempotencyBegin::Started);
            }
        }
        Ok(IdempotencyBegin::InFlight)
    }

    async fn complete(&self, completion: &IdempotencyCompletion) -> Result<(), StoreError> {
        match self.transact_retrying(vec![self.completion_write(completion)?]).await? {
            None => Ok(()),
            Some(_) => Err(StoreError::IdempotencyLost),
        }
    }

    async fn release(&self, merchant_id: &str, key: &str, owner: &str) -> Result<(), StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(PK, s(idempotency_pk(merchant_id, key)))
            .key(SK, s(IDEMPOTENCY_SK))
            .condition_expression("#state = :in_flight AND #owner = :owner")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":in_flight", s("in_flight"))
            .expression_attribute_values(":owner", s(owner))
            .build()
            .map_err(backend)?;
        // A record no longer ours (failed condition) is left to its owner.
        self.delete_item(delete, false).await.map(drop)
    }
}

#[async_trait]
impl MerchantStore for DynamoStore {
    async fn create_merchant(&self, merchant: &Merchant, client: &ApiClient) -> Result<(), StoreError> {
        let m = item([
            (PK, s(merchant_pk(&merchant.id))),
            (SK, s(MERCHANT_SK)),
            (GSI1PK, s(MERCHANTS_GSI1)),
            (GSI1SK, s(time_sort(ms(merchant.created_at), &merchant.id))),
            ("body", body(merchant)?),
        ]);
        let items = vec![
            TransactWriteItem::builder().put(self.put(m, Some("attribute_not_exists(PK)"))).build(),
            TransactWriteItem::builder().put(self.put(self.client_item(client)?, Some("attribute_not_exists(PK)"))).build(),
        ];
        match self.transact_retrying(items).await? {
            None => Ok(()),
            Some(_) => Err(StoreError::AlreadyExists),
        }
    }

    async fn get_merchant(&self, merchant_id: &str) -> Result<Option<Merchant>, StoreError> {
        self.get_item(merchant_pk(merchant_id), MERCHANT_SK).await?.map(|it| parse_body(&it)).transpose()
    }

    async fn list_merchants(&self) -> Result<Vec<Merchant>, StoreError> {
        let items =
            self.query_index((GSI1, GSI1PK, GSI1SK), MERCHANTS_GSI1.into(), &SortRange::ALL, true, usize::MAX, |_| Ok(true)).await?;
        items.iter().map(parse_body).collect()
    }

    async fn get_client(&self, client_id: &str) -> Result<Option<ApiClient>, StoreError> {
        self.get_item(client_pk(client_id), CLIENT_SK).await?.map(|it| parse_body(&it)).transpose()
    }

    async fn list_clients(&self, merchant_id: &str) -> Result<Vec<ApiClient>, StoreError> {
        let items =
            self.query_index((GSI1, GSI1PK, GSI1SK), clients_gsi1(merchant_id), &SortRange::ALL, true, usize::MAX, |_| Ok(true)).await?;
        items.iter().map(parse_body).collect()
    }

    async fn put_client(&self, client: &ApiClient) -> Result<(), StoreError> {
        self.put_item(self.put(self.client_item(client)?, None)).await.map(drop)
    }
}

impl DynamoStore {
    fn client_item(&self, c: &ApiClient) -> Result<Item, StoreError> {
        Ok(item([
            (PK, s(client_pk(&c.client_id))),
            (SK, s(CLIENT_SK)),
            (GSI1PK, s(clients_gsi1(&c.merchant_id))),
            (GSI1SK, s(c.client_id.clone())),
            ("body", body(c)?),
        ]))
    }
}

#[async_trait]
impl SettingsStore for DynamoStore {
    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let Some(it) = self.get_item(setting_pk(key), SETTING_SK).await? else { return Ok(None) };
        Ok(attr_i64(&it, SETTING_NUMBER).map(|n| n.to_string()).or_else(|| attr_str(&it, "value").map(str::to_string)))
    }

    async fn add_to_setting(&self, key: &str, start: i64, delta: i64, max: i64) -> Result<Option<i64>, StoreError> {
        // Absent, the sum is `start + delta`: refused here when that passes `max`, and the
        // condition covers a stored value.
        let (Some(first), Some(limit)) = (start.checked_add(delta), max.checked_sub(delta)) else { return Ok(None) };
        if first > max {
            return Ok(None);
        }
        // The integer lives in its own attribute: `if_not_exists` over a setting written as
        // text (an earlier release) starts from `start`, the value the caller just read.
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(setting_pk(key)))
            .key(SK, s(SETTING_SK))
            .update_expression("SET #v = if_not_exists(#v, :start) + :delta")
            .condition_expression("attribute_not_exists(#v) OR #v <= :limit")
            .expression_attribute_names("#v", SETTING_NUMBER)
            .expression_attribute_values(":start", n(start))
            .expression_attribute_values(":delta", n(delta))
            .expression_attribute_values(":limit", n(limit))
            .build()
            .map_err(backend)?;
        let Some(updated) = self.update_item(update, true).await? else { return Ok(None) };
        updated
            .as_ref()
            .and_then(|a| attr_i64(a, SETTING_NUMBER))
            .map(Some)
            .ok_or_else(|| backend(format!("UpdateItem of setting {key} returned no value")))
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let it = item([(PK, s(setting_pk(key))), (SK, s(SETTING_SK)), ("value", s(value))]);
        self.put_item(self.put(it, None)).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dynamodb_local_is_taken_for_the_emulator() {
        for (endpoint, emulated) in [
            ("http://127.0.0.1:18000", true),
            ("http://localhost:8000", true),
            ("http://[::1]:8000", true),
            ("https://dynamodb.eu-central-1.amazonaws.com", false),
            ("https://vpce-1a2b.dynamodb.eu-central-1.vpce.amazonaws.com", false),
            ("http://10.0.0.5:8000", false),
        ] {
            assert_eq!(is_loopback(&endpoint.parse().unwrap()), emulated, "{endpoint}");
        }
    }

    #[test]
    fn an_expiry_item_on_aws_carries_no_index_keys() {
        let session: PaymentSession = serde_json::from_str(include_str!("../tests/session.json")).unwrap();
        let on_aws = expiry_item(&session, false);
        assert!([GSI1PK, GSI1SK, GSI2PK, GSI2SK, GSI3PK].iter().all(|k| !on_aws.contains_key(*k)), "{on_aws:?}");
        assert!([PK, SK, TTL, "merchant_id", "session_id"].iter().all(|k| on_aws.contains_key(*k)));
        let emulated = expiry_item(&session, true);
        assert!([GSI1PK, GSI1SK, GSI2PK, GSI2SK, GSI3PK].iter().all(|k| emulated.contains_key(*k)));
    }

    #[test]
    fn a_replayed_response_reads_from_both_record_forms() {
        let response =
            StoredResponse { status: 201, content_type: "application/json".into(), body: r#"{"id":"ps_1","status":"open"}"#.into() };
        let compressed = item([
            ("response", crate::body::encode(response.body.as_bytes())),
            ("response_status", n(201)),
            ("response_type", s("application/json")),
        ]);
        assert_eq!(stored_response(&compressed).unwrap(), response);
        let before_compression = item([("response", s(serde_json::to_string(&response).unwrap()))]);
        assert_eq!(stored_response(&before_compression).unwrap(), response);

        let mut without_status = compressed.clone();
        without_status.remove("response_status");
        assert!(stored_response(&without_status).unwrap_err().to_string().contains("response_status"));
    }
}
