//! Parsing one statement's tokens with sqlparser's PostgreSQL dialect.

use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan};

use super::ParseFailure;

/// Subqueries nest about two dozen deep within sqlparser's default limit of 50. The
/// parser grows its stack on the heap for expressions, queries and FROM items, and
/// statements nested in statements are parsed on a stack of their own (see
/// `depth::nests_statements`), so a higher limit is safe.
const RECURSION_LIMIT: usize = 100;

/// The single statement `tokens` hold (no `;`), or the parser's complaint.
pub(super) fn statement(tokens: Vec<TokenWithSpan>) -> Result<Statement, ParseFailure> {
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(tokens);
    let statement = parser.parse_statement().map_err(failure)?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return parser.expected("end of statement", next).map_err(failure);
    }
    Ok(statement)
}

fn failure(error: sqlparser::parser::ParserError) -> ParseFailure {
    ParseFailure {
        message: error.to_string(),
    }
}
