//! Arrays in text (`{a,"b c",NULL}`, nested, with an optional `[1:2]=` bounds prefix) and in
//! binary (ndim, flags, element type, dimensions and lower bounds, then length-prefixed
//! elements), rewritten element by element.

/// What an element callback did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ElemOut {
    /// It appended the new element.
    Value,
    /// The element becomes NULL (nothing appended).
    Null,
    /// The element stays as it was (nothing appended).
    Same,
}

/// Most dimensions PostgreSQL allows (MAXDIM).
const MAX_DIMS: usize = 6;

fn is_space(b: u8) -> bool {
    // PostgreSQL's array parser skips exactly these.
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Prev {
    Open,
    Elem,
    Comma,
}

/// Scratch buffers for text arrays, kept by the caller to reuse their allocations.
#[derive(Clone, Debug, Default)]
pub(crate) struct TextScratch {
    elem: Vec<u8>,
    masked: Vec<u8>,
}

/// Rewrites a text-format array. `f` gets each non-NULL element's decoded text and appends
/// its replacement to the buffer it is given. Returns whether anything changed; `None` for
/// malformed input or when `f` aborts.
pub(crate) fn text_array(
    s: &[u8],
    out: &mut Vec<u8>,
    scratch: &mut TextScratch,
    mut f: impl FnMut(&[u8], &mut Vec<u8>) -> Option<ElemOut>,
) -> Option<bool> {
    let n = s.len();
    let mut i = 0;
    let skip = |i: &mut usize| {
        while *i < n && is_space(s[*i]) {
            *i += 1;
        }
    };
    skip(&mut i);
    if s.get(i) == Some(&b'[') {
        // Explicit bounds, e.g. "[0:1]={…}" or "[1:2][1:3]=": copied as they are.
        let eq = i + memchr::memchr(b'=', &s[i..])?;
        let dims = &s[i..eq];
        if !dims
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'[' | b']' | b':' | b'-' | b'+'))
        {
            return None;
        }
        out.extend_from_slice(&s[i..=eq]);
        i = eq + 1;
        skip(&mut i);
    }
    if s.get(i) != Some(&b'{') {
        return None;
    }
    let mut depth = 0usize;
    let mut prev = Prev::Open;
    let mut changed = false;
    let TextScratch { elem, masked } = scratch;
    loop {
        skip(&mut i);
        let c = *s.get(i)?;
        match c {
            b'{' => {
                if prev == Prev::Elem || depth >= MAX_DIMS {
                    return None;
                }
                depth += 1;
                out.push(b'{');
                prev = Prev::Open;
                i += 1;
            }
            b'}' => {
                if prev == Prev::Comma || depth == 0 {
                    return None;
                }
                depth -= 1;
                out.push(b'}');
                prev = Prev::Elem;
                i += 1;
                if depth == 0 {
                    break;
                }
            }
            b',' => {
                if prev != Prev::Elem {
                    return None;
                }
                out.push(b',');
                prev = Prev::Comma;
                i += 1;
            }
            _ => {
                if prev == Prev::Elem {
                    return None;
                }
                elem.clear();
                let is_null;
                if c == b'"' {
                    i += 1;
                    loop {
                        match *s.get(i)? {
                            b'"' => {
                                i += 1;
                                break;
                            }
                            b'\\' => {
                                elem.push(*s.get(i + 1)?);
                                i += 2;
                            }
                            b => {
                                elem.push(b);
                                i += 1;
                            }
                        }
                    }
                    is_null = false;
                } else {
                    // Unquoted: up to the next delimiter; trailing unescaped whitespace is
                    // not part of the value.
                    let mut keep = 0;
                    let mut escaped = false;
                    loop {
                        match *s.get(i)? {
                            b',' | b'}' => break,
                            b'{' | b'"' => return None,
                            b'\\' => {
                                elem.push(*s.get(i + 1)?);
                                i += 2;
                                escaped = true;
                                keep = elem.len();
                            }
                            b => {
                                elem.push(b);
                                i += 1;
                                if !is_space(b) {
                                    keep = elem.len();
                                }
                            }
                        }
                    }
                    elem.truncate(keep);
                    if elem.is_empty() {
                        return None;
                    }
                    is_null = !escaped && elem.eq_ignore_ascii_case(b"NULL");
                }
                if is_null {
                    out.extend_from_slice(b"NULL");
                } else {
                    masked.clear();
                    match f(elem, masked)? {
                        ElemOut::Value => {
                            changed = true;
                            write_element(masked, out);
                        }
                        ElemOut::Null => {
                            changed = true;
                            out.extend_from_slice(b"NULL");
                        }
                        ElemOut::Same => write_element(elem, out),
                    }
                }
                prev = Prev::Elem;
            }
        }
    }
    skip(&mut i);
    (i == n).then_some(changed)
}

