//! The tenancy entities: merchants, their API clients, scopes and the authenticated caller.
//! Kept apart from the use cases (`auth`, `merchants`) and the ports so none of those
//! import each other for a type.

use chrono::{DateTime, Utc};
use paysession_domain::MerchantPolicy;
use paysession_domain::model::PaymentMethodKind;
use serde::{Deserialize, Serialize};

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
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::SessionsRead, Scope::SessionsWrite, Scope::MandatesWrite, Scope::WebhooksManage];
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::SessionsRead => "sessions:read",
            Scope::SessionsWrite => "sessions:write",
            Scope::MandatesWrite => "mandates:write",
            Scope::WebhooksManage => "webhooks:manage",
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
}
