//! Opening the connection to the real database: TCP, then TLS as the policy's `tls.mode`
//! says. Every failure becomes a FATAL error a person can act on.

use std::time::Duration;

use palisade_policy::TlsMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::Upstream;
use crate::conn::Conn;
use crate::protocol::error::{PgError, sqlstate};
use crate::protocol::startup::SSL_REQUEST_CODE;
use crate::tls;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the upstream connection failed; `kind` labels the metric.
#[derive(Debug)]
pub struct ConnectError {
    pub kind: &'static str,
    pub error: PgError,
}

/// Connects to the upstream and negotiates TLS.
pub async fn connect(up: &Upstream) -> Result<Conn, ConnectError> {
    let addr = format!("{}:{}", up.host, up.port);
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(ConnectError {
                kind: "connect",
                error: PgError::fatal(
                    sqlstate::UNABLE_TO_CONNECT,
                    format!("palisade: cannot connect to upstream database {addr}: {e}"),
                )
                .with_hint(
                    "check that the database is running and spec.database.host/port are right",
                ),
            });
        }
        Err(_) => {
            return Err(ConnectError {
                kind: "connect",
                error: PgError::fatal(
                    sqlstate::UNABLE_TO_CONNECT,
                    format!("palisade: timed out connecting to upstream database {addr}"),
                ),
            });
        }
    };
    // Small request/response messages dominate: never let Nagle hold them back.
    let _ = tcp.set_nodelay(true);
    let Some(config) = &up.tls else {
        return Ok(Conn::Plain(tcp));
    };
    negotiate_tls(tcp, up, config.clone()).await
}

async fn negotiate_tls(
    mut tcp: TcpStream,
    up: &Upstream,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> Result<Conn, ConnectError> {
    let io_err = |e: std::io::Error| ConnectError {
        kind: "connect",
        error: PgError::fatal(
            sqlstate::UNABLE_TO_CONNECT,
            format!(
                "palisade: upstream {}:{} closed the connection during TLS negotiation: {e}",
                up.host, up.port
            ),
        ),
    };
    let mut req = [0u8; 8];
    req[..4].copy_from_slice(&8i32.to_be_bytes());
    req[4..].copy_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
    tcp.write_all(&req).await.map_err(io_err)?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.map_err(io_err)?;
    if answer[0] != b'S' {
        return Err(ConnectError {
            kind: "tls",
            error: PgError::fatal(
                sqlstate::UNABLE_TO_CONNECT,
                format!(
                    "palisade: upstream {}:{} refused TLS, which spec.database.tls.mode {:?} requires",
                    up.host, up.port, up.tls_mode
                ),
            )
            .with_hint("enable ssl on the database server, or set spec.database.tls.mode: Disable on a trusted network"),
        });
    }
    let connector = TlsConnector::from(config);
    match connector.connect(up.server_name.clone(), tcp).await {
        Ok(s) => Ok(Conn::Client(Box::new(s))),
        Err(e) => {
            let message = tls::describe_handshake_error(&e, &up.host, up.tls_mode, &up.ca_origin);
            let hint = match up.tls_mode {
                TlsMode::VerifyFull => {
                    "check spec.database.tls.caSecretRef and that spec.database.host is a name in the server certificate"
                }
                _ => "check spec.database.tls.caSecretRef",
            };
            Err(ConnectError {
                kind: "tls",
                error: PgError::fatal(sqlstate::UNABLE_TO_CONNECT, format!("palisade: {message}"))
                    .with_hint(hint),
            })
        }
    }
}

/// Sends a CancelRequest for `key` over a fresh connection, as PostgreSQL requires.
pub async fn send_cancel(
    up: &Upstream,
    key: crate::protocol::startup::CancelKey,
) -> Result<(), String> {
    let mut conn = connect(up).await.map_err(|e| e.error.message)?;
    conn.write_all(&key.cancel_request())
        .await
        .map_err(|e| e.to_string())?;
    conn.flush().await.map_err(|e| e.to_string())?;
    // The server closes the connection once it has read the request.
    let mut sink = [0u8; 1];
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut sink)).await;
    Ok(())
}
