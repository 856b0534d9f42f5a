//! The DatabasePolicy reconciler: renders each policy with the MaskingRules that select it
//! into ConfigMap `palisade-policy-<name>` (server-side apply, owned by the policy), checks
//! the Secrets it references, keeps the namespace's sidecar RBAC, and writes status and
//! Events. Runs only on the leader (see [`crate::leader`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedSender, unbounded};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use palisade_policy::{API_VERSION, DatabasePolicy, MaskingRule, RenderedPolicy};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, instrument, warn};

use crate::metrics::Metrics;
use crate::names::{
    FIELD_MANAGER, INJECT_SELECTOR, LABEL_MANAGED_BY, LABEL_POLICY, MANAGED_SELECTOR, POLICY_KEY,
    config_map_name,
};
use crate::pods::{pods_of, reconcile_pod, truncate};
use crate::render::{render_policy, secret_references};
use crate::status::{Observation, RenderOutcome, desired_status, planned_events};
use crate::{Error, Result, kube_err, rbac};

/// How often a healthy policy is re-checked: Secrets are not watched (the operator may only
/// `get` them), so a deleted Secret shows up within this interval.
pub const RESYNC: Duration = Duration::from_secs(5 * 60);
/// How soon a policy with missing Secrets is re-checked.
pub const RETRY_MISSING: Duration = Duration::from_secs(30);
/// How soon a failed reconcile is retried.
pub const RETRY_ERROR: Duration = Duration::from_secs(15);

/// A rendered policy's hash and the Secrets it references.
pub type RenderedFacts = (String, BTreeSet<String>);

/// What reconciles share.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Every DatabasePolicy (the policy controller's cache).
    pub policies: Store<DatabasePolicy>,
    /// Every MaskingRule, untyped (see [`crate::render`]).
    pub masking_rules: Store<DynamicObject>,
    /// Every opted-in pod (the pod controller's cache).
    pub pods: Store<Pod>,
    /// Asks the pod controller to re-check pods after a policy changed.
    pub pod_trigger: UnboundedSender<ObjectRef<Pod>>,
    /// Asks the policy controller to recount after a pod changed.
    pub policy_trigger: UnboundedSender<ObjectRef<DatabasePolicy>>,
    /// The current hash and Secrets of each rendered policy, for the pod checks.
    rendered: Mutex<HashMap<ObjectRef<DatabasePolicy>, RenderedFacts>>,
    /// (pod uid, reason) of pod Events already published, so each is published once.
    reported: Mutex<HashSet<(String, String)>>,
    /// The time for status conditions (RFC 3339); a parameter so tests are deterministic.
    pub clock: fn() -> String,
}

/// RFC 3339 UTC to the second, as Kubernetes writes condition times.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A poisoned lock only means another reconcile panicked mid-update of a cache that is
/// rebuilt by the next reconcile anyway; keep going with its content.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        policies: Store<DatabasePolicy>,
        masking_rules: Store<DynamicObject>,
        pods: Store<Pod>,
        pod_trigger: UnboundedSender<ObjectRef<Pod>>,
        policy_trigger: UnboundedSender<ObjectRef<DatabasePolicy>>,
    ) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            policies,
            masking_rules,
            pods,
            pod_trigger,
            policy_trigger,
            rendered: Mutex::default(),
            reported: Mutex::default(),
            clock: now,
        }
    }

    /// The current hash and referenced Secrets of `policy`, once it has been rendered.
    pub fn rendered_secrets(&self, policy: &DatabasePolicy) -> Option<RenderedFacts> {
        lock(&self.rendered)
            .get(&ObjectRef::from_obj(policy))
            .cloned()
    }

    fn remember(&self, policy: &DatabasePolicy, rendered: &RenderedPolicy) {
        let entry = (rendered.policy_hash.clone(), rendered.referenced_secrets());
        lock(&self.rendered).insert(ObjectRef::from_obj(policy), entry);
    }

    /// Publishes an Event. Events are how people learn what happened, never a reason to
    /// fail a reconcile: a rejected Event is logged.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &k8s_openapi::api::core::v1::ObjectReference,
    ) -> Result<()> {
        if let Err(e) = self.recorder.publish(event, regarding).await {
            warn!(reason = %event.reason, error = %e, "could not publish an Event");
        }
        Ok(())
    }

    /// Publishes a Warning about `pod` once per pod and reason.
    pub async fn publish_once(
        &self,
        uid: &str,
        reason: &str,
        pod: &Pod,
        warning: bool,
        note: String,
    ) -> Result<()> {
        let key = (uid.to_string(), reason.to_string());
        {
            let mut reported = lock(&self.reported);
            if reported.contains(&key) {
                return Ok(());
            }
            // Forget pods that are gone so the set does not grow without bound.
            if reported.len() > 10_000 {
                let live: HashSet<String> =
                    self.pods.state().iter().filter_map(|p| p.uid()).collect();
                reported.retain(|(uid, _)| live.contains(uid));
            }
            reported.insert(key);
        }
        info!(%reason, "{note}");
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(truncate(&note)),
            action: "Reconcile".into(),
            secondary: None,
        };
        self.publish(&event, &pod.object_ref(&())).await
    }

    /// Re-checks every opted-in pod of `namespace`.
    fn recheck_pods(&self, namespace: &str) {
        for pod in self.pods.state() {
            if pod.namespace().as_deref() == Some(namespace) {
                // A closed channel means the pod controller is stopping with us.
                let _ = self.pod_trigger.unbounded_send(ObjectRef::from_obj(&*pod));
            }
        }
    }

    /// Re-reconciles every DatabasePolicy of `namespace`.
    pub fn recheck_policies(&self, namespace: &str) {
        for policy in self.policies.state() {
            if policy.namespace().as_deref() == Some(namespace) {
                let _ = self
                    .policy_trigger
                    .unbounded_send(ObjectRef::from_obj(&*policy));
            }
        }
    }
}

