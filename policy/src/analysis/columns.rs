//! Column references inside expressions, resolved against the query level they are in,
//! and the functions expressions call. Every expression node of PostgreSQL's raw parse
//! tree is walked by kind; a subquery met on the way is handed back to the query walk
//! with this level as its outer scope. A node kind not listed here is searched
//! generically (through its serialized form) for column references and calls, and one
//! that holds a query fails the statement: nothing in an expression goes unread.

use pg_query::NodeEnum;
use pg_query::protobuf::{CoercionForm, Node, WindowDef};

use super::ColumnName;
use super::names;
use super::query::QueryKind;
use super::scope::Scope;
use super::walker::Walker;

impl Walker<'_> {
    /// Records the columns, calls and subqueries of the expression `node`.
    pub fn expr(&mut self, node: &Node, scope: &Scope<'_>) {
        self.expr_except(node, scope, &[]);
    }

    pub fn exprs(&mut self, nodes: &[Node], scope: &Scope<'_>) {
        for node in nodes {
            self.expr(node, scope);
        }
    }

    pub fn opt_expr(&mut self, node: Option<&Node>, scope: &Scope<'_>) {
        if let Some(node) = node {
            self.expr(node, scope);
        }
    }

    /// The JOIN conditions of a FROM clause (or UPDATE … FROM / DELETE … USING / MERGE),
    /// walked as predicates.
    pub fn join_conditions(&mut self, conditions: &[&Node], scope: &Scope<'_>) {
        self.predicate(|w| {
            for condition in conditions {
                w.expr(condition, scope);
            }
        });
    }

    /// As [`Walker::expr`], where a bare name in `aliases` is an output column (ORDER BY,
    /// GROUP BY).
    pub fn expr_except(&mut self, node: &Node, scope: &Scope<'_>, aliases: &[String]) {
        let mut exprs = Exprs {
            walker: self,
            scope,
            aliases,
        };
        exprs.node(node);
    }

    /// Records what `relation.*`-style references `qualifier.*` read.
    fn star_of(&mut self, qualifier: &[String], scope: &Scope<'_>) {
        let columns = match scope.source(qualifier) {
            Some(source) => source.star(),
            None => match names::relation_from_parts(qualifier) {
                Ok(relation) => vec![ColumnName {
                    relation: Some(relation),
                    column: "*".into(),
                }],
                Err(message) => {
                    self.facts.fail(message);
                    Vec::new()
                }
            },
        };
        for column in columns {
            self.facts.column(column);
        }
    }
}

/// The parts of a column reference: `["t", "col"]`; `None` for anything else, or for a
/// reference ending in `*`.
pub(super) fn column_ref(node: &Node) -> Option<Vec<String>> {
    match node.node.as_ref()? {
        NodeEnum::ColumnRef(c) => names::strings(&c.fields),
        _ => None,
    }
}

