//! `kubectl palisade`: the kubectl plugin. `check` explains, offline, how a policy decides
//! one statement — the way to test a policy before applying it; `audit verify` checks an
//! audit log's chain and signed checkpoints (its logic is in `palisade_operator::audit`).

use std::path::PathBuf;

use std::io::Write;

use clap::{Parser, Subcommand, ValueEnum};
use palisade_operator::approvals::{
    Cluster, DecideError, Scope, SidecarEndpoint, print_table_with, read_token,
};
use palisade_policy::analysis::analyze;
use palisade_policy::decision::{Action, Decision, Identity, Reason, RuleSet, SearchPath};
use palisade_policy::decision_cache::Engine;
use palisade_policy::mask_plan::{Catalog, MaskRules};
use palisade_policy::masking::Mask;
use palisade_policy::model::SecretKeyRef;
use palisade_policy::{RenderedPolicy, render_files};
use std::sync::Arc;

/// Palisade's kubectl plugin.
#[derive(Parser)]
#[command(
    name = "kubectl-palisade",
    bin_name = "kubectl palisade",
    version,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Explain the decision for one statement under the given policies, offline.
    Check(CheckArgs),
    /// Work with audit logs.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// List approval requests: statements held until approvers decide (pending ones unless
    /// --all), in the cluster of your kubeconfig or at a standalone sidecar (--sidecar).
    Approvals(ApprovalsArgs),
    /// Approve a held statement, as the identity the API server authenticates from your
    /// kubeconfig (or, with --sidecar, the one your ID token names).
    Approve(DecideArgs),
    /// Deny a held statement, as the identity the API server authenticates from your
    /// kubeconfig (or, with --sidecar, the one your ID token names).
    Deny(DecideArgs),
}

#[derive(clap::Args)]
struct ApprovalsArgs {
    #[command(flatten)]
    target: Target,
    /// Requests in every namespace (cluster only).
    #[arg(short = 'A', long, conflicts_with_all = ["namespace", "sidecar"])]
    all_namespaces: bool,
    /// Settled requests too (Approved, Denied, Expired, Withdrawn), kept as history.
    #[arg(long)]
    all: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(clap::Args)]
