//! Field-level validation errors, collected so a caller sees every failing field at once.

use serde::Serialize;

/// Stable, documented codes of field errors (part of the API contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldCode {
    Required,
    UnknownField,
    InvalidType,
    InvalidFormat,
    InvalidValue,
    TooShort,
    TooLong,
    TooMany,
    TooFew,
    MustBePositive,
    OutOfRange,
    InvalidCurrency,
    InvalidCountry,
    InvalidEmail,
    InvalidPhone,
    InvalidChecksum,
    SumMismatch,
    CurrencyMismatch,
    TooSoon,
    TooLate,
    NotAllowed,
    NotFound,
    Duplicate,
    /// A mandate that is not `active` (suspended, revoked, completed).
    Inactive,
    CustomerMismatch,
    OverMandateLimit,
    /// An option the chosen payment methods cannot honour (`capture_method: manual` for bank methods).
    UnsupportedForMethod,
}

impl FieldCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldCode::Required => "required",
            FieldCode::UnknownField => "unknown_field",
            FieldCode::InvalidType => "invalid_type",
            FieldCode::InvalidFormat => "invalid_format",
            FieldCode::InvalidValue => "invalid_value",
            FieldCode::TooShort => "too_short",
            FieldCode::TooLong => "too_long",
            FieldCode::TooMany => "too_many",
            FieldCode::TooFew => "too_few",
            FieldCode::MustBePositive => "must_be_positive",
            FieldCode::OutOfRange => "out_of_range",
            FieldCode::InvalidCurrency => "invalid_currency",
            FieldCode::InvalidCountry => "invalid_country",
            FieldCode::InvalidEmail => "invalid_email",
            FieldCode::InvalidPhone => "invalid_phone",
            FieldCode::InvalidChecksum => "invalid_checksum",
            FieldCode::SumMismatch => "sum_mismatch",
            FieldCode::CurrencyMismatch => "currency_mismatch",
            FieldCode::TooSoon => "too_soon",
            FieldCode::TooLate => "too_late",
            FieldCode::UnsupportedForMethod => "unsupported_for_method",
            FieldCode::NotAllowed => "not_allowed",
            FieldCode::NotFound => "not_found",
            FieldCode::Duplicate => "duplicate",
            FieldCode::Inactive => "inactive",
            FieldCode::CustomerMismatch => "customer_mismatch",
            FieldCode::OverMandateLimit => "over_mandate_limit",
        }
    }

    /// Every code, for the OpenAPI document and its sync test.
    pub const ALL: &'static [FieldCode] = &[
        FieldCode::Required,
        FieldCode::UnknownField,
        FieldCode::InvalidType,
        FieldCode::InvalidFormat,
        FieldCode::InvalidValue,
        FieldCode::TooShort,
        FieldCode::TooLong,
        FieldCode::TooMany,
        FieldCode::TooFew,
        FieldCode::MustBePositive,
        FieldCode::OutOfRange,
        FieldCode::InvalidCurrency,
        FieldCode::InvalidCountry,
        FieldCode::InvalidEmail,
        FieldCode::InvalidPhone,
        FieldCode::InvalidChecksum,
        FieldCode::SumMismatch,
        FieldCode::CurrencyMismatch,
        FieldCode::TooSoon,
        FieldCode::TooLate,
        FieldCode::NotAllowed,
        FieldCode::NotFound,
        FieldCode::Duplicate,
        FieldCode::Inactive,
        FieldCode::CustomerMismatch,
        FieldCode::OverMandateLimit,
        FieldCode::UnsupportedForMethod,
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: FieldCode,
    pub message: String,
}

/// Accumulates errors while a request is parsed; parsing continues past a failure so the
/// caller gets the complete list.
#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, field: impl Into<String>, code: FieldCode, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), code, message: message.into() });
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }
    pub fn has_error_at(&self, prefix: &str) -> bool {
        self.0.iter().any(|e| e.field == prefix || e.field.starts_with(&format!("{prefix}.")) || e.field.starts_with(&format!("{prefix}[")))
    }
    /// `Ok(value)` when nothing was recorded, else every error.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() { Ok(value()) } else { Err(self.0) }
    }
}

/// Joins a parent path and a child key the way errors name fields: `items[1].quantity`.
pub fn path(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}
