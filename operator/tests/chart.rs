//! The Helm chart (`charts/palisade`), linted and rendered by Helm's own engine and read back
//! into the Kubernetes API types, then checked for what users rely on.
//!
//! Helm runs through `tests/chart/render.py`, which uses the PyPI package `helm-python-sdk`
//! (Helm's Go SDK as a shared library; no helm binary, no cluster). `.ci/run` installs it;
//! elsewhere: `pip install helm-python-sdk==0.2.2`. `PALISADE_PYTHON` picks the interpreter
//! (default `python3`).
//!
//! Every rendered document must parse into its k8s-openapi type and serialise back to the same
//! JSON, so a misspelt field (which serde would silently drop) fails here, as would a kind this
//! test does not know.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Pod, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::DynamicObject;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const RELEASE_NAMESPACE: &str = "palisade-system";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

fn python() -> String {
    std::env::var("PALISADE_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs `tests/chart/render.py <args>`; panics with instructions when Python or
/// helm-python-sdk is missing (exit status 2 is the script's "cannot import helm_python").
fn script(args: &[&str]) -> Output {
    let script = repo().join("tests/chart/render.py");
    let out = Command::new(python())
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{} {}`: {e}. The chart tests need Python 3 with helm-python-sdk: \
                 pip install helm-python-sdk==0.2.2 (.ci/run installs it; PALISADE_PYTHON picks \
                 the interpreter)",
                python(),
                script.display()
            )
        });
    if out.status.code() == Some(2) {
        panic!(
            "helm-python-sdk is not installed for `{}`: pip install helm-python-sdk==0.2.2 \
             (.ci/run installs it)\n{}",
            python(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// `--set` expressions plus the release namespace, as `helm template -n NS --set …` takes them.
fn value_args<'a>(sets: &[&'a str], namespace: &'a str) -> Vec<&'a str> {
    let mut args = vec!["--namespace", namespace];
    for set in sets {
        args.extend(["--set", set]);
    }
    args
}

/// Everything one rendering produced, each object in its Kubernetes type.
#[derive(Default)]
struct Rendered {
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    service_accounts: Vec<ServiceAccount>,
    pdbs: Vec<PodDisruptionBudget>,
    webhooks: Vec<MutatingWebhookConfiguration>,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    crds: Vec<CustomResourceDefinition>,
    test_pods: Vec<Pod>,
    cert_manager: Vec<DynamicObject>,
}

fn render(sets: &[&str]) -> Rendered {
    render_in(sets, RELEASE_NAMESPACE)
}

fn render_in(sets: &[&str], namespace: &str) -> Rendered {
    let mut args = vec!["render", "--json"];
    args.extend(value_args(sets, namespace));
    let out = script(&args);
    assert!(
        out.status.success(),
        "helm refused to render the chart with {sets:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let templates: BTreeMap<String, String> =
        serde_json::from_slice(&out.stdout).expect("render.py --json prints a JSON object");
    let mut rendered = Rendered::default();
    for (source, text) in &templates {
        for document in serde_yaml::Deserializer::from_str(text) {
            let doc: Value = serde::Deserialize::deserialize(document)
                .unwrap_or_else(|e| panic!("{source}: not YAML: {e}\n{text}"));
            if doc.is_null() {
                continue;
            }
            rendered.add(source, doc);
        }
    }
    rendered
}

/// Renders expecting Helm to refuse; returns its message.
fn render_error(sets: &[&str]) -> String {
    let mut args = vec!["render", "--json"];
    args.extend(value_args(sets, RELEASE_NAMESPACE));
    let out = script(&args);
    assert!(
        !out.status.success(),
        "helm rendered the chart with {sets:?}, expected a refusal"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The first place where two JSON values differ, as a path.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(l), Some(r)) => first_difference(l, r, &format!("{path}.{k}")),
                (l, r) => Some(format!("{path}.{k}: {l:?} vs {r:?}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (l, r))| first_difference(l, r, &format!("{path}[{i}]"))),
        // JSON Schema bounds are f64 in k8s-openapi: 65535 comes back as 65535.0.
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => None,
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

/// Parses a document into `T` and insists that nothing was lost on the way.
fn typed<T: DeserializeOwned + Serialize>(source: &str, doc: Value) -> T {
    let kind = doc["kind"].as_str().unwrap_or("?").to_string();
    let value: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{source}: not a valid {kind}: {e}"));
    let back = serde_json::to_value(&value).expect("k8s-openapi types serialise");
    if let Some(diff) = first_difference(&doc, &back, "") {
        panic!(
            "{source}: the {kind} does not survive a round trip through its Kubernetes type \
             (a misspelt or misplaced field?): {diff} (rendered vs parsed)"
        );
    }
    value
}

impl Rendered {
    fn add(&mut self, source: &str, doc: Value) {
        let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        match (api_version.as_str(), kind.as_str()) {
            ("apps/v1", "Deployment") => self.deployments.push(typed(source, doc)),
            ("v1", "Service") => self.services.push(typed(source, doc)),
            ("v1", "ServiceAccount") => self.service_accounts.push(typed(source, doc)),
            ("v1", "Pod") => self.test_pods.push(typed(source, doc)),
            ("policy/v1", "PodDisruptionBudget") => self.pdbs.push(typed(source, doc)),
            ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => {
                self.webhooks.push(typed(source, doc))
            }
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                self.cluster_roles.push(typed(source, doc))
            }
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                self.cluster_role_bindings.push(typed(source, doc))
            }
            ("rbac.authorization.k8s.io/v1", "Role") => self.roles.push(typed(source, doc)),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                self.role_bindings.push(typed(source, doc))
            }
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
                self.crds.push(typed(source, doc))
            }
            ("cert-manager.io/v1", "Issuer" | "Certificate") => {
                self.cert_manager.push(typed(source, doc))
            }
            _ => panic!(
                "{source}: the chart rendered a {api_version} {kind}, which this test does not \
                 know; add it to Rendered and check it"
            ),
        }
    }

    fn deployment(&self) -> &Deployment {
        assert_eq!(self.deployments.len(), 1, "one operator Deployment");
        &self.deployments[0]
    }

    fn operator(&self) -> &Container {
        let spec = &self.deployment().spec;
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.containers.len(), 1, "one operator container");
        &pod.containers[0]
    }

    fn env(&self) -> BTreeMap<String, String> {
        self.operator()
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect()
    }

    fn webhook(&self) -> &MutatingWebhookConfiguration {
        assert_eq!(self.webhooks.len(), 1, "one MutatingWebhookConfiguration");
        &self.webhooks[0]
    }

    fn service(&self, name: &str) -> &Service {
        self.services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no Service {name}"))
    }

    fn cert_manager(&self, kind: &str, name: &str) -> Option<&DynamicObject> {
        self.cert_manager.iter().find(|o| {
            o.types.as_ref().map(|t| t.kind.as_str()) == Some(kind)
                && o.metadata.name.as_deref() == Some(name)
        })
    }
}

/// One permission: (API group, resource, verb, object name), the name `*` where the rule has no
/// resourceNames.
type Grants = BTreeSet<(String, String, String, String)>;

fn rule_set(rules: &[PolicyRule]) -> Grants {
    let mut set = BTreeSet::new();
    for rule in rules {
        assert!(
            rule.non_resource_urls.is_none(),
            "unexpected rule shape: {rule:?}"
        );
        let names = match &rule.resource_names {
            Some(names) => names.clone(),
            None => vec!["*".to_string()],
        };
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    for name in &names {
                        let grant = (group.clone(), resource.clone(), verb.clone(), name.clone());
                        assert!(set.insert(grant), "duplicate grant in {rule:?}");
                    }
                }
            }
        }
    }
    set
}

fn assert_same_grants(what: &str, chart: Grants, contract: Grants) {
    let extra: Vec<_> = chart.difference(&contract).collect();
    let missing: Vec<_> = contract.difference(&chart).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "the chart's {what} differs from the operator contract's list \
         (group, resource, verb, name):\n  granted beyond the contract: {extra:?}\n  \
         missing: {missing:?}"
    );
}

/// (group, resources, verbs, object name or `*`) rows, expanded.
fn expand(grants: &[(&str, &[&str], &[&str], &str)]) -> Grants {
    let mut set = BTreeSet::new();
    for (group, resources, verbs, name) in grants {
        for resource in *resources {
            for verb in *verbs {
                set.insert((
                    group.to_string(),
                    resource.to_string(),
                    verb.to_string(),
                    name.to_string(),
                ));
            }
        }
    }
    set
}

/// The operator's cluster-wide permissions, as /work/notes/operator-contract.md lists them, with
/// one narrowing: the webhook configuration rule names the chart's own configuration (the
/// operator reads it by name and watches it with a metadata.name field selector).
fn contract_cluster_rules(webhook_configuration: &str) -> Grants {
    const READ: &[&str] = &["get", "list", "watch"];
    expand(&[
        (
            "palisade.dev",
            &["databasepolicies", "maskingrules"],
            READ,
            "*",
        ),
        (
            "palisade.dev",
            &["databasepolicies/status"],
            &["get", "patch"],
            "*",
        ),
        (
            "palisade.dev",
            &["approvalrequests"],
            // delete: approval history past approvalRetention.
            &["get", "list", "watch", "create", "delete"],
            "*",
        ),
        // Granted on to the sidecars, which set a request's state.
        (
            "palisade.dev",
            &["approvalrequests/status"],
            &["get", "patch", "update"],
            "*",
        ),
        (
            "",
            &["configmaps"],
            &["get", "list", "watch", "create", "patch", "delete"],
            "*",
        ),
        ("", &["pods"], &["get", "list", "watch", "patch"], "*"),
        // The webhook follows a pod's ReplicaSet to its Deployment (the workload identity).
        ("apps", &["replicasets"], &["get"], "*"),
        ("", &["secrets"], &["get"], "*"),
        ("", &["events"], &["create", "patch"], "*"),
        ("events.k8s.io", &["events"], &["create", "patch"], "*"),
        (
            "rbac.authorization.k8s.io",
            &["roles", "rolebindings"],
            &["get", "list", "watch", "create", "patch", "delete"],
            "*",
        ),
        (
            "admissionregistration.k8s.io",
            &["mutatingwebhookconfigurations"],
            &["get", "list", "watch", "patch"],
            webhook_configuration,
        ),
    ])
}

/// The operator's permissions in its own namespace.
fn contract_namespace_rules() -> Grants {
    const WRITE: &[&str] = &["get", "list", "watch", "create", "update", "patch"];
    expand(&[
        ("", &["secrets"], WRITE, "*"),
        ("coordination.k8s.io", &["leases"], WRITE, "*"),
    ])
}

fn lint(sets: &[&str]) {
    let mut args = vec!["lint", "--strict"];
    args.extend(value_args(sets, RELEASE_NAMESPACE));
    let out = script(&args);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !report.contains("[ERROR]") && !report.contains("[WARNING]"),
        "helm lint --strict with {sets:?} failed:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------

#[test]
fn chart_lints_clean_with_every_supported_value_combination() {
    for sets in [
        &[][..],
        &["webhook.tls.mode=certManager"],
        &[
            "webhook.tls.mode=certManager",
            "webhook.tls.certManager.issuerRef.name=corp-ca",
            "webhook.tls.certManager.issuerRef.kind=ClusterIssuer",
        ],
        &["crds.install=false"],
        &["webhook.failurePolicy=Fail"],
        &["replicaCount=1"],
        &[
            "rbac.create=false",
            "serviceAccount.create=false",
            "serviceAccount.name=ops",
        ],
    ] {
        lint(sets);
    }
}

#[test]
fn default_render_holds_exactly_the_expected_objects() {
    let r = render(&[]);
    assert_eq!(r.deployments.len(), 1);
    let names: BTreeSet<_> = r
        .services
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["palisade-webhook".to_string(), "palisade-admin".to_string()])
    );
    assert_eq!(r.service_accounts.len(), 1);
    assert_eq!(r.pdbs.len(), 1);
    assert_eq!(r.webhooks.len(), 1);
    assert_eq!(
        (r.cluster_roles.len(), r.cluster_role_bindings.len()),
        (1, 1)
    );
    assert_eq!((r.roles.len(), r.role_bindings.len()), (1, 1));
    assert_eq!(r.test_pods.len(), 1, "the helm test pod");
    assert!(
        r.cert_manager.is_empty(),
        "selfManaged TLS needs no cert-manager"
    );
    assert!(!r.crds.is_empty(), "CRDs are installed by default");
    // Everything namespaced lands in the release namespace.
    let namespaced = r
        .deployments
        .iter()
        .map(|o| &o.metadata)
        .chain(r.services.iter().map(|o| &o.metadata))
        .chain(r.service_accounts.iter().map(|o| &o.metadata))
        .chain(r.pdbs.iter().map(|o| &o.metadata))
        .chain(r.roles.iter().map(|o| &o.metadata))
        .chain(r.role_bindings.iter().map(|o| &o.metadata))
        .chain(r.test_pods.iter().map(|o| &o.metadata));
    for meta in namespaced {
        assert_eq!(
            meta.namespace.as_deref(),
            Some(RELEASE_NAMESPACE),
            "{:?}",
            meta.name
        );
    }
}

#[test]
fn operator_runs_two_replicas_spread_over_nodes_with_a_disruption_budget() {
    let r = render(&[]);
    let spec = &r.deployment().spec;
    assert_eq!(spec.replicas, Some(2));
    let selector = spec.selector.match_labels.clone().unwrap();
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    for (k, v) in &selector {
        assert_eq!(
            pod_labels.get(k),
            Some(v),
            "pod template carries selector label {k}"
        );
    }
    // Upgrades never take the last serving replica away.
    let rolling = spec
        .strategy
        .as_ref()
        .unwrap()
        .rolling_update
        .as_ref()
        .unwrap();
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));

    let pdb = &r.pdbs[0];
    let pdb_spec = pdb.spec.as_ref().unwrap();
    assert_eq!(pdb_spec.min_available, Some(IntOrString::Int(1)));
    assert_eq!(
        pdb_spec.selector.as_ref().unwrap().match_labels.as_ref(),
        Some(&selector)
    );

    let affinity = spec
        .template
        .spec
        .as_ref()
        .unwrap()
        .affinity
        .as_ref()
        .unwrap();
    let anti = affinity.pod_anti_affinity.as_ref().unwrap();
    assert!(
        anti.required_during_scheduling_ignored_during_execution
            .is_none(),
        "anti-affinity must be preferred, or a one-node cluster cannot run two replicas"
    );
    let preferred = anti
        .preferred_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap();
    assert_eq!(
        preferred[0].pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );
    assert_eq!(
        preferred[0]
            .pod_affinity_term
            .label_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref(),
        Some(&selector)
    );

    // One replica: no PDB (minAvailable 1 would block every drain); replica count is a value.
    let single = render(&["replicaCount=1"]);
    assert!(single.pdbs.is_empty());
    assert_eq!(single.deployment().spec.replicas, Some(1));
    assert!(
        render(&["podDisruptionBudget.enabled=false"])
            .pdbs
            .is_empty()
    );
    // A user's affinity replaces the default.
    let custom = render(&[
        "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=pool",
        "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
    ]);
    let affinity = custom
        .deployment()
        .spec
        .template
        .spec
        .as_ref()
        .unwrap()
        .affinity
        .clone()
        .unwrap();
    assert!(affinity.pod_anti_affinity.is_none() && affinity.node_affinity.is_some());
}

#[test]
fn operator_container_is_locked_down_probed_and_bounded() {
    let r = render(&[]);
    let pod = r.deployment().spec.template.spec.clone().unwrap();
    let c = r.operator();
    assert_eq!(
        c.image.as_deref(),
        Some(concat!(
            "ghcr.io/palisade-dev/palisade-operator:",
            env!("CARGO_PKG_VERSION")
        ))
    );
    assert_eq!(c.args.as_deref(), Some(&["run".to_string()][..]));

    let ports: BTreeMap<_, _> = c
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        BTreeMap::from([("webhook".to_string(), 9443), ("admin".to_string(), 8080)])
    );
    for (probe, path) in [
        (&c.liveness_probe, "/healthz"),
        (&c.readiness_probe, "/readyz"),
        (&c.startup_probe, "/healthz"),
    ] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, IntOrString::String("admin".into()));
    }

    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.run_as_user, Some(65532));
    assert_eq!(sc.run_as_group, Some(65532));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    assert!(sc.capabilities.as_ref().unwrap().add.is_none());
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    assert!(pod.host_network.is_none() && pod.host_pid.is_none());

    let resources = c.resources.as_ref().unwrap();
    assert!(
        resources
            .requests
            .as_ref()
            .is_some_and(|r| r.contains_key("cpu") && r.contains_key("memory"))
    );
    assert!(
        resources
            .limits
            .as_ref()
            .is_some_and(|l| l.contains_key("memory"))
    );
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("palisade-operator")
    );
    assert_eq!(
        r.service_accounts[0].metadata.name.as_deref(),
        Some("palisade-operator")
    );
}

/// Every variable the chart sets, with the value the default values give it.
#[test]
fn operator_environment_is_the_contract() {
    let r = render(&[]);
    let env = r.env();
    let version = env!("CARGO_PKG_VERSION");
    let expected: BTreeMap<String, String> = [
        ("POD_NAMESPACE", ""),
        ("POD_NAME", ""),
        ("PALISADE_ADMIN_ADDRESS", "0.0.0.0:8080"),
        ("PALISADE_LEASE_NAME", "palisade-operator"),
        ("PALISADE_LOG_LEVEL", "info"),
        ("PALISADE_LOG_FORMAT", "json"),
        ("PALISADE_APPROVAL_RETENTION", "90d"),
        ("PALISADE_WEBHOOK_ADDRESS", "0.0.0.0:9443"),
        ("PALISADE_WEBHOOK_TLS", "self-managed"),
        ("PALISADE_WEBHOOK_SERVICE", "palisade-webhook"),
        ("PALISADE_WEBHOOK_CONFIGURATION", "palisade"),
        ("PALISADE_WEBHOOK_TLS_SECRET", "palisade-webhook-tls"),
        (
            "PALISADE_SIDECAR_IMAGE",
            &format!("ghcr.io/palisade-dev/palisade-sidecar:{version}"),
        ),
        ("PALISADE_SIDECAR_IMAGE_PULL_POLICY", "IfNotPresent"),
        (
            "PALISADE_SIDECAR_RESOURCES",
            r#"{"limits":{"memory":"128Mi"},"requests":{"cpu":"50m","memory":"32Mi"}}"#,
        ),
        ("PALISADE_SIDECAR_LOG_LEVEL", "info"),
        ("PALISADE_NATIVE_SIDECARS", "auto"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(env, expected);

    // The namespace and the pod name come from the downward API, not from values that could
    // be stale.
    for (name, path) in [
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_NAME", "metadata.name"),
    ] {
        let var = r
            .operator()
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .unwrap();
        let field = var
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .unwrap_or_else(|| panic!("{name} from a fieldRef"));
        assert_eq!(field.field_path, path);
    }

    // The resources value is valid ResourceRequirements JSON for the webhook to parse.
    let parsed: k8s_openapi::api::core::v1::ResourceRequirements =
        serde_json::from_str(&env["PALISADE_SIDECAR_RESOURCES"]).unwrap();
    assert_eq!(
        parsed.limits.unwrap()["memory"],
        k8s_openapi::apimachinery::pkg::api::resource::Quantity("128Mi".into())
    );
}

/// `[env: NAME` entries of `palisade-operator run --help`: the variables the operator reads.
fn operator_env_names() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade-operator"))
        .args(["run", "--help"])
        .output()
        .expect("running palisade-operator run --help");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = String::from_utf8_lossy(&out.stdout);
    help.split("[env: ")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect()
}

/// Runs `palisade-operator run` with the environment the chart gives it, but no cluster: clap
/// reads every variable before anything else, so a value the operator does not accept fails
/// with exit status 2 and clap's "invalid value", while accepted ones get as far as looking
/// for the API server.
fn operator_accepts(sets: &[&str]) {
    let r = render(sets);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_palisade-operator"));
    cmd.arg("run")
        .env_clear()
        .env("KUBECONFIG", "/nonexistent/kubeconfig");
    for var in r.operator().env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => value.clone(),
            // What the downward API would give.
            (None, Some(_)) if var.name == "POD_NAMESPACE" => RELEASE_NAMESPACE.to_string(),
            (None, Some(_)) => "palisade-operator-0".to_string(),
            (None, None) => String::new(),
        };
        cmd.env(&var.name, value);
    }
    // The chart's 0.0.0.0:8080 would collide between parallel tests; checked as an address below.
    cmd.env("PALISADE_ADMIN_ADDRESS", "127.0.0.1:0");
    let out = cmd.output().expect("running palisade-operator run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() != Some(2) && !stderr.contains("invalid value"),
        "palisade-operator rejects the environment the chart sets with {sets:?}:\n{stderr}"
    );
    assert!(
        !out.status.success(),
        "without a cluster the operator cannot start"
    );
    let admin: std::net::SocketAddr = r.env()["PALISADE_ADMIN_ADDRESS"]
        .parse()
        .expect("PALISADE_ADMIN_ADDRESS is a socket address");
    assert_eq!(admin.port(), 8080);
}

/// The chart and the operator agree on names: every variable the chart sets is one the
/// operator reads, every variable the operator reads is set in one TLS mode or the other, and
/// the operator accepts the values.
#[test]
fn operator_reads_and_accepts_every_variable_the_chart_sets() {
    let reads = operator_env_names();
    // Read with std::env rather than a flag: the replica's identity (leader Lease, Events).
    let not_flags = BTreeSet::from(["POD_NAME".to_string()]);
    let mut set_in_some_mode = BTreeSet::new();
    for sets in [&[][..], &["webhook.tls.mode=certManager"]] {
        let names: BTreeSet<String> = render(sets).env().into_keys().collect();
        let unknown: Vec<_> = names
            .difference(&reads)
            .filter(|n| !not_flags.contains(*n))
            .collect();
        assert!(
            unknown.is_empty(),
            "the chart sets {unknown:?} with {sets:?}, which palisade-operator run does not read"
        );
        set_in_some_mode.extend(names);
    }
    let unset: Vec<_> = reads.difference(&set_in_some_mode).collect();
    assert!(
        unset.is_empty(),
        "palisade-operator run reads {unset:?}, which the chart never sets: add them to \
         templates/deployment.yaml (and values, if users should choose)"
    );

    operator_accepts(&[]);
    operator_accepts(&["webhook.tls.mode=certManager"]);
    operator_accepts(&[
        "nativeSidecars=never",
        "logFormat=text",
        r"logLevel=info\,palisade_operator=debug", // helm --set escapes commas
        "sidecar.image.pullPolicy=Always",
        "sidecar.resources.limits.cpu=1",
        "sidecar.resources.requests.cpu=0.25",
    ]);
}

#[test]
fn sidecar_and_logging_values_reach_the_operator() {
    let r = render(&[
        "sidecar.image.repository=registry.example/palisade-sidecar",
        "sidecar.image.tag=dev",
        "sidecar.image.pullPolicy=Never",
        "sidecar.logLevel=debug",
        "sidecar.resources.limits.cpu=1",
        "nativeSidecars=never",
        "logLevel=debug",
        "logFormat=text",
        "image.repository=registry.example/palisade-operator",
        "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ]);
    let env = r.env();
    assert_eq!(
        env["PALISADE_SIDECAR_IMAGE"],
        "registry.example/palisade-sidecar:dev"
    );
    assert_eq!(env["PALISADE_SIDECAR_IMAGE_PULL_POLICY"], "Never");
    assert_eq!(env["PALISADE_SIDECAR_LOG_LEVEL"], "debug");
    assert_eq!(env["PALISADE_NATIVE_SIDECARS"], "never");
    assert_eq!(env["PALISADE_LOG_LEVEL"], "debug");
    assert_eq!(env["PALISADE_LOG_FORMAT"], "text");
    let resources: Value = serde_json::from_str(&env["PALISADE_SIDECAR_RESOURCES"]).unwrap();
    assert_eq!(resources["limits"]["cpu"], "1");
    assert_eq!(
        resources["limits"]["memory"], "128Mi",
        "defaults merge with overrides"
    );
    assert_eq!(
        r.operator().image.as_deref(),
        Some(
            "registry.example/palisade-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        )
    );
}

#[test]
fn webhook_configuration_selects_opted_in_pods_outside_system_namespaces() {
    let r = render(&[]);
    let config = r.webhook();
    assert_eq!(config.metadata.name.as_deref(), Some("palisade"));
    assert!(
        config.metadata.annotations.is_none(),
        "no cert-manager annotation in selfManaged mode"
    );
    let hooks = config.webhooks.as_ref().unwrap();
    assert_eq!(hooks.len(), 2, "injection and approvals");
    let w = &hooks[0];
    assert_eq!(w.name, "inject.palisade.dev");

    let svc = w.client_config.service.as_ref().unwrap();
    assert_eq!(svc.name, "palisade-webhook");
    assert_eq!(svc.namespace, RELEASE_NAMESPACE);
    assert_eq!(svc.path.as_deref(), Some("/inject"));
    assert_eq!(svc.port, Some(443));
    assert!(w.client_config.url.is_none());
    assert!(
        w.client_config.ca_bundle.is_none(),
        "the operator owns caBundle in selfManaged mode; Helm must not overwrite it"
    );

    let rules = w.rules.as_ref().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].api_groups.as_deref(), Some(&["".to_string()][..]));
    assert_eq!(
        rules[0].api_versions.as_deref(),
        Some(&["v1".to_string()][..])
    );
    assert_eq!(
        rules[0].resources.as_deref(),
        Some(&["pods".to_string()][..])
    );
    assert_eq!(
        rules[0].operations.as_deref(),
        Some(&["CREATE".to_string()][..])
    );

    let object = w.object_selector.as_ref().unwrap();
    assert_eq!(
        object.match_labels,
        Some(BTreeMap::from([(
            "palisade.dev/inject".to_string(),
            "true".to_string()
        )]))
    );
    assert!(object.match_expressions.is_none());
    let ns = w.namespace_selector.as_ref().unwrap();
    assert!(ns.match_labels.is_none());
    let exprs = ns.match_expressions.as_ref().unwrap();
    assert_eq!(exprs.len(), 1);
    assert_eq!(exprs[0].key, "kubernetes.io/metadata.name");
    assert_eq!(exprs[0].operator, "NotIn");
    assert_eq!(
        exprs[0].values.as_deref(),
        Some(&["kube-system".to_string(), RELEASE_NAMESPACE.to_string()][..])
    );

    assert_eq!(w.failure_policy.as_deref(), Some("Ignore"));
    assert_eq!(w.timeout_seconds, Some(5));
    assert_eq!(w.side_effects, "None");
    assert_eq!(w.admission_review_versions, ["v1"]);
    assert_eq!(w.reinvocation_policy.as_deref(), Some("IfNeeded"));
    assert_eq!(w.match_policy.as_deref(), Some("Equivalent"));
}

#[test]
fn approval_decisions_go_through_a_fail_closed_webhook() {
    for sets in [&[][..], &["webhook.tls.mode=certManager"][..]] {
        let r = render(sets);
        let hooks = r.webhook().webhooks.as_ref().unwrap();
        let w = hooks
            .iter()
            .find(|w| w.name == "approvals.palisade.dev")
            .expect("the approvals webhook");
        let svc = w.client_config.service.as_ref().unwrap();
        assert_eq!(svc.name, "palisade-webhook");
        assert_eq!(svc.namespace, RELEASE_NAMESPACE);
        assert_eq!(svc.path.as_deref(), Some("/approvalrequests"));
        assert_eq!(svc.port, Some(443));
        assert!(
            w.client_config.ca_bundle.is_none(),
            "caBundle is the operator's or cert-manager's, as for injection"
        );
        let rules = w.rules.as_ref().unwrap();
        assert_eq!(rules.len(), 1);
        let strings = |v: &Option<Vec<String>>| v.clone().unwrap_or_default();
        assert_eq!(strings(&rules[0].api_groups), ["palisade.dev"]);
        assert_eq!(strings(&rules[0].api_versions), ["v1alpha1"]);
        // Not approvalrequests/status: the sidecar writes the state there.
        assert_eq!(strings(&rules[0].resources), ["approvalrequests"]);
        assert_eq!(strings(&rules[0].operations), ["CREATE", "UPDATE"]);
        // Whatever webhook.failurePolicy says for injection, decisions fail closed.
        assert_eq!(w.failure_policy.as_deref(), Some("Fail"));
        assert_eq!(w.side_effects, "None");
        assert!(w.object_selector.is_none() && w.namespace_selector.is_none());
        assert_eq!(w.admission_review_versions, ["v1"]);
    }
    let ignore = render(&["webhook.failurePolicy=Ignore"]);
    assert_eq!(
        ignore.webhook().webhooks.as_ref().unwrap()[1]
            .failure_policy
            .as_deref(),
        Some("Fail")
    );
}

#[test]
fn failure_policy_timeout_and_exclusions_are_values() {
    let r = render_in(
        &[
            "webhook.failurePolicy=Fail",
            "webhook.timeoutSeconds=10",
            "webhook.reinvocationPolicy=Never",
            "webhook.excludeNamespaces={monitoring,istio-system}",
        ],
        "governance",
    );
    let w = &r.webhook().webhooks.as_ref().unwrap()[0];
    assert_eq!(w.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(w.timeout_seconds, Some(10));
    assert_eq!(w.reinvocation_policy.as_deref(), Some("Never"));
    assert_eq!(
        w.client_config.service.as_ref().unwrap().namespace,
        "governance"
    );
    let values = w
        .namespace_selector
        .as_ref()
        .unwrap()
        .match_expressions
        .as_ref()
        .unwrap()[0]
        .values
        .clone()
        .unwrap();
    assert_eq!(
        values,
        ["kube-system", "governance", "monitoring", "istio-system"]
    );
}

#[test]
fn webhook_service_routes_443_to_the_operators_webhook_port() {
    let r = render(&[]);
    let svc = r.service("palisade-webhook");
    let spec = svc.spec.as_ref().unwrap();
    let ports = spec.ports.as_ref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].port, 443);
    assert_eq!(
        ports[0].target_port,
        Some(IntOrString::String("webhook".into()))
    );
    let pod_labels = r
        .deployment()
        .spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    for (k, v) in spec.selector.as_ref().unwrap() {
        assert_eq!(
            pod_labels.get(k),
            Some(v),
            "Service selects the operator pods by {k}"
        );
    }
    let admin = r.service("palisade-admin").spec.as_ref().unwrap();
    assert_eq!(admin.ports.as_ref().unwrap()[0].port, 8080);
    assert_eq!(
        admin.ports.as_ref().unwrap()[0].target_port,
        Some(IntOrString::String("admin".into()))
    );

    // A renamed Service is renamed everywhere the name matters.
    let renamed = render(&["webhook.service.name=policy-webhook"]);
    renamed.service("policy-webhook");
    assert_eq!(renamed.env()["PALISADE_WEBHOOK_SERVICE"], "policy-webhook");
    assert_eq!(
        renamed.webhook().webhooks.as_ref().unwrap()[0]
            .client_config
            .service
            .as_ref()
            .unwrap()
            .name,
        "policy-webhook"
    );
}

#[test]
fn rbac_is_exactly_the_operator_contract() {
    let r = render(&[]);
    let cluster_role = &r.cluster_roles[0];
    assert_eq!(
        cluster_role.metadata.name.as_deref(),
        Some("palisade-operator")
    );
    assert_same_grants(
        "ClusterRole",
        rule_set(cluster_role.rules.as_deref().unwrap()),
        contract_cluster_rules("palisade"),
    );
    let role = &r.roles[0];
    assert_eq!(role.metadata.namespace.as_deref(), Some(RELEASE_NAMESPACE));
    assert_same_grants(
        "Role",
        rule_set(role.rules.as_deref().unwrap()),
        contract_namespace_rules(),
    );
    assert!(cluster_role.aggregation_rule.is_none());

    // Another prefix renames the webhook configuration, the rule that names it and the
    // operator's view of it together.
    let renamed = render(&["fullnameOverride=governance"]);
    assert_eq!(
        renamed.webhook().metadata.name.as_deref(),
        Some("governance")
    );
    assert_eq!(
        renamed.env()["PALISADE_WEBHOOK_CONFIGURATION"],
        "governance"
    );
    assert_eq!(renamed.env()["PALISADE_LEASE_NAME"], "governance-operator");
    assert_same_grants(
        "ClusterRole",
        rule_set(renamed.cluster_roles[0].rules.as_deref().unwrap()),
        contract_cluster_rules("governance"),
    );

    let crb = &r.cluster_role_bindings[0];
    assert_eq!(crb.role_ref.kind, "ClusterRole");
    assert_eq!(
        Some(&crb.role_ref.name),
        cluster_role.metadata.name.as_ref()
    );
    let rb = &r.role_bindings[0];
    assert_eq!(rb.role_ref.kind, "Role");
    assert_eq!(Some(&rb.role_ref.name), role.metadata.name.as_ref());
    for subjects in [&crb.subjects, &rb.subjects] {
        let subjects = subjects.as_ref().unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(subjects[0].name, "palisade-operator");
        assert_eq!(subjects[0].namespace.as_deref(), Some(RELEASE_NAMESPACE));
    }

    let none = render(&[
        "rbac.create=false",
        "serviceAccount.create=false",
        "serviceAccount.name=ops",
    ]);
    assert!(none.cluster_roles.is_empty() && none.roles.is_empty());
    assert!(none.cluster_role_bindings.is_empty() && none.role_bindings.is_empty());
    assert!(none.service_accounts.is_empty());
    assert_eq!(
        none.deployment()
            .spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .service_account_name
            .as_deref(),
        Some("ops")
    );
    assert!(
        render_error(&["serviceAccount.create=false"]).contains("serviceAccount.name is required")
    );
}

fn crd_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// The chart carries a copy of `crds/` (Helm can only read files inside the chart).
#[test]
fn chart_crd_copy_is_byte_identical_to_crds_dir() {
    let generated = crd_files(&repo().join("crds"));
    let copy = crd_files(&repo().join("charts/palisade/files/crds"));
    assert!(!generated.is_empty(), "crds/ holds no CRD YAML");
    let fix = "cp crds/*.yaml charts/palisade/files/crds/ (and remove files gone from crds/)";
    assert_eq!(
        generated.keys().collect::<Vec<_>>(),
        copy.keys().collect::<Vec<_>>(),
        "charts/palisade/files/crds/ lists other files than crds/: {fix}"
    );
    for (name, bytes) in &generated {
        assert!(
            copy[name] == *bytes,
            "charts/palisade/files/crds/{name} differs from crds/{name}: {fix}"
        );
    }
}

#[test]
fn crds_install_with_keep_policy_and_only_when_asked() {
    let r = render(&[]);
    // What crds/ holds, document by document.
    let mut expected: BTreeMap<String, Value> = BTreeMap::new();
    for (name, bytes) in crd_files(&repo().join("crds")) {
        let text = String::from_utf8(bytes).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let doc: Value = serde::Deserialize::deserialize(document).unwrap();
            if doc.is_null() {
                continue;
            }
            let crd: CustomResourceDefinition = typed(&name, doc);
            expected.insert(
                crd.metadata.name.clone().unwrap(),
                serde_json::to_value(&crd.spec).unwrap(),
            );
        }
    }
    for plural in ["databasepolicies", "maskingrules", "approvalrequests"] {
        assert!(
            expected.contains_key(&format!("{plural}.palisade.dev")),
            "crds/ has no {plural}.palisade.dev"
        );
    }
    let rendered: BTreeMap<String, &CustomResourceDefinition> = r
        .crds
        .iter()
        .map(|c| (c.metadata.name.clone().unwrap(), c))
        .collect();
    assert_eq!(
        rendered.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (name, crd) in &rendered {
        assert_eq!(
            serde_json::to_value(&crd.spec).unwrap(),
            expected[name],
            "{name}: the chart's CRD spec differs from crds/"
        );
        let annotations = crd.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations
                .get("helm.sh/resource-policy")
                .map(String::as_str),
            Some("keep"),
            "{name}: helm uninstall must not delete the CRD and every policy with it"
        );
        let labels = crd.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("app.kubernetes.io/part-of").map(String::as_str),
            Some("palisade")
        );
    }

    assert!(render(&["crds.install=false"]).crds.is_empty());
    let unkept = render(&["crds.keep=false"]);
    assert!(!unkept.crds.is_empty());
    for crd in &unkept.crds {
        let annotations = crd.metadata.annotations.clone().unwrap_or_default();
        assert!(!annotations.contains_key("helm.sh/resource-policy"));
    }
}

#[test]
fn cert_manager_mode_issues_mounts_and_injects_the_certificate() {
    let r = render(&["webhook.tls.mode=certManager"]);
    let env = r.env();
    assert_eq!(env["PALISADE_WEBHOOK_TLS"], "cert-manager");
    assert_eq!(env["PALISADE_WEBHOOK_CERT_DIR"], "/tls");
    assert!(
        !env.contains_key("PALISADE_WEBHOOK_TLS_SECRET"),
        "the operator does not manage a Secret in certManager mode"
    );

    let cert = r
        .cert_manager("Certificate", "palisade-webhook")
        .expect("serving Certificate");
    assert_eq!(cert.data["spec"]["secretName"], "palisade-webhook-tls");
    assert_eq!(
        cert.data["spec"]["dnsNames"],
        serde_json::json!([
            "palisade-webhook.palisade-system.svc",
            "palisade-webhook.palisade-system.svc.cluster.local"
        ])
    );
    // The chart's own private CA: self-signed issuer → CA certificate → CA issuer → serving cert.
    assert_eq!(
        cert.data["spec"]["issuerRef"]["name"],
        "palisade-webhook-ca"
    );
    let ca_issuer = r
        .cert_manager("Issuer", "palisade-webhook-ca")
        .expect("CA Issuer");
    assert_eq!(
        ca_issuer.data["spec"]["ca"]["secretName"],
        "palisade-webhook-ca"
    );
    let ca = r
        .cert_manager("Certificate", "palisade-webhook-ca")
        .expect("CA Certificate");
    assert_eq!(ca.data["spec"]["isCA"], true);
    assert_eq!(ca.data["spec"]["issuerRef"]["name"], "palisade-selfsigned");
    assert!(r.cert_manager("Issuer", "palisade-selfsigned").is_some());
    assert_eq!(r.cert_manager.len(), 4);

    let annotations = r.webhook().metadata.annotations.clone().unwrap();
    assert_eq!(
        annotations["cert-manager.io/inject-ca-from"],
        "palisade-system/palisade-webhook"
    );

    // The Secret cert-manager writes is what the operator reads at /tls, as a directory (no
    // subPath) so renewals reach the running pod.
    let pod = r.deployment().spec.template.spec.clone().unwrap();
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| {
            v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some("palisade-webhook-tls")
        })
        .expect("a volume from the certificate Secret");
    let mount = r
        .operator()
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == volume.name)
        .expect("the certificate volume is mounted");
    assert_eq!(mount.mount_path, "/tls");
    assert_eq!(mount.read_only, Some(true));
    assert!(mount.sub_path.is_none());

    // Bring your own issuer: only the serving Certificate, signed by it.
    let own = render(&[
        "webhook.tls.mode=certManager",
        "webhook.tls.certManager.issuerRef.name=corp-ca",
        "webhook.tls.certManager.issuerRef.kind=ClusterIssuer",
    ]);
    assert_eq!(own.cert_manager.len(), 1);
    let cert = own.cert_manager("Certificate", "palisade-webhook").unwrap();
    assert_eq!(cert.data["spec"]["issuerRef"]["name"], "corp-ca");
    assert_eq!(cert.data["spec"]["issuerRef"]["kind"], "ClusterIssuer");

    // selfManaged mounts nothing: the operator reads and writes its Secret through the API.
    let default = render(&[]);
    assert!(default.operator().volume_mounts.is_none());
}

#[test]
fn helm_test_checks_readiness_and_webhook_tls() {
    let r = render(&[]);
    let pod = &r.test_pods[0];
    let annotations = pod.metadata.annotations.clone().unwrap();
    assert_eq!(annotations["helm.sh/hook"], "test");
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    let script = spec.containers[0].args.as_ref().unwrap().join(" ");
    assert!(
        script.contains("http://palisade-admin.palisade-system.svc:8080/readyz"),
        "{script}"
    );
    assert!(
        script.contains(
            "--cacert /webhook-tls/ca.crt https://palisade-webhook.palisade-system.svc:443/inject"
        ),
        "{script}"
    );
    // The test pod sees the CA certificate only, never the private key.
    let secret = spec.volumes.as_ref().unwrap()[0].secret.as_ref().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("palisade-webhook-tls"));
    let items: Vec<_> = secret
        .items
        .iter()
        .flatten()
        .map(|i| i.key.as_str())
        .collect();
    assert_eq!(items, ["ca.crt"]);
    let sc = spec.containers[0].security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
}

#[test]
fn invalid_values_are_refused_with_the_key_named() {
    for (set, key) in [
        ("webhook.failurePolicy=Sometimes", "/webhook/failurePolicy"),
        ("webhook.tls.mode=vault", "/webhook/tls/mode"),
        ("webhook.timeoutSeconds=60", "/webhook/timeoutSeconds"),
        ("nativeSidecars=maybe", "/nativeSidecars"),
        ("replicaCount=0", "/replicaCount"),
        ("sidecar.logLevl=debug", "logLevl"),
        ("crds.instal=false", "instal"),
    ] {
        let message = render_error(&[set]);
        assert!(message.contains(key), "{set}: {message}");
    }
}

#[test]
fn chart_version_follows_the_workspace() {
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("charts/palisade/Chart.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(chart["version"], env!("CARGO_PKG_VERSION"));
}

/// Every key in values.yaml has a row in the chart README's table.
#[test]
fn every_value_is_documented() {
    fn leaves(prefix: &str, value: &Value, out: &mut Vec<String>) {
        match value {
            // Maps that hold Kubernetes objects (resources, securityContext …) are documented
            // as one key; maps of our own are walked.
            Value::Object(map) if !map.is_empty() && !PASSTHROUGH.contains(&prefix) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&key, v, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    const PASSTHROUGH: &[&str] = &[
        "resources",
        "sidecar.resources",
        "podSecurityContext",
        "securityContext",
    ];
    let values: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("charts/palisade/values.yaml")).unwrap(),
    )
    .unwrap();
    let readme = std::fs::read_to_string(repo().join("charts/palisade/README.md")).unwrap();
    let mut keys = Vec::new();
    leaves("", &values, &mut keys);
    let missing: Vec<_> = keys
        .iter()
        .filter(|k| !readme.contains(&format!("| `{k}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "charts/palisade/README.md has no row for {missing:?}"
    );
}

/// examples/deployment.yaml opts in and talks to the port examples/databasepolicy.yaml listens on.
#[test]
fn example_deployment_opts_in_and_uses_the_policy_listen_port() {
    let read = |name: &str| std::fs::read_to_string(repo().join("examples").join(name)).unwrap();
    let mut deployments = Vec::new();
    let mut service_accounts = Vec::new();
    let text = read("deployment.yaml");
    for document in serde_yaml::Deserializer::from_str(&text) {
        let doc: Value = serde::Deserialize::deserialize(document).unwrap();
        match doc["kind"].as_str() {
            Some("Deployment") => {
                deployments.push(typed::<Deployment>("examples/deployment.yaml", doc))
            }
            Some("ServiceAccount") => {
                service_accounts.push(typed::<ServiceAccount>("examples/deployment.yaml", doc))
            }
            other => panic!("examples/deployment.yaml: unexpected {other:?}"),
        }
    }
    let policy: Value = serde_yaml::from_str(&read("databasepolicy.yaml")).unwrap();
    let port = policy["spec"]["listen"]["port"]
        .as_i64()
        .unwrap()
        .to_string();
    let selector = policy["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .unwrap()
        .clone();

    assert_eq!(deployments.len(), 1);
    let d = &deployments[0];
    assert_eq!(
        d.metadata.namespace,
        policy["metadata"]["namespace"].as_str().map(String::from)
    );
    let template = &d.spec.template;
    let labels = template.metadata.as_ref().unwrap().labels.clone().unwrap();
    assert_eq!(
        labels.get("palisade.dev/inject").map(String::as_str),
        Some("true")
    );
    for (k, v) in &selector {
        assert_eq!(
            labels.get(k).map(String::as_str),
            v.as_str(),
            "the policy's podSelector matches"
        );
    }
    let pod = template.spec.as_ref().unwrap();
    let sa = pod.service_account_name.clone().unwrap();
    assert!(
        service_accounts
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some(&sa)),
        "the ServiceAccount {sa} the pods run as is in the file"
    );
    let env: BTreeMap<_, _> = pod.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.clone().unwrap_or_default()))
        .collect();
    assert_eq!(env.get("PGHOST").map(String::as_str), Some("localhost"));
    assert_eq!(env.get("PGPORT"), Some(&port));
    let databases = policy["spec"]["database"]["databases"].as_array().unwrap();
    assert!(
        databases
            .iter()
            .any(|d| d.as_str() == env.get("PGDATABASE").map(String::as_str))
    );
}
