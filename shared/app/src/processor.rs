//! The payment-processor port and the built-in sandbox processor.
//!
//! One call per flow (API.md, "Processors"): authorise, complete 3-D Secure, the redirect
//! methods, capture, void, refund, sync of a payment and of a refund, the off-session charge
//! of a saved method, and a seam for the processor's own webhooks. Every call carries our id
//! (`pay_…`, `re_…`) as the processor's idempotency key, so asking twice never moves money
//! twice, and every answer carries the processor's reference. An answer that never came is
//! [`Outcome::Unknown`]: the object stays pending and reconciliation asks again by our id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use paysession_domain::card::CardInput;
use paysession_domain::model::PaymentMethodKind;
use paysession_domain::payment::CaptureMethod;
use paysession_domain::refund::RefundStatus;

/// What the processor said about a payment step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Paid, or authorised when the call asked for manual capture. `token` is a reusable
    /// processor token for saving the method.
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
    /// No answer (timeout, 5xx, connection lost after sending): the processor may or may not
    /// have acted. Never guessed; reconciliation asks again.
    Unknown,
}

/// An outcome with the processor's reference of the payment, when it gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub outcome: Outcome,
    pub reference: Option<String>,
    /// The card network's id of a customer-initiated payment that saved the card: later
    /// merchant-initiated charges quote it (stored with the saved method).
    pub network_transaction_id: Option<String>,
    /// With `RequiresAction`: the processor's own page the customer is sent to (3-D Secure
    /// at the issuer); `None` when the hosted page shows the step itself (the sandbox).
    pub redirect_url: Option<String>,
}

impl Answer {
    pub fn of(outcome: Outcome, reference: Option<String>) -> Answer {
        Answer { outcome, reference, network_transaction_id: None, redirect_url: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectMethod {
    Ewallet,
    BankTransfer,
}

/// A payment as the processor is asked about it: our id is the idempotency key.
#[derive(Debug, Clone, Copy)]
pub struct PaymentCall<'a> {
    pub id: &'a str,
    pub merchant_id: &'a str,
    pub session_id: &'a str,
    /// The merchant's customer reference (a processor keeps saved methods per customer).
    pub customer_id: &'a str,
    /// When the attempt was claimed: a processor that cannot be asked by our id at once
    /// (a search index that lags) tells "not yet visible" from "never received" by it.
    pub claimed_at: DateTime<Utc>,
    /// Where a processor's own page (3-D Secure) sends the customer back to.
    pub return_url: Option<&'a str>,
    pub amount: i64,
    pub currency: &'a str,
    pub method: PaymentMethodKind,
    pub capture: CaptureMethod,
    /// The processor's reference from an earlier answer, if any.
    pub reference: Option<&'a str>,
}

/// A merchant-initiated charge of a saved method.
#[derive(Debug, Clone, Copy)]
pub struct SavedCharge<'a> {
    pub token: &'a str,
    pub mandate_id: Option<&'a str>,
    /// The network transaction id of the first payment, when the processor gave one.
    pub network_transaction_id: Option<&'a str>,
}

/// A refund as the processor is asked about it: our `re_…` id is the idempotency key.
#[derive(Debug, Clone, Copy)]
pub struct RefundCall<'a> {
    pub id: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub payment: PaymentCall<'a>,
    pub created_at: DateTime<Utc>,
    /// The business time of the call (the sandbox follows the test clock).
    pub now: DateTime<Utc>,
}

/// What the processor said about a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    /// A known state (`pending`, `requires_action`, `succeeded`, `failed` with a reason).
    Known { status: RefundStatus, failure_reason: Option<String> },
    /// No answer: the refund stays pending and is synced.
    Unknown,
    /// Asked by our id, the processor has no such refund: its submission never reached it
    /// (a reservation whose processor call never happened). Reconciliation submits it.
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundAnswer {
    pub outcome: RefundOutcome,
    pub reference: Option<String>,
    /// When the processor says the state may still change (a pending refund, or a success
    /// that can still be reversed): reconciliation asks again then.
    pub check_after: Option<Duration>,
}

impl RefundAnswer {
    /// An answer with no reference and nothing to ask again about.
    pub fn of(outcome: RefundOutcome) -> RefundAnswer {
        RefundAnswer { outcome, reference: None, check_after: None }
    }
}

