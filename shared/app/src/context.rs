//! What use cases and handlers work with, split by capability so each function builds only
//! what it uses: [`Core`] (a store, business time, keys, settings) for everything, plus
//! [`Payments`] for the hosted page and a queue or sender only where webhooks move.
//!
//! `Core` is generic over its store: a Lambda function names the concrete DynamoDB store,
//! so only the store methods its handler calls are linked into it; the local server uses
//! `Core<dyn Store>` and mounts everything.

use std::sync::Arc;

use crate::auth::TokenSigner;
use crate::clock::{Clock, TestClock};
use crate::limiter::FailureLimiter;
use crate::processor::{Notifier, PaymentProcessor};

/// Settings of one deployment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of hosted pages, e.g. `http://127.0.0.1:3000`.
    pub public_url: String,
    /// Sandbox mode: test clock and sandbox endpoints exist.
    pub sandbox: bool,
    /// Local server only (`--allow-private-webhooks`): http and private receivers.
    pub allow_private_webhooks: bool,
}

/// The capabilities every use case may rely on.
pub struct Core<S: ?Sized> {
    pub store: Arc<S>,
    /// Business time: expiry, schedules, retries. Follows the test clock in sandbox.
    pub clock: Arc<dyn Clock>,
    /// Present in sandbox mode only.
    pub test_clock: Option<TestClock>,
    /// Token signing and verification, sealing of stored secrets, keyed derivations.
    pub keys: Arc<TokenSigner>,
    pub config: Config,
    /// Failed client authentications per client id and source address (wall clock).
    pub auth_failures: Arc<FailureLimiter>,
}

// Not derived: a derive would require `S: Clone`, and `S` is usually a store or `dyn Store`.
impl<S: ?Sized> Clone for Core<S> {
    fn clone(&self) -> Self {
        Core {
            store: self.store.clone(),
            clock: self.clock.clone(),
            test_clock: self.test_clock.clone(),
            keys: self.keys.clone(),
            config: self.config.clone(),
            auth_failures: self.auth_failures.clone(),
        }
    }
}

/// The payment side: a processor (the sandbox, or a PSP connector) and the notifier that
/// sends one-time codes.
#[derive(Clone)]
pub struct Payments {
    pub processor: Arc<dyn PaymentProcessor>,
    pub notifier: Arc<dyn Notifier>,
}

impl Payments {
    /// The built-in sandbox processor and the log-only notifier.
    pub fn sandbox() -> Payments {
        Payments { processor: Arc::new(crate::processor::SandboxProcessor), notifier: Arc::new(crate::processor::LogNotifier) }
    }
}
