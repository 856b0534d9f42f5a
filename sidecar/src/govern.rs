//! Where policy meets the wire: each Query and Parse is decided before it reaches the
//! database, and a denied one is *replaced*, not answered by the proxy.
//!
//! The replacement is a statement the server rejects at parse time
//! (`PALISADE_DENIED_<n>`), so the server itself produces the error at the right point
//! of the stream: after the responses to everything sent before it, with the extended
//! protocol's skip-to-Sync, and with a transaction block aborted on both sides, so
//! client and database agree on the transaction state. On the way back that syntax
//! error is swapped for the real explanation. No response ordering is ever simulated.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::{BufMut, Bytes, BytesMut};
use palisade_policy::analysis::{ParseFailure, SearchPathChange, StatementInfo};
use palisade_policy::approval::{JUSTIFICATION_SETTING, justification_set};
use palisade_policy::decision::{Action, Decision, Identity, Reason, SearchPath};
use palisade_policy::decision_cache::ClassCache;
use palisade_policy::grammar;
use palisade_policy::mask_plan::StatementPlan;
use tracing::{info, warn};

use crate::approvals::{ApprovalStage, Estimating, ExplainProbe, Judged};
use crate::config::{LoadedPolicy, Upstream};
use crate::masking::shared::{CatalogHandle, DdlWatch, SessionCatalog};
use crate::masking::{Check, Masking};
use crate::protocol::error::{PgError, error_message_field, sqlstate};
use crate::protocol::frame::{Header, message};
use crate::protocol::results;
use crate::protocol::startup::CancelKey;
use crate::protocol::{backend, frontend};
use crate::syntax::SessionSyntax;
use crate::verdict::Verdict;

const DENIED_TOKEN: &str = "PALISADE_DENIED_";

/// How long the row limit's cancel request may take to reach the server.
const CANCEL_DELIVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A message's statements and the masking plan of each.
type Planned = (Arc<Vec<StatementInfo>>, Vec<Arc<StatementPlan>>);

/// An allowed statement: its decision, the policy that made it, and its text as the
/// server reads it.
type Decided<'a> = (Arc<Decision>, Arc<LoadedPolicy>, Cow<'a, str>);

/// Why a statement does not go on as sent.
enum Stopped {
    /// Refused: the client gets this error in the statement's place.
    Refused(PgError),
    /// Held for approval: the client gets this notice now, the statement waits.
    Held(Bytes),
    /// The sidecar asks the server something first (this Query); the statement waits
    /// for the answer and is then looked at again.
    Probe(Bytes),
}

impl From<PgError> for Stopped {
    fn from(e: PgError) -> Self {
        Stopped::Refused(e)
    }
}

/// What masking makes of an allowed statement.
enum MaskStep {
    /// Forward it; the analysis and masking plans, when masking made them.
    Go(Option<Planned>),
    /// Refresh the catalog first.
    Defer(Bytes),
    Deny(PgError),
}

