//! One client connection, from the first byte to the last: TLS negotiation on the client
//! leg, the startup message, authentication (relayed, or performed by the sidecar with
//! injected credentials; with `identity.oidc`, the client's ID token verified first), the
//! cancel-key swap, and then the relay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::frontend as pgfront;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::approvals::{ApprovalDesk, ApprovalStage};
use crate::cancel::CancelRegistry;
use crate::config::{Credentials, LoadedPolicy};
use crate::conn::Conn;
use crate::govern::{Governance, Stages};
use crate::masking::Masking;
use crate::masking::shared::{CatalogHandle, Catalogs, SessionCatalog, Start};
use crate::metrics::{CatalogQueries, Metrics, SessionMetrics};
use crate::oidc::{LoginError, OidcLogin, refusal_reason};
use crate::protocol::auth::{
    self, AUTH_CLEARTEXT, AUTH_MD5, AUTH_OK, AUTH_SASL, AUTH_SASL_CONTINUE, AUTH_SASL_FINAL,
};
use crate::protocol::error::{PgError, error_message_field, sqlstate};
use crate::protocol::frame::{FrameError, peek_header};
use crate::protocol::startup::{self, CancelKey, StartupMessage, StartupPacket};
use crate::protocol::{backend, frontend};
use crate::relay::{Pump, RelayEnd, RelayState, flush_remaining, relay};
use crate::syntax::SessionSyntax;
use crate::upstream;
use palisade_policy::decision::Identity;
use palisade_policy::identity::{TokenError, VerifiedToken, looks_like_jwt};

/// Authentication and startup messages are small; anything bigger is not a real client.
const STARTUP_MESSAGE_LIMIT: usize = 1024 * 1024;
/// Like PostgreSQL's `authentication_timeout`: a client that connects and never finishes
/// logging in must not hold a slot (or an upstream connection) forever.
const STARTUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What every session of one listener shares.
pub struct ListenerContext {
    pub policy: Arc<arc_swap::ArcSwap<LoadedPolicy>>,
    pub cancel: Arc<CancelRegistry>,
    pub metrics: Arc<Metrics>,
    pub client_tls: Option<TlsAcceptor>,
    /// The workload identity of the pod (service account, pod, workload, labels).
    pub workload: Arc<Identity>,
    /// The catalog snapshots masking reads, one per upstream database (the sidecar's).
    pub catalogs: Arc<Catalogs>,
    /// The catalog queries of this listener's sessions.
    pub catalog_queries: CatalogQueries,
    /// The approval requests of the sidecar.
    pub approvals: Arc<ApprovalDesk>,
    /// The admin endpoint's address, which the notice of a held statement names.
    pub admin_url: String,
}

/// Why a session ended early. `client` is what the client is told, if it can still hear.
struct Stop {
    client: Option<PgError>,
    log: String,
}

impl Stop {
    fn quiet(log: impl Into<String>) -> Self {
        Stop {
            client: None,
            log: log.into(),
        }
    }

    fn tell(err: PgError) -> Self {
        Stop {
            log: err.message.clone(),
            client: Some(err),
        }
    }
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::quiet(format!("connection error: {e}"))
    }
}

impl From<FrameError> for Stop {
    fn from(e: FrameError) -> Self {
        Stop::tell(PgError::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            format!("palisade: {e}"),
        ))
    }
}

