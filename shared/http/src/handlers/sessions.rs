//! Payment-session endpoints: parse, call the use case in `paysession_app::sessions`,
//! render.

use http::StatusCode;
use paysession_app::Core;
use paysession_app::Payments;
use paysession_app::auth::Principal;
use paysession_app::ports::{Cursor, IdempotencyStore, MandateStore, MerchantStore, RefundStore, SessionQuery, SessionStore};
use paysession_app::{mandates, sessions};
use paysession_domain::errors::{Errors, FieldCode};
use paysession_domain::json::ObjectReader;
use paysession_domain::model::{CancellationReason, SessionType};
use paysession_domain::session::{MerchantAction, PaymentSession};
use paysession_domain::{SessionStatus, fields};

use crate::handlers::list::{ListPage, ListParams, checked, no_query, page, valid};
use crate::problem::ApiError;
use crate::reply::{Reply, idempotent, idempotent_in_write, replay_or, respond_json};
use crate::request::Call;

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no payment session with id {id}"))
}

/// `pay` charges `next_in_series` sessions, which are paid when created.
pub async fn create<S: SessionStore + MerchantStore + IdempotencyStore + MandateStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    p: &Principal,
    call: &Call<'_>,
) -> Result<Reply, ApiError> {
    let body = call.json_body(false)?;
    let (merchant, spec) = match sessions::validate_create(cx, &p.merchant_id, &body).await {
        Ok(valid) => valid,
        Err(e) => return replay_or(cx, p, call, e.into()).await,
    };
    if spec.session_type == SessionType::NextInSeries {
        // Claimed before the charge and settled after it: the charge is more than one write.
        return idempotent(cx, p, call, async |_| {
            let charged = mandates::charge(cx, pay, &merchant, spec).await?;
            Ok(Reply::json(StatusCode::CREATED, &charged.api_view(cx.clock.now())))
        })
        .await;
    }
    idempotent_in_write(cx, p, call, async |claim| {
        Ok(sessions::create(cx, &merchant, spec, respond_json(claim, StatusCode::CREATED)).await?)
    })
    .await
}

/// A session's view with `amount_refunded`, serialised straight (no JSON tree in between).
#[derive(serde::Serialize)]
struct WithRefunds<'a> {
    #[serde(flatten)]
    view: paysession_domain::session::ApiSession<'a>,
    amount_refunded: i64,
}

/// The session's view with the sum its payments refunded (read only for a session with a
/// succeeded payment).
async fn with_refunds<'a, S: SessionStore + RefundStore + ?Sized>(
    cx: &Core<S>,
    session: &'a PaymentSession,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<WithRefunds<'a>, ApiError> {
    let amount_refunded = paysession_app::captures::session_refunded(cx, session).await?;
    Ok(WithRefunds { view: session.api_view(now), amount_refunded })
}

pub async fn get<S: SessionStore + RefundStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let id = call.param("id");
    let session = cx.store.get_session(&p.merchant_id, id).await?.ok_or_else(|| not_found(id))?;
    Ok(Reply::json(StatusCode::OK, &with_refunds(cx, &session, cx.clock.now()).await?))
}

pub async fn list<S: SessionStore + RefundStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut e = Errors::new();
    let params = ListParams::parse(call, &["customer_id", "reference", "status", "created_after"], &mut e)?;
    let now = cx.clock.now();
    let mut q = SessionQuery { limit: params.limit, now, ..Default::default() };
    for (k, v) in &params.filters {
        match k.as_str() {
            "customer_id" => q.customer_id = valid(&mut e, k, v, fields::customer_id),
            "reference" => q.reference = valid(&mut e, k, v, fields::reference),
            "status" => match SessionStatus::parse(v) {
                Some(s) => q.status = Some(s),
                None => e.add("status", FieldCode::InvalidValue, "must be a session status, like open or succeeded"),
            },
            "created_after" => match fields::timestamp(v) {
                Ok(t) => q.created_after = Some(t),
                Err((code, msg)) => e.add("created_after", code, msg),
            },
            _ => {}
        }
    }
    // Either a `next_cursor` from a previous page or, Stripe-style, a session id.
    let find = async |id: &str| Ok(cx.store.get_session(&p.merchant_id, id).await?.map(|s| Cursor { created_at: s.created_at, id: s.id }));
    q.after = params.after(Some("ps_"), find, " or one of your session ids", &mut e).await?;
    checked(e)?;
    let found = cx.store.list_sessions(&p.merchant_id, &q).await?;
    let mut views = Vec::with_capacity(found.items.len());
    for s in &found.items {
        views.push((s.created_at, s.id.clone(), with_refunds(cx, s, now).await?));
    }
    Ok(page(&views, found.has_more, |(at, id, _)| (*at, id.clone()), |(_, _, view)| view))
}

pub async fn events<S: SessionStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    no_query(call)?;
    let id = call.param("id");
    cx.store.get_session(&p.merchant_id, id).await?.ok_or_else(|| not_found(id))?;
    let events = cx.store.session_events(&p.merchant_id, id).await?;
    Ok(Reply::json(StatusCode::OK, &ListPage::whole(events.iter().map(|e| e.to_api()).collect())))
}

/// Reads an action body: `{}` (or empty) for confirm and expire, `{reason?}` for cancel.
fn parse_action(call: &Call<'_>, kind: ActionKind) -> Result<MerchantAction, ApiError> {
    let body = call.json_body(true)?;
    let mut e = Errors::new();
    let action = match ObjectReader::new(&body, "", &mut e) {
        None => None,
        Some(mut r) => {
            let action = match kind {
                ActionKind::Confirm => sessions::confirm_action(),
                ActionKind::Expire => MerchantAction::Expire,
                ActionKind::Cancel => {
                    let reason = r.str("reason", &mut e).and_then(|s| {
                        CancellationReason::parse(s).or_else(|| {
                            e.add("reason", FieldCode::InvalidValue, format!("must be one of: {}", CancellationReason::expected()));
                            None
                        })
                    });
                    MerchantAction::Cancel { reason: reason.unwrap_or(CancellationReason::RequestedByCustomer) }
                }
            };
            r.finish(&mut e);
            Some(action)
        }
    };
    match action {
        Some(a) if e.is_empty() => Ok(a),
        _ => Err(ApiError::Validation(e.into_vec())),
    }
}

#[derive(Clone, Copy)]
pub enum ActionKind {
    Confirm,
    Cancel,
    Expire,
}

async fn act<S: SessionStore + IdempotencyStore + ?Sized>(
    cx: &Core<S>,
    p: &Principal,
    call: &Call<'_>,
    kind: ActionKind,
) -> Result<Reply, ApiError> {
    let action = parse_action(call, kind)?;
    let id = call.param("id");
    idempotent_in_write(cx, p, call, async |claim| {
        Ok(sessions::act(cx, &p.merchant_id, id, action, respond_json(claim, StatusCode::OK)).await?)
    })
    .await
}

pub async fn confirm<S: SessionStore + IdempotencyStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    act(cx, p, call, ActionKind::Confirm).await
}

pub async fn cancel<S: SessionStore + IdempotencyStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    act(cx, p, call, ActionKind::Cancel).await
}

pub async fn expire<S: SessionStore + IdempotencyStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    act(cx, p, call, ActionKind::Expire).await
}
