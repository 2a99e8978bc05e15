//! Parsing a create-session request body into a validated [`SessionSpec`].
//! "Parse, don't validate": everything downstream takes the typed spec.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::attempt::CaptureMethod;
use crate::errors::{Errors, FieldCode, FieldError, index, path};
use crate::fields::{self, FieldResult};
use crate::iban::{Iban, IbanError};
use crate::json::{ObjectReader, as_int};
use crate::lifecycle::{ExpirationMode, PaymentType};
use crate::model::*;
use crate::money::{Amount, Currency, MAX_AMOUNT};

pub const DEFAULT_EXPIRY: Duration = Duration::minutes(15);
pub const MIN_EXPIRY: Duration = Duration::seconds(60);
pub const MAX_EXPIRY: Duration = Duration::days(30);
pub const MIN_DUE_DAYS: i64 = 5;
pub const MAX_ITEMS: usize = 100;
pub const MAX_RECIPIENTS: usize = 20;
pub const MAX_ALLOWED_DOMAINS: usize = 20;
pub const MAX_METADATA_KEYS: usize = 50;

/// What the merchant's configuration contributes to validation.
#[derive(Debug, Clone)]
pub struct MerchantPolicy {
    pub payment_methods: Vec<PaymentMethodKind>,
    pub redirect_urls: Vec<String>,
}

/// A create-session request that passed every rule. A stored session embeds it whole
/// (`PaymentSession::spec`), so the typed values (`Amount`, `Currency`, `AllowedDomain`)
/// are kept, and the serialised field names are the API's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSpec {
    pub session_type: SessionType,
    pub amount: Amount,
    pub currency: Currency,
    pub customer_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<Customer>,
    pub reference: String,
    pub due_date: Option<NaiveDate>,
    pub purpose: Option<Purpose>,
    pub items: Vec<LineItem>,
    pub recipients: Vec<Recipient>,
    pub allowed_domains: Vec<AllowedDomain>,
    #[serde(serialize_with = "crate::rfc3339::serialize", deserialize_with = "crate::rfc3339::deserialize")]
    pub expires_at: DateTime<Utc>,
    pub expiration_mode: ExpirationMode,
    pub payment_type: PaymentType,
    pub payment_methods: Vec<PaymentMethodKind>,
    /// `manual`: card and e-wallet payments authorise only, and are captured by the merchant.
    pub capture_method: crate::attempt::CaptureMethod,
    pub mode: Mode,
    pub auto_confirm: bool,
    pub save_payment_method: Option<SavePaymentMethod>,
    pub show_saved_payment_methods: bool,
    pub mandate: Option<MandateSpec>,
    pub mandate_id: Option<String>,
    pub statement_descriptor: Option<String>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub state: Option<String>,
    pub locale: String,
    pub metadata: BTreeMap<String, String>,
}

