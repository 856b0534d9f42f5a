//! The `MaskingRule` resource (SPEC §2.2): which columns are masked, how, and for whom.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{SecretKeyRef, Subjects};
use crate::selector::LabelSelector;

/// Masks sensitive values in result rows as they stream through the sidecar.
// Each printcolumn(...) repeats name/type_/json_path, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource),
    kube(
        group = "palisade.dev",
        version = "v1alpha1",
        kind = "MaskingRule",
        namespaced,
        shortname = "maskrule",
        category = "palisade",
        derive = "PartialEq",
        doc = "Masks sensitive values in result rows as they stream through the sidecars of the DatabasePolicies it selects.",
        printcolumn(
            name = "Derived",
            type_ = "string",
            json_path = ".spec.derivedColumns",
            description = "What happens to results computed from masked columns"
        ),
        printcolumn(
            name = "Predicates",
            type_ = "string",
            json_path = ".spec.predicates",
            description = "Whether masked columns may be used in WHERE/JOIN/ORDER BY/GROUP BY"
        ),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaskingRuleSpec {
    /// DatabasePolicies in this namespace this rule applies to; empty selects all.
    #[serde(default)]
    pub policy_selector: LabelSelector,
    /// Column masks, by table and column glob.
    #[serde(default)]
    pub columns: Vec<ColumnMask>,
    /// Content-based detection for columns no rule names. Opt-in per entity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detectors: Vec<Detector>,
    /// Subjects that see raw values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exempt: Option<Subjects>,
    /// What happens to a result computed from a masked column.
    #[serde(default)]
    pub derived_columns: DerivedColumns,
    /// Whether masked columns may appear in WHERE/JOIN/ORDER BY/GROUP BY.
    #[serde(default)]
    pub predicates: Predicates,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ColumnMask {
    /// `schema.table` glob (`*` for any table).
    pub table: String,
    /// Column name glob.
    pub column: String,
    /// How the column's values are replaced.
    #[serde(deserialize_with = "deserialize_mask")]
    pub mask: Mask,
}

/// How a value is replaced. A masked value is always a valid value of the column's type;
/// where the mask cannot be expressed in that type, it is NULL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "kube", schemars(transform = crate::crd::structural_mask_schema))]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Mask {
    Null,
    Redact,
    Fixed {
        value: String,
    },
    #[serde(rename_all = "camelCase")]
    Partial {
        #[serde(default)]
        keep_first: u32,
        #[serde(default)]
        keep_last: u32,
    },
    Email,
    #[serde(rename_all = "camelCase")]
    Hash {
        key_secret_ref: SecretKeyRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        length: Option<u32>,
    },
    Tokenize,
    Truncate {
        to: TruncateTo,
    },
    Round {
        to: f64,
    },
    Noise {
        ratio: f64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TruncateTo {
    Year,
    Month,
    Day,
    Hour,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Detector {
    /// Kinds of sensitive content to look for in values.
    pub entities: Vec<Entity>,
    /// How a detected value is replaced.
    #[serde(deserialize_with = "deserialize_mask")]
    pub mask: Mask,
}

/// YAML reads `type: Null` as a null value, not the string "Null"; users write it as the
/// SPEC does, so a null `type` means the `Null` mask. The API server drops null fields its
/// schema does not keep, so a mask stored without `type` is `Null` too (the strictest mask).
fn deserialize_mask<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Mask, D::Error> {
    use serde::de::Error;
    let mut value = serde_json::Value::deserialize(d)?;
    if let Some(obj) = value.as_object_mut()
        && obj.get("type").is_none_or(|t| t.is_null())
    {
        obj.insert("type".into(), "Null".into());
    }
    Mask::deserialize(value).map_err(D::Error::custom)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Entity {
    Email,
    CreditCard,
    UsSsn,
    Iban,
    Phone,
    Jwt,
    AwsAccessKey,
    PrivateKey,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DerivedColumns {
    #[default]
    Mask,
    Deny,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Predicates {
    #[default]
    Allow,
    Deny,
}
