//! The OpenAPI document, health, and the sandbox test clock.

use chrono::Duration;
use http::{header, StatusCode};
use paysession_app::auth::Principal;
use paysession_app::Deps;
use paysession_domain::errors::{Errors, FieldCode};
use paysession_domain::json::ObjectReader;
use serde_json::json;

use crate::problem::ApiError;
use crate::reply::{idempotent, stored_json, Reply};
use crate::request::Call;

/// The committed OpenAPI 3.1 document, served as is.
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.json");

pub const TEST_CLOCK_SETTING: &str = "test_clock_offset_ms";

pub fn openapi() -> Reply {
    let mut r = Reply::from_stored(
        paysession_app::ports::StoredResponse { status: 200, content_type: "application/json".into(), body: OPENAPI.into() },
        false,
    );
    r.headers.push((header::CACHE_CONTROL, "public, max-age=300"));
    r
}

pub fn health() -> Reply {
    Reply::json(StatusCode::OK, &json!({"status": "ok"}))
}

fn clock_view(deps: &Deps) -> serde_json::Value {
    let offset = deps.test_clock.as_ref().map(|c| c.offset()).unwrap_or_default();
    json!({"object": "test_clock", "now": deps.clock.now(), "offset_seconds": offset.num_seconds()})
}

pub async fn test_clock_get(deps: &Deps) -> Result<Reply, ApiError> {
    Ok(Reply::json(StatusCode::OK, &clock_view(deps)))
}

/// Up to ten years per call; the clock never moves backwards.
const MAX_ADVANCE_SECS: i64 = 10 * 366 * 86_400;

pub async fn test_clock_advance(deps: &Deps, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
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
    let clock = deps.test_clock.clone().ok_or_else(|| ApiError::NotFound("the test clock exists only in sandbox mode".into()))?;
    idempotent(deps, p, call, async |_claim| {
        let offset = clock.advance(Duration::seconds(seconds));
        deps.settings.put_setting(TEST_CLOCK_SETTING, &offset.num_milliseconds().to_string()).await?;
        tracing::info!(seconds, offset_seconds = offset.num_seconds(), "test clock advanced");
        Ok(Reply::from_stored(stored_json(StatusCode::OK, &clock_view(deps)), false))
    })
    .await
}
