//! The running sidecar: one listener per policy, the admin endpoint, hot reload of the
//! policy and secrets directories, and graceful shutdown.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use palisade_policy::decision::Identity;

use crate::admin;
use crate::approvals::{ApprovalDesk, ClusterApprovals};
use crate::cancel::CancelRegistry;
use crate::config::{LoadedPolicy, SecretStore, fingerprint, load_policies};
use crate::masking::shared::Catalogs;
use crate::metrics::Metrics;
use crate::session::{self, ListenerContext};

/// How the sidecar was asked to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub policy_dir: PathBuf,
    pub secrets_dir: Option<PathBuf>,
    pub listen_address: IpAddr,
    pub admin_address: SocketAddr,
    pub client_tls: Option<(PathBuf, PathBuf)>,
    pub shutdown_grace: Duration,
    pub reload_interval: Duration,
    /// Who the clients are, as far as the pod tells: service account, pod, workload,
    /// labels. Each session adds its database user and any verified login.
    pub workload: Identity,
    /// Where approval requests are filed and decided.
    pub approvals: ApprovalsMode,
    /// How long settled approval requests stay readable.
    pub approval_retention: Duration,
}

/// Where approval requests are filed and decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalsMode {
    /// Kept by the sidecar, decided at its admin endpoint with verified ID tokens.
    Local,
    /// ApprovalRequest objects in the policy's namespace, decided through the API server.
    Kubernetes,
}

/// A policy's listener while it runs.
struct Listener {
    port: u16,
    policy: Arc<ArcSwap<LoadedPolicy>>,
    stop: CancellationToken,
}

/// What the admin endpoint and the reload loop share.
pub struct Sidecar {
    pub metrics: Arc<Metrics>,
    cancel: Arc<CancelRegistry>,
    listeners: Mutex<HashMap<String, Listener>>,
    sessions: TaskTracker,
    client_tls: Option<TlsAcceptor>,
    listen_address: IpAddr,
    workload: Arc<Identity>,
    /// Masking's catalog snapshots, one per upstream database, shared by all listeners.
    catalogs: Arc<Catalogs>,
    /// The approval requests this sidecar holds statements for.
    pub approvals: Arc<ApprovalDesk>,
    /// Where approvers reach the admin endpoint, for the notice a held statement sends.
    admin_url: String,
}

impl Sidecar {
    /// The policy `key` (`namespace/name`) as it is enforced now.
    pub fn policy(&self, key: &str) -> Option<Arc<LoadedPolicy>> {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .map(|l| l.policy.load_full())
    }

    /// Upstreams of the policies being enforced: `(policy, host, port)`.
    pub fn upstreams(&self) -> Vec<(String, String, u16)> {
        let listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<_> = listeners
            .iter()
            .map(|(key, l)| {
                let p = l.policy.load();
                (key.clone(), p.upstream.host.clone(), p.upstream.port)
            })
            .collect();
        out.sort();
        out
    }

    /// Opens listeners for new policies, swaps changed ones in place (open sessions keep
    /// running), and closes listeners of policies that are gone.
    async fn apply(&self, policies: Vec<LoadedPolicy>) {
        let mut to_bind = Vec::new();
        {
            let mut listeners = self
                .listeners
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let wanted: HashMap<String, u16> = policies
                .iter()
                .map(|p| (p.key(), p.listen_port()))
                .collect();
            listeners.retain(|key, l| {
                let keep = wanted.get(key) == Some(&l.port);
                if !keep {
                    info!(policy = %key, port = l.port, "closing listener");
                    l.stop.cancel();
                }
                keep
            });
            for p in policies {
                match listeners.get(&p.key()) {
                    Some(l) => {
                        if l.policy.load().rendered.policy_hash != p.rendered.policy_hash {
                            info!(policy = %p.key(), hash = %p.rendered.policy_hash, "policy updated");
                        }
                        l.policy.store(Arc::new(p));
                    }
                    None => to_bind.push(p),
                }
            }
        }
        for p in to_bind {
            let key = p.key();
            let addr = SocketAddr::new(self.listen_address, p.listen_port());
            match TcpListener::bind(addr).await {
                Ok(tcp) => {
                    info!(policy = %key, %addr, upstream = %format!("{}:{}", p.upstream.host, p.upstream.port), tls = ?p.upstream.tls_mode, hash = %p.rendered.policy_hash, "listening");
                    let policy = Arc::new(ArcSwap::from_pointee(p));
                    let stop = CancellationToken::new();
                    let ctx = Arc::new(ListenerContext {
                        policy: policy.clone(),
                        cancel: self.cancel.clone(),
                        metrics: self.metrics.clone(),
                        client_tls: self.client_tls.clone(),
                        workload: self.workload.clone(),
                        catalogs: self.catalogs.clone(),
                        catalog_queries: self.metrics.catalog_queries(&key),
                        approvals: self.approvals.clone(),
                        admin_url: self.admin_url.clone(),
                    });
                    self.sessions
                        .spawn(accept_loop(tcp, ctx, stop.clone(), self.sessions.clone()));
                    self.listeners
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(
                            key,
                            Listener {
                                port: addr.port(),
                                policy,
                                stop,
                            },
                        );
                }
                Err(e) => error!(policy = %key, %addr, error = %e, "cannot listen"),
            }
        }
    }

