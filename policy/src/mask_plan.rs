//! Which masks apply to a statement's result columns, and which statements masking must
//! refuse because their values would leave the proxy's reach. Plain Rust: the sidecar
//! supplies the identity, the session's `search_path` and a [`Catalog`] snapshot it read
//! from the server; the value layer ([`crate::mask`]) then rewrites the rows.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::analysis::{ColumnName, OutputColumn, RelationName, StatementInfo};
use crate::decision::{Identity, SearchPath, subjects_match};
use crate::glob::Glob;
use crate::masking::{DerivedColumns, Detector, Mask, Predicates};
use crate::model::SecretKeyRef;
use crate::render::RenderedPolicy;

/// Reads a `Hash` mask's key from its Secret.
pub type KeyLookup<'a> = &'a dyn Fn(&SecretKeyRef) -> Result<Arc<[u8]>, String>;

/// One column mask of a MaskingRule, compiled.
#[derive(Clone, Debug)]
struct ColumnRule {
    rule: String,
    table: Glob,
    column: Glob,
    mask: Mask,
    key: Option<Arc<[u8]>>,
}

/// The mask a result column gets, and what it protects.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedMask {
    pub mask: Mask,
    /// The key of a `Hash` mask.
    pub key: Option<Arc<[u8]>>,
    /// The stored columns (`schema.table.column`) the value comes from.
    pub columns: BTreeSet<String>,
    /// The MaskingRules that asked for it.
    pub rules: BTreeSet<String>,
}

/// The masking that applies to one identity under one policy.
#[derive(Clone, Debug, Default)]
pub struct MaskRules {
    columns: Vec<ColumnRule>,
    pub detectors: Vec<Detector>,
    /// The key of the first `Hash` mask among the detectors.
    pub detector_key: Option<Arc<[u8]>>,
    pub derived: DerivedColumns,
    pub predicates: Predicates,
}

/// Why masking refuses a statement.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MaskDenial {
    /// The MaskingRule whose column is at stake.
    pub rule: String,
    pub message: String,
}

/// Functions that run SQL given as text, or read the database outside the statement's own
/// relations: their results cannot be traced to columns.
const OPAQUE_FUNCTIONS: &[&str] = &[
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "table_to_xml",
    "table_to_xmlschema",
    "table_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "schema_to_xml",
    "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xmlschema",
    "database_to_xml_and_xmlschema",
    "ts_stat",
    "dblink",
    "dblink_exec",
    "dblink_send_query",
    "dblink_get_result",
    "dblink_open",
    "dblink_fetch",
    "pg_read_file",
    "pg_read_binary_file",
    "lo_get",
    "lo_export",
    "lo_import",
];

/// Functions that send a value somewhere the proxy cannot mask it: to other sessions
/// (`pg_notify`), into a setting the server reports back or that later statements read
/// (`set_config`), into the WAL (`pg_logical_emit_message`), a sequence (`setval`) or a
/// large object (read back later by `loread`, which no result column traces).
const SINK_FUNCTIONS: &[&str] = &[
    "pg_notify",
    "set_config",
    "pg_logical_emit_message",
    "setval",
    "lo_from_bytea",
    "lo_put",
    "lowrite",
];

/// Catalog views that expose stored values (most-common values, histograms).
const VALUE_CATALOGS: &[&str] = &[
    "pg_stats",
    "pg_stats_ext",
    "pg_stats_ext_exprs",
    "pg_statistic",
    "pg_statistic_ext_data",
];

impl MaskRules {
    /// The MaskingRules selected into `policy` from which `identity` is not exempt.
    /// `key_for` reads a `Hash` key; a key that cannot be read fails the whole policy,
    /// since masking without it would have to leak or guess.
    pub fn for_identity(
        policy: &RenderedPolicy,
        identity: &Identity,
        key_for: KeyLookup<'_>,
    ) -> Result<MaskRules, String> {
        let mut rules = MaskRules::default();
        for selected in &policy.masking_rules {
            let spec = &selected.spec;
            if spec
                .exempt
                .as_ref()
                .is_some_and(|e| subjects_match(e, identity))
            {
                continue;
            }
            for column in &spec.columns {
                rules.columns.push(ColumnRule {
                    rule: selected.name.clone(),
                    table: Glob::new(&column.table),
                    column: Glob::new(&column.column),
                    key: hash_key(&column.mask, key_for)?,
                    mask: column.mask.clone(),
                });
            }
            for detector in &spec.detectors {
                if rules.detector_key.is_none() {
                    rules.detector_key = hash_key(&detector.mask, key_for)?;
                }
                rules.detectors.push(detector.clone());
            }
            if spec.derived_columns == DerivedColumns::Deny {
                rules.derived = DerivedColumns::Deny;
            }
            if spec.predicates == Predicates::Deny {
                rules.predicates = Predicates::Deny;
            }
        }
        Ok(rules)
    }

