//! The merchant's event log: list (newest first, by type and time), get, and redeliver.

use http::StatusCode;
use paysession_app::auth::Principal;
use paysession_app::ports::{Cursor, EventQuery};
use paysession_app::webhooks;
use paysession_app::Deps;
use paysession_domain::errors::{Errors, FieldCode};
use paysession_domain::fields;
use paysession_domain::webhook::EVENT_TYPES;
use serde_json::{json, Value};

use crate::handlers::list::{decode_cursor, limit, page};
use crate::idempotency::Claim;
use crate::problem::ApiError;
use crate::reply::{idempotent, Reply};
use crate::request::Call;

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no event with id {id}"))
}

pub async fn list(deps: &Deps, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut e = Errors::new();
    let params = call.query(&["type", "created_after", "limit", "starting_after"], &mut e)?;
    let mut q = EventQuery { limit: 20, ..Default::default() };
    let mut starting_after = None;
    for (k, v) in &params {
        match k.as_str() {
            "type" if EVENT_TYPES.contains(&v.as_str()) => q.event_type = Some(v.clone()),
            "type" => e.add("type", FieldCode::InvalidValue, format!("must be one of {}", EVENT_TYPES.join(", "))),
            "created_after" => match fields::timestamp(v) {
                Ok(t) => q.created_after = Some(t),
                Err((code, msg)) => e.add("created_after", code, msg),
            },
            "limit" => q.limit = limit(v, &mut e),
            "starting_after" => starting_after = Some(v.clone()),
            _ => {}
        }
    }
    if let Some(s) = starting_after {
        q.after = if s.starts_with("evt_") {
            deps.webhooks.get_event(&p.merchant_id, &s).await?.map(|ev| Cursor { created_at: ev.created_at, id: ev.id })
        } else {
            decode_cursor(&s)
        };
        if q.after.is_none() {
            e.add("starting_after", FieldCode::InvalidValue, "must be a next_cursor from a previous page or one of your event ids");
        }
    }
    if !e.is_empty() {
        return Err(ApiError::Validation(e.into_vec()));
    }
    let found = deps.webhooks.list_events(&p.merchant_id, &q).await?;
    Ok(page(&found.items, found.has_more, |ev| (ev.created_at, ev.id.clone()), |ev| ev.to_api()))
}

pub async fn get(deps: &Deps, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut e = Errors::new();
    call.query(&[], &mut e)?;
    if !e.is_empty() {
        return Err(ApiError::Validation(e.into_vec()));
    }
    let id = call.param("id");
    let event = deps.webhooks.get_event(&p.merchant_id, id).await?.ok_or_else(|| not_found(id))?;
    Ok(Reply::json(StatusCode::OK, &event.to_api()))
}

/// Queues the event again to every enabled endpoint subscribed to its type. Answers 202
/// with the new deliveries (empty when no endpoint wants it).
pub async fn redeliver(deps: &Deps, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    call.empty_object_body()?;
    let id = call.param("id").to_string();
    idempotent(deps, p, call, async |_: Option<&Claim>| {
        let event = deps.webhooks.get_event(&p.merchant_id, &id).await?.ok_or_else(|| not_found(&id))?;
        let queued = webhooks::redeliver(deps, &p.merchant_id, &event).await?;
        tracing::info!(event_id = %id, deliveries = queued.len(), "event redelivery queued");
        let data: Vec<Value> = queued.iter().map(|d| d.to_api()).collect();
        Ok(Reply::json(StatusCode::ACCEPTED, &json!({"object": "list", "data": data, "has_more": false, "next_cursor": null})))
    })
    .await
}
