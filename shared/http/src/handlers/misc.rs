//! The OpenAPI document, health, and the sandbox test clock.

use std::sync::Arc;

use chrono::Duration;
use http::{StatusCode, header};
use paysession_app::Core;
use paysession_app::auth::Principal;
use paysession_app::clock::{MAX_OFFSET, TestClock, TooFar};
use paysession_app::ports::{IdempotencyStore, SettingsStore};
use paysession_domain::errors::{Errors, FieldCode, FieldError};
use paysession_domain::json::ObjectReader;
use serde_json::json;

use crate::problem::ApiError;
use crate::reply::{Reply, idempotent, stored_json};
use crate::request::Call;

/// The committed OpenAPI 3.1 document, served as is.
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.json");

pub async fn openapi<C: ?Sized>(_cx: &C, _call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut r = Reply::from_stored(
        paysession_app::ports::StoredResponse { status: 200, content_type: "application/json".into(), body: OPENAPI.into() },
        false,
    );
    r.headers.push((header::CACHE_CONTROL, "public, max-age=300"));
    Ok(r)
}

pub async fn health<C: ?Sized>(_cx: &C, _call: &Call<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::json(StatusCode::OK, &json!({"status": "ok"})))
}

fn clock_view<S: ?Sized>(cx: &Core<S>) -> serde_json::Value {
    let offset = cx.test_clock.as_ref().map(|c| c.offset()).unwrap_or_default();
    json!({"object": "test_clock", "now": cx.clock.now(), "offset_seconds": offset.num_seconds()})
}

pub async fn test_clock_get<S: ?Sized>(cx: &Core<S>, _p: &Principal, _call: &Call<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::json(StatusCode::OK, &clock_view(cx)))
}

/// Up to ten years per call; the clock never moves backwards.
const MAX_ADVANCE_SECS: i64 = 10 * 366 * 86_400;

pub async fn test_clock_advance<S: SettingsStore + IdempotencyStore + ?Sized>(
    cx: &Core<S>,
    p: &Principal,
    call: &Call<'_>,
) -> Result<Reply, ApiError> {
    let body = call.json_body(false)?;
    let mut e = Errors::new();
    let mut seconds = None;
    if let Some(mut r) = ObjectReader::new(&body, "", &mut e) {
        seconds = r.required("seconds", &mut e).and_then(|v| match v.as_i64() {
            Some(n) if (1..=MAX_ADVANCE_SECS).contains(&n) => Some(n),
            _ => {
                e.add("seconds", FieldCode::OutOfRange, format!("must be an integer from 1 to {MAX_ADVANCE_SECS}"));
                None
            }
        });
        r.finish(&mut e);
    }
    let seconds = match seconds {
        Some(s) if e.is_empty() => s,
        _ => return Err(ApiError::Validation(e.into_vec())),
    };
    let clock = cx.test_clock.clone().ok_or_else(|| ApiError::NotFound("the test clock exists only in sandbox mode".into()))?;
    idempotent(cx, p, call, async |_claim| {
        // One atomic addition in the store: concurrent advances all count, and none can
        // write back an offset it read before another moved the clock.
        let (start, by, max) = (clock.offset().num_milliseconds(), seconds * 1000, MAX_OFFSET.num_milliseconds());
        let key = paysession_app::clock::test_clock_setting(&p.merchant_id);
        let Some(offset_ms) = cx.store.add_to_setting(&key, start, by, max).await? else {
            let left = TooFar { left: MAX_OFFSET - clock.offset() };
            return Err(ApiError::Validation(vec![FieldError {
                field: "seconds".into(),
                code: FieldCode::OutOfRange,
                message: left.to_string(),
            }]));
        };
        let moved = TestClock::with_offset(Duration::milliseconds(offset_ms));
        let cx = Core { clock: Arc::new(moved.clone()), test_clock: Some(moved), ..cx.clone() };
        tracing::info!(seconds, offset_seconds = offset_ms / 1000, "test clock advanced");
        Ok(Reply::from_stored(stored_json(StatusCode::OK, &clock_view(&cx)), false))
    })
    .await
}

/// Serves the test clock's two routes (the `test-clock` function's group).
pub async fn serve_test_clock<S: SettingsStore + IdempotencyStore + paysession_app::ports::SigningStore + ?Sized>(
    cx: &Core<S>,
    info: &'static crate::routes::RouteInfo,
    params: crate::pipeline::Params,
    req: lambda_http::Request,
) -> lambda_http::Response<lambda_http::Body> {
    match info.route {
        crate::routes::Route::TestClockAdvance => {
            crate::pipeline::api(cx, &cx.keys, info, params, req, |cx, p, call| Box::pin(test_clock_advance(cx, p, call))).await
        }
        _ => crate::pipeline::api(cx, &cx.keys, info, params, req, |cx, p, call| Box::pin(test_clock_get(cx, p, call))).await,
    }
}
