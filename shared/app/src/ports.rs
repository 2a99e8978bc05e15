//! Storage ports. Each method is one access pattern that maps to one DynamoDB request
//! (a `GetItem`, a `Query`, or a `TransactWriteItems`), so the embedded and AWS adapters
//! give the same guarantees: a state change, its events and its guards commit together
//! or not at all.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use paysession_domain::SessionStatus;
use paysession_domain::mandate::{Mandate, MandateStatus};
use paysession_domain::payment::SavedPaymentMethod;
use paysession_domain::refund::{MoneyDelta, PaymentMoney, Refund, RefundStatus};
use paysession_domain::session::{EventRecord, PaymentSession};
use paysession_domain::webhook::{AttemptResult, Delivery, WebhookEndpoint};
use serde::{Deserialize, Serialize};

use crate::entities::{ApiClient, Merchant};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another session of the merchant has the same (customer_id, reference).
    #[error("a session with this customer_id and reference already exists")]
    DuplicateReference,
    /// The record changed since it was read (optimistic lock lost).
    #[error("the record was changed concurrently")]
    VersionConflict,
    /// A uniqueness guard on a non-session record (merchant id, client id).
    #[error("the record already exists")]
    AlreadyExists,
    #[error("the idempotency record is no longer held by this request")]
    IdempotencyLost,
    /// A virtual-account number names another session: refused at create by a store that
    /// can guard the number, or at lookup by one that cannot (the number then names two).
    #[error("virtual account number {0} belongs to another session")]
    VirtualAccountTaken(String),
    /// A refund's reservation was refused by the payment's counters (nothing was written).
    #[error("the payment has {refundable} left to refund and {refund_count} refunds")]
    RefundRefused { refundable: i64, refund_count: u32 },
    #[error("storage failure: {0}")]
    Backend(String),
}

/// A response stored for an idempotency key, replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// Completes an idempotency record inside the transaction of the change it answers.
#[derive(Debug, Clone)]
pub struct IdempotencyCompletion {
    pub merchant_id: String,
    pub key: String,
    pub hold: Hold,
    pub response: StoredResponse,
    pub expires_at: DateTime<Utc>,
}

/// How the request holds its key when the completion is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// The in-flight claim this request made in [`IdempotencyStore::begin`].
    Owned(String),
    /// No claim was made: the completion takes the key in the same write, only if no live
    /// record is there (absent, past retention, or an abandoned claim as of `now`); else the
    /// write fails with [`StoreError::IdempotencyLost`] and nothing of it is stored.
    Fresh { fingerprint: String, owner: String, now: DateTime<Utc> },
}

