//! Lambda entry point of `GET /v1/refunds`. The handler is named here, so it is the only one
//! linked into this binary; configuration is read once per cold start by the runtime.

use paysession_http::handlers::payments;
use paysession_http::pipeline::api;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::http("refund-list", |f, info, params, req| {
        Box::pin(api(&f.core, &f.core.keys, info, params, req, |cx, p, call| Box::pin(payments::list_refunds(cx, p, call))))
    })
}
