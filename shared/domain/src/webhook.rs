//! Webhook rules: which URLs may receive events, which events an endpoint wants, the
//! Standard Webhooks signature, and the retry schedule of a delivery. No IO: address
//! resolution and HTTP live in adapters, which call [`address_refusal`] on every address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::errors::{Errors, FieldCode, FieldError, index};
use crate::json::ObjectReader;

/// Every event type an endpoint can subscribe to (API.md "Webhooks").
pub const EVENT_TYPES: &[&str] = &[
    "payment_session.created",
    "payment_session.updated",
    "payment_session.succeeded",
    "payment_session.failed",
    "payment_session.expired",
    "payment_session.cancelled",
    "payment.updated",
    "payment.captured",
    "payment.canceled",
    "payment.disputed",
    "refund.created",
    "refund.updated",
    "refund.succeeded",
    "refund.failed",
    "mandate.created",
    "mandate.updated",
    "mandate.revoked",
    "mandate.suspended",
    "mandate.completed",
    "payment_method.attached",
    "payment_method.detached",
];

/// Waits before the 2nd … 8th attempt. After the 8th failure the delivery is dead.
pub const RETRY_DELAYS_SECONDS: [i64; 7] = [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600];
pub const MAX_ATTEMPTS: usize = RETRY_DELAYS_SECONDS.len() + 1;
/// How long an HTTP attempt may take before it counts as failed.
pub const ATTEMPT_TIMEOUT_SECONDS: u64 = 15;
/// An old secret keeps signing this long after a rotation.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;
/// Endpoints per merchant: every event fans out to each of them.
pub const MAX_ENDPOINTS: usize = 16;

/// Where a receiver may live. `allow_private` is the local server's
/// `--allow-private-webhooks`: plain http and loopback/private networks become allowed;
/// link-local (cloud metadata) stays refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlPolicy {
    pub allow_private: bool,
}

/// A validated `POST /v1/webhook_endpoints` body.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSpec {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub signature_scheme: SignatureScheme,
}

pub fn parse_endpoint_create(body: &Value, policy: UrlPolicy) -> Result<EndpointSpec, Vec<FieldError>> {
    let mut e = Errors::new();
    let Some(mut r) = ObjectReader::new(body, "", &mut e) else { return Err(e.into_vec()) };
    let url = r.required_str("url", &mut e).and_then(|u| match endpoint_url(u, policy) {
        Ok(u) => Some(u),
        Err((code, msg)) => {
            e.add("url", code, msg);
            None
        }
    });
    let events = r.required("events", &mut e).and_then(|v| parse_event_list(v, &mut e));
    let description = r.str("description", &mut e).and_then(|d| match crate::fields::text(d, 1, 500) {
        Ok(d) => Some(d),
        Err((code, msg)) => {
            e.add("description", code, msg);
            None
        }
    });
    let signature_scheme = r.str("signature_scheme", &mut e).map_or(Some(SignatureScheme::V1), |s| {
        SignatureScheme::parse(s).or_else(|| {
            e.add("signature_scheme", FieldCode::InvalidValue, "must be v1 (HMAC-SHA256) or v1a (Ed25519)");
            None
        })
    });
    r.finish(&mut e);
    e.finish(|| EndpointSpec {
        url: url.unwrap_or_default(),
        events: events.unwrap_or_default(),
        description,
        signature_scheme: signature_scheme.unwrap_or_default(),
    })
}

fn parse_event_list(v: &Value, e: &mut Errors) -> Option<Vec<String>> {
    let Value::Array(items) = v else {
        e.add("events", FieldCode::InvalidType, "must be an array of event types or [\"*\"]");
        return None;
    };
    if items.is_empty() {
        e.add("events", FieldCode::TooFew, "must name at least one event type, or \"*\" for all");
        return None;
    }
    let before = e.len();
    let mut out: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(t) if t == "*" || EVENT_TYPES.contains(&t) => {
                if out.iter().any(|o| o == t) {
                    e.add(index("events", i), FieldCode::Duplicate, "is listed twice");
                } else {
                    out.push(t.to_string());
                }
            }
            Some(_) => e.add(index("events", i), FieldCode::InvalidValue, format!("must be \"*\" or one of {}", EVENT_TYPES.join(", "))),
            None => e.add(index("events", i), FieldCode::InvalidType, "must be a string"),
        }
    }
    if out.len() > 1 && out.iter().any(|t| t == "*") {
        e.add("events", FieldCode::InvalidValue, "\"*\" already means every event; list it alone");
    }
    (e.len() == before).then_some(out)
}

