//! Numbers: `int2/4/8`, `float4/8` and `numeric`, in text and binary, and the masks that apply
//! to them (`Round`, `Noise`, and for integers `Hash` and `Tokenize`).
//!
//! `numeric` values (and JSON numbers) are rounded exactly, in decimal, by a small
//! arbitrary-precision engine ([`Dec`]); floats are rounded in binary floating point and then
//! tidied to the decimals of the rounding step.

use std::io::Write as _;

use rand::Rng;

use super::Format;
use super::keys::{Keyed, rng_from_digest, unit_from_digest};

/// The three integer widths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntWidth {
    I2,
    I4,
    I8,
}

impl IntWidth {
    pub(crate) fn min(self) -> i64 {
        match self {
            IntWidth::I2 => i16::MIN as i64,
            IntWidth::I4 => i32::MIN as i64,
            IntWidth::I8 => i64::MIN,
        }
    }
    pub(crate) fn max(self) -> i64 {
        match self {
            IntWidth::I2 => i16::MAX as i64,
            IntWidth::I4 => i32::MAX as i64,
            IntWidth::I8 => i64::MAX,
        }
    }
    fn clamp(self, v: i128) -> i64 {
        v.clamp(self.min() as i128, self.max() as i128) as i64
    }
}

pub(crate) fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// An integer in PostgreSQL's text form (surrounding whitespace and a `+` allowed, as the
/// server's input function allows them).
pub(crate) fn parse_int_text(v: &[u8]) -> Option<i64> {
    let v = trim(v);
    let (neg, digits) = match v.first()? {
        b'-' => (true, &v[1..]),
        b'+' => (false, &v[1..]),
        _ => (false, v),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulate negatively so that i64::MIN, whose magnitude has no positive i64, parses.
    let mut acc: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        acc = acc.checked_mul(10)?.checked_sub((b - b'0') as i64)?;
    }
    if neg { Some(acc) } else { acc.checked_neg() }
}

/// An integer column value in either format, range-checked for its width.
pub(crate) fn parse_int(v: &[u8], width: IntWidth, format: Format) -> Option<i64> {
    let x = match format {
        Format::Text => parse_int_text(v)?,
        Format::Binary => match (width, v.len()) {
            (IntWidth::I2, 2) => i16::from_be_bytes([v[0], v[1]]) as i64,
            (IntWidth::I4, 4) => i32::from_be_bytes([v[0], v[1], v[2], v[3]]) as i64,
            (IntWidth::I8, 8) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(v);
                i64::from_be_bytes(b)
            }
            _ => return None,
        },
    };
    (width.min()..=width.max()).contains(&x).then_some(x)
}

/// Appends an in-range integer of `width` in `format`.
pub(crate) fn write_int(x: i64, width: IntWidth, format: Format, out: &mut Vec<u8>) {
    match format {
        Format::Text => {
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{x}");
        }
        Format::Binary => match width {
            IntWidth::I2 => out.extend_from_slice(&(x as i16).to_be_bytes()),
            IntWidth::I4 => out.extend_from_slice(&(x as i32).to_be_bytes()),
            IntWidth::I8 => out.extend_from_slice(&x.to_be_bytes()),
        },
    }
}

/// The canonical text of an integer, on the stack, for hashing: text and binary columns of the
/// same value must hash alike.
pub(crate) fn int_text(x: i64, buf: &mut [u8; 24]) -> &[u8] {
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    // 20 characters at most ("-9223372036854775808"), so the 24-byte buffer never fills.
    let _ = write!(cursor, "{x}");
    let n = cursor.position() as usize;
    &buf[..n]
}