/// One session's policy state.
pub struct Governance {
    policy: Arc<ArcSwap<LoadedPolicy>>,
    identity: Identity,
    path: SearchPath,
    /// The decision cache for the current policy, identity and path.
    class: Option<(Arc<LoadedPolicy>, Arc<ClassCache>)>,
    /// Errors to show in place of the server's rejection of each replacement.
    denials: HashMap<u32, Bytes>,
    next_denial: u32,
    rows: u64,
    /// `limits.maxRowsPerStatement` of the policy in force (read once per statement, not per row).
    max_rows: u64,
    row_limit: Option<Bytes>,
    cancel: Option<(Arc<Upstream>, CancelKey)>,
    /// Result masking, when any MaskingRule applies to this identity.
    masking: Option<Masking>,
    date_style: String,
    /// How the server reads statement bytes (encodings, literals, grammar).
    syntax: SessionSyntax,
    /// The database's shared catalog snapshot, for masking a reload may start.
    catalog: CatalogHandle,
    /// DDL this session sends makes every session's catalog snapshot stale.
    ddl: DdlWatch,
    /// Statements that need a person's approval.
    approvals: ApprovalStage,
    /// The sidecar's own EXPLAIN in flight on the session's connection.
    probe: Option<ExplainProbe>,
    /// Transaction status from the last ReadyForQuery.
    txn_status: u8,
    /// The cancel the row limit sent, until the server has it. PostgreSQL applies a cancel
    /// to whatever the backend runs when it arrives: the client's next statement waits,
    /// or a cancel meant for the cut-off statement could cancel that one instead.
    cancel_in_flight: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

/// The stages a session's statements pass besides the decision itself.
pub struct Stages {
    /// Result masking, when any MaskingRule applies to the session's identity.
    pub masking: Option<Masking>,
    pub approvals: ApprovalStage,
}

impl Governance {
    pub fn new(
        policy: Arc<ArcSwap<LoadedPolicy>>,
        identity: Identity,
        cancel: Option<(Arc<Upstream>, CancelKey)>,
        stages: Stages,
        date_style: String,
        syntax: SessionSyntax,
        catalog: CatalogHandle,
    ) -> Self {
        let Stages { masking, approvals } = stages;
        Governance {
            approvals,
            probe: None,
            txn_status: b'I',
            cancel_in_flight: None,
            ddl: DdlWatch::new(catalog.clone()),
            catalog,
            masking,
            date_style,
            syntax,
            policy,
            identity,
            path: SearchPath::default(),
            class: None,
            denials: HashMap::new(),
            next_denial: 0,
            rows: 0,
            max_rows: 0,
            row_limit: None,
            cancel,
        }
    }

    /// The largest Query/Parse message worth holding: the statement limit plus room for
    /// a statement name and parameter types.
    pub fn max_message_len(&self) -> usize {
        let limit = self.policy.load().rendered.spec.limits.max_statement_bytes;
        usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_add(64 * 1024)
    }

    /// The decision cache for the policy in force now; a reloaded policy takes effect
    /// at the next statement.
    fn class(&mut self) -> (Arc<LoadedPolicy>, Arc<ClassCache>) {
        let current = self.policy.load_full();
        match &self.class {
            Some((p, c)) if Arc::ptr_eq(p, &current) && c.dialect == self.syntax.dialect() => {
                (current, c.clone())
            }
            _ => {
                if self
                    .class
                    .as_ref()
                    .is_some_and(|(p, _)| !Arc::ptr_eq(p, &current))
                {
                    self.reload_masking(&current);
                }
                let class =
                    current
                        .engine
                        .class(&self.identity, &self.path, &self.syntax.dialect());
                self.max_rows = current.rendered.spec.limits.max_rows_per_statement;
                self.class = Some((current.clone(), class.clone()));
                (current, class)
            }
        }
    }

    /// A simple-protocol Query. `replay_safe`: nothing else is in flight and no
    /// transaction is open, so a `SET search_path` here surely takes effect as written.
    /// `idle`: nothing else awaits a response (masking may slip a catalog query in first).
    pub fn on_query(
        &mut self,
        msg: &[u8],
        replay_safe: bool,
        idle: bool,
        settled: bool,
    ) -> Verdict {
        if self.cancel_in_flight.is_some() {
            return Verdict::Hold(Bytes::new());
        }
        let sql = &msg[5..msg.len().saturating_sub(1)];
        if self.take_justification(sql) {
            if let Some(m) = &mut self.masking {
                m.on_query(JUSTIFICATION_RESET, &[], Vec::new());
            }
            let mut body = BytesMut::new();
            body.put_slice(JUSTIFICATION_RESET.as_bytes());
            body.put_u8(0);
            return Verdict::Replace(message(frontend::QUERY, &body));
        }
        let decided = self.decide(sql, settled, replay_safe);
        match decided {
            Ok((decision, policy, text)) => {
                match self.mask_check(&text, idle, &policy) {
                    MaskStep::Go(planned) => {
                        if let Some(m) = &mut self.masking {
                            match planned {
                                Some((statements, plans)) => m.on_query(&text, &statements, plans),
                                None => m.on_query(&text, &[], Vec::new()),
                            }
                        }
                    }
                    MaskStep::Defer(bytes) => return Verdict::Defer(bytes),
                    MaskStep::Deny(error) => {
                        if let Some(m) = &mut self.masking {
                            m.on_denied_query();
                        }
                        return Verdict::Replace(self.replacement_query(error));
                    }
                }
                self.apply_search_path(&decision, replay_safe);
                Verdict::Forward
            }
            Err(Stopped::Held(notice)) => Verdict::Hold(notice),
            Err(Stopped::Probe(query)) => Verdict::Defer(query),
            Err(Stopped::Refused(error)) => {
                if let Some(m) = &mut self.masking {
                    m.on_denied_query();
                }
                Verdict::Replace(self.replacement_query(error))
            }
        }
    }