/// Parses and validates a create-session body at `now`. Returns every failing field.
pub fn parse_create_session(body: &Value, now: DateTime<Utc>, merchant: &MerchantPolicy) -> Result<SessionSpec, Vec<FieldError>> {
    let mut e = Errors::new();
    let Some(mut r) = ObjectReader::new(body, "", &mut e) else { return Err(e.into_vec()) };

    let session_type =
        enum_field(&mut r, "session_type", &mut e, SessionType::parse, SessionType::expected).unwrap_or(SessionType::OneTime);

    let amount = r.required("amount", &mut e).and_then(|v| match as_int(v) {
        Some(n) => Amount::new(n).or_else(|| {
            let (code, msg) = if n <= 0 {
                (FieldCode::MustBePositive, "must be greater than 0".to_string())
            } else {
                (FieldCode::OutOfRange, format!("must be at most {MAX_AMOUNT} minor units"))
            };
            e.add("amount", code, msg);
            None
        }),
        None => {
            e.add("amount", FieldCode::InvalidType, "must be an integer amount in minor units (1050 = 10.50)");
            None
        }
    });

    let currency = r.required_str("currency", &mut e).and_then(|s| {
        Currency::parse(s).or_else(|| {
            e.add("currency", FieldCode::InvalidCurrency, "must be an active ISO 4217 code in upper case, like EUR");
            None
        })
    });

    let customer_id = str_with(&mut r, "customer_id", true, &mut e, fields::customer_id);
    let customer = r.get("customer").and_then(|v| parse_customer(v, &mut e));
    let reference = str_with(&mut r, "reference", true, &mut e, fields::reference);

    let due_date = str_with(&mut r, "due_date", false, &mut e, fields::date).and_then(|d| {
        let earliest = now.date_naive() + Duration::days(MIN_DUE_DAYS);
        if d < earliest {
            e.add("due_date", FieldCode::TooSoon, format!("must be on or after {earliest} (5 calendar days after today, UTC)"));
            None
        } else {
            Some(d)
        }
    });

    let purpose = enum_field(&mut r, "purpose", &mut e, Purpose::parse, Purpose::expected);

    let items = r.array("items", &mut e).map(|a| parse_items(a, &mut e)).unwrap_or_default();
    let items_given = r.get("items").is_some();
    let recipients_raw = r.array("recipients", &mut e);
    let recipients_given = recipients_raw.is_some();
    let recipients = recipients_raw.map(|a| parse_recipients(a, currency, &mut e)).unwrap_or_default();

    let allowed_domains = r
        .array("allowed_domains", &mut e)
        .map(|a| {
            if a.len() > MAX_ALLOWED_DOMAINS {
                e.add("allowed_domains", FieldCode::TooMany, format!("must have at most {MAX_ALLOWED_DOMAINS} entries"));
            }
            let mut out: Vec<AllowedDomain> = Vec::new();
            for (i, v) in a.iter().enumerate() {
                let p = index("allowed_domains", i);
                match v.as_str() {
                    Some(s) => match fields::allowed_domain(s) {
                        Ok(d) if out.contains(&d) => e.add(p, FieldCode::Duplicate, "is listed twice"),
                        Ok(d) => out.push(d),
                        Err((c, m)) => e.add(p, c, m),
                    },
                    None => e.add(p, FieldCode::InvalidType, "must be a string"),
                }
            }
            out
        })
        .unwrap_or_default();

    let expires_at = str_with(&mut r, "expires_at", false, &mut e, fields::timestamp);
    let expires_at = match expires_at {
        Some(t) if t < now + MIN_EXPIRY => {
            e.add("expires_at", FieldCode::TooSoon, "must be at least 60 seconds in the future");
            None
        }
        Some(t) if t > now + MAX_EXPIRY => {
            e.add("expires_at", FieldCode::TooLate, "must be at most 30 days in the future");
            None
        }
        Some(t) => Some(t),
        None if r.get("expires_at").is_some() => None,
        None => Some(now + DEFAULT_EXPIRY),
    };
    if let (Some(exp), Some(due)) = (expires_at, due_date) {
        let due_start = due.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
        if exp >= due_start {
            e.add("expires_at", FieldCode::TooLate, format!("must be before due_date ({due})"));
        }
    }

    let expiration_mode =
        enum_field(&mut r, "expiration_mode", &mut e, parse_expiration_mode, || "loose, strict".into()).unwrap_or(ExpirationMode::Loose);
    let payment_type =
        enum_field(&mut r, "payment_type", &mut e, parse_payment_type, || "single, multiple".into()).unwrap_or(PaymentType::Single);

    let payment_methods = parse_payment_methods(&mut r, payment_type, merchant, &mut e);

    let capture_method = enum_field(&mut r, "capture_method", &mut e, CaptureMethod::parse, || "automatic, manual".into())
        .unwrap_or(CaptureMethod::Automatic);
    if capture_method == CaptureMethod::Manual
        && payment_methods.as_ref().is_some_and(|methods| !methods.iter().any(|m| CaptureMethod::applies_to(*m)))
    {
        e.add("capture_method", FieldCode::UnsupportedForMethod, "manual capture needs card or ewallet among payment_methods");
    }

    let mode = enum_field(&mut r, "mode", &mut e, Mode::parse, Mode::expected).unwrap_or(Mode::Redirect);
    let auto_confirm = r.bool("auto_confirm", &mut e).unwrap_or(true);
    if !auto_confirm && session_type == SessionType::NextInSeries {
        e.add("auto_confirm", FieldCode::NotAllowed, "next_in_series sessions are charged when created");
    }

    let save_given = enum_field(&mut r, "save_payment_method", &mut e, SavePaymentMethod::parse, SavePaymentMethod::expected);
    let save_payment_method = match (session_type, save_given) {
        (SessionType::OneTime, s) => Some(s.unwrap_or(SavePaymentMethod::Never)),
        (SessionType::FirstInSeries, None | Some(SavePaymentMethod::Always)) => Some(SavePaymentMethod::Always),
        (SessionType::FirstInSeries, Some(_)) => {
            e.add("save_payment_method", FieldCode::NotAllowed, "first_in_series sessions always save the payment method");
            None
        }
        (SessionType::NextInSeries, Some(_)) => {
            e.add("save_payment_method", FieldCode::NotAllowed, "next_in_series sessions use the mandate's saved method");
            None
        }
        (SessionType::NextInSeries, None) => None,
    };

    let show_saved_payment_methods = r.bool("show_saved_payment_methods", &mut e).unwrap_or(false);
    if show_saved_payment_methods && mode == Mode::Api {
        e.add("show_saved_payment_methods", FieldCode::NotAllowed, "is only available in redirect mode");
    }

    let mandate_raw = r.get("mandate");
    let mandate = match (session_type, mandate_raw) {
        (SessionType::FirstInSeries, Some(v)) => parse_mandate(v, amount, now, &mut e),
        (SessionType::FirstInSeries, None) => Some(MandateSpec { mandate_type: MandateType::OnDemand, max_amount: None, schedule: None }),
        (_, Some(_)) => {
            e.add("mandate", FieldCode::NotAllowed, "is only accepted for first_in_series sessions");
            None
        }
        (_, None) => None,
    };

    let mandate_id = str_with(&mut r, "mandate_id", false, &mut e, |s| {
        if s.starts_with("md_") && s.len() <= 100 {
            Ok(s.to_string())
        } else {
            Err((FieldCode::InvalidFormat, "must be a mandate id (md_…)".to_string()))
        }
    });
    match (session_type, mandate_id.is_some() || r.get("mandate_id").is_some()) {
        (SessionType::NextInSeries, false) => e.add("mandate_id", FieldCode::Required, "is required for next_in_series sessions"),
        (SessionType::OneTime | SessionType::FirstInSeries, true) => {
            e.add("mandate_id", FieldCode::NotAllowed, "is only accepted for next_in_series sessions")
        }
        _ => {}
    }

    let statement_descriptor = str_with(&mut r, "statement_descriptor", false, &mut e, fields::statement_descriptor);
    let success_url = redirect_field(&mut r, "success_url", merchant, &mut e);
    let cancel_url = redirect_field(&mut r, "cancel_url", merchant, &mut e);
    let state = str_with(&mut r, "state", false, &mut e, |s| {
        if s.chars().count() > 512 { Err((FieldCode::TooLong, "must be at most 512 characters".into())) } else { Ok(s.to_string()) }
    });
    let locale = str_with(&mut r, "locale", false, &mut e, fields::locale).unwrap_or_else(|| "en".to_string());
    let metadata = r.get("metadata").map(|v| parse_metadata(v, &mut e)).unwrap_or_default();

    r.finish(&mut e);

    // Sums are checked only when their parts parsed, to avoid reporting a mismatch that is
    // just the echo of an earlier error.
    if let Some(amount) = amount {
        if items_given && !e.has_error_at("items") {
            let total = items.iter().try_fold(0i128, |acc, it| Some(acc + i128::from(it.quantity) * i128::from(it.unit_amount)));
            if total != Some(i128::from(amount.minor())) {
                e.add(
                    "items",
                    FieldCode::SumMismatch,
                    format!("sum of quantity × unit_amount ({}) must equal amount ({})", total.unwrap_or_default(), amount.minor()),
                );
            }
        }
        if recipients_given && !e.has_error_at("recipients") {
            let total: i128 = recipients.iter().map(|r| i128::from(r.amount)).sum();
            if total != i128::from(amount.minor()) {
                e.add(
                    "recipients",
                    FieldCode::SumMismatch,
                    format!("sum of recipient amounts ({total}) must equal amount ({})", amount.minor()),
                );
            }
        }
    }

    e.finish(|| SessionSpec {
        session_type,
        amount: amount.expect("checked"),
        currency: currency.expect("checked"),
        customer_id: customer_id.expect("checked"),
        customer,
        reference: reference.expect("checked"),
        due_date,
        purpose,
        items,
        recipients,
        allowed_domains,
        expires_at: expires_at.expect("checked"),
        expiration_mode,
        payment_type,
        payment_methods: payment_methods.expect("checked"),
        capture_method,
        mode,
        auto_confirm,
        save_payment_method,
        show_saved_payment_methods,
        mandate,
        mandate_id,
        statement_descriptor,
        success_url,
        cancel_url,
        state,
        locale,
        metadata,
    })
}

