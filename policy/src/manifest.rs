//! Reading the YAML that users `kubectl apply`: multi-document files holding
//! DatabasePolicy and MaskingRule objects (other kinds, such as the Deployment beside them
//! in `examples/`, are skipped).

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::masking::MaskingRuleSpec;
use crate::model::DatabasePolicySpec;
use crate::{API_VERSION, PolicyError};

/// The part of Kubernetes object metadata a policy needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

fn default_namespace() -> String {
    "default".into()
}

/// One Palisade object read from a manifest.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // a handful per file; boxing buys nothing
pub enum Manifest {
    DatabasePolicy {
        metadata: ObjectMeta,
        spec: DatabasePolicySpec,
    },
    MaskingRule {
        metadata: ObjectMeta,
        spec: MaskingRuleSpec,
    },
}

impl Manifest {
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Manifest::DatabasePolicy { metadata, .. } | Manifest::MaskingRule { metadata, .. } => {
                metadata
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Manifest::DatabasePolicy { .. } => "DatabasePolicy",
            Manifest::MaskingRule { .. } => "MaskingRule",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

/// Parses every document of a YAML stream. `origin` names the source in errors (a path).
pub fn parse_manifests(origin: &str, text: &str) -> Result<Vec<Manifest>, PolicyError> {
    let mut out = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| PolicyError::Parse {
            origin: origin.to_string(),
            index: index + 1,
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue; // an empty document, e.g. after a trailing `---`
        }
        let parse_err = |message: String| PolicyError::Parse {
            origin: origin.to_string(),
            index: index + 1,
            message,
        };
        let type_meta: TypeMeta =
            serde_yaml::from_value(value.clone()).map_err(|e| parse_err(e.to_string()))?;
        let is_ours = type_meta.api_version.starts_with("palisade.dev/");
        if !is_ours {
            continue;
        }
        if type_meta.api_version != API_VERSION {
            return Err(parse_err(format!(
                "apiVersion {:?} is not supported (expected {API_VERSION})",
                type_meta.api_version
            )));
        }
        let metadata: ObjectMeta = field(&value, "metadata").map_err(parse_err)?;
        let manifest = match type_meta.kind.as_str() {
            "DatabasePolicy" => Manifest::DatabasePolicy {
                spec: field(&value, "spec").map_err(parse_err)?,
                metadata,
            },
            "MaskingRule" => Manifest::MaskingRule {
                spec: field(&value, "spec").map_err(parse_err)?,
                metadata,
            },
            // ApprovalRequests are runtime objects, not configuration.
            "ApprovalRequest" => continue,
            other => return Err(parse_err(format!("unknown kind {other:?}"))),
        };
        out.push(manifest);
    }
    Ok(out)
}

/// Deserializes `value[name]`, reporting the failing field's full path (`spec.database.port`).
fn field<T: DeserializeOwned>(value: &serde_yaml::Value, name: &str) -> Result<T, String> {
    let inner = value
        .get(name)
        .cloned()
        .ok_or_else(|| format!("{name}: missing field"))?;
    serde_path_to_error::deserialize(inner).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            name.to_string()
        } else {
            format!("{name}.{path}")
        };
        format!("{path}: {}", e.into_inner())
    })
}

/// Reads and parses one YAML file.
pub fn load_manifests(path: &Path) -> Result<Vec<Manifest>, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|cause| PolicyError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    parse_manifests(&path.display().to_string(), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_foreign_kinds_and_empty_documents() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n---\napiVersion: palisade.dev/v1alpha1\nkind: DatabasePolicy\nmetadata: {name: p, namespace: ml}\nspec:\n  database: {host: db}\n---\n";
        let got = parse_manifests("t.yaml", text).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].metadata().namespace, "ml");
    }

    #[test]
    fn errors_name_the_field_path() {
        let text = "apiVersion: palisade.dev/v1alpha1\nkind: DatabasePolicy\nmetadata: {name: p}\nspec:\n  database: {host: db, prot: 1}\n";
        let err = parse_manifests("t.yaml", text).unwrap_err().to_string();
        assert!(err.contains("spec.database"), "{err}");
        assert!(err.contains("prot"), "{err}");
        let text = "apiVersion: palisade.dev/v1alpha1\nkind: DatabasePolicy\nmetadata: {name: p}\nspec:\n  database: {host: db}\n  rules:\n  - {name: r, action: Deny, match: {operations: [Dropp]}}\n";
        let err = parse_manifests("t.yaml", text).unwrap_err().to_string();
        assert!(err.contains("spec.rules[0].match.operations[0]"), "{err}");
        assert!(err.contains("Dropp"), "{err}");
    }
}
