//! Name resolution: which relation a column reference belongs to.
//!
//! A [`Scope`] is one query level: the CTEs it defines and the FROM items (sources) it
//! can see, with a link to the enclosing level (correlated subqueries see outer sources).
//! A derived table or CTE is described by its [`Shape`], its output columns traced back
//! to the columns they were read from, so `SELECT x FROM (SELECT a AS x FROM t) s`
//! reports `t.a`.

use super::{ColumnName, RelationName};

/// What a subquery outputs.
#[derive(Clone, Debug, Default)]
pub(super) struct Shape {
    items: Vec<Item>,
}

#[derive(Clone, Debug)]
enum Item {
    /// One output column: its name and the columns it is a plain reference to, or, when
    /// `derived`, every column its value was computed from (for masking provenance).
    Named {
        name: Option<String>,
        columns: Vec<ColumnName>,
        derived: bool,
    },
    /// A wildcard expansion: the columns it stands for (`t.*`) and, when it is all of one
    /// relation, that relation, which then owns any column name asked for.
    Star {
        columns: Vec<ColumnName>,
        relation: Option<RelationName>,
    },
}

impl Shape {
    pub fn named(&mut self, name: Option<String>, columns: Vec<ColumnName>, derived: bool) {
        self.items.push(Item::Named {
            name,
            columns,
            derived,
        });
    }

    pub fn star(&mut self, columns: Vec<ColumnName>, relation: Option<RelationName>) {
        self.items.push(Item::Star { columns, relation });
    }

    pub fn extend(&mut self, other: Shape) {
        self.items.extend(other.items);
    }

    /// A shape about which nothing is known: any column name may be asked for.
    pub fn unknown() -> Shape {
        let mut shape = Shape::default();
        shape.star(Vec::new(), None);
        shape
    }

    /// The shape of a set operation: the first branch's names; each output reads what the
    /// branches read at its position, or, when a branch's width is not known, every column
    /// any branch reads.
    pub fn union(branches: Vec<Shape>) -> Shape {
        let width = branches.first().map_or(0, |b| b.items.len());
        let positional = branches.iter().all(|b| {
            b.items.len() == width && b.items.iter().all(|i| matches!(i, Item::Named { .. }))
        });
        if positional {
            let mut merged: Vec<Item> = Vec::new();
            for branch in branches {
                for (i, item) in branch.items.into_iter().enumerate() {
                    let Item::Named { name, columns, .. } = item else {
                        continue;
                    };
                    match merged.get_mut(i) {
                        Some(Item::Named {
                            columns: all,
                            derived,
                            ..
                        }) => {
                            all.extend(columns);
                            *derived = true;
                        }
                        _ => merged.push(Item::Named {
                            name,
                            columns,
                            derived: false,
                        }),
                    }
                }
            }
            return Shape { items: merged };
        }
        let mut shape = Shape::default();
        let mut all = Vec::new();
        for (i, branch) in branches.into_iter().enumerate() {
            all.extend(branch.all_columns());
            if i == 0 {
                for item in branch.items {
                    if let Item::Named { name, .. } = item {
                        shape.named(name, Vec::new(), true);
                    }
                }
            }
        }
        shape.star(all, None);
        shape
    }

    /// Renames the leading outputs, as `AS alias(a, b)` does.
    pub fn rename(&mut self, aliases: &[String]) {
        let mut aliases = aliases.iter();
        let mut renamed = Vec::new();
        for item in std::mem::take(&mut self.items) {
            match item {
                Item::Named {
                    columns,
                    name,
                    derived,
                } => {
                    let name = aliases.next().cloned().or(name);
                    renamed.push(Item::Named {
                        name,
                        columns,
                        derived,
                    });
                }
                Item::Star { columns, relation } => {
                    // Which columns the remaining aliases name is unknown: each may be
                    // any column of the expansion.
                    let any: Vec<ColumnName> = columns
                        .iter()
                        .map(|c| ColumnName {
                            relation: c.relation.clone(),
                            column: "*".into(),
                        })
                        .collect();
                    for alias in aliases.by_ref() {
                        renamed.push(Item::Named {
                            name: Some(alias.clone()),
                            columns: any.clone(),
                            derived: false,
                        });
                    }
                    renamed.push(Item::Star { columns, relation });
                }
            }
        }
        self.items = renamed;
    }

    /// The columns a reference to output `name` reads.
    pub fn resolve(&self, name: &str) -> Vec<ColumnName> {
        for item in &self.items {
            if let Item::Named {
                name: Some(n),
                columns,
                ..
            } = item
                && n == name
            {
                return columns.clone();
            }
        }
        let mut found = Vec::new();
        for item in &self.items {
            if let Item::Star { relation, .. } = item {
                found.push(ColumnName {
                    relation: relation.clone(),
                    column: name.to_string(),
                });
            }
        }
        if found.is_empty() {
            found.push(ColumnName {
                relation: None,
                column: name.to_string(),
            });
        }
        found
    }

