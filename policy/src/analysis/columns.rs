//! Column references inside expressions, resolved against the query level they are in.
//! Expressions are traversed with sqlparser's derived visitor, so no kind of expression
//! is skipped; a subquery met on the way is handed back to the query walk with this level
//! as its outer scope.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    AccessExpr, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query, Statement, Visit,
    Visitor,
};

use super::ColumnName;
use super::names;
use super::query::QueryKind;
use super::scope::Scope;
use super::walker::Walker;

impl Walker<'_> {
    /// Records the columns, and walks the subqueries, of every expression in `node`.
    pub fn exprs<T: Visit + ?Sized>(&mut self, node: &T, scope: &Scope<'_>) {
        self.exprs_except(node, scope, &[]);
    }

    /// The JOIN conditions of a FROM clause (or UPDATE … FROM / DELETE … USING / MERGE),
    /// walked as predicates.
    pub fn join_conditions(&mut self, conditions: &[&Expr], scope: &Scope<'_>) {
        self.predicate(|w| {
            for condition in conditions {
                w.exprs(*condition, scope);
            }
        });
    }

    /// As [`Walker::exprs`], where a bare name in `aliases` is an output column (ORDER BY).
    pub fn exprs_except<T: Visit + ?Sized>(
        &mut self,
        node: &T,
        scope: &Scope<'_>,
        aliases: &[String],
    ) {
        let mut visitor = Exprs {
            walker: self,
            scope,
            nested: 0,
            ignore: HashSet::new(),
            aliases,
        };
        let _ = node.visit(&mut visitor);
    }
}

/// The columns `expr` reads when it is a plain column reference (possibly cast or in
/// parentheses), for a subquery's output shape; empty for anything computed.
pub(super) fn reference(expr: &Expr, scope: &Scope<'_>) -> Vec<ColumnName> {
    match expr {
        Expr::Identifier(id) if !names::is_keyword(id, "default") => {
            scope.resolve(&[names::ident(id)])
        }
        Expr::CompoundIdentifier(ids) => {
            let parts: Vec<String> = ids.iter().map(names::ident).collect();
            scope.resolve(&parts)
        }
        Expr::Nested(inner)
        | Expr::Cast { expr: inner, .. }
        | Expr::Collate { expr: inner, .. } => reference(inner, scope),
        _ => Vec::new(),
    }
}

/// The name parts of `expr` when it is a bare column reference (in parentheses at most):
/// the only outputs whose values are the stored column's, unchanged.
pub(super) fn plain_reference(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::Identifier(id) if !names::is_keyword(id, "default") => Some(vec![names::ident(id)]),
        Expr::CompoundIdentifier(ids) => Some(ids.iter().map(names::ident).collect()),
        Expr::Nested(inner) => plain_reference(inner),
        _ => None,
    }
}

/// The name the server gives an unaliased output column.
pub(super) fn output_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(id) => Some(names::ident(id)),
        Expr::CompoundIdentifier(ids) => ids.last().map(names::ident),
        Expr::Function(f) => names::parts(&f.name).and_then(|p| p.last().cloned()),
        Expr::Nested(inner)
        | Expr::Cast { expr: inner, .. }
        | Expr::Collate { expr: inner, .. } => output_name(inner),
        _ => None,
    }
}

struct Exprs<'a, 'f, 's, 'p> {
    walker: &'a mut Walker<'f>,
    scope: &'s Scope<'p>,
    /// Depth inside a subquery (walked separately) or a nested statement (left to the sweep).
    nested: usize,
    /// Expressions that look like column references but are not: field names after `.`,
    /// argument names in `f(name => value)`.
    ignore: HashSet<usize>,
    aliases: &'s [String],
}

fn address<T>(node: &T) -> usize {
    std::ptr::from_ref(node) as usize
}

impl Exprs<'_, '_, '_, '_> {
    fn emit(&mut self, columns: Vec<ColumnName>) {
        for column in columns {
            self.walker.facts.column(column);
        }
    }

    fn star_of(&mut self, qualifier: &sqlparser::ast::ObjectName) {
        let Some(parts) = names::parts(qualifier) else {
            self.walker.facts.not_postgres("a computed qualifier");
            return;
        };
        let columns = match self.scope.source(&parts) {
            Some(source) => source.star(),
            None => match names::relation_from_parts(&parts) {
                Ok(relation) => vec![ColumnName {
                    relation: Some(relation),
                    column: "*".into(),
                }],
                Err(message) => {
                    self.walker.facts.fail(message);
                    Vec::new()
                }
            },
        };
        self.emit(columns);
    }

    fn function_args(&mut self, args: &FunctionArguments) {
        let FunctionArguments::List(list) = args else {
            return;
        };
        for arg in &list.args {
            let value = match arg {
                FunctionArg::Named { arg, .. } => arg,
                FunctionArg::ExprNamed { name, arg, .. } => {
                    self.ignore.insert(address(name));
                    arg
                }
                FunctionArg::Unnamed(arg) => arg,
            };
            match value {
                FunctionArgExpr::QualifiedWildcard(qualifier) => self.star_of(qualifier),
                // count(*) reads rows, not columns.
                FunctionArgExpr::Wildcard
                | FunctionArgExpr::WildcardWithOptions(_)
                | FunctionArgExpr::Expr(_) => {}
            }
        }
    }
}

impl Visitor for Exprs<'_, '_, '_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if self.nested == 0 {
            self.walker
                .query(query, Some(self.scope), QueryKind::Subquery);
        }
        self.nested += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.nested -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, _statement: &Statement) -> ControlFlow<()> {
        self.nested += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, _statement: &Statement) -> ControlFlow<()> {
        self.nested -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if self.nested > 0 || self.ignore.contains(&address(expr)) {
            return ControlFlow::Continue(());
        }
        match expr {
            Expr::Identifier(id) => {
                let name = names::ident(id);
                // DEFAULT is reserved: never a column.
                let is_default = names::is_keyword(id, "default");
                if !(is_default || self.aliases.contains(&name)) {
                    let columns = self.scope.resolve(&[name]);
                    self.emit(columns);
                }
            }
            Expr::CompoundIdentifier(ids) => {
                let parts: Vec<String> = ids.iter().map(names::ident).collect();
                let columns = self.scope.resolve(&parts);
                self.emit(columns);
            }
            Expr::CompoundFieldAccess { access_chain, .. } => {
                for access in access_chain {
                    if let AccessExpr::Dot(field) = access {
                        self.ignore.insert(address(field));
                    }
                }
            }
            Expr::QualifiedWildcard(qualifier, _) => self.star_of(qualifier),
            Expr::Wildcard(_) => {
                let (columns, _) = self.scope.star();
                self.emit(columns);
            }
            Expr::Function(function) => {
                self.function_args(&function.args);
                self.function_args(&function.parameters);
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}
