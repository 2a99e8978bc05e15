//! Lambda entry point of `POST /v1/processors/stripe/webhooks/{merchant_id}`: Stripe's
//! webhooks about a merchant's payments and refunds, verified with the merchant's Stripe
//! webhook secret (read from SSM once per cold start).

use paysession_http::handlers::processors;
use paysession_http::pipeline::public;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::http("processor-webhook", |f, info, params, req| {
        let pay = paysession_runtime::payments(&f.core.store);
        Box::pin(public(&f.core, info, params, req, move |cx, call| Box::pin(processors::stripe_webhook(cx, pay, call))))
    })
}