    /// Whether anything is masked for this identity.
    pub fn is_active(&self) -> bool {
        !self.columns.is_empty() || !self.detectors.is_empty()
    }

    /// Whether any column rule applies (detectors alone need no provenance).
    pub fn has_column_rules(&self) -> bool {
        !self.columns.is_empty()
    }

    fn rule_for(&self, schema: &str, table: &str, column: &str) -> Option<&ColumnRule> {
        let qualified = format!("{schema}.{table}");
        self.columns
            .iter()
            .find(|r| r.table.matches(&qualified) && r.column.matches(column))
    }

    /// The mask of a stored column that a result column reads unchanged, by the
    /// RowDescription's table OID and column number.
    pub fn stored(&self, catalog: &Catalog, table_oid: u32, attnum: i16) -> Stored {
        let Some(relation) = catalog.relation(table_oid) else {
            return Stored::Unknown;
        };
        let Some(column) = relation.columns.iter().find(|c| c.attnum == attnum) else {
            return Stored::Unknown;
        };
        let mut found = Found::default();
        let col = ColumnName {
            relation: Some(RelationName {
                schema: Some(relation.schema.clone()),
                name: relation.name.clone(),
            }),
            column: column.name.clone(),
        };
        self.collect(
            &col,
            &BTreeSet::new(),
            &SearchPath::default(),
            catalog,
            0,
            &mut found,
        );
        Stored::Known(found.resolve())
    }

    /// Refuses what would take masked values out of reach, and plans the masks of the
    /// result columns.
    pub fn plan(
        &self,
        info: &StatementInfo,
        path: &SearchPath,
        catalog: &Catalog,
    ) -> Result<StatementPlan, MaskDenial> {
        if !self.has_column_rules() {
            return Ok(StatementPlan::default());
        }
        let masked = |columns: &mut dyn Iterator<Item = &ColumnName>| -> Found {
            let mut found = Found::default();
            for col in columns {
                self.collect(col, &info.read, path, catalog, 0, &mut found);
            }
            found
        };
        let deny = |found: &Found, what: &str| -> Result<(), MaskDenial> {
            match found.first() {
                Some((rule, column)) => Err(MaskDenial {
                    rule: rule.to_string(),
                    message: format!("{what} masked column {column} (masking rule {rule})"),
                }),
                None => Ok(()),
            }
        };
        if let Some(function) = info.functions.iter().find(|f| {
            let bare = f.rsplit('.').next().unwrap_or(f);
            OPAQUE_FUNCTIONS.contains(&bare) || catalog.is_user_function(f)
        }) {
            return Err(MaskDenial {
                rule: self.columns[0].rule.clone(),
                message: format!(
                    "the statement calls {function}(), whose reads the proxy cannot see, while columns are masked for you"
                ),
            });
        }
        if let Some(why) = &info.opaque_code {
            return Err(MaskDenial {
                rule: self.columns[0].rule.clone(),
                message: format!(
                    "{why}; what it reads and where it sends values cannot be known while columns are masked for you"
                ),
            });
        }
        for relation in &info.hooks {
            let mut found = Found::default();
            self.collect(&whole(relation), &info.read, path, catalog, 0, &mut found);
            deny(
                &found,
                "triggers, rules and policies run later, out of the proxy's sight, on the rows of",
            )?;
        }
        if let Some(sink) = info.functions.iter().find(|f| {
            let (schema, bare) = f.rsplit_once('.').unwrap_or(("pg_catalog", f));
            schema == "pg_catalog" && SINK_FUNCTIONS.contains(&bare)
        }) {
            // Any masked column the statement reads may be what it sends: the sink's
            // arguments can reach it through subqueries, CTEs and joins alike.
            deny(
                &masked(&mut info.columns.iter()),
                &format!(
                    "the statement calls {sink}(), which sends values where the proxy cannot mask them, and reads"
                ),
            )?;
        }
        if let Some(relation) = info.read.iter().find(|r| {
            VALUE_CATALOGS.contains(&r.name.as_str())
                && r.schema.as_deref().is_none_or(|s| s == "pg_catalog")
        }) {
            return Err(MaskDenial {
                rule: self.columns[0].rule.clone(),
                message: format!("{} exposes stored values of masked columns", relation.name),
            });
        }
        deny(
            &masked(&mut info.copied_columns.iter()),
            "the statement copies",
        )?;
        if let Some(copy) = &info.copy_out {
            deny(
                &masked(&mut copy.columns.iter()),
                "COPY … TO STDOUT cannot mask; use SELECT, which masks. It reads",
            )?;
        }
        if self.predicates == Predicates::Deny {
            deny(
                &masked(&mut info.predicate_columns.iter()),
                "predicates: Deny forbids filtering, joining, grouping or sorting on",
            )?;
        }
        let mut plan = self.outputs(&info.outputs, &info.read, path, catalog)?;
        plan.in_play = info
            .read
            .iter()
            .chain(&info.written)
            .any(|relation| self.relation_masked(relation, path, catalog))
            || !masked(&mut info.columns.iter()).hits.is_empty();
        Ok(plan)
    }

