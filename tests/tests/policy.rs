//! The policy engine on the wire: every corpus statement through the live sidecar (simple
//! protocol, extended protocol and psql), and denials done right — the session stays
//! usable, pipelines and transaction blocks stay in step with the database.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{RawClient, connect, db_error, text_rows};
use palisade_tests::corpus::{cases, policy_yaml};
use palisade_tests::free_port;
use palisade_tests::pg::{PgCluster, SUPERUSER, TRUST_USER};
use palisade_tests::sidecar::{Sidecar, SidecarOptions};
use tokio::io::AsyncWriteExt;

const SEED: &str = "
CREATE TABLE IF NOT EXISTS customers(id int primary key, name text, ssn text);
CREATE TABLE IF NOT EXISTS orders(id serial primary key, customer_id int, amount numeric);
CREATE TABLE IF NOT EXISTS secrets(id int, v int);
CREATE TABLE IF NOT EXISTS orders_archive(id int, ssn text);
INSERT INTO customers VALUES (1, 'Ada', '123-45-6789'), (2, 'Grace', '987-65-4321') ON CONFLICT DO NOTHING;
INSERT INTO orders(customer_id, amount) SELECT 1 + g % 2, g FROM generate_series(1, 20) g;
DO $$ BEGIN CREATE ROLE analyst LOGIN PASSWORD 'analyst-secret'; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT ALL ON ALL TABLES IN SCHEMA public TO analyst;
";

/// Passwords of the corpus's database users (the superuser is trusted).
fn password(db_user: &str) -> Option<&'static str> {
    (db_user == "analyst").then_some("analyst-secret")
}

fn corpus_sidecar(database: &str, extra_args: Vec<String>) -> Sidecar {
    let pg = PgCluster::shared();
    pg.create_database(database).unwrap();
    pg.psql(database, SEED).unwrap();
    let port = free_port();
    Sidecar::start(SidecarOptions {
        policy_yaml: policy_yaml(port, pg.port),
        port,
        extra_args,
        ..Default::default()
    })
    .unwrap()
}

