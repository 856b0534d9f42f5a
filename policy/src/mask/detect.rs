//! Content detectors: find sensitive entities inside text values of columns no rule names,
//! and mask just those spans.
//!
//! The scan is one pass over the bytes with a 256-entry table of "anchor" bytes that can
//! start (or, for emails, sit inside) an entity of an enabled kind: `@` for emails, digits
//! (and `+`, `(`) for cards, SSNs, phone numbers and IBANs, `A` for AWS keys, `J` (of `eyJ`)
//! for JWTs, `-` for PEM private keys. Everything else is skipped at one table lookup per
//! byte; candidates are verified in place (Luhn, mod-97, SSN ranges, shapes), so nothing is
//! allocated unless something is found.

use memchr::memmem;

use crate::masking::{Detector, Entity};

use super::array::{self, ElemOut, TextScratch};
use super::json::{self, Leaf, Stop};
use super::{FieldMasker, Format, Masked, PgType, Session};

/// What [`DetectorSet::scan`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// Nothing was found; nothing was appended (the caller copies the original).
    Unchanged,
    /// Something was found; the rewritten value was appended.
    Rewritten,
    /// The value must become NULL (a `Null` mask matched, or a JSON/array value could not be
    /// parsed and so could not be scanned); nothing was appended.
    Null,
}

const ENTITIES: [Entity; 8] = [
    Entity::Email,
    Entity::CreditCard,
    Entity::UsSsn,
    Entity::Iban,
    Entity::Phone,
    Entity::Jwt,
    Entity::AwsAccessKey,
    Entity::PrivateKey,
];

fn entity_index(e: Entity) -> usize {
    match e {
        Entity::Email => 0,
        Entity::CreditCard => 1,
        Entity::UsSsn => 2,
        Entity::Iban => 3,
        Entity::Phone => 4,
        Entity::Jwt => 5,
        Entity::AwsAccessKey => 6,
        Entity::PrivateKey => 7,
    }
}

/// A found entity: bytes `start..end` of the scanned text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) entity: Entity,
}

const K_AT: u8 = 1;
const K_DIGIT: u8 = 2;
const K_PHONE_START: u8 = 3;
const K_A: u8 = 4;
const K_J: u8 = 5;
const K_DASH: u8 = 6;

/// Which entities are looked for, and the anchor table for them.
#[derive(Clone)]
pub(crate) struct Finder {
    on: [bool; 8],
    anchors: [u8; 256],
}

impl Finder {
    pub(crate) fn new(on: [bool; 8]) -> Finder {
        let mut anchors = [0u8; 256];
        let is = |e: Entity| on[entity_index(e)];
        if is(Entity::Email) {
            anchors[b'@' as usize] = K_AT;
        }
        if is(Entity::CreditCard) || is(Entity::UsSsn) || is(Entity::Phone) || is(Entity::Iban) {
            for d in b'0'..=b'9' {
                anchors[d as usize] = K_DIGIT;
            }
        }
        if is(Entity::Phone) {
            anchors[b'+' as usize] = K_PHONE_START;
            anchors[b'(' as usize] = K_PHONE_START;
        }
        if is(Entity::AwsAccessKey) {
            anchors[b'A' as usize] = K_A;
        }
        if is(Entity::Jwt) {
            anchors[b'J' as usize] = K_J;
        }
        if is(Entity::PrivateKey) {
            anchors[b'-' as usize] = K_DASH;
        }
        Finder { on, anchors }
    }

    fn is(&self, e: Entity) -> bool {
        self.on[entity_index(e)]
    }

