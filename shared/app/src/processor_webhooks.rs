//! Webhooks from a merchant's processor (`POST /v1/processors/{processor}/webhooks/{merchant}`):
//! verified by the merchant's processor, deduplicated by the processor's event id, and
//! applied as a sync's answer would be. Every effect only moves an object forward, so an
//! event that arrives late or out of order changes nothing.

use chrono::{Duration, Utc};

use crate::context::{Core, Payments};
use crate::ports::{MandateStore, MerchantStore, ProcessorEventLog, RefundStore, SessionStore, SettingsStore, StoreError};
use crate::processor::{ProcessorEventKind, WebhookRejected};

/// How long an event id is remembered (Stripe retries a delivery for up to 3 days).
pub const DEDUPLICATION: Duration = Duration::days(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Verified and applied (or nothing of ours to apply it to): the event's type.
    Applied(String),
    /// Seen before: nothing done.
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The merchant does not exist or is not on this processor.
    #[error("no {0} processor is configured for this merchant")]
    NotConfigured(String),
    #[error(transparent)]
    Rejected(#[from] WebhookRejected),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn receive<S: SessionStore + MandateStore + RefundStore + MerchantStore + SettingsStore + ProcessorEventLog + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    processor: &str,
    merchant_id: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Received, ReceiveError> {
    // Also after the merchant moved back to the sandbox: its payments made here still change.
    let p = match pay.directory.as_ref() {
        Some(d) => d.named(merchant_id, processor).await?,
        None => None,
    };
    let Some(p) = p else { return Err(ReceiveError::NotConfigured(processor.to_string())) };
    // The processor signs with the wall clock, not a sandbox test clock.
    let event = p.incoming_webhook(headers, body, Utc::now()).await?;
    let key = format!("{processor}:{merchant_id}:{}", event.id);
    if !cx.store.first_sight(&key, Utc::now() + DEDUPLICATION).await? {
        return Ok(Received::Duplicate);
    }
    let cx = cx.at_merchant(merchant_id).await?;
    if let Err(e) = apply(&cx, merchant_id, event.kind).await {
        if let Err(forget) = cx.store.forget(&key).await {
            tracing::error!(error = %forget, event_id = %event.id, "could not forget a processor event whose effect failed");
        }
        return Err(e.into());
    }
    tracing::info!(processor, event_id = %event.id, event_type = %event.event_type, "processor event applied");
    Ok(Received::Applied(event.event_type))
}

async fn apply<S: SessionStore + MandateStore + RefundStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    kind: ProcessorEventKind,
) -> Result<(), StoreError> {
    let failure = |e: crate::payments::PaymentFailure| match e {
        crate::payments::PaymentFailure::Store(e) => Err(e),
        // The domain refused the step (the session moved on): nothing to apply.
        crate::payments::PaymentFailure::Refused(e) => {
            tracing::info!(error = %e, "processor event does not apply");
            Ok(())
        }
    };
    match kind {
        ProcessorEventKind::Payment { session_id, payment_id, answer } => {
            crate::payments::processor_reports(cx, merchant_id, &session_id, &payment_id, answer).await.map(drop).or_else(failure)
        }
        ProcessorEventKind::Dispute { session_id, payment_id, dispute } => {
            crate::payments::record_dispute(cx, merchant_id, &session_id, &payment_id, dispute).await.map(drop).or_else(failure)
        }
        ProcessorEventKind::Refund { refund_id, status, failure_reason } => {
            match crate::refunds::processor_reports(cx, merchant_id, &refund_id, status, failure_reason).await {
                Ok(_) => Ok(()),
                Err(crate::refunds::RefundError::Store(e)) => Err(e),
                // Not ours, or a state the refund has left (an out-of-order event).
                Err(e) => {
                    tracing::info!(refund_id, error = %e, "processor refund event does not apply");
                    Ok(())
                }
            }
        }
        ProcessorEventKind::Ignored => Ok(()),
    }
}
