//! The audit trail's timestamps: RFC 3339 in UTC with exactly six fractional digits
//! (`2026-11-26T05:00:00.123456Z`).
//!
//! One fixed textual form matters because events are hashed as the bytes written: a reader
//! that parses `ts` and writes it back must produce the same bytes, so parsing an event's
//! `ts` is strict and [`Timestamp`]'s `Display` is the only way one is written.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, UTC, with microsecond precision, from the year 0 to late on 9999-12-30
/// (what RFC 3339 can write, within jiff's range).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Microseconds since the Unix epoch (negative before it).
    micros: i64,
}

/// A timestamp that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not {expected}")]
pub struct TimestampError {
    text: String,
    expected: &'static str,
}

/// 0000-01-01T00:00:00Z in microseconds: no earlier year has four digits.
const MIN_MICROS: i64 = -62_167_219_200_000_000;

/// 9999-12-30T22:00:00Z, the last microsecond jiff takes (its range stops short of the end
/// of year 9999 so that any offset can be applied), in microseconds.
const MAX_MICROS: i64 = 253_402_207_200_000_000;

impl Timestamp {
    /// The current time, cut to microseconds.
    pub fn now() -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// A system time, cut to microseconds and clamped to the range above (a wall clock never
    /// reads outside them).
    pub fn from_system_time(t: SystemTime) -> Timestamp {
        let micros = match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_micros()).map_or(i64::MIN, |m| -m),
        };
        Timestamp {
            micros: micros.clamp(MIN_MICROS, MAX_MICROS),
        }
    }

    /// Microseconds since the Unix epoch (negative before it).
    pub fn unix_micros(&self) -> i64 {
        self.micros
    }

    /// A timestamp from microseconds since the Unix epoch, if RFC 3339 can write it.
    pub fn from_unix_micros(micros: i64) -> Option<Timestamp> {
        (MIN_MICROS..=MAX_MICROS)
            .contains(&micros)
            .then_some(Timestamp { micros })
    }

    /// This time plus a duration (saturating at the end of the range).
    pub fn add(&self, d: Duration) -> Timestamp {
        let micros = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        Timestamp {
            micros: self.micros.saturating_add(micros).min(MAX_MICROS),
        }
    }

    /// How long after `earlier` this is; zero when it is not after.
    pub fn since(&self, earlier: &Timestamp) -> Duration {
        let micros = self.micros.saturating_sub(earlier.micros);
        Duration::from_micros(u64::try_from(micros).unwrap_or(0))
    }

    /// Reads the one form events are written in, and nothing else.
    pub fn parse_event(text: &str) -> Result<Timestamp, TimestampError> {
        let err = || TimestampError {
            text: text.to_string(),
            expected: "an event timestamp (YYYY-MM-DDTHH:MM:SS.ffffffZ)",
        };
        let parsed: jiff::Timestamp = text.parse().map_err(|_| err())?;
        let ts = Timestamp::from_unix_micros(parsed.as_microsecond()).ok_or_else(err)?;
        // Strict: only the text this type writes reads back (so a line's bytes and the
        // time a verifier signs over cannot differ).
        if ts.to_string() != text {
            return Err(err());
        }
        Ok(ts)
    }

    /// Reads a time a person typed: any RFC 3339 date-time (any offset, any fraction), or a
    /// bare date `YYYY-MM-DD` meaning its midnight UTC.
    pub fn parse_user(text: &str) -> Result<Timestamp, TimestampError> {
        let text = text.trim();
        let parsed = text.parse::<jiff::Timestamp>().ok().or_else(|| {
            let date = text.parse::<jiff::civil::Date>().ok()?;
            jiff::tz::Offset::UTC
                .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
                .ok()
        });
        parsed
            .and_then(|t| Timestamp::from_unix_micros(t.as_microsecond()))
            .ok_or_else(|| TimestampError {
                text: text.to_string(),
                expected: "an RFC 3339 time (2026-11-26T05:00:00Z) or a date (2026-11-26)",
            })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every value is within the range above, which jiff represents; written by hand so
        // the form is fixed whatever the library's defaults.
        let Ok(ts) = jiff::Timestamp::from_microsecond(self.micros) else {
            return Err(fmt::Error);
        };
        let dt = jiff::tz::Offset::UTC.to_datetime(ts);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.subsec_nanosecond() / 1000
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(d)?;
        Timestamp::parse_event(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "RFC 3339 in UTC with exactly six fractional digits",
            "type": "string",
            "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_microseconds_in_utc_and_reads_back_the_same_bytes() {
        let t = Timestamp::from_unix_micros(1_795_669_200_123_456).unwrap();
        let text = t.to_string();
        assert_eq!(text, "2026-11-26T05:00:00.123456Z");
        assert_eq!(Timestamp::parse_event(&text).unwrap(), t);
        assert_eq!(t.unix_micros(), 1_795_669_200_123_456);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-11-26T05:00:00.123456Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }

    #[test]
    fn event_form_is_strict_and_user_form_is_lenient() {
        for bad in [
            "2026-11-26T05:00:00Z",
            "2026-11-26T05:00:00.123Z",
            "2026-11-26T05:00:00.123456+00:00",
            "2026-11-26 05:00:00.123456Z",
            "2026-11-26t05:00:00.123456Z",
            "2026-02-30T05:00:00.123456Z",
            "-0001-11-26T05:00:00.123456Z",
        ] {
            assert!(Timestamp::parse_event(bad).is_err(), "{bad}");
        }
        let a = Timestamp::parse_user("2026-11-26T06:00:00+01:00").unwrap();
        assert_eq!(a.to_string(), "2026-11-26T05:00:00.000000Z");
        let b = Timestamp::parse_user("2026-11-26").unwrap();
        assert_eq!(b.to_string(), "2026-11-26T00:00:00.000000Z");
        assert!(Timestamp::parse_user("yesterday").is_err());
    }

    #[test]
    fn system_times_are_cut_to_microseconds_and_clamped() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_500_999);
        assert_eq!(Timestamp::from_system_time(t).unix_micros(), 1_500);
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(
            Timestamp::from_system_time(far).to_string(),
            "9999-12-30T22:00:00.000000Z"
        );
        let now = Timestamp::now();
        assert_eq!(now.to_string().len(), 27);
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_unix_micros(0).unwrap();
        assert_eq!(
            t.add(Duration::from_secs(60)).since(&t),
            Duration::from_secs(60)
        );
        assert_eq!(t.since(&t.add(Duration::from_secs(1))), Duration::ZERO);
        let far = t.add(Duration::MAX);
        assert_eq!(far.to_string(), "9999-12-30T22:00:00.000000Z");
    }
}
