//! Statement shapes for the decision cache. Clients that inline values (`WHERE aid =
//! 48213`, pgbench's simple mode, many scripts) send a new text for every row they touch;
//! keyed by exact text, every one of those would be a cache miss and a full parse.
//!
//! A shape replaces a number with `?` only where no decision can depend on its value:
//! compared with a column (`aid = 48213`, `amount >= 10`), or after `LIMIT`/`OFFSET`.
//! `1 = 2` keeps its numbers, since whether a WHERE is a tautology depends on them.
//! Strings, identifiers and everything else stay as written. The scanner understands PostgreSQL's quoting (`'…'`, `E'…'`, `"…"`,
//! `$tag$…$tag$`, `--` and nested `/* */` comments); where it is unsure it gives up and the
//! exact text is the key.

/// The shape of `sql`, or `None` when it has no replaceable number (or scanning was unsure).
pub fn shape(sql: &str) -> Option<String> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut copied = 0;
    let mut replaced = false;
    // The last two significant tokens: what a number follows.
    let mut prev: &[u8] = b"";
    let mut before: &[u8] = b"";
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' => {
                let escapes =
                    i > 0 && matches!(b[i - 1], b'e' | b'E') && (i < 2 || !is_ident(b[i - 2]));
                i = skip_quoted(b, i, b'\'', escapes)?;
                before = prev;
                prev = b"'";
            }
            b'"' => {
                i = skip_quoted(b, i, b'"', false)?;
                before = prev;
                prev = b"\"";
            }
            b'$' if i + 1 < b.len()
                && (b[i + 1] == b'$' || b[i + 1].is_ascii_alphabetic() || b[i + 1] == b'_') =>
            {
                // A dollar quote $tag$ … $tag$ (or a parameter like $1, handled below).
                let tag_end = b[i + 1..].iter().position(|&x| x == b'$')? + i + 1;
                let tag = &b[i..=tag_end];
                if !tag[1..tag.len() - 1].iter().all(|&x| is_ident(x)) {
                    return None;
                }
                let body = tag_end + 1;
                let close = find(&b[body..], tag)? + body;
                i = close + tag.len();
                before = prev;
                prev = b"$";
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..]
                    .iter()
                    .position(|&x| x == b'\n')
                    .map_or(b.len(), |p| i + p);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0usize;
                loop {
                    if i + 1 >= b.len() {
                        return None; // unterminated comment: the server will say so
                    }
                    if b[i] == b'/' && b[i + 1] == b'*' {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b[i + 1] == b'/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_whitespace() => i += 1,
            c if c.is_ascii_digit() => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                if i < b.len() && (is_ident(b[i]) || b[i] == b'\'' || b[i] == b'"') {
                    // 1e5, 0x1F, 12abc: not a plain number; keep the text exact.
                    return None;
                }
                if replaceable_after(before, prev) {
                    out.push_str(&sql[copied..start]);
                    out.push('?');
                    copied = i;
                    replaced = true;
                }
                before = prev;
                prev = b"0";
            }
            c if is_ident(c) => {
                let start = i;
                while i < b.len() && (is_ident(b[i]) || b[i] == b'$') {
                    i += 1;
                }
                before = prev;
                prev = &b[start..i];
            }
            b'?' => return None, // would be confused with a replacement
            _ => {
                let start = i;
                while i < b.len() && is_operator(b[i]) {
                    i += 1;
                }
                if i == start {
                    i += 1;
                }
                before = prev;
                prev = &b[start..i];
            }
        }
    }
    if !replaced {
        return None;
    }
    out.push_str(&sql[copied..]);
    Some(out)
}

fn replaceable_after(before: &[u8], prev: &[u8]) -> bool {
    let compared_with_column = matches!(prev, b"=" | b"<" | b">" | b"<=" | b">=" | b"<>" | b"!=")
        && before
            .first()
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_' || *c >= 0x80)
        && !["true", "false", "null"]
            .iter()
            .any(|k| before.eq_ignore_ascii_case(k.as_bytes()));
    compared_with_column
        || prev.eq_ignore_ascii_case(b"limit")
        || prev.eq_ignore_ascii_case(b"offset")
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

fn is_operator(c: u8) -> bool {
    b"+-*/<>=~!@#%^&|`".contains(&c)
}

/// The index just past the closing quote of a quoted token starting at `start`.
fn skip_quoted(b: &[u8], start: usize, quote: u8, backslash_escapes: bool) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        if backslash_escapes && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2; // a doubled quote stands for itself
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::shape;

    #[test]
    fn numbers_after_comparisons_and_limits_are_replaced() {
        assert_eq!(
            shape("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;").as_deref(),
            Some("SELECT abalance FROM pgbench_accounts WHERE aid = ?;")
        );
        assert_eq!(
            shape("SELECT * FROM t WHERE a>=1 AND b < 2.5 LIMIT 10 OFFSET 20").as_deref(),
            Some("SELECT * FROM t WHERE a>=? AND b < ? LIMIT ? OFFSET ?")
        );
        assert_eq!(
            shape("DELETE FROM t WHERE t.id = 5").as_deref(),
            Some("DELETE FROM t WHERE t.id = ?")
        );
    }

    #[test]
    fn constants_compared_with_constants_stay_exact() {
        // They decide whether a WHERE is a tautology.
        assert_eq!(shape("SELECT * FROM t WHERE 1 = 2"), None);
        assert_eq!(
            shape("DELETE FROM t WHERE 'a' = 1 OR true = 1 OR f(x) = 2"),
            None
        );
    }

    #[test]
    fn everything_else_stays_exact() {
        assert_eq!(shape("SELECT 1"), None);
        assert_eq!(shape("SELECT * FROM t1 ORDER BY 2"), None);
        assert_eq!(shape("SELECT * FROM t WHERE name = 'a = 1'"), None);
        assert_eq!(shape("SELECT * FROM \"t = 1\""), None);
        assert_eq!(shape("SELECT $$ = 1 $$"), None);
        assert_eq!(
            shape("SELECT $q$ x = 1 $q$ WHERE a = 2").as_deref(),
            Some("SELECT $q$ x = 1 $q$ WHERE a = ?")
        );
        assert_eq!(shape("SELECT 1 -- = 2"), None);
        assert_eq!(shape("SELECT /* = 1 /* = 2 */ */ 3"), None);
        assert_eq!(shape("SELECT E'\\' = 1' = 2"), None);
        assert_eq!(
            shape("SELECT x FROM t WHERE E'\\' = 1' = a AND a = 2").as_deref(),
            Some("SELECT x FROM t WHERE E'\\' = 1' = a AND a = ?")
        );
        assert_eq!(shape("SELECT * FROM t WHERE a = $1"), None);
        assert_eq!(shape("SELECT * FROM t WHERE a = 1e5"), None);
        assert_eq!(shape("SELECT * FROM t WHERE a = ?"), None);
        assert_eq!(shape("SELECT 'unterminated = 1"), None);
    }
}
