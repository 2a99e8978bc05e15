//! The embedded store: SQLite in one file under the data directory. It implements the same
//! ports as the DynamoDB adapter with the same guarantees — each write one transaction,
//! conditional on the version read — and survives restarts.

mod attempts;
mod cached;
mod checkpoint;
mod mandates;
mod refunds;
mod schema;
mod settings;
mod signing;
mod webhooks;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use paysession_app::idempotency::{Decision, Seen, decide};
use paysession_app::merchants::{ApiClient, Merchant};
use paysession_app::ports::{
    Cursor, Hold, IdempotencyBegin, IdempotencyCompletion, IdempotencyStore, MerchantStore, Page, SessionQuery, SessionStore,
    SettingsStore, StoreError, StoredResponse,
};
use paysession_domain::ExpirationMode;
use paysession_domain::payment::SavedPaymentMethod;
use paysession_domain::session::{EventRecord, PaymentSession};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::cached::Cached;

/// A handle to the database; cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct EmbeddedStore {
    writer: writer::Writer,
    readers: Arc<Readers>,
    /// Counts committed writes, so each stage of the local pipeline wakes at once.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    settings: Arc<settings::Settings>,
    _checkpointer: checkpoint::Checkpointer,
}

/// Connections that only read: reads of different requests run side by side, and never
/// wait for a group commit (WAL).
struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Readers {
    /// A free connection, looking from the next one in turn; when all are busy, the index
    /// of the one this caller should wait for.
    fn free(&self) -> Result<MutexGuard<'_, Connection>, usize> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.conns.len();
        (0..n).find_map(|i| self.conns[(start + i) % n].try_lock().ok()).ok_or(start % n)
    }
}

/// Reader connections: enough for the blocking pool to keep both cores busy with reads.
const READERS: usize = 4;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(backend)
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Backend(format!("corrupt record: {e}")))
}

impl EmbeddedStore {
    /// Opens (creating if needed) `dir/paysession.db`.
    pub fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| backend(format!("cannot create data dir {}: {e}", dir.display())))?;
        Self::open(&dir.join("paysession.db"))
    }

    pub fn open(file: &Path) -> Result<Self, StoreError> {
        let open = || Connection::open(file).map_err(|e| backend(format!("cannot open {}: {e}", file.display())));
        let conn = open()?;
        schema::prepare(&conn).map_err(backend)?;
        let conns = (0..READERS)
            .map(|_| {
                let reader = open()?;
                schema::prepare_reader(&reader).map_err(backend)?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<_, StoreError>>()?;
        let finish_checkpoint = Arc::new(std::sync::atomic::AtomicBool::new(false));
        Ok(EmbeddedStore {
            _checkpointer: checkpoint::Checkpointer::start(open()?, finish_checkpoint.clone()),
            writer: writer::Writer::start(conn, finish_checkpoint),
            readers: Arc::new(Readers { conns, next: AtomicUsize::new(0) }),
            changes: Arc::new(tokio::sync::watch::channel(0).0),
            settings: Arc::default(),
        })
    }

    /// Runs the read `f` on a reader connection, off the async executor.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard =
                readers.free().unwrap_or_else(|turn| readers.conns[turn].lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
            f(&mut guard)
        })
        .await
        .map_err(backend)?
    }

    /// A lookup by key: tens of microseconds of SQLite work on a cached page, less than the
    /// thread hop of [`with`](Self::with) costs, so it runs on the calling task when a reader
    /// connection is free (WAL readers do not wait for the writer), else as `with`.
    async fn lookup<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if let Ok(mut guard) = self.readers.free() {
            return f(&mut guard);
        }
        self.with(f).await
    }

    /// Runs `f` in a write transaction (grouped with concurrent writes, see `writer`):
    /// committed if it returns `Ok`, else rolled back; answered once durable.
    async fn tx<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer.write(f).await.inspect(|_| self.note_change())
    }

    fn note_change(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every committed write: a pipeline stage waits on `changed()`.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A small key-value area for process settings (signing key, test clock offset).
    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_string();
        self.lookup(move |c| c.row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(backend)).await
    }

    pub async fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.tx(move |c| {
            c.run("INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2", [key, value])
                .map(|_| ())
                .map_err(backend)
        })
        .await
    }

    /// Every stored row as text, for audits (e.g. "no card number anywhere in storage").
    pub async fn dump_all_text(&self) -> Result<String, StoreError> {
        self.with(|c| schema::dump(c).map_err(backend)).await
    }
}

