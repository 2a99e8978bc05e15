//! Validators for single field values. Each returns the normalised value or the error code
//! and message to report.

use chrono::{DateTime, NaiveDate, Utc};

use crate::errors::FieldCode;
use crate::model::AllowedDomain;

pub type FieldResult<T> = Result<T, (FieldCode, String)>;

fn err<T>(code: FieldCode, msg: impl Into<String>) -> FieldResult<T> {
    Err((code, msg.into()))
}

/// Length in characters (not bytes) within `min..=max`, no control characters.
pub fn text(s: &str, min: usize, max: usize) -> FieldResult<String> {
    let n = s.chars().count();
    if n < min || s.trim().is_empty() && min > 0 {
        return err(FieldCode::TooShort, format!("must be at least {min} character(s)"));
    }
    if n > max {
        return err(FieldCode::TooLong, format!("must be at most {max} characters"));
    }
    if s.chars().any(char::is_control) {
        return err(FieldCode::InvalidFormat, "must not contain control characters");
    }
    Ok(s.to_string())
}

/// A merchant's customer id: 1 to 255 characters, no control characters. The same rule
/// holds for the body field, the `customer_id` query filters and the path segment.
pub fn customer_id(s: &str) -> FieldResult<String> {
    text(s, 1, 255)
}

/// `^[A-Za-z0-9_-]{1,100}$`
pub fn reference(s: &str) -> FieldResult<String> {
    if s.is_empty() {
        return err(FieldCode::TooShort, "must be 1 to 100 characters");
    }
    if s.len() > 100 {
        return err(FieldCode::TooLong, "must be 1 to 100 characters");
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return err(FieldCode::InvalidFormat, "may contain only letters, digits, '_' and '-'");
    }
    Ok(s.to_string())
}

pub fn email(s: &str) -> FieldResult<String> {
    let bad = || err(FieldCode::InvalidEmail, "must be an email address like name@example.com");
    if s.len() > 254 {
        return bad();
    }
    let Some((local, domain)) = s.rsplit_once('@') else { return bad() };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    if !local_ok || !is_hostname(domain) || !domain.contains('.') {
        return bad();
    }
    Ok(s.to_string())
}

/// E.164: `+`, a non-zero digit, 7 to 14 more digits.
pub fn phone(s: &str) -> FieldResult<String> {
    let digits = s.strip_prefix('+').unwrap_or("");
    let ok = (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
    if ok { Ok(s.to_string()) } else { err(FieldCode::InvalidPhone, "must be an E.164 number like +4915112345678") }
}

pub fn country(s: &str) -> FieldResult<String> {
    if crate::reference_data::is_country(s) {
        Ok(s.to_string())
    } else {
        err(FieldCode::InvalidCountry, "must be an ISO 3166-1 alpha-2 code in upper case, like DE")
    }
}

/// DNS host name: labels of letters, digits and hyphens, not starting or ending with one.
pub fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// An HTTPS origin (`https://shop.example[:port]`, no path), an Android package name
/// (`com.example.app`) or an iOS bundle id (`com.example.App-1`).
pub fn allowed_domain(s: &str) -> FieldResult<AllowedDomain> {
    if let Some(rest) = s.strip_prefix("https://") {
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        if let Some(p) = port
            && (p.is_empty()
                || p.len() > 5
                || !p.bytes().all(|b| b.is_ascii_digit())
                || p.parse::<u32>().map_or(true, |n| n == 0 || n > 65535))
        {
            return err(FieldCode::InvalidFormat, "port must be 1 to 65535");
        }
        if !is_hostname(host) {
            return err(FieldCode::InvalidFormat, "must be an HTTPS origin without path, like https://shop.example");
        }
        return Ok(AllowedDomain::Origin(s.to_ascii_lowercase()));
    }
    if s.contains("://") {
        return err(FieldCode::InvalidFormat, "web origins must use https://");
    }
    // Both app id forms are reverse-DNS: at least two dot-separated segments.
    let segments: Vec<&str> = s.split('.').collect();
    let app_id_ok = s.len() <= 255
        && segments.len() >= 2
        && segments.iter().all(|seg| !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    if app_id_ok {
        Ok(AllowedDomain::AppId(s.to_string()))
    } else {
        err(FieldCode::InvalidFormat, "must be an HTTPS origin (https://shop.example), an Android package name or an iOS bundle id")
    }
}

/// 1–20 of letters, digits, space, `.`, `-`.
pub fn statement_descriptor(s: &str) -> FieldResult<String> {
    if s.trim().is_empty() {
        return err(FieldCode::TooShort, "must have 1 to 20 characters");
    }
    if s.chars().count() > 20 {
        return err(FieldCode::TooLong, "must have at most 20 characters");
    }
    if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '.' || c == '-') {
        return err(FieldCode::InvalidFormat, "may contain only letters, digits, spaces, '.' and '-'");
    }
    Ok(s.to_string())
}

/// `YYYY-MM-DD` exactly.
pub fn date(s: &str) -> FieldResult<NaiveDate> {
    if s.len() != 10 {
        return err(FieldCode::InvalidFormat, "must be a date YYYY-MM-DD");
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").or_else(|_| err(FieldCode::InvalidFormat, "must be a valid date YYYY-MM-DD"))
}

/// A time of day `HH:MM` (24-hour, UTC), e.g. a schedule's charge time.
pub fn time_of_day(s: &str) -> FieldResult<chrono::NaiveTime> {
    if s.len() != 5 {
        return err(FieldCode::InvalidFormat, "must be a time HH:MM (24-hour, UTC)");
    }
    chrono::NaiveTime::parse_from_str(s, "%H:%M").or_else(|_| err(FieldCode::InvalidFormat, "must be a valid time HH:MM (24-hour, UTC)"))
}

/// RFC 3339 with an explicit offset; normalised to UTC.
pub fn timestamp(s: &str) -> FieldResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| err(FieldCode::InvalidFormat, "must be an RFC 3339 timestamp like 2026-11-21T10:00:00Z"))
}

