//! Deciding a statement: rules in order, first match wins, else `defaultAction`. Plain
//! Rust over the analysis; the sidecar supplies who is asking and the session's
//! `search_path`, and caches the result.

use std::collections::BTreeSet;

use crate::analysis::{ColumnName, ParseFailure, RelationName, SearchPathChange, StatementInfo};
use crate::glob::Glob;
use crate::model::{DefaultAction, Operation, ParseErrorAction, Rule, RuleAction, Subjects};
use crate::render::RenderedPolicy;

/// Who is running a statement, as far as the sidecar knows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The user name from the client's startup message.
    pub db_user: String,
    /// `namespace/name` of the pod's service account, when known.
    pub service_account: Option<String>,
    /// A verified OIDC user.
    pub user: Option<String>,
    /// Verified OIDC groups.
    pub groups: Vec<String>,
    /// The pod the session comes from.
    pub pod: Option<String>,
    /// The pod's owning workload as `Kind/name` (`Job/train-fraud-v3`), resolved through
    /// its owner chain at injection.
    pub workload: Option<String>,
    /// Selected pod labels (`palisade.dev/model`, `app.kubernetes.io/name`, …).
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The schemas an unqualified name may resolve to, in order. `None` stands for "some
/// schema the proxy cannot know" (after `set_config`, a `DO` block…).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SearchPath {
    pub schemas: Vec<Option<String>>,
}

impl Default for SearchPath {
    /// SPEC: unqualified names resolve via search_path, default `public`.
    fn default() -> Self {
        SearchPath {
            schemas: vec![Some("public".into())],
        }
    }
}

impl SearchPath {
    /// The qualified names an unqualified relation name may stand for.
    fn candidates(&self, rel: &RelationName) -> Vec<Candidate> {
        match &rel.schema {
            Some(s) => vec![Candidate::Known(format!("{s}.{}", rel.name))],
            None => {
                let mut out = Vec::new();
                // pg_catalog is searched first, implicitly; only its pg_* names can hit.
                if rel.name.starts_with("pg_") {
                    out.push(Candidate::Known(format!("pg_catalog.{}", rel.name)));
                }
                for s in &self.schemas {
                    out.push(match s {
                        Some(s) => Candidate::Known(format!("{s}.{}", rel.name)),
                        None => Candidate::AnySchema(rel.name.clone()),
                    });
                }
                if out.is_empty() {
                    out.push(Candidate::AnySchema(rel.name.clone()));
                }
                out
            }
        }
    }
}

/// One reading of a relation name.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Candidate {
    /// `schema.name`.
    Known(String),
    /// `name` in a schema the proxy cannot know.
    AnySchema(String),
}

impl Candidate {
    fn display(&self) -> String {
        match self {
            Candidate::Known(s) => s.clone(),
            Candidate::AnySchema(name) => format!("?.{name}"),
        }
    }

