//! Signed API requests as a merchant's developer meets them, on the real local server:
//! keys generated and requests signed and sent by independent Python implementations
//! (`cryptography`, `http-message-signatures` for RFC 9421, `httpsig` for draft-cavage).
//! Multi-threaded: the Python signer blocks one worker while the server answers on another.

use paysession_app::ports::SessionQuery;
use paysession_tests::receiver::python_script;
use paysession_tests::{Server, session_body};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct KeyPair {
    private_key_pem: String,
    public_key: String,
}

fn keygen(algorithm: &str, format: &str) -> KeyPair {
    let out = python_script("signing/keygen.py", "key generation (cryptography)", &json!({"algorithm": algorithm, "format": format}));
    KeyPair { private_key_pem: out["private_key_pem"].as_str().unwrap().into(), public_key: out["public_key"].as_str().unwrap().into() }
}

/// Signs with the Python library and sends `sends` times; each response's (status, code).
fn send_signed(s: &Server, token: &str, form: &str, algorithm: &str, key_id: &str, key: &KeyPair, req: Value) -> Vec<(u16, Value)> {
    let mut spec = json!({"token": token, "form": form, "algorithm": algorithm, "key_id": key_id, "private_key_pem": key.private_key_pem});
    for (k, v) in req.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let url = spec["path"].as_str().map(|p| s.url(p)).unwrap();
    spec["url"] = json!(url);
    let out = python_script("signing/send_signed.py", "signing with http-message-signatures / httpsig", &spec);
    out.as_array().unwrap().iter().map(|r| (r["status"].as_u64().unwrap() as u16, r["body"].clone())).collect()
}

fn create(reference: &str, sends: u32) -> Value {
    json!({"method": "POST", "path": "/v1/payment_sessions", "body": session_body(reference).to_string(), "sends": sends})
}

async fn sessions_of(s: &Server) -> usize {
    let core = &s.running.as_ref().unwrap().local.app.core;
    let merchant = core.keys.verify(&s.token().await).unwrap().merchant_id;
    core.store.list_sessions(&merchant, &SessionQuery { limit: 100, ..Default::default() }).await.unwrap().items.len()
}

