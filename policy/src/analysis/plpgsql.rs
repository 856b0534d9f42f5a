//! PL/pgSQL code (`DO` blocks, function bodies) read with PostgreSQL's own PL/pgSQL
//! parser: every SQL statement and expression in it, analysed as the SQL it is.
//!
//! Dynamic SQL (`EXECUTE` of a string built at run time) cannot be read; the expression
//! that builds the string is (it may read columns), and the statement keeps the `Do` or
//! `Call` operation that marks code the proxy cannot see.

use serde_json::Value;

use super::StatementInfo;

/// Code to read.
#[derive(Clone, Copy)]
pub(super) enum Code<'a> {
    /// The code of a `DO` block.
    DoBlock(&'a str),
    /// A whole `CREATE FUNCTION … LANGUAGE plpgsql` statement (the parser needs its
    /// signature: parameters are variables, the return type decides what RETURN takes).
    Function(&'a str),
    /// A `LANGUAGE sql` body.
    Sql(&'a str),
}

/// How the PL/pgSQL parser marks each embedded text (`RawParseMode`).
const SQL_STATEMENT: i64 = 0;
const EXPRESSION: i64 = 2;

/// What reading the code found.
pub(super) struct ReadCode {
    /// The statements it runs and the expressions it evaluates (each as `SELECT expr`).
    pub statements: Vec<StatementInfo>,
    /// It runs dynamic SQL: statements built at run time, which no reading can see.
    pub dynamic: bool,
}

/// PL/pgSQL statements that run a string as SQL (`EXECUTE`, `FOR … IN EXECUTE`), and
/// the key under which `OPEN … FOR EXECUTE` and `RETURN QUERY EXECUTE` keep that string.
const DYNAMIC_STATEMENTS: &[&str] = &["PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors"];
const DYNAMIC_QUERY: &str = "dynquery";

/// Reads the code: every statement and expression in it, and whether it runs dynamic SQL.
pub(super) fn read(code: Code<'_>) -> Result<ReadCode, String> {
    let definition = match code {
        Code::DoBlock(body) => wrap_do_block(body),
        Code::Function(definition) => definition.to_string(),
        Code::Sql(sql) => {
            return super::analyze(sql)
                .map(|statements| ReadCode {
                    statements,
                    dynamic: false,
                })
                .map_err(|e| e.message);
        }
    };
    let tree = pg_query::parse_plpgsql(&definition)
        .map_err(|e| format!("cannot read the PL/pgSQL code: {e}"))?;
    let mut texts = Vec::new();
    let mut dynamic = false;
    collect(&tree, &mut texts, &mut dynamic);
    let mut infos = Vec::new();
    for (mode, text) in texts {
        let sql = match mode {
            SQL_STATEMENT => text,
            EXPRESSION => format!("SELECT {text}"),
            // Assignments: `target := expression` (or `=`).
            _ => match assignment_value(&text) {
                Some(value) => format!("SELECT {value}"),
                None => return Err(format!("cannot read the PL/pgSQL assignment {text:?}")),
            },
        };
        let statements = super::analyze(&sql)
            .map_err(|e| format!("cannot read PL/pgSQL's {sql:?}: {}", e.message))?;
        infos.extend(statements);
    }
    Ok(ReadCode {
        statements: infos,
        dynamic,
    })
}

/// A `DO` body as the function the PL/pgSQL parser reads (a DO block is compiled as a
/// function returning void).
fn wrap_do_block(body: &str) -> String {
    let mut tag = String::from("palisade");
    while body.contains(&format!("${tag}$")) {
        tag.push('_');
    }
    format!(
        "CREATE FUNCTION palisade_do_block() RETURNS void LANGUAGE plpgsql AS ${tag}${body}${tag}$"
    )
}

/// Every `PLpgSQL_expr` in the tree: its parse mode and text; `dynamic` is set when the
/// code runs a string as SQL.
fn collect(value: &Value, out: &mut Vec<(i64, String)>, dynamic: &mut bool) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if DYNAMIC_STATEMENTS.contains(&key.as_str())
                    || (key == DYNAMIC_QUERY && !inner.is_null())
                {
                    *dynamic = true;
                }
                if key == "PLpgSQL_expr" {
                    if let Some(query) = inner.get("query").and_then(Value::as_str) {
                        let mode = inner.get("parseMode").and_then(Value::as_i64).unwrap_or(0);
                        out.push((mode, query.to_string()));
                    }
                } else {
                    collect(inner, out, dynamic);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, out, dynamic)),
        _ => {}
    }
}

/// The value side of `target := value` / `target = value`.
fn assignment_value(text: &str) -> Option<&str> {
    if let Some((_, value)) = text.split_once(":=") {
        return Some(value);
    }
    text.split_once('=').map(|(_, value)| value)
}