    /// An extended-protocol Parse: decided on its text; the statement's later Bind and
    /// Execute follow it (a denied Parse leaves no statement to execute).
    pub fn on_parse(&mut self, msg: &[u8], idle: bool, settled: bool) -> Verdict {
        if self.cancel_in_flight.is_some() {
            return Verdict::Hold(Bytes::new());
        }
        let Some((name, sql)) = results::parse(msg) else {
            return Verdict::Forward; // malformed: the server will say so
        };
        if self.take_justification(sql) {
            if let Some(m) = &mut self.masking {
                let name = String::from_utf8_lossy(name).into_owned();
                m.on_parse(name, JUSTIFICATION_RESET, &[], Vec::new());
            }
            // Under the same statement name, so its Bind and Execute follow it.
            return Verdict::Replace(replacement_parse_text(name, JUSTIFICATION_RESET));
        }
        // Nothing else in flight and no transaction block: an EXPLAIN may go first.
        let quiet = idle && settled && self.txn_status == b'I';
        let decided = self.decide(sql, settled, quiet);
        match decided {
            Ok((decision, policy, text)) => {
                match self.mask_check(&text, idle, &policy) {
                    MaskStep::Go(planned) => {
                        if let Some(m) = &mut self.masking {
                            let name = String::from_utf8_lossy(name).into_owned();
                            match planned {
                                Some((statements, plans)) => {
                                    m.on_parse(name, &text, &statements, plans)
                                }
                                None => m.on_parse(name, &text, &[], Vec::new()),
                            }
                        }
                    }
                    MaskStep::Defer(bytes) => return Verdict::Defer(bytes),
                    MaskStep::Deny(error) => {
                        let name = name.to_vec();
                        return Verdict::Replace(self.replacement_parse(&name, error));
                    }
                }
                // It runs at Execute time, maybe in a transaction: widen, never narrow.
                self.apply_search_path(&decision, false);
                Verdict::Forward
            }
            Err(Stopped::Held(notice)) => Verdict::Hold(notice),
            Err(Stopped::Probe(query)) => Verdict::Defer(query),
            Err(Stopped::Refused(error)) => {
                let name = name.to_vec();
                Verdict::Replace(self.replacement_parse(&name, error))
            }
        }
    }