impl Hold {
    pub fn owner(&self) -> &str {
        match self {
            Hold::Owned(owner) | Hold::Fresh { owner, .. } => owner,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// This request owns the key until `locked_until`.
    Started,
    /// A completed request with the same fingerprint: replay its response.
    Replay(StoredResponse),
    /// Another request holds the key right now.
    InFlight,
    /// The key was used with a different request.
    Mismatch,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for a request with `fingerprint`. An in-flight claim whose
    /// `locked_until` has passed belongs to a request that died and is taken over;
    /// a completed record past `expires_at` is forgotten.
    async fn begin(
        &self,
        merchant_id: &str,
        key: &str,
        fingerprint: &str,
        owner: &str,
        now: DateTime<Utc>,
        locked_until: DateTime<Utc>,
    ) -> Result<IdempotencyBegin, StoreError>;
    /// Stores the response of a request that changed nothing (e.g. a 409); a
    /// [`Hold::Fresh`] completion is stored only where no live record is.
    async fn complete(&self, completion: &IdempotencyCompletion) -> Result<(), StoreError>;
    /// Drops the claim after a failure that may succeed on retry (5xx).
    async fn release(&self, merchant_id: &str, key: &str, owner: &str) -> Result<(), StoreError>;
}

/// Filters of `GET /v1/payment_sessions`.
#[derive(Debug, Clone, Default)]
pub struct SessionQuery {
    pub customer_id: Option<String>,
    pub reference: Option<String>,
    /// Compared with the status as of `now` (expired-on-read included).
    pub status: Option<SessionStatus>,
    pub created_after: Option<DateTime<Utc>>,
    pub limit: usize,
    /// Continue after this position (exclusive), newest first.
    pub after: Option<Cursor>,
    pub now: DateTime<Utc>,
}

/// A position in the newest-first order of a merchant's sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

impl<T> Page<T> {
    /// A page from a read of up to `limit + 1` items: the extra one only says there is more.
    pub fn from_overfetched(mut items: Vec<T>, limit: usize) -> Self {
        let has_more = items.len() > limit;
        items.truncate(limit);
        Page { items, has_more }
    }
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Inserts a session with its events and the (merchant, customer_id, reference) guard.
    async fn create_session(
        &self,
        session: &PaymentSession,
        events: &[EventRecord],
        idempotency: Option<&IdempotencyCompletion>,
    ) -> Result<(), StoreError>;

    /// Replaces a session if its stored version is still `expected_version`, appending
    /// its events.
    async fn update_session(
        &self,
        session: &PaymentSession,
        expected_version: u64,
        events: &[EventRecord],
        idempotency: Option<&IdempotencyCompletion>,
    ) -> Result<(), StoreError>;

    /// A merchant's session; another merchant's id reads as absent.
    async fn get_session(&self, merchant_id: &str, id: &str) -> Result<Option<PaymentSession>, StoreError>;

    async fn list_sessions(&self, merchant_id: &str, query: &SessionQuery) -> Result<Page<PaymentSession>, StoreError>;

    /// The session's events, oldest first.
    async fn session_events(&self, merchant_id: &str, session_id: &str) -> Result<Vec<EventRecord>, StoreError>;

    /// The session showing this virtual-account number, for a deposit, which does not know
    /// the merchant (the page and QR payments carry a locator instead: `session::Locator`).
    /// Two sessions under one number are an error, never a guess.
    async fn find_by_virtual_account(&self, number: &str) -> Result<Option<PaymentSession>, StoreError>;

    /// Stores a saved payment method; saving the same id again replaces it.
    async fn save_payment_method(&self, method: &SavedPaymentMethod) -> Result<(), StoreError>;

    async fn list_payment_methods(&self, merchant_id: &str, customer_id: &str) -> Result<Vec<SavedPaymentMethod>, StoreError>;
}

#[async_trait]
pub trait MerchantStore: Send + Sync {
    /// Inserts a merchant and its first API client together.
    async fn create_merchant(&self, merchant: &Merchant, client: &ApiClient) -> Result<(), StoreError>;
    async fn get_merchant(&self, merchant_id: &str) -> Result<Option<Merchant>, StoreError>;
    async fn list_merchants(&self) -> Result<Vec<Merchant>, StoreError>;
    async fn get_client(&self, client_id: &str) -> Result<Option<ApiClient>, StoreError>;
    async fn list_clients(&self, merchant_id: &str) -> Result<Vec<ApiClient>, StoreError>;
    /// Replaces a client's record (secret rotation).
    async fn put_client(&self, client: &ApiClient) -> Result<(), StoreError>;
}

/// Small process-wide settings (the sandbox test-clock offset).
#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Adds `delta` to the integer setting `key` (taken as `start` while absent) in one
    /// atomic step, so concurrent additions all count; `None` (nothing written) when the
    /// sum would pass `max`. Returns the new value.
    async fn add_to_setting(&self, key: &str, start: i64, delta: i64, max: i64) -> Result<Option<i64>, StoreError>;
}

/// Failed attempts, counted across every instance ([`crate::limiter`]).
#[async_trait]
pub trait AttemptLimiter: Send + Sync {
    /// Counts one failed attempt against `subject` from `source` in the window of `policy`
    /// that `now` falls in. `false`, with nothing counted, when `source` has used up its
    /// limit for `subject` or its own. Atomic: of concurrent failures, no more are counted
    /// than the limits allow.
    async fn count_failure(
        &self,
        policy: &crate::limiter::AttemptPolicy,
        source: &str,
        subject: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// Each merchant's request-signing profile, and the nonces its signatures spent.
#[async_trait]
pub trait SigningStore: Send + Sync {
    async fn get_signing_profile(&self, merchant_id: &str) -> Result<Option<crate::entities::SigningProfile>, StoreError>;
    /// Stores `profile` if the stored one is at `profile.version - 1` (absent when that is
    /// 0); `VersionConflict` otherwise.
    async fn put_signing_profile(&self, profile: &crate::entities::SigningProfile) -> Result<(), StoreError>;
    /// Records `nonce` until `until`; `false` when it is already recorded and not yet past
    /// its time (a replay). Atomic: of concurrent claims exactly one gets `true`.
    /// `claimant` is unique to the request claiming: a store whose write can be retried
    /// after a lost answer (DynamoDB) finds the nonce recorded by `claimant` itself and
    /// answers `true`, so a retry never turns a request into its own replay.
    async fn claim_nonce(
        &self,
        merchant_id: &str,
        nonce: &str,
        claimant: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// Filters of `GET /v1/events`, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub event_type: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub limit: usize,
    /// Continue after this position (exclusive).
    pub after: Option<Cursor>,
}

/// Webhook endpoints, their deliveries, and the merchant-wide event log.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Inserts an endpoint, refusing a merchant's [`paysession_domain::webhook::MAX_ENDPOINTS`]+1st
    /// with `AlreadyExists`.
    async fn create_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError>;
    /// Replaces an endpoint if its stored version is still `expected_version`.
    async fn update_endpoint(&self, endpoint: &WebhookEndpoint, expected_version: u64) -> Result<(), StoreError>;
    async fn get_endpoint(&self, merchant_id: &str, id: &str) -> Result<Option<WebhookEndpoint>, StoreError>;
    /// Oldest first.
    async fn list_endpoints(&self, merchant_id: &str) -> Result<Vec<WebhookEndpoint>, StoreError>;
    /// `false` when there was no such endpoint.
    async fn delete_endpoint(&self, merchant_id: &str, id: &str) -> Result<bool, StoreError>;

    /// Inserts a delivery unless one with its id exists; returns the existing one then.
    async fn create_delivery(&self, delivery: &Delivery) -> Result<Option<Delivery>, StoreError>;
    /// The delivery `id` of the merchant's endpoint `endpoint_id` (none of another endpoint).
    async fn get_delivery(&self, merchant_id: &str, endpoint_id: &str, id: &str) -> Result<Option<Delivery>, StoreError>;
    /// Replaces a delivery if its stored version is still `expected_version`.
    async fn update_delivery(&self, delivery: &Delivery, expected_version: u64) -> Result<(), StoreError>;
    /// An endpoint's deliveries, newest first.
    async fn list_deliveries(
        &self,
        merchant_id: &str,
        endpoint_id: &str,
        limit: usize,
        after: Option<&Cursor>,
    ) -> Result<Page<Delivery>, StoreError>;

    async fn list_events(&self, merchant_id: &str, query: &EventQuery) -> Result<Page<EventRecord>, StoreError>;
    async fn get_event(&self, merchant_id: &str, id: &str) -> Result<Option<EventRecord>, StoreError>;
}

/// What one message of the delivery queue carries. A fan-out's delivery travels whole in
/// its message, with the body it sends (`first`), and nothing of it is stored before its
/// first attempt's outcome: one record write per delivered webhook. From then on the
/// stored record is the truth, and a message (a kept one, a redelivery's) only names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedDelivery {
    pub merchant_id: String,
    /// The delivery's endpoint (a store may keep deliveries by endpoint); absent from
    /// messages sent before, which name deliveries stored by id alone.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint_id: String,
    pub delivery_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<FirstAttempt>,
}

/// A delivery not yet stored, and the body its attempts send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirstAttempt {
    pub delivery: Delivery,
    pub payload: String,
}

impl QueuedDelivery {
    /// A message naming a stored delivery.
    pub fn named(delivery: &Delivery) -> Self {
        QueuedDelivery {
            merchant_id: delivery.merchant_id.clone(),
            endpoint_id: delivery.endpoint_id.clone(),
            delivery_id: delivery.id.clone(),
            first: None,
        }
    }