/// Two lower-case letters (ISO 639-1 form).
pub fn locale(s: &str) -> FieldResult<String> {
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(s.to_string())
    } else {
        err(FieldCode::InvalidFormat, "must be a two-letter lower-case language code like en")
    }
}

/// An absolute http(s) URL without fragment; its comparable form (no query) is returned
/// beside it for matching against registered redirect URLs.
pub fn redirect_url(s: &str) -> FieldResult<String> {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    let Some(rest) = rest else {
        return err(FieldCode::InvalidFormat, "must be an absolute http(s) URL");
    };
    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = rest[..host_end].rsplit_once(':').map_or(&rest[..host_end], |(h, _)| h);
    if s.len() > 2048 || !is_hostname(host) || s.contains('#') || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return err(FieldCode::InvalidFormat, "must be an absolute http(s) URL without fragment, at most 2048 characters");
    }
    Ok(s.to_string())
}

/// The part of a URL compared with the merchant's registered redirect URLs: everything
/// before the query string.
pub fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(allowed_domain("https://Shop.example:8443"), Ok(AllowedDomain::Origin("https://shop.example:8443".into())));
        assert!(matches!(allowed_domain("com.example.app"), Ok(AllowedDomain::AppId(_))));
        assert!(allowed_domain("http://shop.example").is_err());
        assert!(allowed_domain("https://shop.example/path").is_err());
        assert!(allowed_domain("https://shop.example:99999").is_err());
        assert!(allowed_domain("singleword").is_err());
    }

    #[test]
    fn contacts() {
        assert!(email("a.b+c@example.co.uk").is_ok());
        assert!(email("a@b").is_err());
        assert!(email("a..b@example.com").is_err());
        assert!(phone("+4915112345678").is_ok());
        assert!(phone("015112345678").is_err());
        assert!(phone("+0123456789").is_err());
        assert!(country("DE").is_ok());
        assert!(country("de").is_err());
        assert!(country("XX").is_err());
    }

    #[test]
    fn misc() {
        assert!(reference("abc_DEF-123").is_ok());
        assert!(reference("has space").is_err());
        assert!(reference(&"a".repeat(101)).is_err());
        assert!(statement_descriptor("ACME Shop 1.0").is_ok());
        assert!(statement_descriptor("ACME*SHOP").is_err());
        assert!(date("2026-02-30").is_err());
        assert!(date("2026-2-3").is_err());
        assert!(timestamp("2026-11-21T10:00:00+01:00").is_ok());
        assert!(timestamp("2026-11-21 10:00").is_err());
        assert!(redirect_url("https://shop.example/done?x=1").is_ok());
        assert!(redirect_url("javascript:alert(1)").is_err());
        assert!(text("\u{7}", 1, 10).is_err());
    }
}
