//! OAuth 2.0 client-credentials: keyed-hashed client secrets and short-lived signed tokens
//! (a JWT with HS256) bound to one merchant.
//!
//! Client secrets are ours, 256 random bits: a slow password hash buys nothing against
//! guessing them and cost 19 MiB and ~350 ms of CPU per check (an easy denial of service).
//! They are stored as HMAC-SHA-256 under a key derived from the token signing key, compared
//! in constant time. Argon2 records of earlier versions still verify, and are rewritten in
//! the keyed form on their next successful use.

use std::fmt;
use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
#[cfg(test)]
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::clock::Clock;
pub use crate::entities::{ApiClient, Principal, Scope, scopes_to_string};
use crate::ports::{MerchantStore, StoreError};
use crate::secret::Secret;

pub const TOKEN_LIFETIME_SECS: i64 = 900;

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    mer: String,
    scope: String,
    iat: i64,
    exp: i64,
    jti: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is malformed")]
    Malformed,
    #[error("the access token signature is invalid")]
    BadSignature,
    #[error("the access token has expired")]
    Expired,
}

const ISSUER: &str = "paysession";
pub const SEALED_PREFIX: &str = "sealed:v1:";

/// Signs and verifies access tokens. Token lifetimes follow the wall clock, never the
/// sandbox test clock: advancing business time must not log every client out.
pub struct TokenSigner {
    key: Secret<Vec<u8>>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSigner(***)")
    }
}

impl TokenSigner {
    /// `key` needs at least 32 bytes.
    pub fn new(key: Secret<Vec<u8>>, clock: Arc<dyn Clock>) -> Result<Self, String> {
        if key.expose().len() < 32 {
            return Err("token signing key must be at least 32 bytes".into());
        }
        Ok(TokenSigner { key, clock })
    }

    /// The wall clock tokens (and request signatures) are judged by.
    pub fn wall_now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(self.key.expose()).expect("HMAC takes any key length")
    }

    /// Derives a stable value from the signing key (e.g. the local demo client's secret),
    /// so it can be reproduced without being stored in clear.
    pub fn derive(&self, label: &str) -> String {
        let mut mac = self.mac();
        mac.update(b"derive:");
        mac.update(label.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }

    fn sealing_cipher(&self) -> chacha20poly1305::XChaCha20Poly1305 {
        use chacha20poly1305::KeyInit;
        let mut mac = self.mac();
        mac.update(b"seal:v1");
        chacha20poly1305::XChaCha20Poly1305::new_from_slice(&mac.finalize().into_bytes()).expect("32-byte key")
    }

    /// Encrypts a secret the service must read back later (webhook signing secrets, a
    /// response that shows one), under a key derived from the signing key, so the store
    /// never holds it in clear. Output: `sealed:v1:` + base64(nonce ‖ ciphertext).
    pub fn seal(&self, plaintext: &str) -> String {
        use chacha20poly1305::aead::{Aead, AeadCore, OsRng};
        let nonce = chacha20poly1305::XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self.sealing_cipher().encrypt(&nonce, plaintext.as_bytes()).expect("encryption of a bounded buffer");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{SEALED_PREFIX}{}", B64.encode(out))
    }

    /// The plaintext of [`TokenSigner::seal`]; `None` if it was sealed under another key or
    /// altered.
    pub fn open(&self, sealed: &str) -> Option<Secret<String>> {
        use chacha20poly1305::aead::Aead;
        let raw = B64.decode(sealed.strip_prefix(SEALED_PREFIX)?).ok()?;
        if raw.len() < 24 {
            return None;
        }
        let (nonce, ct) = raw.split_at(24);
        let pt = self.sealing_cipher().decrypt(chacha20poly1305::XNonce::from_slice(nonce), ct).ok()?;
        String::from_utf8(pt).ok().map(Secret::new)
    }

    pub fn issue(&self, client: &ApiClient, scopes: &[Scope]) -> String {
        let now = self.clock.now().timestamp();
        let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = Claims {
            iss: ISSUER.into(),
            sub: client.client_id.clone(),
            mer: client.merchant_id.clone(),
            scope: scopes_to_string(scopes),
            iat: now,
            exp: now + TOKEN_LIFETIME_SECS,
            jti: crate::ids::new_id("tok"),
        };
        let payload = B64.encode(serde_json::to_vec(&claims).expect("claims serialise"));
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
        // Only our own header is ever signed, so after the signature check it needs no
        // parsing; the claims do.
        let claims: Claims = B64.decode(p).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).ok_or(TokenError::Malformed)?;
        if claims.iss != ISSUER {
            return Err(TokenError::Malformed);
        }
        if claims.exp <= self.clock.now().timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(Principal { merchant_id: claims.mer, client_id: claims.sub, scopes: claims.scope.split(' ').filter_map(Scope::parse).collect() })
    }
}

