//! The request pipeline every HTTP function shares: request id, body limit, authentication
//! and scope, the handler, problem+json for errors, common headers and one log line.
//!
//! Handlers are passed in, not looked up: a Lambda function hands its one handler to
//! [`api`], [`public`] or [`raw`], so nothing else is linked into it. The local server
//! mounts every handler through the same functions (`crate::mount`).

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use http::{HeaderValue, header};
use lambda_http::{Body, Request, Response};
use paysession_app::auth::{Principal, TokenError, TokenSigner};
use paysession_domain::signed_requests::RequestParts;

use crate::problem::ApiError;
use crate::reply::Reply;
use crate::request::{Call, MAX_BODY, body_bytes, request_id};
use crate::routes::{Access, Route, RouteInfo};
use crate::trace::TraceContext;

/// Path parameters of a matched route: `("id", "ps_…")`.
pub type Params = Vec<(&'static str, String)>;
/// What an API handler returns, boxed so a function's runtime stays non-generic over it.
pub type ApiFuture<'a> = Pin<Box<dyn Future<Output = Result<Reply, ApiError>> + Send + 'a>>;
/// What a page or token handler returns: a finished response.
pub type RawFuture<'a> = Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;

/// What API handlers get: a context that checks the merchant's request signatures and can
/// take on its business clock (its sandbox test clock), so one merchant's time never
/// moves another's.
pub trait AtMerchant: Sized + Sync {
    /// Boxed: a named future type keeps the handlers' futures provably `Send`.
    fn at_merchant<'a>(&'a self, merchant_id: &'a str) -> MerchantFuture<'a, Self>;
    /// The signed-requests check every authenticated request passes before its handler.
    fn check_signature<'a>(&'a self, merchant_id: &'a str, parts: &'a RequestParts<'a>) -> CheckFuture<'a>;
}

pub type MerchantFuture<'a, C> = Pin<Box<dyn Future<Output = Result<C, paysession_app::ports::StoreError>> + Send + 'a>>;
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ApiError>> + Send + 'a>>;

impl<S: paysession_app::ports::SettingsStore + paysession_app::ports::SigningStore + ?Sized> AtMerchant for paysession_app::Core<S> {
    fn at_merchant<'a>(&'a self, merchant_id: &'a str) -> MerchantFuture<'a, Self> {
        Box::pin(paysession_app::Core::at_merchant(self, merchant_id))
    }
    fn check_signature<'a>(&'a self, merchant_id: &'a str, parts: &'a RequestParts<'a>) -> CheckFuture<'a> {
        Box::pin(async move { Ok(paysession_app::signing::check_request(self, merchant_id, parts).await?) })
    }
}

/// What a signature can cover, as the client addressed the request: the authority from
/// `Host`, the scheme from the proxy in front (API Gateway sets `X-Forwarded-Proto`).
pub fn request_parts(req: &Request) -> RequestParts<'_> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    RequestParts {
        method: req.method().as_str(),
        scheme: req.uri().scheme_str().or_else(|| header("x-forwarded-proto")).unwrap_or("http"),
        authority: header("host").or_else(|| req.uri().authority().map(|a| a.as_str())).unwrap_or(""),
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers().iter().filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?))).collect(),
        body: body_bytes(req.body()),
    }
}

/// An authenticated route: the handler runs only with a valid token holding the route's
/// scope and, where the merchant asks for them, a valid request signature; on the token's
/// merchant's clock.
pub async fn api<C: AtMerchant>(
    cx: &C,
    keys: &TokenSigner,
    info: &RouteInfo,
    params: Params,
    req: Request,
    handler: impl for<'a> Fn(&'a C, &'a Principal, &'a Call<'a>) -> ApiFuture<'a>,
) -> Response<Body> {
    serve(info, params, &req, async |call| match authenticate(keys, call, info.access) {
        Ok(Some(p)) => {
            if let Err(e) = cx.check_signature(&p.merchant_id, &request_parts(call.req)).await {
                return render(Err(e));
            }
            match cx.at_merchant(&p.merchant_id).await {
                Ok(merchant_cx) => render(handler(&merchant_cx, &p, call).await),
                Err(e) => render(Err(e.into())),
            }
        }
        Ok(None) => render(Err(ApiError::Internal("an authenticated route was declared public".into()))),
        Err(e) => e.to_response(),
    })
    .await
}

