//! The payment-session record, its API representation and its events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::create::SessionSpec;
use crate::lifecycle::{
    InvalidTransition, PaymentType, SessionEvent, SessionStatus, TransitionContext, allowed_actions, effective_status, transition,
};
use crate::model::*;

mod stored;

/// Payment attempts allowed per session before it fails (API.md).
pub const MAX_ATTEMPTS: u32 = 5;

pub use crate::attempt::{AttemptStatus, CardSummary, PaymentAttempt};
pub use crate::event::{EventData, EventRecord};

/// A stored payment session. Internal fields (`merchant_id`, `version`, `page_token_hash`,
/// `otp`) never reach the API: it shows [`ApiSession`], which names what it shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "stored::StoredSession")]
pub struct PaymentSession {
    pub id: String,
    pub merchant_id: String,
    pub status: SessionStatus,
    /// What the merchant asked for, as validated at creation. Only `expires_at` ever
    /// changes afterwards (a forced expiry moves it to now).
    #[serde(flatten)]
    pub spec: SessionSpec,
    pub url: Option<String>,
    pub payment_request_id: Option<String>,
    pub payments: Vec<PaymentAttempt>,
    pub payment_method_id: Option<String>,
    pub attempts_remaining: u32,
    pub cancellation_reason: Option<CancellationReason>,
    #[serde(serialize_with = "crate::rfc3339::serialize", deserialize_with = "crate::rfc3339::deserialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::serialize", deserialize_with = "crate::rfc3339::deserialize")]
    pub updated_at: DateTime<Utc>,
    /// Optimistic-lock counter: every write is conditional on the version it read.
    pub version: u64,
    /// SHA-256 of the hosted-page token, for looking the session up from its URL.
    pub page_token_hash: Option<String>,
    /// Bank-transfer-style instructions shown to the payer (`mode: api` returns them).
    #[serde(default)]
    pub instructions: Instructions,
    /// One-time-code verification of the hosted page (internal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<OtpState>,
}

/// The current one-time code: only its hash, except in sandbox where the test endpoint
/// must be able to show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpState {
    pub code_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox_code: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub tries_left: u32,
    /// Where the code went; empty when the session has no email or phone (sandbox only:
    /// the code is then read from `GET /sandbox/otp`).
    pub sent_to: String,
    /// Wrong codes entered for this session, over all its codes.
    #[serde(default)]
    pub wrong_codes: u32,
    /// Codes sent for this session.
    #[serde(default)]
    pub sends: u32,
    #[serde(default)]
    pub last_sent_at: Option<DateTime<Utc>>,
    /// The code was entered correctly; it cannot be used again.
    #[serde(default)]
    pub used: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instructions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_account: Option<VirtualAccount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr: Option<QrCode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualAccount {
    pub bank_name: String,
    pub account_number: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QrCode {
    pub payload_id: String,
    /// The string encoded in the QR image.
    pub payload: String,
}

/// Where a session is, for the callers that arrive without the merchant's credentials: the
/// hosted page and a QR payment. Their token and payload id carry it, so the store reads the
/// session by its key and writes no lookup item for them. A virtual-account number cannot
/// carry it (16 digits), so the stores index that number instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locator<'a> {
    pub merchant_id: &'a str,
    pub session_id: &'a str,
}

/// The hosted page's token: the locator, then the secret (`.` never occurs in generated
/// session ids or in the URL-safe base64 secret, so the last two dots split it).
pub fn page_token(merchant_id: &str, session_id: &str, secret: &str) -> String {
    format!("{merchant_id}.{session_id}.{secret}")
}

/// The locator a page token claims; the caller still has to check the token's hash.
pub fn page_locator(token: &str) -> Option<Locator<'_>> {
    let (rest, secret) = token.rsplit_once('.')?;
    let (merchant_id, session_id) = rest.rsplit_once('.')?;
    (!secret.is_empty() && !merchant_id.is_empty() && !session_id.is_empty()).then_some(Locator { merchant_id, session_id })
}

/// A QR payload id: public by nature (it is printed in the code), so it is the locator itself.
pub fn qr_payload_id(merchant_id: &str, session_id: &str) -> String {
    format!("qr_{merchant_id}.{session_id}")
}