fn parse_expiration_mode(s: &str) -> Option<ExpirationMode> {
    match s {
        "loose" => Some(ExpirationMode::Loose),
        "strict" => Some(ExpirationMode::Strict),
        _ => None,
    }
}

fn parse_payment_type(s: &str) -> Option<PaymentType> {
    match s {
        "single" => Some(PaymentType::Single),
        "multiple" => Some(PaymentType::Multiple),
        _ => None,
    }
}

/// A string field run through `check`; errors are recorded under the field's path.
fn str_with<T>(
    r: &mut ObjectReader<'_>,
    key: &'static str,
    required: bool,
    e: &mut Errors,
    check: impl FnOnce(&str) -> FieldResult<T>,
) -> Option<T> {
    let s = if required { r.required_str(key, e) } else { r.str(key, e) }?;
    check(s).map_err(|(c, m)| e.add(r.field_path(key), c, m)).ok()
}

fn enum_field<T>(
    r: &mut ObjectReader<'_>,
    key: &'static str,
    e: &mut Errors,
    parse: impl FnOnce(&str) -> Option<T>,
    expected: impl FnOnce() -> String,
) -> Option<T> {
    let s = r.str(key, e)?;
    parse(s).or_else(|| {
        e.add(r.field_path(key), FieldCode::InvalidValue, format!("must be one of: {}", expected()));
        None
    })
}

