//! paysession's domain: the rules of payment sessions, free of IO.
//!
//! Everything here is deterministic given its inputs; the current time is always passed
//! in (see [`clock::Clock`]) so rules can be tested at any instant.

pub mod card;
pub mod clock;
pub mod create;
pub mod errors;
pub mod fields;
pub mod iban;
pub mod json;
pub mod lifecycle;
pub mod model;
pub mod money;
pub mod payment;
pub mod reference_data;
pub mod session;
pub mod webhook;

pub use create::{parse_create_session, MerchantPolicy, SessionSpec};
pub use errors::{FieldCode, FieldError};
pub use lifecycle::{transition, ExpirationMode, PaymentType, SessionEvent, SessionStatus};
