//! The hosted page's defences: CSP with a per-response nonce and `frame-ancestors` from the
//! session's HTTPS allowed domains, CSRF tokens on every form, and the launch check that
//! decides whether the customer must enter a one-time code.
//!
//! Verification is carried in a signed, expiring proof (`v`) on every form and redirect
//! rather than in a cookie: inside a merchant's iframe, third-party cookies are blocked.

use chrono::{DateTime, Duration, Utc};
use paysession_app::auth::TokenSigner;
use paysession_app::ids::constant_eq;
use paysession_domain::session::PaymentSession;

use crate::request::Call;

const PROOF_VALIDITY: Duration = Duration::minutes(30);

pub fn nonce() -> String {
    paysession_app::ids::new_token()[..22].to_string()
}

/// `Content-Security-Policy` for a page of `session`.
pub fn csp(session: Option<&PaymentSession>, nonce: &str) -> String {
    let ancestors: Vec<&str> =
        session.map(|s| s.spec.allowed_domains.iter().filter(|d| d.is_origin()).map(|d| d.as_str()).collect()).unwrap_or_default();
    let frame_ancestors = if ancestors.is_empty() { "'none'".to_string() } else { ancestors.join(" ") };
    // Form submissions may end in a redirect to the merchant's success or cancel URL.
    let mut form_action = vec!["'self'".to_string()];
    for url in session.iter().flat_map(|s| [&s.spec.success_url, &s.spec.cancel_url]).flatten() {
        if let Some(origin) = origin_of(url) {
            form_action.push(origin);
        }
    }
    format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self' data:; \
         form-action {}; frame-ancestors {frame_ancestors}; base-uri 'none'",
        form_action.join(" ")
    )
}

/// `scheme://host[:port]` of an absolute URL.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}").to_ascii_lowercase())
}

fn mac(keys: &TokenSigner, purpose: &str, data: &str) -> String {
    keys.derive(&format!("{purpose}:{data}"))
}

/// The CSRF token of a session's forms (bound to the page token's hash).
pub fn csrf_token(keys: &TokenSigner, session: &PaymentSession) -> String {
    mac(keys, "csrf", session.page_token_hash.as_deref().unwrap_or(&session.id))
}

pub fn csrf_ok(keys: &TokenSigner, session: &PaymentSession, submitted: Option<&str>) -> bool {
    let expected = csrf_token(keys, session);
    submitted.is_some_and(|s| constant_eq(s.as_bytes(), expected.as_bytes()))
}

/// A proof that this browser passed the launch check or the OTP, valid 30 minutes.
pub fn issue_proof(keys: &TokenSigner, session: &PaymentSession, now: DateTime<Utc>) -> String {
    let exp = (now + PROOF_VALIDITY).timestamp();
    format!("{exp}.{}", mac(keys, "verified", &format!("{}:{exp}", session.id)))
}

pub fn proof_ok(keys: &TokenSigner, session: &PaymentSession, proof: Option<&str>, now: DateTime<Utc>) -> bool {
    let Some((exp, sig)) = proof.and_then(|p| p.split_once('.')) else { return false };
    let Ok(exp_ts) = exp.parse::<i64>() else { return false };
    exp_ts > now.timestamp() && constant_eq(sig.as_bytes(), mac(keys, "verified", &format!("{}:{exp}", session.id)).as_bytes())
}

/// Whether the page was launched from one of the session's allowed domains: a web origin
/// (from `Origin` or `Referer`) or an app id (`app_id` query parameter of a webview).
pub fn launched_from_allowed(session: &PaymentSession, call: &Call<'_>, app_id: Option<&str>) -> bool {
    if let Some(app) = app_id
        && session.spec.allowed_domains.iter().any(|d| !d.is_origin() && d.as_str() == app)
    {
        return true;
    }
    let origin = call.header("origin").map(str::to_string).or_else(|| call.header("referer").and_then(origin_of));
    origin.is_some_and(|o| session.spec.allowed_domains.iter().any(|d| d.is_origin() && d.as_str().eq_ignore_ascii_case(&o)))
}
