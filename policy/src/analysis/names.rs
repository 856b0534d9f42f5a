//! Names as PostgreSQL's parser hands them over. Its lexer has already folded unquoted
//! identifiers to lower case and cut every identifier to the server's 63-byte limit, so
//! the strings in the tree are the names the server resolves.

use pg_query::NodeEnum;
use pg_query::protobuf::{Node, RangeVar};

use super::RelationName;

/// A relation as a `RangeVar` names it (the database part is dropped: the server only
/// accepts the current database there).
pub(super) fn relation(range: &RangeVar) -> RelationName {
    RelationName {
        schema: (!range.schemaname.is_empty()).then(|| range.schemaname.clone()),
        name: range.relname.clone(),
    }
}

/// The strings of a name list (`String` nodes); `None` if one is something else (`*`).
pub(super) fn strings(nodes: &[Node]) -> Option<Vec<String>> {
    nodes
        .iter()
        .map(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

/// The value of a `String` node.
pub(super) fn string(node: &Node) -> Option<&str> {
    match &node.node {
        Some(NodeEnum::String(s)) => Some(&s.sval),
        _ => None,
    }
}

/// `name`, `schema.name` or `database.schema.name` as a relation.
pub(super) fn relation_from_parts(parts: &[String]) -> Result<RelationName, String> {
    match parts {
        [name] => Ok(RelationName {
            schema: None,
            name: name.clone(),
        }),
        [schema, name] | [_, schema, name] => Ok(RelationName {
            schema: Some(schema.clone()),
            name: name.clone(),
        }),
        _ => Err(format!(
            "improper qualified name (too many dotted names): {}",
            parts.join(".")
        )),
    }
}

/// A relation named by a list of `String` nodes (DROP, COMMENT, GRANT objects).
pub(super) fn relation_from_list(nodes: &[Node]) -> Result<RelationName, String> {
    let parts = strings(nodes).ok_or_else(|| "a name that is not an identifier".to_string())?;
    relation_from_parts(&parts)
}

/// A relation renamed or created next to `base`: an unqualified `name` lands in `base`'s
/// schema (the server puts indexes and renamed tables there).
pub(super) fn sibling(base: &RelationName, name: &str) -> RelationName {
    RelationName {
        schema: base.schema.clone(),
        name: name.to_string(),
    }
}

/// A function name as written, dotted: `pg_catalog.set_config`.
pub(super) fn function(parts: &[Node]) -> String {
    parts
        .iter()
        .filter_map(string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether a function name is `set_config` in any schema.
pub(super) fn is_set_config(function: &str) -> bool {
    function.rsplit('.').next() == Some("set_config")
}
