//! paysession-admin as an operator uses it.

use std::process::Command;

use serde_json::Value;

fn admin(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_paysession-admin")).arg("--data-dir").arg(dir).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn create_list_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = admin(
        dir.path(),
        &["merchant", "create", "--name", "Acme", "--redirect-url", "https://acme.example/done", "--payment-methods", "card,qr", "--brand-color", "#112233"],
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
    let (ok, _, err) = admin(dir.path(), &["merchant", "create", "--name", " ", "--redirect-url", "ftp://x", "--payment-methods", "cheque"]);
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
