//! The request pipeline every API function shares: request id, body limit, auth, the
//! route's handler, problem+json for errors, and one structured log line.

use std::time::Instant;

use http::{header, HeaderValue};
use lambda_http::{Body, Request, Response};
use paysession_app::Deps;

use crate::auth::authenticate;
use crate::handlers::{events, misc, oauth, sandbox, sessions, webhooks};
use crate::problem::ApiError;
use crate::request::{body_bytes, request_id, Call, MAX_BODY};
use crate::routes::{Route, RouteInfo};

/// Serves one request for a known route. Never fails: errors become problem+json.
pub async fn handle(deps: &Deps, info: &RouteInfo, params: Vec<(&'static str, String)>, req: Request) -> Response<Body> {
    let started = Instant::now();
    let call = Call { request_id: request_id(&req), req: &req, params };
    let mut resp = if body_bytes(req.body()).len() > MAX_BODY {
        ApiError::PayloadTooLarge.to_response()
    } else if info.route == Route::OAuthToken {
        oauth::token(deps, &call).await
    } else if info.route.is_page() {
        crate::page::handle(deps, info.route, &call).await
    } else {
        match run(deps, info, &call).await {
            Ok(reply) => reply.into_response(),
            Err(e) => {
                if let ApiError::Internal(detail) = &e {
                    tracing::error!(request_id = %call.request_id, detail, "internal error");
                }
                e.to_response()
            }
        }
    };
    finish(&mut resp, &call.request_id, info.route);
    tracing::info!(
        request_id = %call.request_id,
        method = %req.method(),
        route = info.path,
        status = resp.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    resp
}

/// Headers on every response.
pub fn finish(resp: &mut Response<Body>, request_id: &str, route: Route) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-request-id", v);
    }
    if route != Route::OpenApi {
        h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    }
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
}

async fn run(deps: &Deps, info: &RouteInfo, call: &Call<'_>) -> Result<crate::reply::Reply, ApiError> {
    let principal = authenticate(deps, call, info.access)?;
    let p = || principal.as_ref().expect("authenticated routes have a principal");
    match info.route {
        Route::CreateSession => sessions::create(deps, p(), call).await,
        Route::ListSessions => sessions::list(deps, p(), call).await,
        Route::GetSession => sessions::get(deps, p(), call).await,
        Route::ConfirmSession => sessions::act(deps, p(), call, sessions::ActionKind::Confirm).await,
        Route::CancelSession => sessions::act(deps, p(), call, sessions::ActionKind::Cancel).await,
        Route::ExpireSession => sessions::act(deps, p(), call, sessions::ActionKind::Expire).await,
        Route::SessionEvents => sessions::events(deps, p(), call).await,
        Route::OpenApi => Ok(misc::openapi()),
        Route::Health => Ok(misc::health()),
        Route::TestClockGet => misc::test_clock_get(deps).await,
        Route::TestClockAdvance => misc::test_clock_advance(deps, p(), call).await,
        Route::SandboxDeposit => sandbox::deposit(deps, call).await,
        Route::SandboxQrPay => sandbox::qr_pay(deps, call).await,
        Route::SandboxOtp => sandbox::otp(deps, p(), call).await,
        Route::CreateWebhookEndpoint => webhooks::create(deps, p(), call).await,
        Route::ListWebhookEndpoints => webhooks::list(deps, p(), call).await,
        Route::GetWebhookEndpoint => webhooks::get(deps, p(), call).await,
        Route::DeleteWebhookEndpoint => webhooks::delete(deps, p(), call).await,
        Route::RotateWebhookSecret => webhooks::rotate(deps, p(), call).await,
        Route::ListWebhookDeliveries => webhooks::deliveries(deps, p(), call).await,
        Route::ListEvents => events::list(deps, p(), call).await,
        Route::GetEvent => events::get(deps, p(), call).await,
        Route::RedeliverEvent => events::redeliver(deps, p(), call).await,
        Route::OAuthToken
        | Route::PageView
        | Route::PageCard
        | Route::PageStart
        | Route::PageOtp
        | Route::PageChallenge
        | Route::PageChallengeDecide => unreachable!("handled before authentication"),
    }
}

/// A response for a path no route serves (local server; API Gateway answers these itself).
pub fn unrouted(error: ApiError, req: &Request) -> Response<Body> {
    let mut resp = error.to_response();
    let id = request_id(req);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
