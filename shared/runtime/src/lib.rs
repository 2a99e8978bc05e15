//! Wiring: from configuration to [`Deps`]. Functions call [`serve`]; the local server and
//! the admin CLI call [`embedded_deps`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::Duration;
use paysession_app::auth::TokenSigner;
use paysession_app::clock::{Clock, SystemClock, TestClock};
use paysession_app::ports::{Config, SettingsStore};
use paysession_app::secret::Secret;
use paysession_app::Deps;
use paysession_embedded::EmbeddedStore;
use paysession_http::handlers::misc::TEST_CLOCK_SETTING;
use paysession_http::Route;

const SIGNING_KEY_SETTING: &str = "token_signing_key";

/// Typed environment of a function. Every key is read once at cold start; a missing or
/// malformed one stops the function at init with a message naming it.
#[derive(Debug)]
pub struct FunctionEnv {
    /// `PAYSESSION_DATA_DIR`: the embedded store's directory. (The DynamoDB adapter will
    /// replace this for deployed functions.)
    pub data_dir: PathBuf,
    /// `PAYSESSION_TOKEN_SIGNING_KEY`: base64 of at least 32 bytes.
    pub signing_key: Secret<Vec<u8>>,
    /// `PAYSESSION_PUBLIC_URL`: base of hosted-page URLs.
    pub public_url: String,
    /// `PAYSESSION_SANDBOX`: `true` enables the test clock.
    pub sandbox: bool,
}

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
}

impl FunctionEnv {
    pub fn from_env() -> Result<Self, String> {
        let key_b64 = var("PAYSESSION_TOKEN_SIGNING_KEY")?;
        let key = B64
            .decode(key_b64.trim())
            .map_err(|_| "PAYSESSION_TOKEN_SIGNING_KEY must be base64".to_string())?;
        if key.len() < 32 {
            return Err("PAYSESSION_TOKEN_SIGNING_KEY must decode to at least 32 bytes".into());
        }
        let public_url = var("PAYSESSION_PUBLIC_URL")?;
        if !(public_url.starts_with("https://") || public_url.starts_with("http://")) {
            return Err("PAYSESSION_PUBLIC_URL must be an absolute http(s) URL".into());
        }
        let sandbox = match std::env::var("PAYSESSION_SANDBOX").as_deref() {
            Ok("true") => true,
            Ok("false") | Err(_) => false,
            Ok(other) => return Err(format!("PAYSESSION_SANDBOX must be true or false, not {other:?}")),
        };
        Ok(FunctionEnv { data_dir: PathBuf::from(var("PAYSESSION_DATA_DIR")?), signing_key: Secret::new(key), public_url, sandbox })
    }
}

/// Runs one route as a Lambda function (the whole of a function's `main`).
pub async fn serve(route: Route) -> Result<(), paysession_http::lambda_http::Error> {
    paysession_http::lambda::init_logging();
    let env = FunctionEnv::from_env().map_err(|e| {
        tracing::error!(error = %e, "configuration error");
        e
    })?;
    let store = EmbeddedStore::open_dir(&env.data_dir)?;
    let deps = embedded_deps(store, env.signing_key, env.public_url, env.sandbox).await?;
    paysession_http::lambda::serve(route, deps).await
}

/// Deps over the embedded store. In sandbox mode the test clock is restored from the store.
pub async fn embedded_deps(
    store: EmbeddedStore,
    signing_key: Secret<Vec<u8>>,
    public_url: String,
    sandbox: bool,
) -> Result<Deps, String> {
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
    let store = Arc::new(store);
    Ok(Deps {
        sessions: store.clone(),
        idempotency: store.clone(),
        merchants: store.clone(),
        settings: store,
        clock,
        test_clock,
        tokens: Arc::new(TokenSigner::new(signing_key, Arc::new(SystemClock))?),
        config: Config { public_url, sandbox },
    })
}

/// The local data directory's signing key, created on first use. Kept in the store so
/// tokens and the derived demo secret survive restarts.
pub async fn local_signing_key(store: &EmbeddedStore) -> Result<Secret<Vec<u8>>, String> {
    if let Some(existing) = store.meta_get(SIGNING_KEY_SETTING).await.map_err(|e| e.to_string())? {
        return B64.decode(existing).map(Secret::new).map_err(|_| "stored signing key is corrupt".to_string());
    }
    let key = paysession_app::ids::random_key();
    store.meta_set(SIGNING_KEY_SETTING, &B64.encode(&key)).await.map_err(|e| e.to_string())?;
    Ok(Secret::new(key))
}

/// Opens the embedded store of a data directory with a readable error.
pub fn open_data_dir(dir: &Path) -> Result<EmbeddedStore, String> {
    EmbeddedStore::open_dir(dir).map_err(|e| e.to_string())
}
