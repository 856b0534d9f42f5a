//! Approvals end to end, standalone (SPEC §2.3): a statement a rule says needs approval is
//! held on the client's own connection — the client told at once with a notice naming the
//! request — until a second identity decides it with the real `kubectl palisade approve|deny
//! --sidecar URL --token-file F`, whose ID token the sidecar verifies. Real PostgreSQL, the
//! real sidecar binary, real clients (tokio-postgres, psql).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{RawClient, db_error};
use futures_util::StreamExt;
use palisade_tests::free_port;
use palisade_tests::issuer::Issuer;
use palisade_tests::pg::{PgCluster, SUPERUSER};
use palisade_tests::sidecar::{Sidecar, SidecarOptions, plugin_binary};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};

const DATABASE: &str = "approvals";

/// Who runs the statements that need approval. She is in data-stewards too, the approvers'
/// group: that must not let her approve her own.
const REQUESTER: &str = "alice@example.com";

const SEED: &str = "
CREATE TABLE IF NOT EXISTS customers(id int primary key, region text);
CREATE TABLE IF NOT EXISTS payments(id int primary key, amount int);
CREATE TABLE IF NOT EXISTS orders(id int primary key, total int);
CREATE TABLE IF NOT EXISTS ledger(id int primary key, balance int);
INSERT INTO payments VALUES (1, 10), (2, 20) ON CONFLICT DO NOTHING;
INSERT INTO orders VALUES (1, 100), (2, 200) ON CONFLICT DO NOTHING;
INSERT INTO ledger VALUES (1, 0) ON CONFLICT DO NOTHING;
";

fn policy_yaml(port: u16, pg_port: u16, issuer: &str) -> String {
    format!(
        r#"apiVersion: palisade.dev/v1alpha1
kind: DatabasePolicy
metadata: {{name: approvals, namespace: test}}
spec:
  listen: {{port: {port}}}
  database: {{host: 127.0.0.1, port: {pg_port}, tls: {{mode: Disable}}}}
  identity:
    oidc:
      issuer: {issuer}
      audiences: [palisade]
      jwksSecretRef: {{name: idp, key: jwks.json}}
  defaultAction: Allow
  rules:
    - name: customer-deletes
      match: {{operations: [Delete], tables: [public.customers]}}
      action: RequireApproval
      approval: {{approvers: {{groups: [data-stewards]}}, timeout: 60s, grantTtl: "0"}}
    - name: payments-export
      match: {{operations: [Select], tables: [public.payments]}}
      action: RequireApproval
      approval:
        approvers: {{users: [bob@example.com, carol@example.com]}}
        minApprovals: 2
        timeout: 60s
        grantTtl: "0"
    - name: orders-report
      match: {{operations: [Select], tables: [public.orders]}}
      action: RequireApproval
      approval: {{approvers: {{groups: [data-stewards]}}, timeout: 60s, grantTtl: 4s}}
    - name: ledger-fix
      match: {{operations: [Update], tables: [public.ledger]}}
      action: RequireApproval
      approval:
        approvers: {{groups: [data-stewards]}}
        timeout: 2s
        requireJustification: true
"#
    )
}

