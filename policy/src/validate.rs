//! What a DatabasePolicy's types alone cannot say. Every error names the field at fault,
//! the way `kubectl` would (`spec.rules[2].approval.timeout`).

use std::collections::BTreeSet;

use crate::PolicyError;
use crate::approval::GrantTtl;
use crate::duration::parse_duration;
use crate::model::{DatabasePolicySpec, RuleAction, Subjects};

/// Checks `spec`; `origin` and `namespace/name` locate it in the error.
pub fn validate_policy(
    origin: &str,
    namespace: &str,
    name: &str,
    spec: &DatabasePolicySpec,
) -> Result<(), PolicyError> {
    check(spec).map_err(|(field, message)| PolicyError::Invalid {
        origin: origin.to_string(),
        kind: "DatabasePolicy".to_string(),
        name: format!("{namespace}/{name}"),
        field,
        message,
    })
}

type Problem = (String, String);

fn check(spec: &DatabasePolicySpec) -> Result<(), Problem> {
    let fail = |field: &str, message: &str| Err((field.to_string(), message.to_string()));
    if spec.database.host.trim().is_empty() {
        return fail("spec.database.host", "must not be empty");
    }
    if spec.database.port == 0 {
        return fail("spec.database.port", "must be 1-65535");
    }
    if spec.listen.port == 0 {
        return fail("spec.listen.port", "must be 1-65535");
    }
    if let Some((i, _)) = spec
        .database
        .databases
        .iter()
        .enumerate()
        .find(|(_, d)| d.is_empty())
    {
        return fail(
            &format!("spec.database.databases[{i}]"),
            "must not be empty",
        );
    }
    if spec.limits.max_statement_bytes == 0 {
        return fail("spec.limits.maxStatementBytes", "must be at least 1");
    }
    if let Some(oidc) = spec.identity.as_ref().and_then(|i| i.oidc.as_ref()) {
        if oidc.issuer.trim().is_empty() {
            return fail("spec.identity.oidc.issuer", "must not be empty");
        }
        if oidc.jwks_secret_ref.name.trim().is_empty() || oidc.jwks_secret_ref.key.trim().is_empty()
        {
            return fail(
                "spec.identity.oidc.jwksSecretRef",
                "must name a secret and a key (the issuer's JWKS)",
            );
        }
        // An ID token is never the database password: when every client must log in with
        // one, only the sidecar's own credentials can log in upstream.
        if oidc.required && spec.database.credentials_secret_ref.is_none() {
            return fail(
                "spec.identity.oidc.required",
                "true needs spec.database.credentialsSecretRef: clients then log in with an ID token, which is never passed to the database, so the sidecar must log in upstream with its own credentials",
            );
        }
    }
    let mut names = BTreeSet::new();
    for (i, rule) in spec.rules.iter().enumerate() {
        let at = |field: &str| format!("spec.rules[{i}].{field}");
        if rule.name.trim().is_empty() {
            return fail(&at("name"), "must not be empty");
        }
        if !names.insert(rule.name.as_str()) {
            return Err((at("name"), format!("duplicate rule name {:?}", rule.name)));
        }
        for (j, g) in rule.match_.tables.iter().enumerate() {
            if g.is_empty() {
                return fail(&at(&format!("match.tables[{j}]")), "must not be empty");
            }
        }
        for (j, g) in rule.match_.columns.iter().enumerate() {
            if g.is_empty() {
                return fail(&at(&format!("match.columns[{j}]")), "must not be empty");
            }
        }
        if let Some(subjects) = &rule.match_.subjects {
            check_subjects(subjects).map_err(|(f, m)| (at(&format!("match.subjects.{f}")), m))?;
        }
        match (&rule.action, &rule.approval) {
            (RuleAction::RequireApproval, None) => {
                return fail(&at("approval"), "required when action is RequireApproval");
            }
            (RuleAction::RequireApproval, Some(a)) => {
                if a.approvers.groups.is_empty() && a.approvers.users.is_empty() {
                    return fail(
                        &at("approval.approvers"),
                        "must name at least one group or user",
                    );
                }
                if a.min_approvals == 0 {
                    return fail(&at("approval.minApprovals"), "must be at least 1");
                }
                parse_duration(&a.timeout).map_err(|m| (at("approval.timeout"), m))?;
                GrantTtl::parse(&a.grant_ttl).map_err(|m| (at("approval.grantTtl"), m))?;
            }
            (_, Some(_)) => {
                return fail(
                    &at("approval"),
                    "only meaningful when action is RequireApproval",
                );
            }
            _ => {}
        }
    }
    for (i, sink) in spec.audit.sinks.iter().enumerate() {
        let set = [
            sink.stdout.is_some(),
            sink.file.is_some(),
            sink.http.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if set != 1 {
            return fail(
                &format!("spec.audit.sinks[{i}]"),
                "must set exactly one of stdout, file, http",
            );
        }
        if sink.file.as_ref().is_some_and(|f| f.path.trim().is_empty()) {
            return fail(
                &format!("spec.audit.sinks[{i}].file.path"),
                "must not be empty",
            );
        }
        if let Some(http) = &sink.http
            && !(http.url.starts_with("https://") || http.url.starts_with("http://"))
        {
            return fail(
                &format!("spec.audit.sinks[{i}].http.url"),
                "must be an http:// or https:// URL",
            );
        }
    }
    Ok(())
}

fn check_subjects(s: &Subjects) -> Result<(), Problem> {
    for (i, sa) in s.service_accounts.iter().enumerate() {
        let ok = matches!(sa.split_once('/'), Some((ns, n)) if !ns.is_empty() && !n.is_empty() && !n.contains('/'));
        if !ok {
            return Err((
                format!("serviceAccounts[{i}]"),
                format!("{sa:?} must be namespace/name"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::manifest::parse_manifests;
    use crate::render::render_all;

    fn error_for(spec_tail: &str) -> String {
        let text = format!(
            "apiVersion: palisade.dev/v1alpha1\nkind: DatabasePolicy\nmetadata: {{name: p, namespace: ml}}\nspec:\n  database: {{host: db}}\n{spec_tail}"
        );
        match parse_manifests("p.yaml", &text) {
            Err(e) => e.to_string(),
            Ok(m) => render_all("p.yaml", &m)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        }
    }

    #[test]
    fn errors_name_the_field_at_fault() {
        let cases = [
            (
                "  rules:\n  - {name: a, action: Deny, match: {operations: [Select]}}\n  - {name: b, action: Deny, match: {operations: [Dropp]}}\n",
                "spec.rules[1].match.operations[0]",
                "Dropp",
            ),
            (
                "  rules:\n  - {name: a, action: RequireApproval}\n",
                "spec.rules[0].approval",
                "required",
            ),
            (
                "  rules:\n  - {name: a, action: RequireApproval, approval: {approvers: {groups: [x]}, timeout: 5 minutes}}\n",
                "spec.rules[0].approval.timeout",
                "not a duration",
            ),
            (
                "  rules:\n  - {name: a, action: RequireApproval, approval: {approvers: {groups: [x]}, grantTtl: 1.5h}}\n",
                "spec.rules[0].approval.grantTtl",
                "or \"0\" for this execution only",
            ),
            (
                "  rules:\n  - {name: a, action: RequireApproval, approval: {approvers: {}}}\n",
                "spec.rules[0].approval.approvers",
                "at least one",
            ),
            (
                "  rules:\n  - {name: a, action: Deny, match: {subjects: {serviceAccounts: [trainer]}}}\n",
                "spec.rules[0].match.subjects.serviceAccounts[0]",
                "namespace/name",
            ),
            (
                "  audit: {sinks: [{stdout: {}, file: {path: /x}}]}\n",
                "spec.audit.sinks[0]",
                "exactly one",
            ),
            (
                "  limits: {maxStatementBytes: 0}\n",
                "spec.limits.maxStatementBytes",
                "at least 1",
            ),
            ("  defaultAction: Maybe\n", "spec.defaultAction", "Maybe"),
            (
                "  identity: {oidc: {issuer: https://idp/, jwksSecretRef: {name: jwks, key: jwks.json}, required: true}}\n",
                "spec.identity.oidc.required",
                "needs spec.database.credentialsSecretRef",
            ),
            (
                "  identity: {oidc: {issuer: https://idp/, jwksSecretRef: {name: jwks, key: ''}}}\n",
                "spec.identity.oidc.jwksSecretRef",
                "must name a secret and a key",
            ),
        ];
        for (tail, field, words) in cases {
            let err = error_for(tail);
            assert!(err.contains(field) && err.contains(words), "{tail}: {err}");
        }
        assert_eq!(
            error_for("  rules:\n  - {name: ok, action: Deny, match: {operations: [Drop]}}\n"),
            ""
        );
        // OIDC optional without injected credentials: a non-token password goes to the database.
        assert_eq!(
            error_for(
                "  identity: {oidc: {issuer: https://idp/, jwksSecretRef: {name: jwks, key: jwks.json}}}\n"
            ),
            ""
        );
        // grantTtl "0": the approved execution only.
        assert_eq!(
            error_for(
                "  rules:\n  - {name: once, action: RequireApproval, approval: {approvers: {groups: [x]}, grantTtl: '0', requireJustification: true}}\n"
            ),
            ""
        );
    }
}