/// Appends one element, quoted when PostgreSQL would quote it: empty, `NULL`, or containing
/// braces, quotes, commas, backslashes or whitespace.
fn write_element(e: &[u8], out: &mut Vec<u8>) {
    let needs_quotes = e.is_empty()
        || e.eq_ignore_ascii_case(b"NULL")
        || e.iter()
            .any(|b| matches!(b, b'{' | b'}' | b'"' | b',' | b'\\') || is_space(*b));
    if !needs_quotes {
        out.extend_from_slice(e);
        return;
    }
    out.push(b'"');
    for &b in e {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

fn read_i32(s: &[u8], at: usize) -> Option<i32> {
    let b: [u8; 4] = s.get(at..at + 4)?.try_into().ok()?;
    Some(i32::from_be_bytes(b))
}

/// Rewrites a binary-format array. `f` gets each non-NULL element's bytes and appends its
/// replacement to `out` directly. The has-nulls flag is set when the result has a NULL.
pub(crate) fn binary_array(
    s: &[u8],
    out: &mut Vec<u8>,
    mut f: impl FnMut(&[u8], &mut Vec<u8>) -> Option<ElemOut>,
) -> Option<bool> {
    let ndim = read_i32(s, 0)?;
    let flags = read_i32(s, 4)?;
    if !(0..=MAX_DIMS as i32).contains(&ndim) || !(flags == 0 || flags == 1) {
        return None;
    }
    let header = 12 + 8 * ndim as usize;
    if s.len() < header {
        return None;
    }
    let mut items: usize = if ndim == 0 { 0 } else { 1 };
    for d in 0..ndim as usize {
        let size = read_i32(s, 12 + 8 * d)?;
        items = items.checked_mul(usize::try_from(size).ok()?)?;
    }
    // Every element takes at least its 4-byte length: a larger count is a lie.
    if items > (s.len() - header) / 4 {
        return None;
    }
    let start = out.len();
    out.extend_from_slice(&s[..header]);
    let mut has_null = false;
    let mut changed = false;
    let mut pos = header;
    for _ in 0..items {
        let len = read_i32(s, pos)?;
        pos += 4;
        if len == -1 {
            has_null = true;
            out.extend_from_slice(&(-1i32).to_be_bytes());
            continue;
        }
        let len = usize::try_from(len).ok()?;
        let elem = s.get(pos..pos + len)?;
        pos += len;
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        match f(elem, out)? {
            ElemOut::Value => changed = true,
            ElemOut::Same => out.extend_from_slice(elem),
            ElemOut::Null => {
                changed = true;
                has_null = true;
                out.truncate(len_at);
                out.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            }
        }
        let new_len = i32::try_from(out.len() - len_at - 4).ok()?;
        out[len_at..len_at + 4].copy_from_slice(&new_len.to_be_bytes());
    }
    if pos != s.len() {
        return None;
    }
    out[start + 4..start + 8].copy_from_slice(&i32::from(has_null).to_be_bytes());
    Some(changed)
}
