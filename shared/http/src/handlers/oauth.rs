//! `POST /oauth/token`: the client-credentials grant (RFC 6749 §4.4), errors per §5.2.

use base64::Engine;
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use paysession_app::Core;
use paysession_app::auth::{self, OAuthError, scopes_to_string};
use paysession_app::limiter::CLIENT_AUTH;
use paysession_app::ports::{AttemptLimiter, MerchantStore};
use serde_json::json;

use crate::request::{Call, parse_form, percent_decode};

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache")
        .body(Body::Text(json!({"error": error, "error_description": description}).to_string()))
        .expect("static parts");
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"paysession\""));
    }
    resp
}

fn too_many_failures(retry_after_secs: u64) -> Response<Body> {
    let mut resp = oauth_error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        "too many failed client authentications for this client from this address, or from this address; \
         retry after the Retry-After seconds (a correct secret is never refused)",
    );
    let seconds = retry_after_secs.to_string();
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(&seconds).expect("digits"));
    resp
}

fn invalid_request(description: &str) -> Response<Body> {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_credentials(header_value: &str) -> Option<(String, String)> {
    let encoded = header_value.strip_prefix("Basic ").or_else(|| header_value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((percent_decode(id)?, percent_decode(secret)?))
}

pub async fn token<S: MerchantStore + AttemptLimiter + ?Sized>(cx: &Core<S>, call: &Call<'_>) -> Response<Body> {
    let ct = call.header("content-type").unwrap_or("");
    if !ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return invalid_request("send the parameters as application/x-www-form-urlencoded");
    }
    let Some(form) = parse_form(call.body_bytes()) else {
        return invalid_request("the form body is not valid percent-encoded UTF-8");
    };
    // RFC 6749 §3.2: parameters must not be repeated.
    for (i, (name, _)) in form.iter().enumerate() {
        if form[..i].iter().any(|(earlier, _)| earlier == name) {
            return invalid_request(&format!("parameter {name} is repeated"));
        }
    }
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let (grant_type, scope, form_id, form_secret) = (get("grant_type"), get("scope"), get("client_id"), get("client_secret"));
    match grant_type {
        None => return invalid_request("grant_type is required"),
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only client_credentials is supported");
        }
    }
    let basic = call.header("authorization").map(basic_credentials);
    let (client_id, secret) = match (basic, form_id, form_secret) {
        (Some(Some(_)), Some(_), _) | (Some(Some(_)), _, Some(_)) => {
            return invalid_request("authenticate with either HTTP Basic or form parameters, not both");
        }
        (Some(None), _, _) => {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "the Authorization header is not valid Basic credentials");
        }
        (Some(Some(creds)), None, None) => creds,
        (None, Some(id), Some(secret)) => (id.to_string(), secret.to_string()),
        (None, _, _) => {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication is required (HTTP Basic)");
        }
    };
    // Failures are counted after the secret is checked, so a correct secret is never
    // refused however many failed before it; they follow the wall clock, as tokens do.
    let now = chrono::Utc::now();
    let source = call.client_ip().map(|ip| ip.to_string()).unwrap_or_default();
    let client = match auth::find_client(cx.store.as_ref(), &client_id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "client lookup failed");
            return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "try again later");
        }
    };
    let tokens = cx.keys.clone();
    let scope = scope.map(str::to_string);
    let legacy = client.as_ref().is_some_and(|c| auth::TokenSigner::is_legacy_hash(&c.secret_hash));
    let outcome = if legacy {
        // An Argon2 record of an earlier version takes tens of milliseconds of CPU: that
        // work is counted before it is done (a success counts once; the record is then
        // rewritten in the keyed form below), and run off the async executor.
        if let Some(refused) = count_failure(cx, &source, &client_id, now).await {
            return refused;
        }
        tokio::task::spawn_blocking(move || auth::grant(client, &secret, scope.as_deref(), &tokens)).await
    } else {
        Ok(auth::grant(client, &secret, scope.as_deref(), &tokens))
    };
    if let Ok(Ok(grant)) = &outcome
        && let Some(rehashed) = &grant.rehashed
        && let Err(e) = cx.store.put_client(rehashed).await
    {
        tracing::warn!(error = %e, "could not rewrite a legacy client secret hash; it is retried on the next use");
    }
    if matches!(outcome, Ok(Err(OAuthError::InvalidClient)))
        && !legacy
        && let Some(refused) = count_failure(cx, &source, &client_id, now).await
    {
        return refused;
    }
    match outcome {
        Ok(Ok(grant)) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "no-store")
            .header(header::PRAGMA, "no-cache")
            .body(Body::Text(
                json!({
                    "access_token": grant.access_token.expose(),
                    "token_type": "Bearer",
                    "expires_in": auth::expires_in(),
                    "scope": scopes_to_string(&grant.scopes),
                })
                .to_string(),
            ))
            .expect("static parts"),
        Ok(Err(OAuthError::InvalidClient)) => oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client or wrong secret"),
        Ok(Err(OAuthError::InvalidScope)) => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "scope must be a space-separated subset of the client's scopes: sessions:read sessions:write mandates:write webhooks:manage",
        ),
        Ok(Err(OAuthError::Store(e))) => {
            tracing::error!(error = %e, "token grant failed");
            oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "try again later")
        }
        Err(e) => {
            tracing::error!(error = %e, "token grant task failed");
            oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "try again later")
        }
    }
}

/// Counts a failed authentication of `client_id` from `source`: `Some(429)` when the
/// source has used up its limit. A store error is logged and not held against the caller
/// (the request fails as it would anyway).
async fn count_failure<S: AttemptLimiter + ?Sized>(
    cx: &Core<S>,
    source: &str,
    client_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Response<Body>> {
    match cx.store.count_failure(&CLIENT_AUTH, source, client_id, now).await {
        Ok(true) => None,
        Ok(false) => Some(too_many_failures(CLIENT_AUTH.retry_after_secs(now))),
        Err(e) => {
            tracing::warn!(error = %e, "failed authentication not counted");
            None
        }
    }
}
