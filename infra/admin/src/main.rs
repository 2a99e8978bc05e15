//! `paysession-admin`: operator commands on a data directory's merchants and API clients.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use paysession_app::merchants::{NewMerchant, ProvisionError, provision, rotate_secret};
use paysession_app::processor_config::{ProcessorSettings, SecretRef};
use paysession_runtime::StoreChoice;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(name = "paysession-admin", version, about = "Manage paysession merchants and API clients")]
struct Args {
    /// Data directory of the embedded store (the one paysession-local uses).
    #[arg(long, global = true, default_value = "./.paysession")]
    data_dir: PathBuf,
    /// Work on this DynamoDB table instead of the data directory (standard AWS
    /// environment; AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local).
    #[arg(long, global = true)]
    table: Option<String>,
    /// With --table and no PAYSESSION_TOKEN_SIGNING_KEY[_PARAMETER]: hash client secrets
    /// under the key paysession-local stored in the table, for merchants of a local server
    /// that runs on it without the deployment's key.
    #[arg(long, global = true)]
    local_server_key: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the DynamoDB table (with --table) exactly as template.yaml defines it, or add to an
    /// existing one the indexes, stream and TTL it lacks.
    Init,
    /// Merchants (tenants).
    Merchant {
        #[command(subcommand)]
        command: MerchantCommand,
    },
    /// API clients of merchants.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
}

#[derive(Subcommand, Debug)]
enum MerchantCommand {
    /// Create a merchant with one API client; prints {merchant_id, client_id, client_secret}.
    Create {
        #[arg(long)]
        name: String,
        /// Name shown on the hosted payment page (default: --name).
        #[arg(long)]
        display_name: Option<String>,
        /// Accent colour of the hosted page, like #0f766e (default: a neutral slate, #1f2937).
        #[arg(long)]
        brand_color: Option<String>,
        /// A URL sessions may use as success_url/cancel_url (repeatable).
        #[arg(long = "redirect-url")]
        redirect_urls: Vec<String>,
        /// Comma-separated methods to enable (default: all): card,ewallet,virtual_account,qr,bank_transfer.
        #[arg(long, value_delimiter = ',')]
        payment_methods: Vec<String>,
    },
    /// List merchants as JSON lines.
    List,
    /// Change a merchant's settings; prints them.
    Update {
        merchant_id: String,
        /// off | optional | required: whether API requests must be signed (RFC 9421 or
        /// draft-cavage) with one of the merchant's registered keys. `required` needs an
        /// active key unless --force (an operator's way back in: `off` always works).
        #[arg(long)]
        signed_requests: Option<paysession_domain::signed_requests::Mode>,
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        processor: ProcessorArgs,
    },
}

/// A merchant's payment processor. Secrets are named (an SSM SecureString, or a file for
/// the local server), never given: they never enter the table or this command's output.
#[derive(clap::Args, Debug)]
struct ProcessorArgs {
    /// sandbox | stripe: where the merchant's new payments go.
    #[arg(long)]
    processor: Option<String>,
    /// SSM SecureString holding the Stripe secret key (sk_…); under the stack's
    /// ProcessorSecretsPath so the functions may read it.
    #[arg(long, conflicts_with = "stripe_secret_key_file")]
    stripe_secret_key_parameter: Option<String>,
    /// A file holding the Stripe secret key (the local server).
    #[arg(long)]
    stripe_secret_key_file: Option<String>,
    /// SSM SecureString holding the Stripe webhook signing secret (whsec_…).
    #[arg(long, conflicts_with = "stripe_webhook_secret_file")]
    stripe_webhook_secret_parameter: Option<String>,
    /// A file holding the Stripe webhook signing secret (the local server).
    #[arg(long)]
    stripe_webhook_secret_file: Option<String>,
}

impl ProcessorArgs {
    fn given(&self) -> bool {
        self.processor.is_some()
            || self.stripe_secret_key_parameter.is_some()
            || self.stripe_secret_key_file.is_some()
            || self.stripe_webhook_secret_parameter.is_some()
            || self.stripe_webhook_secret_file.is_some()
    }

    /// The settings to store, given the current ones: the sandbox keeps an earlier
    /// processor's settings (its payments still go to it) with new payments off; `stripe`
    /// without secrets takes new payments again with the stored ones.
    fn settings(&self, current: Option<ProcessorSettings>) -> Result<Option<ProcessorSettings>, String> {
        let secret = |parameter: &Option<String>, file: &Option<String>| match (parameter, file) {
            (Some(p), _) => Some(SecretRef::Parameter(p.clone())),
            (_, Some(f)) => Some(SecretRef::File(f.clone())),
            _ => None,
        };
        let key = secret(&self.stripe_secret_key_parameter, &self.stripe_secret_key_file);
        let webhook = secret(&self.stripe_webhook_secret_parameter, &self.stripe_webhook_secret_file);
        match self.processor.as_deref() {
            Some("sandbox") if key.is_some() || webhook.is_some() => Err("--processor sandbox takes no Stripe secrets".into()),
            Some("sandbox") => Ok(current.map(|c| ProcessorSettings { takes_new_payments: false, ..c })),
            Some("stripe") => match (key, current) {
                (Some(secret_key), _) => Ok(Some(ProcessorSettings {
                    processor: "stripe".into(),
                    secret_key,
                    webhook_secret: webhook,
                    takes_new_payments: true,
                })),
                (None, Some(c)) if c.processor == "stripe" => {
                    Ok(Some(ProcessorSettings { webhook_secret: webhook.or(c.webhook_secret.clone()), takes_new_payments: true, ..c }))
                }
                (None, _) => Err("--processor stripe needs --stripe-secret-key-parameter or --stripe-secret-key-file".into()),
            },
            Some(other) => Err(format!("unknown processor {other:?}: sandbox or stripe")),
            None => Err("Stripe secrets are given with --processor stripe".into()),
        }
    }
}

