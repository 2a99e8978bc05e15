//! Payments and refunds: parse, call the use cases in `paysession_app::captures` and
//! `paysession_app::refunds`, render.

use http::StatusCode;
use paysession_app::auth::Principal;
use paysession_app::captures::{self, PaymentQuery};
use paysession_app::idempotency::Claim;
use paysession_app::ports::{IdempotencyCompletion, IdempotencyStore, RefundQuery, RefundStore, SessionStore};
use paysession_app::{Core, Payments, refunds};
use paysession_domain::errors::{Errors, FieldCode};
use paysession_domain::json::ObjectReader;
use paysession_domain::payment::AttemptStatus;
use paysession_domain::refund::{Refund, RefundStatus, parse_refund};
use paysession_domain::session::{PaymentSession, ViewJson};
use serde_json::Value;

use crate::handlers::list::{ListParams, checked, decode_cursor, page};
use crate::problem::ApiError;
use crate::reply::{Reply, idempotent_in_write, replay_or, stored_json};
use crate::request::Call;

/// An id given as a filter: what an id may be (ids are opaque; an over-long one is refused).
fn id_filter(v: &str) -> paysession_domain::fields::FieldResult<String> {
    paysession_domain::fields::text(v, 1, 255)
}

fn payment_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no payment with id {id}"))
}

fn refund_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no refund with id {id}"))
}

/// A JSON answer and, under an idempotency claim, its completion for the write that makes it.
fn answer(claim: Option<&Claim>, status: StatusCode, body: &Value) -> (Reply, Option<IdempotencyCompletion>) {
    let response = stored_json(status, body);
    let completion = claim.map(|c| c.completion(&response));
    let recorded = completion.is_some();
    (Reply::from_stored(response, recorded), completion)
}

pub async fn get_payment<S: SessionStore + RefundStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    crate::handlers::list::no_query(call)?;
    let id = call.param("id");
    let found = captures::get(cx, &p.merchant_id, id).await?.ok_or_else(|| payment_not_found(id))?;
    Ok(Reply::json(StatusCode::OK, &found))
}

pub async fn list_payments<S: SessionStore + RefundStore + ?Sized>(
    cx: &Core<S>,
    p: &Principal,
    call: &Call<'_>,
) -> Result<Reply, ApiError> {
    let mut e = Errors::new();
    let params = ListParams::parse(call, &["session_id", "status"], &mut e)?;
    let mut q = PaymentQuery { limit: params.limit, ..Default::default() };
    for (k, v) in &params.filters {
        match k.as_str() {
            "session_id" => q.session_id = crate::handlers::list::valid(&mut e, k, v, id_filter),
            "status" => match AttemptStatus::parse(v) {
                Some(s) => q.status = Some(s),
                None => e.add("status", FieldCode::InvalidValue, "must be a payment status, like requires_capture or succeeded"),
            },
            _ => {}
        }
    }
    if let Some(after) = &params.starting_after {
        let id = if after.starts_with("pay_") { Some(after.clone()) } else { decode_cursor(after).map(|c| c.id) };
        match id {
            Some(id) if captures::get(cx, &p.merchant_id, &id).await?.is_some() => q.after = Some(id),
            _ => e.add("starting_after", FieldCode::InvalidValue, "must be a next_cursor from a previous page or one of your payment ids"),
        }
    }
    checked(e)?;
    let found = captures::list(cx, &p.merchant_id, &q).await?;
    let position = |v: &Value| {
        let at = v["created_at"].as_str().and_then(|t| t.parse().ok()).unwrap_or_default();
        (at, v["id"].as_str().unwrap_or_default().to_string())
    };
    Ok(page(&found.items, found.has_more, position, |v| v))
}

/// Reads `{amount?}` (capture) or `{}` (cancel).
fn read_capture(call: &Call<'_>, amount_allowed: bool) -> Result<Option<i64>, ApiError> {
    let body = call.json_body(true)?;
    let mut e = Errors::new();
    let mut amount = None;
    if let Some(mut r) = ObjectReader::new(&body, "", &mut e) {
        if amount_allowed {
            amount = r.get("amount").and_then(|v| match paysession_domain::json::as_int(v) {
                Some(n) if n > 0 => Some(n),
                _ => {
                    e.add("amount", FieldCode::MustBePositive, "must be a positive integer in minor units");
                    None
                }
            });
        }
        r.finish(&mut e);
    }
    checked(e).map(|()| amount)
}

