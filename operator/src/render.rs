//! Rendering a DatabasePolicy as the cluster stores it, with the same
//! `palisade_policy::render_all` the sidecar's standalone mode uses, so both agree on every
//! byte and on the policy hash.
//!
//! MaskingRules are read as untyped objects: the API server's schema cannot check everything
//! the Rust types do (a mask's `to` is untyped), and one rule that does not deserialize must
//! fail the policies it selects with a message naming its field — not stop the watch that
//! feeds every policy.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;
use kube::core::DynamicObject;
use palisade_policy::masking::Mask;
use palisade_policy::{
    DatabasePolicy, LabelSelector, Manifest, MaskingRuleSpec, ObjectMeta, PolicyError,
    RenderedPolicy, render_all,
};

/// Why a policy could not be rendered: a stable PascalCase reason and a message naming the
/// object and field at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

/// The policy's spec failed validation (`spec.rules[2].approval.minApprovals: …`).
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
/// A MaskingRule that selects the policy does not read as a MaskingRule.
pub const REASON_INVALID_MASKING_RULE: &str = "InvalidMaskingRule";

/// Renders `policy` with the MaskingRules of its namespace that select it.
pub fn render_policy(
    policy: &DatabasePolicy,
    masking_rules: &[Arc<DynamicObject>],
) -> Result<RenderedPolicy, Problem> {
    let namespace = policy.namespace().unwrap_or_default();
    let metadata = ObjectMeta {
        name: policy.name_any(),
        namespace: namespace.clone(),
        labels: policy.labels().clone(),
        generation: policy.metadata.generation,
    };
    let mut manifests = vec![Manifest::DatabasePolicy {
        metadata: metadata.clone(),
        spec: policy.spec.clone(),
    }];
    let mut selected: Vec<&Arc<DynamicObject>> = masking_rules
        .iter()
        .filter(|r| r.namespace().as_deref() == Some(namespace.as_str()))
        .collect();
    // Sorted so the first broken rule named is the same on every reconcile.
    selected.sort_by_key(|r| r.name_any());
    for rule in selected {
        let name = rule.name_any();
        let spec = rule
            .data
            .get("spec")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let selector = spec
            .get("policySelector")
            .cloned()
            .map(serde_json::from_value::<LabelSelector>)
            .transpose()
            .map_err(|e| invalid_rule(&name, format!("spec.policySelector: {e}")))?
            .unwrap_or_default();
        if !selector.matches(&metadata.labels) {
            continue;
        }
        let spec: MaskingRuleSpec = serde_path_to_error::deserialize(spec).map_err(|e| {
            let path = e.path().to_string();
            invalid_rule(&name, format!("spec.{path}: {}", e.into_inner()))
        })?;
        manifests.push(Manifest::MaskingRule {
            metadata: ObjectMeta {
                name,
                namespace: namespace.clone(),
                labels: rule.labels().clone(),
                generation: rule.metadata.generation,
            },
            spec,
        });
    }
    let origin = format!("DatabasePolicy {namespace}/{}", metadata.name);
    let mut rendered = render_all(&origin, &manifests).map_err(|e| match e {
        PolicyError::Invalid { field, message, .. } => Problem {
            reason: REASON_INVALID_SPEC,
            message: format!("{field}: {message}"),
        },
        other => Problem {
            reason: REASON_INVALID_SPEC,
            message: other.to_string(),
        },
    })?;
    rendered.pop().ok_or_else(|| Problem {
        reason: REASON_INVALID_SPEC,
        message: "the policy rendered to nothing".into(),
    })
}

fn invalid_rule(name: &str, detail: String) -> Problem {
    Problem {
        reason: REASON_INVALID_MASKING_RULE,
        message: format!("MaskingRule {name}: {detail}"),
    }
}