    /// What masking makes of an allowed statement.
    fn mask_check(&mut self, sql: &str, idle: bool, policy: &LoadedPolicy) -> MaskStep {
        let Some(masking) = &mut self.masking else {
            return MaskStep::Go(None);
        };
        // Allowed statements were analysed for the decision already; the masking plan
        // needs the full analysis, which the decision cache does not keep.
        let dialect = self.syntax.dialect();
        let statements = match masking.analysis(sql, &dialect) {
            Ok(statements) => statements,
            // The server rejects it while parsing: nothing runs, nothing to mask.
            Err(failure)
                if failure.is_syntax_error()
                    && dialect
                        .server_major
                        .is_some_and(|major| grammar::server_rejects_too(major, sql)) =>
            {
                return MaskStep::Go(None);
            }
            // onParseError let it through, but rows it returns could not be masked.
            Err(failure) => {
                info!(reason = %failure, "statement denied: masking applies and it cannot be analysed");
                return MaskStep::Deny(
                    PgError::error(
                        sqlstate::INSUFFICIENT_PRIVILEGE,
                        format!(
                            "palisade: statement denied by policy {}: masking applies to this session and the statement cannot be analysed: {failure}",
                            policy.key()
                        ),
                    )
                    .with_hint("Palisade masks only what it can read; rewrite the statement in plain PostgreSQL syntax"),
                );
            }
        };
        match masking.check(&statements, &self.path, idle) {
            Check::Pass(plans) => MaskStep::Go(Some((statements, plans))),
            Check::Refresh(bytes) => MaskStep::Defer(bytes),
            Check::Deny(denial) => {
                info!(rule = %denial.rule, reason = %denial.message, "statement denied by masking");
                MaskStep::Deny(
                    PgError::error(
                        sqlstate::INSUFFICIENT_PRIVILEGE,
                        format!(
                            "palisade: statement denied by masking rule \"{}\" of policy {}: {}",
                            denial.rule,
                            policy.key(),
                            denial.message
                        ),
                    )
                    .with_hint("select the columns themselves (the sidecar masks them), or ask for an exemption in the MaskingRule's spec.exempt"),
                )
            }
        }
    }

    /// A policy reload: masking follows the new rules from the next statement. A session
    /// that had none gets masking with an empty catalog snapshot, refreshed first thing.
    fn reload_masking(&mut self, policy: &LoadedPolicy) {
        let rules = match policy.mask_rules(&self.identity) {
            Ok(rules) => Arc::new(rules),
            Err(e) => {
                warn!(error = %e, "masking rules of the reloaded policy not applied");
                return;
            }
        };
        match &mut self.masking {
            Some(m) => m.set_rules(rules),
            None if rules.is_active() => {
                // Read before its first statement, temporary objects made so far included.
                let catalog = SessionCatalog::unread(self.catalog.clone());
                self.masking = Some(Masking::new(rules, catalog, &self.date_style));
            }
            None => {}
        }
    }

    /// Whether a client message other than Query and Parse must be held whole: masking
    /// follows statements into portals and must see fast-path calls.
    pub fn holds_client(&self, tag: u8) -> bool {
        self.masking.is_some() && (Masking::holds_client(tag) || tag == frontend::FUNCTION_CALL)
    }

    /// Whether a server message must be held whole for masking.
    pub fn masking_holds(&mut self, tag: u8) -> bool {
        self.probe.is_some() || self.masking.as_mut().is_some_and(|m| m.holds_server(tag))
    }

    /// Whether the server is answering a query of the sidecar's own (the masking
    /// catalog refresh, an approval's EXPLAIN): its messages are not the client's.
    pub fn refreshing(&self) -> bool {
        self.probe.is_some() || self.masking.as_ref().is_some_and(Masking::refreshing)
    }

    pub fn on_refresh_message(&mut self, msg: &[u8]) -> Verdict {
        if let Some(probe) = &mut self.probe {
            let (verdict, done) = probe.feed(msg);
            if let Some(rows) = done {
                self.probe = None;
                self.approvals.set_estimate(rows);
            }
            return verdict;
        }
        match &mut self.masking {
            Some(m) => m.on_refresh_message(msg),
            None => Verdict::Forward,
        }
    }

    pub fn on_sync(&mut self) {
        if let Some(m) = &mut self.masking {
            m.on_sync();
        }
    }

    pub fn on_client_message(&mut self, msg: &[u8]) {
        if let Some(m) = &mut self.masking {
            m.on_client_message(msg);
        }
    }

