//! Mandates (`/v1/mandates…`) and a customer's saved payment methods
//! (`/v1/customers/{customer_id}/payment_methods…`): parse, call `paysession_app::mandates`,
//! render.

use http::StatusCode;
use paysession_app::Core;
use paysession_app::auth::Principal;
use paysession_app::mandates::{self, MandateError};
use paysession_app::ports::{Cursor, IdempotencyStore, MandateQuery, MandateStore, SessionStore};
use paysession_domain::errors::{Errors, FieldCode};
use paysession_domain::fields;
use paysession_domain::json::ObjectReader;
use paysession_domain::mandate::{MandateAction, MandateStatus};
use serde_json::json;

use crate::handlers::list::{ListPage, ListParams, checked, no_query, page, valid};
use crate::problem::ApiError;
use crate::reply::{Reply, idempotent};
use crate::request::Call;

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no mandate with id {id}"))
}

impl From<MandateError> for ApiError {
    fn from(e: MandateError) -> Self {
        match e {
            MandateError::NotFound(id) => not_found(&id),
            MandateError::Refused(t) => ApiError::InvalidStateTransition(t.to_string()),
            MandateError::Store(s) => s.into(),
        }
    }
}

pub async fn get<S: MandateStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    no_query(call)?;
    let id = call.param("id");
    let mandate = cx.store.get_mandate(&p.merchant_id, id).await?.ok_or_else(|| not_found(id))?;
    Ok(Reply::json(StatusCode::OK, &mandate.to_api()))
}

pub async fn list<S: MandateStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut e = Errors::new();
    let params = ListParams::parse(call, &["customer_id", "status"], &mut e)?;
    let mut q = MandateQuery { limit: params.limit, ..Default::default() };
    for (k, v) in &params.filters {
        match k.as_str() {
            "customer_id" => q.customer_id = valid(&mut e, k, v, fields::customer_id),
            "status" => match MandateStatus::parse(v) {
                Some(s) => q.status = Some(s),
                None => e.add("status", FieldCode::InvalidValue, "must be one of: active, suspended, revoked, completed"),
            },
            _ => {}
        }
    }
    let find = async |id: &str| Ok(cx.store.get_mandate(&p.merchant_id, id).await?.map(|m| Cursor { created_at: m.created_at, id: m.id }));
    q.after = params.after(Some("md_"), find, " or one of your mandate ids", &mut e).await?;
    checked(e)?;
    let found = cx.store.list_mandates(&p.merchant_id, &q).await?;
    Ok(page(&found.items, found.has_more, |m| (m.created_at, m.id.clone()), |m| m.to_api()))
}

/// `{}` for suspend and resume; `{reason?}` (up to 200 characters) for revoke.
fn parse_action(call: &Call<'_>, revoke: bool) -> Result<Option<String>, ApiError> {
    let body = call.json_body(true)?;
    let mut e = Errors::new();
    let mut reason = None;
    if let Some(mut r) = ObjectReader::new(&body, "", &mut e) {
        if revoke {
            reason = r.str("reason", &mut e).and_then(|s| {
                if (1..=200).contains(&s.chars().count()) {
                    Some(s.to_string())
                } else {
                    e.add("reason", FieldCode::TooLong, "must be 1 to 200 characters");
                    None
                }
            });
        }
        r.finish(&mut e);
    }
    checked(e)?;
    Ok(reason)
}

async fn act<S: MandateStore + IdempotencyStore + ?Sized>(
    cx: &Core<S>,
    p: &Principal,
    call: &Call<'_>,
    action: MandateAction,
) -> Result<Reply, ApiError> {
    let id = call.param("id");
    idempotent(cx, p, call, async |_| {
        let mandate = mandates::act(cx, &p.merchant_id, id, &action).await?;
        Ok(Reply::json(StatusCode::OK, &mandate.to_api()))
    })
    .await
}

pub async fn revoke<S: MandateStore + IdempotencyStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let reason = parse_action(call, true)?.unwrap_or_else(|| "requested_by_merchant".into());
    act(cx, p, call, MandateAction::Revoke { reason }).await
}

pub async fn suspend<S: MandateStore + IdempotencyStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    parse_action(call, false)?;
    act(cx, p, call, MandateAction::Suspend).await
}

pub async fn resume<S: MandateStore + IdempotencyStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    parse_action(call, false)?;
    act(cx, p, call, MandateAction::Resume).await
}

/// The `{customer_id}` of `/v1/customers/{customer_id}/…`, by the body field's rule; the
/// request takes no query.
fn path_customer(call: &Call<'_>) -> Result<String, ApiError> {
    let mut e = Errors::new();
    let customer = valid(&mut e, "customer_id", call.param("customer_id"), fields::customer_id);
    call.query(&[], &mut e)?;
    checked(e)?;
    Ok(customer.expect("checked"))
}

pub async fn payment_methods<S: SessionStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let customer = path_customer(call)?;
    let methods = cx.store.list_payment_methods(&p.merchant_id, &customer).await?;
    Ok(Reply::json(StatusCode::OK, &ListPage::whole(methods.iter().map(|m| m.to_api()).collect())))
}

/// Detaching revokes the mandates that charge the method.
pub async fn detach_payment_method<S: MandateStore + SessionStore + ?Sized>(
    cx: &Core<S>,
    p: &Principal,
    call: &Call<'_>,
) -> Result<Reply, ApiError> {
    let customer = path_customer(call)?;
    let (customer, id) = (customer.as_str(), call.param("pm_id"));
    mandates::detach(cx, &p.merchant_id, customer, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("customer {customer} has no payment method {id}")))?;
    Ok(Reply::json(StatusCode::OK, &json!({"id": id, "object": "payment_method", "deleted": true})))
}
