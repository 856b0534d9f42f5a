//! The rendered policy: the one document a sidecar enforces. The operator writes it to the
//! ConfigMap `palisade-policy-<name>` as `policy.json`; standalone sidecars render it from
//! YAML with this same code, so both always agree.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::PolicyError;
use crate::manifest::{Manifest, ObjectMeta};
use crate::masking::MaskingRuleSpec;
use crate::model::DatabasePolicySpec;
use crate::validate::validate_policy;

/// Version of the rendered document's layout; a sidecar refuses formats it does not know.
pub const RENDERED_FORMAT: u32 = 1;

/// A MaskingRule selected into a policy, kept with its name for status and audit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectedMaskingRule {
    pub name: String,
    pub spec: MaskingRuleSpec,
}

/// Everything a sidecar needs to enforce one DatabasePolicy. Secrets are referenced by
/// name, never inlined: the document lives in a ConfigMap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedPolicy {
    pub format: u32,
    pub namespace: String,
    pub name: String,
    pub spec: DatabasePolicySpec,
    #[serde(default)]
    pub masking_rules: Vec<SelectedMaskingRule>,
    /// `sha256:<hex>` over the document without this field; every audit event carries it.
    pub policy_hash: String,
}

impl RenderedPolicy {
    /// Builds the document and stamps its hash.
    pub fn new(
        namespace: &str,
        name: &str,
        spec: DatabasePolicySpec,
        masking_rules: Vec<SelectedMaskingRule>,
    ) -> Self {
        let mut doc = RenderedPolicy {
            format: RENDERED_FORMAT,
            namespace: namespace.to_string(),
            name: name.to_string(),
            spec,
            masking_rules,
            policy_hash: String::new(),
        };
        doc.policy_hash = doc.compute_hash();
        doc
    }

    /// `namespace/name`, how policies are named in logs and errors.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn compute_hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.policy_hash = String::new();
        // Struct fields serialize in declaration order and maps are BTreeMaps, so the
        // JSON is canonical for a given document.
        // Plain structs, strings, numbers and string-keyed maps: serialising cannot fail,
        // and an empty input would still give a (wrong, hence rejected) hash, not a panic.
        let bytes = serde_json::to_vec(&unhashed).unwrap_or_default();
        format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
    }

    /// Names of every Secret the policy and its selected MaskingRules reference, which a
    /// sidecar needs mounted under its secrets directory (`<dir>/<name>/<key>`).
    pub fn referenced_secrets(&self) -> BTreeSet<String> {
        use crate::masking::Mask;
        let spec = &self.spec;
        let mut names = BTreeSet::new();
        if let Some(r) = &spec.database.tls.ca_secret_ref {
            names.insert(r.name.clone());
        }
        if let Some(r) = &spec.database.credentials_secret_ref {
            names.insert(r.name.clone());
        }
        if let Some(oidc) = spec.identity.as_ref().and_then(|i| i.oidc.as_ref()) {
            names.insert(oidc.jwks_secret_ref.name.clone());
        }
        for sink in &spec.audit.sinks {
            if let Some(r) = sink
                .http
                .as_ref()
                .and_then(|h| h.headers_secret_ref.as_ref())
            {
                names.insert(r.name.clone());
            }
        }
        for rule in &self.masking_rules {
            let masks = rule.spec.columns.iter().map(|c| &c.mask);
            let masks = masks.chain(rule.spec.detectors.iter().map(|d| &d.mask));
            for mask in masks {
                if let Mask::Hash { key_secret_ref, .. } = mask {
                    names.insert(key_secret_ref.name.clone());
                }
            }
        }
        names
    }

    /// Pretty JSON, as written to `policy.json`.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// Reads a `policy.json`, refusing unknown formats and documents whose hash does not
    /// match their content (a hand-edited or truncated file).
    pub fn from_json(origin: &str, text: &str) -> Result<Self, PolicyError> {
        let parse_err = |message: String| PolicyError::Parse {
            origin: origin.to_string(),
            index: 1,
            message,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let doc: RenderedPolicy = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            parse_err(format!("{path}: {}", e.into_inner()))
        })?;
        if doc.format != RENDERED_FORMAT {
            return Err(parse_err(format!(
                "format {} is not supported (this sidecar reads format {RENDERED_FORMAT})",
                doc.format
            )));
        }
        let expected = doc.compute_hash();
        if doc.policy_hash != expected {
            return Err(parse_err(format!(
                "policyHash {} does not match the content ({expected}); re-render it",
                doc.policy_hash
            )));
        }
        validate_policy(origin, &doc.namespace, &doc.name, &doc.spec)?;
        Ok(doc)
    }
}

