//! The injection itself: a pure function from a Pod and the policies that select it to the
//! JSON patch the API server applies. No I/O here, so every pod shape is covered by golden
//! files (`operator/tests/golden/`) and the handler stays a thin adapter.
//!
//! The layout written here is a contract read by the controller (annotations) and by the
//! sidecar (paths, env): see `/work/notes/operator-contract.md`, "Injected pod layout".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, Pod, Probe, ResourceRequirements, SeccompProfile,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use palisade_policy::RenderedPolicy;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Name of the injected container (native sidecar or regular container alike).
pub const SIDECAR_NAME: &str = "palisade-sidecar";
// The pod label and annotations are shared with the controller, which reads what the webhook
// writes: one definition for both.
pub use crate::names::{
    ANNOTATION_INJECTED, ANNOTATION_POLICIES, ANNOTATION_SECRETS, ANNOTATION_SKIPPED, INJECT_LABEL,
};
/// Which container `kubectl logs`/`exec` pick by default; set when the sidecar goes first in
/// `containers`, or kubectl would default to the sidecar instead of the app.
pub const ANNOTATION_DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

/// Mount root of the policies: one directory per policy (`<dir>/<policy name>/policy.json`).
pub const POLICY_DIR: &str = "/etc/palisade/policies";
/// Mount root of Secrets, laid out as the sidecar reads them (`<dir>/<secret>/<key>`).
pub const SECRETS_DIR: &str = "/etc/palisade/secrets";
/// The sidecar's admin port (probes, metrics) on the pod IP, so the kubelet reaches it.
pub const ADMIN_PORT: u16 = 9187;
pub const ADMIN_PORT_NAME: &str = "palisade-admin";
/// The sidecar image's non-root user and group.
pub const SIDECAR_UID: i64 = 65532;
/// Prefix of the policy volumes (the ConfigMap the controller renders each policy into is
/// [`crate::names::config_map_name`]).
const POLICY_VOLUME_PREFIX: &str = "palisade-policy-";
const SECRET_VOLUME_PREFIX: &str = "palisade-secret-";
const FILES_VOLUME_PREFIX: &str = "palisade-files-";
/// Longest volume name Kubernetes accepts (a DNS-1123 label).
const MAX_VOLUME_NAME: usize = 63;

/// One DatabasePolicy that selects the pod, reduced to what the injection needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedPolicy {
    pub name: String,
    /// `sha256:…` of the rendered document, as the controller writes it in the policy's status.
    pub policy_hash: String,
    /// The sidecar's port on the pod's loopback for this policy.
    pub listen_port: u16,
    /// Every Secret the policy and its MaskingRules reference.
    pub secrets: BTreeSet<String>,
    /// Directories of the policy's audit `file` sinks: writable (emptyDir) in a sidecar whose
    /// root filesystem is read-only.
    pub file_sink_dirs: BTreeSet<String>,
}

impl MatchedPolicy {
    pub fn from_rendered(doc: &RenderedPolicy) -> Self {
        MatchedPolicy {
            name: doc.name.clone(),
            policy_hash: doc.policy_hash.clone(),
            listen_port: doc.spec.listen.port,
            secrets: doc.referenced_secrets(),
            file_sink_dirs: doc
                .spec
                .audit
                .sinks
                .iter()
                .filter_map(|sink| sink.file.as_ref())
                .filter_map(|file| writable_dir(&file.path))
                .collect(),
        }
    }
}

/// The directory an audit file goes to, when an emptyDir can be mounted there: an absolute
/// path below the root, outside the sidecar's read-only policy and secret mounts.
fn writable_dir(path: &str) -> Option<String> {
    let parent = std::path::Path::new(path).parent()?.to_str()?;
    let inside = |root: &str| parent == root || parent.starts_with(&format!("{root}/"));
    (parent.starts_with('/')
        && parent != "/"
        && !parent.contains("/../")
        && !parent.ends_with("/..")
        && !inside(POLICY_DIR)
        && !inside(SECRETS_DIR))
    .then(|| parent.trim_end_matches('/').to_string())
}

