//! Lambda entry point of `POST /oauth/token`. The handler is named here, so it is the only one
//! linked into this binary; configuration is read once per cold start by the runtime.

use paysession_http::handlers::oauth;
use paysession_http::pipeline::raw;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::http("oauth-token", |f, info, params, req| {
        Box::pin(raw(&f.core, info, params, req, |cx, call| Box::pin(oauth::token(cx, call))))
    })
}