/// The JSON body of at most one row.
fn one<T: serde::de::DeserializeOwned>(c: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Option<T>, StoreError> {
    let body: Option<String> = c.row(sql, params, |r| r.get(0)).optional().map_err(backend)?;
    body.map(|b| from_json(&b)).transpose()
}

/// The JSON bodies of every row of a fixed query, in its order; the statement stays
/// prepared (the local dispatcher lists merchants and endpoints on every commit it wakes for).
fn all<T: serde::de::DeserializeOwned>(c: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<T>, StoreError> {
    let mut stmt = c.prepare_cached(sql).map_err(backend)?;
    bodies(&mut stmt, params)
}

/// [`all`] for SQL assembled per call (filters, the limit, a status clause at the caller's
/// now): parsed each time, since caching such text would only crowd out the fixed statements.
fn all_assembled<T: serde::de::DeserializeOwned>(c: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<T>, StoreError> {
    bodies(&mut c.prepare(sql).map_err(backend)?, params)
}

fn bodies<T: serde::de::DeserializeOwned>(stmt: &mut rusqlite::Statement<'_>, params: impl rusqlite::Params) -> Result<Vec<T>, StoreError> {
    let rows = stmt.query_map(params, |r| r.get::<_, String>(0)).map_err(backend)?.collect::<Result<Vec<_>, _>>().map_err(backend)?;
    rows.iter().map(|b| from_json(b)).collect()
}

/// `(merchant_id, id)` rows: what the background workers (sweeper, dispatcher) pick up.
fn id_pairs(c: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = c.prepare_cached(sql).map_err(backend)?;
    let rows = stmt.query_map(params, |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

/// Events ready to insert: serialised by the caller's task, so the one writer thread only
/// writes (see `writer`). Only the indexed columns are kept beside the body: the record's
/// `data` is already in it.
struct EventRows(Vec<EventRow>);

struct EventRow {
    id: String,
    session_id: String,
    event_type: String,
    created_at_ms: i64,
    body: String,
}

fn event_rows(events: &[EventRecord]) -> Result<EventRows, StoreError> {
    let row = |ev: &EventRecord| {
        Ok(EventRow {
            id: ev.id.clone(),
            session_id: ev.session_id.clone(),
            event_type: ev.event_type.clone(),
            created_at_ms: ms(ev.created_at),
            body: to_json(ev)?,
        })
    };
    events.iter().map(row).collect::<Result<_, _>>().map(EventRows)
}

fn insert_events(tx: &Transaction<'_>, merchant_id: &str, events: &EventRows) -> Result<(), StoreError> {
    let mut insert = tx
        .prepare_cached("INSERT INTO events(id, merchant_id, session_id, type, created_at_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .map_err(backend)?;
    for ev in &events.0 {
        insert.execute(params![ev.id, merchant_id, ev.session_id, ev.event_type, ev.created_at_ms, ev.body]).map_err(backend)?;
    }
    Ok(())
}

fn complete_idempotency(tx: &Transaction<'_>, c: &IdempotencyCompletion) -> Result<(), StoreError> {
    let response = to_json(&c.response)?;
    let n = match &c.hold {
        Hold::Owned(owner) => tx.run(
            "UPDATE idempotency SET state = 'done', response = ?1, expires_at_ms = ?2
             WHERE merchant_id = ?3 AND key = ?4 AND state = 'in_flight' AND owner = ?5",
            params![response, ms(c.expires_at), c.merchant_id, c.key, owner],
        ),
        // A live record (done within retention, or a claim whose lock holds) has
        // `expires_at_ms` after `now`: `decide` would not let it be taken either.
        Hold::Fresh { fingerprint, owner, now } => tx.run(
            "INSERT INTO idempotency(merchant_id, key, fingerprint, state, owner, locked_until_ms, expires_at_ms, response)
             VALUES (?1, ?2, ?3, 'done', ?4, ?5, ?6, ?7)
             ON CONFLICT(merchant_id, key) DO UPDATE SET fingerprint = ?3, state = 'done', owner = ?4,
                 locked_until_ms = ?5, expires_at_ms = ?6, response = ?7
             WHERE idempotency.expires_at_ms <= ?5",
            params![c.merchant_id, c.key, fingerprint, owner, ms(*now), ms(c.expires_at), response],
        ),
    }
    .map_err(backend)?;
    if n == 1 { Ok(()) } else { Err(StoreError::IdempotencyLost) }
}

/// Replaces a session if its stored version is still `expected_version`.
fn replace_session(tx: &Transaction<'_>, row: &SessionRow, expected_version: u64) -> Result<(), StoreError> {
    let s = &row.session;
    let n = tx
        .prepare_cached(
            "UPDATE sessions SET status = ?1, expires_at_ms = ?2, strict = ?3, version = ?4, body = ?5
             WHERE id = ?6 AND merchant_id = ?7 AND version = ?8",
        )
        .and_then(|mut update| {
            update.execute(params![
                s.status.as_str(),
                row.expires,
                row.strict,
                s.version as i64,
                row.body,
                s.id,
                s.merchant_id,
                expected_version as i64
            ])
        })
        .map_err(backend)?;
    if n != 1 {
        return Err(StoreError::VersionConflict);
    }
    track_authorisations(tx, s)?;
    track_attempt_sync(tx, s)
}

/// Keeps `attempt_syncs` (what the local sweeper asks the processor about) in step with the
/// session's pending attempts; a session without attempts has none to keep.
fn track_attempt_sync(tx: &Transaction<'_>, s: &PaymentSession) -> Result<(), StoreError> {
    match s.attempt_sync_due() {
        Some((a, due)) => tx.run(
            "INSERT INTO attempt_syncs(session_id, merchant_id, attempt_id, due_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(session_id) DO UPDATE SET attempt_id = ?3, due_ms = ?4",
            params![s.id, s.merchant_id, a.id, ms(due)],
        ),
        None if !s.payments.is_empty() => tx.run("DELETE FROM attempt_syncs WHERE session_id = ?1", [&s.id]),
        None => return Ok(()),
    }
    .map(drop)
    .map_err(backend)
}

/// Keeps `authorisations` (what the local sweeper voids at `capture_before`) in step with
/// the session's payments; a session that never captures manually has none to keep.
fn track_authorisations(tx: &Transaction<'_>, s: &PaymentSession) -> Result<(), StoreError> {
    use paysession_domain::payment::{AttemptStatus, CaptureMethod};
    if s.spec.capture_method == CaptureMethod::Automatic {
        return Ok(());
    }
    tx.run("DELETE FROM authorisations WHERE session_id = ?1", [&s.id]).map_err(backend)?;
    for a in s.payments.iter().filter(|a| a.status == AttemptStatus::RequiresCapture) {
        if let Some(before) = a.capture_before {
            tx.run(
                "INSERT INTO authorisations(payment_id, merchant_id, session_id, capture_before_ms) VALUES (?1, ?2, ?3, ?4)",
                params![a.id, s.merchant_id, s.id, ms(before)],
            )
            .map_err(backend)?;
        }
    }
    Ok(())
}

/// Stores a saved method; the same id again replaces its body.
fn upsert_method(tx: &Transaction<'_>, m: &SavedPaymentMethod) -> Result<(), StoreError> {
    tx.run(
        "INSERT INTO payment_methods(id, merchant_id, customer_id, created_at_ms, body) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(id) DO UPDATE SET body = ?5",
        params![m.id, m.merchant_id, m.customer_id, ms(m.created_at), to_json(m)?],
    )
    .map(|_| ())
    .map_err(backend)
}

/// A session ready to write, serialised by the caller's task (see `EventRows`).
struct SessionRow {
    session: PaymentSession,
    body: String,
    expires: i64,
    strict: bool,
}

fn session_row(s: &PaymentSession) -> Result<SessionRow, StoreError> {
    Ok(SessionRow {
        session: s.clone(),
        body: to_json(s)?,
        expires: ms(s.spec.expires_at),
        strict: s.spec.expiration_mode == ExpirationMode::Strict,
    })
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn create_session(
        &self,
        session: &PaymentSession,
        events: &[EventRecord],
        idempotency: Option<&IdempotencyCompletion>,
    ) -> Result<(), StoreError> {
        let (row, events, idem) = (session_row(session)?, event_rows(events)?, idempotency.cloned());
        self.tx(move |tx| {
            // First: a request whose key is taken reports that, not the guard its twin set.
            if let Some(c) = &idem {
                complete_idempotency(tx, c)?;
            }
            let s = &row.session;
            let (body, expires, strict, created) = (&row.body, row.expires, row.strict, ms(s.created_at));
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO sessions(id, merchant_id, customer_id, reference, status, expires_at_ms, strict,
                         created_at_ms, version, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(backend)?;
            let inserted = insert.execute(params![
                s.id,
                s.merchant_id,
                s.spec.customer_id,
                s.spec.reference,
                s.status.as_str(),
                expires,
                strict,
                created,
                s.version as i64,
                body
            ]);
            match inserted {
                // An id is its creation millisecond and its reference's key (`session_id`): a
                // taken id is the same reference in the same millisecond; the reference's own
                // index refuses it at any other time.
                Err(rusqlite::Error::SqliteFailure(e, Some(msg)))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation && (msg.contains("reference") || msg.contains("sessions.id")) =>
                {
                    return Err(StoreError::DuplicateReference);
                }
                Err(e) => return Err(backend(e)),
                Ok(_) => {}
            }
            if let Some(number) = s.virtual_account_number() {
                let taken = tx
                    .prepare_cached("INSERT INTO aliases(kind, value, merchant_id, session_id) VALUES ('va', ?1, ?2, ?3)")
                    .and_then(|mut alias| alias.execute(params![number, s.merchant_id, s.id]));
                match taken {
                    Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                        return Err(StoreError::VirtualAccountTaken(number.to_string()));
                    }
                    other => other.map_err(backend)?,
                };
            }
            insert_events(tx, &s.merchant_id, &events)
        })
        .await
    }

    async fn find_by_virtual_account(&self, number: &str) -> Result<Option<PaymentSession>, StoreError> {
        let number = number.to_string();
        // (kind, value) is the table's primary key, so a number names at most one session.
        self.lookup(move |c| {
            one(
                c,
                "SELECT s.body FROM aliases a JOIN sessions s ON s.id = a.session_id AND s.merchant_id = a.merchant_id
                    WHERE a.kind = 'va' AND a.value = ?1",
                [number],
            )
        })
        .await
    }

    async fn save_payment_method(&self, method: &SavedPaymentMethod) -> Result<(), StoreError> {
        let m = method.clone();
        self.tx(move |tx| upsert_method(tx, &m)).await
    }

    async fn list_payment_methods(&self, merchant_id: &str, customer_id: &str) -> Result<Vec<SavedPaymentMethod>, StoreError> {
        let (m, c) = (merchant_id.to_string(), customer_id.to_string());
        self.with(move |conn| {
            all(conn, "SELECT body FROM payment_methods WHERE merchant_id = ?1 AND customer_id = ?2 ORDER BY created_at_ms, id", [m, c])
        })
        .await
    }

    async fn update_session(
        &self,
        session: &PaymentSession,
        expected_version: u64,
        events: &[EventRecord],
        idempotency: Option<&IdempotencyCompletion>,
    ) -> Result<(), StoreError> {
        let (row, events, idem) = (session_row(session)?, event_rows(events)?, idempotency.cloned());
        self.tx(move |tx| {
            if let Some(c) = &idem {
                complete_idempotency(tx, c)?;
            }
            replace_session(tx, &row, expected_version)?;
            insert_events(tx, &row.session.merchant_id, &events)
        })
        .await
    }

    async fn get_session(&self, merchant_id: &str, id: &str) -> Result<Option<PaymentSession>, StoreError> {
        let (m, id) = (merchant_id.to_string(), id.to_string());
        self.lookup(move |c| one(c, "SELECT body FROM sessions WHERE id = ?1 AND merchant_id = ?2", [id, m])).await
    }

    async fn list_sessions(&self, merchant_id: &str, q: &SessionQuery) -> Result<Page<PaymentSession>, StoreError> {
        let (m, q) = (merchant_id.to_string(), q.clone());
        self.with(move |c| {
            let mut sql = String::from("SELECT body FROM sessions WHERE merchant_id = ?1");
            let mut args: Vec<rusqlite::types::Value> = vec![m.into()];
            let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
                args.push(v);
                sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
            };
            if let Some(cid) = &q.customer_id {
                arg(&mut sql, " AND customer_id = ?", cid.clone().into());
            }
            if let Some(r) = &q.reference {
                arg(&mut sql, " AND reference = ?", r.clone().into());
            }
            if let Some(t) = q.created_after {
                arg(&mut sql, " AND created_at_ms > ?", ms(t).into());
            }
            if let Some(status) = q.status {
                arg(&mut sql, &format!(" AND {} = ?", schema::effective_status_sql(ms(q.now))), status.as_str().to_string().into());
            }
            if let Some(Cursor { created_at, id }) = &q.after {
                arg(&mut sql, " AND (created_at_ms < ?", ms(*created_at).into());
                arg(&mut sql, " OR (created_at_ms = ?", ms(*created_at).into());
                arg(&mut sql, " AND id < ?))", id.clone().into());
            }
            sql.push_str(&format!(" ORDER BY created_at_ms DESC, id DESC LIMIT {}", q.limit + 1));
            let items: Vec<PaymentSession> = all_assembled(c, &sql, rusqlite::params_from_iter(args))?;
            Ok(Page::from_overfetched(items, q.limit))
        })
        .await
    }

    async fn session_events(&self, merchant_id: &str, session_id: &str) -> Result<Vec<EventRecord>, StoreError> {
        let (m, id) = (merchant_id.to_string(), session_id.to_string());
        self.with(move |c| all(c, "SELECT body FROM events WHERE merchant_id = ?1 AND session_id = ?2 ORDER BY seq", [m, id])).await
    }
}

#[async_trait]
impl IdempotencyStore for EmbeddedStore {
    async fn begin(
        &self,
        merchant_id: &str,
        key: &str,
        fingerprint: &str,
        owner: &str,
        now: DateTime<Utc>,
        locked_until: DateTime<Utc>,
    ) -> Result<IdempotencyBegin, StoreError> {
        let (m, k, f, o) = (merchant_id.to_string(), key.to_string(), fingerprint.to_string(), owner.to_string());
        self.tx(move |tx| {
            let existing: Option<(String, String, i64, i64, Option<String>)> = tx
                .row(
                    "SELECT fingerprint, state, locked_until_ms, expires_at_ms, response FROM idempotency
                     WHERE merchant_id = ?1 AND key = ?2",
                    [&m, &k],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()
                .map_err(backend)?;
            let seen = existing.as_ref().map(|(fp, state, locked, expires, _)| Seen {
                fingerprint: fp,
                done: state == "done",
                locked_until_ms: *locked,
                expires_at_ms: *expires,
            });
            match decide(seen, &f, now) {
                Decision::Replay => {
                    let resp = existing.and_then(|e| e.4).ok_or_else(|| backend("done record without response"))?;
                    return Ok(IdempotencyBegin::Replay(from_json::<StoredResponse>(&resp)?));
                }
                Decision::InFlight => return Ok(IdempotencyBegin::InFlight),
                Decision::Mismatch => return Ok(IdempotencyBegin::Mismatch),
                Decision::Claim => {}
            }
            tx.run(
                "INSERT INTO idempotency(merchant_id, key, fingerprint, state, owner, locked_until_ms, expires_at_ms, response)
                 VALUES (?1, ?2, ?3, 'in_flight', ?4, ?5, ?5, NULL)
                 ON CONFLICT(merchant_id, key) DO UPDATE SET fingerprint = ?3, state = 'in_flight', owner = ?4,
                     locked_until_ms = ?5, expires_at_ms = ?5, response = NULL",
                params![m, k, f, o, ms(locked_until)],
            )
            .map_err(backend)?;
            Ok(IdempotencyBegin::Started)
        })
        .await
    }

    async fn complete(&self, completion: &IdempotencyCompletion) -> Result<(), StoreError> {
        let c = completion.clone();
        self.tx(move |tx| complete_idempotency(tx, &c)).await
    }

    async fn release(&self, merchant_id: &str, key: &str, owner: &str) -> Result<(), StoreError> {
        let (m, k, o) = (merchant_id.to_string(), key.to_string(), owner.to_string());
        self.tx(move |tx| {
            tx.run("DELETE FROM idempotency WHERE merchant_id = ?1 AND key = ?2 AND state = 'in_flight' AND owner = ?3", [m, k, o])
                .map(|_| ())
                .map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl MerchantStore for EmbeddedStore {
    async fn create_merchant(&self, merchant: &Merchant, client: &ApiClient) -> Result<(), StoreError> {
        let (m, cl) = (merchant.clone(), client.clone());
        self.tx(move |tx| {
            let (m_body, c_body) = (to_json(&m)?, to_json(&cl)?);
            let ins_m =
                tx.run("INSERT INTO merchants(id, created_at_ms, body) VALUES (?1, ?2, ?3)", params![m.id, ms(m.created_at), m_body]);
            let ins_c = ins_m.and_then(|_| {
                tx.run(
                    "INSERT INTO clients(client_id, merchant_id, body) VALUES (?1, ?2, ?3)",
                    params![cl.client_id, cl.merchant_id, c_body],
                )
            });
            match ins_c {
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    Err(StoreError::AlreadyExists)
                }
                Err(e) => Err(backend(e)),
                Ok(_) => Ok(()),
            }
        })
        .await
    }

    async fn get_merchant(&self, merchant_id: &str) -> Result<Option<Merchant>, StoreError> {
        let id = merchant_id.to_string();
        self.lookup(move |c| one(c, "SELECT body FROM merchants WHERE id = ?1", [id])).await
    }

    async fn list_merchants(&self) -> Result<Vec<Merchant>, StoreError> {
        self.with(|c| all(c, "SELECT body FROM merchants ORDER BY created_at_ms, id", [])).await
    }

    async fn get_client(&self, client_id: &str) -> Result<Option<ApiClient>, StoreError> {
        let id = client_id.to_string();
        self.lookup(move |c| one(c, "SELECT body FROM clients WHERE client_id = ?1", [id])).await
    }

    async fn list_clients(&self, merchant_id: &str) -> Result<Vec<ApiClient>, StoreError> {
        let id = merchant_id.to_string();
        self.with(move |c| all(c, "SELECT body FROM clients WHERE merchant_id = ?1 ORDER BY client_id", [id])).await
    }

    async fn put_client(&self, client: &ApiClient) -> Result<(), StoreError> {
        let cl = client.clone();
        self.tx(move |tx| {
            tx.run(
                "INSERT INTO clients(client_id, merchant_id, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT(client_id) DO UPDATE SET body = ?3",
                params![cl.client_id, cl.merchant_id, to_json(&cl)?],
            )
            .map(|_| ())
            .map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl SettingsStore for EmbeddedStore {
    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let generation = match self.settings.get(key) {
            settings::Held::Value(v) => return Ok(v),
            settings::Held::Miss(generation) => generation,
        };
        let value = self.meta_get(key).await?;
        self.settings.fill(key, &value, generation);
        Ok(value)
    }
    async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let written = self.meta_set(key, value).await;
        self.settings.forget(key);
        written?;
        // The test clock lives here: moving it can make retries due.
        self.note_change();
        Ok(())
    }

    async fn add_to_setting(&self, key: &str, start: i64, delta: i64, max: i64) -> Result<Option<i64>, StoreError> {
        let k = key.to_string();
        // Read and write in one transaction of the single writer: concurrent additions
        // queue behind each other, none is lost.
        let added = self
            .tx(move |c| {
                let current: Option<String> =
                    c.row("SELECT value FROM meta WHERE key = ?1", [&k], |r| r.get(0)).optional().map_err(backend)?;
                let current = match current {
                    Some(v) => v.parse::<i64>().map_err(|_| StoreError::Backend(format!("setting {k} is not an integer: {v:?}")))?,
                    None => start,
                };
                let Some(next) = current.checked_add(delta).filter(|n| *n <= max) else { return Ok(None) };
                c.run(
                    "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
                    params![k, next.to_string()],
                )
                .map_err(backend)?;
                Ok(Some(next))
            })
            .await;
        self.settings.forget(key);
        added
    }
}

/// Through the partial index `sessions_due` (see `schema::expires_when_due_sql`).
static DUE_FOR_EXPIRY_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT merchant_id, id FROM sessions WHERE expires_at_ms <= ?1 AND (?3 IS NULL OR merchant_id = ?3) AND {}
         ORDER BY expires_at_ms LIMIT ?2",
        schema::expires_when_due_sql()
    )
});

#[async_trait]
impl paysession_app::expiry::ExpirySweep for EmbeddedStore {
    async fn due_for_expiry(&self, merchant: Option<&str>, now: DateTime<Utc>, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        let merchant = merchant.map(str::to_string);
        self.with(move |c| id_pairs(c, &DUE_FOR_EXPIRY_SQL, params![ms(now), limit as i64, merchant])).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_expiry_sweep_reads_only_sessions_that_can_expire() {
        crate::schema::assert_searches(&super::DUE_FOR_EXPIRY_SQL, "sessions_due");
    }

    /// `.cargo/config.toml` builds SQLite without memory statistics (a global mutex on
    /// every allocation).
    #[test]
    fn sqlite_keeps_no_global_memory_statistics() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("SELECT compile_options FROM pragma_compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "SQLite was built with memory statistics (is LIBSQLITE3_FLAGS set?): {options:?}"
        );
    }
}
