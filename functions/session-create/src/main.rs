//! Lambda entry point of `POST /v1/payment_sessions`. The handler is named here, so it is the only one
//! linked into this binary; configuration is read once per cold start by the runtime.

use paysession_http::handlers::sessions;
use paysession_http::pipeline::api;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::http("session-create", |f, info, params, req| {
        let pay = paysession_runtime::payments(&f.core.store);
        Box::pin(api(&f.core, &f.core.keys, info, params, req, move |cx, p, call| Box::pin(sessions::create(cx, pay, p, call))))
    })
}
