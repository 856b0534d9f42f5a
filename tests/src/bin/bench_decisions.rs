//! `bench-decisions`: how long the policy engine takes to decide one
//! statement, without a network or a database in the way.
//!
//! Run it in release (`cargo run --release -p palisade-tests --bin
//! bench-decisions -- --help`). It times, statement by statement with
//! `std::time::Instant`, the uncached path (parse, analyse, match every rule)
//! and the cached one (shape the text, one hash lookup) on a corpus of
//! ORM-style statements, and on pgbench's select-only statement with a fresh
//! inlined `aid` every time, which only the decision cache's shape
//! normalisation can serve from the cache. Before timing anything it checks
//! that the policy allows every statement, so that the corpus measures the
//! path real traffic takes; a denied statement is an error (exit 1).

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum, value_parser};
use palisade_policy::decision::{Action, Decision, Identity, Reason, RuleSet, SearchPath};
use palisade_policy::decision_cache::Engine;
use palisade_policy::{RenderedPolicy, parse_manifests, render_all};
use serde_json::{Value, json};

/// `tests/bench/policy-20-rules.yaml`, the default policy.
const DEFAULT_POLICY: &str = include_str!("../../bench/policy-20-rules.yaml");
const DEFAULT_POLICY_NAME: &str = "tests/bench/policy-20-rules.yaml";
/// `tests/bench/orm-statements.sql`, the default corpus.
const DEFAULT_CORPUS: &str = include_str!("../../bench/orm-statements.sql");
const DEFAULT_CORPUS_NAME: &str = "tests/bench/orm-statements.sql";

/// What the policy's placeholders are replaced with; nothing listens or
/// connects here, the ports only have to be valid.
const LISTEN_PORT: &str = "6432";
const PG_PORT: &str = "5432";

/// pgbench's select-only statement as `-M simple` sends it, before `aid`.
const PGBENCH_SIMPLE_PREFIX: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = ";
/// The other statements pgbench sends in a select-only run: the same one
/// with a parameter (`-M extended`/`prepared`) and its scale check at start.
const PGBENCH_OTHERS: [&str; 2] = [
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
    "select count(*) from pgbench_branches",
];
/// `aid`s cycle through this many distinct values (pgbench's scale 10).
const AID_RANGE: u64 = 1_000_000;

/// Time the policy engine's decision per statement, uncached and cached.
///
/// Loads a DatabasePolicy (the literal strings ${LISTEN_PORT} and ${PG_PORT}
/// in it are replaced with dummy ports) and a corpus of statements, one per
/// line (blank lines and lines starting with `--` are skipped), checks that
/// the policy allows every statement and pgbench's select-only statements,
/// then times each decision with `std::time::Instant`:
///
/// - uncached: `Engine::decide_uncached`, which parses, analyses and matches
///   the rules every time;
///
/// - cached: `Engine::decide` after a warm-up, which shapes the text and
///   looks it up;
///
/// and the same for pgbench's `SELECT abalance FROM pgbench_accounts WHERE aid
/// = N;` with a different N every time, so its cached row measures the cache
/// working through shape normalisation. Percentiles are over all samples;
/// every sample includes the clock's own overhead, which is reported.
/// Results go to stdout, progress to stderr.
#[derive(Parser, Debug)]
#[command(name = "bench-decisions", version)]
struct Args {
    /// DatabasePolicy YAML to decide with [default: the built-in copy of
    /// tests/bench/policy-20-rules.yaml].
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,

    /// Statements to decide, one per line [default: the built-in copy of
    /// tests/bench/orm-statements.sql].
    #[arg(long, value_name = "FILE")]
    corpus: Option<PathBuf>,