    /// Appends the entities found in `s` to `spans`, in order, not overlapping.
    pub(crate) fn find(&self, s: &[u8], spans: &mut Vec<Span>) {
        let n = s.len();
        let mut i = 0;
        // Spans never reach back before the end of the previous one.
        let mut floor = 0;
        let digits_on =
            self.is(Entity::CreditCard) || self.is(Entity::UsSsn) || self.is(Entity::Phone);
        loop {
            // Skip eight bytes at a time while none of them can be an anchor: every anchor
            // byte lies in '('..='J' (0x28..=0x4A), and most text (lowercase letters, spaces,
            // non-ASCII) lies outside it.
            while i + 8 <= n {
                let Ok(chunk) = <[u8; 8]>::try_from(&s[i..i + 8]) else {
                    break;
                };
                if may_hold_anchor(u64::from_le_bytes(chunk)) {
                    break;
                }
                i += 8;
            }
            if i >= n {
                break;
            }
            let stop = (i + 8).min(n);
            while i < stop {
                let k = self.anchors[s[i] as usize];
                if k == 0 {
                    i += 1;
                    continue;
                }
                let found = match k {
                    K_AT => email_at(s, i, floor),
                    K_A => aws_at(s, i),
                    K_J => jwt_at(s, i, floor),
                    K_DASH => private_key_at(s, i),
                    _ => {
                        if k == K_DIGIT
                            && self.is(Entity::Iban)
                            && i >= floor + 2
                            && s[i - 1].is_ascii_uppercase()
                            && s[i - 2].is_ascii_uppercase()
                            && let Some(sp) = iban_at(s, i - 2)
                        {
                            Some(sp)
                        } else if !digits_on && k == K_DIGIT {
                            None
                        } else if k == K_DIGIT && i > 0 && is_word(s[i - 1]) {
                            // Digits inside a word ("abc123") start nothing: skip the word
                            // (which makes progress: s[i] is a digit).
                            while i < n && is_word(s[i]) {
                                i += 1;
                            }
                            continue;
                        } else {
                            let before = spans.len();
                            let end = self.digit_run(s, i, spans);
                            if let Some(last) = spans.get(before..).and_then(<[Span]>::last) {
                                floor = last.end;
                            }
                            i = end.max(i + 1);
                            continue;
                        }
                    }
                };
                match found {
                    Some(sp) => {
                        spans.push(sp);
                        i = sp.end.max(i + 1);
                        floor = sp.end;
                    }
                    None => i += 1,
                }
            }
        }
    }

