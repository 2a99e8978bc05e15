//! Lambda entry point: configuration and clients are built once per cold start in
//! `paysession_runtime::serve`; the handler lives in `paysession-http`.

// A Lambda sandbox serves one request at a time: a single-threaded runtime avoids
// cross-thread hand-offs on every invocation.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::serve(paysession_http::Route::GetSession).await
}
