//! The `DatabasePolicy` resource (SPEC §2.1). Field names are the public contract: users
//! script against them, so they change only on purpose. Doc comments become the CRD's
//! descriptions, which is what `kubectl explain` shows.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::selector::LabelSelector;

/// Governs how workloads reach one PostgreSQL database: where the sidecar listens, how it
/// reaches and authenticates to the database, which statements are allowed, held for
/// approval or denied, and what is audited.
// Each printcolumn(...) repeats name/type_/json_path, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource),
    kube(
        group = "palisade.dev",
        version = "v1alpha1",
        kind = "DatabasePolicy",
        namespaced,
        status = "crate::crd::DatabasePolicyStatus",
        shortname = "dbpolicy",
        category = "palisade",
        derive = "PartialEq",
        doc = "Governs how workloads reach one PostgreSQL database. The operator renders it, with the MaskingRules that select it, into the ConfigMap palisade-policy-<name> that injected sidecars enforce.",
        printcolumn(
            name = "Ready",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Ready\")].status",
            description = "Whether the policy is rendered and everything it references exists"
        ),
        printcolumn(
            name = "Rules",
            type_ = "integer",
            json_path = ".status.ruleCount",
            description = "Number of rules in the policy"
        ),
        printcolumn(
            name = "Injected",
            type_ = "integer",
            json_path = ".status.injectedPods",
            description = "Pods whose sidecar enforces this policy"
        ),
        printcolumn(
            name = "Host",
            type_ = "string",
            json_path = ".spec.database.host",
            priority = 1,
            description = "The upstream database host"
        ),
        printcolumn(
            name = "Reason",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
            priority = 1,
            description = "Why the policy is or is not ready"
        ),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabasePolicySpec {
    /// Pods in this namespace that get a sidecar enforcing this policy.
    #[serde(default)]
    pub pod_selector: LabelSelector,
    /// Where the sidecar listens for the app, on the pod's loopback interface.
    #[serde(default)]
    pub listen: Listen,
    /// The upstream database the sidecar connects to.
    pub database: Database,
    /// Optional verified identities for clients (OIDC ID tokens sent as the password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// What happens to a statement no rule matches.
    #[serde(default)]
    pub default_action: DefaultAction,
    /// What happens to SQL the parser cannot read. Never let through silently.
    #[serde(default)]
    pub on_parse_error: ParseErrorAction,
    /// Rules in order; the first one that matches a statement decides it.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Size limits on statements and results.
    #[serde(default)]
    pub limits: Limits,
    /// What is recorded, and where it is sent.
    #[serde(default)]
    pub audit: Audit,
}

/// The sidecar's listening socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listen {
    /// TCP port on the pod's loopback interface that the app connects to.
    #[serde(default = "default_pg_port")]
    pub port: u16,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            port: default_pg_port(),
        }
    }
}

fn default_pg_port() -> u16 {
    5432
}

/// The upstream PostgreSQL server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Database {
    /// Host name or IP address of the PostgreSQL server.
    pub host: String,
    /// TCP port of the PostgreSQL server.
    #[serde(default = "default_pg_port")]
    pub port: u16,
    /// Database names clients may connect to. Empty allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
    /// TLS towards the database. Verified (VerifyFull) unless said otherwise.
    #[serde(default)]
    pub tls: UpstreamTls,
    /// Secret with keys `username` and `password`. When set, the sidecar logs in upstream
    /// with these and the app never holds the database password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
}

/// TLS settings for the sidecar's connection to the database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamTls {
    /// Disable, Require (encrypted, unverified), VerifyCa (trusted CA), VerifyFull (trusted
    /// CA and matching host name; the default).
    #[serde(default)]
    pub mode: TlsMode,
    /// CA certificate(s) in PEM that sign the server's certificate. Without it the system's
    /// trusted roots are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TlsMode {
    Disable,
    Require,
    VerifyCa,
    #[default]
    VerifyFull,
}

/// A whole Secret in the policy's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// Name of a Secret in the policy's namespace.
    pub name: String,
}

/// One key of a Secret in the policy's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of a Secret in the policy's namespace.
    pub name: String,
    /// Key within the Secret.
    pub key: String,
}

/// How clients may prove who they are beyond the pod's service account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Identity {
    /// Accept OIDC ID tokens from one issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<Oidc>,
}

/// A client may send an OIDC ID token as its password; it is verified offline against the
/// issuer's keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Oidc {
    /// The token issuer (`iss` claim), e.g. `https://login.example.com/`.
    pub issuer: String,
    /// Accepted `aud` values; empty accepts any audience.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The issuer's JSON Web Key Set, so tokens verify with no network access.
    pub jwks_secret_ref: SecretKeyRef,
    /// Claim that names the user.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// Claim that lists the user's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// When true, connections without a valid token are refused.
    #[serde(default)]
    pub required: bool,
}

