//! Statement → operations, by an explicit allowlist of the sqlparser statements
//! PostgreSQL has. The match is exhaustive (no `_` arm): a statement kind added by a
//! sqlparser upgrade does not compile until it is classified, and every kind other
//! dialects have fails the analysis as "not a PostgreSQL statement".

use sqlparser::ast::{
    AlterDefaultPrivilegesOperation, Analyze, DeclareType, DescribeAlias, Statement, Truncate,
    VacuumStatement,
};

use super::Named;
use super::SearchPathChange;
use super::names;
use super::query::QueryKind;
use super::scope::{Scope, Shape};
use super::walker::Walker;
use crate::model::Operation as Op;

impl Walker<'_> {
    /// Analyses `statement`; for one inside a query (a data-modifying CTE), `parent` is
    /// the query level it is in and the result is what its RETURNING outputs.
    #[recursive::recursive]
    pub fn statement(&mut self, statement: &Statement, parent: Option<&Scope<'_>>) -> Shape {
        if !self.facts.mark_statement(statement) {
            return Shape::default();
        }
        match statement {
            Statement::Query(query) => return self.query(query, parent, QueryKind::Subquery),
            Statement::Insert(insert) => return self.insert(insert, parent),
            Statement::Update(update) => return self.update(update, parent),
            Statement::Delete(delete) => return self.delete(delete, parent),
            Statement::Merge(merge) => return self.merge(merge, parent),
            Statement::Copy {
                source,
                to,
                target,
                options: _,
                legacy_options: _,
                payload,
            } => {
                self.reject(payload.is_some(), "inline COPY data");
                let to_stdout = matches!(target, sqlparser::ast::CopyTarget::Stdout);
                self.copy(source, *to, to_stdout);
            }

            Statement::Call(function) => {
                self.facts.op(Op::Call);
                self.facts.function(names::function(&function.name));
                self.facts.search_path(SearchPathChange::Unknown);
                self.exprs(&function.args, &Scope::child(parent));
            }
            Statement::Explain {
                describe_alias,
                analyze: _,
                verbose: _,
                query_plan,
                estimate,
                statement,
                format: _,
                options: _,
            } => {
                self.reject(*describe_alias != DescribeAlias::Explain, "DESCRIBE");
                self.reject(*query_plan || *estimate, "EXPLAIN QUERY PLAN/ESTIMATE");
                self.facts.op(Op::Explain);
                // Plain EXPLAIN does not run it, EXPLAIN ANALYZE does: report it either way.
                self.statement(statement, parent);
            }
            Statement::Prepare {
                name,
                data_types: _,
                statement,
            } => {
                self.facts.op(Op::Prepare);
                self.facts.info.defines = Some(Named::Prepared(names::ident(name)));
                return self.statement(statement, parent);
            }
            Statement::Execute {
                name,
                parameters,
                has_parentheses: _,
                immediate,
                into,
                using,
                output,
                default,
            } => {
                self.reject(
                    name.is_none()
                        || *immediate
                        || !into.is_empty()
                        || !using.is_empty()
                        || *output
                        || *default,
                    "EXECUTE IMMEDIATE/INTO/USING",
                );
                self.facts.op(Op::Execute);
                if let Some(name) = name.as_ref().and_then(names::parts)
                    && let [name] = name.as_slice()
                {
                    self.facts.info.uses = Some(Named::Prepared(name.clone()));
                }
                self.exprs(parameters, &Scope::child(parent));
            }
            Statement::Declare {
                stmts,
                separator: _,
            } => {
                self.facts.op(Op::Other);
                for declare in stmts {
                    self.reject(
                        declare.declare_type != Some(DeclareType::Cursor)
                            || declare.data_type.is_some()
                            || declare.assignment.is_some(),
                        "DECLARE of a variable",
                    );
                    if let Some(query) = &declare.for_query {
                        if let [name] = declare.names.as_slice() {
                            self.facts.info.defines = Some(Named::Cursor(names::ident(name)));
                        }
                        let shape = self.query(query, parent, QueryKind::Subquery);
                        if stmts.len() == 1 {
                            return shape;
                        }
                    }
                }
            }
            Statement::Fetch {
                name,
                direction: _,
                position: _,
                into,
            } => {
                self.reject(into.is_some(), "FETCH … INTO");
                self.facts.info.uses = Some(Named::Cursor(names::ident(name)));
                self.facts.op(Op::Other);
            }
            Statement::Close { .. } | Statement::Deallocate { .. } => self.facts.op(Op::Other),
            Statement::Discard { object_type } => self.discard(object_type),
            Statement::Load { extension_name } => {
                // PostgreSQL's LOAD takes a file name string; `LOAD x` is DuckDB's.
                self.reject(
                    extension_name.quote_style != Some('\''),
                    "LOAD of an extension",
                );
                self.facts.op(Op::Other);
            }
            Statement::Comment {
                object_type,
                object_name,
                comment: _,
                if_exists,
            } => {
                self.reject(*if_exists, "COMMENT IF EXISTS");
                self.comment(object_type, object_name);
            }
            Statement::RefreshMaterializedView(refresh) => {
                self.facts.op(Op::Other);
                self.write(&refresh.name);
            }

            Statement::Set(set) => self.set(set),
            Statement::Reset(reset) => self.reset(reset),
            Statement::ShowVariable { variable: _ } => self.facts.op(Op::Show),

            Statement::StartTransaction {
                modes: _,
                begin: _,
                transaction: _,
                modifier,
                statements,
                exception,
                has_end_keyword,
            } => {
                self.reject(
                    modifier.is_some()
                        || !statements.is_empty()
                        || exception.is_some()
                        || *has_end_keyword,
                    "a BEGIN … END block",
                );
                self.facts.op(Op::Transaction);
            }
            Statement::Commit {
                chain: _,
                end: _,
                modifier,
            } => {
                self.reject(modifier.is_some(), "COMMIT with a modifier");
                self.facts.op(Op::Transaction);
            }
            Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. } => {
                self.facts.op(Op::Transaction);
            }

            Statement::Lock(lock) => {
                self.facts.op(Op::Lock);
                for table in &lock.tables {
                    self.read(&table.name);
                }
            }
            Statement::Truncate(Truncate {
                table_names,
                partitions,
                table: _,
                if_exists: _,
                identity: _,
                cascade: _,
                on_cluster,
            }) => {
                self.reject(
                    partitions.is_some() || on_cluster.is_some(),
                    "TRUNCATE PARTITION/ON CLUSTER",
                );
                self.facts.op(Op::Truncate);
                for target in table_names {
                    self.write(&target.name);
                }
            }
            Statement::Vacuum(VacuumStatement {
                full: _,
                sort_only,
                delete_only,
                reindex,
                recluster,
                table_name,
                threshold,
                boost,
            }) => {
                self.reject(
                    *sort_only
                        || *delete_only
                        || *reindex
                        || *recluster
                        || threshold.is_some()
                        || *boost,
                    "Redshift VACUUM",
                );
                self.facts.op(Op::Vacuum);
                if let Some(table) = table_name {
                    self.write(table);
                }
            }
            Statement::Analyze(Analyze {
                table_name,
                partitions,
                for_columns,
                columns,
                cache_metadata,
                noscan,
                compute_statistics,
                has_table_keyword,
            }) => {
                self.reject(
                    partitions.is_some()
                        || *for_columns
                        || *cache_metadata
                        || *noscan
                        || *compute_statistics
                        || *has_table_keyword,
                    "Hive ANALYZE",
                );
                self.facts.op(Op::Vacuum);
                if let Some(relation) = table_name.as_ref().and_then(|t| self.read(t)) {
                    self.columns_of(&relation, columns);
                }
            }
            Statement::LISTEN { .. } | Statement::UNLISTEN { .. } | Statement::NOTIFY { .. } => {
                self.facts.op(Op::Listen);
            }

            Statement::Grant(grant) => {
                self.facts.op(Op::Grant);
                self.grant_objects(grant.objects.as_ref());
            }
            Statement::Revoke(revoke) => {
                self.facts.op(Op::Revoke);
                self.grant_objects(revoke.objects.as_ref());
            }
            Statement::GrantRole(_) => self.facts.op(Op::Grant),
            Statement::RevokeRole(_) => self.facts.op(Op::Revoke),
            Statement::AlterDefaultPrivileges(alter) => {
                self.facts.op(Op::Alter);
                self.facts.op(match alter.operation {
                    AlterDefaultPrivilegesOperation::Grant { .. } => Op::Grant,
                    AlterDefaultPrivilegesOperation::Revoke { .. } => Op::Revoke,
                });
            }

            Statement::CreateTable(create) => self.create_table(create),
            Statement::CreateView(create) => self.create_view(create),
            Statement::CreateIndex(create) => self.create_index(create),
            Statement::CreateSequence { name, .. } => {
                self.facts.op(Op::Create);
                self.write(name);
            }
            Statement::CreateForeignTable(create) => {
                self.facts.op(Op::Create);
                self.write(&create.name);
                if let Some(parent) = &create.partition_of {
                    self.write(parent);
                }
            }
            Statement::CreatePolicy(create) => {
                self.facts.op(Op::Create);
                self.write(&create.table_name);
            }
            Statement::CreateRule(create) => {
                self.facts.op(Op::Create);
                self.write(&create.table_name);
            }
            Statement::CreateTrigger(create) => {
                self.reject(create.or_alter, "CREATE OR ALTER TRIGGER");
                self.facts.op(Op::Create);
                self.write(&create.table_name);
                if let Some(referenced) = &create.referenced_table_name {
                    self.read(referenced);
                }
            }
            Statement::CreateFunction(create) => {
                self.reject(create.or_alter, "CREATE OR ALTER FUNCTION");
                self.facts.op(Op::Create);
            }
            Statement::CreateProcedure { or_alter, .. } => {
                self.reject(*or_alter, "CREATE OR ALTER PROCEDURE");
                self.facts.op(Op::Create);
            }
            Statement::CreateSchema {
                clone,
                with,
                options,
                default_collate_spec,
                ..
            } => {
                self.reject(
                    clone.is_some()
                        || with.is_some()
                        || options.is_some()
                        || default_collate_spec.is_some(),
                    "CREATE SCHEMA CLONE/WITH/OPTIONS",
                );
                self.facts.op(Op::Create);
            }
            Statement::CreateDatabase { .. }
            | Statement::CreateRole(_)
            | Statement::CreateUser(_)
            | Statement::CreateExtension(_)
            | Statement::CreateCollation(_)
            | Statement::CreateServer(_)
            | Statement::CreateForeignDataWrapper(_)
            | Statement::CreateUserMapping(_)
            | Statement::CreateOperator(_)
            | Statement::CreateOperatorFamily(_)
            | Statement::CreateOperatorClass(_)
            | Statement::CreateTextSearch(_)
            | Statement::CreateAggregate(_)
            | Statement::CreateDomain(_)
            | Statement::CreateType { .. } => self.facts.op(Op::Create),

            Statement::AlterTable(alter) => self.alter_table(alter),
            Statement::AlterView(alter) => self.alter_view(alter),
            Statement::AlterIndex { name, operation } => self.alter_index(name, operation),
            Statement::AlterPolicy(alter) => {
                self.facts.op(Op::Alter);
                self.write(&alter.table_name);
            }
            Statement::AlterTrigger(alter) => {
                self.facts.op(Op::Alter);
                self.write(&alter.table_name);
            }
            Statement::AlterSchema(_)
            | Statement::AlterFunction(_)
            | Statement::AlterType(_)
            | Statement::AlterCollation(_)
            | Statement::AlterOperator(_)
            | Statement::AlterOperatorFamily(_)
            | Statement::AlterOperatorClass(_)
            | Statement::AlterTextSearch(_)
            | Statement::AlterRole { .. }
            | Statement::AlterUser(_) => self.facts.op(Op::Alter),

            Statement::Drop {
                object_type,
                if_exists: _,
                names,
                cascade: _,
                restrict: _,
                purge,
                temporary,
                table,
            } => {
                self.reject(*purge || *temporary, "DROP PURGE/TEMPORARY");
                self.drop(object_type, names, table.as_ref());
            }
            Statement::DropPolicy(drop) => {
                self.facts.op(Op::Drop);
                self.write(&drop.table_name);
            }
            Statement::DropRule(drop) => {
                self.facts.op(Op::Drop);
                self.write(&drop.table_name);
            }
            Statement::DropTrigger(drop) => {
                self.facts.op(Op::Drop);
                if let Some(table) = &drop.table_name {
                    self.write(table);
                }
            }
            Statement::DropFunction(_)
            | Statement::DropProcedure { .. }
            | Statement::DropDomain(_)
            | Statement::DropExtension(_)
            | Statement::DropOperator(_)
            | Statement::DropOperatorFamily(_)
            | Statement::DropOperatorClass(_) => self.facts.op(Op::Drop),

            // Other dialects' statements.
            Statement::Msck(_)
            | Statement::Install { .. }
            | Statement::Directory { .. }
            | Statement::Case(_)
            | Statement::If(_)
            | Statement::While(_)
            | Statement::Raise(_)
            | Statement::CopyIntoSnowflake { .. }
            | Statement::Open(_)
            | Statement::CreateVirtualTable { .. }
            | Statement::CreateSecret { .. }
            | Statement::CreateConnector(_)
            | Statement::AlterConnector { .. }
            | Statement::AlterSession { .. }
            | Statement::AttachDatabase { .. }
            | Statement::AttachDuckDBDatabase { .. }
            | Statement::DetachDuckDBDatabase { .. }
            | Statement::DropSecret { .. }
            | Statement::DropConnector { .. }
            | Statement::Flush { .. }
            | Statement::ShowFunctions { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowCreate { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowCatalogs { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowProcessList { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowCharset(_)
            | Statement::ShowObjects(_)
            | Statement::ShowTables { .. }
            | Statement::ShowViews { .. }
            | Statement::ShowCollation { .. }
            | Statement::Use(_)
            | Statement::CreateMacro { .. }
            | Statement::CreateStage { .. }
            | Statement::CreateFileFormat { .. }
            | Statement::CreateWarehouse(_)
            | Statement::Assert { .. }
            | Statement::Deny(_)
            | Statement::Kill { .. }
            | Statement::ExplainTable { .. }
            | Statement::Cache { .. }
            | Statement::UNCache { .. }
            | Statement::Pragma { .. }
            | Statement::LockTables { .. }
            | Statement::UnlockTables
            | Statement::Unload { .. }
            | Statement::OptimizeTable { .. }
            | Statement::LoadData { .. }
            | Statement::RenameTable(_)
            | Statement::List(_)
            | Statement::Put { .. }
            | Statement::Remove(_)
            | Statement::RaisError { .. }
            | Statement::Throw(_)
            | Statement::Print(_)
            | Statement::WaitFor(_)
            | Statement::Return(_)
            | Statement::ExportData(_) => {
                self.facts
                    .fail(format!("{} is not a PostgreSQL statement", lead(statement)));
            }
        }
        Shape::default()
    }
}

/// The first words of a statement, to name it in an error.
fn lead(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    words.join(" ")
}
