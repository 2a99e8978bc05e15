//! The Lambda side: a function's typed environment, its dependencies built once per cold
//! start, and the `main` of HTTP and event functions.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use paysession_app::Core;
use paysession_app::ports::DeliveryQueue;
use paysession_app::secret::Secret;
use paysession_aws::DynamoStore;
use paysession_http::lambda_http::{self, Body, Request, Response};
use paysession_http::pipeline::{Params, RawFuture, unrouted};
use paysession_http::problem::ApiError;
use paysession_http::routes::{RouteInfo, match_path, table};

use crate::{build_core, decode_key};

/// Where the signing key comes from.
#[derive(Debug)]
pub enum KeySource {
    /// `PAYSESSION_TOKEN_SIGNING_KEY_PARAMETER`: an SSM SecureString holding base64.
    SsmParameter(String),
    /// `PAYSESSION_TOKEN_SIGNING_KEY`: the base64 value itself (development).
    Inline(Secret<Vec<u8>>),
}

impl KeySource {
    /// The deployment's key as the environment read through `get` names it (the parameter
    /// wins over an inline value); `None` when neither is set.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<KeySource>, String> {
        let set = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        Ok(match (set("PAYSESSION_TOKEN_SIGNING_KEY_PARAMETER"), set("PAYSESSION_TOKEN_SIGNING_KEY")) {
            (Some(p), _) => Some(KeySource::SsmParameter(p)),
            (None, Some(v)) => Some(KeySource::Inline(decode_key(&v, "PAYSESSION_TOKEN_SIGNING_KEY")?)),
            (None, None) => None,
        })
    }

    /// Where the key came from, for an operator to read (never the key itself).
    pub fn describe(&self) -> String {
        match self {
            KeySource::SsmParameter(p) => format!("the deployment's, from SSM parameter {p} (PAYSESSION_TOKEN_SIGNING_KEY_PARAMETER)"),
            KeySource::Inline(_) => "the deployment's, from PAYSESSION_TOKEN_SIGNING_KEY".into(),
        }
    }
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
    /// `PAYSESSION_ALLOW_PRIVATE_WEBHOOKS`: `true` lets endpoints and deliveries reach
    /// private and loopback addresses over plain http, as the local server does. Off unless
    /// set (template.yaml never sets it): for running the functions offline on one machine
    /// (`benches/perf/lifecycle.py`), never for a deployment merchants can reach.
    pub allow_private_webhooks: bool,
}