fn parse_customer(v: &Value, e: &mut Errors) -> Option<Customer> {
    let mut r = ObjectReader::new(v, "customer", e)?;
    let name = str_with(&mut r, "name", false, e, |s| fields::text(s, 1, 200));
    let email = str_with(&mut r, "email", false, e, fields::email);
    let phone = str_with(&mut r, "phone", false, e, fields::phone);
    let country = str_with(&mut r, "country", false, e, fields::country);
    r.finish(e);
    Some(Customer { name, email, phone, country })
}

fn parse_items(a: &[Value], e: &mut Errors) -> Vec<LineItem> {
    if a.is_empty() {
        e.add("items", FieldCode::TooFew, "must have at least 1 item when given");
    }
    if a.len() > MAX_ITEMS {
        e.add("items", FieldCode::TooMany, format!("must have at most {MAX_ITEMS} items"));
    }
    let mut out = Vec::new();
    for (i, v) in a.iter().enumerate() {
        let p = index("items", i);
        let Some(mut r) = ObjectReader::new(v, &p, e) else { continue };
        let name = str_with(&mut r, "name", true, e, |s| fields::text(s, 1, 200));
        let quantity = r.required("quantity", e).and_then(|v| positive_int(v, &path(&p, "quantity"), 1, 1_000_000, e));
        let unit_amount = r.required("unit_amount", e).and_then(|v| match as_int(v) {
            Some(n) if (0..=MAX_AMOUNT).contains(&n) => Some(n),
            Some(_) => {
                e.add(path(&p, "unit_amount"), FieldCode::OutOfRange, format!("must be between 0 and {MAX_AMOUNT}"));
                None
            }
            None => {
                e.add(path(&p, "unit_amount"), FieldCode::InvalidType, "must be an integer in minor units");
                None
            }
        });
        let item_type = r.required_str("type", e).and_then(|s| {
            ItemType::parse(s).or_else(|| {
                e.add(path(&p, "type"), FieldCode::InvalidValue, format!("must be one of: {}", ItemType::expected()));
                None
            })
        });
        let reference = str_with(&mut r, "reference", false, e, fields::reference);
        r.finish(e);
        if let (Some(name), Some(quantity), Some(unit_amount), Some(item_type)) = (name, quantity, unit_amount, item_type) {
            out.push(LineItem { name, quantity, unit_amount, item_type, reference });
        }
    }
    out
}

