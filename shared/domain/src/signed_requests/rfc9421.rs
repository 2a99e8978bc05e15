//! RFC 9421 HTTP Message Signatures on requests: `Signature-Input` names the covered
//! components and parameters, `Signature` carries the bytes; both are RFC 8941/9651
//! structured dictionaries, parsed and re-serialised with the `sfv` crate.

use chrono::{DateTime, Utc};

use super::keys::{Algorithm, EcdsaEncoding, PublicKey};
use super::{RequestParts, SignatureError, Verified, check_content_digest, check_expires, check_nonce, check_skew, invalid};

/// One signature of a request (the first label of `Signature-Input` that `Signature` has).
#[derive(Debug, Clone)]
pub struct Signature {
    pub label: String,
    /// Covered component identifiers, lower-case, in order.
    pub components: Vec<String>,
    pub created: Option<i64>,
    pub expires: Option<i64>,
    pub key_id: String,
    pub nonce: Option<String>,
    pub alg: Option<String>,
    /// `@signature-params`: the serialised inner list with its parameters.
    pub params: String,
    pub bytes: Vec<u8>,
}

impl Signature {
    pub fn parse(signature_input: &str, signature: &str) -> Result<Signature, SignatureError> {
        let inputs = sfv::Parser::new(signature_input)
            .parse_dictionary()
            .map_err(|e| invalid(format!("Signature-Input is not a structured dictionary: {e}")))?;
        let sigs = sfv::Parser::new(signature)
            .parse_dictionary()
            .map_err(|e| invalid(format!("Signature is not a structured dictionary: {e}")))?;
        let (label, entry) = inputs
            .iter()
            .find(|(label, _)| sigs.contains_key(label.as_str()))
            .ok_or_else(|| invalid("no label of Signature-Input has a value in Signature"))?;
        let sfv::ListEntry::InnerList(list) = entry else {
            return Err(invalid(format!("Signature-Input {label} must be an inner list of component identifiers")));
        };
        let mut components = Vec::new();
        for item in &list.items {
            let name = item.bare_item.as_string().ok_or_else(|| invalid("covered components must be strings"))?.as_str();
            if !item.params.is_empty() {
                return Err(invalid(format!("component parameters (on {name:?}) are not supported")));
            }
            if components.iter().any(|c| c == name) {
                return Err(invalid(format!("component {name:?} is covered twice")));
            }
            components.push(name.to_string());
        }
        let int = |name: &str| -> Result<Option<i64>, SignatureError> {
            list.params
                .get(name)
                .map(|v| v.as_integer().map(i64::from).ok_or_else(|| invalid(format!("parameter {name} must be an integer"))))
                .transpose()
        };
        let string = |name: &str| -> Result<Option<String>, SignatureError> {
            list.params
                .get(name)
                .map(|v| v.as_string().map(|s| s.as_str().to_string()).ok_or_else(|| invalid(format!("parameter {name} must be a string"))))
                .transpose()
        };
        let key_id = string("keyid")?.ok_or_else(|| invalid("Signature-Input must carry keyid"))?;
        let bytes = match sigs.get(label.as_str()) {
            Some(sfv::ListEntry::Item(item)) => {
                item.bare_item.as_byte_sequence().ok_or_else(|| invalid("Signature must be a byte sequence"))?.to_vec()
            }
            _ => return Err(invalid("Signature must be a byte sequence")),
        };
        let params = sfv::SerializeValue::serialize_value(&vec![sfv::ListEntry::InnerList(list.clone())])
            .map_err(|e| invalid(format!("Signature-Input cannot be re-serialised: {e}")))?;
        Ok(Signature {
            label: label.as_str().to_string(),
            components,
            created: int("created")?,
            expires: int("expires")?,
            key_id,
            nonce: string("nonce")?,
            alg: string("alg")?,
            params,
            bytes,
        })
    }

    /// The signature base (RFC 9421 §2.5) of this signature over `req`.
    pub fn base(&self, req: &RequestParts<'_>) -> Result<String, SignatureError> {
        let mut base = String::new();
        for name in &self.components {
            let value = component(req, name)?;
            if value.contains('\n') {
                return Err(invalid(format!("component {name:?} contains a line break")));
            }
            base.push_str(&format!("\"{name}\": {value}\n"));
        }
        base.push_str(&format!("\"@signature-params\": {}", self.params));
        Ok(base)
    }

