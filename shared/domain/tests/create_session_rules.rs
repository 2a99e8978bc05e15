//! One test per create-session rule of API.md, plus property tests.

use chrono::{DateTime, Duration, TimeZone, Utc};
use paysession_domain::model::PaymentMethodKind;
use paysession_domain::{FieldCode, FieldError, MerchantPolicy, PaymentType, SessionSpec, parse_create_session};
use proptest::prelude::*;
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap()
}

fn merchant() -> MerchantPolicy {
    MerchantPolicy {
        payment_methods: PaymentMethodKind::ALL.to_vec(),
        redirect_urls: vec!["https://shop.example/done".into(), "https://shop.example/cancel".into()],
    }
}

fn minimal() -> Value {
    json!({"amount": 1050, "currency": "EUR", "customer_id": "cus_1", "reference": "order-1"})
}

fn with(patch: Value) -> Value {
    let mut body = minimal();
    for (k, v) in patch.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn parse(body: &Value) -> Result<SessionSpec, Vec<FieldError>> {
    parse_create_session(body, now(), &merchant())
}

#[track_caller]
fn fails_with(body: Value, field: &str, code: FieldCode) {
    let errs = parse(&body).expect_err("should fail");
    assert!(errs.iter().any(|e| e.field == field && e.code == code), "expected {field}: {code:?}, got {errs:#?}");
}

#[test]
fn minimal_body_gets_defaults() {
    let s = parse(&minimal()).unwrap();
    assert_eq!(s.amount.minor(), 1050);
    assert_eq!(s.currency.code(), "EUR");
    assert_eq!(s.expires_at, now() + Duration::minutes(15));
    assert_eq!(s.payment_type, PaymentType::Single);
    assert_eq!(s.payment_methods.len(), 5);
    assert_eq!(s.locale, "en");
    assert!(s.auto_confirm);
}

#[test]
fn amount_rules() {
    fails_with(with(json!({"amount": 0})), "amount", FieldCode::MustBePositive);
    fails_with(with(json!({"amount": -5})), "amount", FieldCode::MustBePositive);
    fails_with(with(json!({"amount": 1_000_000_000_001i64})), "amount", FieldCode::OutOfRange);
    fails_with(with(json!({"amount": 10.5})), "amount", FieldCode::InvalidType);
    fails_with(with(json!({"amount": "1050"})), "amount", FieldCode::InvalidType);
    assert!(parse(&with(json!({"amount": 1_000_000_000_000i64}))).is_ok());
}

#[test]
fn currency_rules() {
    fails_with(with(json!({"currency": "eur"})), "currency", FieldCode::InvalidCurrency);
    fails_with(with(json!({"currency": "ABC"})), "currency", FieldCode::InvalidCurrency);
    assert_eq!(parse(&with(json!({"currency": "KWD"}))).unwrap().currency.exponent(), 3);
}

#[test]
fn required_fields_all_reported() {
    let errs = parse(&json!({})).unwrap_err();
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    for f in ["amount", "currency", "customer_id", "reference"] {
        assert!(fields.contains(&f), "{f} missing in {fields:?}");
    }
}

#[test]
fn reference_and_customer_id() {
    fails_with(with(json!({"reference": "has space"})), "reference", FieldCode::InvalidFormat);
    fails_with(with(json!({"reference": "x".repeat(101)})), "reference", FieldCode::TooLong);
    fails_with(with(json!({"customer_id": ""})), "customer_id", FieldCode::TooShort);
    fails_with(with(json!({"customer_id": "c".repeat(256)})), "customer_id", FieldCode::TooLong);
}

#[test]
fn customer_contact() {
    let body = with(json!({"customer": {"email": "nope", "phone": "123", "country": "XX", "nickname": "x"}}));
    fails_with(body.clone(), "customer.email", FieldCode::InvalidEmail);
    fails_with(body.clone(), "customer.phone", FieldCode::InvalidPhone);
    fails_with(body.clone(), "customer.country", FieldCode::InvalidCountry);
    fails_with(body, "customer.nickname", FieldCode::UnknownField);
}

#[test]
fn due_date_five_days() {
    fails_with(with(json!({"due_date": "2026-11-25"})), "due_date", FieldCode::TooSoon);
    assert!(parse(&with(json!({"due_date": "2026-11-26"}))).is_ok());
    fails_with(with(json!({"due_date": "26-11-2026"})), "due_date", FieldCode::InvalidFormat);
}

#[test]
fn purpose_enum() {
    fails_with(with(json!({"purpose": "gambling"})), "purpose", FieldCode::InvalidValue);
    assert!(parse(&with(json!({"purpose": "tuition"}))).is_ok());
}

#[test]
fn items_rules() {
    let good = with(json!({"items": [
        {"name": "Rent", "quantity": 1, "unit_amount": 1000, "type": "property"},
        {"name": "Fee", "quantity": 2, "unit_amount": 25, "type": "service_fee", "reference": "fee-1"}
    ]}));
    assert!(parse(&good).is_ok());
    fails_with(
        with(json!({"items": [{"name": "Rent", "quantity": 1, "unit_amount": 999, "type": "property"}]})),
        "items",
        FieldCode::SumMismatch,
    );
    fails_with(
        with(json!({"items": [{"name": "A", "quantity": 0, "unit_amount": 1050, "type": "product"}]})),
        "items[0].quantity",
        FieldCode::MustBePositive,
    );
    fails_with(
        with(json!({"items": [{"name": "A", "quantity": 1, "unit_amount": -1, "type": "product"}]})),
        "items[0].unit_amount",
        FieldCode::OutOfRange,
    );
    fails_with(
        with(json!({"items": [{"name": "A", "quantity": 1, "unit_amount": 1050, "type": "car"}]})),
        "items[0].type",
        FieldCode::InvalidValue,
    );
    fails_with(with(json!({"items": []})), "items", FieldCode::TooFew);
    let many: Vec<Value> = (0..101).map(|_| json!({"name": "A", "quantity": 1, "unit_amount": 0, "type": "other"})).collect();
    fails_with(with(json!({"items": many})), "items", FieldCode::TooMany);
}

#[test]
fn recipients_rules() {
    let good = with(json!({"recipients": [
        {"name": "Landlord", "amount": 1000, "account": {"iban": "DE89 3704 0044 0532 0130 00"}},
        {"name": "Agent", "amount": 50, "currency": "EUR", "account": {"account_number": "12345678", "bank_code": "021000021", "country": "US"}}
    ]}));
    assert!(parse(&good).is_ok(), "{:?}", parse(&good));
    fails_with(
        with(json!({"recipients": [{"name": "L", "amount": 1050, "account": {"iban": "DE89370400440532013001"}}]})),
        "recipients[0].account.iban",
        FieldCode::InvalidChecksum,
    );
    fails_with(
        with(json!({"recipients": [{"name": "L", "amount": 1050, "currency": "USD", "account": {"iban": "DE89370400440532013000"}}]})),
        "recipients[0].currency",
        FieldCode::CurrencyMismatch,
    );
    fails_with(
        with(json!({"recipients": [{"name": "L", "amount": 1000, "account": {"iban": "DE89370400440532013000"}}]})),
        "recipients",
        FieldCode::SumMismatch,
    );
    fails_with(
        with(json!({"recipients": [{"name": "L", "amount": 1050, "account": {}}]})),
        "recipients[0].account.account_number",
        FieldCode::Required,
    );
}

#[test]
fn allowed_domains_rules() {
    assert_eq!(parse(&with(json!({"allowed_domains": ["https://shop.example", "com.shop.app"]}))).unwrap().allowed_domains.len(), 2);
    fails_with(with(json!({"allowed_domains": ["http://shop.example"]})), "allowed_domains[0]", FieldCode::InvalidFormat);
    fails_with(with(json!({"allowed_domains": ["https://shop.example/checkout"]})), "allowed_domains[0]", FieldCode::InvalidFormat);
    let many: Vec<String> = (0..21).map(|i| format!("https://s{i}.example")).collect();
    fails_with(with(json!({"allowed_domains": many})), "allowed_domains", FieldCode::TooMany);
}

#[test]
fn expiry_window_and_due_date() {
    fails_with(with(json!({"expires_at": "2026-11-21T10:00:30Z"})), "expires_at", FieldCode::TooSoon);
    fails_with(with(json!({"expires_at": "2026-12-21T10:00:01Z"})), "expires_at", FieldCode::TooLate);
    assert!(parse(&with(json!({"expires_at": "2026-11-21T10:01:00Z"}))).is_ok());
    fails_with(with(json!({"expires_at": "2026-11-30T00:00:00Z", "due_date": "2026-11-30"})), "expires_at", FieldCode::TooLate);
    fails_with(with(json!({"expires_at": "tomorrow"})), "expires_at", FieldCode::InvalidFormat);
}

#[test]
fn payment_type_and_methods() {
    fails_with(with(json!({"payment_type": "multiple", "payment_methods": ["card"]})), "payment_methods[0]", FieldCode::NotAllowed);
    let s = parse(&with(json!({"payment_type": "multiple"}))).unwrap();
    assert_eq!(s.payment_methods, vec![PaymentMethodKind::VirtualAccount, PaymentMethodKind::Qr]);
    fails_with(with(json!({"payment_methods": ["cheque"]})), "payment_methods[0]", FieldCode::InvalidValue);
    let narrow = MerchantPolicy { payment_methods: vec![PaymentMethodKind::Card], redirect_urls: vec![] };
    let errs = parse_create_session(&with(json!({"payment_methods": ["qr"]})), now(), &narrow).unwrap_err();
    assert_eq!(errs[0].code, FieldCode::NotAllowed);
    let errs = parse_create_session(&with(json!({"payment_type": "multiple"})), now(), &narrow).unwrap_err();
    assert_eq!(errs[0].field, "payment_methods");
}

#[test]
fn mode_and_saved_methods() {
    fails_with(with(json!({"mode": "embedded"})), "mode", FieldCode::InvalidValue);
    fails_with(with(json!({"mode": "api", "show_saved_payment_methods": true})), "show_saved_payment_methods", FieldCode::NotAllowed);
    fails_with(with(json!({"auto_confirm": "no"})), "auto_confirm", FieldCode::InvalidType);
}

#[test]
fn session_type_rules() {
    let s = parse(&with(json!({"session_type": "first_in_series"}))).unwrap();
    assert_eq!(s.save_payment_method, Some(paysession_domain::model::SavePaymentMethod::Always));
    assert!(s.mandate.is_some());
    fails_with(
        with(json!({"session_type": "first_in_series", "save_payment_method": "never"})),
        "save_payment_method",
        FieldCode::NotAllowed,
    );
    fails_with(with(json!({"session_type": "next_in_series"})), "mandate_id", FieldCode::Required);
    fails_with(
        with(json!({"session_type": "next_in_series", "mandate_id": "md_1", "auto_confirm": false})),
        "auto_confirm",
        FieldCode::NotAllowed,
    );
    fails_with(with(json!({"mandate_id": "md_1"})), "mandate_id", FieldCode::NotAllowed);
    fails_with(with(json!({"mandate": {"type": "on_demand"}})), "mandate", FieldCode::NotAllowed);
    fails_with(with(json!({"session_type": "first_in_series", "mandate": {"type": "scheduled"}})), "mandate.schedule", FieldCode::Required);
    fails_with(
        with(json!({"session_type": "first_in_series", "mandate": {"type": "on_demand", "max_amount": 10}})),
        "mandate.max_amount",
        FieldCode::OutOfRange,
    );
    let sched = json!({"session_type": "first_in_series", "mandate": {"type": "scheduled",
        "schedule": {"interval": "month", "interval_count": 1, "start_date": "2026-12-01", "end_date": "2026-11-30"}}});
    fails_with(with(sched), "mandate.schedule.end_date", FieldCode::TooSoon);
    let ok = json!({"session_type": "first_in_series", "mandate": {"type": "scheduled",
        "schedule": {"interval": "month", "interval_count": 1, "start_date": "2026-12-01", "max_charges": 12}}});
    assert!(parse(&with(ok)).is_ok());
    let timed = json!({"session_type": "first_in_series", "mandate": {"type": "scheduled",
        "schedule": {"interval": "month", "interval_count": 1, "start_date": "2026-12-01", "time": "23:30"}}});
    let spec = parse(&with(timed)).unwrap();
    assert_eq!(spec.mandate.unwrap().schedule.unwrap().time, chrono::NaiveTime::from_hms_opt(23, 30, 0));
    for bad in ["25:00", "9:00", "09:00:00", "noon"] {
        let body = json!({"session_type": "first_in_series", "mandate": {"type": "scheduled",
            "schedule": {"interval": "month", "interval_count": 1, "start_date": "2026-12-01", "time": bad}}});
        fails_with(with(body), "mandate.schedule.time", FieldCode::InvalidFormat);
    }
}

#[test]
fn descriptor_state_locale_urls() {
    fails_with(with(json!({"statement_descriptor": "ACME*SHOP"})), "statement_descriptor", FieldCode::InvalidFormat);
    fails_with(with(json!({"statement_descriptor": "A".repeat(21)})), "statement_descriptor", FieldCode::TooLong);
    fails_with(with(json!({"state": "s".repeat(513)})), "state", FieldCode::TooLong);
    fails_with(with(json!({"locale": "english"})), "locale", FieldCode::InvalidFormat);
    fails_with(with(json!({"success_url": "https://evil.example/done"})), "success_url", FieldCode::NotAllowed);
    assert!(parse(&with(json!({"success_url": "https://shop.example/done?order=1", "cancel_url": "https://shop.example/cancel"}))).is_ok());
}

#[test]
fn metadata_limits() {
    let big: serde_json::Map<String, Value> = (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    fails_with(with(json!({"metadata": big})), "metadata", FieldCode::TooMany);
    fails_with(with(json!({"metadata": {"k".repeat(41): "v"}})), &format!("metadata.{}", "k".repeat(41)), FieldCode::TooLong);
    fails_with(with(json!({"metadata": {"k": 1}})), "metadata.k", FieldCode::InvalidType);
    fails_with(with(json!({"metadata": {"k": "v".repeat(501)}})), "metadata.k", FieldCode::TooLong);
}

#[test]
fn unknown_fields_rejected_everywhere() {
    let body =
        with(json!({"amount_limit": 5, "items": [{"name": "A", "quantity": 1, "unit_amount": 1050, "type": "other", "colour": "red"}]}));
    fails_with(body.clone(), "amount_limit", FieldCode::UnknownField);
    fails_with(body, "items[0].colour", FieldCode::UnknownField);
}

#[test]
fn not_an_object() {
    fails_with(json!([1, 2]), "body", FieldCode::InvalidType);
}

// ---- properties ----

fn currency_code() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec!["EUR", "USD", "JPY", "KWD", "GBP", "IDR"])
}