/// The stored form of a client secret: this prefix, then base64url of the keyed hash.
const SECRET_HASH_PREFIX: &str = "hmac-sha256$";

/// How a presented client secret compares with the stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretCheck {
    Match,
    /// Matches an Argon2 record of an earlier version: store [`TokenSigner::hash_client_secret`].
    MatchLegacy,
    NoMatch,
}

impl SecretCheck {
    pub fn matched(self) -> bool {
        self != SecretCheck::NoMatch
    }
}

impl TokenSigner {
    fn client_secret_mac(&self) -> Hmac<Sha256> {
        let mut derive = self.mac();
        derive.update(b"client-secret-hash:v1");
        Hmac::<Sha256>::new_from_slice(&derive.finalize().into_bytes()).expect("HMAC takes any key length")
    }

    /// HMAC-SHA-256 of the secret under a key derived from the signing key.
    pub fn hash_client_secret(&self, secret: &str) -> String {
        let mut mac = self.client_secret_mac();
        mac.update(secret.as_bytes());
        format!("{SECRET_HASH_PREFIX}{}", B64.encode(mac.finalize().into_bytes()))
    }

    /// Compares in constant time; an Argon2 record (earlier versions) is verified the slow
    /// way once and reported for rewriting. Unknown forms never match.
    pub fn check_client_secret(&self, secret: &str, stored: &str) -> SecretCheck {
        if let Some(encoded) = stored.strip_prefix(SECRET_HASH_PREFIX) {
            let Ok(expected) = B64.decode(encoded) else { return SecretCheck::NoMatch };
            let mut mac = self.client_secret_mac();
            mac.update(secret.as_bytes());
            return if mac.verify_slice(&expected).is_ok() { SecretCheck::Match } else { SecretCheck::NoMatch };
        }
        let legacy = PasswordHash::new(stored).is_ok_and(|h| Argon2::default().verify_password(secret.as_bytes(), &h).is_ok());
        if legacy { SecretCheck::MatchLegacy } else { SecretCheck::NoMatch }
    }

    /// Whether checking against `stored` takes the slow (Argon2) path.
    pub fn is_legacy_hash(stored: &str) -> bool {
        !stored.starts_with(SECRET_HASH_PREFIX)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("client authentication failed")]
    InvalidClient,
    #[error("the requested scope is invalid or exceeds what the client holds")]
    InvalidScope,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug)]
pub struct Grant {
    pub access_token: Secret<String>,
    pub scopes: Vec<Scope>,
    /// The client with its secret rehashed in the keyed form, to store (its record was an
    /// Argon2 hash of an earlier version).
    pub rehashed: Option<ApiClient>,
}