    /// A fast-path function call runs a function by OID, with no SQL to trace: refused
    /// while columns are masked (it would read them raw).
    pub fn on_function_call(&mut self) -> Verdict {
        let Some(m) = &mut self.masking else {
            return Verdict::Forward;
        };
        m.on_denied_query();
        let policy = self.policy.load_full();
        let error = PgError::error(
            sqlstate::INSUFFICIENT_PRIVILEGE,
            format!(
                "palisade: fast-path function calls are refused while policy {} masks columns for you",
                policy.key()
            ),
        )
        .with_hint("call the function in a SELECT instead");
        Verdict::Replace(self.replacement_query(error))
    }

    /// Held server messages other than the ones governance rewrites.
    pub fn on_backend_message(&mut self, msg: &[u8]) -> Verdict {
        if msg[0] == backend::PARAMETER_STATUS
            && let Some((name, value)) = results::parameter_status(msg)
        {
            self.syntax.observe(name, value);
        }
        match &mut self.masking {
            Some(m) => m.on_server_message(msg, &self.path),
            None => Verdict::Forward,
        }
    }

    /// A Query or Parse too large to hold: denied unread.
    pub fn oversize(&mut self, header: Header) -> Bytes {
        let (policy, _) = self.class();
        let decision = policy.engine.rules.too_long(header.body_len());
        let error = denial_error(&policy, &decision);
        warn!(
            bytes = header.body_len(),
            "statement over limits.maxStatementBytes denied"
        );
        if header.tag == frontend::QUERY {
            self.replacement_query(error)
        } else {
            self.replacement_parse(b"", error)
        }
    }

