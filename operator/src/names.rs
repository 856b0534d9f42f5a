//! Names and labels from the operator contract that the controller reads and writes. The
//! webhook writes the pod annotations; both sides spell them the same.

/// Field manager for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "palisade-operator";
/// `reportingController` of the operator's Events.
pub const CONTROLLER_NAME: &str = "palisade-operator";

/// Pod label that opts a pod in to injection.
pub const INJECT_LABEL: &str = "palisade.dev/inject";
/// The label selector for opted-in pods.
pub const INJECT_SELECTOR: &str = "palisade.dev/inject=true";
/// `<operator version>`: the webhook injected this pod.
pub const ANNOTATION_INJECTED: &str = "palisade.dev/injected";
/// `<name>=<policyHash>,…` sorted by name: the policies the pod's sidecar enforces.
pub const ANNOTATION_POLICIES: &str = "palisade.dev/policies";
/// `a,b` sorted: the Secrets mounted into the pod's sidecar.
pub const ANNOTATION_SECRETS: &str = "palisade.dev/secrets";
/// `<one-line reason>`: the webhook chose not to inject this opted-in pod.
pub const ANNOTATION_SKIPPED: &str = "palisade.dev/injection-skipped";
/// `<reason>`: the operator's note that the pod must restart to enforce current policy.
pub const ANNOTATION_RESTART_NEEDED: &str = "palisade.dev/restart-needed";

/// Labels on everything the operator creates.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_POLICY: &str = "palisade.dev/policy";
/// Selector for the ConfigMaps the operator owns.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=palisade-operator";

/// Key of the rendered document in the policy's ConfigMap.
pub const POLICY_KEY: &str = "policy.json";

/// Role and RoleBinding kept in each namespace with DatabasePolicies.
pub const SIDECAR_RBAC_NAME: &str = "palisade-sidecar";

/// The ConfigMap holding the rendered document of policy `name`.
pub fn config_map_name(policy: &str) -> String {
    format!("palisade-policy-{policy}")
}