/// What to do about a receiver on this machine: the refusal names the flag that allows it.
const LOCAL_HINT: &str = " (a receiver on this machine or network needs the local server started with --allow-private-webhooks)";
const PLAIN_HTTP: &str = "must be an https URL (plain http is accepted only by a local server started with --allow-private-webhooks)";

/// Validates a receiver URL at registration: absolute https (http only when private
/// receivers are allowed), no credentials, no fragment, and an IP-literal host must be a
/// public address. Hostnames are checked again on every resolved address at delivery.
pub fn endpoint_url(s: &str, policy: UrlPolicy) -> Result<String, (FieldCode, String)> {
    let bad = |m: &str| Err((FieldCode::InvalidFormat, m.to_string()));
    if s.len() > 2048 {
        return Err((FieldCode::TooLong, "must be at most 2048 characters".into()));
    }
    let Ok(url) = url::Url::parse(s) else { return bad("must be an absolute https URL") };
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_private => {}
        "http" => return bad(PLAIN_HTTP),
        _ => return bad("must be an https URL"),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad("must not contain credentials");
    }
    if url.fragment().is_some() {
        return bad("must not contain a fragment");
    }
    match url.host() {
        None => bad("must name a host"),
        Some(url::Host::Ipv4(ip)) => check_literal(IpAddr::V4(ip), policy).map(|_| url.to_string()),
        Some(url::Host::Ipv6(ip)) => check_literal(IpAddr::V6(ip), policy).map(|_| url.to_string()),
        Some(url::Host::Domain(d)) => {
            if is_internal_name(d) && !policy.allow_private {
                return Err((FieldCode::NotAllowed, format!("{d} is not a public host name{LOCAL_HINT}")));
            }
            Ok(url.to_string())
        }
    }
}

fn check_literal(ip: IpAddr, policy: UrlPolicy) -> Result<(), (FieldCode, String)> {
    match address_refusal(ip, policy) {
        Some(why) if !policy.allow_private && address_refusal(ip, UrlPolicy { allow_private: true }).is_none() => {
            Err((FieldCode::NotAllowed, format!("{ip} is {why}; receivers must be public addresses{LOCAL_HINT}")))
        }
        Some(why) => Err((FieldCode::NotAllowed, format!("{ip} is {why}; receivers must be public addresses"))),
        None => Ok(()),
    }
}

/// Names that only resolve inside a network (and must never be tried from ours).
fn is_internal_name(d: &str) -> bool {
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    d == "localhost" || d.ends_with(".localhost") || d.ends_with(".internal") || d.ends_with(".local") || !d.contains('.')
}

/// Why a delivery must not connect to `ip`, or `None` when it may. IPv4-mapped and
/// IPv4-compatible IPv6 addresses are judged as the IPv4 address they carry.
pub fn address_refusal(ip: IpAddr, policy: UrlPolicy) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_refusal(v4, policy),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return v4_refusal(v4, policy);
            }
            let seg = v6.segments();
            if v6.is_unspecified() {
                Some("the unspecified address")
            } else if v6.is_loopback() {
                (!policy.allow_private).then_some("a loopback address")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if seg[0] & 0xfe00 == 0xfc00 {
                (!policy.allow_private).then_some("a private (unique local) address")
            } else if seg[0] & 0xff00 == 0xff00 {
                Some("a multicast address")
            } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
                Some("a documentation address")
            } else if seg[0] == 0x0064 && seg[1] == 0xff9b {
                // NAT64 maps IPv4 into this prefix: judge the carried address.
                v4_refusal(Ipv4Addr::new((seg[6] >> 8) as u8, seg[6] as u8, (seg[7] >> 8) as u8, seg[7] as u8), policy)
            } else {
                None
            }
        }
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let seg = v6.segments();
    // Deprecated IPv4-compatible form ::a.b.c.d (not :: or ::1).
    (seg[..6].iter().all(|s| *s == 0) && (seg[6] != 0 || seg[7] > 1))
        .then(|| Ipv4Addr::new((seg[6] >> 8) as u8, seg[6] as u8, (seg[7] >> 8) as u8, seg[7] as u8))
}