    /// Reads the run of digit groups starting at `i` (a digit, `+` or `(`), and pushes the
    /// cards, SSNs and phone numbers in it. Returns where the run ends.
    fn digit_run(&self, s: &[u8], i: usize, spans: &mut Vec<Span>) -> usize {
        let n = s.len();
        // Most digit runs are short numbers (house numbers, years, amounts). Every entity here
        // has at least 9 digits; count the digits in a superset of the run first and leave
        // early, past the first group, when there cannot be 9. (The groups after it are
        // looked at again, as runs of their own, with even fewer digits.)
        let mut k = i;
        let mut digits = 0;
        while k < n && matches!(s[k], b'0'..=b'9' | b' ' | b'-' | b'.' | b'(' | b')' | b'+') {
            digits += usize::from(s[k].is_ascii_digit());
            k += 1;
        }
        if digits < 9 {
            let mut e = i + usize::from(!s[i].is_ascii_digit());
            while e < n && s[e].is_ascii_digit() {
                e += 1;
            }
            return e.max(i + 1);
        }
        let mut groups = [Group::default(); MAX_GROUPS];
        let mut ng = 0;
        let mut overflow = false;
        let mut p = i;
        let plus = s[p] == b'+';
        if plus {
            p += 1;
        }
        let starts_group = |k: usize| {
            k < n
                && (s[k].is_ascii_digit()
                    || (s[k] == b'(' && k + 1 < n && s[k + 1].is_ascii_digit()))
        };
        let mut sep = 0u8;
        while starts_group(p) {
            let paren = s[p] == b'(';
            let gs = p + usize::from(paren);
            let mut q = gs;
            while q < n && s[q].is_ascii_digit() {
                q += 1;
            }
            let ge = q;
            if paren {
                if q < n && s[q] == b')' {
                    q += 1;
                } else {
                    // "(123" without its ")": the run ends before the parenthesis.
                    break;
                }
            }
            if ng < MAX_GROUPS {
                groups[ng] = Group {
                    start: gs,
                    end: ge,
                    sep,
                    paren,
                };
                ng += 1;
            } else {
                overflow = true;
            }
            p = q;
            if p < n && matches!(s[p], b' ' | b'-' | b'.') && starts_group(p + 1) {
                sep = s[p];
                p += 1;
            } else if paren && starts_group(p) {
                // "(555)123-4567".
                sep = b')';
            } else {
                break;
            }
        }
        if ng == 0 {
            return i + 1;
        }
        let run_end = p;
        // Not a start: inside a word, or continuing a decimal or version number ("3.14159…",
        // "v10.0.19041").
        let start_ok = i == 0
            || !(is_word(s[i - 1])
                || (matches!(s[i - 1], b'.' | b',') && i >= 2 && is_word(s[i - 2])));
        let end_ok = !overflow && (run_end == n || !(is_word(s[run_end]) || s[run_end] == b'@'));
        let groups = &groups[..ng];
        let mut gi = 0;
        'outer: while gi < ng {
            let can_start = if gi == 0 {
                start_ok
            } else {
                groups[gi].sep == b' '
            };
            if can_start {
                for gj in (gi..ng).rev() {
                    let can_end = if gj == ng - 1 {
                        end_ok
                    } else {
                        groups[gj + 1].sep == b' '
                    };
                    if !can_end {
                        continue;
                    }
                    let with_plus = plus && gi == 0;
                    if let Some(entity) = self.classify(s, &groups[gi..=gj], with_plus) {
                        let first = &groups[gi];
                        let last = &groups[gj];
                        let start = if with_plus {
                            i
                        } else {
                            first.start - usize::from(first.paren)
                        };
                        let end = last.end + usize::from(last.paren);
                        spans.push(Span { start, end, entity });
                        gi = gj + 1;
                        continue 'outer;
                    }
                }
            }
            gi += 1;
        }
        run_end
    }

    /// What a candidate sequence of digit groups is, if anything.
    fn classify(&self, s: &[u8], g: &[Group], plus: bool) -> Option<Entity> {
        let digits: usize = g.iter().map(Group::len).sum();
        let any_paren = g.iter().any(|x| x.paren);
        let seps = || g[1..].iter().map(|x| x.sep);
        if self.is(Entity::UsSsn)
            && !plus
            && !any_paren
            && g.len() == 3
            && g[0].len() == 3
            && g[1].len() == 2
            && g[2].len() == 4
            && seps().all(|c| c == b'-')
            && ssn_valid(s, g)
        {
            return Some(Entity::UsSsn);
        }
        if self.is(Entity::CreditCard)
            && !plus
            && !any_paren
            && (13..=19).contains(&digits)
            && seps().all(|c| c == b' ' || c == b'-')
            && luhn(s, g)
        {
            return Some(Entity::CreditCard);
        }
        if self.is(Entity::Phone) && phone_shape(g, digits, plus) {
            return Some(Entity::Phone);
        }
        None
    }
}

const MAX_GROUPS: usize = 12;

#[derive(Clone, Copy, Default)]
struct Group {
    start: usize,
    end: usize,
    /// The separator before this group (0 for the first).
    sep: u8,
    /// Written in parentheses, "(555)".
    paren: bool,
}

