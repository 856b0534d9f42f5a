//! Dynamic masking on the wire. Each statement's result columns are traced to what they
//! are read from (the RowDescription's table OID and column number against a catalog
//! snapshot for plain columns, the SQL analysis for computed ones), and DataRows are
//! rewritten one at a time as they pass: nothing is buffered per result set.
//!
//! Which result a DataRow belongs to follows from the order of responses: every request
//! that produces rows or descriptions is queued as it goes to the server ([`Expect`]) and
//! retired as its responses come back, with the protocol's own rules (an error in an
//! extended-protocol batch skips to Sync; a simple Query ends at ReadyForQuery).

pub mod catalog;
mod messages;
mod rows;
pub mod shared;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use palisade_policy::analysis::{Named, ParseFailure, StatementInfo, analyze_with};
use palisade_policy::decision::SearchPath;
use palisade_policy::dialect::SqlDialect;
use palisade_policy::mask::{DetectorSet, Session};
use palisade_policy::mask_plan::{MaskDenial, MaskRules, ResolvedMask, StatementPlan};
use palisade_policy::masking::Mask;
use palisade_policy::model::Operation;
use palisade_policy::shape::shape;

use crate::protocol::results::{self, Field};
use crate::protocol::{backend, frontend};
use crate::verdict::Verdict;
use messages::InPlay;
pub use rows::RowMasker;
use shared::{SessionCatalog, Why, changes_catalog};

/// Statement analyses a session keeps.
const ANALYSES_KEPT: usize = 256;

/// Function-call syntax PostgreSQL has no pg_proc entry for.
const SYNTAX_FUNCTIONS: &[&str] = &[
    "coalesce",
    "greatest",
    "least",
    "nullif",
    "row",
    "array",
    "grouping",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "json_object",
    "json_array",
    "json_objectagg",
    "json_arrayagg",
    "json",
    "json_scalar",
    "json_serialize",
    "json_exists",
    "json_query",
    "json_value",
    "merge_action",
];

/// A request whose responses are still to come.
enum Expect {
    /// A simple Query: one plan per statement, the current one by CommandComplete count.
    Query {
        plans: Vec<Arc<StatementPlan>>,
        index: usize,
    },
    Describe {
        kind: u8,
        name: String,
    },
    Execute {
        portal: String,
    },
    Sync,
    /// The sidecar's own catalog query: its responses are read and dropped.
    Refresh,
}

struct Prepared {
    plan: Arc<StatementPlan>,
    /// The statement's text, for telling the client's own words in the server's messages.
    text: Arc<str>,
    /// The statement's RowDescription, from a Describe of it (formats all text).
    fields: Option<Vec<Field>>,
}

struct Portal {
    plan: Arc<StatementPlan>,
    fields: Option<Vec<Field>>,
    formats: Vec<i16>,
}

/// One session's masking state.
pub struct Masking {
    rules: Arc<MaskRules>,
    /// The database's shared catalog snapshot, with the session's own temporary objects.
    catalog: SessionCatalog,
    session: Session,
    detectors: Option<DetectorSet>,
    statements: HashMap<String, Prepared>,
    portals: HashMap<String, Portal>,
    /// Plans of SQL-level cursors (DECLARE) and prepared statements (PREPARE).
    cursors: HashMap<String, Arc<StatementPlan>>,
    prepared: HashMap<String, Arc<StatementPlan>>,
    expect: VecDeque<Expect>,
    /// The masker for the DataRows now streaming, if they need one.
    current: Option<RowMasker>,
    /// The statement being checked was deferred for a refresh that has now happened: it
    /// goes on with what the catalog says, whatever that is.
    just_refreshed: bool,
    /// Rewritten rows are built here.
    scratch: Vec<u8>,
    /// Analyses by statement text: drivers send the same texts again and again.
    analyses: HashMap<Box<[u8]>, Arc<Vec<StatementInfo>>>,
    /// How the cached analyses read their text.
    dialect: SqlDialect,
    /// Statements in flight that touch masked columns: the server's messages about them
    /// are made safe.
    in_play: InPlay,
}

