//! Timestamps on the wire: RFC 3339 in UTC, as `2026-11-30T09:55:34.123Z`.
//!
//! Used as `#[serde(with = "crate::timestamp")]` (and `timestamp::option`) on every
//! `DateTime<Utc>` field that crosses the wire. chrono's own serde support writes this very
//! format, but reads it through its general date parser (every RFC 2822 and strftime item
//! included), which weighed about 6 KB of the browser's bundle, Brotli (docs/performance.md).
//! The wire only ever carries what this module writes, so it reads that format: four-digit
//! years (0000 to 9999), any fraction of a second, and `Z` or a numeric offset. What it
//! writes is byte for byte what chrono writes (the tests compare the two), so the wire format
//! is unchanged; like chrono it writes a year outside that range with a sign, which it does
//! not read back (no clock or database here makes one).

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Writes a timestamp (see the module's documentation).
///
/// # Errors
/// Only the serializer's own.
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    Wire(*at).serialize(serializer)
}

/// Reads a timestamp (see the module's documentation).
///
/// # Errors
/// A string that is not an RFC 3339 timestamp, or a date or time that does not exist.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    Wire::deserialize(deserializer).map(|wire| wire.0)
}

/// The same for an optional timestamp (`null` when absent).
pub mod option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Wire;

    /// Writes an optional timestamp.
    ///
    /// # Errors
    /// Only the serializer's own.
    pub fn serialize<S: Serializer>(
        at: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        at.map(Wire).serialize(serializer)
    }

    /// Reads an optional timestamp.
    ///
    /// # Errors
    /// As [`super::deserialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<Wire>::deserialize(deserializer).map(|wire| wire.map(|wire| wire.0))
    }
}

/// A timestamp in its wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wire(DateTime<Utc>);

impl fmt::Display for Wire {
    /// As chrono's `to_rfc3339_opts(SecondsFormat::AutoSi, true)`: the fraction of a second
    /// only when there is one, in 3, 6 or 9 digits, and a leap second as second 60.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.0;
        let year = at.year();
        if (0..=9999).contains(&year) {
            write!(f, "{year:04}")?;
        } else {
            write!(f, "{year:+05}")?;
        }
        let (mut second, mut nano) = (at.second(), at.nanosecond());
        if nano >= 1_000_000_000 {
            second += 1;
            nano -= 1_000_000_000;
        }
        write!(
            f,
            "-{:02}-{:02}T{:02}:{:02}:{second:02}",
            at.month(),
            at.day(),
            at.hour(),
            at.minute()
        )?;
        if nano == 0 {
            Ok(())
        } else if nano % 1_000_000 == 0 {
            write!(f, ".{:03}", nano / 1_000_000)
        } else if nano % 1_000 == 0 {
            write!(f, ".{:06}", nano / 1_000)
        } else {
            write!(f, ".{nano:09}")
        }?;
        f.write_str("Z")
    }
}

impl Serialize for Wire {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Wire {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text)
            .map(Wire)
            .ok_or_else(|| de::Error::custom("invalid timestamp: expected RFC 3339"))
    }
}

