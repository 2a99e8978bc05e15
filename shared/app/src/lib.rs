//! Ports and use cases of paysession: everything that is not pure domain and not a
//! specific adapter (SQLite, DynamoDB) or transport (HTTP).

pub mod auth;
pub mod captures;
pub mod clock;
pub mod context;
pub mod entities;
pub mod expiry;
pub mod idempotency;
pub mod ids;
pub mod limiter;
pub mod mandates;
pub mod merchants;
pub mod otp;
pub mod payments;
pub mod ports;
pub mod processor;
pub mod processor_config;
pub mod processor_webhooks;
pub mod recent;
pub mod reconcile;
pub mod recurring;
pub mod refunds;
pub mod retry;
pub mod secret;
pub mod sessions;
pub mod signing;
pub mod webhooks;

pub use context::{Config, Core, Payments};
pub use ports::{Store, StoreError};
