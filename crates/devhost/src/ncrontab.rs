//! NCRONTAB schedules as the Azure Functions timer trigger accepts them: parsing and evaluation.
//!
//! The Functions host hands a timer trigger's `schedule` to the NCrontab library (`CronSchedule` in
//! the WebJobs timer extension). An expression with exactly 5 space-separated fields is parsed
//! without seconds, anything else with seconds, so the accepted forms are
//!
//! ```text
//! {second} {minute} {hour} {day} {month} {day-of-week}     6 fields
//!          {minute} {hour} {day} {month} {day-of-week}     5 fields (second = 0)
//! ```
//!
//! Each field is `*` or a comma list of elements; an element is a value `v`, a range `a-b`, or
//! either of `*`, `a-b` and `v` followed by a step `/n` (`*/n` steps over the whole field, `a-b/n`
//! over the range, `v/n` from `v` to the field's maximum). Bounds: second and minute 0–59, hour
//! 0–23, day 1–31, month 1–12, day-of-week 0–6 (0 = Sunday). Months and days of the week may also
//! be given by name, case-insensitively: NCrontab accepts any prefix of the English name
//! (`JAN`, `Jan`, `january`; `MON`, `Mon`, `monday`), taking the first name in calendar order that
//! matches (so `M` is March, `T` is Tuesday).
//!
//! Semantics follow NCrontab (`CrontabSchedule` / `CrontabField`), checked against its source:
//!
//! - **Day-of-month and day-of-week are combined with AND.** A time matches only when both fields
//!   match; a `*` field matches everything, so the rule only matters when both are restricted.
//!   This differs from Vixie cron (which ORs them when both are restricted): in NCrontab, and so in
//!   Azure Functions, `0 0 0 13 * FRI` fires on Friday the 13th only.
//! - **Day-of-week 7 is rejected** (the field is 0–6); NCrontab does not treat 7 as Sunday. Use
//!   `0` or `SUN`.
//! - A reversed range `b-a` is accepted and means `a-b` (NCrontab swaps the ends; it does not wrap).
//! - A step larger than the range selects just the range's start.
//! - Days that do not exist in a month (30 February, 31 April) never match; a schedule that can
//!   never match (`0 0 0 30 2 *`) parses, and [`Schedule::next_after`] returns `None` for it.
//! - Evaluation is in UTC, the Functions default (the host evaluates in local time only when
//!   `WEBSITE_TIME_ZONE`/`TZ` is set; the dev host does not support that).
//!
//! One deliberate difference: a step of 0 (`*/0`) is an error here, where NCrontab silently
//! treats it as a step of 1 (its code asserts it never happens). Fields are separated by any ASCII
//! whitespace, not only spaces.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc};
use thiserror::Error;

/// One of the six fields of an NCRONTAB expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

impl FieldKind {
    /// Fields in expression order (6-field form).
    const ALL: [FieldKind; 6] = [
        FieldKind::Second,
        FieldKind::Minute,
        FieldKind::Hour,
        FieldKind::DayOfMonth,
        FieldKind::Month,
        FieldKind::DayOfWeek,
    ];

    /// Smallest and largest value the field accepts (inclusive).
    pub const fn bounds(self) -> (u32, u32) {
        match self {
            FieldKind::Second | FieldKind::Minute => (0, 59),
            FieldKind::Hour => (0, 23),
            FieldKind::DayOfMonth => (1, 31),
            FieldKind::Month => (1, 12),
            FieldKind::DayOfWeek => (0, 6),
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            FieldKind::Month => &MONTH_NAMES,
            FieldKind::DayOfWeek => &DAY_NAMES,
            _ => &[],
        }
    }

