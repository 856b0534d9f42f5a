//! The Kubernetes resources (SPEC §2): status types, the `ApprovalRequest` spec, and — with
//! feature `kube` — the generated `DatabasePolicy`, `MaskingRule` and `ApprovalRequest`
//! custom resources and their CRDs.
//!
//! The spec structs stay plain model types (`model.rs`, `masking.rs`); the `kube` feature only
//! adds `#[derive(CustomResource)]` to them, so the sidecar's standalone mode reads exactly the
//! fields the cluster stores. The status and approval types here compile without the feature
//! too: the sidecar's standalone approval endpoint serves the same fields as the resource.
//!
//! CEL rules (`x-kubernetes-validations`) and bounds the derive cannot express are added to the
//! generated schema in one place, [`crds`], so every rule and its message can be read together.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types a DatabasePolicy reports.
pub mod condition_types {
    /// The policy is rendered and everything it references exists.
    pub const READY: &str = "Ready";
    /// The rendered document is written to the policy's ConfigMap.
    pub const RENDERED: &str = "Rendered";
    /// Every Secret the policy and its MaskingRules reference exists.
    pub const REFERENCES_RESOLVED: &str = "ReferencesResolved";
}

/// One aspect of a resource's state, as Kubernetes conventions describe it (the shape of
/// `metav1.Condition`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Kind of condition, in PascalCase: Ready, Rendered, ReferencesResolved.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// Why the condition has this status: a PascalCase word, stable for scripts.
    pub reason: String,
    /// What a person should know, naming the field at fault when there is one.
    #[serde(default)]
    pub message: String,
    /// The metadata.generation the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the status last changed (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: String,
}

/// The status of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// What the operator observed about a DatabasePolicy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabasePolicyStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Rendered and ReferencesResolved, one entry per type.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// `sha256:<hex>` of the rendered document; every audit event carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_hash: Option<String>,
    /// The ConfigMap holding the rendered document (key `policy.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered_config_map: Option<String>,
    /// Names of the MaskingRules that select this policy, sorted.
    #[serde(default)]
    pub masking_rules: Vec<String>,
    /// Number of rules in the policy (shown by `kubectl get`).
    #[serde(default)]
    pub rule_count: u32,
    /// Pods whose sidecar enforces this policy (their `palisade.dev/policies` annotation names it).
    #[serde(default)]
    pub injected_pods: u32,
    /// Pods this policy selects that opted in (`palisade.dev/inject=true`) but run without a
    /// sidecar for it: the webhook was down, skipped them, or they predate the policy.
    #[serde(default)]
    pub uninjected_pods: u32,
}

/// Who asked to run a held statement, as the sidecar verified it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requester {
    /// Verified OIDC user name, when the client sent a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Verified OIDC groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// `namespace/name` of the pod's service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Name of the pod whose sidecar holds the statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The pod's owning workload as `Kind/name` (`Job/train-fraud-v3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Database user from the client's startup message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_user: Option<String>,
}

