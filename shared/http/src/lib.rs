//! HTTP glue shared by every API function and the local server: the route table, the
//! request pipeline (auth, idempotency, problem+json), the handlers and the hosted page.
//! Handlers parse, call a use case of `paysession-app`, and render.

pub mod handlers;
pub mod lambda;
pub mod mount;
pub mod page;
pub mod pipeline;
pub mod problem;
pub mod reply;
pub mod request;
pub mod routes;
pub mod trace;

pub use lambda_http;
pub use routes::Route;
