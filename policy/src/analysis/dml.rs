//! INSERT, UPDATE, DELETE, MERGE and COPY: their targets are written, what they read
//! from is read, assignment targets are columns of the target, and UPDATE/DELETE are
//! checked for an effective WHERE.

use sqlparser::ast::{
    Assignment, AssignmentTarget, ConflictTarget, CopySource, Delete, DoUpdate, Expr, FromTable,
    Insert, Merge, MergeAction, MergeClause, MergeClauseKind, MergeInsertExpr, MergeInsertKind,
    MergeUpdateExpr, MergeUpdateKind, ObjectName, OnConflict, OnConflictAction, OnInsert,
    OutputClause, SelectItem, TableFactor, TableObject, TableWithJoins, Update,
    UpdateTableFromKind,
};

use super::query::QueryKind;
use super::scope::{Scope, Shape, Source, SourceKind};
use super::walker::Walker;
use super::where_clause;
use super::{ColumnName, RelationName, names};
use crate::model::Operation;

impl Walker<'_> {
    pub fn insert(&mut self, insert: &Insert, parent: Option<&Scope<'_>>) -> Shape {
        let Insert {
            insert_token: _,
            optimizer_hints: _,
            or,
            ignore,
            into,
            table,
            table_alias,
            columns,
            by_name,
            overwrite,
            source,
            assignments,
            partitioned,
            after_columns,
            overriding: _,
            has_table_keyword,
            on,
            returning,
            output,
            replace_into,
            priority,
            insert_alias,
            settings,
            format_clause,
            multi_table_insert_type,
            multi_table_into_clauses,
            multi_table_when_clauses,
            multi_table_else_clause,
        } = insert;
        self.reject(or.is_some() || *replace_into, "INSERT OR/REPLACE");
        self.reject(*ignore || priority.is_some(), "INSERT IGNORE/priority");
        self.reject(!*into || *has_table_keyword, "INSERT without INTO");
        self.reject(*by_name || *overwrite, "INSERT BY NAME/OVERWRITE");
        self.reject(!assignments.is_empty(), "INSERT … SET");
        self.reject(
            partitioned.is_some() || !after_columns.is_empty(),
            "INSERT … PARTITION",
        );
        self.reject(output.is_some(), "OUTPUT");
        self.reject(insert_alias.is_some(), "INSERT … AS row alias");
        self.reject(
            settings.is_some() || format_clause.is_some(),
            "SETTINGS/FORMAT",
        );
        self.reject(
            multi_table_insert_type.is_some()
                || !multi_table_into_clauses.is_empty()
                || !multi_table_when_clauses.is_empty()
                || multi_table_else_clause.is_some(),
            "a multi-table INSERT",
        );
        self.facts.op(Operation::Insert);
        if let Some(source) = source {
            let shape = self.query(source, parent, QueryKind::InsertSource);
            self.facts.copied(shape.all_columns());
        }
        let TableObject::TableName(name) = table else {
            self.facts
                .not_postgres("INSERT into a function or subquery");
            return Shape::default();
        };
        let Some(relation) = self.write(name) else {
            return Shape::default();
        };
        if columns.is_empty() {
            self.all_columns(&relation);
        } else {
            self.target_columns(&relation, columns);
        }
        let alias = table_alias.as_ref().map(|a| names::ident(&a.alias));
        let target = Source::table(relation.clone(), alias, false);
        let scope = Scope {
            parent,
            ctes: Vec::new(),
            sources: vec![target.clone()],
        };
        match on {
            None => {}
            Some(OnInsert::OnConflict(OnConflict {
                conflict_target,
                action,
            })) => {
                match conflict_target {
                    Some(ConflictTarget::Columns { columns, predicate }) => {
                        self.columns_of(&relation, columns);
                        self.exprs(predicate, &scope);
                    }
                    Some(ConflictTarget::OnConstraint(_)) | None => {}
                }
                if let OnConflictAction::DoUpdate(DoUpdate {
                    assignments,
                    selection,
                }) = action
                {
                    // An upsert updates the conflicting rows.
                    self.facts.op(Operation::Update);
                    let excluded = Source {
                        name: "excluded".into(),
                        table: None,
                        kind: SourceKind::Table {
                            relation: relation.clone(),
                            renamed: false,
                        },
                    };
                    let scope = Scope {
                        parent,
                        ctes: Vec::new(),
                        sources: vec![target, excluded],
                    };
                    self.assignments(assignments, &relation, &scope);
                    self.exprs(selection, &scope);
                }
            }
            Some(_) => self.facts.not_postgres("ON DUPLICATE KEY UPDATE"),
        }
        self.returning(returning.as_deref(), &scope)
    }

    pub fn update(&mut self, update: &Update, parent: Option<&Scope<'_>>) -> Shape {
        let Update {
            update_token: _,
            optimizer_hints: _,
            table,
            on_cluster,
            assignments,
            from,
            selection,
            returning,
            output,
            or,
            order_by,
            limit,
            settings,
        } = update;
        self.reject(
            on_cluster.is_some() || settings.is_some(),
            "ON CLUSTER/SETTINGS",
        );
        self.reject(output.is_some(), "OUTPUT");
        self.reject(or.is_some(), "UPDATE OR");
        self.reject(
            !order_by.is_empty() || limit.is_some(),
            "UPDATE … ORDER BY/LIMIT",
        );
        self.facts.op(Operation::Update);
        let TableWithJoins {
            relation: factor,
            joins,
        } = table;
        self.reject(!joins.is_empty(), "UPDATE of a join");
        let Some(target) = self.target(factor) else {
            return Shape::default();
        };
        let relation = target_relation(&target);
        let items: &[TableWithJoins] = match from {
            None => &[],
            Some(UpdateTableFromKind::AfterSet(items)) => items,
            Some(UpdateTableFromKind::BeforeSet(_)) => {
                self.facts.not_postgres("UPDATE … FROM before SET");
                &[]
            }
        };
        let base = Scope::child(parent);
        let (mut sources, conditions) = self.from(items, &base);
        sources.insert(0, target);
        let scope = Scope {
            parent,
            ctes: Vec::new(),
            sources,
        };
        self.join_conditions(&conditions, &scope);
        self.assignments(assignments, &relation, &scope);
        self.filter_and_return(selection.as_ref(), returning.as_deref(), &scope)
    }

    /// The tail UPDATE and DELETE share: the WHERE (is it effective?) and RETURNING.
    fn filter_and_return(
        &mut self,
        selection: Option<&Expr>,
        returning: Option<&[SelectItem]>,
        scope: &Scope<'_>,
    ) -> Shape {
        if let Some(selection) = selection {
            self.predicate(|w| w.exprs(selection, scope));
        }
        if !where_clause::is_effective(selection, scope) {
            self.facts.without_where();
        }
        self.returning(returning, scope)
    }

    pub fn delete(&mut self, delete: &Delete, parent: Option<&Scope<'_>>) -> Shape {
        let Delete {
            delete_token: _,
            optimizer_hints: _,
            tables,
            from,
            on_cluster,
            using,
            selection,
            returning,
            output,
            order_by,
            limit,
            settings,
        } = delete;
        self.reject(!tables.is_empty(), "DELETE of several tables");
        self.reject(
            on_cluster.is_some() || settings.is_some(),
            "ON CLUSTER/SETTINGS",
        );
        self.reject(output.is_some(), "OUTPUT");
        self.reject(
            !order_by.is_empty() || limit.is_some(),
            "DELETE … ORDER BY/LIMIT",
        );
        self.facts.op(Operation::Delete);
        let items = match from {
            FromTable::WithFromKeyword(items) => items,
            FromTable::WithoutKeyword(items) => {
                self.facts.not_postgres("DELETE without FROM");
                items
            }
        };
        let [
            TableWithJoins {
                relation: factor,
                joins,
            },
        ] = items.as_slice()
        else {
            self.facts.not_postgres("DELETE from several tables");
            return Shape::default();
        };
        self.reject(!joins.is_empty(), "DELETE from a join");
        let Some(target) = self.target(factor) else {
            return Shape::default();
        };
        let base = Scope::child(parent);
        let (mut sources, conditions) = self.from(using.as_deref().unwrap_or(&[]), &base);
        sources.insert(0, target);
        let scope = Scope {
            parent,
            ctes: Vec::new(),
            sources,
        };
        self.join_conditions(&conditions, &scope);
        self.filter_and_return(selection.as_ref(), returning.as_deref(), &scope)
    }

    pub fn merge(&mut self, merge: &Merge, parent: Option<&Scope<'_>>) -> Shape {
        let Merge {
            merge_token: _,
            optimizer_hints: _,
            into,
            table,
            source,
            on,
            clauses,
            output,
        } = merge;
        self.reject(!*into, "MERGE without INTO");
        self.facts.op(Operation::Merge);
        let Some(target) = self.target(table) else {
            return Shape::default();
        };
        let relation = target_relation(&target);
        let base = Scope::child(parent);
        let mut sources = vec![target];
        let mut conditions = Vec::new();
        self.table_factor(source, &base, &mut sources, &mut conditions);
        let scope = Scope {
            parent,
            ctes: Vec::new(),
            sources,
        };
        self.join_conditions(&conditions, &scope);
        self.predicate(|w| w.exprs(on.as_ref(), &scope));
        let joins_everything = where_clause::is_tautology(on, &scope);
        for clause in clauses {
            let MergeClause {
                when_token: _,
                clause_kind,
                predicate,
                action,
            } = clause;
            self.predicate(|w| w.exprs(predicate, &scope));
            let unrestricted = joins_everything
                && matches!(clause_kind, MergeClauseKind::Matched)
                && !where_clause::is_effective(predicate.as_ref(), &scope);
            match action {
                MergeAction::Insert(MergeInsertExpr {
                    insert_token: _,
                    columns,
                    kind_token: _,
                    kind,
                    insert_predicate,
                }) => {
                    self.reject(insert_predicate.is_some(), "MERGE INSERT … WHERE");
                    self.facts.op(Operation::Insert);
                    if columns.is_empty() {
                        self.all_columns(&relation);
                    } else {
                        self.target_columns(&relation, columns);
                    }
                    match kind {
                        MergeInsertKind::Values(values) => {
                            let read = self.capture(|w| w.exprs(&values.rows, &scope));
                            self.facts.copied(read);
                        }
                        MergeInsertKind::Row | MergeInsertKind::Wildcard => {
                            self.facts.not_postgres("MERGE INSERT ROW/*");
                        }
                    }
                }
                MergeAction::Update(MergeUpdateExpr {
                    update_token: _,
                    kind,
                    update_predicate,
                    delete_predicate,
                }) => {
                    self.reject(
                        update_predicate.is_some() || delete_predicate.is_some(),
                        "MERGE UPDATE … WHERE",
                    );
                    self.facts.op(Operation::Update);
                    if unrestricted {
                        self.facts.without_where();
                    }
                    match kind {
                        MergeUpdateKind::Set(assignments) => {
                            self.assignments(assignments, &relation, &scope);
                        }
                        MergeUpdateKind::Wildcard => self.facts.not_postgres("MERGE UPDATE *"),
                    }
                }
                MergeAction::Delete { .. } => {
                    self.facts.op(Operation::Delete);
                    if unrestricted {
                        self.facts.without_where();
                    }
                }
                MergeAction::DoNothing { .. } => {}
            }
        }
        match output {
            None => Shape::default(),
            Some(OutputClause::Returning {
                returning_token: _,
                select_items,
            }) => self.returning(Some(select_items), &scope),
            Some(OutputClause::Output { .. }) => {
                self.facts.not_postgres("OUTPUT");
                Shape::default()
            }
        }
    }

    /// `COPY t [(cols)] TO …` reads t, `COPY t FROM …` writes it, `COPY (query) TO …`
    /// runs the query.
    pub fn copy(&mut self, source: &CopySource, to: bool, to_stdout: bool) {
        self.facts.op(Operation::Copy);
        let mut copied = Vec::new();
        let mut from_query = false;
        match source {
            CopySource::Table {
                table_name,
                columns,
            } => {
                let relation = if to {
                    self.read(table_name)
                } else {
                    self.write(table_name)
                };
                if let Some(relation) = relation {
                    copied = if columns.is_empty() {
                        vec![ColumnName {
                            relation: Some(relation.clone()),
                            column: "*".into(),
                        }]
                    } else {
                        columns
                            .iter()
                            .map(|c| ColumnName {
                                relation: Some(relation.clone()),
                                column: names::ident(c),
                            })
                            .collect()
                    };
                    if columns.is_empty() {
                        self.all_columns(&relation);
                    } else {
                        self.columns_of(&relation, columns);
                    }
                }
            }
            CopySource::Query(query) => {
                self.reject(!to, "COPY (query) FROM");
                let shape = self.query(query, None, QueryKind::Subquery);
                copied = shape.all_columns();
                from_query = true;
            }
        }
        if to {
            if to_stdout {
                self.facts.info.copy_out = Some(super::CopyOut {
                    columns: copied,
                    from_query,
                });
            } else {
                self.facts.copied(copied);
            }
        }
    }

    /// The target of UPDATE/DELETE/MERGE: a plain table, written.
    fn target(&mut self, factor: &TableFactor) -> Option<Source> {
        self.facts.mark_factor(factor);
        let TableFactor::Table {
            name,
            alias,
            args: None,
            with_hints,
            version: None,
            with_ordinality: false,
            partitions,
            json_path: None,
            sample: None,
            index_directives,
            inheritance: _,
        } = factor
        else {
            self.facts.not_postgres("this target");
            return None;
        };
        self.reject(
            !with_hints.is_empty() || !partitions.is_empty() || !index_directives.is_empty(),
            "table hints",
        );
        let relation = self.write(name)?;
        let renamed = alias.as_ref().is_some_and(|a| !a.columns.is_empty());
        self.reject(renamed, "column aliases on a target");
        Some(Source::table(
            relation,
            alias.as_ref().map(|a| names::ident(&a.name)),
            false,
        ))
    }

    /// INSERT column lists: the first part names the column (`col.field`, `col[1]`).
    fn target_columns(&mut self, relation: &RelationName, columns: &[ObjectName]) {
        for column in columns {
            match names::parts(column) {
                Some(parts) if !parts.is_empty() => self.facts.column(ColumnName {
                    relation: Some(relation.clone()),
                    column: parts[0].clone(),
                }),
                _ => self.facts.not_postgres("a computed column name"),
            }
        }
    }

    fn assignments(
        &mut self,
        assignments: &[Assignment],
        relation: &RelationName,
        scope: &Scope<'_>,
    ) {
        for Assignment { target, value } in assignments {
            match target {
                AssignmentTarget::ColumnName(column) => {
                    self.target_columns(relation, std::slice::from_ref(column));
                }
                AssignmentTarget::Tuple(columns) => self.target_columns(relation, columns),
            }
            let read = self.capture(|w| w.exprs(value, scope));
            self.facts.copied(read);
        }
    }

    fn returning(&mut self, items: Option<&[SelectItem]>, scope: &Scope<'_>) -> Shape {
        match items {
            Some(items) => self.projection(items, scope),
            None => Shape::default(),
        }
    }
}

fn target_relation(target: &Source) -> RelationName {
    match &target.kind {
        SourceKind::Table { relation, .. } => relation.clone(),
        // `target` only builds tables.
        SourceKind::Shaped(_) | SourceKind::Function(_) => RelationName {
            schema: None,
            name: target.name.clone(),
        },
    }
}
