//! Mandates and the removal of saved methods on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use paysession_app::ports::{MandateQuery, MandateStore, Page, StoreError};
use paysession_domain::mandate::{Mandate, MandateStatus};
use paysession_domain::payment::SavedPaymentMethod;
use paysession_domain::session::{EventRecord, PaymentSession};
use rusqlite::{Transaction, params};

use crate::cached::Cached;
use crate::{EmbeddedStore, all_assembled, backend, id_pairs, insert_events, ms, one, replace_session, to_json, upsert_method};

/// When the local scheduler should look at the mandate: only active ones charge.
fn due_ms(m: &Mandate) -> Option<i64> {
    m.next_charge_at.filter(|_| m.status == MandateStatus::Active).map(ms)
}

#[async_trait]
impl paysession_app::recurring::DueMandates for EmbeddedStore {
    async fn due_mandates(&self, merchant: Option<&str>, now: DateTime<Utc>, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        let merchant = merchant.map(str::to_string);
        self.with(move |c| {
            id_pairs(
                c,
                "SELECT merchant_id, id FROM mandates WHERE next_charge_at_ms <= ?1 AND (?3 IS NULL OR merchant_id = ?3)
                 ORDER BY next_charge_at_ms LIMIT ?2",
                params![ms(now), limit as i64, merchant],
            )
        })
        .await
    }
}

fn insert_mandate(tx: &Transaction<'_>, m: &Mandate) -> Result<(), StoreError> {
    let inserted = tx.run(
        "INSERT INTO mandates(id, merchant_id, customer_id, status, created_at_ms, next_charge_at_ms, version, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![m.id, m.merchant_id, m.customer_id, m.status.as_str(), ms(m.created_at), due_ms(m), m.version as i64, to_json(m)?],
    );
    match inserted {
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => Err(StoreError::AlreadyExists),
        other => other.map(|_| ()).map_err(backend),
    }
}

#[async_trait]
impl MandateStore for EmbeddedStore {
    async fn complete_first_payment(
        &self,
        session: &PaymentSession,
        expected_version: u64,
        events: &[EventRecord],
        method: &SavedPaymentMethod,
        mandate: &Mandate,
    ) -> Result<(), StoreError> {
        let (row, events, pm, md) = (crate::session_row(session)?, crate::event_rows(events)?, method.clone(), mandate.clone());
        self.tx(move |tx| {
            replace_session(tx, &row, expected_version)?;
            upsert_method(tx, &pm)?;
            insert_mandate(tx, &md)?;
            insert_events(tx, &row.session.merchant_id, &events)
        })
        .await
    }

    async fn get_mandate(&self, merchant_id: &str, id: &str) -> Result<Option<Mandate>, StoreError> {
        let (m, id) = (merchant_id.to_string(), id.to_string());
        self.lookup(move |c| one(c, "SELECT body FROM mandates WHERE id = ?1 AND merchant_id = ?2", [id, m])).await
    }

    async fn list_mandates(&self, merchant_id: &str, q: &MandateQuery) -> Result<Page<Mandate>, StoreError> {
        let (m, q) = (merchant_id.to_string(), q.clone());
        self.with(move |c| {
            let mut sql = String::from("SELECT body FROM mandates WHERE merchant_id = ?1");
            let mut args: Vec<rusqlite::types::Value> = vec![m.into()];
            let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
                args.push(v);
                sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
            };
            if let Some(customer) = &q.customer_id {
                arg(&mut sql, " AND customer_id = ?", customer.clone().into());
            }
            if let Some(status) = q.status {
                arg(&mut sql, " AND status = ?", status.as_str().to_string().into());
            }
            if let Some(after) = &q.after {
                args.push(ms(after.created_at).into());
                args.push(after.id.clone().into());
                let (t, i) = (args.len() - 1, args.len());
                sql.push_str(&format!(" AND (created_at_ms < ?{t} OR (created_at_ms = ?{t} AND id < ?{i}))"));
            }
            sql.push_str(&format!(" ORDER BY created_at_ms DESC, id DESC LIMIT {}", q.limit + 1));
            let items: Vec<Mandate> = all_assembled(c, &sql, rusqlite::params_from_iter(args))?;
            Ok(Page::from_overfetched(items, q.limit))
        })
        .await
    }

    async fn update_mandate(&self, mandate: &Mandate, expected_version: u64, events: &[EventRecord]) -> Result<(), StoreError> {
        let (m, events) = (mandate.clone(), crate::event_rows(events)?);
        self.tx(move |tx| {
            let n = tx
                .run(
                    "UPDATE mandates SET status = ?1, next_charge_at_ms = ?2, version = ?3, body = ?4
                     WHERE id = ?5 AND merchant_id = ?6 AND version = ?7",
                    params![m.status.as_str(), due_ms(&m), m.version as i64, to_json(&m)?, m.id, m.merchant_id, expected_version as i64],
                )
                .map_err(backend)?;
            if n != 1 {
                return Err(StoreError::VersionConflict);
            }
            insert_events(tx, &m.merchant_id, &events)
        })
        .await
    }

    async fn delete_payment_method(&self, method: &SavedPaymentMethod, events: &[EventRecord]) -> Result<bool, StoreError> {
        let (pm, events) = (method.clone(), crate::event_rows(events)?);
        self.tx(move |tx| {
            let n = tx
                .run(
                    "DELETE FROM payment_methods WHERE id = ?1 AND merchant_id = ?2 AND customer_id = ?3",
                    [&pm.id, &pm.merchant_id, &pm.customer_id],
                )
                .map_err(backend)?;
            if n == 1 {
                insert_events(tx, &pm.merchant_id, &events)?;
            }
            Ok(n == 1)
        })
        .await
    }
}
