//! Masks of strings: used for text-like columns, for JSON string leaves, and for the spans
//! the detectors find.

use rand::Rng;

use super::keys::{Keyed, process_keys, rng_from_digest};

/// What `Redact` puts in place of a string.
pub const REDACTED: &str = "[REDACTED]";

/// Hex digits of a `Hash` on a string when the rule gives no `length`.
pub const DEFAULT_HASH_LENGTH: usize = 16;

/// A string mask, with everything that does not depend on the value precomputed.
#[derive(Clone)]
pub(crate) enum StrOp {
    Partial {
        keep_first: usize,
        keep_last: usize,
    },
    Email,
    /// `len` lowercase hex digits of HMAC-SHA256(key, value).
    Hash {
        key: Keyed,
        len: usize,
    },
    Tokenize {
        key: Keyed,
    },
}

impl StrOp {
    /// Appends the masked form of `s` to `out`.
    pub(crate) fn apply(&self, s: &str, out: &mut Vec<u8>) {
        match self {
            StrOp::Partial {
                keep_first,
                keep_last,
            } => partial(s, *keep_first, *keep_last, out),
            StrOp::Email => email(s, out),
            StrOp::Hash { key, len } => hash_hex(key, s.as_bytes(), *len, out),
            StrOp::Tokenize { key } => tokenize_str(key, s, out),
        }
    }
}

/// The tokenization key, or `None` (mask to NULL) when the process has no randomness.
pub(crate) fn tokenize_key() -> Option<Keyed> {
    process_keys().map(|k| k.tokenize.clone())
}

/// Hash length from the rule: default 16 hex digits, at least 1, at most the 64 a SHA-256
/// digest has.
pub(crate) fn hash_len(length: Option<u32>) -> usize {
    match length {
        None => DEFAULT_HASH_LENGTH,
        Some(n) => (n as usize).clamp(1, 64),
    }
}

fn stars(n: usize, out: &mut Vec<u8>) {
    out.resize(out.len() + n, b'*');
}

/// Keeps `keep_first` leading and `keep_last` trailing characters (Unicode scalar values, not
/// bytes), stars in between. When nothing would be starred, everything is, so a `Partial` mask
/// never reveals a whole value.
pub(crate) fn partial(s: &str, keep_first: usize, keep_last: usize, out: &mut Vec<u8>) {
    // ASCII strings (the common case) need no character walk.
    let n = char_count(s);
    if keep_first.saturating_add(keep_last) >= n {
        stars(n, out);
        return;
    }
    let (head_end, tail_start) = if n == s.len() {
        (keep_first, n - keep_last)
    } else {
        let byte_at = |k: usize| s.char_indices().nth(k).map_or(s.len(), |(i, _)| i);
        (byte_at(keep_first), byte_at(n - keep_last))
    };
    out.extend_from_slice(&s.as_bytes()[..head_end]);
    stars(n - keep_first - keep_last, out);
    out.extend_from_slice(&s.as_bytes()[tail_start..]);
}

/// `john.doe@example.com` → `j***@example.com`: the first character of the local part, three
/// stars whatever its length, the domain as it was. A string that is not an email address is
/// starred whole (one star per character).
pub(crate) fn email(s: &str, out: &mut Vec<u8>) {
    match split_email(s) {
        Some((local, domain)) => {
            let first_len = local.chars().next().map_or(0, char::len_utf8);
            out.extend_from_slice(&local.as_bytes()[..first_len]);
            out.extend_from_slice(b"***@");
            out.extend_from_slice(domain.as_bytes());
        }
        None => stars(char_count(s), out),
    }
}

fn char_count(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// The local part and domain of something shaped like an address: one `@` (the last), a
/// non-empty local part, a domain with an inner dot, no whitespace or control characters.
fn split_email(s: &str) -> Option<(&str, &str)> {
    let at = s.rfind('@')?;
    let (local, domain) = (&s[..at], &s[at + 1..]);
    if local.is_empty() || domain.len() < 3 {
        return None;
    }
    // Bytes for ASCII (the common case, and much cheaper than a char walk); characters
    // otherwise.
    let bad = if s.is_ascii() {
        s.bytes().any(|b| b <= b' ' || b == 0x7f)
    } else {
        s.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    if bad {
        return None;
    }
    let dot = domain.find('.')?;
    if dot == 0 || domain.ends_with('.') || domain.contains("..") {
        return None;
    }
    Some((local, domain))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of a keyed digest of `value`, cut to `len` digits.
pub(crate) fn hash_hex(key: &Keyed, value: &[u8], len: usize, out: &mut Vec<u8>) {
    let d = key.digest(&[value]);
    push_hex(&d, len, out);
}

/// The first `len` hex digits of `bytes`.
pub(crate) fn push_hex(bytes: &[u8], len: usize, out: &mut Vec<u8>) {
    let mut left = len;
    for b in bytes {
        if left == 0 {
            break;
        }
        out.push(HEX[(b >> 4) as usize]);
        left -= 1;
        if left == 0 {
            break;
        }
        out.push(HEX[(b & 15) as usize]);
        left -= 1;
    }
}

/// Format-preserving token: each ASCII digit becomes a digit, each ASCII letter a letter of
/// the same case, every other character stays; the replacement characters are drawn from a
/// generator seeded by HMAC(process key, value), so equal values give equal tokens for the
/// life of the process, and different values independent ones.
pub(crate) fn tokenize_str(key: &Keyed, s: &str, out: &mut Vec<u8>) {
    let mut rng = rng_from_digest(&key.digest(&[s.as_bytes()]));
    out.reserve(s.len());
    for &b in s.as_bytes() {
        // Only ASCII bytes are replaced, by ASCII bytes; bytes of multi-byte characters are
        // all >= 0x80 and pass through, so the output stays valid UTF-8.
        let t = match b {
            b'0'..=b'9' => b'0' + rng.random_range(0..10u8),
            b'a'..=b'z' => b'a' + rng.random_range(0..26u8),
            b'A'..=b'Z' => b'A' + rng.random_range(0..26u8),
            other => other,
        };
        out.push(t);
    }
}

/// Tokenizes the digits of a JSON number: same shape (sign, point, exponent), each digit
/// replaced, the first digit of a multi-digit integer part never zero, so the result is still
/// a valid JSON number.
pub(crate) fn tokenize_json_number(key: &Keyed, s: &[u8], out: &mut Vec<u8>) {
    let mut rng = rng_from_digest(&key.digest(&[s]));
    let int_start = usize::from(s.first() == Some(&b'-'));
    let int_len = s[int_start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    for (i, &b) in s.iter().enumerate() {
        if b.is_ascii_digit() {
            let lead = i == int_start && int_len > 1;
            let d = if lead {
                rng.random_range(1..10u8)
            } else {
                rng.random_range(0..10u8)
            };
            out.push(b'0' + d);
        } else {
            out.push(b);
        }
    }
}
