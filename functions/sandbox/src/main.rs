//! Lambda entry point of the sandbox endpoints (virtual-account deposits, QR payments, the
//! one-time code), deployed only in sandbox mode.

use paysession_http::handlers::sandbox;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::http("sandbox", |f, info, params, req| Box::pin(sandbox::serve(&f.core, info, params, req)))
}