/// What masking needs from the statement a client sends.
pub enum Check {
    /// Forward it; the plans of its statements, in order.
    Pass(Vec<Arc<StatementPlan>>),
    /// Refresh the catalog snapshot first, then look at the message again.
    Refresh(Bytes),
    Deny(MaskDenial),
}

impl Masking {
    pub fn new(rules: Arc<MaskRules>, catalog: SessionCatalog, date_style: &str) -> Self {
        let detectors = (!rules.detectors.is_empty())
            .then(|| DetectorSet::new(&rules.detectors, rules.detector_key.clone()));
        Masking {
            rules,
            catalog,
            session: Session::from_date_style(date_style),
            detectors,
            statements: HashMap::new(),
            portals: HashMap::new(),
            cursors: HashMap::new(),
            prepared: HashMap::new(),
            expect: VecDeque::new(),
            current: None,
            just_refreshed: false,
            scratch: Vec::new(),
            analyses: HashMap::new(),
            dialect: SqlDialect::default(),
            in_play: InPlay::default(),
        }
    }

    /// The analysis of `sql` as the session reads it (`dialect`), from this session's
    /// cache when it was seen before.
    pub fn analysis(
        &mut self,
        text: &str,
        dialect: &SqlDialect,
    ) -> Result<Arc<Vec<StatementInfo>>, ParseFailure> {
        if *dialect != self.dialect {
            self.analyses.clear();
            self.dialect = *dialect;
        }
        // Keyed by shape: the numbers a shape replaces (`aid = 48213`, `LIMIT 10`) change
        // no column's provenance, so clients that inline values hit the cache too.
        let shape = shape(text);
        let key = shape.as_deref().unwrap_or(text).as_bytes();
        if let Some(found) = self.analyses.get(key) {
            return Ok(found.clone());
        }
        let statements = Arc::new(analyze_with(text, dialect)?);
        if self.analyses.len() >= ANALYSES_KEPT {
            // Texts that never repeat would grow it forever; start over rather than track age.
            self.analyses.clear();
        }
        self.analyses.insert(key.into(), statements.clone());
        Ok(statements)
    }

    /// Rules changed with a policy reload: new masks apply from the next result.
    pub fn set_rules(&mut self, rules: Arc<MaskRules>) {
        self.detectors = (!rules.detectors.is_empty())
            .then(|| DetectorSet::new(&rules.detectors, rules.detector_key.clone()));
        self.rules = rules;
    }

    /// The transaction status of a ReadyForQuery the client gets.
    pub fn on_status(&mut self, status: u8) {
        self.catalog.on_status(status);
    }

    /// Whether the sidecar's catalog query is being answered (its responses are dropped).
    pub fn refreshing(&self) -> bool {
        matches!(self.expect.front(), Some(Expect::Refresh))
    }

    /// Decides what masking needs before a statement goes to the server. `idle`: nothing
    /// is awaiting responses, so a catalog query can be slipped in first.
    pub fn check(&mut self, statements: &[StatementInfo], path: &SearchPath, idle: bool) -> Check {
        if !self.rules.has_column_rules() {
            return Check::Pass(Vec::new());
        }
        // A snapshot another session published since is taken first, without a query.
        self.catalog.catch_up();
        let catalog = &self.catalog.view().catalog;
        // A name the snapshot lacks may be a relation or a user function created since:
        // look again before deciding. Some "functions" are syntax with no catalog entry.
        let unknown = statements.iter().any(|s| {
            s.read.iter().any(|r| !catalog.knows_relation(r, path))
                || s.functions.iter().any(|f| {
                    let bare = f.rsplit('.').next().unwrap_or(f);
                    !catalog.knows_function(f) && !SYNTAX_FUNCTIONS.contains(&bare)
                })
        });
        let why = self
            .catalog
            .needs_read()
            .or(unknown.then_some(Why::UnknownName));
        let refreshed = std::mem::take(&mut self.just_refreshed);
        if let Some(why) = why
            && !refreshed
            && idle
            && self.expect.is_empty()
        {
            self.expect.push_back(Expect::Refresh);
            return Check::Refresh(self.catalog.begin_read(why));
        }
        let mut plans = Vec::with_capacity(statements.len());
        for statement in statements {
            match self.plan(statement, path) {
                Ok(plan) => plans.push(plan),
                Err(denial) => return Check::Deny(denial),
            }
        }
        Check::Pass(plans)
    }