/// `Hash` on an integer: a non-negative integer of the same width from the digest.
pub(crate) fn hash_int(key: &Keyed, x: i64, width: IntWidth) -> i64 {
    let mut buf = [0u8; 24];
    let d = key.digest(&[int_text(x, &mut buf)]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    // Non-negative so that hashed identifiers still look like identifiers.
    (u64::from_be_bytes(b) & width.max() as u64) as i64
}

/// `Tokenize` on an integer: same sign and number of digits, no leading zero, within the
/// width's range; deterministic per value for the process.
pub(crate) fn tokenize_int(key: &Keyed, x: i64, width: IntWidth) -> i64 {
    let mut buf = [0u8; 24];
    let text = int_text(x, &mut buf);
    let mut rng = rng_from_digest(&key.digest(&[text]));
    let neg = x < 0;
    let mag = x.unsigned_abs();
    let digits = text.len() - usize::from(neg);
    let limit = if neg {
        width.min().unsigned_abs()
    } else {
        width.max() as u64
    };
    let lo = if digits == 1 {
        u64::from(neg)
    } else {
        10u64.pow(digits as u32 - 1)
    };
    let hi = 10u64
        .checked_pow(digits as u32)
        .map_or(u64::MAX, |p| p - 1)
        .min(limit);
    // The value itself has `digits` digits and is within range, so lo <= mag <= hi.
    let t = if lo <= hi {
        rng.random_range(lo..=hi)
    } else {
        mag
    };
    if neg {
        (t as i128).wrapping_neg() as i64
    } else {
        t as i64
    }
}

/// The parameters of a `Round` mask, decomposed once: `to` = `m` × 10^`f` exactly as the
/// shortest decimal that reads back as the same double (so `0.01` is 1 × 10^-2, not the
/// binary fraction near it).
#[derive(Clone, Debug)]
pub(crate) struct RoundSpec {
    pub(crate) to: f64,
    pub(crate) m: u64,
    pub(crate) f: i32,
    /// `to` as an integer when it is one (and fits), for integer columns' fast path.
    int_to: Option<i128>,
    /// Decimal places of `to`, to tidy float results (0.30000000000000004 → 0.3).
    decimals: usize,
}

impl RoundSpec {
    /// `None` for a step that is not a positive finite number: such a rule cannot round, and
    /// the column masks to NULL.
    pub(crate) fn new(to: f64) -> Option<RoundSpec> {
        if !to.is_finite() || to <= 0.0 {
            return None;
        }
        let s = format!("{to:e}");
        let (mant, exp) = s.split_once('e')?;
        let exp: i32 = exp.parse().ok()?;
        let (int_part, frac_part) = mant.split_once('.').unwrap_or((mant, ""));
        let mut m: u64 = 0;
        for b in int_part.bytes().chain(frac_part.bytes()) {
            if !b.is_ascii_digit() {
                return None;
            }
            m = m.checked_mul(10)?.checked_add((b - b'0') as u64)?;
        }
        let f = exp - frac_part.len() as i32;
        let int_to = if f >= 0 {
            10i128
                .checked_pow(f as u32)
                .and_then(|p| p.checked_mul(m as i128))
                .filter(|t| *t <= i64::MAX as i128)
        } else {
            None
        };
        Some(RoundSpec {
            to,
            m,
            f,
            int_to,
            decimals: (-f).max(0) as usize,
        })
    }
}

/// `Round` on an integer: the nearest multiple of `to` (halves away from zero), then the
/// nearest integer; a result past the type's range steps one multiple back toward zero, and
/// is clamped if even that does not fit.
pub(crate) fn round_int(x: i64, spec: &RoundSpec, width: IntWidth, dec: &mut Dec) -> Option<i64> {
    let v = x as i128;
    let r = if let Some(t) = spec.int_to {
        // |x| and t both fit u64 (t <= i64::MAX), and u64 division is far cheaper than
        // i128's; the product goes back to i128, where it cannot overflow.
        let (a, t64) = (x.unsigned_abs(), t as u64);
        let mut q = a / t64;
        if a % t64 >= t64 - a % t64 {
            q += 1;
        }
        let m = q as i128 * t;
        let r = if v < 0 { -m } else { m };
        if r > width.max() as i128 {
            r - t
        } else if r < width.min() as i128 {
            r + t
        } else {
            r
        }
    } else {
        dec.set_i128(v);
        dec.round_multiple(spec.m, spec.f)?;
        dec.round_multiple(1, 0)?;
        dec.to_i128()
            .unwrap_or(if dec.neg { i128::MIN } else { i128::MAX })
    };
    Some(width.clamp(r))
}

/// `Noise` on an integer: x × (1 + u·ratio), u uniform in [-1, 1) drawn from a keyed digest
/// of the value, rounded and clamped to the type.
pub(crate) fn noise_int(key: &Keyed, x: i64, ratio: f64, width: IntWidth) -> i64 {
    let mut buf = [0u8; 24];
    let u = unit_from_digest(&key.digest(&[int_text(x, &mut buf)]));
    let y = (x as f64 * (1.0 + u * ratio)).round();
    // `as` saturates for out-of-range doubles; the width's clamp then applies.
    width.clamp(y as i128)
}

/// A float column value as a double (float4 values widen exactly).
pub(crate) fn parse_float(v: &[u8], single: bool, format: Format) -> Option<f64> {
    match format {
        Format::Text => parse_float_text(v, single),
        Format::Binary => match (single, v.len()) {
            (true, 4) => Some(f32::from_be_bytes([v[0], v[1], v[2], v[3]]) as f64),
            (false, 8) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(v);
                Some(f64::from_be_bytes(b))
            }
            _ => None,
        },
    }
}

