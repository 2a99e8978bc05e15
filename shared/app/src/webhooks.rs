//! Webhook use cases: registering endpoints, fanning committed events out to them, and
//! dispatching one delivery attempt. The same functions run in the Lambda functions
//! (stream consumer, SQS dispatcher) and in the local server's in-process pipeline.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use paysession_domain::session::EventRecord;
use paysession_domain::webhook::{
    AttemptVerdict, Delivery, EndpointSpec, EndpointStatus, MAX_ENDPOINTS, SealedSecret, SignatureScheme, WebhookEndpoint, public_key,
    secret_from_bytes, signature_header, signing_key_from_seed,
};

use crate::clock::Clock;
use crate::context::Core;
use crate::ids::new_id;
use crate::ports::{DeliveryQueue, QueuedDelivery, SettingsStore, StoreError, WebhookSender, WebhookStore};
use crate::retry::{Races, won};
use crate::secret::Secret;

/// A fresh `whsec_` secret (192 random bits).
pub fn new_secret() -> Secret<String> {
    let mut bytes = [0u8; 24];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    Secret::new(secret_from_bytes(&bytes))
}

/// A new signing secret for `scheme`: a `whsec_` HMAC secret, or a `whsk_` Ed25519 key.
pub fn new_signing_secret(scheme: SignatureScheme) -> Secret<String> {
    match scheme {
        SignatureScheme::V1 => new_secret(),
        SignatureScheme::V1a => {
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed).expect("the OS random source is available");
            Secret::new(signing_key_from_seed(&seed))
        }
    }
}

/// The stored form: sealed under the deployment key; an Ed25519 key's public half in clear.
fn sealed<S: ?Sized>(cx: &Core<S>, secret: &Secret<String>) -> SealedSecret {
    SealedSecret { sealed: cx.keys.seal(secret.expose()), expires_at: None, public_key: public_key(secret.expose()) }
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("a merchant can have at most {MAX_ENDPOINTS} webhook endpoints")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Registers an endpoint; the returned secret is shown to the merchant once and stored
/// only sealed.
pub async fn create_endpoint<S: WebhookStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    spec: EndpointSpec,
) -> Result<(WebhookEndpoint, Secret<String>), EndpointError> {
    if cx.store.list_endpoints(merchant_id).await?.len() >= MAX_ENDPOINTS {
        return Err(EndpointError::TooMany);
    }
    let secret = new_signing_secret(spec.signature_scheme);
    let endpoint = WebhookEndpoint::create(spec, new_id("we"), merchant_id.to_string(), sealed(cx, &secret), cx.clock.now());
    match cx.store.create_endpoint(&endpoint).await {
        Ok(()) => Ok((endpoint, secret)),
        Err(StoreError::AlreadyExists) => Err(EndpointError::TooMany),
        Err(e) => Err(e.into()),
    }
}

/// Rotates the endpoint's secret; the previous one keeps signing for 24 h.
pub async fn rotate_secret<S: WebhookStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    id: &str,
) -> Result<Option<(WebhookEndpoint, Secret<String>)>, StoreError> {
    let mut races = Races::new(format!("webhook endpoint {id}"));
    loop {
        let Some(current) = cx.store.get_endpoint(merchant_id, id).await? else { return Ok(None) };
        let secret = new_signing_secret(current.signature_scheme);
        let next = current.rotate(sealed(cx, &secret), cx.clock.now());
        if won(cx.store.update_endpoint(&next, current.version).await)?.is_some() {
            return Ok(Some((next, secret)));
        }
        races.lost()?;
    }
}

/// Each merchant seen in one batch of events (a stream or outbox batch: up to 100 events of
/// few merchants), on its own business clock and with its endpoints, read once per merchant
/// rather than once per event. Cloneable values, so fan-outs may run as tasks of their own.
pub struct BatchMerchants<S: ?Sized>(HashMap<String, (Core<S>, Arc<[WebhookEndpoint]>)>);

impl<S: ?Sized> Default for BatchMerchants<S> {
    fn default() -> Self {
        BatchMerchants(HashMap::new())
    }
}

impl<S: ?Sized> BatchMerchants<S> {
    /// What an earlier [`BatchMerchants::of`] read for `merchant_id`.
    pub fn get(&self, merchant_id: &str) -> Option<&(Core<S>, Arc<[WebhookEndpoint]>)> {
        self.0.get(merchant_id)
    }
}

