//! paysession-admin as an operator uses it.

use std::process::Command;

use serde_json::Value;

fn admin(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    admin_with(dir, args, &[])
}

/// The signing key a deployment's functions would have (base64 of 32 bytes).
const FUNCTIONS_KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

fn admin_with(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paysession-admin"));
    cmd.env_remove("PAYSESSION_TOKEN_SIGNING_KEY").env_remove("PAYSESSION_TOKEN_SIGNING_KEY_PARAMETER");
    let out = cmd.envs(env.iter().copied()).arg("--data-dir").arg(dir).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn create_list_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = admin(
        dir.path(),
        &[
            "merchant",
            "create",
            "--name",
            "Acme",
            "--redirect-url",
            "https://acme.example/done",
            "--payment-methods",
            "card,qr",
            "--brand-color",
            "#112233",
        ],
    );
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let client_id = created["client_id"].as_str().unwrap();
    assert!(created["merchant_id"].as_str().unwrap().starts_with("mer_"));
    assert!(created["client_secret"].as_str().unwrap().starts_with("sk_"));

    let (ok, out, _) = admin(dir.path(), &["merchant", "list"]);
    assert!(ok);
    let listed: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(listed["payment_methods"], serde_json::json!(["card", "qr"]));
    assert_eq!(listed["brand_color"], "#112233");
    assert!(!out.contains("secret"), "listing never shows secrets or hashes");

    let (ok, out, _) = admin(dir.path(), &["client", "rotate-secret", client_id]);
    assert!(ok);
    let rotated: Value = serde_json::from_str(&out).unwrap();
    assert_ne!(rotated["client_secret"], created["client_secret"]);
}

#[test]
fn bad_input_gets_a_readable_message() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) =
        admin(dir.path(), &["merchant", "create", "--name", " ", "--redirect-url", "ftp://x", "--payment-methods", "cheque"]);
    assert!(!ok);
    for part in ["name must be", "ftp://x", "cheque"] {
        assert!(err.contains(part), "{part} not in {err}");
    }
    let (ok, _, err) = admin(dir.path(), &["client", "rotate-secret", "cid_missing"]);
    assert!(!ok);
    assert!(err.contains("no client with id cid_missing"));
    let (ok, out, _) = admin(dir.path(), &["merchant", "list"]);
    assert!(ok && out.is_empty(), "failed commands stored nothing");
}

/// The DynamoDB Local endpoint `scripts/test` started (loopback only).
fn local_dynamodb() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("run via scripts/test: it starts DynamoDB Local");
    assert!(endpoint.starts_with("http://127.0.0.1:"), "tests only use a local DynamoDB, not {endpoint}");
    endpoint
}

#[test]
fn init_and_merchants_on_dynamodb() {
    local_dynamodb();
    let table = format!("admin-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = admin(dir.path(), &["--table", &table, "init"]);
    assert!(ok, "{err}");
    assert!(out.contains("\"created\":true"));
    let (ok, out, err) = admin(dir.path(), &["--table", &table, "init"]);
    assert!(ok && out.contains(r#""created":false,"added":[]"#), "a second init finds the table complete: {out} {err}");
    // Client secrets are hashed under the functions' signing key: without it, a clear refusal.
    let (ok, _, err) = admin(dir.path(), &["--table", &table, "merchant", "create", "--name", "Dyn Shop"]);
    assert!(!ok && err.contains("PAYSESSION_TOKEN_SIGNING_KEY_PARAMETER"), "{err}");
    let key = [("PAYSESSION_TOKEN_SIGNING_KEY", FUNCTIONS_KEY)];
    let (ok, out, err) = admin_with(dir.path(), &["--table", &table, "merchant", "create", "--name", "Dyn Shop"], &key);
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let (ok, out, _) = admin_with(dir.path(), &["--table", &table, "merchant", "list"], &key);
    assert!(ok && out.contains(created["merchant_id"].as_str().unwrap()));
    let (ok, _, _) = admin_with(dir.path(), &["--table", &table, "client", "rotate-secret", created["client_id"].as_str().unwrap()], &key);
    assert!(ok);
    // Nothing went to the embedded store in the data directory.
    let (ok, out, _) = admin(dir.path(), &["merchant", "list"]);
    assert!(ok && out.is_empty());
}

/// A merchant moved to Stripe and back: secrets named, never shown or stored; back on the
/// sandbox the Stripe settings stay (its payments still go there), and `--processor stripe`
/// alone turns them on again. Impossible combinations are refused readably.
#[test]
fn processor_settings_name_their_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = admin(dir.path(), &["merchant", "create", "--name", "Acme"]);
    assert!(ok, "{err}");
    let merchant = serde_json::from_str::<Value>(&out).unwrap()["merchant_id"].as_str().unwrap().to_string();
    let secrets = tempfile::tempdir().unwrap();
    let key = secrets.path().join("sk.txt");
    std::fs::write(&key, "sk_live_never_shown").unwrap();
    let key = key.display().to_string();
    let update = |args: &[&str]| {
        let mut all = vec!["merchant", "update", merchant.as_str()];
        all.extend_from_slice(args);
        admin(dir.path(), &all)
    };
    let (ok, out, err) =
        update(&["--processor", "stripe", "--stripe-secret-key-file", &key, "--stripe-webhook-secret-parameter", "/p/whsec"]);
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["processor"]["processor"], "stripe");
    assert_eq!(shown["processor"]["secret_key"]["file"], key.as_str());
    assert_eq!(shown["processor"]["webhook_secret"]["parameter"], "/p/whsec");
    assert!(!out.contains("sk_live_never_shown"), "the secret itself is never printed");

    let (ok, out, _) = update(&["--processor", "sandbox"]);
    assert!(ok);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (shown["processor"]["processor"].as_str(), shown["processor"]["earlier"]["processor"].as_str()),
        (Some("sandbox"), Some("stripe"))
    );
    let (ok, out, err) = update(&["--processor", "stripe"]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["processor"]["secret_key"]["file"],
        key.as_str(),
        "on again with the stored secrets"
    );

    for (args, says) in [
        (vec!["--processor", "paypal"], "unknown processor"),
        (vec!["--processor", "sandbox", "--stripe-secret-key-file", "x"], "takes no Stripe secrets"),
        (vec!["--stripe-secret-key-file", "x"], "with --processor stripe"),
        (vec![], "nothing to update"),
    ] {
        let (ok, _, err) = update(&args);
        assert!(!ok && err.contains(says), "{args:?}: {err}");
    }
    let fresh = {
        let (_, out, _) = admin(dir.path(), &["merchant", "create", "--name", "Other"]);
        serde_json::from_str::<Value>(&out).unwrap()["merchant_id"].as_str().unwrap().to_string()
    };
    let (ok, _, err) = admin(dir.path(), &["merchant", "update", &fresh, "--processor", "stripe"]);
    assert!(!ok && err.contains("needs --stripe-secret-key"), "{err}");
    let db = std::fs::read_dir(dir.path()).unwrap().map(|e| std::fs::read(e.unwrap().path()).unwrap_or_default()).collect::<Vec<_>>();
    assert!(db.iter().all(|bytes| !bytes.windows(19).any(|w| w == b"sk_live_never_shown")), "no secret in the data directory");
}