/// A route without a token (health, the OpenAPI document, sandbox deposits).
pub async fn public<C: ?Sized>(
    cx: &C,
    info: &RouteInfo,
    params: Params,
    req: Request,
    handler: impl for<'a> Fn(&'a C, &'a Call<'a>) -> ApiFuture<'a>,
) -> Response<Body> {
    serve(info, params, &req, async |call| render(handler(cx, call).await)).await
}

/// A route whose handler answers in its own format (HTML pages, the OAuth token endpoint).
pub async fn raw<C: ?Sized>(
    cx: &C,
    info: &RouteInfo,
    params: Params,
    req: Request,
    handler: impl for<'a> Fn(&'a C, &'a Call<'a>) -> RawFuture<'a>,
) -> Response<Body> {
    serve(info, params, &req, async |call| handler(cx, call).await).await
}

async fn serve(info: &RouteInfo, params: Params, req: &Request, respond: impl AsyncFnOnce(&Call<'_>) -> Response<Body>) -> Response<Body> {
    let started = Instant::now();
    let call = Call { request_id: request_id(req), req, params };
    let span = request_span(&call);
    let served = async {
        let mut resp = if body_bytes(req.body()).len() > MAX_BODY { ApiError::PayloadTooLarge.to_response() } else { respond(&call).await };
        finish(&mut resp, &call.request_id, info.route);
        tracing::info!(
            method = %req.method(),
            route = info.path,
            status = resp.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
        resp
    };
    tracing::Instrument::instrument(served, span).await
}

/// The span every line logged while serving a request carries (flattened onto JSON lines,
/// `lambda.rs`). At error level so it exists whatever level lines are filtered at: a warning
/// without its request id would be of little use.
fn request_span(call: &Call<'_>) -> tracing::Span {
    let cold_start = crate::lambda::cold_start();
    let trace = TraceContext::continue_from(call.header("traceparent"), call.header("x-amzn-trace-id"));
    tracing::error_span!(
        "request",
        request_id = %call.request_id,
        trace_id = %trace.trace_id,
        span_id = %trace.span_id,
        cold_start,
        merchant_id = tracing::field::Empty,
    )
}

fn render(result: Result<Reply, ApiError>) -> Response<Body> {
    match result {
        Ok(reply) => reply.into_response(),
        Err(e) => {
            if let ApiError::Internal(detail) = &e {
                tracing::error!(detail, "internal error");
            }
            e.to_response()
        }
    }
}

/// The bearer token's principal, checked against the route's access rule.
pub fn authenticate(keys: &TokenSigner, call: &Call<'_>, access: Access) -> Result<Option<Principal>, ApiError> {
    if access == Access::Public {
        return Ok(None);
    }
    let header = call.header("authorization").ok_or(ApiError::Unauthorized(None))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthorized(Some("the Authorization header must be 'Bearer <token>'".into())))?;
    let principal = keys.verify(token).map_err(|e| {
        ApiError::Unauthorized(Some(match e {
            TokenError::Expired => "the access token has expired; request a new one".into(),
            TokenError::Malformed | TokenError::BadSignature => "the access token is invalid".into(),
        }))
    })?;
    tracing::Span::current().record("merchant_id", principal.merchant_id.as_str());
    if let Access::Scope(scope) = access
        && !principal.has(scope)
    {
        return Err(ApiError::InsufficientScope(scope.as_str()));
    }
    Ok(Some(principal))
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
