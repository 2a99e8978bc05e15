//! Lambda entry point. Configuration and clients are built once per cold start in
//! `paysession_runtime::run`; the handler lives in `paysession-http`.

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::run(paysession_http::Route::GetWebhookEndpoint)
}