/// A statement held by a sidecar until enough approvers decide it (SPEC §2.3). Created by
/// sidecars; people append decisions with `kubectl palisade approve|deny`.
// Each printcolumn(...) repeats name/type_/json_path, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource),
    kube(
        group = "palisade.dev",
        version = "v1alpha1",
        kind = "ApprovalRequest",
        namespaced,
        status = "ApprovalRequestStatus",
        shortname = "approval",
        category = "palisade",
        derive = "PartialEq",
        doc = "A statement held by a Palisade sidecar until approvers decide it. Created by sidecars; decided with kubectl palisade approve|deny.",
        printcolumn(
            name = "State",
            type_ = "string",
            json_path = ".status.state",
            description = "Pending, Approved, Denied, Expired or Withdrawn"
        ),
        printcolumn(
            name = "Policy",
            type_ = "string",
            json_path = ".spec.policy",
            description = "The DatabasePolicy whose rule held the statement"
        ),
        printcolumn(
            name = "Rule",
            type_ = "string",
            json_path = ".spec.rule",
            description = "The rule that requires approval"
        ),
        printcolumn(
            name = "Requester",
            type_ = "string",
            json_path = ".spec.requester.user",
            description = "Verified user who ran the statement"
        ),
        printcolumn(
            name = "Expires",
            type_ = "date",
            json_path = ".spec.expiresAt",
            description = "When the held statement times out"
        ),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequestSpec {
    /// The DatabasePolicy (in this namespace) whose rule held the statement.
    pub policy: String,
    /// The rule that requires approval.
    pub rule: String,
    /// Who ran the statement.
    #[serde(default)]
    pub requester: Requester,
    /// The statement in redacted form (literals replaced by `$n`).
    pub statement: String,
    /// `sha256:<hex>` of the statement's shape; an approval covers reruns of the same shape.
    pub fingerprint: String,
    /// What the statement does, as rules name operations (`Select`, `Update`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<crate::model::Operation>,
    /// Tables the statement reads or writes (`schema.table`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// Columns the statement reads or writes (`schema.table.column`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// For `UPDATE`, `DELETE` and `MERGE`: the planner's estimate of the rows touched, from a
    /// plain `EXPLAIN` (the statement is not run for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
    /// Why the requester needs this, from `SET palisade.justification = '…'` on the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// When the sidecar stops holding the statement (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub expires_at: String,
    /// Decisions in the order they were made. Append-only: a decision cannot be edited or
    /// removed once made.
    #[serde(default)]
    pub decisions: Vec<ApprovalDecision>,
}

/// The planner's estimate for a held statement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    /// Rows the plan's top node expects to touch.
    pub rows: u64,
}

/// One approver's verdict. `user` and `groups` are stamped by the admission webhook from the
/// identity the API server authenticated, never typed by the approver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalDecision {
    /// Approve or Deny.
    pub verdict: Verdict,
    /// Free text recorded with the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The approver, as authenticated by the API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The approver's groups, as authenticated by the API server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// When the decision was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub at: Option<String>,
}

/// An approver's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Verdict {
    Approve,
    Deny,
}

/// Where an approval request stands.
// Plain comments on the variants: doc comments would turn the schema's `enum` into a
// `oneOf` of described constants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApprovalState {
    // Waiting for approvers; the statement is held.
    #[default]
    Pending,
    // Enough distinct approvers approved.
    Approved,
    // An approver denied it.
    Denied,
    // Nobody decided before `expiresAt`.
    Expired,
    // The client cancelled the statement or disconnected while it was held.
    Withdrawn,
}

/// Where an approval request stands, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequestStatus {
    /// Pending until enough approvers approve, one denies, it expires, or the client
    /// withdraws it (cancels or disconnects). Once settled it stays settled.
    #[serde(default)]
    pub state: ApprovalState,
    /// Details of the state, one entry per type.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

#[cfg(feature = "kube")]
pub use kube_parts::*;

#[cfg(feature = "kube")]
mod kube_parts {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt;
    use serde_json::{Value, json};

    pub use crate::masking::MaskingRule;
    pub use crate::model::DatabasePolicy;

    pub use super::ApprovalRequest;

    /// Why the CRDs could not be generated. Only a mismatch between the Rust types and the
    /// schema paths [`crds`] decorates can cause it; the drift test catches that first.
    #[derive(Debug, thiserror::Error)]
    pub enum CrdError {
        #[error("CRD {crd}: schema path {path} does not exist")]
        MissingPath { crd: String, path: String },
        #[error("CRD {crd}: {source}")]
        Json {
            crd: String,
            #[source]
            source: serde_json::Error,
        },
    }

    /// The three CRDs as they are installed: derived from the Rust types, with the CEL
    /// rules and bounds added.
    pub fn crds() -> Result<Vec<CustomResourceDefinition>, CrdError> {
        Ok(vec![
            decorate(DatabasePolicy::crd(), database_policy_rules())?,
            decorate(MaskingRule::crd(), masking_rule_rules())?,
            decorate(ApprovalRequest::crd(), approval_request_rules())?,
        ])
    }

    /// The CRDs as one multi-document YAML stream, what `palisade-operator crds` prints:
    /// exactly the files of `crds/` in name order (`cat crds/*.yaml`), so either can be
    /// checked against the other.
    pub fn crds_yaml() -> Result<String, CrdError> {
        let mut crds = crds()?;
        crds.sort_by_key(crd_file_name);
        let mut out = String::new();
        for crd in &crds {
            out.push_str(&crd_file(crd)?);
        }
        Ok(out)
    }