    /// Whether any column of `relation` (a view: any column it reads) is masked.
    pub fn relation_masked(
        &self,
        relation: &RelationName,
        path: &SearchPath,
        catalog: &Catalog,
    ) -> bool {
        self.column_masked(relation, "*", path, catalog)
    }

    /// Whether `column` of `relation` is masked (through views, to stored columns); a
    /// relation the snapshot does not know is judged by name.
    pub fn column_masked(
        &self,
        relation: &RelationName,
        column: &str,
        path: &SearchPath,
        catalog: &Catalog,
    ) -> bool {
        let mut found = Found::default();
        let col = ColumnName {
            relation: Some(relation.clone()),
            column: column.to_string(),
        };
        self.collect(&col, &BTreeSet::new(), path, catalog, 0, &mut found);
        !found.hits.is_empty()
    }

    /// Whether a column of this name is masked in any relation (what a message that does
    /// not name its table may be about).
    pub fn any_column_named(&self, column: &str) -> bool {
        self.columns.iter().any(|r| r.column.matches(column))
    }

    /// The plan for result columns whose provenance is `outputs` (a statement's own, or a
    /// cursor's or prepared statement's recorded at definition).
    pub fn outputs(
        &self,
        outputs: &[OutputColumn],
        read: &BTreeSet<RelationName>,
        path: &SearchPath,
        catalog: &Catalog,
    ) -> Result<StatementPlan, MaskDenial> {
        let mut plan = StatementPlan::default();
        let mut all = Found::default();
        for output in outputs {
            let mut found = Found::default();
            for col in &output.sources {
                self.collect(col, read, path, catalog, 0, &mut found);
            }
            if output.computed
                && self.derived == DerivedColumns::Deny
                && let Some((rule, column)) = found.first()
            {
                return Err(MaskDenial {
                    rule: rule.to_string(),
                    message: format!(
                        "derivedColumns: Deny forbids results computed from masked column {column} (masking rule {rule})"
                    ),
                });
            }
            let width = match &output.star {
                None => Some(1),
                Some(relation) => relation
                    .as_ref()
                    .and_then(|r| catalog.resolve(r, path).ok())
                    .map(|r| r.columns.len()),
            };
            all.merge(&found);
            plan.outputs.push(OutputPlan {
                mask: found.resolve(),
                computed: output.computed,
                width,
            });
        }
        plan.fallback = all.resolve();
        Ok(plan)
    }

