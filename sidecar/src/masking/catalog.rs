//! The catalog snapshot masking needs, read on a session's own upstream connection
//! (under SCRAM passthrough the sidecar never learns the password, so it cannot open a
//! connection of its own): relations and their columns, view definitions (analysed, so
//! rules on a table follow it into views), user-defined function names, and the
//! non-built-in types (citext, domains, enums, their arrays).
//!
//! One read serves every session of the database ([`super::shared`]), so nothing in it
//! may depend on the session that happened to read it: no other session's temporary
//! objects are read at all, the reader's own come back flagged and stay with it, every
//! operator is spelled `OPERATOR(pg_catalog.…)` so that no operator a user created in
//! a schema on the session's search_path can change what is read, and when the session
//! is outside a transaction block the view definitions are printed with an empty
//! search_path, so that every name in them comes out schema-qualified.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use palisade_policy::analysis::analyze;
use palisade_policy::mask::PgType;
use palisade_policy::mask_plan::{Catalog, CatalogColumn, CatalogRelation, FunctionKind};

use crate::protocol::backend;
use crate::protocol::error::error_message_field;
use crate::protocol::results::data_row_fields;

/// The relation kinds masking follows: tables, partitioned tables, views, materialized
/// views, foreign tables.
const RELKINDS: &str =
    "c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f}'::pg_catalog.\"char\"[])";
/// Not the system's schemas, and no other session's temporary schema.
const SCHEMAS: &str = "n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[]) \
AND NOT pg_catalog.pg_is_other_temp_schema(n.oid)";
/// True for the reading session's own temporary schema.
const OWN_TEMP: &str = "n.oid OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()";

/// For the rest of the query's implicit transaction only: every name a view definition
/// prints comes out schema-qualified, whatever the session's search_path.
const NEUTRAL_PATH: &str = "SELECT pg_catalog.set_config('search_path', '', true)";

fn statements() -> [String; 4] {
    [
        format!(
            "SELECT c.oid, n.nspname, c.relname, \
             CASE WHEN c.relkind OPERATOR(pg_catalog.=) ANY ('{{v,m}}'::pg_catalog.\"char\"[]) THEN pg_catalog.pg_get_viewdef(c.oid) END, {OWN_TEMP} \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
             WHERE {RELKINDS} AND {SCHEMAS}"
        ),
        format!(
            "SELECT a.attrelid, a.attnum, a.attname, a.atttypid \
             FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.attrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
             WHERE a.attnum OPERATOR(pg_catalog.>) 0::pg_catalog.int2 AND NOT a.attisdropped AND {RELKINDS} AND {SCHEMAS}"
        ),
        format!(
            "SELECT DISTINCT p.proname, \
             CASE WHEN n.nspname OPERATOR(pg_catalog.=) ANY ('{{pg_catalog,information_schema}}'::pg_catalog.name[]) THEN 'b' \
             WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass \
             AND d.objid OPERATOR(pg_catalog.=) p.oid AND d.deptype OPERATOR(pg_catalog.=) 'e'::pg_catalog.\"char\") THEN 'e' ELSE 'u' END, {OWN_TEMP} \
             FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace \
             WHERE NOT pg_catalog.pg_is_other_temp_schema(n.oid)"
        ),
        "SELECT t.oid, t.typname, t.typtype, t.typelem, t.typbasetype FROM pg_catalog.pg_type t \
         WHERE t.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid AND NOT pg_catalog.pg_is_other_temp_schema(t.typnamespace) \
         AND t.typnamespace OPERATOR(pg_catalog.<>) pg_catalog.pg_my_temp_schema()"
            .to_string(),
    ]
}

/// One simple-protocol Query of four statements, answered in order.
static PLAIN: LazyLock<String> = LazyLock::new(|| statements().join(";"));
/// The same behind [`NEUTRAL_PATH`]: for a session outside a transaction block, where
/// the setting ends with the query's own implicit transaction. Inside a block it would
/// outlive the query, so there the plain one is read (and kept by that session alone).
static NEUTRAL: LazyLock<String> =
    LazyLock::new(|| format!("{NEUTRAL_PATH};{}", statements().join(";")));

/// The catalog query's text: `neutral` when the session is outside a transaction block.
pub fn catalog_query(neutral: bool) -> &'static str {
    if neutral { &NEUTRAL } else { &PLAIN }
}

/// The catalog as masking sees it. The database's snapshot is shared by its sessions; a
/// session with temporary objects sees them layered over it ([`Snapshot::with_own`]).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub catalog: Arc<Catalog>,
    /// Masking types of non-built-in type OIDs.
    pub types: Arc<HashMap<u32, PgType>>,
}