/// What a corpus case must come to on the wire: SQL that PostgreSQL's grammar rejects
/// (`parse` in the corpus) reaches this upstream, whose grammar the parser covers, and
/// comes back as the server's own syntax error.
fn expected_rule(case_rule: &'static str, sql: &str) -> &'static str {
    let syntax_error = palisade_policy::analysis::analyze(sql).is_err_and(|e| e.is_syntax_error());
    if case_rule == "parse" && syntax_error {
        SERVER_SYNTAX_ERROR
    } else {
        case_rule
    }
}

const SERVER_SYNTAX_ERROR: &str = "the server's 42601";

/// What the client saw: `Some(rule)` when the sidecar denied the statement, or the
/// server's own syntax error.
fn denied_by(code: &str, message: &str) -> Option<String> {
    if code == "42601" && !message.starts_with("palisade:") {
        return Some(SERVER_SYNTAX_ERROR.into());
    }
    if !message.starts_with("palisade: statement") {
        return None;
    }
    assert!(
        code == "42501",
        "denials carry SQLSTATE 42501: {code} {message}"
    );
    Some(match message.split('"').nth(1) {
        Some(rule) if message.contains(" by rule ") => rule.to_string(),
        _ if message.contains("could not be analysed") => "parse".into(),
        _ => "-".into(),
    })
}

fn verdict(case_allow: bool, case_rule: &str, seen: Option<String>) -> Result<(), String> {
    match (case_allow, seen) {
        (true, None) => Ok(()),
        (false, Some(rule)) if rule == case_rule => Ok(()),
        (allow, seen) => Err(format!(
            "expected {} {case_rule}, saw {seen:?}",
            if allow { "allow" } else { "deny" }
        )),
    }
}

#[tokio::test]
async fn every_corpus_statement_is_decided_on_the_wire_in_simple_and_extended_protocol() {
    let sc = corpus_sidecar("corpus_wire", vec![]);
    let mut failures = Vec::new();
    for case in cases() {
        for extended in [false, true] {
            let client = connect(&sc.conn_str(case.db_user, password(case.db_user), "corpus_wire"))
                .await
                .unwrap();
            let result = if extended {
                client.execute(case.sql.as_str(), &[]).await.map(|_| ())
            } else {
                client.simple_query(&case.sql).await.map(|_| ())
            };
            let seen = match &result {
                Ok(()) => None,
                Err(e) => {
                    let (code, message) = db_error(e);
                    denied_by(&code, &message)
                }
            };
            if let Err(why) = verdict(case.allow, expected_rule(case.rule, &case.sql), seen) {
                failures.push(format!(
                    "{} {:?} ({}): {why}; result {result:?}",
                    if extended { "extended" } else { "simple" },
                    case.sql,
                    case.db_user
                ));
            }
            // Whatever happened, the session still works (after COPY FROM STDIN the
            // client library itself gives up on the connection, proxied or not).
            if case.sql.contains("FROM STDIN") {
                continue;
            }
            if let Err(e) = client.simple_query("ROLLBACK; SELECT 1").await {
                failures.push(format!("{:?}: session unusable afterwards: {e}", case.sql));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_corpus_statement_is_decided_for_psql() {
    let sc = corpus_sidecar("corpus_psql", vec![]);
    let pg = PgCluster::shared();
    let mut failures = Vec::new();
    for case in cases() {
        let out = Command::new(pg.bin_dir.join("psql"))
            // Verbose errors carry the SQLSTATE: `ERROR:  42501: palisade: …`.
            .args(["-X", "-q", "-v", "VERBOSITY=verbose", "-c", &case.sql])
            .arg(sc.conn_str(case.db_user, password(case.db_user), "corpus_psql"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let seen = stderr
            .lines()
            .find_map(|l| l.split("ERROR:  ").nth(1))
            .and_then(|m| m.split_once(": "))
            .and_then(|(code, m)| denied_by(code, m));
        if let Err(why) = verdict(case.allow, expected_rule(case.rule, &case.sql), seen) {
            failures.push(format!("{:?}: {why}\n{stderr}", case.sql));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn a_denied_statement_never_reaches_the_database() {
    let sc = corpus_sidecar("corpus_reach", vec![]);
    let pg = PgCluster::shared();
    let client = connect(&sc.conn_str(SUPERUSER, None, "corpus_reach"))
        .await
        .unwrap();
    for sql in [
        "DROP TABLE customers",
        "SELECT 1; DROP TABLE customers",
        "DELETE FROM customers WHERE 1=1",
        "TRUNCATE customers",
    ] {
        let err = client.batch_execute(sql).await.unwrap_err();
        let (code, message) = db_error(&err);
        assert_eq!(code, "42501", "{sql}: {message}");
        assert!(message.contains("policy test/corpus"), "{message}");
    }
    let err = client
        .batch_execute("DROP TABLE customers")
        .await
        .unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(
        db.message(),
        "palisade: statement denied by rule \"no-destructive-ddl\" of policy test/corpus: destructive DDL is not allowed from workloads"
    );
    assert_eq!(
        db.detail(),
        Some("operations: Drop; relations: public.customers")
    );
    assert!(db.hint().unwrap().contains("kubectl palisade check"));
    assert_eq!(
        pg.psql("corpus_reach", "SELECT count(*) FROM customers")
            .unwrap()
            .trim(),
        "2"
    );
    // The server's log shows the replacement's parse error, never the statement itself.
    assert!(!pg.server_log().contains("TRUNCATE customers"));
}

#[tokio::test]
async fn a_denial_inside_a_transaction_aborts_it_on_both_sides() {
    let sc = corpus_sidecar("corpus_txn", vec![]);
    let mut client = connect(&sc.conn_str(SUPERUSER, None, "corpus_txn"))
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    tx.execute(
        "INSERT INTO orders(customer_id, amount) VALUES (1, 4242)",
        &[],
    )
    .await
    .unwrap();
    let err = tx.batch_execute("DROP TABLE orders").await.unwrap_err();
    assert_eq!(db_error(&err).0, "42501");
    // The database agrees the transaction is aborted: the next statement fails as it would
    // after any error, and the insert is gone after the rollback.
    let err = tx.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(db_error(&err).0, "25P02", "in failed transaction block");
    tx.rollback().await.unwrap();
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM orders WHERE amount = 4242").await,
        vec![vec![Some("0".into())]]
    );
}

#[tokio::test]
async fn pipelined_statements_around_a_denial_behave_as_with_a_server_error() {
    let sc = corpus_sidecar("corpus_pipe", vec![]);
    let client = connect(&sc.conn_str(SUPERUSER, None, "corpus_pipe"))
        .await
        .unwrap();
    // tokio-postgres pipelines concurrent queries: each is its own Parse/Bind/Execute/Sync.
    let before = client.query_one("SELECT 1::int", &[]);
    let denied = client.execute("DELETE FROM orders", &[]);
    let after = client.query_one("SELECT 2::int", &[]);
    let also_denied = client.query("SELECT * FROM secrets", &[]);
    let last = client.query_one("SELECT count(*) FROM orders", &[]);
    let (before, denied, after, also_denied, last) =
        tokio::join!(before, denied, after, also_denied, last);
    assert_eq!(before.unwrap().get::<_, i32>(0), 1);
    assert!(
        db_error(&denied.unwrap_err())
            .1
            .contains("writes-need-where")
    );
    assert_eq!(after.unwrap().get::<_, i32>(0), 2);
    assert!(
        db_error(&also_denied.unwrap_err())
            .1
            .contains("secrets-are-off-limits")
    );
    assert_eq!(last.unwrap().get::<_, i64>(0), 20);
}

#[tokio::test]
async fn a_denied_parse_answers_at_flush_and_skips_to_sync() {
    let sc = corpus_sidecar("corpus_flush", vec![]);
    let mut raw = RawClient::connect(sc.port).await;
    raw.startup(TRUST_USER, "corpus_flush").await;
    let msg = |tag: u8, body: &[u8]| {
        let mut m = vec![tag];
        m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        m.extend_from_slice(body);
        m
    };
    // Parse(denied) + Flush: a driver waiting for ParseComplete must hear the error now.
    let mut batch = msg(b'P', b"s1\0DROP TABLE orders\0\0\0");
    batch.extend(msg(b'H', b""));
    raw.stream.write_all(&batch).await.unwrap();
    let (code, message) = raw.expect_error().await;
    assert_eq!(code, "42501");
    assert!(message.contains("no-destructive-ddl"), "{message}");
    // Bind/Execute of the statement are skipped until Sync, then ReadyForQuery.
    let mut rest = msg(b'B', b"\0s1\0\0\0\0\0\0\0");
    rest.extend(msg(b'E', b"\0\0\0\0\0"));
    rest.extend(msg(b'S', b""));
    raw.stream.write_all(&rest).await.unwrap();
    let (tag, body) = raw.read_message().await.unwrap();
    assert_eq!((tag, body), (b'Z', b"I".to_vec()));
}

#[tokio::test]
async fn limits_on_statement_size_and_rows_keep_the_session_usable() {
    let pg = PgCluster::shared();
    pg.create_database("corpus_limits").unwrap();
    let port = free_port();
    let yaml = policy_yaml(port, pg.port).replace(
        "  rules:",
        "  limits: {maxStatementBytes: 1000, maxRowsPerStatement: 100}\n  rules:",
    );
    let sc = Sidecar::start(SidecarOptions {
        policy_yaml: yaml,
        port,
        ..Default::default()
    })
    .unwrap();
    let client = connect(&sc.conn_str(SUPERUSER, None, "corpus_limits"))
        .await
        .unwrap();
    let long = format!("SELECT '{}'", "x".repeat(5000));
    for extended in [false, true] {
        let err = if extended {
            client.query(long.as_str(), &[]).await.unwrap_err()
        } else {
            client.simple_query(&long).await.unwrap_err()
        };
        let (code, message) = db_error(&err);
        assert_eq!(code, "54000", "{message}");
        assert!(
            message.contains("exceeds limits.maxStatementBytes (1000)"),
            "{message}"
        );
    }
    // A statement far larger than what the sidecar will hold is refused unread.
    let huge = format!("SELECT '{}'", "y".repeat(200 * 1024));
    assert_eq!(
        db_error(&client.simple_query(&huge).await.unwrap_err()).0,
        "54000"
    );
    assert_eq!(
        text_rows(&client, "SELECT 1").await,
        vec![vec![Some("1".into())]]
    );

    assert_eq!(
        client
            .query("SELECT g FROM generate_series(1, 100) g", &[])
            .await
            .unwrap()
            .len(),
        100
    );
    for extended in [false, true] {
        let sql = "SELECT g FROM generate_series(1, 1000000) g";
        let err = if extended {
            client.query(sql, &[]).await.unwrap_err()
        } else {
            client.simple_query(sql).await.unwrap_err()
        };
        let (code, message) = db_error(&err);
        assert_eq!(code, "54000", "{message}");
        assert!(message.contains("more than 100 rows"), "{message}");
        assert_eq!(
            text_rows(&client, "SELECT 2").await,
            vec![vec![Some("2".into())]]
        );
    }
}

#[tokio::test]
async fn a_changed_policy_applies_to_the_next_statement_of_open_sessions() {
    let pg = PgCluster::shared();
    let database = "corpus_reload";
    pg.create_database(database).unwrap();
    pg.psql(database, SEED).unwrap();
    let port = free_port();
    let yaml = policy_yaml(port, pg.port);
    let sc = Sidecar::start(SidecarOptions {
        policy_yaml: yaml.clone(),
        port,
        extra_args: vec!["--reload-interval".into(), "100ms".into()],
        ..Default::default()
    })
    .unwrap();
    let client = connect(&sc.conn_str(SUPERUSER, None, database))
        .await
        .unwrap();
    client.simple_query("SELECT * FROM orders").await.unwrap();
    let stricter = yaml.replace(
        "  rules:\n",
        "  rules:\n    - {name: no-orders, match: {tables: [public.orders]}, action: Deny}\n",
    );
    sc.replace_policy(&stricter).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.simple_query("SELECT * FROM orders").await {
            Err(e) if db_error(&e).1.contains("no-orders") => break,
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "the open session never saw the new rule:\n{}",
                    sc.logs()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // A broken policy is rejected; the stricter one stays in force.
    sc.replace_policy(&stricter.replace("action: Deny}", "action: Denyy}"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sc.logs().contains("invalid policy change rejected") {
        assert!(Instant::now() < deadline, "{}", sc.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        db_error(
            &client
                .simple_query("SELECT * FROM orders")
                .await
                .unwrap_err()
        )
        .1
        .contains("no-orders")
    );
}

#[tokio::test]
async fn search_path_tricks_do_not_hide_a_table() {
    let sc = corpus_sidecar("corpus_path", vec![]);
    let pg = PgCluster::shared();
    pg.psql("corpus_path", "CREATE SCHEMA IF NOT EXISTS sales; CREATE TABLE IF NOT EXISTS sales.customers(id int, ssn text); GRANT USAGE ON SCHEMA sales TO analyst; GRANT SELECT ON sales.customers TO analyst;").unwrap();
    let client = connect(&sc.conn_str("analyst", password("analyst"), "corpus_path"))
        .await
        .unwrap();
    let denied = |r: Result<Vec<tokio_postgres::SimpleQueryMessage>, tokio_postgres::Error>| {
        r.err()
            .map(|e| db_error(&e).1)
            .is_some_and(|m| m.contains("analysts-never-see-ssn"))
    };
    assert!(denied(
        client.simple_query("SELECT ssn FROM customers").await
    ));
    // tokio-postgres returns an error before the server's ReadyForQuery has arrived and
    // may pipeline the next statement; the sidecar then cannot be sure a SET applies alone
    // and keeps the old reading too. A successful statement waits for ReadyForQuery.
    client.simple_query("SELECT 1").await.unwrap();
    // Moved elsewhere for certain: public.customers is no longer what the name means.
    client
        .simple_query("SET search_path = sales")
        .await
        .unwrap();
    let moved = client.simple_query("SELECT ssn FROM customers").await;
    assert!(
        moved.is_ok(),
        "after SET search_path = sales: {:?}; log:\n{}",
        moved.err().map(|e| db_error(&e)),
        sc.logs()
    );
    // Inside a transaction a SET may be rolled back, so the old reading still counts.
    client
        .simple_query("SET search_path = public")
        .await
        .unwrap();
    client.simple_query("BEGIN").await.unwrap();
    client
        .simple_query("SET search_path = sales")
        .await
        .unwrap();
    client.simple_query("ROLLBACK").await.unwrap();
    assert!(denied(
        client.simple_query("SELECT ssn FROM customers").await
    ));
    // set_config hides the new path from the proxy: every reading counts (including
    // vault.customers, which the secrets rule denies).
    let other = connect(&sc.conn_str("analyst", password("analyst"), "corpus_path"))
        .await
        .unwrap();
    other.simple_query("SET search_path = sales").await.unwrap();
    other
        .simple_query("SELECT set_config('search_path', 'public', false)")
        .await
        .unwrap();
    let err = other
        .simple_query("SELECT ssn FROM customers")
        .await
        .unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(
        code, "42501",
        "set_config must widen the search_path: {message}"
    );
}
