//! Card details typed in on the hosted page: parsed and checked (Luhn, brand, expiry, CVC),
//! never stored. Only [`crate::payment::CardSummary`] outlives the request.

use chrono::{DateTime, Datelike, Utc};

use crate::errors::{Errors, FieldCode, FieldError};

/// A card number that passed Luhn; `Debug` shows only the last four digits.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl std::fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CardNumber(****{})", self.last4())
    }
}

impl CardNumber {
    pub fn digits(&self) -> &str {
        &self.0
    }
    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
    pub fn brand(&self) -> &'static str {
        let d = &self.0;
        let prefix = |n: usize| d[..n].parse::<u32>().unwrap_or(0);
        if d.starts_with('4') {
            "visa"
        } else if (51..=55).contains(&prefix(2)) || (2221..=2720).contains(&prefix(4)) {
            "mastercard"
        } else if d.starts_with("34") || d.starts_with("37") {
            "amex"
        } else if d.starts_with("6011") || d.starts_with("65") {
            "discover"
        } else {
            "unknown"
        }
    }
}

pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(c - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

#[derive(Debug, Clone)]
pub struct CardInput {
    pub number: CardNumber,
    pub exp_month: u32,
    pub exp_year: u32,
    /// Sent to a real processor's issuer check; never stored (`Debug` masks it).
    pub cvc: Cvc,
}

/// A card's security code; `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Cvc(String);

impl Cvc {
    pub fn digits(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Cvc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cvc({} digits)", self.0.len())
    }
}

/// Parses the card form. `expiry` is `MM/YY` or `MM/YYYY`; spaces and dashes in the number
/// are ignored. Every failing field is reported.
pub fn parse_card(number: &str, expiry: &str, cvc: &str, now: DateTime<Utc>) -> Result<CardInput, Vec<FieldError>> {
    let mut e = Errors::new();
    let digits: String = number.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let number = if digits.is_empty() {
        e.add("card_number", FieldCode::Required, "enter the card number");
        None
    } else if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        e.add("card_number", FieldCode::InvalidFormat, "a card number has 12 to 19 digits");
        None
    } else if !luhn_valid(&digits) {
        e.add("card_number", FieldCode::InvalidChecksum, "this card number is not valid; check it for typos");
        None
    } else {
        Some(CardNumber(digits))
    };
    let exp = expiry.trim().split_once('/').and_then(|(m, y)| {
        let m: u32 = m.trim().parse().ok()?;
        let y: u32 = y.trim().parse().ok()?;
        let y = if y < 100 { 2000 + y } else { y };
        (1..=12).contains(&m).then_some((m, y))
    });
    let exp = match exp {
        None => {
            e.add("expiry", FieldCode::InvalidFormat, "enter the expiry as MM/YY");
            None
        }
        Some((m, y)) if (y, m) < (now.year() as u32, now.month()) => {
            e.add("expiry", FieldCode::TooSoon, "this card has expired");
            None
        }
        Some((_, y)) if y > now.year() as u32 + 20 => {
            e.add("expiry", FieldCode::TooLate, "the expiry year is too far in the future");
            None
        }
        Some(v) => Some(v),
    };
    let cvc_digits = cvc.trim();
    let cvc_len_ok = match number.as_ref().map(|n| n.brand()) {
        Some("amex") => cvc_digits.len() == 4,
        _ => (3..=4).contains(&cvc_digits.len()),
    };
    if !cvc_len_ok || !cvc_digits.bytes().all(|b| b.is_ascii_digit()) {
        e.add("cvc", FieldCode::InvalidFormat, "enter the 3 or 4 digit security code");
    }
    match (number, exp) {
        (Some(number), Some((exp_month, exp_year))) if e.is_empty() => {
            Ok(CardInput { number, exp_month, exp_year, cvc: Cvc(cvc_digits.to_string()) })
        }
        _ => Err(e.into_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap()
    }

    #[test]
    fn sandbox_cards_pass_luhn() {
        for n in ["4242424242424242", "4000000000000002", "4000000000009995", "4000002760003184", "4000000000000119", "4000000000000341"] {
            assert!(luhn_valid(n), "{n}");
        }
        assert!(!luhn_valid("4242424242424241"));
    }

    #[test]
    fn parsing() {
        let c = parse_card("4242 4242 4242 4242", "12/30", "123", now()).unwrap();
        assert_eq!((c.number.brand(), c.number.last4(), c.exp_month, c.exp_year), ("visa", "4242", 12, 2030));
        assert_eq!(format!("{:?}", c.number), "CardNumber(****4242)");
        let errs = parse_card("4242424242424241", "13/30", "1", now()).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["card_number", "expiry", "cvc"]);
        assert_eq!(parse_card("4242424242424242", "10/26", "123", now()).unwrap_err()[0].code, FieldCode::TooSoon);
        assert!(parse_card("4242424242424242", "11/26", "123", now()).is_ok());
        assert!(parse_card("378282246310005", "11/26", "123", now()).is_err(), "amex needs 4 digits");
    }
}