impl Group {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// Whether any byte of `w` is in 0x28..=0x4A, the range of all anchor bytes (the
/// "has a byte between m and n" word trick: per byte, `(127 + n) - b` has its top bit set
/// iff b < n, and `b + (127 - m)` iff b > m; `!w` drops bytes of 0x80 and above, which are
/// never anchors). No byte borrows from or carries into its neighbour, since each lane stays
/// within 0..=255.
fn may_hold_anchor(w: u64) -> bool {
    const L: u64 = 0x0101_0101_0101_0101;
    const M: u64 = 0x27;
    const N: u64 = 0x4B;
    let low7 = w & (L * 127);
    ((L * (127 + N) - low7) & !w & (low7 + L * (127 - M)) & (L * 0x80)) != 0
}

/// Part of a word: digits and letters next to a candidate make it part of something else
/// ("order12345", "v1.2").
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn digits_of<'a>(s: &'a [u8], g: &'a [Group]) -> impl DoubleEndedIterator<Item = u32> + 'a {
    g.iter()
        .flat_map(move |x| s[x.start..x.end].iter().map(|b| (b - b'0') as u32))
}

fn luhn(s: &[u8], g: &[Group]) -> bool {
    let mut sum = 0;
    for (k, d) in digits_of(s, g).rev().enumerate() {
        sum += if k % 2 == 1 {
            let x = d * 2;
            if x > 9 { x - 9 } else { x }
        } else {
            d
        };
    }
    sum % 10 == 0
}

/// Area 001–899 except 666, group 01–99, serial 0001–9999.
fn ssn_valid(s: &[u8], g: &[Group]) -> bool {
    let num = |x: &Group| {
        s[x.start..x.end]
            .iter()
            .fold(0u32, |a, b| a * 10 + (b - b'0') as u32)
    };
    let (area, group, serial) = (num(&g[0]), num(&g[1]), num(&g[2]));
    (1..900).contains(&area) && area != 666 && group != 0 && serial != 0
}

/// A phone number: `+` and 10–15 digits (E.164), or a national format with separators:
/// 10–12 digits in three or more groups (or a parenthesised area code and one more group),
/// the first group 1–4 digits and the others 2–8. Shapes of dates (`2024-01-15 10`,
/// `15-01-2024 …`), IPv4 addresses and thousands-grouped numbers (`1.234.567.890`) are not
/// phone numbers.
fn phone_shape(g: &[Group], digits: usize, plus: bool) -> bool {
    if plus {
        return (10..=15).contains(&digits);
    }
    if !(10..=12).contains(&digits) || g.len() < 2 {
        return false;
    }
    if g.len() == 2 && !g[0].paren {
        return false;
    }
    let lens = |k: usize| g[k].len();
    if !(1..=4).contains(&lens(0)) || g[1..].iter().any(|x| !(2..=8).contains(&x.len())) {
        return false;
    }
    let date_like = (lens(0) == 4 && lens(1) == 2)
        || (g.len() >= 3 && lens(0) <= 2 && lens(1) <= 2 && lens(2) == 4);
    let all_sep = |c: u8| g[1..].iter().all(|x| x.sep == c);
    // Dots separate version numbers and decimals too: only the North American 3-3-4 shape
    // (optionally after a country code 1) counts with dots.
    let lens_are =
        |want: &[usize]| g.len() == want.len() && g.iter().zip(want).all(|(x, w)| x.len() == *w);
    if g[1..].iter().any(|x| x.sep == b'.') && !(lens_are(&[3, 3, 4]) || lens_are(&[1, 3, 3, 4])) {
        return false;
    }
    let ipv4_like = g.len() == 4 && all_sep(b'.') && g.iter().all(|x| x.len() <= 3);
    let thousands =
        lens(0) <= 3 && g[1..].iter().all(|x| x.len() == 3) && (all_sep(b'.') || all_sep(b' '));
    !(date_like || ipv4_like || thousands)
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-') || b >= 0x80
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b >= 0x80
}

/// An address around the `@` at `at`: a local part back to `floor`, a domain of two or more
/// labels whose last (the TLD) is at least two letters.
fn email_at(s: &[u8], at: usize, floor: usize) -> Option<Span> {
    let mut a = at;
    while a > floor && is_local(s[a - 1]) {
        a -= 1;
    }
    while a < at && s[a] == b'.' {
        a += 1;
    }
    if a == at {
        return None;
    }
    let mut b = at + 1;
    while b < s.len() && is_domain(s[b]) {
        b += 1;
    }
    while b > at + 1 && matches!(s[b - 1], b'.' | b'-') {
        b -= 1;
    }
    let dom = &s[at + 1..b];
    if dom.is_empty() || dom[0] == b'.' || dom[0] == b'-' || memmem::find(dom, b"..").is_some() {
        return None;
    }
    let dot = memchr::memrchr(b'.', dom)?;
    let tld = &dom[dot + 1..];
    if tld.len() < 2 || !tld.iter().all(|c| c.is_ascii_alphabetic() || *c >= 0x80) {
        return None;
    }
    Some(Span {
        start: a,
        end: b,
        entity: Entity::Email,
    })
}

/// `AKIA` or `ASIA` and 16 more capitals or digits, as a whole word.
fn aws_at(s: &[u8], i: usize) -> Option<Span> {
    if i > 0 && is_word(s[i - 1]) {
        return None;
    }
    let key = s.get(i..i + 20)?;
    if &key[..4] != b"AKIA" && &key[..4] != b"ASIA" {
        return None;
    }
    if !key[4..]
        .iter()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return None;
    }
    if s.get(i + 20).is_some_and(|b| is_word(*b)) {
        return None;
    }
    Some(Span {
        start: i,
        end: i + 20,
        entity: Entity::AwsAccessKey,
    })
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn b64url_end(s: &[u8], from: usize) -> usize {
    let mut k = from;
    while k < s.len() && is_b64url(s[k]) {
        k += 1;
    }
    k
}

/// A JWT whose `J` is at `j`: a header segment starting `eyJ` (base64url of `{"`), a payload
/// segment and a signature segment (empty for unsigned tokens), dot-separated; further
/// segments (JWE has five) are included.
fn jwt_at(s: &[u8], j: usize, floor: usize) -> Option<Span> {
    let start = j.checked_sub(2)?;
    if start < floor || &s[start..j] != b"ey" {
        return None;
    }
    if start > 0 && (is_b64url(s[start - 1]) || s[start - 1] == b'.') {
        return None;
    }
    let h_end = b64url_end(s, start);
    if h_end - start < 10 || s.get(h_end) != Some(&b'.') {
        return None;
    }
    let p_end = b64url_end(s, h_end + 1);
    if p_end - (h_end + 1) < 2 || s.get(p_end) != Some(&b'.') {
        return None;
    }
    let mut end = b64url_end(s, p_end + 1);
    while s.get(end) == Some(&b'.') && s.get(end + 1).is_some_and(|b| is_b64url(*b)) {
        end = b64url_end(s, end + 1);
    }
    Some(Span {
        start,
        end,
        entity: Entity::Jwt,
    })
}

/// A PEM private key block: a `-----BEGIN … PRIVATE KEY…-----` line through the end of its
/// `-----END …-----` line, or to the end of the value when the block is cut off.
fn private_key_at(s: &[u8], i: usize) -> Option<Span> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    if !s[i..].starts_with(BEGIN) {
        return None;
    }
    let label_start = i + BEGIN.len();
    let line_end = memchr::memchr(b'\n', &s[label_start..]).map_or(s.len(), |k| label_start + k);
    let close = label_start + memmem::find(&s[label_start..line_end], b"-----")?;
    memmem::find(&s[label_start..close], b"PRIVATE KEY")?;
    let body = close + 5;
    let end = match memmem::find(&s[body..], b"-----END ") {
        Some(k) => {
            let e = body + k + 9;
            let eol = memchr::memchr(b'\n', &s[e..]).map_or(s.len(), |k| e + k);
            match memmem::find(&s[e..eol], b"-----") {
                Some(k2) => e + k2 + 5,
                None => eol,
            }
        }
        None => s.len(),
    };
    Some(Span {
        start: i,
        end,
        entity: Entity::PrivateKey,
    })
}