/// Reconciles one DatabasePolicy.
#[instrument(skip_all, fields(policy = %policy.name_any(), namespace = policy.namespace().unwrap_or_default()))]
pub async fn reconcile(policy: Arc<DatabasePolicy>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_policy(&policy, &ctx).await;
    ctx.metrics
        .observe("DatabasePolicy", started.elapsed(), result.as_ref().err());
    result
}

async fn reconcile_policy(policy: &DatabasePolicy, ctx: &Context) -> Result<Action> {
    if policy.metadata.deletion_timestamp.is_some() {
        // The ConfigMap is owned by the policy and the sidecar RBAC by every policy of the
        // namespace: the garbage collector removes what is no longer owned.
        return Ok(Action::await_change());
    }
    let namespace = policy
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = policy.name_any();
    // Rendering before every MaskingRule is known would publish a policy without masks.
    ctx.masking_rules
        .wait_until_ready()
        .await
        .map_err(|_| Error::StoreGone)?;
    let pods = ctx.pods.state();

    let mut config_map = None;
    let (render, missing_secrets, secret_count) =
        match render_policy(policy, &ctx.masking_rules.state()) {
            Ok(rendered) => {
                config_map = Some(apply_config_map(&ctx.client, policy, &rendered).await?);
                let references = secret_references(&rendered);
                let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
                let mut missing = Vec::new();
                for (secret, fields) in &references {
                    let found = secrets
                        .get_metadata_opt(secret)
                        .await
                        .map_err(kube_err(format!("looking up Secret {namespace}/{secret}")))?;
                    if found.is_none() {
                        missing.push((secret.clone(), fields.clone()));
                    }
                }
                ctx.remember(policy, &rendered);
                let outcome = RenderOutcome::Rendered {
                    policy_hash: rendered.policy_hash.clone(),
                    config_map: config_map_name(&name),
                    masking_rules: rendered
                        .masking_rules
                        .iter()
                        .map(|m| m.name.clone())
                        .collect(),
                    rule_count: u32::try_from(rendered.spec.rules.len()).unwrap_or(u32::MAX),
                };
                (outcome, missing, references.len())
            }
            Err(problem) => {
                info!(reason = problem.reason, message = %problem.message, "policy not rendered");
                (RenderOutcome::Failed(problem), Vec::new(), 0)
            }
        };

    rbac::apply(&ctx.client, &namespace, &ctx.policies.state(), &pods).await?;

    let (enforcing, missing_pods) = pods_of(policy, &pods);
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let observation = Observation {
        generation: policy.metadata.generation,
        render,
        missing_secrets,
        secret_count,
        injected_pods: count(enforcing.len()),
        uninjected_pods: count(missing_pods.len()),
    };
    let old = policy.status.as_ref();
    let new = desired_status(old, &observation, &(ctx.clock)());
    if old != Some(&new) {
        let api: Api<DatabasePolicy> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = json!({"apiVersion": API_VERSION, "kind": "DatabasePolicy", "status": new});
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(kube_err(format!(
            "writing the status of DatabasePolicy {namespace}/{name}"
        )))?;
    }
    let regarding = policy.object_ref(&());
    for planned in planned_events(old, &new) {
        let event = Event {
            type_: if planned.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: planned.reason,
            note: Some(truncate(&planned.note)),
            action: "Reconcile".into(),
            // The ConfigMap at its new resourceVersion: besides pointing at what was
            // written, it keeps two renders within the Recorder's 6-minute window from
            // being merged into one series that shows only the first hash.
            secondary: config_map.clone().filter(|_| planned.about_config_map),
        };
        ctx.publish(&event, &regarding).await?;
    }
    if old.and_then(|o| o.policy_hash.as_ref()) != new.policy_hash.as_ref() {
        ctx.recheck_pods(&namespace);
    }
    Ok(Action::requeue(if observation.missing_secrets.is_empty() {
        RESYNC
    } else {
        RETRY_MISSING
    }))
}

