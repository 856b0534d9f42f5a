//! The walk over one statement's syntax tree, shared by the per-construct files
//! (`classify`, `query`, `dml`, `ddl`, `columns`).

use pg_query::protobuf::{Node, RangeVar};

use super::facts::Facts;
use super::{ColumnName, RelationName, names};

pub(super) struct Walker<'f> {
    pub facts: &'f mut Facts,
}

impl Walker<'_> {
    pub fn read(&mut self, range: &RangeVar) -> RelationName {
        let relation = names::relation(range);
        self.facts.read(relation.clone());
        relation
    }

    pub fn write(&mut self, range: &RangeVar) -> RelationName {
        let relation = names::relation(range);
        self.facts.write(relation.clone());
        relation
    }

    /// Writes a relation named by a list of `String` nodes.
    pub fn write_list(&mut self, name: &[Node]) -> Option<RelationName> {
        match names::relation_from_list(name) {
            Ok(relation) => {
                self.facts.write(relation.clone());
                Some(relation)
            }
            Err(message) => {
                self.facts.fail(message);
                None
            }
        }
    }

    /// Records `relation.column` for each column name (`String` nodes, or `IndexElem`s,
    /// `ResTarget`s that name a column).
    pub fn columns_of(&mut self, relation: &RelationName, columns: &[Node]) {
        for column in columns {
            if let Some(name) = column_name(column) {
                self.facts.column(ColumnName {
                    relation: Some(relation.clone()),
                    column: name.to_string(),
                });
            }
        }
    }

    /// Records `relation.*`: every column.
    pub fn all_columns(&mut self, relation: &RelationName) {
        self.facts.column(ColumnName {
            relation: Some(relation.clone()),
            column: "*".into(),
        });
    }

    /// Runs `walk` and returns every column it recorded.
    pub fn capture(&mut self, walk: impl FnOnce(&mut Self)) -> Vec<ColumnName> {
        self.facts.open_capture();
        walk(self);
        self.facts.close_capture()
    }

    /// Runs `walk` with what it records counted as predicate columns.
    pub fn predicate(&mut self, walk: impl FnOnce(&mut Self)) {
        self.facts.enter_predicate();
        walk(self);
        self.facts.leave_predicate();
    }
}

/// The column a name-list entry names: a `String`, or the `name` of a `ResTarget` (INSERT
/// column lists, SET targets), or an `IndexElem`'s column.
pub(super) fn column_name(node: &Node) -> Option<&str> {
    use pg_query::NodeEnum;
    match node.node.as_ref()? {
        NodeEnum::String(s) => Some(&s.sval),
        NodeEnum::ResTarget(t) if !t.name.is_empty() => Some(&t.name),
        NodeEnum::IndexElem(e) if !e.name.is_empty() => Some(&e.name),
        _ => None,
    }
}
