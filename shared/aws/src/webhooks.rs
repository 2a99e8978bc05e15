//! Webhook endpoints, deliveries and the merchant-wide event log on the single table (keys
//! in `keys.rs`). Every write is conditional on the version read.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put};
use chrono::Duration;
use paysession_app::ports::{Cursor, EventQuery, Page, StoreError, WebhookStore};
use paysession_domain::session::EventRecord;
use paysession_domain::webhook::{Delivery, WebhookEndpoint};

use crate::DynamoStore;
use crate::keys::*;
use crate::store::{Item, SortRange, attr_str, backend, body, item, ms, n, parse_body, s};

/// Delivery records (with their attempt log) are kept this long after creation.
const DELIVERY_RETENTION_DAYS: i64 = 30;

fn endpoint_item(e: &WebhookEndpoint) -> Result<Item, StoreError> {
    Ok(item([(PK, s(merchant_pk(&e.merchant_id))), (SK, s(endpoint_sk(&e.id))), ("version", n(e.version as i64)), ("body", body(e)?)]))
}

/// Where a delivery is stored: in its endpoint's list shard when its id names its time (one
/// write, no index entry), else by id with a GSI1 list entry (deliveries made before).
fn delivery_key(merchant: &str, endpoint: &str, id: &str) -> (String, String) {
    match Delivery::created_ms_of(id) {
        Some(created) => (deliveries_partition(merchant, endpoint, id), time_sort(created, id)),
        None => (delivery_pk(merchant, id), DELIVERY_SK.to_string()),
    }
}

fn delivery_item(d: &Delivery) -> Result<Item, StoreError> {
    let (pk, sk) = delivery_key(&d.merchant_id, &d.endpoint_id, &d.id);
    // Kept by id: the list reads it through its GSI1 entry.
    let by_id = sk == DELIVERY_SK;
    let mut it = item([
        (PK, s(pk)),
        (SK, s(sk)),
        ("version", n(d.version as i64)),
        (TTL, n((d.created_at + Duration::days(DELIVERY_RETENTION_DAYS)).timestamp())),
        ("body", body(d)?),
    ]);
    if by_id {
        it.extend(item([
            (GSI1PK, s(deliveries_partition(&d.merchant_id, &d.endpoint_id, &d.id))),
            (GSI1SK, s(time_sort(ms(d.created_at), &d.id))),
        ]));
    }
    Ok(it)
}

impl DynamoStore {
    /// The event `id` among the events of partition `pk` (a subject's few; a strongly
    /// consistent read, so an event is found as soon as its write is).
    async fn event_in_partition(&self, pk: String, id: &str) -> Result<Option<EventRecord>, StoreError> {
        let mut found = None;
        self.partition_events(pk, |event| {
            let this = event.id == id;
            if this {
                found = Some(event);
            }
            this
        })
        .await?;
        Ok(found)
    }

    /// A conditional put: `expected` = `None` inserts, `Some(v)` replaces version `v`.
    pub(crate) async fn put_versioned(&self, it: Item, expected: Option<u64>) -> Result<(), StoreError> {
        let mut req = Put::builder().table_name(self.table()).set_item(Some(self.with_due_index(it)));
        req = match expected {
            None => req.condition_expression("attribute_not_exists(PK)"),
            Some(v) => req.condition_expression("version = :expected").expression_attribute_values(":expected", n(v as i64)),
        };
        match self.put_item(req.build().map_err(backend)?).await? {
            true => Ok(()),
            false => Err(if expected.is_some() { StoreError::VersionConflict } else { StoreError::AlreadyExists }),
        }
    }
}

#[async_trait]
impl WebhookStore for DynamoStore {
    /// The per-merchant endpoint limit is checked by the use case before this insert.
    async fn create_endpoint(&self, e: &WebhookEndpoint) -> Result<(), StoreError> {
        self.put_versioned(endpoint_item(e)?, None).await
    }

    async fn update_endpoint(&self, e: &WebhookEndpoint, expected_version: u64) -> Result<(), StoreError> {
        self.put_versioned(endpoint_item(e)?, Some(expected_version)).await
    }