    pub fn covers(&self, name: &str) -> bool {
        self.components.iter().any(|c| c == name)
    }

    /// Our policy on top of the RFC: what must be covered, freshness, nonce and digest.
    pub fn verify(
        &self,
        req: &RequestParts<'_>,
        key: &PublicKey,
        algorithm: Algorithm,
        now: DateTime<Utc>,
    ) -> Result<Verified, SignatureError> {
        let mut missing = Vec::new();
        if !self.covers("@method") {
            missing.push("@method");
        }
        let target = self.covers("@target-uri")
            || (self.covers("@authority") && self.covers("@path") && (req.query.is_none() || self.covers("@query")));
        if !target {
            missing.push("@target-uri (or @authority, @path and @query)");
        }
        if req.header("authorization").is_some() && !self.covers("authorization") {
            missing.push("authorization");
        }
        if !req.body.is_empty() && !self.covers("content-digest") {
            missing.push("content-digest");
        }
        if !missing.is_empty() {
            return Err(invalid(format!("the signature must cover {}", missing.join(", "))));
        }
        if let Some(alg) = &self.alg
            && alg != algorithm.as_str()
        {
            return Err(invalid(format!("alg {alg:?} does not match the key's algorithm {}", algorithm.as_str())));
        }
        let created = self.created.ok_or_else(|| invalid("Signature-Input must carry created"))?;
        check_skew(created, now, "created")?;
        check_expires(self.expires, now)?;
        let nonce = self.nonce.as_deref().ok_or_else(|| invalid("Signature-Input must carry a nonce (replay protection)"))?;
        check_nonce(nonce, "nonce")?;
        if let Some(digest) = req.header("content-digest") {
            check_content_digest(&digest, req.body)?;
        }
        key.check(algorithm, self.base(req)?.as_bytes(), &self.bytes, EcdsaEncoding::Fixed)?;
        Ok(Verified { key_id: self.key_id.clone(), nonce: format!("rfc9421:{nonce}") })
    }
}

fn component(req: &RequestParts<'_>, name: &str) -> Result<String, SignatureError> {
    Ok(match name {
        "@method" => req.method.to_string(),
        "@target-uri" => format!("{}://{}{}", req.scheme, req.authority, req.path_and_query()),
        "@authority" => req.authority.to_ascii_lowercase(),
        "@scheme" => req.scheme.to_ascii_lowercase(),
        "@path" => if req.path.is_empty() { "/" } else { req.path }.to_string(),
        "@query" => format!("?{}", req.query.unwrap_or("")),
        "@request-target" => req.path_and_query(),
        derived if derived.starts_with('@') => return Err(invalid(format!("derived component {derived:?} is not supported on requests"))),
        field if field.bytes().any(|b| b.is_ascii_uppercase()) => {
            return Err(invalid(format!("field name {field:?} must be lower-case")));
        }
        field => req.header(field).ok_or_else(|| invalid(format!("the signature covers {field:?}, which the request does not carry")))?,
    })
}

#[cfg(test)]
mod tests {
    //! RFC 9421 Appendix B: the test request (B.1), the Ed25519 test key (B.1.4) and the
    //! signatures of B.2.6 (Ed25519, deterministic: reproduced bit for bit) and the
    //! signature bases of B.2.1 and B.2.3.
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    const BODY: &[u8] = br#"{"hello": "world"}"#;
    const DIGEST_512: &str = "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:";