/// An IBAN starting at `p` (two capitals, then two digits): up to 34 capitals and digits,
/// optionally in space-separated groups as printed, whose ISO 13616 check (mod 97) holds.
/// The longest valid prefix that ends at a group end wins.
fn iban_at(s: &[u8], p: usize) -> Option<Span> {
    if p > 0 && is_word(s[p - 1]) {
        return None;
    }
    if !s.get(p + 3).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let check = (s[p + 2] - b'0') * 10 + (s[p + 3] - b'0');
    if !(2..=98).contains(&check) {
        return None;
    }
    let alnum = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let mut chars = [0u8; 34];
    let mut count = 0;
    let mut ends = [(0usize, 0usize); 12];
    let mut nends = 0;
    let mut pos = p;
    loop {
        while pos < s.len() && alnum(s[pos]) && count < 34 {
            chars[count] = s[pos];
            count += 1;
            pos += 1;
        }
        if pos < s.len() && is_word(s[pos]) {
            // Glued to more word characters (lowercase, or a 35th character): no end here.
            break;
        }
        if count >= 15 && nends < ends.len() {
            ends[nends] = (count, pos);
            nends += 1;
        }
        if count < 34 && s.get(pos) == Some(&b' ') && s.get(pos + 1).is_some_and(|b| alnum(*b)) {
            pos += 1;
        } else {
            break;
        }
    }
    ends[..nends]
        .iter()
        .rev()
        .find(|(count, _)| iban_mod97(&chars[..*count]) == 1)
        .map(|&(_, end)| Span {
            start: p,
            end,
            entity: Entity::Iban,
        })
}

