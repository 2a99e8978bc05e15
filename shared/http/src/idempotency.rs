//! `Idempotency-Key` handling: first writer wins by a conditional claim; a finished
//! request's response is replayed byte for byte; the claim of a request that died expires.

use chrono::Duration;
use paysession_app::auth::Principal;
use paysession_app::ids::{new_id, sha256_hex};
use paysession_app::ports::{IdempotencyBegin, IdempotencyCompletion, StoredResponse};
use paysession_app::Deps;

use crate::problem::ApiError;
use crate::request::Call;

/// How long a replayable response is kept.
pub const RETENTION: Duration = Duration::hours(24);
/// How long a claim holds before another request may take it over (its owner died).
pub const LOCK: Duration = Duration::seconds(60);

/// The claim a request holds on its key.
pub struct Claim {
    merchant_id: String,
    key: String,
    owner: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

impl Claim {
    /// The record to write in the same transaction as the change this response reports.
    pub fn completion(&self, response: &StoredResponse) -> IdempotencyCompletion {
        IdempotencyCompletion {
            merchant_id: self.merchant_id.clone(),
            key: self.key.clone(),
            owner: self.owner.clone(),
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

fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

pub async fn start(deps: &Deps, principal: &Principal, call: &Call<'_>) -> Result<Start, ApiError> {
    let Some(raw) = call.req.headers().get("idempotency-key") else { return Ok(Start::Proceed(None)) };
    let key = raw.to_str().ok().filter(|k| valid_key(k)).ok_or_else(|| {
        ApiError::MalformedRequest("Idempotency-Key must be 1 to 255 printable ASCII characters".into())
    })?;
    // The fingerprint binds the key to this exact request: method, path and body bytes.
    let mut material = Vec::new();
    material.extend_from_slice(call.req.method().as_str().as_bytes());
    material.push(b' ');
    material.extend_from_slice(call.req.uri().path().as_bytes());
    material.push(b'\n');
    material.extend_from_slice(call.body_bytes());
    let fingerprint = sha256_hex(&material);
    let owner = new_id("req");
    let now = deps.clock.now();
    let begin = deps
        .idempotency
        .begin(&principal.merchant_id, key, &fingerprint, &owner, now, now + LOCK)
        .await?;
    match begin {
        IdempotencyBegin::Started => Ok(Start::Proceed(Some(Claim {
            merchant_id: principal.merchant_id.clone(),
            key: key.to_string(),
            owner,
            expires_at: now + RETENTION,
        }))),
        IdempotencyBegin::Replay(r) => Ok(Start::Replay(r)),
        IdempotencyBegin::InFlight => Err(ApiError::IdempotencyKeyInUse),
        IdempotencyBegin::Mismatch => Err(ApiError::IdempotencyKeyReuse),
    }
}

/// Settles a claim after the handler ran without recording it: a client error is final
/// and is stored for replay; a server error releases the key so a retry can run.
pub async fn finish_unrecorded(deps: &Deps, claim: &Claim, response: &StoredResponse) {
    let result = if response.status >= 500 {
        deps.idempotency.release(&claim.merchant_id, &claim.key, &claim.owner).await
    } else {
        deps.idempotency.complete(&claim.completion(response)).await
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not settle idempotency claim; it expires on its own");
    }
}