    fn label(self) -> &'static str {
        match self {
            FieldKind::Second => "second",
            FieldKind::Minute => "minute",
            FieldKind::Hour => "hour",
            FieldKind::DayOfMonth => "day-of-month",
            FieldKind::Month => "month",
            FieldKind::DayOfWeek => "day-of-week",
        }
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Why an NCRONTAB expression was rejected. Every field error names the field and the token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScheduleError {
    #[error(
        "invalid NCRONTAB expression '{expression}': it has {count} field(s), expected 6 \
         ({{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}) or 5 (without seconds)"
    )]
    FieldCount { expression: String, count: usize },

    #[error("invalid {field} field '{token}': {reason}")]
    InvalidToken {
        field: FieldKind,
        token: String,
        reason: String,
    },

    #[error("invalid {field} field '{token}': {value} is out of range {min}-{max}{hint}")]
    OutOfRange {
        field: FieldKind,
        token: String,
        value: u32,
        min: u32,
        max: u32,
        hint: &'static str,
    },

    #[error("invalid {field} field '{token}': a step must be at least 1")]
    ZeroStep { field: FieldKind, token: String },
}

/// The set of values one field matches, as a bit set (bit `v` set ⇔ value `v` matches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FieldSet(u64);

impl FieldSet {
    fn contains(self, value: u32) -> bool {
        value < 64 && (self.0 >> value) & 1 == 1
    }

    /// The smallest matching value `>= from`.
    fn next_from(self, from: u32) -> Option<u32> {
        if from >= 64 {
            return None;
        }
        let rest = self.0 & (u64::MAX << from);
        (rest != 0).then(|| rest.trailing_zeros())
    }
}

/// A parsed NCRONTAB schedule, evaluated in UTC with one-second precision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schedule {
    expression: String,
    has_seconds: bool,
    seconds: FieldSet,
    minutes: FieldSet,
    hours: FieldSet,
    days: FieldSet,
    months: FieldSet,
    days_of_week: FieldSet,
}

/// How far [`Schedule::next_after`] looks ahead. Dates and weekdays repeat every 400 Gregorian
/// years (146 097 days, a whole number of weeks), so a schedule with no occurrence in this window
/// has none at all; a shorter window would miss real ones (`0 0 0 29 2 MON` can be 28 years away).
const SEARCH_YEARS: i32 = 401;

impl Schedule {
    /// Parses a 6-field (seconds first) or 5-field (no seconds, second = 0) expression.
    pub fn parse(expression: &str) -> Result<Schedule, ScheduleError> {
        let tokens: Vec<&str> = expression.split_ascii_whitespace().collect();
        let kinds: &[FieldKind] = match tokens.len() {
            6 => &FieldKind::ALL,
            5 => &FieldKind::ALL[1..],
            count => {
                return Err(ScheduleError::FieldCount {
                    expression: expression.to_string(),
                    count,
                })
            }
        };
        let mut sets = [FieldSet(1); 6]; // second defaults to {0} for the 5-field form
        let offset = 6 - kinds.len();
        for (i, (kind, token)) in kinds.iter().zip(&tokens).enumerate() {
            sets[i + offset] = parse_field(*kind, token)?;
        }
        let [seconds, minutes, hours, days, months, days_of_week] = sets;
        Ok(Schedule {
            expression: expression.trim().to_string(),
            has_seconds: tokens.len() == 6,
            seconds,
            minutes,
            hours,
            days,
            months,
            days_of_week,
        })
    }

    /// The expression as given (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether the expression had a seconds field (6 fields) rather than 5.
    pub fn has_seconds(&self) -> bool {
        self.has_seconds
    }

    /// Whether the whole second containing `time` is an occurrence (sub-second part ignored).
    pub fn matches(&self, time: DateTime<Utc>) -> bool {
        let date = time.date_naive();
        self.seconds.contains(time.second())
            && self.minutes.contains(time.minute())
            && self.hours.contains(time.hour())
            && self.months.contains(date.month())
            && self.days.contains(date.day())
            && self
                .days_of_week
                .contains(date.weekday().num_days_from_sunday())
    }

