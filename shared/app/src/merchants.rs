//! Merchants (tenants) and their API clients: provisioning and secret rotation, shared by
//! the admin CLI and the local server's demo merchant.

use chrono::{DateTime, Utc};
use paysession_domain::fields;
use paysession_domain::model::PaymentMethodKind;

use crate::auth::TokenSigner;
pub use crate::entities::{ApiClient, Merchant, Scope};
use crate::ids::{new_id, new_token};
use crate::ports::{MerchantStore, StoreError};
use crate::secret::Secret;

/// Operator input for a new merchant.
#[derive(Debug, Clone, Default)]
pub struct NewMerchant {
    pub name: String,
    pub display_name: Option<String>,
    pub brand_color: Option<String>,
    pub redirect_urls: Vec<String>,
    /// Empty means every method.
    pub payment_methods: Vec<String>,
}

#[derive(Debug)]
pub struct Provisioned {
    pub merchant: Merchant,
    pub client_id: String,
    pub client_secret: Secret<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub const DEFAULT_BRAND_COLOR: &str = "#1f2937";

/// Checks operator input; every problem is listed in one message.
pub fn validate_new_merchant(input: &NewMerchant, now: DateTime<Utc>) -> Result<Merchant, ProvisionError> {
    let mut problems = Vec::new();
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        problems.push("name must be 1 to 100 characters".to_string());
    }
    let brand_color = input.brand_color.clone().unwrap_or_else(|| DEFAULT_BRAND_COLOR.into());
    if !(brand_color.len() == 7 && brand_color.starts_with('#') && brand_color[1..].bytes().all(|b| b.is_ascii_hexdigit())) {
        problems.push(format!("brand colour {brand_color:?} must look like #1a2b3c"));
    }
    for url in &input.redirect_urls {
        if fields::redirect_url(url).is_err() || url.contains('?') {
            problems.push(format!("redirect URL {url:?} must be an absolute http(s) URL without query or fragment"));
        }
    }
    let mut methods = Vec::new();
    for m in &input.payment_methods {
        match PaymentMethodKind::parse(m.trim()) {
            Some(k) if !methods.contains(&k) => methods.push(k),
            Some(_) => {}
            None => problems.push(format!("payment method {m:?} is not one of {}", PaymentMethodKind::expected())),
        }
    }
    if methods.is_empty() {
        methods = PaymentMethodKind::ALL.to_vec();
    }
    if !problems.is_empty() {
        return Err(ProvisionError::Invalid(problems.join("; ")));
    }
    Ok(Merchant {
        id: new_id("mer"),
        name: name.to_string(),
        display_name: input.display_name.clone().filter(|d| !d.trim().is_empty()).unwrap_or_else(|| name.to_string()),
        brand_color: brand_color.to_ascii_lowercase(),
        redirect_urls: input.redirect_urls.clone(),
        payment_methods: methods,
        created_at: now,
    })
}

fn new_client(keys: &TokenSigner, merchant_id: &str, client_id: Option<String>, secret: &str, now: DateTime<Utc>) -> ApiClient {
    ApiClient {
        client_id: client_id.unwrap_or_else(|| new_id("cid")),
        merchant_id: merchant_id.to_string(),
        secret_hash: keys.hash_client_secret(secret),
        scopes: Scope::ALL.to_vec(),
        created_at: now,
        knows_refunds_scope: true,
    }
}

pub fn new_client_secret() -> String {
    format!("sk_{}", new_token())
}

/// Creates a merchant with one API client holding every scope. `credentials` fixes the
/// client id and secret (the local demo merchant); otherwise both are generated. `keys`
/// hashes the secret (the deployment's signing key: functions must share it).
pub async fn provision<S: MerchantStore + ?Sized>(
    store: &S,
    keys: &TokenSigner,
    input: &NewMerchant,
    credentials: Option<(String, String)>,
    now: DateTime<Utc>,
) -> Result<Provisioned, ProvisionError> {
    let merchant = validate_new_merchant(input, now)?;
    let (client_id, secret) = match credentials {
        Some((id, secret)) => (Some(id), secret),
        None => (None, new_client_secret()),
    };
    let client = new_client(keys, &merchant.id, client_id, &secret, now);
    store.create_merchant(&merchant, &client).await?;
    Ok(Provisioned { client_id: client.client_id, merchant, client_secret: Secret::new(secret) })
}

/// Replaces a client's secret (the old one stops working at once) and returns the new one.
pub async fn rotate_secret<S: MerchantStore + ?Sized>(
    store: &S,
    keys: &TokenSigner,
    client_id: &str,
    new_secret: Option<String>,
) -> Result<Option<Secret<String>>, StoreError> {
    let Some(mut client) = store.get_client(client_id).await? else { return Ok(None) };
    let secret = new_secret.unwrap_or_else(new_client_secret);
    client.secret_hash = keys.hash_client_secret(&secret);
    store.put_client(&client).await?;
    Ok(Some(Secret::new(secret)))
}
