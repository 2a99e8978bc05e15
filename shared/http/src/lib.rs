//! HTTP glue shared by every API function and the local server: the route table, the
//! request pipeline (auth, idempotency, problem+json) and the handlers.

pub mod auth;
pub mod dispatch;
pub mod handlers;
pub mod idempotency;
pub mod lambda;
pub mod page;
pub mod problem;
pub mod reply;
pub mod request;
pub mod routes;

pub use lambda_http;
pub use routes::Route;
