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

/// The statements the code runs and the expressions it evaluates (each as `SELECT expr`).
pub(super) fn statements(code: Code<'_>) -> Result<Vec<StatementInfo>, String> {
    let definition = match code {
        Code::DoBlock(body) => wrap_do_block(body),
        Code::Function(definition) => definition.to_string(),
        Code::Sql(sql) => return super::analyze(sql).map_err(|e| e.message),
    };
    let tree = pg_query::parse_plpgsql(&definition)
        .map_err(|e| format!("cannot read the PL/pgSQL code: {e}"))?;
    let mut texts = Vec::new();
    collect(&tree, &mut texts);
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
    Ok(infos)
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

/// Every `PLpgSQL_expr` in the tree: its parse mode and text.
fn collect(value: &Value, out: &mut Vec<(i64, String)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "PLpgSQL_expr" {
                    if let Some(query) = inner.get("query").and_then(Value::as_str) {
                        let mode = inner.get("parseMode").and_then(Value::as_i64).unwrap_or(0);
                        out.push((mode, query.to_string()));
                    }
                } else {
                    collect(inner, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
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
