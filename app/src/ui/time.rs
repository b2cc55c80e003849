//! Times as people read them: in the browser's own time zone, relative to today.
//!
//! Message times are rendered only in the browser (the chat page's data is fetched after
//! hydration), so `Local` is the reader's zone, not the server's.

use chrono::{DateTime, Datelike, Local, NaiveDate, Utc};

/// Milliseconds since the epoch, from the browser's clock (chrono reads `Date.now()` in WASM).
pub fn now_ms() -> f64 {
    Utc::now().timestamp_millis() as f64
}

/// "14:05".
pub fn clock(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local).format("%H:%M").to_string()
}

/// The machine-readable form for `<time datetime>`: RFC 3339 in UTC, milliseconds.
pub fn machine(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The local date of `t`: its key (`2026-11-25`) and its label for a day separator.
pub fn day(t: DateTime<Utc>) -> (String, String) {
    let date = t.with_timezone(&Local).date_naive();
    (
        date.format("%Y-%m-%d").to_string(),
        day_label(date, Local::now().date_naive()),
    )
}

/// "Today", "Yesterday", or "Monday, 23 November 2026".
pub fn day_label(date: NaiveDate, today: NaiveDate) -> String {
    if date == today {
        "Today".into()
    } else if today.pred_opt() == Some(date) {
        "Yesterday".into()
    } else {
        date.format("%A, %-d %B %Y").to_string()
    }
}

/// For the conversation list: the time today, the weekday within a week, else the date.
pub fn short(t: DateTime<Utc>) -> String {
    let local = t.with_timezone(&Local);
    let today = Local::now().date_naive();
    let date = local.date_naive();
    let age = today.signed_duration_since(date).num_days();
    if age == 0 {
        local.format("%H:%M").to_string()
    } else if (1..7).contains(&age) {
        local.format("%a").to_string()
    } else if date.year() == today.year() {
        local.format("%-d %b").to_string()
    } else {
        local.format("%-d %b %Y").to_string()
    }
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
    fn machine_time_is_utc_with_milliseconds() {
        let t = DateTime::from_timestamp_millis(1_795_000_000_123).unwrap();
        assert_eq!(machine(t), "2026-11-18T11:06:40.123Z");
    }
}