/// PostgreSQL's float text: a decimal, `NaN`, `Infinity`, `-Infinity` (Rust's parser accepts
/// those spellings, case-insensitively, as the server's does). A float4 is read as a float4
/// and widened, so its text and binary forms give the very same double.
pub(crate) fn parse_float_text(v: &[u8], single: bool) -> Option<f64> {
    let s = std::str::from_utf8(trim(v)).ok()?;
    if single {
        s.parse::<f32>().ok().map(f64::from)
    } else {
        s.parse::<f64>().ok()
    }
}

/// Appends a float in `format`. Text uses PostgreSQL's spellings of the special values, which
/// every client parses; finite values use the shortest text that reads back exactly.
pub(crate) fn write_float(v: f64, single: bool, format: Format, out: &mut Vec<u8>) {
    match format {
        Format::Binary => {
            if single {
                out.extend_from_slice(&(v as f32).to_be_bytes());
            } else {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        Format::Text => write_float_text(v, single, out),
    }
}

pub(crate) fn write_float_text(v: f64, single: bool, out: &mut Vec<u8>) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        let a = v.abs();
        // Plain notation in the usual range, exponent notation outside it (a 300-digit plain
        // spelling of 1e300 would be valid but absurd).
        let plain = a == 0.0 || (1e-4..1e15).contains(&a);
        let _ = match (single, plain) {
            (true, true) => write!(out, "{}", v as f32),
            (true, false) => write!(out, "{:e}", v as f32),
            (false, true) => write!(out, "{v}"),
            (false, false) => write!(out, "{v:e}"),
        };
    }
}

/// Clamps a result that overflowed to infinity back to the largest finite value of the type:
/// a finite input never becomes infinite by masking.
fn finite_clamp(x: f64, single: bool) -> f64 {
    let max = if single { f32::MAX as f64 } else { f64::MAX };
    if x.is_nan() { x } else { x.clamp(-max, max) }
}

/// `Round` on a float. NaN and infinities stay as they are.
pub(crate) fn round_float(v: f64, spec: &RoundSpec, single: bool, scratch: &mut Vec<u8>) -> f64 {
    if !v.is_finite() || !(v / spec.to).is_finite() {
        // A step so fine that the quotient overflows: every double is already a multiple.
        return v;
    }
    let mut r = (v / spec.to).round() * spec.to;
    // Multiplying back by a decimal step leaves binary noise (3 × 0.1 = 0.30000000000000004);
    // printing to the step's decimals and reading back removes it.
    if r.is_finite() && spec.decimals <= 17 {
        scratch.clear();
        let _ = write!(scratch, "{:.*}", spec.decimals, r);
        if let Some(t) = std::str::from_utf8(scratch)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
        {
            r = t;
        }
    }
    finite_clamp(r, single)
}

