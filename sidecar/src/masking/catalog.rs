//! The catalog snapshot masking needs, read on the session's own upstream connection
//! (under SCRAM passthrough the sidecar never learns the password, so it cannot open a
//! connection of its own): relations and their columns, view definitions (analysed, so
//! rules on a table follow it into views), user-defined function names, and the
//! non-built-in types (citext, domains, enums, their arrays).

use std::collections::HashMap;

use palisade_policy::analysis::analyze;
use palisade_policy::mask::PgType;
use palisade_policy::mask_plan::{Catalog, CatalogColumn, CatalogRelation, FunctionKind};

use crate::protocol::backend;
use crate::protocol::error::error_message_field;
use crate::protocol::results::data_row_fields;

/// One simple-protocol Query of four statements, answered in order. Temporary relations
/// come from the session's own temporary schema only: another session's `pg_temp` table
/// named like a masked one must never be what a name resolves to.
pub const CATALOG_QUERY: &str = "\
SELECT c.oid, n.nspname, c.relname, CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END \
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' \
AND (n.nspname NOT LIKE 'pg\\_temp\\_%' OR n.oid = pg_catalog.pg_my_temp_schema());\
SELECT a.attrelid, a.attnum, a.attname, a.atttypid \
FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' \
AND (n.nspname NOT LIKE 'pg\\_temp\\_%' OR n.oid = pg_catalog.pg_my_temp_schema());\
SELECT DISTINCT p.proname, CASE WHEN n.nspname IN ('pg_catalog', 'information_schema') THEN 'b' \
WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass \
AND d.objid = p.oid AND d.deptype = 'e') THEN 'e' ELSE 'u' END \
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace;\
SELECT t.oid, t.typname, t.typtype, t.typelem, t.typbasetype FROM pg_catalog.pg_type t WHERE t.oid >= 16384";

/// The catalog as masking sees it.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub catalog: Catalog,
    /// Masking types of non-built-in type OIDs.
    pub types: HashMap<u32, PgType>,
}

impl Snapshot {
    /// The masking type of a result column's type OID.
    pub fn pg_type(&self, oid: u32) -> PgType {
        match PgType::from_builtin_oid(oid) {
            PgType::Other => self.types.get(&oid).cloned().unwrap_or(PgType::Other),
            known => known,
        }
    }
}

struct TypeRow {
    name: String,
    kind: String,
    elem: u32,
    base: u32,
}

/// Reads the answer to [`CATALOG_QUERY`] message by message.
#[derive(Default)]
pub struct CatalogReader {
    statement: usize,
    relations: Vec<CatalogRelation>,
    columns: Vec<(u32, CatalogColumn)>,
    functions: Vec<(String, FunctionKind)>,
    types: HashMap<u32, TypeRow>,
    error: Option<String>,
}

fn field(fields: &[Option<&[u8]>], i: usize) -> Option<String> {
    fields
        .get(i)
        .copied()
        .flatten()
        .map(|f| String::from_utf8_lossy(f).into_owned())
}

fn number<T: std::str::FromStr>(fields: &[Option<&[u8]>], i: usize) -> Option<T> {
    field(fields, i)?.parse().ok()
}

impl CatalogReader {
    /// Feeds one backend message; returns the finished snapshot (or the reason it could
    /// not be read) at ReadyForQuery.
    pub fn feed(&mut self, msg: &[u8]) -> Option<Result<Snapshot, String>> {
        match msg.first().copied()? {
            backend::DATA_ROW => {
                let mut fields = Vec::new();
                if !data_row_fields(msg, |_, f| fields.push(f)) {
                    self.error = Some("malformed catalog row".into());
                    return None;
                }
                self.row(&fields);
            }
            backend::COMMAND_COMPLETE => self.statement += 1,
            backend::ERROR_RESPONSE => {
                let message = error_message_field(msg.get(5..).unwrap_or_default());
                self.error = Some(message.unwrap_or_else(|| "error".into()));
            }
            backend::READY_FOR_QUERY => {
                return Some(match self.error.take() {
                    Some(e) => Err(e),
                    None => Ok(self.finish()),
                });
            }
            _ => {}
        }
        None
    }

    fn row(&mut self, f: &[Option<&[u8]>]) {
        match self.statement {
            0 => {
                let (Some(oid), Some(schema), Some(name)) =
                    (number(f, 0), field(f, 1), field(f, 2))
                else {
                    return;
                };
                let mut relation = CatalogRelation {
                    oid,
                    schema,
                    name,
                    ..CatalogRelation::default()
                };
                if let Some(definition) = field(f, 3) {
                    match analyze(&definition) {
                        Ok(mut statements) if statements.len() == 1 => {
                            let info = statements.remove(0);
                            relation.view = Some(info.outputs);
                            relation.view_reads = info.read;
                        }
                        _ => relation.opaque = true,
                    }
                }
                self.relations.push(relation);
            }
            1 => {
                if let (Some(rel), Some(attnum), Some(name), Some(type_oid)) =
                    (number(f, 0), number(f, 1), field(f, 2), number(f, 3))
                {
                    self.columns.push((
                        rel,
                        CatalogColumn {
                            attnum,
                            name,
                            type_oid,
                        },
                    ));
                }
            }
            2 => {
                if let (Some(name), Some(kind)) = (field(f, 0), field(f, 1)) {
                    let kind = match kind.as_str() {
                        "b" => FunctionKind::BuiltIn,
                        "e" => FunctionKind::Extension,
                        _ => FunctionKind::User,
                    };
                    self.functions.push((name, kind));
                }
            }
            3 => {
                if let (Some(oid), Some(name), Some(kind), Some(elem), Some(base)) = (
                    number(f, 0),
                    field(f, 1),
                    field(f, 2),
                    number(f, 3),
                    number(f, 4),
                ) {
                    self.types.insert(
                        oid,
                        TypeRow {
                            name,
                            kind,
                            elem,
                            base,
                        },
                    );
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        let mut relations: HashMap<u32, CatalogRelation> = std::mem::take(&mut self.relations)
            .into_iter()
            .map(|r| (r.oid, r))
            .collect();
        for (rel, column) in std::mem::take(&mut self.columns) {
            if let Some(r) = relations.get_mut(&rel) {
                r.columns.push(column);
            }
        }
        for (_, mut relation) in relations {
            relation.columns.sort_by_key(|c| c.attnum);
            snapshot.catalog.insert(relation);
        }
        for (name, kind) in std::mem::take(&mut self.functions) {
            snapshot.catalog.add_function(&name, kind);
        }
        let oids: Vec<u32> = self.types.keys().copied().collect();
        for oid in oids {
            snapshot.types.insert(oid, self.type_of(oid, 0));
        }
        snapshot
    }

    /// Domains mask as their base type, citext as text, arrays element-wise; anything
    /// else is `Other` (NULL when masked) — enums too, since a masked string is no label
    /// of the enum and clients that decode enums into typed values would fail on it.
    fn type_of(&self, oid: u32, depth: usize) -> PgType {
        if depth > 8 {
            return PgType::Other;
        }
        let Some(row) = self.types.get(&oid) else {
            return PgType::from_builtin_oid(oid);
        };
        match row.kind.as_str() {
            "d" => self.type_of(row.base, depth + 1),
            _ if row.name == "citext" => PgType::Text,
            _ if row.elem != 0 && row.name.starts_with('_') => {
                match self.type_of(row.elem, depth + 1) {
                    PgType::Other => PgType::Other,
                    elem => PgType::Array(Box::new(elem)),
                }
            }
            _ => PgType::Other,
        }
    }
}