/// A sidecar with the approvals policy, an issuer its approvers' tokens come from, and
/// token files for the people in the tests.
struct Fixture {
    pg: &'static PgCluster,
    sidecar: Sidecar,
    issuer: Issuer,
    tokens: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        let pg = PgCluster::shared();
        pg.create_database(DATABASE).unwrap();
        pg.psql(DATABASE, SEED).unwrap();
        let issuer = Issuer::generate("https://idp.palisade.test").unwrap();
        let port = free_port();
        let sidecar = Sidecar::start(SidecarOptions {
            policy_yaml: policy_yaml(port, pg.port, issuer.url()),
            secrets: vec![("idp", "jwks.json", issuer.jwks().into_bytes())],
            port,
            ..Default::default()
        })
        .unwrap();
        Fixture {
            pg,
            sidecar,
            issuer,
            tokens: tempfile::tempdir().unwrap(),
        }
    }

    /// A raw wire client logged in as the requester (her token as the cleartext password
    /// the sidecar asks for).
    async fn raw_client(&self) -> RawClient {
        let mut raw = RawClient::connect(self.sidecar.port).await;
        let token = self.issuer.id_token(REQUESTER, &["analysts"]);
        raw.stream
            .write_all(&palisade_tests::wire::startup_packet(SUPERUSER, DATABASE))
            .await
            .unwrap();
        loop {
            let (tag, body) = raw.read_message().await.expect("startup");
            match tag {
                // AuthenticationCleartextPassword: the token goes as the password.
                b'R' if body[..4] == [0, 0, 0, 3] => {
                    let mut password = token.as_bytes().to_vec();
                    password.push(0);
                    raw.stream
                        .write_all(&palisade_tests::wire::message(b'p', &password))
                        .await
                        .unwrap();
                }
                b'E' => panic!("login refused: {}", common::field(&body, b'M')),
                b'Z' => return raw,
                _ => {}
            }
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.sidecar.admin_port)
    }

    /// A file holding an ID token for `email` in `groups`.
    fn token_file(&self, email: &str, groups: &[&str]) -> PathBuf {
        let path = self.tokens.path().join(format!("{email}.jwt"));
        std::fs::write(&path, self.issuer.id_token(email, groups)).unwrap();
        path
    }

    /// `kubectl palisade <verb> NAME --sidecar URL --token-file F [extra…]`.
    fn plugin(&self, args: &[&str], token: Option<&Path>) -> Output {
        let mut cmd = Command::new(plugin_binary());
        cmd.args(args).args(["--sidecar", &self.url()]);
        if let Some(t) = token {
            cmd.arg("--token-file").arg(t);
        }
        cmd.output().unwrap()
    }

    fn approve(&self, name: &str, email: &str, groups: &[&str]) -> Output {
        let token = self.token_file(email, groups);
        self.plugin(&["approve", name, "--comment", "looks right"], Some(&token))
    }

    fn deny(&self, name: &str, email: &str, groups: &[&str], comment: &str) -> Output {
        let token = self.token_file(email, groups);
        self.plugin(&["deny", name, "--comment", comment], Some(&token))
    }

    /// A plugin run that must succeed.
    fn must(&self, out: Output) -> Output {
        assert!(
            out.status.success(),
            "kubectl palisade failed ({}): {}{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        out
    }

    /// The request as `GET /approvals/NAME` shows it.
    fn request(&self, name: &str) -> Value {
        let (status, body) = self
            .sidecar
            .admin_get(&format!("/approvals/{name}"))
            .unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn wait_state(&self, name: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let request = self.request(name);
            if request["status"]["state"] == state || Instant::now() > deadline {
                assert_eq!(request["status"]["state"], state, "{request:#}");
                return request;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How the requester in these tests logs in: as alice, with her ID token for a
    /// password (the database user is the trusted superuser).
    fn requester_conn_str(&self) -> String {
        let token = self
            .issuer
            .id_token(REQUESTER, &["analysts", "data-stewards"]);
        self.sidecar.conn_str(SUPERUSER, Some(&token), DATABASE)
    }

    /// A client through the sidecar as the requester, and the notices it receives.
    async fn client(&self) -> (Client, Notices) {
        let (client, mut connection) = tokio_postgres::connect(&self.requester_conn_str(), NoTls)
            .await
            .unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let AsyncMessage::Notice(n) = message {
                    let _ = tx.send((n.message().to_string(), n.hint().map(str::to_string)));
                }
            }
        });
        (client, Notices(rx))
    }
}

struct Notices(mpsc::UnboundedReceiver<(String, Option<String>)>);