/// The payment a capture or void wrote, as the answer.
fn payment_answer<'a>(
    claim: Option<&'a Claim>,
    id: &'a str,
) -> impl Fn(&PaymentSession, &ViewJson) -> (Reply, Option<IdempotencyCompletion>) + 'a {
    move |session, _| answer(claim, StatusCode::OK, &captures::view(session, id, None, session.updated_at).unwrap_or_default())
}

pub async fn capture<S: SessionStore + IdempotencyStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    p: &Principal,
    call: &Call<'_>,
) -> Result<Reply, ApiError> {
    let amount = read_capture(call, true)?;
    let id = call.param("id");
    idempotent_in_write(cx, p, call, async |claim| {
        Ok(captures::capture(cx, pay, &p.merchant_id, id, amount, payment_answer(claim, id)).await?)
    })
    .await
}

pub async fn cancel<S: SessionStore + IdempotencyStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    p: &Principal,
    call: &Call<'_>,
) -> Result<Reply, ApiError> {
    read_capture(call, false)?;
    let id = call.param("id");
    idempotent_in_write(cx, p, call, async |claim| Ok(captures::void(cx, pay, &p.merchant_id, id, payment_answer(claim, id)).await?)).await
}

pub async fn create_refund<S: SessionStore + RefundStore + IdempotencyStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    p: &Principal,
    call: &Call<'_>,
) -> Result<Reply, ApiError> {
    if call.header("idempotency-key").is_none() {
        return Err(ApiError::IdempotencyKeyRequired);
    }
    let body = call.json_body(false)?;
    // Validation failures are not recorded under the key (as for every POST): a corrected
    // retry may use it, and a retry of a request that succeeded gets its answer.
    let req = match parse_refund(&body) {
        Ok(req) => req,
        Err(fields) => return replay_or(cx, p, call, ApiError::Validation(fields)).await,
    };
    idempotent_in_write(cx, p, call, async |claim| {
        let respond = |r: &Refund| answer(claim, StatusCode::CREATED, &r.to_api());
        Ok(refunds::create(cx, pay, &p.merchant_id, req, respond).await?)
    })
    .await
}

pub async fn get_refund<S: RefundStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    crate::handlers::list::no_query(call)?;
    let id = call.param("id");
    let refund = cx.store.get_refund(&p.merchant_id, id).await?.ok_or_else(|| refund_not_found(id))?;
    Ok(Reply::json(StatusCode::OK, &refund.to_api()))
}

pub async fn list_refunds<S: RefundStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut e = Errors::new();
    let params = ListParams::parse(call, &["payment_id", "session_id", "status"], &mut e)?;
    let mut q = RefundQuery { limit: params.limit, ..Default::default() };
    for (k, v) in &params.filters {
        match k.as_str() {
            "payment_id" => q.payment_id = crate::handlers::list::valid(&mut e, k, v, id_filter),
            "session_id" => q.session_id = crate::handlers::list::valid(&mut e, k, v, id_filter),
            "status" => match RefundStatus::parse(v) {
                Some(s) => q.status = Some(s),
                None => e.add("status", FieldCode::InvalidValue, "must be a refund status, like pending or succeeded"),
            },
            _ => {}
        }
    }
    let find = async |id: &str| {
        Ok(cx.store.get_refund(&p.merchant_id, id).await?.map(|r| paysession_app::ports::Cursor { created_at: r.created_at, id: r.id }))
    };
    q.after = params.after(Some("re_"), find, " or one of your refund ids", &mut e).await?;
    checked(e)?;
    let found = cx.store.list_refunds(&p.merchant_id, &q).await?;
    Ok(page(&found.items, found.has_more, |r| (r.created_at, r.id.clone()), Refund::to_api))
}

pub async fn cancel_refund<S: RefundStore + IdempotencyStore + ?Sized>(
    cx: &Core<S>,
    p: &Principal,
    call: &Call<'_>,
) -> Result<Reply, ApiError> {
    call.json_body(true)?;
    let id = call.param("id");
    crate::reply::idempotent(cx, p, call, async |_| {
        let refund = refunds::cancel(cx, &p.merchant_id, id).await?;
        Ok(Reply::json(StatusCode::OK, &refund.to_api()))
    })
    .await
}