impl<S: WebhookStore + SettingsStore + ?Sized> BatchMerchants<S> {
    /// The merchant's core and endpoints, read on first sight.
    pub async fn of(&mut self, cx: &Core<S>, merchant_id: &str) -> Result<&(Core<S>, Arc<[WebhookEndpoint]>), StoreError> {
        if !self.0.contains_key(merchant_id) {
            let at = cx.at_merchant(merchant_id).await?;
            let endpoints = at.store.list_endpoints(merchant_id).await?.into();
            self.0.insert(merchant_id.to_string(), (at, endpoints));
        }
        Ok(&self.0[merchant_id])
    }
}

/// Queues one delivery per enabled endpoint of the merchant (`endpoints`, read once per
/// batch: [`BatchMerchants`]) that subscribes to the event. Safe to run again for the same
/// event (a replayed stream batch or outbox pass): delivery ids derive from (event,
/// endpoint), and a delivery already attempted is not queued again. Independent per event,
/// so a caller may fan out many events at once. Returns the number of deliveries this call
/// queued.
pub async fn fan_out_to<S: WebhookStore + ?Sized>(
    cx: &Core<S>,
    queue: &dyn DeliveryQueue,
    endpoints: &[WebhookEndpoint],
    merchant_id: &str,
    event: &EventRecord,
) -> Result<usize, StoreError> {
    // An endpoint registered after the event does not receive it (the pipeline may lag).
    let receivers: Vec<&WebhookEndpoint> =
        endpoints.iter().filter(|e| e.wants(&event.event_type) && e.created_at <= event.created_at).collect();
    if receivers.is_empty() {
        // Most events of most merchants: no body to render.
        return Ok(0);
    }
    let now = cx.clock.now();
    let mut payload = None;
    let mut queued = 0;
    for endpoint in receivers {
        let mut fresh = Delivery::fan_out(merchant_id, &endpoint.id, event, now);
        if queue.is_the_store() {
            queued += usize::from(cx.store.create_delivery(&fresh).await?.is_none());
            continue;
        }
        // The delivery travels in its message and is stored by its first attempt's outcome
        // (one write). A replayed record finds that record and sends nothing; one replayed
        // while the first message still waits queues a twin, which finds the record when its
        // turn comes (or, run at the same moment, sends the same webhook-id again: webhooks
        // are at least once).
        match cx.store.get_delivery(merchant_id, &endpoint.id, &fresh.id).await? {
            Some(existing) if existing.queued => continue,
            // Created unqueued by an earlier release: queue it as that one did.
            Some(existing) => {
                enqueue_delivery(cx, queue, &existing).await?;
            }
            None => {
                fresh.queued = true;
                let body = payload.get_or_insert_with(|| event.to_api().to_json()).clone();
                queue.enqueue(&QueuedDelivery::carrying(fresh, body), StdDuration::ZERO).await?;
            }
        }
        queued += 1;
    }
    Ok(queued)
}

/// A queue for one fan-out: it holds the messages that carry new deliveries, for the caller
/// to send with others in as few requests as the queue allows
/// ([`DeliveryQueue::enqueue_all`]), and passes every other message straight on.
pub struct Collecting<'a> {
    inner: &'a dyn DeliveryQueue,
    held: std::sync::Mutex<Vec<QueuedDelivery>>,
}

impl<'a> Collecting<'a> {
    pub fn new(inner: &'a dyn DeliveryQueue) -> Self {
        Collecting { inner, held: Default::default() }
    }

    /// The messages held, in the order they came.
    pub fn take(self) -> Vec<QueuedDelivery> {
        self.held.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait::async_trait]
impl DeliveryQueue for Collecting<'_> {
    async fn enqueue(&self, message: &QueuedDelivery, delay: StdDuration) -> Result<(), StoreError> {
        // A message naming a stored delivery is sent before the record notes it queued.
        if delay.is_zero() && message.first.is_some() {
            self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(message.clone());
            return Ok(());
        }
        self.inner.enqueue(message, delay).await
    }

    fn is_the_store(&self) -> bool {
        self.inner.is_the_store()
    }
}

/// Queues a new delivery of an event that already happened (`POST /v1/events/{id}/redeliver`)
/// to every enabled endpoint subscribed to its type. The `webhook-id` stays the event id.
pub async fn redeliver<S: WebhookStore + ?Sized>(
    cx: &Core<S>,
    queue: &dyn DeliveryQueue,
    merchant_id: &str,
    event: &EventRecord,
) -> Result<Vec<Delivery>, StoreError> {
    let endpoints = cx.store.list_endpoints(merchant_id).await?;
    let now = cx.clock.now();
    let payload = event.to_api().to_json();
    let mut out = Vec::new();
    for endpoint in endpoints.iter().filter(|e| e.wants(&event.event_type)) {
        let id = Delivery::id_at(now, &crate::ids::random_bytes());
        let mut d = Delivery::new(id, merchant_id, &endpoint.id, &event.id, &event.event_type, true, now);
        // Stored first, so the answer lists it; its id is new, so no fan-out replay looks
        // for its queued mark, and the message carries the body.
        d.queued = !queue.is_the_store();
        if cx.store.create_delivery(&d).await?.is_none() {
            if d.queued {
                queue.enqueue(&QueuedDelivery::carrying(d.clone(), payload.clone()), StdDuration::ZERO).await?;
            }
            out.push(d);
        }
    }
    Ok(out)
}