/// Reads YAML files and renders every DatabasePolicy in them, as the command-line tools
/// do. Fails when the files hold no DatabasePolicy at all.
pub fn render_files(files: &[std::path::PathBuf]) -> Result<Vec<RenderedPolicy>, PolicyError> {
    let mut manifests = Vec::new();
    for f in files {
        manifests.extend(crate::manifest::load_manifests(f)?);
    }
    let origin = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let rendered = render_all(&origin, &manifests)?;
    if rendered.is_empty() {
        return Err(PolicyError::NoPolicy { origin });
    }
    Ok(rendered)
}

/// Renders every DatabasePolicy among `manifests`, with the MaskingRules of its namespace
/// whose `policySelector` matches the policy's labels.
pub fn render_all(
    origin: &str,
    manifests: &[Manifest],
) -> Result<Vec<RenderedPolicy>, PolicyError> {
    let mut seen = BTreeSet::new();
    for m in manifests {
        let meta = m.metadata();
        if !seen.insert((m.kind(), meta.namespace.clone(), meta.name.clone())) {
            return Err(PolicyError::Duplicate {
                origin: origin.to_string(),
                kind: m.kind().to_string(),
                namespace: meta.namespace.clone(),
                name: meta.name.clone(),
            });
        }
    }
    let mut out = Vec::new();
    for m in manifests {
        let Manifest::DatabasePolicy { metadata, spec } = m else {
            continue;
        };
        validate_policy(origin, &metadata.namespace, &metadata.name, spec)?;
        let masking = selected_masking_rules(metadata, manifests);
        out.push(RenderedPolicy::new(
            &metadata.namespace,
            &metadata.name,
            spec.clone(),
            masking,
        ));
    }
    Ok(out)
}