pub fn qr_locator(payload_id: &str) -> Option<Locator<'_>> {
    let (merchant_id, session_id) = payload_id.strip_prefix("qr_")?.rsplit_once('.')?;
    (!merchant_id.is_empty() && !session_id.is_empty()).then_some(Locator { merchant_id, session_id })
}

/// The hosted page of a redirect-mode session: the URL handed to the merchant and the hash
/// of its token, which a link must match to open the session (see [`page_token`]).
pub struct HostedPage {
    pub url: String,
    pub token_hash: String,
}

/// The part of a session's id that its merchant, customer and reference determine: 100 bits
/// of SHA-256 over the three, length-prefixed, as 20 base-32 digits. API.md makes the
/// triple unique for ever (a duplicate, even a concurrent one, is `duplicate_reference`), so
/// a store can key the session by this part and guard the reference with the session's own
/// key — no guard item. Occurrence k of a mandate's schedule, whose reference is derived
/// from (mandate, k), is covered by the same rule.
pub fn reference_key(merchant_id: &str, customer_id: &str, reference: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"paysession session reference 1");
    for part in [merchant_id, customer_id, reference] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let top = u128::from_be_bytes(hash.finalize()[..16].try_into().expect("SHA-256 is 32 bytes"));
    let mut key = String::with_capacity(REFERENCE_KEY_LEN);
    push_base32(&mut key, top >> (128 - 5 * REFERENCE_KEY_LEN), REFERENCE_KEY_LEN);
    key
}

const REFERENCE_KEY_LEN: usize = 20;
const TIME_LEN: usize = 10;

/// Crockford's base-32 digits in lower case: their ASCII order is their numeric order, so
/// fixed-width numbers sort as strings. Hex would make ids 6 characters longer, and a
/// session id sits in several keys of each item and four times in a session's view: with
/// hex the DynamoDB `created` event item of the benchmark's create was 2,054 bytes, over the
/// 2 KB where a third write unit starts; with these digits it is 2,020.
const BASE32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

fn push_base32(out: &mut String, value: u128, digits: usize) {
    for i in (0..digits).rev() {
        out.push(BASE32[((value >> (5 * i)) & 31) as usize] as char);
    }
}

/// `ps_`, the creation time in milliseconds (10 digits, 50 bits), then [`reference_key`]:
/// 30 base-32 digits in all. The time comes first so ids grow with time and each lands next
/// to the last in a B-tree keyed by it (the embedded store's tables and indexes: with the
/// key alone the local server made 0.83× the creates per second, with whole seconds first
/// 0.88×, as each group commit dirtied leaf pages of its own). Ids stay opaque and guard
/// nothing (the page token and the credentials do).
pub fn session_id(merchant_id: &str, customer_id: &str, reference: &str, created_at: DateTime<Utc>) -> String {
    let mut id = String::with_capacity(3 + TIME_LEN + REFERENCE_KEY_LEN);
    id.push_str("ps_");
    push_base32(&mut id, u128::try_from(created_at.timestamp_millis()).unwrap_or(0), TIME_LEN);
    id.push_str(&reference_key(merchant_id, customer_id, reference));
    id
}

/// The [`reference_key`] a session id carries, if the id has the shape [`session_id`] gives.
pub fn id_reference_key(id: &str) -> Option<&str> {
    let digits = id.strip_prefix("ps_").filter(|d| d.len() == TIME_LEN + REFERENCE_KEY_LEN && d.bytes().all(|b| BASE32.contains(&b)))?;
    Some(&digits[TIME_LEN..])
}

/// An id of something that belongs to one session (a payment `pay_`, a refund `re_`):
/// `prefix_`, the session id's 30 digits, then [`CHILD_RANDOM_LEN`] characters of `random`
/// (16 hex digits from `paysession_app::ids`). Reading one finds its session with no index
/// ([`owning_session_id`]); ids stay opaque to callers. 46 characters after the prefix, so
/// never the 32 hex digits of the ids made before (`pay_` + time + random).
pub fn child_id(prefix: &str, session_id: &str, random: &str) -> String {
    debug_assert_eq!(random.len(), CHILD_RANDOM_LEN);
    let digits = session_id.strip_prefix("ps_").unwrap_or(session_id);
    let mut id = String::with_capacity(prefix.len() + 1 + digits.len() + random.len());
    id.push_str(prefix);
    id.push('_');
    id.push_str(digits);
    id.push_str(random);
    id
}

