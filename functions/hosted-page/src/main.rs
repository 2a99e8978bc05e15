//! Lambda entry point of the hosted payment page (`/pay/{token}…`, six routes). Only the
//! page and the sandbox processor are linked into this binary.

use paysession_http::page;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::http("hosted-page", |f, info, params, req| {
        Box::pin(page::serve(&f.core, paysession_runtime::payments(&f.core.store), info, params, req))
    })
}