    fn plan(
        &self,
        info: &StatementInfo,
        path: &SearchPath,
    ) -> Result<Arc<StatementPlan>, MaskDenial> {
        if !self.rules.has_column_rules() {
            return Ok(Arc::new(StatementPlan::default()));
        }
        let plan = self.rules.plan(info, path, &self.catalog.view().catalog)?;
        Ok(Arc::new(match &info.uses {
            Some(Named::Cursor(name)) => self
                .cursors
                .get(name)
                .map_or_else(|| self.unknown_plan(), |p| (**p).clone()),
            Some(Named::Prepared(name)) => self
                .prepared
                .get(name)
                .map_or_else(|| self.unknown_plan(), |p| (**p).clone()),
            None => plan,
        }))
    }

    /// Rows whose statement the sidecar never saw (a cursor declared before a policy
    /// reload): every computed column is hidden.
    fn unknown_plan(&self) -> StatementPlan {
        StatementPlan {
            outputs: Vec::new(),
            fallback: Some(null_mask("results of a statement the sidecar did not see")),
            in_play: true,
        }
    }

    /// A Query the server will run, with the plans [`Masking::check`] made for it (none
    /// when masking had nothing to plan: its rows then get the conservative plan).
    pub fn on_query(
        &mut self,
        text: &str,
        statements: &[StatementInfo],
        plans: Vec<Arc<StatementPlan>>,
    ) {
        for (info, plan) in statements.iter().zip(&plans) {
            self.remember(info, plan);
        }
        if plans.iter().any(|p| p.in_play) {
            self.in_play.add(&Arc::from(text));
        }
        self.expect.push_back(Expect::Query { plans, index: 0 });
    }

    /// A replaced (denied) message: answered by an error and ReadyForQuery.
    pub fn on_denied_query(&mut self) {
        self.expect.push_back(Expect::Query {
            plans: Vec::new(),
            index: 0,
        });
    }

    fn remember(&mut self, info: &StatementInfo, plan: &Arc<StatementPlan>) {
        if changes_catalog(&info.operations) {
            // The catalog changes once this runs; look again before the next statement.
            self.catalog.on_ddl();
        } else if self.catalog.has_own()
            && info.operations.contains(&Operation::Other)
            && info.defines.is_none()
            && info.uses.is_none()
        {
            // DISCARD TEMP / ALL drop the session's temporary objects, and a dropped one
            // must not go on shadowing a masked table; the analysis tells DISCARD apart
            // from CLOSE or DEALLOCATE only by what they define and use, so a session
            // with temporary objects looks again after any of them.
            self.catalog.mark_stale();
        }
        match &info.defines {
            Some(Named::Cursor(name)) => {
                self.cursors.insert(name.clone(), plan.clone());
            }
            Some(Named::Prepared(name)) => {
                self.prepared.insert(name.clone(), plan.clone());
            }
            None => {}
        }
    }

    /// A Parse the server will run, with its plan from [`Masking::check`].
    pub fn on_parse(
        &mut self,
        name: String,
        text: &str,
        statements: &[StatementInfo],
        plans: Vec<Arc<StatementPlan>>,
    ) {
        let plan = match (statements, plans.as_slice()) {
            ([one], [plan]) => {
                self.remember(one, plan);
                plan.clone()
            }
            // Several statements in one Parse (the server refuses it), or nothing planned.
            _ => Arc::new(self.unknown_plan()),
        };
        // Only a statement touching masked columns needs its text kept.
        let text: Arc<str> = if plan.in_play {
            let text = Arc::from(text);
            // Errors of parse analysis (a cast of a column in WHERE) come back now.
            self.in_play.add(&text);
            text
        } else {
            Arc::from("")
        };
        self.statements.insert(
            name,
            Prepared {
                plan,
                text,
                fields: None,
            },
        );
    }