/// Sends the wake-up message, then notes that it was sent.
async fn enqueue_delivery<S: WebhookStore + ?Sized>(
    cx: &Core<S>,
    queue: &dyn DeliveryQueue,
    delivery: &Delivery,
) -> Result<Delivery, StoreError> {
    queue.enqueue(&QueuedDelivery::named(delivery), StdDuration::ZERO).await?;
    let mut marked = delivery.clone();
    marked.queued = true;
    marked.version += 1;
    match cx.store.update_delivery(&marked, delivery.version).await {
        // A dispatcher already picked it up and moved it on: it was queued, nothing to note.
        Ok(()) | Err(StoreError::VersionConflict) => Ok(marked),
        Err(e) => Err(e),
    }
}

/// What the dispatcher should do with the message that asked for this delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchOutcome {
    /// Nothing more to do (delivered, cancelled, or unknown).
    Finished,
    /// Look again after this long (the next retry, or an attempt not yet due).
    RetryIn(StdDuration),
    /// Every attempt failed (or the receiver answered 410): the delivery is dead.
    DeadLettered,
}

/// How long a message whose delivery record is not written yet waits to look again.
const RECORD_NOT_YET_WRITTEN: StdDuration = StdDuration::from_millis(200);

/// How long a delivery whose event an index read did not find yet waits to look again.
const EVENT_NOT_YET_READABLE: StdDuration = StdDuration::from_secs(5);

fn until(t: DateTime<Utc>, now: DateTime<Utc>) -> StdDuration {
    (t - now).to_std().unwrap_or(StdDuration::ZERO)
}

/// Makes the delivery's next attempt if it is due, signs and sends the payload, and records
/// the attempt and its verdict. A delivery the message carries (its first attempt) is sent
/// as it is and stored once, with the outcome; a stored one is leased first, so two
/// messages of it never attempt at once. `wall` stamps `webhook-timestamp`, which
/// receivers compare with their own clock, so it is never the sandbox test clock.
pub async fn dispatch<S: WebhookStore + ?Sized>(
    cx: &Core<S>,
    sender: &dyn WebhookSender,
    wall: &dyn Clock,
    message: &QueuedDelivery,
) -> Result<DispatchOutcome, StoreError> {
    let (merchant_id, delivery_id) = (message.merchant_id.as_str(), message.delivery_id.as_str());
    let endpoint_id = message.first.as_ref().map_or(message.endpoint_id.as_str(), |f| f.delivery.endpoint_id.as_str());
    let mut races = Races::new(format!("delivery {delivery_id}"));
    loop {
        let stored = cx.store.get_delivery(merchant_id, endpoint_id, delivery_id).await?;
        // The version a write replaces; `None` while the delivery lives in its message.
        let stored_version = stored.as_ref().map(|d| d.version);
        let mut delivery = match (stored, &message.first) {
            (Some(stored), _) => stored,
            (None, Some(first)) => first.delivery.clone(),
            // Named by a message before its record is readable: look again shortly. A record
            // that never comes ends with the message's receive count (its DLQ).
            (None, None) => return Ok(DispatchOutcome::RetryIn(RECORD_NOT_YET_WRITTEN)),
        };
        if let (true, Some(first)) = (delivery.payload.is_empty(), &message.first) {
            delivery.payload = first.payload.clone();
        }
        let now = cx.clock.now();
        let Some(not_before) = delivery.not_before() else { return Ok(DispatchOutcome::Finished) };
        if not_before > now {
            return Ok(DispatchOutcome::RetryIn(until(not_before, now)));
        }
        let endpoint = cx.store.get_endpoint(merchant_id, &delivery.endpoint_id).await?;
        let Some(endpoint) = endpoint.filter(|e| e.status == EndpointStatus::Enabled) else {
            if won(save(cx, &delivery.cancel(now), stored_version).await)?.is_some() {
                return Ok(DispatchOutcome::Finished);
            }
            races.lost()?;
            continue;
        };
        if delivery.payload.is_empty() {
            // The event is committed before its delivery exists, but an index read may not
            // see it yet: look again shortly, nothing claimed.
            let Some(event) = cx.store.get_event(merchant_id, &delivery.event_id).await? else {
                return Ok(DispatchOutcome::RetryIn(EVENT_NOT_YET_READABLE));
            };
            delivery.payload = event.to_api().to_json();
        }
        let Some(version) = stored_version else {
            return attempt(cx, sender, wall, &endpoint, delivery, None).await;
        };
        let claimed = delivery.claim(now);
        if won(cx.store.update_delivery(&claimed, version).await)?.is_some() {
            let claimed_version = claimed.version;
            return attempt(cx, sender, wall, &endpoint, claimed, Some(claimed_version)).await;
        }
        races.lost()?;
    }
}

