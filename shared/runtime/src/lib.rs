//! Wiring: from configuration to [`Deps`]. Functions call [`serve`]; the local server and
//! the admin CLI call [`open_store`] and [`build_deps`].

#[cfg(feature = "embedded")]
use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::Duration;
use paysession_app::auth::TokenSigner;
use paysession_app::clock::{Clock, SystemClock, TestClock};
use paysession_app::ports::{Config, IdempotencyStore, MerchantStore, SessionStore, SettingsStore};
use paysession_app::secret::Secret;
use paysession_app::Deps;
use paysession_aws::DynamoStore;
#[cfg(feature = "embedded")]
use paysession_embedded::EmbeddedStore;
use paysession_http::handlers::misc::TEST_CLOCK_SETTING;
use paysession_http::Route;

const SIGNING_KEY_SETTING: &str = "token_signing_key";

/// Where the signing key comes from.
#[derive(Debug)]
pub enum KeySource {
    /// `PAYSESSION_TOKEN_SIGNING_KEY_PARAMETER`: an SSM SecureString holding base64.
    SsmParameter(String),
    /// `PAYSESSION_TOKEN_SIGNING_KEY`: the base64 value itself (development).
    Inline(Secret<Vec<u8>>),
}

/// Typed environment of a function, read once at cold start. A missing or malformed key
/// stops the function at init with a message naming it.
#[derive(Debug)]
pub struct FunctionEnv {
    /// `PAYSESSION_TABLE`: the DynamoDB table.
    pub table: String,
    pub signing_key: KeySource,
    /// `PAYSESSION_PUBLIC_URL`: base of hosted-page URLs.
    pub public_url: String,
    /// `PAYSESSION_SANDBOX`: `true` enables sandbox behaviour.
    pub sandbox: bool,
}

pub fn decode_key(b64: &str, what: &str) -> Result<Secret<Vec<u8>>, String> {
    let key = B64.decode(b64.trim()).map_err(|_| format!("{what} must be base64"))?;
    if key.len() < 32 {
        return Err(format!("{what} must decode to at least 32 bytes"));
    }
    Ok(Secret::new(key))
}

impl FunctionEnv {
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get`, so tests can supply it.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let need = |k: &str| get(k).filter(|v| !v.trim().is_empty()).ok_or_else(|| format!("environment variable {k} is not set"));
        let table = need("PAYSESSION_TABLE")?;
        let signing_key = match (get("PAYSESSION_TOKEN_SIGNING_KEY_PARAMETER"), get("PAYSESSION_TOKEN_SIGNING_KEY")) {
            (Some(p), _) if !p.is_empty() => KeySource::SsmParameter(p),
            (_, Some(v)) if !v.is_empty() => KeySource::Inline(decode_key(&v, "PAYSESSION_TOKEN_SIGNING_KEY")?),
            _ => {
                return Err("set PAYSESSION_TOKEN_SIGNING_KEY_PARAMETER (an SSM SecureString name) or PAYSESSION_TOKEN_SIGNING_KEY".into());
            }
        };
        let public_url = need("PAYSESSION_PUBLIC_URL")?;
        if !(public_url.starts_with("https://") || public_url.starts_with("http://")) {
            return Err("PAYSESSION_PUBLIC_URL must be an absolute http(s) URL".into());
        }
        let sandbox = match get("PAYSESSION_SANDBOX").as_deref() {
            Some("true") => true,
            Some("false") | None => false,
            Some(other) => return Err(format!("PAYSESSION_SANDBOX must be true or false, not {other:?}")),
        };
        Ok(FunctionEnv { table, signing_key, public_url, sandbox })
    }
}

/// Builds a function's dependencies: AWS config, the DynamoDB store and the signing key.
pub async fn function_deps(env: FunctionEnv) -> Result<Deps, String> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let key = match env.signing_key {
        KeySource::Inline(k) => k,
        KeySource::SsmParameter(name) => {
            let out = aws_sdk_ssm::Client::new(&config)
                .get_parameter()
                .name(&name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| format!("cannot read SSM parameter {name}: {}", aws_sdk_ssm::error::DisplayErrorContext(&e)))?;
            let value = out.parameter.and_then(|p| p.value).ok_or_else(|| format!("SSM parameter {name} has no value"))?;
            decode_key(&value, &format!("SSM parameter {name}"))?
        }
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), env.table);
    build_deps(Arc::new(store), key, env.public_url, env.sandbox).await
}

/// Runs one route as a Lambda function: the whole of a function's `main`.
///
/// The runtime is built and driven here, not in each binary: a future polled from a
/// binary's `#[tokio::main]` is monomorphised into that binary with every future it awaits
/// (the handlers, the AWS SDK), which made each of the nine release builds recompile the
/// same code. A Lambda sandbox serves one request at a time, so a current-thread runtime
/// avoids cross-thread hand-offs on every invocation.
pub fn run(route: Route) -> Result<(), paysession_http::lambda_http::Error> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(serve(route))
}

