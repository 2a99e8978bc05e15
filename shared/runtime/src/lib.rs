//! Wiring: from configuration to what handlers use. A function's `main.rs` calls [`http`]
//! or [`events`] with its one handler; the local server and the admin CLI call
//! [`open_store`] and [`build_core`].
//!
//! Two features: `aws` (on by default) brings the Lambda glue and the DynamoDB store;
//! `embedded` the SQLite store. The local server leaves `aws` off unless it is asked to run
//! on DynamoDB, so its first build compiles no AWS SDK.

#[cfg(feature = "embedded")]
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::Duration;
#[cfg(feature = "aws")]
use paysession_app::Payments;
use paysession_app::auth::TokenSigner;
use paysession_app::clock::LEGACY_TEST_CLOCK_SETTING;
use paysession_app::clock::TestClock;
use paysession_app::ports::{MerchantStore, SettingsStore, Store};
use paysession_app::secret::Secret;
use paysession_app::{Config, Core};
#[cfg(feature = "aws")]
use paysession_aws::DynamoStore;
#[cfg(feature = "embedded")]
pub use paysession_embedded::EmbeddedStore;

pub mod processors;

#[cfg(feature = "aws")]
mod function;
#[cfg(feature = "aws")]
pub use function::*;

pub use paysession_app::clock::SystemClock;
#[cfg(feature = "aws")]
pub use paysession_aws as aws;
pub use paysession_outbound as outbound;

const SIGNING_KEY_SETTING: &str = "token_signing_key";

pub fn decode_key(b64: &str, what: &str) -> Result<Secret<Vec<u8>>, String> {
    let key = B64.decode(b64.trim()).map_err(|_| format!("{what} must be base64"))?;
    if key.len() < 32 {
        return Err(format!("{what} must decode to at least 32 bytes"));
    }
    Ok(Secret::new(key))
}

/// A token signing key and where it came from, for the operator to read.
pub struct SigningKey {
    pub key: Secret<Vec<u8>>,
    pub source: String,
}

/// The signing key of the deployment a store belongs to. Client secrets are hashed under
/// it, so the local server, the admin CLI and the functions on one table must agree:
/// - a data directory (embedded store): the key stored in it, made on first use;
/// - a DynamoDB table: the functions' key from the environment
///   (`PAYSESSION_TOKEN_SIGNING_KEY_PARAMETER` or `PAYSESSION_TOKEN_SIGNING_KEY`) when set;
///   else, with `stored_fallback` (the local server; the admin CLI's `--local-server-key`),
///   the key a local server stored in the table; else a refusal that says how to match.
#[cfg_attr(not(feature = "aws"), allow(unused_variables))]
pub async fn signing_key(opened: &OpenedStore, stored_fallback: bool) -> Result<SigningKey, String> {
    #[cfg(feature = "aws")]
    #[allow(irrefutable_let_patterns)] // the only variant when built without the embedded store
    if let OpenedStore::Dynamo(_) = opened {
        match KeySource::from_lookup(|k| std::env::var(k).ok())? {
            Some(source) => {
                let aws = paysession_aws::sdk_config().await?;
                return Ok(SigningKey { key: load_key(&source, &aws).await?, source: source.describe() });
            }
            None if stored_fallback => {
                return Ok(SigningKey {
                    key: local_signing_key(opened.settings()).await?,
                    source: "this table's own, stored by paysession-local (no PAYSESSION_TOKEN_SIGNING_KEY[_PARAMETER] set); \
                             paysession-admin matches it with --local-server-key"
                        .into(),
                });
            }
            None => {
                let stored = opened.settings().get_setting(SIGNING_KEY_SETTING).await.map_err(|e| e.to_string())?.is_some();
                let mut msg = String::from(
                    "with --table, set PAYSESSION_TOKEN_SIGNING_KEY_PARAMETER (the stack's SSM parameter name) or \
                     PAYSESSION_TOKEN_SIGNING_KEY: client secrets are hashed under the functions' signing key",
                );
                if stored {
                    msg.push_str(
                        "; this table also holds a key paysession-local stored (it ran on the table without one): \
                         pass --local-server-key to use that key, for merchants of that local server",
                    );
                }
                return Err(msg);
            }
        }
    }
    Ok(SigningKey { key: local_signing_key(opened.settings()).await?, source: "the data directory's own".into() })
}

