//! Running one route as an AWS Lambda function behind API Gateway (HTTP API).

use lambda_http::{service_fn, Body, Error, Request, Response};
use paysession_app::Deps;

use crate::routes::{match_path, Route};

/// Serves `route` until the runtime stops. `deps` are built once per cold start.
pub async fn serve(route: Route, deps: Deps) -> Result<(), Error> {
    let deps = &deps;
    lambda_http::run(service_fn(move |req: Request| async move { Ok::<Response<Body>, Error>(invoke(route, deps, req).await) }))
        .await
}

/// One invocation: what the runtime calls for each API Gateway event. A function serving
/// several routes (the hosted page, the sandbox) picks the one matching the request among
/// the routes of the same function as `route`.
pub async fn invoke(route: Route, deps: &Deps, req: Request) -> Response<Body> {
    let function = route.info().function;
    let found = crate::routes::table()
        .iter()
        .filter(|i| i.function == function)
        .find_map(|i| (i.method == req.method()).then(|| match_path(i.path, req.uri().path()).map(|p| (i, p))).flatten());
    match found {
        Some((info, params)) => crate::dispatch::handle(deps, info, params, req).await,
        None => crate::dispatch::unrouted(crate::problem::ApiError::NotFound(format!("no route for {}", req.uri().path())), &req),
    }
}

/// JSON logs for CloudWatch, level from `RUST_LOG` (default info).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt().json().with_env_filter(filter).without_time().with_target(false).try_init();
}