pub(crate) fn positive_int(v: &Value, p: &str, min: i64, max: i64, e: &mut Errors) -> Option<i64> {
    match as_int(v) {
        Some(n) if n < min.max(1) => {
            e.add(p, FieldCode::MustBePositive, format!("must be at least {min}"));
            None
        }
        Some(n) if n > max => {
            e.add(p, FieldCode::OutOfRange, format!("must be at most {max}"));
            None
        }
        Some(n) => Some(n),
        None => {
            e.add(p, FieldCode::InvalidType, "must be an integer");
            None
        }
    }
}

fn parse_recipients(a: &[Value], currency: Option<Currency>, e: &mut Errors) -> Vec<Recipient> {
    if a.is_empty() {
        e.add("recipients", FieldCode::TooFew, "must have at least 1 recipient when given");
    }
    if a.len() > MAX_RECIPIENTS {
        e.add("recipients", FieldCode::TooMany, format!("must have at most {MAX_RECIPIENTS} recipients"));
    }
    let mut out = Vec::new();
    for (i, v) in a.iter().enumerate() {
        let p = index("recipients", i);
        let Some(mut r) = ObjectReader::new(v, &p, e) else { continue };
        let name = str_with(&mut r, "name", true, e, |s| fields::text(s, 1, 200));
        let amount = r.required("amount", e).and_then(|v| positive_int(v, &path(&p, "amount"), 1, MAX_AMOUNT, e));
        let rc = r.str("currency", e);
        let rcurrency = match (rc, currency) {
            (Some(c), Some(session)) if c != session.code() => {
                e.add(path(&p, "currency"), FieldCode::CurrencyMismatch, format!("must equal the session currency {session}"));
                None
            }
            (_, Some(session)) => Some(session.code().to_string()),
            (_, None) => None,
        };
        let reference = str_with(&mut r, "reference", false, e, fields::reference);
        let account = r.required("account", e).and_then(|v| parse_account(v, &path(&p, "account"), e));
        r.finish(e);
        if let (Some(name), Some(amount), Some(currency), Some(account)) = (name, amount, rcurrency, account) {
            out.push(Recipient { name, amount, currency, reference, account });
        }
    }
    out
}