    /// Adds the rules that may cover `col` (through views, to the stored columns).
    fn collect(
        &self,
        col: &ColumnName,
        read: &BTreeSet<RelationName>,
        path: &SearchPath,
        catalog: &Catalog,
        depth: usize,
        found: &mut Found,
    ) {
        // Views of views: PostgreSQL bounds nesting itself; a bound here keeps a corrupt
        // snapshot from recursing forever, and fails closed.
        if depth > 16 {
            if let Some(rule) = self.columns.first() {
                found.add(rule, "a deeply nested view".into());
            }
            return;
        }
        let owners: Vec<RelationName> = match &col.relation {
            Some(r) => vec![r.clone()],
            None => read.iter().cloned().collect(),
        };
        for owner in &owners {
            match catalog.resolve(owner, path) {
                Ok(relation) => {
                    if relation.opaque {
                        if let Some(rule) = self.columns.first() {
                            found.add(
                                rule,
                                format!(
                                    "{}.{} (view not analysable)",
                                    relation.schema, relation.name
                                ),
                            );
                        }
                        continue;
                    }
                    // Rules naming the relation's columns; for a view, as well as what it reads.
                    for column in &relation.columns {
                        if (col.column == "*" || col.column == column.name)
                            && let Some(rule) =
                                self.rule_for(&relation.schema, &relation.name, &column.name)
                        {
                            found.add(
                                rule,
                                format!("{}.{}.{}", relation.schema, relation.name, column.name),
                            );
                        }
                    }
                    if let Some(view) = &relation.view {
                        // A view's names resolve among what it could read when it was
                        // made: a shared view never reads this session's temporary tables.
                        let scope = catalog.layer_of(relation.oid);
                        for output in view_outputs(relation, view, &col.column) {
                            for source in &output.sources {
                                self.collect(
                                    source,
                                    &relation.view_reads,
                                    &SearchPath::default(),
                                    scope,
                                    depth + 1,
                                    found,
                                );
                            }
                        }
                        continue;
                    }
                    if col.column != "*" && !relation.columns.iter().any(|c| c.name == col.column) {
                        // A column the snapshot does not know (added since): judge by name.
                        self.by_name(
                            &[Some(relation.schema.clone())],
                            &owner.name,
                            &col.column,
                            found,
                        );
                    }
                }
                Err(schemas) => self.by_name(&schemas, &owner.name, &col.column, found),
            }
        }
    }

    /// Rules matching a relation the catalog snapshot does not know, by name alone; a
    /// `None` schema is one the proxy cannot know, so any schema's rule counts.
    fn by_name(&self, schemas: &[Option<String>], table: &str, column: &str, found: &mut Found) {
        for rule in &self.columns {
            let table_hit = schemas.iter().any(|s| match s {
                Some(s) => rule.table.matches(&format!("{s}.{table}")),
                None => rule.table.matches_some_prefix(&format!(".{table}")),
            });
            let column_hit = column == "*" || rule.column.matches(column);
            if table_hit && column_hit {
                found.add(rule, format!("{table}.{column}"));
            }
        }
    }
}

/// Every column of `relation`.
fn whole(relation: &RelationName) -> ColumnName {
    ColumnName {
        relation: Some(relation.clone()),
        column: "*".to_string(),
    }
}

fn hash_key(mask: &Mask, key_for: KeyLookup<'_>) -> Result<Option<Arc<[u8]>>, String> {
    match mask {
        Mask::Hash { key_secret_ref, .. } => key_for(key_secret_ref).map(Some),
        _ => Ok(None),
    }
}

/// The outputs of a view that a reference to its column `column` reads.
fn view_outputs<'v>(
    relation: &CatalogRelation,
    view: &'v [OutputColumn],
    column: &str,
) -> Vec<&'v OutputColumn> {
    if column == "*" {
        return view.iter().collect();
    }
    // The view's columns are its query's outputs in order (pg_get_viewdef spells out
    // every column); if the two disagree in width, every output may be the one.
    match relation.columns.iter().position(|c| c.name == column) {
        Some(i) if view.len() == relation.columns.len() => vec![&view[i]],
        _ => view.iter().collect(),
    }
}

type Hit = (String, Mask, Option<Arc<[u8]>>, String);

/// Rules found for one result column.
#[derive(Default)]
struct Found {
    /// (rule, mask, key, stored column) per hit.
    hits: Vec<Hit>,
}

impl Found {
    fn add(&mut self, rule: &ColumnRule, column: String) {
        self.hits.push((
            rule.rule.clone(),
            rule.mask.clone(),
            rule.key.clone(),
            column,
        ));
    }

    fn merge(&mut self, other: &Found) {
        self.hits.extend(other.hits.iter().cloned());
    }

    fn first(&self) -> Option<(&str, &str)> {
        self.hits
            .first()
            .map(|(r, _, _, c)| (r.as_str(), c.as_str()))
    }

    /// One mask for the column: the rules' mask when they agree, else `Null` — the one
    /// mask that hides every value of every type.
    fn resolve(&self) -> Option<ResolvedMask> {
        let (_, first, key, _) = self.hits.first()?;
        let agree = self.hits.iter().all(|(_, m, k, _)| m == first && k == key);
        Some(ResolvedMask {
            mask: if agree { first.clone() } else { Mask::Null },
            key: if agree { key.clone() } else { None },
            columns: self.hits.iter().map(|h| h.3.clone()).collect(),
            rules: self.hits.iter().map(|h| h.0.clone()).collect(),
        })
    }
}

