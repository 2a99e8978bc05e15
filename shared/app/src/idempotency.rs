//! `Idempotency-Key`: first writer wins by a conditional claim; a finished request's
//! response is replayed byte for byte; the claim of a request that died expires. The
//! decision over a stored record is [`decide`], the one rule both store adapters apply.

use chrono::{DateTime, Duration, Utc};

use crate::context::Core;
use crate::ids::{new_id, sha256_hex};
use crate::ports::{Hold, IdempotencyBegin, IdempotencyCompletion, IdempotencyStore, StoreError, StoredResponse};

/// How long a replayable response is kept (business time).
pub const RETENTION: Duration = Duration::hours(24);
/// How long a claim holds before another request may take it over (its owner died).
pub const LOCK: Duration = Duration::seconds(60);

/// A stored record as an adapter read it.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub fingerprint: &'a str,
    /// `true` once the response is stored; `false` while a request holds the claim.
    pub done: bool,
    pub locked_until_ms: i64,
    pub expires_at_ms: i64,
}

/// What a request may do with a key, given the record stored under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A finished request with the same fingerprint: replay its stored response.
    Replay,
    /// Another request holds the key right now.
    InFlight,
    /// The key was used for a different request.
    Mismatch,
    /// Absent, past retention, or an abandoned claim: take it (conditionally on what was seen).
    Claim,
}

pub fn decide(seen: Option<Seen<'_>>, fingerprint: &str, now: DateTime<Utc>) -> Decision {
    let now_ms = now.timestamp_millis();
    match seen {
        Some(r) if r.done && r.expires_at_ms > now_ms => {
            if r.fingerprint == fingerprint {
                Decision::Replay
            } else {
                Decision::Mismatch
            }
        }
        Some(r) if !r.done && r.locked_until_ms > now_ms => {
            if r.fingerprint == fingerprint {
                Decision::InFlight
            } else {
                Decision::Mismatch
            }
        }
        _ => Decision::Claim,
    }
}

/// The claim a request holds on its key: made before it ran ([`start`]), or taken by the
/// write that completes it ([`fresh`]).
pub struct Claim {
    merchant_id: String,
    key: String,
    hold: Hold,
    expires_at: DateTime<Utc>,
}

impl Claim {
    /// The record to write in the same transaction as the change this response reports.
    pub fn completion(&self, response: &StoredResponse) -> IdempotencyCompletion {
        IdempotencyCompletion {
            merchant_id: self.merchant_id.clone(),
            key: self.key.clone(),
            hold: self.hold.clone(),
            response: response.clone(),
            expires_at: self.expires_at,
        }
    }
}

pub enum Start {
    /// Go ahead; `None` when the request carried no key.
    Proceed(Option<Claim>),
    Replay(StoredResponse),
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("Idempotency-Key must be 1 to 255 printable ASCII characters")]
    Malformed,
    #[error("another request with this Idempotency-Key is in progress")]
    InUse,
    #[error("this Idempotency-Key was used with a different request")]
    Reused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn valid_key(key: &[u8]) -> bool {
    (1..=255).contains(&key.len()) && key.iter().all(|b| (0x20..=0x7e).contains(b))
}

/// Binds a key to one exact request: method, path and body bytes.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut material = Vec::with_capacity(method.len() + path.len() + body.len() + 2);
    material.extend_from_slice(method.as_bytes());
    material.push(b' ');
    material.extend_from_slice(path.as_bytes());
    material.push(b'\n');
    material.extend_from_slice(body);
    sha256_hex(&material)
}

fn checked_key(raw: &[u8]) -> Result<&str, KeyError> {
    if !valid_key(raw) {
        return Err(KeyError::Malformed);
    }
    std::str::from_utf8(raw).map_err(|_| KeyError::Malformed)
}

/// A claim that costs no store request: the change's own write takes the key, conditional
/// on no live record being there. For changes that write once and carry the completion in
/// that write (a create, a session action): a concurrent or repeated request then loses
/// that condition, changes nothing, and goes the way of [`start`].
pub fn fresh<S: ?Sized>(cx: &Core<S>, merchant_id: &str, raw: &[u8], fingerprint: String) -> Result<Claim, KeyError> {
    let key = checked_key(raw)?;
    let now = cx.clock.now();
    Ok(Claim {
        merchant_id: merchant_id.to_string(),
        key: key.to_string(),
        hold: Hold::Fresh { fingerprint, owner: new_id("req"), now },
        expires_at: now + RETENTION,
    })
}