prop_compose! {
    fn valid_items()(parts in proptest::collection::vec((1i64..50, 0i64..100_000), 1..20)) -> (Vec<Value>, i64) {
        let total = parts.iter().map(|(q, u)| q * u).sum();
        let items = parts.iter().enumerate().map(|(i, (q, u))| json!({"name": format!("item {i}"), "quantity": q, "unit_amount": u, "type": "product"})).collect();
        (items, total)
    }
}

proptest! {
    #[test]
    fn any_positive_amount_in_range_parses(amount in 1i64..=1_000_000_000_000, cur in currency_code(), reference in "[A-Za-z0-9_-]{1,100}") {
        let s = parse(&json!({"amount": amount, "currency": cur, "customer_id": "c", "reference": reference})).unwrap();
        prop_assert_eq!(s.amount.minor(), amount);
    }

    #[test]
    fn item_sums_are_exact((items, total) in valid_items()) {
        prop_assume!(total > 0);
        let body = json!({"amount": total, "currency": "EUR", "customer_id": "c", "reference": "r", "items": items});
        prop_assert!(parse(&body).is_ok());
        let off = json!({"amount": total + 1, "currency": "EUR", "customer_id": "c", "reference": "r", "items": body["items"]});
        let errs = parse(&off).unwrap_err();
        prop_assert!(errs.iter().any(|e| e.code == FieldCode::SumMismatch));
    }

    #[test]
    fn every_unknown_field_is_reported(names in proptest::collection::btree_set("[a-z]{3,12}_x", 1..8)) {
        let mut body = minimal();
        for n in &names { body[n.as_str()] = json!(1); }
        let errs = parse(&body).unwrap_err();
        prop_assert_eq!(errs.len(), names.len());
        prop_assert!(errs.iter().all(|e| e.code == FieldCode::UnknownField));
    }

    #[test]
    fn bad_references_never_parse(reference in ".{0,120}") {
        let valid = !reference.is_empty() && reference.len() <= 100
            && reference.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let r = parse(&with(json!({"reference": reference})));
        prop_assert_eq!(r.is_ok(), valid);
    }

    #[test]
    fn expiry_window(offset in -100i64..(31 * 86_400)) {
        let t = now() + Duration::seconds(offset);
        let r = parse(&with(json!({"expires_at": t.to_rfc3339()})));
        prop_assert_eq!(r.is_ok(), (60..=30 * 86_400).contains(&offset));
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let _ = parse(&v);
        let mut body = minimal();
        body["items"] = v.clone();
        let _ = parse(&body);
        body["recipients"] = v;
        let _ = parse(&body);
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
