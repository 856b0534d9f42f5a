//! Palisade's policy model: the `DatabasePolicy` and `MaskingRule` resources as plain Rust
//! types, and the renderer that turns them into the [`RenderedPolicy`] document the sidecar
//! enforces. Nothing here knows about Kubernetes clients or sockets, so the operator and the
//! sidecar's standalone mode load exactly the same files the same way.

pub mod analysis;
pub mod approval;
pub mod audit;
pub mod crd;
pub mod decision;
pub mod decision_cache;
pub mod dialect;
pub mod duration;
pub mod encoding;
mod error;
pub mod glob;
pub mod grammar;
pub mod identity;
pub mod manifest;
pub mod mask;
pub mod mask_plan;
pub mod masking;
pub mod model;
pub mod render;
pub mod selector;
pub mod server_message;
pub mod shape;
pub mod timestamp;
mod validate;

pub use crd::{
    ApprovalDecision, ApprovalRequestSpec, ApprovalRequestStatus, ApprovalState, Condition,
    ConditionStatus, DatabasePolicyStatus, Requester, Verdict,
};
#[cfg(feature = "kube")]
pub use crd::{ApprovalRequest, CrdError, DatabasePolicy, MaskingRule, crds, crds_yaml};
pub use error::PolicyError;
pub use manifest::{Manifest, ObjectMeta, load_manifests, parse_manifests};
pub use masking::MaskingRuleSpec;
pub use model::*;
pub use render::{RENDERED_FORMAT, RenderedPolicy, SelectedMaskingRule, render_all, render_files};
pub use selector::LabelSelector;

/// The API group and version of every Palisade resource.
pub const API_VERSION: &str = "palisade.dev/v1alpha1";
