//! The draft-cavage-http-signatures form (draft 12, as the seed Fintecture document and
//! many payment clients use it): `Signature: keyId="…",algorithm="…",headers="…",signature="…"`
//! over lines `name: value`, with `Digest: SHA-256=<base64>` for the body.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::keys::{Algorithm, EcdsaEncoding, PublicKey};
use super::{RequestParts, SignatureError, Verified, b64, check_expires, check_nonce, check_skew, invalid};

#[derive(Debug, Clone)]
pub struct Signature {
    pub key_id: String,
    pub algorithm: Option<String>,
    /// Lower-case names from `headers`, in order.
    pub headers: Vec<String>,
    pub created: Option<i64>,
    pub expires: Option<i64>,
    pub bytes: Vec<u8>,
}

impl Signature {
    pub fn parse(value: &str) -> Result<Signature, SignatureError> {
        let mut fields: Vec<(String, String)> = Vec::new();
        for (name, v) in split_params(value)? {
            if fields.iter().any(|(n, _)| *n == name) {
                return Err(invalid(format!("Signature parameter {name} is given twice")));
            }
            fields.push((name, v));
        }
        let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let int = |n: &str| -> Result<Option<i64>, SignatureError> {
            get(n).map(|v| v.parse().map_err(|_| invalid(format!("Signature parameter {n} must be an integer")))).transpose()
        };
        Ok(Signature {
            key_id: get("keyId").ok_or_else(|| invalid("Signature must carry keyId"))?,
            algorithm: get("algorithm"),
            headers: get("headers")
                .ok_or_else(|| invalid("Signature must carry headers=\"(request-target) date digest x-request-id\""))?
                .split_ascii_whitespace()
                .map(str::to_ascii_lowercase)
                .collect(),
            created: int("created")?,
            expires: int("expires")?,
            bytes: b64(&get("signature").ok_or_else(|| invalid("Signature must carry signature"))?)?,
        })
    }

    /// The signing string (draft-cavage §2.3).
    pub fn signing_string(&self, req: &RequestParts<'_>) -> Result<String, SignatureError> {
        let mut lines = Vec::with_capacity(self.headers.len());
        for name in &self.headers {
            let value = match name.as_str() {
                "(request-target)" => format!("{} {}", req.method.to_ascii_lowercase(), req.path_and_query()),
                "(created)" => {
                    self.created.ok_or_else(|| invalid("headers covers (created) but there is no created parameter"))?.to_string()
                }
                "(expires)" => {
                    self.expires.ok_or_else(|| invalid("headers covers (expires) but there is no expires parameter"))?.to_string()
                }
                field => req.header(field).ok_or_else(|| invalid(format!("headers names {field:?}, which the request does not carry")))?,
            };
            lines.push(format!("{name}: {value}"));
        }
        Ok(lines.join("\n"))
    }

    pub fn verify(
        &self,
        req: &RequestParts<'_>,
        key: &PublicKey,
        algorithm: Algorithm,
        now: DateTime<Utc>,
    ) -> Result<Verified, SignatureError> {
        let covers = |n: &str| self.headers.iter().any(|h| h == n);
        let mut missing: Vec<&str> = ["(request-target)", "date", "x-request-id"].into_iter().filter(|h| !covers(h)).collect();
        if !req.body.is_empty() && !covers("digest") {
            missing.push("digest");
        }
        if !missing.is_empty() {
            return Err(invalid(format!("headers must include {}", missing.join(", "))));
        }
        if let Some(named) = &self.algorithm {
            let matches = match named.to_ascii_lowercase().as_str() {
                "hs2019" => true,
                "rsa-sha256" => algorithm == Algorithm::RsaV15Sha256,
                "rsa-pss-sha512" => algorithm == Algorithm::RsaPssSha512,
                "ecdsa-sha256" => algorithm == Algorithm::EcdsaP256Sha256,
                "ed25519" => algorithm == Algorithm::Ed25519,
                _ => false,
            };
            if !matches {
                return Err(invalid(format!("algorithm {named:?} does not match the key's algorithm {}", algorithm.as_str())));
            }
        }
        let date = req.header("date").unwrap_or_default();
        let at =
            DateTime::parse_from_rfc2822(&date).map_err(|_| invalid("Date must be an HTTP date like 'Tue, 20 Apr 2021 02:07:55 GMT'"))?;
        check_skew(at.timestamp(), now, "Date")?;
        check_expires(self.expires, now)?;
        let request_id = req.header("x-request-id").unwrap_or_default();
        check_nonce(&request_id, "x-request-id")?;
        if !is_uuid(&request_id) {
            return Err(invalid("x-request-id must be a UUID (v4), new for every request"));
        }
        if let Some(digest) = req.header("digest") {
            check_digest(&digest, req.body)?;
        }
        key.check(algorithm, self.signing_string(req)?.as_bytes(), &self.bytes, EcdsaEncoding::FixedOrDer)?;
        Ok(Verified { key_id: self.key_id.clone(), nonce: format!("cavage:{}", request_id.to_ascii_lowercase()) })
    }
}

