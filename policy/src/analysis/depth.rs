//! A bound on how deep a statement's syntax tree can get, checked on its tokens before
//! parsing. sqlparser builds chains like `1+1+1…`, `x::t::t…` or `… UNION … UNION …`
//! as left-deep trees without a recursion limit, and dropping a tree tens of thousands
//! deep overflows the stack (an abort, not a panic). The bound is far beyond hand-written
//! or generated SQL (the server has a stack depth limit of its own), so such text is
//! refused before it is parsed.
//!
//! The bound: along any path of open brackets, the sum over the levels of the tokens
//! since the level's last comma, plus its set operations (which commas do not separate).
//!
//! Separately, sqlparser parses a statement nested in a statement (`EXPLAIN …`,
//! `PREPARE … AS …`, rule actions, `BEGIN ATOMIC` bodies, procedural `IF`/`CASE`/`WHILE`
//! blocks) by plain recursion with large frames; [`nests_statements`] spots text that may
//! do that more than a few levels deep, which is then parsed on a stack of its own.

use sqlparser::tokenizer::{Token, TokenWithSpan};

use super::ParseFailure;

/// Far above hand-written or ORM SQL (a chain of 2 500 `OR`ed comparisons reaches it),
/// far below what overflows a 2 MiB thread stack.
pub(super) const MAX_DEPTH: usize = 10_000;

#[derive(Default, Clone, Copy)]
struct Level {
    run: usize,
    set_operations: usize,
}

pub(super) fn check(tokens: &[TokenWithSpan]) -> Result<(), ParseFailure> {
    let mut levels = vec![Level::default()];
    let mut total = 0usize;
    for token in tokens {
        match &token.token {
            Token::Whitespace(_) => {}
            Token::LParen | Token::LBracket | Token::LBrace => levels.push(Level::default()),
            Token::RParen | Token::RBracket | Token::RBrace => {
                if levels.len() > 1
                    && let Some(level) = levels.pop()
                {
                    total -= level.run + level.set_operations;
                }
                add(&mut levels, &mut total, false);
            }
            Token::Comma | Token::SemiColon => {
                if let Some(level) = levels.last_mut() {
                    total -= level.run;
                    level.run = 0;
                }
            }
            Token::Word(w) if w.quote_style.is_none() && is_set_operation(&w.value) => {
                add(&mut levels, &mut total, true);
            }
            _ => add(&mut levels, &mut total, false),
        }
        if total > MAX_DEPTH {
            return Err(ParseFailure {
                message: format!(
                    "statement nests expressions more than {MAX_DEPTH} deep; \
                     split it or use IN lists and arrays"
                ),
            });
        }
    }
    Ok(())
}

fn add(levels: &mut [Level], total: &mut usize, set_operation: bool) {
    if let Some(level) = levels.last_mut() {
        level.run += 1;
        *total += 1;
        if set_operation {
            level.set_operations += 1;
            *total += 1;
        }
    }
}

fn is_set_operation(word: &str) -> bool {
    ["union", "intersect", "except"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
}

/// Words with which sqlparser parses a statement inside a statement.
const NESTING: [&str; 10] = [
    "explain",
    "prepare",
    "if",
    "while",
    "case",
    "rule",
    "atomic",
    "trigger",
    "procedure",
    "begin",
];

/// Nesting this deep or less is parsed on the caller's stack.
const MAX_NESTING_ON_CALLER_STACK: usize = 4;

/// Whether sqlparser may recurse into nested statements more than a few levels deep.
pub(super) fn nests_statements(tokens: &[TokenWithSpan]) -> bool {
    tokens
        .iter()
        .filter(|t| {
            matches!(&t.token, Token::Word(w) if w.quote_style.is_none()
                && NESTING.iter().any(|n| w.value.eq_ignore_ascii_case(n)))
        })
        .nth(MAX_NESTING_ON_CALLER_STACK)
        .is_some()
}