/// Reads `YYYY-MM-DDTHH:MM:SS`, an optional fraction of a second (digits past nanoseconds are
/// ignored) and `Z` or `±HH:MM`. `None` for anything else, or a date that does not exist.
fn parse(text: &str) -> Option<DateTime<Utc>> {
    let bytes = text.as_bytes();
    let (fixed, rest) = bytes.split_at_checked(19)?;
    let separators_ok = fixed[4] == b'-'
        && fixed[7] == b'-'
        && matches!(fixed[10], b'T' | b't')
        && fixed[13] == b':'
        && fixed[16] == b':';
    if !separators_ok {
        return None;
    }
    let year = number(&fixed[0..4])?;
    let month = number(&fixed[5..7])?;
    let day = number(&fixed[8..10])?;
    let hour = number(&fixed[11..13])?;
    let minute = number(&fixed[14..16])?;
    let mut second = number(&fixed[17..19])?;

    let (mut nano, rest) = match rest {
        [b'.', fraction @ ..] => {
            let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            let kept = &fraction[..digits.min(9)];
            // `kept` has at most 9 digits, so the scale is at least 10^0.
            let scale = 10u32.pow(9 - u32::try_from(kept.len()).ok()?);
            (number(kept)? * scale, &fraction[digits..])
        }
        _ => (0, rest),
    };
    let offset_seconds = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), hours @ .., b':', m1, m2] if hours.len() == 2 => {
            let (hours, minutes) = (number(hours)?, number(&[*m1, *m2])?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            // At most 23:59, so it fits.
            let seconds = i32::try_from(hours * 3600 + minutes * 60).ok()?;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    // chrono keeps a leap second as the 59th second with an extra second of nanoseconds.
    if second == 60 {
        second = 59;
        nano += 1_000_000_000;
    }
    let local = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
        .and_hms_nano_opt(hour, minute, second, nano)?;
    // As chrono does: an offset moves the time, keeping a leap second one.
    Some(
        local
            .checked_sub_offset(FixedOffset::east_opt(offset_seconds)?)?
            .and_utc(),
    )
}

/// The value of a run of ASCII digits; `None` if any is not a digit, or it does not fit (the
/// callers pass at most 9).
fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |value, byte| {
        if byte.is_ascii_digit() {
            value.checked_mul(10)?.checked_add(u32::from(byte - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use chrono::{SecondsFormat, TimeDelta, TimeZone};

    use super::*;

    /// Timestamps with every kind of fraction, the ends of the supported years and a leap
    /// second.
    fn samples() -> Vec<DateTime<Utc>> {
        let base = Utc.with_ymd_and_hms(2026, 11, 30, 9, 55, 34).unwrap();
        let mut samples = vec![
            base,
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(2024, 2, 29, 12, 0, 0).unwrap(),
            NaiveDate::from_ymd_opt(2016, 12, 31)
                .unwrap()
                .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
                .unwrap()
                .and_utc(),
        ];
        for nano in [
            1,
            120,
            123_000,
            123_456,
            1_000_000,
            123_000_000,
            999_999_999,
        ] {
            samples.push(base + TimeDelta::nanoseconds(nano));
        }
        samples
    }

    #[test]
    fn writes_what_chrono_writes() {
        for at in samples() {
            assert_eq!(
                serde_json::to_string(&Wire(at)).unwrap(),
                serde_json::to_string(&at).unwrap(),
                "{at:?}"
            );
        }
    }

    #[test]
    fn reads_what_chrono_writes_and_what_it_reads() {
        for at in samples() {
            let written = at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            assert_eq!(parse(&written), Some(at), "{written}");
            for format in [
                SecondsFormat::Secs,
                SecondsFormat::Millis,
                SecondsFormat::Nanos,
            ] {
                let written = at.to_rfc3339_opts(format, false);
                let expected = DateTime::parse_from_rfc3339(&written).unwrap().to_utc();
                assert_eq!(parse(&written), Some(expected), "{written}");
            }
        }
    }

    #[test]
    fn applies_offsets() {
        for text in [
            "2026-11-30T11:55:34+02:00",
            "2026-11-30T04:25:34.5-05:30",
            "2026-12-01T00:10:00.000000000001+14:00",
            "2026-11-30t09:55:34z",
            "2017-01-01T00:59:60.25+01:00",
        ] {
            let expected = DateTime::parse_from_rfc3339(text).unwrap().to_utc();
            assert_eq!(parse(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn refuses_anything_else() {
        for text in [
            "",
            "2026-11-30",
            "2026-11-30T09:55:34",
            "2026-11-30 09:55:34Z",
            "2026-11-30T09:55:34.Z",
            "2026-11-30T09:55:34ZZ",
            "2026-11-30T09:55:34+0200",
            "2026-11-30T09:55:34+24:00",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-30T24:00:00Z",
            "2026-11-30T09:60:00Z",
            "+2026-11-30T09:55:34Z",
            "+10000-01-01T00:00:00Z",
            "2026-1a-30T09:55:34Z",
            "２０２６-11-30T09:55:34Z",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }

    #[test]
    fn fields_round_trip_with_and_without_a_value() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Event {
            #[serde(with = "super")]
            at: DateTime<Utc>,
            #[serde(default, with = "super::option")]
            seen: Option<DateTime<Utc>>,
        }
        let at = samples()[5];
        for event in [Event { at, seen: None }, Event { at, seen: Some(at) }] {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
        }
        let missing: Event = serde_json::from_str(r#"{"at":"2026-11-30T09:55:34Z"}"#).unwrap();
        assert_eq!(missing.seen, None);
        assert!(serde_json::from_str::<Event>(r#"{"at":"yesterday"}"#).is_err());
        assert!(serde_json::from_str::<Event>(r#"{"at":1}"#).is_err());
    }
}