/// Stores the final response of a request under a fresh claim that its own write did not
/// record (a client error): [`StoreError::IdempotencyLost`] when the key was taken.
pub async fn record<S: IdempotencyStore + ?Sized>(cx: &Core<S>, claim: &Claim, response: &StoredResponse) -> Result<(), StoreError> {
    cx.store.complete(&claim.completion(response)).await
}

/// Claims `key` (the raw header value, if any) for the request with `fingerprint`.
pub async fn start<S: IdempotencyStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    key: Option<&[u8]>,
    fingerprint: impl FnOnce() -> String,
) -> Result<Start, KeyError> {
    let Some(raw) = key else { return Ok(Start::Proceed(None)) };
    let key = checked_key(raw)?;
    let owner = new_id("req");
    let now = cx.clock.now();
    match cx.store.begin(merchant_id, key, &fingerprint(), &owner, now, now + LOCK).await? {
        IdempotencyBegin::Started => Ok(Start::Proceed(Some(Claim {
            merchant_id: merchant_id.to_string(),
            key: key.to_string(),
            hold: Hold::Owned(owner),
            expires_at: now + RETENTION,
        }))),
        IdempotencyBegin::Replay(r) => Ok(Start::Replay(r)),
        IdempotencyBegin::InFlight => Err(KeyError::InUse),
        IdempotencyBegin::Mismatch => Err(KeyError::Reused),
    }
}

/// Settles a claim after the request ran without recording it in its own write: a client
/// error is final and stored for replay; a server error releases the key so a retry runs.
pub async fn settle<S: IdempotencyStore + ?Sized>(cx: &Core<S>, claim: &Claim, response: &StoredResponse) {
    let result = if response.status >= 500 { release_held(cx, claim).await } else { cx.store.complete(&claim.completion(response)).await };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not settle idempotency claim; it expires on its own");
    }
}

/// Gives a claim up without storing a response: the request never ran, so a corrected
/// retry under the same key may run.
pub async fn release<S: IdempotencyStore + ?Sized>(cx: &Core<S>, claim: &Claim) {
    if let Err(e) = release_held(cx, claim).await {
        tracing::warn!(error = %e, "could not release idempotency claim; it expires on its own");
    }
}

/// A fresh claim holds nothing in the store until its write, so there is nothing to drop.
async fn release_held<S: IdempotencyStore + ?Sized>(cx: &Core<S>, claim: &Claim) -> Result<(), StoreError> {
    match &claim.hold {
        Hold::Owned(owner) => cx.store.release(&claim.merchant_id, &claim.key, owner).await,
        Hold::Fresh { .. } => Ok(()),
    }
}

/// Marks a stored response body that was sealed because it shows a secret.
const SEALED_BODY: &str = "sealed-response:";

/// The form of a response that shows a secret (a webhook signing secret) as stored for replay.
pub fn sealed<S: ?Sized>(cx: &Core<S>, response: &StoredResponse) -> StoredResponse {
    StoredResponse { body: format!("{SEALED_BODY}{}", cx.keys.seal(&response.body)), ..response.clone() }
}

/// A stored response ready to replay; `None` when a sealed body cannot be opened.
pub fn unsealed<S: ?Sized>(cx: &Core<S>, mut response: StoredResponse) -> Option<StoredResponse> {
    if let Some(sealed) = response.body.strip_prefix(SEALED_BODY) {
        response.body = cx.keys.open(sealed)?.expose().clone();
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        let ms = now.timestamp_millis();
        let done = Seen { fingerprint: "f", done: true, locked_until_ms: ms - 1, expires_at_ms: ms + 1 };
        assert_eq!(decide(None, "f", now), Decision::Claim);
        assert_eq!(decide(Some(done), "f", now), Decision::Replay);
        assert_eq!(decide(Some(done), "g", now), Decision::Mismatch);
        assert_eq!(decide(Some(Seen { expires_at_ms: ms, ..done }), "g", now), Decision::Claim, "past retention");
        let held = Seen { fingerprint: "f", done: false, locked_until_ms: ms + 1, expires_at_ms: ms + 1 };
        assert_eq!(decide(Some(held), "f", now), Decision::InFlight);
        assert_eq!(decide(Some(held), "g", now), Decision::Mismatch);
        assert_eq!(decide(Some(Seen { locked_until_ms: ms, ..held }), "g", now), Decision::Claim, "abandoned claim");
    }

    #[test]
    fn keys() {
        assert!(valid_key(b"order-1"));
        assert!(!valid_key(b""));
        assert!(!valid_key(&[b'a'; 256]));
        assert!(!valid_key("ü".as_bytes()));
        assert_ne!(fingerprint("POST", "/a", b"{}"), fingerprint("POST", "/b", b"{}"));
    }
}
