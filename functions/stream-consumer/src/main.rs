//! Lambda entry point of the table-stream consumer: committed events fan out to webhook
//! endpoints (queued on SQS), TTL deletions of expiry items expire their sessions, changed
//! mandates create and delete their recurring-charge schedules, refunds owed a processor
//! answer and expired authorisations get their reconciliation schedules, and with
//! `PAYSESSION_EVENT_BUS` every event is also put on that EventBridge bus.

use paysession_runtime::aws::scheduler::ScheduleTarget;
use paysession_runtime::aws::stream::{StreamSinks, handle_stream_event};

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    let [group, function, role, dlq, sync] = ScheduleTarget::ENV;
    paysession_runtime::events(&["PAYSESSION_WEBHOOK_QUEUE_URL", group, function, role, dlq, sync], |f, event| {
        Box::pin(async move {
            let sinks = StreamSinks { queue: f.queue(), scheduler: f.scheduler()?, bus: f.bus() };
            Ok(handle_stream_event(&f.core, &sinks, event).await)
        })
    })
}
