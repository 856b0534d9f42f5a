//! Authentication through the sidecar (relayed and injected) and TLS on both legs, against
//! a real PostgreSQL configured per role with trust, password, md5 and scram-sha-256.

mod common;

use common::{connect, db_error, policy, text_rows};
use palisade_tests::certs::TestCa;
use palisade_tests::free_port;
use palisade_tests::pg::{
    MD5_PASSWORD, MD5_USER, PW_PASSWORD, PW_USER, PgCluster, SCRAM_PASSWORD, SCRAM_USER, SUPERUSER,
    TRUST_USER,
};
use palisade_tests::sidecar::{Sidecar, SidecarOptions};

fn sidecar(
    pg: &PgCluster,
    host: &str,
    database_extra: &str,
    secrets: Vec<(&str, &str, Vec<u8>)>,
) -> Sidecar {
    let port = free_port();
    Sidecar::start(SidecarOptions {
        policy_yaml: policy(port, host, pg.port, database_extra, ""),
        port,
        secrets,
        ..Default::default()
    })
    .expect("sidecar starts")
}

async fn whoami(conn_str: &str) -> Result<String, tokio_postgres::Error> {
    let client = connect(conn_str).await?;
    Ok(client
        .query_one("SELECT current_user::text", &[])
        .await?
        .get(0))
}

#[tokio::test]
async fn every_password_method_passes_through() {
    let pg = PgCluster::shared();
    let sc = sidecar(pg, "127.0.0.1", "    tls: {mode: Disable}", vec![]);
    for (user, password) in [
        (TRUST_USER, None),
        (PW_USER, Some(PW_PASSWORD)),
        (MD5_USER, Some(MD5_PASSWORD)),
        (SCRAM_USER, Some(SCRAM_PASSWORD)),
    ] {
        assert_eq!(
            whoami(&sc.conn_str(user, password, "postgres"))
                .await
                .unwrap(),
            user
        );
        if password.is_some() {
            // A wrong password is refused by the database, in its own words.
            let err = whoami(&sc.conn_str(user, Some("wrong"), "postgres"))
                .await
                .unwrap_err();
            let (code, message) = db_error(&err);
            assert_eq!(code, "28P01", "{user}: {message}");
            assert!(
                message.contains("password authentication failed"),
                "{message}"
            );
        }
    }
}

#[tokio::test]
async fn injected_credentials_log_in_for_the_app() {
    let pg = PgCluster::shared();
    for (user, password) in [
        (SCRAM_USER, SCRAM_PASSWORD),
        (MD5_USER, MD5_PASSWORD),
        (PW_USER, PW_PASSWORD),
    ] {
        let sc = sidecar(
            pg,
            "127.0.0.1",
            "    tls: {mode: Disable}\n    credentialsSecretRef: {name: app-db}",
            vec![
                ("app-db", "username", user.as_bytes().to_vec()),
                // As `kubectl create secret --from-file` of an `echo`ed file: a trailing newline.
                ("app-db", "password", format!("{password}\n").into_bytes()),
            ],
        );
        // The app knows no password at all, and names whatever user it likes.
        assert_eq!(
            whoami(&sc.conn_str("app", None, "postgres")).await.unwrap(),
            user
        );
    }
    let sc = sidecar(
        pg,
        "127.0.0.1",
        "    tls: {mode: Disable}\n    credentialsSecretRef: {name: app-db}",
        vec![
            ("app-db", "username", SCRAM_USER.as_bytes().to_vec()),
            ("app-db", "password", b"not-it".to_vec()),
        ],
    );
    let err = whoami(&sc.conn_str("app", None, "postgres"))
        .await
        .unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(code, "28P01");
    assert!(
        message.contains("refused the sidecar's credentials"),
        "{message}"
    );
}

fn tls_policy_secrets(ca_pem: &str) -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![("pg-ca", "ca.crt", ca_pem.as_bytes().to_vec())]
}

