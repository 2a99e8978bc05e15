//! The payment-processor port and the built-in sandbox processor.
//!
//! The seam: the hosted page and the API speak only in [`Outcome`]s. A real PSP connector
//! implements [`PaymentProcessor`] (card authorisation with its 3-D Secure step, redirect
//! methods, off-session charges with stored tokens) and replaces [`SandboxProcessor`] in
//! `Payments`; nothing in the domain changes.

use async_trait::async_trait;
use paysession_domain::card::CardInput;

/// What the processor said about a payment step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Paid. `token` is a reusable processor token for saving the method.
    Succeeded {
        token: Option<String>,
    },
    Failed {
        code: &'static str,
    },
    /// The customer must act (3-D Secure challenge, wallet approval, bank page).
    RequiresAction,
    /// Submitted; the result arrives later (bank transfer settlement).
    Processing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectMethod {
    Ewallet,
    BankTransfer,
}

#[async_trait]
pub trait PaymentProcessor: Send + Sync {
    /// Authorises a card payment of `amount` minor units.
    async fn authorize_card(&self, card: &CardInput, amount: i64, currency: &str, save: bool) -> Outcome;
    /// The result of a 3-D Secure challenge for a card that required one; with `save`, a
    /// success carries a reusable token as `authorize_card`'s does.
    async fn complete_authentication(&self, approved: bool, save: bool) -> Outcome;
    /// Starts a wallet or bank payment: the customer is sent to the provider's page.
    async fn start_redirect(&self, method: RedirectMethod) -> Outcome;
    /// The customer's decision on the provider's page.
    async fn provider_decision(&self, method: RedirectMethod, approved: bool) -> Outcome;
    /// A bank transfer submitted earlier has settled.
    async fn settle(&self) -> Outcome;
    /// Charges a saved method with no customer present.
    async fn charge_saved(&self, token: &str, amount: i64, currency: &str) -> Outcome;
}

/// Card numbers with special behaviour in the sandbox (API.md).
pub mod test_cards {
    pub const SUCCEEDS: &str = "4242424242424242";
    pub const DECLINED: &str = "4000000000000002";
    pub const INSUFFICIENT_FUNDS: &str = "4000000000009995";
    pub const THREE_DS: &str = "4000002760003184";
    pub const PROCESSING_ERROR: &str = "4000000000000119";
    pub const OFF_SESSION_DECLINES: &str = "4000000000000341";
}

/// Simulates a card network, wallets and banks deterministically.
pub struct SandboxProcessor;

const OFF_SESSION_DECLINE_MARK: &str = "tok_sandbox_offdecline_";

#[async_trait]
impl PaymentProcessor for SandboxProcessor {
    async fn authorize_card(&self, card: &CardInput, _amount: i64, _currency: &str, save: bool) -> Outcome {
        let token = |mark: &str| save.then(|| format!("{mark}{}", crate::ids::new_token()));
        match card.number.digits() {
            test_cards::DECLINED => Outcome::Failed { code: "card_declined" },
            test_cards::INSUFFICIENT_FUNDS => Outcome::Failed { code: "insufficient_funds" },
            test_cards::PROCESSING_ERROR => Outcome::Failed { code: "processing_error" },
            test_cards::THREE_DS => Outcome::RequiresAction,
            test_cards::OFF_SESSION_DECLINES => Outcome::Succeeded { token: token(OFF_SESSION_DECLINE_MARK) },
            _ => Outcome::Succeeded { token: token("tok_sandbox_") },
        }
    }

    async fn complete_authentication(&self, approved: bool, save: bool) -> Outcome {
        if approved {
            Outcome::Succeeded { token: save.then(|| format!("tok_sandbox_{}", crate::ids::new_token())) }
        } else {
            Outcome::Failed { code: "authentication_failed" }
        }
    }

    async fn start_redirect(&self, _method: RedirectMethod) -> Outcome {
        Outcome::RequiresAction
    }

    async fn provider_decision(&self, method: RedirectMethod, approved: bool) -> Outcome {
        match (method, approved) {
            (RedirectMethod::Ewallet, true) => Outcome::Succeeded { token: None },
            (RedirectMethod::BankTransfer, true) => Outcome::Processing,
            (RedirectMethod::Ewallet, false) => Outcome::Failed { code: "wallet_declined" },
            (RedirectMethod::BankTransfer, false) => Outcome::Failed { code: "bank_declined" },
        }
    }

    async fn settle(&self) -> Outcome {
        Outcome::Succeeded { token: None }
    }

    async fn charge_saved(&self, token: &str, _amount: i64, _currency: &str) -> Outcome {
        if token.starts_with(OFF_SESSION_DECLINE_MARK) {
            Outcome::Failed { code: "card_declined" }
        } else {
            Outcome::Succeeded { token: None }
        }
    }
}

/// Sends one-time codes to customers.
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn send_code(&self, session_id: &str, destination: &str, code: &str);
}

/// The local notifier: logs that a code was sent, never the code (the sandbox exposes it
/// through `GET /sandbox/otp` instead).
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn send_code(&self, session_id: &str, destination: &str, _code: &str) {
        tracing::info!(session_id, destination, "one-time code sent (sandbox: GET /sandbox/otp?session_id=…)");
    }
}