/// `Noise` on a float, from a keyed digest of the value's canonical text.
pub(crate) fn noise_float(
    key: &Keyed,
    v: f64,
    ratio: f64,
    single: bool,
    scratch: &mut Vec<u8>,
) -> f64 {
    if !v.is_finite() {
        return v;
    }
    scratch.clear();
    write_float_text(v, single, scratch);
    let u = unit_from_digest(&key.digest(&[scratch]));
    finite_clamp(v * (1.0 + u * ratio), single)
}

/// What a parsed `numeric` (or JSON number) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumKind {
    Finite,
    NaN,
    PosInf,
    NegInf,
}

/// The largest shift of decimal digits the engine will materialise; beyond it a value is
/// refused (NULL) rather than grown without bound. PostgreSQL's own numeric tops out near
/// 147,000 digits.
const MAX_DIGITS: usize = 200_000;

/// An exact decimal: `digits` × 10^`exp`, negative if `neg`, displayed with `dscale`
/// fractional digits. `digits` has no leading or trailing zeros; zero has no digits.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dec {
    pub(crate) neg: bool,
    pub(crate) digits: Vec<u8>,
    pub(crate) exp: i32,
    pub(crate) dscale: i32,
    /// Scratch for division and multiplication results, kept to reuse its allocation.
    tmp: Vec<u8>,
}

impl Dec {
    fn normalize(&mut self) {
        let lead = self.digits.iter().take_while(|d| **d == 0).count();
        self.digits.drain(..lead);
        let trail = self.digits.iter().rev().take_while(|d| **d == 0).count();
        self.digits.truncate(self.digits.len() - trail);
        self.exp = self.exp.saturating_add(trail as i32);
        if self.digits.is_empty() {
            self.neg = false;
            self.exp = 0;
        }
    }

    pub(crate) fn set_i128(&mut self, v: i128) {
        self.digits.clear();
        self.neg = v < 0;
        let mut m = v.unsigned_abs();
        while m > 0 {
            self.digits.push((m % 10) as u8);
            m /= 10;
        }
        self.digits.reverse();
        self.exp = 0;
        self.dscale = 0;
        self.normalize();
    }

    /// The value as an integer, if it is one and fits.
    pub(crate) fn to_i128(&self) -> Option<i128> {
        if self.exp < 0 {
            return None;
        }
        let mut v: i128 = 0;
        for &d in &self.digits {
            v = v.checked_mul(10)?.checked_add(d as i128)?;
        }
        v = v.checked_mul(10i128.checked_pow(self.exp as u32)?)?;
        Some(if self.neg { -v } else { v })
    }

    /// Parses PostgreSQL numeric text (also JSON number text, a subset): optional sign,
    /// digits with an optional point, optional exponent; or NaN / Infinity spellings.
    pub(crate) fn parse_text(&mut self, v: &[u8]) -> Option<NumKind> {
        let v = trim(v);
        let word_at = match v.first() {
            Some(b'+' | b'-') => 1,
            _ => 0,
        };
        if v.get(word_at).is_some_and(|b| b.is_ascii_alphabetic()) {
            return special(v);
        }
        self.digits.clear();
        let mut i = 0;
        self.neg = false;
        match v.first()? {
            b'-' => {
                self.neg = true;
                i += 1;
            }
            b'+' => i += 1,
            _ => {}
        }
        let mut seen_digit = false;
        while i < v.len() && v[i].is_ascii_digit() {
            self.digits.push(v[i] - b'0');
            seen_digit = true;
            i += 1;
        }
        let mut frac: i64 = 0;
        if i < v.len() && v[i] == b'.' {
            i += 1;
            while i < v.len() && v[i].is_ascii_digit() {
                self.digits.push(v[i] - b'0');
                seen_digit = true;
                frac += 1;
                i += 1;
            }
        }
        if !seen_digit || self.digits.len() > MAX_DIGITS {
            return None;
        }
        let mut e: i64 = 0;
        if i < v.len() && (v[i] == b'e' || v[i] == b'E') {
            i += 1;
            let eneg = match v.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let start = i;
            while i < v.len() && v[i].is_ascii_digit() {
                e = (e * 10 + (v[i] - b'0') as i64).min(10_000_000);
                i += 1;
            }
            if i == start {
                return None;
            }
            if eneg {
                e = -e;
            }
        }
        if i != v.len() {
            return None;
        }
        let exp = e - frac;
        if exp.abs() > MAX_DIGITS as i64 {
            return None;
        }
        self.exp = exp as i32;
        self.dscale = (frac - e).max(0) as i32;
        self.normalize();
        Some(NumKind::Finite)
    }

