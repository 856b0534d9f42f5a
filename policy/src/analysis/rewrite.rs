//! Token rewrites that turn two PostgreSQL forms sqlparser 0.64 cannot parse into
//! equivalents it can, without changing what the statement reads or writes:
//! - a statement `TABLE name …` is `SELECT * FROM name …`;
//! - `WHERE CURRENT OF cursor` in UPDATE/DELETE becomes a placeholder condition,
//!   [`CURRENT_OF`], which the WHERE check treats as effective (it hits one row);
//! - in a COPY option list, the boolean spellings `on`/`off` become `true`/`false`
//!   (pgbench's `WITH (FREEZE ON)`).

use sqlparser::tokenizer::{Token, TokenWithSpan};

/// The placeholder standing for `CURRENT OF cursor`.
pub(super) const CURRENT_OF: &str = "$current_of";

pub(super) fn rewrite(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let tokens = table_statement(tokens);
    let tokens = copy_booleans(tokens);
    current_of(tokens)
}

fn copy_booleans(mut tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let Some(first) = first_significant(&tokens) else {
        return tokens;
    };
    if !is_word(&tokens[first].token, "copy") {
        return tokens;
    }
    // Only in the option list, after the top-level FROM/TO (a `COPY (query)` has its
    // own FROMs one level down): a bare on/off directly after an option name.
    let mut depth = 0usize;
    let mut prev_word = false;
    let mut options = false;
    for t in tokens.iter_mut() {
        match &t.token {
            Token::Whitespace(_) => continue,
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 && (is_word(&t.token, "from") || is_word(&t.token, "to")) {
            options = true;
        }
        let value = if !options {
            None
        } else if depth == 1 && prev_word && is_word(&t.token, "on") {
            Some("TRUE")
        } else if depth == 1 && prev_word && is_word(&t.token, "off") {
            Some("FALSE")
        } else {
            None
        };
        prev_word = matches!(t.token, Token::Word(_)) && value.is_none();
        if let Some(v) = value {
            t.token = Token::make_keyword(v);
        }
    }
    tokens
}

fn is_word(token: &Token, keyword: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword))
}

/// Index of the first token that is not whitespace.
fn first_significant(tokens: &[TokenWithSpan]) -> Option<usize> {
    tokens
        .iter()
        .position(|t| !matches!(t.token, Token::Whitespace(_)))
}

fn table_statement(mut tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let Some(i) = first_significant(&tokens) else {
        return tokens;
    };
    if !is_word(&tokens[i].token, "table") {
        return tokens;
    }
    let span = tokens[i].span;
    let with = |token| TokenWithSpan { token, span };
    let replacement = [
        with(Token::make_keyword("SELECT")),
        with(Token::Whitespace(sqlparser::tokenizer::Whitespace::Space)),
        with(Token::Mul),
        with(Token::Whitespace(sqlparser::tokenizer::Whitespace::Space)),
        with(Token::make_keyword("FROM")),
    ];
    tokens.splice(i..=i, replacement);
    tokens
}

fn current_of(mut tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let Some(first) = first_significant(&tokens) else {
        return tokens;
    };
    if !["update", "delete", "with"]
        .iter()
        .any(|w| is_word(&tokens[first].token, w))
    {
        return tokens;
    }
    // Positions of the significant tokens, with their parenthesis depth.
    let mut significant = Vec::new();
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate() {
        match t.token {
            Token::Whitespace(_) => continue,
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
        significant.push((i, depth));
    }
    let found = significant.windows(4).find(|w| {
        w.iter().all(|&(_, d)| d == 0)
            && is_word(&tokens[w[0].0].token, "where")
            && is_word(&tokens[w[1].0].token, "current")
            && is_word(&tokens[w[2].0].token, "of")
            && matches!(tokens[w[3].0].token, Token::Word(_))
    });
    let Some(window) = found else {
        return tokens;
    };
    let (start, end) = (window[1].0, window[3].0);
    let span = tokens[start].span;
    tokens.splice(
        start..=end,
        [TokenWithSpan {
            token: Token::Placeholder(CURRENT_OF.to_string()),
            span,
        }],
    );
    tokens
}
