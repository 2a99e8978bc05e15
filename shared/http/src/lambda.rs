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

/// One invocation: what the runtime calls for each API Gateway event.
pub async fn invoke(route: Route, deps: &Deps, req: Request) -> Response<Body> {
    let info = route.info();
    // API Gateway already routed the request here; the path gives the parameters.
    let params = match_path(info.path, req.uri().path()).unwrap_or_default();
    crate::dispatch::handle(deps, info, params, req).await
}

/// JSON logs for CloudWatch, level from `RUST_LOG` (default info).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt().json().with_env_filter(filter).without_time().with_target(false).try_init();
}