    /// Decodes the binary `numeric` format: int16 ndigits, int16 weight, uint16 sign, uint16
    /// dscale, then ndigits base-10000 digits (int16 each), the first of weight `weight`.
    pub(crate) fn parse_binary(&mut self, b: &[u8]) -> Option<NumKind> {
        if b.len() < 8 {
            return None;
        }
        let rd = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let ndigits = rd(0) as i16;
        let weight = rd(2) as i16;
        let sign = rd(4);
        let dscale = rd(6);
        if ndigits < 0 || b.len() != 8 + 2 * ndigits as usize || dscale > 0x3FFF {
            return None;
        }
        let kind = match sign {
            0x0000 | 0x4000 => NumKind::Finite,
            0xC000 => NumKind::NaN,
            0xD000 => NumKind::PosInf,
            0xF000 => NumKind::NegInf,
            _ => return None,
        };
        if kind != NumKind::Finite {
            return Some(kind);
        }
        self.neg = sign == 0x4000;
        self.digits.clear();
        for k in 0..ndigits as usize {
            let d = rd(8 + 2 * k);
            if d >= 10000 {
                return None;
            }
            self.digits.extend_from_slice(&[
                (d / 1000) as u8,
                (d / 100 % 10) as u8,
                (d / 10 % 10) as u8,
                (d % 10) as u8,
            ]);
        }
        self.exp = (weight as i32 - ndigits as i32 + 1) * 4;
        self.dscale = dscale as i32;
        self.normalize();
        Some(NumKind::Finite)
    }

    /// Fractional digits shown: the display scale, but never fewer than the value has.
    fn shown_scale(&self) -> i64 {
        (self.dscale as i64).max(-(self.exp as i64)).max(0)
    }

    /// Appends the plain decimal text (never an exponent, as PostgreSQL prints numeric).
    pub(crate) fn write_text(&self, out: &mut Vec<u8>) {
        self.write_plain(self.shown_scale(), out);
    }

    fn write_plain(&self, frac: i64, out: &mut Vec<u8>) {
        if self.neg && !self.digits.is_empty() {
            out.push(b'-');
        }
        let len = self.digits.len() as i64;
        let int_len = len + self.exp as i64;
        if int_len <= 0 {
            out.push(b'0');
        } else {
            for k in 0..int_len {
                out.push(b'0' + if k < len { self.digits[k as usize] } else { 0 });
            }
        }
        if frac > 0 {
            out.push(b'.');
            for k in 0..frac {
                let idx = int_len + k;
                let d = if (0..len).contains(&idx) {
                    self.digits[idx as usize]
                } else {
                    0
                };
                out.push(b'0' + d);
            }
        }
    }

