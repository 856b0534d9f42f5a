//! Relations DDL creates, alters or drops (written), and those it reads: the query of
//! `CREATE TABLE/VIEW … AS`, tables a new table copies or references; and the code of
//! `DO` blocks and function bodies, whose statements count as the statement's own.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableStmt, AlterTableType, ConstrType, CreateFunctionStmt, CreateStmt, DoStmt, DropStmt,
    GrantStmt, GrantTargetType, IndexStmt, Node, ObjectType, RenameStmt,
};

use super::plpgsql::{self, Code};
use super::walker::Walker;
use super::{SearchPathChange, names};
use crate::model::Operation;

impl Walker<'_> {
    pub fn create_table(&mut self, create: &CreateStmt) {
        self.facts.op(Operation::Create);
        let Some(range) = &create.relation else {
            return;
        };
        self.write(range);
        for parent in &create.inh_relations {
            let Some(NodeEnum::RangeVar(parent)) = parent.node.as_ref() else {
                continue;
            };
            if create.partbound.is_some() {
                // Attaching a partition changes the parent.
                self.write(parent);
            } else {
                self.read(parent);
            }
        }
        for element in &create.table_elts {
            match element.node.as_ref() {
                Some(NodeEnum::ColumnDef(column)) => self.constraints(&column.constraints),
                Some(NodeEnum::TableLikeClause(like)) => {
                    if let Some(relation) = &like.relation {
                        self.read(relation);
                    }
                }
                Some(NodeEnum::Constraint(_)) => self.constraints(std::slice::from_ref(element)),
                _ => {}
            }
        }
        self.constraints(&create.constraints);
    }

    /// Tables a constraint references (foreign keys) are read.
    fn constraints(&mut self, constraints: &[Node]) {
        for constraint in constraints {
            if let Some(NodeEnum::Constraint(c)) = constraint.node.as_ref()
                && c.contype == ConstrType::ConstrForeign as i32
                && let Some(table) = &c.pktable
            {
                self.read(table);
            }
        }
    }

    pub fn create_index(&mut self, index: &IndexStmt) {
        self.facts.op(Operation::Create);
        let Some(range) = &index.relation else {
            return;
        };
        let table = self.write(range);
        if !index.idxname.is_empty() {
            // The index lands in its table's schema.
            self.facts.write(names::sibling(&table, &index.idxname));
        }
    }

    pub fn alter_table(&mut self, alter: &AlterTableStmt) {
        self.facts.op(Operation::Alter);
        let Some(range) = &alter.relation else {
            return;
        };
        self.write(range);
        for command in &alter.cmds {
            let Some(NodeEnum::AlterTableCmd(command)) = command.node.as_ref() else {
                continue;
            };
            let Some(def) = command.def.as_deref() else {
                continue;
            };
            match AlterTableType::try_from(command.subtype) {
                Ok(AlterTableType::AtAttachPartition | AlterTableType::AtDetachPartition) => {
                    if let Some(NodeEnum::PartitionCmd(partition)) = def.node.as_ref()
                        && let Some(name) = &partition.name
                    {
                        self.write(name);
                    }
                }
                Ok(AlterTableType::AtAddConstraint) => {
                    self.constraints(std::slice::from_ref(def));
                }
                Ok(AlterTableType::AtAddColumn) => {
                    if let Some(NodeEnum::ColumnDef(column)) = def.node.as_ref() {
                        self.constraints(&column.constraints);
                    }
                }
                _ => {}
            }
        }
    }

    /// `ALTER … RENAME`: the relation is changed, and a renamed relation is written under
    /// its new name too.
    pub fn rename(&mut self, rename: &RenameStmt) {
        self.facts.op(Operation::Alter);
        let Some(range) = &rename.relation else {
            return;
        };
        let relation = self.write(range);
        let renames_relation = matches!(
            ObjectType::try_from(rename.rename_type),
            Ok(ObjectType::ObjectTable
                | ObjectType::ObjectView
                | ObjectType::ObjectMatview
                | ObjectType::ObjectIndex
                | ObjectType::ObjectSequence
                | ObjectType::ObjectForeignTable)
        );
        if renames_relation {
            self.facts.write(names::sibling(&relation, &rename.newname));
        }
    }

    pub fn drop(&mut self, drop: &DropStmt) {
        self.facts.op(Operation::Drop);
        let Ok(kind) = ObjectType::try_from(drop.remove_type) else {
            return;
        };
        for object in &drop.objects {
            let Some(NodeEnum::List(name)) = object.node.as_ref() else {
                continue;
            };
            match kind {
                ObjectType::ObjectTable
                | ObjectType::ObjectForeignTable
                | ObjectType::ObjectView
                | ObjectType::ObjectMatview
                | ObjectType::ObjectIndex
                | ObjectType::ObjectSequence => {
                    self.write_list(&name.items);
                }
                // `DROP TRIGGER t ON table`: the name comes last.
                ObjectType::ObjectTrigger | ObjectType::ObjectRule | ObjectType::ObjectPolicy => {
                    if let Some((_, table)) = name.items.split_last() {
                        self.write_list(table);
                    }
                }
                _ => {}
            }
        }
    }

    /// GRANT/REVOKE: the relations whose privileges change are written.
    pub fn grant(&mut self, grant: &GrantStmt) {
        self.facts.op(if grant.is_grant {
            Operation::Grant
        } else {
            Operation::Revoke
        });
        let on_relations = grant.targtype == GrantTargetType::AclTargetObject as i32
            && matches!(
                ObjectType::try_from(grant.objtype),
                Ok(ObjectType::ObjectTable | ObjectType::ObjectSequence)
            );
        if on_relations {
            self.write_ranges(&grant.objects);
        }
    }

    /// `DO [LANGUAGE l] 'code'`: runs code the proxy cannot see as it runs; what the code
    /// says statically counts as the block's own.
    pub fn do_block(&mut self, block: &DoStmt) {
        self.facts.op(Operation::Do);
        self.facts.search_path(SearchPathChange::Unknown);
        let mut code = None;
        let mut language = "plpgsql".to_string();
        for arg in &block.args {
            let Some(NodeEnum::DefElem(def)) = arg.node.as_ref() else {
                continue;
            };
            let value = def
                .arg
                .as_deref()
                .and_then(names::string)
                .map(str::to_string);
            match def.defname.as_str() {
                "as" => code = value,
                "language" => language = value.unwrap_or_default(),
                _ => {}
            }
        }
        if let Some(code) = code {
            self.embedded(&language, Code::DoBlock(&code));
        }
    }

    pub fn create_function(&mut self, create: &CreateFunctionStmt) {
        self.facts.op(Operation::Create);
        let mut language = String::new();
        let mut body = None;
        for option in &create.options {
            let Some(NodeEnum::DefElem(def)) = option.node.as_ref() else {
                continue;
            };
            match (def.defname.as_str(), def.arg.as_deref()) {
                ("language", Some(arg)) => {
                    language = names::string(arg).unwrap_or_default().to_string();
                }
                // `AS 'body'`; C functions give `AS 'file', 'symbol'`.
                ("as", Some(arg)) => {
                    if let Some(NodeEnum::List(list)) = arg.node.as_ref()
                        && let [only] = list.items.as_slice()
                    {
                        body = names::string(only).map(str::to_string);
                    }
                }
                _ => {}
            }
        }
        // `BEGIN ATOMIC … END` / `RETURN …`: parsed with the statement itself.
        if let Some(sql_body) = create.sql_body.as_deref() {
            self.sql_body(sql_body);
        }
        match body {
            Some(body) => match language.as_str() {
                "sql" => self.embedded("sql", Code::Sql(&body)),
                "plpgsql" => {
                    let definition = NodeEnum::CreateFunctionStmt(Box::new(create.clone()))
                        .deparse(pg_query::DeparseOptions::default());
                    match definition {
                        Ok(definition) => self.embedded("plpgsql", Code::Function(&definition)),
                        Err(e) => self
                            .facts
                            .fail(format!("cannot read the function's PL/pgSQL body: {e}")),
                    }
                }
                other => self.embedded(other, Code::Sql(&body)),
            },
            // A C function (`AS 'file', 'symbol'`), or one whose body is parsed above.
            None if create.sql_body.is_none() => self
                .facts
                .opaque_code(format!("code in language {language} cannot be read")),
            None => {}
        }
    }

    fn sql_body(&mut self, body: &Node) {
        match body.node.as_ref() {
            Some(NodeEnum::List(list)) => {
                for item in &list.items {
                    self.sql_body(item);
                }
            }
            Some(_) => {
                self.statement(body, None);
            }
            None => {}
        }
    }

    /// Folds the statements of embedded code into this statement's facts. Values the code
    /// reads go where the proxy never sees them (variables, notices, other tables), so
    /// its columns count as copied too.
    ///
    /// Code that cannot be read stays opaque, as code the proxy cannot see always was:
    /// the statement keeps its `Do` (never treated as harmless) or `Create`, and says why
    /// in `opaque_code` (masking refuses it). That is code the server refuses too (a body
    /// that does not compile: `DO` fails, and so does `CREATE FUNCTION` under the default
    /// `check_function_bodies`), code in another language, trigger functions, whose tree
    /// libpg_query 18.1 does not hand over, and dynamic SQL.
    fn embedded(&mut self, language: &str, code: Code<'_>) {
        let read = match (language, code) {
            ("sql", Code::Sql(_)) | ("plpgsql", _) => plpgsql::read(code),
            _ => Err(format!("code in language {language} cannot be read")),
        };
        match read {
            Ok(read) => {
                if read.dynamic {
                    self.facts.opaque_code(
                        "the code runs dynamic SQL (EXECUTE of a string built at run time)",
                    );
                }
                for info in read.statements {
                    self.facts.absorb(info);
                }
            }
            Err(why) => self.facts.opaque_code(why),
        }
    }
}
