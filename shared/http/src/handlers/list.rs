//! The list convention shared by every collection: `limit` (1–100, default 20),
//! `starting_after` (an opaque `next_cursor`, or the id of the last item seen), and the
//! `{"object": "list", …}` envelope.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use http::StatusCode;
use paysession_app::ports::Cursor;
use paysession_domain::errors::{Errors, FieldCode};
use serde_json::{json, Value};

use crate::reply::Reply;

pub fn encode_cursor(c: &Cursor) -> String {
    B64.encode(serde_json::to_vec(c).expect("cursor serialises"))
}

pub fn decode_cursor(s: &str) -> Option<Cursor> {
    B64.decode(s).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// Reads `limit`; records an error when it is not 1–100.
pub fn limit(v: &str, e: &mut Errors) -> usize {
    match v.parse::<usize>() {
        Ok(n) if (1..=100).contains(&n) => n,
        _ => {
            e.add("limit", FieldCode::OutOfRange, "must be an integer from 1 to 100");
            20
        }
    }
}

/// The list envelope; `last` gives the position of the last item for `next_cursor`.
pub fn page<T>(items: &[T], has_more: bool, last: impl Fn(&T) -> (DateTime<Utc>, String), show: impl Fn(&T) -> Value) -> Reply {
    let next_cursor = has_more
        .then(|| items.last().map(|i| {
            let (created_at, id) = last(i);
            encode_cursor(&Cursor { created_at, id })
        }))
        .flatten();
    let data: Vec<Value> = items.iter().map(show).collect();
    Reply::json(StatusCode::OK, &json!({"object": "list", "data": data, "has_more": has_more, "next_cursor": next_cursor}))
}
