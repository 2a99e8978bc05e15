//! Lambda entry point of `POST /v1/payments/{id}/capture`. The handler is named here, so it is the only one
//! linked into this binary; configuration is read once per cold start by the runtime.

use paysession_http::handlers::payments;
use paysession_http::pipeline::api;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::http("payment-capture", |f, info, params, req| {
        let pay = paysession_runtime::payments(&f.core.store);
        Box::pin(api(&f.core, &f.core.keys, info, params, req, move |cx, p, call| Box::pin(payments::capture(cx, pay, p, call))))
    })
}
