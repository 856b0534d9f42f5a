//! SQL analysis: what a statement does, read off its syntax tree. Plain Rust, no I/O.
//!
//! The proxy decides on these facts, so the rule is *fail closed*: anything the parser
//! cannot read, or reads as something other than PostgreSQL, is a [`ParseFailure`] (the
//! policy's `onParseError` then applies), and statements that run code the proxy cannot
//! see (`DO`, `CALL`, `EXECUTE`, function calls) are reported as such, never as harmless.

use std::collections::BTreeSet;

use crate::dialect::SqlDialect;
use crate::model::Operation;

mod classify;
mod columns;
mod ddl;
mod dml;
mod facts;
mod names;
mod parse;
mod plpgsql;
mod query;
mod redact;
mod scope;
mod search_path;
mod walker;
mod where_clause;

pub(crate) use parse::with_tree;
pub use redact::{fingerprint, normalize};

#[cfg(test)]
mod provenance_tests;
#[cfg(test)]
mod tests;

/// A table, view or other relation as the statement names it. Identifiers are
/// normalised as PostgreSQL does: unquoted ones folded to lower case, quoted ones kept.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelationName {
    /// `None` when the statement did not qualify the name; the session's `search_path`
    /// decides which schema it is.
    pub schema: Option<String>,
    pub name: String,
}

/// A column a statement references.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ColumnName {
    /// The relation the column belongs to, when the statement makes that certain (a
    /// qualifier, an alias, or a single relation in scope). `None`: any relation of the
    /// statement may own it.
    pub relation: Option<RelationName>,
    /// The column name, or `*` for a wildcard (`*`, `t.*`) or a whole-row reference.
    pub column: String,
}

/// How a statement changes the session's `search_path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchPathChange {
    /// `SET [SESSION | LOCAL] search_path = a, b` (schemas normalised; `"$user"` kept as is).
    Set { schemas: Vec<String>, local: bool },
    /// `RESET search_path`, `RESET ALL`, `DISCARD ALL`, `SET search_path TO DEFAULT`.
    Reset,
    /// Something may have changed it in a way the text does not show
    /// (`set_config('search_path', …)`, a `DO` block, a procedure call).
    Unknown,
}

/// What one statement does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatementInfo {
    /// Every operation the statement performs, including those of data-modifying CTEs
    /// (`WITH d AS (DELETE …) SELECT …` is both Select and Delete) and of the statement
    /// inside `EXPLAIN ANALYZE`, `PREPARE … AS`, `CREATE TABLE … AS`, `COPY (query)`.
    pub operations: BTreeSet<Operation>,
    /// Relations read (FROM, JOIN, subqueries, CTE bodies, `COPY … TO`, `INSERT … SELECT` sources).
    pub read: BTreeSet<RelationName>,
    /// Relations written (INSERT/UPDATE/DELETE/MERGE/TRUNCATE targets, `COPY … FROM`,
    /// created, altered or dropped relations).
    pub written: BTreeSet<RelationName>,
    /// Columns referenced anywhere (select list, predicates, joins, ordering, grouping,
    /// assignments, RETURNING).
    pub columns: BTreeSet<ColumnName>,
    /// Functions called, lower-cased, schema-qualified when written so (`pg_catalog.set_config`).
    pub functions: BTreeSet<String>,
    /// True for an UPDATE or DELETE (also inside a CTE) without an effective WHERE:
    /// none at all, or a tautology (`true`, `1=1`, `'a'='a'`, `x = x`, `… OR true`,
    /// `NOT false`, `x IS NOT NULL OR x IS NULL`). `WHERE CURRENT OF cursor` is effective.
    pub without_where: bool,
    pub search_path: Option<SearchPathChange>,
    /// The result columns, in order: of the query, of RETURNING, of the cursor a DECLARE
    /// defines or the statement a PREPARE defines. Empty for statements without rows.
    pub outputs: Vec<OutputColumn>,
    /// Columns in predicates: WHERE, JOIN conditions, GROUP BY, HAVING, ORDER BY, DISTINCT
    /// ON, window definitions — where a value can be guessed at without being returned.
    pub predicate_columns: BTreeSet<ColumnName>,
    /// Columns whose values the statement writes somewhere the proxy never sees them
    /// again: `INSERT … SELECT`, `CREATE TABLE … AS`, `SELECT INTO`, UPDATE/MERGE values,
    /// `COPY … TO` a file or program.
    pub copied_columns: BTreeSet<ColumnName>,
    /// `COPY … TO STDOUT`: the columns sent to the client as COPY data, and whether they
    /// come from a query (`COPY (SELECT …)`) rather than a table.
    pub copy_out: Option<CopyOut>,
    /// A cursor (DECLARE) or prepared statement (PREPARE) this statement defines, whose
    /// rows a later FETCH or EXECUTE returns with `outputs` as their provenance.
    pub defines: Option<Named>,
    /// The cursor a FETCH reads or the prepared statement an EXECUTE runs.
    pub uses: Option<Named>,
    /// Why some code the statement runs or defines cannot be read: dynamic SQL (`EXECUTE`
    /// of a string built at run time), a body the parser cannot read, another language.
    /// What that code reads and where it sends values are unknown.
    pub opaque_code: Option<String>,
    /// Relations the statement attaches code to that runs later, out of the proxy's sight,
    /// on their rows: triggers, rules, row-level security policies.
    pub hooks: BTreeSet<RelationName>,
}

