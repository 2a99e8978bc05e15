//! The list convention shared by every collection, parsed in one place: `limit` (1–100,
//! default 20), `starting_after` (an opaque `next_cursor`, or the id of the last item
//! seen), the collection's own filters, and the `{"object": "list", …}` envelope.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use http::StatusCode;
use paysession_app::ports::{Cursor, StoreError};
use paysession_domain::errors::{Errors, FieldCode};
use paysession_domain::fields::FieldResult;

use crate::problem::ApiError;
use crate::reply::Reply;
use crate::request::Call;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

pub fn encode_cursor(c: &Cursor) -> String {
    B64.encode(serde_json::to_vec(c).expect("cursor serialises"))
}

pub fn decode_cursor(s: &str) -> Option<Cursor> {
    B64.decode(s).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// The query of a list request. Problems with values are collected in the caller's
/// `Errors` so a request learns every one at once.
pub struct ListParams {
    pub limit: usize,
    pub starting_after: Option<String>,
    /// The collection's own filters, as given (names among those the caller allowed).
    pub filters: Vec<(String, String)>,
}

impl ListParams {
    /// Reads `limit`, `starting_after` and the named `filters`; unknown or repeated names
    /// are errors.
    pub fn parse(call: &Call<'_>, filters: &[&'static str], e: &mut Errors) -> Result<ListParams, ApiError> {
        let mut known = vec!["limit", "starting_after"];
        known.extend_from_slice(filters);
        let mut out = ListParams { limit: DEFAULT_LIMIT, starting_after: None, filters: Vec::new() };
        for (k, v) in call.query(&known, e)? {
            match k.as_str() {
                "limit" => match v.parse::<usize>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => out.limit = n,
                    _ => e.add("limit", FieldCode::OutOfRange, format!("must be an integer from 1 to {MAX_LIMIT}")),
                },
                "starting_after" => out.starting_after = Some(v),
                name if filters.contains(&name) => out.filters.push((k, v)),
                _ => {} // unknown: already recorded by query()
            }
        }
        Ok(out)
    }

    /// The position to continue after: a `next_cursor`, or (when `id_prefix` is given)
    /// one of the caller's item ids, found through `find`. `what` completes the error text.
    pub async fn after(
        &self,
        id_prefix: Option<&str>,
        find: impl AsyncFnOnce(&str) -> Result<Option<Cursor>, StoreError>,
        what: &str,
        e: &mut Errors,
    ) -> Result<Option<Cursor>, ApiError> {
        let Some(s) = &self.starting_after else { return Ok(None) };
        let found = match id_prefix {
            Some(prefix) if s.starts_with(prefix) => find(s).await?,
            _ => decode_cursor(s),
        };
        if found.is_none() {
            e.add("starting_after", FieldCode::InvalidValue, format!("must be a next_cursor from a previous page{what}"));
        }
        Ok(found)
    }
}

/// A query or path value, checked by the rule of the body field it names (so a read
/// accepts exactly what a create could have stored); problems go to `e`.
pub fn valid(e: &mut Errors, field: &str, value: &str, rule: impl Fn(&str) -> FieldResult<String>) -> Option<String> {
    match rule(value) {
        Ok(v) => Some(v),
        Err((code, message)) => {
            e.add(field, code, message);
            None
        }
    }
}

/// Ends parsing: every collected problem as one 422.
pub fn checked(e: Errors) -> Result<(), ApiError> {
    if e.is_empty() { Ok(()) } else { Err(ApiError::Validation(e.into_vec())) }
}

/// A request that takes no query parameters at all.
pub fn no_query(call: &Call<'_>) -> Result<(), ApiError> {
    let mut e = Errors::new();
    call.query(&[], &mut e)?;
    checked(e)
}

/// The list envelope; `last` gives the position of the last item for `next_cursor`.
/// The `{"object": "list", …}` envelope, serialised straight from its items' views.
#[derive(serde::Serialize)]
pub struct ListPage<S: serde::Serialize> {
    object: &'static str,
    data: Vec<S>,
    has_more: bool,
    next_cursor: Option<String>,
}

impl<S: serde::Serialize> ListPage<S> {
    /// A whole collection in one page.
    pub fn whole(data: Vec<S>) -> ListPage<S> {
        ListPage { object: "list", data, has_more: false, next_cursor: None }
    }
}

pub fn page<'a, T, S: serde::Serialize>(
    items: &'a [T],
    has_more: bool,
    last: impl Fn(&T) -> (DateTime<Utc>, String),
    show: impl Fn(&'a T) -> S,
) -> Reply {
    let next_cursor = has_more
        .then(|| {
            items.last().map(|i| {
                let (created_at, id) = last(i);
                encode_cursor(&Cursor { created_at, id })
            })
        })
        .flatten();
    let data: Vec<S> = items.iter().map(show).collect();
    Reply::json(StatusCode::OK, &ListPage { object: "list", data, has_more, next_cursor })
}

/// A page of a small collection read whole, oldest first (a merchant's webhook endpoints,
/// its signing keys): the items after the cursor, at most `limit`.
pub fn page_after<T, S: serde::Serialize>(
    items: Vec<T>,
    after: Option<&Cursor>,
    limit: usize,
    position: impl Fn(&T) -> (DateTime<Utc>, &str),
    show: impl Fn(&T) -> S,
) -> Reply {
    let rest: Vec<T> = items.into_iter().filter(|i| after.is_none_or(|c| position(i) > (c.created_at, c.id.as_str()))).collect();
    let has_more = rest.len() > limit;
    page(&rest[..rest.len().min(limit)], has_more, |i| (position(i).0, position(i).1.to_string()), show)
}
