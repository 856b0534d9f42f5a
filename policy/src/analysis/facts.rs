//! What the analysis has learnt about one statement so far.

use super::{ColumnName, ParseFailure, RelationName, SearchPathChange, StatementInfo};
use crate::model::Operation;

#[derive(Default)]
pub(super) struct Facts {
    pub info: StatementInfo,
    /// The first reason the statement is not analysable; the statement then fails as a whole.
    error: Option<ParseFailure>,
    /// Open captures: every column recorded while one is open is also added to it.
    captures: Vec<Vec<ColumnName>>,
    /// Above zero while walking a predicate (WHERE, JOIN, GROUP BY, HAVING, ORDER BY …).
    predicate: usize,
}

impl Facts {
    pub fn op(&mut self, op: Operation) {
        self.info.operations.insert(op);
    }

    pub fn read(&mut self, relation: RelationName) {
        self.info.read.insert(relation);
    }

    pub fn write(&mut self, relation: RelationName) {
        self.info.written.insert(relation);
    }

    pub fn column(&mut self, column: ColumnName) {
        for capture in &mut self.captures {
            capture.push(column.clone());
        }
        if self.predicate > 0 {
            self.info.predicate_columns.insert(column.clone());
        }
        self.info.columns.insert(column);
    }

    pub fn open_capture(&mut self) {
        self.captures.push(Vec::new());
    }

    pub fn close_capture(&mut self) -> Vec<ColumnName> {
        self.captures.pop().unwrap_or_default()
    }

    pub fn enter_predicate(&mut self) {
        self.predicate += 1;
    }

    pub fn leave_predicate(&mut self) {
        self.predicate = self.predicate.saturating_sub(1);
    }

    /// Values of these columns are written somewhere the proxy cannot mask them.
    pub fn copied(&mut self, columns: impl IntoIterator<Item = ColumnName>) {
        self.info.copied_columns.extend(columns);
    }

    pub fn function(&mut self, name: String) {
        if super::names::is_set_config(&name) {
            self.search_path(SearchPathChange::Unknown);
        }
        self.info.functions.insert(name);
    }

    /// Code the statement runs or defines cannot be read; the first reason is kept.
    pub fn opaque_code(&mut self, why: impl Into<String>) {
        if self.info.opaque_code.is_none() {
            self.info.opaque_code = Some(why.into());
        }
    }

    /// Code attached to `relation` that runs later on its rows (trigger, rule, policy).
    pub fn hook(&mut self, relation: RelationName) {
        self.info.hooks.insert(relation);
    }

    pub fn without_where(&mut self) {
        self.info.without_where = true;
    }

    /// Records a search_path change; `Unknown` wins over anything the text spells out.
    pub fn search_path(&mut self, change: SearchPathChange) {
        match (&self.info.search_path, &change) {
            (Some(SearchPathChange::Unknown), _) => {}
            (Some(_), SearchPathChange::Unknown) | (None, _) => {
                self.info.search_path = Some(change);
            }
            (Some(_), _) => self.info.search_path = Some(SearchPathChange::Unknown),
        }
    }

    /// Folds in what a statement embedded in this one does (a `DO` block's or a function
    /// body's): its operations, relations, columns and calls are this statement's too,
    /// and every column it reads counts as copied out of reach.
    /// An embedded `SELECT` that reads no relation (`PERFORM 1`, an expression PL/pgSQL
    /// evaluates as `SELECT expr`) is not a read of anything.
    pub fn absorb(&mut self, mut embedded: StatementInfo) {
        if embedded.read.is_empty() {
            embedded.operations.remove(&Operation::Select);
        }
        self.info.operations.extend(embedded.operations);
        self.info.read.extend(embedded.read);
        self.info.written.extend(embedded.written);
        self.info
            .copied_columns
            .extend(embedded.columns.iter().cloned());
        self.info.copied_columns.extend(embedded.copied_columns);
        self.info
            .predicate_columns
            .extend(embedded.predicate_columns);
        self.info.columns.extend(embedded.columns);
        self.info.functions.extend(embedded.functions);
        if let Some(copy) = embedded.copy_out {
            self.info.copied_columns.extend(copy.columns);
        }
        if embedded.without_where {
            self.info.without_where = true;
        }
        if embedded.search_path.is_some() {
            self.search_path(SearchPathChange::Unknown);
        }
        if let Some(why) = embedded.opaque_code {
            self.opaque_code(why);
        }
        self.info.hooks.extend(embedded.hooks);
    }

    /// Marks the statement unanalysable; the first reason is the one reported.
    pub fn fail(&mut self, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(ParseFailure::unanalysable(message));
        }
    }

    pub fn finish(self) -> Result<StatementInfo, ParseFailure> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.info),
        }
    }
}
