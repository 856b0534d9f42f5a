//! Opted-in pods (`palisade.dev/inject=true`): what the webhook wrote on them, and what the
//! operator tells people about them — `InjectionSkipped` (the webhook chose not to inject),
//! `NotInjected` (the webhook was down: `failurePolicy: Ignore` let the pod start bare) and
//! `RestartNeeded` (the sidecar cannot enforce current policy without a restart).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use palisade_policy::DatabasePolicy;
use serde_json::json;
use tracing::{info, instrument};

use crate::controller::Context;
use crate::names::{
    ANNOTATION_INJECTED, ANNOTATION_POLICIES, ANNOTATION_RESTART_NEEDED, ANNOTATION_SECRETS,
    ANNOTATION_SKIPPED, INJECT_LABEL,
};
use crate::{Result, kube_err};

/// `name=hash,…` from `palisade.dev/policies`. Entries without `=` are kept with an empty
/// hash (an injector that recorded only names); blanks are skipped.
pub fn parse_policies(annotation: &str) -> BTreeMap<String, String> {
    annotation
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| match e.split_once('=') {
            Some((name, hash)) => (name.trim().to_string(), hash.trim().to_string()),
            None => (e.to_string(), String::new()),
        })
        .collect()
}

/// `a,b` from `palisade.dev/secrets`.
pub fn parse_secrets(annotation: &str) -> BTreeSet<String> {
    annotation
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether the pod opted in with `palisade.dev/inject: "true"`.
pub fn opted_in(pod: &Pod) -> bool {
    pod.labels().get(INJECT_LABEL).map(String::as_str) == Some("true")
}

/// Whether the pod is going away or done, so nothing about it is worth reporting.
pub fn finished(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
        || matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// The policies the pod's sidecar enforces, by name, with the hash it was injected with.
pub fn injected_policies(pod: &Pod) -> BTreeMap<String, String> {
    pod.annotations()
        .get(ANNOTATION_POLICIES)
        .map(|a| parse_policies(a))
        .unwrap_or_default()
}

/// The service account the pod runs as (`default` when unset).
pub fn service_account(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// What the operator knows of one policy in the pod's namespace, for [`assess`].
#[derive(Clone, Debug)]
pub struct PolicyView {
    pub name: String,
    pub selects: bool,
    /// The current rendered hash and referenced Secrets, once rendered.
    pub current: Option<(String, BTreeSet<String>)>,
}

/// What the operator should say about an opted-in pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Assessment {
    /// The webhook recorded why it did not inject the pod.
    Skipped(String),
    /// Neither injected nor skipped: the webhook did not see the pod.
    NotInjected,
    /// Injected; the reasons it must restart (empty: it enforces current policy).
    Injected { restart_reasons: Vec<String> },
}

/// Assesses an opted-in pod against the policies of its namespace.
pub fn assess(pod: &Pod, policies: &[PolicyView]) -> Assessment {
    let annotations = pod.annotations();
    if let Some(reason) = annotations.get(ANNOTATION_SKIPPED) {
        return Assessment::Skipped(reason.clone());
    }
    if !annotations.contains_key(ANNOTATION_INJECTED) {
        return Assessment::NotInjected;
    }
    let injected = injected_policies(pod);
    let mounted = annotations
        .get(ANNOTATION_SECRETS)
        .map(|a| parse_secrets(a))
        .unwrap_or_default();
    let mut restart_reasons = Vec::new();
    for policy in policies.iter().filter(|p| p.selects) {
        let Some((hash, secrets)) = &policy.current else {
            continue;
        };
        match injected.get(&policy.name) {
            None => restart_reasons.push(format!(
                "DatabasePolicy {} selects this pod but its sidecar was injected without it",
                policy.name
            )),
            // A ConfigMap mounted as a directory updates in place; only Secrets the pod
            // never mounted need a new pod.
            Some(injected_hash) if injected_hash != hash => {
                let unmounted: Vec<&str> =
                    secrets.difference(&mounted).map(String::as_str).collect();
                if !unmounted.is_empty() {
                    restart_reasons.push(format!(
                        "DatabasePolicy {} now references Secret(s) {} that this pod does not mount",
                        policy.name,
                        unmounted.join(", ")
                    ));
                }
            }
            Some(_) => {}
        }
    }
    Assessment::Injected { restart_reasons }
}

/// Reconciles one opted-in pod: publishes the Event its state calls for (once per pod and
/// reason) and keeps `palisade.dev/restart-needed` current.
#[instrument(skip_all, fields(pod = %pod.name_any(), namespace = pod.namespace().unwrap_or_default()))]
pub async fn reconcile_pod(pod: Arc<Pod>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_pod_inner(&pod, &ctx).await;
    ctx.metrics
        .observe("Pod", started.elapsed(), result.as_ref().err());
    result
}

async fn reconcile_pod_inner(pod: &Pod, ctx: &Context) -> Result<Action> {
    if !opted_in(pod) || finished(pod) {
        return Ok(Action::await_change());
    }
    let namespace = pod.namespace().unwrap_or_default();
    let labels = pod.labels();
    let policies: Vec<PolicyView> = ctx
        .policies
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace.as_str()))
        .map(|p| PolicyView {
            name: p.name_any(),
            selects: p.spec.pod_selector.matches(labels),
            current: ctx.rendered_secrets(&p),
        })
        .collect();
    let uid = pod.uid().unwrap_or_default();
    match assess(pod, &policies) {
        Assessment::Skipped(reason) => {
            let note = format!("the webhook did not inject the sidecar: {reason}");
            ctx.publish_once(&uid, "InjectionSkipped", pod, true, note)
                .await?;
        }
        Assessment::NotInjected => {
            let note = "opted in (palisade.dev/inject=true) but runs without the sidecar: the webhook was unavailable when the pod was created; delete the pod so it is recreated with the sidecar".to_string();
            ctx.publish_once(&uid, "NotInjected", pod, true, note)
                .await?;
        }
        Assessment::Injected { restart_reasons } => {
            let wanted = (!restart_reasons.is_empty()).then(|| restart_reasons.join("; "));
            let current = pod.annotations().get(ANNOTATION_RESTART_NEEDED);
            if current != wanted.as_ref() {
                let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
                let patch =
                    json!({"metadata": {"annotations": {ANNOTATION_RESTART_NEEDED: wanted}}});
                pods.patch(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(kube_err(format!(
                    "annotating pod {namespace}/{}",
                    pod.name_any()
                )))?;
                if let Some(reason) = wanted {
                    info!(%reason, "pod needs a restart");
                    let event = Event {
                        type_: EventType::Warning,
                        reason: "RestartNeeded".into(),
                        note: Some(truncate(&reason)),
                        action: "Reconcile".into(),
                        secondary: None,
                    };
                    ctx.publish(&event, &pod.object_ref(&())).await?;
                }
            }
        }
    }
    // The namespace's policies count injected and uninjected pods in their status.
    ctx.recheck_policies(&namespace);
    Ok(Action::requeue(Duration::from_secs(30 * 60)))
}

/// Event notes are limited to 1 kB.
pub fn truncate(note: &str) -> String {
    const MAX: usize = 1000;
    if note.len() <= MAX {
        return note.to_string();
    }
    let mut end = MAX;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &note[..end])
}