/// The IBAN remainder: the first four characters moved to the end, letters as 10–35.
fn iban_mod97(c: &[u8]) -> u32 {
    let mut r = 0u32;
    for &b in c[4..].iter().chain(&c[..4]) {
        r = if b.is_ascii_digit() {
            (r * 10 + (b - b'0') as u32) % 97
        } else {
            (r * 100 + (b - b'A') as u32 + 10) % 97
        };
    }
    r
}

/// The detectors of one rule set, with the mask each entity gets.
#[derive(Clone)]
pub struct DetectorSet {
    core: Core,
    arr: TextScratch,
}

#[derive(Clone)]
struct Core {
    finder: Finder,
    /// One text masker per detector, applied to the spans of its entities.
    maskers: Vec<FieldMasker>,
    /// Which masker each entity (by [`entity_index`]) uses.
    by_entity: [usize; 8],
    spans: Vec<Span>,
    /// A decoded JSON string.
    leaf: Vec<u8>,
    /// A rewritten string before JSON escaping.
    text: Vec<u8>,
    stack: Vec<bool>,
}

impl DetectorSet {
    /// The entities opted in, each with its mask. When several detectors name the same entity,
    /// the first one's mask is used. `hash_key` serves `Hash` masks.
    pub fn new(detectors: &[Detector], hash_key: Option<std::sync::Arc<[u8]>>) -> DetectorSet {
        let session = Session {
            date_style_iso: true,
        };
        let mut on = [false; 8];
        let mut by_entity = [0usize; 8];
        let mut maskers = Vec::new();
        for d in detectors {
            let mut used = false;
            for e in &d.entities {
                let k = entity_index(*e);
                if !on[k] {
                    on[k] = true;
                    by_entity[k] = maskers.len();
                    used = true;
                }
            }
            if used {
                maskers.push(FieldMasker::new(
                    &d.mask,
                    &PgType::Text,
                    Format::Text,
                    hash_key.clone(),
                    &session,
                ));
            }
        }
        DetectorSet {
            core: Core {
                finder: Finder::new(on),
                maskers,
                by_entity,
                spans: Vec::new(),
                leaf: Vec::new(),
                text: Vec::new(),
                stack: Vec::new(),
            },
            arr: TextScratch::default(),
        }
    }

    /// No entity is looked for: [`DetectorSet::scan`] would always say `Unchanged`.
    pub fn is_empty(&self) -> bool {
        self.core.maskers.is_empty()
    }

    /// The entities looked for.
    pub fn entities(&self) -> impl Iterator<Item = Entity> + '_ {
        ENTITIES.iter().copied().filter(|e| self.core.finder.is(*e))
    }

    /// Scans one text value (a text-like column in text or binary format — identical bytes
    /// for text types — or a json/jsonb value, or an array of those) and rewrites every
    /// detected span with its entity's mask applied to the span.
    ///
    /// Text that is not valid UTF-8 is not scanned (`Unchanged`). In JSON, string values and
    /// keys are scanned after unescaping; a number in which something is found becomes a JSON
    /// string. Other types are not scanned. A span whose mask gives NULL (the `Null` mask, or a
    /// number mask, which has no text form) makes the whole value NULL.
    pub fn scan(&mut self, ty: &PgType, format: Format, value: &[u8], out: &mut Vec<u8>) -> Scan {
        if self.is_empty() {
            return Scan::Unchanged;
        }
        let start = out.len();
        let r = match ty {
            PgType::Array(inner)
                if matches!(**inner, PgType::Text | PgType::Json | PgType::Jsonb) =>
            {
                let DetectorSet { core, arr } = self;
                let each = |e: &[u8], o: &mut Vec<u8>| match core.scan_value(inner, format, e, o) {
                    Scan::Unchanged => Some(ElemOut::Same),
                    Scan::Rewritten => Some(ElemOut::Value),
                    Scan::Null => None,
                };
                let changed = match format {
                    Format::Text => array::text_array(value, out, arr, each),
                    Format::Binary => array::binary_array(value, out, each),
                };
                match changed {
                    Some(true) => Scan::Rewritten,
                    Some(false) => Scan::Unchanged,
                    None => Scan::Null,
                }
            }
            _ => self.core.scan_value(ty, format, value, out),
        };
        if r != Scan::Rewritten {
            out.truncate(start);
        }
        r
    }
}

