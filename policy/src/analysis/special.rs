//! PostgreSQL statements sqlparser 0.64 cannot parse but that are simple enough to read
//! off their tokens: `DO`, `SET SCHEMA`, two-phase commit, `MOVE`, `CHECKPOINT`, and the
//! `VACUUM`/`ANALYZE` forms the parser misses. Anything that does not fit a pattern here
//! exactly goes to (or stays with) the parser, and fails there.

use sqlparser::tokenizer::{Token, TokenWithSpan, Word};

use super::{ColumnName, ParseFailure, RelationName, SearchPathChange, StatementInfo, names};
use crate::model::Operation;

/// Recognises a statement the parser is not asked about; `None` leaves it to the parser.
pub(super) fn recognise(tokens: &[TokenWithSpan]) -> Option<Result<StatementInfo, ParseFailure>> {
    let t = significant(tokens);
    let first = t.first()?;
    if is_word(first, "do") {
        return Some(do_block(&t[1..]));
    }
    if let Some(info) = set_schema(&t) {
        return Some(Ok(info));
    }
    if two_phase(&t) {
        return Some(Ok(info([Operation::Transaction])));
    }
    if is_word(first, "checkpoint") && t.len() == 1 {
        return Some(Ok(info([Operation::Other])));
    }
    if is_word(first, "move") && t.len() > 1 && t[1..].iter().all(|t| is_move_part(t)) {
        return Some(Ok(info([Operation::Other])));
    }
    None
}

/// `VACUUM` and `ANALYZE` in the forms the parser does not take (option lists, several
/// tables, flags in a row); `None` if `tokens` are not one of them.
pub(super) fn maintenance(tokens: &[TokenWithSpan]) -> Option<StatementInfo> {
    let t = significant(tokens);
    let vacuum = is_word(t.first()?, "vacuum");
    if !vacuum && !is_word(t[0], "analyze") && !is_word(t[0], "analyse") {
        return None;
    }
    let mut i = 1;
    if t.get(i) == Some(&&Token::LParen) {
        i += 1;
        while !matches!(t.get(i), Some(Token::RParen)) {
            match t.get(i)? {
                Token::Word(_) | Token::Number(..) | Token::Comma => {}
                other if string_value(other).is_some() => {}
                _ => return None,
            }
            i += 1;
        }
        i += 1;
    }
    let flags: &[&str] = if vacuum {
        &["full", "freeze", "verbose", "analyze", "analyse"]
    } else {
        &["verbose"]
    };
    while t
        .get(i)
        .is_some_and(|t| flags.iter().any(|f| is_word(t, f)))
    {
        i += 1;
    }
    let mut result = info([Operation::Vacuum]);
    while i < t.len() {
        let (relation, next) = qualified_name(&t, i)?;
        i = next;
        if t.get(i) == Some(&&Token::LParen) {
            i += 1;
            loop {
                let Token::Word(w) = t.get(i)? else {
                    return None;
                };
                result.columns.insert(ColumnName {
                    relation: Some(relation.clone()),
                    column: word(w),
                });
                i += 1;
                match t.get(i)? {
                    Token::Comma => i += 1,
                    Token::RParen => break,
                    _ => return None,
                }
            }
            i += 1;
        }
        if vacuum {
            result.written.insert(relation);
        } else {
            result.read.insert(relation);
        }
        match t.get(i) {
            None => {}
            Some(Token::Comma) if i + 1 < t.len() => i += 1,
            Some(_) => return None,
        }
    }
    Some(result)
}

fn significant(tokens: &[TokenWithSpan]) -> Vec<&Token> {
    tokens
        .iter()
        .map(|t| &t.token)
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect()
}

fn info<const N: usize>(operations: [Operation; N]) -> StatementInfo {
    StatementInfo {
        operations: operations.into_iter().collect(),
        ..StatementInfo::default()
    }
}

fn is_word(token: &Token, keyword: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword))
}

/// An identifier token as the server reads it.
fn word(w: &Word) -> String {
    if w.quote_style.is_some() {
        names::truncate(&w.value)
    } else {
        names::truncate(&w.value.to_ascii_lowercase())
    }
}

/// The value of a string constant the server accepts where it wants one.
fn string_value(token: &Token) -> Option<&str> {
    match token {
        Token::SingleQuotedString(s)
        | Token::EscapedStringLiteral(s)
        | Token::UnicodeStringLiteral(s) => Some(s),
        Token::DollarQuotedString(s) => Some(&s.value),
        _ => None,
    }
}

/// `DO [LANGUAGE name] 'code'` (in any order): runs code the proxy cannot see.
fn do_block(items: &[&Token]) -> Result<StatementInfo, ParseFailure> {
    let mut code = 0;
    let mut language = 0;
    let mut i = 0;
    while i < items.len() {
        if is_word(items[i], "language") {
            match items.get(i + 1) {
                Some(Token::Word(_)) => {}
                Some(t) if string_value(t).is_some() => {}
                _ => return Err(unrecognised_do()),
            }
            language += 1;
            i += 2;
        } else if string_value(items[i]).is_some() {
            code += 1;
            i += 1;
        } else {
            return Err(unrecognised_do());
        }
    }
    if code != 1 || language > 1 {
        return Err(unrecognised_do());
    }
    let mut result = info([Operation::Do]);
    result.search_path = Some(SearchPathChange::Unknown);
    Ok(result)
}

fn unrecognised_do() -> ParseFailure {
    ParseFailure {
        message: "DO statement not understood: expected DO [LANGUAGE name] 'code'".into(),
    }
}

/// `SET [SESSION | LOCAL] SCHEMA 'name'`, PostgreSQL's alias for setting search_path.
fn set_schema(t: &[&Token]) -> Option<StatementInfo> {
    if !is_word(t.first()?, "set") {
        return None;
    }
    let (local, rest) = match t.get(1)? {
        w if is_word(w, "local") => (true, &t[2..]),
        w if is_word(w, "session") => (false, &t[2..]),
        _ => (false, &t[1..]),
    };
    let [keyword, value] = rest else {
        return None;
    };
    if !is_word(keyword, "schema") {
        return None;
    }
    let schema = string_value(value)?;
    let mut result = info([Operation::Set]);
    result.search_path = Some(SearchPathChange::Set {
        schemas: vec![names::truncate(schema)],
        local,
    });
    Some(result)
}

/// `PREPARE TRANSACTION 'id'`, `COMMIT PREPARED 'id'`, `ROLLBACK PREPARED 'id'`.
fn two_phase(t: &[&Token]) -> bool {
    let [first, second, id] = t else {
        return false;
    };
    string_value(id).is_some()
        && ((is_word(first, "prepare") && is_word(second, "transaction"))
            || ((is_word(first, "commit") || is_word(first, "rollback"))
                && is_word(second, "prepared")))
}

/// What may follow `MOVE`: direction words, counts and the cursor name.
fn is_move_part(token: &Token) -> bool {
    matches!(
        token,
        Token::Word(_) | Token::Number(..) | Token::Minus | Token::Plus
    )
}

/// `name`, `schema.name` or `db.schema.name` starting at `i`; the relation and the index
/// after it.
fn qualified_name(t: &[&Token], mut i: usize) -> Option<(RelationName, usize)> {
    let mut parts = Vec::new();
    loop {
        let Token::Word(w) = t.get(i)? else {
            return None;
        };
        parts.push(word(w));
        i += 1;
        if t.get(i) == Some(&&Token::Period) {
            i += 1;
        } else {
            break;
        }
    }
    names::relation_from_parts(&parts).ok().map(|r| (r, i))
}
