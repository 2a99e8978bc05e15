//! Lambda entry point of the webhook dispatcher: one delivery attempt per SQS message,
//! retries by the message's visibility timeout, exhausted deliveries to the DLQ.

use paysession_runtime::aws::sqs::handle_sqs_event;
use paysession_runtime::{dispatcher_queues, webhook_sender};

/// `webhook-timestamp` is wall-clock time: receivers compare it with their own clock.
static WALL: paysession_runtime::SystemClock = paysession_runtime::SystemClock;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::events(&["PAYSESSION_WEBHOOK_QUEUE_URL", "PAYSESSION_WEBHOOK_DLQ_URL"], |f, event| {
        let queues = dispatcher_queues(f).expect("both queue URLs are checked at init");
        Box::pin(async move { Ok(handle_sqs_event(&f.core, webhook_sender(f.env.allow_private_webhooks), &WALL, queues, event).await) })
    })
}
