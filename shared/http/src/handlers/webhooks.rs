//! Webhook endpoints: create (the only answer that shows the secret, besides rotation),
//! list, get, delete, rotate_secret, and each endpoint's deliveries.

use http::StatusCode;
use paysession_app::auth::Principal;
use paysession_app::ports::Cursor;
use paysession_app::webhooks::{self, EndpointError};
use paysession_app::Deps;
use paysession_domain::errors::{Errors, FieldCode};
use paysession_domain::webhook::{parse_endpoint_create, UrlPolicy, WebhookEndpoint, MAX_ENDPOINTS};
use paysession_domain::FieldError;
use serde_json::{json, Value};

use crate::handlers::list::{decode_cursor, limit, page};
use crate::idempotency::Claim;
use crate::problem::ApiError;
use crate::reply::{idempotent, Reply};
use crate::request::Call;

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no webhook endpoint with id {id}"))
}

fn with_secret(endpoint: &WebhookEndpoint, secret: &str, now: chrono::DateTime<chrono::Utc>) -> Value {
    let mut v = endpoint.to_api(now);
    v["secret"] = Value::String(secret.to_string());
    v
}

fn no_query(call: &Call<'_>) -> Result<(), ApiError> {
    let mut e = Errors::new();
    call.query(&[], &mut e)?;
    if e.is_empty() { Ok(()) } else { Err(ApiError::Validation(e.into_vec())) }
}

pub async fn create(deps: &Deps, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let body = call.json_body(false)?;
    let spec = parse_endpoint_create(&body, UrlPolicy { allow_private: deps.config.allow_private_webhooks }).map_err(ApiError::Validation)?;
    idempotent(deps, p, call, async |_: Option<&Claim>| {
        let (endpoint, secret) = webhooks::create_endpoint(deps, &p.merchant_id, spec.clone()).await.map_err(|e| match e {
            EndpointError::TooMany => ApiError::Validation(vec![FieldError {
                field: "url".into(),
                code: FieldCode::TooMany,
                message: format!("a merchant can have at most {MAX_ENDPOINTS} webhook endpoints; delete one first"),
            }]),
            EndpointError::Store(e) => e.into(),
        })?;
        tracing::info!(endpoint_id = %endpoint.id, "webhook endpoint created");
        Ok(Reply::json(StatusCode::CREATED, &with_secret(&endpoint, secret.expose(), deps.clock.now())).sensitive())
    })
    .await
}

pub async fn list(deps: &Deps, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut e = Errors::new();
    let params = call.query(&["limit", "starting_after"], &mut e)?;
    let mut n = 20;
    let mut after: Option<Cursor> = None;
    for (k, v) in &params {
        match k.as_str() {
            "limit" => n = limit(v, &mut e),
            "starting_after" => after = decode_cursor(v).or_else(|| {
                e.add("starting_after", FieldCode::InvalidValue, "must be a next_cursor from a previous page");
                None
            }),
            _ => {}
        }
    }
    if !e.is_empty() {
        return Err(ApiError::Validation(e.into_vec()));
    }
    let all = deps.webhooks.list_endpoints(&p.merchant_id).await?;
    let rest: Vec<WebhookEndpoint> =
        all.into_iter().filter(|w| after.as_ref().is_none_or(|c| (w.created_at, w.id.as_str()) > (c.created_at, c.id.as_str()))).collect();
    let has_more = rest.len() > n;
    let now = deps.clock.now();
    Ok(page(&rest[..rest.len().min(n)], has_more, |w| (w.created_at, w.id.clone()), |w| w.to_api(now)))
}

pub async fn get(deps: &Deps, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    no_query(call)?;
    let id = call.param("id");
    let endpoint = deps.webhooks.get_endpoint(&p.merchant_id, id).await?.ok_or_else(|| not_found(id))?;
    Ok(Reply::json(StatusCode::OK, &endpoint.to_api(deps.clock.now())))
}

/// Deleting stops future deliveries; pending ones are cancelled when they come due.
pub async fn delete(deps: &Deps, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    no_query(call)?;
    let id = call.param("id");
    if !deps.webhooks.delete_endpoint(&p.merchant_id, id).await? {
        return Err(not_found(id));
    }
    tracing::info!(endpoint_id = id, "webhook endpoint deleted");
    Ok(Reply::json(StatusCode::OK, &json!({"id": id, "object": "webhook_endpoint", "deleted": true})))
}

pub async fn rotate(deps: &Deps, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    call.empty_object_body()?;
    let id = call.param("id").to_string();
    idempotent(deps, p, call, async |_: Option<&Claim>| {
        let (endpoint, secret) = webhooks::rotate_secret(deps, &p.merchant_id, &id).await?.ok_or_else(|| not_found(&id))?;
        tracing::info!(endpoint_id = %endpoint.id, "webhook secret rotated");
        Ok(Reply::json(StatusCode::OK, &with_secret(&endpoint, secret.expose(), deps.clock.now())).sensitive())
    })
    .await
}

pub async fn deliveries(deps: &Deps, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut e = Errors::new();
    let params = call.query(&["limit", "starting_after"], &mut e)?;
    let id = call.param("id");
    let mut n = 20;
    let mut starting_after = None;
    for (k, v) in &params {
        match k.as_str() {
            "limit" => n = limit(v, &mut e),
            "starting_after" => starting_after = Some(v.clone()),
            _ => {}
        }
    }
    let mut after = None;
    if let Some(s) = starting_after {
        after = if s.starts_with("whd_") {
            deps.webhooks.get_delivery(&p.merchant_id, &s).await?.map(|d| Cursor { created_at: d.created_at, id: d.id })
        } else {
            decode_cursor(&s)
        };
        if after.is_none() {
            e.add("starting_after", FieldCode::InvalidValue, "must be a next_cursor from a previous page or a delivery id");
        }
    }
    if !e.is_empty() {
        return Err(ApiError::Validation(e.into_vec()));
    }
    deps.webhooks.get_endpoint(&p.merchant_id, id).await?.ok_or_else(|| not_found(id))?;
    let found = deps.webhooks.list_deliveries(&p.merchant_id, id, n, after.as_ref()).await?;
    Ok(page(&found.items, found.has_more, |d| (d.created_at, d.id.clone()), |d| d.to_api()))
}
