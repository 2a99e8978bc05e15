//! Property tests of the schedule arithmetic (API.md, "Mandates … Schedule"): anchors that
//! never drift, strictly increasing occurrences, exact day and week steps, `max_charges` and
//! `end_date` as hard limits, and `next_after` as the first occurrence past an instant.

use chrono::{Datelike, Duration, NaiveDate, NaiveTime};
use paysession_domain::model::{Interval, Schedule};
use paysession_domain::schedule::{next_after, nth_date, occurrence};
use proptest::prelude::*;

/// Cases per property (proptest's default is 256; these are cheap).
const CASES: u32 = 2_000;

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    NaiveDate::from_ymd_opt(ny, nm, 1).unwrap().pred_opt().unwrap().day()
}

fn start_date() -> impl Strategy<Value = NaiveDate> {
    (2026i32..2100, 1u32..=12, 1u32..=31).prop_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d.min(days_in_month(y, m))).unwrap())
}

fn interval() -> impl Strategy<Value = Interval> {
    prop_oneof![Just(Interval::Day), Just(Interval::Week), Just(Interval::Month), Just(Interval::Year)]
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (interval(), 1u32..=365, start_date(), proptest::option::of((0u32..24, 0u32..60)), proptest::option::of(1u32..=200)).prop_map(
        |(interval, interval_count, start_date, time, max_charges)| Schedule {
            interval,
            interval_count,
            start_date,
            time: time.map(|(h, m)| NaiveTime::from_hms_opt(h, m, 0).unwrap()),
            end_date: None,
            max_charges,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Month and year steps land on the start's day, clamped to the target month's length,
    /// counted from the start (Jan 31 → Feb 28/29 → Mar 31 → Apr 30), never drifting.
    #[test]
    fn month_and_year_steps_keep_the_anchor(start in start_date(), count in 1u32..=24, yearly in any::<bool>(), n in 0u32..120) {
        let (interval, months_per_step) = if yearly { (Interval::Year, 12) } else { (Interval::Month, 1) };
        let date = nth_date(start, interval, count, n).unwrap();
        let months = start.month0() + months_per_step * count * n;
        let (year, month) = (start.year() + (months / 12) as i32, months % 12 + 1);
        prop_assert_eq!((date.year(), date.month()), (year, month));
        prop_assert_eq!(date.day(), start.day().min(days_in_month(year, month)));
    }

    /// Day and week steps are exact.
    #[test]
    fn day_and_week_steps_are_exact(start in start_date(), count in 1u32..=365, weekly in any::<bool>(), n in 0u32..200) {
        let (interval, days) = if weekly { (Interval::Week, 7) } else { (Interval::Day, 1) };
        let date = nth_date(start, interval, count, n).unwrap();
        prop_assert_eq!(date - start, Duration::days(i64::from(days * count * n)));
    }

    /// Occurrences strictly increase, at the schedule's time of day.
    #[test]
    fn occurrences_increase(s in schedule(), n in 0u32..150) {
        if let (Some(a), Some(b)) = (occurrence(&s, n), occurrence(&s, n + 1)) {
            prop_assert!(a < b);
            prop_assert_eq!(b.time(), s.time.unwrap_or(NaiveTime::from_hms_opt(9, 0, 0).unwrap()));
        }
    }

    /// `max_charges` is exactly the number of occurrences when nothing else ends the schedule.
    #[test]
    fn max_charges_counts_occurrences(s in schedule(), max in 1u32..=200) {
        let s = Schedule { max_charges: Some(max), interval_count: s.interval_count.min(3), ..s };
        prop_assert!(occurrence(&s, max - 1).is_some());
        prop_assert!(occurrence(&s, max).is_none());
        prop_assert!(occurrence(&s, max + 7).is_none());
    }

    /// `end_date` is inclusive and final: every occurrence is on or before it, and the first
    /// missing one would fall after it.
    #[test]
    fn end_date_is_the_last_day(s in schedule(), extra_days in 1i64..2_000) {
        let end = s.start_date + Duration::days(extra_days);
        let s = Schedule { end_date: Some(end), max_charges: None, ..s };
        let mut n = 0;
        while let Some(at) = occurrence(&s, n) {
            prop_assert!(at.date_naive() <= end);
            n += 1;
        }
        prop_assert!(n >= 1, "the start date itself is before the end");
        prop_assert!(nth_date(s.start_date, s.interval, s.interval_count, n).unwrap() > end);
    }

    /// `next_after` finds the first occurrence strictly after an instant.
    #[test]
    fn next_after_is_the_first_later_occurrence(s in schedule(), k in 0u32..50, offset_minutes in -600i64..600) {
        let Some(pivot) = occurrence(&s, k) else { return Ok(()) };
        let t = pivot + Duration::minutes(offset_minutes);
        match next_after(&s, 0, t) {
            Some((n, at)) => {
                prop_assert!(at > t);
                prop_assert_eq!(occurrence(&s, n), Some(at));
                prop_assert!(n == 0 || occurrence(&s, n - 1).unwrap() <= t);
            }
            None => prop_assert!(s.max_charges.is_some(), "only a capped schedule runs out"),
        }
    }
}

/// Leap days: a Feb 29 anchor charges Feb 28 in common years and Feb 29 in leap years.
#[test]
fn leap_day_anchor() {
    let s = Schedule {
        interval: Interval::Year,
        interval_count: 1,
        start_date: NaiveDate::from_ymd_opt(2028, 2, 29).unwrap(),
        time: None,
        end_date: None,
        max_charges: None,
    };
    let days: Vec<(i32, u32)> = (0..9).map(|n| occurrence(&s, n).unwrap()).map(|t| (t.year(), t.day())).collect();
    assert_eq!(days, [(2028, 29), (2029, 28), (2030, 28), (2031, 28), (2032, 29), (2033, 28), (2034, 28), (2035, 28), (2036, 29)]);
}
