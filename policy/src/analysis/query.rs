//! Queries: CTEs, set operations, SELECT blocks and their FROM clauses. Relations read
//! are recorded here; CTE references are not relations.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    Alias, IntoClause, Node, ResTarget, SelectStmt, SetOperation, WithClause,
};

use super::ColumnName;
use super::columns::{output_name, plain_reference, reference};
use super::names;
use super::scope::{Cte, Scope, Shape, Source};
use super::walker::Walker;
use crate::model::Operation;

/// Where a query stands, which decides whether `VALUES` counts as a Select.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum QueryKind {
    /// A statement, CTE, derived table or expression subquery.
    Subquery,
    /// The rows of an INSERT: `VALUES` there is not a read.
    InsertSource,
}

impl Walker<'_> {
    /// Walks a query node (a SELECT, or a data-modifying statement in a CTE), whose
    /// enclosing level is `parent`; returns what it outputs.
    pub fn query_node(
        &mut self,
        node: &Node,
        parent: Option<&Scope<'_>>,
        kind: QueryKind,
    ) -> Shape {
        match node.node.as_ref() {
            Some(NodeEnum::SelectStmt(select)) => self.query(select, parent, kind),
            Some(_) => self.statement(node, parent),
            None => Shape::default(),
        }
    }

    /// Walks `query`, whose enclosing level is `parent`; returns what it outputs.
    #[recursive::recursive]
    pub fn query(
        &mut self,
        query: &SelectStmt,
        parent: Option<&Scope<'_>>,
        kind: QueryKind,
    ) -> Shape {
        let mut scope = Scope::child(parent);
        if let Some(with) = &query.with_clause {
            self.ctes(with, &mut scope);
        }
        let shape = if query.op == SetOperation::SetopNone as i32 {
            if query.values_lists.is_empty() {
                self.select(query, &scope)
            } else {
                let shape = self.values(&query.values_lists, &scope, kind);
                self.order_by(&query.sort_clause, &Scope::child(Some(&scope)), &shape);
                shape
            }
        } else {
            let shape = self.set_operation(query, &scope);
            self.order_by(&query.sort_clause, &Scope::child(Some(&scope)), &shape);
            shape
        };
        self.opt_expr(query.limit_offset.as_deref(), &scope);
        self.opt_expr(query.limit_count.as_deref(), &scope);
        // `FOR UPDATE OF alias` names FROM items, not relations.
        shape
    }

    pub fn ctes(&mut self, with: &WithClause, scope: &mut Scope<'_>) {
        for cte in &with.ctes {
            let Some(NodeEnum::CommonTableExpr(cte)) = cte.node.as_ref() else {
                continue;
            };
            let name = cte.ctename.clone();
            if with.recursive {
                // The body may refer to itself; what it outputs is not known yet.
                scope.ctes.push(Cte {
                    name: name.clone(),
                    shape: Shape::unknown(),
                });
            }
            let mut shape = match cte.ctequery.as_deref() {
                Some(query) => self.query_node(query, Some(scope), QueryKind::Subquery),
                None => Shape::default(),
            };
            shape.rename(&names::strings(&cte.aliascolnames).unwrap_or_default());
            if with.recursive {
                scope.ctes.pop();
            }
            scope.ctes.push(Cte { name, shape });
        }
    }

    /// `a UNION b EXCEPT c …`: chains are left-deep, followed without recursing.
    fn set_operation(&mut self, query: &SelectStmt, scope: &Scope<'_>) -> Shape {
        let mut branches: Vec<&SelectStmt> = Vec::new();
        let mut current = query;
        loop {
            let plain_level = current.op != SetOperation::SetopNone as i32
                && (std::ptr::eq(current, query)
                    || (current.with_clause.is_none()
                        && current.sort_clause.is_empty()
                        && current.limit_count.is_none()
                        && current.limit_offset.is_none()
                        && current.locking_clause.is_empty()));
            if !plain_level {
                break;
            }
            match (current.larg.as_deref(), current.rarg.as_deref()) {
                (Some(left), Some(right)) => {
                    branches.push(right);
                    current = left;
                }
                _ => break,
            }
        }
        branches.push(current);
        branches.reverse();
        let shapes = branches
            .into_iter()
            .map(|branch| self.query(branch, Some(scope), QueryKind::Subquery))
            .collect();
        Shape::union(shapes)
    }

    fn values(&mut self, rows: &[Node], scope: &Scope<'_>, kind: QueryKind) -> Shape {
        if kind != QueryKind::InsertSource {
            self.facts.op(Operation::Select);
        }
        let scope = Scope::child(Some(scope));
        let mut columns: Vec<Vec<ColumnName>> = Vec::new();
        for row in rows {
            let Some(NodeEnum::List(row)) = row.node.as_ref() else {
                continue;
            };
            for (i, expr) in row.items.iter().enumerate() {
                let read = self.capture(|w| w.expr(expr, &scope));
                match columns.get_mut(i) {
                    Some(column) => column.extend(read),
                    None => columns.push(read),
                }
            }
        }
        let mut shape = Shape::default();
        for (i, read) in columns.into_iter().enumerate() {
            shape.named(Some(format!("column{}", i + 1)), read, true);
        }
        shape
    }

    fn select(&mut self, select: &SelectStmt, outer: &Scope<'_>) -> Shape {
        self.facts.op(Operation::Select);
        if let Some(into) = &select.into_clause {
            self.select_into(into);
        }
        let (sources, conditions) = self.from(&select.from_clause, outer);
        let scope = Scope {
            parent: Some(outer),
            ctes: Vec::new(),
            sources,
        };
        self.join_conditions(&conditions, &scope);
        // Plain DISTINCT is a list holding one empty node; DISTINCT ON lists expressions.
        self.predicate(|w| w.exprs(&select.distinct_clause, &scope));
        let shape = self.projection(&select.target_list, &scope);
        self.predicate(|w| {
            w.opt_expr(select.where_clause.as_deref(), &scope);
            w.exprs(&select.group_clause, &scope);
            w.opt_expr(select.having_clause.as_deref(), &scope);
            w.exprs(&select.window_clause, &scope);
        });
        self.order_by(&select.sort_clause, &scope, &shape);
        if select.into_clause.is_some() {
            self.facts.copied(shape.all_columns());
        }
        shape
    }

    /// ORDER BY may name output columns as well as input ones.
    fn order_by(&mut self, sort: &[Node], scope: &Scope<'_>, shape: &Shape) {
        let aliases = shape.names();
        self.predicate(|w| {
            for item in sort {
                w.expr_except(item, scope, &aliases);
            }
        });
    }

    /// `SELECT … INTO [TEMP] new_table`: creates and fills a table.
    fn select_into(&mut self, into: &IntoClause) {
        self.facts.op(Operation::Create);
        if let Some(rel) = &into.rel {
            self.write(rel);
        }
    }

    pub fn projection(&mut self, targets: &[Node], scope: &Scope<'_>) -> Shape {
        let mut shape = Shape::default();
        for target in targets {
            let Some(NodeEnum::ResTarget(target)) = target.node.as_ref() else {
                continue;
            };
            self.output_target(target, scope, &mut shape);
        }
        shape
    }

    fn output_target(&mut self, target: &ResTarget, scope: &Scope<'_>, shape: &mut Shape) {
        let Some(value) = target.val.as_deref() else {
            return;
        };
        match value.node.as_ref() {
            Some(NodeEnum::ColumnRef(c))
                if matches!(
                    c.fields.last().and_then(|f| f.node.as_ref()),
                    Some(NodeEnum::AStar(_))
                ) =>
            {
                let qualifier = names::strings(&c.fields[..c.fields.len() - 1]).unwrap_or_default();
                if qualifier.is_empty() {
                    let (columns, star) = scope.star();
                    for column in columns {
                        self.facts.column(column);
                    }
                    shape.extend(star);
                    return;
                }
                match scope.source(&qualifier) {
                    Some(source) => {
                        for column in source.star() {
                            self.facts.column(column);
                        }
                        shape.extend(source.star_shape());
                    }
                    None => {
                        // Not a FROM item: the server rejects it.
                        if let Ok(relation) = names::relation_from_parts(&qualifier) {
                            self.all_columns(&relation);
                        }
                        shape.star(Vec::new(), None);
                    }
                }
            }
            Some(NodeEnum::AIndirection(i))
                if matches!(
                    i.indirection.last().and_then(|f| f.node.as_ref()),
                    Some(NodeEnum::AStar(_))
                ) =>
            {
                // `(composite).*`, `(f(x)).*`
                self.expr(value, scope);
                let read = i
                    .arg
                    .as_deref()
                    .map(|a| reference(a, scope))
                    .unwrap_or_default();
                shape.star(read, None);
            }
            _ => {
                let (columns, derived) = self.output(value, scope);
                let name = if target.name.is_empty() {
                    output_name(value)
                } else {
                    Some(target.name.clone())
                };
                shape.named(name, columns, derived);
            }
        }
    }

    /// Walks one output expression; returns what its value comes from and whether it is
    /// computed (anything but a plain reference to a stored column).
    fn output(&mut self, expr: &Node, scope: &Scope<'_>) -> (Vec<ColumnName>, bool) {
        let read = self.capture(|w| w.expr(expr, scope));
        match plain_reference(expr) {
            Some(parts) if !scope.is_derived(&parts) => {
                let columns = reference(expr, scope);
                let whole_row = columns.iter().any(|c| c.column == "*");
                (columns, whole_row)
            }
            _ => (read, true),
        }
    }

    /// The sources of a FROM clause, and the join conditions to read once all of them are
    /// known.
    pub fn from<'q>(
        &mut self,
        from: &'q [Node],
        outer: &Scope<'_>,
    ) -> (Vec<Source>, Vec<&'q Node>) {
        let mut sources = Vec::new();
        let mut conditions = Vec::new();
        for item in from {
            self.from_item(item, outer, &mut sources, &mut conditions);
        }
        (sources, conditions)
    }

    /// One FROM item; sources to its left are visible to it when it is LATERAL (and to
    /// function arguments, which are implicitly lateral).
    #[recursive::recursive]
    pub fn from_item<'q>(
        &mut self,
        item: &'q Node,
        outer: &Scope<'_>,
        sources: &mut Vec<Source>,
        conditions: &mut Vec<&'q Node>,
    ) {
        let lateral = |sources: &Vec<Source>| Scope {
            parent: Some(outer),
            ctes: Vec::new(),
            sources: sources.clone(),
        };
        let Some(kind) = item.node.as_ref() else {
            return;
        };
        match kind {
            NodeEnum::RangeVar(range) => {
                let alias_name = alias_name(range.alias.as_ref());
                if range.schemaname.is_empty()
                    && range.catalogname.is_empty()
                    && let Some(cte) = outer.cte(&range.relname)
                {
                    let mut shape = cte.shape.clone();
                    shape.rename(&alias_columns(range.alias.as_ref()));
                    sources.push(Source::shaped(
                        alias_name.unwrap_or_else(|| range.relname.clone()),
                        shape,
                    ));
                    return;
                }
                let relation = self.read(range);
                let renamed = range.alias.as_ref().is_some_and(|a| !a.colnames.is_empty());
                sources.push(Source::table(relation, alias_name, renamed));
            }
            NodeEnum::JoinExpr(join) => {
                let mut inner = Vec::new();
                let target = if join.alias.is_some() {
                    &mut inner
                } else {
                    &mut *sources
                };
                if let Some(left) = join.larg.as_deref() {
                    self.from_item(left, outer, target, conditions);
                }
                if let Some(right) = join.rarg.as_deref() {
                    self.from_item(right, outer, target, conditions);
                }
                if let Some(quals) = join.quals.as_deref() {
                    conditions.push(quals);
                }
                for column in names::strings(&join.using_clause).unwrap_or_default() {
                    self.facts.column(ColumnName {
                        relation: None,
                        column,
                    });
                }
                if let Some(alias) = &join.alias {
                    // `(a JOIN b) AS j` hides a and b behind j.
                    let mut shape = Shape::default();
                    for source in &inner {
                        shape.extend(source.star_shape());
                    }
                    shape.rename(&alias_columns(Some(alias)));
                    sources.push(Source::shaped(alias.aliasname.clone(), shape));
                }
            }
            NodeEnum::RangeSubselect(sub) => {
                let Some(subquery) = sub.subquery.as_deref() else {
                    return;
                };
                let mut shape = if sub.lateral {
                    let scope = lateral(sources);
                    self.query_node(subquery, Some(&scope), QueryKind::Subquery)
                } else {
                    self.query_node(subquery, Some(outer), QueryKind::Subquery)
                };
                shape.rename(&alias_columns(sub.alias.as_ref()));
                let name = alias_name(sub.alias.as_ref()).unwrap_or_default();
                sources.push(Source::shaped(name, shape));
            }
            NodeEnum::RangeFunction(function) => {
                let scope = lateral(sources);
                let read = self.capture(|w| {
                    for item in &function.functions {
                        // Each item is a list: the call, then its column definitions.
                        if let Some(NodeEnum::List(list)) = item.node.as_ref()
                            && let Some(call) = list.items.first()
                        {
                            w.expr(call, &scope);
                        }
                    }
                });
                let name = alias_name(function.alias.as_ref())
                    .or_else(|| first_function_name(&function.functions))
                    .unwrap_or_default();
                sources.push(Source::function(name, read));
            }
            NodeEnum::RangeTableSample(sample) => {
                if let Some(relation) = sample.relation.as_deref() {
                    self.from_item(relation, outer, sources, conditions);
                }
                let scope = lateral(sources);
                self.exprs(&sample.args, &scope);
                self.opt_expr(sample.repeatable.as_deref(), &scope);
            }
            NodeEnum::RangeTableFunc(table) => {
                let scope = lateral(sources);
                let read = self.capture(|w| {
                    w.opt_expr(table.docexpr.as_deref(), &scope);
                    w.opt_expr(table.rowexpr.as_deref(), &scope);
                    w.exprs(&table.namespaces, &scope);
                    for column in &table.columns {
                        if let Some(NodeEnum::RangeTableFuncCol(c)) = column.node.as_ref() {
                            w.opt_expr(c.colexpr.as_deref(), &scope);
                            w.opt_expr(c.coldefexpr.as_deref(), &scope);
                        }
                    }
                });
                let name = alias_name(table.alias.as_ref()).unwrap_or_else(|| "xmltable".into());
                sources.push(Source::function(name, read));
            }
            NodeEnum::JsonTable(table) => {
                let scope = lateral(sources);
                let read = self.capture(|w| {
                    if let Some(context) = &table.context_item {
                        w.opt_expr(context.raw_expr.as_deref(), &scope);
                    }
                    w.exprs(&table.passing, &scope);
                    w.exprs(&table.columns, &scope);
                });
                let name = alias_name(table.alias.as_ref()).unwrap_or_else(|| "json_table".into());
                sources.push(Source::function(name, read));
            }
            other => self.facts.fail(format!(
                "cannot read a FROM item of kind {}",
                kind_name(other)
            )),
        }
    }
}

/// The name of the first function of a `RangeFunction`.
fn first_function_name(functions: &[Node]) -> Option<String> {
    let Some(NodeEnum::List(list)) = functions.first()?.node.as_ref() else {
        return None;
    };
    match list.items.first()?.node.as_ref()? {
        NodeEnum::FuncCall(f) => f
            .funcname
            .last()
            .and_then(names::string)
            .map(str::to_string),
        // Functions with special syntax the parser turns into other nodes.
        _ => None,
    }
}

fn alias_name(alias: Option<&Alias>) -> Option<String> {
    alias.map(|a| a.aliasname.clone())
}

/// The column names of `AS alias(a, b)`.
pub(super) fn alias_columns(alias: Option<&Alias>) -> Vec<String> {
    alias
        .and_then(|a| names::strings(&a.colnames))
        .unwrap_or_default()
}

/// A node kind's name, for messages.
pub(super) fn kind_name(node: &NodeEnum) -> String {
    let debug = format!("{node:?}");
    debug
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_string()
}
