//! The admission webhook server: sidecar injection into pods, and the verified decisions on
//! ApprovalRequests.
//!
//! - [`inject`]: the pure function from a pod and its matching policies to a JSON patch;
//! - [`approvals`]: ApprovalRequest CREATE/UPDATE — decisions stamped with the API server's
//!   `userInfo`, only approvers' appended decisions on pending requests admitted;
//! - [`policies`]: which DatabasePolicies select a pod (reflector caches) and their hashes;
//! - [`handler`]: the AdmissionReview endpoint;
//! - [`certs`], [`selfmanaged`], [`cabundle`], [`certdir`]: webhook TLS, either self-managed
//!   (own CA in a Secret, `caBundle` kept current) or from cert-manager's files;
//! - [`server`]: HTTPS with the certificate resolved per handshake.

pub mod approvals;
pub mod cabundle;
pub mod certdir;
pub mod certs;
pub mod handler;
pub mod inject;
pub mod policies;
pub mod selfmanaged;
pub mod server;
pub mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::version::Info;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use self::certs::CertResolver;
use self::handler::{WebhookState, router};
use self::inject::InjectConfig;
use self::policies::Policies;
use self::selfmanaged::SelfManaged;
use self::server::{TlsListener, tls_config};

/// The operator's version, written to `palisade.dev/injected`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Requests without limits on CPU: a throttled proxy adds latency to every statement.
pub const DEFAULT_SIDECAR_RESOURCES: &str =
    r#"{"requests":{"cpu":"50m","memory":"32Mi"},"limits":{"memory":"128Mi"}}"#;
/// Startup calls to the API server (version, first TLS pass) give up after this, so a slow
/// API server delays listening by seconds, not by the client's minutes-long timeouts.
const STARTUP_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often cert-manager mode re-reads the certificate files.
const CERT_DIR_POLL: Duration = Duration::from_secs(10);

/// Where the webhook's serving certificate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMode {
    /// The operator's own CA and certificate in `--webhook-tls-secret`; it keeps `caBundle`
    /// current on `--webhook-configuration`.
    SelfManaged,
    /// `tls.crt`/`tls.key` in `--webhook-cert-dir`, kept by cert-manager (whose CA injector
    /// sets `caBundle`).
    CertManager,
}

/// Sidecar as init container with `restartPolicy: Always` or as a regular container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NativeSidecars {
    /// Native when the API server is 1.29 or newer.
    Auto,
    Always,
    Never,
}

/// The webhook's flags, flattened into `palisade-operator run`.
#[derive(Clone, Debug, clap::Args)]
pub struct WebhookArgs {
    /// HTTPS address of the webhook (`POST /inject`).
    #[arg(long, env = "PALISADE_WEBHOOK_ADDRESS", default_value = "0.0.0.0:9443")]
    pub webhook_address: SocketAddr,
    /// Where the webhook's TLS certificate comes from.
    #[arg(long, env = "PALISADE_WEBHOOK_TLS", value_enum, default_value_t = TlsMode::SelfManaged)]
    pub webhook_tls: TlsMode,
    /// cert-manager mode: directory holding `tls.crt` and `tls.key`, re-read when they change.
    #[arg(long, env = "PALISADE_WEBHOOK_CERT_DIR", default_value = "/tls")]
    pub webhook_cert_dir: PathBuf,
    /// The webhook's Service; the certificate names `<service>.<namespace>.svc` and
    /// `<service>.<namespace>.svc.cluster.local`.
    #[arg(
        long,
        env = "PALISADE_WEBHOOK_SERVICE",
        default_value = "palisade-webhook"
    )]
    pub webhook_service: String,
    /// Self-managed mode: the MutatingWebhookConfiguration whose `caBundle` is kept current.
    #[arg(
        long,
        env = "PALISADE_WEBHOOK_CONFIGURATION",
        default_value = "palisade"
    )]
    pub webhook_configuration: String,
    /// Self-managed mode: Secret in the operator's namespace holding the CA and certificate
    /// every replica serves.
    #[arg(
        long,
        env = "PALISADE_WEBHOOK_TLS_SECRET",
        default_value = "palisade-webhook-tls"
    )]
    pub webhook_tls_secret: String,
    /// The sidecar image injected into pods.
    #[arg(long, env = "PALISADE_SIDECAR_IMAGE", default_value = concat!("ghcr.io/palisade-dev/palisade-sidecar:", env!("CARGO_PKG_VERSION")))]
    pub sidecar_image: String,
    /// The sidecar's imagePullPolicy.
    #[arg(long, env = "PALISADE_SIDECAR_IMAGE_PULL_POLICY", default_value = "IfNotPresent", value_parser = ["Always", "IfNotPresent", "Never"])]
    pub sidecar_image_pull_policy: String,
    /// The sidecar's resources, as Kubernetes ResourceRequirements JSON.
    #[arg(long, env = "PALISADE_SIDECAR_RESOURCES", default_value = DEFAULT_SIDECAR_RESOURCES, value_parser = parse_resources)]
    pub sidecar_resources: ResourceRequirements,
    /// The sidecar's log level (`PALISADE_LOG_LEVEL` in the sidecar).
    #[arg(long, env = "PALISADE_SIDECAR_LOG_LEVEL", default_value = "info")]
    pub sidecar_log_level: String,
    /// Inject native sidecars (init containers with restartPolicy Always).
    #[arg(long, env = "PALISADE_NATIVE_SIDECARS", value_enum, default_value_t = NativeSidecars::Auto)]
    pub native_sidecars: NativeSidecars,
}