    /// A message carrying a delivery that is not stored yet, and the body it sends.
    pub fn carrying(delivery: Delivery, payload: String) -> Self {
        QueuedDelivery {
            merchant_id: delivery.merchant_id.clone(),
            endpoint_id: delivery.endpoint_id.clone(),
            delivery_id: delivery.id.clone(),
            first: Some(FirstAttempt { delivery, payload }),
        }
    }
}

/// The queue of the webhook dispatcher (SQS in AWS): "attempt this delivery after `delay`".
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    async fn enqueue(&self, message: &QueuedDelivery, delay: std::time::Duration) -> Result<(), StoreError>;
    /// Sends `messages` now, as few requests as the queue allows (SQS: ten a request); one
    /// result per message, in order.
    async fn enqueue_all(&self, messages: &[QueuedDelivery]) -> Vec<Result<(), StoreError>> {
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            out.push(self.enqueue(m, std::time::Duration::ZERO).await);
        }
        out
    }
    /// The stored delivery is itself the queue entry: nothing to send or to note as sent.
    fn is_the_store(&self) -> bool {
        false
    }
}

/// For stores whose delivery table is itself the queue (the embedded store, polled by
/// the local dispatcher).
pub struct PolledQueue;

#[async_trait]
impl DeliveryQueue for PolledQueue {
    async fn enqueue(&self, _: &QueuedDelivery, _: std::time::Duration) -> Result<(), StoreError> {
        Ok(())
    }
    fn is_the_store(&self) -> bool {
        true
    }
}