/// The rendered policies of `namespace` whose `podSelector` matches `labels`, sorted by name.
pub fn matching_policies<'a>(
    namespace: &str,
    labels: &BTreeMap<String, String>,
    policies: impl IntoIterator<Item = &'a RenderedPolicy>,
) -> Vec<MatchedPolicy> {
    let mut out: Vec<MatchedPolicy> = policies
        .into_iter()
        .filter(|p| p.namespace == namespace && p.spec.pod_selector.matches(labels))
        .map(MatchedPolicy::from_rendered)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// How sidecars look; fixed for the operator's lifetime (from `WebhookArgs`).
#[derive(Clone, Debug, PartialEq)]
pub struct InjectConfig {
    /// Written to `palisade.dev/injected`.
    pub version: String,
    pub image: String,
    pub image_pull_policy: String,
    pub resources: ResourceRequirements,
    pub log_level: String,
    /// Init container with `restartPolicy: Always` (Kubernetes ≥ 1.29) instead of a regular
    /// container.
    pub native_sidecars: bool,
}

/// Why a pod did not get a sidecar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// No `palisade.dev/inject: "true"` label (the webhook's objectSelector should have
    /// filtered it; checked again so a misconfigured selector cannot inject everywhere).
    NotOptedIn,
    /// The pod already has the sidecar: a re-invocation (`reinvocationPolicy`) or a spec copied
    /// from an injected pod.
    AlreadyInjected,
    /// hostNetwork pods share the node's loopback, so listen ports would collide across pods.
    HostNetwork,
    NoMatchingPolicy,
    /// Two or more matching policies listen on the same port.
    SamePort {
        port: u16,
        policies: Vec<String>,
    },
    /// A container of the pod already declares a port the sidecar needs.
    PortInUse {
        port: u16,
        container: String,
        /// The policy that listens there; `None` for the sidecar's admin port.
        policy: Option<String>,
    },
    /// A policy's listen port is the sidecar's own admin port.
    AdminPort {
        policy: String,
    },
    /// The pod already has a volume named like one the sidecar needs.
    VolumeExists {
        volume: String,
    },
    /// The webhook could not work out what to inject (policy cache not synced, a matching
    /// policy that does not render, …). Set by the handler, not by [`inject`].
    Failed {
        message: String,
    },
}

impl SkipReason {
    /// Whether the reason is recorded on the pod (`palisade.dev/injection-skipped`). Pods that
    /// did not opt in and pods that already have the sidecar are not news.
    pub fn annotates(&self) -> bool {
        !matches!(self, SkipReason::NotOptedIn | SkipReason::AlreadyInjected)
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::NotOptedIn => {
                write!(f, "pod does not have the label {INJECT_LABEL}: \"true\"")
            }
            SkipReason::AlreadyInjected => {
                write!(f, "pod already has the {SIDECAR_NAME} container")
            }
            SkipReason::HostNetwork => write!(
                f,
                "hostNetwork pods share the node's loopback, so sidecar listen ports would collide across pods"
            ),
            SkipReason::NoMatchingPolicy => write!(
                f,
                "no DatabasePolicy in the namespace selects this pod's labels"
            ),
            SkipReason::SamePort { port, policies } => write!(
                f,
                "DatabasePolicies {} listen on the same port {port}; give each its own spec.listen.port",
                and_list(policies)
            ),
            SkipReason::PortInUse {
                port,
                container,
                policy: Some(policy),
            } => write!(
                f,
                "container {container} already uses port {port}, which DatabasePolicy {policy} listens on"
            ),
            SkipReason::PortInUse {
                port,
                container,
                policy: None,
            } => write!(
                f,
                "container {container} already uses port {port}, the sidecar's admin port"
            ),
            SkipReason::AdminPort { policy } => write!(
                f,
                "DatabasePolicy {policy} listens on port {ADMIN_PORT}, the sidecar's admin port; give it another spec.listen.port"
            ),
            SkipReason::VolumeExists { volume } => {
                write!(f, "pod already has a volume named {volume}")
            }
            SkipReason::Failed { message } => write!(f, "injection failed: {message}"),
        }
    }
}

