//! The one AWS SDK configuration every client here is built from.
//!
//! `aws_config::load_defaults` costs a Lambda cold start more than our whole handler setup:
//! its credentials chain builds an STS client for web identity, it reads the profile files,
//! and every HTTP client it validates loads the operating system's trust store (on Debian
//! ~150 files, each PEM-decoded; 64 % of the create function's init CPU under perf). A
//! Lambda function has everything it needs in its environment, so:
//! - region (`AWS_REGION`, else `AWS_DEFAULT_REGION`) and credentials (`AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, which Lambda sets) come from the
//!   environment, as the default chain would take them first; so do the endpoint overrides
//!   (`AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`, unless
//!   `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`) and `AWS_USE_FIPS_ENDPOINT` /
//!   `AWS_USE_DUALSTACK_ENDPOINT`. Retries and timeouts are the SDK's defaults for the
//!   behaviour version. The functions link no `aws-config` (with STS, ~240 KB of the bootstrap);
//! - without those variables (an operator's shell with a profile or SSO), the admin CLI,
//!   built with the `credential-chain` feature, falls back to the SDK's default chain; a
//!   build without it says which variables to set;
//! - TLS trusts the roots AWS endpoints chain to (Amazon Trust Services), compiled in, unless
//!   `PAYSESSION_AWS_TRUST=system` asks for the operating system's store (an HTTPS endpoint
//!   override behind another CA, a TLS-inspecting proxy).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_types::SdkConfig;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

/// Amazon Root CA 1–4 and Starfield Services Root CA G2, as PEM.
const AMAZON_ROOTS: &str = include_str!("../certs/amazon-trust-services.pem");

/// Which certificates the SDK's TLS connections trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The compiled-in Amazon Trust Services roots (the default).
    AmazonRoots,
    /// The operating system's trust store.
    System,
}

impl Trust {
    pub const ENV: &'static str = "PAYSESSION_AWS_TRUST";

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Trust, String> {
        match get(Self::ENV).as_deref().map(str::trim) {
            None | Some("") | Some("amazon") => Ok(Trust::AmazonRoots),
            Some("system") => Ok(Trust::System),
            Some(other) => Err(format!("{} must be amazon or system, not {other:?}", Self::ENV)),
        }
    }
}

/// The SDK configuration for this process's environment. Fails on a malformed
/// [`Trust::ENV`], or, in a build without the default chain, when the environment lacks a
/// region or credentials.
pub async fn sdk_config() -> Result<SdkConfig, String> {
    sdk_config_with(&[]).await
}

/// [`sdk_config`] with some of the environment's variables given instead (a test points one
/// service's `AWS_ENDPOINT_URL_<SERVICE>` at a stand-in without changing the process's
/// environment).
pub async fn sdk_config_with(overrides: &[(&str, &str)]) -> Result<SdkConfig, String> {
    let given = |k: &str| overrides.iter().find(|(name, _)| *name == k).map(|(_, v)| v.to_string());
    let get = |k: &str| given(k).or_else(|| std::env::var(k).ok()).filter(|v| !v.trim().is_empty());
    let vars = std::env::vars()
        .filter(|(k, _)| given(k).is_none())
        .chain(overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .collect::<Vec<_>>();
    let trust = Trust::from_lookup(get)?;
    match from_lookup(get, vars.into_iter(), trust) {
        Some(config) => Ok(config),
        None => default_chain(trust).await,
    }
}

/// The configuration an environment (`get` for one variable, `vars` for all of them) gives
/// on its own, or `None` when it lacks a region or credentials.
fn from_lookup(get: impl Fn(&str) -> Option<String>, vars: impl Iterator<Item = (String, String)>, trust: Trust) -> Option<SdkConfig> {
    let region = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION"))?;
    let credentials =
        Credentials::new(get("AWS_ACCESS_KEY_ID")?, get("AWS_SECRET_ACCESS_KEY")?, get("AWS_SESSION_TOKEN"), None, "Environment");
    let flag = |k: &str| get(k).map(|v| v.trim().eq_ignore_ascii_case("true"));
    let endpoints = if flag("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") == Some(true) {
        EnvEndpoints::default()
    } else {
        EnvEndpoints(vars.filter(|(k, v)| k.starts_with(ENDPOINT_URL) && !v.trim().is_empty()).collect())
    };
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(http_client(trust));
    builder.set_use_fips(flag("AWS_USE_FIPS_ENDPOINT"));
    builder.set_use_dual_stack(flag("AWS_USE_DUALSTACK_ENDPOINT"));
    Some(builder.service_config(endpoints).build())
}

const ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";

/// Endpoint overrides from the environment, as the SDK's own loader reads them:
/// `AWS_ENDPOINT_URL_<SERVICE ID>` (upper case, spaces as `_`), else `AWS_ENDPOINT_URL`.
#[derive(Debug, Default)]
struct EnvEndpoints(BTreeMap<String, String>);

impl LoadServiceConfig for EnvEndpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        let service = format!("{}_{}", key.env(), key.service_id().to_uppercase().replace(' ', "_"));
        self.0.get(&service).or_else(|| self.0.get(key.env())).cloned()
    }
}