    fn stop_listening(&self) {
        for l in self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            l.stop.cancel();
        }
    }

    pub fn listening(&self) -> usize {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

async fn accept_loop(
    tcp: TcpListener,
    ctx: Arc<ListenerContext>,
    stop: CancellationToken,
    sessions: TaskTracker,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = tcp.accept() => match accepted {
                Ok((stream, peer)) => {
                    sessions.spawn(session::serve(stream, peer, ctx.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// The admin endpoint as an approver on this machine reaches it.
fn admin_url(address: SocketAddr) -> String {
    let host = match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::from([127, 0, 0, 1]),
        ip if ip.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(host, address.port()))
}

/// Runs the sidecar until SIGTERM or SIGINT, then drains.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let signal = shutdown_signal()?;
    let secrets = SecretStore::new(opts.secrets_dir.clone());
    let policies = load_policies(&opts.policy_dir, &secrets)?;
    if policies.is_empty() {
        anyhow::bail!(
            "no DatabasePolicy found in {} (expected *.yaml with kind: DatabasePolicy, or rendered policy.json files)",
            opts.policy_dir.display()
        );
    }
    let client_tls = match &opts.client_tls {
        Some((cert, key)) => {
            let cert_pem =
                std::fs::read(cert).with_context(|| format!("--tls-cert {}", cert.display()))?;
            let key_pem =
                std::fs::read(key).with_context(|| format!("--tls-key {}", key.display()))?;
            let config = crate::tls::client_leg_config(&cert_pem, &key_pem)
                .map_err(|e| anyhow::anyhow!("client TLS: {e}"))?;
            Some(TlsAcceptor::from(config))
        }
        None => None,
    };
    let cluster = match opts.approvals {
        ApprovalsMode::Local => None,
        ApprovalsMode::Kubernetes => {
            let pod = match (&opts.workload.service_account, &opts.workload.pod) {
                (Some(sa), Some(pod)) => sa
                    .split_once('/')
                    .map(|(namespace, _)| (namespace.to_string(), pod.clone())),
                _ => None,
            };
            let cluster = ClusterApprovals::connect(pod).await.context(
                "--approvals kubernetes: cannot reach the API server (in a pod: the service account token; elsewhere: KUBECONFIG)",
            )?;
            info!(
                "approval requests are filed as ApprovalRequest objects and decided in the cluster"
            );
            Some(Arc::new(cluster))
        }
    };
    let sidecar = Arc::new(Sidecar {
        metrics: Arc::new(Metrics::default()),
        cancel: Arc::new(CancelRegistry::default()),
        listeners: Mutex::new(HashMap::new()),
        sessions: TaskTracker::new(),
        client_tls,
        listen_address: opts.listen_address,
        workload: Arc::new(opts.workload.clone()),
        catalogs: Arc::new(Catalogs::default()),
        approvals: Arc::new(ApprovalDesk::new(opts.approval_retention, cluster)),
        admin_url: admin_url(opts.admin_address),
    });
    sidecar.metrics.reload(true, policies.len());
    let count = policies.len();
    sidecar.apply(policies).await;
    if sidecar.listening() < count {
        sidecar.stop_listening();
        anyhow::bail!("could not open every policy's listener (see the errors above)");
    }

    let admin = TcpListener::bind(opts.admin_address)
        .await
        .with_context(|| format!("admin listener {}", opts.admin_address))?;
    info!(address = %opts.admin_address, "admin endpoint (/healthz, /readyz, /metrics, /approvals)");
    let shutdown = CancellationToken::new();
    tokio::spawn(admin::serve(admin, sidecar.clone(), shutdown.clone()));
    tokio::spawn(reload_loop(
        opts.clone(),
        secrets,
        sidecar.clone(),
        shutdown.clone(),
    ));

    signal.await;
    info!(grace = ?opts.shutdown_grace, "shutting down: no new connections, draining open sessions");
    sidecar.stop_listening();
    sidecar.sessions.close();
    if tokio::time::timeout(opts.shutdown_grace, sidecar.sessions.wait())
        .await
        .is_err()
    {
        warn!(
            open = sidecar.sessions.len(),
            "grace period over; closing remaining sessions"
        );
    }
    shutdown.cancel();
    Ok(())
}

/// Installs the SIGTERM and SIGINT handlers; the future resolves at the first signal.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Polls the directories for changes. Kubernetes updates mounted ConfigMaps and Secrets by
/// swapping a symlink, which file-event APIs report unreliably; a cheap metadata
/// fingerprint every few seconds sees every change.
async fn reload_loop(
    opts: Options,
    secrets: SecretStore,
    sidecar: Arc<Sidecar>,
    shutdown: CancellationToken,
) {
    let dirs = |o: &Options| {
        let mut d = vec![o.policy_dir.clone()];
        d.extend(o.secrets_dir.clone());
        d
    };
    let watched = dirs(&opts);
    let refs: Vec<&std::path::Path> = watched.iter().map(|p| p.as_path()).collect();
    let mut last = fingerprint(&refs);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(opts.reload_interval) => {}
        }
        let now = fingerprint(&refs);
        if now == last {
            continue;
        }
        last = now;
        match load_policies(&opts.policy_dir, &secrets) {
            Ok(policies) if policies.is_empty() => {
                sidecar.metrics.reload(false, 0);
                error!(
                    "policy directory has no DatabasePolicy any more; keeping the last good policies"
                );
            }
            Ok(policies) => {
                sidecar.metrics.reload(true, policies.len());
                info!(
                    policies = policies.len(),
                    "policy directory changed; reloading"
                );
                sidecar.apply(policies).await;
            }
            Err(e) => {
                sidecar.metrics.reload(false, 0);
                error!(error = %format!("{e:#}"), "invalid policy change rejected; keeping the last good policies");
            }
        }
    }
}
