//! Lambda entry point of the table-stream consumer: committed events fan out to webhook
//! endpoints (queued on SQS), TTL deletions of expiry items expire their sessions.

use paysession_runtime::aws::stream::handle_stream_event;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::events(&["PAYSESSION_WEBHOOK_QUEUE_URL"], |f, event| Box::pin(handle_stream_event(&f.core, f.queue(), event)))
}