/// One result column, traced to what its values are read or computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputColumn {
    /// The column's name, when the text gives it.
    pub name: Option<String>,
    /// The columns its value comes from: the column itself for a plain reference, every
    /// column read for a computed one (`relation.*` for whole rows).
    pub sources: Vec<ColumnName>,
    /// A value computed from `sources` (expression, cast, aggregate, whole row …) rather
    /// than one of them unchanged.
    pub computed: bool,
    /// `Some` for an expansion of `*` whose width the text does not show; the relation
    /// when it is all of one table or view.
    pub star: Option<Option<RelationName>>,
}

/// What `COPY … TO STDOUT` sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyOut {
    pub columns: Vec<ColumnName>,
    pub from_query: bool,
}

/// A session-level name a statement defines or uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Named {
    Cursor(String),
    Prepared(String),
}

/// Text the analysis cannot judge.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseFailure {
    pub message: String,
    pub kind: FailureKind,
}

/// Why a text could not be judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// PostgreSQL's grammar rejects it: a server whose grammar the parser covers rejects
    /// it too, before running any of it.
    Syntax,
    /// It parses, but the analysis cannot say what it does (or the parser gave up for a
    /// limit of its own, which a server need not share).
    Unanalysable,
}

impl ParseFailure {
    pub fn unanalysable(message: impl Into<String>) -> ParseFailure {
        ParseFailure {
            message: message.into(),
            kind: FailureKind::Unanalysable,
        }
    }

    /// Whether the server's own grammar rejects the text.
    pub fn is_syntax_error(&self) -> bool {
        self.kind == FailureKind::Syntax
    }
}

/// Analyses every statement of `sql` (a simple-protocol message may hold several,
/// separated by `;`) as a session with the default lexer settings reads it. Empty
/// statements are skipped; an empty text gives an empty list.
pub fn analyze(sql: &str) -> Result<Vec<StatementInfo>, ParseFailure> {
    analyze_with(sql, &SqlDialect::default())
}

/// Analyses `sql` as a session with `dialect`'s lexer settings reads it
/// (`standard_conforming_strings`, `backslash_quote`).
pub fn analyze_with(sql: &str, dialect: &SqlDialect) -> Result<Vec<StatementInfo>, ParseFailure> {
    parse::with_tree(sql, dialect, |tree| {
        tree.stmts
            .iter()
            .filter_map(|raw| raw.stmt.as_deref())
            .map(statement)
            .collect()
    })
}

/// Analyses one parsed statement: the walk (relations, columns, WHERE, by scope), then
/// the code of `DO` blocks and function bodies.
fn statement(node: &pg_query::protobuf::Node) -> Result<StatementInfo, ParseFailure> {
    let mut facts = facts::Facts::default();
    let shape = walker::Walker { facts: &mut facts }.statement(node, None);
    facts.info.outputs = shape.outputs();
    facts.finish()
}