/// The session a [`child_id`] names, if `id` has that shape.
pub fn owning_session_id(id: &str) -> Option<String> {
    let (_, rest) = id.split_once('_')?;
    let digits = rest.get(..TIME_LEN + REFERENCE_KEY_LEN)?;
    let session = format!("ps_{digits}");
    (rest.len() == digits.len() + CHILD_RANDOM_LEN && id_reference_key(&session).is_some()).then_some(session)
}

pub const CHILD_RANDOM_LEN: usize = 16;

impl PaymentSession {
    /// A new session from a validated spec, under the id [`session_id`] derives; a
    /// redirect-mode session gets its page from [`PaymentSession::with_page`], made from
    /// that id.
    pub fn create(spec: SessionSpec, merchant_id: String, now: DateTime<Utc>) -> Self {
        let id = session_id(&merchant_id, &spec.customer_id, &spec.reference, now);
        let status = match (spec.auto_confirm, spec.payment_type) {
            (false, _) => SessionStatus::RequiresConfirmation,
            (true, PaymentType::Single) => SessionStatus::Open,
            (true, PaymentType::Multiple) => SessionStatus::Active,
        };
        PaymentSession {
            id,
            merchant_id,
            status,
            spec,
            url: None,
            payment_request_id: None,
            payments: Vec::new(),
            payment_method_id: None,
            attempts_remaining: MAX_ATTEMPTS,
            cancellation_reason: None,
            created_at: now,
            updated_at: now,
            version: 1,
            page_token_hash: None,
            instructions: Instructions::default(),
            otp: None,
        }
    }

    /// The session with its hosted page: the URL handed to the merchant and the hash its
    /// links are checked against.
    pub fn with_page(self, page: HostedPage) -> Self {
        PaymentSession { url: Some(page.url), page_token_hash: Some(page.token_hash), ..self }
    }

    /// The number a deposit arrives with, which the stores index (see [`Locator`]).
    pub fn virtual_account_number(&self) -> Option<&str> {
        self.instructions.virtual_account.as_ref().map(|v| v.account_number.as_str())
    }

    pub fn past_expiry(&self, now: DateTime<Utc>) -> bool {
        self.spec.expires_at <= now
    }

    pub fn transition_context(&self, now: DateTime<Utc>) -> TransitionContext {
        self.context(now)
    }

    fn context(&self, now: DateTime<Utc>) -> TransitionContext {
        TransitionContext {
            payment_type: self.spec.payment_type,
            expiration_mode: self.spec.expiration_mode,
            past_expiry: self.past_expiry(now),
        }
    }

    /// The status as of `now` (an idle session past `expires_at` reads as expired).
    pub fn status_at(&self, now: DateTime<Utc>) -> SessionStatus {
        effective_status(self.status, self.spec.expiration_mode, self.past_expiry(now))
    }

    /// Applies a merchant action, returning the next version of the session.
    pub fn apply(&self, action: MerchantAction, now: DateTime<Utc>) -> Result<PaymentSession, InvalidTransition> {
        let event = action.event();
        let effective = self.status_at(now);
        // An idle session already past its expiry accepts only the expiry itself, which
        // then writes down what readers already see.
        if effective != self.status && event != SessionEvent::Expire {
            return Err(InvalidTransition { from: effective, event });
        }
        let to = transition(self.status, event, self.context(now))?;
        let mut next = self.clone();
        next.status = to;
        next.updated_at = now;
        next.version += 1;
        match action {
            MerchantAction::Confirm { payment_request_id } => next.payment_request_id = Some(payment_request_id),
            MerchantAction::Cancel { reason } => next.cancellation_reason = Some(reason),
            // Loose mode with an attempt running: the attempt may finish, but the session
            // counts as past its expiry from now on.
            MerchantAction::Expire => next.spec.expires_at = next.spec.expires_at.min(now),
        }
        Ok(next)
    }

