//! Table definitions. Sessions keep their JSON body plus the columns the access patterns
//! filter and sort on, mirroring the DynamoDB key design.

use rusqlite::Connection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS merchants (
    id TEXT PRIMARY KEY,
    created_at_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    reference TEXT NOT NULL,
    status TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    strict INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS sessions_reference ON sessions(merchant_id, customer_id, reference);
CREATE INDEX IF NOT EXISTS sessions_newest ON sessions(merchant_id, created_at_ms DESC, id DESC);
-- A hosted-page link carries its session's locator and is checked against the hash in the
-- body (paysession_app::sessions::find_by_page_token), so no index of token hashes: that
-- one took a random leaf page per create and served no read. Databases made before keep
-- the nullable column page_token_hash, unused.
DROP INDEX IF EXISTS sessions_page;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    merchant_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    type TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_session ON events(merchant_id, session_id, seq);
CREATE INDEX IF NOT EXISTS events_newest ON events(merchant_id, created_at_ms DESC, id DESC);
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_endpoints_merchant ON webhook_endpoints(merchant_id, created_at_ms, id);
-- The local delivery queue: due_at_ms is when a pending delivery may next be attempted
-- (NULL once it is finished), so the dispatcher polls one index.
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    due_at_ms INTEGER,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_endpoint ON deliveries(merchant_id, endpoint_id, created_at_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(due_at_ms) WHERE due_at_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS idempotency (
    merchant_id TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT NOT NULL,
    locked_until_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    response TEXT,
    PRIMARY KEY (merchant_id, key)
);
CREATE TABLE IF NOT EXISTS aliases (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE TABLE IF NOT EXISTS payment_methods (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS payment_methods_customer ON payment_methods(merchant_id, customer_id, created_at_ms);
CREATE TABLE IF NOT EXISTS mandates (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    -- The pending occurrence (or retry) of an active scheduled mandate; NULL otherwise.
    next_charge_at_ms INTEGER,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mandates_due ON mandates(next_charge_at_ms) WHERE next_charge_at_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS mandates_newest ON mandates(merchant_id, created_at_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS mandates_customer ON mandates(merchant_id, customer_id, created_at_ms DESC, id DESC);
CREATE TABLE IF NOT EXISTS signing_profiles (
    merchant_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nonces (
    merchant_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    until_ms INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, nonce)
);
CREATE INDEX IF NOT EXISTS nonces_until ON nonces(until_ms);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Failed attempts per window (paysession_app::limiter): per source and subject, and the
-- source's total under subject ''.
CREATE TABLE IF NOT EXISTS attempts (
    source TEXT NOT NULL,
    window INTEGER NOT NULL,
    subject TEXT NOT NULL,
    n INTEGER NOT NULL,
    until_ms INTEGER NOT NULL,
    PRIMARY KEY (source, window, subject)
);
CREATE INDEX IF NOT EXISTS attempts_until ON attempts(until_ms);
-- The refund counters of a payment that has a refund (paysession_domain::refund).
CREATE TABLE IF NOT EXISTS payment_money (
    merchant_id TEXT NOT NULL,
    payment_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    refundable INTEGER NOT NULL,
    refunded INTEGER NOT NULL,
    refund_count INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, payment_id)
);
CREATE INDEX IF NOT EXISTS payment_money_session ON payment_money(merchant_id, session_id);
CREATE TABLE IF NOT EXISTS refunds (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    payment_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    -- When reconciliation next asks the processor; NULL once nothing is owed.
    next_sync_ms INTEGER,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS refunds_newest ON refunds(merchant_id, created_at_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS refunds_session ON refunds(merchant_id, session_id, created_at_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS refunds_due ON refunds(next_sync_ms) WHERE next_sync_ms IS NOT NULL;
-- Authorisations waiting for capture, by when they are voided (capture_before).
CREATE TABLE IF NOT EXISTS authorisations (
    payment_id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    capture_before_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS authorisations_session ON authorisations(session_id);
CREATE INDEX IF NOT EXISTS authorisations_due ON authorisations(capture_before_ms);
-- Sessions with an attempt whose outcome is owed, by when reconciliation asks (the earliest).
CREATE TABLE IF NOT EXISTS attempt_syncs (
    session_id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    attempt_id TEXT NOT NULL,
    due_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS attempt_syncs_due ON attempt_syncs(due_ms);
-- The sandbox processor's own record of what it answered, by our id.
CREATE TABLE IF NOT EXISTS sandbox_ledger (
    id TEXT PRIMARY KEY,
    entry TEXT NOT NULL
);
-- Processors' webhook events applied, by their event id (deduplication).
CREATE TABLE IF NOT EXISTS processor_events (
    key TEXT PRIMARY KEY,
    expires_ms INTEGER NOT NULL
);
";

/// The writer's own WAL checkpoint threshold (pages of 4 KiB): a backstop, reached only if
/// the checkpoint thread (`checkpoint`) falls behind. SQLite's default is 1,000.
pub const WRITER_AUTOCHECKPOINT_PAGES: u32 = 16_000;

pub fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    // WAL lets the admin CLI read while the server writes; FULL sync makes a committed
    // payment state survive a power cut.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)?;
    // Each write of a group runs in a savepoint, whose undo pages SQLite otherwise writes to
    // a temporary file: ~19 % of the writer thread under creates, in pwrite.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(crate::cached::STATEMENTS);
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(&format!("CREATE INDEX IF NOT EXISTS sessions_due ON sessions(expires_at_ms) WHERE {}", expires_when_due_sql()))
}

/// A connection that only reads: it must not write (the writer thread owns writes), and
/// waits for a writer's lock like the writer does.
pub fn prepare_reader(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "query_only", "ON")?;
    conn.set_prepared_statement_cache_capacity(crate::cached::STATEMENTS);
    conn.busy_timeout(std::time::Duration::from_secs(10))
}

/// SQL true for a row that reads expired once past `expires_at_ms`: generated from
/// `paysession_domain::lifecycle::expired_when_past_expiry`, so the rule is written once.
/// It is also the WHERE of the partial index `sessions_due` (only sessions that can still
/// expire), which the sweeper's query uses by repeating it word for word: without it each
/// sweep, once a second, read every session (8 % of the local server's CPU under creates,
/// growing with the table). Should the rule change, an existing database keeps its old
/// index and the sweep falls back to that scan: slower, not wrong.
pub fn expires_when_due_sql() -> String {
    use paysession_domain::SessionStatus;
    use paysession_domain::lifecycle::{ExpirationMode, expired_when_past_expiry};
    let list = |pick: &dyn Fn(SessionStatus) -> bool| {
        let names: Vec<String> = SessionStatus::ALL.into_iter().filter(|s| pick(*s)).map(|s| format!("'{}'", s.as_str())).collect();
        if names.is_empty() { "''".to_string() } else { names.join(", ") }
    };
    let always = list(&|s| expired_when_past_expiry(s, ExpirationMode::Loose));
    let strict_only = list(&|s| expired_when_past_expiry(s, ExpirationMode::Strict) && !expired_when_past_expiry(s, ExpirationMode::Loose));
    format!("(status IN ({always}) OR (strict = 1 AND status IN ({strict_only})))")
}

/// SQL for a session's status as seen at `now_ms` (expired-on-read).
pub fn effective_status_sql(now_ms: i64) -> String {
    format!("(CASE WHEN expires_at_ms <= {now_ms} AND {} THEN 'expired' ELSE status END)", expires_when_due_sql())
}

pub fn dump(conn: &Connection) -> rusqlite::Result<String> {
    let mut out = String::new();
    for table in [
        "merchants",
        "clients",
        "sessions",
        "events",
        "idempotency",
        "aliases",
        "payment_methods",
        "mandates",
        "meta",
        "webhook_endpoints",
        "deliveries",
        "signing_profiles",
        "nonces",
    ] {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}"))?;
        let cols = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            for i in 0..cols {
                let v: rusqlite::types::Value = row.get(i)?;
                out.push_str(&format!("{v:?}\t"));
            }
            out.push('\n');
        }
    }
    Ok(out)
}

/// SQLite's plan for `sql` (parameters NULL), one line per step.
#[cfg(test)]
fn query_plan(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let unbound = vec![rusqlite::types::Null; stmt.parameter_count()];
    stmt.query_map(rusqlite::params_from_iter(unbound), |r| r.get::<_, String>(3)).unwrap().collect::<Result<_, _>>().unwrap()
}

/// For tests that pin a hot query to its index: on a fresh schema, `sql` searches `index`
/// and scans no table.
#[cfg(test)]
pub fn assert_searches(sql: &str, index: &str) {
    let conn = Connection::open_in_memory().unwrap();
    prepare(&conn).unwrap();
    let plan = query_plan(&conn, sql);
    assert!(plan.iter().any(|step| step.contains(&format!("INDEX {index}"))), "{sql}\nplan: {plan:?}");
    assert!(!plan.iter().any(|step| step.starts_with("SCAN")), "{sql}\nplan: {plan:?}");
}