/// The columns `node` reads when it is a plain column reference (possibly cast, collated
/// or in parentheses — the parser drops those), for a subquery's output shape; empty for
/// anything computed.
pub(super) fn reference(node: &Node, scope: &Scope<'_>) -> Vec<ColumnName> {
    match node.node.as_ref() {
        Some(NodeEnum::ColumnRef(_)) => column_ref(node)
            .map(|parts| scope.resolve(&parts))
            .unwrap_or_default(),
        Some(NodeEnum::TypeCast(c)) => c
            .arg
            .as_deref()
            .map(|a| reference(a, scope))
            .unwrap_or_default(),
        Some(NodeEnum::CollateClause(c)) => c
            .arg
            .as_deref()
            .map(|a| reference(a, scope))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The name parts of `node` when it is a bare column reference: the only outputs whose
/// values are the stored column's, unchanged.
pub(super) fn plain_reference(node: &Node) -> Option<Vec<String>> {
    column_ref(node)
}

/// The name the server gives an unaliased output column (its `FigureColname`), where
/// that is a name the text shows.
pub(super) fn output_name(node: &Node) -> Option<String> {
    match node.node.as_ref()? {
        NodeEnum::ColumnRef(c) => c
            .fields
            .iter()
            .rev()
            .find_map(names::string)
            .map(str::to_string),
        NodeEnum::AIndirection(i) => i
            .indirection
            .iter()
            .rev()
            .find_map(names::string)
            .map(str::to_string)
            .or_else(|| i.arg.as_deref().and_then(output_name)),
        NodeEnum::FuncCall(f) => f
            .funcname
            .iter()
            .rev()
            .find_map(names::string)
            .map(str::to_string),
        NodeEnum::TypeCast(c) => c.arg.as_deref().and_then(output_name).or_else(|| {
            c.type_name
                .as_ref()
                .and_then(|t| t.names.iter().rev().find_map(names::string))
                .map(str::to_string)
        }),
        NodeEnum::CollateClause(c) => c.arg.as_deref().and_then(output_name),
        _ => None,
    }
}

struct Exprs<'a, 'f, 's, 'p> {
    walker: &'a mut Walker<'f>,
    scope: &'s Scope<'p>,
    aliases: &'s [String],
}

impl Exprs<'_, '_, '_, '_> {
    fn emit(&mut self, columns: Vec<ColumnName>) {
        for column in columns {
            self.walker.facts.column(column);
        }
    }

    fn all(&mut self, nodes: &[Node]) {
        for node in nodes {
            self.node(node);
        }
    }

    fn opt(&mut self, node: Option<&Node>) {
        if let Some(node) = node {
            self.node(node);
        }
    }

    fn window(&mut self, window: &WindowDef) {
        self.all(&window.partition_clause);
        self.all(&window.order_clause);
        self.opt(window.start_offset.as_deref());
        self.opt(window.end_offset.as_deref());
    }

    fn subquery(&mut self, query: &Node) {
        self.walker
            .query_node(query, Some(self.scope), QueryKind::Subquery);
    }

    fn column_ref(&mut self, fields: &[Node]) {
        let last_is_star = matches!(
            fields.last().and_then(|f| f.node.as_ref()),
            Some(NodeEnum::AStar(_))
        );
        let Some(parts) = names::strings(&fields[..fields.len() - usize::from(last_is_star)])
        else {
            self.walker
                .facts
                .fail("a column reference with `*` inside it");
            return;
        };
        if last_is_star {
            if parts.is_empty() {
                let (columns, _) = self.scope.star();
                self.emit(columns);
            } else {
                self.walker.star_of(&parts, self.scope);
            }
            return;
        }
        if let [name] = parts.as_slice()
            && self.aliases.contains(name)
        {
            return;
        }
        let columns = self.scope.resolve(&parts);
        self.emit(columns);
    }

    #[recursive::recursive]
    fn node(&mut self, node: &Node) {
        let Some(kind) = node.node.as_ref() else {
            return;
        };
        match kind {
            NodeEnum::ColumnRef(c) if !c.fields.is_empty() => self.column_ref(&c.fields),
            NodeEnum::ColumnRef(_)
            | NodeEnum::AConst(_)
            | NodeEnum::ParamRef(_)
            | NodeEnum::Integer(_)
            | NodeEnum::Float(_)
            | NodeEnum::Boolean(_)
            | NodeEnum::String(_)
            | NodeEnum::BitString(_)
            | NodeEnum::SetToDefault(_)
            | NodeEnum::CurrentOfExpr(_)
            | NodeEnum::MergeSupportFunc(_)
            | NodeEnum::SqlvalueFunction(_)
            | NodeEnum::AStar(_)
            | NodeEnum::TypeName(_) => {}
            NodeEnum::AExpr(e) => {
                self.opt(e.lexpr.as_deref());
                self.opt(e.rexpr.as_deref());
            }
            NodeEnum::BoolExpr(e) => self.all(&e.args),
            NodeEnum::List(l) => self.all(&l.items),
            NodeEnum::TypeCast(c) => self.opt(c.arg.as_deref()),
            NodeEnum::CollateClause(c) => self.opt(c.arg.as_deref()),
            NodeEnum::NamedArgExpr(a) => self.opt(a.arg.as_deref()),
            NodeEnum::FuncCall(f) => {
                self.walker.facts.function(function_name(f));
                self.all(&f.args);
                self.all(&f.agg_order);
                self.opt(f.agg_filter.as_deref());
                if let Some(over) = &f.over {
                    self.window(over);
                }
            }
            NodeEnum::SubLink(s) => {
                self.opt(s.testexpr.as_deref());
                if let Some(query) = s.subselect.as_deref() {
                    self.subquery(query);
                }
            }
            NodeEnum::SelectStmt(_) => self.subquery(node),
            NodeEnum::CaseExpr(c) => {
                self.opt(c.arg.as_deref());
                self.all(&c.args);
                self.opt(c.defresult.as_deref());
            }
            NodeEnum::CaseWhen(w) => {
                self.opt(w.expr.as_deref());
                self.opt(w.result.as_deref());
            }
            NodeEnum::CoalesceExpr(c) => self.all(&c.args),
            NodeEnum::MinMaxExpr(m) => self.all(&m.args),
            NodeEnum::NullTest(t) => self.opt(t.arg.as_deref()),
            NodeEnum::BooleanTest(t) => self.opt(t.arg.as_deref()),
            NodeEnum::RowExpr(r) => self.all(&r.args),
            NodeEnum::AArrayExpr(a) => self.all(&a.elements),
            NodeEnum::AIndirection(i) => {
                self.opt(i.arg.as_deref());
                // Field names in the indirection are Strings, not column references.
                self.all(&i.indirection);
            }
            NodeEnum::AIndices(i) => {
                self.opt(i.lidx.as_deref());
                self.opt(i.uidx.as_deref());
            }
            NodeEnum::GroupingFunc(g) => self.all(&g.args),
            NodeEnum::GroupingSet(g) => self.all(&g.content),
            NodeEnum::SortBy(s) => self.opt(s.node.as_deref()),
            NodeEnum::WindowDef(w) => self.window(w),
            NodeEnum::ResTarget(t) => {
                self.all(&t.indirection);
                self.opt(t.val.as_deref());
            }
            NodeEnum::MultiAssignRef(m) => self.opt(m.source.as_deref()),
            NodeEnum::XmlExpr(x) => {
                self.all(&x.named_args);
                self.all(&x.args);
            }
            NodeEnum::XmlSerialize(x) => self.opt(x.expr.as_deref()),
            NodeEnum::RowCompareExpr(r) => {
                self.all(&r.largs);
                self.all(&r.rargs);
            }
            NodeEnum::JsonValueExpr(v) => {
                self.opt(v.raw_expr.as_deref());
                self.opt(v.formatted_expr.as_deref());
            }
            NodeEnum::JsonIsPredicate(p) => self.opt(p.expr.as_deref()),
            NodeEnum::JsonBehavior(b) => self.opt(b.expr.as_deref()),
            NodeEnum::JsonScalarExpr(s) => self.opt(s.expr.as_deref()),
            NodeEnum::JsonKeyValue(kv) => {
                self.opt(kv.key.as_deref());
                if let Some(value) = &kv.value {
                    self.opt(value.raw_expr.as_deref());
                }
            }
            NodeEnum::JsonObjectConstructor(c) => self.all(&c.exprs),
            NodeEnum::JsonArrayConstructor(c) => self.all(&c.exprs),
            NodeEnum::JsonArrayQueryConstructor(c) => {
                if let Some(query) = c.query.as_deref() {
                    self.subquery(query);
                }
            }
            // Everything else (the SQL/JSON functions and aggregates, and any kind added
            // to the grammar later): searched generically.
            _ => self.generic(node),
        }
    }

    /// Finds the column references, calls and queries of a node kind not walked above.
    fn generic(&mut self, node: &Node) {
        let value = match serde_json::to_value(node) {
            Ok(value) => value,
            Err(e) => {
                self.walker
                    .facts
                    .fail(format!("cannot read an expression: {e}"));
                return;
            }
        };
        let mut found = Generic::default();
        found.search(&value);
        if found.query {
            self.walker
                .facts
                .fail("a subquery inside an expression of a kind the analysis does not read");
        }
        for name in found.functions {
            self.walker.facts.function(name);
        }
        for parts in found.columns {
            match parts {
                Some(parts) => {
                    let columns = self.scope.resolve(&parts);
                    self.emit(columns);
                }
                None => {
                    let (columns, _) = self.scope.star();
                    self.emit(columns);
                }
            }
        }
    }
}

/// What a serialized node holds: column references (`None` for `*`), called functions,
/// and whether there is a query inside.
#[derive(Default)]
struct Generic {
    columns: Vec<Option<Vec<String>>>,
    functions: Vec<String>,
    query: bool,
}

impl Generic {
    #[recursive::recursive]
    fn search(&mut self, value: &serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    match key.as_str() {
                        "ColumnRef" => self.columns.push(generic_parts(inner)),
                        "FuncCall" => {
                            if let Some(Some(parts)) =
                                inner.get("funcname").map(|f| generic_strings(Some(f)))
                            {
                                self.functions.push(parts.join("."));
                            }
                            self.search(inner);
                        }
                        "SelectStmt" | "SubLink" | "InsertStmt" | "UpdateStmt" | "DeleteStmt"
                        | "MergeStmt" => self.query = true,
                        _ => self.search(inner),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.search(v)),
            _ => {}
        }
    }
}

fn generic_strings(list: Option<&serde_json::Value>) -> Option<Vec<String>> {
    list?
        .as_array()?
        .iter()
        .map(|item| {
            item.pointer("/node/String/sval")
                .and_then(|s| s.as_str())
                .map(str::to_string)
        })
        .collect()
}

fn generic_parts(column_ref: &serde_json::Value) -> Option<Vec<String>> {
    let parts = generic_strings(column_ref.get("fields"));
    parts.filter(|p| !p.is_empty())
}

/// A called function's name as written: `pg_catalog.set_config`. Functions with special
/// syntax (`EXTRACT(… FROM …)`, `SUBSTRING(… FROM …)`, `TRIM(…)`, `POSITION(… IN …)`,
/// `OVERLAY(…)`) are named without the `pg_catalog` the parser adds.
pub(super) fn function_name(f: &pg_query::protobuf::FuncCall) -> String {
    let name = names::function(&f.funcname);
    if f.funcformat == CoercionForm::CoerceSqlSyntax as i32
        && let Some(bare) = name.strip_prefix("pg_catalog.")
    {
        return bare.to_string();
    }
    name
}