impl Notices {
    /// The name of the request the next hold notice announces.
    async fn held(&mut self) -> String {
        let (message, hint) = tokio::time::timeout(Duration::from_secs(10), self.0.recv())
            .await
            .expect("a notice that the statement is held")
            .expect("the connection is open");
        let name = message
            .split("request ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no request named in {message:?}"))
            .to_string();
        let hint = hint.unwrap_or_default();
        assert!(
            hint.contains(&format!(
                "kubectl palisade approve {name} --sidecar http://127.0.0.1:"
            )),
            "the notice says how to approve: {hint}"
        );
        name
    }

    fn none_yet(&mut self) -> bool {
        self.0.try_recv().is_err()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn rows(messages: &[tokio_postgres::SimpleQueryMessage]) -> usize {
    messages
        .iter()
        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
        .count()
}

/// A statement still running after `wait`: it is held.
async fn still_held<T>(task: &mut tokio::task::JoinHandle<T>) -> bool {
    tokio::time::timeout(Duration::from_millis(300), task)
        .await
        .is_err()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approved_statement_runs_inside_its_open_transaction() {
    let f = Fixture::start();
    f.pg.psql(
        DATABASE,
        "DELETE FROM customers WHERE id IN (101, 102); INSERT INTO customers VALUES (101, 'eu')",
    )
    .unwrap();

    let (client, mut notices) = f.client().await;
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute("INSERT INTO customers VALUES (102, 'us')")
        .await
        .unwrap();
    let mut delete = tokio::spawn(async move {
        let n = client
            .execute("DELETE FROM customers WHERE id = $1", &[&101i32])
            .await;
        (client, n)
    });
    let name = notices.held().await;
    assert!(
        still_held(&mut delete).await,
        "the DELETE waits for approval"
    );

    // What an approver sees.
    let listed = f.plugin(&["approvals"], None);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let table = stdout(&listed);
    for want in [
        name.as_str(),
        "Pending",
        REQUESTER,
        "DELETE FROM customers WHERE id = $1",
        "public.customers",
    ] {
        assert!(table.contains(want), "{want} missing from:\n{table}");
    }
    let request = f.request(&name);
    assert_eq!(request["spec"]["rule"], "customer-deletes");
    assert_eq!(request["spec"]["operations"], serde_json::json!(["Delete"]));
    assert_eq!(request["spec"]["requester"]["user"], REQUESTER);
    assert_eq!(
        request["spec"]["requester"]["groups"],
        serde_json::json!(["analysts", "data-stewards"])
    );
    assert_eq!(request["spec"]["requester"]["dbUser"], SUPERUSER);
    assert!(
        request["spec"]["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    let approved = f.approve(&name, "bob@example.com", &["data-stewards"]);
    assert!(approved.status.success(), "{}", stderr(&approved));
    assert!(
        stdout(&approved).contains("approved by bob@example.com; state: Approved"),
        "{}",
        stdout(&approved)
    );
    let (client, deleted) = tokio::time::timeout(Duration::from_secs(10), delete)
        .await
        .expect("the DELETE runs once approved")
        .unwrap();
    assert_eq!(deleted.unwrap(), 1);
    // Same transaction: the INSERT before the hold is still uncommitted, and commits with it.
    client.batch_execute("COMMIT").await.unwrap();
    let left =
        f.pg.psql(
            DATABASE,
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM customers WHERE id IN (101, 102)",
        )
        .unwrap();
    assert_eq!(left.trim(), "102");
    let request = f.wait_state(&name, "Approved");
    assert_eq!(request["spec"]["decisions"][0]["user"], "bob@example.com");
    assert_eq!(request["spec"]["decisions"][0]["comment"], "looks right");

    // grantTtl "0": this execution only. The same statement asks again.
    let (client, mut notices) = f.client().await;
    let mut again = tokio::spawn(async move {
        client
            .execute("DELETE FROM customers WHERE id = $1", &[&102i32])
            .await
    });
    let second = notices.held().await;
    assert_ne!(second, name);
    assert!(still_held(&mut again).await);
    again.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_timed_out_and_cancelled_statements_get_errors_and_the_session_goes_on() {
    let f = Fixture::start();

    // Denied: 42501 naming the request, the approver and their comment.
    let (client, mut notices) = f.client().await;
    let held = tokio::spawn(async move {
        let r = client
            .batch_execute("DELETE FROM customers WHERE id = 201")
            .await;
        (client, r)
    });
    let name = notices.held().await;
    let denied = f.deny(
        &name,
        "carol@example.com",
        &["data-stewards"],
        "not during the audit",
    );
    assert!(denied.status.success(), "{}", stderr(&denied));
    let (client, result) = held.await.unwrap();
    let (code, message) = db_error(&result.unwrap_err());
    assert_eq!(code, "42501");
    assert!(message.contains(&name), "{message}");
    assert!(
        message.contains("denied by carol@example.com: not during the audit"),
        "{message}"
    );
    assert_eq!(rows(&client.simple_query("SELECT 1").await.unwrap()), 1);
    f.wait_state(&name, "Denied");

    // A decided request takes no more decisions: 409.
    let late = f.approve(&name, "bob@example.com", &["data-stewards"]);
    assert_eq!(late.status.code(), Some(1));
    assert!(stderr(&late).contains("409"), "{}", stderr(&late));

    // Timed out (the rule waits 2s): 42501 saying so, the request Expired.
    client
        .batch_execute("SET palisade.justification = 'fix the opening balance'")
        .await
        .unwrap();
    let started = Instant::now();
    let result = client
        .batch_execute("UPDATE ledger SET balance = 5 WHERE id = 1")
        .await;
    let (code, message) = db_error(&result.unwrap_err());
    assert_eq!(code, "42501");
    assert!(
        message.contains("expired: no decision within 2s"),
        "{message}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    let name = notices.held().await;
    let request = f.wait_state(&name, "Expired");
    assert_eq!(request["spec"]["justification"], "fix the opening balance");

    // Cancelled (Ctrl-C): 57014, the request Withdrawn, the session usable.
    let cancel = client.cancel_token();
    let held = tokio::spawn(async move {
        let r = client
            .batch_execute("DELETE FROM customers WHERE id = 202")
            .await;
        (client, r)
    });
    let name = notices.held().await;
    cancel.cancel_query(NoTls).await.unwrap();
    let (client, result) = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("a cancelled hold ends")
        .unwrap();
    let (code, message) = db_error(&result.unwrap_err());
    assert_eq!(code, "57014", "{message}");
    assert!(message.contains(&name), "{message}");
    f.wait_state(&name, "Withdrawn");
    assert_eq!(rows(&client.simple_query("SELECT 1").await.unwrap()), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_verified_approvers_other_than_the_requester_decide() {
    let f = Fixture::start();
    let (client, mut notices) = f.client().await;
    let mut held = tokio::spawn(async move {
        client
            .batch_execute("DELETE FROM customers WHERE id = 301")
            .await
    });
    let name = notices.held().await;

    // No token, a token from another issuer, a non-approver, the requester itself.
    let anonymous = f.plugin(&["approve", &name], None);
    assert_eq!(anonymous.status.code(), Some(2));
    assert!(stderr(&anonymous).contains("--token-file is required"));

    let stranger = Issuer::generate(f.issuer.url()).unwrap();
    let forged = f.tokens.path().join("forged.jwt");
    std::fs::write(
        &forged,
        stranger.id_token("bob@example.com", &["data-stewards"]),
    )
    .unwrap();
    let out = f.plugin(&["approve", &name], Some(&forged));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));

    let eve = f.approve(&name, "eve@example.com", &["contractors"]);
    assert_eq!(eve.status.code(), Some(1));
    assert!(stderr(&eve).contains("403"), "{}", stderr(&eve));
    assert!(stderr(&eve).contains("not an approver"), "{}", stderr(&eve));

    // The requester cannot approve her own statement, though she is in the approvers'
    // group; nor can anyone under another of her identities (the database user).
    for (who, identity) in [(REQUESTER, "as user"), (SUPERUSER, "as database user")] {
        let me = f.approve(&name, who, &["data-stewards"]);
        assert_eq!(me.status.code(), Some(1));
        assert!(stderr(&me).contains("403"), "{}", stderr(&me));
        assert!(stderr(&me).contains("cannot decide it"), "{}", stderr(&me));
        assert!(stderr(&me).contains(identity), "{}", stderr(&me));
    }

    assert!(
        still_held(&mut held).await,
        "refused decisions change nothing"
    );
    assert_eq!(f.request(&name)["status"]["state"], "Pending");
    assert_eq!(
        f.request(&name)["spec"]["decisions"],
        serde_json::json!([]),
        "refused decisions are not recorded"
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_distinct_approvers_when_the_rule_says_two() {
    let f = Fixture::start();
    let (client, mut notices) = f.client().await;
    let mut held = tokio::spawn(async move {
        client
            .query("SELECT id, amount FROM payments ORDER BY id", &[])
            .await
    });
    let name = notices.held().await;
    f.must(f.approve(&name, "bob@example.com", &[]));
    // One approval of two: still held, and bob cannot count twice.
    assert!(still_held(&mut held).await);
    assert_eq!(f.request(&name)["status"]["state"], "Pending");
    let twice = f.approve(&name, "bob@example.com", &[]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(
        stderr(&twice).contains("already decided"),
        "{}",
        stderr(&twice)
    );
    f.must(f.approve(&name, "carol@example.com", &[]));
    let rows = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("runs after the second approval")
        .unwrap()
        .unwrap();
    assert_eq!(rows.len(), 2);
    f.wait_state(&name, "Approved");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_lets_the_same_shape_rerun_for_the_grant_ttl() {
    let f = Fixture::start();
    let (client, mut notices) = f.client().await;
    let client = std::sync::Arc::new(client);
    let c = client.clone();
    let held = tokio::spawn(async move {
        c.simple_query("SELECT total FROM orders WHERE id = 1")
            .await
    });
    let name = notices.held().await;
    f.must(f.approve(&name, "bob@example.com", &["data-stewards"]));
    held.await.unwrap().unwrap();

    // Same shape, other literal: runs at once, no notice.
    let answer = client
        .simple_query("SELECT total FROM orders WHERE id = 2")
        .await
        .unwrap();
    assert_eq!(rows(&answer), 1);
    assert!(notices.none_yet(), "no hold within grantTtl");

    // Another shape asks again.
    let c = client.clone();
    let mut other =
        tokio::spawn(async move { c.simple_query("SELECT count(*) FROM orders").await });
    let second = notices.held().await;
    assert!(still_held(&mut other).await);
    f.must(f.deny(&second, "bob@example.com", &["data-stewards"], "no"));
    other.await.unwrap().unwrap_err();

    // After grantTtl (4s) the first shape asks again too.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let c = client.clone();
    let mut late = tokio::spawn(async move {
        c.simple_query("SELECT total FROM orders WHERE id = 1")
            .await
    });
    let _ = notices.held().await;
    assert!(still_held(&mut late).await);
    late.abort();
}

/// The tags of the messages read up to the next ReadyForQuery, and the notices among them.
async fn read_through_ready(raw: &mut RawClient) -> (Vec<u8>, Vec<String>) {
    let mut tags = Vec::new();
    let mut notices = Vec::new();
    loop {
        let (tag, body) = raw.read_message().await.expect("an answer");
        if tag == b'N' {
            notices.push(common::field(&body, b'M'));
        }
        tags.push(tag);
        if tag == b'Z' {
            return (tags, notices);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipelining_client_waits_behind_the_held_statement() {
    let f = Fixture::start();
    let mut raw = f.raw_client().await;
    // Three queries in one write, before any answer: the middle one needs approval.
    let mut batch = Vec::new();
    for sql in [
        "SELECT 1",
        "DELETE FROM customers WHERE id = 401",
        "SELECT 2",
    ] {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        batch.extend(palisade_tests::wire::message(b'Q', &body));
    }
    raw.stream.write_all(&batch).await.unwrap();

    // The first is answered and the notice comes (at once: maybe before that answer,
    // as notices may), and nothing more.
    let (mut tags, mut notices) = read_through_ready(&mut raw).await;
    if notices.is_empty() {
        let (tag, body) = raw.read_message().await.unwrap();
        assert_eq!(tag, b'N');
        notices.push(common::field(&body, b'M'));
    } else {
        tags.retain(|t| *t != b'N');
    }
    assert_eq!(tags, b"TDCZ", "SELECT 1 answered");
    let name = notices[0]
        .split("request ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    let mut byte = [0u8; 1];
    let quiet = tokio::time::timeout(Duration::from_millis(500), raw.stream.peek(&mut byte)).await;
    assert!(
        quiet.is_err(),
        "nothing answers what waits behind the held statement"
    );

    f.must(f.approve(&name, "bob@example.com", &["data-stewards"]));
    let (tags, _) = read_through_ready(&mut raw).await;
    assert_eq!(tags, b"CZ", "the DELETE runs");
    let (tags, _) = read_through_ready(&mut raw).await;
    assert_eq!(tags, b"TDCZ", "then SELECT 2");

    // A client that goes away while a statement is held withdraws its request.
    let mut raw = f.raw_client().await;
    let mut body = b"DELETE FROM customers WHERE id = 402".to_vec();
    body.push(0);
    raw.stream
        .write_all(&palisade_tests::wire::message(b'Q', &body))
        .await
        .unwrap();
    let (tag, body) = raw.read_message().await.unwrap();
    assert_eq!(tag, b'N');
    let notice = common::field(&body, b'M');
    let name = notice
        .split("request ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    drop(raw);
    f.wait_state(&name, "Withdrawn");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_justification_is_required_taken_by_the_sidecar_and_recorded() {
    let f = Fixture::start();
    let (client, _notices) = f.client().await;
    let result = client
        .batch_execute("UPDATE ledger SET balance = 1 WHERE id = 1")
        .await;
    let err = result.unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(code, "42501");
    assert!(message.contains("needs a justification"), "{message}");
    let hint = err
        .as_db_error()
        .and_then(|d| d.hint())
        .unwrap_or_default()
        .to_string();
    assert!(hint.contains("SET palisade.justification"), "{hint}");

    // The SET answers like the server's own, and the server never holds the text.
    client
        .batch_execute("SET palisade.justification = 'ticket OPS-7'")
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT coalesce(current_setting('palisade.justification', true), '')",
            &[],
        )
        .await
        .unwrap();
    let on_server: String = row.get(0);
    assert!(!on_server.contains("OPS-7"), "{on_server:?}");
}

#[test]
fn psql_shows_the_notice_and_runs_the_statement_once_approved() {
    let f = Fixture::start();
    f.pg.psql(
        DATABASE,
        "INSERT INTO customers VALUES (501, 'eu') ON CONFLICT DO NOTHING",
    )
    .unwrap();
    let conninfo = f.sidecar.conn_str(SUPERUSER, None, DATABASE);
    let psql = palisade_tests::pg::find_bin_dir().unwrap().join("psql");
    let child = Command::new(psql)
        .env("PGPASSWORD", f.issuer.id_token(REQUESTER, &["analysts"]))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-d", &conninfo, "-c"])
        .arg("DELETE FROM customers WHERE id = 501")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The request shows up on the admin endpoint as soon as the statement is held.
    let deadline = Instant::now() + Duration::from_secs(10);
    let name = loop {
        let (_, body) = f.sidecar.admin_get("/approvals").unwrap();
        let list: Value = serde_json::from_str(&body).unwrap();
        let pending = list["items"].as_array().unwrap().iter().find(|r| {
            r["status"]["state"] == "Pending"
                && r["spec"]["statement"] == "DELETE FROM customers WHERE id = $1"
        });
        if let Some(r) = pending {
            break r["metadata"]["name"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no pending request: {body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The planner's estimate, from a plain EXPLAIN on the session's own connection: the
    // primary key finds one row.
    let request = f.request(&name);
    assert_eq!(request["spec"]["estimate"]["rows"], 1, "{request:#}");
    assert_eq!(
        f.pg.psql(DATABASE, "SELECT count(*) FROM customers WHERE id = 501")
            .unwrap()
            .trim(),
        "1",
        "the EXPLAIN did not run the DELETE"
    );
    f.must(f.approve(&name, "bob@example.com", &["data-stewards"]));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "DELETE 1");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "NOTICE:  palisade: statement held for approval: request {name}"
        )),
        "{err}"
    );
    assert!(
        err.contains("HINT:  approvers run: kubectl palisade approve"),
        "{err}"
    );
}
