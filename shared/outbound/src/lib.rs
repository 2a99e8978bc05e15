//! Outbound HTTP: the webhook sender (one HTTP POST per attempt, refusing private and
//! metadata addresses) and the Stripe connector ([`stripe`]).
//!
//! The guard runs where the connection is made, not only when the URL was registered: a
//! hostname is resolved by [`GuardedResolver`] and refused if *any* address it yields is
//! forbidden, and the connection goes to those checked addresses (no second lookup that
//! DNS rebinding could change). IP-literal hosts never reach a resolver, so they are
//! checked before the request. Redirects are never followed and no proxy is used.
//!
//! TLS is rustls over the operating system's trust store (`SSL_CERT_FILE` / `SSL_CERT_DIR`
//! are honoured, so an operator can add a receiver's private CA). The crypto provider is a
//! build choice (features `aws-lc`, `ring`): a Lambda function reuses the AWS SDK's aws-lc
//! instead of linking a second TLS stack.

pub mod stripe;

#[cfg(not(any(feature = "aws-lc", feature = "ring")))]
compile_error!("paysession-outbound needs a TLS crypto provider: enable feature `aws-lc` or `ring`");

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use paysession_app::ports::WebhookSender;
use paysession_domain::webhook::{ATTEMPT_TIMEOUT_SECONDS, AttemptResult, UrlPolicy, address_refusal, endpoint_url};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rustls::pki_types::CertificateDer;

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Refused {}

/// Resolves a receiver's hostname and refuses it if any address is forbidden.
pub struct GuardedResolver {
    policy: UrlPolicy,
}

impl GuardedResolver {
    pub fn new(policy: UrlPolicy) -> Self {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(Box::new(Refused(format!("{host} has no address"))) as Box<dyn std::error::Error + Send + Sync>);
            }
            if let Some((ip, why)) = addrs.iter().find_map(|a| address_refusal(a.ip(), policy).map(|w| (a.ip(), w))) {
                return Err(
                    Box::new(Refused(format!("refused: {host} resolves to {ip}, {why}"))) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Built on first use: every function's `Deps` holds a sender, but only the dispatcher
/// sends, and building the client loads the system's CA certificates (cold-start cost).
pub struct GuardedSender {
    client: std::sync::OnceLock<reqwest::Client>,
    timeout: Duration,
    policy: UrlPolicy,
    extra_roots: Vec<CertificateDer<'static>>,
}

impl GuardedSender {
    pub fn new(policy: UrlPolicy) -> Self {
        Self::with_timeout(policy, Duration::from_secs(ATTEMPT_TIMEOUT_SECONDS))
    }

    /// A sender with another attempt timeout (tests of the timeout path).
    pub fn with_timeout(policy: UrlPolicy, timeout: Duration) -> Self {
        GuardedSender { client: std::sync::OnceLock::new(), timeout, policy, extra_roots: Vec::new() }
    }

    /// Also trusts these roots beside the system's (a receiver's private CA; tests).
    pub fn trusting(mut self, roots: impl IntoIterator<Item = CertificateDer<'static>>) -> Self {
        self.extra_roots.extend(roots);
        self
    }

    fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            reqwest::Client::builder()
                .use_preconfigured_tls(tls_config(&self.extra_roots))
                .redirect(reqwest::redirect::Policy::none())
                .timeout(self.timeout)
                .connect_timeout(Duration::from_secs(5))
                .no_proxy()
                .dns_resolver(Arc::new(GuardedResolver { policy: self.policy }))
                .build()
                .expect("static client configuration")
        })
    }

    /// The reason a URL may not be called, checked before any connection.
    fn precheck(&self, url: &str) -> Result<reqwest::Url, String> {
        endpoint_url(url, self.policy).map_err(|(_, why)| format!("refused: {why}"))?;
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("refused: {e}"))?;
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(why) = literal.and_then(|ip| address_refusal(ip, self.policy)) {
            return Err(format!("refused: {why}"));
        }
        Ok(parsed)
    }
}

/// The build's crypto provider: aws-lc when the AWS SDK is linked anyway, else ring.
fn crypto_provider() -> rustls::crypto::CryptoProvider {
    #[cfg(feature = "aws-lc")]
    return rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc")))]
    return rustls::crypto::ring::default_provider();
}

/// TLS 1.2 and 1.3 with the provider's default suites, verifying receivers against the
/// system's roots plus `extra`. A system without usable roots does not stop the sender:
/// HTTPS attempts then fail with the certificate error, recorded on each attempt.
pub(crate) fn tls_config(extra: &[CertificateDer<'static>]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        let errors: Vec<String> = native.errors.iter().map(|e| e.to_string()).collect();
        tracing::warn!(ignored, errors = %errors.join("; "), "no usable CA certificates in the system trust store");
    }
    roots.add_parsable_certificates(extra.iter().cloned());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(crypto_provider()))
        .with_safe_default_protocol_versions()
        .expect("the provider's defaults support TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    // This client speaks HTTP/1.1 only (reqwest is built without http2).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// The error and its causes on one line (reqwest hides the interesting part in sources).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_string();
    }
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    if let Some(refusal) = parts.iter().find(|p| p.starts_with("refused:")) {
        return refusal.clone();
    }
    parts.join(": ")
}

#[async_trait]
impl WebhookSender for GuardedSender {
    async fn send(&self, url: &str, headers: &[(&'static str, String)], body: &str) -> AttemptResult {
        let started = Instant::now();
        let elapsed = |s: Instant| s.elapsed().as_millis() as u64;
        let parsed = match self.precheck(url) {
            Ok(u) => u,
            Err(error) => return AttemptResult { status_code: None, duration_ms: 0, error: Some(error) },
        };
        let mut req = self.client().post(parsed).body(body.to_string());
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        match req.send().await {
            Ok(resp) => {
                let code = resp.status().as_u16();
                let error = (!resp.status().is_success()).then(|| format!("receiver answered {code}"));
                AttemptResult { status_code: Some(code), duration_ms: elapsed(started), error }
            }
            Err(e) => AttemptResult { status_code: None, duration_ms: elapsed(started), error: Some(describe(&e)) },
        }
    }
}
