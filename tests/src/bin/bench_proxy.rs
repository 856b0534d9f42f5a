//! `bench-proxy`: pgbench through the sidecar, against PostgreSQL directly
//! and through PgBouncer, on one throwaway cluster; with `--policy`, also
//! through a second sidecar enforcing a real policy.
//!
//! Run it in release (`cargo run --release -p palisade-tests --bin
//! bench-proxy -- --help`): the sidecar binary is built with the profile
//! this crate was built with, and a debug sidecar says nothing about
//! production throughput.
//!
//! The targets are measured in turn within each round (direct, sidecar,
//! sidecar+policy, PgBouncer, direct, sidecar, ...) so that drift on a
//! shared, noisy machine hits all of them alike. Progress goes to stderr; the
//! result table (or JSON) goes to stdout.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, ValueEnum, value_parser};
use palisade_policy::decision::{Action, Identity, RuleSet, SearchPath};
use palisade_policy::decision_cache::Engine;
use palisade_policy::{parse_manifests, render_all};
use palisade_tests::free_port;
use palisade_tests::pg::{PgCluster, SUPERUSER};
use palisade_tests::sidecar::{Sidecar, SidecarOptions};
use serde_json::{Value, json};

/// The sidecar target's policy: no rules, a plain pass-through to the
/// cluster (statements are still parsed and decided).
const MINIMAL_POLICY: &str = "\
apiVersion: palisade.dev/v1alpha1
kind: DatabasePolicy
metadata: {name: bench, namespace: default}
spec:
  listen: {port: ${LISTEN_PORT}}
  database: {host: 127.0.0.1, port: ${PG_PORT}, tls: {mode: Disable}}
";

/// What pgbench and this driver send through a sidecar in a select-only
/// run: `-M simple`, `-M extended`/`prepared`, pgbench's scale check, and
/// the readiness query. A `--policy` must allow them all.
const SENT_STATEMENTS: [&str; 4] = [
    "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
    "select count(*) from pgbench_branches",
    "SELECT 1",
];

/// The client count whose sidecar+policy / sidecar ratio gets a summary
/// line (the largest one run stands in when it wasn't).
const SUMMARY_CLIENTS: u32 = 8;

/// PgBouncer's `default_pool_size`; in session mode a client beyond it waits
/// for a server connection that a `-T` run never gives back, so client
/// counts are capped at it.
const POOL_SIZE: u32 = 100;

/// How often the sidecar's VmRSS is sampled during the largest-client runs.
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// How often a running child is checked for exit, interruption and timeout.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// Set by the signal thread on SIGINT or SIGTERM; long waits poll it and
/// return an error, so that every destructor runs and nothing is left behind.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Benchmark the palisade sidecar against direct PostgreSQL and PgBouncer.
///
/// Starts a throwaway PostgreSQL cluster and fills it with `pgbench -i -s
/// SCALE`, then starts the sidecar (with a policy without rules) and
/// PgBouncer (session pooling) in front of it, and runs pgbench's
/// select-only script (`-S`) for every query mode and client count against
/// all targets, interleaved within each round. With --policy a second
/// sidecar enforcing that policy is a fourth target, "sidecar+policy", and
/// its TPS is compared with the first sidecar's. Reports per cell the median
/// TPS over rounds and p50/p99 latency over all transactions of all rounds
/// (from pgbench's per-transaction log), the latency the sidecar adds at 1
/// client, and the sidecars' memory use.
///
/// Everything runs in temporary directories and is stopped and removed on
/// exit, on error and on Ctrl-C. PgBouncer is optional: without it
/// (/usr/sbin/pgbouncer or `pgbouncer` on PATH) the other targets run
/// without it. Progress goes to stderr, results to stdout.
///
/// With --connect-per-transaction it measures connection set-up instead:
/// `pgbench -C` with a script of `SELECT 1`, and the average connection time
/// pgbench prints, median over rounds, per target.
#[derive(Parser, Debug)]
#[command(name = "bench-proxy", version)]
struct Args {
    /// pgbench query modes to run (-M), comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "MODES",
        default_value = "simple,extended,prepared"
    )]
    modes: Vec<Mode>,

    /// Client counts to run (-c), comma-separated, each 1-100; pgbench gets
    /// -j min(clients, 2) threads.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "COUNTS",
        default_value = "1,8,32",
        value_parser = value_parser!(u32).range(1..=POOL_SIZE as i64)
    )]
    clients: Vec<u32>,

    /// Length of each measured pgbench run (-T), in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = value_parser!(u64).range(1..=3600))]
    duration: u64,

    /// Measured runs per mode, client count and target; TPS is the median
    /// over rounds.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = value_parser!(u32).range(1..=100))]
    rounds: u32,

    /// pgbench scale factor for `pgbench -i` (1 = 100,000 rows in
    /// pgbench_accounts).
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = value_parser!(u32).range(1..=10_000))]
    scale: u32,

    /// Unmeasured select-only load on each target before the first measured
    /// run, in seconds, to warm caches and connections (0 = none).
    #[arg(long, value_name = "SECS", default_value_t = 2,
          value_parser = value_parser!(u64).range(0..=600))]
    warmup: u64,

    /// Adds a fourth target, sidecar+policy: a second sidecar enforcing this
    /// DatabasePolicy YAML (e.g. tests/bench/policy-20-rules.yaml), compared
    /// with the first, whose policy has no rules. The literal strings
    /// ${LISTEN_PORT} (required) and ${PG_PORT} in it are replaced with that
    /// sidecar's listen port and the cluster's port. It must allow what
    /// pgbench -S sends, which is checked before anything starts.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,

    /// Extra argument for `palisade-sidecar run`, repeatable, in order (e.g.
    /// --sidecar-arg=--workers=1). Unless one of them sets --log-level,
    /// `--log-level warn` is passed so that logging stays off the data path.
    #[arg(
        long = "sidecar-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        action = clap::ArgAction::Append
    )]
    sidecar_args: Vec<String>,

    /// Measure connection set-up: every transaction opens a new connection,
    /// runs `SELECT 1` and disconnects (pgbench -C), and each target's
    /// average connection time (as pgbench prints it) is reported, median
    /// over rounds. With --policy, the policy's cost at connection set-up
    /// (e.g. tests/bench/policy-masking.yaml: masking's catalog snapshot).
    #[arg(long)]
    connect_per_transaction: bool,

    /// Output format for the results.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = Output::Table)]
    output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Simple,
    Extended,
    Prepared,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Simple => "simple",
            Mode::Extended => "extended",
            Mode::Prepared => "prepared",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    /// A markdown table and summary lines.
    Table,
    /// One JSON document.
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Direct,
    Sidecar,
    /// The second sidecar, enforcing `--policy`.
    SidecarPolicy,
    PgBouncer,
}

impl Target {
    /// In the order they run within a round.
    const ALL: [Target; 4] = [
        Target::Direct,
        Target::Sidecar,
        Target::SidecarPolicy,
        Target::PgBouncer,
    ];

    fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Sidecar => "sidecar",
            Target::SidecarPolicy => "sidecar-policy",
            Target::PgBouncer => "pgbouncer",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Sidecar => "sidecar",
            Target::SidecarPolicy => "sidecar+policy",
            Target::PgBouncer => "PgBouncer",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            eprintln!("bench-proxy: {}", one_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("bench-proxy: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = watch_signals() {
        eprintln!(
            "bench-proxy: warning: cannot handle Ctrl-C, an interrupt may leave processes behind: {e:#}"
        );
    }
    match run(&config) {
        Ok(report) => {
            match config.output {
                Output::Table => print!("{}", report.table()),
                // A Value's alternate Display is pretty JSON, with no error to handle.
                Output::Json => println!("{:#}", report.json()),
            }
            if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "bench-proxy: {} run(s) failed; their cells are incomplete",
                    report.errors.len()
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("bench-proxy: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// clap's message without its usage and tips, on one line.
fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .take_while(|line| !line.starts_with("Usage:"))
        .map(str::trim)
        .filter(|line| {
            !line.is_empty()
                && !line.starts_with("tip:")
                && !line.starts_with("For more information")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The validated options.
struct Config {
    modes: Vec<Mode>,
    clients: Vec<u32>,
    duration: u64,
    rounds: u32,
    scale: u32,
    warmup: u64,
    /// `--policy`: its path, its text with placeholders, and its rule count.
    policy: Option<PolicyFile>,
    sidecar_args: Vec<String>,
    connect: bool,
    output: Output,
}

struct PolicyFile {
    path: PathBuf,
    template: String,
    rules: usize,
}

impl Config {
    fn from_args(args: Args) -> Result<Config> {
        let policy = args.policy.map(PolicyFile::load).transpose()?;
        let mut sidecar_args = args.sidecar_args;
        if !sidecar_args
            .iter()
            .any(|a| a == "--log-level" || a.starts_with("--log-level="))
        {
            sidecar_args.splice(0..0, ["--log-level".to_owned(), "warn".to_owned()]);
        }
        Ok(Config {
            modes: dedup(args.modes),
            clients: dedup(args.clients),
            duration: args.duration,
            rounds: args.rounds,
            scale: args.scale,
            warmup: args.warmup,
            policy,
            sidecar_args,
            connect: args.connect_per_transaction,
            output: args.output,
        })
    }

    /// The client count whose sidecar runs get their RSS sampled.
    fn sampled_clients(&self) -> u32 {
        self.clients.iter().copied().max().unwrap_or(1)
    }
}

impl PolicyFile {
    /// Reads `--policy` and checks, before the slow setup starts, that it is
    /// one valid DatabasePolicy that lets pgbench's statements through (as
    /// the superuser pgbench connects as; a `--service-account` given with
    /// --sidecar-arg is not taken into account).
    fn load(path: PathBuf) -> Result<PolicyFile> {
        let shown = format!("--policy {}", path.display());
        let template = fs::read_to_string(&path).with_context(|| shown.clone())?;
        if !template.contains("${LISTEN_PORT}") {
            bail!("{shown}: no ${{LISTEN_PORT}} in it, so the sidecar's port is unknown");
        }
        let text = fill_policy(&template, 6432, 5432);
        let origin = path.display().to_string();
        let manifests = parse_manifests(&origin, &text).with_context(|| shown.clone())?;
        let rendered = render_all(&origin, &manifests).with_context(|| shown.clone())?;
        let [policy] = &rendered[..] else {
            bail!(
                "{shown}: {} DatabasePolicies in it, expected one",
                rendered.len()
            );
        };
        let engine = Engine::new(RuleSet::new(policy));
        let superuser = Identity {
            db_user: SUPERUSER.to_owned(),
            ..Identity::default()
        };
        for sql in SENT_STATEMENTS {
            let d = engine.decide_uncached(&superuser, &SearchPath::default(), sql);
            if d.action != Action::Allow {
                bail!(
                    "{shown}: it does not allow {sql:?}, which pgbench -S sends ({:?}, {:?})",
                    d.action,
                    d.reason
                );
            }
        }
        Ok(PolicyFile {
            rules: policy.spec.rules.len(),
            path,
            template,
        })
    }
}

/// A policy template with its placeholders filled in.
fn fill_policy(template: &str, listen_port: u16, pg_port: u16) -> String {
    template
        .replace("${LISTEN_PORT}", &listen_port.to_string())
        .replace("${PG_PORT}", &pg_port.to_string())
}

fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Turns SIGINT and SIGTERM into [`INTERRUPTED`]; a second signal exits at
/// once. The handlers are installed before this returns.
fn watch_signals() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("signal runtime")?;
    let (mut int, mut term) = {
        let _guard = runtime.enter();
        (
            signal(SignalKind::interrupt()).context("SIGINT handler")?,
            signal(SignalKind::terminate()).context("SIGTERM handler")?,
        )
    };
    std::thread::spawn(move || {
        runtime.block_on(async {
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                if INTERRUPTED.swap(true, Ordering::SeqCst) {
                    eprintln!("bench-proxy: interrupted again, exiting without cleanup");
                    std::process::exit(130);
                }
                eprintln!("bench-proxy: interrupted, cleaning up");
            }
        })
    });
    Ok(())
}

fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Everything measured, ready to print.
struct Report {
    cells: Vec<Cell>,
    pgbouncer_ran: bool,
    pgbouncer_note: Option<String>,
    /// The sidecar's, then (with --policy) the sidecar+policy's.
    rss: Rss,
    policy_rss: Option<Rss>,
    machine: Machine,
    errors: Vec<String>,
    config: ConfigSummary,
}

struct ConfigSummary {
    duration: u64,
    rounds: u32,
    scale: u32,
    warmup: u64,
    sampled_clients: u32,
    /// `--policy` and its rule count.
    policy: Option<(PathBuf, usize)>,
    sidecar_args: Vec<String>,
    connect: bool,
}

struct Cell {
    mode: Mode,
    clients: u32,
    /// Indexed by [`Target::index`].
    targets: [Runs; 4],
}

/// One target's measured runs in one cell.
#[derive(Default)]
struct Runs {
    tps: Vec<f64>,
    latencies_us: Vec<u32>,
    /// For a sidecar: its own CPU time (user + system) per transaction, in µs, per round.
    /// Far steadier than TPS on a noisy machine, so it is what shows a policy's cost.
    cpu_us_per_txn: Vec<f64>,
    /// With --connect-per-transaction: pgbench's average connection time, ms, per round.
    connect_ms: Vec<f64>,
}

struct Summary {
    tps_median: f64,
    tps_rounds: Vec<f64>,
    /// Median over rounds of the average connection time, with --connect-per-transaction.
    connect_ms: Option<f64>,
    connect_ms_rounds: Vec<f64>,
    p50_us: u32,
    p99_us: u32,
    transactions: usize,
}

impl Runs {
    /// `None` when no round of this target succeeded (or it didn't run).
    fn summary(&self) -> Option<Summary> {
        if self.tps.is_empty() || self.latencies_us.is_empty() {
            return None;
        }
        let mut lat = self.latencies_us.clone();
        lat.sort_unstable();
        Some(Summary {
            tps_median: median(&self.tps),
            tps_rounds: self.tps.clone(),
            connect_ms: (!self.connect_ms.is_empty()).then(|| median(&self.connect_ms)),
            connect_ms_rounds: self.connect_ms.clone(),
            p50_us: percentile(&lat, 50.0),
            p99_us: percentile(&lat, 99.0),
            transactions: lat.len(),
        })
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile of sorted, non-empty values.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Default)]
struct Rss {
    idle_mib: Option<f64>,
    max_sampled_mib: Option<f64>,
    samples: usize,
    peak_hwm_mib: Option<f64>,
}

struct Machine {
    nproc: usize,
    cpu: Option<String>,
    kernel: String,
    postgres: String,
    pgbouncer: Option<String>,
}

fn run(config: &Config) -> Result<Report> {
    let total_runs = config.modes.len() * config.clients.len() * config.rounds as usize;
    let bouncer_binary = find_pgbouncer();

    eprintln!("bench-proxy: starting PostgreSQL");
    let pg = PgCluster::start(false).context("start PostgreSQL")?;
    check_interrupted()?;
    let pgbench_bin = pg.bin_dir.join("pgbench");
    if !pgbench_bin.is_file() {
        bail!("pgbench not found at {}", pgbench_bin.display());
    }
    let work = tempfile::Builder::new()
        .prefix("palisade-bench-")
        .tempdir()
        .context("create temporary directory for pgbench")?;

    // What each transaction of a --connect-per-transaction run sends.
    let connect_script = if config.connect {
        let path = work.path().join("select-1.sql");
        fs::write(&path, "SELECT 1;\n").context("write the SELECT 1 script")?;
        Some(path)
    } else {
        None
    };

    eprintln!(
        "bench-proxy: pgbench -i -s {} (this takes a while)",
        config.scale
    );
    let init = run_polled(
        pgbench(&pg, pg.port)
            .args(["-i", "-s", &config.scale.to_string(), "-q"])
            .arg("postgres"),
        work.path(),
        "init",
        Duration::from_secs(3600),
        || {},
    )?;
    if !init.status.success() {
        bail!("pgbench -i failed ({}):\n{}", init.status, init.stderr);
    }
    check_interrupted()?;

    eprintln!("bench-proxy: starting the sidecar (cargo builds it first if needed)");
    if std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty()) {
        eprintln!(
            "bench-proxy: note: RUST_LOG is set, so the sidecar logs by it rather than by --log-level"
        );
    }
    let mut sidecar = start_sidecar(&pg, MINIMAL_POLICY, config, Target::Sidecar)?;
    check_interrupted()?;
    let mut policy_sidecar = match &config.policy {
        Some(policy) => {
            eprintln!(
                "bench-proxy: starting the sidecar+policy ({}, {} rules)",
                policy.path.display(),
                policy.rules
            );
            if !policy.template.contains("${PG_PORT}") {
                eprintln!(
                    "bench-proxy: note: the policy has no ${{PG_PORT}}; it must point at the throwaway cluster some other way"
                );
            }
            let started = start_sidecar(&pg, &policy.template, config, Target::SidecarPolicy)?;
            check_interrupted()?;
            Some(started)
        }
        None => None,
    };

    let mut pgbouncer_note = None;
    let mut bouncer = match &bouncer_binary {
        Some(binary) => {
            eprintln!("bench-proxy: starting PgBouncer ({})", binary.display());
            let bouncer = PgBouncer::start(binary, pg.port).context("start PgBouncer")?;
            pg.psql_with(&conn_str(bouncer.port), "SELECT 1")
                .context("query through PgBouncer")?;
            Some(bouncer)
        }
        None => {
            let note = "PgBouncer not found (no /usr/sbin/pgbouncer, none on PATH; Debian package `pgbouncer`): running without it".to_owned();
            eprintln!("bench-proxy: {note}");
            pgbouncer_note = Some(note);
            None
        }
    };
    let targets: Vec<Target> = Target::ALL
        .into_iter()
        .filter(|t| match t {
            Target::Direct | Target::Sidecar => true,
            Target::SidecarPolicy => policy_sidecar.is_some(),
            Target::PgBouncer => bouncer.is_some(),
        })
        .collect();
    let ports = (
        pg.port,
        sidecar.port,
        policy_sidecar.as_ref().map_or(0, |s| s.port),
        bouncer.as_ref().map_or(0, |b| b.port),
    );
    let port_of = |t: Target| match t {
        Target::Direct => ports.0,
        Target::Sidecar => ports.1,
        Target::SidecarPolicy => ports.2,
        Target::PgBouncer => ports.3,
    };

    let idle = |s: &Sidecar| Rss {
        idle_mib: proc_status_mib(s.pid(), "VmRSS"),
        ..Rss::default()
    };
    let mut rss = idle(&sidecar);
    let mut policy_rss = policy_sidecar.as_ref().map(idle);

    if config.warmup > 0 {
        for &target in &targets {
            check_interrupted()?;
            eprintln!(
                "bench-proxy: warm-up, {} s on {}",
                config.warmup,
                target.label()
            );
            let port = port_of(target);
            let out = run_polled(
                pgbench(&pg, port)
                    .args(["-S", "-M", "simple", "-c", "2", "-j", "2", "-n"])
                    .args(["-T", &config.warmup.to_string()])
                    .arg("postgres"),
                work.path(),
                &format!("warmup-{}", target.name()),
                Duration::from_secs(config.warmup + 60),
                || {},
            )?;
            if !out.status.success() {
                bail!(
                    "warm-up on {} failed ({}):\n{}",
                    target.label(),
                    out.status,
                    out.stderr
                );
            }
        }
    }

    let estimate = total_runs as u64 * targets.len() as u64 * (config.duration + 1);
    eprintln!(
        "bench-proxy: {} measured runs of {} s, about {}",
        total_runs * targets.len(),
        config.duration,
        if estimate < 120 {
            format!("{estimate} s")
        } else {
            format!("{} min", estimate.div_ceil(60))
        }
    );

    let sampled_clients = config.sampled_clients();
    let mut cells = Vec::new();
    let mut errors = Vec::new();
    let mut done = 0;
    for &mode in &config.modes {
        for &clients in &config.clients {
            let mut cell = Cell {
                mode,
                clients,
                targets: Default::default(),
            };
            for round in 1..=config.rounds {
                for &target in &targets {
                    check_interrupted()?;
                    done += 1;
                    let tag = format!("{}-{}-{clients}-{round}", target.name(), mode.name());
                    let port = port_of(target);
                    // The sidecar under test, if any, and where its RSS samples go.
                    let (pid, mut rss_slot) = match target {
                        Target::Sidecar => (Some(sidecar.pid()), Some(&mut rss)),
                        Target::SidecarPolicy => (
                            policy_sidecar.as_ref().map(Sidecar::pid),
                            policy_rss.as_mut(),
                        ),
                        Target::Direct | Target::PgBouncer => (None, None),
                    };
                    if clients != sampled_clients {
                        rss_slot = None;
                    }
                    let mut last_sample: Option<Instant> = None;
                    let mut tick = || {
                        let (Some(pid), Some(rss)) = (pid, rss_slot.as_deref_mut()) else {
                            return;
                        };
                        if last_sample.is_some_and(|t| t.elapsed() < RSS_SAMPLE_EVERY) {
                            return;
                        }
                        last_sample = Some(Instant::now());
                        if let Some(mib) = proc_status_mib(pid, "VmRSS") {
                            rss.samples += 1;
                            rss.max_sampled_mib =
                                Some(rss.max_sampled_mib.map_or(mib, |m: f64| m.max(mib)));
                        }
                    };
                    let cpu_before = pid.and_then(proc_cpu_ticks);
                    let result = measure(
                        &pg,
                        port,
                        mode,
                        clients,
                        config.duration,
                        connect_script.as_deref(),
                        work.path(),
                        &tag,
                        &mut tick,
                    );
                    let progress = format!(
                        "[{done:>3}/{}] {:<8} c={clients:<3} round {round}/{} {:<14}",
                        total_runs * targets.len(),
                        mode.name(),
                        config.rounds,
                        target.label()
                    );
                    match result {
                        Ok((tps, mut latencies, connect_ms)) => {
                            let connect = connect_ms
                                .map(|ms| format!(", {ms:.3} ms per connection"))
                                .unwrap_or_default();
                            eprintln!(
                                "{progress} {tps:>9.0} tps, {} transactions{connect}",
                                latencies.len()
                            );
                            let runs = &mut cell.targets[target.index()];
                            runs.connect_ms.extend(connect_ms);
                            if let (Some(before), Some(after)) =
                                (cpu_before, pid.and_then(proc_cpu_ticks))
                                && !latencies.is_empty()
                            {
                                let micros =
                                    (after - before) as f64 * 1e6 / clock_ticks_per_second();
                                runs.cpu_us_per_txn.push(micros / latencies.len() as f64);
                            }
                            runs.tps.push(tps);
                            runs.latencies_us.append(&mut latencies);
                        }
                        Err(e) => {
                            check_interrupted()?;
                            eprintln!("{progress} FAILED: {e:#}");
                            errors.push(format!(
                                "{} {} c={clients} round {round}: {e:#}",
                                target.label(),
                                mode.name()
                            ));
                        }
                    }
                    // A dead proxy would fail every later run the same way.
                    for (s, what) in [
                        (Some(&mut sidecar), "sidecar"),
                        (policy_sidecar.as_mut(), "sidecar+policy"),
                    ] {
                        if let Some(s) = s
                            && let Some(status) = s.wait_exit(Duration::ZERO)
                        {
                            bail!(
                                "the {what} exited ({status}); log:\n{}",
                                log_excerpt(&s.logs())
                            );
                        }
                    }
                    if let Some(b) = &mut bouncer {
                        b.check_alive()?;
                    }
                }
            }
            cells.push(cell);
        }
    }
    rss.peak_hwm_mib = proc_status_mib(sidecar.pid(), "VmHWM");
    if let (Some(rss), Some(s)) = (&mut policy_rss, &policy_sidecar) {
        rss.peak_hwm_mib = proc_status_mib(s.pid(), "VmHWM");
    }

    Ok(Report {
        cells,
        pgbouncer_ran: bouncer.is_some(),
        pgbouncer_note,
        rss,
        policy_rss,
        machine: Machine::describe(&pg, bouncer_binary.as_deref()),
        errors,
        config: ConfigSummary {
            duration: config.duration,
            rounds: config.rounds,
            scale: config.scale,
            warmup: config.warmup,
            sampled_clients,
            policy: config.policy.as_ref().map(|p| (p.path.clone(), p.rules)),
            sidecar_args: config.sidecar_args.clone(),
            connect: config.connect,
        },
    })
}

/// A sidecar with `template` as its policy, checked with one query.
fn start_sidecar(
    pg: &PgCluster,
    template: &str,
    config: &Config,
    target: Target,
) -> Result<Sidecar> {
    let what = target.label();
    let port = free_port();
    let sidecar = Sidecar::start(SidecarOptions {
        policy_yaml: fill_policy(template, port, pg.port),
        port,
        extra_args: config.sidecar_args.clone(),
        ..Default::default()
    })
    .with_context(|| format!("start the {what}"))?;
    pg.psql_with(&sidecar.conn_str(SUPERUSER, None, "postgres"), "SELECT 1")
        .with_context(|| {
            format!(
                "query through the {what}; its log:\n{}",
                log_excerpt(&sidecar.logs())
            )
        })?;
    Ok(sidecar)
}

fn conn_str(port: u16) -> String {
    format!("host=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres")
}

/// pgbench against 127.0.0.1:`port` as the superuser, in its own process
/// group (a Ctrl-C is ours to handle) and without the caller's PG*
/// variables, which could point it elsewhere or change its settings.
fn pgbench(pg: &PgCluster, port: u16) -> Command {
    let mut cmd = Command::new(pg.bin_dir.join("pgbench"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            cmd.env_remove(name);
        }
    }
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", SUPERUSER])
        .stdin(Stdio::null())
        .process_group(0);
    cmd
}

/// One measured run: its TPS, every transaction's latency, and with a
/// `connect_script` (run on a new connection per transaction, pgbench -C)
/// the average connection time in ms. Without one it is select-only (-S).
#[allow(clippy::too_many_arguments)]
fn measure(
    pg: &PgCluster,
    port: u16,
    mode: Mode,
    clients: u32,
    duration: u64,
    connect_script: Option<&Path>,
    dir: &Path,
    tag: &str,
    tick: &mut dyn FnMut(),
) -> Result<(f64, Vec<u32>, Option<f64>)> {
    let prefix = dir.join(tag);
    let threads = clients.min(2);
    let mut cmd = pgbench(pg, port);
    match connect_script {
        Some(script) => cmd.arg("-C").arg("-f").arg(script),
        None => cmd.arg("-S"),
    };
    let out = run_polled(
        cmd.args(["-M", mode.name(), "-n", "-l"])
            .args(["-c", &clients.to_string(), "-j", &threads.to_string()])
            .args(["-T", &duration.to_string()])
            .arg("--log-prefix")
            .arg(&prefix)
            .arg("postgres"),
        dir,
        tag,
        Duration::from_secs(duration + 60),
        tick,
    );
    // The logs are read even after a failure, to delete them.
    let latencies = take_latencies(dir, tag);
    let out = out?;
    if !out.status.success() {
        bail!(
            "pgbench exited with {}: {}",
            out.status,
            tail(&out.stderr, 5).trim()
        );
    }
    let tps = parse_tps(&out.stdout)
        .ok_or_else(|| anyhow!("no `tps = ...` line in pgbench's output:\n{}", out.stdout))?;
    let latencies = latencies?;
    if latencies.is_empty() {
        bail!("pgbench logged no transactions");
    }
    let connect_ms = match connect_script {
        Some(_) => Some(parse_connection_ms(&out.stdout).ok_or_else(|| {
            anyhow!(
                "no `average connection time = ...` line in pgbench's output:\n{}",
                out.stdout
            )
        })?),
        None => None,
    };
    Ok((tps, latencies, connect_ms))
}

/// `tps = 1234.5 (without initial connection time)`, or with -C `tps = 63.9
/// (including reconnection times)`.
fn parse_tps(stdout: &str) -> Option<f64> {
    stdout.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("tps = ")?;
        let (number, note) = rest.split_once(' ')?;
        if !note.contains("without initial connection time")
            && !note.contains("including reconnection times")
        {
            return None;
        }
        number.parse().ok()
    })
}

/// `average connection time = 12.854 ms`, which pgbench -C prints.
fn parse_connection_ms(stdout: &str) -> Option<f64> {
    stdout.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("average connection time = ")?;
        rest.strip_suffix(" ms")?.parse().ok()
    })
}

