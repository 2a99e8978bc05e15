//! Merchant public keys: the four algorithms, PEM (SPKI, or PKCS#1 for RSA) or JWK input,
//! and verification. Parsing and the primitives are RustCrypto's (ed25519-dalek, p256,
//! rsa); nothing here does arithmetic of its own.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{SignatureError, invalid};

pub const MIN_RSA_BITS: usize = 2048;
/// The rsa crate's own ceiling for public keys; larger keys only cost verification time.
pub const MAX_RSA_BITS: usize = 4096;
/// A PEM or JWK longer than this is not a public key of a supported type.
pub const MAX_KEY_TEXT: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    #[serde(rename = "ed25519")]
    Ed25519,
    #[serde(rename = "ecdsa-p256-sha256")]
    EcdsaP256Sha256,
    #[serde(rename = "rsa-pss-sha512")]
    RsaPssSha512,
    #[serde(rename = "rsa-v1_5-sha256")]
    RsaV15Sha256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 4] = [Algorithm::Ed25519, Algorithm::EcdsaP256Sha256, Algorithm::RsaPssSha512, Algorithm::RsaV15Sha256];
    /// The RFC 9421 `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            Algorithm::RsaPssSha512 => "rsa-pss-sha512",
            Algorithm::RsaV15Sha256 => "rsa-v1_5-sha256",
        }
    }
    pub fn parse(s: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// A parsed public key, ready to verify.
#[derive(Debug, Clone)]
pub enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

/// How ECDSA signatures are encoded: RFC 9421 uses the fixed r‖s form; draft-cavage
/// clients send whatever their library produced, usually DER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcdsaEncoding {
    Fixed,
    FixedOrDer,
}

impl PublicKey {
    /// Parses `text` (PEM or JWK JSON) as a public key for `algorithm`; the message says
    /// what is wrong in terms a merchant can act on.
    pub fn parse(text: &str, algorithm: Algorithm) -> Result<PublicKey, String> {
        let text = text.trim();
        if text.len() > MAX_KEY_TEXT {
            return Err(format!("is longer than {MAX_KEY_TEXT} characters; expected one public key"));
        }
        if text.contains("PRIVATE KEY") {
            return Err("is a private key; register only the public key (keep the private key with you)".into());
        }
        let key = if text.starts_with('{') { from_jwk(text)? } else { from_pem(text, algorithm)? };
        match (&key, algorithm) {
            (PublicKey::Ed25519(_), Algorithm::Ed25519) | (PublicKey::P256(_), Algorithm::EcdsaP256Sha256) => Ok(key),
            (PublicKey::Rsa(k), Algorithm::RsaPssSha512 | Algorithm::RsaV15Sha256) => {
                use rsa::traits::PublicKeyParts;
                let bits = k.n().bits();
                if bits < MIN_RSA_BITS {
                    return Err(format!("is a {bits}-bit RSA key; at least {MIN_RSA_BITS} bits are required"));
                }
                Ok(key)
            }
            _ => Err(format!("is not a key for {}", algorithm.as_str())),
        }
    }

    /// The key as SPKI PEM: the one form it is stored and shown in.
    pub fn to_pem(&self) -> String {
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        let pem = match self {
            PublicKey::Ed25519(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::P256(k) => p256::pkcs8::EncodePublicKey::to_public_key_pem(k, LineEnding::LF),
            PublicKey::Rsa(k) => rsa::pkcs8::EncodePublicKey::to_public_key_pem(k, LineEnding::LF),
        };
        pem.expect("a parsed public key always encodes")
    }

    pub fn verify(&self, algorithm: Algorithm, message: &[u8], signature: &[u8], ecdsa: EcdsaEncoding) -> bool {
        use rsa::signature::Verifier;
        match (self, algorithm) {
            (PublicKey::Ed25519(k), Algorithm::Ed25519) => {
                ed25519_dalek::Signature::from_slice(signature).is_ok_and(|s| k.verify_strict(message, &s).is_ok())
            }
            (PublicKey::P256(k), Algorithm::EcdsaP256Sha256) => {
                let sig = match (signature.len(), ecdsa) {
                    (64, _) => p256::ecdsa::Signature::from_slice(signature).ok(),
                    (_, EcdsaEncoding::FixedOrDer) => p256::ecdsa::Signature::from_der(signature).ok(),
                    _ => None,
                };
                sig.is_some_and(|s| k.verify(message, &s).is_ok())
            }
            (PublicKey::Rsa(k), Algorithm::RsaPssSha512) => rsa::pss::Signature::try_from(signature)
                .is_ok_and(|s| rsa::pss::VerifyingKey::<sha2::Sha512>::new(k.clone()).verify(message, &s).is_ok()),
            (PublicKey::Rsa(k), Algorithm::RsaV15Sha256) => rsa::pkcs1v15::Signature::try_from(signature)
                .is_ok_and(|s| rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k.clone()).verify(message, &s).is_ok()),
            _ => false,
        }
    }