#[derive(Subcommand, Debug)]
enum ClientCommand {
    /// Replace a client's secret; the old one stops working at once. Prints the new one.
    RotateSecret { client_id: String },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paysession-admin: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let choice = match &args.table {
        Some(t) => StoreChoice::Dynamo(t.clone()),
        None => StoreChoice::Embedded(args.data_dir.clone()),
    };
    if let Command::Init = args.command {
        let table = args.table.as_deref().ok_or("init creates a DynamoDB table: give --table NAME")?;
        let ensured = paysession_aws::table::ensure_table(&paysession_aws::dynamodb_client().await?, table).await?;
        for warning in &ensured.warnings {
            eprintln!("paysession-admin: warning: {warning}");
        }
        println!("{}", json!({"table": table, "created": ensured.created, "added": ensured.added}));
        return Ok(());
    }
    let opened = paysession_runtime::open_store(&choice).await?;
    let key = paysession_runtime::signing_key(&opened, args.local_server_key).await?;
    let core = opened.core(key.key, String::new(), false).await?;
    let keys = core.keys.as_ref();
    let store = opened.merchants();
    let store = store.as_ref();
    match args.command {
        Command::Init => unreachable!("handled above"),
        Command::Merchant { command: MerchantCommand::Create { name, display_name, brand_color, redirect_urls, payment_methods } } => {
            let input = NewMerchant { name, display_name, brand_color, redirect_urls, payment_methods };
            let p = provision(store, keys, &input, None, chrono::Utc::now()).await.map_err(|e| match e {
                ProvisionError::Invalid(msg) => format!("invalid merchant: {msg}"),
                ProvisionError::Store(e) => e.to_string(),
            })?;
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "merchant_id": p.merchant.id,
                    "client_id": p.client_id,
                    "client_secret": p.client_secret.expose(),
                }))
                .expect("json")
            );
        }
        Command::Merchant { command: MerchantCommand::Update { merchant_id, signed_requests, force, processor } } => {
            store
                .get_merchant(&merchant_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no merchant with id {merchant_id}"))?;
            if signed_requests.is_none() && !processor.given() {
                return Err("nothing to update: give --signed-requests and/or --processor".into());
            }
            let current = paysession_app::processor_config::get(opened.settings(), &merchant_id).await.map_err(|e| e.to_string())?;
            let processor_settings = if processor.given() { Some(processor.settings(current)?) } else { None };
            let mut out = json!({"merchant_id": merchant_id});
            if let Some(mode) = signed_requests {
                let profile = paysession_app::signing::set_mode(&core, &merchant_id, mode, force).await.map_err(|e| e.to_string())?;
                out = profile.settings_api();
                out["merchant_id"] = json!(merchant_id);
            }
            if let Some(settings) = processor_settings {
                paysession_app::processor_config::put(opened.settings(), &merchant_id, settings.as_ref())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let current = paysession_app::processor_config::get(opened.settings(), &merchant_id).await.map_err(|e| e.to_string())?;
            out["processor"] = paysession_app::processor_config::describe(current.as_ref());
            println!("{}", serde_json::to_string_pretty(&out).expect("json"));
        }
        Command::Merchant { command: MerchantCommand::List } => {
            for m in store.list_merchants().await.map_err(|e| e.to_string())? {
                let clients: Vec<String> =
                    store.list_clients(&m.id).await.map_err(|e| e.to_string())?.into_iter().map(|c| c.client_id).collect();
                println!(
                    "{}",
                    json!({
                        "merchant_id": m.id, "name": m.name, "display_name": m.display_name,
                        "brand_color": m.brand_color, "redirect_urls": m.redirect_urls,
                        "payment_methods": m.payment_methods, "client_ids": clients, "created_at": m.created_at,
                    })
                );
            }
        }
        Command::Client { command: ClientCommand::RotateSecret { client_id } } => {
            let secret = rotate_secret(store, keys, &client_id, None)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no client with id {client_id}"))?;
            println!("{}", serde_json::to_string_pretty(&json!({"client_id": client_id, "client_secret": secret.expose()})).expect("json"));
        }
    }
    Ok(())
}