/// The processors of the functions that take payments, built once: the built-in sandbox
/// (its ledger in `store`, so every function answers syncs alike) and the merchants'
/// configured ones (their secrets from SSM).
#[cfg(feature = "aws")]
pub fn payments(store: &Arc<DynamoStore>) -> &'static Payments {
    static PAYMENTS: OnceLock<Payments> = OnceLock::new();
    PAYMENTS.get_or_init(|| Payments::sandbox_on(store.clone()).with_directory(processor_directory(store.clone(), None)))
}

/// The merchants' configured processors over `settings` (secrets from files or SSM; the
/// Stripe API base `stripe_api_base`, else `PAYSESSION_STRIPE_API_BASE`, else Stripe's).
pub fn processor_directory(
    settings: Arc<dyn SettingsStore>,
    stripe_api_base: Option<String>,
) -> Arc<dyn paysession_app::processor::ProcessorDirectory> {
    let mut options = outbound::stripe::StripeOptions::from_env();
    if let Some(base) = stripe_api_base {
        options.api_base = base;
    }
    Arc::new(processors::MerchantProcessors::new(settings, Box::new(processors::DefaultSecrets::default()), options))
}

/// The webhook sender of the dispatcher: SSRF-guarded (private addresses refused unless
/// `allow_private`, the function's `PAYSESSION_ALLOW_PRIVATE_WEBHOOKS`), built once.
pub fn webhook_sender(allow_private: bool) -> &'static outbound::GuardedSender {
    static SENDER: OnceLock<outbound::GuardedSender> = OnceLock::new();
    SENDER.get_or_init(|| outbound::GuardedSender::new(paysession_domain::webhook::UrlPolicy { allow_private }))
}

/// A store's core: business clock (restoring the sandbox test clock from the store), keys
/// and settings.
pub async fn build_core<S: SettingsStore + ?Sized>(
    store: Arc<S>,
    signing_key: Secret<Vec<u8>>,
    public_url: String,
    sandbox: bool,
) -> Result<Core<S>, String> {
    let test_clock = if sandbox {
        let offset_ms =
            store.get_setting(LEGACY_TEST_CLOCK_SETTING).await.map_err(|e| e.to_string())?.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        Some(TestClock::with_offset(Duration::milliseconds(offset_ms)))
    } else {
        None
    };
    let clock: Arc<dyn paysession_app::clock::Clock> = match &test_clock {
        Some(c) => Arc::new(c.clone()),
        None => Arc::new(SystemClock),
    };
    Ok(Core {
        store,
        clock,
        test_clock,
        keys: Arc::new(TokenSigner::new(signing_key, Arc::new(SystemClock))?),
        config: Config { public_url, sandbox, allow_private_webhooks: false },
        recent: Default::default(),
    })
}

/// Which store the local server or the admin CLI works on.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    #[cfg(feature = "embedded")]
    Embedded(PathBuf),
    /// A DynamoDB table, reached through the standard AWS environment
    /// (`AWS_ENDPOINT_URL_DYNAMODB` for DynamoDB Local).
    #[cfg(feature = "aws")]
    Dynamo(String),
}

/// The opened store, kept concrete so callers can reach adapter-specific operations.
pub enum OpenedStore {
    #[cfg(feature = "embedded")]
    Embedded(Arc<EmbeddedStore>),
    #[cfg(feature = "aws")]
    Dynamo(Arc<DynamoStore>),
}

impl OpenedStore {
    pub fn settings_arc(&self) -> Arc<dyn SettingsStore> {
        match self {
            #[cfg(feature = "embedded")]
            OpenedStore::Embedded(s) => s.clone(),
            #[cfg(feature = "aws")]
            OpenedStore::Dynamo(s) => s.clone(),
        }
    }

    pub fn settings(&self) -> &dyn SettingsStore {
        match self {
            #[cfg(feature = "embedded")]
            OpenedStore::Embedded(s) => s.as_ref(),
            #[cfg(feature = "aws")]
            OpenedStore::Dynamo(s) => s.as_ref(),
        }
    }
    pub fn merchants(&self) -> Arc<dyn MerchantStore> {
        match self {
            #[cfg(feature = "embedded")]
            OpenedStore::Embedded(s) => s.clone(),
            #[cfg(feature = "aws")]
            OpenedStore::Dynamo(s) => s.clone(),
        }
    }
    /// The embedded store, when that is what was opened (the local webhook pipeline reads
    /// its outbox and delivery queue directly).
    #[cfg(feature = "embedded")]
    pub fn embedded(&self) -> Option<Arc<EmbeddedStore>> {
        match self {
            OpenedStore::Embedded(s) => Some(s.clone()),
            #[cfg(feature = "aws")]
            OpenedStore::Dynamo(_) => None,
        }
    }

