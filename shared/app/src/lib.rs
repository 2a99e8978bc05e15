//! Ports and use cases of paysession: everything that is not pure domain and not a
//! specific adapter (SQLite, DynamoDB) or transport (HTTP).

pub mod auth;
pub mod clock;
pub mod expiry;
pub mod ids;
pub mod merchants;
pub mod ports;
pub mod processor;
pub mod secret;
pub mod sessions;
pub mod webhooks;

pub use ports::{Deps, StoreError};
