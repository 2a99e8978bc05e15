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
use paysession_app::ports::{Config, IdempotencyStore, MerchantStore, PolledQueue, SessionStore, SettingsStore, WebhookStore};
use paysession_app::secret::Secret;
use paysession_domain::webhook::UrlPolicy;
use paysession_app::Deps;
use paysession_aws::DynamoStore;
#[cfg(feature = "embedded")]
pub use paysession_embedded::EmbeddedStore;
use paysession_http::handlers::misc::TEST_CLOCK_SETTING;
use paysession_http::Route;

pub use paysession_outbound as outbound;

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
    /// `PAYSESSION_WEBHOOK_QUEUE_URL`: the SQS queue of webhook deliveries (functions that
    /// queue deliveries: stream consumer, dispatcher, redeliver).
    pub webhook_queue_url: Option<String>,
    /// `PAYSESSION_WEBHOOK_DLQ_URL`: where the dispatcher puts exhausted deliveries.
    pub webhook_dlq_url: Option<String>,
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
        let optional = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let webhook_queue_url = optional("PAYSESSION_WEBHOOK_QUEUE_URL");
        let webhook_dlq_url = optional("PAYSESSION_WEBHOOK_DLQ_URL");
        Ok(FunctionEnv { table, signing_key, public_url, sandbox, webhook_queue_url, webhook_dlq_url })
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
    let mut deps = build_deps(Arc::new(store), key, env.public_url, env.sandbox).await?;
    deps.queue = match env.webhook_queue_url {
        Some(url) => Arc::new(paysession_aws::sqs::SqsQueue::new(aws_sdk_sqs::Client::new(&config), url)),
        None => Arc::new(UnconfiguredQueue),
    };
    Ok(deps)
}

/// The queue of a function deployed without `PAYSESSION_WEBHOOK_QUEUE_URL`: using it is a
/// deployment error, reported as such rather than silently dropping deliveries.
struct UnconfiguredQueue;

#[async_trait::async_trait]
impl paysession_app::ports::DeliveryQueue for UnconfiguredQueue {
    async fn enqueue(&self, _: &str, _: &str, _: std::time::Duration) -> Result<(), paysession_app::StoreError> {
        Err(paysession_app::StoreError::Backend("PAYSESSION_WEBHOOK_QUEUE_URL is not set for this function".into()))
    }
}

/// The functions fed by AWS events rather than HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFunction {
    /// The table stream: outbox fan-out and TTL expiry.
    StreamConsumer,
    /// The webhook queue: one delivery attempt per message.
    WebhookDispatcher,
}

impl EventFunction {
    /// The `functions/` package of each.
    pub const ALL: [(EventFunction, &'static str); 2] =
        [(EventFunction::StreamConsumer, "stream-consumer"), (EventFunction::WebhookDispatcher, "webhook-dispatcher")];
}

/// The whole `main` of an event function (see [`run`] for why the runtime is built here).
pub fn run_event(kind: EventFunction) -> Result<(), paysession_http::lambda_http::Error> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(serve_event(kind))
}

async fn serve_event(kind: EventFunction) -> Result<(), paysession_http::lambda_http::Error> {
    use paysession_http::lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};
    use serde_json::Value;
    paysession_http::lambda::init_logging();
    let env = FunctionEnv::from_env().inspect_err(|e| tracing::error!(error = %e, "configuration error at init"))?;
    let urls = (env.webhook_queue_url.clone(), env.webhook_dlq_url.clone());
    let deps = function_deps(env).await.inspect_err(|e| tracing::error!(error = %e, "configuration error at init"))?;
    let deps = &deps;
    match kind {
        EventFunction::StreamConsumer => {
            if urls.0.is_none() {
                return Err("environment variable PAYSESSION_WEBHOOK_QUEUE_URL is not set".into());
            }
            lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
                Ok::<Value, lambda_runtime::Error>(paysession_aws::stream::handle_stream_event(deps, &ev.payload).await)
            }))
            .await
        }
        EventFunction::WebhookDispatcher => {
            let (Some(queue_url), Some(dead_letter_url)) = urls else {
                return Err("environment variables PAYSESSION_WEBHOOK_QUEUE_URL and PAYSESSION_WEBHOOK_DLQ_URL must be set".into());
            };
            let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let queues = &paysession_aws::sqs::DispatcherQueues { client: aws_sdk_sqs::Client::new(&config), queue_url, dead_letter_url };
            lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
                Ok::<Value, lambda_runtime::Error>(paysession_aws::sqs::handle_sqs_event(deps, &SystemClock, queues, &ev.payload).await)
            }))
            .await
        }
    }
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
pub trait Store: SessionStore + IdempotencyStore + MerchantStore + SettingsStore + WebhookStore + 'static {}
impl<T: SessionStore + IdempotencyStore + MerchantStore + SettingsStore + WebhookStore + 'static> Store for T {}

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
        settings: store.clone(),
        webhooks: store,
        queue: Arc::new(PolledQueue),
        sender: Arc::new(paysession_outbound::GuardedSender::new(UrlPolicy { allow_private: false })),
        clock,
        test_clock,
        tokens: Arc::new(TokenSigner::new(signing_key, Arc::new(SystemClock))?),
        processor: Arc::new(paysession_app::processor::SandboxProcessor),
        notifier: Arc::new(paysession_app::processor::LogNotifier),
        config: Config { public_url, sandbox, allow_private_webhooks: false },
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
    /// The embedded store, when that is what was opened (the local webhook pipeline reads
    /// its outbox and delivery queue directly).
    #[cfg(feature = "embedded")]
    pub fn embedded(&self) -> Option<Arc<EmbeddedStore>> {
        match self {
            OpenedStore::Embedded(s) => Some(s.clone()),
            OpenedStore::Dynamo(_) => None,
        }
    }

    /// The DynamoDB store, when that is what was opened (the local server then reads its
    /// stream).
    pub fn dynamo(&self) -> Option<Arc<DynamoStore>> {
        match self {
            #[cfg(feature = "embedded")]
            OpenedStore::Embedded(_) => None,
            OpenedStore::Dynamo(s) => Some(s.clone()),
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
