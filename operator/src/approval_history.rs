//! Approval history: decided and expired ApprovalRequests stay readable (audit evidence of
//! who let which statement run) for `--approval-retention`, then the leader deletes them.
//! What is old enough is `palisade_policy::approval::past_retention`'s to say; a request
//! still pending, or whose time cannot be read, is never deleted.

use std::time::{Duration, SystemTime};

use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use palisade_policy::approval::past_retention;
use palisade_policy::crd::ApprovalRequest;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often the leader looks for requests past retention.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// The requests in `list` that are past `retention` at `now`, as `(namespace, name)`.
pub fn expired(
    list: &[ApprovalRequest],
    retention: Duration,
    now: SystemTime,
) -> Vec<(String, String)> {
    list.iter()
        .filter(|r| {
            let state = r.status.as_ref().map(|s| s.state).unwrap_or_default();
            past_retention(state, &r.spec.expires_at, retention, now)
        })
        .map(|r| (r.namespace().unwrap_or_default(), r.name_any()))
        .collect()
}

/// Deletes requests past retention now, then every [`SWEEP_EVERY`] until `shutdown`.
pub async fn run(client: Client, retention: Duration, shutdown: CancellationToken) {
    let api: Api<ApprovalRequest> = Api::all(client.clone());
    loop {
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                for (namespace, name) in expired(&list.items, retention, SystemTime::now()) {
                    let namespaced: Api<ApprovalRequest> =
                        Api::namespaced(client.clone(), &namespace);
                    match namespaced.delete(&name, &DeleteParams::default()).await {
                        Ok(_) => {
                            info!(%namespace, %name, "approval request past retention deleted")
                        }
                        Err(e) => {
                            warn!(%namespace, %name, error = %e, "approval request past retention not deleted")
                        }
                    }
                }
            }
            Err(e) => warn!(error = %e, "listing approval requests for retention"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use palisade_policy::crd::{ApprovalRequestSpec, ApprovalRequestStatus, ApprovalState};

    use super::*;

    fn request(name: &str, state: Option<ApprovalState>, expires_at: &str) -> ApprovalRequest {
        let mut r = ApprovalRequest::new(
            name,
            ApprovalRequestSpec {
                expires_at: expires_at.into(),
                ..ApprovalRequestSpec::default()
            },
        );
        r.metadata.namespace = Some("ml".into());
        r.status = state.map(|state| ApprovalRequestStatus {
            state,
            ..ApprovalRequestStatus::default()
        });
        r
    }

    #[test]
    fn only_settled_requests_past_retention_go() {
        let now = palisade_policy::timestamp::parse("2026-12-01T00:00:00Z").unwrap();
        let day = Duration::from_secs(86_400);
        let list = [
            request(
                "old-approved",
                Some(ApprovalState::Approved),
                "2026-11-01T00:00:00Z",
            ),
            request(
                "old-pending",
                Some(ApprovalState::Pending),
                "2026-11-01T00:00:00Z",
            ),
            request("old-no-status", None, "2026-11-01T00:00:00Z"),
            request(
                "recent-denied",
                Some(ApprovalState::Denied),
                "2026-11-30T00:00:00Z",
            ),
            request("unreadable", Some(ApprovalState::Expired), "soon"),
        ];
        assert_eq!(
            expired(&list, 7 * day, now),
            vec![("ml".to_string(), "old-approved".to_string())]
        );
    }
}