/// Sends one webhook request. Implementations refuse forbidden addresses, never follow
/// redirects and give up after the attempt timeout; every outcome is an `AttemptResult`.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    async fn send(&self, url: &str, headers: &[(&'static str, String)], body: &str) -> AttemptResult;
}

/// Filters of `GET /v1/mandates`, newest first.
#[derive(Debug, Clone, Default)]
pub struct MandateQuery {
    pub customer_id: Option<String>,
    pub status: Option<MandateStatus>,
    pub limit: usize,
    /// Continue after this position (exclusive).
    pub after: Option<Cursor>,
}

/// Mandates and the saved methods they charge.
#[async_trait]
pub trait MandateStore: Send + Sync {
    /// The success of a `first_in_series` payment, in one conditional write: the session
    /// replaces `expected_version` (else `VersionConflict`) with its events, the saved
    /// method is stored (the same id again replaces it), and the mandate is inserted (an
    /// existing id: `AlreadyExists`). Never a mandate without the success, nor the reverse.
    async fn complete_first_payment(
        &self,
        session: &PaymentSession,
        expected_version: u64,
        events: &[EventRecord],
        method: &SavedPaymentMethod,
        mandate: &Mandate,
    ) -> Result<(), StoreError>;
    /// A merchant's mandate; another merchant's id reads as absent.
    async fn get_mandate(&self, merchant_id: &str, id: &str) -> Result<Option<Mandate>, StoreError>;
    async fn list_mandates(&self, merchant_id: &str, query: &MandateQuery) -> Result<Page<Mandate>, StoreError>;
    /// Replaces a mandate if its stored version is still `expected_version`, appending its
    /// events in the same write.
    async fn update_mandate(&self, mandate: &Mandate, expected_version: u64, events: &[EventRecord]) -> Result<(), StoreError>;
    /// Removes a customer's saved method and appends `events` in the same write; `false`
    /// (and no events) when there was no such method.
    async fn delete_payment_method(&self, method: &SavedPaymentMethod, events: &[EventRecord]) -> Result<bool, StoreError>;
}

/// A one-time trigger of a scheduled mandate's pending charge, at wall-clock time `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeTrigger {
    pub name: String,
    pub merchant_id: String,
    pub mandate_id: String,
    pub occurrence: u32,
    pub at: DateTime<Utc>,
}

/// What a reconciliation trigger asks the `processor-sync` function to look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SyncSubject {
    /// A refund whose processor answer is owed (`refunds::sync`).
    Refund { merchant_id: String, refund_id: String },
    /// An authorisation past `capture_before` (`captures::void_if_expired`).
    Authorisation { merchant_id: String, session_id: String, payment_id: String },
    /// A pending payment attempt whose outcome is owed (`payments::sync_attempt`). Listed
    /// after `Authorisation`, whose fields it shares, so an untagged input with `attempt_id`
    /// reads as this one.
    Attempt { merchant_id: String, session_id: String, attempt_id: String },
}

impl SyncSubject {
    pub fn merchant_id(&self) -> &str {
        match self {
            SyncSubject::Refund { merchant_id, .. }
            | SyncSubject::Authorisation { merchant_id, .. }
            | SyncSubject::Attempt { merchant_id, .. } => merchant_id,
        }
    }
}

/// A one-time trigger of reconciliation at wall-clock time `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncTrigger {
    pub name: String,
    pub subject: SyncSubject,
    pub at: DateTime<Utc>,
}

