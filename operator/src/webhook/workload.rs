//! The workload a pod belongs to (`Deployment/checkout`, `Job/train-fraud-v3`), resolved at
//! injection through the pod's owner chain and handed to the sidecar, so every decision,
//! approval and audit event names the workload and not only a pod that will be replaced.
//!
//! The chain is followed one step only where Kubernetes inserts an intermediate owner of
//! its own: a Deployment's pods belong to a ReplicaSet. A Job is a run of its own (a
//! CronJob's runs stay apart, as lineage wants them), and StatefulSets, DaemonSets and
//! others own their pods directly.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Api, Client};
use tracing::debug;

/// Pod labels handed to the sidecar as part of the workload identity.
pub const IDENTITY_LABELS: &[&str] = &[
    "palisade.dev/model",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
];

/// The controlling owner of an object, as `Kind/name`.
fn controller(owners: Option<&Vec<OwnerReference>>) -> Option<&OwnerReference> {
    owners?.iter().find(|o| o.controller == Some(true))
}

fn named(owner: &OwnerReference) -> String {
    format!("{}/{}", owner.kind, owner.name)
}

/// The pod's workload from its own metadata alone: its controlling owner.
pub fn direct(pod: &Pod) -> Option<String> {
    controller(pod.metadata.owner_references.as_ref()).map(named)
}

/// The pod's workload, following a ReplicaSet to the Deployment that controls it. When the
/// ReplicaSet cannot be read (not yet in the cache, no permission), the ReplicaSet itself
/// is named: still the truth, one level down.
pub async fn resolve(client: Option<&Client>, namespace: &str, pod: &Pod) -> Option<String> {
    let owner = controller(pod.metadata.owner_references.as_ref())?;
    let (Some(client), "ReplicaSet", "apps/v1") =
        (client, owner.kind.as_str(), owner.api_version.as_str())
    else {
        return Some(named(owner));
    };
    let api = Api::<ReplicaSet>::namespaced(client.clone(), namespace);
    match api.get_metadata_opt(&owner.name).await {
        Ok(Some(rs)) => Some(
            controller(rs.metadata.owner_references.as_ref()).map_or_else(|| named(owner), named),
        ),
        Ok(None) => Some(named(owner)),
        Err(e) => {
            debug!(replicaset = %owner.name, error = %e, "owner of the pod's ReplicaSet not resolved");
            Some(named(owner))
        }
    }
}

/// The identity labels the pod carries, as `key=value` pairs joined by commas (label
/// values cannot contain commas or `=`).
pub fn identity_labels(pod: &Pod) -> Option<String> {
    let labels = pod.metadata.labels.as_ref()?;
    let pairs: Vec<String> = IDENTITY_LABELS
        .iter()
        .filter_map(|k| labels.get(*k).map(|v| format!("{k}={v}")))
        .collect();
    (!pairs.is_empty()).then(|| pairs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(owner: Option<(&str, &str)>, labels: &[(&str, &str)]) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.owner_references = owner.map(|(kind, name)| {
            vec![OwnerReference {
                api_version: if kind == "Job" { "batch/v1" } else { "apps/v1" }.into(),
                kind: kind.into(),
                name: name.into(),
                uid: "u".into(),
                controller: Some(true),
                ..Default::default()
            }]
        });
        pod.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        pod
    }

    #[tokio::test]
    async fn owners_name_the_workload() {
        let job = pod(Some(("Job", "train-fraud-v3")), &[]);
        assert_eq!(
            resolve(None, "ml", &job).await.as_deref(),
            Some("Job/train-fraud-v3")
        );
        let rs = pod(Some(("ReplicaSet", "checkout-5d8f7")), &[]);
        // Without the API, the ReplicaSet is what is known.
        assert_eq!(
            resolve(None, "shop", &rs).await.as_deref(),
            Some("ReplicaSet/checkout-5d8f7")
        );
        assert_eq!(direct(&rs).as_deref(), Some("ReplicaSet/checkout-5d8f7"));
        assert_eq!(resolve(None, "shop", &pod(None, &[])).await, None);
    }

    #[test]
    fn identity_labels_are_selected() {
        let p = pod(
            None,
            &[
                ("palisade.dev/model", "fraud-v3"),
                ("app.kubernetes.io/name", "trainer"),
                ("team", "ml"),
            ],
        );
        assert_eq!(
            identity_labels(&p).as_deref(),
            Some("palisade.dev/model=fraud-v3,app.kubernetes.io/name=trainer")
        );
        assert_eq!(identity_labels(&pod(None, &[("team", "ml")])), None);
    }
}
