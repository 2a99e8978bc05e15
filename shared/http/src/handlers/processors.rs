//! `POST /v1/processors/stripe/webhooks/{merchant_id}`: a processor's webhooks about a
//! merchant's payments and refunds. No API token: the processor's signature over the
//! exact body, checked with the merchant's webhook secret, is the authentication.

use http::StatusCode;
use paysession_app::Core;
use paysession_app::Payments;
use paysession_app::ports::{MandateStore, MerchantStore, ProcessorEventLog, RefundStore, SessionStore, SettingsStore};
use paysession_app::processor::WebhookRejected;
use paysession_app::processor_webhooks::{ReceiveError, Received, receive};
use serde_json::json;

use crate::problem::ApiError;
use crate::reply::Reply;
use crate::request::Call;

/// The processor this route serves (its connector's name).
const STRIPE: &str = "stripe";

pub async fn stripe_webhook<S: SessionStore + MandateStore + RefundStore + MerchantStore + SettingsStore + ProcessorEventLog + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    call: &Call<'_>,
) -> Result<Reply, ApiError> {
    let merchant_id = call.param("merchant_id");
    let headers: Vec<(String, String)> =
        call.req.headers().iter().filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))).collect();
    match receive(cx, pay, STRIPE, merchant_id, &headers, call.body_bytes()).await {
        Ok(Received::Applied(event_type)) => Ok(Reply::json(StatusCode::OK, &json!({"received": true, "type": event_type}))),
        Ok(Received::Duplicate) => Ok(Reply::json(StatusCode::OK, &json!({"received": true, "duplicate": true}))),
        Err(ReceiveError::NotConfigured(p)) => {
            Err(ApiError::NotFound(format!("no {p} processor is configured for merchant {merchant_id}")))
        }
        // Answered 400 so the processor shows the failure; it retries, and a wrong secret
        // fixed by the operator then succeeds.
        Err(ReceiveError::Rejected(
            e @ (WebhookRejected::BadSignature(_) | WebhookRejected::Malformed(_) | WebhookRejected::Unsupported),
        )) => {
            tracing::warn!(merchant_id, error = %e, "processor webhook refused");
            Err(ApiError::MalformedRequest(e.to_string()))
        }
        Err(ReceiveError::Rejected(WebhookRejected::Unavailable(_))) => Err(ApiError::ProcessorUnavailable),
        Err(ReceiveError::Store(e)) => Err(ApiError::Internal(e.to_string())),
    }
}