    /// Whether a glob matches this relation, or this relation's `column`. For an unknown
    /// schema, `lenient` asks whether *some* schema would match, otherwise whether every one would.
    fn matches(&self, glob: &Glob, column: Option<&str>, lenient: bool) -> bool {
        match (self, column) {
            (Candidate::Known(t), None) => glob.matches(t),
            (Candidate::Known(t), Some("*")) => {
                let prefix = format!("{t}.");
                if lenient {
                    glob.matches_some_extension(&prefix)
                } else {
                    glob.matches_every_extension(&prefix)
                }
            }
            (Candidate::Known(t), Some(c)) => glob.matches(&format!("{t}.{c}")),
            (Candidate::AnySchema(_), _) if !lenient => false,
            (Candidate::AnySchema(_), Some("*")) => true,
            (Candidate::AnySchema(name), Some(c)) => {
                glob.matches_some_prefix(&format!(".{name}.{c}"))
            }
            (Candidate::AnySchema(name), None) => glob.matches_some_prefix(&format!(".{name}")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Action {
    Allow,
    RequireApproval,
    Deny,
}

/// Why a decision came out as it did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "by")]
pub enum Reason {
    /// A rule matched.
    Rule { rule: String },
    /// No rule matched.
    Default,
    /// The SQL could not be read; `onParseError` decided.
    ParseError { message: String },
    /// `limits.maxStatementBytes` was exceeded.
    TooLong { bytes: usize, limit: u64 },
    /// PostgreSQL's grammar rejects the text, and so does the upstream server (its
    /// grammar is covered): forwarded unchanged for the server's own error. Nothing the
    /// server cannot parse can run.
    ServerRejects { message: String },
}

/// The outcome for one message (all its statements).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub action: Action,
    pub reason: Reason,
    /// The deciding rule's `message`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub operations: BTreeSet<Operation>,
    /// Relations read, resolved through the search_path (`?` marks an unknown schema).
    pub read: BTreeSet<String>,
    pub written: BTreeSet<String>,
    pub columns: BTreeSet<String>,
    /// How the statements change the session's search_path, in order.
    #[serde(skip)]
    pub search_path_changes: Vec<SearchPathChange>,
}

impl Decision {
    /// A decision about a message nothing is known of yet.
    fn bare(action: Action, reason: Reason) -> Self {
        Decision {
            action,
            reason,
            message: None,
            operations: BTreeSet::new(),
            read: BTreeSet::new(),
            written: BTreeSet::new(),
            columns: BTreeSet::new(),
            search_path_changes: Vec::new(),
        }
    }

    pub fn rule(&self) -> Option<&str> {
        match &self.reason {
            Reason::Rule { rule } => Some(rule),
            _ => None,
        }
    }
}

struct CompiledRule {
    rule: Rule,
    tables: Vec<Glob>,
    columns: Vec<Glob>,
}

/// A policy's rules, compiled for matching.
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    default_action: DefaultAction,
    on_parse_error: ParseErrorAction,
    max_statement_bytes: u64,
}

impl RuleSet {
    pub fn new(policy: &RenderedPolicy) -> Self {
        let spec = &policy.spec;
        RuleSet {
            rules: spec
                .rules
                .iter()
                .map(|r| CompiledRule {
                    tables: r.match_.tables.iter().map(|g| Glob::new(g)).collect(),
                    columns: r.match_.columns.iter().map(|g| Glob::new(g)).collect(),
                    rule: r.clone(),
                })
                .collect(),
            default_action: spec.default_action,
            on_parse_error: spec.on_parse_error,
            max_statement_bytes: spec.limits.max_statement_bytes,
        }
    }

    pub fn max_statement_bytes(&self) -> u64 {
        self.max_statement_bytes
    }

    /// The decision for a message of `bytes` length that exceeded the statement limit.
    /// Text the server's grammar rejects, forwarded for the server's own error.
    pub fn server_rejects(&self, message: &str) -> Decision {
        Decision::bare(
            Action::Allow,
            Reason::ServerRejects {
                message: message.to_string(),
            },
        )
    }

    pub fn too_long(&self, bytes: usize) -> Decision {
        Decision::bare(
            Action::Deny,
            Reason::TooLong {
                bytes,
                limit: self.max_statement_bytes,
            },
        )
    }

    /// Decides a whole message: every statement is decided, and the most restrictive
    /// outcome wins (one denied statement denies the message).
    pub fn decide(
        &self,
        analysis: &Result<Vec<StatementInfo>, ParseFailure>,
        identity: &Identity,
        path: &SearchPath,
    ) -> Decision {
        let statements = match analysis {
            Ok(s) => s,
            Err(failure) => {
                let action = match self.on_parse_error {
                    ParseErrorAction::Deny => Action::Deny,
                    ParseErrorAction::RequireApproval => Action::RequireApproval,
                };
                let reason = Reason::ParseError {
                    message: failure.message.clone(),
                };
                return Decision::bare(action, reason);
            }
        };
        let mut worst: Option<(Action, Reason, Option<String>)> = None;
        let mut summary = Decision::bare(Action::Allow, Reason::Default);
        for stmt in statements {
            let (action, reason, message) = self.decide_one(stmt, identity, path);
            summarise(&mut summary, stmt, path);
            if worst.as_ref().is_none_or(|(a, _, _)| action > *a) {
                worst = Some((action, reason, message));
            }
        }
        let (action, reason, message) = worst.unwrap_or((self.default(), Reason::Default, None));
        summary.action = action;
        summary.reason = reason;
        summary.message = message;
        summary
    }

    fn default(&self) -> Action {
        match self.default_action {
            DefaultAction::Allow => Action::Allow,
            DefaultAction::Deny => Action::Deny,
        }
    }

    fn decide_one(
        &self,
        stmt: &StatementInfo,
        identity: &Identity,
        path: &SearchPath,
    ) -> (Action, Reason, Option<String>) {
        for r in &self.rules {
            // A rule that lets something through must match for certain; one that stops
            // something matches on any reading. Uncertainty never opens a door.
            let lenient = r.rule.action != RuleAction::Allow;
            if rule_matches(r, stmt, identity, path, lenient) {
                let action = match r.rule.action {
                    RuleAction::Allow => Action::Allow,
                    RuleAction::Deny => Action::Deny,
                    RuleAction::RequireApproval => Action::RequireApproval,
                };
                return (
                    action,
                    Reason::Rule {
                        rule: r.rule.name.clone(),
                    },
                    r.rule.message.clone(),
                );
            }
        }
        (self.default(), Reason::Default, None)
    }
}

fn summarise(summary: &mut Decision, stmt: &StatementInfo, path: &SearchPath) {
    summary.operations.extend(stmt.operations.iter().copied());
    summary.search_path_changes.extend(stmt.search_path.clone());
    for rel in &stmt.read {
        summary
            .read
            .extend(path.candidates(rel).iter().map(Candidate::display));
    }
    for rel in &stmt.written {
        summary
            .written
            .extend(path.candidates(rel).iter().map(Candidate::display));
    }
    for col in &stmt.columns {
        match &col.relation {
            Some(rel) => {
                for c in path.candidates(rel) {
                    summary
                        .columns
                        .insert(format!("{}.{}", c.display(), col.column));
                }
            }
            None => {
                summary.columns.insert(format!("?.{}", col.column));
            }
        }
    }
}

fn rule_matches(
    r: &CompiledRule,
    stmt: &StatementInfo,
    identity: &Identity,
    path: &SearchPath,
    lenient: bool,
) -> bool {
    let m = &r.rule.match_;
    if !m.operations.is_empty() && !m.operations.iter().any(|op| stmt.operations.contains(op)) {
        return false;
    }
    if m.without_where && !stmt.without_where {
        return false;
    }
    if let Some(subjects) = &m.subjects
        && !subjects_match(subjects, identity)
    {
        return false;
    }
    if !r.tables.is_empty() {
        let any = stmt.read.iter().chain(&stmt.written).any(|rel| {
            let candidates = path.candidates(rel);
            let hit = |c: &Candidate| r.tables.iter().any(|g| c.matches(g, None, lenient));
            if lenient {
                candidates.iter().any(hit)
            } else {
                candidates.iter().all(hit)
            }
        });
        if !any {
            return false;
        }
    }
    if !r.columns.is_empty() {
        let relations: Vec<&RelationName> = stmt.read.iter().chain(&stmt.written).collect();
        let any = stmt
            .columns
            .iter()
            .any(|col| column_matches(&r.columns, col, &relations, path, lenient));
        if !any {
            return false;
        }
    }
    true
}

fn column_matches(
    globs: &[Glob],
    col: &ColumnName,
    relations: &[&RelationName],
    path: &SearchPath,
    lenient: bool,
) -> bool {
    // The relations the column may belong to, each with its possible qualified names.
    let owners: Vec<Vec<Candidate>> = match &col.relation {
        Some(rel) => vec![path.candidates(rel)],
        None => relations.iter().map(|rel| path.candidates(rel)).collect(),
    };
    if owners.is_empty() {
        return false;
    }
    let hit = |owner: &Candidate| {
        globs
            .iter()
            .any(|g| owner.matches(g, Some(&col.column), lenient))
    };
    if lenient {
        owners.iter().flatten().any(hit)
    } else {
        owners.iter().flatten().all(hit)
    }
}

pub(crate) fn subjects_match(s: &Subjects, id: &Identity) -> bool {
    s.db_users.contains(&id.db_user)
        || id
            .service_account
            .as_ref()
            .is_some_and(|sa| s.service_accounts.contains(sa))
        || id.user.as_ref().is_some_and(|u| s.users.contains(u))
        || id.groups.iter().any(|g| s.groups.contains(g))
}

#[cfg(test)]
mod corpus_tests {
    use super::*;
    use crate::analysis::analyze;
    use crate::manifest::parse_manifests;
    use crate::render::render_all;
    use palisade_tests::corpus::{cases, policy_yaml};

    #[test]
    fn the_decision_corpus_decides_as_expected() {
        let yaml = policy_yaml(6432, 5432);
        let policy =
            &render_all("corpus", &parse_manifests("policy.yaml", &yaml).unwrap()).unwrap()[0];
        let rules = RuleSet::new(policy);
        let cases = cases();
        assert!(
            cases.len() >= 150,
            "the corpus has {} statements",
            cases.len()
        );
        let mut failures = Vec::new();
        for case in &cases {
            let identity = Identity {
                db_user: case.db_user.into(),
                ..Identity::default()
            };
            let d = rules.decide(&analyze(&case.sql), &identity, &SearchPath::default());
            let got_rule = match &d.reason {
                Reason::Rule { rule } => rule.as_str(),
                Reason::ParseError { .. } => "parse",
                _ => "-",
            };
            let ok = (d.action == Action::Allow) == case.allow && got_rule == case.rule;
            if !ok {
                failures.push(format!(
                    "{:?} as {}: expected {} {}, got {:?} {got_rule} ({:?})",
                    case.sql,
                    case.db_user,
                    if case.allow { "allow" } else { "deny" },
                    case.rule,
                    d.action,
                    d.reason
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} statements decided wrongly:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn search_path_decides_where_unqualified_names_go() {
        let yaml = policy_yaml(6432, 5432);
        let policy =
            &render_all("corpus", &parse_manifests("policy.yaml", &yaml).unwrap()).unwrap()[0];
        let rules = RuleSet::new(policy);
        let analyst = Identity {
            db_user: "analyst".into(),
            ..Identity::default()
        };
        let at = |schemas: Vec<Option<&str>>| SearchPath {
            schemas: schemas.into_iter().map(|s| s.map(String::from)).collect(),
        };
        let sql = analyze("SELECT ssn FROM customers");
        // Resolved elsewhere: the public.customers rule does not apply.
        assert_eq!(
            rules
                .decide(&sql, &analyst, &at(vec![Some("sales")]))
                .action,
            Action::Allow
        );
        // Could be public: a denying rule matches on any reading.
        assert_eq!(
            rules
                .decide(&sql, &analyst, &at(vec![Some("sales"), Some("public")]))
                .action,
            Action::Deny
        );
        // Unknown schema (after set_config): denied.
        assert_eq!(
            rules
                .decide(&sql, &analyst, &at(vec![Some("sales"), None]))
                .action,
            Action::Deny
        );
    }
}