    /// Decides statement bytes as the server will read them: decoded from the client
    /// encoding, lexed with the session's settings. Text that cannot be decoded is never
    /// forwarded unjudged: `onParseError` decides it.
    /// `settled`: nothing sent earlier is still running, so the settings the server
    /// reported are the ones it will read this text with.
    /// `quiet`: nothing else is in flight and no transaction block is open, so the sidecar
    /// may ask the server something first (an approval's row estimate).
    fn decide<'a>(
        &mut self,
        sql: &'a [u8],
        settled: bool,
        quiet: bool,
    ) -> Result<Decided<'a>, Stopped> {
        let (policy, class) = self.class();
        if let Some(too_long) = policy.engine.over_limit(sql.len()) {
            return Err(denial_error(&policy, &too_long).into());
        }
        let (decision, text) = match self.syntax.decode(sql) {
            Ok(text) => (policy.engine.decide(&class, &text), text),
            Err(e) => (
                Arc::new(policy.engine.rules.decide(
                    &Err(ParseFailure::unanalysable(e.to_string())),
                    &class.identity,
                    &class.path,
                )),
                Cow::Borrowed(""),
            ),
        };
        // Sent while earlier messages still run: one of them may change
        // standard_conforming_strings before the server reads this text, so a backslash
        // is read both ways and the stricter decision stands.
        let decision = if !settled && text.contains('\\') {
            let other =
                policy
                    .engine
                    .class(&self.identity, &self.path, &self.syntax.dialect_flipped());
            let flipped = policy.engine.decide(&other, &text);
            if flipped.action > decision.action {
                flipped
            } else {
                decision
            }
        } else {
            decision
        };
        match decision.action {
            Action::Allow => {
                self.ddl.sent(&decision.operations);
                Ok((decision, policy, text))
            }
            Action::RequireApproval => {
                let dialect = self.syntax.dialect();
                let estimating = if quiet {
                    Estimating::Yes {
                        generic_plan: dialect.server_major.is_some_and(|m| m >= 16),
                    }
                } else {
                    Estimating::No
                };
                match self.approvals.judge(
                    &policy,
                    &decision,
                    &text,
                    &self.identity,
                    &dialect,
                    estimating,
                ) {
                    Judged::Allow => {
                        info!(rule = decision.rule(), "approved statement runs");
                        self.ddl.sent(&decision.operations);
                        Ok((decision, policy, text))
                    }
                    Judged::Hold(notice) => {
                        info!(rule = decision.rule(), operations = ?decision.operations, "statement held for approval");
                        Err(Stopped::Held(notice))
                    }
                    Judged::Refuse(error) => {
                        info!(rule = decision.rule(), error = %error, "statement needing approval refused");
                        Err(error.into())
                    }
                    Judged::Explain(explain) => {
                        self.probe = Some(ExplainProbe::default());
                        Err(Stopped::Probe(ExplainProbe::query(&explain)))
                    }
                }
            }
            Action::Deny => {
                info!(rule = decision.rule(), reason = ?decision.reason, operations = ?decision.operations, "statement denied");
                Err(denial_error(&policy, &decision).into())
            }
        }
    }

    fn apply_search_path(&mut self, decision: &Decision, replay_safe: bool) {
        if decision.search_path_changes.is_empty() {
            return;
        }
        let single = decision.search_path_changes.len() == 1
            && !decision
                .operations
                .contains(&palisade_policy::Operation::Transaction);
        let mut path = self.path.clone();
        for change in &decision.search_path_changes {
            let (new, replace) = match change {
                SearchPathChange::Set { schemas, local } => (
                    schemas
                        .iter()
                        .map(|s| {
                            Some(if s == "$user" {
                                self.identity.db_user.clone()
                            } else {
                                s.clone()
                            })
                        })
                        .collect(),
                    replay_safe && single && !local,
                ),
                SearchPathChange::Reset => (SearchPath::default().schemas, replay_safe && single),
                SearchPathChange::Unknown => (vec![None], false),
            };
            if replace {
                path.schemas = new;
            } else {
                // It may or may not have taken effect (a rollback, SET LOCAL, a pipeline):
                // keep every schema it could be.
                for s in new {
                    if !path.schemas.contains(&s) {
                        path.schemas.push(s);
                    }
                }
            }
        }
        if path != self.path {
            self.path = path;
            self.class = None;
        }
    }

    fn remember(&mut self, error: PgError) -> u32 {
        let id = self.next_denial;
        self.next_denial = self.next_denial.wrapping_add(1);
        self.denials.insert(id, error.to_message());
        id
    }

    fn replacement_query(&mut self, error: PgError) -> Bytes {
        let id = self.remember(error);
        let mut body = BytesMut::new();
        body.put_slice(format!("{DENIED_TOKEN}{id}").as_bytes());
        body.put_u8(0);
        message(frontend::QUERY, &body)
    }

    fn replacement_parse(&mut self, name: &[u8], error: PgError) -> Bytes {
        let id = self.remember(error);
        replacement_parse_text(name, &format!("{DENIED_TOKEN}{id}"))
    }

    /// `SET palisade.justification = '…'` is the sidecar's: it is recorded here, and the
    /// server gets a `SET` of its own that keeps nothing (so the client still sees the
    /// server's answer, in order). False for every other statement.
    fn take_justification(&mut self, sql: &[u8]) -> bool {
        // Cheap tests first: a SET of the setting is short, and nearly no statement
        // mentions it at all, so a large statement is never scanned.
        if sql.len() > MAX_JUSTIFICATION_STATEMENT
            || !sql
                .windows(JUSTIFICATION_SETTING.len())
                .any(|w| w.eq_ignore_ascii_case(JUSTIFICATION_SETTING.as_bytes()))
        {
            return false;
        }
        let dialect = self.syntax.dialect();
        let Some(justification) = self
            .syntax
            .decode(sql)
            .ok()
            .and_then(|text| justification_set(&text, &dialect))
        else {
            return false;
        };
        info!(
            given = justification.is_some(),
            "justification set for approvals"
        );
        self.approvals.set_justification(justification);
        true
    }

    /// Ready when a deferred client message may be looked at again: the catalog refresh
    /// it waited for is done, or the approvers of the statement held have decided.
    pub fn poll_release(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.refreshing() {
            // Woken by the relay once the server side ends the refresh.
            return std::task::Poll::Pending;
        }
        if let Some(cancel) = &mut self.cancel_in_flight {
            if cancel.as_mut().poll(cx).is_pending() {
                return std::task::Poll::Pending;
            }
            self.cancel_in_flight = None;
        }
        self.approvals.poll_release(cx)
    }

    /// Whether a client statement is held: for approval, or until a cancel is delivered.
    pub fn holding(&self) -> bool {
        self.cancel_in_flight.is_some() || self.approvals.holding()
    }

    /// Whether ErrorResponses must be held for inspection.
    pub fn awaiting_errors(&self) -> bool {
        !self.denials.is_empty() || self.row_limit.is_some()
    }

    pub fn rows_limited(&self) -> bool {
        self.row_limit.is_some()
    }

    /// The server's answer to a replacement becomes the denial the client should see.
    pub fn on_error_response(&mut self, msg: &[u8]) -> Verdict {
        if let Some(error) = self.row_limit.take() {
            self.rows = 0;
            return Verdict::Replace(error);
        }
        let denial = error_message_field(&msg[5..])
            .and_then(|text| text.find(DENIED_TOKEN).map(|at| (text, at)));
        let Some((text, at)) = denial else {
            // The server's own error: while masked columns are in play, made safe.
            return match self.masking.as_mut() {
                Some(m) => m.safe_message(msg, &self.path),
                None => Verdict::Forward,
            };
        };
        let digits: String = text[at + DENIED_TOKEN.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        match digits
            .parse()
            .ok()
            .and_then(|id: u32| self.denials.remove(&id))
        {
            Some(error) => Verdict::Replace(error),
            None => match self.masking.as_mut() {
                Some(m) => m.safe_message(msg, &self.path),
                None => Verdict::Forward,
            },
        }
    }

    /// Counts result rows against `limits.maxRowsPerStatement`.
    pub fn on_backend_header(&mut self, tag: u8) -> Verdict {
        if let Some(m) = &mut self.masking {
            m.on_server_header(tag);
        }
        match tag {
            backend::DATA_ROW => {
                let limit = self.max_rows;
                if limit == 0 {
                    return Verdict::Forward;
                }
                self.rows += 1;
                if self.rows <= limit {
                    return Verdict::Forward;
                }
                if self.row_limit.is_none() {
                    self.start_row_limit(limit);
                }
                Verdict::Discard
            }
            backend::EMPTY_QUERY_RESPONSE | backend::READY_FOR_QUERY => {
                self.rows = 0;
                Verdict::Forward
            }
            _ => Verdict::Forward,
        }
    }

    fn start_row_limit(&mut self, limit: u64) {
        let policy = self.policy.load();
        let error = PgError::error(
            sqlstate::PROGRAM_LIMIT_EXCEEDED,
            format!(
                "palisade: statement returned more than {limit} rows, the limit of policy {} (spec.limits.maxRowsPerStatement)",
                policy.key()
            ),
        )
        .with_hint("add a LIMIT or narrow the WHERE clause");
        warn!(limit, "row limit reached; cancelling the statement");
        self.row_limit = Some(error.to_message());
        // Stop the database working for rows nobody will see; its cancellation error is
        // then shown as the limit error, and a transaction block is aborted on both sides.
        if let Some((upstream, key)) = self.cancel.clone() {
            let sent = tokio::spawn(async move {
                // Bounded: an unreachable server must not hold the session's next
                // statement for long.
                let _ = tokio::time::timeout(
                    CANCEL_DELIVERY,
                    crate::upstream::send_cancel(&upstream, key),
                )
                .await;
            });
            self.cancel_in_flight = Some(Box::pin(async move {
                let _ = sent.await;
            }));
        }
    }

    /// The end of a statement whose rows were cut off reads as the limit error.
    pub fn on_command_complete(&mut self) -> Verdict {
        self.rows = 0;
        match self.row_limit.take() {
            Some(error) => Verdict::Replace(error),
            None => Verdict::Forward,
        }
    }

    /// Every response has arrived: replacements the server skipped (after an earlier
    /// error in the same pipeline) will never be answered.
    pub fn on_ready_for_query(&mut self, idle: bool) {
        if idle {
            self.denials.clear();
        }
    }

    /// The transaction status of a ReadyForQuery the client gets.
    pub fn on_transaction_status(&mut self, status: u8) {
        self.txn_status = status;
        self.ddl.on_status(status);
        if let Some(m) = &mut self.masking {
            m.on_status(status);
        }
    }
}

