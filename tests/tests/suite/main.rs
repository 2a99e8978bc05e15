//! The integration suite as one test binary. Each module was its own binary, each linking the
//! AWS SDK, SQLite and the whole API (~70 MB apiece in debug) with a link step of its own;
//! with incremental caches off as well, a clean `scripts/test` leaves a 3.0 GB target
//! directory instead of 5.7 GB. nextest still runs every test in its own process.

mod contract_docs;
mod contract_dynamodb;
mod contract_embedded;
mod detach_crash;
mod dynamo_wire;
mod event_bus;
mod faults;
mod faults_local;
mod faults_pipeline;
mod function_linking;
mod functions_dynamodb;
mod hosted_page;
mod idempotency;
mod lambda_events;
mod lambda_logs;
mod lifecycle;
mod mandates;
mod oauth;
mod openapi_conformance;
mod reconcile_aws;
mod recurring;
mod refunds;
mod scheduler_aws;
mod sessions;
mod signed_requests;
mod soft_declines;
mod stream_and_queue;
mod stripe_connector;
mod stripe_fixtures;
mod stripe_flow;
mod table_init;
mod virtual_accounts;
mod webhooks;
