//! Lambda entry point of `GET /v1/payment_sessions/{id}/events`. The handler is named here, so it is the only one
//! linked into this binary; configuration is read once per cold start by the runtime.

use paysession_http::handlers::sessions;
use paysession_http::pipeline::api;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::http("session-events", |f, info, params, req| {
        Box::pin(api(&f.core, &f.core.keys, info, params, req, |cx, p, call| Box::pin(sessions::events(cx, p, call))))
    })
}