/// What the webhook answers for one pod.
#[derive(Clone, Debug, PartialEq)]
pub enum InjectOutcome {
    /// Add the sidecar. `warnings` go back to the client as admission warnings.
    Patch { patch: Patch, warnings: Vec<String> },
    /// Leave the pod without a sidecar. `patch` records the reason on the pod when
    /// [`SkipReason::annotates`], and is empty otherwise.
    Skip { reason: SkipReason, patch: Patch },
}

impl InjectOutcome {
    pub fn patch(&self) -> &Patch {
        match self {
            InjectOutcome::Patch { patch, .. } | InjectOutcome::Skip { patch, .. } => patch,
        }
    }
}

/// Decides and builds the injection for `pod`, given the policies that select it.
/// `workload`: the pod's owning workload (`Deployment/checkout`), resolved by the caller
/// through the owner chain ([`super::workload`]).
pub fn inject(
    pod: &Pod,
    policies: &[MatchedPolicy],
    cfg: &InjectConfig,
    workload: Option<&str>,
) -> InjectOutcome {
    if !opted_in(pod) {
        return skip(pod, SkipReason::NotOptedIn);
    }
    if has_sidecar(pod) {
        return skip(pod, SkipReason::AlreadyInjected);
    }
    let spec = pod.spec.clone().unwrap_or_default();
    if spec.host_network == Some(true) {
        return skip(pod, SkipReason::HostNetwork);
    }
    // One entry per policy name, in name order, whatever the caller passed.
    let policies: Vec<&MatchedPolicy> = policies
        .iter()
        .map(|p| (p.name.as_str(), p))
        .collect::<BTreeMap<_, _>>()
        .into_values()
        .collect();
    if policies.is_empty() {
        return skip(pod, SkipReason::NoMatchingPolicy);
    }
    if let Some(reason) = port_conflict(pod, &policies) {
        return skip(pod, reason);
    }
    let secrets: BTreeSet<&str> = policies
        .iter()
        .flat_map(|p| p.secrets.iter().map(String::as_str))
        .collect();

    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for p in &policies {
        let volume = volume_name(POLICY_VOLUME_PREFIX, &p.name);
        volumes.push(Volume {
            name: volume.clone(),
            config_map: Some(ConfigMapVolumeSource {
                name: crate::names::config_map_name(&p.name),
                ..Default::default()
            }),
            ..Default::default()
        });
        // A directory mount, never subPath: subPath mounts do not see ConfigMap updates, and
        // the sidecar reloads the policy when the kubelet swaps the directory's contents.
        mounts.push(VolumeMount {
            name: volume,
            mount_path: format!("{POLICY_DIR}/{}", p.name),
            read_only: Some(true),
            ..Default::default()
        });
    }
    for s in &secrets {
        let volume = volume_name(SECRET_VOLUME_PREFIX, s);
        volumes.push(Volume {
            name: volume.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some((*s).to_string()),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: volume,
            mount_path: format!("{SECRETS_DIR}/{s}"),
            read_only: Some(true),
            ..Default::default()
        });
    }
    let dirs: BTreeSet<&str> = policies
        .iter()
        .flat_map(|p| p.file_sink_dirs.iter().map(String::as_str))
        .collect();
    for dir in &dirs {
        let volume = dir_volume_name(dir);
        volumes.push(Volume {
            name: volume.clone(),
            empty_dir: Some(Default::default()),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: volume,
            mount_path: (*dir).to_string(),
            ..Default::default()
        });
    }
    let existing: BTreeSet<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    if let Some(v) = volumes.iter().find(|v| existing.contains(v.name.as_str())) {
        return skip(
            pod,
            SkipReason::VolumeExists {
                volume: v.name.clone(),
            },
        );
    }

    let identity = PodIdentity {
        workload,
        labels: super::workload::identity_labels(pod),
    };
    let container = sidecar_container(mounts, cfg, &identity);
    let mut ops = Vec::new();

    let policies_annotation = policies
        .iter()
        .map(|p| format!("{}={}", p.name, p.policy_hash))
        .collect::<Vec<_>>()
        .join(",");
    let secrets_annotation = secrets.iter().copied().collect::<Vec<_>>().join(",");
    let mut annotations = vec![
        (ANNOTATION_INJECTED, cfg.version.clone()),
        (ANNOTATION_POLICIES, policies_annotation),
        (ANNOTATION_SECRETS, secrets_annotation),
    ];
    let mut warnings = Vec::new();
    if !cfg.native_sidecars {
        if let Some(first) = spec.containers.first()
            && annotation(pod, ANNOTATION_DEFAULT_CONTAINER).is_none()
        {
            annotations.push((ANNOTATION_DEFAULT_CONTAINER, first.name.clone()));
        }
        if let Some(init) = spec.init_containers.as_ref().and_then(|c| c.first()) {
            warnings.push(format!(
                "{SIDECAR_NAME} runs as a regular container: init containers (such as {}) run before it and cannot reach databases through it",
                init.name
            ));
        }
        if matches!(spec.restart_policy.as_deref(), Some("Never" | "OnFailure")) {
            warnings.push(format!(
                "{SIDECAR_NAME} runs as a regular container: it keeps this pod (restartPolicy {}) running after the app exits; native sidecars (Kubernetes 1.29+) do not",
                spec.restart_policy.as_deref().unwrap_or_default()
            ));
        }
    }
    ops.extend(annotation_ops(pod, &annotations, &[ANNOTATION_SKIPPED]));

    // JSON patch `add` on `/spec/volumes/-` fails when the array is absent: create it then.
    if spec.volumes.is_none() {
        ops.push(add(&["spec", "volumes"], to_value(&volumes)));
    } else {
        for v in &volumes {
            ops.push(add(&["spec", "volumes", "-"], to_value(v)));
        }
    }

    // Native sidecar first among init containers, so init containers after it (migrations,
    // warm-ups) can already reach the database through it; the startup probe holds them until
    // the sidecar is ready. A regular sidecar goes first in `containers`, which the kubelet
    // starts in order.
    let (list, present) = if cfg.native_sidecars {
        ("initContainers", spec.init_containers.is_some())
    } else {
        ("containers", !spec.containers.is_empty())
    };
    if present {
        ops.push(add(&["spec", list, "0"], to_value(&container)));
    } else {
        ops.push(add(
            &["spec", list],
            Value::Array(vec![to_value(&container)]),
        ));
    }

    InjectOutcome::Patch {
        patch: Patch(ops),
        warnings,
    }
}

