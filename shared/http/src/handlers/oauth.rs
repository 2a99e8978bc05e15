//! `POST /oauth/token`: the client-credentials grant (RFC 6749 §4.4), errors per §5.2.

use base64::Engine;
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use paysession_app::Core;
use paysession_app::auth::{self, OAuthError, scopes_to_string};
use paysession_app::limiter;
use paysession_app::ports::MerchantStore;
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

fn too_many_failures(wait: chrono::Duration) -> Response<Body> {
    let mut resp = oauth_error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        "too many failed client authentications from this client or address; retry after the Retry-After seconds",
    );
    let seconds = wait.num_seconds().max(1).to_string();
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

pub async fn token<S: MerchantStore + ?Sized>(cx: &Core<S>, call: &Call<'_>) -> Response<Body> {
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
    // Failed authentications are limited per client id and per source address, checked
    // before any work; access tokens follow the wall clock, and so do these windows.
    let now = chrono::Utc::now();
    let (client_key, address_key) = (format!("client:{client_id}"), call.client_ip().map(|ip| format!("address:{ip}")));
    let mut limited = vec![(client_key.as_str(), limiter::PER_CLIENT)];
    if let Some(address) = &address_key {
        limited.push((address.as_str(), limiter::PER_ADDRESS));
    }
    if let Err(wait) = cx.auth_failures.attempt(&limited, now) {
        return too_many_failures(wait);
    }
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
        // An Argon2 record of an earlier version takes tens of milliseconds of CPU: off the
        // async executor, once; it is rewritten in the keyed form below.
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
    if !matches!(outcome, Ok(Err(OAuthError::InvalidClient))) {
        cx.auth_failures.succeeded(&limited, now);
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
