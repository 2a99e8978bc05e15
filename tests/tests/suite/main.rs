//! The integration suite as one test binary: each module was its own binary, and twenty
//! binaries that each link the AWS SDK, SQLite and the whole API cost ~1.4 GB of disk and a
//! link step apiece. nextest still runs every test in its own process.

mod contract_docs;
mod contract_dynamodb;
mod contract_embedded;
mod event_bus;
mod function_linking;
mod functions_dynamodb;
mod hosted_page;
mod idempotency;
mod lambda_events;
mod lifecycle;
mod mandates;
mod oauth;
mod openapi_conformance;
mod recurring;
mod scheduler_aws;
mod sessions;
mod signed_requests;
mod soft_declines;
mod stream_and_queue;
mod webhooks;