impl Core {
    fn scan_value(&mut self, ty: &PgType, format: Format, value: &[u8], out: &mut Vec<u8>) -> Scan {
        match ty {
            PgType::Text => {
                if std::str::from_utf8(value).is_err() {
                    return Scan::Unchanged;
                }
                self.spans.clear();
                self.finder.find(value, &mut self.spans);
                if self.spans.is_empty() {
                    return Scan::Unchanged;
                }
                match rewrite(value, &self.spans, &mut self.maskers, &self.by_entity, out) {
                    Some(()) => Scan::Rewritten,
                    None => Scan::Null,
                }
            }
            PgType::Json => self.scan_json(value, out),
            PgType::Jsonb if format == Format::Binary => {
                if value.first() != Some(&1) {
                    return Scan::Null;
                }
                let start = out.len();
                out.push(1);
                let r = self.scan_json(&value[1..], out);
                if r != Scan::Rewritten {
                    out.truncate(start);
                }
                r
            }
            PgType::Jsonb => self.scan_json(value, out),
            _ => Scan::Unchanged,
        }
    }

    fn scan_json(&mut self, body: &[u8], out: &mut Vec<u8>) -> Scan {
        if std::str::from_utf8(body).is_err() {
            return Scan::Null;
        }
        let Core {
            finder,
            maskers,
            by_entity,
            spans,
            leaf,
            text,
            stack,
        } = self;
        let start = out.len();
        let mut copied = 0;
        let r = json::walk(body, stack, |a, b, kind| {
            let tok = &body[a..b];
            let s: &[u8] = match kind {
                Leaf::Num => tok,
                Leaf::Str { .. } => {
                    let inner = &tok[1..tok.len() - 1];
                    if memchr::memchr(b'\\', inner).is_none() {
                        inner
                    } else {
                        leaf.clear();
                        json::unescape(inner, false, leaf).ok_or(Stop::Invalid)?;
                        leaf
                    }
                }
            };
            spans.clear();
            finder.find(s, spans);
            if spans.is_empty() {
                return Ok(());
            }
            text.clear();
            rewrite(s, spans, maskers, by_entity, text).ok_or(Stop::Abort)?;
            out.extend_from_slice(&body[copied..a]);
            json::write_string(text, out);
            copied = b;
            Ok(())
        });
        match r {
            Ok(()) if copied > 0 => {
                out.extend_from_slice(&body[copied..]);
                Scan::Rewritten
            }
            Ok(()) => Scan::Unchanged,
            Err(_) => {
                out.truncate(start);
                Scan::Null
            }
        }
    }
}

/// Copies `s` to `out` with each span replaced by its entity's mask of it; `None` when a mask
/// gives NULL.
fn rewrite(
    s: &[u8],
    spans: &[Span],
    maskers: &mut [FieldMasker],
    by_entity: &[usize; 8],
    out: &mut Vec<u8>,
) -> Option<()> {
    let mut last = 0;
    for sp in spans {
        out.extend_from_slice(&s[last..sp.start]);
        let m = maskers.get_mut(by_entity[entity_index(sp.entity)])?;
        if m.apply(&s[sp.start..sp.end], out) == Masked::Null {
            return None;
        }
        last = sp.end;
    }
    out.extend_from_slice(&s[last..]);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::may_hold_anchor;

    #[test]
    fn anchor_word_test_matches_the_byte_range() {
        // Every byte value in every lane, over two different backgrounds.
        for background in [0x6161_6161_6161_6161u64, 0xC3A9_20C3_A920_7A7Au64] {
            for lane in 0..8 {
                for b in 0..=255u64 {
                    let w = (background & !(0xFF << (lane * 8))) | (b << (lane * 8));
                    let want = w.to_le_bytes().iter().any(|x| (0x28..=0x4A).contains(x));
                    assert_eq!(may_hold_anchor(w), want, "{w:#018x}");
                }
            }
        }
    }
}
