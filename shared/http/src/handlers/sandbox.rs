//! Sandbox-only endpoints that stand in for the outside world: a bank crediting a virtual
//! account, a customer's app paying a QR code, and reading the one-time code that the
//! notifier "sent".

use chrono::DateTime;
use http::StatusCode;
use paysession_app::auth::Principal;
use paysession_app::payments::{self, PaymentFailure};
use paysession_app::ports::{SessionStore, SettingsStore};
use paysession_app::{Core, Payments, otp};
use paysession_domain::errors::{Errors, FieldCode};
use paysession_domain::json::ObjectReader;
use paysession_domain::model::PaymentMethodKind;
use paysession_domain::payment::PaymentError;
use paysession_domain::session::PaymentSession;
use paysession_domain::{PaymentType, SessionStatus};
use serde_json::json;

use lambda_http::{Body, Request, Response};

use crate::pipeline::{Params, api, public};
use crate::problem::ApiError;
use crate::reply::Reply;
use crate::request::Call;
use crate::routes::{Route, RouteInfo};

fn read_amount(call: &Call<'_>, required: bool) -> Result<Option<i64>, ApiError> {
    let body = call.json_body(!required)?;
    let mut e = Errors::new();
    let mut amount = None;
    if let Some(mut r) = ObjectReader::new(&body, "", &mut e) {
        amount = if required { r.required("amount", &mut e) } else { r.get("amount") }.and_then(|v| match v.as_i64() {
            Some(n) if n > 0 => Some(n),
            _ => {
                e.add("amount", FieldCode::MustBePositive, "must be a positive integer in minor units");
                None
            }
        });
        r.finish(&mut e);
    }
    if e.is_empty() { Ok(amount) } else { Err(ApiError::Validation(e.into_vec())) }
}

fn payment_error(e: PaymentError) -> ApiError {
    match e {
        PaymentError::WrongAmount { expected } => ApiError::Validation(vec![paysession_domain::FieldError {
            field: "amount".into(),
            code: FieldCode::InvalidValue,
            message: format!("must be {expected} for this session"),
        }]),
        other => ApiError::InvalidStateTransition(other.to_string()),
    }
}

/// A payment received from outside (deposit, QR scan), through the payments use case, on
/// the session's merchant's clock.
async fn receive<S: SessionStore + SettingsStore + ?Sized>(
    cx: &Core<S>,
    session: PaymentSession,
    method: PaymentMethodKind,
    amount: i64,
) -> Result<Reply, ApiError> {
    let cx = &cx.at_merchant(&session.merchant_id).await?;
    let paid = payments::receive(cx, session, method, amount).await.map_err(|f| match f {
        PaymentFailure::Refused(e) => payment_error(e),
        PaymentFailure::Store(e) => e.into(),
    })?;
    Ok(Reply::json(StatusCode::OK, &paid.api_view(cx.clock.now())))
}

pub async fn deposit<S: SessionStore + SettingsStore + ?Sized>(cx: &Core<S>, call: &Call<'_>) -> Result<Reply, ApiError> {
    let amount = read_amount(call, true)?.expect("required");
    let number = call.param("number");
    let session =
        cx.store.find_by_virtual_account(number).await?.ok_or_else(|| ApiError::NotFound(format!("no virtual account {number}")))?;
    receive(cx, session, PaymentMethodKind::VirtualAccount, amount).await
}

pub async fn qr_pay<S: SessionStore + SettingsStore + ?Sized>(cx: &Core<S>, call: &Call<'_>) -> Result<Reply, ApiError> {
    let payload = call.param("payload");
    let session = paysession_app::sessions::find_by_qr_payload(&*cx.store, payload)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no QR payload {payload}")))?;
    let multiple = session.spec.payment_type == PaymentType::Multiple;
    let amount = read_amount(call, multiple)?.unwrap_or(session.spec.amount.minor());
    receive(cx, session, PaymentMethodKind::Qr, amount).await
}