/// What is known of a stored column a result column reads unchanged.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    /// In the snapshot: its mask, if any.
    Known(Option<ResolvedMask>),
    /// Not in the snapshot (created since it was taken).
    Unknown,
}

/// Masks for a statement's result columns, by output position.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatementPlan {
    pub outputs: Vec<OutputPlan>,
    /// The mask for a computed result column that cannot be matched to its output (a `*`
    /// of unknown width before it): whatever any output may carry.
    pub fallback: Option<ResolvedMask>,
    /// The statement reads or writes a relation with masked columns: the server's error
    /// and notice texts about it may carry their values ([`crate::server_message`]).
    pub in_play: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutputPlan {
    pub mask: Option<ResolvedMask>,
    pub computed: bool,
    /// How many result columns this output is: 1, a `*`'s width, or `None` when unknown.
    pub width: Option<usize>,
}

impl StatementPlan {
    /// The mask for each of `fields` result columns computed by the server (table OID
    /// zero), by position when the outputs line up with the fields, else the fallback.
    pub fn for_fields(&self, fields: usize) -> Vec<Option<ResolvedMask>> {
        let mut masks = Vec::with_capacity(fields);
        for output in &self.outputs {
            match output.width {
                Some(width) => {
                    for _ in 0..width {
                        masks.push(output.mask.clone());
                    }
                }
                None => return vec![self.fallback.clone(); fields],
            }
        }
        if masks.len() != fields {
            return vec![self.fallback.clone(); fields];
        }
        masks
    }
}

/// A snapshot of the server's catalog: the relations (tables, views) and their columns,
/// view definitions analysed, and which function names are user-defined.
///
/// A catalog may be layered [`over`](Catalog::over) a shared base: a session's own
/// temporary objects over the snapshot of its database that every session shares, so
/// the base is never copied per session. Lookups try this layer first, then the base.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    relations: HashMap<u32, CatalogRelation>,
    by_name: HashMap<(String, String), u32>,
    /// Relations in temporary schemas (`pg_temp_N`), by name. Only the top layer's count:
    /// temporary objects belong to one session, and another session's must never
    /// resolve a name.
    temp: HashMap<String, u32>,
    /// Function names by where they are defined; a name defined by a user anywhere
    /// counts as a user function (search_path could pick it).
    functions: HashMap<String, FunctionKind>,
    /// The catalog this one is layered over.
    base: Option<Arc<Catalog>>,
}

/// Where a function is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FunctionKind {
    /// pg_catalog or information_schema.
    BuiltIn,
    /// A member of an installed extension.
    Extension,
    /// Created by a user: its body is SQL the proxy never sees.
    User,
}

#[derive(Clone, Debug, Default)]
pub struct CatalogRelation {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub columns: Vec<CatalogColumn>,
    /// A view's analysed definition (its outputs), `None` for a table.
    pub view: Option<Vec<OutputColumn>>,
    /// The relations a view's definition reads.
    pub view_reads: BTreeSet<RelationName>,
    /// A view whose definition could not be analysed: every column of it is treated as
    /// masked, since what it reads is unknown.
    pub opaque: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogColumn {
    pub attnum: i16,
    pub name: String,
    pub type_oid: u32,
}

impl Catalog {
    /// This catalog layered over `base`: its own entries are found first, and its
    /// temporary relations are the only ones an unqualified name can resolve to.
    pub fn over(mut self, base: Arc<Catalog>) -> Catalog {
        self.base = Some(base);
        self
    }

    /// Whether this layer holds nothing (its base is not looked at).
    pub fn is_empty(&self) -> bool {
        self.relations.is_empty() && self.functions.is_empty()
    }

    pub fn insert(&mut self, relation: CatalogRelation) {
        if relation.schema.starts_with("pg_temp") {
            self.temp.insert(relation.name.clone(), relation.oid);
        }
        self.by_name.insert(
            (relation.schema.clone(), relation.name.clone()),
            relation.oid,
        );
        self.relations.insert(relation.oid, relation);
    }

    pub fn relation(&self, oid: u32) -> Option<&CatalogRelation> {
        self.relations
            .get(&oid)
            .or_else(|| self.base.as_deref()?.relation(oid))
    }

