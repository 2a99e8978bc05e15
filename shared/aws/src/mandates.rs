//! Mandates and the removal of saved methods on the single table (keys in `keys.rs`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};
use chrono::{DateTime, Utc};
use paysession_app::ports::{MandateQuery, MandateStore, Page, StoreError};
use paysession_domain::mandate::Mandate;
use paysession_domain::payment::SavedPaymentMethod;
use paysession_domain::session::{EventRecord, PaymentSession};

use crate::DynamoStore;
use crate::keys::*;
use crate::store::{Item, backend, body, item, method_item, ms, n, parse_body, s};

fn mandate_item(m: &Mandate) -> Result<Item, StoreError> {
    let created = time_sort(ms(m.created_at), &m.id);
    let mut it = item([
        (PK, s(mandate_pk(&m.merchant_id, &m.id))),
        (SK, s(MANDATE_SK)),
        (GSI1PK, s(mandates_gsi1(&m.merchant_id))),
        (GSI1SK, s(created.clone())),
        (GSI2PK, s(customer_mandates_gsi2(&m.merchant_id, &m.customer_id))),
        (GSI2SK, s(created)),
        ("version", n(m.version as i64)),
        ("status", s(m.status.as_str())),
        ("body", body(m)?),
    ]);
    if let Some(pending) = m.pending_charge() {
        it.insert(NEXT_CHARGE_MS.into(), n(ms(pending.at)));
    }
    Ok(it)
}

/// The local server on DynamoDB (Local) sweeps for due mandates as it does on SQLite.
#[async_trait]
impl paysession_app::recurring::DueMandates for DynamoStore {
    async fn due_mandates(&self, merchant: Option<&str>, now: DateTime<Utc>, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        self.sweep_due((MANDATE_SK, NEXT_CHARGE_MS), now, limit, |it| {
            let m: Mandate = parse_body(it)?;
            Ok(merchant.is_none_or(|wanted| wanted == m.merchant_id).then_some((m.merchant_id, m.id)))
        })
        .await
    }
}

#[async_trait]
impl MandateStore for DynamoStore {
    /// One `TransactWriteItems`: the session (conditional on its version), its events, the
    /// saved method, and the mandate (conditional on not existing).
    async fn complete_first_payment(
        &self,
        session: &PaymentSession,
        expected_version: u64,
        events: &[EventRecord],
        method: &SavedPaymentMethod,
        mandate: &Mandate,
    ) -> Result<(), StoreError> {
        let session_put = self.versioned_put(self.session_item(session)?, expected_version)?;
        let mut items = vec![
            TransactWriteItem::builder().put(session_put).build(),
            TransactWriteItem::builder().put(self.put(method_item(method)?, None)).build(),
            TransactWriteItem::builder().put(self.put(mandate_item(mandate)?, Some("attribute_not_exists(PK)"))).build(),
        ];
        items.extend(self.event_items(&session.merchant_id, session, events)?);
        items.extend(self.authorisation_items(session));
        match self.transact_retrying(items).await? {
            None => Ok(()),
            Some(2) => Err(StoreError::AlreadyExists),
            // The session's version moved, or its event keys were taken by the writer that moved it.
            Some(_) => Err(StoreError::VersionConflict),
        }
    }

    async fn get_mandate(&self, merchant_id: &str, id: &str) -> Result<Option<Mandate>, StoreError> {
        self.get_item(mandate_pk(merchant_id, id), MANDATE_SK).await?.map(|it| parse_body(&it)).transpose()
    }

    async fn list_mandates(&self, merchant_id: &str, q: &MandateQuery) -> Result<Page<Mandate>, StoreError> {
        let (index, pk) = match &q.customer_id {
            Some(c) => ((GSI2, GSI2PK, GSI2SK), customer_mandates_gsi2(merchant_id, c)),
            None => ((GSI1, GSI1PK, GSI1SK), mandates_gsi1(merchant_id)),
        };
        self.newest_first(index, pk, q.after.as_ref(), q.limit, |m: &Mandate| q.status.is_none_or(|st| m.status == st)).await
    }

    async fn update_mandate(&self, mandate: &Mandate, expected_version: u64, events: &[EventRecord]) -> Result<(), StoreError> {
        if events.is_empty() {
            return self.put_versioned(mandate_item(mandate)?, Some(expected_version)).await;
        }
        let put = self.versioned_put(mandate_item(mandate)?, expected_version)?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        let pk = mandate_pk(&mandate.merchant_id, &mandate.id);
        items.extend(self.subject_event_items(&mandate.merchant_id, pk, mandate.version, events)?);
        match self.transact_retrying(items).await? {
            None => Ok(()),
            // The version moved, or its event keys were taken by the writer that moved it.
            Some(_) => Err(StoreError::VersionConflict),
        }
    }

    /// One `TransactWriteItems`: the delete (conditional on the method existing) and its
    /// events, kept under the method's own partition so they never show in its customer's
    /// method list.
    async fn delete_payment_method(&self, method: &SavedPaymentMethod, events: &[EventRecord]) -> Result<bool, StoreError> {
        let delete = Delete::builder()
            .table_name(self.table())
            .key(PK, s(payment_methods_pk(&method.merchant_id, &method.customer_id)))
            .key(SK, s(payment_method_sk(&method.id)))
            .condition_expression("attribute_exists(PK)")
            .build()
            .map_err(backend)?;
        let mut items = vec![TransactWriteItem::builder().delete(delete).build()];
        // A method saved again after a detach gets new events: the detach time versions them.
        let version = events.first().map(|e| ms(e.created_at).max(0) as u64).unwrap_or_default();
        items.extend(self.subject_event_items(
            &method.merchant_id,
            payment_method_events_pk(&method.merchant_id, &method.id),
            version,
            events,
        )?);
        match self.transact_retrying(items).await? {
            None => Ok(true),
            Some(0) => Ok(false),
            Some(i) => Err(StoreError::Backend(format!("detach event item {i} already exists"))),
        }
    }
}