    /// Verifies, turning a failure into the problem the client sees.
    pub fn check(&self, algorithm: Algorithm, message: &[u8], signature: &[u8], ecdsa: EcdsaEncoding) -> Result<(), SignatureError> {
        if self.verify(algorithm, message, signature, ecdsa) {
            Ok(())
        } else {
            Err(invalid(format!("the {} signature does not verify with this key over the request as received", algorithm.as_str())))
        }
    }
}

fn from_pem(text: &str, algorithm: Algorithm) -> Result<PublicKey, String> {
    if text.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
        return rsa::pkcs1::DecodeRsaPublicKey::from_pkcs1_pem(text)
            .map(PublicKey::Rsa)
            .map_err(|e| format!("is not a readable PKCS#1 RSA public key ({e})"));
    }
    if !text.starts_with("-----BEGIN PUBLIC KEY-----") {
        return Err("must be a PEM public key (-----BEGIN PUBLIC KEY-----) or a JWK JSON object".into());
    }
    let unreadable = |e: &dyn std::fmt::Display| format!("is not a readable {} public key ({e})", algorithm.as_str());
    match algorithm {
        Algorithm::Ed25519 => {
            ed25519_dalek::pkcs8::DecodePublicKey::from_public_key_pem(text).map(PublicKey::Ed25519).map_err(|e| unreadable(&e))
        }
        Algorithm::EcdsaP256Sha256 => {
            p256::pkcs8::DecodePublicKey::from_public_key_pem(text).map(PublicKey::P256).map_err(|e| unreadable(&e))
        }
        Algorithm::RsaPssSha512 | Algorithm::RsaV15Sha256 => {
            rsa::pkcs8::DecodePublicKey::from_public_key_pem(text).map(PublicKey::Rsa).map_err(|e| unreadable(&e))
        }
    }
}

fn from_jwk(text: &str) -> Result<PublicKey, String> {
    let jwk: Value = serde_json::from_str(text).map_err(|e| format!("is not valid JWK JSON ({e})"))?;
    if jwk.get("d").is_some() || jwk.get("p").is_some() {
        return Err("is a private JWK; register only the public members".into());
    }
    let member = |name: &str| -> Result<Vec<u8>, String> {
        let v = jwk.get(name).and_then(Value::as_str).ok_or_else(|| format!("JWK lacks the member {name:?}"))?;
        URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')).map_err(|_| format!("JWK member {name:?} is not base64url"))
    };
    match (jwk.get("kty").and_then(Value::as_str), jwk.get("crv").and_then(Value::as_str)) {
        (Some("OKP"), Some("Ed25519")) => {
            let x: [u8; 32] = member("x")?.try_into().map_err(|_| "JWK x of an Ed25519 key must be 32 bytes".to_string())?;
            ed25519_dalek::VerifyingKey::from_bytes(&x).map(PublicKey::Ed25519).map_err(|_| "JWK x is not an Ed25519 point".into())
        }
        (Some("EC"), Some("P-256")) => p256::PublicKey::from_jwk_str(text)
            .map(|k| PublicKey::P256(p256::ecdsa::VerifyingKey::from(k)))
            .map_err(|_| "is not a valid P-256 JWK".into()),
        (Some("RSA"), _) => {
            let n = rsa::BigUint::from_bytes_be(&member("n")?);
            let e = rsa::BigUint::from_bytes_be(&member("e")?);
            rsa::RsaPublicKey::new(n, e).map(PublicKey::Rsa).map_err(|e| format!("is not a valid RSA JWK ({e})"))
        }
        (kty, crv) => Err(format!("JWK kty {kty:?} / crv {crv:?} is not one of OKP/Ed25519, EC/P-256, RSA")),
    }
}
