//! One error type for every API function, mapped to RFC 9457 problem+json in one place.

use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use paysession_domain::FieldError;
use serde_json::{Value, json};

#[derive(Debug)]
pub enum ApiError {
    MalformedRequest(String),
    /// RFC 6750 `invalid_token` (or no token at all when `None`).
    Unauthorized(Option<String>),
    InsufficientScope(&'static str),
    NotFound(String),
    MethodNotAllowed(Vec<http::Method>),
    DuplicateReference,
    IdempotencyKeyInUse,
    InvalidStateTransition(String),
    PayloadTooLarge,
    UnsupportedMediaType(&'static str),
    Validation(Vec<FieldError>),
    IdempotencyKeyReuse,
    /// A deposit to a virtual-account number that names more than one session: refused,
    /// never credited to a guess.
    VirtualAccountAmbiguous(String),
    /// A signed-requests refusal; its `code` names the reason.
    Signature(paysession_domain::signed_requests::SignatureError),
    /// The write that was to take an `Idempotency-Key` found it taken; `reply` answers
    /// it from the stored record, so it reaches a client only as an internal error.
    KeyTaken,
    /// A POST that must carry an `Idempotency-Key` (refunds) came without one.
    IdempotencyKeyRequired,
    /// The refund asks for more than the payment has left to refund.
    AmountExceedsRefundable {
        refundable: i64,
    },
    RefundLimitReached(u32),
    /// The payment processor did not answer; nothing changed here, retry with the same key.
    ProcessorUnavailable,
    /// The payment processor declined the operation.
    ProcessorDeclined(&'static str),
    Internal(String),
}

impl ApiError {
    /// The stable `code` and HTTP status of each error.
    pub fn code_and_status(&self) -> (&'static str, StatusCode) {
        use ApiError::*;
        match self {
            MalformedRequest(_) => ("malformed_request", StatusCode::BAD_REQUEST),
            Unauthorized(_) => ("invalid_token", StatusCode::UNAUTHORIZED),
            InsufficientScope(_) => ("insufficient_scope", StatusCode::FORBIDDEN),
            NotFound(_) => ("not_found", StatusCode::NOT_FOUND),
            MethodNotAllowed(_) => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
            DuplicateReference => ("duplicate_reference", StatusCode::CONFLICT),
            IdempotencyKeyInUse => ("idempotency_key_in_use", StatusCode::CONFLICT),
            InvalidStateTransition(_) => ("invalid_state_transition", StatusCode::CONFLICT),
            PayloadTooLarge => ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            UnsupportedMediaType(_) => ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            Validation(errors) if !errors.is_empty() && errors.iter().all(|e| e.code == paysession_domain::FieldCode::UnknownField) => {
                ("unknown_field", StatusCode::UNPROCESSABLE_ENTITY)
            }
            Validation(_) => ("validation_failed", StatusCode::UNPROCESSABLE_ENTITY),
            IdempotencyKeyReuse => ("idempotency_key_reuse", StatusCode::UNPROCESSABLE_ENTITY),
            VirtualAccountAmbiguous(_) => ("virtual_account_ambiguous", StatusCode::CONFLICT),
            Signature(e) => (e.code(), StatusCode::UNAUTHORIZED),
            IdempotencyKeyRequired => ("idempotency_key_required", StatusCode::BAD_REQUEST),
            AmountExceedsRefundable { .. } => ("amount_exceeds_refundable", StatusCode::UNPROCESSABLE_ENTITY),
            RefundLimitReached(_) => ("refund_limit_reached", StatusCode::CONFLICT),
            ProcessorUnavailable => ("processor_unavailable", StatusCode::BAD_GATEWAY),
            ProcessorDeclined(_) => ("processor_declined", StatusCode::PAYMENT_REQUIRED),
            KeyTaken | Internal(_) => ("internal_error", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// Every top-level code, for the OpenAPI document and its sync test.
    pub const CODES: &'static [&'static str] = &[
        "malformed_request",
        "invalid_token",
        "insufficient_scope",
        "not_found",
        "method_not_allowed",
        "duplicate_reference",
        "idempotency_key_in_use",
        "invalid_state_transition",
        "payload_too_large",
        "unsupported_media_type",
        "unknown_field",
        "validation_failed",
        "idempotency_key_reuse",
        "virtual_account_ambiguous",
        "signature_missing",
        "signature_invalid",
        "signature_expired",
        "signature_replayed",
        "digest_mismatch",
        "unknown_key",
        "idempotency_key_required",
        "amount_exceeds_refundable",
        "refund_limit_reached",
        "processor_unavailable",
        "processor_declined",
        "internal_error",
    ];

    fn title(&self) -> &'static str {
        use ApiError::*;
        match self {
            MalformedRequest(_) => "Malformed request",
            Unauthorized(_) => "Authentication required",
            InsufficientScope(_) => "Insufficient scope",
            NotFound(_) => "Not found",
            MethodNotAllowed(_) => "Method not allowed",
            DuplicateReference => "Duplicate reference",
            IdempotencyKeyInUse => "Idempotency key in use",
            InvalidStateTransition(_) => "Invalid state transition",
            PayloadTooLarge => "Payload too large",
            UnsupportedMediaType(_) => "Unsupported media type",
            Validation(_) => "Validation failed",
            IdempotencyKeyReuse => "Idempotency key reused",
            VirtualAccountAmbiguous(_) => "Ambiguous virtual account",
            Signature(_) => "Request signature refused",
            IdempotencyKeyRequired => "Idempotency key required",
            AmountExceedsRefundable { .. } => "Amount exceeds refundable",
            RefundLimitReached(_) => "Refund limit reached",
            ProcessorUnavailable => "Processor unavailable",
            ProcessorDeclined(_) => "Processor declined",
            KeyTaken | Internal(_) => "Internal error",
        }
    }

    fn detail(&self) -> String {
        use ApiError::*;
        match self {
            MalformedRequest(d) | NotFound(d) | InvalidStateTransition(d) => d.clone(),
            Unauthorized(Some(d)) => d.clone(),
            Unauthorized(None) => "send an access token: Authorization: Bearer <token> (get one from POST /oauth/token)".into(),
            InsufficientScope(s) => format!("this operation needs the scope {s}"),
            MethodNotAllowed(m) => format!("allowed methods: {}", methods(m)),
            DuplicateReference => {
                "a session with this customer_id and reference already exists; list sessions by reference to find it".into()
            }
            IdempotencyKeyInUse => "a request with this Idempotency-Key is still being processed; retry later".into(),
            PayloadTooLarge => "request bodies are limited to 64 KiB".into(),
            UnsupportedMediaType(expected) => format!("send Content-Type: {expected}"),
            Validation(errors) => format!("{} field(s) failed validation", errors.len()),
            IdempotencyKeyReuse => "this Idempotency-Key was used with a different request".into(),
            VirtualAccountAmbiguous(number) => {
                format!("virtual account number {number} names more than one session; the deposit was not credited")
            }
            Signature(e) => e.to_string(),
            IdempotencyKeyRequired => {
                "refunds move money: send an Idempotency-Key header (1-255 printable ASCII) and reuse it on retries".into()
            }
            AmountExceedsRefundable { refundable } => format!("the payment has {refundable} (minor units) left to refund"),
            RefundLimitReached(n) => format!("the payment already has {n} refunds, the most one payment may have"),
            ProcessorUnavailable => "the payment processor did not answer; nothing changed, retry with the same Idempotency-Key".into(),
            ProcessorDeclined(code) => format!("the payment processor declined: {code}"),
            // Internal details stay in the logs.
            KeyTaken | Internal(_) => "an internal error occurred; retry with the same Idempotency-Key".into(),
        }
    }

    pub fn to_response(&self) -> Response<Body> {
        let (code, status) = self.code_and_status();
        let mut body = json!({
            "type": format!("https://paysession.dev/problems/{code}"),
            "title": self.title(),
            "status": status.as_u16(),
            "detail": capped(&self.detail()),
            "code": code,
        });
        if let ApiError::Validation(errors) = self {
            let listed: Vec<Value> = errors
                .iter()
                .take(MAX_LISTED_ERRORS)
                .map(|e| json!({"field": capped(&e.field), "code": e.code, "message": capped(&e.message)}))
                .collect();
            if errors.len() > MAX_LISTED_ERRORS {
                body["detail"] = json!(format!("{} field(s) failed validation; the first {MAX_LISTED_ERRORS} are listed", errors.len()));
            }
            body["errors"] = Value::Array(listed);
        }
        if let ApiError::AmountExceedsRefundable { refundable } = self {
            body["refundable"] = json!(refundable);
        }
        let mut resp = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/problem+json")
            .body(Body::Text(body.to_string()))
            .expect("static headers are valid");
        match self {
            ApiError::Unauthorized(detail) => {
                let v = match detail {
                    Some(d) => {
                        format!("Bearer realm=\"paysession\", error=\"invalid_token\", error_description=\"{}\"", d.replace('"', "'"))
                    }
                    None => "Bearer realm=\"paysession\"".to_string(),
                };
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_str(&v).expect("ascii"));
            }
            ApiError::InsufficientScope(scope) => {
                let v = format!("Bearer realm=\"paysession\", error=\"insufficient_scope\", scope=\"{scope}\"");
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_str(&v).expect("ascii"));
            }
            ApiError::MethodNotAllowed(m) => {
                resp.headers_mut().insert(header::ALLOW, HeaderValue::from_str(&methods(m)).expect("ascii"));
            }
            _ => {}
        }
        resp
    }
}

/// Errors echo request input (field names, ids, values): each echoed text is cut to this
/// many characters and at most this many field errors are listed, so an error is small
/// whatever the request (a 60 KB query string once made a 4 MB answer).
const MAX_ECHO_CHARS: usize = 200;
const MAX_LISTED_ERRORS: usize = 50;

fn capped(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO_CHARS) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}

fn methods(m: &[http::Method]) -> String {
    m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
}

impl From<paysession_app::StoreError> for ApiError {
    fn from(e: paysession_app::StoreError) -> Self {
        use paysession_app::StoreError as S;
        match e {
            S::DuplicateReference => ApiError::DuplicateReference,
            S::IdempotencyLost => ApiError::KeyTaken,
            S::VirtualAccountTaken(number) => ApiError::VirtualAccountAmbiguous(number),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<paysession_app::signing::CheckError> for ApiError {
    fn from(e: paysession_app::signing::CheckError) -> Self {
        match e {
            paysession_app::signing::CheckError::Signature(s) => ApiError::Signature(s),
            paysession_app::signing::CheckError::Store(s) => s.into(),
        }
    }
}

impl From<paysession_app::signing::SigningError> for ApiError {
    fn from(e: paysession_app::signing::SigningError) -> Self {
        use paysession_app::signing::SigningError as E;
        use paysession_domain::errors::FieldCode;
        let field = |code, message: String| ApiError::Validation(vec![FieldError { field: "public_key".into(), code, message }]);
        match e {
            E::Invalid(m) => field(FieldCode::InvalidValue, m),
            e @ E::TooMany => field(FieldCode::TooMany, e.to_string()),
            e @ E::Duplicate => field(FieldCode::Duplicate, e.to_string()),
            E::Refused(m) => ApiError::InvalidStateTransition(m),
            E::NotFound(id) => ApiError::NotFound(format!("no signing key with id {id}")),
            E::Store(s) => s.into(),
        }
    }
}

impl From<paysession_app::idempotency::KeyError> for ApiError {
    fn from(e: paysession_app::idempotency::KeyError) -> Self {
        use paysession_app::idempotency::KeyError as K;
        match e {
            K::Malformed => ApiError::MalformedRequest(e.to_string()),
            K::InUse => ApiError::IdempotencyKeyInUse,
            K::Reused => ApiError::IdempotencyKeyReuse,
            K::Store(s) => s.into(),
        }
    }
}

impl From<paysession_app::sessions::SessionError> for ApiError {
    fn from(e: paysession_app::sessions::SessionError) -> Self {
        use paysession_app::sessions::SessionError as E;
        match e {
            E::Invalid(fields) => ApiError::Validation(fields),
            E::NotFound(id) => ApiError::NotFound(format!("no payment session with id {id}")),
            E::Refused(t) => ApiError::InvalidStateTransition(t.to_string()),
            e @ E::MerchantMissing(_) => ApiError::Internal(e.to_string()),
            E::Payment(e) => ApiError::InvalidStateTransition(e.to_string()),
            E::Store(s) => s.into(),
        }
    }
}

impl From<paysession_app::refunds::RefundError> for ApiError {
    fn from(e: paysession_app::refunds::RefundError) -> Self {
        use paysession_app::refunds::RefundError as E;
        match e {
            E::PaymentNotFound(id) => ApiError::Validation(vec![FieldError {
                field: "payment_id".into(),
                code: paysession_domain::FieldCode::NotFound,
                message: format!("no payment with id {id}"),
            }]),
            E::NotFound(id) => ApiError::NotFound(format!("no refund with id {id}")),
            E::NotRefundable(detail) => ApiError::InvalidStateTransition(detail),
            E::ExceedsRefundable { refundable } => ApiError::AmountExceedsRefundable { refundable },
            E::LimitReached(n) => ApiError::RefundLimitReached(n),
            e @ E::InvalidTransition { .. } => ApiError::InvalidStateTransition(e.to_string()),
            E::Store(s) => s.into(),
        }
    }
}

impl From<paysession_app::captures::CaptureError> for ApiError {
    fn from(e: paysession_app::captures::CaptureError) -> Self {
        use paysession_app::captures::CaptureError as E;
        use paysession_domain::payment::PaymentError;
        match e {
            E::NotFound(id) => ApiError::NotFound(format!("no payment with id {id}")),
            E::Refused(PaymentError::CaptureAmount { capturable }) => ApiError::Validation(vec![FieldError {
                field: "amount".into(),
                code: paysession_domain::FieldCode::OutOfRange,
                message: format!("must be between 1 and {capturable}, the amount capturable"),
            }]),
            E::Refused(e) => ApiError::InvalidStateTransition(e.to_string()),
            E::ProcessorRefused(code) => ApiError::ProcessorDeclined(code),
            E::ProcessorUnavailable => ApiError::ProcessorUnavailable,
            E::Store(s) => s.into(),
        }
    }
}
