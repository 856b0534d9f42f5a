//! Running the sidecar: bad input, a database that is down, hot reload, graceful shutdown,
//! the admin endpoint, the command line, and real clients (psql, pgbench).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{RawClient, connect, db_error, plain_sidecar, policy, text_rows};
use palisade_tests::free_port;
use palisade_tests::pg::{PgCluster, SUPERUSER, TRUST_USER};
use palisade_tests::sidecar::{Sidecar, SidecarOptions, sidecar_binary};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn garbage_and_absurd_lengths_get_an_error_and_others_keep_working() {
    let pg = PgCluster::shared();
    let sc = plain_sidecar(pg);
    let bystander = connect(&sc.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap();

    // Not PostgreSQL at all.
    let mut raw = RawClient::connect(sc.port).await;
    raw.stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (code, message) = raw.expect_error().await;
    assert_eq!(code, "08P01");
    assert!(
        message.contains("invalid length of startup packet"),
        "{message}"
    );
    assert!(raw.closed().await);

    // A 2 GiB length header after a valid startup: refused before any allocation.
    let mut raw = RawClient::connect(sc.port).await;
    raw.startup(TRUST_USER, "postgres").await;
    raw.stream.write_all(&[b'Q', 0x80, 0, 0, 0]).await.unwrap();
    let (code, message) = raw.expect_error().await;
    assert_eq!(code, "08P01");
    assert!(message.contains("invalid message length"), "{message}");
    assert!(raw.closed().await);

    // 1 GiB (PostgreSQL's own ceiling is one byte less).
    let mut raw = RawClient::connect(sc.port).await;
    raw.startup(TRUST_USER, "postgres").await;
    raw.stream.write_all(&[b'Q', 0x40, 0, 0, 0]).await.unwrap();
    let (code, message) = raw.expect_error().await;
    assert_eq!(code, "08P01");
    assert!(message.contains("exceeds the limit"), "{message}");

    // Random bytes mid-session.
    let mut raw = RawClient::connect(sc.port).await;
    raw.startup(TRUST_USER, "postgres").await;
    raw.stream
        .write_all(&[0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03])
        .await
        .unwrap();
    let (code, _) = raw.expect_error().await;
    assert!(code == "08P01", "{code}");

    assert_eq!(
        text_rows(&bystander, "SELECT 1").await,
        vec![vec![Some("1".into())]]
    );
    let fresh = connect(&sc.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap();
    assert_eq!(
        text_rows(&fresh, "SELECT 2").await,
        vec![vec![Some("2".into())]]
    );
}

#[tokio::test]
async fn an_upstream_that_is_down_gives_a_clear_error_and_not_ready() {
    let dead_port = free_port();
    let port = free_port();
    let sc = Sidecar::start(SidecarOptions {
        policy_yaml: policy(port, "127.0.0.1", dead_port, "    tls: {mode: Disable}", ""),
        port,
        ..Default::default()
    })
    .unwrap();
    let err = connect(&sc.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(code, "08001");
    assert!(
        message.contains(&format!(
            "cannot connect to upstream database 127.0.0.1:{dead_port}"
        )),
        "{message}"
    );
    let (status, body) = sc.admin_get("/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("test/e2e"), "{body}");
    assert_eq!(sc.admin_get("/healthz").unwrap().0, 200);
}

#[tokio::test]
async fn databases_outside_the_allowlist_are_refused() {
    let pg = PgCluster::shared();
    pg.create_database("allowed_db").unwrap();
    let port = free_port();
    let sc = Sidecar::start(SidecarOptions {
        policy_yaml: policy(
            port,
            "127.0.0.1",
            pg.port,
            "    databases: [allowed_db]\n    tls: {mode: Disable}",
            "",
        ),
        port,
        ..Default::default()
    })
    .unwrap();
    connect(&sc.conn_str(SUPERUSER, None, "allowed_db"))
        .await
        .unwrap();
    let err = connect(&sc.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(code, "28000");
    assert!(
        message.contains("database \"postgres\" is not allowed by policy test/e2e"),
        "{message}"
    );
}

#[tokio::test]
async fn policy_changes_apply_without_dropping_sessions_and_bad_ones_are_rejected() {
    let pg = PgCluster::shared();
    pg.create_database("reload_db").unwrap();
    let port = free_port();
    let open = |dbs: &str| {
        policy(
            port,
            "127.0.0.1",
            pg.port,
            &format!("    databases: [{dbs}]\n    tls: {{mode: Disable}}"),
            "",
        )
    };
    let sc = Sidecar::start(SidecarOptions {
        policy_yaml: open("postgres, reload_db"),
        port,
        extra_args: vec!["--reload-interval".into(), "100ms".into()],
        ..Default::default()
    })
    .unwrap();
    let session = connect(&sc.conn_str(SUPERUSER, None, "reload_db"))
        .await
        .unwrap();

    // Narrow the allowlist: new connections follow it, the open session carries on.
    sc.replace_policy(&open("postgres")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while connect(&sc.conn_str(SUPERUSER, None, "reload_db"))
        .await
        .is_ok()
    {
        assert!(
            Instant::now() < deadline,
            "policy change not applied; log:\n{}",
            sc.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        text_rows(&session, "SELECT 1").await,
        vec![vec![Some("1".into())]]
    );

    // An invalid policy is rejected and the last good one stays in force.
    sc.replace_policy("apiVersion: palisade.dev/v1alpha1\nkind: DatabasePolicy\nmetadata: {name: e2e, namespace: test}\nspec:\n  database: {host: 127.0.0.1, prot: 1}\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sc.logs().contains("invalid policy change rejected") {
        assert!(
            Instant::now() < deadline,
            "no rejection logged:\n{}",
            sc.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        sc.logs().contains("prot"),
        "the error names the field:\n{}",
        sc.logs()
    );
    connect(&sc.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap();
    assert!(
        connect(&sc.conn_str(SUPERUSER, None, "reload_db"))
            .await
            .is_err()
    );
    let (_, metrics) = sc.admin_get("/metrics").unwrap();
    assert!(
        metrics.contains("palisade_policy_reloads_total{result=\"failure\"} 1"),
        "{metrics}"
    );

    // A new listen port: a new listener, the old one closed, open sessions untouched.
    let new_port = free_port();
    sc.replace_policy(
        &open("postgres").replace(&format!("port: {port}}}"), &format!("port: {new_port}}}")),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while connect(&format!(
        "host=127.0.0.1 port={new_port} user={SUPERUSER} dbname=postgres"
    ))
    .await
    .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "new port not opened:\n{}",
            sc.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        connect(&sc.conn_str(SUPERUSER, None, "postgres"))
            .await
            .is_err()
    );
    assert_eq!(
        text_rows(&session, "SELECT 3").await,
        vec![vec![Some("3".into())]]
    );
}

#[tokio::test]
async fn sigterm_drains_open_sessions_then_exits() {
    let pg = PgCluster::shared();
    let port = free_port();
    let mut sc = Sidecar::start(SidecarOptions {
        policy_yaml: policy(port, "127.0.0.1", pg.port, "    tls: {mode: Disable}", ""),
        port,
        extra_args: vec!["--shutdown-grace".into(), "20s".into()],
        ..Default::default()
    })
    .unwrap();
    let session = connect(&sc.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap();
    sc.send_sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No new connections, but the open session finishes its work.
    assert!(
        connect(&sc.conn_str(SUPERUSER, None, "postgres"))
            .await
            .is_err()
    );
    assert_eq!(
        text_rows(&session, "SELECT 1").await,
        vec![vec![Some("1".into())]]
    );
    assert!(
        sc.wait_exit(Duration::from_millis(500)).is_none(),
        "exited with a session open"
    );
    drop(session);
    // Let the client's connection task send its Terminate before this thread blocks.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = sc
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("did not exit once drained; log:\n{}", sc.logs()));
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_on_stderr() {
    let pg = PgCluster::shared();
    let port = free_port();
    let sc = Sidecar::start(SidecarOptions {
        policy_yaml: policy(port, "127.0.0.1", pg.port, "    tls: {mode: Disable}", ""),
        port,
        extra_args: vec![
            "--log-format".into(),
            "json".into(),
            "--log-level".into(),
            "info".into(),
        ],
        ..Default::default()
    })
    .unwrap();
    let client = connect(&sc.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap();
    client.simple_query("SELECT 1").await.unwrap();
    let logs = sc.logs();
    let events: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let started = events
        .iter()
        .find(|e| e["message"] == "session started")
        .unwrap_or_else(|| panic!("no session event:\n{logs}"));
    assert_eq!(started["user"], SUPERUSER);
    assert_eq!(started["span"]["policy"], "test/e2e");
    assert!(
        events
            .iter()
            .all(|e| e["level"].is_string() && e["timestamp"].is_string())
    );
}

#[tokio::test]
async fn metrics_count_connections_bytes_and_statements() {
    let pg = PgCluster::shared();
    let sc = plain_sidecar(pg);
    let client = connect(&sc.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap();
    for _ in 0..5 {
        client.simple_query("SELECT 1").await.unwrap();
    }
    let (status, body) = sc.admin_get("/metrics").unwrap();
    assert_eq!(status, 200);
    let value = |name: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{body}"))
    };
    assert!(value("palisade_connections_total{policy=\"test/e2e\"}") >= 1.0);
    assert!(value("palisade_connections_active{policy=\"test/e2e\"}") >= 1.0);
    assert!(value("palisade_statements_total{policy=\"test/e2e\"}") >= 5.0);
    assert!(
        value("palisade_bytes_total{policy=\"test/e2e\",direction=\"server_to_client\"}") > 0.0
    );
    assert!(value("palisade_statement_duration_seconds_count{policy=\"test/e2e\"}") >= 5.0);
    let (status, body) = sc.admin_get("/readyz").unwrap();
    assert_eq!((status, body.trim()), (200, "ready"));
}

fn psql(conninfo: &str, script: &str, dir: &std::path::Path) -> (bool, String) {
    let pg = PgCluster::shared();
    let path = dir.join("script.sql");
    std::fs::write(&path, script).unwrap();
    let out = Command::new(pg.bin_dir.join("psql"))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&path)
        .arg(conninfo)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn psql_scripts_give_the_same_output_as_direct() {
    let pg = PgCluster::shared();
    let database = pg.create_database("psql_db").unwrap();
    let sc = plain_sidecar(pg);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.csv"), "1,one\n2,two\n3,three\n").unwrap();
    std::fs::write(
        dir.path().join("blob.bin"),
        (0..=255u8).cycle().take(100_000).collect::<Vec<u8>>(),
    )
    .unwrap();
    // \copy (COPY FROM STDIN / TO STDOUT), \gset, \lo_import/\lo_export (fastpath function
    // calls), a transaction with a savepoint, and an error psql reports and recovers from.
    let script = r#"
DROP TABLE IF EXISTS words;
CREATE TABLE words(id int, word text);
\copy words FROM 'data.csv' WITH (FORMAT csv)
SELECT count(*) AS n FROM words \gset
\echo rows :n
BEGIN;
INSERT INTO words VALUES (4, 'four');
SAVEPOINT s;
\set ON_ERROR_STOP 0
INSERT INTO words VALUES ('x', 'bad');
\set ON_ERROR_STOP 1
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT * FROM words ORDER BY id;
\lo_import blob.bin
SELECT count(*) FROM pg_largeobject_metadata WHERE oid = :LASTOID;
\lo_export :LASTOID blob.out
SELECT lo_unlink(:LASTOID);
\copy (SELECT word FROM words ORDER BY id) TO 'words.out'
DROP TABLE words;
"#;
    let (ok_via, out_via) = psql(&sc.conn_str(SUPERUSER, None, &database), script, dir.path());
    assert!(ok_via, "{out_via}");
    let exported = std::fs::read(dir.path().join("blob.out")).unwrap();
    assert_eq!(
        exported,
        std::fs::read(dir.path().join("blob.bin")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("words.out")).unwrap(),
        "one\ntwo\nthree\nfour\n"
    );
    let (ok_direct, out_direct) =
        psql(&pg.conn_str(SUPERUSER, None, &database), script, dir.path());
    assert!(ok_direct, "{out_direct}");
    // Large object OIDs differ between runs; everything else must match.
    let normalise = |s: &str| {
        s.lines()
            .map(|l| {
                if l.starts_with("lo_import ") {
                    "lo_import N"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(normalise(&out_via), normalise(&out_direct));
    assert!(out_via.contains("rows 3"));
}

#[test]
fn pgbench_runs_clean_through_the_sidecar() {
    let pg = PgCluster::shared();
    let database = pg.create_database("bench_db").unwrap();
    let sc = plain_sidecar(pg);
    let pgbench = pg.bin_dir.join("pgbench");
    let base = ["-h", "127.0.0.1", "-U", SUPERUSER];
    let port = sc.port.to_string();
    let init = Command::new(&pgbench)
        .args(base)
        .args(["-p", &port, "-i", "-s", "1", "-q", &database])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    for mode in ["simple", "extended", "prepared"] {
        let run = Command::new(&pgbench)
            .args(base)
            .args([
                "-p", &port, "-M", mode, "-c", "4", "-j", "2", "-T", "2", &database,
            ])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "{mode}: {out}{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            out.contains("number of failed transactions: 0"),
            "{mode}: {out}"
        );
        let processed: u64 = out
            .lines()
            .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
            .and_then(|v| v.split('/').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        assert!(processed > 100, "{mode}: {out}");
    }
}

#[test]
fn the_command_line_explains_itself_and_rejects_bad_input() {
    let bin = sidecar_binary();
    let help = Command::new(&bin).args(["run", "--help"]).output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--policy-dir",
        "--secrets-dir",
        "--admin-address",
        "--tls-cert",
        "--shutdown-grace",
        "--service-account",
        "--pod",
        "--workload",
        "--pod-labels",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help");
    }
    for (flag, value, says) in [
        ("--workload", "checkout", "Kind/name"),
        ("--pod-labels", "palisade.dev/model", "key=value"),
        ("--service-account", "web", "namespace/name"),
    ] {
        let bad = Command::new(&bin)
            .args(["run", "--policy-dir", "x", flag, value])
            .output()
            .unwrap();
        assert!(!bad.status.success(), "{flag} {value}");
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(err.contains(flag) && err.contains(says), "{err}");
    }
    let wrong = Command::new(&bin)
        .args(["run", "--polcy-dir", "x"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("--polcy-dir"));

    let missing = Command::new(&bin)
        .args(["run", "--policy-dir", "/nonexistent/palisade"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("/nonexistent/palisade") && err.contains("No such file"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let empty = Command::new(&bin)
        .args(["run", "--admin-address", "127.0.0.1:0", "--policy-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no DatabasePolicy found"));

    std::fs::write(dir.path().join("p.yaml"), "apiVersion: palisade.dev/v1alpha1\nkind: DatabasePolicy\nmetadata: {name: p}\nspec:\n  database:\n    host: db\n    tls: {mode: VerifyFull, caSecretRef: {name: pg-ca, key: ca.crt}}\n").unwrap();
    let no_secret = Command::new(&bin)
        .args(["run", "--admin-address", "127.0.0.1:0", "--policy-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!no_secret.status.success());
    let err = String::from_utf8_lossy(&no_secret.stderr);
    assert!(
        err.contains("spec.database.tls.caSecretRef") && err.contains("--secrets-dir"),
        "{err}"
    );
}
