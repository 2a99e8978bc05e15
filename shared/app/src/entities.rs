//! The tenancy entities: merchants, their API clients, scopes, the authenticated caller and
//! the merchant's request-signing profile.
//! Kept apart from the use cases (`auth`, `merchants`) and the ports so none of those
//! import each other for a type.

use chrono::{DateTime, Utc};
use paysession_domain::MerchantPolicy;
use paysession_domain::model::PaymentMethodKind;
use paysession_domain::signed_requests::{Algorithm, Mode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "sessions:read")]
    SessionsRead,
    #[serde(rename = "sessions:write")]
    SessionsWrite,
    #[serde(rename = "mandates:write")]
    MandatesWrite,
    #[serde(rename = "webhooks:manage")]
    WebhooksManage,
    #[serde(rename = "keys:manage")]
    KeysManage,
    #[serde(rename = "refunds:write")]
    RefundsWrite,
}

impl Scope {
    pub const ALL: [Scope; 6] =
        [Scope::SessionsRead, Scope::SessionsWrite, Scope::MandatesWrite, Scope::WebhooksManage, Scope::KeysManage, Scope::RefundsWrite];
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::SessionsRead => "sessions:read",
            Scope::SessionsWrite => "sessions:write",
            Scope::MandatesWrite => "mandates:write",
            Scope::WebhooksManage => "webhooks:manage",
            Scope::KeysManage => "keys:manage",
            Scope::RefundsWrite => "refunds:write",
        }
    }
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

pub fn scopes_to_string(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

/// The authenticated caller of an API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub merchant_id: String,
    pub client_id: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merchant {
    pub id: String,
    pub name: String,
    /// Shown on the hosted page; defaults to `name`.
    pub display_name: String,
    /// `#rrggbb`, the hosted page's accent colour.
    pub brand_color: String,
    pub redirect_urls: Vec<String>,
    pub payment_methods: Vec<PaymentMethodKind>,
    pub created_at: DateTime<Utc>,
}

impl Merchant {
    pub fn policy(&self) -> MerchantPolicy {
        MerchantPolicy { payment_methods: self.payment_methods.clone(), redirect_urls: self.redirect_urls.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiClient {
    pub client_id: String,
    pub merchant_id: String,
    /// Argon2id PHC string; the secret itself is never stored.
    pub secret_hash: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    /// The scope list was written knowing `refunds:write`. A client stored before that scope
    /// existed (`false`) holds it with `sessions:write` (API.md, "Refunds").
    #[serde(default)]
    pub knows_refunds_scope: bool,
}

impl ApiClient {
    /// The scopes the client may be granted.
    pub fn granted_scopes(&self) -> Vec<Scope> {
        let mut scopes = self.scopes.clone();
        if !self.knows_refunds_scope && scopes.contains(&Scope::SessionsWrite) && !scopes.contains(&Scope::RefundsWrite) {
            scopes.push(Scope::RefundsWrite);
        }
        scopes
    }
}

// Signed requests: a merchant's setting and public keys (used by `crate::signing`).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    pub id: String,
    pub algorithm: Algorithm,
    /// SPKI PEM, whatever form it was registered in.
    pub public_key: String,
    pub status: KeyStatus,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl SigningKey {
    pub fn to_api(&self) -> Value {
        json!({
            "id": self.id, "object": "signing_key", "algorithm": self.algorithm, "public_key": self.public_key,
            "status": self.status, "created_at": self.created_at, "revoked_at": self.revoked_at,
        })
    }
}

/// One record per merchant, read once per API request: the setting and its keys together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningProfile {
    pub merchant_id: String,
    pub mode: Mode,
    pub keys: Vec<SigningKey>,
    /// 0 when never stored; each write stores `version + 1` conditionally.
    pub version: u64,
}

impl SigningProfile {
    pub fn empty(merchant_id: &str) -> SigningProfile {
        SigningProfile { merchant_id: merchant_id.to_string(), mode: Mode::Off, keys: Vec::new(), version: 0 }
    }

    pub fn settings_api(&self) -> Value {
        json!({"object": "merchant_settings", "signed_requests": self.mode.as_str(),
               "active_signing_keys": self.active().count()})
    }

    pub(crate) fn active(&self) -> impl Iterator<Item = &SigningKey> {
        self.keys.iter().filter(|k| k.status == KeyStatus::Active)
    }
}
