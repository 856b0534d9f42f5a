//! Parsing with PostgreSQL's own grammar (libpg_query: the server's parser compiled in),
//! under the session's lexer settings, so that every literal, comment and statement
//! boundary is where the server will find it.

use pg_query::protobuf::ParseResult;

use super::{FailureKind, ParseFailure};
use crate::dialect::SqlDialect;

/// Stack for the parse, decode, walk and drop of one tree. libpg_query bounds how deep a
/// tree gets by the stack it finds below the call (up to 2 MiB of its own, as the server
/// sizes max_stack_depth: about a thousand levels of `1+1+…`); decoding, walking and
/// dropping the tree then recurse a few frames per level (larger in a debug build). A
/// thread with less than this left runs the analysis on a fresh stack instead, where
/// libpg_query, not finding its thread's stack, keeps to its 100 kB minimum: shallower
/// trees, refused as "stack depth limit exceeded" (and judged by onParseError) past that.
/// The sidecar's threads are sized to stay on their own stacks.
const RED_ZONE: usize = if cfg!(debug_assertions) { 48 } else { 6 } * 1024 * 1024;
const FRESH_STACK: usize = if cfg!(debug_assertions) { 64 } else { 16 } * 1024 * 1024;

/// Parses `sql` and hands the tree to `analyse`, on a stack deep enough for both.
pub(crate) fn with_tree<T>(
    sql: &str,
    dialect: &SqlDialect,
    analyse: impl FnOnce(&ParseResult) -> Result<T, ParseFailure>,
) -> Result<T, ParseFailure> {
    stacker::maybe_grow(RED_ZONE, FRESH_STACK, || {
        let tree = parse(sql, dialect)?;
        analyse(&tree.protobuf)
    })
}

fn parse(sql: &str, dialect: &SqlDialect) -> Result<pg_query::ParseResult, ParseFailure> {
    if sql.contains('\0') {
        // The server ends a query string at its first NUL; the wire protocol never sends one.
        return Err(ParseFailure::unanalysable(
            "statement text contains a NUL byte",
        ));
    }
    pg_query::parse(sql, options(dialect)).map_err(failure)
}

/// libpg_query's options for the session's `standard_conforming_strings` and
/// `backslash_quote`.
pub(crate) fn options(dialect: &SqlDialect) -> pg_query::ParserOptions {
    let mut options = pg_query::ParserOptions::DEFAULT;
    if !dialect.standard_conforming_strings {
        options |= pg_query::ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS;
    }
    if !dialect.backslash_quote_allowed() {
        options |= pg_query::ParserOptions::DISABLE_BACKSLASH_QUOTE;
    }
    options
}

fn failure(error: pg_query::Error) -> ParseFailure {
    match error {
        // The parser's own limits (its stack, bison's "memory exhausted", its protobuf
        // writer's nesting bound) are not the server's grammar: a server with another
        // max_stack_depth may parse the text.
        pg_query::Error::Parse(message) if !is_parser_limit(&message) => ParseFailure {
            message,
            kind: FailureKind::Syntax,
        },
        other => ParseFailure {
            message: format!("the parser gave up: {other}"),
            kind: FailureKind::Unanalysable,
        },
    }
}

fn is_parser_limit(message: &str) -> bool {
    ["stack depth", "memory exhausted", "nested too deeply"]
        .iter()
        .any(|limit| message.contains(limit))
}
