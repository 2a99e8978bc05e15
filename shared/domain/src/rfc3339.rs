//! Timestamps serialised as chrono's serde writes them (RFC 3339, `Z`, the fraction in
//! 0, 3, 6 or 9 digits, whichever is exact), but built in a stack buffer and handed to the
//! serializer as one string. chrono's impl goes through `Display` and `collect_str`, which
//! serde_json escapes piece by piece: 6-9 % of a local create's request-thread CPU, for the
//! dozen timestamps each create writes (stored body, event, answer). Used on the hot
//! structs with `#[serde(serialize_with = "crate::rfc3339::serialize")]`; reading stays
//! chrono's. Years outside 0000-9999 and leap seconds, which need chrono's other forms,
//! are left to chrono.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

pub fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 30];
    match write(t, &mut buf) {
        Some(len) => serializer.serialize_str(std::str::from_utf8(&buf[..len]).expect("ASCII digits and separators")),
        None => t.serialize(serializer),
    }
}

/// For `Option<DateTime<Utc>>` fields.
pub fn serialize_option<S: Serializer>(t: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serializer.serialize_some(&Rfc3339(t)),
        None => serializer.serialize_none(),
    }
}

struct Rfc3339<'a>(&'a DateTime<Utc>);

impl Serialize for Rfc3339<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize(self.0, serializer)
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z` into `buf`; its length, or `None` where
/// chrono writes another form.
fn write(t: &DateTime<Utc>, buf: &mut [u8; 30]) -> Option<usize> {
    let (date, time) = (t.date_naive(), t.time());
    let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = time.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    let mut at = 0;
    let mut digits = |value: u32, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        at += width;
    };
    digits(year, 4);
    digits(date.month(), 2);
    digits(date.day(), 2);
    digits(time.hour(), 2);
    digits(time.minute(), 2);
    digits(time.second(), 2);
    let fraction = match nanos {
        0 => None,
        n if n % 1_000_000 == 0 => Some((n / 1_000_000, 3)),
        n if n % 1_000 == 0 => Some((n / 1_000, 6)),
        n => Some((n, 9)),
    };
    if let Some((value, width)) = fraction {
        digits(value, width);
    }
    // Digits were written back to back; spread them out and put the separators in.
    let packed: [u8; 23] = buf[..23].try_into().expect("23 bytes");
    let mut out = 0;
    let mut put = |bytes: &[u8]| {
        buf[out..out + bytes.len()].copy_from_slice(bytes);
        out += bytes.len();
    };
    put(&packed[0..4]);
    put(b"-");
    put(&packed[4..6]);
    put(b"-");
    put(&packed[6..8]);
    put(b"T");
    put(&packed[8..10]);
    put(b":");
    put(&packed[10..12]);
    put(b":");
    put(&packed[12..14]);
    if let Some((_, width)) = fraction {
        put(b".");
        put(&packed[14..14 + width]);
    }
    put(b"Z");
    Some(out)
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
        let optional = |t: Option<DateTime<Utc>>| {
            let mut out = Vec::new();
            serialize_option(&t, &mut serde_json::Serializer::new(&mut out)).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(optional(None), "null");
        assert_eq!(optional(Some(at(1))), serde_json::to_string(&Some(at(1))).unwrap());
    }
}
