//! DynamoDB's two hot calls — `TransactWriteItems` and a consistent `GetItem` — made
//! without the SDK's orchestrator, and with them the store's single-item `PutItem`,
//! `UpdateItem` and `DeleteItem` (a signed request's nonce claim is one, a failed token
//! attempt's count another), whose request shapes are a transaction's `Put`, `Update` and
//! `Delete`. Every API request is one or two of them, and under perf
//! a warm create spent most of its CPU in the SDK's per-call machinery (interceptors, the
//! config bag, endpoint rules, retry bookkeeping: docs/performance-history.md), about as much as a
//! whole bare SDK `PutItem`. What stays the SDK's: the request types the store builds;
//! signing by AWS's `aws-sigv4` (the SDK's signer, which carries AWS's SigV4 test suite; a
//! test here checks our signed requests with botocore); the endpoint, from the SDK's own
//! endpoint rules, evaluated once; credentials, from the configuration's provider; and the
//! HTTP connection itself, the SDK's own connector (`aws_smithy_http_client::Connector`: its
//! TLS settings and trust store, connect timeout, pool), so no second HTTP stack is linked.
//! Every other call (queries, streams, admin) still goes through the SDK.
//!
//! Retries follow the SDK's standard mode: up to 3 attempts on a transport error, a 5xx,
//! or throttling, after a full-jitter pause of up to 1 s × 2^(attempt − 1) (≤ 20 s). A
//! transaction carries a `ClientRequestToken` kept across those attempts, so a retried
//! transaction whose first answer was lost is not applied twice (the SDK calls it replaces
//! sent none, so such a retry could fail its own conditions).

mod json;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Uri};
use http_body_util::BodyExt;

pub(crate) use json::{Item, ServiceError};

/// How the wire client retries: the SDK configuration's retry settings (standard mode's by
/// default: 3 attempts, pauses of up to 1 s × 2^(attempt − 1), at most 20 s).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retries {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Retries {
    pub(crate) fn of(config: Option<&aws_smithy_types::retry::RetryConfig>) -> Retries {
        let standard = aws_smithy_types::retry::RetryConfig::standard();
        let c = config.unwrap_or(&standard);
        Retries { max_attempts: c.max_attempts().max(1), initial_backoff: c.initial_backoff(), max_backoff: c.max_backoff() }
    }
}
/// Credentials that expire are fetched again this long before they do.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

/// Sees each request body before it is sent (tests count requests and written items).
pub type Observer = Arc<dyn Fn(&str, &[u8]) + Send + Sync>;

/// What a call can fail with.
#[derive(Debug)]
pub(crate) enum WireError {
    /// DynamoDB answered with an error.
    Service(ServiceError),
    /// No usable answer: the connection, TLS, an unreadable body, no credentials.
    Transport(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Service(e) => e.fmt(f),
            WireError::Transport(e) => write!(f, "DynamoDB request failed: {e}"),
        }
    }
}

/// A signed-request DynamoDB client for one endpoint.
#[derive(Clone)]
pub struct Wire {
    http: SharedHttpConnector,
    uri: Uri,
    /// `uri` as text, for the signer (rendered once, not per request).
    uri_text: Arc<str>,
    host: HeaderValue,
    region: Arc<str>,
    credentials: SharedCredentialsProvider,
    /// The last credentials the provider gave (static ones: for good).
    current: Arc<Mutex<Option<Credentials>>>,
    observer: Option<Observer>,
    retries: Retries,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire").field("uri", &self.uri).field("region", &self.region).finish_non_exhaustive()
    }
}

impl Wire {
    /// A client of `endpoint` (`https://dynamodb.eu-west-1.amazonaws.com`, or DynamoDB Local
    /// over `http://`) signing for `region` with `credentials`, connecting through `http`.
    pub(crate) fn new(
        endpoint: &str,
        region: &str,
        credentials: SharedCredentialsProvider,
        http: SharedHttpConnector,
        retries: Retries,
    ) -> Result<Wire, String> {
        let uri: Uri = endpoint.parse().map_err(|e| format!("DynamoDB endpoint {endpoint:?}: {e}"))?;
        let authority = uri.authority().ok_or_else(|| format!("DynamoDB endpoint {endpoint:?} has no host"))?;
        let host = HeaderValue::from_str(authority.as_str()).map_err(|e| format!("DynamoDB endpoint {endpoint:?}: {e}"))?;
        let uri_text = uri.to_string().into();
        Ok(Wire { http, uri, uri_text, host, region: region.into(), credentials, current: Arc::default(), observer: None, retries })
    }

