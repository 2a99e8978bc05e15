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
use crate::ports::StoreError;
use crate::processor::{Notifier, PaymentProcessor, ProcessorDirectory};
use crate::recent::RecentMerchants;
use paysession_domain::session::PaymentSession;

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
    /// Merchant settings and signing profiles read in the last seconds (this process).
    pub recent: Arc<RecentMerchants>,
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
            recent: self.recent.clone(),
        }
    }
}

impl<S: crate::ports::SettingsStore + ?Sized> Core<S> {
    /// This core on `merchant_id`'s business clock. In sandbox each merchant has a test
    /// clock of its own (its offset stored in the table, read on every call so every
    /// function instance agrees); `test_clock` here is the deployment-wide starting offset.
    /// Outside the sandbox this is the same core.
    pub async fn at_merchant(&self, merchant_id: &str) -> Result<Core<S>, crate::ports::StoreError> {
        let Some(start) = &self.test_clock else { return Ok(self.clone()) };
        let stored = self.store.get_setting(&crate::clock::test_clock_setting(merchant_id)).await?;
        let offset = stored.and_then(|v| v.parse::<i64>().ok()).map(chrono::Duration::milliseconds).unwrap_or_else(|| start.offset());
        let clock = TestClock::with_offset(offset);
        Ok(Core { clock: Arc::new(clock.clone()), test_clock: Some(clock), ..self.clone() })
    }
}

impl<S: crate::ports::MerchantStore + ?Sized> Core<S> {
    /// The merchant as read within the last seconds ([`crate::recent`]).
    pub async fn merchant(&self, merchant_id: &str) -> Result<Option<Arc<crate::entities::Merchant>>, crate::ports::StoreError> {
        self.recent.merchants.get_or_load(&merchant_id.to_string(), async || self.store.get_merchant(merchant_id).await).await
    }
}

impl<S: crate::ports::SettingsStore + crate::ports::MerchantStore + ?Sized> Core<S> {
    /// What a sweep of due items must cover: `(None, now)` on the deployment clock (every
    /// merchant's clock is at or ahead of it, so whatever is due there is due for its
    /// merchant), then `(Some(merchant), its now)` for each merchant whose own test clock is
    /// further ahead. Outside the sandbox only the first.
    pub async fn sweep_clocks(&self) -> Result<Vec<(Option<String>, chrono::DateTime<chrono::Utc>)>, crate::ports::StoreError> {
        let base = self.clock.now();
        let mut out = vec![(None, base)];
        if self.test_clock.is_some() {
            for m in self.store.list_merchants().await? {
                let now = self.at_merchant(&m.id).await?.clock.now();
                if now - base > chrono::Duration::seconds(1) {
                    out.push((Some(m.id), now));
                }
            }
        }
        Ok(out)
    }
}

/// The payment side: the processors (the built-in sandbox, and the merchants' configured
/// ones through a [`ProcessorDirectory`]) and the notifier that sends one-time codes.
#[derive(Clone)]
pub struct Payments {
    /// The built-in sandbox: the processor of a merchant that configured none.
    pub sandbox: Arc<dyn PaymentProcessor>,
    /// The merchants' configured processors; `None` where only the sandbox exists.
    pub directory: Option<Arc<dyn ProcessorDirectory>>,
    pub notifier: Arc<dyn Notifier>,
    /// The sandbox's record of the calls it received (empty with a real processor).
    pub sandbox_calls: Arc<crate::processor::CallLog>,
}

impl Payments {
    /// The built-in sandbox processor (its ledger in this process's memory) and the
    /// log-only notifier.
    pub fn sandbox() -> Payments {
        Payments::sandbox_on(Arc::new(crate::processor::MemoryLedger::default()))
    }

    /// The sandbox processor keeping its ledger in `ledger` (the deployment's store, so every
    /// process answers syncs alike).
    pub fn sandbox_on(ledger: Arc<dyn crate::processor::SandboxLedger>) -> Payments {
        let sandbox = crate::processor::SandboxProcessor::on(ledger);
        let sandbox_calls = sandbox.calls.clone();
        Payments { sandbox: Arc::new(sandbox), directory: None, notifier: Arc::new(crate::processor::LogNotifier), sandbox_calls }
    }

    /// These payments with the merchants' configured processors.
    pub fn with_directory(self, directory: Arc<dyn ProcessorDirectory>) -> Payments {
        Payments { directory: Some(directory), ..self }
    }

    /// Where `merchant_id`'s new payments go: its configured processor, else the sandbox.
    pub async fn for_merchant(&self, merchant_id: &str) -> Result<Arc<dyn PaymentProcessor>, StoreError> {
        match &self.directory {
            Some(d) => Ok(d.configured(merchant_id).await?.unwrap_or_else(|| self.sandbox.clone())),
            None => Ok(self.sandbox.clone()),
        }
    }

    /// The processor payment `attempt_id` of `session` was sent to: every later call about
    /// it (sync, capture, void, refund) goes there, whatever the merchant configures since.
    pub async fn of_payment(&self, session: &PaymentSession, attempt_id: &str) -> Result<Arc<dyn PaymentProcessor>, StoreError> {
        let name = session.payments.iter().find(|a| a.id == attempt_id).and_then(|a| a.processor.as_deref());
        let Some(name) = name.filter(|n| *n != paysession_domain::payment::SANDBOX_PROCESSOR) else { return Ok(self.sandbox.clone()) };
        match &self.directory {
            Some(d) => d
                .named(&session.merchant_id, name)
                .await?
                .ok_or_else(|| StoreError::Backend(format!("merchant {} has no {name} processor configured", session.merchant_id))),
            None => Err(StoreError::Backend(format!("this deployment has no {name} processor"))),
        }
    }

    /// The name an attempt records for `processor` (none for the sandbox).
    pub fn recorded_name(processor: &dyn PaymentProcessor) -> Option<String> {
        let name = processor.name();
        (name != paysession_domain::payment::SANDBOX_PROCESSOR).then(|| name.to_string())
    }
}