    /// Appends the value as a JSON number: plain when short, with an exponent when the plain
    /// form would be padded with many zeros (JSON allows both).
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        let len = self.digits.len() as i64;
        let e = self.exp as i64;
        if self.digits.is_empty() || (-40..=40).contains(&e) {
            self.write_plain((-e).max(0), out);
            return;
        }
        if self.neg {
            out.push(b'-');
        }
        out.push(b'0' + self.digits[0]);
        if len > 1 {
            out.push(b'.');
            out.extend(self.digits[1..].iter().map(|d| b'0' + d));
        }
        let _ = write!(out, "e{}", e + len - 1);
    }

    /// Appends the binary `numeric` form; `None` when the value is outside what the format
    /// can carry.
    pub(crate) fn write_binary(&self, out: &mut Vec<u8>) -> Option<()> {
        let dscale = u16::try_from(self.shown_scale())
            .ok()
            .filter(|d| *d <= 0x3FFF)?;
        if self.digits.is_empty() {
            out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&dscale.to_be_bytes());
            return Some(());
        }
        // Pad on the right so the exponent is a multiple of 4, then on the left so the
        // digit count is: the groups of four digits are then the base-10000 digits.
        let pad_right = self.exp.rem_euclid(4) as usize;
        let exp4 = (self.exp - pad_right as i32) / 4;
        let len = self.digits.len() + pad_right;
        let pad_left = (4 - len % 4) % 4;
        let groups = (len + pad_left) / 4;
        let weight = exp4 as i64 + groups as i64 - 1;
        let ndigits = i16::try_from(groups).ok()?;
        let weight = i16::try_from(weight).ok()?;
        out.extend_from_slice(&ndigits.to_be_bytes());
        out.extend_from_slice(&weight.to_be_bytes());
        out.extend_from_slice(&(if self.neg { 0x4000u16 } else { 0 }).to_be_bytes());
        out.extend_from_slice(&dscale.to_be_bytes());
        let digit_at = |k: usize| -> u16 {
            // k indexes the padded digit string.
            if k < pad_left || k - pad_left >= self.digits.len() {
                0
            } else {
                self.digits[k - pad_left] as u16
            }
        };
        for g in 0..groups {
            let k = g * 4;
            let v =
                digit_at(k) * 1000 + digit_at(k + 1) * 100 + digit_at(k + 2) * 10 + digit_at(k + 3);
            out.extend_from_slice(&v.to_be_bytes());
        }
        Some(())
    }

    /// Rounds to the nearest multiple of `m` × 10^`f` (halves away from zero), exactly.
    /// `None` if the value would need more than [`MAX_DIGITS`] digits.
    pub(crate) fn round_multiple(&mut self, m: u64, f: i32) -> Option<()> {
        if m == 0 {
            return None;
        }
        if self.digits.is_empty() {
            return Some(());
        }
        let mut tmp = std::mem::take(&mut self.tmp);
        let up;
        if self.exp >= f {
            // value / step = (digits followed by `shift` zeros) / m.
            let shift = (self.exp - f) as usize;
            if self.digits.len() + shift > MAX_DIGITS {
                self.tmp = tmp;
                return None;
            }
            self.digits.resize(self.digits.len() + shift, 0);
            let r = div_small(&self.digits, m, &mut tmp);
            up = 2 * (r as u128) >= m as u128;
        } else {
            // value / step = digits / (m × 10^k): drop the last k digits (B), divide the rest
            // (A) by m. With A = q·m + r, the remainder of the whole is r·10^k + B and the
            // quotient rounds up iff 2r + 2B/10^k >= m, i.e. iff 2r >= m, or 2r + 1 == m and
            // B >= 10^k / 2 (its leading digit, padded to k digits, is 5 or more).
            let k = (f - self.exp) as usize;
            let len = self.digits.len();
            let (a, b_first) = if k <= len {
                (
                    &self.digits[..len - k],
                    self.digits.get(len - k).copied().unwrap_or(0),
                )
            } else {
                (&self.digits[..0], 0)
            };
            let r = div_small(a, m, &mut tmp) as u128;
            let m = m as u128;
            up = 2 * r >= m || (2 * r + 1 == m && b_first >= 5);
        }
        if up {
            increment(&mut tmp);
        }
        mul_small(&tmp, m, &mut self.digits);
        self.tmp = tmp;
        self.exp = f;
        self.dscale = (-f).max(0);
        self.normalize();
        Some(())
    }

    /// The nearest double (infinite when out of range).
    pub(crate) fn to_f64(&self, scratch: &mut Vec<u8>) -> f64 {
        if self.digits.is_empty() {
            return 0.0;
        }
        scratch.clear();
        if self.neg {
            scratch.push(b'-');
        }
        scratch.extend(self.digits.iter().map(|d| b'0' + d));
        let _ = write!(scratch, "e{}", self.exp);
        std::str::from_utf8(scratch)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    }

    /// Sets the value to a finite double printed with `scale` decimals.
    pub(crate) fn set_f64(&mut self, v: f64, scale: i32, scratch: &mut Vec<u8>) -> Option<()> {
        scratch.clear();
        let _ = write!(scratch, "{:.*}", scale.max(0) as usize, v);
        let s = std::mem::take(scratch);
        let r = self.parse_text(&s);
        *scratch = s;
        (r? == NumKind::Finite).then_some(())?;
        self.dscale = scale.max(0);
        Some(())
    }
}