    /// Timed passes over the corpus without the cache; the pgbench statement
    /// gets as many samples as the corpus.
    #[arg(long, value_name = "N", default_value_t = 300,
          value_parser = value_parser!(u32).range(1..=1_000_000))]
    uncached_passes: u32,

    /// Timed passes over the corpus with the cache; the pgbench statement
    /// gets as many samples as the corpus.
    #[arg(long, value_name = "N", default_value_t = 5000,
          value_parser = value_parser!(u32).range(1..=1_000_000))]
    cached_passes: u32,

    /// The database user the statements run as (rules' subjects.dbUsers).
    #[arg(long, value_name = "NAME", default_value = "app")]
    db_user: String,

    /// The pod's service account as namespace/name (rules'
    /// subjects.serviceAccounts); empty for none.
    #[arg(long, value_name = "NS/NAME", default_value = "shop/web")]
    service_account: String,

    /// Output format for the results.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = Output::Table)]
    output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    /// A markdown table and summary lines.
    Table,
    /// One JSON document.
    Json,
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
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(report) => {
            match args.output {
                Output::Table => print!("{}", report.table()),
                // A Value's alternate Display is pretty JSON, with no error to handle.
                Output::Json => println!("{:#}", report.json()),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-decisions: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The policy and corpus, loaded.
struct Setup {
    policy_name: String,
    rendered: RenderedPolicy,
    corpus_name: String,
    corpus: Vec<String>,
    identity: Identity,
}

impl Setup {
    fn load(args: &Args) -> Result<Setup> {
        let (policy_name, policy_text) = match &args.policy {
            Some(path) => (
                path.display().to_string(),
                std::fs::read_to_string(path)
                    .with_context(|| format!("--policy {}", path.display()))?,
            ),
            None => (DEFAULT_POLICY_NAME.to_owned(), DEFAULT_POLICY.to_owned()),
        };
        let (corpus_name, corpus_text) = match &args.corpus {
            Some(path) => (
                path.display().to_string(),
                std::fs::read_to_string(path)
                    .with_context(|| format!("--corpus {}", path.display()))?,
            ),
            None => (DEFAULT_CORPUS_NAME.to_owned(), DEFAULT_CORPUS.to_owned()),
        };
        let rendered = load_policy(&policy_name, &policy_text)?;
        let corpus = read_corpus(&corpus_text);
        if corpus.is_empty() {
            bail!("{corpus_name}: no statements in it");
        }
        let identity = Identity {
            db_user: args.db_user.clone(),
            service_account: Some(args.service_account.clone()).filter(|s| !s.is_empty()),
            ..Identity::default()
        };
        Ok(Setup {
            policy_name,
            rendered,
            corpus_name,
            corpus,
            identity,
        })
    }
}

/// The one DatabasePolicy in `text`, rendered, with its placeholders filled in.
fn load_policy(origin: &str, text: &str) -> Result<RenderedPolicy> {
    let text = text
        .replace("${LISTEN_PORT}", LISTEN_PORT)
        .replace("${PG_PORT}", PG_PORT);
    let manifests = parse_manifests(origin, &text).with_context(|| format!("read {origin}"))?;
    let mut rendered =
        render_all(origin, &manifests).with_context(|| format!("render {origin}"))?;
    match rendered.len() {
        1 => Ok(rendered.remove(0)),
        0 => bail!("{origin}: no DatabasePolicy in it"),
        n => bail!("{origin}: {n} DatabasePolicies in it; give it one"),
    }
}

/// Statements one per line; blank lines and `--` comment lines skipped.
fn read_corpus(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("--"))
        .map(str::to_owned)
        .collect()
}

/// pgbench's `-M simple` select-only statement for the `n`th sample: every
/// sample in a run of up to [`AID_RANGE`] gets its own `aid` (7919 is prime
/// to the range), in an order that varies the number of digits.
fn pgbench_statement(buf: &mut String, n: u64) {
    let aid = (n * 7919) % AID_RANGE + 1;
    buf.clear();
    let _ = write!(buf, "{PGBENCH_SIMPLE_PREFIX}{aid};");
}

/// Every statement the policy does not allow, with why.
fn denials(engine: &Engine, identity: &Identity, statements: &[String]) -> Vec<String> {
    let path = SearchPath::default();
    statements
        .iter()
        .filter_map(|sql| {
            let d = engine.decide_uncached(identity, &path, sql);
            (d.action != Action::Allow).then(|| format!("{}: {sql}", explain(&d)))
        })
        .collect()
}

fn explain(d: &Decision) -> String {
    let why = match &d.reason {
        Reason::Rule { rule } => format!("rule {rule}"),
        Reason::Default => "defaultAction".to_owned(),
        Reason::ParseError { message } => format!("onParseError ({message})"),
        Reason::TooLong { bytes, limit } => format!("{bytes} bytes > maxStatementBytes {limit}"),
        Reason::ServerRejects { message } => format!("server rejects it ({message})"),
    };
    let message = d
        .message
        .as_ref()
        .map(|m| format!(", {m:?}"))
        .unwrap_or_default();
    format!("{:?} by {why}{message}", d.action)
}

/// The statements the allow check covers beyond the corpus.
fn pgbench_statements() -> Vec<String> {
    let mut buf = String::new();
    pgbench_statement(&mut buf, 0);
    let mut out = vec![buf];
    out.extend(PGBENCH_OTHERS.iter().map(|s| (*s).to_owned()));
    out
}

/// Timings in nanoseconds, clock overhead included.
struct Samples {
    ns: Vec<u64>,
}

impl Samples {
    fn with_capacity(n: usize) -> Self {
        Samples {
            ns: Vec::with_capacity(n),
        }
    }

    fn stats(&self) -> Stats {
        let mut v = self.ns.clone();
        v.sort_unstable();
        let sum: u128 = v.iter().map(|&x| u128::from(x)).sum();
        Stats {
            samples: v.len(),
            p50: percentile(&v, 50.0),
            p99: percentile(&v, 99.0),
            mean: (sum / v.len().max(1) as u128) as u64,
            max: v.last().copied().unwrap_or(0),
        }
    }
}

#[derive(Clone, Copy)]
struct Stats {
    samples: usize,
    p50: u64,
    p99: u64,
    mean: u64,
    max: u64,
}

/// Nearest-rank percentile of sorted values (0 for none).
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Times `f`, in nanoseconds.
fn time<T>(f: impl FnOnce() -> T) -> u64 {
    let start = Instant::now();
    black_box(f());
    start.elapsed().as_nanos() as u64
}

/// The median cost of reading the clock twice, which every sample carries.
fn clock_overhead() -> u64 {
    let mut s = Samples::with_capacity(100_000);
    for _ in 0..100_000 {
        s.ns.push(time(|| ()));
    }
    s.stats().p50
}

struct Report {
    policy_name: String,
    rules: usize,
    default_action: String,
    corpus_name: String,
    corpus_len: usize,
    identity: Identity,
    uncached_passes: u32,
    cached_passes: u32,
    corpus_uncached: Stats,
    corpus_cached: Stats,
    pgbench_uncached: Stats,
    pgbench_cached: Stats,
    /// (p50 ns, statement), slowest first.
    slowest: Vec<(u64, String)>,
    clock_overhead_ns: u64,
    warnings: Vec<String>,
}

fn run(args: &Args) -> Result<Report> {
    let setup = Setup::load(args)?;
    let engine = Engine::new(RuleSet::new(&setup.rendered));
    let identity = &setup.identity;
    let path = SearchPath::default();
    let corpus = &setup.corpus;
    let mut warnings = Vec::new();
    if cfg!(debug_assertions) {
        warnings.push(
            "this is a debug build; run with --release for numbers that mean anything".to_owned(),
        );
    }

    let mut denied = denials(&engine, identity, corpus);
    denied.extend(denials(&engine, identity, &pgbench_statements()));
    if !denied.is_empty() {
        for d in &denied {
            eprintln!("bench-decisions: denied: {d}");
        }
        bail!(
            "{} statement(s) not allowed by {} for db user {:?}; the benchmark measures allowed traffic",
            denied.len(),
            setup.policy_name,
            identity.db_user
        );
    }

    eprintln!(
        "bench-decisions: {} statements, {} rules; clock overhead",
        corpus.len(),
        setup.rendered.spec.rules.len()
    );
    let clock_overhead_ns = clock_overhead();

    // Uncached: every decision parses and matches from scratch.
    eprintln!(
        "bench-decisions: uncached, {} passes over the corpus",
        args.uncached_passes
    );
    let n = corpus.len() * args.uncached_passes as usize;
    let mut per_statement: Vec<Samples> = corpus
        .iter()
        .map(|_| Samples::with_capacity(args.uncached_passes as usize))
        .collect();
    let mut all = Samples::with_capacity(n);
    for sql in corpus {
        black_box(engine.decide_uncached(identity, &path, sql)); // warm-up
    }
    for _ in 0..args.uncached_passes {
        for (i, sql) in corpus.iter().enumerate() {
            let ns = time(|| engine.decide_uncached(identity, &path, black_box(sql)));
            per_statement[i].ns.push(ns);
            all.ns.push(ns);
        }
    }
    let corpus_uncached = all.stats();
    let mut slowest: Vec<(u64, String)> = per_statement
        .iter()
        .zip(corpus)
        .map(|(s, sql)| (s.stats().p50, sql.clone()))
        .collect();
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    slowest.truncate(3);

    eprintln!("bench-decisions: uncached, pgbench statement");
    let mut buf = String::new();
    let mut sample = 0u64;
    let mut pg = Samples::with_capacity(n);
    for _ in 0..n {
        pgbench_statement(&mut buf, sample);
        sample += 1;
        pg.ns.push(time(|| {
            engine.decide_uncached(identity, &path, black_box(&buf))
        }));
    }
    let pgbench_uncached = pg.stats();

    // Cached: warm up (checking that the cache answers as the rules do, and
    // that it really hits), then time lookups.
    let class = engine.class(
        identity,
        &path,
        &palisade_policy::dialect::SqlDialect::default(),
    );
    let mut not_cached = Vec::new();
    for sql in corpus {
        let first = engine.decide(&class, sql);
        let again = engine.decide(&class, sql);
        if *first != engine.decide_uncached(identity, &path, sql) {
            bail!("the cached decision differs from the uncached one for: {sql}");
        }
        if !Arc::ptr_eq(&first, &again) {
            not_cached.push(sql.clone());
        }
    }
    if !not_cached.is_empty() {
        warnings.push(format!(
            "{} corpus statement(s) are not served from the cache (the cached row times misses for them), e.g. {}",
            not_cached.len(),
            not_cached[0]
        ));
    }
    let (a, b) = (pgbench_owned(sample), pgbench_owned(sample + 1));
    sample += 2;
    let (da, db) = (engine.decide(&class, &a), engine.decide(&class, &b));
    if *db != engine.decide_uncached(identity, &path, &b) {
        bail!("the cached decision for {b:?} (shared with {a:?}) differs from the uncached one");
    }
    if !Arc::ptr_eq(&da, &db) {
        warnings.push(
            "pgbench statements with different aids do not share a cache entry; the pgbench cached row times misses"
                .to_owned(),
        );
    }

    eprintln!(
        "bench-decisions: cached, {} passes over the corpus",
        args.cached_passes
    );
    let n = corpus.len() * args.cached_passes as usize;
    for sql in corpus {
        black_box(engine.decide(&class, sql));
    }
    let mut all = Samples::with_capacity(n);
    for _ in 0..args.cached_passes {
        for sql in corpus {
            all.ns.push(time(|| engine.decide(&class, black_box(sql))));
        }
    }
    let corpus_cached = all.stats();

    eprintln!("bench-decisions: cached, pgbench statement");
    let mut pg = Samples::with_capacity(n);
    for _ in 0..n {
        pgbench_statement(&mut buf, sample);
        sample += 1;
        pg.ns.push(time(|| engine.decide(&class, black_box(&buf))));
    }
    let pgbench_cached = pg.stats();

    Ok(Report {
        policy_name: setup.policy_name,
        rules: setup.rendered.spec.rules.len(),
        default_action: format!("{:?}", setup.rendered.spec.default_action),
        corpus_name: setup.corpus_name,
        corpus_len: corpus.len(),
        identity: setup.identity,
        uncached_passes: args.uncached_passes,
        cached_passes: args.cached_passes,
        corpus_uncached,
        corpus_cached,
        pgbench_uncached,
        pgbench_cached,
        slowest,
        clock_overhead_ns,
        warnings,
    })
}

fn pgbench_owned(n: u64) -> String {
    let mut buf = String::new();
    pgbench_statement(&mut buf, n);
    buf
}

/// `850 ns`, `12.3 µs`.
fn duration(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 100_000 {
        format!("{:.1} µs", ns as f64 / 1_000.0)
    } else {
        format!("{} µs", (ns + 500) / 1_000)
    }
}

/// The first `max` characters of `sql`, with `…` if cut.
fn abbreviate(sql: &str, max: usize) -> String {
    if sql.chars().count() <= max {
        sql.to_owned()
    } else {
        format!("{}…", sql.chars().take(max).collect::<String>())
    }
}

impl Report {
    fn rows(&self) -> [(&'static str, &'static str, &'static str, Stats); 4] {
        [
            ("corpus", "ORM corpus", "uncached", self.corpus_uncached),
            ("corpus", "ORM corpus", "cached", self.corpus_cached),
            (
                "pgbench",
                "pgbench -S, new aid each time",
                "uncached",
                self.pgbench_uncached,
            ),
            (
                "pgbench",
                "pgbench -S, new aid each time",
                "cached (by shape)",
                self.pgbench_cached,
            ),
        ]
    }

    fn table(&self) -> String {
        let mut out = format!(
            "policy engine decision time per statement, {} uncached / {} cached passes over the corpus\n\
             policy: {} ({} rules, defaultAction {}); as db user {:?}{}\n\
             corpus: {} ({} statements, all allowed); pgbench: `{}N;` with a new N each sample\n\n",
            self.uncached_passes,
            self.cached_passes,
            self.policy_name,
            self.rules,
            self.default_action,
            self.identity.db_user,
            self.identity
                .service_account
                .as_ref()
                .map(|sa| format!(", service account {sa}"))
                .unwrap_or_default(),
            self.corpus_name,
            self.corpus_len,
            PGBENCH_SIMPLE_PREFIX,
        );
        out.push_str("| statements                    | path              | samples |       p50 |       p99 |      mean |\n");
        out.push_str("| ----------------------------- | ----------------- | ------: | --------: | --------: | --------: |\n");
        for (_, what, path, s) in self.rows() {
            out.push_str(&format!(
                "| {what:<29} | {path:<17} | {:>7} | {:>9} | {:>9} | {:>9} |\n",
                s.samples,
                duration(s.p50),
                duration(s.p99),
                duration(s.mean),
            ));
        }
        out.push('\n');
        let speedup = |u: Stats, c: Stats| u.p50 as f64 / c.p50.max(1) as f64;
        out.push_str(&format!(
            "cache speed-up at p50: ORM corpus ×{:.0}, pgbench ×{:.0}\n",
            speedup(self.corpus_uncached, self.corpus_cached),
            speedup(self.pgbench_uncached, self.pgbench_cached),
        ));
        out.push_str("slowest uncached statements (p50):\n");
        for (ns, sql) in &self.slowest {
            out.push_str(&format!("- {}: {}\n", duration(*ns), abbreviate(sql, 100)));
        }
        out.push_str(&format!(
            "every sample includes the clock's own overhead, {} at p50\n",
            duration(self.clock_overhead_ns)
        ));
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out
    }

    fn json(&self) -> Value {
        let stats = |s: Stats| {
            json!({
                "samples": s.samples,
                "p50_ns": s.p50,
                "p99_ns": s.p99,
                "mean_ns": s.mean,
                "max_ns": s.max,
            })
        };
        json!({
            "config": {
                "policy": self.policy_name,
                "rules": self.rules,
                "default_action": self.default_action,
                "corpus": self.corpus_name,
                "statements": self.corpus_len,
                "db_user": self.identity.db_user,
                "service_account": self.identity.service_account,
                "uncached_passes": self.uncached_passes,
                "cached_passes": self.cached_passes,
                "release_build": !cfg!(debug_assertions),
            },
            "results": {
                "corpus": {
                    "uncached": stats(self.corpus_uncached),
                    "cached": stats(self.corpus_cached),
                },
                "pgbench_select_only_literal": {
                    "uncached": stats(self.pgbench_uncached),
                    "cached": stats(self.pgbench_cached),
                },
            },
            "slowest_uncached": self.slowest.iter().map(|(ns, sql)| json!({"p50_ns": ns, "sql": sql})).collect::<Vec<_>>(),
            "clock_overhead_ns": self.clock_overhead_ns,
            "warnings": self.warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let policy = load_policy(DEFAULT_POLICY_NAME, DEFAULT_POLICY).unwrap();
        Engine::new(RuleSet::new(&policy))
    }

    fn app() -> Identity {
        Identity {
            db_user: "app".into(),
            service_account: Some("shop/web".into()),
            ..Identity::default()
        }
    }

    #[test]
    fn the_policy_allows_the_whole_corpus_and_pgbench() {
        let engine = engine();
        let corpus = read_corpus(DEFAULT_CORPUS);
        assert!(corpus.len() >= 50, "{} statements", corpus.len());
        let mut denied = denials(&engine, &app(), &corpus);
        denied.extend(denials(&engine, &app(), &pgbench_statements()));
        assert!(denied.is_empty(), "denied:\n{}", denied.join("\n"));
    }

    #[test]
    fn the_policy_has_teeth() {
        let engine = engine();
        let denied = denials(
            &engine,
            &app(),
            &[
                "DROP TABLE users".to_owned(),
                "DELETE FROM orders".to_owned(),
                "SELECT card_number FROM billing.payments".to_owned(),
                "COPY users TO STDOUT".to_owned(),
            ],
        );
        assert_eq!(denied.len(), 4, "{denied:?}");
    }

    #[test]
    fn pgbench_statements_differ_and_share_a_cache_entry() {
        let (a, b) = (pgbench_owned(0), pgbench_owned(1));
        assert_eq!(a, "SELECT abalance FROM pgbench_accounts WHERE aid = 1;");
        assert_ne!(a, b);
        let engine = engine();
        let class = engine.class(
            &app(),
            &SearchPath::default(),
            &palisade_policy::dialect::SqlDialect::default(),
        );
        assert!(Arc::ptr_eq(
            &engine.decide(&class, &a),
            &engine.decide(&class, &b)
        ));
    }

    #[test]
    fn corpus_lines_and_formatting() {
        assert_eq!(
            read_corpus("-- c\n\n  SELECT 1  \nBEGIN\n"),
            vec!["SELECT 1", "BEGIN"]
        );
        assert_eq!(duration(850), "850 ns");
        assert_eq!(duration(12_345), "12.3 µs");
        assert_eq!(duration(123_456), "123 µs");
        assert_eq!(abbreviate("abcdef", 3), "abc…");
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), 2);
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