/// Every Secret the rendered policy references, with the fields that reference it
/// (`spec.database.tls.caSecretRef`, `MaskingRule customer-pii spec.columns[2].mask.keySecretRef`),
/// so a missing Secret's message tells where to look. Same set as
/// `RenderedPolicy::referenced_secrets`.
pub fn secret_references(rendered: &RenderedPolicy) -> BTreeMap<String, Vec<String>> {
    let mut refs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |name: &str, field: String| refs.entry(name.to_string()).or_default().push(field);
    let spec = &rendered.spec;
    if let Some(r) = &spec.database.tls.ca_secret_ref {
        add(&r.name, "spec.database.tls.caSecretRef".into());
    }
    if let Some(r) = &spec.database.credentials_secret_ref {
        add(&r.name, "spec.database.credentialsSecretRef".into());
    }
    if let Some(oidc) = spec.identity.as_ref().and_then(|i| i.oidc.as_ref()) {
        add(
            &oidc.jwks_secret_ref.name,
            "spec.identity.oidc.jwksSecretRef".into(),
        );
    }
    for (i, sink) in spec.audit.sinks.iter().enumerate() {
        if let Some(r) = sink
            .http
            .as_ref()
            .and_then(|h| h.headers_secret_ref.as_ref())
        {
            add(
                &r.name,
                format!("spec.audit.sinks[{i}].http.headersSecretRef"),
            );
        }
    }
    for rule in &rendered.masking_rules {
        let columns = rule.spec.columns.iter().map(|c| &c.mask).enumerate();
        for (i, mask) in columns {
            if let Mask::Hash { key_secret_ref, .. } = mask {
                add(
                    &key_secret_ref.name,
                    format!(
                        "MaskingRule {} spec.columns[{i}].mask.keySecretRef",
                        rule.name
                    ),
                );
            }
        }
        let detectors = rule.spec.detectors.iter().map(|d| &d.mask).enumerate();
        for (i, mask) in detectors {
            if let Mask::Hash { key_secret_ref, .. } = mask {
                add(
                    &key_secret_ref.name,
                    format!(
                        "MaskingRule {} spec.detectors[{i}].mask.keySecretRef",
                        rule.name
                    ),
                );
            }
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{masking_rule, policy};

    #[test]
    fn renders_like_the_standalone_loader() {
        let p = policy(
            "features-db",
            "ml",
            "  database: {host: db, credentialsSecretRef: {name: creds}}\n",
        );
        let m = masking_rule(
            "pii",
            "ml",
            "  columns:\n  - {table: public.t, column: ssn, mask: {type: Hash, keySecretRef: {name: mask-key, key: hmac}}}\n",
        );
        let rendered = render_policy(&p, &[m]).unwrap();
        let text = "apiVersion: palisade.dev/v1alpha1\nkind: DatabasePolicy\nmetadata: {name: features-db, namespace: ml}\nspec:\n  database: {host: db, credentialsSecretRef: {name: creds}}\n---\napiVersion: palisade.dev/v1alpha1\nkind: MaskingRule\nmetadata: {name: pii, namespace: ml}\nspec:\n  columns:\n  - {table: public.t, column: ssn, mask: {type: Hash, keySecretRef: {name: mask-key, key: hmac}}}\n";
        let standalone =
            render_all("t", &palisade_policy::parse_manifests("t", text).unwrap()).unwrap();
        assert_eq!(rendered.policy_hash, standalone[0].policy_hash);
        let refs = secret_references(&rendered);
        assert_eq!(
            refs.keys().cloned().collect::<Vec<_>>(),
            rendered
                .referenced_secrets()
                .into_iter()
                .collect::<Vec<_>>()
        );
        assert_eq!(
            refs["mask-key"],
            ["MaskingRule pii spec.columns[0].mask.keySecretRef"]
        );
    }

    #[test]
    fn masking_rules_of_other_namespaces_and_selectors_are_ignored() {
        let mut p = policy("p", "ml", "  database: {host: db}\n");
        p.metadata.labels = Some([("tier".to_string(), "gold".to_string())].into());
        let other_ns = masking_rule("a", "other", "  columns: []\n");
        let not_selected = masking_rule(
            "b",
            "ml",
            "  policySelector: {matchLabels: {tier: silver}}\n",
        );
        let selected = masking_rule("c", "ml", "  policySelector: {matchLabels: {tier: gold}}\n");
        let rendered = render_policy(&p, &[other_ns, not_selected, selected]).unwrap();
        let names: Vec<_> = rendered
            .masking_rules
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(names, ["c"]);
    }

    #[test]
    fn problems_name_the_field() {
        let p = policy(
            "p",
            "ml",
            "  database: {host: db}\n  rules:\n  - {name: a, action: Deny}\n  - {name: b, action: Deny}\n  - {name: c, action: RequireApproval, approval: {approvers: {users: [bob]}, minApprovals: 0}}\n",
        );
        let problem = render_policy(&p, &[]).unwrap_err();
        assert_eq!(problem.reason, REASON_INVALID_SPEC);
        assert_eq!(
            problem.message,
            "spec.rules[2].approval.minApprovals: must be at least 1"
        );

        let p = policy("p", "ml", "  database: {host: db}\n");
        let bad = masking_rule(
            "pii",
            "ml",
            "  columns:\n  - {table: t, column: d, mask: {type: Truncate, to: 5}}\n",
        );
        let problem = render_policy(&p, &[bad]).unwrap_err();
        assert_eq!(problem.reason, REASON_INVALID_MASKING_RULE);
        assert!(
            problem
                .message
                .starts_with("MaskingRule pii: spec.columns[0].mask"),
            "{}",
            problem.message
        );
    }
}
