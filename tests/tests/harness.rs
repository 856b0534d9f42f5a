//! Tests of the harness itself: every end-to-end test trusts that the
//! cluster's roles authenticate the way their names say, so that is checked
//! here against the server directly, without the sidecar in between.

use palisade_tests::certs::TestCa;
use palisade_tests::pg::{
    MD5_PASSWORD, MD5_USER, PW_PASSWORD, PW_USER, PgCluster, SCRAM_PASSWORD, SCRAM_USER, SUPERUSER,
    TRUST_USER,
};
use tokio_postgres::NoTls;

async fn connect(conn_str: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conn_str, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn current_user(cluster: &PgCluster, user: &str, password: Option<&str>) -> String {
    let client = connect(&cluster.conn_str(user, password, "postgres"))
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"));
    client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn each_role_authenticates_with_its_method() {
    let pg = PgCluster::shared();
    assert_eq!(current_user(pg, SUPERUSER, None).await, SUPERUSER);
    assert_eq!(current_user(pg, TRUST_USER, None).await, TRUST_USER);
    assert_eq!(current_user(pg, PW_USER, Some(PW_PASSWORD)).await, PW_USER);
    assert_eq!(
        current_user(pg, MD5_USER, Some(MD5_PASSWORD)).await,
        MD5_USER
    );
    assert_eq!(
        current_user(pg, SCRAM_USER, Some(SCRAM_PASSWORD)).await,
        SCRAM_USER
    );

    // The hba methods, and that md5_user really has an MD5 secret (with a
    // SCRAM secret the server would silently run SCRAM for an md5 line).
    let methods = pg
        .psql(
            "postgres",
            "SELECT user_name[1], auth_method FROM pg_hba_file_rules \
             WHERE type = 'host' AND database = '{all}' ORDER BY line_number",
        )
        .unwrap();
    assert_eq!(
        methods,
        "palisade|trust\ntrust_user|trust\npw_user|password\nmd5_user|md5\n\
         scram_user|scram-sha-256\nall|scram-sha-256\n"
    );
    let secret = pg
        .psql(
            "postgres",
            "SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = 'md5_user'",
        )
        .unwrap();
    assert_eq!(secret.trim(), "md5");
}

#[tokio::test]
async fn wrong_passwords_are_rejected() {
    let pg = PgCluster::shared();
    for user in [PW_USER, MD5_USER, SCRAM_USER] {
        let err = connect(&pg.conn_str(user, Some("wrong"), "postgres"))
            .await
            .err()
            .unwrap_or_else(|| panic!("{user} logged in with a wrong password"));
        let msg = format!("{err:?}");
        assert!(
            msg.contains("28P01") || msg.contains("password authentication failed"),
            "{user}: unexpected error {msg}"
        );
    }
}

#[tokio::test]
async fn psql_and_create_database() {
    let pg = PgCluster::shared();
    assert_eq!(pg.psql("postgres", "SELECT 1, 'a'").unwrap(), "1|a\n");

    let err = pg.psql("postgres", "SELECT 1/0").unwrap_err();
    assert!(format!("{err:#}").contains("division by zero"), "{err:#}");

    // Idempotent, also when asked concurrently.
    let handles: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(|| PgCluster::shared().create_database("harness_db")))
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap().unwrap(), "harness_db");
    }

    // The test roles can create tables in it.
    let client = connect(&pg.conn_str(SCRAM_USER, Some(SCRAM_PASSWORD), "harness_db"))
        .await
        .unwrap();
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS scram_table (id int); \
             INSERT INTO scram_table VALUES (42)",
        )
        .await
        .unwrap();
    let owned = pg
        .psql(
            "harness_db",
            "SELECT tableowner FROM pg_tables WHERE tablename = 'scram_table'",
        )
        .unwrap();
    assert_eq!(owned.trim(), SCRAM_USER);

    // And in the postgres database too.
    let client = connect(&pg.conn_str(TRUST_USER, None, "postgres"))
        .await
        .unwrap();
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS trust_table (id int)")
        .await
        .unwrap();
}

#[test]
fn tls_cluster_stop_restart_and_cleanup() {
    let pg = PgCluster::start(true).unwrap();
    let verify_full = |ca_file: &std::path::Path| {
        format!(
            "host=localhost port={} user={SUPERUSER} dbname=postgres \
             sslmode=verify-full sslrootcert={}",
            pg.port,
            ca_file.display()
        )
    };
    let ssl_query = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    assert_eq!(
        pg.psql_with(&verify_full(&pg.ca_file()), ssl_query)
            .unwrap(),
        "t\n"
    );
    // The certificate also names 127.0.0.1.
    let by_ip = verify_full(&pg.ca_file()).replace("host=localhost", "host=127.0.0.1");
    assert_eq!(pg.psql_with(&by_ip, ssl_query).unwrap(), "t\n");

    // A client trusting another CA refuses the server.
    let other = tempfile::tempdir().unwrap();
    let other_ca = other.path().join("other-ca.crt");
    std::fs::write(&other_ca, TestCa::new("Some other CA").cert_pem).unwrap();
    let err = pg
        .psql_with(&verify_full(&other_ca), ssl_query)
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("certificate verify failed"),
        "{err:#}"
    );

    // Down, and back up on the same port.
    pg.stop();
    assert!(pg.psql("postgres", "SELECT 1").is_err());
    pg.stop(); // stopping a stopped server is fine
    pg.restart().unwrap();
    assert_eq!(pg.psql("postgres", "SELECT 1").unwrap(), "1\n");

    let dir = pg.data_dir().parent().unwrap().to_path_buf();
    assert!(dir.is_dir());
    drop(pg);
    assert!(!dir.exists(), "{} left behind", dir.display());
}
