//! Tokenising the text exactly as the server will, or refusing to.
//!
//! Places where sqlparser's PostgreSQL tokenizer and the server could disagree about where
//! a statement ends are closed here:
//! - psql-style inline `COPY ... FROM STDIN` data: sqlparser would swallow the lines after
//!   such a statement as data, the server (which takes COPY data in CopyData messages)
//!   runs them as SQL. The tokenizer runs with that capture off;
//! - backslashes in plain `'...'` strings: their meaning depends on the session's
//!   `standard_conforming_strings`, which a client can turn off. Text that splits into
//!   different tokens under the two settings is refused;
//! - token kinds the server lexes differently (`b"x"`, non-hex `X'..'`) are refused.

use std::any::TypeId;
use std::iter::Peekable;
use std::str::Chars;

use sqlparser::dialect::{Dialect, PostgreSqlDialect};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use super::ParseFailure;

/// PostgreSQL as far as the tokenizer asks (these are all the dialect methods sqlparser
/// 0.64's tokenizer calls), keeping PostgreSQL's type identity for its `dialect_of!`
/// checks, with inline COPY data off and, optionally, backslash escapes in plain strings.
/// Only ever used to tokenise: statements are parsed with [`PostgreSqlDialect`] itself.
#[derive(Debug)]
struct TokenDialect {
    backslash_escapes: bool,
}

const PG: PostgreSqlDialect = PostgreSqlDialect {};

impl Dialect for TokenDialect {
    fn dialect(&self) -> TypeId {
        PG.dialect()
    }
    fn supports_copy_from_stdin_data(&self) -> bool {
        false
    }
    fn supports_string_literal_backslash_escape(&self) -> bool {
        self.backslash_escapes
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        PG.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        PG.is_identifier_part(ch)
    }
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        PG.is_delimited_identifier_start(ch)
    }
    fn is_nested_delimited_identifier_start(&self, ch: char) -> bool {
        PG.is_nested_delimited_identifier_start(ch)
    }
    fn peek_nested_delimited_identifier_quotes(
        &self,
        chars: Peekable<Chars<'_>>,
    ) -> Option<(char, Option<char>)> {
        PG.peek_nested_delimited_identifier_quotes(chars)
    }
    fn is_custom_operator_part(&self, ch: char) -> bool {
        PG.is_custom_operator_part(ch)
    }
    fn ignores_wildcard_escapes(&self) -> bool {
        PG.ignores_wildcard_escapes()
    }
    fn requires_hash_comment_space(&self) -> bool {
        PG.requires_hash_comment_space()
    }
    fn requires_single_line_comment_whitespace(&self) -> bool {
        PG.requires_single_line_comment_whitespace()
    }
    fn supports_dollar_as_money_prefix(&self) -> bool {
        PG.supports_dollar_as_money_prefix()
    }
    fn supports_dollar_placeholder(&self) -> bool {
        PG.supports_dollar_placeholder()
    }
    fn supports_geometric_types(&self) -> bool {
        PG.supports_geometric_types()
    }
    fn supports_hash_comment(&self) -> bool {
        PG.supports_hash_comment()
    }
    fn supports_literal_prefix_in_qualified_name(&self) -> bool {
        PG.supports_literal_prefix_in_qualified_name()
    }
    fn supports_multiline_comment_hints(&self) -> bool {
        PG.supports_multiline_comment_hints()
    }
    fn supports_national_string_literal(&self) -> bool {
        PG.supports_national_string_literal()
    }
    fn supports_nested_comments(&self) -> bool {
        PG.supports_nested_comments()
    }
    fn supports_non_decimal_integer_literals(&self) -> bool {
        PG.supports_non_decimal_integer_literals()
    }
    fn supports_numeric_literal_underscores(&self) -> bool {
        PG.supports_numeric_literal_underscores()
    }
    fn supports_numeric_prefix(&self) -> bool {
        PG.supports_numeric_prefix()
    }
    fn supports_pipe_operator(&self) -> bool {
        PG.supports_pipe_operator()
    }
    fn supports_quote_delimited_string(&self) -> bool {
        PG.supports_quote_delimited_string()
    }
    fn supports_string_escape_constant(&self) -> bool {
        PG.supports_string_escape_constant()
    }
    fn supports_tilde_like_match_operator(&self) -> bool {
        PG.supports_tilde_like_match_operator()
    }
    fn supports_triple_quoted_string(&self) -> bool {
        PG.supports_triple_quoted_string()
    }
    fn supports_tuple_element_access(&self) -> bool {
        PG.supports_tuple_element_access()
    }
    fn supports_unicode_string_literal(&self) -> bool {
        PG.supports_unicode_string_literal()
    }
    fn supports_unterminated_block_comments(&self) -> bool {
        PG.supports_unterminated_block_comments()
    }
}

