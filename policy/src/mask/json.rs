//! A validating, allocation-free walk over JSON text that reports the string and number
//! leaves, so masks can rewrite them and copy everything else through byte for byte.

/// A leaf the walk found. Spans are byte ranges of the input; a string's span includes its
/// quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Leaf {
    /// A string value, or an object key when `key` is true.
    Str {
        key: bool,
    },
    Num,
}

/// Why a walk stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The text is not JSON.
    Invalid,
    /// The visitor asked to stop (a leaf masked to NULL the whole value).
    Abort,
}

/// Nesting deeper than this is refused: PostgreSQL's own parser stops far earlier, at its
/// stack depth limit.
const MAX_DEPTH: usize = 10_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// A value is expected.
    Value,
    /// Just after `[`: a value or `]`.
    ValueOrClose,
    /// Just after `{`: a key or `}`.
    KeyOrClose,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value: `,` or the container's close, or the end at the top level.
    After,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Walks `s`, calling `visit(start, end, leaf)` for every string and number in document
/// order. `stack` is scratch space for the container nesting.
pub(crate) fn walk(
    s: &[u8],
    stack: &mut Vec<bool>,
    mut visit: impl FnMut(usize, usize, Leaf) -> Result<(), Stop>,
) -> Result<(), Stop> {
    stack.clear();
    let n = s.len();
    let mut i = 0;
    let mut st = State::Value;
    loop {
        while i < n && is_ws(s[i]) {
            i += 1;
        }
        if i == n {
            return if st == State::After && stack.is_empty() {
                Ok(())
            } else {
                Err(Stop::Invalid)
            };
        }
        let c = s[i];
        match st {
            State::Value | State::ValueOrClose => {
                if st == State::ValueOrClose && c == b']' {
                    stack.pop();
                    i += 1;
                    st = State::After;
                    continue;
                }
                match c {
                    b'{' | b'[' => {
                        if stack.len() >= MAX_DEPTH {
                            return Err(Stop::Invalid);
                        }
                        stack.push(c == b'{');
                        i += 1;
                        st = if c == b'{' {
                            State::KeyOrClose
                        } else {
                            State::ValueOrClose
                        };
                    }
                    b'"' => {
                        let end = scan_string(s, i)?;
                        visit(i, end, Leaf::Str { key: false })?;
                        i = end;
                        st = State::After;
                    }
                    b'-' | b'0'..=b'9' => {
                        let end = scan_number(s, i)?;
                        visit(i, end, Leaf::Num)?;
                        i = end;
                        st = State::After;
                    }
                    b't' | b'f' | b'n' => {
                        let word: &[u8] = match c {
                            b't' => b"true",
                            b'f' => b"false",
                            _ => b"null",
                        };
                        if !s[i..].starts_with(word) {
                            return Err(Stop::Invalid);
                        }
                        i += word.len();
                        st = State::After;
                    }
                    _ => return Err(Stop::Invalid),
                }
            }
            State::KeyOrClose | State::Key => {
                if st == State::KeyOrClose && c == b'}' {
                    stack.pop();
                    i += 1;
                    st = State::After;
                } else if c == b'"' {
                    let end = scan_string(s, i)?;
                    visit(i, end, Leaf::Str { key: true })?;
                    i = end;
                    st = State::Colon;
                } else {
                    return Err(Stop::Invalid);
                }
            }
            State::Colon => {
                if c != b':' {
                    return Err(Stop::Invalid);
                }
                i += 1;
                st = State::Value;
            }
            State::After => {
                let in_object = match stack.last() {
                    Some(o) => *o,
                    // Something after the top-level value.
                    None => return Err(Stop::Invalid),
                };
                i += 1;
                match (c, in_object) {
                    (b',', true) => st = State::Key,
                    (b',', false) => st = State::Value,
                    (b'}', true) | (b']', false) => {
                        stack.pop();
                        st = State::After;
                    }
                    _ => return Err(Stop::Invalid),
                }
            }
        }
    }
}

/// The end (one past the closing quote) of the string starting at `start`; checks escapes
/// and control characters. (UTF-8 validity is the caller's: it checks the whole text once.)
fn scan_string(s: &[u8], start: usize) -> Result<usize, Stop> {
    let mut i = start + 1;
    loop {
        // Jump to the next quote or backslash; what lies between only needs the control
        // character check.
        let rel = memchr::memchr2(b'"', b'\\', &s[i..]).ok_or(Stop::Invalid)?;
        if s[i..i + rel].iter().any(|b| *b < 0x20) {
            return Err(Stop::Invalid);
        }
        i += rel;
        if s[i] == b'"' {
            return Ok(i + 1);
        }
        // A backslash.
        match s.get(i + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
            Some(b'u') => {
                let hex = s.get(i + 2..i + 6).ok_or(Stop::Invalid)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(Stop::Invalid);
                }
                i += 6;
            }
            _ => return Err(Stop::Invalid),
        }
    }
}

/// The end of the number starting at `start`: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn scan_number(s: &[u8], start: usize) -> Result<usize, Stop> {
    let mut i = start;
    let digits = |i: &mut usize| {
        let from = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - from
    };
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    match s.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return Err(Stop::Invalid),
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return Err(Stop::Invalid);
        }
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return Err(Stop::Invalid);
        }
    }
    Ok(i)
}

fn hex4(h: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(h).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// Decodes the inside of a JSON string (between the quotes, already scanned) into `out`.
/// `None` for a lone surrogate, which PostgreSQL rejects too; `no_nul` also refuses `\u0000`,
/// which `jsonb` cannot store.
pub(crate) fn unescape(raw: &[u8], no_nul: bool, out: &mut Vec<u8>) -> Option<()> {
    let mut i = 0;
    while i < raw.len() {
        let Some(rel) = memchr::memchr(b'\\', &raw[i..]) else {
            out.extend_from_slice(&raw[i..]);
            break;
        };
        out.extend_from_slice(&raw[i..i + rel]);
        i += rel;
        let e = *raw.get(i + 1)?;
        i += 2;
        let ch = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(raw.get(i..i + 4)?)?;
                i += 4;
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    if raw.get(i..i + 2) != Some(b"\\u") {
                        return None;
                    }
                    let lo = hex4(raw.get(i + 2..i + 6)?)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                if no_nul && cp == 0 {
                    return None;
                }
                char::from_u32(cp)?
            }
            _ => return None,
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    Some(())
}

/// Appends `s` (valid UTF-8) as a JSON string literal. Only `"`, `\` and control characters
/// need escaping; every byte of a multi-byte character is >= 0x80 and copies through.
pub(crate) fn write_string(s: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut from = 0;
    for (i, &b) in s.iter().enumerate() {
        if b == b'"' || b == b'\\' || b < 0x20 {
            out.extend_from_slice(&s[from..i]);
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                _ => out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 15) as usize],
                ]),
            }
            from = i + 1;
        }
    }
    out.extend_from_slice(&s[from..]);
    out.push(b'"');
}

/// Checks that `s` is a JSON document (and, for `jsonb`, that no string holds `\u0000`):
/// used to validate `Fixed` values.
pub(crate) fn validate(s: &[u8], jsonb: bool) -> bool {
    if std::str::from_utf8(s).is_err() {
        return false;
    }
    let mut stack = Vec::new();
    let mut buf = Vec::new();
    walk(s, &mut stack, |a, b, leaf| {
        if let Leaf::Str { .. } = leaf {
            buf.clear();
            unescape(&s[a + 1..b - 1], jsonb, &mut buf).ok_or(Stop::Invalid)?;
        }
        Ok(())
    })
    .is_ok()
}
