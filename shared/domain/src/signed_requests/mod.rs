//! Signed API requests: a merchant registers public keys and signs each request with the
//! private half, so a stolen access token alone cannot create or change anything.
//!
//! Two forms are accepted: RFC 9421 HTTP Message Signatures (`Signature-Input` +
//! `Signature`, with an RFC 9530 `Content-Digest`) and the older draft-cavage form
//! (`Signature: keyId=…,headers=…` + `Digest`), which some providers' clients still send.
//! This module is pure: it parses, builds the signature base and verifies. Replay (nonce)
//! memory and the merchant's keys live behind the application's ports.

pub mod cavage;
pub mod keys;
pub mod rfc9421;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

pub use keys::{Algorithm, PublicKey};

/// How far `created` (RFC 9421) or `Date` (cavage) may be from our clock, either way.
pub const MAX_SKEW_SECONDS: i64 = 300;
/// How long a nonce (or cavage `x-request-id`) is remembered: long enough to outlive the
/// whole window in which its signature could still be accepted.
pub const NONCE_TTL_SECONDS: i64 = 2 * MAX_SKEW_SECONDS;
pub const MAX_NONCE_LEN: usize = 128;

/// The merchant setting `signed_requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Signatures are neither required nor looked at.
    #[default]
    Off,
    /// A signature, when present, must verify.
    Optional,
    /// Every API request must carry a valid signature.
    Required,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        Mode::parse(s).ok_or_else(|| format!("{s:?} is not one of off, optional, required"))
    }
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Optional => "optional",
            Mode::Required => "required",
        }
    }
    pub fn parse(s: &str) -> Option<Mode> {
        [Mode::Off, Mode::Optional, Mode::Required].into_iter().find(|m| m.as_str() == s)
    }
}

/// Why a request's signature was refused; each is a problem `code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("this merchant requires signed requests, and the request carries no signature")]
    Missing,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Expired(String),
    #[error("this signature's nonce was already used; sign every request with a fresh nonce")]
    Replayed,
    #[error("{0}")]
    DigestMismatch(String),
    #[error("keyid {0:?} is not an active signing key of this merchant")]
    UnknownKey(String),
}

impl SignatureError {
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::Invalid(_) => "signature_invalid",
            SignatureError::Expired(_) => "signature_expired",
            SignatureError::Replayed => "signature_replayed",
            SignatureError::DigestMismatch(_) => "digest_mismatch",
            SignatureError::UnknownKey(_) => "unknown_key",
        }
    }
}

fn invalid(why: impl Into<String>) -> SignatureError {
    SignatureError::Invalid(why.into())
}

/// The parts of a request a signature can cover, as the client sent them.
pub struct RequestParts<'a> {
    /// Upper-case, as on the wire.
    pub method: &'a str,
    /// `https` or `http`, lower-case.
    pub scheme: &'a str,
    /// `host[:port]` as the `Host` header gave it.
    pub authority: &'a str,
    pub path: &'a str,
    /// Without the `?`; `None` when the target has no query.
    pub query: Option<&'a str>,
    /// Every header as (lower-case name, value), in order.
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
}

impl RequestParts<'_> {
    /// A header's field lines combined as RFC 9110 §5.3 combines them; `None` when absent.
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self.headers.iter().filter(|(n, _)| *n == name).map(|(_, v)| v.trim()).collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    fn path_and_query(&self) -> String {
        let path = if self.path.is_empty() { "/" } else { self.path };
        match self.query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        }
    }
}

/// A signature that verified: which key, and the value that must never be accepted twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub key_id: String,
    /// `rfc9421:<nonce>` or `cavage:<x-request-id>`.
    pub nonce: String,
}

/// A signature as found on a request, before its key is looked up.
pub enum Presented {
    Rfc9421(rfc9421::Signature),
    Cavage(cavage::Signature),
}