impl Snapshot {
    /// The masking type of a result column's type OID.
    pub fn pg_type(&self, oid: u32) -> PgType {
        match PgType::from_builtin_oid(oid) {
            PgType::Other => self.types.get(&oid).cloned().unwrap_or(PgType::Other),
            known => known,
        }
    }

    /// This snapshot with a session's own temporary objects layered over it (nothing is
    /// copied but `own`). Their types are left out: a masked value of a type the
    /// snapshot does not know is NULL.
    pub fn with_own(&self, own: &Catalog) -> Snapshot {
        if own.is_empty() {
            return self.clone();
        }
        Snapshot {
            catalog: Arc::new(own.clone().over(self.catalog.clone())),
            types: self.types.clone(),
        }
    }
}

/// A finished read: the database's snapshot and the reading session's own objects.
pub struct Read {
    pub shared: Snapshot,
    /// The session's own temporary relations and functions.
    pub own: Catalog,
    /// Transaction status after the query (`I`: it ran outside a transaction block).
    pub status: u8,
    /// Whether view definitions were printed schema-qualified ([`catalog_query`]).
    pub neutral: bool,
}

struct TypeRow {
    name: String,
    kind: String,
    elem: u32,
    base: u32,
}

/// Reads the answer to [`catalog_query`] message by message.
#[derive(Default)]
pub struct CatalogReader {
    neutral: bool,
    statement: usize,
    /// Each relation, and whether it is in the reading session's temporary schema.
    relations: Vec<(CatalogRelation, bool)>,
    columns: Vec<(u32, CatalogColumn)>,
    functions: Vec<(String, FunctionKind, bool)>,
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

/// A boolean column in text format.
fn flag(fields: &[Option<&[u8]>], i: usize) -> bool {
    fields.get(i).copied().flatten() == Some(b"t")
}

/// A temporary schema (`pg_temp_N`, `pg_toast_temp_N`): the query leaves other sessions'
/// out already; this keeps the shared snapshot free of them whatever the server sends.
fn is_temp_schema(schema: &str) -> bool {
    schema.starts_with("pg_temp_") || schema.starts_with("pg_toast_temp_")
}

impl CatalogReader {
    /// A reader for the answer to `catalog_query(neutral)`.
    pub fn new(neutral: bool) -> Self {
        CatalogReader {
            neutral,
            ..CatalogReader::default()
        }
    }

    /// Feeds one backend message; returns the finished read (or the reason it could not
    /// be read) at ReadyForQuery.
    pub fn feed(&mut self, msg: &[u8]) -> Option<Result<Read, String>> {
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
                let status = msg.get(5).copied().unwrap_or(b'E');
                return Some(match self.error.take() {
                    Some(e) => Err(e),
                    None => Ok(self.finish(status)),
                });
            }
            _ => {}
        }
        None
    }

    fn row(&mut self, f: &[Option<&[u8]>]) {
        // The neutral query's first statement only sets the search_path.
        let Some(statement) = self.statement.checked_sub(usize::from(self.neutral)) else {
            return;
        };
        match statement {
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
                self.relations.push((relation, flag(f, 4)));
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
                    self.functions.push((name, kind, flag(f, 2)));
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

    fn finish(&mut self, status: u8) -> Read {
        let mut shared = Catalog::default();
        let mut own = Catalog::default();
        let mut relations: HashMap<u32, (CatalogRelation, bool)> =
            std::mem::take(&mut self.relations)
                .into_iter()
                .map(|r| (r.0.oid, r))
                .collect();
        for (rel, column) in std::mem::take(&mut self.columns) {
            if let Some((r, _)) = relations.get_mut(&rel) {
                r.columns.push(column);
            }
        }
        for (_, (mut relation, temporary)) in relations {
            relation.columns.sort_by_key(|c| c.attnum);
            if temporary {
                own.insert(relation);
            } else if !is_temp_schema(&relation.schema) {
                shared.insert(relation);
            }
        }
        for (name, kind, temporary) in std::mem::take(&mut self.functions) {
            if temporary {
                own.add_function(&name, kind);
            } else {
                shared.add_function(&name, kind);
            }
        }
        let types = self
            .types
            .keys()
            .map(|&oid| (oid, self.type_of(oid, 0)))
            .collect();
        Read {
            shared: Snapshot {
                catalog: Arc::new(shared),
                types: Arc::new(types),
            },
            own,
            status,
            neutral: self.neutral,
        }
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
