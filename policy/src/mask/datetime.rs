//! `date`, `timestamp` and `timestamptz` in ISO text and in binary, and `Truncate`.
//!
//! Binary values count from PostgreSQL's epoch, 2000-01-01: days (int32) for `date`,
//! microseconds (int64) for the timestamps, with the extreme integers meaning `-infinity` and
//! `infinity`. `timestamptz` is UTC in binary, so it is truncated in UTC there; in text it is
//! printed in the session's time zone with an explicit offset, and it is truncated in that
//! printed local time, keeping the printed offset (a valid timestamptz, though for zones whose
//! offset differs across the truncated span not the exact local midnight).

use std::io::Write as _;

use crate::masking::TruncateTo;

use super::Format;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DtKind {
    Date,
    Timestamp,
    TimestampTz,
}

/// A broken-down date and time. `year` is astronomical (1 BC is year 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dt {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
    usec: u32,
    /// Seconds east of UTC, for timestamptz only.
    offset: Option<i32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DtVal {
    Finite(Dt),
    PosInf,
    NegInf,
}

const USECS_PER_DAY: i64 = 86_400_000_000;
const USECS_PER_HOUR: i64 = 3_600_000_000;
/// Days from 1970-01-01 to PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
/// PostgreSQL's range: Julian day 0 (4714-11-24 BC) up to, not including, 5874898-01-01 for
/// dates and 294277-01-01 for timestamps.
const MIN_DATE: i64 = -2_451_545;
const END_DATE: i64 = 2_147_483_494 - 2_451_545;
const MIN_TIMESTAMP: i64 = -211_813_488_000_000_000;
const END_TIMESTAMP: i64 = 9_223_371_331_200_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (the usual era arithmetic: 400-year
/// eras of 146097 days, years starting in March so the leap day is last).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn is_leap(y: i64) -> bool {
    y.rem_euclid(4) == 0 && (y.rem_euclid(100) != 0 || y.rem_euclid(400) == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if is_leap(y) {
                29
            } else {
                28
            }
        }
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Between `min` and `max` decimal digits.
    fn digits(&mut self, min: usize, max: usize) -> Option<(i64, usize)> {
        let start = self.i;
        let mut v: i64 = 0;
        while self.i - start < max
            && let Some(b) = self.peek().filter(u8::is_ascii_digit)
        {
            v = v * 10 + (b - b'0') as i64;
            self.i += 1;
        }
        let n = self.i - start;
        (n >= min).then_some((v, n))
    }
    fn done(&self) -> bool {
        self.i == self.s.len()
    }
    fn eat_bc(&mut self) -> bool {
        let rest = &self.s[self.i..];
        if rest.len() >= 3 && rest[0] == b' ' && rest[1..3].eq_ignore_ascii_case(b"BC") {
            self.i += 3;
            true
        } else {
            false
        }
    }
}

