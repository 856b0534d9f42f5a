//! The audit event (SPEC §5): one JSON object per line. Field names and nesting are a public
//! contract — users script against them — so they are spelled here exactly as the SPEC
//! shows, and each optional part is either absent (a part that does not apply to the kind)
//! or `null` (a field of a present part that has no value), as there.
//!
//! Member order matters too: the chain hashes the bytes written, and its canonical form
//! (see [`super::chain`]) relies on `ts`, `seq`, `prev` and `hash` being the first four
//! members in that order. serde writes struct fields in declaration order, so the order
//! below is the order on disk.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::timestamp::Timestamp;
use crate::model::{Operation, RuleAction};

/// What an event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A client connected and was identified.
    SessionStart,
    /// One statement was decided (and, unless denied or held, run).
    Statement,
    /// An approval request changed state (requested, approved, denied, expired, withdrawn).
    Approval,
    /// A client's session ended.
    SessionEnd,
    /// The sidecar started enforcing a rendered policy (at start and on every change).
    PolicyLoaded,
    /// A seal over the chain so far (see [`super::checkpoint`]).
    Checkpoint,
}

impl Kind {
    /// Every kind, in the SPEC's order.
    pub const ALL: [Kind; 6] = [
        Kind::SessionStart,
        Kind::Statement,
        Kind::Approval,
        Kind::SessionEnd,
        Kind::PolicyLoaded,
        Kind::Checkpoint,
    ];

    /// The name written in `kind`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::SessionStart => "session_start",
            Kind::Statement => "statement",
            Kind::Approval => "approval",
            Kind::SessionEnd => "session_end",
            Kind::PolicyLoaded => "policy_loaded",
            Kind::Checkpoint => "checkpoint",
        }
    }
}

/// One audit event. `seq`, `prev` and `hash` are filled in by [`super::chain::Chain::seal`];
/// build an event with [`Event::new`] and the parts its kind carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// When it happened.
    pub ts: Timestamp,
    /// Position in the stream, from 1, one more than the previous event's.
    pub seq: u64,
    /// The previous event's `hash` (the genesis value for the stream's first event).
    pub prev: String,
    /// `sha256:` + hex SHA-256 over this event's line without the `hash` member. Absent
    /// only while an event is being built, never on disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    pub kind: Kind,
    /// The client session the event belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<Database>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<Statement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<StatementResult>,
    /// The snapshot and WAL position the statement saw (with `audit.dataVersion: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_version: Option<DataVersion>,
    /// The approval request and its transition (kind `approval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalTransition>,
    /// The seal (kind `checkpoint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
}

impl Event {
    /// An event of `kind` at `ts`, with no parts yet and not yet sealed.
    pub fn new(kind: Kind, ts: Timestamp) -> Event {
        Event {
            ts,
            seq: 0,
            prev: String::new(),
            hash: None,
            kind,
            session: None,
            policy: None,
            identity: None,
            database: None,
            statement: None,
            decision: None,
            result: None,
            data_version: None,
            approval: None,
            checkpoint: None,
        }
    }
}

/// The rendered policy in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRef {
    pub namespace: String,
    pub name: String,
    /// The rendered document's hash (`sha256:…`), as in the policy's status.
    pub hash: String,
}

/// Who the client is, as the sidecar verified it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// `namespace/name` of the pod's service account.
    pub service_account: Option<String>,
    pub pod: Option<String>,
    /// The pod's owning workload, `Kind/name` (e.g. `Job/train-fraud-v3`).
    pub workload: Option<String>,
    /// The pod's labels that identify models and datasets (e.g. `palisade.dev/model`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The user from the client's startup message.
    pub db_user: String,
    /// Verified OIDC user, when the client sent a token.
    pub user: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// What proved the identity (e.g. `serviceAccount`, `oidc`).
    pub authenticated_by: String,
}

/// The upstream database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Database {
    pub host: String,
    pub name: String,
}

/// What the statement is and what it touches. Never a Bind parameter's value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    /// `sha256:` over the normalized text (see `analysis::redact::fingerprint`).
    pub fingerprint: String,
    /// The text per `audit.statementText`: in full, redacted (every literal a `$n`), or null.
    pub text: Option<String>,
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// Relations read, `schema.name`.
    #[serde(default)]
    pub read: Vec<String>,
    /// Relations written, `schema.name`.
    #[serde(default)]
    pub written: Vec<String>,
    /// Columns read, `schema.table.column`.
    #[serde(default)]
    pub columns: Vec<String>,
    /// Position in a multi-statement Query, from 0; absent for a single statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
}

/// What the policy decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub action: RuleAction,
    /// The rule that decided; null when the default action did.
    pub rule: Option<String>,
    /// Columns whose values were masked in the result.
    #[serde(default)]
    pub masked: Vec<String>,
    /// The ApprovalRequest that held the statement.
    pub approval: Option<String>,
}

/// How the statement ended (or, on `session_end`, how the session did).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatementResult {
    /// Rows returned or affected.
    pub rows: Option<u64>,
    /// The server's command tag (`SELECT 1`).
    pub tag: Option<String>,
    /// The SQLSTATE of the error it failed with (never the message, which can carry data).
    pub error: Option<String>,
    /// Milliseconds from the statement's arrival to its completion (on `session_end`, the
    /// session's length).
    pub ms: f64,
}

/// The data version a statement saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataVersion {
    /// The snapshot's transaction id (`pg_current_snapshot()`'s xmin, as text).
    pub txid: String,
    /// The WAL position (`pg_current_wal_lsn()`, or the replay position on a standby).
    pub lsn: String,
}

/// An approval request as of one transition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalTransition {
    /// The ApprovalRequest's name.
    pub name: String,
    /// The state it entered: `Pending`, `Approved`, `Denied`, `Expired` or `Withdrawn`.
    pub state: String,
    /// Why the requester needs it (`SET palisade.justification`).
    pub justification: Option<String>,
    /// The planner's row estimate for writes.
    pub estimate: Option<Estimate>,
    /// Every decision made so far, in order.
    #[serde(default)]
    pub decisions: Vec<ApprovalDecision>,
    /// Milliseconds from the request to this transition.
    pub waited_ms: Option<f64>,
}

/// The planner's estimate for a held write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    pub rows: Option<u64>,
}

/// One approver's decision, as the cluster (or the admin endpoint) authenticated them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalDecision {
    /// `Approve` or `Deny`.
    pub verdict: String,
    pub user: String,
    #[serde(default)]
    pub groups: Vec<String>,
    pub comment: Option<String>,
    pub at: Timestamp,
}

/// What a `checkpoint` event seals; see [`super::checkpoint`] for the signed message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The writer's stream (one sidecar's trail), bound into the signature.
    pub stream: String,
    /// The sequence number of the chain head it seals: always this event's `seq` - 1.
    pub head_seq: u64,
    /// The chain head it seals: always this event's `prev`.
    pub head: String,
    /// How often this writer seals; a verifier uses it to tell a crash's unsealed tail from
    /// a tail whose checkpoint was removed.
    pub interval: Interval,
    /// `sha256:` + hex SHA-256 of the signing key's DER SubjectPublicKeyInfo; null when no
    /// key is configured.
    pub key_id: Option<String>,
    /// Hex Ed25519 signature over the checkpoint message; null when no key is configured.
    pub signature: Option<String>,
}

/// A writer's sealing interval: a checkpoint after this many events, and at least this
/// often in seconds (even when idle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Interval {
    pub events: u64,
    pub seconds: u64,
}