struct DecideArgs {
    /// The request's name, as the held statement's notice and `kubectl palisade approvals`
    /// show it.
    name: String,
    /// Recorded with the decision.
    #[arg(long)]
    comment: Option<String>,
    #[command(flatten)]
    target: Target,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// Where the requests are: the cluster of the kubeconfig (default), or a standalone sidecar.
#[derive(clap::Args)]
struct Target {
    /// A standalone sidecar's admin endpoint, e.g. http://127.0.0.1:9187, instead of the
    /// cluster.
    #[arg(long, value_name = "URL", conflicts_with_all = ["kubeconfig", "context", "namespace"])]
    sidecar: Option<String>,
    /// With --sidecar: a file holding your OIDC ID token (`-`: standard input); the sidecar
    /// verifies it and records you as the approver. In a cluster you are who the API server
    /// authenticates from your kubeconfig.
    #[arg(long, value_name = "F", requires = "sidecar")]
    token_file: Option<PathBuf>,
    /// The kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, value_name = "F")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: the current one).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// The namespace of the requests (default: the context's namespace).
    #[arg(short = 'n', long, value_name = "NS")]
    namespace: Option<String>,
}

impl Target {
    async fn cluster(&self) -> anyhow::Result<Cluster> {
        Cluster::connect(self.kubeconfig.as_deref(), self.context.as_deref()).await
    }
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check an audit log's hash chain and signed checkpoints; name the first broken or
    /// missing event.
    #[command(after_long_help = palisade_operator::audit::VERIFY_HELP)]
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// The log files of one stream (the live file and its rotated ones), in any order.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// A trusted public key (PEM, `-----BEGIN PUBLIC KEY-----`); repeat for rotated keys.
    /// Without one, signatures are not checked.
    #[arg(long = "public-key", value_name = "F")]
    public_keys: Vec<PathBuf>,
    /// The log must cover from this time (RFC 3339, or a date YYYY-MM-DD).
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// The log must be sealed through this time (RFC 3339, or a date YYYY-MM-DD).
    #[arg(long, value_name = "T")]
    until: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// DatabasePolicy and MaskingRule YAML files.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1.., value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The SQL to check (several statements separated by `;` are decided as one message).
    #[arg(long)]
    sql: String,
    /// Only this policy (`name` or `namespace/name`), when the files hold several.
    #[arg(long)]
    policy: Option<String>,
    /// Check as this verified (OIDC) user.
    #[arg(long = "as", value_name = "USER")]
    user: Option<String>,
    /// Check as a member of this group (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// The database user the client logs in as.
    #[arg(long, default_value = "app")]
    db_user: String,
    /// The workload's service account, `namespace/name`.
    #[arg(long, value_name = "NS/NAME")]
    service_account: Option<String>,
    /// The session's search_path (comma-separated); default `public`.
    #[arg(long, value_delimiter = ',')]
    search_path: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check(args),
        Command::Audit(AuditCommand::Verify(args)) => audit_verify(args),
        Command::Approvals(args) => approvals(args),
        Command::Approve(args) => decide(args, "Approve"),
        Command::Deny(args) => decide(args, "Deny"),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kubectl-palisade: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Exit status: 0 listed, 2 bad input or no answer (the API server's refusal too: nothing
/// was listed).
fn approvals(args: ApprovalsArgs) -> anyhow::Result<std::process::ExitCode> {
    let target = &args.target;
    let mut items = match &target.sidecar {
        Some(url) => {
            let endpoint = SidecarEndpoint::parse(url)?;
            runtime()?.block_on(endpoint.list())?
        }
        None => runtime()?.block_on(async {
            let cluster = target.cluster().await?;
            let scope = if args.all_namespaces {
                Scope::All
            } else {
                Scope::Namespace(
                    target
                        .namespace
                        .clone()
                        .unwrap_or_else(|| cluster.default_namespace.clone()),
                )
            };
            cluster.list(&scope).await
        })?,
    };
    if !args.all {
        items.retain(|r| r["status"]["state"] == "Pending");
    }
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Json => {
            let list = serde_json::json!({
                "apiVersion": "palisade.dev/v1alpha1",
                "kind": "ApprovalRequestList",
                "items": items,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        }
        Output::Text => print_table_with(
            &items,
            std::time::SystemTime::now(),
            args.all_namespaces,
            &mut out,
        )?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Exit status: 0 decided, 1 refused (by the sidecar, the API server or the approvals
/// webhook), 2 bad input or no answer.
fn decide(args: DecideArgs, verdict: &str) -> anyhow::Result<std::process::ExitCode> {
    let target = &args.target;
    let comment = args.comment.as_deref();
    let request = match &target.sidecar {
        Some(url) => {
            let endpoint = SidecarEndpoint::parse(url)?;
            let Some(token_file) = &target.token_file else {
                anyhow::bail!(
                    "--token-file is required with --sidecar: approvers prove who they are with their OIDC ID token"
                );
            };
            let token = read_token(token_file)?;
            match runtime()?.block_on(endpoint.decide(&args.name, verdict, comment, &token)) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("kubectl-palisade: {e:#}");
                    return Ok(std::process::ExitCode::from(1));
                }
            }
        }
        None => {
            let result = runtime()?.block_on(async {
                let cluster = target.cluster().await?;
                let namespace = target
                    .namespace
                    .clone()
                    .unwrap_or_else(|| cluster.default_namespace.clone());
                cluster
                    .decide(&namespace, &args.name, verdict, comment)
                    .await
            });
            match result {
                Ok(r) => r,
                Err(DecideError::Refused(message)) => {
                    eprintln!("kubectl-palisade: {message}");
                    return Ok(std::process::ExitCode::from(1));
                }
                Err(DecideError::Failed(e)) => return Err(e),
            }
        }
    };
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&request)?)?,
        Output::Text => {
            let decided = request["spec"]["decisions"]
                .as_array()
                .and_then(|d| d.last())
                .and_then(|d| d["user"].as_str())
                .unwrap_or("you");
            writeln!(
                out,
                "approvalrequest/{} {} by {decided}; state: {}",
                args.name,
                if verdict == "Approve" {
                    "approved"
                } else {
                    "denied"
                },
                request["status"]["state"].as_str().unwrap_or("?")
            )?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Exit status: 0 valid, 1 anything invalid, 2 bad input.
fn audit_verify(args: VerifyArgs) -> anyhow::Result<std::process::ExitCode> {
    let request = palisade_operator::audit::VerifyRequest {
        files: args.files,
        public_keys: args.public_keys,
        since: args.since,
        until: args.until,
        json: matches!(args.output, Output::Json),
    };
    let valid = palisade_operator::audit::verify(&request, &mut std::io::stdout().lock())?;
    Ok(std::process::ExitCode::from(u8::from(!valid)))
}

fn load(files: &[PathBuf], only: Option<&str>) -> anyhow::Result<Vec<RenderedPolicy>> {
    let mut policies = render_files(files)?;
    if let Some(want) = only {
        policies.retain(|p| p.name == want || p.key() == want);
        if policies.is_empty() {
            anyhow::bail!("no DatabasePolicy named {want:?} in the given files");
        }
    }
    Ok(policies)
}

/// Exit status: 0 allowed, 1 denied or held for approval, 2 bad input.
fn check(args: CheckArgs) -> anyhow::Result<std::process::ExitCode> {
    let policies = load(&args.files, args.policy.as_deref())?;
    let identity = Identity {
        db_user: args.db_user.clone(),
        service_account: args.service_account.clone(),
        user: args.user.clone(),
        groups: args.groups.clone(),
        ..Identity::default()
    };
    let path = if args.search_path.is_empty() {
        SearchPath::default()
    } else {
        SearchPath {
            schemas: args
                .search_path
                .iter()
                .map(|s| Some(s.trim().to_string()))
                .collect(),
        }
    };
    let mut results = Vec::new();
    for policy in &policies {
        let engine = Engine::new(RuleSet::new(policy));
        let decision = engine.decide_uncached(&identity, &path, &args.sql);
        let masks = mask_report(policy, &identity, &path, &args.sql)?;
        results.push((policy, decision, masks));
    }
    match args.output {
        Output::Json => {
            let out: Vec<serde_json::Value> = results
                .iter()
                .map(|(p, d, m)| serde_json::json!({"policy": p.key(), "policyHash": p.policy_hash, "decision": d, "masking": m}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Output::Text => {
            for (p, d, m) in &results {
                print_text(p, d);
                print_masks(m);
            }
        }
    }
    let denied = results
        .iter()
        .any(|(_, d, m)| d.action != Action::Allow || m.denied.is_some());
    Ok(std::process::ExitCode::from(u8::from(denied)))
}

/// What masking does to one statement's results, as far as it can be known offline (no
/// catalog: `*` and views are resolved by the sidecar against the live database).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct MaskReport {
    /// Masking is on for this identity.
    active: bool,
    /// Why masking refuses the statement.
    denied: Option<String>,
    columns: Vec<MaskedColumn>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct MaskedColumn {
    output: String,
    mask: Option<Mask>,
    rules: Vec<String>,
    sources: Vec<String>,
    computed: bool,
}

fn mask_report(
    policy: &RenderedPolicy,
    identity: &Identity,
    path: &SearchPath,
    sql: &str,
) -> anyhow::Result<MaskReport> {
    // Offline there are no Secrets: Hash masks are shown, not computed.
    let no_key = |_: &SecretKeyRef| -> Result<Arc<[u8]>, String> { Ok(Arc::from(&b""[..])) };
    let rules = MaskRules::for_identity(policy, identity, &no_key).map_err(anyhow::Error::msg)?;
    let mut report = MaskReport {
        active: rules.is_active(),
        denied: None,
        columns: Vec::new(),
    };
    if !rules.has_column_rules() {
        return Ok(report);
    }
    let Ok(statements) = analyze(sql) else {
        return Ok(report);
    };
    let catalog = Catalog::default();
    for info in &statements {
        match rules.plan(info, path, &catalog) {
            Err(denial) => {
                report.denied = Some(format!(
                    "masking rule \"{}\": {}",
                    denial.rule, denial.message
                ));
                report.columns.clear();
                return Ok(report);
            }
            Ok(plan) => {
                for (output, planned) in info.outputs.iter().zip(plan.outputs) {
                    let mask = planned.mask;
                    report.columns.push(MaskedColumn {
                        output: match (&output.name, &output.star) {
                            (Some(name), _) => name.clone(),
                            (None, Some(_)) => "*".into(),
                            (None, None) => "?column?".into(),
                        },
                        rules: mask.iter().flat_map(|m| m.rules.iter().cloned()).collect(),
                        sources: mask
                            .iter()
                            .flat_map(|m| m.columns.iter().cloned())
                            .collect(),
                        mask: mask.map(|m| m.mask),
                        computed: output.computed,
                    });
                }
            }
        }
    }
    Ok(report)
}

fn print_masks(m: &MaskReport) {
    if let Some(denied) = &m.denied {
        println!("masking:     denied by {denied}");
    } else {
        for c in &m.columns {
            let how = match &c.mask {
                Some(mask) => format!(
                    "{} ({}; from {})",
                    serde_json::to_string(mask).unwrap_or_default(),
                    c.rules.join(", "),
                    c.sources.join(", ")
                ),
                None => "raw".into(),
            };
            println!("mask:        {:<12} {how}", c.output);
        }
        if m.columns.iter().any(|c| c.mask.is_some()) {
            println!(
                "             (offline: `*` and views are resolved by the sidecar against the live catalog)"
            );
        }
    }
    println!();
}

fn print_text(policy: &RenderedPolicy, d: &Decision) {
    let list = |s: &std::collections::BTreeSet<String>| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    let why = match &d.reason {
        Reason::Rule { rule } => format!("rule \"{rule}\""),
        Reason::Default => format!(
            "no rule matched: defaultAction {:?}",
            policy.spec.default_action
        ),
        Reason::ParseError { message } => format!(
            "SQL could not be analysed (onParseError {:?}): {message}",
            policy.spec.on_parse_error
        ),
        Reason::TooLong { bytes, limit } => {
            format!("{bytes} bytes exceeds limits.maxStatementBytes {limit}")
        }
        Reason::ServerRejects { message } => {
            format!(
                "PostgreSQL's grammar rejects it, so the server answers with its own error: {message}"
            )
        }
    };
    println!("policy:      {}", policy.key());
    println!("decision:    {:?}", d.action);
    println!("because:     {why}");
    if let Some(m) = &d.message {
        println!("message:     {m}");
    }
    let ops: Vec<String> = d.operations.iter().map(|o| format!("{o:?}")).collect();
    println!(
        "operations:  {}",
        if ops.is_empty() {
            "-".into()
        } else {
            ops.join(", ")
        }
    );
    println!("reads:       {}", list(&d.read));
    println!("writes:      {}", list(&d.written));
    println!("columns:     {}", list(&d.columns));
}