async fn serve(route: Route) -> Result<(), paysession_http::lambda_http::Error> {
    paysession_http::lambda::init_logging();
    let deps = match FunctionEnv::from_env() {
        Ok(env) => function_deps(env).await,
        Err(e) => Err(e),
    };
    let deps = deps.map_err(|e| {
        tracing::error!(error = %e, "configuration error at init");
        e
    })?;
    paysession_http::lambda::serve(route, deps).await
}

/// A store implementing every port.
pub trait Store: SessionStore + IdempotencyStore + MerchantStore + SettingsStore + 'static {}
impl<T: SessionStore + IdempotencyStore + MerchantStore + SettingsStore + 'static> Store for T {}

/// Deps over any store. In sandbox mode the test clock is restored from the store.
pub async fn build_deps<S: Store>(store: Arc<S>, signing_key: Secret<Vec<u8>>, public_url: String, sandbox: bool) -> Result<Deps, String> {
    let test_clock = if sandbox {
        let offset_ms = store
            .get_setting(TEST_CLOCK_SETTING)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        Some(TestClock::with_offset(Duration::milliseconds(offset_ms)))
    } else {
        None
    };
    let clock: Arc<dyn Clock> = match &test_clock {
        Some(c) => Arc::new(c.clone()),
        None => Arc::new(SystemClock),
    };
    Ok(Deps {
        sessions: store.clone(),
        idempotency: store.clone(),
        merchants: store.clone(),
        settings: store,
        clock,
        test_clock,
        tokens: Arc::new(TokenSigner::new(signing_key, Arc::new(SystemClock))?),
        processor: Arc::new(paysession_app::processor::SandboxProcessor),
        notifier: Arc::new(paysession_app::processor::LogNotifier),
        config: Config { public_url, sandbox },
    })
}

/// Which store the local server or the admin CLI works on.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    #[cfg(feature = "embedded")]
    Embedded(PathBuf),
    /// A DynamoDB table, reached through the standard AWS environment
    /// (`AWS_ENDPOINT_URL_DYNAMODB` for DynamoDB Local).
    Dynamo(String),
}

/// The opened store, kept concrete so callers can reach adapter-specific operations.
pub enum OpenedStore {
    #[cfg(feature = "embedded")]
    Embedded(Arc<EmbeddedStore>),
    Dynamo(Arc<DynamoStore>),
}

impl OpenedStore {
    pub fn settings(&self) -> &dyn SettingsStore {
        match self {
            #[cfg(feature = "embedded")]
            OpenedStore::Embedded(s) => s.as_ref(),
            OpenedStore::Dynamo(s) => s.as_ref(),
        }
    }
    pub fn merchants(&self) -> Arc<dyn MerchantStore> {
        match self {
            #[cfg(feature = "embedded")]
            OpenedStore::Embedded(s) => s.clone(),
            OpenedStore::Dynamo(s) => s.clone(),
        }
    }
    /// The sweeper source when this store needs one (the embedded store).
    pub fn expiry_sweep(&self) -> Option<Arc<dyn paysession_app::expiry::ExpirySweep>> {
        match self {
            #[cfg(feature = "embedded")]
            OpenedStore::Embedded(s) => Some(s.clone()),
            OpenedStore::Dynamo(_) => None,
        }
    }

    pub async fn deps(&self, key: Secret<Vec<u8>>, public_url: String, sandbox: bool) -> Result<Deps, String> {
        match self {
            #[cfg(feature = "embedded")]
            OpenedStore::Embedded(s) => build_deps(s.clone(), key, public_url, sandbox).await,
            OpenedStore::Dynamo(s) => build_deps(s.clone(), key, public_url, sandbox).await,
        }
    }
}

pub async fn open_store(choice: &StoreChoice) -> Result<OpenedStore, String> {
    Ok(match choice {
        #[cfg(feature = "embedded")]
        StoreChoice::Embedded(dir) => OpenedStore::Embedded(Arc::new(EmbeddedStore::open_dir(dir).map_err(|e| e.to_string())?)),
        StoreChoice::Dynamo(table) => OpenedStore::Dynamo(Arc::new(DynamoStore::new(paysession_aws::dynamodb_client().await, table.clone()))),
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