/// The outcome for a pod the webhook leaves alone: the reason annotated when it is news.
pub fn skip(pod: &Pod, reason: SkipReason) -> InjectOutcome {
    let patch = if reason.annotates() {
        Patch(annotation_ops(
            pod,
            &[(ANNOTATION_SKIPPED, one_line(&reason.to_string()))],
            &[],
        ))
    } else {
        Patch(Vec::new())
    };
    InjectOutcome::Skip { reason, patch }
}

/// The pod's name for messages. Pods created by controllers carry only `generateName` at
/// admission time; the API server appends the random suffix after the webhooks ran.
pub fn pod_display_name(pod: &Pod) -> String {
    match (&pod.metadata.name, &pod.metadata.generate_name) {
        (Some(name), _) if !name.is_empty() => name.clone(),
        (_, Some(prefix)) if !prefix.is_empty() => format!("{prefix}<generated>"),
        _ => "<unnamed>".to_string(),
    }
}

/// Whether the pod carries the opt-in label with the value `"true"`.
pub fn opted_in(pod: &Pod) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(INJECT_LABEL))
        .is_some_and(|v| v == "true")
}

fn has_sidecar(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .any(|c| c.name == SIDECAR_NAME)
    })
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a String> {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(key))
}

fn port_conflict(pod: &Pod, policies: &[&MatchedPolicy]) -> Option<SkipReason> {
    let mut by_port: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for p in policies {
        by_port
            .entry(p.listen_port)
            .or_default()
            .push(p.name.clone());
    }
    if let Some((port, names)) = by_port.iter().find(|(_, names)| names.len() > 1) {
        return Some(SkipReason::SamePort {
            port: *port,
            policies: names.clone(),
        });
    }
    if let Some(name) = by_port.get(&ADMIN_PORT).and_then(|names| names.first()) {
        return Some(SkipReason::AdminPort {
            policy: name.clone(),
        });
    }
    // Every container shares the pod's network namespace, init containers included (they run
    // while a native sidecar already listens).
    let spec = pod.spec.as_ref()?;
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
    {
        for port in c.ports.iter().flatten() {
            let Ok(n) = u16::try_from(port.container_port) else {
                continue;
            };
            if n == ADMIN_PORT {
                return Some(SkipReason::PortInUse {
                    port: n,
                    container: c.name.clone(),
                    policy: None,
                });
            }
            if let Some(names) = by_port.get(&n) {
                return Some(SkipReason::PortInUse {
                    port: n,
                    container: c.name.clone(),
                    policy: names.first().cloned(),
                });
            }
        }
    }
    None
}