/// `Digest: SHA-256=<base64>` (RFC 3230; other algorithms in the list are ignored).
pub fn check_digest(header: &str, body: &[u8]) -> Result<(), SignatureError> {
    let want = STANDARD.encode(Sha256::digest(body));
    let sha256 = header.split(',').filter_map(|d| d.trim().split_once('=')).find(|(alg, _)| alg.eq_ignore_ascii_case("sha-256"));
    match sha256 {
        Some((_, got)) if got.trim() == want => Ok(()),
        Some(_) => Err(SignatureError::DigestMismatch("Digest SHA-256 does not match the body".into())),
        None => Err(SignatureError::DigestMismatch("Digest must carry SHA-256=<base64 of the body's SHA-256>".into())),
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]) && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `a="x",b=1` → pairs; commas inside quotes belong to the value.
fn split_params(value: &str) -> Result<Vec<(String, String)>, SignatureError> {
    let mut out = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=').ok_or_else(|| invalid("Signature must be a list of name=\"value\" pairs"))?;
        let name = name.trim().to_string();
        let after = after.trim_start();
        let (v, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').ok_or_else(|| invalid(format!("Signature parameter {name} has no closing quote")))?;
            (quoted[..end].to_string(), &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.push((name, v));
        rest = remaining.trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => {}
            None => return Err(invalid("Signature parameters must be separated by commas")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_builds_the_signing_string() {
        let s = Signature::parse(
            r#"keyId="key_1",algorithm="rsa-sha256",headers="(request-target) date digest x-request-id",signature="AAAA""#,
        )
        .unwrap();
        assert_eq!(s.headers, ["(request-target)", "date", "digest", "x-request-id"]);
        let req = RequestParts {
            method: "POST",
            scheme: "https",
            authority: "api.example",
            path: "/v1/payment_sessions",
            query: None,
            headers: vec![
                ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
                ("digest", "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="),
                ("x-request-id", "7b4f5a3e-2c1d-4e8f-9a0b-1c2d3e4f5a6b"),
            ],
            body: br#"{"hello": "world"}"#,
        };
        assert_eq!(
            s.signing_string(&req).unwrap(),
            "(request-target): post /v1/payment_sessions\ndate: Tue, 20 Apr 2021 02:07:55 GMT\n\
             digest: SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=\nx-request-id: 7b4f5a3e-2c1d-4e8f-9a0b-1c2d3e4f5a6b"
        );
        check_digest("SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=", req.body).unwrap();
        assert!(matches!(
            check_digest("SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=", b"{}"),
            Err(SignatureError::DigestMismatch(_))
        ));
        assert!(is_uuid("7b4f5a3e-2c1d-4e8f-9a0b-1c2d3e4f5a6b") && !is_uuid("req-1"));
        assert!(Signature::parse(r#"keyId="a",keyId="b",headers="date",signature="AAAA""#).is_err());
        assert!(Signature::parse(r#"keyId="a" headers="date""#).is_err());
    }
}
