//! A handler's successful answer, and the idempotency wrapper every POST goes through.

use http::{HeaderName, HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use paysession_app::Core;
use paysession_app::auth::Principal;
use paysession_app::idempotency::{self, Claim, Start};
use paysession_app::ports::{IdempotencyCompletion, IdempotencyStore, StoreError, StoredResponse};
use paysession_domain::session::{PaymentSession, ViewJson};

use crate::problem::ApiError;
use crate::request::{Call, body_bytes};

pub struct Reply {
    pub response: StoredResponse,
    /// The idempotency record was completed in the same write as the change.
    pub recorded: bool,
    pub replayed: bool,
    /// The body shows a secret: its idempotency record is stored sealed.
    pub sensitive: bool,
    pub headers: Vec<(HeaderName, &'static str)>,
}

impl Reply {
    pub fn json<T: serde::Serialize + ?Sized>(status: StatusCode, body: &T) -> Reply {
        Reply::from_stored(stored_json(status, body), false)
    }
    pub fn from_stored(response: StoredResponse, recorded: bool) -> Reply {
        Reply { response, recorded, replayed: false, sensitive: false, headers: Vec::new() }
    }
    pub fn sensitive(mut self) -> Reply {
        self.sensitive = true;
        self
    }
    pub fn with_header(mut self, name: HeaderName, value: &'static str) -> Reply {
        self.headers.push((name, value));
        self
    }
    pub fn into_response(self) -> Response<Body> {
        let mut resp = Response::builder()
            .status(self.response.status)
            .header(header::CONTENT_TYPE, self.response.content_type.as_str())
            .body(Body::Text(self.response.body))
            .expect("valid status and content type");
        for (name, value) in self.headers {
            resp.headers_mut().insert(name, HeaderValue::from_static(value));
        }
        if self.replayed {
            resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        resp
    }
}

pub fn stored_json<T: serde::Serialize + ?Sized>(status: StatusCode, body: &T) -> StoredResponse {
    stored_json_text(status, serde_json::to_string(body).expect("a reply body serialises"))
}

fn stored_json_text(status: StatusCode, body: String) -> StoredResponse {
    StoredResponse { status: status.as_u16(), content_type: "application/json".into(), body }
}

fn stored_error(e: &ApiError) -> StoredResponse {
    let resp = e.to_response();
    StoredResponse {
        status: resp.status().as_u16(),
        content_type: "application/problem+json".into(),
        body: String::from_utf8_lossy(body_bytes(resp.body())).into_owned(),
    }
}

/// Runs a POST under its `Idempotency-Key`: a finished request is replayed, a concurrent
/// one refused, and the outcome settled. `exec` should complete the claim inside its own
/// store write (returning a `recorded` reply); anything it does not record is settled here.
pub async fn idempotent<S: IdempotencyStore + ?Sized>(
    cx: &Core<S>,
    principal: &Principal,
    call: &Call<'_>,
    exec: impl AsyncFnOnce(Option<&Claim>) -> Result<Reply, ApiError>,
) -> Result<Reply, ApiError> {
    let claim = match idempotency::start(cx, &principal.merchant_id, idempotency_key(call), || fingerprint(call)).await? {
        Start::Replay(response) => return replayed(cx, response),
        Start::Proceed(claim) => claim,
    };
    let result = exec(claim.as_ref()).await;
    if let Some(claim) = &claim
        && !matches!(&result, Ok(reply) if reply.recorded)
    {
        idempotency::settle(cx, claim, &outcome(cx, &result)).await;
    }
    result
}

/// What is stored for replay of a result its own write did not record.
fn outcome<S: ?Sized>(cx: &Core<S>, result: &Result<Reply, ApiError>) -> StoredResponse {
    match result {
        Ok(reply) if reply.sensitive => idempotency::sealed(cx, &reply.response),
        Ok(reply) => reply.response.clone(),
        Err(e) => stored_error(e),
    }
}

/// For a change that writes once and carries its completion in that write (a create, a
/// session action): the key costs no request of its own. Only when that write finds the key
/// taken (a retry, a concurrent twin, a reused key) is the record read: replayed, or the
/// request refused as [`idempotent`] would. The change's own write was cancelled with the
/// condition, so nothing of it is stored.
pub async fn idempotent_in_write<S: IdempotencyStore + ?Sized>(
    cx: &Core<S>,
    principal: &Principal,
    call: &Call<'_>,
    exec: impl AsyncFnOnce(Option<&Claim>) -> Result<Reply, ApiError>,
) -> Result<Reply, ApiError> {
    let Some(key) = idempotency_key(call) else { return exec(None).await };
    let claim = idempotency::fresh(cx, &principal.merchant_id, key, fingerprint(call))?;
    let result = exec(Some(&claim)).await;
    let recorded = match &result {
        Ok(reply) if reply.recorded => return result,
        Err(ApiError::KeyTaken) => Err(StoreError::IdempotencyLost),
        // A server error stores nothing, so a retry runs again.
        Err(e) if e.code_and_status().1.is_server_error() => return result,
        _ => idempotency::record(cx, &claim, &outcome(cx, &result)).await,
    };
    match recorded {
        Ok(()) => result,
        Err(StoreError::IdempotencyLost) => match idempotency::start(cx, &principal.merchant_id, Some(key), || fingerprint(call)).await? {
            Start::Replay(response) => replayed(cx, response),
            // Taken when written, free when read (it lapsed, or its request failed and let
            // go): nothing was done, and a retry will run.
            Start::Proceed(claim) => {
                if let Some(claim) = claim {
                    idempotency::release(cx, &claim).await;
                }
                Err(ApiError::IdempotencyKeyInUse)
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "could not store the response under its idempotency key");
            result
        }
    }
}

fn idempotency_key<'a>(call: &'a Call<'_>) -> Option<&'a [u8]> {
    call.req.headers().get("idempotency-key").map(|v| v.as_bytes())
}

fn fingerprint(call: &Call<'_>) -> String {
    idempotency::fingerprint(call.req.method().as_str(), call.req.uri().path(), call.body_bytes())
}

fn replayed<S: ?Sized>(cx: &Core<S>, response: StoredResponse) -> Result<Reply, ApiError> {
    let response = idempotency::unsealed(cx, response).ok_or_else(|| ApiError::Internal("a stored response cannot be unsealed".into()))?;
    Ok(Reply { response, recorded: true, replayed: true, sensitive: false, headers: Vec::new() })
}

/// For a body that fails validation only because time moved on (a create's `expires_at`
/// window): the retry of a request that succeeded under the same `Idempotency-Key` and body
/// gets the stored response, not `error`. Otherwise `error` stands and nothing is stored
/// under the key, so a corrected retry may use it. Costs store calls only on this error path.
pub async fn replay_or<S: IdempotencyStore + ?Sized>(
    cx: &Core<S>,
    principal: &Principal,
    call: &Call<'_>,
    error: ApiError,
) -> Result<Reply, ApiError> {
    let Some(key) = idempotency_key(call) else { return Err(error) };
    match idempotency::start(cx, &principal.merchant_id, Some(key), || fingerprint(call)).await? {
        Start::Replay(response) => replayed(cx, response),
        Start::Proceed(claim) => {
            if let Some(claim) = claim {
                idempotency::release(cx, &claim).await;
            }
            Err(error)
        }
    }
}

/// The answer of a change and, under an idempotency claim, its completion: what the use
/// cases' `respond` callbacks return, so the completion commits with the change.
pub fn respond_json(
    claim: Option<&Claim>,
    status: StatusCode,
) -> impl Fn(&PaymentSession, &ViewJson) -> (Reply, Option<IdempotencyCompletion>) + '_ {
    move |_, view| {
        let response = stored_json_text(status, view.get().to_string());
        let completion = claim.map(|c| c.completion(&response));
        let recorded = completion.is_some();
        (Reply::from_stored(response, recorded), completion)
    }
}