    #[cfg(feature = "aws")]
    /// The DynamoDB store, when that is what was opened (the local server then reads its
    /// stream).
    pub fn dynamo(&self) -> Option<Arc<DynamoStore>> {
        match self {
            #[cfg(feature = "embedded")]
            OpenedStore::Embedded(_) => None,
            #[cfg(feature = "aws")]
            OpenedStore::Dynamo(s) => Some(s.clone()),
        }
    }

    /// The local scheduler's source of due mandates.
    pub fn due_mandates(&self) -> Arc<dyn paysession_app::recurring::DueMandates> {
        match self {
            #[cfg(feature = "embedded")]
            OpenedStore::Embedded(s) => s.clone(),
            #[cfg(feature = "aws")]
            OpenedStore::Dynamo(s) => s.clone(),
        }
    }

    /// The local reconciler's source of due refund syncs and expired authorisations (on
    /// DynamoDB too: the deployed path's schedules are not created locally).
    pub fn due_money(&self) -> Arc<dyn paysession_app::reconcile::DueMoney> {
        match self {
            #[cfg(feature = "embedded")]
            OpenedStore::Embedded(s) => s.clone(),
            #[cfg(feature = "aws")]
            OpenedStore::Dynamo(s) => s.clone(),
        }
    }

    /// Where the sandbox processor keeps its ledger: this store.
    pub fn sandbox_ledger(&self) -> Arc<dyn paysession_app::processor::SandboxLedger> {
        match self {
            #[cfg(feature = "embedded")]
            OpenedStore::Embedded(s) => s.clone(),
            #[cfg(feature = "aws")]
            OpenedStore::Dynamo(s) => s.clone(),
        }
    }

    /// The sweeper source when this store needs one (the embedded store).
    pub fn expiry_sweep(&self) -> Option<Arc<dyn paysession_app::expiry::ExpirySweep>> {
        match self {
            #[cfg(feature = "embedded")]
            OpenedStore::Embedded(s) => Some(s.clone()),
            #[cfg(feature = "aws")]
            OpenedStore::Dynamo(_) => None,
        }
    }

    /// The store behind every port, for code that mounts everything.
    pub fn all(&self) -> Arc<dyn Store> {
        match self {
            #[cfg(feature = "embedded")]
            OpenedStore::Embedded(s) => s.clone(),
            #[cfg(feature = "aws")]
            OpenedStore::Dynamo(s) => s.clone(),
        }
    }

    pub async fn core(&self, key: Secret<Vec<u8>>, public_url: String, sandbox: bool) -> Result<Core<dyn Store>, String> {
        build_core(self.all(), key, public_url, sandbox).await
    }
}

pub async fn open_store(choice: &StoreChoice) -> Result<OpenedStore, String> {
    open_store_at(choice, None).await
}

/// [`open_store`], a DynamoDB table at `dynamodb_endpoint` when one is given.
#[cfg_attr(not(feature = "aws"), allow(unused_variables))]
pub async fn open_store_at(choice: &StoreChoice, dynamodb_endpoint: Option<&str>) -> Result<OpenedStore, String> {
    Ok(match choice {
        #[cfg(feature = "embedded")]
        StoreChoice::Embedded(dir) => OpenedStore::Embedded(Arc::new(EmbeddedStore::open_dir(dir).map_err(|e| e.to_string())?)),
        #[cfg(feature = "aws")]
        StoreChoice::Dynamo(table) => {
            let config = match dynamodb_endpoint {
                Some(url) => paysession_aws::sdk_config_with(&[("AWS_ENDPOINT_URL_DYNAMODB", url)]).await?,
                None => paysession_aws::sdk_config().await?,
            };
            OpenedStore::Dynamo(Arc::new(DynamoStore::from_config(&config, table.clone()).await?))
        }
    })
}

/// The local server's signing key, created on first use and kept in the store so tokens
/// and the derived demo secret survive restarts. (Deployed functions read theirs from SSM.)
pub async fn local_signing_key(settings: &dyn SettingsStore) -> Result<Secret<Vec<u8>>, String> {
    if let Some(existing) = settings.get_setting(SIGNING_KEY_SETTING).await.map_err(|e| e.to_string())? {
        return decode_key(&existing, "the stored signing key");
    }
    let key = paysession_app::ids::random_key();
    settings.put_setting(SIGNING_KEY_SETTING, &B64.encode(&key)).await.map_err(|e| e.to_string())?;
    Ok(Secret::new(key))
}