/// The opted-in pods of `namespace` that `policy` selects or that enforce it.
pub fn pods_of<'a>(
    policy: &DatabasePolicy,
    pods: &'a [Arc<Pod>],
) -> (Vec<&'a Arc<Pod>>, Vec<&'a Arc<Pod>>) {
    let name = policy.name_any();
    let namespace = policy.namespace();
    let live = pods
        .iter()
        .filter(|p| p.namespace() == namespace && !finished(p));
    let mut enforcing = Vec::new();
    let mut missing = Vec::new();
    for pod in live {
        if injected_policies(pod).contains_key(&name) {
            enforcing.push(pod);
        } else if opted_in(pod) && policy.spec.pod_selector.matches(pod.labels()) {
            missing.push(pod);
        }
    }
    (enforcing, missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::pod;

    #[test]
    fn annotations_parse_leniently() {
        let p = parse_policies("b=sha256:2, a=sha256:1,,legacy");
        assert_eq!(p["a"], "sha256:1");
        assert_eq!(p["b"], "sha256:2");
        assert_eq!(p["legacy"], "");
        assert_eq!(p.len(), 3);
        assert_eq!(
            parse_secrets("pg-ca, creds,")
                .into_iter()
                .collect::<Vec<_>>(),
            ["creds", "pg-ca"]
        );
        assert!(parse_secrets("").is_empty());
    }

    fn view(name: &str, hash: &str, secrets: &[&str]) -> PolicyView {
        PolicyView {
            name: name.into(),
            selects: true,
            current: Some((hash.into(), secrets.iter().map(|s| s.to_string()).collect())),
        }
    }

    #[test]
    fn skipped_and_not_injected_pods() {
        let skipped = pod(
            "a",
            "ml",
            &[("palisade.dev/injection-skipped", "hostNetwork pod")],
        );
        assert_eq!(
            assess(&skipped, &[]),
            Assessment::Skipped("hostNetwork pod".into())
        );
        let bare = pod("b", "ml", &[]);
        assert_eq!(assess(&bare, &[]), Assessment::NotInjected);
    }

    #[test]
    fn restart_needed_only_for_secrets_the_pod_does_not_mount() {
        let injected = pod(
            "a",
            "ml",
            &[
                ("palisade.dev/injected", "0.1.0"),
                ("palisade.dev/policies", "db=sha256:old"),
                ("palisade.dev/secrets", "creds"),
            ],
        );
        // Same hash: nothing to do.
        let ok = assess(&injected, &[view("db", "sha256:old", &["creds"])]);
        assert_eq!(
            ok,
            Assessment::Injected {
                restart_reasons: vec![]
            }
        );
        // New hash, same Secrets: the mounted ConfigMap directory updates in place.
        let ok = assess(&injected, &[view("db", "sha256:new", &["creds"])]);
        assert_eq!(
            ok,
            Assessment::Injected {
                restart_reasons: vec![]
            }
        );
        // New hash and a new Secret: restart.
        let Assessment::Injected { restart_reasons } = assess(
            &injected,
            &[view("db", "sha256:new", &["creds", "mask-key"])],
        ) else {
            panic!("injected pod");
        };
        assert_eq!(
            restart_reasons,
            ["DatabasePolicy db now references Secret(s) mask-key that this pod does not mount"]
        );
        // A policy that selects the pod but was not injected.
        let Assessment::Injected { restart_reasons } = assess(
            &injected,
            &[
                view("db", "sha256:old", &["creds"]),
                view("other", "sha256:x", &[]),
            ],
        ) else {
            panic!("injected pod");
        };
        assert_eq!(restart_reasons.len(), 1);
        assert!(restart_reasons[0].contains("DatabasePolicy other selects this pod"));
        // Policies not yet rendered, or not selecting the pod, say nothing.
        let mut unselected = view("other", "sha256:x", &[]);
        unselected.selects = false;
        let pending = PolicyView {
            current: None,
            ..view("db", "", &[])
        };
        assert_eq!(
            assess(&injected, &[unselected, pending]),
            Assessment::Injected {
                restart_reasons: vec![]
            }
        );
    }

    #[test]
    fn long_notes_are_cut_on_a_char_boundary() {
        let long = "é".repeat(700);
        let cut = truncate(&long);
        assert!(cut.len() <= 1003 && cut.ends_with('…'));
    }
}
