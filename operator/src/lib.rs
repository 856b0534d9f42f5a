//! Palisade's Kubernetes operator: reconciles DatabasePolicy and MaskingRule resources into
//! rendered-policy ConfigMaps and injects the sidecar into pods that opt in.
//!
//! Layout (after kube-rs' controller-rs): [`controller`] reconciles DatabasePolicies,
//! [`pods`] watches opted-in pods, [`status`] and [`render`] are the pure parts they share,
//! [`rbac`] keeps the sidecars' Role and RoleBinding, [`leader`] makes one replica the one
//! that reconciles, [`metrics`] and [`admin`] serve Prometheus and health endpoints, and
//! [`run`] wires it all into `palisade-operator run`. [`audit`] and [`approvals`] hold the logic
//! of the kubectl plugin's `audit` and `approvals|approve|deny` commands.

pub mod admin;
pub mod approval_history;
pub mod approvals;
pub mod audit;
pub mod controller;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod pods;
pub mod rbac;
pub mod render;
pub mod run;
pub mod status;
pub mod webhook;

#[cfg(test)]
pub mod fixtures;
#[cfg(test)]
mod scenarios;

/// Why a reconcile failed. Every variant says what the operator was doing, so the log line
/// and the `error` label of the failure metric point at the failing call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("serialising {what}: {source}")]
    Serialize {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("object has no {0}")]
    MissingField(&'static str),
    #[error("the MaskingRule cache is gone (the operator is shutting down)")]
    StoreGone,
}

impl Error {
    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::Serialize { .. } => "serialize",
            Error::MissingField(_) => "missing_field",
            Error::StoreGone => "store_gone",
        }
    }
}

/// Wraps a kube call's error with what it was doing.
pub(crate) fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