#[tokio::test]
async fn verify_full_upstream_tls_works_and_scram_drops_channel_binding() {
    let pg = PgCluster::shared_tls();
    let sc = sidecar(
        pg,
        "localhost",
        "    tls: {mode: VerifyFull, caSecretRef: {name: pg-ca, key: ca.crt}}",
        tls_policy_secrets(&pg.ca.cert_pem),
    );
    // SCRAM over a TLS upstream: the server offers SCRAM-SHA-256-PLUS, which a plain client
    // leg cannot use; the sidecar takes it out of the offer.
    let client = connect(&sc.conn_str(SCRAM_USER, Some(SCRAM_PASSWORD), "postgres"))
        .await
        .unwrap();
    let rows = text_rows(
        &client,
        "SELECT ssl::text, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .await;
    assert_eq!(rows[0][0].as_deref(), Some("true"));
    assert!(rows[0][1].as_deref().unwrap().starts_with("TLS"));
    // VerifyCa accepts a certificate for another name as long as the CA is right.
    let sc = sidecar(
        pg,
        "127.0.0.1",
        "    tls: {mode: VerifyCa, caSecretRef: {name: pg-ca, key: ca.crt}}",
        tls_policy_secrets(&pg.ca.cert_pem),
    );
    assert_eq!(
        whoami(&sc.conn_str(SUPERUSER, None, "postgres"))
            .await
            .unwrap(),
        SUPERUSER
    );
    // Require encrypts without checking the certificate.
    let sc = sidecar(pg, "127.0.0.1", "    tls: {mode: Require}", vec![]);
    assert_eq!(
        whoami(&sc.conn_str(SUPERUSER, None, "postgres"))
            .await
            .unwrap(),
        SUPERUSER
    );
}

#[tokio::test]
async fn a_wrong_ca_is_refused_with_a_clear_error() {
    let pg = PgCluster::shared_tls();
    let other = TestCa::new("Some other CA");
    let sc = sidecar(
        pg,
        "localhost",
        "    tls: {mode: VerifyFull, caSecretRef: {name: pg-ca, key: ca.crt}}",
        tls_policy_secrets(&other.cert_pem),
    );
    let err = whoami(&sc.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(code, "08001");
    assert!(message.contains("not signed by a trusted CA"), "{message}");
    assert!(message.contains("pg-ca/ca.crt"), "{message}");
    let (_, metrics) = sc.admin_get("/metrics").unwrap();
    assert!(
        metrics.contains("palisade_upstream_errors_total{policy=\"test/e2e\",kind=\"tls\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_wrong_host_name_is_refused_with_a_clear_error() {
    // A server whose certificate names another host.
    let pg = PgCluster::start(true).unwrap();
    let (cert, key) = pg.ca.issue(&["db.example.internal"]);
    std::fs::write(pg.data_dir().join("server.crt"), cert).unwrap();
    std::fs::write(pg.data_dir().join("server.key"), key).unwrap();
    pg.psql("postgres", "SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let sc = sidecar(
        &pg,
        "localhost",
        "    tls: {mode: VerifyFull, caSecretRef: {name: pg-ca, key: ca.crt}}",
        tls_policy_secrets(&pg.ca.cert_pem),
    );
    let err = whoami(&sc.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(code, "08001");
    assert!(
        message.contains("not valid for host name \"localhost\""),
        "{message}"
    );
}

#[tokio::test]
async fn an_upstream_without_tls_is_refused_when_tls_is_required() {
    let pg = PgCluster::shared();
    let sc = sidecar(pg, "127.0.0.1", "", vec![]); // default mode: VerifyFull
    let err = whoami(&sc.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(code, "08001");
    assert!(message.contains("refused TLS"), "{message}");
    assert!(message.contains("VerifyFull"), "{message}");
}

#[test]
fn client_leg_tls_termination_with_psql() {
    let pg = PgCluster::shared();
    let ca = TestCa::new("client leg CA");
    let (cert, key) = ca.issue(&["localhost"]);
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path, ca_path) = (
        dir.path().join("tls.crt"),
        dir.path().join("tls.key"),
        dir.path().join("ca.crt"),
    );
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    std::fs::write(&ca_path, &ca.cert_pem).unwrap();
    let port = free_port();
    let sc = Sidecar::start(SidecarOptions {
        policy_yaml: policy(port, "127.0.0.1", pg.port, "    tls: {mode: Disable}", ""),
        port,
        extra_args: vec![
            "--tls-cert".into(),
            cert_path.display().to_string(),
            "--tls-key".into(),
            key_path.display().to_string(),
        ],
        ..Default::default()
    })
    .unwrap();
    let conninfo = format!(
        "host=localhost port={port} user={SCRAM_USER} password={SCRAM_PASSWORD} dbname=postgres sslmode=verify-full sslrootcert={}",
        ca_path.display()
    );
    // psql sees the sidecar's TLS; the database sees a plain connection from the sidecar.
    let out = pg
        .psql_with(
            &conninfo,
            "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        )
        .unwrap();
    assert_eq!(out.trim(), format!("{SCRAM_USER}|f"));
    // Without TLS the same listener still serves plain clients.
    let out = pg
        .psql_with(&sc.conn_str(TRUST_USER, None, "postgres"), "SELECT 1")
        .unwrap();
    assert_eq!(out.trim(), "1");
}