    /// The session as the API shows it at `now`, serialised straight from the record.
    pub fn api_view(&self, now: DateTime<Utc>) -> ApiSession<'_> {
        let status = self.status_at(now);
        let ctx = TransitionContext { past_expiry: self.past_expiry(now), ..self.context(now) };
        ApiSession {
            id: &self.id,
            object: "payment_session",
            status,
            spec: &self.spec,
            url: &self.url,
            payment_request_id: &self.payment_request_id,
            payments: &self.payments,
            payment_method_id: &self.payment_method_id,
            attempts_remaining: self.attempts_remaining,
            cancellation_reason: &self.cancellation_reason,
            created_at: self.created_at,
            updated_at: self.updated_at,
            instructions: &self.instructions,
            allowed_actions: allowed_actions(status, ctx),
            livemode: false,
        }
    }

    /// The payment object of one of this session's attempts, as of `now`.
    pub fn payment_view(&self, attempt: &PaymentAttempt, money: Option<crate::refund::PaymentMoney>, now: DateTime<Utc>) -> Value {
        let cx = crate::attempt::PaymentContext {
            now,
            session_id: &self.id,
            currency: self.spec.currency.code(),
            payment_method_id: self.payment_method_id.as_deref(),
            mandate_id: self.spec.mandate_id.as_deref(),
        };
        crate::attempt::payment_view(attempt, &cx, money)
    }

    /// [`Self::api_view`] as a JSON value, for callers that embed it (events, snapshots).
    pub fn to_api(&self, now: DateTime<Utc>) -> Value {
        serde_json::to_value(self.api_view(now)).expect("a session view serialises")
    }
}

/// A session as the API shows it. An allow-list: a field added to [`PaymentSession`] stays
/// internal until it is named here (`merchant_id`, `version`, `page_token_hash` and `otp`
/// never are). Serialised directly, it spares a read the JSON tree that filtering the
/// record's own serialisation built (perf: 14 % of a local `GET` went there).
#[derive(Debug, Serialize)]
pub struct ApiSession<'a> {
    id: &'a str,
    object: &'static str,
    status: SessionStatus,
    #[serde(flatten)]
    spec: &'a SessionSpec,
    url: &'a Option<String>,
    payment_request_id: &'a Option<String>,
    payments: &'a [PaymentAttempt],
    payment_method_id: &'a Option<String>,
    attempts_remaining: u32,
    cancellation_reason: &'a Option<CancellationReason>,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    updated_at: DateTime<Utc>,
    instructions: &'a Instructions,
    allowed_actions: Vec<&'static str>,
    livemode: bool,
}

/// What the merchant can do to a session through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MerchantAction {
    Confirm { payment_request_id: String },
    Cancel { reason: CancellationReason },
    Expire,
}

impl MerchantAction {
    pub fn event(&self) -> SessionEvent {
        match self {
            MerchantAction::Confirm { .. } => SessionEvent::Confirm,
            MerchantAction::Cancel { .. } => SessionEvent::Cancel,
            MerchantAction::Expire => SessionEvent::Expire,
        }
    }
}

/// The event types a change from `before` to `after` produces, in order, with the
/// previous status where one applies: `payment_session.created` on creation; then
/// `payment.updated` for each attempt that appeared or changed; then, if the status
/// changed, `payment_session.updated` and the terminal event. A change that is neither
/// (a loose-mode expiry request) is reported as `payment_session.updated`.
pub fn event_types_for(before: Option<&PaymentSession>, after: &PaymentSession) -> Vec<(&'static str, Option<SessionStatus>)> {
    let Some(before) = before else { return vec![("payment_session.created", None)] };
    let mut types: Vec<(&'static str, Option<SessionStatus>)> = Vec::new();
    for attempt in changed_attempts(before, after) {
        types.push(("payment.updated", None));
        let was_authorised = before.payments.iter().any(|b| b.id == attempt.id && b.status == AttemptStatus::RequiresCapture);
        match attempt.status {
            AttemptStatus::Succeeded if was_authorised => types.push(("payment.captured", None)),
            AttemptStatus::Canceled if was_authorised => types.push(("payment.canceled", None)),
            _ => {}
        }
        if attempt.dispute.is_some() && before.payments.iter().any(|b| b.id == attempt.id && b.dispute.is_none()) {
            types.push(("payment.disputed", None));
        }
    }
    if before.status != after.status || types.is_empty() {
        types.push(("payment_session.updated", Some(before.status)));
    }
    if before.status != after.status {
        let terminal = match after.status {
            SessionStatus::Succeeded => Some("payment_session.succeeded"),
            SessionStatus::Failed => Some("payment_session.failed"),
            SessionStatus::Expired => Some("payment_session.expired"),
            SessionStatus::Cancelled => Some("payment_session.cancelled"),
            _ => None,
        };
        types.extend(terminal.map(|t| (t, Some(before.status))));
    }
    types
}

fn changed_attempts<'a>(before: &'a PaymentSession, after: &'a PaymentSession) -> impl Iterator<Item = &'a PaymentAttempt> + 'a {
    // Reconciliation's bookkeeping (when the processor is asked next) is no change to a merchant.
    after.payments.iter().filter(move |a| !before.payments.iter().any(|b| b.id == a.id && b.without_sync() == a.without_sync()))
}