impl Presented {
    /// The signature a request carries, if any (RFC 9421 when `Signature-Input` is present).
    pub fn find(req: &RequestParts<'_>) -> Result<Option<Presented>, SignatureError> {
        if let Some(input) = req.header("signature-input") {
            let signature = req.header("signature").ok_or_else(|| invalid("Signature-Input is present but Signature is not"))?;
            return rfc9421::Signature::parse(&input, &signature).map(|s| Some(Presented::Rfc9421(s)));
        }
        match req.header("signature") {
            Some(v) => cavage::Signature::parse(&v).map(|s| Some(Presented::Cavage(s))),
            None => Ok(None),
        }
    }

    pub fn key_id(&self) -> &str {
        match self {
            Presented::Rfc9421(s) => &s.key_id,
            Presented::Cavage(s) => &s.key_id,
        }
    }

    /// Checks coverage, freshness, the body digest and the signature itself.
    pub fn verify(
        &self,
        req: &RequestParts<'_>,
        key: &PublicKey,
        algorithm: Algorithm,
        now: DateTime<Utc>,
    ) -> Result<Verified, SignatureError> {
        match self {
            Presented::Rfc9421(s) => s.verify(req, key, algorithm, now),
            Presented::Cavage(s) => s.verify(req, key, algorithm, now),
        }
    }
}

/// RFC 9530 `Content-Digest`: every sha-256 / sha-512 member must match the body, and at
/// least one must be present.
pub fn check_content_digest(header: &str, body: &[u8]) -> Result<(), SignatureError> {
    let dict = sfv::Parser::new(header)
        .parse_dictionary()
        .map_err(|e| SignatureError::DigestMismatch(format!("Content-Digest is not a structured dictionary: {e}")))?;
    let mut checked = 0;
    for (name, entry) in &dict {
        let expected: Vec<u8> = match name.as_str() {
            "sha-256" => Sha256::digest(body).to_vec(),
            "sha-512" => Sha512::digest(body).to_vec(),
            _ => continue,
        };
        let sfv::ListEntry::Item(item) = entry else {
            return Err(SignatureError::DigestMismatch(format!("Content-Digest {name} is not a byte sequence")));
        };
        match item.bare_item.as_byte_sequence() {
            Some(got) if got == expected.as_slice() => checked += 1,
            Some(_) => return Err(SignatureError::DigestMismatch(format!("Content-Digest {name} does not match the body"))),
            None => return Err(SignatureError::DigestMismatch(format!("Content-Digest {name} is not a byte sequence"))),
        }
    }
    if checked == 0 {
        return Err(SignatureError::DigestMismatch("Content-Digest carries neither sha-256 nor sha-512".into()));
    }
    Ok(())
}

fn check_nonce(nonce: &str, what: &str) -> Result<(), SignatureError> {
    if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN || !nonce.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(format!("{what} must be 1–{MAX_NONCE_LEN} visible ASCII characters")));
    }
    Ok(())
}

fn check_skew(at: i64, now: DateTime<Utc>, what: &str) -> Result<(), SignatureError> {
    let skew = now.timestamp() - at;
    if skew.abs() > MAX_SKEW_SECONDS {
        let direction = if skew > 0 { "old" } else { "in the future" };
        return Err(SignatureError::Expired(format!(
            "{what} is {}s {direction}; signatures are accepted within ±{MAX_SKEW_SECONDS}s of the server's clock",
            skew.abs()
        )));
    }
    Ok(())
}

/// A signature's own `expires`, when it sets one.
fn check_expires(expires: Option<i64>, now: DateTime<Utc>) -> Result<(), SignatureError> {
    match expires {
        Some(at) if at < now.timestamp() => Err(SignatureError::Expired("the signature's expires time has passed".into())),
        _ => Ok(()),
    }
}

fn b64(s: &str) -> Result<Vec<u8>, SignatureError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s.trim()).map_err(|_| invalid("the signature is not valid base64"))
}