    /// A relation of this layer (a shared base is never changed through a session's view).
    pub fn relation_mut(&mut self, oid: u32) -> Option<&mut CatalogRelation> {
        self.relations.get_mut(&oid)
    }

    /// Where a function name is defined, the strongest kind over all layers.
    fn function_kind(&self, bare: &str) -> Option<FunctionKind> {
        let own = self.functions.get(bare).copied();
        let base = self.base.as_deref().and_then(|b| b.function_kind(bare));
        own.max(base)
    }

    /// The relation `(schema, name)` in this layer or the ones below.
    fn lookup(&self, key: &(String, String)) -> Option<&CatalogRelation> {
        self.by_name
            .get(key)
            .and_then(|oid| self.relations.get(oid))
            .or_else(|| self.base.as_deref()?.lookup(key))
    }

    /// The layer that holds relation `oid` (with what lies below it), or this one.
    fn layer_of(&self, oid: u32) -> &Catalog {
        match &self.base {
            Some(base) if !self.relations.contains_key(&oid) => base.layer_of(oid),
            _ => self,
        }
    }

    /// The session's own temporary relation `name` (this layer only).
    fn temporary(&self, name: &str) -> Option<&CatalogRelation> {
        self.temp.get(name).and_then(|oid| self.relations.get(oid))
    }

    pub fn add_user_function(&mut self, name: &str) {
        self.add_function(name, FunctionKind::User);
    }

    pub fn add_function(&mut self, name: &str, kind: FunctionKind) {
        let entry = self.functions.entry(name.to_string()).or_insert(kind);
        *entry = (*entry).max(kind);
    }

    /// Whether `name` (as the statement spelled it, lower-cased) may be a user-defined
    /// function: one outside pg_catalog whose body the proxy cannot see.
    fn is_user_function(&self, name: &str) -> bool {
        let bare = match name.rsplit_once('.') {
            Some(("pg_catalog", _)) => return false,
            Some((_, bare)) => bare,
            None => name,
        };
        self.function_kind(bare) == Some(FunctionKind::User)
    }

    /// Whether the snapshot knows a function of this name (one created since it was taken
    /// is not).
    pub fn knows_function(&self, name: &str) -> bool {
        let bare = name.rsplit_once('.').map_or(name, |(_, b)| b);
        self.function_kind(bare).is_some()
    }

    /// Whether the snapshot knows the relation `name` resolves to under `path`; system
    /// catalogs are not in the snapshot and count as known. `pg_temp` (the session's own
    /// temporary schema) is no system schema: its relations are in the snapshot.
    pub fn knows_relation(&self, name: &RelationName, path: &SearchPath) -> bool {
        let system = match &name.schema {
            Some(s) => s == "information_schema" || (s.starts_with("pg_") && s != "pg_temp"),
            None => name.name.starts_with("pg_"),
        };
        system || self.resolve(name, path).is_ok()
    }

    /// The relation a name refers to under `path`, or the schemas it may be in when the
    /// snapshot does not have it (`None`: a schema the proxy cannot know).
    fn resolve(
        &self,
        name: &RelationName,
        path: &SearchPath,
    ) -> Result<&CatalogRelation, Vec<Option<String>>> {
        match &name.schema {
            // `pg_temp` is PostgreSQL's alias for the session's own temporary schema.
            Some(schema) if schema == "pg_temp" => self
                .temporary(&name.name)
                .ok_or_else(|| vec![Some(schema.clone())]),
            Some(schema) => self
                .lookup(&(schema.clone(), name.name.clone()))
                .ok_or_else(|| vec![Some(schema.clone())]),
            None => {
                // The session's temporary schema is searched first, implicitly, unless
                // the path places `pg_temp` itself (`SET search_path = public, pg_temp`).
                let placed = path.schemas.iter().any(|s| s.as_deref() == Some("pg_temp"));
                if !placed && let Some(r) = self.temporary(&name.name) {
                    return Ok(r);
                }
                for schema in &path.schemas {
                    match schema {
                        Some(s) if s == "pg_temp" => {
                            if let Some(r) = self.temporary(&name.name) {
                                return Ok(r);
                            }
                        }
                        Some(s) => {
                            if let Some(r) = self.lookup(&(s.clone(), name.name.clone())) {
                                return Ok(r);
                            }
                        }
                        // From here on the proxy cannot know where the name resolves.
                        None => break,
                    }
                }
                Err(path.schemas.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests;
