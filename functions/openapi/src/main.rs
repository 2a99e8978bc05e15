//! Lambda entry point of `GET /openapi.json`. The handler is named here, so it is the only one
//! linked into this binary; configuration is read once per cold start by the runtime.

use paysession_http::handlers::misc;
use paysession_http::pipeline::public;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::http("openapi", |f, info, params, req| {
        Box::pin(public(&f.core, info, params, req, |cx, call| Box::pin(misc::openapi(cx, call))))
    })
}
