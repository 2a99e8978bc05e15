//! The one AWS SDK configuration every client here is built from.
//!
//! `aws_config::load_defaults` costs a Lambda cold start more than our whole handler setup:
//! its credentials chain builds an STS client for web identity, and every HTTP client it
//! validates loads the operating system's trust store (on Debian ~150 files, each PEM-decoded;
//! 64 % of the create function's init CPU under perf). So, with the same outcome in Lambda:
//! - credentials come from the environment variables Lambda sets, when they are set (the
//!   default chain would pick exactly those first), else from the default chain;
//! - the region from `AWS_REGION` / `AWS_DEFAULT_REGION` when set (likewise first in the chain);
//! - TLS trusts the roots AWS endpoints chain to (Amazon Trust Services), compiled in, unless
//!   `PAYSESSION_AWS_TRUST=system` asks for the operating system's store (an HTTPS endpoint
//!   override behind another CA, a TLS-inspecting proxy).

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};

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

/// The SDK configuration for this process's environment. Fails only on a malformed
/// [`Trust::ENV`].
pub async fn sdk_config() -> Result<SdkConfig, String> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let trust = Trust::from_lookup(get)?;
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client(trust));
    if get("AWS_ACCESS_KEY_ID").is_some() && get("AWS_SECRET_ACCESS_KEY").is_some() {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    if let Some(region) = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")) {
        loader = loader.region(Region::new(region));
    }
    Ok(loader.load().await)
}

fn http_client(trust: Trust) -> aws_sdk_dynamodb::config::SharedHttpClient {
    let store = match trust {
        Trust::AmazonRoots => TrustStore::empty().with_pem_certificate(AMAZON_ROOTS.as_bytes()),
        Trust::System => TrustStore::default(),
    };
    let context = TlsContext::builder().with_trust_store(store).build().expect("a trust store without extra server names is valid");
    aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc)).tls_context(context).build_https()
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
            let config = aws_config::defaults(BehaviorVersion::latest())
                .http_client(http_client(trust))
                .region(Region::new("eu-west-1"))
                .credentials_provider(aws_sdk_dynamodb::config::Credentials::for_tests())
                .load()
                .await;
            let client = aws_sdk_dynamodb::Client::new(&config);
            assert!(client.config().http_client().is_some());
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
