//! When a scheduled mandate charges: pure, clock-free arithmetic over a [`Schedule`].
//!
//! Occurrence `n` (0, 1, …) is `start_date + n × interval_count intervals` at the schedule's
//! time of day (UTC). Months and years are always counted from the start date, never from the
//! previous occurrence, so a day past a month's end is clamped for that month only and the
//! anchor never drifts: Jan 31 → Feb 28 (29) → Mar 31 → Apr 30. An occurrence after
//! `end_date` (inclusive) or at or past `max_charges` does not exist.

use chrono::{DateTime, Days, Months, NaiveDate, NaiveTime, Utc};

use crate::model::{Interval, Schedule};

/// The time of day of occurrences when the schedule names none.
pub const DEFAULT_TIME: NaiveTime = match NaiveTime::from_hms_opt(9, 0, 0) {
    Some(t) => t,
    None => panic!("09:00 is a time"),
};

/// The date of occurrence `n`, ignoring `end_date` and `max_charges`; `None` past the
/// calendar's range.
pub fn nth_date(start: NaiveDate, interval: Interval, interval_count: u32, n: u32) -> Option<NaiveDate> {
    let steps = u64::from(interval_count) * u64::from(n);
    match interval {
        Interval::Day => start.checked_add_days(Days::new(steps)),
        Interval::Week => start.checked_add_days(Days::new(steps.checked_mul(7)?)),
        Interval::Month => start.checked_add_months(Months::new(u32::try_from(steps).ok()?)),
        Interval::Year => start.checked_add_months(Months::new(u32::try_from(steps.checked_mul(12)?).ok()?)),
    }
}

/// The instant of occurrence `n`, or `None` when the schedule has no such occurrence.
pub fn occurrence(schedule: &Schedule, n: u32) -> Option<DateTime<Utc>> {
    if schedule.max_charges.is_some_and(|max| n >= max) {
        return None;
    }
    let date = nth_date(schedule.start_date, schedule.interval, schedule.interval_count, n)?;
    if schedule.end_date.is_some_and(|end| date > end) {
        return None;
    }
    Some(date.and_time(schedule.time.unwrap_or(DEFAULT_TIME)).and_utc())
}

/// The first occurrence at or after `n` that falls after `after`: `(index, instant)`.
/// Occurrences are strictly increasing, so this is a forward scan from `n`.
pub fn next_after(schedule: &Schedule, mut n: u32, after: DateTime<Utc>) -> Option<(u32, DateTime<Utc>)> {
    loop {
        let at = occurrence(schedule, n)?;
        if at > after {
            return Some((n, at));
        }
        n = n.checked_add(1)?;
    }
}

/// Delays before retrying a soft-declined occurrence, each counted from the previous
/// failed attempt: 1 day, then 3 days, then 5 days; after the last the occurrence failed.
pub const SOFT_DECLINE_RETRY_DAYS: [u64; 3] = [1, 3, 5];

/// Failure codes worth retrying later (the funds may arrive, the processor may recover);
/// every other decline is final for its occurrence.
pub fn is_soft_decline(failure_code: &str) -> bool {
    matches!(failure_code, "insufficient_funds" | "processing_error")
}

/// When to retry an occurrence whose attempt number `failed_attempts` (1 = the first try)
/// just failed with `failure_code` at `failed_at`; `None` when it is not retried.
pub fn retry_at(failure_code: &str, failed_attempts: usize, failed_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if !is_soft_decline(failure_code) {
        return None;
    }
    let days = *SOFT_DECLINE_RETRY_DAYS.get(failed_attempts.checked_sub(1)?)?;
    failed_at.checked_add_days(Days::new(days))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn monthly(start: NaiveDate) -> Schedule {
        Schedule { interval: Interval::Month, interval_count: 1, start_date: start, time: None, end_date: None, max_charges: None }
    }

    #[test]
    fn month_ends_keep_their_anchor() {
        let s = monthly(d(2027, 1, 31));
        let dates: Vec<NaiveDate> = (0..5).map(|n| occurrence(&s, n).unwrap().date_naive()).collect();
        assert_eq!(dates, [d(2027, 1, 31), d(2027, 2, 28), d(2027, 3, 31), d(2027, 4, 30), d(2027, 5, 31)]);
        let leap = monthly(d(2028, 1, 31));
        assert_eq!(occurrence(&leap, 1).unwrap().date_naive(), d(2028, 2, 29));
        let yearly = Schedule { interval: Interval::Year, ..monthly(d(2028, 2, 29)) };
        assert_eq!(occurrence(&yearly, 1).unwrap().date_naive(), d(2029, 2, 28));
        assert_eq!(occurrence(&yearly, 4).unwrap().date_naive(), d(2032, 2, 29));
    }

    #[test]
    fn time_of_day_defaults_to_nine_utc() {
        let s = monthly(d(2027, 1, 15));
        assert_eq!(occurrence(&s, 0).unwrap().to_rfc3339(), "2027-01-15T09:00:00+00:00");
        let at = Schedule { time: NaiveTime::from_hms_opt(23, 30, 0), ..s };
        assert_eq!(occurrence(&at, 2).unwrap().to_rfc3339(), "2027-03-15T23:30:00+00:00");
    }

    #[test]
    fn limits_end_the_schedule() {
        let s = Schedule { max_charges: Some(12), ..monthly(d(2027, 1, 1)) };
        assert!(occurrence(&s, 11).is_some());
        assert!(occurrence(&s, 12).is_none());
        let e = Schedule { end_date: Some(d(2027, 3, 1)), ..monthly(d(2027, 1, 1)) };
        assert!(occurrence(&e, 2).is_some(), "end_date is inclusive");
        assert!(occurrence(&e, 3).is_none());
        let w = Schedule { interval: Interval::Week, interval_count: 2, ..monthly(d(2027, 1, 1)) };
        assert_eq!(occurrence(&w, 3).unwrap().date_naive(), d(2027, 2, 12));
    }

    #[test]
    fn next_after_skips_what_has_passed() {
        let s = monthly(d(2027, 1, 31));
        let (n, at) = next_after(&s, 0, occurrence(&s, 1).unwrap()).unwrap();
        assert_eq!((n, at.date_naive()), (2, d(2027, 3, 31)));
        let capped = Schedule { max_charges: Some(2), ..s };
        assert!(next_after(&capped, 0, occurrence(&capped, 1).unwrap()).is_none());
    }

    #[test]
    fn soft_declines_are_retried_three_times() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(retry_at("insufficient_funds", 1, t), t.checked_add_days(Days::new(1)));
        assert_eq!(retry_at("processing_error", 2, t), t.checked_add_days(Days::new(3)));
        assert_eq!(retry_at("insufficient_funds", 3, t), t.checked_add_days(Days::new(5)));
        assert_eq!(retry_at("insufficient_funds", 4, t), None);
        assert_eq!(retry_at("card_declined", 1, t), None, "hard declines are final");
        assert_eq!(retry_at("insufficient_funds", 0, t), None);
    }
}