    /// Client messages of the extended protocol, held whole while masking is on.
    pub fn on_client_message(&mut self, msg: &[u8]) {
        match msg[0] {
            frontend::BIND => {
                let Some(bind) = results::bind(msg) else {
                    return;
                };
                let (plan, fields, text) = match self.statements.get(&bind.statement) {
                    Some(p) => (p.plan.clone(), p.fields.clone(), p.text.clone()),
                    None => (Arc::new(self.unknown_plan()), None, Arc::from("")),
                };
                if plan.in_play {
                    self.in_play.add(&text);
                }
                self.portals.insert(
                    bind.portal,
                    Portal {
                        plan,
                        fields,
                        formats: bind.result_formats,
                    },
                );
            }
            frontend::DESCRIBE => {
                if let Some((kind, name)) = results::target(msg) {
                    self.expect.push_back(Expect::Describe { kind, name });
                }
            }
            frontend::EXECUTE => {
                if let Some(portal) = results::execute_portal(msg) {
                    self.expect.push_back(Expect::Execute { portal });
                }
            }
            frontend::CLOSE => match results::target(msg) {
                Some((b'S', name)) => {
                    self.statements.remove(&name);
                }
                Some((_, name)) => {
                    self.portals.remove(&name);
                }
                None => {}
            },
            _ => {}
        }
    }

    pub fn on_sync(&mut self) {
        self.expect.push_back(Expect::Sync);
    }

    /// Which client messages must be held whole.
    pub fn holds_client(tag: u8) -> bool {
        matches!(
            tag,
            frontend::BIND | frontend::DESCRIBE | frontend::EXECUTE | frontend::CLOSE
        )
    }

    /// Which server messages must be held whole now.
    pub fn holds_server(&mut self, tag: u8) -> bool {
        if self.refreshing() {
            return true;
        }
        match tag {
            backend::ROW_DESCRIPTION | backend::PARAMETER_STATUS => true,
            backend::ERROR_RESPONSE | backend::NOTICE_RESPONSE => {
                self.in_play.is_active() || self.detectors.is_some()
            }
            backend::NOTIFICATION_RESPONSE => self.detectors.is_some(),
            backend::DATA_ROW => {
                if self.current.is_none()
                    && matches!(self.expect.front(), Some(Expect::Execute { .. }))
                {
                    self.start_execute();
                }
                self.current.as_ref().is_some_and(RowMasker::is_active)
            }
            _ => false,
        }
    }

    /// The sidecar's catalog query is answered: read and drop every message except those
    /// meant for the client whatever it asked (notices, notifications, parameter changes).
    pub fn on_refresh_message(&mut self, msg: &[u8]) -> Verdict {
        let tag = msg[0];
        if self.catalog.feed(msg) {
            self.expect.pop_front();
            self.just_refreshed = true;
            return Verdict::Discard;
        }
        match tag {
            backend::NOTICE_RESPONSE
            | backend::NOTIFICATION_RESPONSE
            | backend::PARAMETER_STATUS => Verdict::Forward,
            _ => Verdict::Discard,
        }
    }

    /// Server message boundaries that retire requests (seen by header; no need to hold).
    pub fn on_server_header(&mut self, tag: u8) {
        match tag {
            backend::NO_DATA => {
                if matches!(self.expect.front(), Some(Expect::Describe { .. })) {
                    self.expect.pop_front();
                }
            }
            backend::COMMAND_COMPLETE
            | backend::EMPTY_QUERY_RESPONSE
            | backend::PORTAL_SUSPENDED => {
                self.end_result();
            }
            backend::ERROR_RESPONSE => {
                self.current = None;
                match self.expect.front_mut() {
                    Some(Expect::Query { index, .. }) => *index += 1,
                    _ => {
                        // Extended protocol: the server skips to Sync.
                        while let Some(front) = self.expect.front() {
                            if matches!(front, Expect::Sync | Expect::Query { .. }) {
                                break;
                            }
                            self.expect.pop_front();
                        }
                    }
                }
            }
            backend::READY_FOR_QUERY => {
                self.current = None;
                while let Some(front) = self.expect.pop_front() {
                    if matches!(front, Expect::Sync | Expect::Query { .. }) {
                        break;
                    }
                }
                if self.expect.is_empty() {
                    self.in_play.clear();
                }
            }
            _ => {}
        }
    }

