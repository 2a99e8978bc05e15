//! Lambda entry point of `/v1/merchant/settings` and `/v1/signing_keys[/{id}]`: the
//! signed-requests setting and the merchant's public keys (scope `keys:manage`).

use paysession_http::handlers::signing;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::http("signing-keys", |f, info, params, req| Box::pin(signing::serve(&f.core, info, params, req)))
}
