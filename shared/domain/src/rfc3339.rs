//! Timestamps serialised as chrono's serde writes them (RFC 3339, `Z`, the fraction in
//! 0, 3, 6 or 9 digits, whichever is exact), but built in a stack buffer and handed to the
//! serializer as one string. chrono's impl goes through `Display` and `collect_str`, which
//! serde_json escapes piece by piece: 6-9 % of a local create's request-thread CPU, for the
//! dozen timestamps each create writes (stored body, event, answer). Used on the hot
//! structs with `#[serde(serialize_with = "crate::rfc3339::serialize")]`. Years outside
//! 0000-9999 and leap seconds, which need chrono's other forms, are left to chrono.
//!
//! Reading (`deserialize_with = "crate::rfc3339::deserialize"`) takes that same form in
//! one pass over its bytes, and hands anything else to chrono's parser, so it accepts and
//! means exactly what chrono's serde impl does: chrono's general RFC 3339 parser was ~2.5 %
//! of a local `GET`'s CPU, for the three or more timestamps of a stored session.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike, Utc};
use serde::{Deserializer, Serialize, Serializer, de};

pub fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    match plain_form(t) {
        Some(text) => serializer.serialize_str(text.as_str()),
        None => t.serialize(serializer),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    struct Visitor;
    impl de::Visitor<'_> for Visitor {
        type Value = DateTime<Utc>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an RFC 3339 date and time")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<DateTime<Utc>, E> {
            match parse_plain(text) {
                Some(t) => Ok(t),
                // chrono's serde impl: its `FromStr` for a fixed offset, then UTC.
                None => text.parse::<DateTime<FixedOffset>>().map(|t| t.with_timezone(&Utc)).map_err(E::custom),
            }
        }
    }
    deserializer.deserialize_str(Visitor)
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` with a valid date and a time before 24:00:00, else
/// `None` (other forms, leap seconds and invalid values are chrono's to read or refuse).
fn parse_plain(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() < 20 || b.len() > 30 || b[b.len() - 1] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |n, d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let nanos = match b.len() {
        20 => 0,
        n if b[19] == b'.' && n > 21 => number(20..n - 1)? * 10u32.pow((30 - n) as u32),
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?;
    // At most nine digits keep `nanos` below a second, so this is never a leap second.
    let time = chrono::NaiveTime::from_hms_nano_opt(number(11..13)?, number(14..16)?, number(17..19)?, nanos)?;
    Some(date.and_time(time).and_utc())
}

/// Room for `YYYY-MM-DDTHH:MM:SS.fffffffffZ`.
struct Text {
    bytes: [u8; 30],
    len: usize,
}

impl Text {
    fn digits(&mut self, value: u32, width: usize) {
        let mut v = value;
        for slot in self.bytes[self.len..self.len + width].iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        self.len += width;
    }

    fn byte(&mut self, b: u8) {
        self.bytes[self.len] = b;
        self.len += 1;
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("ASCII digits and separators")
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z`, or `None` where chrono writes another
/// form (a year outside 0000-9999, a leap second).
fn plain_form(t: &DateTime<Utc>) -> Option<Text> {
    let (date, time) = (t.date_naive(), t.time());
    let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = time.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    let mut text = Text { bytes: [0; 30], len: 0 };
    text.digits(year, 4);
    text.byte(b'-');
    text.digits(date.month(), 2);
    text.byte(b'-');
    text.digits(date.day(), 2);
    text.byte(b'T');
    text.digits(time.hour(), 2);
    text.byte(b':');
    text.digits(time.minute(), 2);
    text.byte(b':');
    text.digits(time.second(), 2);
    let fraction = match nanos {
        0 => None,
        n if n % 1_000_000 == 0 => Some((n / 1_000_000, 3)),
        n if n % 1_000 == 0 => Some((n / 1_000, 6)),
        n => Some((n, 9)),
    };
    if let Some((value, width)) = fraction {
        text.byte(b'.');
        text.digits(value, width);
    }
    text.byte(b'Z');
    Some(text)
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    fn ours(t: &DateTime<Utc>) -> String {
        let mut out = Vec::new();
        serialize(t, &mut serde_json::Serializer::new(&mut out)).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn at(nanos_since_epoch: i64) -> DateTime<Utc> {
        Utc.timestamp_nanos(nanos_since_epoch)
    }

    #[test]
    fn writes_what_chrono_writes() {
        let mut cases = vec![
            at(0),
            at(1),
            at(1_000),
            at(1_000_000),
            at(999_999_999),
            at(1_780_000_000_123_456_789),
            at(1_780_000_000_123_456_000),
            at(1_780_000_000_123_000_000),
            at(1_780_000_000_000_000_000),
            at(-1),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap() + chrono::Duration::nanoseconds(999_999_999),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 15, 12, 0, 0).unwrap(),
            // A leap second: chrono keeps it in the nanoseconds.
            NaiveDate::from_ymd_opt(2016, 12, 31).unwrap().and_hms_nano_opt(23, 59, 59, 1_500_000_000).unwrap().and_utc(),
        ];
        // A spread of instants from 1900 to 2150, each at every precision.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let nanos = (x % 7_889_400_000_000_000_000) as i64 - 2_208_988_800_000_000_000;
            cases.push(at(nanos));
            cases.push(at(nanos - nanos.rem_euclid(1_000)));
            cases.push(at(nanos - nanos.rem_euclid(1_000_000)));
            cases.push(at(nanos - nanos.rem_euclid(1_000_000_000)));
        }
        for t in &cases {
            assert_eq!(ours(t), serde_json::to_string(t).unwrap(), "{t:?}");
        }
        assert_eq!(ours(&at(1_780_000_000_123_456_000)), r#""2026-05-28T20:26:40.123456Z""#);
        for t in &cases {
            let text = ours(t);
            assert_eq!(read(&text).as_ref(), Ok(t), "{text}");
            assert_eq!(read(&text), chrono_reads(&text), "{text}");
        }
    }

    fn read(json: &str) -> Result<DateTime<Utc>, String> {
        deserialize(&mut serde_json::Deserializer::from_str(json)).map_err(|e| e.to_string())
    }

    fn chrono_reads(json: &str) -> Result<DateTime<Utc>, String> {
        serde_json::from_str::<DateTime<Utc>>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_what_chrono_reads() {
        let texts = [
            "2026-05-28T20:26:40Z",
            "2026-05-28T20:26:40.1Z",
            "2026-05-28T20:26:40.12Z",
            "2026-05-28T20:26:40.123Z",
            "2026-05-28T20:26:40.1234Z",
            "2026-05-28T20:26:40.12345678Z",
            "2026-05-28T20:26:40.123456789Z",
            "2026-05-28T20:26:40.1234567891Z",
            "2026-05-28T20:26:40.Z",
            "2026-05-28t20:26:40z",
            "2026-05-28 20:26:40Z",
            "2026-05-28T20:26:40+02:00",
            "2026-05-28T20:26:40.5-00:30",
            "2026-02-29T00:00:00Z",
            "2024-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-05-28T24:00:00Z",
            "2026-05-28T23:60:00Z",
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.5Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "+2026-05-28T20:26:40Z",
            "2026-5-28T20:26:40Z",
            "2026-05-28T20:26:4OZ",
            "2026-05-28T20:26:40",
            "",
            "now",
        ];
        for text in texts {
            let json = serde_json::to_string(text).unwrap();
            assert_eq!(read(&json), chrono_reads(&json), "{text}");
        }
        assert!(read(r#""2026-05-28T20:26:40.1Z""#).is_ok_and(|t| t.nanosecond() == 100_000_000));
        assert!(read("17").is_err(), "not a string");
    }
}