#[cfg(feature = "credential-chain")]
async fn default_chain(trust: Trust) -> Result<SdkConfig, String> {
    Ok(aws_config::defaults(BehaviorVersion::latest()).http_client(http_client(trust)).load().await)
}

#[cfg(not(feature = "credential-chain"))]
async fn default_chain(_: Trust) -> Result<SdkConfig, String> {
    Err("AWS configuration: set AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (Lambda sets them); \
         this build reads no AWS profile"
        .into())
}

/// The SDK-free client of DynamoDB's hot calls (`crate::wire`) for `config`: its region,
/// credentials provider, and endpoint — the SDK's own rules' answer for the region, FIPS
/// and dual-stack settings and any endpoint override (`AWS_ENDPOINT_URL_DYNAMODB`, else the
/// configuration's own), in the SDK's order — over the SDK's connector with the same TLS
/// settings. `None` without a region or credentials.
pub(crate) async fn wire_for(config: &SdkConfig) -> Result<Option<crate::wire::Wire>, String> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    wire_with(config, Trust::from_lookup(get)?).await
}

async fn wire_with(config: &SdkConfig, trust: Trust) -> Result<Option<crate::wire::Wire>, String> {
    use aws_sdk_dynamodb::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};

    let (Some(region), Some(credentials)) = (config.region(), config.credentials_provider()) else { return Ok(None) };
    let key =
        ServiceConfigKey::builder().service_id("DynamoDB").env(ENDPOINT_URL).profile("endpoint_url").build().map_err(|e| e.to_string())?;
    let params = Params::builder()
        .region(region.as_ref())
        .set_use_fips(config.use_fips())
        .set_use_dual_stack(config.use_dual_stack())
        .set_endpoint(config.service_config().and_then(|c| c.load_config(key)).or_else(|| config.endpoint_url().map(String::from)))
        .build()
        .map_err(|e| format!("DynamoDB endpoint parameters: {e}"))?;
    let endpoint = DefaultResolver::new().resolve_endpoint(&params).await.map_err(|e| format!("DynamoDB endpoint: {e}"))?;
    let retries = crate::wire::Retries::of(config.retry_config());
    crate::wire::Wire::new(endpoint.url(), region.as_ref(), credentials, connector(trust), retries).map(Some)
}

/// The SDK's own connector (the type its HTTP client builds per configuration), with the
/// settings `http_client` gives the SDK and the SDK's default connect timeout.
fn connector(trust: Trust) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
    use aws_smithy_runtime_api::client::http::{HttpConnectorSettings, SharedHttpConnector};
    let settings = HttpConnectorSettings::builder().connect_timeout(std::time::Duration::from_millis(3100)).build();
    let connector = aws_smithy_http_client::Connector::builder()
        .connector_settings(settings)
        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls_context(trust))
        .build();
    SharedHttpConnector::new(connector)
}

fn tls_context(trust: Trust) -> TlsContext {
    let store = match trust {
        Trust::AmazonRoots => TrustStore::empty().with_pem_certificate(AMAZON_ROOTS.as_bytes()),
        Trust::System => TrustStore::default(),
    };
    TlsContext::builder().with_trust_store(store).build().expect("a trust store without extra server names is valid")
}

