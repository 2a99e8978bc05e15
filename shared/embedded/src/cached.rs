//! Statement-cached twins of rusqlite's `Connection::execute` and `query_row`, which parse
//! their SQL on every call: under load, parsing cost more than the lookups themselves
//! (perf of a local `GET /v1/payment_sessions/{id}`: 12 % of the server's CPU in
//! `sqlite3Prepare`, for two one-row reads by primary key).

use rusqlite::{Connection, Params, Row};

/// Distinct statements a connection keeps prepared: every statement of the store fits, so
/// none is evicted and parsed again (rusqlite keeps 16 by default).
pub const STATEMENTS: usize = 256;

pub trait Cached {
    fn run<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P: Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn run<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
    fn row<T, P: Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}
