//! The demo merchant every local data directory has, so the printed credentials work at
//! once. Its secret is derived from the data directory's signing key (or fixed by the
//! environment), so it is stable across restarts without being stored in clear.

use paysession_app::Core;
use paysession_app::auth::{SecretCheck, TokenSigner};
use paysession_app::merchants::{NewMerchant, provision, rotate_secret};
use paysession_app::ports::MerchantStore;

pub const DEMO_CLIENT_ID: &str = "cid_demo";

#[derive(Debug, Clone)]
pub struct DemoCredentials {
    pub merchant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

fn derived_secret(signer: &TokenSigner) -> String {
    format!("sk_demo_{}", &signer.derive("demo-client-secret")[..32])
}

/// Creates the demo merchant on first start; afterwards makes its secret match the one
/// configured (rotating if `PAYSESSION_DEMO_CLIENT_SECRET` changed).
pub async fn ensure_demo_merchant<S: MerchantStore + ?Sized>(
    deps: &Core<S>,
    client_id: Option<String>,
    client_secret: Option<String>,
) -> Result<DemoCredentials, String> {
    let client_id = client_id.unwrap_or_else(|| DEMO_CLIENT_ID.to_string());
    let secret = client_secret.unwrap_or_else(|| derived_secret(&deps.keys));
    if let Some(existing) = deps.store.get_client(&client_id).await.map_err(|e| e.to_string())? {
        let (keys, hash, s) = (deps.keys.clone(), existing.secret_hash.clone(), secret.clone());
        // An Argon2 record of an earlier version is slow to check: off the executor.
        let check = tokio::task::spawn_blocking(move || keys.check_client_secret(&s, &hash)).await.map_err(|e| e.to_string())?;
        if check != SecretCheck::Match {
            rotate_secret(deps.store.as_ref(), &deps.keys, &client_id, Some(secret.clone())).await.map_err(|e| e.to_string())?;
        }
        return Ok(DemoCredentials { merchant_id: existing.merchant_id, client_id, client_secret: secret });
    }
    let public = deps.config.public_url.trim_end_matches('/');
    let input = NewMerchant {
        name: "Demo Shop".into(),
        display_name: Some("Demo Shop".into()),
        brand_color: None,
        redirect_urls: vec![
            format!("{public}/demo/success"),
            format!("{public}/demo/cancel"),
            "https://shop.example/success".into(),
            "https://shop.example/cancel".into(),
        ],
        payment_methods: Vec::new(),
    };
    let p = provision(deps.store.as_ref(), &deps.keys, &input, Some((client_id.clone(), secret.clone())), deps.clock.now())
        .await
        .map_err(|e| e.to_string())?;
    Ok(DemoCredentials { merchant_id: p.merchant.id, client_id, client_secret: secret })
}
