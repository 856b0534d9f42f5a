//! Identifiers as PostgreSQL reads them: unquoted ones folded to lower case, quoted ones
//! kept, all cut to the server's 63-byte limit (a longer name means its first 63 bytes).

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};

use super::RelationName;

/// `NAMEDATALEN - 1`: the server silently truncates longer identifiers.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// An identifier as the server resolves it.
pub(super) fn ident(id: &Ident) -> String {
    if id.quote_style.is_some() {
        truncate(&id.value)
    } else {
        truncate(&id.value.to_ascii_lowercase())
    }
}

/// Cuts `name` to 63 bytes at a character boundary, as the server does.
pub(super) fn truncate(name: &str) -> String {
    if name.len() <= MAX_IDENTIFIER_BYTES {
        return name.to_string();
    }
    let mut end = MAX_IDENTIFIER_BYTES;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// The parts of a dotted name, each normalised; `None` for a part that is not a plain
/// identifier (other dialects' computed names).
pub(super) fn parts(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(id) => Some(ident(id)),
            ObjectNamePart::Function(_) => None,
        })
        .collect()
}

/// `name`, `schema.name` or `database.schema.name` as a relation (the database part is
/// dropped: the server only accepts the current database there).
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

/// A relation named by `name`.
pub(super) fn relation(name: &ObjectName) -> Result<RelationName, String> {
    let parts = parts(name).ok_or_else(|| format!("{name} is not a PostgreSQL name"))?;
    relation_from_parts(&parts)
}

/// A relation renamed or created next to `base`: an unqualified `name` lands in `base`'s
/// schema (the server puts indexes and renamed tables there).
pub(super) fn sibling(base: &RelationName, name: &ObjectName) -> Result<RelationName, String> {
    let mut relation = relation(name)?;
    if relation.schema.is_none() {
        relation.schema.clone_from(&base.schema);
    }
    Ok(relation)
}

/// A function name as written, lower-cased and dotted: `pg_catalog.set_config`.
pub(super) fn function(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(id) => truncate(&id.value.to_lowercase()),
            ObjectNamePart::Function(f) => truncate(&f.name.value.to_lowercase()),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether a function name is `set_config` in any schema.
pub(super) fn is_set_config(function: &str) -> bool {
    function.rsplit('.').next() == Some("set_config")
}

/// Whether `id` is the unquoted keyword `word` (case-insensitive).
pub(super) fn is_keyword(id: &Ident, word: &str) -> bool {
    id.quote_style.is_none() && id.value.eq_ignore_ascii_case(word)
}