fn default_username_claim() -> String {
    "email".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DefaultAction {
    #[default]
    Allow,
    Deny,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ParseErrorAction {
    #[default]
    Deny,
    RequireApproval,
}

/// One guardrail. Every condition given in `match` must hold for the rule to apply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Unique within the policy; named in errors, audit events and approval requests.
    pub name: String,
    /// Conditions a statement must meet for this rule to decide it; empty matches every
    /// statement.
    #[serde(default, rename = "match")]
    pub match_: RuleMatch,
    /// Allow, Deny, or RequireApproval (held until approvers decide; needs `approval`).
    pub action: RuleAction,
    /// Shown to the client when the rule denies a statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Who approves, and for how long, when the action is RequireApproval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// Conditions on a statement. An empty list matches anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleMatch {
    /// Statement operations (Select, Update, Drop, …); any listed one matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<Operation>,
    /// Only UPDATE/DELETE without an effective WHERE (a tautology counts as none).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub without_where: bool,
    /// Globs on `schema.table`; unqualified names resolve through the session's search_path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// Globs on `schema.table.column`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Who the rule applies to; absent applies to everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjects: Option<Subjects>,
}

/// Who a rule applies to: any listed entry matching is enough.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subjects {
    /// `namespace/name` of Kubernetes service accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// Verified OIDC user names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Verified OIDC groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Database user names from the client's startup message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub db_users: Vec<String>,
}

/// The closed set of statement operations a rule can match.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Operation {
    Select,
    Insert,
    Update,
    Delete,
    Merge,
    Copy,
    Create,
    Alter,
    Drop,
    Truncate,
    Grant,
    Revoke,
    Call,
    Do,
    Execute,
    Prepare,
    Set,
    Show,
    Transaction,
    Lock,
    Vacuum,
    Listen,
    Explain,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RuleAction {
    Allow,
    Deny,
    RequireApproval,
}

/// Who may approve a held statement, and how long approval lasts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Approval {
    /// Who may decide. The requester never approves their own statement.
    #[serde(default)]
    pub approvers: Approvers,
    /// Distinct approvers needed before the statement runs.
    #[serde(default = "one")]
    pub min_approvals: u32,
    /// When true, the statement is refused with a hint until the session sets
    /// `SET palisade.justification = '…'`; the justification is recorded with the request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_justification: bool,
    /// How long the statement is held waiting for a decision, e.g. `5m`.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// After approval, how long the same identity may rerun the same statement shape;
    /// `"0"` allows only the approved execution itself.
    #[serde(default = "default_grant_ttl")]
    pub grant_ttl: String,
}

fn one() -> u32 {
    1
}

fn default_timeout() -> String {
    "5m".into()
}

fn default_grant_ttl() -> String {
    "1h".into()
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Approvers {
    /// Members of these groups (as the API server or the OIDC token says) may approve.
    #[serde(default)]
    pub groups: Vec<String>,
    /// These users may approve.
    #[serde(default)]
    pub users: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Rows a single statement may return; 0 means unlimited.
    #[serde(default)]
    pub max_rows_per_statement: u64,
    /// Largest statement text accepted, in bytes.
    #[serde(default = "default_max_statement_bytes")]
    pub max_statement_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_rows_per_statement: 0,
            max_statement_bytes: default_max_statement_bytes(),
        }
    }
}

fn default_max_statement_bytes() -> u64 {
    1024 * 1024
}

/// What the sidecar records for each statement, and where it sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Audit {
    /// Which statements are recorded: All, Decisions (deny, approval, masking only) or None.
    #[serde(default)]
    pub statements: AuditStatements,
    /// How statement text is recorded: Full, Redacted (literals replaced by `$n`) or None.
    #[serde(default)]
    pub statement_text: StatementText,
    /// Also publish decisions as Kubernetes Events: None or Decisions.
    #[serde(default)]
    pub kubernetes_events: KubernetesEvents,
    /// Record the upstream snapshot (txid, WAL LSN) of each transaction.
    #[serde(default)]
    pub data_version: bool,
    /// Where audit events go; each entry sets one of stdout, file, http.
    #[serde(default = "default_sinks")]
    pub sinks: Vec<Sink>,
}

impl Default for Audit {
    fn default() -> Self {
        Audit {
            statements: AuditStatements::default(),
            statement_text: StatementText::default(),
            kubernetes_events: KubernetesEvents::default(),
            data_version: false,
            sinks: default_sinks(),
        }
    }
}

fn default_sinks() -> Vec<Sink> {
    vec![Sink {
        stdout: Some(StdoutSink {}),
        file: None,
        http: None,
    }]
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AuditStatements {
    #[default]
    All,
    Decisions,
    None,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum StatementText {
    Full,
    #[default]
    Redacted,
    None,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum KubernetesEvents {
    None,
    #[default]
    Decisions,
}

/// One audit destination; exactly one of its fields is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sink {
    /// One JSON object per line on the sidecar's standard output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<StdoutSink>,
    /// Append JSON lines to a file in the sidecar's filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSink>,
    /// POST events to an HTTP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSink>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdoutSink {}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSink {
    /// Absolute path of the JSON-lines file.
    pub path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSink {
    /// Endpoint that receives the events.
    pub url: String,
    /// Secret whose keys become HTTP headers (for example `Authorization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_secret_ref: Option<SecretRef>,
}

/// Labels as Kubernetes writes them.
pub type Labels = BTreeMap<String, String>;