fn v4_refusal(ip: Ipv4Addr, policy: UrlPolicy) -> Option<&'static str> {
    let o = ip.octets();
    if o[0] == 169 && o[1] == 254 {
        Some("a link-local address (cloud metadata lives here)")
    } else if o[0] == 0 {
        Some("in 0.0.0.0/8 (this host)")
    } else if ip.is_loopback() {
        (!policy.allow_private).then_some("a loopback address")
    } else if ip.is_private() {
        (!policy.allow_private).then_some("a private address")
    } else if o[0] == 100 && (64..128).contains(&o[1]) {
        Some("a carrier-grade NAT address")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("an IETF protocol assignment address")
    } else if o[0] == 198 && (o[1] == 18 || o[1] == 19) {
        Some("a benchmarking address")
    } else if ip.is_documentation() {
        Some("a documentation address")
    } else if ip.is_multicast() || o[0] >= 240 {
        Some("a multicast, reserved or broadcast address")
    } else {
        None
    }
}

/// Does an endpoint subscribed to `events` want `event_type`?
pub fn subscribes(events: &[String], event_type: &str) -> bool {
    events.iter().any(|e| e == "*" || e == event_type)
}

/// A `whsec_` secret: 24 random bytes, base64. The HMAC key is the decoded bytes.
pub fn secret_from_bytes(bytes: &[u8]) -> String {
    format!("whsec_{}", B64.encode(bytes))
}

/// How an endpoint's deliveries are signed (Standard Webhooks): `v1` HMAC-SHA256 under a
/// shared `whsec_` secret, or `v1a` Ed25519 under a `whsk_` signing key whose public half
/// (`whpk_`) receivers verify with, holding no secret.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureScheme {
    #[default]
    V1,
    V1a,
}

impl SignatureScheme {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "v1" => Some(SignatureScheme::V1),
            "v1a" => Some(SignatureScheme::V1a),
            _ => None,
        }
    }
}

/// A `whsk_` Ed25519 signing key (its 32-byte seed, base64).
pub fn signing_key_from_seed(seed: &[u8; 32]) -> String {
    format!("whsk_{}", B64.encode(seed))
}