fn parse_account(v: &Value, p: &str, e: &mut Errors) -> Option<RecipientAccount> {
    let mut r = ObjectReader::new(v, p, e)?;
    let account = if r.get("iban").is_some() {
        str_with(&mut r, "iban", true, e, |s| {
            Iban::parse(s).map(|i| i.as_str().to_string()).map_err(|err| match err {
                IbanError::Checksum => (FieldCode::InvalidChecksum, "IBAN check digits do not match".to_string()),
                IbanError::Length => (FieldCode::InvalidFormat, "IBAN has the wrong length for its country".to_string()),
                IbanError::Country => (FieldCode::InvalidCountry, "IBAN country is not an IBAN country".to_string()),
                IbanError::Format => (FieldCode::InvalidFormat, "must be an IBAN like DE89 3704 0044 0532 0130 00".to_string()),
            })
        })
        .map(|iban| RecipientAccount::Iban { iban })
    } else {
        let number = str_with(&mut r, "account_number", true, e, |s| {
            if (4..=34).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
                Ok(s.to_string())
            } else {
                Err((FieldCode::InvalidFormat, "must be 4 to 34 letters or digits (or give an iban instead)".into()))
            }
        });
        let bank_code = str_with(&mut r, "bank_code", true, e, |s| {
            if (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                Ok(s.to_string())
            } else {
                Err((FieldCode::InvalidFormat, "must be 1 to 20 letters, digits or '-'".into()))
            }
        });
        let country = str_with(&mut r, "country", true, e, fields::country);
        match (number, bank_code, country) {
            (Some(account_number), Some(bank_code), Some(country)) => Some(RecipientAccount::Local { account_number, bank_code, country }),
            _ => None,
        }
    };
    r.finish(e);
    account
}

fn parse_payment_methods(
    r: &mut ObjectReader<'_>,
    payment_type: PaymentType,
    merchant: &MerchantPolicy,
    e: &mut Errors,
) -> Option<Vec<PaymentMethodKind>> {
    let multiple_ok = |m: &PaymentMethodKind| matches!(m, PaymentMethodKind::VirtualAccount | PaymentMethodKind::Qr);
    let Some(a) = r.array("payment_methods", e) else {
        if r.get("payment_methods").is_some() {
            return None;
        }
        let mut defaults = merchant.payment_methods.clone();
        if payment_type == PaymentType::Multiple {
            defaults.retain(multiple_ok);
        }
        if defaults.is_empty() {
            e.add("payment_methods", FieldCode::Required, "no payment method enabled for this merchant fits this session");
            return None;
        }
        return Some(defaults);
    };
    if a.is_empty() {
        e.add("payment_methods", FieldCode::TooFew, "must list at least one method when given");
    }
    let mut out = Vec::new();
    for (i, v) in a.iter().enumerate() {
        let p = index("payment_methods", i);
        match v.as_str().map(|s| (s, PaymentMethodKind::parse(s))) {
            None => e.add(p, FieldCode::InvalidType, "must be a string"),
            Some((_, None)) => e.add(p, FieldCode::InvalidValue, format!("must be one of: {}", PaymentMethodKind::expected())),
            Some((s, Some(m))) => {
                if out.contains(&m) {
                    e.add(p, FieldCode::Duplicate, "is listed twice");
                } else if !merchant.payment_methods.contains(&m) {
                    e.add(p, FieldCode::NotAllowed, format!("{s} is not enabled for this merchant"));
                } else if payment_type == PaymentType::Multiple && !multiple_ok(&m) {
                    e.add(p, FieldCode::NotAllowed, "payment_type multiple accepts only virtual_account and qr");
                } else {
                    out.push(m);
                }
            }
        }
    }
    Some(out)
}

