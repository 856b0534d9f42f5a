//! What the analysis has learnt about one statement so far, and which parts of its tree
//! have been read, so that the final sweep can find anything the walk did not reach.

use std::collections::HashSet;

use sqlparser::ast::{Query, Statement, TableFactor};

use super::{ColumnName, ParseFailure, RelationName, SearchPathChange, StatementInfo};
use crate::model::Operation;

#[derive(Default)]
pub(super) struct Facts {
    pub info: StatementInfo,
    /// The first reason the statement is not analysable; the statement then fails as a whole.
    error: Option<ParseFailure>,
    /// Addresses of the statements and table references the walk has dealt with.
    statements: HashSet<usize>,
    queries: HashSet<usize>,
    factors: HashSet<usize>,
    /// Open captures: every column recorded while one is open is also added to it.
    captures: Vec<Vec<ColumnName>>,
    /// Above zero while walking a predicate (WHERE, JOIN, GROUP BY, HAVING, ORDER BY …).
    predicate: usize,
}

fn address<T>(node: &T) -> usize {
    std::ptr::from_ref(node) as usize
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

    /// Marks the statement unanalysable; the first reason is the one reported.
    pub fn fail(&mut self, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(ParseFailure {
                message: message.into(),
            });
        }
    }

    /// Reports `what` as syntax PostgreSQL does not have.
    pub fn not_postgres(&mut self, what: &str) {
        self.fail(format!("{what} is not PostgreSQL syntax"));
    }

    /// Records `statement` as analysed; false if it already was.
    pub fn mark_statement(&mut self, statement: &Statement) -> bool {
        self.statements.insert(address(statement))
    }

    pub fn is_marked_statement(&self, statement: &Statement) -> bool {
        self.statements.contains(&address(statement))
    }

    /// Records `query` as analysed.
    pub fn mark_query(&mut self, query: &Query) {
        self.queries.insert(address(query));
    }

    pub fn is_marked_query(&self, query: &Query) -> bool {
        self.queries.contains(&address(query))
    }

    /// Records `factor` as analysed; false if it already was.
    pub fn mark_factor(&mut self, factor: &TableFactor) -> bool {
        self.factors.insert(address(factor))
    }

    pub fn finish(self) -> Result<StatementInfo, ParseFailure> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.info),
        }
    }
}
