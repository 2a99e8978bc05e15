//! What verifying a signed request costs: CPU per `GET /v1/payment_sessions/{id}` through
//! the whole API pipeline (token, signing check, handler, SQLite), unsigned against signed
//! with each algorithm, in one run on one server.
//!
//! Requests are built and signed before the clock starts; only the server side is
//! measured, as CPU time of all the process's threads (`/proc/self/task/*/schedstat`, so the
//! SQLite threads count) and wall time. Each signed request spends a fresh nonce, so the signed figures
//! include that write.
//!
//! `cargo bench -p paysession-local --bench signed_requests [-- REQUESTS]`

use std::time::Instant;

use paysession_domain::signed_requests::rfc9421::Signature;
use paysession_domain::signed_requests::{Algorithm, Mode, RequestParts};
use paysession_http::lambda_http::{Body, Request};
use paysession_local::{LocalOptions, start};
use rand_core::OsRng;
use serde_json::{Value, json};

/// CPU time of every thread of this process, in nanoseconds (Linux schedstat), so the
/// SQLite threads count too.
fn cpu_seconds() -> f64 {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").expect("Linux /proc") {
        let stat = std::fs::read_to_string(task.unwrap().path().join("schedstat")).unwrap_or_default();
        ns += stat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    ns as f64 / 1e9
}

enum Signer {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
    RsaPss(rsa::RsaPrivateKey),
    RsaV15(rsa::RsaPrivateKey),
}

impl Signer {
    fn new(algorithm: Algorithm) -> Signer {
        match algorithm {
            Algorithm::Ed25519 => Signer::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng)),
            Algorithm::EcdsaP256Sha256 => Signer::P256(p256::ecdsa::SigningKey::random(&mut OsRng)),
            Algorithm::RsaPssSha512 => Signer::RsaPss(rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap()),
            Algorithm::RsaV15Sha256 => Signer::RsaV15(rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap()),
        }
    }

    fn public_pem(&self) -> String {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        match self {
            Signer::Ed25519(k) => k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap(),
            Signer::P256(k) => p256::pkcs8::EncodePublicKey::to_public_key_pem(k.verifying_key(), LineEnding::LF).unwrap(),
            Signer::RsaPss(k) | Signer::RsaV15(k) => {
                rsa::pkcs8::EncodePublicKey::to_public_key_pem(&k.to_public_key(), LineEnding::LF).unwrap()
            }
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer as _};
        match self {
            Signer::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            Signer::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(message);
                s.to_bytes().to_vec()
            }
            Signer::RsaPss(k) => rsa::pss::BlindedSigningKey::<sha2::Sha512>::new(k.clone()).sign_with_rng(&mut OsRng, message).to_vec(),
            Signer::RsaV15(k) => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k.clone()).sign(message).to_vec(),
        }
    }
}

fn request(path: &str, host: &str, token: &str, signature: Option<(&str, &str)>) -> Request {
    let mut b = http::Request::builder().method("GET").uri(path).header("host", host).header("authorization", format!("Bearer {token}"));
    if let Some((input, sig)) = signature {
        b = b.header("signature-input", input).header("signature", sig);
    }
    b.body(Body::Empty).unwrap()
}

/// A request signed over `@method @target-uri authorization` with a fresh nonce.
fn signed(path: &str, host: &str, token: &str, key_id: &str, algorithm: Algorithm, signer: &Signer) -> Request {
    use base64::Engine;
    let input = format!(
        r#"sig1=("@method" "@target-uri" "authorization");created={};keyid="{key_id}";nonce="{}";alg="{}""#,
        chrono::Utc::now().timestamp(),
        paysession_app::ids::new_uuid(),
        algorithm.as_str()
    );
    let auth = format!("Bearer {token}");
    let parts = RequestParts {
        method: "GET",
        scheme: "http",
        authority: host,
        path,
        query: None,
        headers: vec![("authorization", auth.as_str())],
        body: b"",
    };
    let parsed = Signature::parse(&input, "sig1=:AAAA:").unwrap();
    let sig = signer.sign(parsed.base(&parts).unwrap().as_bytes());
    let header = format!("sig1=:{}:", base64::engine::general_purpose::STANDARD.encode(sig));
    request(path, host, token, Some((&input, &header)))
}

