//! Queries: CTEs, set operations, SELECT blocks and their FROM clauses. Relations read
//! are recorded here; CTE references are not relations. Every struct is destructured
//! field by field, so a field added by a sqlparser upgrade does not go unread silently;
//! fields only other dialects fill fail the statement.

use sqlparser::ast::{
    Cte as AstCte, Distinct, Expr, GroupByExpr, Join, JoinConstraint, JoinOperator, LimitClause,
    OrderBy, Query, Select, SelectFlavor, SelectInto, SelectItem, SelectItemQualifiedWildcardKind,
    SetExpr, SetOperator, SetQuantifier, Table, TableAlias, TableFactor, TableFunctionArgs,
    TableWithJoins, Values, WildcardAdditionalOptions, With,
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
    /// Walks `query`, whose enclosing level is `parent`; returns what it outputs.
    #[recursive::recursive]
    pub fn query(&mut self, query: &Query, parent: Option<&Scope<'_>>, kind: QueryKind) -> Shape {
        self.facts.mark_query(query);
        let Query {
            with,
            body,
            order_by,
            limit_clause,
            fetch,
            locks,
            for_clause,
            settings,
            format_clause,
            pipe_operators,
        } = query;
        self.reject(for_clause.is_some(), "FOR XML/JSON");
        self.reject(settings.is_some(), "SETTINGS");
        self.reject(format_clause.is_some(), "FORMAT");
        self.reject(!pipe_operators.is_empty(), "a pipe operator");
        let mut scope = Scope::child(parent);
        if let Some(with) = with {
            self.with(with, &mut scope);
        }
        let shape = match body.as_ref() {
            SetExpr::Select(select) => self.select(select, &scope, order_by.as_ref()),
            other => {
                let shape = self.set_expr(other, &scope, kind);
                if let Some(order_by) = order_by {
                    self.order_by(order_by, &Scope::child(Some(&scope)), &shape);
                }
                shape
            }
        };
        match limit_clause {
            None => {}
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                self.reject(!limit_by.is_empty(), "LIMIT BY");
                self.exprs(limit, &scope);
                self.exprs(offset, &scope);
            }
            Some(LimitClause::OffsetCommaLimit { .. }) => {
                self.facts.not_postgres("LIMIT offset, count")
            }
        }
        self.exprs(fetch, &scope);
        // `FOR UPDATE OF alias` names FROM items, not relations.
        let _ = locks;
        shape
    }

    fn with(&mut self, with: &With, scope: &mut Scope<'_>) {
        let With {
            with_token: _,
            recursive,
            cte_tables,
        } = with;
        for cte in cte_tables {
            let AstCte {
                alias,
                query,
                from,
                materialized: _,
                closing_paren_token: _,
            } = cte;
            self.reject(from.is_some(), "a CTE with FROM");
            let name = names::ident(&alias.name);
            if *recursive {
                // The body may refer to itself; what it outputs is not known yet.
                scope.ctes.push(Cte {
                    name: name.clone(),
                    shape: Shape::unknown(),
                });
            }
            let mut shape = self.query(query, Some(scope), QueryKind::Subquery);
            shape.rename(&alias_columns(alias));
            if *recursive {
                scope.ctes.pop();
            }
            scope.ctes.push(Cte { name, shape });
        }
    }

    fn set_expr(&mut self, body: &SetExpr, scope: &Scope<'_>, kind: QueryKind) -> Shape {
        match body {
            SetExpr::Select(select) => self.select(select, scope, None),
            SetExpr::Query(query) => self.query(query, Some(scope), kind),
            SetExpr::SetOperation { .. } => {
                // Chains are left-deep: follow the left spine without recursing.
                let mut branches = Vec::new();
                let mut current = body;
                while let SetExpr::SetOperation {
                    left,
                    op,
                    set_quantifier,
                    right,
                } = current
                {
                    self.reject(*op == SetOperator::Minus, "MINUS");
                    self.reject(
                        !matches!(
                            set_quantifier,
                            SetQuantifier::All | SetQuantifier::Distinct | SetQuantifier::None
                        ),
                        "BY NAME",
                    );
                    branches.push(right.as_ref());
                    current = left;
                }
                branches.push(current);
                branches.reverse();
                let shapes = branches
                    .into_iter()
                    .map(|branch| self.set_expr(branch, scope, QueryKind::Subquery))
                    .collect();
                Shape::union(shapes)
            }
            SetExpr::Values(values) => self.values(values, scope, kind),
            SetExpr::Insert(statement)
            | SetExpr::Update(statement)
            | SetExpr::Delete(statement)
            | SetExpr::Merge(statement) => self.statement(statement, Some(scope)),
            SetExpr::Table(table) => self.table(table, scope),
        }
    }

    fn values(&mut self, values: &Values, scope: &Scope<'_>, kind: QueryKind) -> Shape {
        let Values {
            explicit_row,
            value_keyword,
            rows,
        } = values;
        self.reject(*explicit_row, "VALUES ROW(...)");
        self.reject(*value_keyword, "VALUE");
        if kind != QueryKind::InsertSource {
            self.facts.op(Operation::Select);
        }
        let scope = Scope::child(Some(scope));
        let width = rows.first().map_or(0, |row| row.content.len());
        let mut columns: Vec<Vec<ColumnName>> = vec![Vec::new(); width];
        for row in rows {
            for (i, expr) in row.content.iter().enumerate() {
                let read = self.capture(|w| w.exprs(expr, &scope));
                match columns.get_mut(i) {
                    Some(column) => column.extend(read),
                    // Rows of unequal width: the server rejects them; keep what they read.
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

    /// `TABLE name` inside a query.
    fn table(&mut self, table: &Table, scope: &Scope<'_>) -> Shape {
        let Table {
            table_name,
            schema_name,
        } = table;
        self.facts.op(Operation::Select);
        let Some(table_name) = table_name else {
            self.facts.not_postgres("TABLE without a name");
            return Shape::default();
        };
        let name = names::ident(table_name);
        if schema_name.is_none()
            && let Some(cte) = scope.cte(&name)
        {
            return cte.shape.clone();
        }
        let relation = super::RelationName {
            schema: schema_name.as_ref().map(names::ident),
            name,
        };
        self.facts.read(relation.clone());
        self.all_columns(&relation);
        let source = Source::table(relation, None, false);
        source.star_shape()
    }

    fn select(&mut self, select: &Select, outer: &Scope<'_>, order_by: Option<&OrderBy>) -> Shape {
        let Select {
            select_token: _,
            // `/*+ ... */` comments (pg_hint_plan): not SQL.
            optimizer_hints: _,
            distinct,
            select_modifiers,
            top,
            top_before_distinct: _,
            projection,
            exclude,
            into,
            from,
            lateral_views,
            prewhere,
            selection,
            connect_by,
            group_by,
            cluster_by,
            distribute_by,
            sort_by,
            having,
            named_window,
            qualify,
            window_before_qualify: _,
            value_table_mode,
            flavor,
        } = select;
        self.reject(select_modifiers.is_some(), "a MySQL SELECT modifier");
        self.reject(top.is_some(), "TOP");
        self.reject(exclude.is_some(), "EXCLUDE");
        self.reject(!lateral_views.is_empty(), "LATERAL VIEW");
        self.reject(prewhere.is_some(), "PREWHERE");
        self.reject(!connect_by.is_empty(), "CONNECT BY");
        self.reject(!cluster_by.is_empty(), "CLUSTER BY");
        self.reject(!distribute_by.is_empty(), "DISTRIBUTE BY");
        self.reject(!sort_by.is_empty(), "SORT BY");
        self.reject(qualify.is_some(), "QUALIFY");
        self.reject(value_table_mode.is_some(), "SELECT AS STRUCT/VALUE");
        self.reject(*flavor != SelectFlavor::Standard, "FROM-first SELECT");
        self.facts.op(Operation::Select);
        if let Some(into) = into {
            self.select_into(into);
        }

        let (sources, conditions) = self.from(from, outer);
        let scope = Scope {
            parent: Some(outer),
            ctes: Vec::new(),
            sources,
        };
        self.join_conditions(&conditions, &scope);
        if let Some(Distinct::On(exprs)) = distinct {
            self.predicate(|w| w.exprs(exprs, &scope));
        }
        let shape = self.projection(projection, &scope);
        self.predicate(|w| {
            w.exprs(selection, &scope);
            match group_by {
                GroupByExpr::All(_) => w.facts.not_postgres("GROUP BY ALL"),
                GroupByExpr::Expressions(exprs, modifiers) => {
                    w.reject(!modifiers.is_empty(), "WITH ROLLUP/CUBE");
                    w.exprs(exprs, &scope);
                }
            }
            w.exprs(having, &scope);
            w.exprs(named_window, &scope);
            if let Some(order_by) = order_by {
                w.order_by(order_by, &scope, &shape);
            }
        });
        if into.is_some() {
            self.facts.copied(shape.all_columns());
        }
        shape
    }

    /// ORDER BY may name output columns as well as input ones.
    fn order_by(&mut self, order_by: &OrderBy, scope: &Scope<'_>, shape: &Shape) {
        self.predicate(|w| w.exprs_except(order_by, scope, &shape.names()));
    }

    /// `SELECT … INTO [TEMP] new_table`: creates and fills a table.
    fn select_into(&mut self, into: &SelectInto) {
        let SelectInto {
            temporary: _,
            unlogged: _,
            table: _,
            targets,
        } = into;
        self.facts.op(Operation::Create);
        for target in targets {
            let parts = match target {
                Expr::Identifier(id) => vec![names::ident(id)],
                Expr::CompoundIdentifier(ids) => ids.iter().map(names::ident).collect(),
                _ => {
                    self.facts.not_postgres("SELECT INTO a variable");
                    continue;
                }
            };
            match names::relation_from_parts(&parts) {
                Ok(relation) => self.facts.write(relation),
                Err(message) => self.facts.fail(message),
            }
        }
    }

    pub fn projection(&mut self, projection: &[SelectItem], scope: &Scope<'_>) -> Shape {
        let mut shape = Shape::default();
        for item in projection {
            match item {
                SelectItem::UnnamedExpr(expr) => {
                    let (columns, derived) = self.output(expr, scope);
                    shape.named(output_name(expr), columns, derived);
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let (columns, derived) = self.output(expr, scope);
                    shape.named(Some(names::ident(alias)), columns, derived);
                }
                SelectItem::ExprWithAliases { .. } => self.facts.not_postgres("AS (a, b)"),
                SelectItem::QualifiedWildcard(kind, options) => {
                    self.wildcard_options(options);
                    match kind {
                        SelectItemQualifiedWildcardKind::ObjectName(qualifier) => {
                            let Some(parts) = names::parts(qualifier) else {
                                self.facts.not_postgres("a computed qualifier");
                                continue;
                            };
                            match scope.source(&parts) {
                                Some(source) => {
                                    for column in source.star() {
                                        self.facts.column(column);
                                    }
                                    shape.extend(source.star_shape());
                                }
                                None => {
                                    // Not a FROM item: the server rejects it.
                                    if let Ok(relation) = names::relation_from_parts(&parts) {
                                        self.all_columns(&relation);
                                    }
                                    shape.star(Vec::new(), None);
                                }
                            }
                        }
                        SelectItemQualifiedWildcardKind::Expr(expr) => {
                            // `(composite).*`, `(f(x)).*`
                            self.exprs(expr, scope);
                            shape.star(reference(expr, scope), None);
                        }
                    }
                }
                SelectItem::Wildcard(options) => {
                    self.wildcard_options(options);
                    let (columns, star) = scope.star();
                    for column in columns {
                        self.facts.column(column);
                    }
                    shape.extend(star);
                }
            }
        }
        shape
    }

    /// Walks one output expression; returns what its value comes from and whether it is
    /// computed (anything but a plain reference to a stored column).
    fn output(&mut self, expr: &Expr, scope: &Scope<'_>) -> (Vec<ColumnName>, bool) {
        let read = self.capture(|w| w.exprs(expr, scope));
        match plain_reference(expr) {
            Some(parts) if !scope.is_derived(&parts) => {
                let columns = reference(expr, scope);
                let whole_row = columns.iter().any(|c| c.column == "*");
                (columns, whole_row)
            }
            _ => (read, true),
        }
    }

    fn wildcard_options(&mut self, options: &WildcardAdditionalOptions) {
        let WildcardAdditionalOptions {
            wildcard_token: _,
            opt_ilike,
            opt_exclude,
            opt_except,
            opt_replace,
            opt_rename,
            // `t.* AS x`: a whole-row column.
            opt_alias: _,
        } = options;
        self.reject(
            opt_ilike.is_some()
                || opt_exclude.is_some()
                || opt_except.is_some()
                || opt_replace.is_some()
                || opt_rename.is_some(),
            "a wildcard modifier",
        );
    }

    /// The sources of a FROM clause, and the join conditions to read once all of them are
    /// known.
    pub fn from<'q>(
        &mut self,
        from: &'q [TableWithJoins],
        outer: &Scope<'_>,
    ) -> (Vec<Source>, Vec<&'q Expr>) {
        let mut sources = Vec::new();
        let mut conditions = Vec::new();
        for item in from {
            self.table_with_joins(item, outer, &mut sources, &mut conditions);
        }
        (sources, conditions)
    }

    fn table_with_joins<'q>(
        &mut self,
        item: &'q TableWithJoins,
        outer: &Scope<'_>,
        sources: &mut Vec<Source>,
        conditions: &mut Vec<&'q Expr>,
    ) {
        let TableWithJoins { relation, joins } = item;
        self.table_factor(relation, outer, sources, conditions);
        for join in joins {
            let Join {
                relation,
                global,
                join_operator,
            } = join;
            self.reject(*global, "GLOBAL JOIN");
            self.table_factor(relation, outer, sources, conditions);
            let constraint = match join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::FullOuter(c)
                | JoinOperator::CrossJoin(c) => c,
                _ => {
                    self.facts.not_postgres("this kind of join");
                    continue;
                }
            };
            match constraint {
                JoinConstraint::On(condition) => conditions.push(condition),
                JoinConstraint::Using(columns) => {
                    for column in columns {
                        match names::parts(column).as_deref() {
                            Some([name]) => self.facts.column(super::ColumnName {
                                relation: None,
                                column: name.clone(),
                            }),
                            _ => self.facts.not_postgres("a qualified USING column"),
                        }
                    }
                }
                JoinConstraint::UsingAlias(..) => self.facts.not_postgres("USING (…) AS alias"),
                JoinConstraint::Natural | JoinConstraint::None => {}
            }
        }
    }

    /// One FROM item; sources to its left are visible to it when it is LATERAL (and to
    /// function arguments, which are implicitly lateral).
    #[recursive::recursive]
    pub fn table_factor<'q>(
        &mut self,
        factor: &'q TableFactor,
        outer: &Scope<'_>,
        sources: &mut Vec<Source>,
        conditions: &mut Vec<&'q Expr>,
    ) {
        self.facts.mark_factor(factor);
        let lateral = |sources: &Vec<Source>| Scope {
            parent: Some(outer),
            ctes: Vec::new(),
            sources: sources.clone(),
        };
        match factor {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                with_ordinality: _,
                partitions,
                json_path,
                sample,
                index_directives,
                // `ONLY t` / `t *`: still t.
                inheritance: _,
            } => {
                self.reject(!with_hints.is_empty(), "table hints");
                self.reject(version.is_some(), "time travel");
                self.reject(!partitions.is_empty(), "PARTITION");
                self.reject(json_path.is_some(), "a JSON path table");
                self.reject(!index_directives.is_empty(), "index hints");
                if sample.is_some() {
                    self.exprs(sample, &lateral(sources));
                }
                let alias_name = alias.as_ref().map(|a| names::ident(&a.name));
                if let Some(args) = args {
                    let TableFunctionArgs { args, settings } = args;
                    self.reject(settings.is_some(), "SETTINGS");
                    let read = self.capture(|w| w.exprs(args, &lateral(sources)));
                    let function = alias_name.unwrap_or_else(|| function_source_name(name));
                    sources.push(Source::function(function, read));
                    return;
                }
                let Some(parts) = names::parts(name) else {
                    self.facts.not_postgres("a computed table name");
                    return;
                };
                if let [single] = parts.as_slice()
                    && let Some(cte) = outer.cte(single)
                {
                    let mut shape = cte.shape.clone();
                    if let Some(alias) = alias {
                        shape.rename(&alias_columns(alias));
                    }
                    sources.push(Source::shaped(
                        alias_name.unwrap_or_else(|| single.clone()),
                        shape,
                    ));
                    return;
                }
                let Some(relation) = self.read(name) else {
                    return;
                };
                let renamed = alias.as_ref().is_some_and(|a| !a.columns.is_empty());
                sources.push(Source::table(relation, alias_name, renamed));
            }
            TableFactor::Derived {
                lateral: is_lateral,
                subquery,
                alias,
                sample,
            } => {
                self.reject(sample.is_some(), "TABLESAMPLE on a subquery");
                let mut shape = if *is_lateral {
                    let scope = lateral(sources);
                    self.query(subquery, Some(&scope), QueryKind::Subquery)
                } else {
                    self.query(subquery, Some(outer), QueryKind::Subquery)
                };
                let name = match alias {
                    Some(alias) => {
                        shape.rename(&alias_columns(alias));
                        names::ident(&alias.name)
                    }
                    None => String::new(),
                };
                sources.push(Source::shaped(name, shape));
            }
            TableFactor::Function {
                lateral: _,
                name,
                args,
                with_ordinality: _,
                alias,
            } => {
                let read = self.capture(|w| w.exprs(args, &lateral(sources)));
                let function = alias
                    .as_ref()
                    .map_or_else(|| function_source_name(name), |a| names::ident(&a.name));
                sources.push(Source::function(function, read));
            }
            TableFactor::UNNEST {
                alias,
                array_exprs,
                with_offset,
                with_offset_alias,
                with_ordinality: _,
            } => {
                self.reject(*with_offset || with_offset_alias.is_some(), "WITH OFFSET");
                let read = self.capture(|w| w.exprs(array_exprs, &lateral(sources)));
                let function = alias
                    .as_ref()
                    .map_or_else(|| "unnest".into(), |a| names::ident(&a.name));
                sources.push(Source::function(function, read));
            }
            TableFactor::JsonTable {
                json_expr,
                json_path: _,
                columns: _,
                alias,
            } => {
                let read = self.capture(|w| w.exprs(json_expr, &lateral(sources)));
                let function = alias
                    .as_ref()
                    .map_or_else(|| "json_table".into(), |a| names::ident(&a.name));
                sources.push(Source::function(function, read));
            }
            TableFactor::XmlTable {
                namespaces,
                row_expression,
                passing,
                columns,
                alias,
            } => {
                let scope = lateral(sources);
                let read = self.capture(|w| {
                    w.exprs(namespaces, &scope);
                    w.exprs(row_expression, &scope);
                    w.exprs(passing, &scope);
                    w.exprs(columns, &scope);
                });
                let function = alias
                    .as_ref()
                    .map_or_else(|| "xmltable".into(), |a| names::ident(&a.name));
                sources.push(Source::function(function, read));
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => match alias {
                None => self.table_with_joins(table_with_joins, outer, sources, conditions),
                Some(alias) => {
                    // `(a JOIN b) AS j` hides a and b behind j.
                    let mut inner = Vec::new();
                    self.table_with_joins(table_with_joins, outer, &mut inner, conditions);
                    let mut shape = Shape::default();
                    for source in &inner {
                        shape.extend(source.star_shape());
                    }
                    shape.rename(&alias_columns(alias));
                    sources.push(Source::shaped(names::ident(&alias.name), shape));
                }
            },
            TableFactor::TableFunction { .. }
            | TableFactor::OpenJsonTable { .. }
            | TableFactor::Pivot { .. }
            | TableFactor::Unpivot { .. }
            | TableFactor::UnpivotExpr { .. }
            | TableFactor::MatchRecognize { .. }
            | TableFactor::SemanticView { .. } => {
                self.facts.not_postgres("this FROM item");
            }
        }
    }
}

/// A table function's name as the FROM item it makes.
fn function_source_name(name: &sqlparser::ast::ObjectName) -> String {
    names::parts(name)
        .and_then(|p| p.last().cloned())
        .unwrap_or_default()
}

/// The column names of `AS alias(a, b)`.
pub(super) fn alias_columns(alias: &TableAlias) -> Vec<String> {
    alias
        .columns
        .iter()
        .map(|c| names::ident(&c.name))
        .collect()
}