fn parse_mandate(v: &Value, amount: Option<Amount>, now: DateTime<Utc>, e: &mut Errors) -> Option<MandateSpec> {
    let mut r = ObjectReader::new(v, "mandate", e)?;
    let mandate_type = r.required_str("type", e).and_then(|s| {
        MandateType::parse(s).or_else(|| {
            e.add("mandate.type", FieldCode::InvalidValue, format!("must be one of: {}", MandateType::expected()));
            None
        })
    });
    let max_amount = r.get("max_amount").and_then(|v| positive_int(v, "mandate.max_amount", 1, MAX_AMOUNT, e));
    if let (Some(max), Some(amount)) = (max_amount, amount)
        && max < amount.minor()
    {
        e.add("mandate.max_amount", FieldCode::OutOfRange, "must be at least the session amount");
    }
    let schedule = r.get("schedule").and_then(|v| parse_schedule(v, now, e));
    let schedule_given = r.get("schedule").is_some();
    match mandate_type {
        Some(MandateType::Scheduled) if !schedule_given => {
            e.add("mandate.schedule", FieldCode::Required, "is required for scheduled mandates")
        }
        Some(MandateType::OnDemand) if schedule_given => {
            e.add("mandate.schedule", FieldCode::NotAllowed, "is only accepted for scheduled mandates")
        }
        _ => {}
    }
    r.finish(e);
    Some(MandateSpec { mandate_type: mandate_type?, max_amount, schedule })
}

fn parse_schedule(v: &Value, now: DateTime<Utc>, e: &mut Errors) -> Option<Schedule> {
    let p = "mandate.schedule";
    let mut r = ObjectReader::new(v, p, e)?;
    let interval = r.required_str("interval", e).and_then(|s| {
        Interval::parse(s).or_else(|| {
            e.add(path(p, "interval"), FieldCode::InvalidValue, format!("must be one of: {}", Interval::expected()));
            None
        })
    });
    let interval_count =
        r.required("interval_count", e).and_then(|v| positive_int(v, &path(p, "interval_count"), 1, 365, e)).map(|n| n as u32);
    let start_date = str_with(&mut r, "start_date", true, e, fields::date).and_then(|d| {
        if d < now.date_naive() {
            e.add(path(p, "start_date"), FieldCode::TooSoon, "must be today or later");
            None
        } else {
            Some(d)
        }
    });
    let end_date = str_with(&mut r, "end_date", false, e, fields::date);
    if let (Some(s), Some(end)) = (start_date, end_date)
        && end <= s
    {
        e.add(path(p, "end_date"), FieldCode::TooSoon, "must be after start_date");
    }
    let max_charges = r.get("max_charges").and_then(|v| positive_int(v, &path(p, "max_charges"), 1, 10_000, e)).map(|n| n as u32);
    let time = str_with(&mut r, "time", false, e, fields::time_of_day);
    r.finish(e);
    Some(Schedule { interval: interval?, interval_count: interval_count?, start_date: start_date?, time, end_date, max_charges })
}

fn redirect_field(r: &mut ObjectReader<'_>, key: &'static str, merchant: &MerchantPolicy, e: &mut Errors) -> Option<String> {
    let url = str_with(r, key, false, e, fields::redirect_url)?;
    let base = fields::without_query(&url);
    if merchant.redirect_urls.iter().any(|registered| registered == base) {
        Some(url)
    } else {
        e.add(key, FieldCode::NotAllowed, "must match one of the merchant's registered redirect URLs");
        None
    }
}

pub(crate) fn parse_metadata(v: &Value, e: &mut Errors) -> BTreeMap<String, String> {
    let Value::Object(map) = v else {
        e.add("metadata", FieldCode::InvalidType, "must be an object of string values");
        return BTreeMap::new();
    };
    if map.len() > MAX_METADATA_KEYS {
        e.add("metadata", FieldCode::TooMany, format!("must have at most {MAX_METADATA_KEYS} keys"));
    }
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let p = path("metadata", k);
        if k.is_empty() || k.chars().count() > 40 {
            e.add(p.clone(), FieldCode::TooLong, "keys must be 1 to 40 characters");
        }
        match v {
            Value::String(s) if s.chars().count() > 500 => e.add(p, FieldCode::TooLong, "values must be at most 500 characters"),
            Value::String(s) => {
                out.insert(k.clone(), s.clone());
            }
            _ => e.add(p, FieldCode::InvalidType, "values must be strings"),
        }
    }
    out
}
