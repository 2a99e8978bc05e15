//! Signed requests: a merchant's signing profile (the `signed_requests` setting and its
//! public keys) and the check every authenticated API request passes before its handler.

use crate::Core;
pub use crate::entities::{KeyStatus, SigningKey, SigningProfile};
use crate::ports::{SigningStore, StoreError};
use crate::retry::Races;
use chrono::{DateTime, Duration, Utc};
use paysession_domain::signed_requests::{Algorithm, Mode, NONCE_TTL_SECONDS, Presented, PublicKey, RequestParts, SignatureError};

/// Active keys per merchant (enough for rotation across several services).
pub const MAX_ACTIVE_KEYS: usize = 10;
/// Revoked keys are kept (they answer `GET` with `status: revoked`) up to this many in all.
pub const MAX_KEPT_KEYS: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The `public_key` text: what is wrong with it.
    #[error("public_key {0}")]
    Invalid(String),
    #[error("a merchant can have at most {MAX_ACTIVE_KEYS} active signing keys; revoke one first")]
    TooMany,
    #[error("this public key is already registered and active")]
    Duplicate,
    /// The change would lock the merchant out of its own API.
    #[error("{0}")]
    Refused(String),
    #[error("no signing key with id {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn profile<S: SigningStore + ?Sized>(cx: &Core<S>, merchant_id: &str) -> Result<SigningProfile, StoreError> {
    Ok(cx.store.get_signing_profile(merchant_id).await?.unwrap_or_else(|| SigningProfile::empty(merchant_id)))
}

/// Read, change, write back if nobody else wrote in between; retried on a lost race.
async fn change<S: SigningStore + ?Sized, T>(
    cx: &Core<S>,
    merchant_id: &str,
    f: impl Fn(&mut SigningProfile, DateTime<Utc>) -> Result<T, SigningError>,
) -> Result<(SigningProfile, T), SigningError> {
    let mut races = Races::new(format!("signing profile of {merchant_id}"));
    loop {
        let mut p = profile(cx, merchant_id).await?;
        let out = f(&mut p, cx.clock.now())?;
        p.version += 1;
        match cx.store.put_signing_profile(&p).await {
            Ok(()) => {
                cx.recent.signing.forget(&merchant_id.to_string());
                return Ok((p, out));
            }
            Err(StoreError::VersionConflict) => races.lost()?,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Switching to `required` needs an active key: otherwise no request could ever pass,
/// including the ones that register keys. (The admin CLI can always switch it off.)
pub async fn set_mode<S: SigningStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    mode: Mode,
    force: bool,
) -> Result<SigningProfile, SigningError> {
    change(cx, merchant_id, |p, _| {
        if mode == Mode::Required && !force && p.active().next().is_none() {
            return Err(SigningError::Refused("register a signing key (POST /v1/signing_keys) before requiring signed requests".into()));
        }
        p.mode = mode;
        Ok(())
    })
    .await
    .map(|(p, ())| p)
}

pub async fn add_key<S: SigningStore + ?Sized>(
    cx: &Core<S>,
    merchant_id: &str,
    algorithm: Algorithm,
    text: &str,
) -> Result<SigningKey, SigningError> {
    let key = PublicKey::parse(text, algorithm).map_err(SigningError::Invalid)?;
    let pem = key.to_pem();
    let id = crate::ids::new_id("key");
    change(cx, merchant_id, |p, now| {
        if p.active().count() >= MAX_ACTIVE_KEYS {
            return Err(SigningError::TooMany);
        }
        if p.active().any(|k| k.public_key == pem) {
            return Err(SigningError::Duplicate);
        }
        let new =
            SigningKey { id: id.clone(), algorithm, public_key: pem.clone(), status: KeyStatus::Active, created_at: now, revoked_at: None };
        p.keys.push(new.clone());
        while p.keys.len() > MAX_KEPT_KEYS {
            let oldest_revoked = p.keys.iter().position(|k| k.status == KeyStatus::Revoked).expect("more kept than active");
            p.keys.remove(oldest_revoked);
        }
        Ok(new)
    })
    .await
    .map(|(_, k)| k)
}

/// Revoking is final. The last active key of a merchant that requires signatures stays.
pub async fn revoke_key<S: SigningStore + ?Sized>(cx: &Core<S>, merchant_id: &str, key_id: &str) -> Result<SigningKey, SigningError> {
    change(cx, merchant_id, |p, now| {
        let mode = p.mode;
        let active = p.active().count();
        let key = p.keys.iter_mut().find(|k| k.id == key_id).ok_or_else(|| SigningError::NotFound(key_id.to_string()))?;
        if key.status == KeyStatus::Active {
            if mode == Mode::Required && active == 1 {
                return Err(SigningError::Refused(
                    "this is the last active key and signed requests are required; register another key or set signed_requests to optional first"
                        .into(),
                ));
            }
            key.status = KeyStatus::Revoked;
            key.revoked_at = Some(now);
        }
        Ok(key.clone())
    })
    .await
    .map(|(_, k)| k)
}

/// Why a request was refused: its signature, or the store behind the check.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The check before every authenticated handler: with `required` a valid signature must be
/// present; with `optional` one that is present must verify; its nonce is then spent.
pub async fn check_request<S: SigningStore + ?Sized>(cx: &Core<S>, merchant_id: &str, req: &RequestParts<'_>) -> Result<(), CheckError> {
    let read = cx.recent.signing.get_or_load(&merchant_id.to_string(), async || cx.store.get_signing_profile(merchant_id).await).await?;
    let Some(p) = read else { return Ok(()) };
    if p.mode == Mode::Off {
        return Ok(());
    }
    let Some(presented) = Presented::find(req)? else {
        return if p.mode == Mode::Required { Err(SignatureError::Missing.into()) } else { Ok(()) };
    };
    let key = p.active().find(|k| k.id == presented.key_id()).ok_or_else(|| SignatureError::UnknownKey(presented.key_id().to_string()))?;
    let public = PublicKey::parse(&key.public_key, key.algorithm).map_err(|e| StoreError::Backend(format!("stored key {} {e}", key.id)))?;
    // Freshness is judged by the wall clock the client signs with, not a sandbox test clock.
    let now = cx.keys.wall_now();
    let verified = presented.verify(req, &public, key.algorithm, now)?;
    let claimant = crate::ids::new_id("nc");
    if !cx.store.claim_nonce(merchant_id, &verified.nonce, &claimant, now, now + Duration::seconds(NONCE_TTL_SECONDS)).await? {
        return Err(SignatureError::Replayed.into());
    }
    Ok(())
}