fn code(r: &(u16, Value)) -> (u16, &str) {
    (r.0, r.1["code"].as_str().unwrap_or(""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_signatures_with_each_algorithm_and_both_forms() {
    let s = Server::start().await;
    let token = s.token().await;

    // Requiring signatures before any key is registered would lock the merchant out.
    let r = s.post("/v1/merchant/settings", &token, &json!({"signed_requests": "required"})).await;
    assert_eq!((r.status, r.json()["code"].as_str()), (StatusCode::CONFLICT, Some("invalid_state_transition")), "{}", r.text);

    // One key per algorithm: JWK for the curves, PEM for RSA.
    let algorithms = [("ed25519", "jwk"), ("ecdsa-p256-sha256", "jwk"), ("rsa-pss-sha512", "pem"), ("rsa-v1_5-sha256", "pem")];
    let mut keys = Vec::new();
    for (alg, format) in algorithms {
        let pair = keygen(alg, format);
        let r = s.post("/v1/signing_keys", &token, &json!({"public_key": pair.public_key, "algorithm": alg})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{alg}: {}", r.text);
        let key = r.json();
        assert_eq!(
            (key["object"].as_str(), key["algorithm"].as_str(), key["status"].as_str()),
            (Some("signing_key"), Some(alg), Some("active"))
        );
        assert!(key["public_key"].as_str().unwrap().starts_with("-----BEGIN PUBLIC KEY-----"), "stored as SPKI PEM");
        keys.push((alg, key["id"].as_str().unwrap().to_string(), pair));
    }
    let r = s.post("/v1/merchant/settings", &token, &json!({"signed_requests": "required"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["signed_requests"], "required");

    // Unsigned: refused before the handler, nothing created.
    let r = s.create(&token, &session_body("unsigned-1")).await;
    assert_eq!((r.status, r.json()["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("signature_missing")), "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(sessions_of(&s).await, 0);

    let mut created = 0;
    for (alg, id, pair) in &keys {
        // Signed: 201; the identical request again: replayed.
        let sent = send_signed(&s, &token, "rfc9421", alg, id, pair, create(&format!("signed-{alg}"), 2));
        assert_eq!(sent[0].0, 201, "{alg}: {:?}", sent[0]);
        assert_eq!(code(&sent[1]), (401, "signature_replayed"), "{alg}");
        created += 1;
        // A body changed after signing; a signature from 10 minutes ago.
        let mut tampered = create(&format!("tampered-{alg}"), 1);
        tampered["tamper"] = json!(true);
        assert_eq!(code(&send_signed(&s, &token, "rfc9421", alg, id, pair, tampered)[0]), (401, "digest_mismatch"), "{alg}");
        let mut stale = create(&format!("stale-{alg}"), 1);
        stale["skew_seconds"] = json!(-600);
        assert_eq!(code(&send_signed(&s, &token, "rfc9421", alg, id, pair, stale)[0]), (401, "signature_expired"), "{alg}");
        // A read without a body, signed too.
        let get = send_signed(&s, &token, "rfc9421", alg, id, pair, json!({"method": "GET", "path": "/v1/payment_sessions?limit=1"}));
        assert_eq!(get[0].0, 200, "{alg}: {:?}", get[0]);
    }
    assert_eq!(sessions_of(&s).await, created, "only the valid signed creates wrote anything");

    // draft-cavage (Fintecture's form) with the RSA PKCS#1 v1.5 key, signed by httpsig.
    let (_, rsa_id, rsa) = keys.iter().find(|(a, _, _)| *a == "rsa-v1_5-sha256").unwrap();
    let sent = send_signed(&s, &token, "cavage", "rsa-v1_5-sha256", rsa_id, rsa, create("cavage-1", 2));
    assert_eq!(sent[0].0, 201, "{:?}", sent[0]);
    assert_eq!(code(&sent[1]), (401, "signature_replayed"), "x-request-id is never reused");
    let get = send_signed(&s, &token, "cavage", "rsa-v1_5-sha256", rsa_id, rsa, json!({"method": "GET", "path": "/v1/signing_keys"}));
    assert_eq!(get[0].0, 200, "GET omits digest: {:?}", get[0]);
    let mut tampered = create("cavage-2", 1);
    tampered["tamper"] = json!(true);
    assert_eq!(code(&send_signed(&s, &token, "cavage", "rsa-v1_5-sha256", rsa_id, rsa, tampered)[0]), (401, "digest_mismatch"));

    // Someone else's private key under our key id; an id we never issued.
    let (_, ed_id, _) = &keys[0];
    let stranger = keygen("ed25519", "pem");
    assert_eq!(code(&send_signed(&s, &token, "rfc9421", "ed25519", ed_id, &stranger, create("forged", 1))[0]), (401, "signature_invalid"));
    assert_eq!(
        code(&send_signed(&s, &token, "rfc9421", "ed25519", "key_unknown", &stranger, create("unknown", 1))[0]),
        (401, "unknown_key")
    );

    // Revoked (a signed DELETE): the key never verifies again.
    let (_, ec_id, ec) = &keys[1];
    let revoked = send_signed(
        &s,
        &token,
        "rfc9421",
        "ed25519",
        ed_id,
        &keys[0].2,
        json!({"method": "DELETE", "path": format!("/v1/signing_keys/{ec_id}")}),
    );
    assert_eq!((revoked[0].0, revoked[0].1["status"].as_str()), (200, Some("revoked")), "{:?}", revoked[0]);
    assert_eq!(
        code(&send_signed(&s, &token, "rfc9421", "ecdsa-p256-sha256", ec_id, ec, create("after-revoke", 1))[0]),
        (401, "unknown_key")
    );
    assert_eq!(sessions_of(&s).await, created + 1);

    // `optional`: unsigned passes again, a bad signature still does not.
    let set = send_signed(
        &s,
        &token,
        "rfc9421",
        "ed25519",
        ed_id,
        &keys[0].2,
        json!({"method": "POST", "path": "/v1/merchant/settings", "body": r#"{"signed_requests": "optional"}"#}),
    );
    assert_eq!(set[0].0, 200, "{:?}", set[0]);
    assert_eq!(s.create(&token, &session_body("unsigned-2")).await.status, StatusCode::CREATED);
    assert_eq!(
        code(&send_signed(&s, &token, "rfc9421", "ed25519", ed_id, &stranger, create("forged-2", 1))[0]),
        (401, "signature_invalid")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_registration_refuses_what_cannot_verify() {
    let s = Server::start().await;
    let token = s.token().await;
    let post = async |body: Value| s.post("/v1/signing_keys", &token, &body).await;

    let small = keygen_bits("rsa-pss-sha512", 1024);
    let r = post(json!({"public_key": small.public_key, "algorithm": "rsa-pss-sha512"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.json()["errors"][0]["message"].as_str().unwrap().contains("at least 2048 bits"), "{}", r.text);

    let ed = keygen("ed25519", "pem");
    let r = post(json!({"public_key": ed.private_key_pem, "algorithm": "ed25519"})).await;
    assert!(r.json()["errors"][0]["message"].as_str().unwrap().contains("private key"), "{}", r.text);
    let r = post(json!({"public_key": ed.public_key, "algorithm": "ecdsa-p256-sha256"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "an Ed25519 key is not a P-256 key: {}", r.text);
    let r = post(json!({"public_key": "not a key", "algorithm": "hmac-sha256"})).await;
    assert_eq!(r.error_fields(), [("algorithm".to_string(), "invalid_value".to_string())]);

    assert_eq!(post(json!({"public_key": ed.public_key, "algorithm": "ed25519"})).await.status, StatusCode::CREATED);
    let r = post(json!({"public_key": ed.public_key, "algorithm": "ed25519"})).await;
    assert_eq!(r.error_fields(), [("public_key".to_string(), "duplicate".to_string())]);

    let listed = s.get("/v1/signing_keys", &token).await.json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let settings = s.get("/v1/merchant/settings", &token).await.json();
    assert_eq!((settings["signed_requests"].as_str(), settings["active_signing_keys"].as_u64()), (Some("off"), Some(1)));

    // The scope: a token without keys:manage cannot touch keys or the setting.
    let narrow = s.token_for(&s.client_id, &s.client_secret, Some("sessions:read")).await;
    let r = s.call(Method::GET, "/v1/signing_keys", &narrow, None, &[]).await;
    assert_eq!((r.status, r.json()["code"].as_str()), (StatusCode::FORBIDDEN, Some("insufficient_scope")));
    let r = s.post("/v1/merchant/settings", &token, &json!({"signed_requests": "always"})).await;
    assert_eq!(r.error_fields(), [("signed_requests".to_string(), "invalid_value".to_string())]);
}

fn keygen_bits(algorithm: &str, bits: u32) -> KeyPair {
    let out = python_script(
        "signing/keygen.py",
        "key generation (cryptography)",
        &json!({"algorithm": algorithm, "format": "pem", "bits": bits}),
    );
    KeyPair { private_key_pem: out["private_key_pem"].as_str().unwrap().into(), public_key: out["public_key"].as_str().unwrap().into() }
}
