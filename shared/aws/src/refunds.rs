//! Refunds and payments' refund counters on the single table (keys in `keys.rs`).
//!
//! The reservation is an `Update` of the payment's counter item conditional on
//! `refundable >= :amount AND refund_count < :max` (or on the item not existing yet, when it
//! is created from the payment's received amount), in one `TransactWriteItems` with the
//! refund, its events and the idempotency completion: DynamoDB evaluates the condition and
//! applies the arithmetic atomically, so concurrent refunds need no read-and-retry and can
//! never sum above what was received.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use paysession_app::ports::{IdempotencyCompletion, Page, RefundQuery, RefundStore, StoreError};
use paysession_domain::refund::{MAX_REFUNDS_PER_PAYMENT, MoneyDelta, PaymentMoney, Refund};
use paysession_domain::session::{EventRecord, PaymentSession, owning_session_id};

use crate::DynamoStore;
use crate::keys::*;
use crate::store::{Item, attr_i64, attr_str, backend, body, item, ms, n, parse_body, s};

fn refund_item(r: &Refund) -> Result<Item, StoreError> {
    let mut it = item([
        (PK, s(session_pk(&r.merchant_id, &r.session_id))),
        (SK, s(refund_sk(&r.id))),
        (GSI1PK, s(refunds_gsi1(&r.merchant_id))),
        (GSI1SK, s(time_sort(ms(r.created_at), &r.id))),
        ("merchant_id", s(r.merchant_id.clone())),
        ("version", n(r.version as i64)),
        ("status", s(r.status.as_str())),
        ("body", body(r)?),
    ]);
    if let Some(at) = r.next_sync_at {
        it.insert(SYNC_MS.into(), n(ms(at)));
    }
    Ok(it)
}

fn money_from(it: &Item) -> Option<PaymentMoney> {
    Some(PaymentMoney {
        refundable: attr_i64(it, "refundable")?,
        refunded: attr_i64(it, "refunded")?,
        refund_count: u32::try_from(attr_i64(it, "refund_count")?).ok()?,
    })
}

impl DynamoStore {
    fn refund_events(&self, r: &Refund, events: &[EventRecord]) -> Result<Vec<TransactWriteItem>, StoreError> {
        self.keyed_event_items(&r.merchant_id, session_pk(&r.merchant_id, &r.session_id), |i| refund_event_sk(&r.id, r.version, i), events)
    }

    fn money_key(&self, r: &Refund) -> (String, String) {
        (session_pk(&r.merchant_id, &r.session_id), payment_money_sk(&r.payment_id))
    }
}

#[async_trait]
impl RefundStore for DynamoStore {
    async fn payment_money(&self, merchant_id: &str, session_id: &str, payment_id: &str) -> Result<Option<PaymentMoney>, StoreError> {
        let found = self.get_item(session_pk(merchant_id, session_id), &payment_money_sk(payment_id)).await?;
        Ok(found.as_ref().and_then(money_from))
    }

