//! Money: integer minor units plus an ISO 4217 currency that knows its exponent.
//! Nothing here ever touches floating point.

use std::fmt;

/// Largest amount a session may carry, in minor units (API.md: ≤ 10^12).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// An ISO 4217 currency that is active and payable (funds codes, precious metals and the
/// testing codes are excluded: nobody pays a session in XAU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    exponent: u8,
}

impl Currency {
    pub fn parse(code: &str) -> Option<Currency> {
        CURRENCIES.binary_search_by(|(c, _)| (*c).cmp(code)).ok().map(|i| Currency { code: CURRENCIES[i].0, exponent: CURRENCIES[i].1 })
    }
    pub fn code(&self) -> &'static str {
        self.code
    }
    /// Digits after the decimal point: JPY 0, EUR 2, KWD 3.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }
    /// Renders minor units as a plain decimal string (`1050` EUR → `"10.50"`), for display.
    pub fn format_minor(&self, minor: i64) -> String {
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        if self.exponent == 0 {
            return format!("{sign}{abs}");
        }
        let div = 10u64.pow(u32::from(self.exponent));
        format!("{sign}{}.{:0width$}", abs / div, abs % div, width = usize::from(self.exponent))
    }
}

// Stored and shown as the ISO code; reading back a code that is no longer payable fails
// loudly rather than inventing an exponent.
impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code)
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Currency::parse(&code).ok_or_else(|| serde::de::Error::custom(format!("unknown currency {code}")))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// A positive amount in minor units, bounded by [`MAX_AMOUNT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

impl Amount {
    pub fn new(minor: i64) -> Option<Amount> {
        (1..=MAX_AMOUNT).contains(&minor).then_some(Amount(minor))
    }
    pub fn minor(&self) -> i64 {
        self.0
    }
}

impl serde::Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let minor = i64::deserialize(d)?;
        Amount::new(minor).ok_or_else(|| serde::de::Error::custom(format!("amount {minor} is out of range")))
    }
}

/// Active ISO 4217 codes with their minor-unit exponent, sorted for binary search.
/// Source: the ISO 4217 list one as amended to 2025 (XCG replaces ANG, BGN left for EUR
/// on 2026-01-01, ZWG replaces ZWL, SLE replaces SLL).
static CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYU", 2),
    ("UZS", 2),
    ("VED", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        assert!(CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn exponents() {
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("EUR").unwrap().exponent(), 2);
        assert_eq!(Currency::parse("KWD").unwrap().exponent(), 3);
        assert!(Currency::parse("eur").is_none());
        assert!(Currency::parse("XAU").is_none());
        assert!(Currency::parse("BGN").is_none());
    }

    #[test]
    fn formatting() {
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(eur.format_minor(1050), "10.50");
        assert_eq!(eur.format_minor(5), "0.05");
        assert_eq!(Currency::parse("JPY").unwrap().format_minor(1050), "1050");
        assert_eq!(Currency::parse("KWD").unwrap().format_minor(1050), "1.050");
    }

    #[test]
    fn amount_bounds() {
        assert!(Amount::new(0).is_none());
        assert!(Amount::new(-1).is_none());
        assert!(Amount::new(MAX_AMOUNT).is_some());
        assert!(Amount::new(MAX_AMOUNT + 1).is_none());
    }
}
