//! The merchants' configured processors ([`ProcessorDirectory`]): settings read from the
//! store (again after a minute, so an operator's change reaches warm functions), secrets
//! read once per process (SSM with decryption, or a file), connectors kept per merchant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use paysession_app::ports::{SettingsStore, StoreError};
use paysession_app::processor::{PaymentProcessor, ProcessorDirectory};
use paysession_app::processor_config::{self, ProcessorSettings, SecretRef};
use paysession_app::secret::Secret;
use paysession_outbound::stripe::{StripeConnector, StripeOptions};

/// How long a merchant's processor settings are used before they are read again.
const SETTINGS_FOR: Duration = Duration::from_secs(60);

/// Reads a secret an operator named.
#[async_trait]
pub trait SecretSource: Send + Sync {
    async fn read(&self, at: &SecretRef) -> Result<Secret<String>, String>;
}

/// Files, and SSM parameters where the build has the AWS SDK (one client, made on the first
/// parameter read).
#[derive(Default)]
pub struct DefaultSecrets {
    #[cfg(feature = "aws")]
    ssm: tokio::sync::OnceCell<aws_sdk_ssm::Client>,
}

#[async_trait]
impl SecretSource for DefaultSecrets {
    async fn read(&self, at: &SecretRef) -> Result<Secret<String>, String> {
        match at {
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|s| Secret::new(s.trim_end().to_string()))
                .map_err(|e| format!("cannot read the secret file {path}: {e}")),
            #[cfg(feature = "aws")]
            SecretRef::Parameter(name) => {
                let ssm = self
                    .ssm
                    .get_or_try_init(async || Ok::<_, String>(aws_sdk_ssm::Client::new(&paysession_aws::sdk_config().await?)))
                    .await?;
                crate::function::ssm_parameter(ssm, name).await.map(|v| Secret::new(v.trim_end().to_string()))
            }
            #[cfg(not(feature = "aws"))]
            SecretRef::Parameter(name) => Err(format!("SSM parameter {name}: this build has no AWS SDK; use a secret file")),
        }
    }
}

struct Entry {
    read_at: Instant,
    settings: Option<ProcessorSettings>,
    processor: Option<Arc<dyn PaymentProcessor>>,
}

pub struct MerchantProcessors {
    settings: Arc<dyn SettingsStore>,
    secrets: Box<dyn SecretSource>,
    options: StripeOptions,
    merchants: Mutex<HashMap<String, Arc<Entry>>>,
    /// Secrets by where they were read from, for the process's life.
    read: Mutex<HashMap<SecretRef, Secret<String>>>,
}

impl MerchantProcessors {
    pub fn new(settings: Arc<dyn SettingsStore>, secrets: Box<dyn SecretSource>, options: StripeOptions) -> MerchantProcessors {
        MerchantProcessors { settings, secrets, options, merchants: Mutex::default(), read: Mutex::default() }
    }

    async fn secret(&self, at: &SecretRef) -> Result<Secret<String>, StoreError> {
        if let Some(s) = self.read.lock().unwrap_or_else(|p| p.into_inner()).get(at) {
            return Ok(s.clone());
        }
        let secret = self.secrets.read(at).await.map_err(StoreError::Backend)?;
        self.read.lock().unwrap_or_else(|p| p.into_inner()).insert(at.clone(), secret.clone());
        Ok(secret)
    }

    async fn build(&self, settings: &ProcessorSettings) -> Result<Arc<dyn PaymentProcessor>, StoreError> {
        match settings.processor.as_str() {
            paysession_outbound::stripe::NAME => {
                let key = self.secret(&settings.secret_key).await?;
                let webhook = match &settings.webhook_secret {
                    Some(at) => Some(self.secret(at).await?),
                    None => None,
                };
                Ok(Arc::new(StripeConnector::new(self.options.clone(), key, webhook, self.settings.clone())))
            }
            other => Err(StoreError::Backend(format!("unknown processor {other} in a merchant's settings"))),
        }
    }
}

impl MerchantProcessors {
    /// The merchant's settings and their connector, read at most once a minute.
    async fn entry(&self, merchant_id: &str) -> Result<Arc<Entry>, StoreError> {
        let cached = self.merchants.lock().unwrap_or_else(|p| p.into_inner()).get(merchant_id).cloned();
        if let Some(e) = &cached
            && e.read_at.elapsed() < SETTINGS_FOR
        {
            return Ok(e.clone());
        }
        let settings = processor_config::get(&*self.settings, merchant_id).await?;
        // Unchanged settings keep their connector (and its open connections).
        let processor = match (&cached, &settings) {
            (Some(e), Some(s)) if e.settings.as_ref().is_some_and(|old| same_processor(old, s)) => e.processor.clone(),
            (_, Some(s)) => Some(self.build(s).await?),
            (_, None) => None,
        };
        let entry = Arc::new(Entry { read_at: Instant::now(), settings, processor });
        self.merchants.lock().unwrap_or_else(|p| p.into_inner()).insert(merchant_id.to_string(), entry.clone());
        Ok(entry)
    }
}

/// The same connector serves both (only whether it takes new payments differs).
fn same_processor(a: &ProcessorSettings, b: &ProcessorSettings) -> bool {
    (&a.processor, &a.secret_key, &a.webhook_secret) == (&b.processor, &b.secret_key, &b.webhook_secret)
}

#[async_trait]
impl ProcessorDirectory for MerchantProcessors {
    async fn configured(&self, merchant_id: &str) -> Result<Option<Arc<dyn PaymentProcessor>>, StoreError> {
        let e = self.entry(merchant_id).await?;
        Ok(e.processor.clone().filter(|_| e.settings.as_ref().is_some_and(|s| s.takes_new_payments)))
    }

    async fn named(&self, merchant_id: &str, name: &str) -> Result<Option<Arc<dyn PaymentProcessor>>, StoreError> {
        Ok(self.entry(merchant_id).await?.processor.clone().filter(|p| p.name() == name))
    }
}