/// What the sidecar is told about its pod beyond the downward API's fields.
struct PodIdentity<'a> {
    workload: Option<&'a str>,
    /// Selected labels as `key=value,…`, read at admission.
    labels: Option<String>,
}

fn sidecar_container(
    mounts: Vec<VolumeMount>,
    cfg: &InjectConfig,
    identity: &PodIdentity<'_>,
) -> Container {
    let field = |path: &str| EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            field_path: path.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let from_field = |name: &str, path: &str| EnvVar {
        name: name.to_string(),
        value_from: Some(field(path)),
        ..Default::default()
    };
    let plain = |name: &str, value: String| EnvVar {
        name: name.to_string(),
        value: Some(value),
        ..Default::default()
    };
    let http_probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::Int(i32::from(ADMIN_PORT)),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(1),
        failure_threshold: Some(failures),
        ..Default::default()
    };
    Container {
        name: SIDECAR_NAME.to_string(),
        image: Some(cfg.image.clone()),
        image_pull_policy: Some(cfg.image_pull_policy.clone()),
        args: Some(
            [
                "run",
                "--policy-dir",
                POLICY_DIR,
                "--secrets-dir",
                SECRETS_DIR,
            ]
            .map(String::from)
            .to_vec(),
        ),
        env: Some(
            [
                from_field("PALISADE_POD_NAME", "metadata.name"),
                from_field("PALISADE_POD_NAMESPACE", "metadata.namespace"),
                from_field("PALISADE_POD_SERVICE_ACCOUNT", "spec.serviceAccountName"),
                // Dependent variables expand only from variables defined earlier in the list.
                plain(
                    "PALISADE_SERVICE_ACCOUNT",
                    "$(PALISADE_POD_NAMESPACE)/$(PALISADE_POD_SERVICE_ACCOUNT)".to_string(),
                ),
                plain("PALISADE_LOG_FORMAT", "json".to_string()),
                plain("PALISADE_LOG_LEVEL", cfg.log_level.clone()),
                // On the pod IP, not loopback: kubelet probes come from the node.
                plain("PALISADE_ADMIN_ADDRESS", format!("0.0.0.0:{ADMIN_PORT}")),
            ]
            .into_iter()
            .chain(
                identity
                    .workload
                    .map(|w| plain("PALISADE_WORKLOAD", w.to_string())),
            )
            .chain(
                identity
                    .labels
                    .clone()
                    .map(|l| plain("PALISADE_POD_LABELS", l)),
            )
            .collect(),
        ),
        ports: Some(vec![ContainerPort {
            name: Some(ADMIN_PORT_NAME.to_string()),
            container_port: i32::from(ADMIN_PORT),
            protocol: Some("TCP".to_string()),
            ..Default::default()
        }]),
        resources: Some(cfg.resources.clone()),
        // Up to 60 s for the first policy load; until then nothing after the sidecar starts.
        startup_probe: Some(http_probe("/readyz", 1, 60)),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(SIDECAR_UID),
            run_as_group: Some(SIDECAR_UID),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Default::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        // What makes an init container a native sidecar; regular containers may not carry it.
        restart_policy: cfg.native_sidecars.then(|| "Always".to_string()),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

/// `<prefix><name>` when that is a valid volume name (a DNS-1123 label); otherwise the name
/// with dots replaced, cut to fit, and a hash of the full name appended so two long names
/// sharing a prefix still get distinct volumes. Object names may be 253 characters with dots.
pub fn volume_name(prefix: &str, name: &str) -> String {
    let plain = format!("{prefix}{name}");
    if plain.len() <= MAX_VOLUME_NAME && !name.contains('.') {
        return plain;
    }
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    let suffix = &digest[..10];
    let room = MAX_VOLUME_NAME - prefix.len() - 1 - suffix.len();
    let cut: String = name
        .chars()
        .map(|c| if c == '.' { '-' } else { c })
        .take(room)
        .collect();
    format!("{prefix}{}-{suffix}", cut.trim_end_matches('-'))
}

/// `palisade-files-<dir>` for the emptyDir behind an audit file's directory, e.g.
/// `palisade-files-var-log-palisade` (hashed like [`volume_name`] when the path needs changing
/// beyond `/` → `-`), so another container (a log shipper) can mount the same volume by name.
pub fn dir_volume_name(dir: &str) -> String {
    let plain = dir.trim_matches('/').replace('/', "-");
    let clean = !plain.is_empty()
        && plain
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !plain.contains("--");
    if clean {
        return volume_name(FILES_VOLUME_PREFIX, &plain);
    }
    let sanitized: String = plain
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let digest = hex::encode(Sha256::digest(dir.as_bytes()));
    let suffix = &digest[..10];
    let room = MAX_VOLUME_NAME - FILES_VOLUME_PREFIX.len() - 1 - suffix.len();
    let cut: String = sanitized.trim_matches('-').chars().take(room).collect();
    let cut = cut.trim_end_matches('-');
    if cut.is_empty() {
        format!("{FILES_VOLUME_PREFIX}{suffix}")
    } else {
        format!("{FILES_VOLUME_PREFIX}{cut}-{suffix}")
    }
}

/// Sets `annotations` and removes `remove` on the pod, creating the map when it is absent
/// (an `add` below a missing `/metadata/annotations` fails).
fn annotation_ops(pod: &Pod, set: &[(&str, String)], remove: &[&str]) -> Vec<PatchOperation> {
    match &pod.metadata.annotations {
        None => {
            if set.is_empty() {
                return Vec::new();
            }
            let map: serde_json::Map<String, Value> = set
                .iter()
                .map(|(k, v)| ((*k).to_string(), Value::String(v.clone())))
                .collect();
            vec![add(&["metadata", "annotations"], Value::Object(map))]
        }
        Some(existing) => {
            let mut ops: Vec<PatchOperation> = remove
                .iter()
                .filter(|k| existing.contains_key(**k))
                .map(|k| {
                    PatchOperation::Remove(RemoveOperation {
                        path: pointer(&["metadata", "annotations", k]),
                    })
                })
                .collect();
            // `add` on an existing member replaces it, so a stale value is overwritten.
            ops.extend(
                set.iter()
                    .map(|(k, v)| add(&["metadata", "annotations", k], Value::String(v.clone()))),
            );
            ops
        }
    }
}

/// A JSON pointer from unescaped tokens: `palisade.dev/injected` becomes
/// `palisade.dev~1injected`.
fn pointer(tokens: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().copied())
}