static WIRE: TokenDialect = TokenDialect {
    backslash_escapes: false,
};
static BACKSLASH: TokenDialect = TokenDialect {
    backslash_escapes: true,
};

/// The tokens of `sql`, whitespace and comments included.
pub(super) fn tokenize(sql: &str) -> Result<Vec<TokenWithSpan>, ParseFailure> {
    let tokens = Tokenizer::new(&WIRE, sql)
        .tokenize_with_location()
        .map_err(|e| ParseFailure {
            message: format!("sql parser error: {e}"),
        })?;
    for token in &tokens {
        check_token(&token.token)?;
    }
    check_unicode_identifiers(&tokens)?;
    if sql.contains('\\') {
        check_backslashes(sql, &tokens)?;
    }
    Ok(tokens)
}

fn refuse(message: &str) -> Result<(), ParseFailure> {
    Err(ParseFailure {
        message: message.to_string(),
    })
}

/// Refuses tokens the server would read differently.
fn check_token(token: &Token) -> Result<(), ParseFailure> {
    match token {
        // The server reads X'...' without escapes, and rejects anything but hex digits.
        Token::HexStringLiteral(s) if !s.chars().all(|c| c.is_ascii_hexdigit()) => {
            refuse("invalid hexadecimal bit-string literal")
        }
        Token::SingleQuotedByteStringLiteral(s) if !s.chars().all(|c| c == '0' || c == '1') => {
            refuse("invalid binary bit-string literal")
        }
        // `b"x"` is an identifier followed by a quoted identifier to the server.
        Token::DoubleQuotedByteStringLiteral(_)
        | Token::TripleSingleQuotedByteStringLiteral(_)
        | Token::TripleDoubleQuotedByteStringLiteral(_)
        | Token::SingleQuotedRawStringLiteral(_)
        | Token::DoubleQuotedRawStringLiteral(_)
        | Token::TripleSingleQuotedRawStringLiteral(_)
        | Token::TripleDoubleQuotedRawStringLiteral(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::QuoteDelimitedStringLiteral(_)
        | Token::NationalQuoteDelimitedStringLiteral(_)
        | Token::CopyData { .. } => refuse("string literal syntax PostgreSQL does not have"),
        _ => Ok(()),
    }
}

/// Refuses `U&"…"` identifiers: the server decodes their escapes (`U&"ss\006e"` is
/// `ssn`), sqlparser reads `U & "…"`.
fn check_unicode_identifiers(tokens: &[TokenWithSpan]) -> Result<(), ParseFailure> {
    let unicode_identifier = tokens.windows(3).any(|w| {
        matches!(&w[0].token, Token::Word(u) if u.quote_style.is_none() && u.value.eq_ignore_ascii_case("u"))
            && w[1].token == Token::Ampersand
            && matches!(&w[2].token, Token::Word(q) if q.quote_style == Some('"'))
            && w[0].span.end == w[1].span.start
            && w[1].span.end == w[2].span.start
    });
    if unicode_identifier {
        refuse("Unicode-escaped identifiers (U&\"…\") are not supported")
    } else {
        Ok(())
    }
}

/// Refuses text whose statement boundaries depend on `standard_conforming_strings`.
fn check_backslashes(sql: &str, tokens: &[TokenWithSpan]) -> Result<(), ParseFailure> {
    // Text the server could not even tokenise with escapes on is rejected there whole.
    let Ok(other) = Tokenizer::new(&BACKSLASH, sql).tokenize_with_location() else {
        return Ok(());
    };
    let same = other.len() == tokens.len()
        && other.iter().zip(tokens).all(|(a, b)| {
            a.span == b.span && std::mem::discriminant(&a.token) == std::mem::discriminant(&b.token)
        });
    if same {
        Ok(())
    } else {
        refuse(
            "a string literal with a backslash reads differently when \
             standard_conforming_strings is off; write it as E'...' or $$...$$",
        )
    }
}

#[cfg(test)]
pub(super) fn same_tokens_as_postgres(sql: &str) -> bool {
    let ours = Tokenizer::new(&WIRE, sql).tokenize_with_location();
    let theirs = Tokenizer::new(&PG, sql).tokenize_with_location();
    match (ours, theirs) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => true,
        _ => false,
    }
}