/// The pure part of the check, per request: what `check_request` does besides its two
/// store calls (the profile read and the nonce claim).
fn verification_alone(requests: &[Request], pem: &str, algorithm: Algorithm) -> f64 {
    use paysession_domain::signed_requests::{Presented, PublicKey};
    let now = chrono::Utc::now();
    let parts: Vec<RequestParts<'_>> = requests.iter().map(paysession_http::pipeline::request_parts).collect();
    let started = Instant::now();
    for p in &parts {
        let presented = Presented::find(p).unwrap().unwrap();
        let key = PublicKey::parse(pem, algorithm).unwrap();
        presented.verify(p, &key, algorithm, now).unwrap();
    }
    started.elapsed().as_secs_f64() * 1e6 / parts.len() as f64
}

struct Measured {
    cpu_us: f64,
    wall_us: f64,
}

async fn measure(app: &paysession_http::mount::Mounted<dyn paysession_app::Store>, requests: Vec<Request>) -> Measured {
    let info = paysession_http::routes::Route::GetSession.info();
    let n = requests.len() as f64;
    let id = requests[0].uri().path().rsplit('/').next().unwrap().to_string();
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    for req in requests {
        let resp = paysession_http::mount::handle(app, info, vec![("id", id.clone())], req).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.body());
    }
    Measured { cpu_us: (cpu_seconds() - cpu) * 1e6 / n, wall_us: wall.elapsed().as_secs_f64() * 1e6 / n }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let dir = tempfile::tempdir().unwrap();
    let running = start(LocalOptions {
        host: "127.0.0.1".into(),
        port: 0,
        data_dir: dir.path().to_path_buf(),
        table: None,
        dynamodb_endpoint: None,
        public_url: None,
        allow_private_webhooks: false,
        demo_client_id: None,
        demo_client_secret: None,
        stripe_api_base: None,
    })
    .await
    .unwrap();
    let (base, host) = (running.base_url.clone(), running.addr.to_string());
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{base}/oauth/token"))
        .basic_auth(&running.demo.client_id, Some(&running.demo.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    let body = json!({"amount": 1050, "currency": "EUR", "customer_id": "cus_bench", "reference": "bench-1"});
    let session: Value =
        http.post(format!("{base}/v1/payment_sessions")).bearer_auth(&token).json(&body).send().await.unwrap().json().await.unwrap();
    let path = format!("/v1/payment_sessions/{}", session["id"].as_str().unwrap());
    let app = &running.local.app;
    let merchant = app.core.keys.verify(&token).unwrap().merchant_id;

    // Warm-up, then the baseline: unsigned, signatures off.
    measure(app, (0..200).map(|_| request(&path, &host, &token, None)).collect()).await;
    let baseline = measure(app, (0..n).map(|_| request(&path, &host, &token, None)).collect()).await;

    let mut rows = Vec::new();
    let mut alone = Vec::new();
    for algorithm in Algorithm::ALL {
        let signer = Signer::new(algorithm);
        let key = paysession_app::signing::add_key(&app.core, &merchant, algorithm, &signer.public_pem()).await.unwrap();
        paysession_app::signing::set_mode(&app.core, &merchant, Mode::Required, false).await.unwrap();
        let reqs: Vec<Request> = (0..n).map(|_| signed(&path, &host, &token, &key.id, algorithm, &signer)).collect();
        alone.push((algorithm.as_str(), verification_alone(&reqs, &key.public_key, algorithm)));
        rows.push((algorithm.as_str(), measure(app, reqs).await));
    }
    paysession_app::signing::set_mode(&app.core, &merchant, Mode::Off, false).await.unwrap();
    let off_again = measure(app, (0..n).map(|_| request(&path, &host, &token, None)).collect()).await;

    println!("GET /v1/payment_sessions/{{id}} through the API pipeline, {n} requests each (local server, SQLite)");
    println!("{:<34} {:>12} {:>8} {:>12} {:>8}", "variant", "CPU µs/req", "× base", "wall µs/req", "× base");
    let row = |name: &str, m: &Measured| {
        println!(
            "{name:<34} {:>12.1} {:>8.2} {:>12.1} {:>8.2}",
            m.cpu_us,
            m.cpu_us / baseline.cpu_us,
            m.wall_us,
            m.wall_us / baseline.wall_us
        )
    };
    row("unsigned, signed_requests off", &baseline);
    for (name, m) in &rows {
        row(&format!("signed {name}, required"), m);
    }
    row("unsigned, off again (drift check)", &off_again);
    println!("\nverification alone (find + key parse + coverage/freshness + signature; no store), one thread:");
    for (name, us) in &alone {
        println!("{name:<34} {us:>12.1} µs/req {:>8.2} × the unsigned request's CPU", us / baseline.cpu_us);
    }
    running.stop().await;
}