    /// Where requests go.
    pub fn endpoint(&self) -> &Uri {
        &self.uri
    }

    /// The same client with `observer` shown every request body.
    pub fn observed(mut self, observer: Observer) -> Wire {
        self.observer = Some(observer);
        self
    }

    pub(crate) async fn transact_write_items(&self, items: &[TransactWriteItem]) -> Result<(), WireError> {
        let token = paysession_app::ids::new_id("tx");
        let body =
            json::transact_write_items(items, &token).map_err(|e| WireError::Transport(format!("transaction not serialisable: {e}")))?;
        self.call("TransactWriteItems", body).await.map(drop)
    }

    /// A `PutItem`; `Ok(false)` when its condition failed.
    pub(crate) async fn put_item(&self, put: &Put) -> Result<bool, WireError> {
        let body = json::put_item(put).map_err(|e| WireError::Transport(format!("item not serialisable: {e}")))?;
        unless_condition_failed(self.call("PutItem", body).await).map(|answer| answer.is_some())
    }

    /// An `UpdateItem`: `Ok(None)` when its condition failed, else the updated attributes
    /// if `return_new` asked for them. Not idempotent: a retry after a lost answer applies
    /// the update again.
    pub(crate) async fn update_item(&self, update: &Update, return_new: bool) -> Result<Option<Option<Item>>, WireError> {
        let body = json::update_item(update, return_new).map_err(|e| WireError::Transport(format!("update not serialisable: {e}")))?;
        self.returning("UpdateItem", body).await
    }

    /// A `DeleteItem`: `Ok(None)` when its condition failed, else the deleted item's
    /// attributes if `return_old` asked for them and there was one.
    pub(crate) async fn delete_item(&self, delete: &Delete, return_old: bool) -> Result<Option<Option<Item>>, WireError> {
        let body = json::delete_item(delete, return_old).map_err(|e| WireError::Transport(format!("key not serialisable: {e}")))?;
        self.returning("DeleteItem", body).await
    }

    /// A conditional single-item write whose answer may carry attributes.
    async fn returning(&self, operation: &str, body: Vec<u8>) -> Result<Option<Option<Item>>, WireError> {
        let Some(answer) = unless_condition_failed(self.call(operation, body).await)? else { return Ok(None) };
        json::attributes_output(&answer).map(Some).map_err(|e| WireError::Transport(format!("unreadable {operation} answer: {e}")))
    }

    pub(crate) async fn get_item(&self, table: &str, key: &Item) -> Result<Option<Item>, WireError> {
        let body = json::get_item(table, key).map_err(|e| WireError::Transport(format!("key not serialisable: {e}")))?;
        let answer = self.call("GetItem", body).await?;
        json::get_item_output(&answer).map_err(|e| WireError::Transport(format!("unreadable GetItem answer: {e}")))
    }

