//! `palisade-operator run`: the admin server and the webhook on every replica, the
//! controllers on the leader, until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use kube::runtime::events::Reporter;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::admin::{self, AdminState};
use crate::leader::{self, LeaseConfig};
use crate::metrics::Metrics;
use crate::names::CONTROLLER_NAME;

/// Flags of `palisade-operator run`.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "PALISADE_ADMIN_ADDRESS", default_value = "0.0.0.0:8080")]
    pub admin_address: SocketAddr,
    /// The operator's own namespace (leader Lease, webhook TLS Secret).
    #[arg(long, env = "POD_NAMESPACE", default_value = "palisade-system")]
    pub namespace: String,
    /// Name of the coordination.k8s.io Lease the replicas elect a leader with.
    #[arg(long, env = "PALISADE_LEASE_NAME", default_value = "palisade-operator")]
    pub lease_name: String,
    /// Log level or tracing filter (`info`, `debug`, `palisade_operator=debug,kube=info`).
    #[arg(long, env = "PALISADE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format.
    #[arg(long, env = "PALISADE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// How long decided and expired ApprovalRequests stay readable before the leader
    /// deletes them (`90d`, `720h`, …).
    #[arg(long, env = "PALISADE_APPROVAL_RETENTION", default_value = "90d", value_parser = parse_retention)]
    pub approval_retention: Duration,
    #[command(flatten)]
    pub webhook: crate::webhook::WebhookArgs,
}

fn parse_retention(text: &str) -> Result<Duration, String> {
    palisade_policy::duration::parse_duration(text)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// Installs the global tracing subscriber.
pub fn init_logging(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("--log-level {level:?} is not a log level or filter"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
}

/// This replica's identity for the Lease and Events: the pod name (`POD_NAME` from the
/// downward API, else `HOSTNAME`, which Kubernetes sets to the pod name).
pub fn identity() -> String {
    std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("palisade-operator-{}", std::process::id()))
}

/// Cancels `shutdown` on SIGTERM (Kubernetes stopping the pod) or SIGINT.
fn cancel_on_signals(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = int.recv() => info!("SIGINT: shutting down"),
            _ = shutdown.cancelled() => return,
        }
        shutdown.cancel();
    });
    Ok(())
}

/// Runs the operator until a signal, then stops everything gracefully.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(&args.log_level, args.log_format)?;
    let shutdown = CancellationToken::new();
    cancel_on_signals(shutdown.clone())?;

    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let listener = admin::bind(args.admin_address).await?;
    let admin_task = tokio::spawn(admin::serve(
        listener,
        AdminState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        },
        shutdown.clone(),
    ));

    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API server (in-cluster config or kubeconfig)")?;
    let version = client
        .apiserver_version()
        .await
        .context("asking the API server its version")?;
    info!(server = %version.git_version, namespace = %args.namespace, "connected to the API server");

    // Every replica serves the webhook, leader or not, and is ready once the webhook can
    // answer: bound, with a certificate, caches synced.
    let running = crate::webhook::start(
        args.webhook.clone(),
        client.clone(),
        args.namespace.clone(),
        shutdown.clone(),
    )
    .await
    .context("starting the webhook")?;
    let until_ready = running.until_ready();
    let ready_flag = ready.clone();
    tokio::spawn(async move {
        until_ready.await;
        ready_flag.store(true, Ordering::Relaxed);
        info!("ready: webhook has a certificate and its caches are synced");
    });
    let webhook_task = tokio::spawn(running.wait());

    let identity = identity();
    let reporter = Reporter {
        controller: CONTROLLER_NAME.into(),
        instance: Some(identity.clone()),
    };
    let lease = LeaseConfig {
        namespace: args.namespace.clone(),
        name: args.lease_name.clone(),
        identity,
    };
    let leader_metrics = metrics.clone();
    let leading = leader::lead(
        client.clone(),
        lease,
        shutdown.clone(),
        |leads| {
            leader_metrics.leader.set(i64::from(leads));
        },
        |term| {
            let controller = crate::controller::run(
                client.clone(),
                metrics.clone(),
                reporter.clone(),
                term.clone(),
            );
            let history =
                crate::approval_history::run(client.clone(), args.approval_retention, term);
            async move {
                tokio::join!(controller, history);
            }
        },
    );

    // Whichever part ends first (a failure, or shutdown) stops the other.
    tokio::pin!(leading);
    let webhook = flatten(webhook_task);
    tokio::pin!(webhook);
    let result = tokio::select! {
        r = &mut leading => {
            shutdown.cancel();
            let w = webhook.await;
            r.context("leader election").and(w.context("webhook"))
        }
        r = &mut webhook => {
            shutdown.cancel();
            let l = leading.await;
            r.context("webhook").and(l.context("leader election"))
        }
    };
    if let Err(e) = &result {
        error!(error = format!("{e:#}"), "stopping");
    }
    shutdown.cancel();
    ready.store(false, Ordering::Relaxed);
    flatten(admin_task).await?;
    info!("stopped");
    result
}

async fn flatten(task: tokio::task::JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    task.await.context("task panicked")?
}
