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
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// A point in time, UTC, with microsecond precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

/// A timestamp that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not {expected}")]
pub struct TimestampError {
    text: String,
    expected: &'static str,
}

const EVENT_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

const DATE_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]");

impl Timestamp {
    /// The current time, cut to microseconds.
    pub fn now() -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// A system time, cut to microseconds. Times outside what RFC 3339 can write (before
    /// year 0 or after 9999) are clamped, since a wall clock never reads them.
    pub fn from_system_time(t: SystemTime) -> Timestamp {
        // Through microseconds rather than `OffsetDateTime::from`, which panics on overflow.
        let micros = match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_micros()).map_or(i64::MIN, |m| -m),
        };
        Timestamp::from_unix_micros(micros).unwrap_or(Timestamp(if micros < 0 {
            min_time()
        } else {
            max_time()
        }))
    }

    /// Microseconds since the Unix epoch (negative before it).
    pub fn unix_micros(&self) -> i64 {
        // i128 nanoseconds fit; microseconds of years 0..=9999 fit in i64.
        (self.0.unix_timestamp_nanos() / 1000) as i64
    }

    /// A timestamp from microseconds since the Unix epoch, if RFC 3339 can write it.
    pub fn from_unix_micros(micros: i64) -> Option<Timestamp> {
        let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).ok()?;
        (dt >= min_time() && dt <= max_time()).then_some(Timestamp(dt))
    }

    /// This time plus a duration (saturating at the end of year 9999).
    pub fn add(&self, d: Duration) -> Timestamp {
        let dt = self
            .0
            .checked_add(time::Duration::try_from(d).unwrap_or(time::Duration::MAX));
        Timestamp(truncate(dt.unwrap_or(max_time()).min(max_time())))
    }

    /// How long after `earlier` this is; zero when it is not after.
    pub fn since(&self, earlier: &Timestamp) -> Duration {
        Duration::try_from(self.0 - earlier.0).unwrap_or(Duration::ZERO)
    }

    /// Reads the one form events are written in, and nothing else.
    pub fn parse_event(text: &str) -> Result<Timestamp, TimestampError> {
        time::PrimitiveDateTime::parse(text, EVENT_FORMAT)
            .map(|dt| Timestamp(dt.assume_utc()))
            .map_err(|_| TimestampError {
                text: text.to_string(),
                expected: "an event timestamp (YYYY-MM-DDTHH:MM:SS.ffffffZ)",
            })
    }

    /// Reads a time a person typed: any RFC 3339 date-time (any offset, any fraction), or a
    /// bare date `YYYY-MM-DD` meaning its midnight UTC.
    pub fn parse_user(text: &str) -> Result<Timestamp, TimestampError> {
        let text = text.trim();
        if let Ok(dt) = OffsetDateTime::parse(text, &Rfc3339) {
            return Ok(Timestamp(truncate(dt.to_offset(UtcOffset::UTC))));
        }
        if let Ok(date) = time::Date::parse(text, DATE_FORMAT) {
            return Ok(Timestamp(date.midnight().assume_utc()));
        }
        Err(TimestampError {
            text: text.to_string(),
            expected: "an RFC 3339 time (2026-11-26T05:00:00Z) or a date (2026-11-26)",
        })
    }
}

fn truncate(dt: OffsetDateTime) -> OffsetDateTime {
    let dt = dt.to_offset(UtcOffset::UTC);
    let micros = dt.nanosecond() / 1000;
    dt.replace_nanosecond(micros * 1000).unwrap_or(dt)
}

fn min_time() -> OffsetDateTime {
    time::macros::datetime!(0000-01-01 00:00:00 UTC)
}

fn max_time() -> OffsetDateTime {
    time::macros::datetime!(9999-12-31 23:59:59.999999 UTC)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Formatting a UTC time of years 0..=9999 with this description cannot fail.
        match self.0.format(EVENT_FORMAT) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
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
            "9999-12-31T23:59:59.999999Z"
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
        assert_eq!(far.to_string(), "9999-12-31T23:59:59.999999Z");
    }
}
