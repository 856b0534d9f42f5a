//! The small fixed-shape types: `bool`, `uuid` and `bytea`.

use rand::RngCore;

use super::Format;
use super::keys::{Keyed, finish, rng_from_digest};

/// PostgreSQL's boolean input: `t`/`true`/`yes`/`on`/`1` and `f`/`false`/`no`/`off`/`0`,
/// any case, unique prefixes of the words allowed, surrounding whitespace ignored.
pub(crate) fn parse_bool(v: &[u8]) -> Option<bool> {
    let s = v.trim_ascii().to_ascii_lowercase();
    let prefix_of = |word: &[u8], min: usize| s.len() >= min && word.starts_with(&s);
    if prefix_of(b"true", 1) || prefix_of(b"yes", 1) || s == b"on" || s == b"1" {
        Some(true)
    } else if prefix_of(b"false", 1) || prefix_of(b"no", 1) || prefix_of(b"off", 2) || s == b"0" {
        Some(false)
    } else {
        None
    }
}

pub(crate) fn write_bool(b: bool, format: Format, out: &mut Vec<u8>) {
    match format {
        Format::Text => out.push(if b { b't' } else { b'f' }),
        Format::Binary => out.push(u8::from(b)),
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A uuid as PostgreSQL reads it: 32 hex digits, optionally in braces, with an optional
/// hyphen after any group of four digits.
pub(crate) fn parse_uuid_text(v: &[u8]) -> Option<[u8; 16]> {
    let mut s = v.trim_ascii();
    if let Some(inner) = s.strip_prefix(b"{") {
        s = inner.strip_suffix(b"}")?;
    }
    let mut out = [0u8; 16];
    let mut count = 0usize;
    let mut prev_hyphen = false;
    for &b in s {
        if b == b'-' {
            if count == 0 || !count.is_multiple_of(4) || count == 32 || prev_hyphen {
                return None;
            }
            prev_hyphen = true;
            continue;
        }
        prev_hyphen = false;
        let h = hex_val(b)?;
        if count == 32 {
            return None;
        }
        out[count / 2] |= if count.is_multiple_of(2) { h << 4 } else { h };
        count += 1;
    }
    (count == 32 && !prev_hyphen).then_some(out)
}

/// The canonical text `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase.
pub(crate) fn uuid_text(u: &[u8; 16]) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [b'-'; 36];
    let mut k = 0;
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            k += 1;
        }
        t[k] = HEX[(b >> 4) as usize];
        t[k + 1] = HEX[(b & 15) as usize];
        k += 2;
    }
    t
}

pub(crate) fn parse_uuid(v: &[u8], format: Format) -> Option<[u8; 16]> {
    match format {
        Format::Text => parse_uuid_text(v),
        Format::Binary => v.try_into().ok(),
    }
}

pub(crate) fn write_uuid(u: &[u8; 16], format: Format, out: &mut Vec<u8>) {
    match format {
        Format::Text => out.extend_from_slice(&uuid_text(u)),
        Format::Binary => out.extend_from_slice(u),
    }
}

/// `Hash` on a uuid: the first 16 bytes of HMAC(key, canonical text), marked as an RFC 9562
/// version-8 (custom) uuid with the standard variant, so it reads as what it is.
pub(crate) fn hash_uuid(key: &Keyed, u: &[u8; 16]) -> [u8; 16] {
    let d = key.digest(&[&uuid_text(u)]);
    let mut r = [0u8; 16];
    r.copy_from_slice(&d[..16]);
    r[6] = (r[6] & 0x0f) | 0x80;
    r[8] = (r[8] & 0x3f) | 0x80;
    r
}

/// `Tokenize` on a uuid: 16 bytes from the value's keyed generator (every hex digit stays a
/// hex digit, the hyphens stay where they are).
pub(crate) fn tokenize_uuid(key: &Keyed, u: &[u8; 16]) -> [u8; 16] {
    let mut rng = rng_from_digest(&key.digest(&[&uuid_text(u)]));
    let mut r = [0u8; 16];
    rng.fill_bytes(&mut r);
    r
}

/// bytea text input: `\x` then hex digit pairs (whitespace allowed between pairs), or the
/// escape format (`\\` for a backslash, `\ooo` octal for any byte, other bytes as they are).
pub(crate) fn parse_bytea_text(v: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if let Some(hex) = v.strip_prefix(b"\\x") {
        let mut i = 0;
        while i < hex.len() {
            if hex[i].is_ascii_whitespace() {
                i += 1;
                continue;
            }
            let hi = hex_val(hex[i])?;
            let lo = hex_val(*hex.get(i + 1)?)?;
            out.push(hi << 4 | lo);
            i += 2;
        }
        return Some(());
    }
    let mut i = 0;
    while i < v.len() {
        if v[i] != b'\\' {
            out.push(v[i]);
            i += 1;
        } else if v.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let o = v.get(i + 1..i + 4)?;
            if !(b'0'..=b'3').contains(&o[0]) || !o[1..].iter().all(|b| (b'0'..=b'7').contains(b)) {
                return None;
            }
            out.push((o[0] - b'0') << 6 | (o[1] - b'0') << 3 | (o[2] - b'0'));
            i += 4;
        }
    }
    Some(())
}

/// Appends bytea in `format`; text is always the hex format.
pub(crate) fn write_bytea(bytes: &[u8], format: Format, out: &mut Vec<u8>) {
    match format {
        Format::Text => {
            out.extend_from_slice(b"\\x");
            super::text::push_hex(bytes, bytes.len() * 2, out);
        }
        Format::Binary => out.extend_from_slice(bytes),
    }
}

/// HMAC of bytea's canonical text form (`\x` and lowercase hex), computed in pieces so no
/// hex copy of the value is built.
pub(crate) fn hash_bytea(key: &Keyed, bytes: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = key.start();
    mac.update(b"\\x");
    let mut chunk = [0u8; 128];
    for part in bytes.chunks(64) {
        let mut n = 0;
        for b in part {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            chunk[n] = HEX[(b >> 4) as usize];
            chunk[n + 1] = HEX[(b & 15) as usize];
            n += 2;
        }
        mac.update(&chunk[..n]);
    }
    finish(mac)
}