    /// One CRD as a YAML document starting with `---`.
    pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, CrdError> {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let body = serde_yaml::to_string(crd).map_err(|e| CrdError::Json {
            crd: name,
            source: serde::ser::Error::custom(e),
        })?;
        Ok(format!("---\n{body}"))
    }

    /// How `crds/` is regenerated; named in the generated files and the drift test.
    pub const REGENERATE: &str =
        "cargo run -p palisade-operator --bin palisade-operator -- crds --output-dir crds";

    /// The file under `crds/` that holds `crd`: `<crd name>.yaml`.
    pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
        format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
    }

    /// The content of `crd`'s file under `crds/`: a do-not-edit header and the YAML.
    pub fn crd_file(crd: &CustomResourceDefinition) -> Result<String, CrdError> {
        Ok(format!(
            "# Generated from the Rust types in policy/src by `palisade-operator crds`; do not edit.\n# Regenerate with: {REGENERATE}\n{}",
            crd_yaml(crd)?
        ))
    }

    /// A change to the schema at a dotted path (`spec.rules[].approval`: `[]` steps into list
    /// items).
    enum Edit {
        /// Append a CEL rule to `x-kubernetes-validations`.
        Rule {
            path: &'static str,
            rule: String,
            message: String,
            reason: Option<&'static str>,
            field_path: Option<&'static str>,
        },
        /// Set schema keywords (bounds, formats, list types).
        Set { path: &'static str, values: Value },
    }

    fn rule(path: &'static str, rule: impl Into<String>, message: impl Into<String>) -> Edit {
        Edit::Rule {
            path,
            rule: rule.into(),
            message: message.into(),
            reason: None,
            field_path: None,
        }
    }

    /// A rule reported against a child field, so `kubectl` names the field at fault.
    fn rule_at(
        path: &'static str,
        field_path: &'static str,
        rule: impl Into<String>,
        message: impl Into<String>,
    ) -> Edit {
        Edit::Rule {
            path,
            rule: rule.into(),
            message: message.into(),
            reason: None,
            field_path: Some(field_path),
        }
    }

    fn set(path: &'static str, values: Value) -> Edit {
        Edit::Set { path, values }
    }

    /// How many entries `approvers.<list>` has, 0 when absent: the API server applies
    /// defaults before validation, client-side evaluation does not, and the rules must read
    /// the same in both.
    fn approver_count(list: &str) -> String {
        format!(
            "(has(self.approvers) && has(self.approvers.{list}) ? size(self.approvers.{list}) : 0)"
        )
    }

    const DURATION: &str = "^([0-9]+(ms|s|m|h|d))+$";
    const DURATION_MESSAGE: &str =
        "must be a duration such as 30s, 5m or 1h30m (units ms, s, m, h, d)";
    const PORT: fn() -> Value = || json!({"minimum": 1, "maximum": 65535});

    // Lists and strings that CEL rules walk carry maxItems/maxLength: the API server
    // estimates each rule's worst-case cost from them and refuses CRDs whose rules are
    // unbounded.
    fn database_policy_rules() -> Vec<Edit> {
        let approval = "spec.rules[].approval";
        vec![
            set("spec.listen.port", PORT()),
            set("spec.database.port", PORT()),
            set(
                "spec.database.host",
                json!({"minLength": 1, "maxLength": 253}),
            ),
            set("spec.database.databases", json!({"maxItems": 256})),
            set(
                "spec.database.databases[]",
                json!({"minLength": 1, "maxLength": 63}),
            ),
            set("spec.identity.oidc.issuer", json!({"minLength": 1})),
            set("spec.limits.maxStatementBytes", json!({"minimum": 1})),
            set("spec.rules", json!({"maxItems": 256})),
            set(
                "spec.rules[].name",
                json!({"minLength": 1, "maxLength": 128}),
            ),
            set("spec.rules[].action", json!({"maxLength": 32})),
            set("spec.rules[].match.tables[]", json!({"minLength": 1})),
            set("spec.rules[].match.columns[]", json!({"minLength": 1})),
            set(
                "spec.rules[].match.subjects.serviceAccounts",
                json!({"maxItems": 64}),
            ),
            set(
                "spec.rules[].match.subjects.serviceAccounts[]",
                json!({"maxLength": 317}),
            ),
            set("spec.rules[].approval.minApprovals", json!({"minimum": 1})),
            set("spec.rules[].approval.timeout", json!({"maxLength": 32})),
            set("spec.rules[].approval.grantTtl", json!({"maxLength": 32})),
            set("spec.audit.sinks", json!({"maxItems": 16})),
            set("spec.audit.sinks[].file.path", json!({"minLength": 1})),
            set("spec.audit.sinks[].http.url", json!({"maxLength": 2048})),
            rule_at(
                "spec.rules[]",
                ".approval",
                "self.action != 'RequireApproval' || has(self.approval)",
                "approval is required when action is RequireApproval",
            ),
            rule_at(
                "spec.rules[]",
                ".approval",
                "!has(self.approval) || self.action == 'RequireApproval'",
                "approval is only meaningful when action is RequireApproval",
            ),
            rule_at(
                approval,
                ".approvers",
                format!(
                    "{} + {} > 0",
                    approver_count("groups"),
                    approver_count("users")
                ),
                "approvers must name at least one group or user",
            ),
            rule_at(
                approval,
                ".minApprovals",
                format!(
                    "!has(self.minApprovals) || {} > 0 || self.minApprovals <= {}",
                    approver_count("groups"),
                    approver_count("users")
                ),
                "minApprovals cannot exceed the number of approvers.users when no approver group is named",
            ),
            rule(
                "spec.rules[].approval.timeout",
                format!("self.matches('{DURATION}')"),
                DURATION_MESSAGE,
            ),
            rule(
                "spec.rules[].approval.grantTtl",
                format!("self == '0' || self.matches('{DURATION}')"),
                "must be a duration such as 30s, 5m or 1h30m (units ms, s, m, h, d), or '0' for the approved execution only",
            ),
            rule(
                "spec.rules[].match.subjects.serviceAccounts",
                "self.all(s, s.matches('^[^/]+/[^/]+$'))",
                "service accounts are written namespace/name",
            ),
            rule(
                "spec.audit.sinks[]",
                "[has(self.stdout), has(self.file), has(self.http)].filter(x, x).size() == 1",
                "a sink sets exactly one of stdout, file, http",
            ),
            rule(
                "spec.audit.sinks[].http.url",
                "self.startsWith('https://') || self.startsWith('http://')",
                "must be an http:// or https:// URL",
            ),
        ]
    }

    fn masking_rule_rules() -> Vec<Edit> {
        let mut edits = vec![
            set("spec.columns", json!({"maxItems": 1024})),
            set("spec.columns[].table", json!({"minLength": 1})),
            set("spec.columns[].column", json!({"minLength": 1})),
            set("spec.detectors", json!({"maxItems": 32})),
            set("spec.detectors[].entities", json!({"minItems": 1})),
        ];
        for list in ["spec.columns[].mask", "spec.detectors[].mask"] {
            edits.extend(mask_rules(list));
        }
        edits
    }

    /// Rules for one mask: the fields each type needs, and no fields it does not use.
    /// A mask without `type` is `Null`: YAML reads `type: Null` as a null value.
    fn mask_rules(path: &'static str) -> Vec<Edit> {
        let is = |t: &str| format!("(has(self.type) && self.type == '{t}')");
        vec![
            rule_at(
                path,
                ".value",
                format!("!{} || has(self.value)", is("Fixed")),
                "Fixed masks need value",
            ),
            rule_at(
                path,
                ".keepFirst",
                format!(
                    "!{} || (has(self.keepFirst) && self.keepFirst > 0) || (has(self.keepLast) && self.keepLast > 0)",
                    is("Partial")
                ),
                "Partial masks keep at least one character: set keepFirst or keepLast (Redact hides the whole value)",
            ),
            rule_at(
                path,
                ".keySecretRef",
                format!("!{} || has(self.keySecretRef)", is("Hash")),
                "Hash masks need keySecretRef (the HMAC key)",
            ),
            // `to` is a string for Truncate and a number for Round, so its schema is
            // untyped (x-kubernetes-preserve-unknown-fields). A real API server leaves untyped
            // fields out of the CEL type of the object, so no rule may mention `self.to`
            // (it refuses the whole CRD: "undefined field 'to'"; kube's client-side CEL does
            // not). Its presence, type and value are checked by the operator instead: the
            // policy's Ready condition names `spec.columns[i].mask.to`.
            rule_at(
                path,
                ".ratio",
                format!(
                    "!{} || (has(self.ratio) && self.ratio > 0.0 && self.ratio <= 1.0)",
                    is("Noise")
                ),
                "Noise masks need ratio, more than 0 and at most 1",
            ),
            rule_at(
                path,
                ".value",
                format!("!has(self.value) || {}", is("Fixed")),
                "value is only used by Fixed masks",
            ),
            rule_at(
                path,
                ".keepFirst",
                format!(
                    "!(has(self.keepFirst) || has(self.keepLast)) || {}",
                    is("Partial")
                ),
                "keepFirst and keepLast are only used by Partial masks",
            ),
            rule_at(
                path,
                ".keySecretRef",
                format!(
                    "!(has(self.keySecretRef) || has(self.length)) || {}",
                    is("Hash")
                ),
                "keySecretRef and length are only used by Hash masks",
            ),
            rule_at(
                path,
                ".ratio",
                format!("!has(self.ratio) || {}", is("Noise")),
                "ratio is only used by Noise masks",
            ),
        ]
    }

    fn approval_request_rules() -> Vec<Edit> {
        let mut edits = vec![
            set("spec.decisions", json!({"maxItems": 16})),
            set("spec.tables", json!({"maxItems": 256})),
            set("spec.columns", json!({"maxItems": 1024})),
            set("spec.operations", json!({"maxItems": 32})),
            set("spec.decisions[].user", json!({"maxLength": 256})),
            set("spec.requester.user", json!({"maxLength": 256})),
            set("spec.decisions[].comment", json!({"maxLength": 1024})),
            rule(
                "spec.decisions",
                "size(self) >= size(oldSelf) && oldSelf.all(d, self.exists(n, n == d))",
                "decisions are append-only: a decision cannot be edited or removed once made",
            ),
            rule_at(
                "spec",
                ".decisions",
                "!has(self.decisions) || !has(self.requester) || !has(self.requester.user) || self.decisions.all(d, !has(d.user) || d.user != self.requester.user)",
                "the requester may not decide their own request",
            ),
            // On the list itself, where `self` is the bounded list: written on `spec`, the cost
            // estimate sometimes took `self.decisions` for an unbounded list (13M > 1M).
            rule(
                "spec.decisions",
                "self.all(d, !has(d.user) || self.filter(e, has(e.user) && e.user == d.user).size() == 1)",
                "each approver decides once",
            ),
            rule(
                "status.state",
                "oldSelf == 'Pending' || self == oldSelf",
                "a decided request stays decided",
            ),
            set("status.state", json!({"maxLength": 16})),
        ];
        // Everything but the decisions is written once, by the sidecar that held the statement.
        edits.push(rule(
            "spec",
            "(has(self.justification) || !has(oldSelf.justification)) && (has(self.tables) || !has(oldSelf.tables))",
            "justification and tables cannot be removed once set",
        ));
        for field in [
            "spec.policy",
            "spec.rule",
            "spec.requester",
            "spec.statement",
            "spec.fingerprint",
            "spec.tables",
            "spec.operations",
            "spec.columns",
            "spec.estimate",
            "spec.justification",
            "spec.expiresAt",
        ] {
            edits.push(rule(field, "self == oldSelf", "is immutable"));
        }
        edits
    }

    fn decorate(
        crd: CustomResourceDefinition,
        edits: Vec<Edit>,
    ) -> Result<CustomResourceDefinition, CrdError> {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let json_err = |source| CrdError::Json {
            crd: name.clone(),
            source,
        };
        let mut value = serde_json::to_value(&crd).map_err(json_err)?;
        let versions = value
            .pointer_mut("/spec/versions")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| CrdError::MissingPath {
                crd: name.clone(),
                path: "spec.versions".into(),
            })?;
        for version in versions {
            let root = version
                .pointer_mut("/schema/openAPIV3Schema")
                .ok_or_else(|| CrdError::MissingPath {
                    crd: name.clone(),
                    path: "openAPIV3Schema".into(),
                })?;
            for edit in &edits {
                apply(&name, root, edit)?;
            }
            strip_closed_objects(root);
        }
        serde_json::from_value(value).map_err(json_err)
    }

    /// `deny_unknown_fields` makes schemars write `additionalProperties: false`, which a
    /// structural schema may not say; the API server prunes unknown fields anyway.
    fn strip_closed_objects(node: &mut Value) {
        match node {
            Value::Object(obj) => {
                if obj.get("additionalProperties") == Some(&Value::Bool(false)) {
                    obj.remove("additionalProperties");
                }
                obj.values_mut().for_each(strip_closed_objects);
            }
            Value::Array(items) => items.iter_mut().for_each(strip_closed_objects),
            _ => {}
        }
    }

    fn apply(crd: &str, root: &mut Value, edit: &Edit) -> Result<(), CrdError> {
        let path = match edit {
            Edit::Rule { path, .. } | Edit::Set { path, .. } => *path,
        };
        let missing = || CrdError::MissingPath {
            crd: crd.to_string(),
            path: path.to_string(),
        };
        let mut node = root;
        for segment in path.split('.') {
            let (field, items) = match segment.strip_suffix("[]") {
                Some(f) => (f, true),
                None => (segment, false),
            };
            node = node
                .get_mut("properties")
                .and_then(|p| p.get_mut(field))
                .ok_or_else(missing)?;
            if items {
                node = node.get_mut("items").ok_or_else(missing)?;
            }
        }
        let obj = node.as_object_mut().ok_or_else(missing)?;
        match edit {
            Edit::Set { values, .. } => {
                if let Some(values) = values.as_object() {
                    for (k, v) in values {
                        obj.insert(k.clone(), v.clone());
                    }
                }
            }
            Edit::Rule {
                rule,
                message,
                reason,
                field_path,
                ..
            } => {
                let mut entry = json!({"rule": rule, "message": message});
                if let Some(r) = reason {
                    entry["reason"] = json!(r);
                }
                if let Some(f) = field_path {
                    entry["fieldPath"] = json!(f);
                }
                let list = obj
                    .entry("x-kubernetes-validations")
                    .or_insert_with(|| json!([]));
                if let Some(list) = list.as_array_mut() {
                    list.push(entry);
                }
            }
        }
        Ok(())
    }
}

