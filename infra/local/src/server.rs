//! The hyper server: converts each request into the `lambda_http` request the functions
//! receive in AWS and runs the same handler.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use paysession_app::ports::WebhookSender;
use paysession_http::lambda_http::{Body, Request};
use paysession_http::mount::{Mounted, handle};
use paysession_http::pipeline::unrouted;
use paysession_http::problem::ApiError;
use paysession_http::request::{ClientAddr, MAX_BODY};
use paysession_http::routes::{Resolved, resolve};
use paysession_runtime::StoreChoice;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::connections::{self, ConnectionLimits, OpenConnections};
use crate::demo::{DemoCredentials, ensure_demo_merchant};
use crate::local::Local;

#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    pub data_dir: PathBuf,
    /// `Some(table)` runs on DynamoDB instead of the embedded store in `data_dir`.
    pub table: Option<String>,
    /// The DynamoDB (and its stream's) endpoint; `None`: the standard AWS environment.
    pub dynamodb_endpoint: Option<String>,
    /// Base of hosted-page URLs; defaults to `http://{host}:{port}`.
    pub public_url: Option<String>,
    pub allow_private_webhooks: bool,
    pub demo_client_id: Option<String>,
    pub demo_client_secret: Option<String>,
    /// Where merchants configured with Stripe reach its API; `None`: `PAYSESSION_STRIPE_API_BASE`
    /// or Stripe's own.
    pub stripe_api_base: Option<String>,
}

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    pub base_url: String,
    pub demo: DemoCredentials,
    pub local: Local,
    /// Where the token signing key came from (printed at start).
    pub key_source: String,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets requests in progress finish.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// What `--store dynamodb` says in a build without the `dynamodb` feature.
pub const NO_DYNAMODB: &str = "this paysession-local was built without DynamoDB support (the AWS SDK is left out so the \
     first build is quick); run it as `cargo run -p paysession-local --features dynamodb -- --store dynamodb --table NAME`";

pub async fn start(opts: LocalOptions) -> Result<Running, String> {
    let listener = TcpListener::bind((opts.host.as_str(), opts.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", opts.host, opts.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base_url = format!("http://{}:{}", opts.host, addr.port());
    let public_url = opts.public_url.clone().unwrap_or_else(|| base_url.clone());

    let choice = match &opts.table {
        #[cfg(feature = "dynamodb")]
        Some(t) => StoreChoice::Dynamo(t.clone()),
        #[cfg(not(feature = "dynamodb"))]
        Some(_) => return Err(NO_DYNAMODB.into()),
        None => StoreChoice::Embedded(opts.data_dir.clone()),
    };
    let store = paysession_runtime::open_store_at(&choice, opts.dynamodb_endpoint.as_deref()).await?;
    let key = paysession_runtime::signing_key(&store, true).await?;
    let mut core = store.core(key.key, public_url, true).await?;
    core.config.allow_private_webhooks = opts.allow_private_webhooks;
    let policy = paysession_domain::webhook::UrlPolicy { allow_private: opts.allow_private_webhooks };
    let sender: Arc<dyn WebhookSender> = Arc::new(paysession_runtime::outbound::GuardedSender::new(policy));
    #[cfg_attr(not(feature = "dynamodb"), allow(unused_mut))]
    let mut queue: Arc<dyn paysession_app::ports::DeliveryQueue> = Arc::new(paysession_app::ports::PolledQueue);
    #[cfg(feature = "dynamodb")]
    let dynamo_queue = store.dynamo().map(|d| {
        let (memory, rx) = crate::dynamo_pipeline::memory_queue();
        queue = Arc::new(memory);
        (d, rx)
    });
    let deps = Local {
        app: Mounted {
            core,
            payments: paysession_app::Payments::sandbox_on(store.sandbox_ledger())
                .with_directory(paysession_runtime::processor_directory(store.settings_arc(), opts.stripe_api_base.clone())),
            queue,
        },
        sender,
    };
    let demo = ensure_demo_merchant(&deps.app.core, opts.demo_client_id.clone(), opts.demo_client_secret.clone()).await?;

    let (shutdown, mut stop) = watch::channel(false);
    if let Some(source) = store.expiry_sweep() {
        tokio::spawn(sweeper(deps.clone(), source, stop.clone()));
    }
    tokio::spawn(scheduler(deps.clone(), store.due_mandates(), stop.clone()));
    tokio::spawn(reconciler(deps.clone(), store.due_money(), stop.clone()));
    if let Some(embedded) = store.embedded() {
        tokio::spawn(crate::pipeline::run(deps.clone(), embedded, stop.clone()));
    }
    #[cfg(feature = "dynamodb")]
    if let Some((dynamo, rx)) = dynamo_queue {
        tokio::spawn(crate::dynamo_pipeline::run_dispatcher(deps.clone(), rx, stop.clone()));
        tokio::spawn(crate::dynamo_pipeline::run_stream(
            deps.clone(),
            dynamo.client().clone(),
            dynamo.table().to_string(),
            opts.dynamodb_endpoint.clone(),
            stop.clone(),
        ));
    }
    let site = crate::pages::Site {
        base_url: base_url.clone(),
        demo_merchant_id: demo.merchant_id.clone(),
        demo_client_id: demo.client_id.clone(),
        demo_client_secret: addr.ip().is_loopback().then(|| demo.client_secret.clone()),
    };
    let shared = Arc::new((deps.clone(), site));
    let limits = ConnectionLimits::for_this_process();
    let open = OpenConnections::default();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Out of descriptors, most often: retrying at once would spin.
                            tracing::warn!(error = %e, "accept failed; backing off");
                            tokio::time::sleep(connections::ACCEPT_BACKOFF).await;
                            continue;
                        }
                    };
                    // Finished connections leave the set as they go, so it never grows.
                    while connections.try_join_next().is_some() {}
                    let Some(header_timeout) = limits.header_timeout(open.open()) else {
                        drop(stream);
                        continue;
                    };
                    let slot = open.take();
                    let deps = shared.clone();
                    let mut stop = stop.clone();
                    connections.spawn(async move {
                        let _slot = slot;
                        let service = service_fn(move |mut req: hyper::Request<Incoming>| {
                            let deps = deps.clone();
                            req.extensions_mut().insert(ClientAddr(peer.ip()));
                            async move { Ok::<_, Infallible>(serve(&deps.0, &deps.1, req).await) }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(header_timeout)
                            .serve_connection(TokioIo::new(stream), service);
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            _ = stop.changed() => {
                                conn.as_mut().graceful_shutdown();
                                let _ = conn.await;
                            }
                        }
                    });
                }
            }
        }
        while connections.join_next().await.is_some() {}
    });
    Ok(Running { addr, base_url, demo, local: deps, key_source: key.source, shutdown, task })
}