    /// Whether output `name` is computed rather than a plain column (unknown names are
    /// taken as computed: nothing shows they are not).
    pub fn is_derived(&self, name: &str) -> bool {
        for item in &self.items {
            if let Item::Named {
                name: Some(n),
                derived,
                ..
            } = item
                && n == name
            {
                return *derived;
            }
        }
        true
    }

    /// The outputs as the statement's result columns.
    pub fn outputs(&self) -> Vec<super::OutputColumn> {
        self.items
            .iter()
            .map(|item| match item {
                Item::Named {
                    name,
                    columns,
                    derived,
                } => super::OutputColumn {
                    name: name.clone(),
                    sources: columns.clone(),
                    computed: *derived,
                    star: None,
                },
                Item::Star { columns, relation } => super::OutputColumn {
                    name: None,
                    sources: columns.clone(),
                    computed: false,
                    star: Some(relation.clone()),
                },
            })
            .collect()
    }

    /// The names of the outputs.
    pub fn names(&self) -> Vec<String> {
        self.items
            .iter()
            .filter_map(|item| match item {
                Item::Named { name, .. } => name.clone(),
                Item::Star { .. } => None,
            })
            .collect()
    }

    /// Whether an output called `name` may exist.
    pub fn may_have(&self, name: &str) -> bool {
        self.items.iter().any(|item| match item {
            Item::Named { name: n, .. } => n.as_deref() == Some(name),
            Item::Star { .. } => true,
        })
    }

    /// Every column the outputs read: what `*` or a whole-row reference to it reads.
    pub fn all_columns(&self) -> Vec<ColumnName> {
        let mut all = Vec::new();
        for item in &self.items {
            match item {
                Item::Named { columns, .. } | Item::Star { columns, .. } => {
                    all.extend(columns.iter().cloned());
                }
            }
        }
        all
    }
}

/// What a FROM item is.
#[derive(Clone, Debug)]
pub(super) enum SourceKind {
    /// A table or view. `renamed`: `AS x(a, b)` hides its column names.
    Table {
        relation: RelationName,
        renamed: bool,
    },
    /// A derived table or CTE.
    Shaped(Shape),
    /// A set-returning function: its columns are computed from what its arguments read.
    Function(Vec<ColumnName>),
}

#[derive(Clone, Debug)]
pub(super) struct Source {
    /// The name the query refers to it by (alias, table, CTE or function name).
    pub name: String,
    /// For an unaliased table, its name, so `schema.table.column` finds it.
    pub table: Option<RelationName>,
    pub kind: SourceKind,
}

impl Source {
    pub fn table(relation: RelationName, alias: Option<String>, renamed: bool) -> Source {
        match alias {
            Some(name) => Source {
                name,
                table: None,
                kind: SourceKind::Table { relation, renamed },
            },
            None => Source {
                name: relation.name.clone(),
                table: Some(relation.clone()),
                kind: SourceKind::Table { relation, renamed },
            },
        }
    }

    pub fn shaped(name: String, shape: Shape) -> Source {
        Source {
            name,
            table: None,
            kind: SourceKind::Shaped(shape),
        }
    }

    pub fn function(name: String, read: Vec<ColumnName>) -> Source {
        Source {
            name,
            table: None,
            kind: SourceKind::Function(read),
        }
    }

    /// Whether `qualifier` (the parts before a column name) names this source.
    fn is_named(&self, qualifier: &[String]) -> bool {
        match qualifier {
            [name] => *name == self.name,
            [schema, name] | [_, schema, name] => self
                .table
                .as_ref()
                .is_some_and(|t| t.name == *name && t.schema.as_ref().is_none_or(|s| s == schema)),
            _ => false,
        }
    }

    /// The columns reading `column` of this source reads.
    pub fn column(&self, column: &str) -> Vec<ColumnName> {
        match &self.kind {
            SourceKind::Table { relation, renamed } => vec![ColumnName {
                relation: Some(relation.clone()),
                column: if *renamed { "*".into() } else { column.into() },
            }],
            SourceKind::Shaped(shape) => shape.resolve(column),
            SourceKind::Function(read) => read.clone(),
        }
    }

    /// Whether reading `column` of this source gives a computed value.
    fn is_derived(&self, column: &str) -> bool {
        match &self.kind {
            SourceKind::Table { .. } => false,
            SourceKind::Shaped(shape) => shape.is_derived(column),
            SourceKind::Function(_) => true,
        }
    }

    /// What `source.*` (or a whole-row reference) reads.
    pub fn star(&self) -> Vec<ColumnName> {
        match &self.kind {
            SourceKind::Table { relation, .. } => vec![ColumnName {
                relation: Some(relation.clone()),
                column: "*".into(),
            }],
            SourceKind::Shaped(shape) => shape.all_columns(),
            SourceKind::Function(read) => read.clone(),
        }
    }

