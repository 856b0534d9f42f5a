//! PostgreSQL's own regression suite (`../shared/pg_regress`, 214 tests) cannot tell the
//! sidecar from a direct connection: a direct run is the oracle, and the run through a
//! sidecar whose policy allows everything must match it byte for byte — every result,
//! every error message and position, every notice.

mod common;

use std::path::PathBuf;
use std::process::Command;

use palisade_tests::free_port;
use palisade_tests::pg::PgCluster;
use palisade_tests::sidecar::{Sidecar, SidecarOptions};

/// `shared/pg_regress/run.sh`, beside the repository (never copied into it).
fn run_script() -> PathBuf {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/pg_regress/run.sh")
        .canonicalize()
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL's regression suite is expected at ../shared/pg_regress beside the \
                 repository (with run.sh): {e}"
            )
        });
    assert!(script.is_file(), "{} is not a file", script.display());
    script
}

/// Runs the suite against `target` (the server itself, or a proxy in front of it), with
/// `expected` as the oracle; returns pg_regress's summary and the differences.
fn run(
    pg: &PgCluster,
    target: u16,
    out: &std::path::Path,
    expected: Option<&std::path::Path>,
) -> (String, String) {
    let mut cmd = Command::new("bash");
    cmd.arg(run_script())
        .arg(pg.port.to_string())
        .arg(target.to_string())
        .arg(out);
    if let Some(expected) = expected {
        cmd.arg(expected);
    }
    let output = cmd.output().expect("run.sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let diffs = std::fs::read_to_string(out.join("regression.diffs")).unwrap_or_default();
    assert!(
        out.join("results").is_dir(),
        "pg_regress produced no results (is postgresql-server-dev installed?)\n{stdout}\n{stderr}"
    );
    (stdout, diffs)
}

#[test]
fn pg_regress_through_the_sidecar_matches_direct() {
    let pg = PgCluster::start(false).expect("PostgreSQL starts");
    // The suite logs in as roles it creates, and runs prepared transactions.
    std::fs::write(
        pg.data_dir().join("pg_hba.conf"),
        "local all all trust\nhost all all 127.0.0.1/32 trust\n",
    )
    .unwrap();
    // run.sh and pg_regress log in as postgres; the harness's superuser has another name.
    pg.psql(
        "postgres",
        "CREATE ROLE postgres SUPERUSER LOGIN; ALTER SYSTEM SET max_prepared_transactions = 10",
    )
    .unwrap();
    pg.restart().unwrap();

    let work = tempfile::tempdir().unwrap();
    let direct = work.path().join("direct");
    let (summary, _) = run(&pg, pg.port, &direct, None);
    let oracle = work.path().join("oracle");
    std::fs::rename(direct.join("results"), &oracle).unwrap();
    assert!(
        std::fs::read_dir(&oracle).unwrap().count() >= 200,
        "the direct run recorded results\n{summary}"
    );

    let sidecar = sidecar_in_front(&pg, "  defaultAction: Allow\n  onParseError: Deny");
    let proxied = work.path().join("proxied");
    let (summary, diffs) = run(&pg, sidecar.port, &proxied, Some(&oracle));
    let failed: Vec<&str> = summary.lines().filter(|l| l.contains("FAILED")).collect();
    // Kept where a developer finds them after a failure.
    let kept = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("regression.diffs");
    std::fs::write(&kept, &diffs).unwrap();
    assert!(
        summary.contains("All 214 tests passed"),
        "{} tests differ from direct (all differences: {}):\n{}\n\nfirst differences:\n{}",
        failed.len(),
        kept.display(),
        failed.join("\n"),
        diffs.chars().take(6000).collect::<String>()
    );
    // The sidecar was really in the path.
    assert!(
        sidecar.logs().contains("session started"),
        "no session went through the sidecar"
    );
    drop(sidecar);

    // Under the example policy's guardrails, the suite differs only where a rule denies a
    // statement (and in what follows from that): no statement is refused as unreadable.
    let guarded = sidecar_in_front(&pg, GUARDRAILS);
    let (_, diffs) = run(
        &pg,
        guarded.port,
        &work.path().join("guarded"),
        Some(&oracle),
    );
    let mut denied = Vec::new();
    let mut previous = "";
    for line in diffs.lines() {
        if let Some(error) = line.strip_prefix("+ERROR:  palisade: ") {
            assert!(
                error.contains("by rule \"no-destructive-ddl\"")
                    || error.contains("by rule \"writes-need-where\""),
                "refused other than by a rule: {error} (after {previous:?})"
            );
            denied.push(format!("{previous}\n  -> {error}"));
        }
        previous = line;
    }
    let kept = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("regression-guardrails-denied.txt");
    std::fs::write(&kept, denied.join("\n")).unwrap();
    assert!(
        !denied.is_empty(),
        "the guardrails denied nothing in a suite full of DROP and TRUNCATE"
    );
    eprintln!(
        "under the example guardrails, {} statements were denied by its rules (listed in {})",
        denied.len(),
        kept.display()
    );
}

/// A sidecar in front of `pg` with the policy spec `spec`.
fn sidecar_in_front(pg: &PgCluster, spec: &str) -> Sidecar {
    let port = free_port();
    Sidecar::start(SidecarOptions {
        policy_yaml: common::policy(port, "127.0.0.1", pg.port, "    tls: {mode: Disable}", spec),
        port,
        ..Default::default()
    })
    .expect("sidecar starts")
}

/// The deny rules of `examples/databasepolicy.yaml`.
const GUARDRAILS: &str = "  defaultAction: Allow
  onParseError: Deny
  rules:
    - name: no-destructive-ddl
      match: {operations: [Drop, Truncate, Alter]}
      action: Deny
    - name: writes-need-where
      match: {operations: [Update, Delete], withoutWhere: true}
      action: Deny";
