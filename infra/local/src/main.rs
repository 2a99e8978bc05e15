//! `paysession-local`: the whole API in one process on an embedded store.

use std::path::PathBuf;

use clap::Parser;
use paysession_local::{LocalOptions, start};

// The system allocator's arena locks and frees were ~15 % of the server's CPU under load
// (perf of a local GET); docs/performance-history.md has the paired figures. Not in the Lambda
// functions: there it raised init CPU and peak RSS more than it saved per call. The
// `override` feature (Cargo.toml) gives SQLite's own `malloc`s to mimalloc as well: the
// writer thread copies each page a write touches into a savepoint journal held in 1 KiB
// chunks, and glibc's malloc/free of those was ~10 % of that thread under creates.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs paysession locally (sandbox mode) on an embedded store that survives restarts.
#[derive(Parser, Debug)]
#[command(name = "paysession-local", version)]
struct Args {
    /// Port to listen on.
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Interface to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Where the embedded database lives.
    #[arg(long, default_value = "./.paysession")]
    data_dir: PathBuf,
    /// Storage: `embedded` (SQLite in --data-dir) or `dynamodb` (--table, standard AWS
    /// environment; AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local; needs a build with
    /// `--features dynamodb`).
    #[arg(long, value_enum, default_value = "embedded")]
    store: StoreKind,
    /// DynamoDB table name (with --store dynamodb).
    #[arg(long, required_if_eq("store", "dynamodb"))]
    table: Option<String>,
    /// DynamoDB endpoint, e.g. http://127.0.0.1:8000 for DynamoDB Local (with --store
    /// dynamodb; default: the standard AWS environment).
    #[arg(long)]
    dynamodb_endpoint: Option<String>,
    /// Base URL of hosted-page links (default http://HOST:PORT).
    #[arg(long)]
    public_url: Option<String>,
    /// Allow webhook endpoints on private addresses such as http://127.0.0.1.
    #[arg(long)]
    allow_private_webhooks: bool,
    /// Where merchants configured with Stripe (paysession-admin merchant update --processor
    /// stripe) reach its API: a stand-in in tests; default Stripe's own.
    #[arg(long, env = "PAYSESSION_STRIPE_API_BASE")]
    stripe_api_base: Option<String>,
    /// Log lines as `text` (coloured only on a terminal) or `json` (one object per line,
    /// as the Lambda functions log).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

/// Colour codes only where a person reads them: never in a file or a pipe.
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        // The Lambda functions' shape (`paysession_http::lambda`), so one parser reads both.
        LogFormat::Json => registry.with(paysession_http::lambda::json_layer("paysession-local")).init(),
        LogFormat::Text => {
            registry.with(tracing_subscriber::fmt::layer().with_target(false).with_ansi(std::io::stdout().is_terminal())).init()
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum StoreKind {
    Embedded,
    Dynamodb,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    init_logs(args.log_format);
    let opts = LocalOptions {
        host: args.host,
        port: args.port,
        data_dir: args.data_dir.clone(),
        table: if args.store == StoreKind::Dynamodb { args.table.clone() } else { None },
        dynamodb_endpoint: args.dynamodb_endpoint.clone(),
        public_url: args.public_url,
        allow_private_webhooks: args.allow_private_webhooks,
        demo_client_id: std::env::var("PAYSESSION_DEMO_CLIENT_ID").ok().filter(|v| !v.is_empty()),
        demo_client_secret: std::env::var("PAYSESSION_DEMO_CLIENT_SECRET").ok().filter(|v| !v.is_empty()),
        stripe_api_base: args.stripe_api_base,
    };
    let running = match start(opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("paysession-local: {e}");
            std::process::exit(1);
        }
    };
    let d = &running.demo;
    println!("paysession-local listening on {} (sandbox mode)", running.base_url);
    println!("start page:     {}/", running.base_url);
    match (&args.store, &args.table) {
        (StoreKind::Dynamodb, Some(t)) => println!("store:          DynamoDB table {t}"),
        _ => println!("data directory: {}", args.data_dir.display()),
    }
    println!("signing key:    {}", running.key_source);
    println!("demo merchant:  {}", d.merchant_id);
    println!("client_id:      {}", d.client_id);
    println!("client_secret:  {}", d.client_secret);
    println!();
    println!("get a token:");
    println!("  curl -s -u '{}:{}' -d grant_type=client_credentials {}/oauth/token", d.client_id, d.client_secret, running.base_url);
    println!("API description: {}/openapi.json", running.base_url);
    wait_for_signal().await;
    println!("shutting down");
    running.stop().await;
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
