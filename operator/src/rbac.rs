//! The sidecars' RBAC in each namespace with DatabasePolicies: Role `palisade-sidecar`
//! (publish Events; create and follow ApprovalRequests and write their status — nothing
//! else: decisions are people's, through the admission webhook) and RoleBinding
//! `palisade-sidecar` bound to the service accounts of the namespace's injected pods.
//!
//! Both are owned by every DatabasePolicy of the namespace (owner references, none of them
//! the controller): Kubernetes' garbage collector deletes them when the last policy goes,
//! so deletion needs no finalizer and leaves nothing behind.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use palisade_policy::DatabasePolicy;
use serde_json::{Value, json};

use crate::names::{ANNOTATION_INJECTED, FIELD_MANAGER, LABEL_MANAGED_BY, SIDECAR_RBAC_NAME};
use crate::pods::{finished, service_account};
use crate::{Result, kube_err};

/// An owner reference to `policy` that is not the controller and does not block its
/// deletion (blocking would need `update` on `databasepolicies/finalizers`).
pub fn owner(policy: &DatabasePolicy, controller: bool) -> Option<OwnerReference> {
    let mut reference = policy.controller_owner_ref(&())?;
    reference.controller = controller.then_some(true);
    reference.block_owner_deletion = None;
    Some(reference)
}

/// Service accounts of the injected, live pods of `namespace`, sorted.
pub fn injected_service_accounts(namespace: &str, pods: &[Arc<Pod>]) -> BTreeSet<String> {
    pods.iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace))
        .filter(|p| !finished(p) && p.annotations().contains_key(ANNOTATION_INJECTED))
        .map(|p| service_account(p))
        .collect()
}

/// The Role, as applied.
pub fn role(namespace: &str, owners: &[OwnerReference]) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata(namespace, owners),
        "rules": [
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": ["palisade.dev"], "resources": ["approvalrequests"], "verbs": ["get", "list", "watch", "create"]},
            {"apiGroups": ["palisade.dev"], "resources": ["approvalrequests/status"], "verbs": ["get", "patch", "update"]},
        ],
    })
}

/// The RoleBinding, as applied.
pub fn role_binding(
    namespace: &str,
    owners: &[OwnerReference],
    service_accounts: &BTreeSet<String>,
) -> Value {
    let subjects: Vec<Value> = service_accounts
        .iter()
        .map(|sa| json!({"kind": "ServiceAccount", "name": sa, "namespace": namespace}))
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(namespace, owners),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SIDECAR_RBAC_NAME},
        "subjects": subjects,
    })
}

fn metadata(namespace: &str, owners: &[OwnerReference]) -> Value {
    json!({
        "name": SIDECAR_RBAC_NAME,
        "namespace": namespace,
        "labels": {LABEL_MANAGED_BY: FIELD_MANAGER},
        "ownerReferences": owners,
    })
}

/// Applies the Role and RoleBinding of `namespace`, owned by `policies` (all of the
/// namespace's DatabasePolicies).
pub async fn apply(
    client: &Client,
    namespace: &str,
    policies: &[Arc<DatabasePolicy>],
    pods: &[Arc<Pod>],
) -> Result<()> {
    let mut owners: Vec<OwnerReference> = policies
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| owner(p, false))
        .collect();
    // Sorted so an unchanged set applies an unchanged object.
    owners.sort_by(|a, b| a.name.cmp(&b.name));
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let roles: Api<Role> = Api::namespaced(client.clone(), namespace);
    roles
        .patch(
            SIDECAR_RBAC_NAME,
            &params,
            &Patch::Apply(role(namespace, &owners)),
        )
        .await
        .map_err(kube_err(format!(
            "applying Role {namespace}/{SIDECAR_RBAC_NAME}"
        )))?;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
    let accounts = injected_service_accounts(namespace, pods);
    bindings
        .patch(
            SIDECAR_RBAC_NAME,
            &params,
            &Patch::Apply(role_binding(namespace, &owners, &accounts)),
        )
        .await
        .map_err(kube_err(format!(
            "applying RoleBinding {namespace}/{SIDECAR_RBAC_NAME}"
        )))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{pod, policy};

    #[test]
    fn role_grants_exactly_what_sidecars_use() {
        let r: Role = serde_json::from_value(role("ml", &[])).unwrap();
        let rules = r.rules.unwrap();
        let grants: Vec<_> = rules
            .iter()
            .map(|r| {
                (
                    r.api_groups.clone().unwrap()[0].clone(),
                    r.resources.clone().unwrap()[0].clone(),
                    r.verbs.join(","),
                )
            })
            .collect();
        assert_eq!(
            grants,
            [
                (
                    "".to_string(),
                    "events".to_string(),
                    "create,patch".to_string()
                ),
                (
                    "events.k8s.io".into(),
                    "events".into(),
                    "create,patch".into()
                ),
                (
                    "palisade.dev".into(),
                    "approvalrequests".into(),
                    "get,list,watch,create".into()
                ),
                (
                    "palisade.dev".into(),
                    "approvalrequests/status".into(),
                    "get,patch,update".into()
                ),
            ]
        );
    }

    #[test]
    fn binding_names_injected_pods_service_accounts() {
        let mut trainer = pod("t", "ml", &[("palisade.dev/injected", "0.1.0")]);
        trainer.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            service_account_name: Some("trainer".into()),
            ..Default::default()
        });
        let defaulted = pod("d", "ml", &[("palisade.dev/injected", "0.1.0")]);
        let bare = pod("b", "ml", &[]);
        let elsewhere = pod("e", "other", &[("palisade.dev/injected", "0.1.0")]);
        let pods: Vec<_> = [trainer, defaulted, bare, elsewhere]
            .into_iter()
            .map(Arc::new)
            .collect();
        let accounts = injected_service_accounts("ml", &pods);
        assert_eq!(accounts.iter().collect::<Vec<_>>(), ["default", "trainer"]);
        let p = policy("p", "ml", "  database: {host: db}\n");
        let owners = vec![owner(&p, false).unwrap()];
        let b: RoleBinding =
            serde_json::from_value(role_binding("ml", &owners, &accounts)).unwrap();
        let subjects = b.subjects.unwrap();
        assert_eq!(subjects[1].name, "trainer");
        assert_eq!(subjects[1].namespace.as_deref(), Some("ml"));
        let refs = b.metadata.owner_references.unwrap();
        assert_eq!(refs[0].kind, "DatabasePolicy");
        assert_eq!(refs[0].controller, None);
        assert_eq!(refs[0].block_owner_deletion, None);
    }
}