    async fn get_endpoint(&self, merchant_id: &str, id: &str) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.get_item(merchant_pk(merchant_id), &endpoint_sk(id)).await?.map(|it| parse_body(&it)).transpose()
    }

    async fn list_endpoints(&self, merchant_id: &str) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let page = self
            .client()
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk AND begins_with(SK, :we)")
            .expression_attribute_values(":pk", s(merchant_pk(merchant_id)))
            .expression_attribute_values(":we", s(ENDPOINT_SK_PREFIX))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(crate::describe(&e)))?;
        let mut out: Vec<WebhookEndpoint> = page.items.unwrap_or_default().iter().map(parse_body).collect::<Result<_, _>>()?;
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    async fn delete_endpoint(&self, merchant_id: &str, id: &str) -> Result<bool, StoreError> {
        let delete = Delete::builder()
            .table_name(self.table())
            .key(PK, s(merchant_pk(merchant_id)))
            .key(SK, s(endpoint_sk(id)))
            .build()
            .map_err(backend)?;
        Ok(self.delete_item(delete, true).await?.flatten().is_some())
    }

    async fn create_delivery(&self, d: &Delivery) -> Result<Option<Delivery>, StoreError> {
        match self.put_versioned(delivery_item(d)?, None).await {
            Ok(()) => Ok(None),
            Err(StoreError::AlreadyExists) => match self.get_delivery(&d.merchant_id, &d.endpoint_id, &d.id).await? {
                Some(existing) => Ok(Some(existing)),
                None => Err(backend("delivery vanished right after a conflicting insert")),
            },
            Err(e) => Err(e),
        }
    }

    async fn get_delivery(&self, merchant_id: &str, endpoint_id: &str, id: &str) -> Result<Option<Delivery>, StoreError> {
        let (pk, sk) = delivery_key(merchant_id, endpoint_id, id);
        let found: Option<Delivery> = self.get_item(pk, &sk).await?.map(|it| parse_body(&it)).transpose()?;
        Ok(found.filter(|d| d.endpoint_id == endpoint_id))
    }

    async fn update_delivery(&self, d: &Delivery, expected_version: u64) -> Result<(), StoreError> {
        self.put_versioned(delivery_item(d)?, Some(expected_version)).await
    }

    async fn list_deliveries(
        &self,
        merchant_id: &str,
        endpoint_id: &str,
        limit: usize,
        after: Option<&Cursor>,
    ) -> Result<Page<Delivery>, StoreError> {
        // The shards in the table, and in GSI1 those of deliveries made before ids named their
        // time (kept 30 days).
        let partitions = deliveries_partitions(merchant_id, endpoint_id);
        let table = partitions[..LIST_SHARDS as usize].iter().map(|pk| ((TABLE, PK, SK), pk.clone()));
        let sources = table.chain(partitions.iter().map(|pk| ((GSI1, GSI1PK, GSI1SK), pk.clone()))).collect();
        let range = SortRange { below: after.map(|c| time_sort(ms(c.created_at), &c.id)), floor: None };
        self.merged_sources(sources, &range, limit, |it| parse_body(it).map(Some)).await
    }

    async fn list_events(&self, merchant_id: &str, q: &EventQuery) -> Result<Page<EventRecord>, StoreError> {
        let range = SortRange {
            below: q.after.as_ref().map(|c| time_sort(ms(c.created_at), &c.id)),
            // Strictly after created_after: the first sort key of the next millisecond.
            floor: q.created_after.map(|t| time_sort(ms(t) + 1, "")),
        };
        self.merged((GSI1, GSI1PK, GSI1SK), events_gsi1_partitions(merchant_id), &range, q.limit, |it| {
            let type_ok = q.event_type.as_deref().is_none_or(|t| attr_str(it, "type") == Some(t));
            if type_ok { parse_body(it).map(Some) } else { Ok(None) }
        })
        .await
    }

    async fn get_event(&self, merchant_id: &str, id: &str) -> Result<Option<EventRecord>, StoreError> {
        if let Some(pk) = event_partition(merchant_id, id)
            && let Some(found) = self.event_in_partition(pk, id).await?
        {
            return Ok(Some(found));
        }
        // Written before ids named their partition, or under another one: the by-id index.
        let page = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(GSI2)
            .key_condition_expression("GSI2PK = :pk")
            .expression_attribute_values(":pk", s(event_gsi2(merchant_id, id)))
            .send()
            .await
            .map_err(|e| backend(crate::describe(&e)))?;
        page.items.unwrap_or_default().first().map(parse_body).transpose()
    }
}