/// Stores a delivery's new state over the version it had, or inserts it where it was
/// never stored (`stored` = `None`); a twin message's attempt that stored it first makes
/// that a version conflict too.
async fn save<S: WebhookStore + ?Sized>(cx: &Core<S>, next: &Delivery, stored: Option<u64>) -> Result<(), StoreError> {
    match stored {
        Some(version) => cx.store.update_delivery(next, version).await,
        None => match cx.store.create_delivery(next).await? {
            None => Ok(()),
            Some(_) => Err(StoreError::VersionConflict),
        },
    }
}

async fn attempt<S: WebhookStore + ?Sized>(
    cx: &Core<S>,
    sender: &dyn WebhookSender,
    wall: &dyn Clock,
    endpoint: &WebhookEndpoint,
    claimed: Delivery,
    stored_version: Option<u64>,
) -> Result<DispatchOutcome, StoreError> {
    let attempted_at = cx.clock.now();
    let timestamp = wall.now().timestamp();
    let secrets: Vec<Secret<String>> = endpoint.signing_secrets(cx.clock.now()).filter_map(|s| cx.keys.open(&s.sealed)).collect();
    let signature = signature_header(secrets.iter().map(|s| s.expose().as_str()), &claimed.event_id, timestamp, &claimed.payload)
        .ok_or_else(|| StoreError::Backend(format!("webhook endpoint {} has no readable signing secret", endpoint.id)))?;
    let headers = [
        ("content-type", "application/json".to_string()),
        ("webhook-id", claimed.event_id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
        ("user-agent", "paysession-webhooks/1".to_string()),
    ];
    let result = sender.send(&endpoint.url, &headers, &claimed.payload).await;
    let now = cx.clock.now();
    tracing::info!(
        delivery_id = %claimed.id, endpoint_id = %endpoint.id, event_id = %claimed.event_id,
        status_code = ?result.status_code, duration_ms = result.duration_ms, error = ?result.error,
        "webhook attempt"
    );
    let (recorded, verdict) = claimed.record(attempted_at, result, now);
    // A 410 disables the endpoint before the delivery is recorded failed, so whoever sees
    // the failed delivery also sees the endpoint disabled (and a crash in between retries
    // the attempt rather than leaving the endpoint enabled).
    if verdict == AttemptVerdict::Gone {
        disable(cx, &endpoint.merchant_id, &endpoint.id, "the receiver answered 410 Gone").await?;
    }
    match save(cx, &recorded, stored_version).await {
        Ok(()) => {}
        // A twin message's attempt stored the delivery first; it goes on from that record,
        // and this message is done.
        Err(StoreError::VersionConflict) if stored_version.is_none() => return Ok(DispatchOutcome::Finished),
        Err(e) => return Err(e),
    }
    Ok(match verdict {
        AttemptVerdict::Delivered => DispatchOutcome::Finished,
        AttemptVerdict::RetryAt(t) => DispatchOutcome::RetryIn(until(t, now)),
        AttemptVerdict::Exhausted | AttemptVerdict::Gone => DispatchOutcome::DeadLettered,
    })
}

async fn disable<S: WebhookStore + ?Sized>(cx: &Core<S>, merchant_id: &str, id: &str, reason: &str) -> Result<(), StoreError> {
    let mut races = Races::new(format!("webhook endpoint {id}"));
    loop {
        let Some(current) = cx.store.get_endpoint(merchant_id, id).await? else { return Ok(()) };
        if current.status == EndpointStatus::Disabled {
            return Ok(());
        }
        if won(cx.store.update_endpoint(&current.disable(reason, cx.clock.now()), current.version).await)?.is_some() {
            tracing::warn!(endpoint_id = id, reason, "webhook endpoint disabled");
            return Ok(());
        }
        races.lost()?;
    }
}
