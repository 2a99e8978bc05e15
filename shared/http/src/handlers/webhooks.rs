//! Webhook endpoints: create (the only answer that shows the secret, besides rotation),
//! list, get, delete, rotate_secret, and each endpoint's deliveries.

use http::StatusCode;
use paysession_app::Core;
use paysession_app::auth::Principal;
use paysession_app::ports::Cursor;
use paysession_app::ports::{IdempotencyStore, WebhookStore};
use paysession_app::webhooks::{self, EndpointError};
use paysession_domain::FieldError;
use paysession_domain::errors::{Errors, FieldCode};
use paysession_domain::webhook::{MAX_ENDPOINTS, UrlPolicy, WebhookEndpoint, parse_endpoint_create};
use serde_json::{Value, json};

use crate::handlers::list::{ListParams, checked, no_query, page, page_after};
use crate::problem::ApiError;
use crate::reply::{Reply, idempotent};
use crate::request::Call;

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no webhook endpoint with id {id}"))
}

/// The answer of create and rotate: a `v1` endpoint's new shared secret is shown here once;
/// a `v1a` endpoint shows its public key (in every answer) and never its signing key.
fn with_secret(endpoint: &WebhookEndpoint, secret: &str, now: chrono::DateTime<chrono::Utc>) -> Value {
    let mut v = endpoint.to_api(now);
    if endpoint.signature_scheme == paysession_domain::webhook::SignatureScheme::V1 {
        v["secret"] = Value::String(secret.to_string());
    }
    v
}

pub async fn create<S: WebhookStore + IdempotencyStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let body = call.json_body(false)?;
    let spec = parse_endpoint_create(&body, UrlPolicy { allow_private: cx.config.allow_private_webhooks }).map_err(ApiError::Validation)?;
    idempotent(cx, p, call, async |_| {
        let (endpoint, secret) = webhooks::create_endpoint(cx, &p.merchant_id, spec.clone()).await.map_err(|e| match e {
            EndpointError::TooMany => ApiError::Validation(vec![FieldError {
                field: "url".into(),
                code: FieldCode::TooMany,
                message: format!("a merchant can have at most {MAX_ENDPOINTS} webhook endpoints; delete one first"),
            }]),
            EndpointError::Store(e) => e.into(),
        })?;
        tracing::info!(endpoint_id = %endpoint.id, "webhook endpoint created");
        Ok(Reply::json(StatusCode::CREATED, &with_secret(&endpoint, secret.expose(), cx.clock.now())).sensitive())
    })
    .await
}

pub async fn list<S: WebhookStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut e = Errors::new();
    let params = ListParams::parse(call, &[], &mut e)?;
    let after = params.after(None, async |_| Ok(None), "", &mut e).await?;
    checked(e)?;
    let all = cx.store.list_endpoints(&p.merchant_id).await?;
    let now = cx.clock.now();
    Ok(page_after(all, after.as_ref(), params.limit, |w| (w.created_at, w.id.as_str()), |w| w.to_api(now)))
}

pub async fn get<S: WebhookStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    no_query(call)?;
    let id = call.param("id");
    let endpoint = cx.store.get_endpoint(&p.merchant_id, id).await?.ok_or_else(|| not_found(id))?;
    Ok(Reply::json(StatusCode::OK, &endpoint.to_api(cx.clock.now())))
}

/// Deleting stops future deliveries; pending ones are cancelled when they come due.
pub async fn delete<S: WebhookStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    no_query(call)?;
    let id = call.param("id");
    if !cx.store.delete_endpoint(&p.merchant_id, id).await? {
        return Err(not_found(id));
    }
    tracing::info!(endpoint_id = id, "webhook endpoint deleted");
    Ok(Reply::json(StatusCode::OK, &json!({"id": id, "object": "webhook_endpoint", "deleted": true})))
}

pub async fn rotate<S: WebhookStore + IdempotencyStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    call.empty_object_body()?;
    let id = call.param("id").to_string();
    idempotent(cx, p, call, async |_| {
        let (endpoint, secret) = webhooks::rotate_secret(cx, &p.merchant_id, &id).await?.ok_or_else(|| not_found(&id))?;
        tracing::info!(endpoint_id = %endpoint.id, "webhook secret rotated");
        Ok(Reply::json(StatusCode::OK, &with_secret(&endpoint, secret.expose(), cx.clock.now())).sensitive())
    })
    .await
}

pub async fn deliveries<S: WebhookStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut e = Errors::new();
    let params = ListParams::parse(call, &[], &mut e)?;
    let id = call.param("id");
    let find =
        async |d: &str| Ok(cx.store.get_delivery(&p.merchant_id, id, d).await?.map(|d| Cursor { created_at: d.created_at, id: d.id }));
    let after = params.after(Some("whd_"), find, " or a delivery id", &mut e).await?;
    checked(e)?;
    cx.store.get_endpoint(&p.merchant_id, id).await?.ok_or_else(|| not_found(id))?;
    let found = cx.store.list_deliveries(&p.merchant_id, id, params.limit, after.as_ref()).await?;
    Ok(page(&found.items, found.has_more, |d| (d.created_at, d.id.clone()), |d| d.to_api()))
}
