//! The last pass over a statement's whole tree, with sqlparser's derived visitor (which
//! reaches every node): it collects every function call, and analyses anything the walk
//! did not reach (a statement or query nested somewhere unexpected, a table referenced
//! outside any query), so that nothing in the tree goes unreported.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Query, Statement, TableFactor, Visit, Visitor};

use super::facts::Facts;
use super::names;
use super::query::QueryKind;
use super::walker::Walker;

pub(super) fn sweep(statement: &Statement, facts: &mut Facts) {
    let _ = statement.visit(&mut Sweep { facts });
}

struct Sweep<'f> {
    facts: &'f mut Facts,
}

impl Sweep<'_> {
    fn function(&mut self, name: &sqlparser::ast::ObjectName) {
        // ROW(…) and ARRAY(subquery) are constructors; they call nothing.
        if let [part] = name.0.as_slice()
            && part
                .as_ident()
                .is_some_and(|id| names::is_keyword(id, "row") || names::is_keyword(id, "array"))
        {
            return;
        }
        self.facts.function(names::function(name));
    }
}

impl Visitor for Sweep<'_> {
    type Break = ();

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        if !self.facts.is_marked_statement(statement) {
            Walker { facts: self.facts }.statement(statement, None);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if !self.facts.is_marked_query(query) {
            Walker { facts: self.facts }.query(query, None, QueryKind::Subquery);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => self.function(name),
            TableFactor::UNNEST { .. } => self.facts.function("unnest".into()),
            _ => {}
        }
        if self.facts.mark_factor(factor)
            && let TableFactor::Table {
                name, args: None, ..
            } = factor
        {
            match names::relation(name) {
                Ok(relation) => self.facts.read(relation),
                Err(message) => self.facts.fail(message),
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        let special = match expr {
            Expr::Function(function) => {
                self.function(&function.name);
                None
            }
            // Functions with special syntax.
            Expr::Ceil { .. } => Some("ceil"),
            Expr::Floor { .. } => Some("floor"),
            Expr::Position { .. } => Some("position"),
            Expr::Substring { .. } => Some("substring"),
            Expr::Trim { .. } => Some("trim"),
            Expr::Overlay { .. } => Some("overlay"),
            Expr::Extract { .. } => Some("extract"),
            _ => None,
        };
        if let Some(name) = special {
            self.facts.function(name.into());
        }
        ControlFlow::Continue(())
    }
}
