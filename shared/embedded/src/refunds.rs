//! Refunds and payments' refund counters on SQLite: each write one transaction of the
//! writer, so the reservation's check and its update cannot interleave with another's.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use paysession_app::ports::{Cursor, IdempotencyCompletion, Page, RefundQuery, RefundStore, StoreError};
use paysession_domain::refund::{MoneyDelta, PaymentMoney, Refund};
use paysession_domain::session::EventRecord;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::cached::Cached;
use crate::{EmbeddedStore, all, backend, complete_idempotency, event_rows, id_pairs, insert_events, ms, one, to_json};

fn money_of(c: &Connection, merchant_id: &str, payment_id: &str) -> Result<Option<PaymentMoney>, StoreError> {
    c.row(
        "SELECT refundable, refunded, refund_count FROM payment_money WHERE merchant_id = ?1 AND payment_id = ?2",
        params![merchant_id, payment_id],
        |r| Ok(PaymentMoney { refundable: r.get(0)?, refunded: r.get(1)?, refund_count: r.get(2)? }),
    )
    .optional()
    .map_err(backend)
}

fn put_refund(tx: &Transaction<'_>, r: &Refund, expected_version: Option<u64>) -> Result<(), StoreError> {
    let next_sync = r.next_sync_at.map(ms);
    let n = match expected_version {
        None => tx.run(
            "INSERT INTO refunds(id, merchant_id, session_id, payment_id, status, created_at_ms, next_sync_ms, version, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(id) DO NOTHING",
            params![
                r.id,
                r.merchant_id,
                r.session_id,
                r.payment_id,
                r.status.as_str(),
                ms(r.created_at),
                next_sync,
                r.version as i64,
                to_json(r)?
            ],
        ),
        Some(v) => tx.run(
            "UPDATE refunds SET status = ?1, next_sync_ms = ?2, version = ?3, body = ?4 WHERE id = ?5 AND merchant_id = ?6 AND version = ?7",
            params![r.status.as_str(), next_sync, r.version as i64, to_json(r)?, r.id, r.merchant_id, v as i64],
        ),
    }
    .map_err(backend)?;
    if n == 1 { Ok(()) } else { Err(StoreError::VersionConflict) }
}

#[async_trait]
impl RefundStore for EmbeddedStore {
    async fn payment_money(&self, merchant_id: &str, _session_id: &str, payment_id: &str) -> Result<Option<PaymentMoney>, StoreError> {
        let (m, p) = (merchant_id.to_string(), payment_id.to_string());
        self.lookup(move |c| money_of(c, &m, &p)).await
    }