    async fn call(&self, operation: &str, body: Vec<u8>) -> Result<Bytes, WireError> {
        let body = Bytes::from(body);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.once(operation, body.clone()).await {
                Err(e) if attempt < self.retries.max_attempts && retryable(&e) => {
                    tracing::warn!(operation, attempt, error = %e, "DynamoDB call retried");
                    tokio::time::sleep(backoff(&self.retries, attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn once(&self, operation: &str, body: Bytes) -> Result<Bytes, WireError> {
        if let Some(observe) = &self.observer {
            observe(operation, &body);
        }
        let identity = self.identity().await?;
        let request = self.signed(operation, body, &identity).map_err(WireError::Transport)?;
        let response = self.http.call(request).await.map_err(|e| WireError::Transport(error_chain(&e)))?;
        let status = response.status();
        let answer = response.into_body().collect().await.map_err(|e| WireError::Transport(error_chain(e.as_ref())))?.to_bytes();
        if status.is_success() {
            return Ok(answer);
        }
        // An answer without DynamoDB's error body (a proxy, a load balancer) is named by
        // its status, so a 5xx is retried and a 4xx is not.
        Err(WireError::Service(ServiceError::parse(&answer).unwrap_or_else(|| ServiceError {
            code: format!("HTTP {}", status.as_u16()),
            message: String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned(),
            cancellation_codes: vec![],
        })))
    }

    /// The credentials to sign with: the last ones while they are good, else the provider's.
    async fn identity(&self) -> Result<Identity, WireError> {
        let fresh_enough = |c: &Credentials| c.expiry().is_none_or(|at| at > SystemTime::now() + CREDENTIALS_MARGIN);
        if let Some(c) = self.current.lock().expect("credentials lock").as_ref().filter(|c| fresh_enough(c)) {
            return Ok(c.clone().into());
        }
        let c = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| WireError::Transport(format!("AWS credentials: {}", error_chain(&e))))?;
        *self.current.lock().expect("credentials lock") = Some(c.clone());
        Ok(c.into())
    }

    fn signed(&self, operation: &str, body: Bytes, identity: &Identity) -> Result<aws_smithy_runtime_api::http::Request, String> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        use aws_sigv4::sign::v4;

        let target = HeaderValue::from_str(&format!("DynamoDB_20120810.{operation}")).map_err(|e| e.to_string())?;
        const JSON_1_0: &str = "application/x-amz-json-1.0";
        let params = v4::SigningParams::builder()
            .identity(identity)
            .region(&self.region)
            .name("dynamodb")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let headers = [
            (HOST.as_str(), self.host.to_str().map_err(|e| e.to_string())?),
            (CONTENT_TYPE.as_str(), JSON_1_0),
            ("x-amz-target", target.to_str().map_err(|e| e.to_string())?),
        ];
        let signable =
            SignableRequest::new("POST", &*self.uri_text, headers.into_iter(), SignableBody::Bytes(&body)).map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
        let mut request = http::Request::post(self.uri.clone())
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, JSON_1_0)
            .header("x-amz-target", target)
            .body(SdkBody::from(body))
            .map_err(|e| e.to_string())?;
        instructions.apply_to_request_http1x(&mut request);
        request.try_into().map_err(|e: aws_smithy_runtime_api::http::HttpError| e.to_string())
    }
}

/// A single-item write's answer, `None` when its condition failed (an answer, not an error).
fn unless_condition_failed(answer: Result<Bytes, WireError>) -> Result<Option<Bytes>, WireError> {
    match answer {
        Ok(answer) => Ok(Some(answer)),
        Err(WireError::Service(e)) if e.code == "ConditionalCheckFailedException" => Ok(None),
        Err(e) => Err(e),
    }
}

/// What the SDK's standard retry mode retries: transient transport failures, server
/// errors, and throttling.
fn retryable(e: &WireError) -> bool {
    match e {
        WireError::Transport(_) => true,
        WireError::Service(s) => {
            s.code.starts_with("HTTP 5")
                || matches!(
                    s.code.as_str(),
                    "InternalServerError"
                        | "ServiceUnavailable"
                        | "ThrottlingException"
                        | "Throttling"
                        | "ProvisionedThroughputExceededException"
                        | "RequestLimitExceeded"
                        | "RequestThrottledException"
                        | "TooManyRequestsException"
                )
        }
    }
}

/// Full jitter: a random pause up to initial × 2^(attempt − 1), at most the maximum.
fn backoff(retries: &Retries, attempt: u32) -> Duration {
    let initial_us = u64::try_from(retries.initial_backoff.as_micros()).unwrap_or(u64::MAX);
    let max_us = u64::try_from(retries.max_backoff.as_micros()).unwrap_or(u64::MAX);
    let ceiling_us: u64 = initial_us.saturating_mul(1u64 << (attempt - 1).min(5)).min(max_us);
    let mut r = [0u8; 4];
    getrandom::getrandom(&mut r).expect("the OS random source is available");
    Duration::from_micros(ceiling_us * u64::from(u32::from_le_bytes(r)) / u64::from(u32::MAX))
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use aws_smithy_types::retry::RetryConfig;

    use super::*;

    #[test]
    fn retries_follow_the_configuration_and_default_to_the_standard_mode() {
        let standard = Retries::of(None);
        assert_eq!(
            (standard.max_attempts, standard.initial_backoff, standard.max_backoff),
            (3, Duration::from_secs(1), Duration::from_secs(20))
        );
        assert!(backoff(&standard, 10) <= Duration::from_secs(20), "capped");
        let quick = Retries::of(Some(&RetryConfig::standard().with_max_attempts(5).with_initial_backoff(Duration::from_millis(50))));
        assert_eq!(quick.max_attempts, 5);
        for attempt in 1..=4 {
            assert!(backoff(&quick, attempt) <= Duration::from_millis(50 << (attempt - 1)), "attempt {attempt}");
        }
    }
}