    async fn session_money(&self, merchant_id: &str, session_id: &str) -> Result<Vec<(String, PaymentMoney)>, StoreError> {
        let page = self
            .client()
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk AND begins_with(SK, :pay)")
            .expression_attribute_values(":pk", s(session_pk(merchant_id, session_id)))
            .expression_attribute_values(":pay", s(PAYMENT_MONEY_SK_PREFIX))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(crate::describe(&e)))?;
        Ok(page
            .items
            .unwrap_or_default()
            .iter()
            // The partition is the reference's: only this session's payments are its own.
            .filter(|it| attr_str(it, "session_id") == Some(session_id))
            .filter_map(|it| Some((attr_str(it, "payment_id")?.to_string(), money_from(it)?)))
            .collect())
    }

    async fn create_refund(
        &self,
        refund: &Refund,
        amount_received: i64,
        events: &[EventRecord],
        idempotency: Option<&IdempotencyCompletion>,
    ) -> Result<(), StoreError> {
        let (pk, sk) = self.money_key(refund);
        let refused = async || -> Result<(), StoreError> {
            // Refused by the counters: report them as they are now (a consistent read).
            let money =
                self.get_item(pk.clone(), &sk).await?.as_ref().and_then(money_from).unwrap_or(PaymentMoney::untouched(amount_received));
            Err(StoreError::RefundRefused { refundable: money.refundable, refund_count: money.refund_count })
        };
        // The first reservation creates the counters from `amount_received`, which the
        // condition cannot compare with the amount: more than was ever received is refused here.
        if refund.amount > amount_received {
            return refused().await;
        }
        let reserve = Update::builder()
            .table_name(self.table())
            .key(PK, s(pk.clone()))
            .key(SK, s(sk.clone()))
            .update_expression(
                "SET refundable = if_not_exists(refundable, :received) - :amount, \
                 refund_count = if_not_exists(refund_count, :zero) + :one, refunded = if_not_exists(refunded, :zero), \
                 merchant_id = :m, session_id = :s, payment_id = :p",
            )
            .condition_expression("attribute_not_exists(PK) OR (refundable >= :amount AND refund_count < :max)")
            .expression_attribute_values(":received", n(amount_received))
            .expression_attribute_values(":amount", n(refund.amount))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(i64::from(MAX_REFUNDS_PER_PAYMENT)))
            .expression_attribute_values(":m", s(refund.merchant_id.clone()))
            .expression_attribute_values(":s", s(refund.session_id.clone()))
            .expression_attribute_values(":p", s(refund.payment_id.clone()))
            .build()
            .map_err(backend)?;
        let mut items = idempotency.map(|c| self.completion_item(c)).transpose()?.into_iter().collect::<Vec<_>>();
        let first = items.len();
        items.push(TransactWriteItem::builder().update(reserve).build());
        items.push(TransactWriteItem::builder().put(self.put(refund_item(refund)?, Some("attribute_not_exists(PK)"))).build());
        items.extend(self.refund_events(refund, events)?);
        match self.transact_retrying(items).await? {
            None => Ok(()),
            Some(i) if i < first => Err(StoreError::IdempotencyLost),
            Some(i) if i == first => refused().await,
            Some(_) => Err(StoreError::AlreadyExists),
        }
    }

    async fn update_refund(
        &self,
        refund: &Refund,
        expected_version: u64,
        delta: MoneyDelta,
        events: &[EventRecord],
    ) -> Result<(), StoreError> {
        // A change of the refund alone (a processor reference, the next sync): one PutItem,
        // half the write units of a one-item transaction.
        if delta.is_zero() && events.is_empty() {
            return self.put_versioned(refund_item(refund)?, Some(expected_version)).await;
        }
        let put = self.versioned_put(refund_item(refund)?, expected_version)?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        if !delta.is_zero() {
            let (pk, sk) = self.money_key(refund);
            let moved = Update::builder()
                .table_name(self.table())
                .key(PK, s(pk))
                .key(SK, s(sk))
                .update_expression("ADD refundable :dr, refunded :df")
                .condition_expression("attribute_exists(PK)")
                .expression_attribute_values(":dr", n(delta.refundable))
                .expression_attribute_values(":df", n(delta.refunded))
                .build()
                .map_err(backend)?;
            items.push(TransactWriteItem::builder().update(moved).build());
        }
        items.extend(self.refund_events(refund, events)?);
        match self.transact_retrying(items).await? {
            None => Ok(()),
            Some(0) => Err(StoreError::VersionConflict),
            Some(i) => Err(StoreError::Backend(format!("refund {} write failed on item {i}", refund.id))),
        }
    }

    async fn get_refund(&self, merchant_id: &str, id: &str) -> Result<Option<Refund>, StoreError> {
        let Some(session_id) = owning_session_id(id) else { return Ok(None) };
        let found = self.get_item(session_pk(merchant_id, &session_id), &refund_sk(id)).await?;
        Ok(found.map(|it| parse_body::<Refund>(&it)).transpose()?.filter(|r| r.merchant_id == merchant_id && r.id == id))
    }

    async fn list_refunds(&self, merchant_id: &str, q: &RefundQuery) -> Result<Page<Refund>, StoreError> {
        let keep = |r: &Refund| {
            q.status.is_none_or(|st| r.status == st)
                && q.payment_id.as_ref().is_none_or(|p| &r.payment_id == p)
                && q.session_id.as_ref().is_none_or(|id| &r.session_id == id)
        };
        // A payment's or session's refunds are in the session's partition.
        let session = q.session_id.clone().or_else(|| q.payment_id.as_deref().and_then(owning_session_id));
        let Some(session_id) = session else {
            return self.newest_first((GSI1, GSI1PK, GSI1SK), refunds_gsi1(merchant_id), q.after.as_ref(), q.limit, keep).await;
        };
        if q.payment_id.is_some() && owning_session_id(q.payment_id.as_deref().unwrap_or_default()).is_none() {
            return Ok(Page { items: Vec::new(), has_more: false });
        }
        let page = self
            .client()
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk AND begins_with(SK, :re)")
            .expression_attribute_values(":pk", s(session_pk(merchant_id, &session_id)))
            .expression_attribute_values(":re", s(REFUND_SK_PREFIX))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(crate::describe(&e)))?;
        let mut all: Vec<Refund> = page.items.unwrap_or_default().iter().map(parse_body).collect::<Result<_, _>>()?;
        all.retain(|r| keep(r) && r.session_id == session_id);
        all.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        if let Some(after) = &q.after {
            all.retain(|r| (r.created_at, &r.id) < (after.created_at, &after.id));
        }
        Ok(Page::from_overfetched(all, q.limit))
    }
}

