//! Statement → operations. The match lists every statement kind of PostgreSQL's grammar
//! (no `_` arm): a kind added by a parser upgrade does not compile until it is classified.

use pg_query::NodeEnum;
use pg_query::protobuf::{Node, ObjectType};

use super::names;
use super::query::{QueryKind, kind_name};
use super::scope::{Scope, Shape};
use super::walker::Walker;
use super::{ColumnName, Named, SearchPathChange};
use crate::model::Operation as Op;

impl Walker<'_> {
    /// Analyses the statement `node`; for one inside a query (a data-modifying CTE),
    /// `parent` is the query level it is in and the result is what its RETURNING outputs.
    #[recursive::recursive]
    pub fn statement(&mut self, node: &Node, parent: Option<&Scope<'_>>) -> Shape {
        let Some(kind) = node.node.as_ref() else {
            return Shape::default();
        };
        match kind {
            NodeEnum::SelectStmt(select) => return self.query(select, parent, QueryKind::Subquery),
            NodeEnum::InsertStmt(insert) => return self.insert(insert, parent),
            NodeEnum::UpdateStmt(update) => return self.update(update, parent),
            NodeEnum::DeleteStmt(delete) => return self.delete(delete, parent),
            NodeEnum::MergeStmt(merge) => return self.merge(merge, parent),
            NodeEnum::CopyStmt(copy) => self.copy(copy),

            NodeEnum::CallStmt(call) => {
                self.facts.op(Op::Call);
                self.facts.search_path(SearchPathChange::Unknown);
                if let Some(call) = &call.funccall {
                    self.facts.function(names::function(&call.funcname));
                    self.exprs(&call.args, &Scope::child(parent));
                }
            }
            NodeEnum::DoStmt(block) => self.do_block(block),
            NodeEnum::ExplainStmt(explain) => {
                self.facts.op(Op::Explain);
                // Plain EXPLAIN does not run it, EXPLAIN ANALYZE does: report it either way.
                if let Some(inner) = explain.query.as_deref() {
                    self.statement(inner, parent);
                }
            }
            NodeEnum::PrepareStmt(prepare) => {
                self.facts.op(Op::Prepare);
                self.facts.info.defines = Some(Named::Prepared(prepare.name.clone()));
                if let Some(inner) = prepare.query.as_deref() {
                    return self.statement(inner, parent);
                }
            }
            NodeEnum::ExecuteStmt(execute) => {
                self.facts.op(Op::Execute);
                self.facts.info.uses = Some(Named::Prepared(execute.name.clone()));
                self.exprs(&execute.params, &Scope::child(parent));
            }
            NodeEnum::DeclareCursorStmt(declare) => {
                self.facts.op(Op::Other);
                self.facts.info.defines = Some(Named::Cursor(declare.portalname.clone()));
                if let Some(query) = declare.query.as_deref() {
                    return self.query_node(query, parent, QueryKind::Subquery);
                }
            }
            NodeEnum::FetchStmt(fetch) => {
                self.facts.op(Op::Other);
                // MOVE repositions the cursor without returning its rows.
                if !fetch.ismove {
                    self.facts.info.uses = Some(Named::Cursor(fetch.portalname.clone()));
                }
            }
            NodeEnum::ClosePortalStmt(_)
            | NodeEnum::DeallocateStmt(_)
            | NodeEnum::LoadStmt(_)
            | NodeEnum::CheckPointStmt(_) => self.facts.op(Op::Other),
            NodeEnum::DiscardStmt(discard) => self.discard(discard),
            NodeEnum::CommentStmt(comment) => {
                self.facts.op(Op::Other);
                self.comment_on(comment.objtype, comment.object.as_deref());
            }
            NodeEnum::SecLabelStmt(label) => {
                self.facts.op(Op::Other);
                self.comment_on(label.objtype, label.object.as_deref());
            }
            NodeEnum::RefreshMatViewStmt(refresh) => {
                self.facts.op(Op::Other);
                if let Some(relation) = &refresh.relation {
                    self.write(relation);
                }
            }

            NodeEnum::VariableSetStmt(set) => self.set(set),
            NodeEnum::VariableShowStmt(_) => self.facts.op(Op::Show),
            NodeEnum::ConstraintsSetStmt(_) => self.facts.op(Op::Transaction),
            NodeEnum::TransactionStmt(_) => self.facts.op(Op::Transaction),

            NodeEnum::LockStmt(lock) => {
                self.facts.op(Op::Lock);
                self.read_ranges(&lock.relations);
            }
            NodeEnum::TruncateStmt(truncate) => {
                self.facts.op(Op::Truncate);
                self.write_ranges(&truncate.relations);
            }
            NodeEnum::VacuumStmt(vacuum) => {
                self.facts.op(Op::Vacuum);
                for relation in &vacuum.rels {
                    let Some(NodeEnum::VacuumRelation(relation)) = relation.node.as_ref() else {
                        continue;
                    };
                    let Some(range) = &relation.relation else {
                        continue;
                    };
                    let relation_name = if vacuum.is_vacuumcmd {
                        self.write(range)
                    } else {
                        self.read(range)
                    };
                    self.columns_of(&relation_name, &relation.va_cols);
                }
            }
            NodeEnum::ClusterStmt(cluster) => {
                self.facts.op(Op::Vacuum);
                if let Some(range) = &cluster.relation {
                    self.write(range);
                }
            }
            NodeEnum::ReindexStmt(reindex) => {
                self.facts.op(Op::Vacuum);
                if let Some(range) = &reindex.relation {
                    self.write(range);
                }
            }
            NodeEnum::ListenStmt(_) | NodeEnum::UnlistenStmt(_) | NodeEnum::NotifyStmt(_) => {
                self.facts.op(Op::Listen);
            }

            NodeEnum::GrantStmt(grant) => self.grant(grant),
            NodeEnum::GrantRoleStmt(grant) => {
                self.facts.op(if grant.is_grant {
                    Op::Grant
                } else {
                    Op::Revoke
                });
            }
            NodeEnum::AlterDefaultPrivilegesStmt(alter) => {
                self.facts.op(Op::Alter);
                let grant = alter.action.as_ref().is_none_or(|a| a.is_grant);
                self.facts.op(if grant { Op::Grant } else { Op::Revoke });
            }

            NodeEnum::CreateStmt(create) => self.create_table(create),
            NodeEnum::CreateForeignTableStmt(create) => {
                if let Some(base) = &create.base_stmt {
                    self.create_table(base);
                } else {
                    self.facts.op(Op::Create);
                }
            }
            NodeEnum::CreateTableAsStmt(create) => {
                self.facts.op(Op::Create);
                if let Some(rel) = create.into.as_ref().and_then(|i| i.rel.as_ref()) {
                    self.write(rel);
                }
                if let Some(query) = create.query.as_deref() {
                    let shape = self.query_node(query, None, QueryKind::Subquery);
                    self.facts.copied(shape.all_columns());
                }
            }
            NodeEnum::ViewStmt(view) => {
                self.facts.op(Op::Create);
                if let Some(name) = &view.view {
                    self.write(name);
                }
                if let Some(query) = view.query.as_deref() {
                    self.query_node(query, None, QueryKind::Subquery);
                }
            }
            NodeEnum::IndexStmt(index) => self.create_index(index),
            NodeEnum::CreateSeqStmt(create) => {
                self.facts.op(Op::Create);
                if let Some(sequence) = &create.sequence {
                    self.write(sequence);
                }
            }
            NodeEnum::AlterSeqStmt(alter) => {
                self.facts.op(Op::Alter);
                if let Some(sequence) = &alter.sequence {
                    self.write(sequence);
                }
            }
            NodeEnum::CreatePolicyStmt(create) => {
                self.facts.op(Op::Create);
                if let Some(table) = &create.table {
                    let table = self.write(table);
                    self.facts.hook(table);
                }
            }
            NodeEnum::AlterPolicyStmt(alter) => {
                self.facts.op(Op::Alter);
                if let Some(table) = &alter.table {
                    let table = self.write(table);
                    self.facts.hook(table);
                }
            }
            NodeEnum::RuleStmt(rule) => {
                self.facts.op(Op::Create);
                if let Some(relation) = &rule.relation {
                    let relation = self.write(relation);
                    self.facts.hook(relation);
                }
                // The rule's actions run later, as the statements they are.
                for action in &rule.actions {
                    self.statement(action, None);
                }
            }
            NodeEnum::CreateTrigStmt(create) => {
                self.facts.op(Op::Create);
                if let Some(relation) = &create.relation {
                    let relation = self.write(relation);
                    self.facts.hook(relation);
                }
                if let Some(referenced) = &create.constrrel {
                    self.read(referenced);
                }
            }
            NodeEnum::CreateFunctionStmt(create) => self.create_function(create),
            NodeEnum::CreateSchemaStmt(create) => {
                self.facts.op(Op::Create);
                // `CREATE SCHEMA s CREATE TABLE t …`: the elements are statements of their own.
                for element in &create.schema_elts {
                    self.statement(element, None);
                }
            }
            NodeEnum::CreateStatsStmt(create) => {
                self.facts.op(Op::Create);
                for relation in &create.relations {
                    if let Some(NodeEnum::RangeVar(range)) = relation.node.as_ref() {
                        self.read(range);
                    }
                }
            }
            NodeEnum::CreatePublicationStmt(_)
            | NodeEnum::CreateSubscriptionStmt(_)
            | NodeEnum::CreatedbStmt(_)
            | NodeEnum::CreateRoleStmt(_)
            | NodeEnum::CreateExtensionStmt(_)
            | NodeEnum::CreateFdwStmt(_)
            | NodeEnum::CreateForeignServerStmt(_)
            | NodeEnum::CreateUserMappingStmt(_)
            | NodeEnum::CreateTableSpaceStmt(_)
            | NodeEnum::CreateAmStmt(_)
            | NodeEnum::CreateEventTrigStmt(_)
            | NodeEnum::CreatePlangStmt(_)
            | NodeEnum::DefineStmt(_)
            | NodeEnum::CreateDomainStmt(_)
            | NodeEnum::CreateOpClassStmt(_)
            | NodeEnum::CreateOpFamilyStmt(_)
            | NodeEnum::CompositeTypeStmt(_)
            | NodeEnum::CreateEnumStmt(_)
            | NodeEnum::CreateRangeStmt(_)
            | NodeEnum::CreateCastStmt(_)
            | NodeEnum::CreateConversionStmt(_)
            | NodeEnum::CreateTransformStmt(_)
            | NodeEnum::ImportForeignSchemaStmt(_) => self.facts.op(Op::Create),

            NodeEnum::AlterTableStmt(alter) => self.alter_table(alter),
            NodeEnum::RenameStmt(rename) => self.rename(rename),
            NodeEnum::AlterObjectSchemaStmt(alter) => {
                self.facts.op(Op::Alter);
                if let Some(range) = &alter.relation {
                    let relation = self.write(range);
                    self.facts.write(super::RelationName {
                        schema: Some(alter.newschema.clone()),
                        name: relation.name,
                    });
                }
            }
            NodeEnum::AlterOwnerStmt(alter) => {
                self.facts.op(Op::Alter);
                if let Some(range) = &alter.relation {
                    self.write(range);
                }
            }
            NodeEnum::AlterObjectDependsStmt(alter) => {
                self.facts.op(Op::Alter);
                if let Some(range) = &alter.relation {
                    self.write(range);
                }
            }
            NodeEnum::AlterTableMoveAllStmt(_)
            | NodeEnum::AlterCollationStmt(_)
            | NodeEnum::AlterDomainStmt(_)
            | NodeEnum::AlterTableSpaceOptionsStmt(_)
            | NodeEnum::AlterExtensionStmt(_)
            | NodeEnum::AlterExtensionContentsStmt(_)
            | NodeEnum::AlterFdwStmt(_)
            | NodeEnum::AlterForeignServerStmt(_)
            | NodeEnum::AlterUserMappingStmt(_)
            | NodeEnum::AlterEventTrigStmt(_)
            | NodeEnum::AlterRoleStmt(_)
            | NodeEnum::AlterRoleSetStmt(_)
            | NodeEnum::AlterOpFamilyStmt(_)
            | NodeEnum::AlterStatsStmt(_)
            | NodeEnum::AlterFunctionStmt(_)
            | NodeEnum::AlterOperatorStmt(_)
            | NodeEnum::AlterTypeStmt(_)
            | NodeEnum::AlterEnumStmt(_)
            | NodeEnum::AlterDatabaseStmt(_)
            | NodeEnum::AlterDatabaseRefreshCollStmt(_)
            | NodeEnum::AlterDatabaseSetStmt(_)
            | NodeEnum::AlterSystemStmt(_)
            | NodeEnum::AlterTsdictionaryStmt(_)
            | NodeEnum::AlterTsconfigurationStmt(_)
            | NodeEnum::AlterPublicationStmt(_)
            | NodeEnum::AlterSubscriptionStmt(_)
            | NodeEnum::ReassignOwnedStmt(_) => self.facts.op(Op::Alter),

            NodeEnum::DropStmt(drop) => self.drop(drop),
            NodeEnum::DropdbStmt(_)
            | NodeEnum::DropRoleStmt(_)
            | NodeEnum::DropTableSpaceStmt(_)
            | NodeEnum::DropUserMappingStmt(_)
            | NodeEnum::DropSubscriptionStmt(_)
            | NodeEnum::DropOwnedStmt(_) => self.facts.op(Op::Drop),

            // `RETURN expr` of a SQL-standard function body.
            NodeEnum::ReturnStmt(ret) => {
                self.opt_expr(ret.returnval.as_deref(), &Scope::child(parent));
            }

            // Not statements: pieces of the tree the walk meets elsewhere, and the nodes
            // of analysed (not raw) trees, which the parser never hands over at the top.
            NodeEnum::Alias(_)
            | NodeEnum::RangeVar(_)
            | NodeEnum::TableFunc(_)
            | NodeEnum::IntoClause(_)
            | NodeEnum::Var(_)
            | NodeEnum::Param(_)
            | NodeEnum::Aggref(_)
            | NodeEnum::GroupingFunc(_)
            | NodeEnum::WindowFunc(_)
            | NodeEnum::WindowFuncRunCondition(_)
            | NodeEnum::MergeSupportFunc(_)
            | NodeEnum::SubscriptingRef(_)
            | NodeEnum::FuncExpr(_)
            | NodeEnum::NamedArgExpr(_)
            | NodeEnum::OpExpr(_)
            | NodeEnum::DistinctExpr(_)
            | NodeEnum::NullIfExpr(_)
            | NodeEnum::ScalarArrayOpExpr(_)
            | NodeEnum::BoolExpr(_)
            | NodeEnum::SubLink(_)
            | NodeEnum::SubPlan(_)
            | NodeEnum::AlternativeSubPlan(_)
            | NodeEnum::FieldSelect(_)
            | NodeEnum::FieldStore(_)
            | NodeEnum::RelabelType(_)
            | NodeEnum::CoerceViaIo(_)
            | NodeEnum::ArrayCoerceExpr(_)
            | NodeEnum::ConvertRowtypeExpr(_)
            | NodeEnum::CollateExpr(_)
            | NodeEnum::CaseExpr(_)
            | NodeEnum::CaseWhen(_)
            | NodeEnum::CaseTestExpr(_)
            | NodeEnum::ArrayExpr(_)
            | NodeEnum::RowExpr(_)
            | NodeEnum::RowCompareExpr(_)
            | NodeEnum::CoalesceExpr(_)
            | NodeEnum::MinMaxExpr(_)
            | NodeEnum::SqlvalueFunction(_)
            | NodeEnum::XmlExpr(_)
            | NodeEnum::JsonFormat(_)
            | NodeEnum::JsonReturning(_)
            | NodeEnum::JsonValueExpr(_)
            | NodeEnum::JsonConstructorExpr(_)
            | NodeEnum::JsonIsPredicate(_)
            | NodeEnum::JsonBehavior(_)
            | NodeEnum::JsonExpr(_)
            | NodeEnum::JsonTablePath(_)
            | NodeEnum::JsonTablePathScan(_)
            | NodeEnum::JsonTableSiblingJoin(_)
            | NodeEnum::NullTest(_)
            | NodeEnum::BooleanTest(_)
            | NodeEnum::MergeAction(_)
            | NodeEnum::CoerceToDomain(_)
            | NodeEnum::CoerceToDomainValue(_)
            | NodeEnum::SetToDefault(_)
            | NodeEnum::CurrentOfExpr(_)
            | NodeEnum::NextValueExpr(_)
            | NodeEnum::InferenceElem(_)
            | NodeEnum::ReturningExpr(_)
            | NodeEnum::TargetEntry(_)
            | NodeEnum::RangeTblRef(_)
            | NodeEnum::JoinExpr(_)
            | NodeEnum::FromExpr(_)
            | NodeEnum::OnConflictExpr(_)
            | NodeEnum::Query(_)
            | NodeEnum::TypeName(_)
            | NodeEnum::ColumnRef(_)
            | NodeEnum::ParamRef(_)
            | NodeEnum::AExpr(_)
            | NodeEnum::TypeCast(_)
            | NodeEnum::CollateClause(_)
            | NodeEnum::RoleSpec(_)
            | NodeEnum::FuncCall(_)
            | NodeEnum::AStar(_)
            | NodeEnum::AIndices(_)
            | NodeEnum::AIndirection(_)
            | NodeEnum::AArrayExpr(_)
            | NodeEnum::ResTarget(_)
            | NodeEnum::MultiAssignRef(_)
            | NodeEnum::SortBy(_)
            | NodeEnum::WindowDef(_)
            | NodeEnum::RangeSubselect(_)
            | NodeEnum::RangeFunction(_)
            | NodeEnum::RangeTableFunc(_)
            | NodeEnum::RangeTableFuncCol(_)
            | NodeEnum::RangeTableSample(_)
            | NodeEnum::ColumnDef(_)
            | NodeEnum::TableLikeClause(_)
            | NodeEnum::IndexElem(_)
            | NodeEnum::DefElem(_)
            | NodeEnum::LockingClause(_)
            | NodeEnum::XmlSerialize(_)
            | NodeEnum::PartitionElem(_)
            | NodeEnum::PartitionSpec(_)
            | NodeEnum::PartitionBoundSpec(_)
            | NodeEnum::PartitionRangeDatum(_)
            | NodeEnum::PartitionCmd(_)
            | NodeEnum::RangeTblEntry(_)
            | NodeEnum::RtepermissionInfo(_)
            | NodeEnum::RangeTblFunction(_)
            | NodeEnum::TableSampleClause(_)
            | NodeEnum::WithCheckOption(_)
            | NodeEnum::SortGroupClause(_)
            | NodeEnum::GroupingSet(_)
            | NodeEnum::WindowClause(_)
            | NodeEnum::RowMarkClause(_)
            | NodeEnum::WithClause(_)
            | NodeEnum::InferClause(_)
            | NodeEnum::OnConflictClause(_)
            | NodeEnum::CtesearchClause(_)
            | NodeEnum::CtecycleClause(_)
            | NodeEnum::CommonTableExpr(_)
            | NodeEnum::MergeWhenClause(_)
            | NodeEnum::ReturningOption(_)
            | NodeEnum::ReturningClause(_)
            | NodeEnum::TriggerTransition(_)
            | NodeEnum::JsonOutput(_)
            | NodeEnum::JsonArgument(_)
            | NodeEnum::JsonFuncExpr(_)
            | NodeEnum::JsonTablePathSpec(_)
            | NodeEnum::JsonTable(_)
            | NodeEnum::JsonTableColumn(_)
            | NodeEnum::JsonKeyValue(_)
            | NodeEnum::JsonParseExpr(_)
            | NodeEnum::JsonScalarExpr(_)
            | NodeEnum::JsonSerializeExpr(_)
            | NodeEnum::JsonObjectConstructor(_)
            | NodeEnum::JsonArrayConstructor(_)
            | NodeEnum::JsonArrayQueryConstructor(_)
            | NodeEnum::JsonAggConstructor(_)
            | NodeEnum::JsonObjectAgg(_)
            | NodeEnum::JsonArrayAgg(_)
            | NodeEnum::RawStmt(_)
            | NodeEnum::SetOperationStmt(_)
            | NodeEnum::PlassignStmt(_)
            | NodeEnum::AlterTableCmd(_)
            | NodeEnum::AtalterConstraint(_)
            | NodeEnum::ReplicaIdentityStmt(_)
            | NodeEnum::ObjectWithArgs(_)
            | NodeEnum::AccessPriv(_)
            | NodeEnum::Constraint(_)
            | NodeEnum::CreateOpClassItem(_)
            | NodeEnum::StatsElem(_)
            | NodeEnum::FunctionParameter(_)
            | NodeEnum::InlineCodeBlock(_)
            | NodeEnum::CallContext(_)
            | NodeEnum::VacuumRelation(_)
            | NodeEnum::PublicationTable(_)
            | NodeEnum::PublicationObjSpec(_)
            | NodeEnum::Integer(_)
            | NodeEnum::Float(_)
            | NodeEnum::Boolean(_)
            | NodeEnum::String(_)
            | NodeEnum::BitString(_)
            | NodeEnum::List(_)
            | NodeEnum::IntList(_)
            | NodeEnum::OidList(_)
            | NodeEnum::AConst(_) => {
                self.facts
                    .fail(format!("{} is not a statement", kind_name(kind)));
            }
        }
        Shape::default()
    }

    fn read_ranges(&mut self, ranges: &[Node]) {
        for range in ranges {
            if let Some(NodeEnum::RangeVar(range)) = range.node.as_ref() {
                self.read(range);
            }
        }
    }

    pub(super) fn write_ranges(&mut self, ranges: &[Node]) {
        for range in ranges {
            if let Some(NodeEnum::RangeVar(range)) = range.node.as_ref() {
                self.write(range);
            }
        }
    }

    /// `COMMENT ON` / `SECURITY LABEL ON` an object: a relation's (or its column's, its
    /// constraint's, trigger's, rule's or policy's) is a change to that relation.
    fn comment_on(&mut self, objtype: i32, object: Option<&Node>) {
        let Some(Some(NodeEnum::List(list))) = object.map(|o| o.node.as_ref()) else {
            return;
        };
        let Ok(objtype) = ObjectType::try_from(objtype) else {
            return;
        };
        match objtype {
            ObjectType::ObjectTable
            | ObjectType::ObjectView
            | ObjectType::ObjectMatview
            | ObjectType::ObjectForeignTable
            | ObjectType::ObjectSequence
            | ObjectType::ObjectIndex => {
                self.write_list(&list.items);
            }
            ObjectType::ObjectColumn => {
                if let Some((column, table)) = list.items.split_last()
                    && let Some(relation) = self.write_list(table)
                    && let Some(column) = names::string(column)
                {
                    self.facts.column(ColumnName {
                        relation: Some(relation),
                        column: column.to_string(),
                    });
                }
            }
            ObjectType::ObjectTabconstraint
            | ObjectType::ObjectTrigger
            | ObjectType::ObjectRule
            | ObjectType::ObjectPolicy => {
                if let Some((_, table)) = list.items.split_last() {
                    self.write_list(table);
                }
            }
            _ => {}
        }
    }
}