    fn test_request() -> RequestParts<'static> {
        RequestParts {
            method: "POST",
            scheme: "https",
            authority: "example.com",
            path: "/foo",
            query: Some("param=Value&Pet=dog"),
            headers: vec![
                ("host", "example.com"),
                ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
                ("content-type", "application/json"),
                ("content-digest", DIGEST_512),
                ("content-length", "18"),
            ],
            body: BODY,
        }
    }

    /// B.1.4 test-key-ed25519 (JWK members).
    const ED25519_X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";
    const ED25519_D: &str = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU";

    #[test]
    fn b26_ed25519_signature_is_reproduced_and_verifies() {
        let input = r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#;
        let signature = "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:";
        let sig = Signature::parse(input, signature).unwrap();
        let base = sig.base(&test_request()).unwrap();
        assert_eq!(
            base,
            "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@method\": POST\n\"@path\": /foo\n\"@authority\": example.com\n\
             \"content-type\": application/json\n\"content-length\": 18\n\
             \"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\""
        );
        let d: [u8; 32] = URL_SAFE_NO_PAD.decode(ED25519_D).unwrap().try_into().unwrap();
        let signing = ed25519_dalek::SigningKey::from_bytes(&d);
        use ed25519_dalek::Signer;
        assert_eq!(signing.sign(base.as_bytes()).to_bytes().to_vec(), sig.bytes, "Ed25519 is deterministic: the RFC's bytes");
        let jwk = format!(r#"{{"kty": "OKP", "crv": "Ed25519", "x": "{ED25519_X}"}}"#);
        let key = PublicKey::parse(&jwk, Algorithm::Ed25519).unwrap();
        assert!(key.verify(Algorithm::Ed25519, base.as_bytes(), &sig.bytes, EcdsaEncoding::Fixed));
        let pem = key.to_pem();
        assert!(PublicKey::parse(&pem, Algorithm::Ed25519).unwrap().verify(
            Algorithm::Ed25519,
            base.as_bytes(),
            &sig.bytes,
            EcdsaEncoding::Fixed
        ));
        let mut tampered = sig.bytes.clone();
        tampered[0] ^= 1;
        assert!(!key.verify(Algorithm::Ed25519, base.as_bytes(), &tampered, EcdsaEncoding::Fixed));
        assert!(!key.verify(Algorithm::Ed25519, base.replace("POST", "GET").as_bytes(), &sig.bytes, EcdsaEncoding::Fixed));
    }

    #[test]
    fn b21_and_b23_signature_bases() {
        let b21 =
            Signature::parse(r#"sig-b21=();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd""#, "sig-b21=:AAAA:")
                .unwrap();
        assert_eq!(
            b21.base(&test_request()).unwrap(),
            r#""@signature-params": ();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd""#
        );
        let b23 = Signature::parse(
            r#"sig-b23=("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss""#,
            "sig-b23=:AAAA:",
        )
        .unwrap();
        assert_eq!(
            b23.base(&test_request()).unwrap(),
            format!(
                "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@method\": POST\n\"@path\": /foo\n\"@query\": ?param=Value&Pet=dog\n\
                 \"@authority\": example.com\n\"content-type\": application/json\n\"content-digest\": {DIGEST_512}\n\"content-length\": 18\n\
                 \"@signature-params\": (\"date\" \"@method\" \"@path\" \"@query\" \"@authority\" \"content-type\" \"content-digest\" \"content-length\");created=1618884473;keyid=\"test-key-rsa-pss\""
            )
        );
    }

    #[test]
    fn target_uri_and_content_digest() {
        let sig = Signature::parse(r#"s=("@target-uri" "@request-target" "@scheme");keyid="k""#, "s=:AAAA:").unwrap();
        assert_eq!(
            sig.base(&test_request()).unwrap().lines().take(3).collect::<Vec<_>>(),
            [
                "\"@target-uri\": https://example.com/foo?param=Value&Pet=dog",
                "\"@request-target\": /foo?param=Value&Pet=dog",
                "\"@scheme\": https"
            ]
        );
        // RFC 9530 §2: the sha-256 and sha-512 digests of the same body.
        check_content_digest(DIGEST_512, BODY).unwrap();
        check_content_digest("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", BODY).unwrap();
        assert!(matches!(
            check_content_digest("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", b"{}"),
            Err(SignatureError::DigestMismatch(_))
        ));
        assert!(matches!(check_content_digest("md5=:AAAA:", BODY), Err(SignatureError::DigestMismatch(_))));
        assert_eq!(STANDARD.encode(<sha2::Sha256 as sha2::Digest>::digest(BODY)), "X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=");
        let missing = Signature::parse(r#"s=("x-absent");keyid="k""#, "s=:AAAA:").unwrap();
        assert!(matches!(missing.base(&test_request()), Err(SignatureError::Invalid(_))));
    }
}