    async fn session_money(&self, merchant_id: &str, session_id: &str) -> Result<Vec<(String, PaymentMoney)>, StoreError> {
        let (m, s) = (merchant_id.to_string(), session_id.to_string());
        self.lookup(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT payment_id, refundable, refunded, refund_count FROM payment_money WHERE merchant_id = ?1 AND session_id = ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![m, s], |r| {
                    Ok((r.get::<_, String>(0)?, PaymentMoney { refundable: r.get(1)?, refunded: r.get(2)?, refund_count: r.get(3)? }))
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn create_refund(
        &self,
        refund: &Refund,
        amount_received: i64,
        events: &[EventRecord],
        idempotency: Option<&IdempotencyCompletion>,
    ) -> Result<(), StoreError> {
        let (refund, events, idem) = (refund.clone(), event_rows(events)?, idempotency.cloned());
        self.tx(move |tx| {
            if let Some(c) = &idem {
                complete_idempotency(tx, c)?;
            }
            let money = money_of(tx, &refund.merchant_id, &refund.payment_id)?.unwrap_or(PaymentMoney::untouched(amount_received));
            let reserved = money
                .reserve(refund.amount)
                .map_err(|_| StoreError::RefundRefused { refundable: money.refundable, refund_count: money.refund_count })?;
            tx.run(
                "INSERT INTO payment_money(merchant_id, payment_id, session_id, refundable, refunded, refund_count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(merchant_id, payment_id) DO UPDATE SET refundable = ?4, refunded = ?5, refund_count = ?6",
                params![
                    refund.merchant_id,
                    refund.payment_id,
                    refund.session_id,
                    reserved.refundable,
                    reserved.refunded,
                    reserved.refund_count
                ],
            )
            .map_err(backend)?;
            put_refund(tx, &refund, None).map_err(|e| match e {
                StoreError::VersionConflict => StoreError::AlreadyExists,
                other => other,
            })?;
            insert_events(tx, &refund.merchant_id, &events)
        })
        .await
    }

    async fn update_refund(
        &self,
        refund: &Refund,
        expected_version: u64,
        delta: MoneyDelta,
        events: &[EventRecord],
    ) -> Result<(), StoreError> {
        let (refund, events) = (refund.clone(), event_rows(events)?);
        self.tx(move |tx| {
            put_refund(tx, &refund, Some(expected_version))?;
            if !delta.is_zero() {
                let n = tx
                    .run(
                        "UPDATE payment_money SET refundable = refundable + ?1, refunded = refunded + ?2
                         WHERE merchant_id = ?3 AND payment_id = ?4",
                        params![delta.refundable, delta.refunded, refund.merchant_id, refund.payment_id],
                    )
                    .map_err(backend)?;
                if n != 1 {
                    return Err(backend(format!("refund {} has no counters on its payment", refund.id)));
                }
            }
            insert_events(tx, &refund.merchant_id, &events)
        })
        .await
    }

    async fn get_refund(&self, merchant_id: &str, id: &str) -> Result<Option<Refund>, StoreError> {
        let (m, id) = (merchant_id.to_string(), id.to_string());
        self.lookup(move |c| one(c, "SELECT body FROM refunds WHERE id = ?1 AND merchant_id = ?2", [id, m])).await
    }

    async fn list_refunds(&self, merchant_id: &str, q: &RefundQuery) -> Result<Page<Refund>, StoreError> {
        let (m, q) = (merchant_id.to_string(), q.clone());
        self.with(move |c| {
            let mut sql = String::from("SELECT body FROM refunds WHERE merchant_id = ?1");
            let mut args: Vec<rusqlite::types::Value> = vec![m.into()];
            let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
                args.push(v);
                sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
            };
            if let Some(s) = &q.session_id {
                arg(&mut sql, " AND session_id = ?", s.clone().into());
            }
            if let Some(p) = &q.payment_id {
                arg(&mut sql, " AND payment_id = ?", p.clone().into());
            }
            if let Some(st) = q.status {
                arg(&mut sql, " AND status = ?", st.as_str().to_string().into());
            }
            if let Some(Cursor { created_at, id }) = &q.after {
                arg(&mut sql, " AND (created_at_ms < ?", ms(*created_at).into());
                arg(&mut sql, " OR (created_at_ms = ?", ms(*created_at).into());
                arg(&mut sql, " AND id < ?))", id.clone().into());
            }
            sql.push_str(&format!(" ORDER BY created_at_ms DESC, id DESC LIMIT {}", q.limit + 1));
            let items: Vec<Refund> = all(c, &sql, rusqlite::params_from_iter(args))?;
            Ok(Page::from_overfetched(items, q.limit))
        })
        .await
    }
}

#[async_trait]
impl paysession_app::reconcile::DueMoney for EmbeddedStore {
    async fn due_refunds(&self, merchant: Option<&str>, now: DateTime<Utc>, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        let merchant = merchant.map(str::to_string);
        self.with(move |c| {
            id_pairs(
                c,
                "SELECT merchant_id, id FROM refunds WHERE next_sync_ms <= ?1 AND (?3 IS NULL OR merchant_id = ?3)
                 ORDER BY next_sync_ms LIMIT ?2",
                params![ms(now), limit as i64, merchant],
            )
        })
        .await
    }

    async fn due_attempts(
        &self,
        merchant: Option<&str>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        self.due_triples(
            "SELECT merchant_id, session_id, attempt_id FROM attempt_syncs
             WHERE due_ms <= ?1 AND (?3 IS NULL OR merchant_id = ?3) ORDER BY due_ms LIMIT ?2",
            merchant,
            now,
            limit,
        )
        .await
    }

    async fn due_authorisations(
        &self,
        merchant: Option<&str>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        self.due_triples(
            "SELECT merchant_id, session_id, payment_id FROM authorisations
             WHERE capture_before_ms <= ?1 AND (?3 IS NULL OR merchant_id = ?3) ORDER BY capture_before_ms LIMIT ?2",
            merchant,
            now,
            limit,
        )
        .await
    }
}

/// The sandbox processor's ledger, in the data directory like everything else.
#[async_trait]
impl paysession_app::processor::SandboxLedger for EmbeddedStore {
    async fn record(&self, id: &str, entry: &str) -> Result<(), StoreError> {
        let (id, entry) = (id.to_string(), entry.to_string());
        self.tx(move |c| {
            c.run("INSERT INTO sandbox_ledger(id, entry) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET entry = ?2", [id, entry])
                .map(drop)
                .map_err(backend)
        })
        .await
    }

    async fn recall(&self, id: &str) -> Result<Option<String>, StoreError> {
        let id = id.to_string();
        self.lookup(move |c| c.row("SELECT entry FROM sandbox_ledger WHERE id = ?1", [id], |r| r.get(0)).optional().map_err(backend)).await
    }
}

#[async_trait]
impl paysession_app::ports::ProcessorEventLog for EmbeddedStore {
    async fn first_sight(&self, key: &str, expires_at: DateTime<Utc>) -> Result<bool, StoreError> {
        let (key, now, expires) = (key.to_string(), ms(Utc::now()), ms(expires_at));
        self.tx(move |c| {
            // An expired record is taken over, as DynamoDB's TTL would have deleted it.
            c.run(
                "INSERT INTO processor_events(key, expires_ms) VALUES (?1, ?2) \
                 ON CONFLICT(key) DO UPDATE SET expires_ms = ?2 WHERE processor_events.expires_ms <= ?3",
                params![key, expires, now],
            )
            .map(|changed| changed == 1)
            .map_err(backend)
        })
        .await
    }

    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.tx(move |c| c.run("DELETE FROM processor_events WHERE key = ?1", [key]).map(drop).map_err(backend)).await
    }
}

impl EmbeddedStore {
    /// `(merchant, session, payment)` rows of a due-list `sql` whose parameters are
    /// `?1` now, `?2` the limit and `?3` the merchant (any when NULL).
    async fn due_triples(
        &self,
        sql: &'static str,
        merchant: Option<&str>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let merchant = merchant.map(str::to_string);
        self.with(move |c| {
            let mut stmt = c.prepare_cached(sql).map_err(backend)?;
            let rows =
                stmt.query_map(params![ms(now), limit as i64, merchant], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }
}