/// The client-credentials grant: authenticates the client and issues a token for the
/// requested scopes (all it holds when none are requested). Blocking only for a legacy
/// Argon2 record ([`TokenSigner::is_legacy_hash`]).
pub fn grant(
    client: Option<ApiClient>,
    client_secret: &str,
    requested_scope: Option<&str>,
    signer: &TokenSigner,
) -> Result<Grant, OAuthError> {
    let check = match &client {
        Some(c) => signer.check_client_secret(client_secret, &c.secret_hash),
        None => {
            // The same work as for a known client, so timing does not tell ids apart.
            let _ = signer.hash_client_secret(client_secret);
            SecretCheck::NoMatch
        }
    };
    let client = client.filter(|_| check.matched()).ok_or(OAuthError::InvalidClient)?;
    let scopes = match requested_scope.map(str::trim).filter(|s| !s.is_empty()) {
        None => client.granted_scopes(),
        Some(requested) => {
            let mut out = Vec::new();
            for word in requested.split(' ').filter(|w| !w.is_empty()) {
                let scope = Scope::parse(word).ok_or(OAuthError::InvalidScope)?;
                if !client.granted_scopes().contains(&scope) {
                    return Err(OAuthError::InvalidScope);
                }
                if !out.contains(&scope) {
                    out.push(scope);
                }
            }
            out
        }
    };
    let token = signer.issue(&client, &scopes);
    let rehashed =
        (check == SecretCheck::MatchLegacy).then(|| ApiClient { secret_hash: signer.hash_client_secret(client_secret), ..client });
    Ok(Grant { access_token: Secret::new(token), scopes, rehashed })
}

/// Looks the client up; kept apart from [`grant`] so the blocking hash check can run off
/// the async executor.
pub async fn find_client<S: MerchantStore + ?Sized>(store: &S, client_id: &str) -> Result<Option<ApiClient>, StoreError> {
    if client_id.is_empty() || client_id.len() > 200 {
        return Ok(None);
    }
    store.get_client(client_id).await
}