/// Latencies (µs, the third field) from pgbench's per-transaction logs
/// `<dir>/<tag>.<pid>` and, one per extra thread, `<dir>/<tag>.<pid>.<n>`;
/// the files are deleted. Failed or skipped transactions carry a word
/// instead of a number there and are left out.
fn take_latencies(dir: &Path, tag: &str) -> Result<Vec<u32>> {
    let prefix = format!("{tag}.");
    let mut latencies = Vec::new();
    let mut files = 0;
    for entry in fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(suffix) = name.strip_prefix(&prefix) else {
            continue;
        };
        // `<pid>` or `<pid>.<thread>`, not our `.out`/`.err` captures.
        if !suffix.split('.').all(|p| p.parse::<u32>().is_ok()) {
            continue;
        }
        files += 1;
        let path = entry.path();
        let read = parse_latencies(&path, &mut latencies);
        let _ = fs::remove_file(&path);
        read?;
    }
    if files == 0 {
        bail!("pgbench wrote no per-transaction log ({tag}.*)");
    }
    Ok(latencies)
}

fn parse_latencies(path: &Path, out: &mut Vec<u32>) -> Result<()> {
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    for line in BufReader::new(file).lines() {
        let line = line.with_context(|| format!("read {}", path.display()))?;
        if let Some(us) = line
            .split_ascii_whitespace()
            .nth(2)
            .and_then(|f| f.parse::<u32>().ok())
        {
            out.push(us);
        }
    }
    Ok(())
}

struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to completion with stdout and stderr in `<dir>/<name>.out`
/// and `.err` (files rather than pipes, so a chatty child can never block
/// on a full pipe), calling `tick` about every [`POLL_EVERY`]. The child is
/// killed on timeout and on interruption, both of which are errors.
fn run_polled(
    cmd: &mut Command,
    dir: &Path,
    name: &str,
    timeout: Duration,
    mut tick: impl FnMut(),
) -> Result<Finished> {
    let out_path = dir.join(format!("{name}.out"));
    let err_path = dir.join(format!("{name}.err"));
    let out = File::create(&out_path).with_context(|| format!("create {}", out_path.display()))?;
    let err = File::create(&err_path).with_context(|| format!("create {}", err_path.display()))?;
    let mut child = cmd
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("spawn {cmd:?}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("interrupted");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{name}: still running after {} s, killed",
                timeout.as_secs()
            );
        }
        tick();
        std::thread::sleep(POLL_EVERY);
    };
    let read = |path: &Path| {
        let text = fs::read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let _ = fs::remove_file(path);
        text
    };
    Ok(Finished {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The first panic in a sidecar log (its message, not the backtrace that
/// RUST_BACKTRACE adds), or else the last lines.
fn log_excerpt(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    match lines.iter().position(|l| l.contains(" panicked at ")) {
        Some(i) => lines[i..lines.len().min(i + 2)].join("\n"),
        None => tail(log, 20),
    }
}

/// A field of /proc/<pid>/status given in kB (VmRSS, VmHWM), in MiB.
/// utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat).
fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it follow its `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `getconf CLK_TCK`; 100 on every Linux this runs on, asked rather than assumed.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn proc_status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kb: f64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kb / 1024.0)
    })
}

fn find_pgbouncer() -> Option<PathBuf> {
    let sbin = PathBuf::from("/usr/sbin/pgbouncer");
    if sbin.is_file() {
        return Some(sbin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("pgbouncer"))
        .find(|path| path.is_file())
}

fn effective_uid_is_root() -> bool {
    // "Uid:\treal\teffective\tsaved\tfs"
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// PgBouncer in session mode in front of the cluster, in a temporary
/// directory, in the foreground as our child; stopped on drop.
struct PgBouncer {
    port: u16,
    child: Child,
    /// Through `runuser`, which forks: a SIGKILL to our child would orphan
    /// PgBouncer, see [`stop_child`].
    via_runuser: bool,
    /// Declared after `child` so that it is removed after the child stopped.
    dir: tempfile::TempDir,
}

impl PgBouncer {
    const START_TIMEOUT: Duration = Duration::from_secs(15);
    const STOP_TIMEOUT: Duration = Duration::from_secs(5);

    /// PgBouncer refuses to run as root, so as root it runs as `postgres`
    /// through `runuser` and its directory is handed to that user. The port
    /// is picked before PgBouncer binds it; if another process takes it in
    /// between, another is tried.
    fn start(binary: &Path, pg_port: u16) -> Result<PgBouncer> {
        let dir = tempfile::Builder::new()
            .prefix("palisade-pgbouncer-")
            .tempdir()
            .context("create temporary directory for PgBouncer")?;
        let via_runuser = effective_uid_is_root();
        fs::write(
            dir.path().join("userlist.txt"),
            format!("\"{SUPERUSER}\" \"\"\n"),
        )
        .context("write userlist.txt")?;
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            let mut child = spawn_pgbouncer(binary, dir.path(), port, pg_port, via_runuser)?;
            match wait_pgbouncer(&mut child, port) {
                Ok(()) => {
                    return Ok(PgBouncer {
                        port,
                        child,
                        via_runuser,
                        dir,
                    });
                }
                Err(e) => {
                    stop_child(&mut child, via_runuser);
                    let logs = pgbouncer_logs(dir.path());
                    if attempt == ATTEMPTS || !logs.contains("Address already in use") {
                        return Err(e.context(format!("PgBouncer log:\n{}", tail(&logs, 30))));
                    }
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// An error if PgBouncer has exited.
    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "PgBouncer exited ({status}); log tail:\n{}",
                tail(&pgbouncer_logs(self.dir.path()), 30)
            );
        }
        Ok(())
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        stop_child(&mut self.child, self.via_runuser);
    }
}

fn spawn_pgbouncer(
    binary: &Path,
    dir: &Path,
    port: u16,
    pg_port: u16,
    via_runuser: bool,
) -> Result<Child> {
    let d = dir.display();
    let ini = format!(
        "[databases]\n\
         postgres = host=127.0.0.1 port={pg_port} dbname=postgres\n\
         \n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {d}/userlist.txt\n\
         pool_mode = session\n\
         max_client_conn = 200\n\
         default_pool_size = {POOL_SIZE}\n\
         logfile = {d}/pgbouncer.log\n"
    );
    let ini_path = dir.join("pgbouncer.ini");
    fs::write(&ini_path, ini).context("write pgbouncer.ini")?;
    // A previous attempt's "Address already in use" must not be read as
    // this attempt's.
    let _ = fs::remove_file(dir.join("pgbouncer.log"));
    let stderr = File::create(dir.join("stderr.log")).context("create stderr.log")?;
    if via_runuser {
        let status = Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(dir)
            .status()
            .context("run chown")?;
        if !status.success() {
            bail!("chown -R postgres: {d} failed ({status})");
        }
    }
    let mut cmd = if via_runuser {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(binary);
        c
    } else {
        Command::new(binary)
    };
    cmd.arg(&ini_path)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        // Ours to stop: a Ctrl-C in the terminal would otherwise start its
        // slow "safe shutdown" while we clean up.
        .process_group(0);
    cmd.spawn().with_context(|| format!("spawn {cmd:?}"))
}

fn wait_pgbouncer(child: &mut Child, port: u16) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + PgBouncer::START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("PgBouncer exited ({status}) before listening on {addr}");
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "PgBouncer did not listen on {addr} within {} s",
                PgBouncer::START_TIMEOUT.as_secs()
            );
        }
        check_interrupted()?;
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops PgBouncer. Through `runuser`, PgBouncer itself gets the SIGTERM
/// (it shuts down at once on it) so that `runuser` reaps it and exits
/// normally; a SIGTERM to `runuser` would be passed on too, but `runuser`
/// then exits without reaping it. SIGKILL if that doesn't do it.
fn stop_child(child: &mut Child, via_runuser: bool) {
    if via_runuser && matches!(child.try_wait(), Ok(None)) {
        let mut pids = children_of(child.id());
        pids.push(child.id());
        for pid in &pids {
            signal(*pid, "TERM");
        }
        let deadline = Instant::now() + PgBouncer::STOP_TIMEOUT;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(child.try_wait(), Ok(None)) {
            for pid in children_of(child.id()) {
                signal(pid, "KILL");
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Through the `kill` command: sending a signal from Rust without a
/// dependency takes unsafe code.
fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Processes whose parent is `parent`, from /proc/<pid>/stat.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            // "pid (comm) state ppid ...": comm may contain spaces and ')'.
            let after_comm = &stat[stat.rfind(')')? + 1..];
            let ppid: u32 = after_comm.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

fn pgbouncer_logs(dir: &Path) -> String {
    ["stderr.log", "pgbouncer.log"]
        .iter()
        .filter_map(|name| fs::read(dir.join(name)).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn command_line(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(|l| l.trim().to_owned())
}

impl Machine {
    fn describe(pg: &PgCluster, pgbouncer: Option<&Path>) -> Machine {
        let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpu = fs::read_to_string("/proc/cpuinfo").ok().and_then(|info| {
            info.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
        });
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .ok()
            .or_else(|| command_line(Path::new("uname"), &["-r"]))
            .unwrap_or_else(|| "unknown".to_owned());
        // The server binary that actually ran, then whatever pg_config says.
        let postgres = command_line(&pg.bin_dir.join("postgres"), &["--version"])
            .map(|v| v.replace("postgres (PostgreSQL) ", "PostgreSQL "))
            .or_else(|| command_line(&pg.bin_dir.join("pg_config"), &["--version"]))
            .or_else(|| command_line(Path::new("pg_config"), &["--version"]))
            .unwrap_or_else(|| "PostgreSQL (unknown version)".to_owned());
        let pgbouncer = pgbouncer.and_then(|b| command_line(b, &["--version"]));
        Machine {
            nproc,
            cpu,
            kernel,
            postgres,
            pgbouncer,
        }
    }

    fn line(&self) -> String {
        let mut s = format!("{} CPUs", self.nproc);
        if let Some(cpu) = &self.cpu {
            s.push_str(&format!(" ({cpu})"));
        }
        s.push_str(&format!(", Linux {}, {}", self.kernel, self.postgres));
        if let Some(b) = &self.pgbouncer {
            s.push_str(&format!(", {b}"));
        }
        s
    }
}

impl Report {
    /// Indexed like [`Target::ALL`].
    fn summaries(&self, cell: &Cell) -> [Option<Summary>; 4] {
        Target::ALL.map(|t| cell.targets[t.index()].summary())
    }

    /// Whether the sidecar+policy target ran.
    fn policy_ran(&self) -> bool {
        self.config.policy.is_some()
    }

    /// Per mode, at 1 client: sidecar p50 − direct p50, and the same for
    /// sidecar+policy and PgBouncer.
    fn added_p50_at_1(&self) -> Vec<AddedP50> {
        self.cells
            .iter()
            .filter(|c| c.clients == 1)
            .filter_map(|cell| {
                let [direct, sidecar, policy, bouncer] = self.summaries(cell);
                let direct = direct?.p50_us as i64;
                let added = |s: Option<Summary>| s.map(|s| s.p50_us as i64 - direct);
                Some(AddedP50 {
                    mode: cell.mode,
                    sidecar: added(sidecar)?,
                    policy: added(policy),
                    bouncer: added(bouncer),
                })
            })
            .collect()
    }

    /// The client count of the sidecar+policy / sidecar summary line:
    /// [`SUMMARY_CLIENTS`] if it ran, else the largest count.
    fn summary_clients(&self) -> u32 {
        if self.cells.iter().any(|c| c.clients == SUMMARY_CLIENTS) {
            SUMMARY_CLIENTS
        } else {
            self.config.sampled_clients
        }
    }

    /// sidecar+policy TPS / sidecar TPS per mode at [`Self::summary_clients`].
    fn policy_ratios(&self) -> Vec<(Mode, Option<f64>)> {
        let clients = self.summary_clients();
        self.cells
            .iter()
            .filter(|c| c.clients == clients)
            .map(|cell| {
                let [_, sidecar, policy, _] = self.summaries(cell);
                (cell.mode, tps_ratio(&policy, &sidecar))
            })
            .collect()
    }

    fn table(&self) -> String {
        let mut headers = vec!["mode", "clients", "direct TPS", "sidecar TPS"];
        if self.policy_ran() {
            headers.push("sidecar+policy TPS");
        }
        if self.pgbouncer_ran {
            headers.push("PgBouncer TPS");
        }
        headers.push("sidecar/direct");
        if self.policy_ran() {
            headers.push("sidecar+policy/sidecar");
        }
        if self.pgbouncer_ran {
            headers.push("sidecar/PgBouncer");
        }
        headers.extend(["direct p50/p99 µs", "sidecar p50/p99 µs"]);
        if self.pgbouncer_ran {
            headers.push("PgBouncer p50/p99 µs");
        }
        let dash = || "—".to_owned();
        let tps = |s: &Option<Summary>| {
            s.as_ref()
                .map_or_else(dash, |s| format!("{:.0}", s.tps_median))
        };
        let lat = |s: &Option<Summary>| {
            s.as_ref()
                .map_or_else(dash, |s| format!("{} / {}", s.p50_us, s.p99_us))
        };
        let ratio = |a: &Option<Summary>, b: &Option<Summary>| {
            tps_ratio(a, b).map_or_else(dash, |r| format!("{r:.2}"))
        };
        let rows: Vec<Vec<String>> = self
            .cells
            .iter()
            .map(|cell| {
                let [direct, sidecar, policy, bouncer] = self.summaries(cell);
                let mut row = vec![
                    cell.mode.name().to_owned(),
                    cell.clients.to_string(),
                    tps(&direct),
                    tps(&sidecar),
                ];
                if self.policy_ran() {
                    row.push(tps(&policy));
                }
                if self.pgbouncer_ran {
                    row.push(tps(&bouncer));
                }
                row.push(ratio(&sidecar, &direct));
                if self.policy_ran() {
                    row.push(ratio(&policy, &sidecar));
                }
                if self.pgbouncer_ran {
                    row.push(ratio(&sidecar, &bouncer));
                }
                row.extend([lat(&direct), lat(&sidecar)]);
                if self.pgbouncer_ran {
                    row.push(lat(&bouncer));
                }
                row
            })
            .collect();
        let right: Vec<bool> = headers.iter().map(|h| *h != "mode").collect();

        let c = &self.config;
        let workload = if c.connect {
            "pgbench -C (a new connection per transaction, each running SELECT 1)".to_owned()
        } else {
            format!("pgbench -S (select-only), scale {}", c.scale)
        };
        let mut out = format!(
            "{workload}, {} s per run, {} round(s), median TPS over rounds, latency percentiles over all transactions; warm-up {} s; sidecar args: {}{}\n\n",
            c.duration,
            c.rounds,
            c.warmup,
            c.sidecar_args.join(" "),
            c.policy
                .as_ref()
                .map(|(path, rules)| format!(
                    "; sidecar+policy: {} ({rules} rules), sidecar: no rules",
                    path.display()
                ))
                .unwrap_or_default(),
        );
        out.push_str(&markdown_table(&headers, &right, &rows));
        out.push('\n');
        if c.connect {
            out.push_str(&self.connection_lines());
        }
        if let Some(note) = &self.pgbouncer_note {
            out.push_str(note);
            out.push('\n');
        }
        if self.policy_ran() {
            let ratios = self.policy_ratios();
            let parts: Vec<String> = ratios
                .iter()
                .map(|(mode, r)| match r {
                    Some(r) => format!("{} {r:.2}", mode.name()),
                    None => format!("{} —", mode.name()),
                })
                .collect();
            let clients = self.summary_clients();
            if !parts.is_empty() {
                out.push_str(&format!(
                    "sidecar+policy / sidecar TPS at {clients} client{}: {}\n",
                    if clients == 1 { "" } else { "s" },
                    parts.join(", ")
                ));
            }
        }
        // The sidecars' own CPU per transaction: steadier than TPS, it shows what the
        // proxy (and its policy) cost, apart from the machine's noise.
        for cell in &self.cells {
            let cpu = |t: Target| {
                let v = &cell.targets[t.index()].cpu_us_per_txn;
                (!v.is_empty()).then(|| median(v))
            };
            let (Some(plain), with_policy) = (cpu(Target::Sidecar), cpu(Target::SidecarPolicy))
            else {
                continue;
            };
            let policy_part = with_policy
                .map(|p| format!(", sidecar+policy {p:.1} µs ({:.3}×)", p / plain))
                .unwrap_or_default();
            out.push_str(&format!(
                "sidecar CPU per transaction, {} c={}: sidecar {plain:.1} µs{policy_part}\n",
                cell.mode.name(),
                cell.clients
            ));
        }
        let added = self.added_p50_at_1();
        if !added.is_empty() {
            let parts: Vec<String> = added
                .iter()
                .map(|a| {
                    let mut s = format!("{} {:+} µs", a.mode.name(), a.sidecar);
                    let others: Vec<String> =
                        [("sidecar+policy", a.policy), ("PgBouncer", a.bouncer)]
                            .into_iter()
                            .filter_map(|(name, v)| v.map(|v| format!("{name} {v:+} µs")))
                            .collect();
                    if !others.is_empty() {
                        s.push_str(&format!(" ({})", others.join(", ")));
                    }
                    s
                })
                .collect();
            out.push_str(&format!(
                "added p50 latency at 1 client (sidecar p50 − direct p50): {}\n",
                parts.join(", ")
            ));
        }
        let mib = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1} MiB"));
        let rss_lines = std::iter::once(("sidecar", &self.rss))
            .chain(self.policy_rss.as_ref().map(|r| ("sidecar+policy", r)));
        for (what, rss) in rss_lines {
            out.push_str(&format!(
                "{what} RSS: idle {}, max sampled during {}-client runs {} ({} samples every {} ms), peak (VmHWM) {}\n",
                mib(rss.idle_mib),
                c.sampled_clients,
                mib(rss.max_sampled_mib),
                rss.samples,
                RSS_SAMPLE_EVERY.as_millis(),
                mib(rss.peak_hwm_mib),
            ));
        }
        out.push_str(&format!("machine: {}\n", self.machine.line()));
        if !self.errors.is_empty() {
            out.push_str(&format!("failed runs ({}):\n", self.errors.len()));
            for e in &self.errors {
                out.push_str(&format!("- {}\n", one_line(e)));
            }
        }
        out
    }

    /// With --connect-per-transaction: each cell's median average connection
    /// time per target, and the ratios that matter (sidecar / direct,
    /// sidecar+policy / sidecar).
    fn connection_lines(&self) -> String {
        let mut out = String::new();
        for cell in &self.cells {
            let [direct, sidecar, policy, bouncer] = self.summaries(cell);
            let ms = |s: &Option<Summary>| s.as_ref().and_then(|s| s.connect_ms);
            let mut parts = Vec::new();
            for (name, value, base) in [
                ("direct", ms(&direct), None),
                ("sidecar", ms(&sidecar), ms(&direct).map(|d| (d, "direct"))),
                (
                    "sidecar+policy",
                    ms(&policy),
                    ms(&sidecar).map(|d| (d, "sidecar")),
                ),
                ("PgBouncer", ms(&bouncer), None),
            ] {
                let Some(value) = value else {
                    continue;
                };
                let mut part = format!("{name} {value:.2} ms");
                if let Some((base, of)) = base.filter(|(b, _)| *b > 0.0) {
                    part.push_str(&format!(" ({:.2}× {of})", value / base));
                }
                parts.push(part);
            }
            if !parts.is_empty() {
                out.push_str(&format!(
                    "average connection time (pgbench -C), {} c={}, median over rounds: {}\n",
                    cell.mode.name(),
                    cell.clients,
                    parts.join(", ")
                ));
            }
        }
        out
    }

    fn json(&self) -> Value {
        let summary = |s: Option<Summary>| match s {
            Some(s) => json!({
                "tps_median": round2(s.tps_median),
                "tps_rounds": s.tps_rounds.iter().map(|v| round2(*v)).collect::<Vec<_>>(),
                "p50_us": s.p50_us,
                "p99_us": s.p99_us,
                "transactions": s.transactions,
                "connect_ms_median": s.connect_ms.map(|v| (v * 1000.0).round() / 1000.0),
                "connect_ms_rounds": s.connect_ms_rounds,
            }),
            None => Value::Null,
        };
        let ratio = |a: &Option<Summary>, b: &Option<Summary>| {
            tps_ratio(a, b).map_or(Value::Null, |r| json!(round4(r)))
        };
        let cells: Vec<Value> = self
            .cells
            .iter()
            .map(|cell| {
                let [direct, sidecar, policy, bouncer] = self.summaries(cell);
                let policy_vs_sidecar = ratio(&policy, &sidecar);
                let mut v = json!({
                    "mode": cell.mode.name(),
                    "clients": cell.clients,
                    "sidecar_vs_direct": ratio(&sidecar, &direct),
                    "sidecar_vs_pgbouncer": ratio(&sidecar, &bouncer),
                    "direct": summary(direct),
                    "sidecar": summary(sidecar),
                    "pgbouncer": summary(bouncer),
                });
                if self.policy_ran() {
                    v["sidecar_policy_vs_sidecar"] = policy_vs_sidecar;
                    v["sidecar_policy"] = summary(policy);
                }
                v
            })
            .collect();
        let added = self.added_p50_at_1();
        let added_by = |f: fn(&AddedP50) -> Option<i64>| -> serde_json::Map<String, Value> {
            added
                .iter()
                .filter_map(|a| Some((a.mode.name().to_owned(), json!(f(a)?))))
                .collect()
        };
        let rss = |r: &Rss| {
            json!({
                "idle": r.idle_mib.map(round2),
                "max_sampled": r.max_sampled_mib.map(round2),
                "sampled_clients": self.config.sampled_clients,
                "samples": r.samples,
                "sample_interval_ms": RSS_SAMPLE_EVERY.as_millis() as u64,
                "peak_hwm": r.peak_hwm_mib.map(round2),
            })
        };
        let c = &self.config;
        let mut doc = json!({
            "config": {
                "scale": c.scale,
                "duration_s": c.duration,
                "rounds": c.rounds,
                "warmup_s": c.warmup,
                "policy": c.policy.as_ref().map(|(p, _)| p.display().to_string()),
                "sidecar_args": c.sidecar_args,
                "connect_per_transaction": c.connect,
                "pgbouncer": self.pgbouncer_ran,
                "pgbouncer_note": self.pgbouncer_note,
            },
            "results": cells,
            "added_p50_us_at_1_client": added_by(|a| Some(a.sidecar)),
            "sidecar_rss_mib": rss(&self.rss),
            "machine": {
                "nproc": self.machine.nproc,
                "cpu": self.machine.cpu,
                "kernel": self.machine.kernel,
                "postgresql": self.machine.postgres,
                "pgbouncer": self.machine.pgbouncer,
            },
            "errors": self.errors,
        });
        if self.policy_ran() {
            let ratios: serde_json::Map<String, Value> = self
                .policy_ratios()
                .into_iter()
                .map(|(mode, r)| (mode.name().to_owned(), json!(r.map(round4))))
                .collect();
            doc["sidecar_policy"] = json!({
                "rules": c.policy.as_ref().map(|(_, rules)| *rules),
                "tps_vs_sidecar": {"clients": self.summary_clients(), "by_mode": ratios},
                "added_p50_us_at_1_client": added_by(|a| a.policy),
                "rss_mib": self.policy_rss.as_ref().map(rss),
            });
        }
        doc
    }
}

/// One mode's p50 latency at 1 client minus direct's, in µs.
struct AddedP50 {
    mode: Mode,
    sidecar: i64,
    policy: Option<i64>,
    bouncer: Option<i64>,
}

/// `a`'s median TPS over `b`'s, when both ran.
fn tps_ratio(a: &Option<Summary>, b: &Option<Summary>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.tps_median > 0.0 => Some(a.tps_median / b.tps_median),
        _ => None,
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

/// A markdown table padded so that it also reads as plain text; columns
/// flagged in `right` are right-aligned (`---:`).
fn markdown_table(headers: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h).max(3)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let pad = |s: &str, w: usize, r: bool| {
        let fill = " ".repeat(w - width(s));
        if r {
            format!("{fill}{s}")
        } else {
            format!("{s}{fill}")
        }
    };
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    let mut out = line(
        headers
            .iter()
            .zip(&widths)
            .zip(right)
            .map(|((h, &w), &r)| pad(h, w, r))
            .collect(),
    );
    out.push_str(&line(
        widths
            .iter()
            .zip(right)
            .map(|(&w, &r)| {
                if r {
                    format!("{}:", "-".repeat(w - 1))
                } else {
                    "-".repeat(w)
                }
            })
            .collect(),
    ));
    for row in rows {
        out.push_str(&line(
            row.iter()
                .zip(&widths)
                .zip(right)
                .map(|((c, &w), &r)| pad(c, w, r))
                .collect(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tps_line() {
        let out = "number of failed transactions: 0 (0.000%)\n\
                   latency average = 0.160 ms\n\
                   initial connection time = 3.361 ms\n\
                   tps = 6170.123456 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(6170.123456));
        assert_eq!(
            parse_tps("tps = 12 (including connections establishing)\n"),
            None
        );
        let connect = "latency average = 15.639 ms\n\
                       average connection time = 12.854 ms\n\
                       tps = 63.943304 (including reconnection times)\n";
        assert_eq!(parse_tps(connect), Some(63.943304));
        assert_eq!(parse_connection_ms(connect), Some(12.854));
        assert_eq!(
            parse_connection_ms("tps = 1 (without initial connection time)\n"),
            None
        );
    }

    #[test]
    fn percentiles_and_median() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0]), 2.5);
    }

    #[test]
    fn reads_and_deletes_per_thread_logs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::write(
            p.join("sidecar-simple-8-1.4242"),
            "0 1 120 0 1700000000 1\n1 1 130 0 1700000000 2\n",
        )
        .unwrap();
        fs::write(
            p.join("sidecar-simple-8-1.4242.1"),
            "2 1 140 0 1700000000 3\n3 1 failed 0 1700000000 4\n",
        )
        .unwrap();
        fs::write(
            p.join("sidecar-simple-8-10.4243"),
            "0 1 999 0 1700000000 1\n",
        )
        .unwrap();
        fs::write(p.join("sidecar-simple-8-1.out"), "tps = 1\n").unwrap();
        let mut lat = take_latencies(p, "sidecar-simple-8-1").unwrap();
        lat.sort_unstable();
        assert_eq!(lat, vec![120, 130, 140]);
        assert!(!p.join("sidecar-simple-8-1.4242").exists());
        assert!(!p.join("sidecar-simple-8-1.4242.1").exists());
        assert!(p.join("sidecar-simple-8-10.4243").exists());
        assert!(p.join("sidecar-simple-8-1.out").exists());
        assert!(take_latencies(p, "direct-simple-1-1").is_err());
    }

    #[test]
    fn aligned_markdown() {
        let t = markdown_table(
            &["mode", "p50 µs"],
            &[false, true],
            &[vec!["simple".into(), "12".into()]],
        );
        assert_eq!(
            t,
            "| mode   | p50 µs |\n| ------ | -----: |\n| simple |     12 |\n"
        );
    }

    #[test]
    fn bad_options_are_errors() {
        for argv in [
            &["bench-proxy", "--modes", "simple,bogus"][..],
            &["bench-proxy", "--clients", "0"],
            &["bench-proxy", "--clients", "101"],
            &["bench-proxy", "--duration", "0"],
            &["bench-proxy", "--rounds", "x"],
            &["bench-proxy", "-o", "xml"],
        ] {
            assert!(Args::try_parse_from(argv).is_err(), "{argv:?}");
        }
        let args = Args::try_parse_from([
            "bench-proxy",
            "--modes",
            "prepared,simple,prepared",
            "--clients=4,1",
            "--sidecar-arg",
            "--workers",
            "--sidecar-arg=1",
        ])
        .unwrap();
        let config = Config::from_args(args).unwrap();
        assert_eq!(config.modes, vec![Mode::Prepared, Mode::Simple]);
        assert_eq!(config.clients, vec![4, 1]);
        assert_eq!(config.sampled_clients(), 4);
        assert_eq!(
            config.sidecar_args,
            vec!["--log-level", "warn", "--workers", "1"]
        );
    }

    #[test]
    fn defaults() {
        let config = Config::from_args(Args::try_parse_from(["bench-proxy"]).unwrap()).unwrap();
        assert_eq!(
            config.modes,
            vec![Mode::Simple, Mode::Extended, Mode::Prepared]
        );
        assert_eq!(config.clients, vec![1, 8, 32]);
        assert_eq!((config.duration, config.rounds, config.scale), (10, 3, 10));
        assert_eq!(config.sidecar_args, vec!["--log-level", "warn"]);
        assert!(!config.connect);
        let args = Args::try_parse_from(["bench-proxy", "--connect-per-transaction"]).unwrap();
        assert!(Config::from_args(args).unwrap().connect);
        assert_eq!(
            one_line(
                "error: bad\n  [possible values: a, b]\n\nFor more information, try '--help'.\n"
            ),
            "error: bad [possible values: a, b]"
        );
    }

    #[test]
    fn policy_files_are_checked_up_front() {
        let bench = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/policy-20-rules.yaml");
        let args = Args::try_parse_from(["bench-proxy", "--policy", bench]).unwrap();
        let config = Config::from_args(args).unwrap();
        assert_eq!(config.policy.as_ref().map(|p| p.rules), Some(20));

        let dir = tempfile::tempdir().unwrap();
        let check = |name: &str, yaml: String| {
            let path = dir.path().join(name);
            fs::write(&path, yaml).unwrap();
            let argv: [std::ffi::OsString; 3] =
                ["bench-proxy".into(), "--policy".into(), path.into()];
            let args = Args::try_parse_from(argv).unwrap();
            Config::from_args(args).map(|_| ()).unwrap_err().to_string()
        };
        let denying = MINIMAL_POLICY.replace(
            "spec:\n",
            "spec:\n  rules:\n  - {name: no-bench, match: {tables: [\"*.pgbench_accounts\"]}, action: Deny}\n",
        );
        assert!(check("deny.yaml", denying).contains("does not allow"));
        let portless = MINIMAL_POLICY.replace("${LISTEN_PORT}", "6432");
        assert!(check("portless.yaml", portless).contains("no ${LISTEN_PORT}"));
        let invalid = MINIMAL_POLICY.replace("database:", "databse:");
        check("invalid.yaml", invalid);
    }

    #[test]
    fn finds_child_processes() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let found = children_of(std::process::id()).contains(&child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found);
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