/// Creates and deletes the one-time triggers of recurring charges and of reconciliation
/// (EventBridge Scheduler in AWS). All are idempotent, because the table stream delivers a
/// change at least once.
#[async_trait]
pub trait ChargeScheduler: Send + Sync {
    /// Creates the trigger; one that already exists under this name counts as created.
    async fn create(&self, trigger: &ChargeTrigger) -> Result<(), StoreError>;
    /// Deletes the trigger; one already gone (fired, or never created) counts as deleted.
    async fn delete(&self, name: &str) -> Result<(), StoreError>;
    /// Creates a reconciliation trigger; one that already exists under this name counts as
    /// created. A scheduler whose store is swept locally has nothing to create.
    async fn create_sync(&self, _trigger: &SyncTrigger) -> Result<(), StoreError> {
        Ok(())
    }
}

/// For a store the local server sweeps for due mandates itself: there is nothing to create.
pub struct SweptLocally;

#[async_trait]
impl ChargeScheduler for SweptLocally {
    async fn create(&self, _: &ChargeTrigger) -> Result<(), StoreError> {
        Ok(())
    }
    async fn delete(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Filters of `GET /v1/refunds`, newest first.
#[derive(Debug, Clone, Default)]
pub struct RefundQuery {
    pub payment_id: Option<String>,
    pub session_id: Option<String>,
    pub status: Option<RefundStatus>,
    pub limit: usize,
    /// Continue after this position (exclusive).
    pub after: Option<Cursor>,
}

/// Refunds, and the refund counters kept beside each payment that has one
/// (`paysession_domain::refund`). The payment itself lives on its session.
#[async_trait]
pub trait RefundStore: Send + Sync {
    /// The counters of payment `payment_id` (of session `session_id`); `None` while it has
    /// no refund. Read consistently.
    async fn payment_money(&self, merchant_id: &str, session_id: &str, payment_id: &str) -> Result<Option<PaymentMoney>, StoreError>;
    /// The counters of every payment of a session that has a refund, by payment id.
    async fn session_money(&self, merchant_id: &str, session_id: &str) -> Result<Vec<(String, PaymentMoney)>, StoreError>;
    /// Inserts `refund` with its events (and the idempotency completion) in one write that
    /// is conditional on its payment's counters: `refundable ≥ amount` and fewer than
    /// `MAX_REFUNDS_PER_PAYMENT` refunds, where a payment without counters yet counts as
    /// `PaymentMoney::untouched(amount_received)`. The reservation is made in the same
    /// write. Refused: [`StoreError::RefundRefused`] with the counters found, nothing written.
    async fn create_refund(
        &self,
        refund: &Refund,
        amount_received: i64,
        events: &[EventRecord],
        idempotency: Option<&IdempotencyCompletion>,
    ) -> Result<(), StoreError>;
    /// Replaces `refund` if it is still at `expected_version`, moves its payment's counters
    /// by `delta` and appends `events`, in one write.
    async fn update_refund(
        &self,
        refund: &Refund,
        expected_version: u64,
        delta: MoneyDelta,
        events: &[EventRecord],
    ) -> Result<(), StoreError>;
    /// A merchant's refund; another merchant's id reads as absent. Read consistently.
    async fn get_refund(&self, merchant_id: &str, id: &str) -> Result<Option<Refund>, StoreError>;
    async fn list_refunds(&self, merchant_id: &str, query: &RefundQuery) -> Result<Page<Refund>, StoreError>;
}

/// The processors' webhook events already applied, by the processor's event id (kept 30
/// days, longer than any processor retries a delivery).
#[async_trait]
pub trait ProcessorEventLog: Send + Sync {
    /// Records `key` until `expires_at` if it is not recorded: `false` when it was (a
    /// redelivery). One conditional write.
    async fn first_sight(&self, key: &str, expires_at: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Drops `key` (an event whose effect could not be written: the redelivery must run).
    async fn forget(&self, key: &str) -> Result<(), StoreError>;
}

/// A store implementing every port: the embedded and DynamoDB adapters. Code that needs
/// only some ports names only those; this is for the places that mount everything (the
/// local server, the admin CLI).
pub trait Store:
    SessionStore
    + IdempotencyStore
    + MerchantStore
    + SettingsStore
    + WebhookStore
    + MandateStore
    + SigningStore
    + AttemptLimiter
    + RefundStore
    + ProcessorEventLog
    + 'static
{
}
impl<
    T: SessionStore
        + IdempotencyStore
        + MerchantStore
        + SettingsStore
        + WebhookStore
        + MandateStore
        + SigningStore
        + AttemptLimiter
        + RefundStore
        + ProcessorEventLog
        + 'static,
> Store for T
{
}