fn special(v: &[u8]) -> Option<NumKind> {
    let (neg, word) = match v.first()? {
        b'-' => (true, &v[1..]),
        b'+' => (false, &v[1..]),
        _ => (false, v),
    };
    if word.eq_ignore_ascii_case(b"nan") && v.len() == 3 {
        Some(NumKind::NaN)
    } else if word.eq_ignore_ascii_case(b"infinity") || word.eq_ignore_ascii_case(b"inf") {
        Some(if neg {
            NumKind::NegInf
        } else {
            NumKind::PosInf
        })
    } else {
        None
    }
}

/// Appends the binary header of a special numeric value.
pub(crate) fn write_numeric_special(kind: NumKind, format: Format, out: &mut Vec<u8>) {
    match format {
        Format::Text => out.extend_from_slice(match kind {
            NumKind::NaN => b"NaN".as_slice(),
            NumKind::PosInf => b"Infinity",
            NumKind::NegInf => b"-Infinity",
            NumKind::Finite => b"0",
        }),
        Format::Binary => {
            let sign: u16 = match kind {
                NumKind::NaN => 0xC000,
                NumKind::PosInf => 0xD000,
                NumKind::NegInf => 0xF000,
                NumKind::Finite => 0,
            };
            out.extend_from_slice(&[0, 0, 0, 0]);
            out.extend_from_slice(&sign.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
    }
}

/// Long division of a decimal digit string by a small divisor: the quotient's digits go to
/// `q` (with leading zeros; an empty dividend gives an empty quotient), the remainder is
/// returned.
fn div_small(digits: &[u8], m: u64, q: &mut Vec<u8>) -> u64 {
    q.clear();
    let m = m as u128;
    let mut rem: u128 = 0;
    for &d in digits {
        let cur = rem * 10 + d as u128;
        q.push((cur / m) as u8);
        rem = cur % m;
    }
    rem as u64
}

/// Adds one to a decimal digit string.
fn increment(q: &mut Vec<u8>) {
    for d in q.iter_mut().rev() {
        if *d == 9 {
            *d = 0;
        } else {
            *d += 1;
            return;
        }
    }
    q.insert(0, 1);
}

/// `out` = `q` × `m`, decimal digits, most significant first.
fn mul_small(q: &[u8], m: u64, out: &mut Vec<u8>) {
    out.clear();
    let m = m as u128;
    let mut carry: u128 = 0;
    for &d in q.iter().rev() {
        let cur = d as u128 * m + carry;
        out.push((cur % 10) as u8);
        carry = cur / 10;
    }
    while carry > 0 {
        out.push((carry % 10) as u8);
        carry /= 10;
    }
    out.reverse();
}
