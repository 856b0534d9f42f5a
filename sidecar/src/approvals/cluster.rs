//! Approvals in a cluster (SPEC §2.3): every request the desk opens is also an
//! ApprovalRequest object in the policy's namespace, which people decide through the API
//! server (`kubectl palisade approve NAME -n NS`), so the approver is the identity the
//! cluster authenticated; the operator's admission webhook stamps and judges each decision.
//! The sidecar follows its object: it reads where the decisions leave it with the same
//! rules the webhook uses (`palisade_policy::approval::evaluate`), writes the state to the
//! object's status, and records each transition as a Kubernetes Event on the request and
//! on the pod.

use std::sync::Arc;
use std::time::SystemTime;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use palisade_policy::approval::evaluate;
use palisade_policy::crd::{ApprovalRequest, ApprovalRequestSpec, ApprovalState};
use palisade_policy::model::Approval;
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

use super::desk::ApprovalDesk;

/// The field manager of what the sidecar writes.
const MANAGER: &str = "palisade-sidecar";

/// The sidecar's way to the API server.
pub struct ClusterApprovals {
    client: Client,
    recorder: Recorder,
    /// The pod the sidecar runs in, for Events on it too.
    pod: Option<ObjectReference>,
}

impl ClusterApprovals {
    /// Connects as the pod's service account (in a pod) or with `KUBECONFIG`.
    pub async fn connect(pod: Option<(String, String)>) -> anyhow::Result<Self> {
        let client = Client::try_default().await?;
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: MANAGER.into(),
                instance: pod.as_ref().map(|(_, name)| name.clone()),
            },
        );
        let pod = pod.map(|(namespace, name)| ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(namespace),
            name: Some(name),
            ..ObjectReference::default()
        });
        Ok(ClusterApprovals {
            client,
            recorder,
            pod,
        })
    }

    /// Files the request `name` and follows it until it is settled, by its approvers or by
    /// the session holding its statement (timeout, cancel). `settled` is the desk's bell
    /// for the request.
    pub fn follow(
        self: &Arc<Self>,
        desk: Arc<ApprovalDesk>,
        name: String,
        namespace: String,
        spec: ApprovalRequestSpec,
        approval: Approval,
        settled: watch::Receiver<ApprovalState>,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let api: Api<ApprovalRequest> = Api::namespaced(this.client.clone(), &namespace);
            if let Err(e) = this.file(&api, &name, &spec).await {
                warn!(request = %name, error = %e, "approval request could not be filed in the cluster");
                desk.fail(
                    &name,
                    format!("it could not be filed in namespace {namespace}: {e}"),
                );
                return;
            }
            this.event(
                &api,
                &name,
                "ApprovalRequested",
                &requested_note(&spec),
                false,
            )
            .await;
            let state = this.watch(&api, &desk, &name, &approval, settled).await;
            if let Err(e) = set_state(&api, &name, state).await {
                warn!(request = %name, error = %e, "approval request state not written");
            }
            let (reason, warning) = match state {
                ApprovalState::Approved => ("Approved", false),
                ApprovalState::Denied => ("Denied", true),
                ApprovalState::Expired => ("Expired", true),
                ApprovalState::Withdrawn => ("Withdrawn", false),
                ApprovalState::Pending => return,
            };
            this.event(
                &api,
                &name,
                reason,
                &format!("approval request {name} is {state:?}"),
                warning,
            )
            .await;
        });
    }

    async fn file(
        &self,
        api: &Api<ApprovalRequest>,
        name: &str,
        spec: &ApprovalRequestSpec,
    ) -> Result<(), kube::Error> {
        let mut object = ApprovalRequest::new(name, spec.clone());
        object
            .meta_mut()
            .labels
            .get_or_insert_with(Default::default)
            .insert("palisade.dev/policy".into(), spec.policy.clone());
        api.create(&PostParams::default(), &object).await?;
        set_state(api, name, ApprovalState::Pending).await
    }

    /// Follows the object until its decisions settle it, or the session closes it first
    /// (its bell rings with Expired or Withdrawn). Returns where it ended.
    async fn watch(
        &self,
        api: &Api<ApprovalRequest>,
        desk: &ApprovalDesk,
        name: &str,
        approval: &Approval,
        mut settled: watch::Receiver<ApprovalState>,
    ) -> ApprovalState {
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut objects = watcher(api.clone(), config).applied_objects().boxed();
        loop {
            tokio::select! {
                changed = settled.changed() => {
                    let state = *settled.borrow();
                    if changed.is_err() || state != ApprovalState::Pending {
                        return if state == ApprovalState::Pending {
                            ApprovalState::Withdrawn
                        } else {
                            state
                        };
                    }
                }
                next = objects.next() => match next {
                    Some(Ok(object)) => {
                        let stored = object.status.as_ref().map(|s| s.state).unwrap_or_default();
                        let state = evaluate(&object.spec, stored, approval, SystemTime::now());
                        if state == ApprovalState::Approved || state == ApprovalState::Denied {
                            info!(request = %name, state = ?state, "approval request decided in the cluster");
                            return desk.settle_from_cluster(name, object.spec.decisions, state);
                        }
                    }
                    // The watcher retries on its own; an error is only worth a log line.
                    Some(Err(e)) => warn!(request = %name, error = %e, "watching the approval request"),
                    None => {
                        // Not reached: a watcher stream does not end.
                        return ApprovalState::Withdrawn;
                    }
                },
            }
        }
    }

    async fn event(
        &self,
        api: &Api<ApprovalRequest>,
        name: &str,
        reason: &str,
        note: &str,
        warning: bool,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: "Approval".into(),
            secondary: None,
        };
        let request = match api.get(name).await {
            Ok(object) => object.object_ref(&()),
            Err(e) => {
                warn!(request = %name, error = %e, "approval event not recorded");
                return;
            }
        };
        for regarding in std::iter::once(&request).chain(self.pod.as_ref()) {
            if let Err(e) = self.recorder.publish(&event, regarding).await {
                warn!(request = %name, reason, error = %e, "approval event not recorded");
            }
        }
    }
}

async fn set_state(
    api: &Api<ApprovalRequest>,
    name: &str,
    state: ApprovalState,
) -> Result<(), kube::Error> {
    api.patch_status(
        name,
        &PatchParams {
            field_manager: Some(MANAGER.into()),
            ..PatchParams::default()
        },
        &Patch::Merge(json!({"status": {"state": state}})),
    )
    .await
    .map(|_| ())
}

fn requested_note(spec: &ApprovalRequestSpec) -> String {
    let who = spec
        .requester
        .user
        .as_deref()
        .or(spec.requester.service_account.as_deref())
        .or(spec.requester.db_user.as_deref())
        .unwrap_or("someone");
    format!(
        "{who} asks to run {} under rule {}: {}",
        spec.fingerprint, spec.rule, spec.statement
    )
}