/// Applies the policy's ConfigMap: `policy.json`, owned by the policy (controller), labelled
/// as the operator's. Returns a reference to it at its new resourceVersion.
async fn apply_config_map(
    client: &Client,
    policy: &DatabasePolicy,
    rendered: &RenderedPolicy,
) -> Result<k8s_openapi::api::core::v1::ObjectReference> {
    let name = config_map_name(&rendered.name);
    let owner = rbac::owner(policy, true).ok_or(Error::MissingField("metadata.uid"))?;
    let document = rendered.to_json().map_err(|source| Error::Serialize {
        what: "the rendered policy",
        source,
    })?;
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": rendered.namespace,
            "labels": {LABEL_MANAGED_BY: FIELD_MANAGER, LABEL_POLICY: rendered.name},
            "annotations": {"palisade.dev/policy-hash": rendered.policy_hash},
            "ownerReferences": [owner],
        },
        "data": {POLICY_KEY: document},
    });
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &rendered.namespace);
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&config_map),
        )
        .await
        .map_err(kube_err(format!(
            "applying ConfigMap {}/{name}",
            rendered.namespace
        )))?;
    let mut reference = applied.object_ref(&());
    reference.resource_version = applied.metadata.resource_version;
    Ok(reference)
}

/// Failed reconciles are retried; the controller's own backoff spaces out repeated failures.
pub fn error_policy<K>(object: Arc<K>, error: &Error, _ctx: Arc<Context>) -> Action
where
    K: ResourceExt,
{
    warn!(object = %object.name_any(), namespace = object.namespace().unwrap_or_default(), %error, "reconcile failed");
    Action::requeue(RETRY_ERROR)
}

/// Runs the policy and pod controllers until `shutdown`. Called on the leader only.
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    reporter: Reporter,
    shutdown: CancellationToken,
) {
    let masking_resource = ApiResource::erase::<MaskingRule>(&());
    let masking_api: Api<DynamicObject> = Api::all_with(client.clone(), &masking_resource);
    let masking_writer = Writer::new(masking_resource);
    let masking_rules = masking_writer.as_reader();
    let (policy_tx, policy_rx) = unbounded::<ObjectRef<DatabasePolicy>>();
    let (pod_tx, pod_rx) = unbounded::<ObjectRef<Pod>>();

    let policy_controller = Controller::new(
        Api::<DatabasePolicy>::all(client.clone()),
        watcher::Config::default(),
    );
    let pod_controller = Controller::new(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().labels(INJECT_SELECTOR),
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        reporter,
        metrics,
        policy_controller.store(),
        masking_rules,
        pod_controller.store(),
        pod_tx,
        policy_tx,
    ));

    // A MaskingRule change re-renders every policy of its namespace: the rule selects some
    // of them now and may have selected others before the change.
    let masking_ctx = ctx.clone();
    let masking = reflector(
        masking_writer,
        watcher(masking_api, watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects()
    .take_until(shutdown.clone().cancelled_owned())
    .for_each(move |rule| {
        match rule {
            Ok(rule) => {
                if let Some(ns) = rule.namespace() {
                    debug!(rule = %rule.name_any(), namespace = %ns, "MaskingRule changed");
                    masking_ctx.recheck_policies(&ns);
                }
            }
            Err(e) => warn!(error = %e, "watching MaskingRules"),
        }
        futures::future::ready(())
    });

    let config = ControllerConfig::default().debounce(Duration::from_millis(500));
    let policies = policy_controller
        .owns(
            Api::<ConfigMap>::all(client.clone()),
            watcher::Config::default().labels(MANAGED_SELECTOR),
        )
        .reconcile_on(policy_rx)
        .with_config(config.clone())
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| {
            if let Err(e) = result {
                debug!(error = %e, "policy controller");
            }
            futures::future::ready(())
        });
    let pods = pod_controller
        .reconcile_on(pod_rx)
        .with_config(config)
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile_pod, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                debug!(error = %e, "pod controller");
            }
            futures::future::ready(())
        });
    info!("reconciling DatabasePolicies, MaskingRules and opted-in pods");
    futures::join!(masking, policies, pods);
    info!("controllers stopped");
}
