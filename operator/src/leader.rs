//! Leader election: only the replica holding the `coordination.k8s.io` Lease
//! `--lease-name` in the operator's namespace reconciles (kube-lease-manager, which applies
//! the Lease with server-side apply). Every replica serves the webhook regardless.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::names::FIELD_MANAGER;

/// How long a lease lasts without renewal, and how long before expiry it is renewed.
pub const LEASE_DURATION_SECONDS: u64 = 15;
pub const LEASE_GRACE_SECONDS: u64 = 5;

/// Where and as whom to hold the lease.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per replica: the pod name.
    pub identity: String,
}

/// Runs `work` while this replica leads, until `shutdown`. `work` gets a token that is
/// cancelled when leadership is lost, and must return promptly after it; it is started
/// again if leadership comes back. On shutdown the lease is released so another replica
/// takes over at once instead of waiting for it to expire.
pub async fn lead<F, Fut>(
    client: Client,
    lease: LeaseConfig,
    shutdown: CancellationToken,
    on_change: impl Fn(bool),
    work: F,
) -> anyhow::Result<()>
where
    F: Fn(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let manager = LeaseManagerBuilder::new(client, &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(&lease.identity)
        .with_duration(LEASE_DURATION_SECONDS)
        .with_grace(LEASE_GRACE_SECONDS)
        .with_field_manager(FIELD_MANAGER)
        .build()
        .await
        .with_context(|| {
            format!(
                "preparing the leader Lease {}/{}",
                lease.namespace, lease.name
            )
        })?;
    let (mut leading, task) = manager.watch().await;
    loop {
        // Wait to become leader (or to be told to stop).
        while !*leading.borrow_and_update() {
            tokio::select! {
                _ = shutdown.cancelled() => return release(leading, task).await,
                changed = leading.changed() => if changed.is_err() {
                    return release(leading, task).await;
                },
            }
        }
        info!(identity = %lease.identity, lease = %lease.name, "became leader");
        on_change(true);
        let term = shutdown.child_token();
        let work_done = work(term.clone());
        tokio::pin!(work_done);
        let mut finished = false;
        loop {
            tokio::select! {
                _ = &mut work_done => { finished = true; break; }
                changed = leading.changed() => {
                    if changed.is_err() || !*leading.borrow_and_update() {
                        warn!(identity = %lease.identity, "lost the leader lease; stopping the controllers");
                        break;
                    }
                }
                _ = shutdown.cancelled() => break,
            }
        }
        term.cancel();
        if !finished {
            // Controllers drain in-flight reconciles; bounded so a stuck API call cannot
            // keep a replica that lost the lease reconciling for long.
            if tokio::time::timeout(Duration::from_secs(10), work_done)
                .await
                .is_err()
            {
                warn!("controllers did not stop within 10s");
            }
        }
        on_change(false);
        if shutdown.is_cancelled() {
            return release(leading, task).await;
        }
    }
}

/// Closes the watch channel, which makes the lease task release the lease and end.
async fn release(
    leading: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<
        Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>,
    >,
) -> anyhow::Result<()> {
    drop(leading);
    match task.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            warn!(error = %e, "releasing the leader lease");
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!("the lease task failed: {e}")),
    }
}