fn ed25519_key(secret: &str) -> Option<ed25519_dalek::SigningKey> {
    let seed: [u8; 32] = B64.decode(secret.strip_prefix("whsk_")?).ok()?.try_into().ok()?;
    Some(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// The `whpk_` public key of a `whsk_` signing key.
pub fn public_key(secret: &str) -> Option<String> {
    Some(format!("whpk_{}", B64.encode(ed25519_key(secret)?.verifying_key().as_bytes())))
}

/// The `webhook-signature` header value: `v1,<HMAC>` for each `whsec_` secret and
/// `v1a,<Ed25519 signature>` for each `whsk_` key, over `{id}.{timestamp}.{body}`,
/// space-separated (several while a rotation overlaps). `None` when a secret is neither.
pub fn signature_header<'a>(secrets: impl IntoIterator<Item = &'a str>, msg_id: &str, timestamp: i64, body: &str) -> Option<String> {
    use ed25519_dalek::Signer;
    let mut parts = Vec::new();
    for secret in secrets {
        let signed = format!("{msg_id}.{timestamp}.{body}");
        if let Some(encoded) = secret.strip_prefix("whsec_") {
            let key = B64.decode(encoded).ok()?;
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
            mac.update(signed.as_bytes());
            parts.push(format!("v1,{}", B64.encode(mac.finalize().into_bytes())));
        } else {
            let key = ed25519_key(secret)?;
            parts.push(format!("v1a,{}", B64.encode(key.sign(signed.as_bytes()).to_bytes())));
        }
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// Every attempt failed, or the receiver answered 410: dead-lettered.
    Failed,
    /// The endpoint was deleted or disabled before the delivery finished.
    Cancelled,
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptLog {
    pub number: u32,
    pub attempted_at: DateTime<Utc>,
    /// `None` when no response arrived (refused address, timeout, connection error).
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    pub error: Option<String>,
}

/// The result of one HTTP attempt, as the sender saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    pub error: Option<String>,
}

/// What a recorded attempt means for the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptVerdict {
    Delivered,
    RetryAt(DateTime<Utc>),
    /// All attempts used up.
    Exhausted,
    /// `410 Gone`: the receiver asked never to be called again.
    Gone,
}

/// Classifies an attempt and the next step. 2xx delivers; 410 disables; anything else
/// (3xx is not followed) is retried on the schedule.
pub fn verdict(result: &AttemptResult, attempts_made: usize, now: DateTime<Utc>) -> AttemptVerdict {
    match result.status_code {
        Some(code) if (200..300).contains(&code) => AttemptVerdict::Delivered,
        Some(410) => AttemptVerdict::Gone,
        _ => match RETRY_DELAYS_SECONDS.get(attempts_made.saturating_sub(1)) {
            Some(delay) if attempts_made < MAX_ATTEMPTS => AttemptVerdict::RetryAt(now + Duration::seconds(*delay)),
            _ => AttemptVerdict::Exhausted,
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    Enabled,
    /// Stopped by a `410 Gone`; deliveries are cancelled.
    Disabled,
}

/// A signing secret as stored: sealed (encrypted with the deployment key), never in clear.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    pub sealed: String,
    /// Set on the previous secret by a rotation; it stops signing then.
    pub expires_at: Option<DateTime<Utc>>,
    /// `v1a`: the `whpk_` public key of this signing key (public: kept in clear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub id: String,
    pub merchant_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub status: EndpointStatus,
    pub disabled_reason: Option<String>,
    /// Newest first.
    pub secrets: Vec<SealedSecret>,
    #[serde(default)]
    pub signature_scheme: SignatureScheme,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl WebhookEndpoint {
    /// `secret` signs with the spec's scheme (the caller made it so).
    pub fn create(spec: EndpointSpec, id: String, merchant_id: String, secret: SealedSecret, now: DateTime<Utc>) -> Self {
        WebhookEndpoint {
            id,
            merchant_id,
            url: spec.url,
            events: spec.events,
            description: spec.description,
            status: EndpointStatus::Enabled,
            disabled_reason: None,
            secrets: vec![secret],
            signature_scheme: spec.signature_scheme,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    /// The secrets that sign a message sent at `now`.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> impl Iterator<Item = &SealedSecret> {
        self.secrets.iter().filter(move |s| s.expires_at.is_none_or(|t| t > now))
    }

    /// A new current secret; the previous one keeps signing for
    /// [`ROTATION_OVERLAP_HOURS`] (a second rotation ends older overlaps at once).
    pub fn rotate(&self, secret: SealedSecret, now: DateTime<Utc>) -> WebhookEndpoint {
        let mut next = self.clone();
        let previous = self.secrets.first().map(|s| SealedSecret {
            expires_at: Some(
                s.expires_at.unwrap_or(now + Duration::hours(ROTATION_OVERLAP_HOURS)).min(now + Duration::hours(ROTATION_OVERLAP_HOURS)),
            ),
            ..s.clone()
        });
        next.secrets = std::iter::once(secret).chain(previous).collect();
        next.updated_at = now;
        next.version += 1;
        next
    }

    pub fn disable(&self, reason: &str, now: DateTime<Utc>) -> WebhookEndpoint {
        let mut next = self.clone();
        next.status = EndpointStatus::Disabled;
        next.disabled_reason = Some(reason.to_string());
        next.updated_at = now;
        next.version += 1;
        next
    }

    pub fn wants(&self, event_type: &str) -> bool {
        self.status == EndpointStatus::Enabled && subscribes(&self.events, event_type)
    }

    /// The API representation (never the secret: it is shown once, by create and rotate).
    pub fn to_api(&self, now: DateTime<Utc>) -> Value {
        let overlap_until = self.secrets.iter().skip(1).filter_map(|s| s.expires_at).filter(|t| *t > now).max();
        serde_json::json!({
            "id": self.id,
            "object": "webhook_endpoint",
            "url": self.url,
            "events": self.events,
            "description": self.description,
            "status": self.status,
            "disabled_reason": self.disabled_reason,
            "signature_scheme": self.signature_scheme,
            "public_key": self.secrets.first().and_then(|s| s.public_key.clone()),
            "previous_secret_expires_at": overlap_until,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub merchant_id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    /// The body an attempt sends: rendered from the stored event just before it (the same
    /// bytes every time), never stored with the delivery, whose record it would triple in
    /// size and in write units. Records written before carry it and are read as they are.
    #[serde(default, skip_serializing)]
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: Vec<AttemptLog>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// A dispatcher holds the delivery while it sends; another may take over after this.
    pub lease_until: Option<DateTime<Utc>>,
    /// Its queue message was sent (fan-out bookkeeping: a replayed stream record that
    /// finds this set sends nothing).
    pub queued: bool,
    /// Set when the delivery came from `POST /v1/events/{id}/redeliver`.
    pub redelivery: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// How long a dispatcher may hold a delivery: longer than an attempt can take.
pub const LEASE_SECONDS: i64 = 60;

/// Hex digits of a delivery id that names its creation time (`Delivery::id_at`): 12 of
/// milliseconds, 24 of the rest. Ids of 32 digits are older, and name no time.
const TIMED_DELIVERY_ID_HEX: usize = 36;

impl Delivery {
    /// The id of a delivery created at `created`: `whd_`, its millisecond (12 hex digits),
    /// then `tail` (24). A store may keep the delivery under a key made from its id alone
    /// (its time orders an endpoint's list), see [`Delivery::created_ms_of`].
    pub fn id_at(created: DateTime<Utc>, tail: &[u8; 12]) -> String {
        let mut id = format!("whd_{:012x}", created.timestamp_millis().max(0));
        id.extend(tail.iter().map(|b| format!("{b:02x}")));
        id
    }

    /// The creation millisecond an id made by [`Delivery::id_at`] names; `None` for ids of
    /// another shape (those made before ids named their time).
    pub fn created_ms_of(id: &str) -> Option<i64> {
        let hex = id.strip_prefix("whd_")?;
        if hex.len() != TIMED_DELIVERY_ID_HEX || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        i64::from_str_radix(&hex[..12], 16).ok()
    }

    /// The delivery of `event` (of `event_created`) to `endpoint_id` made by the fan-out: it
    /// is created at the event's time and its id derives from the pair, so making it twice
    /// (a replayed stream batch) names the same delivery.
    pub fn fan_out_id(event_id: &str, event_created: DateTime<Utc>, endpoint_id: &str) -> String {
        use sha2::Digest;
        let digest = Sha256::digest(format!("{event_id}\n{endpoint_id}").as_bytes());
        let tail: [u8; 12] = digest[..12].try_into().expect("a SHA-256 digest has 32 bytes");
        Self::id_at(event_created, &tail)
    }

    /// The fan-out's delivery of an event to an endpoint, due at `now`.
    pub fn fan_out(merchant_id: &str, endpoint_id: &str, event: &crate::event::EventRecord, now: DateTime<Utc>) -> Self {
        let id = Self::fan_out_id(&event.id, event.created_at, endpoint_id);
        let mut d = Self::new(id, merchant_id, endpoint_id, &event.id, &event.event_type, false, now);
        d.created_at = event.created_at;
        d
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        merchant_id: &str,
        endpoint_id: &str,
        event_id: &str,
        event_type: &str,
        redelivery: bool,
        now: DateTime<Utc>,
    ) -> Self {
        Delivery {
            id,
            merchant_id: merchant_id.to_string(),
            endpoint_id: endpoint_id.to_string(),
            event_id: event_id.to_string(),
            event_type: event_type.to_string(),
            payload: String::new(),
            status: DeliveryStatus::Pending,
            attempts: Vec::new(),
            next_attempt_at: Some(now),
            lease_until: None,
            queued: false,
            redelivery,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    /// When a pending delivery may next be attempted (its schedule or a running lease).
    pub fn not_before(&self) -> Option<DateTime<Utc>> {
        if self.status != DeliveryStatus::Pending {
            return None;
        }
        let scheduled = self.next_attempt_at.unwrap_or(self.created_at);
        Some(self.lease_until.map_or(scheduled, |l| l.max(scheduled)))
    }

    /// Takes the lease for an attempt at `now`.
    pub fn claim(&self, now: DateTime<Utc>) -> Delivery {
        let mut next = self.clone();
        next.lease_until = Some(now + Duration::seconds(LEASE_SECONDS));
        next.updated_at = now;
        next.version += 1;
        next
    }

    /// Records an attempt made under the lease and decides what follows.
    pub fn record(&self, attempted_at: DateTime<Utc>, result: AttemptResult, now: DateTime<Utc>) -> (Delivery, AttemptVerdict) {
        let mut next = self.clone();
        next.attempts.push(AttemptLog {
            number: self.attempts.len() as u32 + 1,
            attempted_at,
            status_code: result.status_code,
            duration_ms: result.duration_ms,
            error: result.error.clone(),
        });
        let v = verdict(&result, next.attempts.len(), now);
        (next.status, next.next_attempt_at) = match v {
            AttemptVerdict::Delivered => (DeliveryStatus::Delivered, None),
            AttemptVerdict::RetryAt(t) => (DeliveryStatus::Pending, Some(t)),
            AttemptVerdict::Exhausted | AttemptVerdict::Gone => (DeliveryStatus::Failed, None),
        };
        next.lease_until = None;
        next.updated_at = now;
        next.version += 1;
        (next, v)
    }

    /// Stops a pending delivery whose endpoint is gone or disabled.
    pub fn cancel(&self, now: DateTime<Utc>) -> Delivery {
        let mut next = self.clone();
        next.status = DeliveryStatus::Cancelled;
        next.next_attempt_at = None;
        next.lease_until = None;
        next.updated_at = now;
        next.version += 1;
        next
    }

    pub fn to_api(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "object": "webhook_delivery",
            "endpoint_id": self.endpoint_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "status": self.status,
            "redelivery": self.redelivery,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn delivery_ids_name_their_creation_time() {
        use super::Delivery;
        let at = chrono::DateTime::from_timestamp_millis(1_797_000_123_456).unwrap() + chrono::Duration::microseconds(789);
        let id = Delivery::id_at(at, &[0xab; 12]);
        assert_eq!(id.len(), 4 + 36);
        assert_eq!(Delivery::created_ms_of(&id), Some(1_797_000_123_456));
        let fan_out = Delivery::fan_out_id("evt_ps_1_00", at, "we_1");
        assert_eq!(Delivery::created_ms_of(&fan_out), Some(1_797_000_123_456));
        assert_eq!(fan_out, Delivery::fan_out_id("evt_ps_1_00", at, "we_1"), "a replayed fan-out names the same delivery");
        assert_ne!(fan_out, Delivery::fan_out_id("evt_ps_1_00", at, "we_2"));
        // Ids of before (32 hex digits: a hash, or time and randomness) name no time.
        assert_eq!(Delivery::created_ms_of("whd_019ae3f2a1c4aaaaaaaaaaaaaaaaaaaa"), None);
        assert_eq!(Delivery::created_ms_of("whd_dead"), None);
        assert_eq!(Delivery::created_ms_of(&id.to_uppercase().replace("WHD_", "whd_")), None);
        assert_eq!(Delivery::created_ms_of(&id.replace("whd_", "evt_")), None);
    }

    #[test]
    fn v1a_signs_with_ed25519_per_rfc_8032() {
        use ed25519_dalek::{Signer, Verifier};
        // RFC 8032, section 7.1, TEST 1.
        let seed: [u8; 32] = hex_bytes("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").try_into().unwrap();
        let key = signing_key_from_seed(&seed);
        assert_eq!(
            public_key(&key).unwrap(),
            format!("whpk_{}", B64.encode(hex_bytes("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")))
        );
        let expected = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
        assert_eq!(ed25519_key(&key).unwrap().sign(b"").to_bytes().to_vec(), hex_bytes(expected));
        // The header: one v1a signature of "{id}.{timestamp}.{body}" per key.
        let header = signature_header([key.as_str()], "evt_1", 1_700_000_000, r#"{"a":1}"#).unwrap();
        let sig = B64.decode(header.strip_prefix("v1a,").unwrap()).unwrap();
        let verifying = ed25519_key(&key).unwrap().verifying_key();
        let signature = ed25519_dalek::Signature::from_slice(&sig).unwrap();
        assert!(verifying.verify(br#"evt_1.1700000000.{"a":1}"#, &signature).is_ok());
        assert!(verifying.verify(br#"evt_1.1700000001.{"a":1}"#, &signature).is_err());
        assert!(signature_header(["whsk_short"], "evt_1", 0, "").is_none(), "a malformed key signs nothing");
    }

    fn hex_bytes(hex: &str) -> Vec<u8> {
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
    }

    use super::*;
    use chrono::TimeZone;

    const STRICT: UrlPolicy = UrlPolicy { allow_private: false };
    const LOCAL: UrlPolicy = UrlPolicy { allow_private: true };

    #[test]
    fn standard_webhooks_test_vector() {
        // The published vector of the Standard Webhooks specification.
        let sig = signature_header(
            ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig.as_deref(), Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
        let two = signature_header(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_AAAA"], "m", 1, "{}").unwrap();
        assert_eq!(two.split(' ').count(), 2);
        assert!(signature_header(["not-a-secret"], "m", 1, "{}").is_none());
    }

    #[test]
    fn url_rules() {
        assert!(endpoint_url("https://hooks.example.com/paysession?x=1", STRICT).is_ok());
        for bad in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "https://hooks.example.com/#frag",
            "https://localhost/",
            "https://metadata.google.internal/",
            "https://intranet/",
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://0177.0.0.1/",
            "https://0x7f.1/",
            "https://10.1.2.3/",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.64.0.1/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:a9fe:a9fe]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "not a url",
        ] {
            assert!(endpoint_url(bad, STRICT).is_err(), "{bad} must be refused");
        }
        assert!(endpoint_url("http://127.0.0.1:9000/hook", LOCAL).is_ok());
        // Refused without the flag, with a message that names it.
        let (_, why) = endpoint_url("http://127.0.0.1:9000/hook", STRICT).unwrap_err();
        assert!(why.contains("--allow-private-webhooks"), "{why}");
        let (_, why) = endpoint_url("https://10.0.0.7/hook", STRICT).unwrap_err();
        assert!(why.contains("private") && why.contains("--allow-private-webhooks"), "{why}");
        let (_, why) = endpoint_url("https://169.254.169.254/", STRICT).unwrap_err();
        assert!(!why.contains("--allow-private-webhooks"), "the flag does not allow metadata addresses: {why}");
        assert!(endpoint_url("http://169.254.169.254/", LOCAL).is_err(), "metadata stays refused locally");
    }

    #[test]
    fn addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(address_refusal(ip("93.184.216.34"), STRICT), None);
        assert_eq!(address_refusal(ip("2606:2800:220:1:248:1893:25c8:1946"), STRICT), None);
        for bad in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "::1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "fe80::1",
            "fc00::1",
            "64:ff9b::7f00:1",
        ] {
            assert!(address_refusal(ip(bad), STRICT).is_some(), "{bad} must be refused");
        }
    }

    #[test]
    fn create_body() {
        let ok = parse_endpoint_create(&serde_json::json!({"url": "https://h.example/x", "events": ["payment.updated"]}), STRICT).unwrap();
        assert_eq!(ok.events, vec!["payment.updated"]);
        let errs = parse_endpoint_create(&serde_json::json!({"url": "http://h.example", "events": ["nope", "*", 3], "colour": 1}), STRICT)
            .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["url", "events[0]", "events[2]", "colour"]);
        assert!(
            parse_endpoint_create(&serde_json::json!({"url": "https://h.example", "events": ["*", "payment.updated"]}), STRICT).is_err()
        );
        assert!(parse_endpoint_create(&serde_json::json!({"url": "https://h.example", "events": []}), STRICT).is_err());
    }

    #[test]
    fn schedule() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let fail = AttemptResult { status_code: Some(500), duration_ms: 3, error: None };
        let waits: Vec<i64> = (1..=MAX_ATTEMPTS)
            .map_while(|n| match verdict(&fail, n, now) {
                AttemptVerdict::RetryAt(t) => Some((t - now).num_seconds()),
                _ => None,
            })
            .collect();
        assert_eq!(waits, RETRY_DELAYS_SECONDS.to_vec());
        assert_eq!(verdict(&fail, MAX_ATTEMPTS, now), AttemptVerdict::Exhausted);
        let gone = AttemptResult { status_code: Some(410), ..fail.clone() };
        assert_eq!(verdict(&gone, 1, now), AttemptVerdict::Gone);
        let redirect = AttemptResult { status_code: Some(302), ..fail.clone() };
        assert!(matches!(verdict(&redirect, 1, now), AttemptVerdict::RetryAt(_)));
        let ok = AttemptResult { status_code: Some(204), ..fail };
        assert_eq!(verdict(&ok, 3, now), AttemptVerdict::Delivered);
    }
}