/// The schema of a [`crate::masking::Mask`] as Kubernetes needs it. The enum is internally
/// tagged by `type`, which schemars writes as a `oneOf` whose branches give `type` different
/// constants and `to` different types (a string for Truncate, a number for Round) — not a
/// structural schema. Here it is one object whose fields are the union of every variant's;
/// the CEL rules in `crds` say which type needs which field.
#[cfg(feature = "kube")]
pub fn structural_mask_schema(schema: &mut schemars::Schema) {
    let description = schema
        .get("description")
        .cloned()
        .unwrap_or_else(|| "How a value is replaced.".into());
    *schema = schemars::json_schema!({
        "description": description,
        "type": "object",
        "properties": {
            "type": {
                "description": "Null, Redact (a fixed marker), Fixed, Partial, Email, Hash (keyed, deterministic), Tokenize (format-preserving), Truncate (dates), Round or Noise (numbers). Omitted or null means Null: YAML reads `type: Null` as a null value.",
                "type": "string",
                "nullable": true,
                "maxLength": 16,
                "enum": ["Null", "Redact", "Fixed", "Partial", "Email", "Hash", "Tokenize", "Truncate", "Round", "Noise"]
            },
            "value": {
                "description": "Fixed: the replacement value.",
                "type": "string"
            },
            "keepFirst": {
                "description": "Partial: characters kept at the start.",
                "type": "integer", "format": "int32", "minimum": 0, "maximum": 1024
            },
            "keepLast": {
                "description": "Partial: characters kept at the end.",
                "type": "integer", "format": "int32", "minimum": 0, "maximum": 1024
            },
            "keySecretRef": {
                "description": "Hash: the Secret key holding the HMAC key, so equal inputs give equal outputs and joins still work.",
                "type": "object",
                "properties": {
                    "name": {"description": "Name of a Secret in this namespace.", "type": "string", "minLength": 1},
                    "key": {"description": "Key within the Secret.", "type": "string", "minLength": 1}
                },
                "required": ["name", "key"]
            },
            "length": {
                "description": "Hash: length of the output; the full digest when omitted.",
                "type": "integer", "format": "int32", "minimum": 1, "maximum": 128
            },
            "to": {
                "description": "Truncate: Year, Month, Day or Hour. Round: the multiple to round to (a positive number).",
                "x-kubernetes-preserve-unknown-fields": true
            },
            "ratio": {
                "description": "Noise: the largest relative change, e.g. 0.1 for ±10%.",
                "type": "number", "format": "double"
            }
        }
    });
}