/// An item's `merchant_id`, if it is `wanted`'s (any merchant's when `None`).
fn of_merchant(it: &Item, wanted: Option<&str>) -> Option<String> {
    attr_str(it, "merchant_id").filter(|m| wanted.is_none_or(|w| w == *m)).map(str::to_string)
}

/// The local server on DynamoDB (Local) sweeps for due refunds and authorisations as it does
/// on SQLite, through the due index (`DynamoStore::sweep_due`). Deployed functions never
/// sweep: the stream schedules syncs and TTL voids authorisations.
#[async_trait]
impl paysession_app::reconcile::DueMoney for DynamoStore {
    async fn due_refunds(&self, merchant: Option<&str>, now: DateTime<Utc>, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        self.sweep_due((REFUND_SK_PREFIX, SYNC_MS), now, limit, |it| {
            Ok(of_merchant(it, merchant).and_then(|m| Some((m, attr_str(it, SK)?.strip_prefix(REFUND_SK_PREFIX)?.to_string()))))
        })
        .await
    }

    async fn due_authorisations(
        &self,
        merchant: Option<&str>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        self.sweep_due((AUTHORISATION_SK_PREFIX, CAPTURE_BEFORE_MS), now, limit, |it| {
            Ok(of_merchant(it, merchant)
                .and_then(|m| Some((m, attr_str(it, "session_id")?.to_string(), attr_str(it, "payment_id")?.to_string()))))
        })
        .await
    }

    async fn due_attempts(
        &self,
        merchant: Option<&str>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        self.sweep_due((SESSION_SK, SYNC_MS), now, limit, |it| {
            let session: PaymentSession = parse_body(it)?;
            if merchant.is_some_and(|m| m != session.merchant_id) {
                return Ok(None);
            }
            Ok(session.attempt_sync_due().map(|(a, _)| (session.merchant_id.clone(), session.id.clone(), a.id.clone())))
        })
        .await
    }
}

/// Processors' webhook events applied: one item per event, TTL-deleted after 30 days.
#[async_trait]
impl paysession_app::ports::ProcessorEventLog for DynamoStore {
    async fn first_sight(&self, key: &str, expires_at: chrono::DateTime<chrono::Utc>) -> Result<bool, StoreError> {
        let it = item([(PK, s(processor_event_pk(key))), (SK, s(PROCESSOR_EVENT_SK)), (TTL, n(expires_at.timestamp()))]);
        // TTL deletion lags: an item past its time counts as gone.
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(self.table())
            .set_item(Some(it))
            .condition_expression(format!("attribute_not_exists({PK}) OR #ttl < :now"))
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(chrono::Utc::now().timestamp()))
            .build()
            .expect("table and item are set");
        self.put_item(put).await
    }

    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        let key = item([(PK, s(processor_event_pk(key))), (SK, s(PROCESSOR_EVENT_SK))]);
        let delete =
            aws_sdk_dynamodb::types::Delete::builder().table_name(self.table()).set_key(Some(key)).build().expect("table and key are set");
        self.delete_item(delete, false).await.map(drop)
    }
}

/// The sandbox processor's ledger: one item per id it answered, kept 90 days.
#[async_trait]
impl paysession_app::processor::SandboxLedger for DynamoStore {
    async fn record(&self, id: &str, entry: &str) -> Result<(), StoreError> {
        let expires = chrono::Utc::now().timestamp() + 90 * 86_400;
        let it = item([(PK, s(sandbox_ledger_pk(id))), (SK, s(SANDBOX_LEDGER_SK)), ("entry", s(entry)), (TTL, n(expires))]);
        self.put_item(self.put(it, None)).await.map(drop)
    }

    async fn recall(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.get_item(sandbox_ledger_pk(id), SANDBOX_LEDGER_SK).await?.and_then(|it| attr_str(&it, "entry").map(str::to_string)))
    }
}
