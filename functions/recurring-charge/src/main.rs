//! Lambda entry point of recurring charges: the target of each one-time EventBridge
//! Scheduler schedule, charging one occurrence of a scheduled mandate (once, however many
//! times it is invoked).

use paysession_runtime::aws::scheduler::handle_scheduled_charge;
use paysession_runtime::payments;

fn main() -> Result<(), paysession_http::lambda_http::Error> {
    paysession_runtime::events(&[], |f, input| Box::pin(handle_scheduled_charge(&f.core, payments(&f.core.store), input)))
}
