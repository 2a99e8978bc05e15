//! The merchant's event log: list (newest first, by type and time), get, and redeliver.

use http::StatusCode;
use paysession_app::Core;
use paysession_app::auth::Principal;
use paysession_app::ports::{Cursor, EventQuery};
use paysession_app::ports::{DeliveryQueue, IdempotencyStore, WebhookStore};
use paysession_app::webhooks;
use paysession_domain::errors::{Errors, FieldCode};
use paysession_domain::fields;
use paysession_domain::webhook::EVENT_TYPES;

use crate::handlers::list::{ListPage, ListParams, checked, no_query, page};
use crate::problem::ApiError;
use crate::reply::{Reply, idempotent};
use crate::request::Call;

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no event with id {id}"))
}

pub async fn list<S: WebhookStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut e = Errors::new();
    let params = ListParams::parse(call, &["type", "created_after"], &mut e)?;
    let mut q = EventQuery { limit: params.limit, ..Default::default() };
    for (k, v) in &params.filters {
        match k.as_str() {
            "type" if EVENT_TYPES.contains(&v.as_str()) => q.event_type = Some(v.clone()),
            "type" => e.add("type", FieldCode::InvalidValue, format!("must be one of {}", EVENT_TYPES.join(", "))),
            "created_after" => match fields::timestamp(v) {
                Ok(t) => q.created_after = Some(t),
                Err((code, msg)) => e.add("created_after", code, msg),
            },
            _ => {}
        }
    }
    let find = async |id: &str| Ok(cx.store.get_event(&p.merchant_id, id).await?.map(|ev| Cursor { created_at: ev.created_at, id: ev.id }));
    q.after = params.after(Some("evt_"), find, " or one of your event ids", &mut e).await?;
    checked(e)?;
    let found = cx.store.list_events(&p.merchant_id, &q).await?;
    Ok(page(&found.items, found.has_more, |ev| (ev.created_at, ev.id.clone()), |ev| ev.to_api()))
}

pub async fn get<S: WebhookStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    no_query(call)?;
    let id = call.param("id");
    let event = cx.store.get_event(&p.merchant_id, id).await?.ok_or_else(|| not_found(id))?;
    Ok(Reply::json(StatusCode::OK, &event.to_api()))
}

/// Queues the event again to every enabled endpoint subscribed to its type. Answers 202
/// with the new deliveries (empty when no endpoint wants it).
pub async fn redeliver<S: WebhookStore + IdempotencyStore + ?Sized>(
    cx: &Core<S>,
    queue: &dyn DeliveryQueue,
    p: &Principal,
    call: &Call<'_>,
) -> Result<Reply, ApiError> {
    call.empty_object_body()?;
    let id = call.param("id").to_string();
    idempotent(cx, p, call, async |_| {
        let event = cx.store.get_event(&p.merchant_id, &id).await?.ok_or_else(|| not_found(&id))?;
        let queued = webhooks::redeliver(cx, queue, &p.merchant_id, &event).await?;
        tracing::info!(event_id = %id, deliveries = queued.len(), "event redelivery queued");
        Ok(Reply::json(StatusCode::ACCEPTED, &ListPage::whole(queued.iter().map(|d| d.to_api()).collect())))
    })
    .await
}
