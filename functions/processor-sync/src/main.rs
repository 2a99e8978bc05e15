//! Lambda entry point of reconciliation: the target of each one-time EventBridge Scheduler
//! schedule the stream consumer creates for a refund owed a processor answer (it asks the
//! processor by our id and records what it says) or an expired authorisation (it voids it).
//! Replayed invocations find nothing due and do nothing.

use paysession_runtime::aws::scheduler::handle_sync;
use paysession_runtime::payments;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::events(&[], |f, input| Box::pin(handle_sync(&f.core, payments(&f.core.store), input)))
}