/// Capture and void answers: done, refused with a code, or unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionOutcome {
    Done,
    Failed { code: &'static str },
    Unknown,
}

/// An incoming processor webhook event, verified and parsed into what it says about our
/// objects (found by the ids we gave the processor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorEvent {
    /// The processor's event id: deliveries are deduplicated by it.
    pub id: String,
    pub event_type: String,
    pub kind: ProcessorEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessorEventKind {
    /// A payment's state at the processor, as a sync would have answered.
    Payment { session_id: String, payment_id: String, answer: Answer },
    /// A refund's state at the processor.
    Refund { refund_id: String, status: RefundStatus, failure_reason: Option<String> },
    /// The customer's bank disputes a payment.
    Dispute { session_id: String, payment_id: String, dispute: paysession_domain::payment::Dispute },
    /// A type we do not act on, or an object we did not make.
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRejected {
    #[error("this processor sends no webhooks")]
    Unsupported,
    #[error("the signature does not verify: {0}")]
    BadSignature(String),
    #[error("the event cannot be read: {0}")]
    Malformed(String),
    /// The processor could not be asked about the event's object (a dispute's payment).
    #[error("the processor did not answer: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait PaymentProcessor: Send + Sync {
    /// The name shown as `processor.name` on payments.
    fn name(&self) -> &'static str;
    /// Whether the hosted page may offer `method` to this processor's merchants.
    fn offers(&self, _method: PaymentMethodKind) -> bool {
        true
    }
    /// Authorises a card payment (captured at once unless `call.capture` is manual).
    async fn authorize_card(&self, call: &PaymentCall<'_>, card: &CardInput, save: bool) -> Answer;
    /// The result of a 3-D Secure challenge for a card that required one; with `save`, a
    /// success carries a reusable token as `authorize_card`'s does.
    async fn complete_authentication(&self, call: &PaymentCall<'_>, approved: bool, save: bool) -> Answer;
    /// Starts a wallet or bank payment: the customer is sent to the provider's page.
    async fn start_redirect(&self, call: &PaymentCall<'_>, method: RedirectMethod) -> Answer;
    /// The customer's decision on the provider's page.
    async fn provider_decision(&self, call: &PaymentCall<'_>, method: RedirectMethod, approved: bool) -> Answer;
    /// A bank transfer submitted earlier has settled.
    async fn settle(&self, call: &PaymentCall<'_>) -> Answer;
    /// Charges a saved method with no customer present (merchant-initiated).
    async fn charge_saved(&self, call: &PaymentCall<'_>, saved: &SavedCharge<'_>) -> Answer;
    /// Captures `amount` of an authorisation; the rest is released.
    async fn capture(&self, call: &PaymentCall<'_>, amount: i64) -> ActionOutcome;
    /// Voids an authorisation.
    async fn void(&self, call: &PaymentCall<'_>) -> ActionOutcome;
    /// Refunds part or all of a payment.
    async fn refund(&self, call: &RefundCall<'_>) -> RefundAnswer;
    /// The payment's state at the processor, by our id; `None` when the processor has no
    /// payment of that id (the call never reached it). A success carries the reusable token
    /// of a saved method as the first answer did.
    async fn sync_payment(&self, call: &PaymentCall<'_>) -> Option<Answer>;
    /// The refund's state at the processor, by our id.
    async fn sync_refund(&self, call: &RefundCall<'_>) -> RefundAnswer;
    /// Verifies and parses a webhook the processor sent us, at `now` (wall-clock time: the
    /// processor signs with its clock, not a test clock).
    async fn incoming_webhook(
        &self,
        _headers: &[(String, String)],
        _body: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<ProcessorEvent, WebhookRejected> {
        Err(WebhookRejected::Unsupported)
    }
}

/// The processors merchants configured (operator configuration, API.md "Processors"),
/// built with their secrets on first use and kept for the process's life.
#[async_trait]
pub trait ProcessorDirectory: Send + Sync {
    /// The processor `merchant_id`'s new payments go to; `None`: the sandbox.
    async fn configured(&self, merchant_id: &str) -> Result<Option<Arc<dyn PaymentProcessor>>, crate::ports::StoreError>;
    /// `merchant_id`'s processor named `name`, taking new payments or not (its earlier
    /// payments still go to it); `None` when the merchant has no such processor.
    async fn named(&self, merchant_id: &str, name: &str) -> Result<Option<Arc<dyn PaymentProcessor>>, crate::ports::StoreError>;
}

/// Card numbers with special behaviour in the sandbox (API.md).
pub mod test_cards {
    pub const SUCCEEDS: &str = "4242424242424242";
    pub const DECLINED: &str = "4000000000000002";
    pub const INSUFFICIENT_FUNDS: &str = "4000000000009995";
    pub const THREE_DS: &str = "4000002760003184";
    pub const PROCESSING_ERROR: &str = "4000000000000119";
    pub const OFF_SESSION_DECLINES: &str = "4000000000000341";
    /// Refunds succeed, then fail a day later.
    pub const REFUND_FAILS_LATE: &str = "4000000000005126";
    /// Refund calls time out at the processor (which did refund).
    pub const REFUND_TIMES_OUT: &str = "4000000000000077";
}

/// How long a sandbox card refund stays pending, and how long after success the late-failure
/// card's refund fails.
pub const SANDBOX_REFUND_SETTLES_AFTER: Duration = Duration::seconds(5);
pub const SANDBOX_LATE_FAILURE_AFTER: Duration = Duration::days(1);

/// Calls the sandbox received, by operation and our id: tests count them (a retry must never
/// move money twice; what it did is in its [`SandboxLedger`]), and `GET /sandbox/processor_calls/{id}` shows them. A long-lived
/// process keeps the last [`CallLog::CAPACITY`] ids' worth, not every call it ever served.
#[derive(Debug, Default)]
pub struct CallLog(Mutex<HashMap<(String, String), u32>>);

impl CallLog {
    pub const CAPACITY: usize = 10_000;

    fn note(&self, op: &str, id: &str) {
        let mut calls = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if calls.len() >= Self::CAPACITY {
            calls.clear();
        }
        *calls.entry((op.to_string(), id.to_string())).or_default() += 1;
    }

    /// Calls of each operation made with our id `id`, by operation name.
    pub fn of(&self, id: &str) -> std::collections::BTreeMap<String, u32> {
        let calls = self.0.lock().unwrap_or_else(|p| p.into_inner());
        calls.iter().filter(|((_, i), _)| i == id).map(|((op, _), n)| (op.clone(), *n)).collect()
    }
}

/// The sandbox processor's own record of what it answered, by our id, as a real processor
/// keeps one: in the deployment's store, so a sync made by another process (another Lambda)
/// finds what this one answered. Written before the answer is given: an answer whose record
/// could not be written is no answer (`Unknown`), and the sandbox did not act.
#[async_trait]
pub trait SandboxLedger: Send + Sync {
    async fn record(&self, id: &str, entry: &str) -> Result<(), crate::ports::StoreError>;
    async fn recall(&self, id: &str) -> Result<Option<String>, crate::ports::StoreError>;
}

/// A ledger in this process's memory (bounded like [`CallLog`]): tests and one-process runs.
#[derive(Default)]
pub struct MemoryLedger(Mutex<HashMap<String, String>>);

#[async_trait]
impl SandboxLedger for MemoryLedger {
    async fn record(&self, id: &str, entry: &str) -> Result<(), crate::ports::StoreError> {
        let mut entries = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CallLog::CAPACITY {
            entries.clear();
        }
        entries.insert(id.to_string(), entry.to_string());
        Ok(())
    }
    async fn recall(&self, id: &str) -> Result<Option<String>, crate::ports::StoreError> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned())
    }
}

/// What the ledger keeps of an answer.
#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    /// `succeeded`, `failed`, `requires_action`, `processing`; `refund` for a refund.
    o: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ntid: Option<String>,
    /// The reference given (it carries the behaviour decided at authorisation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
}

/// The sandbox's decline codes (an `Outcome::Failed` code is static).
const SANDBOX_CODES: [&str; 6] =
    ["card_declined", "insufficient_funds", "processing_error", "authentication_failed", "wallet_declined", "bank_declined"];

impl Entry {
    fn of(answer: &Answer) -> Entry {
        let (o, code, token) = match &answer.outcome {
            Outcome::Succeeded { token } => ("succeeded", None, token.clone()),
            Outcome::Failed { code } => ("failed", Some(code.to_string()), None),
            Outcome::RequiresAction => ("requires_action", None, None),
            Outcome::Processing => ("processing", None, None),
            Outcome::Unknown => ("unknown", None, None),
        };
        Entry { o: o.into(), code, token, ntid: answer.network_transaction_id.clone(), r: answer.reference.clone() }
    }

    fn outcome(&self) -> Outcome {
        match self.o.as_str() {
            "succeeded" => Outcome::Succeeded { token: self.token.clone() },
            "failed" => {
                Outcome::Failed { code: SANDBOX_CODES.into_iter().find(|c| Some(*c) == self.code.as_deref()).unwrap_or("processing_error") }
            }
            "requires_action" => Outcome::RequiresAction,
            "processing" => Outcome::Processing,
            _ => Outcome::Unknown,
        }
    }
}

/// Simulates a card network, wallets and banks deterministically. Its references carry what
/// it decided at authorisation (`sbx_<behaviour>_<our id>`), so a refund made by another
/// process (another Lambda) answers the same as this one would; what it answered is kept in
/// its [`SandboxLedger`] to answer syncs.
pub struct SandboxProcessor {
    pub calls: Arc<CallLog>,
    ledger: Arc<dyn SandboxLedger>,
}

impl Default for SandboxProcessor {
    fn default() -> Self {
        SandboxProcessor::on(Arc::new(MemoryLedger::default()))
    }
}

const OFF_SESSION_DECLINE_MARK: &str = "tok_sandbox_offdecline_";

/// What the sandbox remembers of a payment in its reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Normal,
    RefundFailsLate,
    RefundTimesOut,
}

impl Behaviour {
    fn mark(self) -> &'static str {
        match self {
            Behaviour::Normal => "n",
            Behaviour::RefundFailsLate => "l",
            Behaviour::RefundTimesOut => "t",
        }
    }

    fn of_reference(reference: Option<&str>) -> Behaviour {
        match reference.and_then(|r| r.strip_prefix("sbx_")).and_then(|r| r.split('_').next()) {
            Some("l") => Behaviour::RefundFailsLate,
            Some("t") => Behaviour::RefundTimesOut,
            _ => Behaviour::Normal,
        }
    }
}

fn reference(call: &PaymentCall<'_>, behaviour: Behaviour) -> Option<String> {
    Some(call.reference.map(str::to_string).unwrap_or_else(|| format!("sbx_{}_{}", behaviour.mark(), call.id)))
}

/// The sandbox network's id of a payment that saved a card.
fn saved_network_id(call: &PaymentCall<'_>, outcome: &Outcome) -> Option<String> {
    matches!(outcome, Outcome::Succeeded { token: Some(_) }).then(|| format!("sbx_ntid_{}", call.id))
}

impl SandboxProcessor {
    pub fn on(ledger: Arc<dyn SandboxLedger>) -> SandboxProcessor {
        SandboxProcessor { calls: Arc::default(), ledger }
    }

    /// Gives `outcome` as the answer to `call` once it is in the ledger; `Unknown` (the
    /// sandbox did nothing) when it could not be recorded.
    async fn answer_as(&self, op: &str, call: &PaymentCall<'_>, outcome: Outcome, behaviour: Behaviour) -> Answer {
        self.calls.note(op, call.id);
        let network_transaction_id = saved_network_id(call, &outcome);
        let answer = Answer { reference: reference(call, behaviour), outcome, network_transaction_id, redirect_url: None };
        let entry = serde_json::to_string(&Entry::of(&answer)).expect("an entry serialises");
        if let Err(e) = self.ledger.record(call.id, &entry).await {
            tracing::warn!(payment_id = call.id, error = %e, "sandbox ledger write failed; the sandbox answers as if unreachable");
            return Answer::of(Outcome::Unknown, None);
        }
        answer
    }

    async fn answer(&self, op: &str, call: &PaymentCall<'_>, outcome: Outcome) -> Answer {
        self.answer_as(op, call, outcome, Behaviour::of_reference(call.reference)).await
    }

    /// The refund's state at `call.now` by the sandbox's rules: cards (and wallets) settle
    /// after a few seconds; the late-failure card fails a day later; bank methods wait for
    /// `POST /sandbox/refunds/{id}/complete`.
    fn refund_state(&self, call: &RefundCall<'_>) -> RefundAnswer {
        let reference = Some(format!("sbx_re_{}", call.id));
        let age = call.now - call.created_at;
        let (status, failure, check_after) = match (call.payment.method, Behaviour::of_reference(call.payment.reference)) {
            (PaymentMethodKind::VirtualAccount | PaymentMethodKind::Qr | PaymentMethodKind::BankTransfer, _) => {
                (RefundStatus::RequiresAction, None, None)
            }
            (_, _) if age < SANDBOX_REFUND_SETTLES_AFTER => (RefundStatus::Pending, None, Some(SANDBOX_REFUND_SETTLES_AFTER - age)),
            (_, Behaviour::RefundFailsLate) if age >= SANDBOX_LATE_FAILURE_AFTER => {
                (RefundStatus::Failed, Some("expired_or_canceled_card".to_string()), None)
            }
            (_, Behaviour::RefundFailsLate) => (RefundStatus::Succeeded, None, Some(SANDBOX_LATE_FAILURE_AFTER - age)),
            _ => (RefundStatus::Succeeded, None, None),
        };
        RefundAnswer { outcome: RefundOutcome::Known { status, failure_reason: failure }, reference, check_after }
    }
}

#[async_trait]
impl PaymentProcessor for SandboxProcessor {
    fn name(&self) -> &'static str {
        paysession_domain::payment::SANDBOX_PROCESSOR
    }

    async fn authorize_card(&self, call: &PaymentCall<'_>, card: &CardInput, save: bool) -> Answer {
        let token = |mark: &str| save.then(|| format!("{mark}{}", crate::ids::new_token()));
        let behaviour = match card.number.digits() {
            test_cards::REFUND_FAILS_LATE => Behaviour::RefundFailsLate,
            test_cards::REFUND_TIMES_OUT => Behaviour::RefundTimesOut,
            _ => Behaviour::Normal,
        };
        let outcome = match card.number.digits() {
            test_cards::DECLINED => Outcome::Failed { code: "card_declined" },
            test_cards::INSUFFICIENT_FUNDS => Outcome::Failed { code: "insufficient_funds" },
            test_cards::PROCESSING_ERROR => Outcome::Failed { code: "processing_error" },
            test_cards::THREE_DS => Outcome::RequiresAction,
            test_cards::OFF_SESSION_DECLINES => Outcome::Succeeded { token: token(OFF_SESSION_DECLINE_MARK) },
            _ => Outcome::Succeeded { token: token("tok_sandbox_") },
        };
        self.answer_as("authorize", call, outcome, behaviour).await
    }

    async fn complete_authentication(&self, call: &PaymentCall<'_>, approved: bool, save: bool) -> Answer {
        let outcome = if approved {
            Outcome::Succeeded { token: save.then(|| format!("tok_sandbox_{}", crate::ids::new_token())) }
        } else {
            Outcome::Failed { code: "authentication_failed" }
        };
        self.answer("complete_authentication", call, outcome).await
    }

    async fn start_redirect(&self, call: &PaymentCall<'_>, _method: RedirectMethod) -> Answer {
        self.answer("start_redirect", call, Outcome::RequiresAction).await
    }

    async fn provider_decision(&self, call: &PaymentCall<'_>, method: RedirectMethod, approved: bool) -> Answer {
        let outcome = match (method, approved) {
            (RedirectMethod::Ewallet, true) => Outcome::Succeeded { token: None },
            (RedirectMethod::BankTransfer, true) => Outcome::Processing,
            (RedirectMethod::Ewallet, false) => Outcome::Failed { code: "wallet_declined" },
            (RedirectMethod::BankTransfer, false) => Outcome::Failed { code: "bank_declined" },
        };
        self.answer("provider_decision", call, outcome).await
    }

    async fn settle(&self, call: &PaymentCall<'_>) -> Answer {
        self.answer("settle", call, Outcome::Succeeded { token: None }).await
    }

    async fn charge_saved(&self, call: &PaymentCall<'_>, saved: &SavedCharge<'_>) -> Answer {
        // A merchant-initiated charge quotes the network id of the customer's first payment.
        if saved.mandate_id.is_some() && saved.network_transaction_id.is_none() {
            self.calls.note("charge_saved_without_network_id", call.id);
        }
        let outcome = if saved.token.starts_with(OFF_SESSION_DECLINE_MARK) {
            Outcome::Failed { code: "card_declined" }
        } else {
            Outcome::Succeeded { token: None }
        };
        self.answer("charge_saved", call, outcome).await
    }

    async fn capture(&self, call: &PaymentCall<'_>, _amount: i64) -> ActionOutcome {
        self.calls.note("capture", call.id);
        ActionOutcome::Done
    }

    async fn void(&self, call: &PaymentCall<'_>) -> ActionOutcome {
        self.calls.note("void", call.id);
        ActionOutcome::Done
    }

    async fn refund(&self, call: &RefundCall<'_>) -> RefundAnswer {
        self.calls.note("refund", call.id);
        let entry = serde_json::to_string(&Entry { o: "refund".into(), code: None, token: None, ntid: None, r: None }).expect("serialises");
        if let Err(e) = self.ledger.record(call.id, &entry).await {
            tracing::warn!(refund_id = call.id, error = %e, "sandbox ledger write failed; the sandbox answers as if unreachable");
            return RefundAnswer::of(RefundOutcome::Unknown);
        }
        if Behaviour::of_reference(call.payment.reference) == Behaviour::RefundTimesOut {
            // The refund is made; its answer is lost on the way back.
            return RefundAnswer::of(RefundOutcome::Unknown);
        }
        self.refund_state(call)
    }

    async fn sync_payment(&self, call: &PaymentCall<'_>) -> Option<Answer> {
        self.calls.note("sync_payment", call.id);
        let entry = match self.ledger.recall(call.id).await {
            Ok(found) => found?,
            Err(_) => return Some(Answer::of(Outcome::Unknown, None)),
        };
        let Ok(entry) = serde_json::from_str::<Entry>(&entry) else { return Some(Answer::of(Outcome::Unknown, None)) };
        let reference = call.reference.map(str::to_string).or(entry.r.clone());
        Some(Answer { outcome: entry.outcome(), reference, network_transaction_id: entry.ntid.clone(), redirect_url: None })
    }

    async fn sync_refund(&self, call: &RefundCall<'_>) -> RefundAnswer {
        self.calls.note("sync_refund", call.id);
        match self.ledger.recall(call.id).await {
            Ok(Some(_)) => self.refund_state(call),
            Ok(None) => RefundAnswer::of(RefundOutcome::NotFound),
            Err(_) => RefundAnswer::of(RefundOutcome::Unknown),
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn call<'a>(id: &'a str, method: PaymentMethodKind, reference: Option<&'a str>) -> PaymentCall<'a> {
        PaymentCall {
            id,
            merchant_id: "mer_1",
            session_id: "ps_1",
            customer_id: "cus_1",
            claimed_at: Utc::now(),
            return_url: None,
            amount: 1000,
            currency: "EUR",
            method,
            capture: CaptureMethod::Automatic,
            reference,
        }
    }

    #[tokio::test]
    async fn a_sync_answers_from_the_sandboxs_ledger_and_never_guesses() {
        let ledger = Arc::new(MemoryLedger::default());
        let sandbox = SandboxProcessor::on(ledger.clone());
        // Another process on the same ledger (another Lambda): it answers syncs the same.
        let other = SandboxProcessor::on(ledger);
        let now = Utc::now();
        let card = |n: &str| paysession_domain::card::parse_card(n, "12/34", "123", now).unwrap();
        let paid = sandbox.authorize_card(&call("pay_a", PaymentMethodKind::Card, None), &card(test_cards::REFUND_FAILS_LATE), true).await;
        assert!(matches!(paid.outcome, Outcome::Succeeded { token: Some(_) }));
        assert!(paid.network_transaction_id.is_some(), "a saved card's payment carries a network id");
        // Asked without the reference (the answer's write was lost): the same answer, token,
        // network id and the reference carrying the behaviour decided at authorisation.
        let synced = other.sync_payment(&call("pay_a", PaymentMethodKind::Card, None)).await.unwrap();
        assert_eq!(synced, paid);
        sandbox.authorize_card(&call("pay_d", PaymentMethodKind::Card, None), &card(test_cards::DECLINED), false).await;
        assert_eq!(
            other.sync_payment(&call("pay_d", PaymentMethodKind::Card, None)).await.unwrap().outcome,
            Outcome::Failed { code: "card_declined" }
        );
        assert_eq!(other.sync_payment(&call("pay_never", PaymentMethodKind::Card, None)).await, None, "never seen: none");
        assert_eq!(other.calls.of("pay_a").get("sync_payment"), Some(&1));
    }

    struct BrokenLedger;

    #[async_trait]
    impl SandboxLedger for BrokenLedger {
        async fn record(&self, _: &str, _: &str) -> Result<(), crate::ports::StoreError> {
            Err(crate::ports::StoreError::Backend("down".into()))
        }
        async fn recall(&self, _: &str) -> Result<Option<String>, crate::ports::StoreError> {
            Err(crate::ports::StoreError::Backend("down".into()))
        }
    }

    #[tokio::test]
    async fn an_answer_the_sandbox_could_not_record_is_no_answer() {
        let sandbox = SandboxProcessor::on(Arc::new(BrokenLedger));
        let card = paysession_domain::card::parse_card(test_cards::SUCCEEDS, "12/34", "123", Utc::now()).unwrap();
        let answer = sandbox.authorize_card(&call("pay_a", PaymentMethodKind::Card, None), &card, false).await;
        assert_eq!(answer.outcome, Outcome::Unknown);
        assert_eq!(sandbox.sync_payment(&call("pay_a", PaymentMethodKind::Card, None)).await.unwrap().outcome, Outcome::Unknown);
    }

    #[tokio::test]
    async fn refunds_follow_the_test_cards_behaviours_by_reference() {
        let sandbox = SandboxProcessor::default();
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        let card = |n: &str| paysession_domain::card::parse_card(n, "12/34", "123", at).unwrap();
        let refund_of =
            |payment: PaymentCall<'static>, now| RefundCall { id: "re_1", amount: 100, currency: "EUR", payment, created_at: at, now };
        let known = |a: RefundAnswer| match a.outcome {
            RefundOutcome::Known { status, failure_reason } => Some((status, failure_reason)),
            RefundOutcome::Unknown | RefundOutcome::NotFound => None,
        };
        let never = refund_of(call("pay_1", PaymentMethodKind::Card, Some("sbx_n_pay_1")), at);
        assert_eq!(sandbox.sync_refund(&never).await.outcome, RefundOutcome::NotFound, "a refund it never received");
        for (number, reference) in [
            (test_cards::SUCCEEDS, "sbx_n_pay_1"),
            (test_cards::REFUND_FAILS_LATE, "sbx_l_pay_1"),
            (test_cards::REFUND_TIMES_OUT, "sbx_t_pay_1"),
        ] {
            let answer = sandbox.authorize_card(&call("pay_1", PaymentMethodKind::Card, None), &card(number), false).await;
            assert_eq!(answer.reference.as_deref(), Some(reference));
        }
        let payment = |r: &'static str| call("pay_1", PaymentMethodKind::Card, Some(r));
        assert_eq!(known(sandbox.refund(&refund_of(payment("sbx_n_pay_1"), at)).await), Some((RefundStatus::Pending, None)));
        assert_eq!(known(sandbox.refund(&refund_of(payment("sbx_t_pay_1"), at)).await), None, "the timeout card's answer is lost");
        let later = at + SANDBOX_REFUND_SETTLES_AFTER;
        assert_eq!(known(sandbox.sync_refund(&refund_of(payment("sbx_t_pay_1"), later)).await), Some((RefundStatus::Succeeded, None)));
        let late = sandbox.sync_refund(&refund_of(payment("sbx_l_pay_1"), later)).await;
        assert!(late.check_after.is_some(), "a success that may still reverse is looked at again");
        let reversed = known(sandbox.sync_refund(&refund_of(payment("sbx_l_pay_1"), at + SANDBOX_LATE_FAILURE_AFTER)).await);
        assert_eq!(reversed, Some((RefundStatus::Failed, Some("expired_or_canceled_card".into()))));
        let bank = call("pay_2", PaymentMethodKind::BankTransfer, Some("sbx_n_pay_2"));
        assert_eq!(known(sandbox.refund(&refund_of(bank, later)).await), Some((RefundStatus::RequiresAction, None)));
    }
}