/// Parses the ISO text of a value of `kind`: what PostgreSQL prints with DateStyle ISO
/// (`2024-05-06`, `2024-05-06 07:08:09.123+02`, `0044-03-15 BC`, `infinity`), and, for
/// `Fixed` values written by people, also `T` between date and time, `Z` for UTC, a date
/// alone for a timestamp, and no offset for a timestamptz (read as UTC).
pub(crate) fn parse_text(kind: DtKind, v: &[u8]) -> Option<DtVal> {
    let s = v.trim_ascii();
    if s.eq_ignore_ascii_case(b"infinity") || s.eq_ignore_ascii_case(b"+infinity") {
        return Some(DtVal::PosInf);
    }
    if s.eq_ignore_ascii_case(b"-infinity") {
        return Some(DtVal::NegInf);
    }
    let mut c = Cursor { s, i: 0 };
    let (year, _) = c.digits(4, 7)?;
    if !c.eat(b'-') {
        return None;
    }
    let (month, _) = c.digits(1, 2)?;
    if !c.eat(b'-') {
        return None;
    }
    let (day, _) = c.digits(1, 2)?;
    let mut dt = Dt {
        year,
        month: month as u32,
        day: day as u32,
        hour: 0,
        min: 0,
        sec: 0,
        usec: 0,
        offset: None,
    };
    if kind != DtKind::Date && (c.eat(b' ') || c.eat(b'T')) {
        if c.peek() == Some(b'B') || c.peek() == Some(b'b') {
            // "date BC" with no time: give back the space.
            c.i -= 1;
        } else {
            dt.hour = c.digits(2, 2)?.0 as u32;
            if !c.eat(b':') {
                return None;
            }
            dt.min = c.digits(2, 2)?.0 as u32;
            if !c.eat(b':') {
                return None;
            }
            dt.sec = c.digits(2, 2)?.0 as u32;
            if c.eat(b'.') {
                let (f, n) = c.digits(1, 6)?;
                dt.usec = (f * 10i64.pow(6 - n as u32)) as u32;
            }
            if c.eat(b'Z') || c.eat(b'z') {
                dt.offset = Some(0);
            } else if let Some(sign) = c.peek().filter(|b| *b == b'+' || *b == b'-') {
                c.i += 1;
                let (h, _) = c.digits(2, 2)?;
                let mut secs = h * 3600;
                if c.eat(b':') || c.peek().is_some_and(|b| b.is_ascii_digit()) {
                    secs += c.digits(2, 2)?.0 * 60;
                    if c.eat(b':') {
                        secs += c.digits(2, 2)?.0;
                    }
                }
                if h > 15 {
                    return None;
                }
                dt.offset = Some(if sign == b'-' { -secs } else { secs } as i32);
            }
        }
    }
    let bc = c.eat_bc();
    if !c.done() {
        return None;
    }
    if bc {
        if dt.year == 0 {
            return None;
        }
        dt.year = 1 - dt.year;
    } else if dt.year == 0 {
        return None;
    }
    match kind {
        DtKind::TimestampTz => {
            dt.offset.get_or_insert(0);
        }
        DtKind::Timestamp if dt.offset.is_some() => return None,
        _ => {}
    }
    let valid = (1..=12).contains(&dt.month)
        && dt.day >= 1
        && dt.day <= days_in_month(dt.year, dt.month)
        && dt.hour < 24
        && dt.min < 60
        && dt.sec < 60;
    valid.then_some(DtVal::Finite(dt))
}

/// Appends ISO text as PostgreSQL prints it.
fn write_text(kind: DtKind, dt: &Dt, out: &mut Vec<u8>) {
    let (year, bc) = if dt.year <= 0 {
        (1 - dt.year, true)
    } else {
        (dt.year, false)
    };
    let _ = write!(out, "{year:04}-{:02}-{:02}", dt.month, dt.day);
    if kind != DtKind::Date {
        let _ = write!(out, " {:02}:{:02}:{:02}", dt.hour, dt.min, dt.sec);
        if dt.usec != 0 {
            let mut frac = dt.usec;
            let mut width = 6;
            while frac.is_multiple_of(10) {
                frac /= 10;
                width -= 1;
            }
            let _ = write!(out, ".{frac:0width$}");
        }
        if let (DtKind::TimestampTz, Some(off)) = (kind, dt.offset) {
            let sign = if off < 0 { '-' } else { '+' };
            let a = off.unsigned_abs();
            let _ = write!(out, "{sign}{:02}", a / 3600);
            if a % 3600 != 0 {
                let _ = write!(out, ":{:02}", a / 60 % 60);
                if a % 60 != 0 {
                    let _ = write!(out, ":{:02}", a % 60);
                }
            }
        }
    }
    if bc {
        out.extend_from_slice(b" BC");
    }
}

/// The binary number of a finite value: days for a date, microseconds (UTC for timestamptz)
/// otherwise; `None` outside PostgreSQL's range.
fn to_binary(kind: DtKind, dt: &Dt) -> Option<i64> {
    let days = days_from_civil(dt.year, dt.month, dt.day) - PG_EPOCH_DAYS;
    if kind == DtKind::Date {
        return (MIN_DATE..END_DATE).contains(&days).then_some(days);
    }
    let tod =
        (dt.hour as i64 * 3600 + dt.min as i64 * 60 + dt.sec as i64) * 1_000_000 + dt.usec as i64;
    let offset = dt.offset.unwrap_or(0) as i64 * 1_000_000;
    let us = days
        .checked_mul(USECS_PER_DAY)?
        .checked_add(tod)?
        .checked_sub(offset)?;
    (MIN_TIMESTAMP..END_TIMESTAMP).contains(&us).then_some(us)
}

