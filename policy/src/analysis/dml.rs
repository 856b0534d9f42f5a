//! INSERT, UPDATE, DELETE, MERGE and COPY: their targets are written, what they read
//! from is read, assignment targets are columns of the target, and UPDATE/DELETE are
//! checked for an effective WHERE.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    CmdType, CopyStmt, DeleteStmt, InsertStmt, MergeMatchKind, MergeStmt, Node, OnConflictAction,
    RangeVar, ReturningClause, UpdateStmt, WithClause,
};

use super::query::QueryKind;
use super::scope::{Scope, Shape, Source, SourceKind};
use super::walker::{Walker, column_name};
use super::where_clause;
use super::{ColumnName, RelationName};
use crate::model::Operation;

impl Walker<'_> {
    /// A DML statement's own WITH: its CTEs are visible to the whole statement.
    fn dml_scope<'p>(
        &mut self,
        with: Option<&WithClause>,
        parent: Option<&'p Scope<'p>>,
    ) -> Scope<'p> {
        let mut scope = Scope::child(parent);
        if let Some(with) = with {
            // Reuse the query walk's CTE handling through a SELECT-less shell.
            self.ctes(with, &mut scope);
        }
        scope
    }

    pub fn insert(&mut self, insert: &InsertStmt, parent: Option<&Scope<'_>>) -> Shape {
        let base = self.dml_scope(insert.with_clause.as_ref(), parent);
        self.facts.op(Operation::Insert);
        if let Some(source) = insert.select_stmt.as_deref() {
            let shape = self.query_node(source, Some(&base), QueryKind::InsertSource);
            self.facts.copied(shape.all_columns());
        }
        let Some(range) = &insert.relation else {
            return Shape::default();
        };
        let relation = self.write(range);
        if insert.cols.is_empty() {
            self.all_columns(&relation);
        } else {
            self.columns_of(&relation, &insert.cols);
        }
        let alias = range.alias.as_ref().map(|a| a.aliasname.clone());
        let target = Source::table(relation.clone(), alias, false);
        let scope = Scope {
            parent: Some(&base),
            ctes: Vec::new(),
            sources: vec![target.clone()],
        };
        if let Some(conflict) = &insert.on_conflict_clause {
            if let Some(infer) = &conflict.infer {
                self.columns_of(&relation, &infer.index_elems);
                for elem in &infer.index_elems {
                    if let Some(NodeEnum::IndexElem(e)) = elem.node.as_ref() {
                        self.opt_expr(e.expr.as_deref(), &scope);
                    }
                }
                self.opt_expr(infer.where_clause.as_deref(), &scope);
            }
            if conflict.action == OnConflictAction::OnconflictUpdate as i32 {
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
                    parent: Some(&base),
                    ctes: Vec::new(),
                    sources: vec![target, excluded],
                };
                self.assignments(&conflict.target_list, &relation, &scope);
                self.opt_expr(conflict.where_clause.as_deref(), &scope);
            }
        }
        self.returning(insert.returning_clause.as_ref(), &scope)
    }

    pub fn update(&mut self, update: &UpdateStmt, parent: Option<&Scope<'_>>) -> Shape {
        let base = self.dml_scope(update.with_clause.as_ref(), parent);
        self.facts.op(Operation::Update);
        let Some(range) = &update.relation else {
            return Shape::default();
        };
        let (target, relation) = self.target(range);
        let (mut sources, conditions) = self.from(&update.from_clause, &base);
        sources.insert(0, target);
        let scope = Scope {
            parent: Some(&base),
            ctes: Vec::new(),
            sources,
        };
        self.join_conditions(&conditions, &scope);
        self.assignments(&update.target_list, &relation, &scope);
        self.filter_and_return(
            update.where_clause.as_deref(),
            update.returning_clause.as_ref(),
            &scope,
        )
    }

    /// The tail UPDATE and DELETE share: the WHERE (is it effective?) and RETURNING.
    fn filter_and_return(
        &mut self,
        selection: Option<&Node>,
        returning: Option<&ReturningClause>,
        scope: &Scope<'_>,
    ) -> Shape {
        if let Some(selection) = selection {
            self.predicate(|w| w.expr(selection, scope));
        }
        if !where_clause::is_effective(selection, scope) {
            self.facts.without_where();
        }
        self.returning(returning, scope)
    }

    pub fn delete(&mut self, delete: &DeleteStmt, parent: Option<&Scope<'_>>) -> Shape {
        let base = self.dml_scope(delete.with_clause.as_ref(), parent);
        self.facts.op(Operation::Delete);
        let Some(range) = &delete.relation else {
            return Shape::default();
        };
        let (target, _) = self.target(range);
        let (mut sources, conditions) = self.from(&delete.using_clause, &base);
        sources.insert(0, target);
        let scope = Scope {
            parent: Some(&base),
            ctes: Vec::new(),
            sources,
        };
        self.join_conditions(&conditions, &scope);
        self.filter_and_return(
            delete.where_clause.as_deref(),
            delete.returning_clause.as_ref(),
            &scope,
        )
    }

    pub fn merge(&mut self, merge: &MergeStmt, parent: Option<&Scope<'_>>) -> Shape {
        let base = self.dml_scope(merge.with_clause.as_ref(), parent);
        self.facts.op(Operation::Merge);
        let Some(range) = &merge.relation else {
            return Shape::default();
        };
        let (target, relation) = self.target(range);
        let mut sources = vec![target];
        let mut conditions = Vec::new();
        if let Some(source) = merge.source_relation.as_deref() {
            self.from_item(source, &base, &mut sources, &mut conditions);
        }
        let scope = Scope {
            parent: Some(&base),
            ctes: Vec::new(),
            sources,
        };
        self.join_conditions(&conditions, &scope);
        let on = merge.join_condition.as_deref();
        self.predicate(|w| w.opt_expr(on, &scope));
        let joins_everything = on.is_none_or(|on| where_clause::is_tautology(on, &scope));
        for clause in &merge.merge_when_clauses {
            let Some(NodeEnum::MergeWhenClause(clause)) = clause.node.as_ref() else {
                continue;
            };
            let condition = clause.condition.as_deref();
            self.predicate(|w| w.opt_expr(condition, &scope));
            let unrestricted = joins_everything
                && clause.match_kind == MergeMatchKind::MergeWhenMatched as i32
                && !where_clause::is_effective(condition, &scope);
            match CmdType::try_from(clause.command_type) {
                Ok(CmdType::CmdInsert) => {
                    self.facts.op(Operation::Insert);
                    if clause.target_list.is_empty() {
                        self.all_columns(&relation);
                    } else {
                        self.columns_of(&relation, &clause.target_list);
                    }
                    let read = self.capture(|w| w.exprs(&clause.values, &scope));
                    self.facts.copied(read);
                }
                Ok(CmdType::CmdUpdate) => {
                    self.facts.op(Operation::Update);
                    if unrestricted {
                        self.facts.without_where();
                    }
                    self.assignments(&clause.target_list, &relation, &scope);
                }
                Ok(CmdType::CmdDelete) => {
                    self.facts.op(Operation::Delete);
                    if unrestricted {
                        self.facts.without_where();
                    }
                }
                Ok(CmdType::CmdNothing) => {}
                _ => self.facts.fail("a MERGE action the analysis does not know"),
            }
        }
        self.returning(merge.returning_clause.as_ref(), &scope)
    }

    /// `COPY t [(cols)] TO …` reads t, `COPY t FROM …` writes it, `COPY (query) TO …`
    /// runs the query.
    pub fn copy(&mut self, copy: &CopyStmt) {
        self.facts.op(Operation::Copy);
        let to = !copy.is_from;
        let to_stdout = to && !copy.is_program && copy.filename.is_empty();
        let mut copied = Vec::new();
        let mut from_query = false;
        if let Some(range) = &copy.relation {
            let relation = if to {
                self.read(range)
            } else {
                self.write(range)
            };
            copied = if copy.attlist.is_empty() {
                vec![ColumnName {
                    relation: Some(relation.clone()),
                    column: "*".into(),
                }]
            } else {
                copy.attlist
                    .iter()
                    .filter_map(column_name)
                    .map(|c| ColumnName {
                        relation: Some(relation.clone()),
                        column: c.to_string(),
                    })
                    .collect()
            };
            if copy.attlist.is_empty() {
                self.all_columns(&relation);
            } else {
                self.columns_of(&relation, &copy.attlist);
            }
            if let Some(filter) = copy.where_clause.as_deref() {
                let scope = Scope {
                    parent: None,
                    ctes: Vec::new(),
                    sources: vec![Source::table(relation, None, false)],
                };
                self.predicate(|w| w.expr(filter, &scope));
            }
        } else if let Some(query) = copy.query.as_deref() {
            let shape = self.query_node(query, None, QueryKind::Subquery);
            copied = shape.all_columns();
            from_query = true;
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
    fn target(&mut self, range: &RangeVar) -> (Source, RelationName) {
        let relation = self.write(range);
        let alias = range.alias.as_ref().map(|a| a.aliasname.clone());
        (Source::table(relation.clone(), alias, false), relation)
    }

    /// `SET col = value`, `SET (a, b) = (…)`, `SET col[1] = …`, `SET col.field = …`: the
    /// target's columns are written with values computed from what the value reads.
    fn assignments(&mut self, targets: &[Node], relation: &RelationName, scope: &Scope<'_>) {
        for target in targets {
            let Some(NodeEnum::ResTarget(target)) = target.node.as_ref() else {
                continue;
            };
            self.facts.column(ColumnName {
                relation: Some(relation.clone()),
                column: target.name.clone(),
            });
            let read = self.capture(|w| {
                w.exprs(&target.indirection, scope);
                w.opt_expr(target.val.as_deref(), scope);
            });
            self.facts.copied(read);
        }
    }

    fn returning(&mut self, returning: Option<&ReturningClause>, scope: &Scope<'_>) -> Shape {
        match returning {
            Some(returning) if !returning.exprs.is_empty() => {
                self.projection(&returning.exprs, scope)
            }
            _ => Shape::default(),
        }
    }
}