fn add(tokens: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: pointer(tokens),
        value,
    })
}

/// k8s-openapi types serialise to JSON objects without failing (string keys, no floats that
/// could be NaN); `Null` would only show up as an API-server rejection, never a panic.
fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Annotation values and warnings are single lines.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_fit_a_dns_label() {
        assert_eq!(
            volume_name(POLICY_VOLUME_PREFIX, "orders-db"),
            "palisade-policy-orders-db"
        );
        let dotted = volume_name(SECRET_VOLUME_PREFIX, "pg.ca");
        assert!(dotted.starts_with("palisade-secret-pg-ca-"), "{dotted}");
        let long = "a".repeat(200);
        let a = volume_name(POLICY_VOLUME_PREFIX, &long);
        let b = volume_name(POLICY_VOLUME_PREFIX, &format!("{long}b"));
        assert!(a.len() <= 63 && b.len() <= 63);
        assert_ne!(a, b);
        for v in [&dotted, &a, &b] {
            assert!(
                v.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            );
            assert!(!v.ends_with('-'));
        }
    }

    #[test]
    fn audit_file_directories_become_named_volumes() {
        assert_eq!(
            writable_dir("/var/log/palisade/audit.jsonl").as_deref(),
            Some("/var/log/palisade")
        );
        for refused in [
            "/audit.jsonl",
            "audit.jsonl",
            "/etc/palisade/secrets/x/audit.jsonl",
            "/etc/palisade/policies/audit.jsonl",
            "/var/../audit.jsonl",
        ] {
            assert_eq!(writable_dir(refused), None, "{refused}");
        }
        assert_eq!(
            dir_volume_name("/var/log/palisade"),
            "palisade-files-var-log-palisade"
        );
        let odd = dir_volume_name("/data/Audit_Logs");
        assert!(odd.starts_with("palisade-files-data-audit-logs-"), "{odd}");
        assert_ne!(odd, dir_volume_name("/data/audit-logs"));
        let long = dir_volume_name(&format!("/{}", "x/".repeat(60)));
        assert!(long.len() <= 63, "{long}");
        for v in [&odd, &long] {
            assert!(
                v.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !v.ends_with('-'),
                "{v}"
            );
        }
    }

    #[test]
    fn annotation_keys_are_escaped_in_pointers() {
        let p = pointer(&["metadata", "annotations", ANNOTATION_INJECTED]);
        assert_eq!(p.as_str(), "/metadata/annotations/palisade.dev~1injected");
    }

    fn opted_in_pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "labels": {INJECT_LABEL: "true"}},
            "spec": {"containers": [{"name": "app"}]}
        }))
        .unwrap()
    }

    fn policy(name: &str, port: u16) -> MatchedPolicy {
        MatchedPolicy {
            name: name.into(),
            policy_hash: "sha256:00".into(),
            listen_port: port,
            secrets: BTreeSet::new(),
            file_sink_dirs: BTreeSet::new(),
        }
    }

    fn config() -> InjectConfig {
        InjectConfig {
            version: "0".into(),
            image: "i".into(),
            image_pull_policy: "IfNotPresent".into(),
            resources: ResourceRequirements::default(),
            log_level: "info".into(),
            native_sidecars: true,
        }
    }

    #[test]
    fn a_policy_on_the_admin_port_is_refused_by_name() {
        let outcome = inject(
            &opted_in_pod(),
            &[policy("metrics-db", ADMIN_PORT)],
            &config(),
            None,
        );
        let InjectOutcome::Skip { reason, .. } = outcome else {
            panic!("injected")
        };
        assert_eq!(
            reason.to_string(),
            "DatabasePolicy metrics-db listens on port 9187, the sidecar's admin port; give it another spec.listen.port"
        );
    }

    #[test]
    fn three_policies_on_one_port_are_listed() {
        let policies = [policy("c", 5432), policy("a", 5432), policy("b", 5432)];
        let InjectOutcome::Skip { reason, patch } =
            inject(&opted_in_pod(), &policies, &config(), None)
        else {
            panic!("injected")
        };
        assert!(
            reason
                .to_string()
                .starts_with("DatabasePolicies a, b and c listen on the same port 5432"),
            "{reason}"
        );
        assert_eq!(patch.0.len(), 1);
    }

    #[test]
    fn a_volume_name_already_taken_is_a_skip() {
        let mut pod = opted_in_pod();
        pod.spec.as_mut().unwrap().volumes = Some(vec![Volume {
            name: "palisade-policy-orders-db".into(),
            ..Default::default()
        }]);
        let InjectOutcome::Skip { reason, .. } =
            inject(&pod, &[policy("orders-db", 5432)], &config(), None)
        else {
            panic!("injected")
        };
        assert_eq!(
            reason,
            SkipReason::VolumeExists {
                volume: "palisade-policy-orders-db".into()
            }
        );
    }

    #[test]
    fn generate_name_pods_are_named_in_messages() {
        let mut pod = Pod::default();
        assert_eq!(pod_display_name(&pod), "<unnamed>");
        pod.metadata.generate_name = Some("web-7d9f8c-".into());
        assert_eq!(pod_display_name(&pod), "web-7d9f8c-<generated>");
        pod.metadata.name = Some("web-0".into());
        assert_eq!(pod_display_name(&pod), "web-0");
    }
}