fn parse_resources(s: &str) -> Result<ResourceRequirements, String> {
    serde_json::from_str(s).map_err(|e| format!("not ResourceRequirements JSON: {e}"))
}

/// Whether the API server runs native sidecars by default (beta, on, since 1.29). Minor
/// versions may carry a suffix (`29+` on EKS and GKE).
pub fn supports_native_sidecars(info: &Info) -> bool {
    let number = |s: &str| {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    };
    match (number(&info.major), number(&info.minor)) {
        (Some(major), _) if major > 1 => true,
        (Some(1), Some(minor)) => minor >= 29,
        _ => false,
    }
}

async fn native_sidecars(mode: NativeSidecars, client: &kube::Client) -> bool {
    match mode {
        NativeSidecars::Always => true,
        NativeSidecars::Never => false,
        NativeSidecars::Auto => {
            match tokio::time::timeout(STARTUP_CALL_TIMEOUT, client.apiserver_version()).await {
                Ok(Ok(info)) => supports_native_sidecars(&info),
                Ok(Err(e)) => {
                    // Regular containers work everywhere; native ones only on 1.29+.
                    warn!(error = %e, "reading the API server version; injecting regular sidecars");
                    false
                }
                Err(_) => {
                    warn!(
                        "the API server did not tell its version in time; injecting regular sidecars"
                    );
                    false
                }
            }
        }
    }
}

/// A started webhook server.
pub struct Running {
    local_addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
    resolver: Arc<CertResolver>,
    policies: Policies,
}

impl Running {
    /// Resolves once the webhook can answer admission requests: it has a serving
    /// certificate and its DatabasePolicy/MaskingRule caches have synced. Readiness waits
    /// on this, so a rollout never routes pods to a replica that would skip them.
    pub fn until_ready(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let resolver = self.resolver.clone();
        let policies = self.policies.clone();
        async move {
            while resolver.current().is_none() {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            policies.synced().await;
        }
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the server stops (after `shutdown`).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task
            .await
            .context("webhook server task")?
            .context("webhook server")
    }
}

/// Starts the webhook: TLS (self-managed or cert-manager), policy caches, HTTPS server. Returns
/// once it listens; the work goes on in tasks until `shutdown`.
pub async fn start(
    args: WebhookArgs,
    client: kube::Client,
    namespace: String,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let native = native_sidecars(args.native_sidecars, &client).await;
    let config = InjectConfig {
        version: VERSION.to_string(),
        image: args.sidecar_image.clone(),
        image_pull_policy: args.sidecar_image_pull_policy.clone(),
        resources: args.sidecar_resources.clone(),
        log_level: args.sidecar_log_level.clone(),
        native_sidecars: native,
    };
    let resolver = Arc::new(CertResolver::default());
    match args.webhook_tls {
        TlsMode::SelfManaged => {
            let mut certs = SelfManaged::new(
                client.clone(),
                &namespace,
                &args.webhook_tls_secret,
                &args.webhook_configuration,
                &args.webhook_service,
                resolver.clone(),
            );
            // A first pass before listening, so the first call finds a certificate. If the
            // API server is not reachable yet, the loop keeps trying; handshakes fail until then.
            match tokio::time::timeout(STARTUP_CALL_TIMEOUT, certs.sync(selfmanaged::unix_now()))
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    warn!(error = %e, "webhook TLS not ready yet; retrying in the background");
                }
                Err(_) => warn!("webhook TLS not ready in time; retrying in the background"),
            }
            tokio::spawn(certs.run(shutdown.clone()));
        }
        TlsMode::CertManager => {
            tokio::spawn(certdir::watch_cert_dir(
                args.webhook_cert_dir.clone(),
                resolver.clone(),
                CERT_DIR_POLL,
                shutdown.clone(),
            ));
        }
    }
    let policies = Policies::watch(client.clone(), shutdown.clone());
    let state = WebhookState {
        config: Arc::new(config),
        policies: policies.clone(),
        client: Some(client.clone()),
    };
    let tls = tls_config(resolver.clone()).context("webhook TLS configuration")?;
    let listener = TlsListener::bind(args.webhook_address, tls, shutdown.clone())
        .await
        .with_context(|| format!("binding the webhook to {}", args.webhook_address))?;
    let local_addr = axum::serve::Listener::local_addr(&listener)?;
    info!(address = %local_addr, tls = ?args.webhook_tls, native_sidecars = native, "webhook listening (POST /inject, POST /approvalrequests)");
    let task = tokio::spawn(server::serve(listener, router(state), shutdown));
    Ok(Running {
        local_addr,
        task,
        resolver,
        policies,
    })
}

/// Runs the webhook until `shutdown` (what `palisade-operator run` calls on every replica).
pub async fn serve(
    args: WebhookArgs,
    client: kube::Client,
    namespace: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    start(args, client, namespace, shutdown).await?.wait().await
}
