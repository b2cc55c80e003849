//! Times as people read them: in the browser's own time zone, relative to today.
//!
//! Message times are rendered only in the browser (the chat page's data is fetched after
//! hydration), so the local zone is the reader's, not the server's.
//!
//! In the browser the clock and the zone come straight from JavaScript's `Date`, not through
//! chrono's `Utc::now` and `Local`: those reach the same `Date` calls, but through checks
//! whose failure messages bring chrono's `Debug` formatting into the bundle.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike, Utc, Weekday};

/// Milliseconds since the epoch, from the browser's clock (`Date.now()`).
pub fn now_ms() -> f64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        Utc::now().timestamp_millis() as f64
    }
}

/// Now, from the browser's clock.
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(now_ms() as i64).unwrap_or_default()
}

/// `t` in the reader's time zone, with the zone's offset at that instant (summer time
/// included): from `Date.getTimezoneOffset()` in the browser, the machine's zone elsewhere.
fn local(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    #[cfg(feature = "hydrate")]
    {
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(t.timestamp_millis() as f64));
        // Minutes *behind* UTC: -60 in Paris in winter.
        let offset = FixedOffset::west_opt((date.get_timezone_offset() * 60.0).round() as i32)
            .unwrap_or_else(|| chrono::Offset::fix(&Utc));
        t.with_timezone(&offset)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        t.with_timezone(&chrono::Local).fixed_offset()
    }
}

/// "14:05".
///
/// The dates here are written out by hand rather than with chrono's `format`: its format
/// strings are interpreted at run time, and that interpreter cost the browser's bundle about
/// 4 KB compressed for five fixed patterns.
pub fn clock(t: DateTime<Utc>) -> String {
    let local = local(t);
    format!("{:02}:{:02}", local.hour(), local.minute())
}

/// The machine-readable form for `<time datetime>`: RFC 3339 in UTC, milliseconds (HTML
/// allows at most three digits of a second's fraction). Written out by hand, as the rest of
/// this module, so that chrono's general RFC 3339 writer stays out of the bundle.
pub fn machine(t: DateTime<Utc>) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        // A leap second (which no clock here produces) is written as the 59th.
        t.timestamp_subsec_millis().min(999)
    )
}

/// The local date of `t`: its key (`2026-11-25`) and its label for a day separator.
pub fn day(t: DateTime<Utc>) -> (String, String) {
    let date = local(t).date_naive();
    (
        format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day()),
        day_label(date, local(now()).date_naive()),
    )
}

/// "Today", "Yesterday", or "Monday, 23 November 2026".
pub fn day_label(date: NaiveDate, today: NaiveDate) -> String {
    if date == today {
        "Today".into()
    } else if today.pred_opt() == Some(date) {
        "Yesterday".into()
    } else {
        format!(
            "{}, {} {} {}",
            weekday_name(date.weekday()),
            date.day(),
            month_name(date.month0()),
            date.year()
        )
    }
}

/// For the conversation list: the time today, the weekday within a week, else the date.
pub fn short(t: DateTime<Utc>) -> String {
    let at = local(t);
    short_label(
        at.date_naive(),
        at.hour(),
        at.minute(),
        local(now()).date_naive(),
    )
}

/// [`short`] for a local date and time, seen on `today`: "14:05", "Mon", "2 Nov" or
/// "2 Nov 2025".
fn short_label(date: NaiveDate, hour: u32, minute: u32, today: NaiveDate) -> String {
    let age = today.signed_duration_since(date).num_days();
    let month = &month_name(date.month0())[..3];
    if age == 0 {
        format!("{hour:02}:{minute:02}")
    } else if (1..7).contains(&age) {
        weekday_name(date.weekday())[..3].to_owned()
    } else if date.year() == today.year() {
        format!("{} {month}", date.day())
    } else {
        format!("{} {month} {}", date.day(), date.year())
    }
}

fn weekday_name(day: Weekday) -> &'static str {
    const NAMES: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    NAMES[day.num_days_from_monday() as usize]
}

/// The month's name, from its number counted from 0 (as `month0` gives it).
fn month_name(month0: u32) -> &'static str {
    const NAMES: [&str; 12] = [
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
    NAMES[month0 as usize % 12]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_labels_are_relative_to_today() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        assert_eq!(day_label(today, today), "Today");
        assert_eq!(day_label(today.pred_opt().unwrap(), today), "Yesterday");
        assert_eq!(
            day_label(NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(), today),
            "Monday, 2 November 2026"
        );
    }

    #[test]
    fn short_labels_shorten_with_age() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(short_label(today, 9, 5, today), "09:05");
        assert_eq!(short_label(day(2026, 11, 23), 9, 5, today), "Mon");
        assert_eq!(short_label(day(2026, 11, 19), 9, 5, today), "Thu");
        // A week or more ago: the date, with the year only when it is not this one.
        assert_eq!(short_label(day(2026, 11, 18), 9, 5, today), "18 Nov");
        assert_eq!(short_label(day(2026, 5, 2), 9, 5, today), "2 May");
        assert_eq!(short_label(day(2025, 12, 31), 9, 5, today), "31 Dec 2025");
    }

    #[test]
    fn machine_time_is_utc_with_milliseconds() {
        let t = DateTime::from_timestamp_millis(1_795_000_000_123).unwrap();
        assert_eq!(machine(t), "2026-11-18T11:06:40.123Z");
        let whole = DateTime::from_timestamp_millis(1_795_000_000_000).unwrap();
        assert_eq!(machine(whole), "2026-11-18T11:06:40.000Z");
        let early = DateTime::from_timestamp_millis(-62_135_596_800_000 + 7).unwrap();
        assert_eq!(machine(early), "0001-01-01T00:00:00.007Z");
    }
}