#[cfg(all(test, feature = "kube"))]
mod tests {
    use super::*;

    /// `crds/` is what the chart and `kubectl apply` install: it must be exactly what the
    /// types generate.
    #[test]
    fn committed_crds_match_the_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
        for crd in crds().unwrap() {
            let path = dir.join(crd_file_name(&crd));
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == crd_file(&crd).unwrap(),
                "{} is out of date with the Rust types; regenerate it with `{REGENERATE}`",
                path.display()
            );
        }
    }

    #[test]
    fn names_printer_columns_and_status_subresources() {
        let crds = crds().unwrap();
        let names: Vec<_> = crds
            .iter()
            .map(|c| (c.spec.names.kind.clone(), c.spec.names.short_names.clone()))
            .collect();
        assert_eq!(
            names,
            [
                (
                    "DatabasePolicy".to_string(),
                    Some(vec!["dbpolicy".to_string()])
                ),
                (
                    "MaskingRule".to_string(),
                    Some(vec!["maskrule".to_string()])
                ),
                (
                    "ApprovalRequest".to_string(),
                    Some(vec!["approval".to_string()])
                ),
            ]
        );
        for crd in &crds {
            assert_eq!(crd.spec.group, "palisade.dev");
            assert_eq!(crd.spec.scope, "Namespaced");
            assert_eq!(
                crd.spec.names.categories,
                Some(vec!["palisade".to_string()])
            );
        }
        let columns = |i: usize| -> Vec<String> {
            crds[i].spec.versions[0]
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| c.name.clone())
                .collect()
        };
        assert_eq!(
            columns(0),
            ["Ready", "Rules", "Injected", "Host", "Reason", "Age"]
        );
        assert_eq!(columns(2)[0], "State");
        let has_status = |i: usize| {
            crds[i].spec.versions[0]
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some())
        };
        assert!(has_status(0) && has_status(2));
    }

    /// Every mask type the Rust enum knows must be allowed by the hand-written schema, and
    /// every field a variant serialises must exist in it (the schema is not derived).
    #[test]
    fn mask_schema_covers_every_variant() {
        use crate::masking::{Mask, TruncateTo};
        use crate::model::SecretKeyRef;
        let crd = serde_json::to_value(&crds().unwrap()[1]).unwrap();
        let mask = crd
            .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/columns/items/properties/mask")
            .unwrap();
        let props = mask["properties"].as_object().unwrap();
        let types: Vec<_> = props["type"]["enum"].as_array().unwrap().clone();
        let key = SecretKeyRef {
            name: "k".into(),
            key: "hmac".into(),
        };
        for variant in [
            Mask::Null,
            Mask::Redact,
            Mask::Fixed { value: "x".into() },
            Mask::Partial {
                keep_first: 1,
                keep_last: 1,
            },
            Mask::Email,
            Mask::Hash {
                key_secret_ref: key,
                length: Some(8),
            },
            Mask::Tokenize,
            Mask::Truncate {
                to: TruncateTo::Year,
            },
            Mask::Round { to: 10.0 },
            Mask::Noise { ratio: 0.1 },
        ] {
            let json = serde_json::to_value(&variant).unwrap();
            for (field, value) in json.as_object().unwrap() {
                assert!(
                    props.contains_key(field),
                    "mask field {field} missing from the schema"
                );
                if field == "type" {
                    assert!(
                        types.contains(value),
                        "mask type {value} missing from the schema"
                    );
                }
            }
        }
    }
}
