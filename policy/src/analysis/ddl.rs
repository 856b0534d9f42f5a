//! Relations DDL creates, alters or drops (written), and those it reads: the query of
//! `CREATE TABLE/VIEW … AS`, tables a new table copies or references.

use sqlparser::ast::{
    AlterIndexOperation, AlterTable, AlterTableOperation, AlterView, AlterViewOperation,
    ColumnOption, CommentObject, CreateIndex, CreateTable, CreateTableLikeKind, CreateView,
    GrantObjects, ObjectName, ObjectType, RenameTableNameKind, TableConstraint,
};

use super::names;
use super::query::QueryKind;
use super::walker::Walker;
use crate::model::Operation;

impl Walker<'_> {
    pub fn create_table(&mut self, create: &CreateTable) {
        let CreateTable {
            or_replace,
            external,
            name,
            columns,
            constraints,
            query,
            like,
            clone,
            inherits,
            partition_of,
            ..
        } = create;
        self.reject(
            *or_replace || *external || clone.is_some(),
            "CREATE OR REPLACE/EXTERNAL/CLONE TABLE",
        );
        self.facts.op(Operation::Create);
        self.write(name);
        if let Some(parent) = partition_of {
            // Attaching a partition changes the parent.
            self.write(parent);
        }
        if let Some(like) = like {
            match like {
                CreateTableLikeKind::Parenthesized(like) | CreateTableLikeKind::Plain(like) => {
                    self.read(&like.name);
                }
            }
        }
        for parent in inherits.iter().flatten() {
            self.read(parent);
        }
        for column in columns {
            for option in &column.options {
                if let ColumnOption::ForeignKey(fk) = &option.option {
                    self.read(&fk.foreign_table);
                }
            }
        }
        self.constraints(constraints);
        if let Some(query) = query {
            let shape = self.query(query, None, QueryKind::Subquery);
            self.facts.copied(shape.all_columns());
        }
    }

    fn constraints(&mut self, constraints: &[TableConstraint]) {
        for constraint in constraints {
            if let TableConstraint::ForeignKey(fk) = constraint {
                self.read(&fk.foreign_table);
            }
        }
    }

    pub fn create_view(&mut self, create: &CreateView) {
        let CreateView {
            or_alter,
            name,
            query,
            to,
            ..
        } = create;
        self.reject(*or_alter || to.is_some(), "CREATE OR ALTER/TO VIEW");
        self.facts.op(Operation::Create);
        self.write(name);
        self.query(query, None, QueryKind::Subquery);
    }

    pub fn create_index(&mut self, create: &CreateIndex) {
        self.facts.op(Operation::Create);
        let Some(table) = self.write(&create.table_name) else {
            return;
        };
        if let Some(index) = &create.name {
            // The index lands in its table's schema.
            match names::sibling(&table, index) {
                Ok(index) => self.facts.write(index),
                Err(message) => self.facts.fail(message),
            }
        }
    }

    pub fn alter_table(&mut self, alter: &AlterTable) {
        let AlterTable {
            name,
            operations,
            table_type,
            on_cluster,
            location,
            ..
        } = alter;
        self.reject(
            table_type.is_some() || on_cluster.is_some() || location.is_some(),
            "this ALTER TABLE",
        );
        self.facts.op(Operation::Alter);
        let Some(table) = self.write(name) else {
            return;
        };
        for operation in operations {
            match operation {
                AlterTableOperation::RenameTable { table_name } => {
                    let (RenameTableNameKind::As(new) | RenameTableNameKind::To(new)) = table_name;
                    self.write_sibling(&table, new);
                }
                AlterTableOperation::AttachPartitionOf { partition, .. }
                | AlterTableOperation::DetachPartitionOf { partition, .. } => {
                    self.write(partition);
                }
                AlterTableOperation::AddConstraint { constraint, .. } => {
                    self.constraints(std::slice::from_ref(constraint));
                }
                _ => {}
            }
        }
    }

    pub fn alter_view(&mut self, alter: &AlterView) {
        let AlterView {
            materialized: _,
            name,
            if_exists: _,
            operation,
        } = alter;
        self.facts.op(Operation::Alter);
        let Some(view) = self.write(name) else {
            return;
        };
        match operation {
            AlterViewOperation::As { query, .. } => {
                self.query(query, None, QueryKind::Subquery);
            }
            AlterViewOperation::RenameTo { new_name } => self.write_sibling(&view, new_name),
            AlterViewOperation::SetSchema { schema_name } => {
                if let Some(schema) = names::parts(schema_name).and_then(|p| p.last().cloned()) {
                    self.facts.write(super::RelationName {
                        schema: Some(schema),
                        name: view.name.clone(),
                    });
                }
            }
            _ => {}
        }
    }

    pub fn alter_index(&mut self, name: &ObjectName, operation: &AlterIndexOperation) {
        self.facts.op(Operation::Alter);
        let Some(index) = self.write(name) else {
            return;
        };
        let AlterIndexOperation::RenameIndex { index_name } = operation;
        self.write_sibling(&index, index_name);
    }

    fn write_sibling(&mut self, base: &super::RelationName, name: &ObjectName) {
        match names::sibling(base, name) {
            Ok(relation) => self.facts.write(relation),
            Err(message) => self.facts.fail(message),
        }
    }

    pub fn drop(
        &mut self,
        object_type: &ObjectType,
        names: &[ObjectName],
        table: Option<&ObjectName>,
    ) {
        self.reject(table.is_some(), "DROP … ON table");
        self.facts.op(Operation::Drop);
        match object_type {
            ObjectType::Table
            | ObjectType::ForeignTable
            | ObjectType::View
            | ObjectType::MaterializedView
            | ObjectType::Index
            | ObjectType::Sequence => self.write_all(names),
            ObjectType::Collation
            | ObjectType::Schema
            | ObjectType::Database
            | ObjectType::Role
            | ObjectType::Group
            | ObjectType::Type
            | ObjectType::User => {}
            ObjectType::Stage | ObjectType::Stream | ObjectType::Warehouse => {
                self.facts.not_postgres("DROP STAGE/STREAM/WAREHOUSE");
            }
        }
    }

    /// Relations whose privileges GRANT/REVOKE change.
    pub fn grant_objects(&mut self, objects: Option<&GrantObjects>) {
        match objects {
            Some(
                GrantObjects::Tables(names)
                | GrantObjects::Views(names)
                | GrantObjects::Sequences(names),
            ) => {
                self.write_all(names);
            }
            Some(
                GrantObjects::Warehouses(_)
                | GrantObjects::Integrations(_)
                | GrantObjects::ResourceMonitors(_)
                | GrantObjects::Users(_)
                | GrantObjects::ComputePools(_)
                | GrantObjects::Connections(_)
                | GrantObjects::FailoverGroup(_)
                | GrantObjects::ReplicationGroup(_)
                | GrantObjects::ExternalVolumes(_)
                | GrantObjects::FutureSchemasInDatabase { .. }
                | GrantObjects::FutureTablesInSchema { .. }
                | GrantObjects::FutureViewsInSchema { .. }
                | GrantObjects::FutureExternalTablesInSchema { .. }
                | GrantObjects::FutureMaterializedViewsInSchema { .. }
                | GrantObjects::FutureSequencesInSchema { .. }
                | GrantObjects::AllViewsInSchema { .. }
                | GrantObjects::AllMaterializedViewsInSchema { .. }
                | GrantObjects::AllExternalTablesInSchema { .. },
            ) => self.facts.not_postgres("this GRANT object"),
            _ => {}
        }
    }

    pub fn comment(&mut self, object_type: &CommentObject, name: &ObjectName) {
        self.facts.op(Operation::Other);
        match object_type {
            CommentObject::Table
            | CommentObject::View
            | CommentObject::MaterializedView
            | CommentObject::ForeignTable
            | CommentObject::Sequence
            | CommentObject::Index => {
                self.write(name);
            }
            CommentObject::Column => {
                // `table.column`, `schema.table.column`.
                let Some(parts) = names::parts(name) else {
                    self.facts.not_postgres("a computed name");
                    return;
                };
                if let Some((column, table)) = parts.split_last() {
                    match names::relation_from_parts(table) {
                        Ok(relation) => {
                            self.facts.column(super::ColumnName {
                                relation: Some(relation.clone()),
                                column: column.clone(),
                            });
                            self.facts.write(relation);
                        }
                        Err(message) => self.facts.fail(message),
                    }
                }
            }
            _ => {}
        }
    }
}