/// The longest statement looked at as a possible `SET palisade.justification`.
const MAX_JUSTIFICATION_STATEMENT: usize = 64 * 1024;

/// What the server gets in place of `SET palisade.justification = '…'`.
const JUSTIFICATION_RESET: &str = "SET palisade.justification TO DEFAULT";

/// A Parse of `text` under statement name `name`, with no parameter types.
fn replacement_parse_text(name: &[u8], text: &str) -> Bytes {
    let mut body = BytesMut::new();
    body.put_slice(name);
    body.put_u8(0);
    body.put_slice(text.as_bytes());
    body.put_u8(0);
    body.put_i16(0);
    message(frontend::PARSE, &body)
}

/// The error a client sees for a denied statement.
pub fn denial_error(policy: &LoadedPolicy, decision: &Decision) -> PgError {
    let key = policy.key();
    let ops: Vec<String> = decision
        .operations
        .iter()
        .map(|o| format!("{o:?}"))
        .collect();
    let relations: Vec<&str> = decision
        .read
        .iter()
        .chain(&decision.written)
        .map(String::as_str)
        .collect();
    let detail = format!(
        "operations: {}; relations: {}",
        if ops.is_empty() {
            "-".into()
        } else {
            ops.join(", ")
        },
        if relations.is_empty() {
            "-".into()
        } else {
            relations.join(", ")
        }
    );
    let check_hint =
        "`kubectl palisade check -f <policy.yaml> --sql '…'` explains how a statement is decided";
    match &decision.reason {
        Reason::Rule { rule } => {
            let what = match decision.action {
                // Held by the approvals stage, not denied; named for completeness.
                Action::RequireApproval => format!(
                    "palisade: statement requires approval under rule \"{rule}\" of policy {key}"
                ),
                _ => format!("palisade: statement denied by rule \"{rule}\" of policy {key}"),
            };
            let message = match &decision.message {
                Some(m) => format!("{what}: {m}"),
                None => what,
            };
            PgError::error(sqlstate::INSUFFICIENT_PRIVILEGE, message)
                .with_detail(detail)
                .with_hint(check_hint)
        }
        Reason::Default => PgError::error(
            sqlstate::INSUFFICIENT_PRIVILEGE,
            format!("palisade: statement denied by policy {key}: no rule allows it (defaultAction: Deny)"),
        )
        .with_detail(detail)
        .with_hint(check_hint),
        Reason::ParseError { message } => PgError::error(
            sqlstate::INSUFFICIENT_PRIVILEGE,
            format!("palisade: statement denied by policy {key}: the SQL could not be analysed (onParseError: {:?}): {message}", policy.rendered.spec.on_parse_error),
        )
        .with_hint("Palisade refuses SQL it cannot read; rewrite the statement in plain PostgreSQL syntax"),
        Reason::TooLong { bytes, limit } => PgError::error(
            sqlstate::PROGRAM_LIMIT_EXCEEDED,
            format!("palisade: statement of {bytes} bytes exceeds limits.maxStatementBytes ({limit}) of policy {key}"),
        )
        .with_hint("send large values as bind parameters, or raise spec.limits.maxStatementBytes"),
        // Forwarded, never denied; named for completeness.
        Reason::ServerRejects { message } => PgError::error(
            sqlstate::SYNTAX_ERROR,
            format!("palisade: {message}"),
        ),
    }
}
