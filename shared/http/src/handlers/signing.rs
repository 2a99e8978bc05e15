//! Signed requests: the merchant setting and its public keys (scope `keys:manage`). One
//! Lambda function serves these six low-traffic routes.

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use paysession_app::Core;
use paysession_app::auth::Principal;
use paysession_app::ports::{IdempotencyStore, SettingsStore, SigningStore};
use paysession_app::signing::{self, SigningKey};
use paysession_domain::errors::{Errors, FieldCode};
use paysession_domain::json::ObjectReader;
use paysession_domain::signed_requests::{Algorithm, Mode};

use crate::handlers::list::{ListParams, checked, no_query, page_after};
use crate::pipeline::{Params, api};
use crate::problem::ApiError;
use crate::reply::{Reply, idempotent};
use crate::request::Call;
use crate::routes::{Route, RouteInfo};

pub async fn serve<S: SigningStore + SettingsStore + IdempotencyStore + ?Sized>(
    cx: &Core<S>,
    info: &'static RouteInfo,
    params: Params,
    req: Request,
) -> Response<Body> {
    let keys = &cx.keys;
    match info.route {
        Route::GetMerchantSettings => api(cx, keys, info, params, req, |cx, p, call| Box::pin(get_settings(cx, p, call))).await,
        Route::UpdateMerchantSettings => api(cx, keys, info, params, req, |cx, p, call| Box::pin(update_settings(cx, p, call))).await,
        Route::CreateSigningKey => api(cx, keys, info, params, req, |cx, p, call| Box::pin(create_key(cx, p, call))).await,
        Route::ListSigningKeys => api(cx, keys, info, params, req, |cx, p, call| Box::pin(list_keys(cx, p, call))).await,
        Route::GetSigningKey => api(cx, keys, info, params, req, |cx, p, call| Box::pin(get_key(cx, p, call))).await,
        _ => api(cx, keys, info, params, req, |cx, p, call| Box::pin(revoke_key(cx, p, call))).await,
    }
}

pub async fn get_settings<S: SigningStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    no_query(call)?;
    Ok(Reply::json(StatusCode::OK, &signing::profile(cx, &p.merchant_id).await?.settings_api()))
}

pub async fn update_settings<S: SigningStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let body = call.json_body(false)?;
    let mut e = Errors::new();
    let mut mode = None;
    if let Some(mut r) = ObjectReader::new(&body, "", &mut e) {
        if let Some(v) = r.required_str("signed_requests", &mut e) {
            mode = Mode::parse(v);
            if mode.is_none() {
                e.add("signed_requests", FieldCode::InvalidValue, "must be one of off, optional, required");
            }
        }
        r.finish(&mut e);
    }
    checked(e)?;
    let profile = signing::set_mode(cx, &p.merchant_id, mode.expect("checked above"), false).await?;
    tracing::info!(signed_requests = profile.mode.as_str(), "merchant settings updated");
    Ok(Reply::json(StatusCode::OK, &profile.settings_api()))
}

pub async fn create_key<S: SigningStore + IdempotencyStore + ?Sized>(
    cx: &Core<S>,
    p: &Principal,
    call: &Call<'_>,
) -> Result<Reply, ApiError> {
    let body = call.json_body(false)?;
    let mut e = Errors::new();
    let (mut text, mut algorithm) = (None, None);
    if let Some(mut r) = ObjectReader::new(&body, "", &mut e) {
        text = r.required_str("public_key", &mut e);
        if let Some(a) = r.required_str("algorithm", &mut e) {
            algorithm = Algorithm::parse(a);
            if algorithm.is_none() {
                e.add("algorithm", FieldCode::InvalidValue, "must be one of ed25519, ecdsa-p256-sha256, rsa-pss-sha512, rsa-v1_5-sha256");
            }
        }
        r.finish(&mut e);
    }
    checked(e)?;
    let (text, algorithm) = (text.expect("checked above"), algorithm.expect("checked above"));
    idempotent(cx, p, call, async |_| {
        let key = signing::add_key(cx, &p.merchant_id, algorithm, text).await?;
        tracing::info!(key_id = %key.id, algorithm = key.algorithm.as_str(), "signing key registered");
        Ok(Reply::json(StatusCode::CREATED, &key.to_api()))
    })
    .await
}

pub async fn list_keys<S: SigningStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut e = Errors::new();
    let params = ListParams::parse(call, &[], &mut e)?;
    let after = params.after(None, async |_| Ok(None), "", &mut e).await?;
    checked(e)?;
    let keys = signing::profile(cx, &p.merchant_id).await?.keys;
    Ok(page_after(keys, after.as_ref(), params.limit, |k| (k.created_at, k.id.as_str()), SigningKey::to_api))
}

pub async fn get_key<S: SigningStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    no_query(call)?;
    let id = call.param("id");
    let profile = signing::profile(cx, &p.merchant_id).await?;
    let key = profile.keys.iter().find(|k| k.id == id).ok_or_else(|| ApiError::NotFound(format!("no signing key with id {id}")))?;
    Ok(Reply::json(StatusCode::OK, &key.to_api()))
}

/// `DELETE` revokes: the key is kept (as `revoked`) so its id keeps answering, and it
/// never verifies again.
pub async fn revoke_key<S: SigningStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    no_query(call)?;
    let key = signing::revoke_key(cx, &p.merchant_id, call.param("id")).await?;
    tracing::info!(key_id = %key.id, "signing key revoked");
    Ok(Reply::json(StatusCode::OK, &key.to_api()))
}
