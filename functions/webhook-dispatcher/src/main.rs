//! Lambda entry point of an event-driven function. Configuration and clients are built once
//! per cold start in `paysession_runtime::run_event`; the handler lives in `paysession-aws`.

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::run_event(paysession_runtime::EventFunction::WebhookDispatcher)
}
