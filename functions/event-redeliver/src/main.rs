//! Lambda entry point of `POST /v1/events/{id}/redeliver`. The handler is named here, so it is the only one
//! linked into this binary; configuration is read once per cold start by the runtime.

use paysession_http::handlers::events;
use paysession_http::pipeline::api;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::http("event-redeliver", |f, info, params, req| {
        let queue = paysession_runtime::static_queue(f);
        Box::pin(api(&f.core, &f.core.keys, info, params, req, move |cx, p, call| Box::pin(events::redeliver(cx, queue, p, call))))
    })
}
