//! Payment-session endpoints: create, get, list, confirm, cancel, expire, events.

use http::StatusCode;
use paysession_app::auth::Principal;
use paysession_app::ids::{new_id, new_token, sha256_hex};
use paysession_app::ports::{Cursor, SessionQuery, StoreError};
use paysession_app::Deps;
use paysession_domain::errors::{Errors, FieldCode};
use paysession_domain::json::ObjectReader;
use paysession_domain::model::{CancellationReason, Mode, SessionType};
use paysession_domain::session::{events_for, HostedPage, MerchantAction, PaymentSession};
use paysession_domain::{fields, parse_create_session, FieldError, SessionStatus};
use serde_json::{json, Value};

use crate::handlers::list::{decode_cursor, limit, page};
use crate::idempotency::Claim;
use crate::problem::ApiError;
use crate::reply::{idempotent, stored_json, Reply};
use crate::request::Call;

/// Concurrent writers lose the version race and re-read; past this many losses the
/// session is being hammered and the caller should retry.
const MAX_WRITE_RACES: usize = 5;

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no payment session with id {id}"))
}

pub async fn create(deps: &Deps, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let body = call.json_body(false)?;
    let merchant = deps
        .merchants
        .get_merchant(&p.merchant_id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("merchant {} of a valid token is missing", p.merchant_id)))?;
    let now = deps.clock.now();
    let spec = parse_create_session(&body, now, &merchant.policy()).map_err(ApiError::Validation)?;
    idempotent(deps, p, call, async |claim: Option<&Claim>| {
        if spec.session_type == SessionType::NextInSeries {
            // Mandates are created by succeeded first_in_series sessions; until one exists
            // for this merchant no id can refer to one.
            return Err(ApiError::Validation(vec![FieldError {
                field: "mandate_id".into(),
                code: FieldCode::NotFound,
                message: "no active mandate with this id for this customer".into(),
            }]));
        }
        let page = (spec.mode == Mode::Redirect).then(|| {
            let token = new_token();
            HostedPage {
                url: format!("{}/pay/{token}", deps.config.public_url.trim_end_matches('/')),
                token_hash: sha256_hex(token.as_bytes()),
            }
        });
        let mut session = PaymentSession::create(spec.clone(), new_id("ps"), merchant.id.clone(), page, now);
        crate::page::instructions_for(&mut session);
        let events = events_for(None, &session, now, || new_id("evt"));
        let response = stored_json(StatusCode::CREATED, &session.to_api(now));
        let completion = claim.map(|c| c.completion(&response));
        deps.sessions.create_session(&session, &events, completion.as_ref()).await?;
        tracing::info!(session_id = %session.id, "payment session created");
        Ok(Reply::from_stored(response, completion.is_some()))
    })
    .await
}

pub async fn get(deps: &Deps, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let id = call.param("id");
    let session = deps.sessions.get_session(&p.merchant_id, id).await?.ok_or_else(|| not_found(id))?;
    Ok(Reply::json(StatusCode::OK, &session.to_api(deps.clock.now())))
}

pub async fn list(deps: &Deps, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut e = Errors::new();
    let params = call.query(&["customer_id", "reference", "status", "created_after", "limit", "starting_after"], &mut e)?;
    let now = deps.clock.now();
    let mut q = SessionQuery { limit: 20, now, ..Default::default() };
    let mut starting_after = None;
    for (k, v) in &params {
        match k.as_str() {
            "customer_id" => q.customer_id = Some(v.clone()),
            "reference" => q.reference = Some(v.clone()),
            "status" => match SessionStatus::parse(v) {
                Some(s) => q.status = Some(s),
                None => e.add("status", FieldCode::InvalidValue, "must be a session status, like open or succeeded"),
            },
            "created_after" => match fields::timestamp(v) {
                Ok(t) => q.created_after = Some(t),
                Err((code, msg)) => e.add("created_after", code, msg),
            },
            "limit" => q.limit = limit(v, &mut e),
            "starting_after" => starting_after = Some(v.clone()),
            _ => {} // unknown: already recorded by query()
        }
    }
    if let Some(s) = starting_after {
        // Either a `next_cursor` from a previous page or, Stripe-style, a session id.
        q.after = if s.starts_with("ps_") {
            deps.sessions
                .get_session(&p.merchant_id, &s)
                .await?
                .map(|sess| Cursor { created_at: sess.created_at, id: sess.id })
        } else {
            decode_cursor(&s)
        };
        if q.after.is_none() {
            e.add("starting_after", FieldCode::InvalidValue, "must be a next_cursor from a previous page or one of your session ids");
        }
    }
    if !e.is_empty() {
        return Err(ApiError::Validation(e.into_vec()));
    }
    let found = deps.sessions.list_sessions(&p.merchant_id, &q).await?;
    Ok(page(&found.items, found.has_more, |s| (s.created_at, s.id.clone()), |s| s.to_api(now)))
}

pub async fn events(deps: &Deps, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut e = Errors::new();
    call.query(&[], &mut e)?;
    if !e.is_empty() {
        return Err(ApiError::Validation(e.into_vec()));
    }
    let id = call.param("id");
    deps.sessions.get_session(&p.merchant_id, id).await?.ok_or_else(|| not_found(id))?;
    let events = deps.sessions.session_events(&p.merchant_id, id).await?;
    let data: Vec<Value> = events.iter().map(|e| e.to_api()).collect();
    Ok(Reply::json(StatusCode::OK, &json!({"object": "list", "data": data, "has_more": false, "next_cursor": null})))
}

/// Reads an action body: `{}` (or empty) for confirm and expire, `{reason?}` for cancel.
fn parse_action(call: &Call<'_>, kind: ActionKind) -> Result<MerchantAction, ApiError> {
    let body = call.json_body(true)?;
    let mut e = Errors::new();
    let action = match ObjectReader::new(&body, "", &mut e) {
        None => None,
        Some(mut r) => {
            let action = match kind {
                ActionKind::Confirm => MerchantAction::Confirm { payment_request_id: new_id("pr") },
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

/// Confirm, cancel or expire: read, decide in the domain, write conditionally on the
/// version read, and re-read if another writer got there first.
pub async fn act(deps: &Deps, p: &Principal, call: &Call<'_>, kind: ActionKind) -> Result<Reply, ApiError> {
    let action = parse_action(call, kind)?;
    let id = call.param("id").to_string();
    idempotent(deps, p, call, async |claim: Option<&Claim>| {
        for _ in 0..MAX_WRITE_RACES {
            let current = deps.sessions.get_session(&p.merchant_id, &id).await?.ok_or_else(|| not_found(&id))?;
            let now = deps.clock.now();
            let next = current.apply(action.clone(), now).map_err(|e| ApiError::InvalidStateTransition(e.to_string()))?;
            let events = events_for(Some(&current), &next, now, || new_id("evt"));
            let response = stored_json(StatusCode::OK, &next.to_api(now));
            let completion = claim.map(|c| c.completion(&response));
            match deps.sessions.update_session(&next, current.version, &events, completion.as_ref()).await {
                Ok(()) => {
                    tracing::info!(session_id = %id, status = next.status.as_str(), "payment session updated");
                    return Ok(Reply::from_stored(response, completion.is_some()));
                }
                Err(StoreError::VersionConflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Internal(format!("session {id} kept changing during {} attempts", MAX_WRITE_RACES)))
    })
    .await
}