/// The current one-time code of one of the caller's sessions.
pub async fn otp<S: SessionStore + ?Sized>(cx: &Core<S>, p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut e = Errors::new();
    let params = call.query(&["session_id"], &mut e)?;
    let id = params.iter().find(|(k, _)| k == "session_id").map(|(_, v)| v.clone());
    if id.is_none() {
        e.add("session_id", FieldCode::Required, "is required");
    }
    if !e.is_empty() {
        return Err(ApiError::Validation(e.into_vec()));
    }
    let id = id.expect("checked");
    let mut session =
        cx.store.get_session(&p.merchant_id, &id).await?.ok_or_else(|| ApiError::NotFound(format!("no payment session with id {id}")))?;
    // Asked before the page was opened (the walk-through's order), an open session gets its
    // code now, as opening the page would have sent it; the page then asks for this code.
    let now = cx.clock.now();
    if session.status_at(now) == SessionStatus::Open && !otp::has_current_code(&session, now) && !otp::locked(&session) {
        match otp::send_code(cx, &Payments::sandbox(), &session).await? {
            Ok(sent) => session = sent,
            Err(refused) => tracing::info!(?refused, "no new one-time code; the last one is shown"),
        }
    }
    let status = session.status_at(now);
    let otp = session
        .otp
        .filter(|o| o.sandbox_code.is_some())
        .ok_or_else(|| ApiError::NotFound(format!("no one-time code for this session: it is {}", status.as_str())))?;
    let expires: DateTime<chrono::Utc> = otp.expires_at;
    Ok(Reply::json(
        StatusCode::OK,
        &json!({"object": "sandbox_otp", "session_id": id, "code": otp.sandbox_code, "expires_at": expires, "tries_left": otp.tries_left}),
    ))
}

/// Serves one of the sandbox routes (the `sandbox` function's group).
pub async fn serve<S: SessionStore + SettingsStore + paysession_app::ports::SigningStore + paysession_app::ports::RefundStore + ?Sized>(
    cx: &Core<S>,
    info: &'static RouteInfo,
    params: Params,
    req: Request,
) -> Response<Body> {
    match info.route {
        Route::SandboxDeposit => public(cx, info, params, req, |cx, call| Box::pin(deposit(cx, call))).await,
        Route::SandboxQrPay => public(cx, info, params, req, |cx, call| Box::pin(qr_pay(cx, call))).await,
        Route::SandboxRefundComplete => api(cx, &cx.keys, info, params, req, |cx, p, call| Box::pin(complete_refund(cx, p, call))).await,
        _ => api(cx, &cx.keys, info, params, req, |cx, p, call| Box::pin(otp(cx, p, call))).await,
    }
}

/// `POST /sandbox/refunds/{id}/complete {"status"?: "succeeded" | "failed"}`: the sandbox bank
/// settles a refund that waits for action (refunds of bank methods), as a processor's
/// webhook would.
pub async fn complete_refund<S: paysession_app::ports::RefundStore + ?Sized>(
    cx: &Core<S>,
    p: &Principal,
    call: &Call<'_>,
) -> Result<Reply, ApiError> {
    use paysession_domain::refund::RefundStatus;
    let body = call.json_body(true)?;
    let mut e = Errors::new();
    let mut status = RefundStatus::Succeeded;
    if let Some(mut r) = ObjectReader::new(&body, "", &mut e) {
        match r.str("status", &mut e) {
            None | Some("succeeded") => {}
            Some("failed") => status = RefundStatus::Failed,
            Some(_) => e.add("status", FieldCode::InvalidValue, "must be succeeded or failed"),
        }
        r.finish(&mut e);
    }
    if !e.is_empty() {
        return Err(ApiError::Validation(e.into_vec()));
    }
    let id = call.param("id");
    let refund = cx.store.get_refund(&p.merchant_id, id).await?.ok_or_else(|| ApiError::NotFound(format!("no refund with id {id}")))?;
    if refund.status != RefundStatus::RequiresAction {
        return Err(ApiError::InvalidStateTransition(format!(
            "the refund is {}; only requires_action refunds are completed",
            refund.status.as_str()
        )));
    }
    let reason = (status == RefundStatus::Failed).then(|| "declined".to_string());
    let done = paysession_app::refunds::processor_reports(cx, &p.merchant_id, id, status, reason).await?;
    Ok(Reply::json(StatusCode::OK, &done.to_api()))
}

/// `GET /sandbox/processor_calls/{id}`: the calls the sandbox processor received with our id
/// `id` (a payment or refund), by operation. Local server only: each process keeps its own.
pub async fn processor_calls(pay: &Payments, _p: &Principal, call: &Call<'_>) -> Result<Reply, ApiError> {
    let id = call.param("id");
    Ok(Reply::json(StatusCode::OK, &json!({"id": id, "calls": pay.sandbox_calls.of(id)})))
}
