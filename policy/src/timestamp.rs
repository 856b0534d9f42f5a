//! RFC 3339 times, as Kubernetes resources carry them (`expiresAt`, a decision's `at`), to
//! and from `SystemTime`, the type the domain code computes with.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `SystemTime` as RFC 3339 UTC to the second (`2026-11-26T10:05:00Z`), as Kubernetes
/// writes times. Times beyond about year ±9999, which no clock or token means seriously, are
/// clamped to that range.
pub fn format(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    };
    format_unix(secs)
}

/// Seconds since 1970 as RFC 3339 UTC, clamped to the range RFC 3339 can write.
pub fn format_unix(secs: i64) -> String {
    let clamped = secs.clamp(
        jiff::Timestamp::MIN.as_second(),
        jiff::Timestamp::MAX.as_second(),
    );
    match jiff::Timestamp::from_second(clamped) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        // Unreachable after the clamp; a number is still better than nothing in a message.
        Err(_) => format!("{secs} seconds after 1970"),
    }
}

/// Parses an RFC 3339 time (`2026-11-26T10:05:00Z`, `…+02:00`, fractional seconds allowed).
pub fn parse(text: &str) -> Result<SystemTime, String> {
    let ts: jiff::Timestamp = text
        .parse()
        .map_err(|e| format!("{text:?} is not an RFC 3339 time ({e})"))?;
    Ok(from_unix_nanos(ts.as_nanosecond()))
}

/// `SystemTime` from seconds since 1970 (negative: before), saturating at its bounds.
pub fn from_unix(secs: i64) -> SystemTime {
    from_unix_nanos(i128::from(secs) * 1_000_000_000)
}

fn from_unix_nanos(nanos: i128) -> SystemTime {
    let magnitude = nanos.unsigned_abs();
    let d = Duration::new(
        u64::try_from(magnitude / 1_000_000_000).unwrap_or(u64::MAX),
        // Below 10^9, so it fits.
        (magnitude % 1_000_000_000) as u32,
    );
    let t = if nanos >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    };
    t.unwrap_or(UNIX_EPOCH)
}

/// Seconds since 1970 (negative: before).
pub fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_kubernetes_times() {
        let t = parse("2026-11-26T10:05:00Z").unwrap();
        assert_eq!(format(t), "2026-11-26T10:05:00Z");
        assert_eq!(unix(t), 1_795_687_500);
        assert_eq!(from_unix(1_795_687_500), t);
        assert_eq!(
            parse("2026-11-26T12:05:00+02:00").unwrap(),
            t,
            "offsets are honoured"
        );
        assert_eq!(
            parse("2026-11-26T10:05:00.5Z").unwrap(),
            t + Duration::from_millis(500)
        );
        assert_eq!(
            format(UNIX_EPOCH - Duration::from_secs(1)),
            "1969-12-31T23:59:59Z"
        );
        assert_eq!(unix(UNIX_EPOCH - Duration::from_secs(1)), -1);
    }

    #[test]
    fn bad_times_and_extremes() {
        assert!(
            parse("tomorrow")
                .unwrap_err()
                .contains("\"tomorrow\" is not an RFC 3339 time")
        );
        assert!(
            format_unix(i64::MAX).starts_with("9999-12-3"),
            "clamped to the end of year 9999"
        );
        assert!(!format_unix(i64::MIN).is_empty());
    }
}
