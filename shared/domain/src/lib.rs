//! paysession's domain: the rules of payment sessions, free of IO.
//!
//! Everything here is deterministic given its inputs; the current time is always passed
//! in (see [`clock::Clock`]) so rules can be tested at any instant.

// Money is integer minor units end to end; a float here would be a rounding bug.
#![deny(clippy::float_arithmetic)]

pub mod attempt;
pub mod card;
pub mod clock;
pub mod create;
pub mod errors;
pub mod event;
pub mod fields;
pub mod iban;
pub mod json;
pub mod lifecycle;
pub mod mandate;
pub mod model;
pub mod money;
pub mod payment;
pub mod reference_data;
pub mod refund;
pub mod rfc3339;
pub mod schedule;
pub mod session;
pub mod signed_requests;
pub mod webhook;

pub use create::{MerchantPolicy, SessionSpec, parse_create_session};
pub use errors::{FieldCode, FieldError};
pub use lifecycle::{ExpirationMode, PaymentType, SessionEvent, SessionStatus, transition};
