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
        let packet = palisade_tests::wire::startup_packet(user, database);
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

    /// True once the peer has closed the connection.
    pub async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
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