fn http_client(trust: Trust) -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls_context(trust))
        .build_https()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn ders(pem: &str) -> Vec<Vec<u8>> {
        pem.split("-----BEGIN CERTIFICATE-----")
            .skip(1)
            .map(|block| {
                let body: String = block.split("-----END CERTIFICATE-----").next().unwrap().split_whitespace().collect();
                base64::engine::general_purpose::STANDARD.decode(body).expect("base64 body")
            })
            .collect()
    }

    #[test]
    fn amazon_roots_are_mozilla_roots() {
        let ours = ders(AMAZON_ROOTS);
        assert_eq!(ours.len(), 5, "Amazon Root CA 1-4 and Starfield Services G2");
        for der in &ours {
            assert!(
                webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().any(|c| c.as_ref() == der.as_slice()),
                "a certificate in amazon-trust-services.pem is not in Mozilla's root list"
            );
        }
    }

    /// A client validates its HTTP client when built, which builds the TLS connector and
    /// its root store from the PEM (the SDK panics on a certificate it cannot parse).
    #[tokio::test]
    async fn clients_build_their_tls_connector_from_the_compiled_in_roots() {
        for trust in [Trust::AmazonRoots, Trust::System] {
            let config = from_lookup(
                lookup(&[("AWS_REGION", "eu-west-1"), ("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")]),
                vars(&[]),
                trust,
            )
            .expect("a complete environment");
            let client = aws_sdk_dynamodb::Client::new(&config);
            assert!(client.config().http_client().is_some());
        }
    }

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>().into_iter()
    }

    #[tokio::test]
    async fn the_environment_alone_configures_region_credentials_and_endpoints() {
        use aws_sdk_dynamodb::config::ProvideCredentials;
        let env = [
            ("AWS_DEFAULT_REGION", "eu-central-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_USE_FIPS_ENDPOINT", "true"),
        ];
        let endpoints = [("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")];
        let config = from_lookup(lookup(&env), vars(&endpoints), Trust::AmazonRoots).expect("a complete environment");
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-central-1"));
        assert_eq!(config.use_fips(), Some(true));
        let creds = config.credentials_provider().unwrap().provide_credentials().await.unwrap();
        assert_eq!((creds.access_key_id(), creds.secret_access_key(), creds.session_token()), ("AKIDEXAMPLE", "secret", Some("token")));

        fn service(id: &str) -> ServiceConfigKey<'_> {
            ServiceConfigKey::builder().service_id(id).env(ENDPOINT_URL).profile("endpoint_url").build().unwrap()
        }
        let loaded = config.service_config().unwrap();
        assert_eq!(loaded.load_config(service("DynamoDB")).as_deref(), Some("http://127.0.0.1:8000"));
        assert_eq!(loaded.load_config(service("DynamoDB Streams")).as_deref(), Some("http://127.0.0.1:9000"), "the global override");
        let streams = [("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "http://127.0.0.1:7000")];
        let config = from_lookup(lookup(&env), vars(&streams), Trust::AmazonRoots).unwrap();
        assert_eq!(config.service_config().unwrap().load_config(service("DynamoDB Streams")).as_deref(), Some("http://127.0.0.1:7000"));
        // The client takes its endpoint from there (what DynamoDB Local and moto rely on).
        let ddb = aws_sdk_dynamodb::Config::from(&from_lookup(lookup(&env), vars(&endpoints), Trust::AmazonRoots).unwrap());
        assert_eq!(ddb.region().map(|r| r.as_ref()), Some("eu-central-1"));

        let ignore = [env.as_slice(), &[("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")]].concat();
        let config = from_lookup(lookup(&ignore), vars(&endpoints), Trust::AmazonRoots).unwrap();
        assert_eq!(config.service_config().unwrap().load_config(service("DynamoDB")), None);
    }

    /// The wire client takes its endpoint from the SDK's own rules.
    #[tokio::test]
    async fn the_wire_client_resolves_endpoints_as_the_sdk_does() {
        let env = |extra: &[(&'static str, &'static str)]| {
            let base = [("AWS_REGION", "eu-west-1"), ("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")];
            lookup(&[base.as_slice(), extra].concat())
        };
        let endpoint = |config: SdkConfig, trust| async move {
            wire_with(&config, trust).await.unwrap().map(|w| w.endpoint().to_string().trim_end_matches('/').to_string())
        };
        let plain = from_lookup(env(&[]), vars(&[]), Trust::AmazonRoots).unwrap();
        assert_eq!(endpoint(plain.clone(), Trust::AmazonRoots).await.as_deref(), Some("https://dynamodb.eu-west-1.amazonaws.com"));
        let fips = from_lookup(env(&[("AWS_USE_FIPS_ENDPOINT", "true")]), vars(&[]), Trust::AmazonRoots).unwrap();
        assert_eq!(endpoint(fips, Trust::AmazonRoots).await.as_deref(), Some("https://dynamodb-fips.eu-west-1.amazonaws.com"));
        let local = from_lookup(env(&[]), vars(&[("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000")]), Trust::AmazonRoots).unwrap();
        assert_eq!(endpoint(local, Trust::AmazonRoots).await.as_deref(), Some("http://127.0.0.1:8000"));
        assert_eq!(endpoint(plain, Trust::System).await.as_deref(), Some("https://dynamodb.eu-west-1.amazonaws.com"));
        let china = from_lookup(
            lookup(&[("AWS_REGION", "cn-north-1"), ("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")]),
            vars(&[]),
            Trust::AmazonRoots,
        )
        .unwrap();
        assert_eq!(endpoint(china, Trust::AmazonRoots).await.as_deref(), Some("https://dynamodb.cn-north-1.amazonaws.com.cn"));
        let no_credentials = SdkConfig::builder().behavior_version(BehaviorVersion::latest()).region(Region::new("eu-west-1")).build();
        assert_eq!(endpoint(no_credentials, Trust::AmazonRoots).await, None);
    }

    #[test]
    fn without_region_or_credentials_the_environment_is_not_enough() {
        let full = [("AWS_REGION", "eu-west-1"), ("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")];
        for missing in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            let partial: Vec<(&str, &str)> = full.iter().copied().filter(|(k, _)| *k != missing).collect();
            assert!(from_lookup(lookup(&partial), vars(&[]), Trust::AmazonRoots).is_none(), "{missing}");
        }
    }

    #[test]
    fn trust_store_is_chosen_by_name() {
        let with = |v: Option<&str>| Trust::from_lookup(|_| v.map(String::from));
        assert_eq!(with(None), Ok(Trust::AmazonRoots));
        assert_eq!(with(Some("amazon")), Ok(Trust::AmazonRoots));
        assert_eq!(with(Some("system")), Ok(Trust::System));
        assert_eq!(with(Some("all")).unwrap_err(), "PAYSESSION_AWS_TRUST must be amazon or system, not \"all\"");
    }
}