    fn end_result(&mut self) {
        self.current = None;
        match self.expect.front_mut() {
            Some(Expect::Query { index, .. }) => *index += 1,
            Some(Expect::Execute { .. }) => {
                self.expect.pop_front();
            }
            _ => {}
        }
    }

    /// Held server messages: descriptions, rows, parameter changes, notices and
    /// notifications. `path`: the session's search_path, for the names in messages.
    pub fn on_server_message(&mut self, msg: &[u8], path: &SearchPath) -> Verdict {
        match msg[0] {
            backend::ERROR_RESPONSE | backend::NOTICE_RESPONSE => self.safe_message(msg, path),
            backend::NOTIFICATION_RESPONSE => match self.detectors.as_mut() {
                Some(detectors) => messages::scan_notification(msg, detectors),
                None => Verdict::Forward,
            },
            backend::ROW_DESCRIPTION => {
                self.on_row_description(msg);
                Verdict::Forward
            }
            backend::DATA_ROW => match self.current.as_mut() {
                Some(masker) => masker.rewrite(msg, &mut self.scratch),
                None => Verdict::Forward,
            },
            backend::PARAMETER_STATUS => {
                if let Some((name, value)) = results::parameter_status(msg)
                    && name.eq_ignore_ascii_case(b"DateStyle")
                {
                    self.session = Session::from_date_style(&String::from_utf8_lossy(value));
                }
                Verdict::Forward
            }
            _ => Verdict::Forward,
        }
    }

    /// An ErrorResponse or NoticeResponse: made safe while masked columns are in play,
    /// and its texts passed through the detectors when there are any (a value of a
    /// column no rule names can carry an e-mail address into a cast error too).
    pub fn safe_message(&mut self, msg: &[u8], path: &SearchPath) -> Verdict {
        let verdict = if self.in_play.is_active() {
            messages::safe_message(
                msg,
                &self.rules,
                &self.catalog.view().catalog,
                path,
                &self.in_play,
            )
        } else {
            Verdict::Forward
        };
        let Some(detectors) = self.detectors.as_mut() else {
            return verdict;
        };
        match verdict {
            Verdict::Replace(rewritten) => match messages::scan_message(&rewritten, detectors) {
                Verdict::Forward => Verdict::Replace(rewritten),
                scanned => scanned,
            },
            Verdict::Forward => messages::scan_message(msg, detectors),
            other => other,
        }
    }

    fn on_row_description(&mut self, msg: &[u8]) {
        let fields = results::row_description(msg);
        match self.expect.front_mut() {
            Some(Expect::Query { plans, index }) => {
                let plan = plans
                    .get(*index)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(self.unknown_plan()));
                self.current = Some(self.masker(&plan, fields.as_deref(), None));
            }
            Some(Expect::Describe { kind, name }) => {
                match *kind {
                    b'S' => {
                        if let Some(p) = self.statements.get_mut(name.as_str()) {
                            p.fields = fields;
                        }
                    }
                    _ => {
                        if let Some(p) = self.portals.get_mut(name.as_str()) {
                            p.fields = fields;
                        }
                    }
                }
                self.expect.pop_front();
            }
            _ => {}
        }
    }

    /// The rows of an Execute: the portal's description (from Describe) or its
    /// statement's, with the formats Bind asked for.
    fn start_execute(&mut self) {
        let Some(Expect::Execute { portal }) = self.expect.front() else {
            return;
        };
        let masker = match self.portals.get(portal) {
            Some(p) => self.masker(
                &p.plan.clone(),
                p.fields.clone().as_deref(),
                Some(&p.formats.clone()),
            ),
            None => self.masker(&Arc::new(self.unknown_plan()), None, None),
        };
        self.current = Some(masker);
    }

    fn masker(
        &self,
        plan: &StatementPlan,
        fields: Option<&[Field]>,
        formats: Option<&[i16]>,
    ) -> RowMasker {
        rows::build(
            &self.rules,
            self.catalog.view(),
            &self.session,
            self.detectors.as_ref(),
            plan,
            fields,
            formats,
        )
    }
}

/// The mask that hides every value of every type.
pub fn null_mask(why: &str) -> ResolvedMask {
    ResolvedMask {
        mask: Mask::Null,
        key: None,
        columns: [why.to_string()].into(),
        rules: Default::default(),
    }
}
