//! Lambda entry point of `POST /v1/mandates/{id}/revoke`. The handler is named here, so it is the only one
//! linked into this binary; configuration is read once per cold start by the runtime.

use paysession_http::handlers::mandates;
use paysession_http::pipeline::api;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::http("mandate-revoke", |f, info, params, req| {
        Box::pin(api(&f.core, &f.core.keys, info, params, req, |cx, p, call| Box::pin(mandates::revoke(cx, p, call))))
    })
}