    /// What `source.*` contributes to a query's output shape.
    pub fn star_shape(&self) -> Shape {
        let mut shape = Shape::default();
        match &self.kind {
            SourceKind::Table { relation, renamed } => shape.star(
                self.star(),
                if *renamed {
                    None
                } else {
                    Some(relation.clone())
                },
            ),
            SourceKind::Shaped(inner) => shape.extend(inner.clone()),
            SourceKind::Function(read) => shape.star(read.clone(), None),
        }
        shape
    }

    fn may_have(&self, column: &str) -> bool {
        match &self.kind {
            SourceKind::Table { .. } | SourceKind::Function(_) => true,
            SourceKind::Shaped(shape) => shape.may_have(column),
        }
    }
}

/// A CTE visible at a level.
#[derive(Clone, Debug)]
pub(super) struct Cte {
    pub name: String,
    pub shape: Shape,
}

/// One query level.
#[derive(Debug, Default)]
pub(super) struct Scope<'p> {
    pub parent: Option<&'p Scope<'p>>,
    pub ctes: Vec<Cte>,
    pub sources: Vec<Source>,
}

impl<'p> Scope<'p> {
    pub fn child(parent: Option<&'p Scope<'p>>) -> Scope<'p> {
        Scope {
            parent,
            ctes: Vec::new(),
            sources: Vec::new(),
        }
    }

    fn levels(&self) -> impl Iterator<Item = &Scope<'_>> {
        std::iter::successors(Some(self), |s| s.parent)
    }

    /// The CTE an unqualified table name refers to, innermost first.
    pub fn cte(&self, name: &str) -> Option<&Cte> {
        self.levels()
            .flat_map(|level| level.ctes.iter().rev())
            .find(|cte| cte.name == name)
    }

    /// The source `qualifier` names, innermost level first.
    pub fn source(&self, qualifier: &[String]) -> Option<&Source> {
        self.levels()
            .flat_map(|level| level.sources.iter())
            .find(|s| s.is_named(qualifier))
    }

    /// The columns a reference `parts` (`col`, `t.col`, `s.t.col`) reads.
    pub fn resolve(&self, parts: &[String]) -> Vec<ColumnName> {
        match parts {
            [] => Vec::new(),
            [column] => self.resolve_unqualified(column),
            [qualifier @ .., column] => match self.source(qualifier) {
                Some(source) => source.column(column),
                // Not a FROM item here: the server would reject it; report it as written.
                None => vec![ColumnName {
                    relation: super::names::relation_from_parts(qualifier).ok(),
                    column: column.clone(),
                }],
            },
        }
    }

    /// Whether the reference `parts` reads a computed value (a computed output of a derived
    /// table or CTE, a function's output); a whole-row reference counts as computed.
    pub fn is_derived(&self, parts: &[String]) -> bool {
        match parts {
            [] => true,
            [column] => {
                if self.source(std::slice::from_ref(column)).is_some() {
                    return true;
                }
                match self.levels().find(|l| !l.sources.is_empty()) {
                    Some(level) => level
                        .sources
                        .iter()
                        .filter(|s| s.may_have(column))
                        .any(|s| s.is_derived(column)),
                    None => false,
                }
            }
            [qualifier @ .., column] => self
                .source(qualifier)
                .is_some_and(|source| source.is_derived(column)),
        }
    }

    fn resolve_unqualified(&self, column: &str) -> Vec<ColumnName> {
        let mut found = Vec::new();
        let mut levels = self.levels().filter(|l| !l.sources.is_empty());
        // A FROM item of that name: a whole-row reference (the server prefers a column of
        // that name, which the whole row covers).
        if let Some(source) = self.source(&[column.to_string()]) {
            found.extend(source.star());
            if levels
                .next()
                .is_some_and(|l| l.sources.iter().any(|s| s.name == column))
            {
                return found;
            }
        }
        let mut levels = self.levels().filter(|l| !l.sources.is_empty()).peekable();
        while let Some(level) = levels.next() {
            let candidates: Vec<&Source> = level
                .sources
                .iter()
                .filter(|s| s.may_have(column))
                .collect();
            match candidates.as_slice() {
                [] => continue,
                [only] => {
                    found.extend(only.column(column));
                    // An outer level could own it instead if this one lacks the column.
                    if levels.peek().is_some() {
                        found.push(ColumnName {
                            relation: None,
                            column: column.to_string(),
                        });
                    }
                }
                _ => found.push(ColumnName {
                    relation: None,
                    column: column.to_string(),
                }),
            }
            return found;
        }
        found.push(ColumnName {
            relation: None,
            column: column.to_string(),
        });
        found
    }

    /// What an unqualified `*` reads and outputs: every source of the nearest level.
    pub fn star(&self) -> (Vec<ColumnName>, Shape) {
        let mut columns = Vec::new();
        let mut shape = Shape::default();
        if let Some(level) = self.levels().find(|l| !l.sources.is_empty()) {
            for source in &level.sources {
                columns.extend(source.star());
                shape.extend(source.star_shape());
            }
        }
        (columns, shape)
    }
}