/// Serves one accepted connection to completion.
pub async fn serve(tcp: TcpStream, peer: SocketAddr, ctx: Arc<ListenerContext>) {
    let _ = tcp.set_nodelay(true);
    let policy = ctx.policy.load_full();
    let span = info_span!("session", %peer, policy = %policy.key());
    // Counted from accept, so refused connections show in the metrics too.
    let metrics = ctx.metrics.session(&policy.key());
    async move {
        let mut client = Conn::Plain(tcp);
        let mut buf = BytesMut::with_capacity(1024);
        let established = tokio::time::timeout(
            STARTUP_TIMEOUT,
            establish(&mut client, &mut buf, peer, &policy, &ctx),
        )
        .await
        .unwrap_or_else(|_| {
            Err(Stop::tell(PgError::fatal(
                sqlstate::CONNECTION_FAILURE,
                "palisade: canceling authentication due to timeout",
            )))
        });
        match established {
            Ok(None) => {}
            Ok(Some(session)) => session.run(client, buf, &ctx, metrics).await,
            Err(stop) => {
                debug!(reason = %stop.log, "session refused");
                if let Some(err) = stop.client {
                    info!(error = %err, "connection refused");
                    flush_remaining(&mut client, &err.to_message()).await;
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// An authenticated session, ready to relay.
struct Established {
    server: Conn,
    server_buf: BytesMut,
    key: CancelKey,
    user: String,
    database: String,
    started: Instant,
    identity: Identity,
    masking: Option<Masking>,
    date_style: String,
    syntax: SessionSyntax,
    catalog: CatalogHandle,
}

impl Established {
    async fn run(
        mut self,
        mut client: Conn,
        client_buf: BytesMut,
        ctx: &ListenerContext,
        metrics: SessionMetrics,
    ) {
        info!(
            user = %self.user,
            database = %self.database,
            oidc_user = self.identity.user.as_deref().unwrap_or("-"),
            groups = %self.identity.groups.join(","),
            service_account = self.identity.service_account.as_deref().unwrap_or("-"),
            workload = self.identity.workload.as_deref().unwrap_or("-"),
            pod = self.identity.pod.as_deref().unwrap_or("-"),
            "session started"
        );
        let approvals = ApprovalStage::new(
            ctx.approvals.clone(),
            ctx.cancel.subscribe(&self.key),
            Some(ctx.admin_url.clone()),
        );
        let governance = Governance::new(
            ctx.policy.clone(),
            self.identity.clone(),
            ctx.cancel.lookup(&self.key),
            Stages {
                masking: self.masking.take(),
                approvals,
            },
            std::mem::take(&mut self.date_style),
            std::mem::take(&mut self.syntax),
            self.catalog.clone(),
        );
        let mut state = RelayState::new(metrics, governance);
        let (end, to_server, to_client) = relay(
            &mut client,
            &mut self.server,
            Pump::new(client_buf),
            Pump::new(self.server_buf),
            &mut state,
        )
        .await;
        ctx.cancel.unregister(&self.key);
        match &end {
            RelayEnd::ClientProtocol(e) => {
                warn!(error = %e, "client broke the protocol; closing");
                let err = PgError::fatal(sqlstate::PROTOCOL_VIOLATION, format!("palisade: {e}"));
                let mut pending = to_client;
                pending.extend_from_slice(&err.to_message());
                flush_remaining(&mut client, &pending).await;
            }
            RelayEnd::ServerProtocol(e) => {
                warn!(error = %e, "upstream broke the protocol; closing");
                let err = PgError::fatal(
                    sqlstate::CONNECTION_FAILURE,
                    format!("palisade: upstream sent an invalid message: {e}"),
                );
                flush_remaining(&mut client, &err.to_message()).await;
            }
            _ => {
                // Whatever one side said last (a Terminate, a FATAL) still reaches the other.
                tokio::join!(
                    flush_remaining(&mut self.server, &to_server),
                    flush_remaining(&mut client, &to_client)
                );
            }
        }
        let end = match end {
            RelayEnd::ClientClosed | RelayEnd::ServerClosed if state.terminated => {
                "client terminated".to_string()
            }
            other => format!("{other:?}"),
        };
        info!(ms = self.started.elapsed().as_millis() as u64, %end, "session ended");
    }
}

/// Reads until `buf` holds at least `need` bytes.
async fn fill(conn: &mut Conn, buf: &mut BytesMut, need: usize) -> std::io::Result<()> {
    while buf.len() < need {
        buf.reserve(need - buf.len());
        if conn.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

/// Reads one whole tagged message.
async fn read_message(conn: &mut Conn, buf: &mut BytesMut) -> Result<Bytes, Stop> {
    fill(conn, buf, 5).await?;
    let header = peek_header(buf, STARTUP_MESSAGE_LIMIT)?
        .ok_or_else(|| Stop::quiet("short message header"))?;
    fill(conn, buf, header.total).await?;
    Ok(buf.split_to(header.total).freeze())
}

/// Reads one untagged initial packet (startup, SSL, GSS or cancel request).
async fn read_initial_packet(conn: &mut Conn, buf: &mut BytesMut) -> Result<StartupPacket, Stop> {
    fill(conn, buf, 4).await?;
    let len = startup::packet_len(buf).map_err(|e| {
        Stop::tell(PgError::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            format!("palisade: {e}"),
        ))
    })?;
    fill(conn, buf, len).await?;
    let packet = buf.split_to(len);
    startup::parse_packet(&packet[4..]).map_err(|e| {
        Stop::tell(PgError::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            format!("palisade: {e}"),
        ))
    })
}

/// Everything up to the first ReadyForQuery. `Ok(None)`: the connection was a cancel request.
async fn establish(
    client: &mut Conn,
    buf: &mut BytesMut,
    peer: SocketAddr,
    policy: &LoadedPolicy,
    ctx: &ListenerContext,
) -> Result<Option<Established>, Stop> {
    let started = Instant::now();
    let mut startup = loop {
        if let (Conn::Plain(tcp), Some(acceptor)) = (&*client, &ctx.client_tls) {
            // PostgreSQL 17 clients may open with a TLS ClientHello directly (sslnegotiation=direct).
            let mut first = [0u8; 1];
            if buf.is_empty() && tcp.peek(&mut first).await? == 1 && first[0] == 0x16 {
                upgrade_client(client, acceptor).await?;
                continue;
            }
        }
        match read_initial_packet(client, buf).await? {
            StartupPacket::SslRequest => match (&ctx.client_tls, client.is_tls()) {
                (Some(acceptor), false) => {
                    client.write_all(b"S").await?;
                    if !buf.is_empty() {
                        // Bytes sent before the handshake could be injected by a man in the middle.
                        return Err(Stop::tell(PgError::fatal(
                            sqlstate::PROTOCOL_VIOLATION,
                            "palisade: received unencrypted data after SSL request",
                        )));
                    }
                    upgrade_client(client, acceptor).await?;
                }
                _ => client.write_all(b"N").await?,
            },
            StartupPacket::GssEncRequest => client.write_all(b"N").await?,
            StartupPacket::Cancel(key) => {
                forward_cancel(key, ctx).await;
                return Ok(None);
            }
            StartupPacket::Startup(m) => break m,
        }
    };

    let unrecognized = negotiate_version(&mut startup);
    if let Some(v) = startup.get("replication")
        && !matches!(
            v.to_ascii_lowercase().as_str(),
            "false" | "off" | "no" | "0"
        )
    {
        return Err(Stop::tell(
            PgError::fatal(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "palisade: replication connections are not supported through the sidecar",
            )
            .with_hint("connect replication clients to the database directly"),
        ));
    }
    let Some(user) = startup.get("user").map(str::to_string) else {
        return Err(Stop::tell(PgError::fatal(
            sqlstate::INVALID_AUTHORIZATION,
            "no PostgreSQL user name specified in startup packet",
        )));
    };
    let database = startup.get("database").unwrap_or(&user).to_string();
    let allowed = &policy.rendered.spec.database.databases;
    if !allowed.is_empty() && !allowed.contains(&database) {
        return Err(Stop::tell(
            PgError::fatal(
                sqlstate::INVALID_AUTHORIZATION,
                format!(
                    "palisade: database \"{database}\" is not allowed by policy {}",
                    policy.key()
                ),
            )
            .with_hint(format!(
                "spec.database.databases allows: {}",
                allowed.join(", ")
            )),
        ));
    }
    if let Some(msg) = unrecognized {
        client.write_all(&msg).await?;
    }

    // With `identity.oidc` the client proves who it is to the sidecar first, before any
    // upstream connection is opened for it.
    let login = match &policy.oidc {
        Some(oidc) => Some(client_login(client, buf, peer, policy, oidc, &ctx.metrics).await?),
        None => None,
    };

    let up = &policy.upstream;
    let mut server = match upstream::connect(up).await {
        Ok(s) => s,
        Err(e) => {
            ctx.metrics.upstream_error(&policy.key(), e.kind);
            warn!(kind = e.kind, error = %e.error.message, "upstream connection failed");
            return Err(Stop::tell(e.error));
        }
    };
    if let Some(creds) = &up.credentials {
        startup.set("user", &creds.username);
    }
    server.write_all(&startup.to_packet()).await?;

    let mut server_buf = BytesMut::with_capacity(1024);
    let auth = match (&up.credentials, &login) {
        (Some(creds), _) => {
            let secret = UpstreamSecret::Injected(creds);
            upstream_login(client, &mut server, &mut server_buf, secret).await
        }
        (None, None) => relay_auth(client, buf, &mut server, &mut server_buf).await,
        (None, Some(ClientLogin::Password(password))) => {
            let secret = UpstreamSecret::Client {
                user: &user,
                password,
            };
            upstream_login(client, &mut server, &mut server_buf, secret).await
        }
        (None, Some(ClientLogin::Token(_))) => {
            let secret = UpstreamSecret::TokenOnly { user: &user };
            upstream_login(client, &mut server, &mut server_buf, secret).await
        }
    };
    if let Err(stop) = auth {
        if stop
            .client
            .as_ref()
            .is_some_and(|e| e.code == sqlstate::INVALID_PASSWORD)
        {
            ctx.metrics.upstream_error(&policy.key(), "auth");
        }
        return Err(stop);
    }

    // ParameterStatus, BackendKeyData, notices, then ReadyForQuery: sent on as one batch.
    let mut batch = BytesMut::with_capacity(1024);
    let mut key = None;
    let mut date_style = String::from("ISO, MDY");
    let mut syntax = SessionSyntax::default();
    let mut identity = Identity {
        db_user: user.clone(),
        ..(*ctx.workload).clone()
    };
    if let Some(ClientLogin::Token(token)) = &login {
        token.apply_to(&mut identity);
    }
    let catalog = ctx
        .catalogs
        .database(&up.host, up.port, &database, &ctx.catalog_queries);
    let masking;
    loop {
        let msg = read_message(&mut server, &mut server_buf).await?;
        match msg[0] {
            backend::PARAMETER_STATUS => {
                if let Some((name, value)) = crate::protocol::results::parameter_status(&msg) {
                    if name.eq_ignore_ascii_case(b"DateStyle") {
                        date_style = String::from_utf8_lossy(value).into_owned();
                    }
                    syntax.observe(name, value);
                }
                batch.extend_from_slice(&msg);
            }
            backend::BACKEND_KEY_DATA => {
                let real = CancelKey::from_backend_key_data(&msg[5..]).ok_or_else(|| {
                    Stop::tell(PgError::fatal(
                        sqlstate::CONNECTION_FAILURE,
                        "palisade: malformed BackendKeyData from upstream",
                    ))
                })?;
                let ours = ctx.cancel.register(policy.upstream.clone(), real);
                key = Some(ours);
                batch.extend_from_slice(&ours.backend_key_data());
            }
            backend::READY_FOR_QUERY => {
                // Before the client's first query: masking needs the catalog, read on
                // this very connection.
                masking = match start_masking(
                    policy,
                    &identity,
                    &mut server,
                    &mut server_buf,
                    &date_style,
                    &catalog,
                )
                .await
                {
                    Ok(m) => m,
                    Err(stop) => {
                        if let Some(k) = key {
                            ctx.cancel.unregister(&k);
                        }
                        return Err(stop);
                    }
                };
                batch.extend_from_slice(&msg);
                client.write_all(&batch).await?;
                client.flush().await?;
                break;
            }
            backend::ERROR_RESPONSE => {
                // e.g. `database "x" does not exist`: the client hears the server's words.
                batch.extend_from_slice(&msg);
                flush_remaining(client, &batch).await;
                if let Some(k) = key {
                    ctx.cancel.unregister(&k);
                }
                return Err(Stop::quiet(
                    error_message_field(&msg[5..]).unwrap_or_default(),
                ));
            }
            _ => batch.extend_from_slice(&msg),
        }
    }
    let key = key.unwrap_or_else(|| {
        // A server that sends no key cannot be cancelled; issue one that maps nowhere useful.
        ctx.cancel
            .register(policy.upstream.clone(), CancelKey { pid: 0, secret: 0 })
    });
    Ok(Some(Established {
        server,
        server_buf,
        key,
        user,
        database,
        started,
        identity,
        masking,
        date_style,
        syntax,
        catalog,
    }))
}

/// Masking for `identity`, with the catalog snapshot it needs when columns are masked:
/// its database's shared one when that is current, else read on this very connection
/// (and published for the sessions after it).
async fn start_masking(
    policy: &LoadedPolicy,
    identity: &Identity,
    server: &mut Conn,
    server_buf: &mut BytesMut,
    date_style: &str,
    catalog: &CatalogHandle,
) -> Result<Option<Masking>, Stop> {
    let rules = policy.mask_rules(identity).map_err(|e| {
        Stop::tell(PgError::fatal(
            sqlstate::CONNECTION_FAILURE,
            format!(
                "palisade: masking rules of policy {} cannot be applied: {e}",
                policy.key()
            ),
        ))
    })?;
    if !rules.is_active() {
        return Ok(None);
    }
    if !rules.has_column_rules() {
        // Detectors alone need no provenance; column rules a reload adds read it then.
        let unread = SessionCatalog::unread(catalog.clone());
        return Ok(Some(Masking::new(Arc::new(rules), unread, date_style)));
    }
    let session = match catalog.at_start().await {
        Start::Current(published) => SessionCatalog::current(catalog.clone(), published),
        Start::Read(claim) => {
            server.write_all(&claim.query()).await?;
            server.flush().await?;
            let mut reader = claim.reader();
            let read = loop {
                let msg = read_message(server, server_buf).await?;
                if let Some(result) = reader.feed(&msg) {
                    break result.map_err(|e| {
                        Stop::tell(
                            PgError::fatal(
                                sqlstate::CONNECTION_FAILURE,
                                format!("palisade: cannot read the catalog that masking needs: {e}"),
                            )
                            .with_hint("the sidecar reads pg_catalog on the session's own connection; check the database user's access"),
                        )
                    })?;
                }
            };
            debug!("catalog snapshot for masking read");
            claim.finish(read)
        }
    };
    Ok(Some(Masking::new(Arc::new(rules), session, date_style)))
}

async fn upgrade_client(client: &mut Conn, acceptor: &TlsAcceptor) -> Result<(), Stop> {
    let Conn::Plain(tcp) = std::mem::replace(client, Conn::Detached) else {
        return Err(Stop::quiet("TLS requested on an encrypted connection"));
    };
    let tls = acceptor
        .accept(tcp)
        .await
        .map_err(|e| Stop::quiet(format!("client TLS handshake failed: {e}")))?;
    *client = Conn::Server(Box::new(tls));
    Ok(())
}

/// The sidecar speaks protocol 3.0 and no `_pq_.` extensions; a client asking for more is
/// told so (NegotiateProtocolVersion), as a 3.0 server would, and the upstream never sees it.
fn negotiate_version(startup: &mut StartupMessage) -> Option<Bytes> {
    let unrecognized: Vec<String> = startup
        .params
        .iter()
        .filter(|(k, _)| k.starts_with("_pq_."))
        .map(|(k, _)| k.clone())
        .collect();
    startup.params.retain(|(k, _)| !k.starts_with("_pq_."));
    let newer_minor = startup.version != startup::PROTOCOL_3_0;
    (newer_minor || !unrecognized.is_empty())
        .then(|| startup::negotiate_protocol_version(&unrecognized))
}

/// Passthrough authentication: the client proves itself to the database through the
/// sidecar, which only takes channel binding out of a SCRAM offer (the client's TLS
/// channel, if any, is not the one the server sees).
async fn relay_auth(
    client: &mut Conn,
    client_buf: &mut BytesMut,
    server: &mut Conn,
    server_buf: &mut BytesMut,
) -> Result<(), Stop> {
    loop {
        let msg = read_message(server, server_buf).await?;
        match msg[0] {
            backend::AUTHENTICATION => {
                let code = auth::auth_code(&msg[5..]).unwrap_or(-1);
                match code {
                    AUTH_OK => {
                        client.write_all(&msg).await?;
                        return Ok(());
                    }
                    AUTH_CLEARTEXT | AUTH_MD5 | AUTH_SASL_CONTINUE => {
                        client.write_all(&msg).await?;
                        answer_from_client(client, client_buf, server).await?;
                    }
                    AUTH_SASL => {
                        let offered = auth::sasl_mechanisms(&msg[5..]);
                        let Some(kept) = auth::without_channel_binding(&offered) else {
                            return Err(Stop::tell(PgError::fatal(
                                sqlstate::FEATURE_NOT_SUPPORTED,
                                "palisade: the database requires SCRAM channel binding, which cannot pass through a proxy",
                            ).with_hint("set spec.database.credentialsSecretRef so the sidecar authenticates itself")));
                        };
                        client.write_all(&auth::sasl_offer(&kept)).await?;
                        answer_from_client(client, client_buf, server).await?;
                    }
                    AUTH_SASL_FINAL => client.write_all(&msg).await?,
                    other => {
                        return Err(Stop::tell(PgError::fatal(
                            sqlstate::FEATURE_NOT_SUPPORTED,
                            format!(
                                "palisade: the database asked for {} authentication, which the sidecar cannot relay",
                                auth::method_name(other)
                            ),
                        ).with_hint("use password, md5 or scram-sha-256 in pg_hba.conf, or spec.database.credentialsSecretRef")));
                    }
                }
            }
            backend::ERROR_RESPONSE => {
                // Wrong password and the like: the client hears the server's own words.
                flush_remaining(client, &msg).await;
                return Err(Stop::quiet(format!(
                    "upstream refused authentication: {}",
                    error_message_field(&msg[5..]).unwrap_or_default()
                )));
            }
            _ => client.write_all(&msg).await?,
        }
    }
}

/// Forwards the client's PasswordMessage/SASL response to the server.
async fn answer_from_client(
    client: &mut Conn,
    client_buf: &mut BytesMut,
    server: &mut Conn,
) -> Result<(), Stop> {
    client.flush().await?;
    let answer = read_message(client, client_buf).await?;
    if answer[0] != frontend::PASSWORD {
        return Err(Stop::tell(PgError::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            format!(
                "palisade: expected a password response, got message type {:?}",
                answer[0] as char
            ),
        )));
    }
    server.write_all(&answer).await?;
    Ok(())
}

/// How the sidecar logged a client in, for policies with `identity.oidc`.
enum ClientLogin {
    /// A verified ID token: the session's user and groups.
    Token(VerifiedToken),
    /// Not a token (`required: false`): a database password, used to log in upstream when
    /// there are no injected credentials, and otherwise dropped.
    Password(Vec<u8>),
}

/// Asks the client for its password and, if it is an ID token, verifies it. Everything
/// that is not a valid token, or not a password the policy lets through, is refused here:
/// a token is never retried as a password, and never sent to the database.
async fn client_login(
    client: &mut Conn,
    buf: &mut BytesMut,
    peer: SocketAddr,
    policy: &LoadedPolicy,
    oidc: &OidcLogin,
    metrics: &Metrics,
) -> Result<ClientLogin, Stop> {
    let key = policy.key();
    // The token is a bearer credential, asked for in cleartext: only over loopback (the
    // pod's own network namespace) or the sidecar's TLS.
    if !client.is_tls() && !peer.ip().to_canonical().is_loopback() {
        return Err(Stop::tell(
            PgError::fatal(
                sqlstate::INVALID_AUTHORIZATION,
                format!(
                    "palisade: policy {key} takes ID tokens and passwords in cleartext, and this connection from {} is neither local nor encrypted",
                    peer.ip()
                ),
            )
            .with_hint("connect over localhost, or run the sidecar with --tls-cert/--tls-key and connect with sslmode=require or stricter"),
        ));
    }
    client.write_all(&auth::cleartext_request()).await?;
    client.flush().await?;
    // A client with no password at all (libpq without one) hangs up here.
    let answer = read_message(client, buf).await?;
    let password = match answer[0] {
        frontend::PASSWORD => auth::password(&answer[5..]),
        _ => None,
    }
    .ok_or_else(|| {
        Stop::tell(PgError::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            format!(
                "palisade: expected a password message, got message type {:?}",
                answer[0] as char
            ),
        ))
    })?;
    let token = std::str::from_utf8(password)
        .ok()
        .filter(|p| looks_like_jwt(p));
    let Some(token) = token else {
        if oidc.config.required {
            metrics.oidc_login(&key, "token_required");
            return Err(Stop::tell(
                PgError::fatal(
                    sqlstate::INVALID_AUTHORIZATION,
                    format!(
                        "palisade: policy {key} requires an OIDC ID token as the password, and the password sent is not one"
                    ),
                )
                .with_hint(format!(
                    "log in to {} and send the ID token as the password, e.g. PGPASSWORD=\"$(cat id-token)\" psql …",
                    oidc.config.issuer
                )),
            ));
        }
        metrics.oidc_login(&key, "no_token");
        debug!("no ID token; the session carries the workload identity only");
        return Ok(ClientLogin::Password(password.to_vec()));
    };
    match oidc.verify(token) {
        Ok(verified) => {
            metrics.oidc_login(&key, "verified");
            info!(oidc_user = %verified.user, groups = %verified.groups.join(","), "ID token verified");
            Ok(ClientLogin::Token(verified))
        }
        Err(LoginError::NoKeys(why)) => {
            metrics.oidc_login(&key, "jwks_unavailable");
            Err(Stop::tell(
                PgError::fatal(
                    sqlstate::INVALID_AUTHORIZATION,
                    format!("palisade: ID tokens cannot be verified: the issuer's keys are not loaded ({why})"),
                )
                .with_hint(format!(
                    "the sidecar reads the issuer's JWKS from {} (spec.identity.oidc.jwksSecretRef of policy {key}); it must hold the issuer's published keys as {{\"keys\": [...]}}",
                    oidc.jwks.origin()
                )),
            ))
        }
        Err(LoginError::Token(e)) => {
            metrics.oidc_login(&key, refusal_reason(&e));
            Err(Stop::tell(
                PgError::fatal(
                    sqlstate::INVALID_PASSWORD,
                    format!("palisade: ID token refused: {e}"),
                )
                .with_hint(token_hint(&e, oidc)),
            ))
        }
    }
}

/// What the person whose token was refused can do about it.
fn token_hint(e: &TokenError, oidc: &OidcLogin) -> String {
    match e {
        TokenError::Expired { .. } | TokenError::NotYetValid { .. } => {
            "get a fresh ID token from your identity provider and connect again".into()
        }
        TokenError::WrongAudience { .. } => format!(
            "request an ID token for {} (spec.identity.oidc.audiences)",
            oidc.config.audiences.join(" or ")
        ),
        TokenError::WrongIssuer { .. } => format!(
            "log in to {} (spec.identity.oidc.issuer) for the ID token",
            oidc.config.issuer
        ),
        TokenError::UnknownKeyId { .. } | TokenError::MissingKeyId { .. } => format!(
            "if the issuer rotated its signing keys, {} (spec.identity.oidc.jwksSecretRef) needs its new JWKS",
            oidc.jwks.origin()
        ),
        TokenError::GroupsOverage { .. } => {
            "ask the identity provider's administrator to emit fewer groups into the token".into()
        }
        _ => "send the ID token your identity provider issued, unchanged, as the password".into(),
    }
}

/// What the sidecar answers the database's authentication requests with.
enum UpstreamSecret<'a> {
    /// `spec.database.credentialsSecretRef`: the client never holds the database password.
    Injected(&'a Credentials),
    /// The password the client sent the sidecar (a policy with `identity.oidc` asks for it
    /// in cleartext before connecting; the sidecar answers md5 or SCRAM with it).
    Client { user: &'a str, password: &'a [u8] },
    /// A verified ID token and no injected credentials: the token is never passed on, so
    /// the database must let the user in without a password.
    TokenOnly { user: &'a str },
}

/// The sidecar logs in upstream itself; the client, whose credentials (if any) were taken
/// already, is told only that it is in.
async fn upstream_login(
    client: &mut Conn,
    server: &mut Conn,
    server_buf: &mut BytesMut,
    secret: UpstreamSecret<'_>,
) -> Result<(), Stop> {
    let (user, password): (&str, &[u8]) = match &secret {
        UpstreamSecret::Injected(creds) => (&creds.username, &creds.password),
        UpstreamSecret::Client { user, password } => (user, password),
        UpstreamSecret::TokenOnly { user } => (user, &[]),
    };
    let needs_password = |method: i32| -> Result<(), Stop> {
        match &secret {
            UpstreamSecret::TokenOnly { user } => Err(Stop::tell(
                PgError::fatal(
                    sqlstate::INVALID_AUTHORIZATION,
                    format!(
                        "palisade: the database asks user \"{user}\" for {} authentication, and an ID token is never passed to the database",
                        auth::method_name(method)
                    ),
                )
                .with_hint("set spec.database.credentialsSecretRef so the sidecar logs in with its own credentials, or connect with the database password instead of a token"),
            )),
            _ => Ok(()),
        }
    };
    let mut scram: Option<ScramSha256> = None;
    let scram_failed = |e: std::io::Error| {
        Stop::tell(PgError::fatal(
            sqlstate::INVALID_PASSWORD,
            format!("palisade: SCRAM authentication with the upstream failed: {e}"),
        ))
    };
    loop {
        let msg = read_message(server, server_buf).await?;
        let body = &msg[5..];
        let mut reply = BytesMut::new();
        match msg[0] {
            backend::AUTHENTICATION => match auth::auth_code(body).unwrap_or(-1) {
                AUTH_OK => break,
                AUTH_CLEARTEXT => {
                    needs_password(AUTH_CLEARTEXT)?;
                    pgfront::password_message(password, &mut reply)?;
                }
                AUTH_MD5 => {
                    needs_password(AUTH_MD5)?;
                    let salt =
                        auth::md5_salt(body).ok_or_else(|| Stop::quiet("malformed MD5 request"))?;
                    let hash = postgres_protocol::authentication::md5_hash(
                        user.as_bytes(),
                        password,
                        salt,
                    );
                    pgfront::password_message(hash.as_bytes(), &mut reply)?;
                }
                AUTH_SASL => {
                    needs_password(AUTH_SASL)?;
                    if !auth::sasl_mechanisms(body)
                        .iter()
                        .any(|m| m == SCRAM_SHA_256)
                    {
                        return Err(Stop::tell(PgError::fatal(
                            sqlstate::FEATURE_NOT_SUPPORTED,
                            "palisade: the database offers no SASL mechanism the sidecar supports (SCRAM-SHA-256)",
                        )));
                    }
                    let s = ScramSha256::new(password, ChannelBinding::unsupported());
                    pgfront::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut reply)?;
                    scram = Some(s);
                }
                AUTH_SASL_CONTINUE => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| Stop::quiet("SASL continue before SASL start"))?;
                    s.update(&body[4..]).map_err(scram_failed)?;
                    pgfront::sasl_response(s.message(), &mut reply)?;
                }
                AUTH_SASL_FINAL => {
                    // Proves the server knows the password too; a fake server fails here.
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| Stop::quiet("SASL final before SASL start"))?;
                    s.finish(&body[4..]).map_err(scram_failed)?;
                }
                other => {
                    needs_password(other)?;
                    return Err(Stop::tell(PgError::fatal(
                        sqlstate::FEATURE_NOT_SUPPORTED,
                        format!(
                            "palisade: the database asked for {} authentication; the sidecar logs in with password, md5 and SCRAM-SHA-256",
                            auth::method_name(other)
                        ),
                    )));
                }
            },
            backend::ERROR_RESPONSE => {
                let reason = error_message_field(body).unwrap_or_default();
                if let UpstreamSecret::Injected(creds) = &secret {
                    return Err(Stop::tell(
                        PgError::fatal(
                            sqlstate::INVALID_PASSWORD,
                            format!("palisade: the database refused the sidecar's credentials for user \"{}\": {reason}", creds.username),
                        )
                        .with_hint("check the username and password keys of spec.database.credentialsSecretRef"),
                    ));
                }
                // The client's own login: it hears the server's own words.
                flush_remaining(client, &msg).await;
                return Err(Stop::quiet(format!(
                    "upstream refused authentication: {reason}"
                )));
            }
            _ => {}
        }
        if !reply.is_empty() {
            server.write_all(&reply).await?;
        }
    }
    client.write_all(&auth::auth_ok()).await?;
    Ok(())
}

/// Maps a client's cancel key to the real backend and cancels it there.
async fn forward_cancel(key: CancelKey, ctx: &ListenerContext) {
    // A statement held for approval is not on the server: the session withdraws it, and
    // the server, which may run the session's next statement by the time a cancel
    // arrives, is left alone.
    if ctx.cancel.signal(&key) {
        info!("cancel request withdraws the statement held for approval");
        return;
    }
    match ctx.cancel.lookup(&key) {
        Some((up, real)) if real.pid != 0 => match upstream::send_cancel(&up, real).await {
            Ok(()) => info!("cancel request forwarded"),
            Err(e) => warn!(error = %e, "cancel request could not be forwarded"),
        },
        // As PostgreSQL does, say nothing to a client with a wrong key.
        _ => debug!("cancel request with an unknown key ignored"),
    }
}
