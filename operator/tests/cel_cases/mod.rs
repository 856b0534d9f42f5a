//! The CEL rules' cases, shared by the client-side evaluation (operator/tests/crd_cel.rs)
//! and the real API server (tests/tests/controlplane_api.rs): one list, two judges.

/// DatabasePolicy spec tails that must be refused: (tail, field, message).
pub fn database_policy_refusals() -> Vec<(String, &'static str, &'static str)> {
    let approval = "action: RequireApproval, approval: {approvers: {users: [bob, carol]}";
    vec![
        (
            "  rules:\n  - {name: a, action: RequireApproval}\n".to_string(),
            "approval",
            "approval is required when action is RequireApproval",
        ),
        (
            "  rules:\n  - {name: a, action: Deny, approval: {approvers: {users: [bob]}}}\n".into(),
            "approval",
            "only meaningful when action is RequireApproval",
        ),
        (
            "  rules:\n  - {name: a, action: RequireApproval, approval: {minApprovals: 1}}\n".into(),
            "approvers",
            "approvers must name at least one group or user",
        ),
        (
            format!("  rules:\n  - {{name: a, {approval}, minApprovals: 3}}}}\n"),
            "minApprovals",
            "minApprovals cannot exceed the number of approvers.users",
        ),
        (
            format!("  rules:\n  - {{name: a, {approval}, timeout: 5 minutes}}}}\n"),
            "timeout",
            "must be a duration such as 30s, 5m or 1h30m",
        ),
        (
            format!("  rules:\n  - {{name: a, {approval}, grantTtl: 1.5h}}}}\n"),
            "grantTtl",
            "must be a duration",
        ),
        (
            "  rules:\n  - {name: a, action: Deny, match: {subjects: {serviceAccounts: [trainer]}}}\n".into(),
            "serviceAccounts",
            "service accounts are written namespace/name",
        ),
        (
            "  audit: {sinks: [{stdout: {}, file: {path: /x}}]}\n".into(),
            "sinks",
            "a sink sets exactly one of stdout, file, http",
        ),
        (
            "  audit: {sinks: [{}]}\n".into(),
            "sinks",
            "a sink sets exactly one of stdout, file, http",
        ),
        (
            "  audit: {sinks: [{http: {url: 'ftp://siem'}}]}\n".into(),
            "url",
            "must be an http:// or https:// URL",
        ),
    ]
}

/// A DatabasePolicy spec tail every rule accepts. Groups have any number of members, so
/// minApprovals is not bounded by them.
pub const DATABASE_POLICY_ACCEPTED: &str = "  rules:\n  - {name: a, action: RequireApproval, approval: {approvers: {groups: [stewards], users: [bob]}, minApprovals: 3, timeout: 1h30m, grantTtl: 250ms}}\n  - {name: b, action: Deny, match: {subjects: {serviceAccounts: [ml/trainer]}}}\n  - {name: c, action: RequireApproval, approval: {approvers: {users: [bob]}, grantTtl: '0', requireJustification: true}}\n";

/// MaskingRule masks that must be refused: (mask, field, message). `'Null'` is quoted: an
/// unquoted `Null` is YAML's null, which the server refuses on `kubectl create` whenever
/// other fields are set, before this rule is reached.
pub const MASKING_RULE_REFUSALS: &[(&str, &str, &str)] = &[
    (
        "{type: Partial}",
        "keepFirst",
        "Partial masks keep at least one character",
    ),
    (
        "{type: Partial, keepFirst: 0, keepLast: 0}",
        "keepFirst",
        "Partial masks keep at least one",
    ),
    ("{type: Fixed}", "value", "Fixed masks need value"),
    (
        "{type: Hash}",
        "keySecretRef",
        "Hash masks need keySecretRef",
    ),
    (
        "{type: Noise, ratio: 2.5}",
        "ratio",
        "Noise masks need ratio",
    ),
    ("{type: Noise}", "ratio", "Noise masks need ratio"),
    (
        "{type: Email, value: x}",
        "value",
        "value is only used by Fixed masks",
    ),
    (
        "{type: Redact, keepLast: 4}",
        "keepFirst",
        "only used by Partial masks",
    ),
    (
        "{type: Tokenize, length: 8}",
        "keySecretRef",
        "only used by Hash masks",
    ),
    (
        "{type: 'Null', ratio: 0.1}",
        "ratio",
        "ratio is only used by Noise masks",
    ),
];

/// MaskingRule masks every rule accepts. `to` is untyped, and a real API server refuses
/// rules on untyped fields: whether it is set is the operator's check.
pub const MASKING_RULE_ACCEPTED: &[&str] = &[
    "{type: Partial, keepLast: 4}",
    "{type: Hash, keySecretRef: {name: k, key: hmac}, length: 12}",
    "{type: Truncate, to: Year}",
    "{type: Round, to: 0.5}",
    "{type: Round, to: 1000}",
    "{type: Noise, ratio: 0.1}",
    "{type: Fixed, value: '***'}",
    "{type: 'Null'}",
    "{}",
];
