//! A merchant's processor: operator configuration (`paysession-admin merchant update
//! --processor …`), kept as a setting. It names where the processor's secrets are (an SSM
//! SecureString parameter, or a file for the local server), never the secrets themselves,
//! so no key is in the table, a log line or an API answer.

use serde::{Deserialize, Serialize};

use crate::ports::{SettingsStore, StoreError};

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    /// An SSM parameter (SecureString), read with decryption once per process.
    Parameter(String),
    /// A file holding the secret (trailing whitespace ignored): the local server's way.
    File(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorSettings {
    /// `stripe`.
    pub processor: String,
    /// The processor's API key.
    pub secret_key: SecretRef,
    /// The processor's webhook signing secret; without it its webhooks are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<SecretRef>,
    /// `false` once the merchant is moved back to the sandbox: new payments go there, while
    /// the payments made with this processor are still synced, captured, refunded and told
    /// about by its webhooks.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub takes_new_payments: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// The processors a merchant may be configured with, beside the built-in sandbox.
pub const CONFIGURABLE: [&str; 1] = ["stripe"];

fn setting_key(merchant_id: &str) -> String {
    format!("processor:{merchant_id}")
}

pub async fn get<S: SettingsStore + ?Sized>(store: &S, merchant_id: &str) -> Result<Option<ProcessorSettings>, StoreError> {
    match store.get_setting(&setting_key(merchant_id)).await? {
        // An empty value: set back to the sandbox.
        Some(v) if !v.is_empty() => {
            serde_json::from_str(&v).map(Some).map_err(|e| StoreError::Backend(format!("processor settings of {merchant_id}: {e}")))
        }
        _ => Ok(None),
    }
}

/// Sets (or with `None`, forgets) the merchant's processor.
pub async fn put<S: SettingsStore + ?Sized>(store: &S, merchant_id: &str, settings: Option<&ProcessorSettings>) -> Result<(), StoreError> {
    let value = settings.map(|s| serde_json::to_string(s).expect("settings serialise")).unwrap_or_default();
    store.put_setting(&setting_key(merchant_id), &value).await
}

/// What `merchant update` prints and the operator sees: names of parameters and files only.
pub fn describe(settings: Option<&ProcessorSettings>) -> serde_json::Value {
    match settings {
        Some(s) if s.takes_new_payments => serde_json::to_value(s).expect("settings serialise"),
        Some(s) => serde_json::json!({"processor": paysession_domain::payment::SANDBOX_PROCESSOR, "earlier": s}),
        None => serde_json::json!({"processor": paysession_domain::payment::SANDBOX_PROCESSOR}),
    }
}
