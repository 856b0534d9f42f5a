use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use palisade_policy::decision::Identity;
use palisade_sidecar::server::{self, ApprovalsMode, Options};

/// Palisade's PostgreSQL sidecar: governs every statement between an app and its database.
#[derive(Parser)]
#[command(name = "palisade-sidecar", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy: one listener per DatabasePolicy found in the policy directory.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Directory of rendered policy.json files or DatabasePolicy/MaskingRule YAML
    /// (sub-directories are read too, as mounted ConfigMaps lay them out).
    #[arg(long, env = "PALISADE_POLICY_DIR", value_name = "DIR")]
    policy_dir: PathBuf,
    /// Directory of secrets laid out as Kubernetes mounts them: DIR/<secret-name>/<key>.
    #[arg(long, env = "PALISADE_SECRETS_DIR", value_name = "DIR")]
    secrets_dir: Option<PathBuf>,
    /// Address the policy listeners bind to (each on its policy's spec.listen.port).
    #[arg(long, env = "PALISADE_LISTEN_ADDRESS", default_value = "127.0.0.1")]
    listen_address: IpAddr,
    /// Address of the admin endpoint (/healthz, /readyz, /metrics).
    #[arg(long, env = "PALISADE_ADMIN_ADDRESS", default_value = "127.0.0.1:9187")]
    admin_address: SocketAddr,
    /// PEM certificate for TLS on the client leg (clients may then use sslmode=require).
    #[arg(
        long,
        env = "PALISADE_TLS_CERT",
        requires = "tls_key",
        value_name = "FILE"
    )]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(
        long,
        env = "PALISADE_TLS_KEY",
        requires = "tls_cert",
        value_name = "FILE"
    )]
    tls_key: Option<PathBuf>,
    /// After SIGTERM, how long open sessions may take to finish.
    #[arg(long, env = "PALISADE_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// How often the policy and secrets directories are checked for changes.
    #[arg(long, env = "PALISADE_RELOAD_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    reload_interval: Duration,
    /// Log format on stderr.
    #[arg(long, env = "PALISADE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level or filter (e.g. `info`, `palisade_sidecar=debug`); RUST_LOG wins if set.
    #[arg(long, env = "PALISADE_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// The pod's service account as `namespace/name`, matched by rules' `subjects.serviceAccounts`.
    #[arg(long, env = "PALISADE_SERVICE_ACCOUNT", value_name = "NS/NAME", value_parser = parse_service_account)]
    service_account: Option<String>,
    /// The pod the sidecar runs in (the injected sidecar reads it from the downward API).
    #[arg(long = "pod", env = "PALISADE_POD_NAME", value_name = "NAME")]
    pod: Option<String>,
    /// The workload the clients belong to, as `Kind/name` (`Job/train-fraud-v3`); the
    /// operator resolves it through the pod's owner chain at injection.
    #[arg(long, env = "PALISADE_WORKLOAD", value_name = "KIND/NAME", value_parser = parse_workload)]
    workload: Option<String>,
    /// Labels recorded with the workload identity, as `key=value,…`
    /// (`palisade.dev/model=fraud-v3`).
    #[arg(long, env = "PALISADE_POD_LABELS", value_name = "K=V,…", value_parser = parse_labels)]
    pod_labels: Option<Labels>,
    /// Where approval requests (rules with RequireApproval) are filed and decided: `local`
    /// (kept by the sidecar, decided at its admin endpoint with verified ID tokens),
    /// `kubernetes` (ApprovalRequest objects in the policy's namespace, decided through the
    /// API server), or `auto`: kubernetes in a pod, local elsewhere.
    #[arg(long, env = "PALISADE_APPROVALS", value_enum, default_value_t = Approvals::Auto)]
    approvals: Approvals,
    /// How long decided and expired approval requests stay readable at the admin endpoint
    /// (standalone; in a cluster the operator keeps the history).
    #[arg(long, env = "PALISADE_APPROVAL_RETENTION", default_value = "90d", value_parser = parse_duration)]
    approval_retention: Duration,
    /// Worker threads. One (the default) runs everything on a single thread with no
    /// cross-thread wake-ups, which measured fastest on small pods; raise it for sidecars
    /// with more than a core to spend.
    #[arg(long, env = "PALISADE_WORKERS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
}

#[derive(Clone, Copy, ValueEnum)]
enum Approvals {
    Auto,
    Local,
    Kubernetes,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn parse_service_account(s: &str) -> Result<String, String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(s.to_string())
        }
        _ => Err("expected namespace/name".into()),
    }
}

fn parse_workload(s: &str) -> Result<String, String> {
    match s.split_once('/') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(s.to_string())
        }
        _ => Err("expected Kind/name, e.g. Deployment/checkout".into()),
    }
}

/// Pod labels as `key=value` pairs.
#[derive(Clone, Debug)]
struct Labels(BTreeMap<String, String>);

fn parse_labels(s: &str) -> Result<Labels, String> {
    let mut labels = BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                labels.insert(k.to_string(), v.to_string());
            }
            _ => return Err(format!("{pair:?} is not key=value")),
        }
    }
    Ok(Labels(labels))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 30s, 2m)"))
}

fn init_logging(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) if !f.is_empty() => tracing_subscriber::EnvFilter::try_new(f),
        _ => tracing_subscriber::EnvFilter::try_new(level),
    }
    .context("invalid log filter")?;
    // Logs go to stderr: stdout is the audit stream's.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("palisade-sidecar: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_format, &args.log_level)?;
    let workers = usize::from(args.workers);
    // One worker runs everything on one thread: no cross-thread wake-ups, which on small
    // machines cost more than they parallelise.
    let mut builder = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    let runtime = builder
        .enable_all()
        .thread_stack_size(STACK_BYTES)
        .build()
        .context("starting the runtime")?;
    let opts = Options {
        policy_dir: args.policy_dir,
        secrets_dir: args.secrets_dir,
        listen_address: args.listen_address,
        admin_address: args.admin_address,
        client_tls: args.tls_cert.zip(args.tls_key),
        shutdown_grace: args.shutdown_grace,
        reload_interval: args.reload_interval,
        workload: Identity {
            service_account: args.service_account,
            pod: args.pod.filter(|p| !p.is_empty()),
            workload: args.workload,
            labels: args.pod_labels.map(|l| l.0).unwrap_or_default(),
            ..Identity::default()
        },
        approval_retention: args.approval_retention,
        approvals: match args.approvals {
            Approvals::Local => ApprovalsMode::Local,
            Approvals::Kubernetes => ApprovalsMode::Kubernetes,
            // Every pod's containers get KUBERNETES_SERVICE_HOST from the kubelet.
            Approvals::Auto if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
                ApprovalsMode::Kubernetes
            }
            Approvals::Auto => ApprovalsMode::Local,
        },
    };
    // A current-thread runtime polls on the thread that blocks on it: give that one the
    // same stack as the workers.
    std::thread::Builder::new()
        .name("palisade-sidecar".into())
        .stack_size(STACK_BYTES)
        .spawn(move || runtime.block_on(server::run(opts)))
        .context("starting the main thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the main thread panicked"))?
}

/// Stack for the threads that decide on statements: PostgreSQL's parser (libpg_query)
/// sizes its depth limit to the stack it finds, as the server does, and the tree it hands
/// over is decoded and walked recursively. Virtual memory: only the pages used are touched.
const STACK_BYTES: usize = 64 * 1024 * 1024;
