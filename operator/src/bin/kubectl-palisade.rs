//! `kubectl palisade`: the kubectl plugin. `check` explains, offline, how a policy decides
//! one statement — the way to test a policy before applying it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use palisade_policy::decision::{Action, Decision, Identity, Reason, RuleSet, SearchPath};
use palisade_policy::decision_cache::Engine;
use palisade_policy::{RenderedPolicy, render_files};

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
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kubectl-palisade: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
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
        results.push((policy, decision));
    }
    match args.output {
        Output::Json => {
            let out: Vec<serde_json::Value> = results
                .iter()
                .map(|(p, d)| serde_json::json!({"policy": p.key(), "policyHash": p.policy_hash, "decision": d}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Output::Text => {
            for (p, d) in &results {
                print_text(p, d);
            }
        }
    }
    let denied = results.iter().any(|(_, d)| d.action != Action::Allow);
    Ok(std::process::ExitCode::from(u8::from(denied)))
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
    println!();
}