fn selected_masking_rules(policy: &ObjectMeta, manifests: &[Manifest]) -> Vec<SelectedMaskingRule> {
    let mut rules: Vec<SelectedMaskingRule> = manifests
        .iter()
        .filter_map(|m| match m {
            Manifest::MaskingRule { metadata, spec }
                if metadata.namespace == policy.namespace
                    && spec.policy_selector.matches(&policy.labels) =>
            {
                Some(SelectedMaskingRule {
                    name: metadata.name.clone(),
                    spec: spec.clone(),
                })
            }
            _ => None,
        })
        .collect();
    rules.sort_by(|a, b| a.name.cmp(&b.name));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_manifests;

    const POLICY: &str = "apiVersion: palisade.dev/v1alpha1\nkind: DatabasePolicy\nmetadata: {name: p, namespace: ml, labels: {tier: gold}}\nspec:\n  database: {host: db}\n";
    const MASK: &str = "---\napiVersion: palisade.dev/v1alpha1\nkind: MaskingRule\nmetadata: {name: m, namespace: ml}\nspec:\n  policySelector: {matchLabels: {tier: gold}}\n  columns:\n  - {table: public.t, column: email, mask: {type: Email}}\n";

    #[test]
    fn hash_is_stable_and_tracks_content() {
        let a = render_all("t", &parse_manifests("t", POLICY).unwrap()).unwrap();
        let b = render_all("t", &parse_manifests("t", POLICY).unwrap()).unwrap();
        assert_eq!(a[0].policy_hash, b[0].policy_hash);
        assert!(a[0].policy_hash.starts_with("sha256:"));
        let changed = POLICY.replace("host: db", "host: db2");
        let c = render_all("t", &parse_manifests("t", &changed).unwrap()).unwrap();
        assert_ne!(a[0].policy_hash, c[0].policy_hash);
    }

    #[test]
    fn masking_rules_are_selected_by_label_and_namespace() {
        let text = format!("{POLICY}{MASK}");
        let got = render_all("t", &parse_manifests("t", &text).unwrap()).unwrap();
        assert_eq!(got[0].masking_rules.len(), 1);
        let other_ns = text.replace("name: m, namespace: ml", "name: m, namespace: other");
        let got = render_all("t", &parse_manifests("t", &other_ns).unwrap()).unwrap();
        assert!(got[0].masking_rules.is_empty());
    }

    #[test]
    fn referenced_secrets_cover_policy_and_masking_rules() {
        let policy = POLICY.replace(
            "database: {host: db}",
            "database: {host: db, credentialsSecretRef: {name: creds}, tls: {caSecretRef: {name: ca, key: ca.crt}}}\n  audit: {sinks: [{http: {url: 'https://x', headersSecretRef: {name: siem}}}]}",
        );
        let mask = MASK.replace(
            "mask: {type: Email}",
            "mask: {type: Hash, keySecretRef: {name: mask-key, key: hmac}}",
        );
        let text = format!("{policy}{mask}");
        let doc = &render_all("t", &parse_manifests("t", &text).unwrap()).unwrap()[0];
        let got: Vec<_> = doc.referenced_secrets().into_iter().collect();
        assert_eq!(got, ["ca", "creds", "mask-key", "siem"]);
    }

    #[test]
    fn json_round_trip_checks_the_hash() {
        let doc = &render_all("t", &parse_manifests("t", POLICY).unwrap()).unwrap()[0];
        let json = doc.to_json().unwrap();
        assert_eq!(&RenderedPolicy::from_json("p.json", &json).unwrap(), doc);
        let tampered = json.replace("\"db\"", "\"evil\"");
        let err = RenderedPolicy::from_json("p.json", &tampered)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn duplicate_rule_names_are_rejected_with_the_field() {
        let text = format!(
            "{POLICY}  rules:\n  - {{name: r, action: Deny}}\n  - {{name: r, action: Allow}}\n"
        );
        let err = render_all("t", &parse_manifests("t", &text).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("spec.rules[1].name"), "{err}");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;
    use crate::manifest::parse_manifests;
    use crate::model::{Operation, RuleAction, TlsMode};

    /// The resources in `examples/` are the SPEC's; the model must read them as written.
    #[test]
    fn the_shipped_examples_load_and_render() {
        let mut all = Vec::new();
        for (name, text) in [
            (
                "databasepolicy.yaml",
                include_str!("../../examples/databasepolicy.yaml"),
            ),
            (
                "maskingrule.yaml",
                include_str!("../../examples/maskingrule.yaml"),
            ),
            (
                "deployment.yaml",
                include_str!("../../examples/deployment.yaml"),
            ),
        ] {
            all.extend(parse_manifests(name, text).unwrap_or_else(|e| panic!("{e}")));
        }
        let rendered = render_all("examples", &all).unwrap();
        assert_eq!(rendered.len(), 1);
        let p = &rendered[0];
        assert_eq!(p.key(), "ml/features-db");
        assert_eq!(p.spec.database.tls.mode, TlsMode::VerifyFull);
        assert_eq!(p.spec.rules.len(), 3);
        assert_eq!(
            p.spec.rules[0].match_.operations,
            vec![Operation::Drop, Operation::Truncate, Operation::Alter]
        );
        assert_eq!(p.spec.rules[2].action, RuleAction::RequireApproval);
        assert_eq!(p.masking_rules.len(), 1);
        assert_eq!(p.masking_rules[0].spec.columns.len(), 6);
    }
}