fn write_binary(kind: DtKind, n: i64, out: &mut Vec<u8>) {
    if kind == DtKind::Date {
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn write_infinity(kind: DtKind, pos: bool, format: Format, out: &mut Vec<u8>) {
    match format {
        Format::Text => out.extend_from_slice(if pos { b"infinity" } else { b"-infinity" }),
        Format::Binary => match (kind, pos) {
            (DtKind::Date, true) => out.extend_from_slice(&i32::MAX.to_be_bytes()),
            (DtKind::Date, false) => out.extend_from_slice(&i32::MIN.to_be_bytes()),
            (_, true) => out.extend_from_slice(&i64::MAX.to_be_bytes()),
            (_, false) => out.extend_from_slice(&i64::MIN.to_be_bytes()),
        },
    }
}

/// Encodes a `Fixed` value written as ISO text; `None` if it is not a valid value of the
/// type.
pub(crate) fn encode_fixed(kind: DtKind, value: &str, format: Format) -> Option<Vec<u8>> {
    let v = parse_text(kind, value.as_bytes())?;
    let mut out = Vec::new();
    match v {
        DtVal::PosInf => write_infinity(kind, true, format, &mut out),
        DtVal::NegInf => write_infinity(kind, false, format, &mut out),
        DtVal::Finite(dt) => {
            let n = to_binary(kind, &dt)?;
            match format {
                Format::Text => write_text(kind, &dt, &mut out),
                Format::Binary => write_binary(kind, n, &mut out),
            }
        }
    }
    Some(out)
}

fn truncate_fields(dt: &mut Dt, to: TruncateTo) {
    if matches!(to, TruncateTo::Year) {
        dt.month = 1;
    }
    if matches!(to, TruncateTo::Year | TruncateTo::Month) {
        dt.day = 1;
    }
    if !matches!(to, TruncateTo::Hour) {
        dt.hour = 0;
    }
    dt.min = 0;
    dt.sec = 0;
    dt.usec = 0;
}

/// `Truncate` of one value. Infinities stay; a result before PostgreSQL's first representable
/// day (truncating a value in 4714 BC) is NULL.
pub(crate) fn truncate(
    kind: DtKind,
    to: TruncateTo,
    format: Format,
    v: &[u8],
    out: &mut Vec<u8>,
) -> Option<()> {
    match format {
        Format::Text => match parse_text(kind, v)? {
            DtVal::PosInf => write_infinity(kind, true, format, out),
            DtVal::NegInf => write_infinity(kind, false, format, out),
            DtVal::Finite(mut dt) => {
                truncate_fields(&mut dt, to);
                to_binary(kind, &dt)?;
                write_text(kind, &dt, out);
            }
        },
        Format::Binary => {
            if kind == DtKind::Date {
                let b: [u8; 4] = v.try_into().ok()?;
                let days = i32::from_be_bytes(b);
                if days == i32::MAX || days == i32::MIN {
                    out.extend_from_slice(v);
                    return Some(());
                }
                let days = truncate_days(days as i64, to);
                if !(MIN_DATE..END_DATE).contains(&days) {
                    return None;
                }
                write_binary(kind, days, out);
            } else {
                let b: [u8; 8] = v.try_into().ok()?;
                let us = i64::from_be_bytes(b);
                if us == i64::MAX || us == i64::MIN {
                    out.extend_from_slice(v);
                    return Some(());
                }
                let days = us.div_euclid(USECS_PER_DAY);
                let tod = us.rem_euclid(USECS_PER_DAY);
                let r = match to {
                    TruncateTo::Hour => days * USECS_PER_DAY + tod - tod % USECS_PER_HOUR,
                    TruncateTo::Day => days * USECS_PER_DAY,
                    TruncateTo::Month | TruncateTo::Year => truncate_days(days, to) * USECS_PER_DAY,
                };
                if !(MIN_TIMESTAMP..END_TIMESTAMP).contains(&r) {
                    return None;
                }
                write_binary(kind, r, out);
            }
        }
    }
    Some(())
}

fn truncate_days(pg_days: i64, to: TruncateTo) -> i64 {
    let (y, m, d) = civil_from_days(pg_days + PG_EPOCH_DAYS);
    let (m, d) = match to {
        TruncateTo::Year => (1, 1),
        TruncateTo::Month => (m, 1),
        TruncateTo::Day | TruncateTo::Hour => (m, d),
    };
    days_from_civil(y, m, d) - PG_EPOCH_DAYS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for z in (-3_000_000i64..3_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
            assert!(d <= days_in_month(y, m));
        }
        assert_eq!(days_from_civil(2000, 1, 1), PG_EPOCH_DAYS);
        // Julian day 0 is 4714-11-24 BC, astronomical year -4713.
        assert_eq!(days_from_civil(-4713, 11, 24) - PG_EPOCH_DAYS, MIN_DATE);
    }
}
