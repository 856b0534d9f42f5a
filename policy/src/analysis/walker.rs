//! The walk over one statement's syntax tree, shared by the per-construct files
//! (`classify`, `query`, `dml`, `ddl`, `columns`).

use sqlparser::ast::{Ident, ObjectName};

use super::facts::Facts;
use super::{ColumnName, RelationName, names};

pub(super) struct Walker<'f> {
    pub facts: &'f mut Facts,
}

impl Walker<'_> {
    /// `name` as a relation; one that cannot be (too many dots, a computed name) fails
    /// the statement.
    pub fn relation(&mut self, name: &ObjectName) -> Option<RelationName> {
        match names::relation(name) {
            Ok(relation) => Some(relation),
            Err(message) => {
                self.facts.fail(message);
                None
            }
        }
    }

    pub fn read(&mut self, name: &ObjectName) -> Option<RelationName> {
        let relation = self.relation(name)?;
        self.facts.read(relation.clone());
        Some(relation)
    }

    pub fn write(&mut self, name: &ObjectName) -> Option<RelationName> {
        let relation = self.relation(name)?;
        self.facts.write(relation.clone());
        Some(relation)
    }

    pub fn write_all<'n>(&mut self, names: impl IntoIterator<Item = &'n ObjectName>) {
        for name in names {
            self.write(name);
        }
    }

    /// Records `relation.column` for each column identifier.
    pub fn columns_of<'i>(
        &mut self,
        relation: &RelationName,
        columns: impl IntoIterator<Item = &'i Ident>,
    ) {
        for column in columns {
            self.facts.column(ColumnName {
                relation: Some(relation.clone()),
                column: names::ident(column),
            });
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

    /// Fails the statement when `present`: `what` is syntax PostgreSQL does not have.
    pub fn reject(&mut self, present: bool, what: &str) {
        if present {
            self.facts.not_postgres(what);
        }
    }
}