    /// The first occurrence strictly after `after` (as NCrontab's `GetNextOccurrence`): an
    /// occurrence equal to `after` is skipped, and a sub-second `after` moves to the next whole
    /// second (`12:00:14.5` → `12:00:15` is a candidate). `None` when the schedule has no
    /// occurrence at all (e.g. 30 February) or the date range of `chrono` is exhausted.
    ///
    /// Searches field by field (month, then day, hour, minute, second), so the cost does not
    /// depend on how far away the occurrence is in seconds.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after
            .with_nanosecond(0)?
            .checked_add_signed(TimeDelta::seconds(1))?;
        self.first_at_or_after(start.naive_utc())
            .map(|t| t.and_utc())
    }

    /// The occurrences strictly after `after` and strictly before `before`, in order.
    pub fn occurrences(
        &self,
        after: DateTime<Utc>,
        before: DateTime<Utc>,
    ) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        std::iter::successors(self.next_after(after), move |t| self.next_after(*t))
            .take_while(move |t| *t < before)
    }

    fn first_at_or_after(&self, start: NaiveDateTime) -> Option<NaiveDateTime> {
        let limit_year = start.year().checked_add(SEARCH_YEARS)?;
        let (mut year, mut month, mut day) = (start.year(), start.month(), start.day());
        let (mut hour, mut minute, mut second) = (start.hour(), start.minute(), start.second());
        // Each step either accepts the current value of a field or moves that field forward and
        // resets the smaller ones; overflow (month 13, day 32, hour 24, minute 60) is left to the
        // next round, where the field set has no such value and the larger field advances.
        loop {
            if year > limit_year {
                return None;
            }
            match self.months.next_from(month) {
                None => {
                    (year, month, day, hour, minute, second) = (year + 1, 1, 1, 0, 0, 0);
                    continue;
                }
                Some(m) if m != month => (month, day, hour, minute, second) = (m, 1, 0, 0, 0),
                Some(_) => {}
            }
            match self.next_day(year, month, day) {
                None => {
                    (month, day, hour, minute, second) = (month + 1, 1, 0, 0, 0);
                    continue;
                }
                Some(d) if d != day => (day, hour, minute, second) = (d, 0, 0, 0),
                Some(_) => {}
            }
            match self.hours.next_from(hour) {
                None => {
                    (day, hour, minute, second) = (day + 1, 0, 0, 0);
                    continue;
                }
                Some(h) if h != hour => (hour, minute, second) = (h, 0, 0),
                Some(_) => {}
            }
            match self.minutes.next_from(minute) {
                None => {
                    (hour, minute, second) = (hour + 1, 0, 0);
                    continue;
                }
                Some(m) if m != minute => (minute, second) = (m, 0),
                Some(_) => {}
            }
            match self.seconds.next_from(second) {
                None => {
                    (minute, second) = (minute + 1, 0);
                    continue;
                }
                Some(s) => second = s,
            }
            return NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(hour, minute, second);
        }
    }

    /// The first day `>= from` of `year`-`month` that exists and matches both the day-of-month
    /// and the day-of-week field (NCrontab's AND rule).
    fn next_day(&self, year: i32, month: u32, from: u32) -> Option<u32> {
        let first = NaiveDate::from_ymd_opt(year, month, 1)?;
        let first_weekday = first.weekday().num_days_from_sunday();
        let last = days_in_month(year, month);
        let mut from = from;
        while let Some(day) = self.days.next_from(from) {
            if day > last {
                return None;
            }
            if self.days_of_week.contains((first_weekday + day - 1) % 7) {
                return Some(day);
            }
            from = day + 1;
        }
        None
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

fn parse_field(kind: FieldKind, token: &str) -> Result<FieldSet, ScheduleError> {
    let mut bits = 0u64;
    for element in token.split(',') {
        bits |= parse_element(kind, token, element)?;
    }
    Ok(FieldSet(bits))
}

fn invalid(kind: FieldKind, token: &str, reason: impl Into<String>) -> ScheduleError {
    ScheduleError::InvalidToken {
        field: kind,
        token: token.to_string(),
        reason: reason.into(),
    }
}

/// One comma-separated element: `*`, `v`, `a-b`, each optionally followed by `/step`.
fn parse_element(kind: FieldKind, token: &str, element: &str) -> Result<u64, ScheduleError> {
    let (min, max) = kind.bounds();
    if element.is_empty() {
        return Err(invalid(kind, token, "empty list element"));
    }
    let (base, step) = match element.split_once('/') {
        Some((base, step_text)) => {
            let step = parse_number(step_text).ok_or_else(|| {
                invalid(kind, token, format!("step '{step_text}' is not a number"))
            })?;
            if step == 0 {
                return Err(ScheduleError::ZeroStep {
                    field: kind,
                    token: token.to_string(),
                });
            }
            (base, Some(step))
        }
        None => (element, None),
    };
    let (start, end) = if base == "*" {
        (min, max)
    } else if let Some((a, b)) = base.split_once('-') {
        let a = parse_value(kind, token, a)?;
        let b = parse_value(kind, token, b)?;
        (a.min(b), a.max(b))
    } else {
        let value = parse_value(kind, token, base)?;
        match step {
            Some(_) => (value, max),
            None => (value, value),
        }
    };
    let step = step.unwrap_or(1);
    let mut bits = 0u64;
    let mut value = start;
    while value <= end {
        bits |= 1 << value;
        value = value.saturating_add(step);
    }
    Ok(bits)
}

fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A number within the field's bounds, or (month, day-of-week) a case-insensitive name prefix.
fn parse_value(kind: FieldKind, token: &str, text: &str) -> Result<u32, ScheduleError> {
    let (min, max) = kind.bounds();
    if text.is_empty() {
        return Err(invalid(kind, token, "missing value"));
    }
    if text.as_bytes()[0].is_ascii_digit() {
        let value = parse_number(text)
            .ok_or_else(|| invalid(kind, token, format!("'{text}' is not a number")))?;
        if value < min || value > max {
            let hint = if kind == FieldKind::DayOfWeek && value == 7 {
                " (NCrontab does not accept 7 for Sunday; use 0 or SUN)"
            } else {
                ""
            };
            return Err(ScheduleError::OutOfRange {
                field: kind,
                token: token.to_string(),
                value,
                min,
                max,
                hint,
            });
        }
        return Ok(value);
    }
    let names = kind.names();
    if names.is_empty() {
        return Err(invalid(
            kind,
            token,
            format!("'{text}' is not a number between {min} and {max}"),
        ));
    }
    names
        .iter()
        .position(|name| {
            name.len() >= text.len()
                && name.as_bytes()[..text.len()].eq_ignore_ascii_case(text.as_bytes())
        })
        .and_then(|index| u32::try_from(index).ok())
        .map(|index| index + min)
        .ok_or_else(|| {
            invalid(
                kind,
                token,
                format!(
                    "'{text}' is neither a number between {min} and {max} nor a name ({})",
                    names.join(", ")
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn sched(expr: &str) -> Schedule {
        Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    /// The next `n` occurrences after `from`, as RFC 3339 strings.
    fn next_n(expr: &str, from: &str, n: usize) -> Vec<String> {
        let s = sched(expr);
        let mut out = Vec::new();
        let mut t = at(from);
        for _ in 0..n {
            t = s.next_after(t).unwrap();
            out.push(t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        out
    }

    fn err(expr: &str) -> ScheduleError {
        Schedule::parse(expr).expect_err(expr)
    }

    #[test]
    fn every_15_seconds() {
        assert_eq!(
            next_n("*/15 * * * * *", "2026-09-24T13:08:07Z", 5),
            [
                "2026-09-24T13:08:15Z",
                "2026-09-24T13:08:30Z",
                "2026-09-24T13:08:45Z",
                "2026-09-24T13:09:00Z",
                "2026-09-24T13:09:15Z",
            ]
        );
    }

    #[test]
    fn every_15_seconds_crosses_hour_day_month_and_year() {
        let s = sched("*/15 * * * * *");
        assert_eq!(
            s.next_after(utc(2026, 9, 24, 13, 59, 50)),
            Some(utc(2026, 9, 24, 14, 0, 0))
        );
        assert_eq!(
            s.next_after(utc(2026, 9, 24, 23, 59, 45)),
            Some(utc(2026, 9, 25, 0, 0, 0))
        );
        assert_eq!(
            s.next_after(utc(2026, 9, 30, 23, 59, 59)),
            Some(utc(2026, 10, 1, 0, 0, 0))
        );
        assert_eq!(
            next_n("*/15 * * * * *", "2026-12-31T23:59:31Z", 3),
            [
                "2026-12-31T23:59:45Z",
                "2027-01-01T00:00:00Z",
                "2027-01-01T00:00:15Z"
            ]
        );
    }

    #[test]
    fn every_five_minutes() {
        assert_eq!(
            next_n("0 */5 * * * *", "2026-09-24T13:08:07Z", 3),
            [
                "2026-09-24T13:10:00Z",
                "2026-09-24T13:15:00Z",
                "2026-09-24T13:20:00Z"
            ]
        );
        assert_eq!(
            next_n("0 */5 * * * *", "2026-09-24T23:55:00Z", 2),
            ["2026-09-25T00:00:00Z", "2026-09-25T00:05:00Z"]
        );
    }

    #[test]
    fn ranges() {
        let s = sched("10-20 * * * * *");
        let from = utc(2026, 9, 24, 13, 8, 5);
        let got: Vec<u32> = s
            .occurrences(from, utc(2026, 9, 24, 13, 9, 0))
            .map(|t| t.second())
            .collect();
        assert_eq!(got, (10..=20).collect::<Vec<_>>());
        assert_eq!(
            s.next_after(utc(2026, 9, 24, 13, 8, 20)),
            Some(utc(2026, 9, 24, 13, 9, 10))
        );
        // Hours range: 9-17 at minute 30.
        assert_eq!(
            next_n("0 30 9-17 * * *", "2026-09-24T17:30:00Z", 2),
            ["2026-09-25T09:30:00Z", "2026-09-25T10:30:00Z"]
        );
    }

    #[test]
    fn steps_on_ranges_and_start_step() {
        let minute = |expr: &str| -> Vec<u32> {
            sched(expr)
                .occurrences(utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 1, 0, 1, 0))
                .map(|t| t.second())
                .collect()
        };
        assert_eq!(minute("10-40/10 * * * * *"), [10, 20, 30, 40]);
        assert_eq!(minute("5/20 * * * * *"), [5, 25, 45]);
        assert_eq!(minute("*/25 * * * * *"), [25, 50]); // :00 is not strictly after 00:00:00
        assert_eq!(minute("10-12/100 * * * * *"), [10]);
        // Steps start at the field minimum: day-of-month */10 is 1, 11, 21, 31.
        let days: Vec<u32> = sched("0 0 0 */10 * *")
            .occurrences(utc(2026, 1, 1, 0, 0, 0), utc(2026, 2, 1, 0, 0, 0))
            .map(|t| t.day())
            .collect();
        assert_eq!(days, [11, 21, 31]);
        // Months */2 are 1, 3, 5, ...
        assert_eq!(
            next_n("0 0 0 1 */2 *", "2026-01-01T00:00:00Z", 2),
            ["2026-03-01T00:00:00Z", "2026-05-01T00:00:00Z"]
        );
    }

    #[test]
    fn lists() {
        assert_eq!(
            next_n("0,30 * * * * *", "2026-09-24T13:08:07Z", 3),
            [
                "2026-09-24T13:08:30Z",
                "2026-09-24T13:09:00Z",
                "2026-09-24T13:09:30Z"
            ]
        );
        let got: Vec<u32> = sched("0,10-12,*/30,58 * * * * *")
            .occurrences(utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 1, 0, 1, 1))
            .map(|t| t.second())
            .collect();
        assert_eq!(got, [10, 11, 12, 30, 58, 0]);
    }

    #[test]
    fn day_names_weekdays_at_nine() {
        // 2026-09-25 is a Friday.
        assert_eq!(
            next_n("0 0 9 * * MON-FRI", "2026-09-25T09:00:00Z", 3),
            [
                "2026-09-28T09:00:00Z",
                "2026-09-29T09:00:00Z",
                "2026-09-30T09:00:00Z"
            ]
        );
        assert_eq!(sched("0 0 9 * * mon-fri"), {
            let mut s = sched("0 0 9 * * 1-5");
            s.expression = "0 0 9 * * mon-fri".into();
            s
        });
        assert_eq!(
            sched("0 0 9 * * Monday,tue").days_of_week,
            sched("0 0 9 * * 1,2").days_of_week
        );
        assert_eq!(
            sched("0 0 0 * * SUN").days_of_week,
            sched("0 0 0 * * 0").days_of_week
        );
        // NCrontab name prefixes: first match in order.
        assert_eq!(sched("0 0 0 * M *").months, sched("0 0 0 * 3 *").months);
        assert_eq!(
            sched("0 0 0 * * T").days_of_week,
            sched("0 0 0 * * 2").days_of_week
        );
    }

    #[test]
    fn month_names() {
        assert_eq!(
            next_n("0 0 0 1 JAN,jul *", "2026-02-01T00:00:00Z", 2),
            ["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"]
        );
        assert_eq!(
            sched("0 0 0 1 december *").months,
            sched("0 0 0 1 12 *").months
        );
        assert_eq!(
            sched("0 0 0 1 Mar-May/2 *").months,
            sched("0 0 0 1 3,5 *").months
        );
    }

    #[test]
    fn day_of_month_and_day_of_week_are_anded() {
        // Friday the 13th only (NCrontab ANDs); Vixie cron would fire every Friday and every 13th.
        assert_eq!(
            next_n("0 0 0 13 * FRI", "2026-01-01T00:00:00Z", 3),
            [
                "2026-02-13T00:00:00Z",
                "2026-03-13T00:00:00Z",
                "2026-11-13T00:00:00Z"
            ]
        );
        // A `*` on either side leaves the other in charge.
        assert_eq!(
            next_n("0 0 0 * * FRI", "2026-01-01T00:00:00Z", 1),
            ["2026-01-02T00:00:00Z"]
        );
        assert_eq!(
            next_n("0 0 0 13 * *", "2026-01-01T00:00:00Z", 1),
            ["2026-01-13T00:00:00Z"]
        );
        // 29 February that is a Monday: 2044, beyond a short search horizon.
        assert_eq!(
            next_n("0 0 0 29 2 MON", "2026-01-01T00:00:00Z", 1),
            ["2044-02-29T00:00:00Z"]
        );
    }

    #[test]
    fn month_ends_and_leap_years() {
        assert_eq!(
            next_n("0 0 12 29 2 *", "2025-01-01T00:00:00Z", 2),
            ["2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z"]
        );
        // 2100 is not a leap year; 2000 was.
        assert_eq!(
            next_n("0 0 12 29 2 *", "2096-03-01T00:00:00Z", 1),
            ["2104-02-29T12:00:00Z"]
        );
        assert_eq!(
            next_n("0 0 12 29 2 *", "1999-01-01T00:00:00Z", 1),
            ["2000-02-29T12:00:00Z"]
        );
        // 31st: skips 30-day months.
        assert_eq!(
            next_n("0 0 0 31 * *", "2026-03-31T00:00:00Z", 2),
            ["2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z"]
        );
        // Every day at midnight across the end of February, leap and non-leap.
        assert_eq!(
            next_n("0 0 0 * * *", "2028-02-28T00:00:00Z", 2),
            ["2028-02-29T00:00:00Z", "2028-03-01T00:00:00Z"]
        );
        assert_eq!(
            next_n("0 0 0 * * *", "2026-02-28T00:00:00Z", 1),
            ["2026-03-01T00:00:00Z"]
        );
        // Last second of the year.
        assert_eq!(
            next_n("59 59 23 31 12 *", "2026-06-01T00:00:00Z", 2),
            ["2026-12-31T23:59:59Z", "2027-12-31T23:59:59Z"]
        );
    }

    #[test]
    fn impossible_schedules_yield_none() {
        let from = utc(2026, 1, 1, 0, 0, 0);
        assert_eq!(sched("0 0 0 30 2 *").next_after(from), None);
        assert_eq!(sched("0 0 0 31 4,6,9,11 *").next_after(from), None);
        assert_eq!(
            sched("0 0 0 31 2 *")
                .occurrences(from, utc(2030, 1, 1, 0, 0, 0))
                .count(),
            0
        );
    }

    #[test]
    fn five_field_expressions_have_second_zero() {
        let s = sched("*/5 * * * *");
        assert!(!s.has_seconds());
        assert!(sched("0 */5 * * * *").has_seconds());
        assert_eq!(s.seconds, sched("0 */5 * * * *").seconds);
        assert_eq!(
            next_n("*/5 * * * *", "2026-09-24T13:08:07Z", 2),
            ["2026-09-24T13:10:00Z", "2026-09-24T13:15:00Z"]
        );
        assert_eq!(
            next_n("30 9 * * 1-5", "2026-09-25T09:30:00Z", 1),
            ["2026-09-28T09:30:00Z"]
        );
    }

    #[test]
    fn next_after_is_strictly_after() {
        let s = sched("*/15 * * * * *");
        assert_eq!(
            s.next_after(utc(2026, 9, 24, 13, 8, 15)),
            Some(utc(2026, 9, 24, 13, 8, 30))
        );
        assert_eq!(
            s.next_after(at("2026-09-24T13:08:14.999999999Z")),
            Some(utc(2026, 9, 24, 13, 8, 15))
        );
        assert_eq!(
            s.next_after(at("2026-09-24T13:08:15.000000001Z")),
            Some(utc(2026, 9, 24, 13, 8, 30))
        );
        assert_eq!(
            s.next_after(at("2026-09-24T13:08:59.5Z")),
            Some(utc(2026, 9, 24, 13, 9, 0))
        );
        let every_second = sched("* * * * * *");
        assert_eq!(
            every_second.next_after(at("2026-09-24T13:08:14.2Z")),
            Some(utc(2026, 9, 24, 13, 8, 15))
        );
        assert_eq!(
            every_second.next_after(utc(2026, 9, 24, 13, 8, 14)),
            Some(utc(2026, 9, 24, 13, 8, 15))
        );
        // Yearly schedule asked exactly at its occurrence: a year later.
        assert_eq!(
            sched("0 0 0 1 1 *").next_after(utc(2026, 1, 1, 0, 0, 0)),
            Some(utc(2027, 1, 1, 0, 0, 0))
        );
    }

    #[test]
    fn occurrences_are_exclusive_at_both_ends() {
        let s = sched("0 * * * * *");
        let got: Vec<_> = s
            .occurrences(utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 1, 0, 3, 0))
            .collect();
        assert_eq!(got, [utc(2026, 1, 1, 0, 1, 0), utc(2026, 1, 1, 0, 2, 0)]);
    }

    #[test]
    fn reversed_ranges_are_swapped_like_ncrontab() {
        assert_eq!(
            sched("50-10 * * * * *").seconds,
            sched("10-50 * * * * *").seconds
        );
        assert_eq!(
            sched("0 0 0 * * FRI-MON").days_of_week,
            sched("0 0 0 * * 1-5").days_of_week
        );
    }

    #[test]
    fn whitespace_between_fields_is_flexible() {
        let s = sched("  0   */5\t* * *  *  ");
        assert_eq!(s.expression(), "0   */5\t* * *  *");
        assert_eq!(s.minutes, sched("0 */5 * * * *").minutes);
        assert_eq!(
            "0 */5 * * * *".parse::<Schedule>().unwrap().to_string(),
            "0 */5 * * * *"
        );
    }

    #[test]
    fn wrong_field_count_is_rejected() {
        for (expr, count) in [
            ("", 0),
            ("* * * *", 4),
            ("* * * * * * *", 7),
            ("garbage", 1),
        ] {
            match err(expr) {
                ScheduleError::FieldCount { count: c, .. } => assert_eq!(c, count, "{expr}"),
                other => panic!("{expr}: {other:?}"),
            }
        }
        let message = err("* * * *").to_string();
        assert!(message.contains("4 field(s)"), "{message}");
        assert!(message.contains("{second} {minute} {hour}"), "{message}");
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let cases = [
            ("60 * * * * *", FieldKind::Second, 60),
            ("0 60 * * * *", FieldKind::Minute, 60),
            ("0 0 24 * * *", FieldKind::Hour, 24),
            ("0 0 0 0 * *", FieldKind::DayOfMonth, 0),
            ("0 0 0 32 * *", FieldKind::DayOfMonth, 32),
            ("0 0 0 * 0 *", FieldKind::Month, 0),
            ("0 0 0 * 13 *", FieldKind::Month, 13),
            ("0 0 0 * * 7", FieldKind::DayOfWeek, 7),
            ("0 0 0 * * 1-7", FieldKind::DayOfWeek, 7),
            ("0 0-60 * * * *", FieldKind::Minute, 60),
            ("0 0 0 * * 8/2", FieldKind::DayOfWeek, 8),
            ("60 * * * *", FieldKind::Minute, 60),
        ];
        for (expr, kind, bad) in cases {
            match err(expr) {
                ScheduleError::OutOfRange { field, value, .. } => {
                    assert_eq!((field, value), (kind, bad), "{expr}")
                }
                other => panic!("{expr}: {other:?}"),
            }
        }
        assert_eq!(
            err("0 0 24 * * *").to_string(),
            "invalid hour field '24': 24 is out of range 0-23"
        );
        let message = err("0 0 0 * * 7").to_string();
        assert!(message.contains("day-of-week field '7'"), "{message}");
        assert!(message.contains("use 0 or SUN"), "{message}");
    }

    #[test]
    fn zero_step_is_rejected() {
        for expr in ["*/0 * * * * *", "0 10-20/0 * * * *", "0 0 5/0 * * *"] {
            assert!(
                matches!(err(expr), ScheduleError::ZeroStep { .. }),
                "{expr}"
            );
        }
        assert_eq!(
            err("*/0 * * * * *").to_string(),
            "invalid second field '*/0': a step must be at least 1"
        );
    }

    #[test]
    fn garbage_is_rejected_with_field_and_token() {
        let cases = [
            ("abc * * * * *", FieldKind::Second, "abc"),
            ("0 1- * * * *", FieldKind::Minute, "1-"),
            ("0 -1 * * * *", FieldKind::Minute, "-1"),
            ("0 0 , * * *", FieldKind::Hour, ","),
            ("0 0 1,,2 * * *", FieldKind::Hour, "1,,2"),
            ("0 0 0 */x * *", FieldKind::DayOfMonth, "*/x"),
            ("0 0 0 1/2/3 * *", FieldKind::DayOfMonth, "1/2/3"),
            ("0 0 0 1 FOO *", FieldKind::Month, "FOO"),
            ("0 0 0 1 1 MONDAYS", FieldKind::DayOfWeek, "MONDAYS"),
            ("0 0 0 1 1 ?", FieldKind::DayOfWeek, "?"),
            ("0 0 0 L * *", FieldKind::DayOfMonth, "L"),
            ("0 0 1a * * *", FieldKind::Hour, "1a"),
            ("0 0 1-2-3 * * *", FieldKind::Hour, "1-2-3"),
            ("0 0 /5 * * *", FieldKind::Hour, "/5"),
            ("0 0 5/ * * *", FieldKind::Hour, "5/"),
            ("0 0 *-5 * * *", FieldKind::Hour, "*-5"),
            ("0 0 99999999999 * * *", FieldKind::Hour, "99999999999"),
        ];
        for (expr, kind, bad) in cases {
            match err(expr) {
                ScheduleError::InvalidToken { field, token, .. } => {
                    assert_eq!((field, token.as_str()), (kind, bad), "{expr}")
                }
                other => panic!("{expr}: {other:?}"),
            }
        }
        let message = err("0 0 0 1 FOO *").to_string();
        assert!(
            message.starts_with("invalid month field 'FOO'"),
            "{message}"
        );
        assert!(message.contains("January"), "{message}");
    }

    /// `next_after` agrees with a second-by-second scan using `matches`.
    #[test]
    fn next_after_agrees_with_brute_force() {
        let exprs = [
            "*/15 * * * * *",
            "7,41 */7 * * * *",
            "0 0-10/3 22-23,0-1 * * *",
            "30 59 23 * * *",
            "0 0 */6 * * SAT,SUN",
            "10-12 0 0 1,28-31 * *",
            "0 0 0 13 * FRI",
            "* * * * * *",
        ];
        let start = utc(2027, 12, 28, 20, 0, 0);
        let end = utc(2028, 1, 2, 4, 0, 0);
        for expr in exprs {
            let s = sched(expr);
            let mut expected = Vec::new();
            let mut t = start + TimeDelta::seconds(1);
            while t < end {
                if s.matches(t) {
                    expected.push(t);
                }
                t += TimeDelta::seconds(1);
            }
            let got: Vec<_> = s.occurrences(start, end).collect();
            assert_eq!(got.len(), expected.len(), "{expr}");
            assert!(got == expected, "{expr}");
        }
    }
}