/// A session's API view at one instant, serialised: the JSON text an answer carries and
/// its events' `data.object` embeds.
pub struct ViewJson(Box<serde_json::value::RawValue>);

impl ViewJson {
    pub fn of(session: &PaymentSession, now: DateTime<Utc>) -> ViewJson {
        // Not `RawValue::from_string`, which parses the text it was just given again.
        ViewJson(serde_json::value::to_raw_value(&session.api_view(now)).expect("an API view serialises"))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    fn raw(&self) -> &serde_json::value::RawValue {
        &self.0
    }
}

/// Builds the event records for a change; `ids` yields fresh `evt_` ids.
pub fn events_for(
    before: Option<&PaymentSession>,
    after: &PaymentSession,
    now: DateTime<Utc>,
    ids: impl FnMut() -> String,
) -> Vec<EventRecord> {
    events_with_view(before, after, &ViewJson::of(after, now), now, ids)
}

/// [`events_for`] with `after`'s view at `now` already serialised: a change that also
/// answers with the view (create, merchant actions) serialises it once for both.
pub fn events_with_view(
    before: Option<&PaymentSession>,
    after: &PaymentSession,
    snapshot: &ViewJson,
    now: DateTime<Utc>,
    mut ids: impl FnMut() -> String,
) -> Vec<EventRecord> {
    let snapshot = snapshot.raw();
    let mut attempts = before.map(|b| changed_attempts(b, after).collect::<Vec<_>>()).unwrap_or_default().into_iter();
    let mut payment = None;
    let events = event_types_for(before, after)
        .into_iter()
        .map(|(t, previous)| {
            let previous = previous.map(|p| p.as_str());
            let data = if t.starts_with("payment.") {
                if t == "payment.updated" {
                    let attempt = attempts.next().expect("one payment.updated per changed attempt");
                    // No refund exists while the session itself changes a payment (refunds
                    // follow success), so the untouched counters are the payment's.
                    payment = Some(EventData::of(&after.payment_view(attempt, None, now), None));
                }
                payment.clone().expect("payment.captured, .canceled and .disputed follow their payment.updated")
            } else {
                EventData::of(snapshot, previous)
            };
            EventRecord { id: ids(), event_type: t.to_string(), created_at: now, session_id: after.id.clone(), data }
        })
        .collect();
    crate::event::in_write_order(events)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::model::PaymentMethodKind;
    use crate::{MerchantPolicy, parse_create_session};

    #[test]
    fn child_ids_name_their_session_and_old_ids_do_not() {
        let at = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
        let session = session_id("mer_1", "cus_1", "order-1", at);
        let pay = child_id("pay", &session, "0123456789abcdef");
        assert_eq!(owning_session_id(&pay).as_deref(), Some(session.as_str()));
        assert_eq!(owning_session_id(&child_id("re", &session, "0123456789abcdef")).as_deref(), Some(session.as_str()));
        // An id made before (`pay_` + 32 hex digits: valid base-32 digits too) names none.
        assert_eq!(owning_session_id("pay_019ae3f2a1c4d5e6f708192a3b4c5d6e"), None);
        assert_eq!(owning_session_id(&pay[..pay.len() - 1]), None);
        assert_eq!(owning_session_id("pay_"), None);
    }

    #[test]
    fn session_ids_carry_the_creation_time_and_the_reference_key() {
        let at = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
        let id = session_id("mer_1", "cus_1", "order-1", at);
        // Pinned (computed independently with Python's hashlib): a stored session must keep
        // finding its reference under the key this function gave it.
        assert_eq!(id, "ps_01m7yrrt803qw95s3a7r5haw2mvt39");
        assert_eq!(id_reference_key(&id), Some(reference_key("mer_1", "cus_1", "order-1").as_str()));
        let later = session_id("mer_1", "cus_1", "order-1", at + chrono::Duration::milliseconds(1));
        assert!(later > id, "ids grow with time");
        assert_eq!(id_reference_key(&later), id_reference_key(&id), "one reference, one key");
        // Each part counts, and moving bytes from one part to the next makes another key.
        let key = reference_key("mer_1", "cus_1", "order-1");
        for other in [
            reference_key("mer_2", "cus_1", "order-1"),
            reference_key("mer_1", "cus_2", "order-1"),
            reference_key("mer_1", "cus_1", "order-2"),
            reference_key("mer_1", "cus_1o", "rder-1"),
            reference_key("mer_1cus_1", "", "order-1"),
        ] {
            assert_ne!(key, other);
        }
        for foreign in [
            "ps_missing",
            "ps_01m7yrrt803qw95s3a7r5haw2mvt3",
            "ps_01m7yrrt803qw95s3a7r5haw2mvt3i",
            "ps_01M7yrrt803qw95s3a7r5haw2mvt39",
            "pa_01m7yrrt803qw95s3a7r5haw2mvt39",
        ] {
            assert_eq!(id_reference_key(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn locators_round_trip_and_reject_malformed_input() {
        let token = page_token("mer_1", "ps_2", "c2VjcmV0-_x");
        assert_eq!(page_locator(&token), Some(Locator { merchant_id: "mer_1", session_id: "ps_2" }));
        assert_eq!(page_locator("mer.with.dots.ps_2.s").map(|l| l.merchant_id), Some("mer.with.dots"));
        for bad in ["", "nodots", "one.dot", ".ps_2.s", "mer_1..s", "mer_1.ps_2."] {
            assert_eq!(page_locator(bad), None, "{bad:?}");
        }
        let qr = qr_payload_id("mer_1", "ps_2");
        assert_eq!(qr_locator(&qr), Some(Locator { merchant_id: "mer_1", session_id: "ps_2" }));
        for bad in ["", "qr_", "qr_mer_1", "mer_1.ps_2", "qr_.ps_2", "qr_mer_1."] {
            assert_eq!(qr_locator(bad), None, "{bad:?}");
        }
    }

    /// A session with every optional part set: customer, metadata, items, page token, a
    /// one-time code and virtual-account instructions.
    fn full_session(now: DateTime<Utc>) -> PaymentSession {
        let policy = MerchantPolicy { payment_methods: PaymentMethodKind::ALL.to_vec(), redirect_urls: vec![] };
        let body = json!({"amount": 1050, "currency": "EUR", "customer_id": "c", "reference": "r",
                          "customer": {"email": "a@b.example"}, "metadata": {"k": "v"},
                          "items": [{"name": "Rent", "quantity": 1, "unit_amount": 1050, "type": "property"}]});
        let mut s = PaymentSession::create(parse_create_session(&body, now, &policy).unwrap(), "mer_1".into(), now);
        s.page_token_hash = Some("hash".into());
        s.otp = Some(OtpState {
            code_hash: "h".into(),
            sandbox_code: None,
            expires_at: now,
            tries_left: 3,
            sent_to: String::new(),
            wrong_codes: 0,
            sends: 1,
            last_sent_at: None,
            used: false,
        });
        s.instructions.virtual_account = Some(VirtualAccount { bank_name: "Sandbox Bank".into(), account_number: "1234".into() });
        s
    }

    /// Read back through `StoredSession`, the record is what was written.
    #[test]
    fn stored_form_round_trips_every_field() {
        let s = full_session(Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap());
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<PaymentSession>(&text).unwrap(), s);
    }

    /// Event data is written straight from the views; it must be the text the JSON-tree
    /// form it replaced gave, key order included (webhook bodies are signed as sent).
    #[test]
    fn event_data_is_the_api_view_with_the_previous_status() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
        let before = full_session(now);
        let mut after = before.clone();
        let attempt = PaymentAttempt { status: AttemptStatus::Succeeded, amount: 1050, ..crate::attempt::card_attempt("pa_1", now) };
        after.payments.push(attempt.clone());
        after.status = SessionStatus::Succeeded;
        let mut n = 0;
        let events = events_for(Some(&before), &after, now, || {
            n += 1;
            format!("evt_{n}")
        });
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["payment.updated", "payment_session.updated", "payment_session.succeeded"]);

        let payment = after.payment_view(&attempt, None, now);
        assert_eq!((payment["object"].as_str(), payment["session_id"].as_str()), (Some("payment"), Some(after.id.as_str())));
        assert_eq!(events[0].data.get(), json!({"object": payment}).to_string());
        let session = json!({"object": after.to_api(now), "previous_status": "open"}).to_string();
        assert_eq!(events[1].data.get(), session);
        assert_eq!(events[2].data.get(), session);

        let created = events_for(None, &before, now, || "evt_c".into());
        assert_eq!(created[0].data.get(), json!({"object": before.to_api(now)}).to_string());
        let envelope = created[0].to_api().to_json();
        let parsed: Value = serde_json::from_str(&envelope).unwrap();
        assert_eq!(parsed["object"], "event");
        assert_eq!(parsed["type"], "payment_session.created");
        assert_eq!(parsed["data"], created[0].data.to_value());
        let stored: EventRecord = serde_json::from_str(&serde_json::to_string(&created[0]).unwrap()).unwrap();
        assert_eq!(stored, created[0], "a stored event reads back as written");
    }

    /// The view names every stored field but the internal ones, in the record's order, so
    /// a field added to the record has to be placed (shown or kept internal) on purpose.
    #[test]
    fn api_view_is_the_record_without_internal_fields() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
        let s = full_session(now);
        let api = s.to_api(now + chrono::Duration::days(30));

        let Value::Object(stored) = serde_json::to_value(&s).unwrap() else { unreachable!() };
        let internal = ["merchant_id", "version", "page_token_hash", "otp"];
        let mut expected: Vec<&str> = vec!["id", "object", "status"];
        expected.extend(stored.keys().map(String::as_str).filter(|k| !internal.contains(k) && !["id", "status"].contains(k)));
        expected.extend(["allowed_actions", "livemode"]);
        assert_eq!(api.as_object().unwrap().keys().map(String::as_str).collect::<Vec<_>>(), expected);
        for (k, v) in &stored {
            if !internal.contains(&k.as_str()) && k != "status" {
                assert_eq!(&api[k], v, "{k}");
            }
        }
        assert_eq!(api["status"], json!("expired"), "the status as of the view's now");
        assert_eq!(api["object"], json!("payment_session"));
        assert_eq!(api["allowed_actions"], json!([]));
        assert_eq!(api["livemode"], json!(false));
        assert_eq!(serde_json::to_string(&s.api_view(now)).unwrap(), s.to_api(now).to_string(), "one shape, both ways");
    }

    /// The stored form embeds the validated spec flattened, so records written before the
    /// spec was embedded (plain numbers and strings) read back, and the API keeps its shape.
    #[test]
    fn stored_form_keeps_plain_fields() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
        let policy = MerchantPolicy { payment_methods: PaymentMethodKind::ALL.to_vec(), redirect_urls: vec![] };
        let body = json!({"amount": 1050, "currency": "JPY", "customer_id": "c", "reference": "r",
                          "allowed_domains": ["https://shop.example", "com.shop.app"]});
        let s = PaymentSession::create(parse_create_session(&body, now, &policy).unwrap(), "mer_1".into(), now);
        let stored = serde_json::to_value(&s).unwrap();
        assert_eq!(stored["amount"], json!(1050));
        assert_eq!(stored["currency"], json!("JPY"));
        assert_eq!(stored["allowed_domains"], json!(["https://shop.example", "com.shop.app"]));
        assert!(stored.get("spec").is_none(), "flattened, not nested");
        let back: PaymentSession = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(back, s);
        assert!(back.spec.allowed_domains[0].is_origin() && !back.spec.allowed_domains[1].is_origin());
        assert_eq!(back.spec.currency.exponent(), 0);

        let mut bad = stored;
        bad["amount"] = json!(0);
        assert!(serde_json::from_value::<PaymentSession>(bad.clone()).is_err(), "a stored amount is still an Amount");
        bad["amount"] = json!(1050);
        bad["currency"] = json!("XXX");
        assert!(serde_json::from_value::<PaymentSession>(bad).is_err());
    }
}