/// Expires due sessions once a second, following the (test) clock in `deps`.
async fn sweeper(deps: Local, source: std::sync::Arc<dyn paysession_app::expiry::ExpirySweep>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {
                if let Err(e) = paysession_app::expiry::sweep(&deps.app.core, source.as_ref()).await {
                    tracing::warn!(error = %e, "expiry sweep failed; retrying next tick");
                }
            }
        }
    }
}

/// Charges due occurrences of scheduled mandates once a second, following the (test) clock:
/// the in-process twin of the one-time EventBridge schedules.
async fn scheduler(deps: Local, source: std::sync::Arc<dyn paysession_app::recurring::DueMandates>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {
                if let Err(e) = paysession_app::recurring::sweep(&deps.app.core, &deps.app.payments, source.as_ref()).await {
                    tracing::warn!(error = %e, "recurring charges failed; retrying next tick");
                }
            }
        }
    }
}

/// Asks the processor again about refunds whose sync is due and voids expired
/// authorisations, once a second, following the (test) clock: the in-process twin of the
/// `processor-sync` schedules.
async fn reconciler(deps: Local, source: std::sync::Arc<dyn paysession_app::reconcile::DueMoney>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {
                if let Err(e) = paysession_app::reconcile::sweep(&deps.app.core, &deps.app.payments, source.as_ref()).await {
                    tracing::warn!(error = %e, "reconciliation failed; retrying next tick");
                }
            }
        }
    }
}

async fn serve(deps: &Local, site: &crate::pages::Site, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    if let Some(page) = crate::pages::serve(deps, site, req.method(), req.uri().path(), req.uri().query()).await {
        return page;
    }
    let (parts, body) = req.into_parts();
    // One byte over the limit is enough to know the body is too large; a body trickled in
    // slower than the timeout is not waited for.
    let collected = tokio::time::timeout(connections::BODY_TIMEOUT, Limited::new(body, MAX_BODY + 1).collect()).await;
    let bytes = match collected {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(_)) => {
            let empty = Request::from_parts(parts, Body::Empty);
            return to_hyper(unrouted(ApiError::PayloadTooLarge, &empty));
        }
        Err(_) => {
            let empty = Request::from_parts(parts, Body::Empty);
            return to_hyper(unrouted(ApiError::MalformedRequest("the request body did not arrive in time".into()), &empty));
        }
    };
    let body = if bytes.is_empty() { Body::Empty } else { Body::Binary(bytes.to_vec()) };
    let req = Request::from_parts(parts, body);
    let resp = match resolve(req.method(), req.uri().path(), deps.app.core.config.sandbox) {
        Resolved::Found(info, params) => handle(&deps.app, info, params, req).await,
        Resolved::MethodNotAllowed(methods) => unrouted(ApiError::MethodNotAllowed(methods), &req),
        Resolved::NotFound => unrouted(ApiError::NotFound(format!("no route for {}", req.uri().path())), &req),
    };
    to_hyper(resp)
}

fn to_hyper(resp: http::Response<Body>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = resp.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}