/// Time at which a token issued now expires, for responses.
pub fn expires_in() -> i64 {
    TOKEN_LIFETIME_SECS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn signer() -> TokenSigner {
        TokenSigner::new(Secret::new(vec![7u8; 32]), Arc::new(SystemClock)).unwrap()
    }

    fn client() -> ApiClient {
        ApiClient {
            client_id: "cid_1".into(),
            merchant_id: "mer_1".into(),
            secret_hash: signer().hash_client_secret("s3cret"),
            scopes: Scope::ALL.to_vec(),
            created_at: Utc::now(),
            knows_refunds_scope: true,
        }
    }

    #[test]
    fn clients_stored_before_the_refunds_scope_hold_it_with_sessions_write() {
        let legacy = ApiClient { scopes: vec![Scope::SessionsRead, Scope::SessionsWrite], knows_refunds_scope: false, ..client() };
        assert!(legacy.granted_scopes().contains(&Scope::RefundsWrite));
        let read_only = ApiClient { scopes: vec![Scope::SessionsRead], knows_refunds_scope: false, ..client() };
        assert!(!read_only.granted_scopes().contains(&Scope::RefundsWrite));
        let restricted = ApiClient { scopes: vec![Scope::SessionsWrite], knows_refunds_scope: true, ..client() };
        assert!(!restricted.granted_scopes().contains(&Scope::RefundsWrite), "a client written knowing the scope keeps its list");
        let stored: ApiClient = serde_json::from_value(serde_json::json!({
            "client_id": "c", "merchant_id": "m", "secret_hash": "h", "scopes": ["sessions:write"], "created_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        assert!(stored.granted_scopes().contains(&Scope::RefundsWrite), "a record from before the scope");
    }

    #[test]
    fn sealing() {
        let s = signer();
        let a = s.seal("whsec_abc");
        assert!(a.starts_with(SEALED_PREFIX) && !a.contains("whsec_abc"));
        assert_ne!(a, s.seal("whsec_abc"), "fresh nonce each time");
        assert_eq!(s.open(&a).unwrap().expose(), "whsec_abc");
        let other = TokenSigner::new(Secret::new(vec![8u8; 32]), Arc::new(SystemClock)).unwrap();
        assert!(other.open(&a).is_none());
        let mut tampered = a.clone();
        tampered.pop();
        tampered.push(if a.ends_with('A') { 'B' } else { 'A' });
        assert!(s.open(&tampered).is_none());
    }

    #[test]
    fn round_trip_and_tamper() {
        let s = signer();
        let t = s.issue(&client(), &[Scope::SessionsRead]);
        let p = s.verify(&t).unwrap();
        assert_eq!(p.merchant_id, "mer_1");
        assert_eq!(p.scopes, vec![Scope::SessionsRead]);
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged =
            B64.encode(br#"{"iss":"paysession","sub":"cid_1","mer":"mer_2","scope":"sessions:read","iat":0,"exp":99999999999,"jti":"x"}"#);
        parts[1] = &forged;
        assert_eq!(s.verify(&parts.join(".")), Err(TokenError::BadSignature));
        let other = TokenSigner::new(Secret::new(vec![8u8; 32]), Arc::new(SystemClock)).unwrap();
        assert_eq!(other.verify(&t), Err(TokenError::BadSignature));
        assert_eq!(s.verify("abc"), Err(TokenError::Malformed));
    }

    #[test]
    fn grants() {
        let s = signer();
        assert!(matches!(grant(Some(client()), "wrong", None, &s), Err(OAuthError::InvalidClient)));
        assert!(matches!(grant(None, "s3cret", None, &s), Err(OAuthError::InvalidClient)));
        assert!(matches!(grant(Some(client()), "s3cret", Some("admin"), &s), Err(OAuthError::InvalidScope)));
        let g = grant(Some(client()), "s3cret", Some("sessions:read sessions:read"), &s).unwrap();
        assert_eq!(g.scopes, vec![Scope::SessionsRead]);
        assert_eq!(grant(Some(client()), "s3cret", None, &s).unwrap().scopes.len(), Scope::ALL.len());
    }

    #[test]
    fn secrets_are_keyed_hashes_and_argon2_records_migrate() {
        use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
        let s = signer();
        let h = s.hash_client_secret("sk_x");
        assert!(h.starts_with("hmac-sha256$") && !h.contains("sk_x"));
        assert_eq!(h, s.hash_client_secret("sk_x"), "deterministic: the key is the salt");
        assert_eq!(s.check_client_secret("sk_x", &h), SecretCheck::Match);
        assert_eq!(s.check_client_secret("sk_y", &h), SecretCheck::NoMatch);
        let other = TokenSigner::new(Secret::new(vec![8u8; 32]), Arc::new(SystemClock)).unwrap();
        assert_eq!(other.check_client_secret("sk_x", &h), SecretCheck::NoMatch, "keyed: another key does not verify");
        assert_eq!(s.check_client_secret("sk_x", "hmac-sha256$!!"), SecretCheck::NoMatch);
        assert_eq!(s.check_client_secret("sk_x", "sk_x"), SecretCheck::NoMatch, "a clear-text record never matches");

        let phc = Argon2::default().hash_password(b"s3cret", &SaltString::generate(&mut OsRng)).unwrap().to_string();
        assert!(TokenSigner::is_legacy_hash(&phc));
        assert_eq!(s.check_client_secret("s3cret", &phc), SecretCheck::MatchLegacy);
        assert_eq!(s.check_client_secret("nope", &phc), SecretCheck::NoMatch);
        let legacy = ApiClient { secret_hash: phc, ..client() };
        let g = grant(Some(legacy), "s3cret", None, &s).unwrap();
        let rehashed = g.rehashed.expect("a legacy record is rewritten on use");
        assert_eq!(s.check_client_secret("s3cret", &rehashed.secret_hash), SecretCheck::Match);
        assert!(grant(Some(client()), "s3cret", None, &s).unwrap().rehashed.is_none());
    }
}
