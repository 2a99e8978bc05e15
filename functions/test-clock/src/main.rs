//! Lambda entry point of the sandbox test clock (read it, move it forward), deployed in
//! sandbox mode; outside it both routes answer 404.

use paysession_http::handlers::misc;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::http("test-clock", |f, info, params, req| Box::pin(misc::serve_test_clock(&f.core, info, params, req)))
}
