//! What the end-to-end suites share: policies, clients, and a raw wire client for what no
//! driver will send (garbage, absurd lengths).

#![allow(dead_code)] // each suite uses its own subset

use std::time::Duration;

use palisade_tests::free_port;
use palisade_tests::pg::PgCluster;
use palisade_tests::sidecar::{Sidecar, SidecarOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::{Client, NoTls};

/// A DatabasePolicy for `pg`, listening on `port`, with `database_extra` appended under
/// `spec.database` (indented YAML lines) and `spec_extra` under `spec`.
pub fn policy(
    port: u16,
    host: &str,
    pg_port: u16,
    database_extra: &str,
    spec_extra: &str,
) -> String {
    format!(
        "apiVersion: palisade.dev/v1alpha1
kind: DatabasePolicy
metadata: {{name: e2e, namespace: test}}
spec:
  listen: {{port: {port}}}
  database:
    host: {host}
    port: {pg_port}
{database_extra}
{spec_extra}
"
    )
}

/// A sidecar in front of the plain shared cluster, TLS disabled.
pub fn plain_sidecar(pg: &PgCluster) -> Sidecar {
    let port = free_port();
    Sidecar::start(SidecarOptions {
        policy_yaml: policy(port, "127.0.0.1", pg.port, "    tls: {mode: Disable}", ""),
        port,
        ..Default::default()
    })
    .expect("sidecar starts")
}

pub async fn connect(conn_str: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conn_str, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Rows of a simple query as text, for comparing proxied and direct results.
pub async fn text_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// A wire-level client: just enough protocol to get a session and then misbehave.
pub struct RawClient {
    pub stream: TcpStream,
}

impl RawClient {
    pub async fn connect(port: u16) -> RawClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        RawClient { stream }
    }

    /// Startup as a trust user, read through the first ReadyForQuery.
    pub async fn startup(&mut self, user: &str, database: &str) {
        self.startup_with(user, database, &[]).await
    }

    /// Startup with run-time parameters (`client_encoding`, …).
    pub async fn startup_with(&mut self, user: &str, database: &str, params: &[(&str, &str)]) {
        let packet = palisade_tests::wire::startup_packet_with(user, database, params);
        self.stream.write_all(&packet).await.unwrap();
        loop {
            let (tag, body) = self.read_message().await.expect("message during startup");
            assert_ne!(
                tag,
                b'E',
                "startup failed: {}",
                String::from_utf8_lossy(&body)
            );
            if tag == b'Z' {
                break;
            }
        }
    }

    /// One backend message, or None when the connection closed.
    pub async fn read_message(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut header = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(10), self.stream.read_exact(&mut header))
            .await
            .expect("timed out reading")
            .ok()?;
        let len = i32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len - 4];
        self.stream.read_exact(&mut body).await.ok()?;
        Some((header[0], body))
    }

    /// Reads until an ErrorResponse; returns its SQLSTATE and message.
    pub async fn expect_error(&mut self) -> (String, String) {
        loop {
            let (tag, body) = self
                .read_message()
                .await
                .expect("an ErrorResponse before close");
            if tag == b'E' {
                return (field(&body, b'C'), field(&body, b'M'));
            }
        }
    }

    /// Sends one simple Query (its text as raw bytes, in whatever encoding the session
    /// has) and reads through its ReadyForQuery.
    pub async fn query(&mut self, sql: &[u8]) -> QueryOutcome {
        let mut body = sql.to_vec();
        body.push(0);
        self.stream
            .write_all(&palisade_tests::wire::message(b'Q', &body))
            .await
            .unwrap();
        let mut outcome = QueryOutcome::default();
        loop {
            let (tag, body) = self.read_message().await.expect("an answer to the query");
            match tag {
                b'D' => outcome.rows.push(data_row(&body)),
                b'E' => outcome.errors.push(ErrorFields {
                    code: field(&body, b'C'),
                    message: field(&body, b'M'),
                    position: field(&body, b'P'),
                }),
                b'Z' => return outcome,
                _ => {}
            }
        }
    }

    /// True once the peer has closed the connection.
    pub async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// What a simple Query brought back.
#[derive(Debug, Default)]
pub struct QueryOutcome {
    pub rows: Vec<Vec<Option<Vec<u8>>>>,
    pub errors: Vec<ErrorFields>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFields {
    pub code: String,
    pub message: String,
    pub position: String,
}

/// The columns of a DataRow body (text format, raw bytes).
fn data_row(body: &[u8]) -> Vec<Option<Vec<u8>>> {
    let count = u16::from_be_bytes([body[0], body[1]]) as usize;
    let mut at = 2;
    (0..count)
        .map(|_| {
            let len = i32::from_be_bytes(body[at..at + 4].try_into().unwrap());
            at += 4;
            (len >= 0).then(|| {
                let value = body[at..at + len as usize].to_vec();
                at += len as usize;
                value
            })
        })
        .collect()
}

/// A field of an ErrorResponse body.
pub fn field(body: &[u8], tag: u8) -> String {
    let mut rest = body;
    while let Some((&t, after)) = rest.split_first() {
        if t == 0 {
            break;
        }
        let end = after.iter().position(|&b| b == 0).unwrap_or(after.len());
        if t == tag {
            return String::from_utf8_lossy(&after[..end]).into_owned();
        }
        rest = &after[(end + 1).min(after.len())..];
    }
    String::new()
}

/// The SQLSTATE and message of a tokio-postgres error, for assertions.
pub fn db_error(e: &tokio_postgres::Error) -> (String, String) {
    match e.as_db_error() {
        Some(db) => (db.code().code().to_string(), db.message().to_string()),
        None => (String::new(), e.to_string()),
    }
}