impl FunctionEnv {
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get`, so tests can supply it.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let need = |k: &str| get(k).filter(|v| !v.trim().is_empty()).ok_or_else(|| format!("environment variable {k} is not set"));
        let table = need("PAYSESSION_TABLE")?;
        let signing_key = KeySource::from_lookup(&get)?
            .ok_or("set PAYSESSION_TOKEN_SIGNING_KEY_PARAMETER (an SSM SecureString name) or PAYSESSION_TOKEN_SIGNING_KEY")?;
        let public_url = need("PAYSESSION_PUBLIC_URL")?;
        if !(public_url.starts_with("https://") || public_url.starts_with("http://")) {
            return Err("PAYSESSION_PUBLIC_URL must be an absolute http(s) URL".into());
        }
        let flag = |k: &str| match get(k).as_deref() {
            Some("true") => Ok(true),
            Some("false") | None => Ok(false),
            Some(other) => Err(format!("{k} must be true or false, not {other:?}")),
        };
        let sandbox = flag("PAYSESSION_SANDBOX")?;
        let allow_private_webhooks = flag("PAYSESSION_ALLOW_PRIVATE_WEBHOOKS")?;
        let optional = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let webhook_queue_url = optional("PAYSESSION_WEBHOOK_QUEUE_URL");
        let webhook_dlq_url = optional("PAYSESSION_WEBHOOK_DLQ_URL");
        Ok(FunctionEnv { table, signing_key, public_url, sandbox, webhook_queue_url, webhook_dlq_url, allow_private_webhooks })
    }
}

/// A deployed function's dependencies, built once per cold start. Capabilities only some
/// functions use (the queue, payments) are built on first use, so the others link none of
/// their code.
pub struct Function {
    pub core: Core<DynamoStore>,
    pub aws: paysession_aws::SdkConfig,
    pub env: FunctionEnv,
    scheduler: OnceLock<Result<paysession_aws::scheduler::EventBridgeScheduler, String>>,
    bus: OnceLock<Option<paysession_aws::bus::EventBus>>,
}

impl Function {
    /// Reads the typed environment, the signing key (SSM) and, in sandbox mode, the test clock.
    pub async fn from_env() -> Result<Function, String> {
        let env = FunctionEnv::from_env()?;
        let aws = paysession_aws::sdk_config().await?;
        let key = load_key(&env.signing_key, &aws).await?;
        let store = DynamoStore::from_config(&aws, env.table.clone()).await?;
        let mut core = build_core(Arc::new(store), key, env.public_url.clone(), env.sandbox).await?;
        if env.allow_private_webhooks {
            tracing::warn!("PAYSESSION_ALLOW_PRIVATE_WEBHOOKS=true: webhooks may reach private addresses");
            core.config.allow_private_webhooks = true;
        }
        Ok(Function { core, aws, env, scheduler: OnceLock::new(), bus: OnceLock::new() })
    }

    /// The webhook queue (SQS); using it without `PAYSESSION_WEBHOOK_QUEUE_URL` is reported
    /// as the deployment error it is rather than silently dropping deliveries.
    pub fn queue(&self) -> &'static dyn DeliveryQueue {
        static_queue(self)
    }
}

impl Function {
    /// The recurring-charge schedules (EventBridge Scheduler), configured by
    /// [`ScheduleTarget::ENV`](paysession_aws::scheduler::ScheduleTarget::ENV).
    pub fn scheduler(&self) -> Result<&dyn paysession_app::ports::ChargeScheduler, String> {
        use paysession_aws::scheduler::{EventBridgeScheduler, ScheduleTarget};
        match self.scheduler.get_or_init(|| {
            ScheduleTarget::from_lookup(|k| std::env::var(k).ok())
                .map(|target| EventBridgeScheduler::new(aws_sdk_scheduler::Client::new(&self.aws), target))
        }) {
            Ok(s) => Ok(s),
            Err(e) => Err(e.clone()),
        }
    }

    /// The deployment's EventBridge bus, when `PAYSESSION_EVENT_BUS` names one.
    pub fn bus(&self) -> Option<&paysession_aws::bus::EventBus> {
        self.bus.get_or_init(|| paysession_aws::bus::EventBus::from_env(&self.aws, &self.env.table)).as_ref()
    }
}

pub(crate) async fn load_key(source: &KeySource, aws: &paysession_aws::SdkConfig) -> Result<Secret<Vec<u8>>, String> {
    Ok(match source {
        KeySource::Inline(k) => Secret::new(k.expose().clone()),
        KeySource::SsmParameter(name) => {
            let value = ssm_parameter(&aws_sdk_ssm::Client::new(aws), name).await?;
            decode_key(&value, &format!("SSM parameter {name}"))?
        }
    })
}

/// An SSM parameter's value, decrypted (a SecureString).
pub(crate) async fn ssm_parameter(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<String, String> {
    let out = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| format!("cannot read SSM parameter {name}: {}", aws_sdk_ssm::error::DisplayErrorContext(&e)))?;
    out.parameter.and_then(|p| p.value).ok_or_else(|| format!("SSM parameter {name} has no value"))
}

/// The webhook queue for the life of the process (a Lambda process has one [`Function`]),
/// so handlers may hold it beyond a borrow of the function.
pub fn static_queue(f: &Function) -> &'static dyn DeliveryQueue {
    static QUEUE: OnceLock<Arc<dyn DeliveryQueue>> = OnceLock::new();
    QUEUE
        .get_or_init(|| match &f.env.webhook_queue_url {
            Some(url) => Arc::new(paysession_aws::sqs::SqsQueue::new(aws_sdk_sqs::Client::new(&f.aws), url.clone())),
            None => Arc::new(UnconfiguredQueue),
        })
        .as_ref()
}

/// The queue of a function deployed without `PAYSESSION_WEBHOOK_QUEUE_URL`.
struct UnconfiguredQueue;

#[async_trait::async_trait]
impl DeliveryQueue for UnconfiguredQueue {
    async fn enqueue(&self, _: &paysession_app::ports::QueuedDelivery, _: std::time::Duration) -> Result<(), paysession_app::StoreError> {
        Err(paysession_app::StoreError::Backend("PAYSESSION_WEBHOOK_QUEUE_URL is not set for this function".into()))
    }
}

fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

async fn init() -> Result<Function, lambda_http::Error> {
    paysession_http::lambda::init_logging();
    Ok(Function::from_env().await.inspect_err(|e| tracing::error!(error = %e, "configuration error at init"))?)
}

/// The whole `main` of an HTTP function: `handler` serves the requests of the routes that
/// the route table assigns to `function` (one, or a group such as the hosted page's).
///
/// The runtime is built here, not in each binary, and it is current-thread: a Lambda
/// sandbox serves one request at a time, so cross-thread hand-offs would only cost.
pub fn http<H>(function: &'static str, handler: H) -> Result<(), lambda_http::Error>
where
    H: for<'a> Fn(&'a Function, &'static RouteInfo, Params, Request) -> RawFuture<'a> + Sync,
{
    current_thread()?.block_on(async {
        let f = init().await?;
        let (f, handler) = (&f, &handler);
        lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
            Ok::<Response<Body>, lambda_http::Error>(route_within(function, f, req, handler).await)
        }))
        .await
    })
}

/// Among the routes of `function`, the one matching the request.
async fn route_within<H>(function: &'static str, f: &Function, req: Request, handler: &H) -> Response<Body>
where
    H: for<'a> Fn(&'a Function, &'static RouteInfo, Params, Request) -> RawFuture<'a>,
{
    let found = table()
        .iter()
        .filter(|i| i.function == Some(function))
        .find_map(|i| (i.method == req.method()).then(|| match_path(i.path, req.uri().path()).map(|p| (i, p))).flatten());
    match found {
        Some((info, params)) => handler(f, info, params, req).await,
        None => unrouted(ApiError::NotFound(format!("no route for {}", req.uri().path())), &req),
    }
}

/// The functions fed by AWS events rather than HTTP (their `functions/` packages).
pub const EVENT_FUNCTIONS: [&str; 4] = ["stream-consumer", "webhook-dispatcher", "recurring-charge", "processor-sync"];

/// What an event function's handler returns: `Err` fails the invocation (Scheduler and
/// asynchronous invocations retry it; stream and queue handlers report partial failures in
/// their `Ok` response instead).
pub type EventFuture<'a> = std::pin::Pin<Box<dyn Future<Output = Result<serde_json::Value, String>> + Send + 'a>>;

/// The whole `main` of a function fed by AWS events (the table stream, the webhook queue,
/// Scheduler). `required` names environment variables this function cannot run without:
/// checked at init, so a misdeployed function fails at once with the variable's name.
pub fn events<H>(required: &[&str], handler: H) -> Result<(), lambda_http::Error>
where
    H: for<'a> Fn(&'a Function, &'a serde_json::Value) -> EventFuture<'a> + Sync,
{
    use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
    current_thread()?.block_on(async {
        let f = init().await?;
        if let Some(missing) = required.iter().find(|k| std::env::var(k).map(|v| v.trim().is_empty()).unwrap_or(true)) {
            let e = format!("environment variable {missing} is not set");
            tracing::error!(error = %e, "configuration error at init");
            return Err(e.into());
        }
        let (f, handler) = (&f, &handler);
        lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| async move {
            let span = invocation_span(&ev.context, paysession_http::lambda::cold_start());
            let invoked = async {
                handler(f, &ev.payload).await.map_err(|e| {
                    tracing::error!(error = %e, "invocation failed");
                    lambda_runtime::Error::from(e)
                })
            };
            tracing::Instrument::instrument(invoked, span).await
        }))
        .await
    })
}

/// The span of an event function's invocation, as an HTTP request's (`pipeline.rs`):
/// Lambda's request id, and the trace X-Ray started for it (or a new one).
fn invocation_span(context: &lambda_http::lambda_runtime::Context, cold_start: bool) -> tracing::Span {
    let trace = paysession_http::trace::TraceContext::continue_from(None, context.xray_trace_id.as_deref());
    tracing::error_span!(
        "invocation",
        request_id = %context.request_id,
        trace_id = %trace.trace_id,
        span_id = %trace.span_id,
        cold_start,
    )
}

/// `PAYSESSION_WEBHOOK_QUEUE_URL` and `PAYSESSION_WEBHOOK_DLQ_URL`, which the dispatcher
/// cannot run without.
pub fn dispatcher_queues(f: &Function) -> Result<&'static paysession_aws::sqs::DispatcherQueues, String> {
    static QUEUES: OnceLock<paysession_aws::sqs::DispatcherQueues> = OnceLock::new();
    let (Some(queue_url), Some(dead_letter_url)) = (f.env.webhook_queue_url.clone(), f.env.webhook_dlq_url.clone()) else {
        return Err("environment variables PAYSESSION_WEBHOOK_QUEUE_URL and PAYSESSION_WEBHOOK_DLQ_URL must be set".into());
    };
    Ok(QUEUES.get_or_init(|| paysession_aws::sqs::DispatcherQueues {
        client: aws_sdk_sqs::Client::new(&f.aws),
        queue_url,
        dead_letter_url,
    }))
}
