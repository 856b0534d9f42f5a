//! OIDC logins through the real sidecar with real clients (tokio-postgres and psql): ID
//! tokens signed with RSA and P-256 keys, the issuer's JWKS in the secrets directory as
//! Kubernetes mounts it, rules whose `subjects` name the token's user and groups, every
//! refusal with its SQLSTATE and reason (and never the token), credential injection, the
//! path without it, and a JWKS that changes under a running sidecar.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{connect, db_error, policy, text_rows};
use palisade_tests::free_port;
use palisade_tests::pg::{
    MD5_PASSWORD, MD5_USER, PgCluster, SCRAM_PASSWORD, SCRAM_USER, TRUST_USER,
};
use palisade_tests::sidecar::{Sidecar, SidecarOptions};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
    RsaPublicKeyComponents,
};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.example.test/";
const AUDIENCE: &str = "palisade";
const DATABASE: &str = "oidc_e2e";

const SEED: &str = "
CREATE TABLE IF NOT EXISTS salaries(name text, amount int);
CREATE TABLE IF NOT EXISTS runbooks(id int, body text);
INSERT INTO salaries SELECT 'ada', 100 WHERE NOT EXISTS (SELECT 1 FROM salaries);
INSERT INTO runbooks SELECT 1, 'restart' WHERE NOT EXISTS (SELECT 1 FROM runbooks);
GRANT SELECT ON ALL TABLES IN SCHEMA public TO PUBLIC;
";

/// Rules that only a verified identity can satisfy: group `analysts` may read salaries,
/// user carol may read runbooks; nobody else may read either.
const RULES: &str = "  defaultAction: Allow
  rules:
    - name: analysts-read-salaries
      match: {operations: [Select], tables: [public.salaries], subjects: {groups: [analysts]}}
      action: Allow
    - name: salaries-are-private
      match: {operations: [Select], tables: [public.salaries]}
      action: Deny
      message: only analysts read salaries
    - name: carol-reads-runbooks
      match: {operations: [Select], tables: [public.runbooks], subjects: {users: [carol@example.com]}}
      action: Allow
    - name: runbooks-are-private
      match: {operations: [Select], tables: [public.runbooks]}
      action: Deny
      message: only carol reads runbooks
";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// The DER inside a PEM file.
fn der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("PEM body is base64")
}

/// An RSA test key of the policy crate's JWT vectors (ring cannot generate RSA keys).
fn rsa_fixture(name: &str) -> RsaKeyPair {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policy/tests/fixtures/oidc")
        .join(name);
    let pem = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    RsaKeyPair::from_pkcs8(&der(&pem)).expect("an RSA PKCS#8 key")
}

#[derive(Clone, Copy)]
enum Key {
    Rsa,
    /// An RSA key the JWKS never holds.
    OtherRsa,
    Ec,
}

/// A test identity provider: its keys, its JWKS and the tokens it signs.
struct Idp {
    rsa: RsaKeyPair,
    other_rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Idp {
    fn new() -> Idp {
        let rng = SystemRandom::new();
        // A fresh P-256 key per run.
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate a P-256 key");
        let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("load the P-256 key");
        Idp {
            rsa: rsa_fixture("rsa-private.pk8.pem"),
            other_rsa: rsa_fixture("rsa-other-private.pk8.pem"),
            ec,
            rng,
        }
    }

    fn jwk(&self, key: Key, kid: &str) -> Value {
        match key {
            Key::Rsa | Key::OtherRsa => {
                let pair = if matches!(key, Key::Rsa) {
                    &self.rsa
                } else {
                    &self.other_rsa
                };
                let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                       "n": b64(&public.n), "e": b64(&public.e)})
            }
            Key::Ec => {
                let point = self.ec.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "use": "sig", "kid": kid,
                       "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
        }
    }

    /// A JWKS holding `keys`, as the IdP publishes it.
    fn jwks(&self, keys: &[(Key, &str)]) -> Vec<u8> {
        let keys: Vec<Value> = keys.iter().map(|(k, kid)| self.jwk(*k, kid)).collect();
        json!({ "keys": keys }).to_string().into_bytes()
    }

    /// A compact JWS of `claims`, signed with `key` under `kid`.
    fn sign(&self, key: Key, kid: &str, claims: &Value) -> String {
        let alg = if matches!(key, Key::Ec) {
            "ES256"
        } else {
            "RS256"
        };
        let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = match key {
            Key::Rsa | Key::OtherRsa => {
                let pair = if matches!(key, Key::Rsa) {
                    &self.rsa
                } else {
                    &self.other_rsa
                };
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, message.as_bytes(), &mut sig)
                    .expect("RSA signature");
                sig
            }
            Key::Ec => self
                .ec
                .sign(&self.rng, message.as_bytes())
                .expect("ECDSA signature")
                .as_ref()
                .to_vec(),
        };
        format!("{message}.{}", b64(&signature))
    }

    /// An ID token for `email` in `groups`, valid for the next ten minutes.
    fn token(&self, key: Key, kid: &str, email: &str, groups: &[&str]) -> String {
        self.sign(key, kid, &claims(email, groups))
    }
}

/// ID token claims as Okta issues them, valid from a minute ago for ten minutes.
fn claims(email: &str, groups: &[&str]) -> Value {
    let now = now_secs();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": format!("00u{}", email.len()),
        "email": email, "groups": groups,
        "iat": now - 60, "nbf": now - 60, "exp": now + 600,
    })
}

/// The standard JWKS of these tests: the RSA key as `rsa-1`, the P-256 key as `ec-1`.
fn standard_jwks(idp: &Idp) -> Vec<u8> {
    idp.jwks(&[(Key::Rsa, "rsa-1"), (Key::Ec, "ec-1")])
}

fn oidc_yaml(required: bool) -> String {
    format!(
        "  identity:
    oidc:
      issuer: {ISSUER}
      audiences: [{AUDIENCE}]
      jwksSecretRef: {{name: idp-jwks, key: jwks.json}}
      usernameClaim: email
      groupsClaim: groups
      required: {required}
"
    )
}

const INJECTED: &str = "    tls: {mode: Disable}\n    credentialsSecretRef: {name: app-db}";

fn injected_secrets() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("app-db", "username", SCRAM_USER.as_bytes().to_vec()),
        ("app-db", "password", SCRAM_PASSWORD.as_bytes().to_vec()),
    ]
}

/// A sidecar in front of the shared cluster with `identity.oidc` and the test rules.
fn oidc_sidecar(
    database_extra: &str,
    required: bool,
    mut secrets: Vec<(&'static str, &'static str, Vec<u8>)>,
    jwks: Option<Vec<u8>>,
) -> anyhow::Result<Sidecar> {
    let pg = PgCluster::shared();
    pg.create_database(DATABASE)?;
    pg.psql(DATABASE, SEED)?;
    let port = free_port();
    if let Some(jwks) = jwks {
        secrets.push(("idp-jwks", "jwks.json", jwks));
    }
    Sidecar::start(SidecarOptions {
        policy_yaml: policy(
            port,
            "127.0.0.1",
            pg.port,
            database_extra,
            &format!("{}{RULES}", oidc_yaml(required)),
        ),
        port,
        secrets,
        ..Default::default()
    })
}

/// The user the database sees, and whether each private table may be read.
async fn session_view(
    sc: &Sidecar,
    user: &str,
    password: &str,
) -> Result<(String, bool, bool), tokio_postgres::Error> {
    let client = connect(&sc.conn_str(user, Some(password), DATABASE)).await?;
    let who: String = client
        .query_one("SELECT current_user::text", &[])
        .await?
        .get(0);
    let salaries = client.simple_query("SELECT * FROM salaries").await;
    let runbooks = client.simple_query("SELECT * FROM runbooks").await;
    for (result, rule) in [
        (&salaries, "salaries-are-private"),
        (&runbooks, "runbooks-are-private"),
    ] {
        if let Err(e) = result {
            let (code, message) = db_error(e);
            assert_eq!(code, "42501", "{message}");
            assert!(message.contains(rule), "{message}");
        }
    }
    Ok((who, salaries.is_ok(), runbooks.is_ok()))
}

/// psql with the token in `PGPASSWORD`, as the README tells people to connect.
fn psql_with_password(conninfo: &str, password: &str, sql: &str) -> Output {
    let pg = PgCluster::shared();
    let mut cmd = Command::new(pg.bin_dir.join("psql"));
    for var in [
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSFILE",
        "PGSERVICE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("PGPASSWORD", password)
        .args([
            "-X",
            "-A",
            "-t",
            "-w",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
            "-d",
        ])
        .arg(conninfo)
        .output()
        .expect("run psql")
}

fn metric(sc: &Sidecar, result: &str) -> u64 {
    let (_, body) = sc.admin_get("/metrics").expect("metrics");
    let prefix = format!("palisade_oidc_logins_total{{policy=\"test/e2e\",result=\"{result}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().expect("a counter value"))
        .unwrap_or(0)
}

#[tokio::test]
async fn rs256_and_es256_tokens_log_in_and_rules_see_their_user_and_groups() {
    let idp = Idp::new();
    let sc = oidc_sidecar(
        INJECTED,
        false,
        injected_secrets(),
        Some(standard_jwks(&idp)),
    )
    .unwrap();

    // RS256, group analysts: salaries yes, runbooks no. The database sees the injected user.
    let alice = idp.token(Key::Rsa, "rsa-1", "alice@example.com", &["analysts"]);
    let view = session_view(&sc, "alice", &alice).await.unwrap();
    assert_eq!(view, (SCRAM_USER.to_string(), true, false));

    // ES256, user carol in another group: runbooks yes, salaries no.
    let carol = idp.token(Key::Ec, "ec-1", "carol@example.com", &["engineers"]);
    let view = session_view(&sc, "carol", &carol).await.unwrap();
    assert_eq!(view, (SCRAM_USER.to_string(), false, true));

    // Without a token (required: false): let in with the workload identity only, which
    // neither rule names. The password is not the database's and goes nowhere.
    let view = session_view(&sc, "app", "not-a-token").await.unwrap();
    assert_eq!(view, (SCRAM_USER.to_string(), false, false));

    // psql, with the token in PGPASSWORD.
    let conninfo = format!(
        "host=127.0.0.1 port={} user=alice dbname={DATABASE}",
        sc.port
    );
    let out = psql_with_password(&conninfo, &alice, "SELECT amount FROM salaries");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "100");
    let out = psql_with_password(&conninfo, &carol, "SELECT amount FROM salaries");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only analysts read salaries"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The session log names the verified user and groups; no token is ever logged.
    let logs = sc.logs();
    assert!(
        logs.contains("oidc_user=alice@example.com") && logs.contains("groups=analysts"),
        "{logs}"
    );
    assert!(logs.contains("oidc_user=carol@example.com"), "{logs}");
    for token in [&alice, &carol] {
        assert!(!logs.contains(token.as_str()), "a token was logged");
        let signature = token.rsplit('.').next().unwrap();
        assert!(!logs.contains(signature), "a token's signature was logged");
    }
    assert_eq!(metric(&sc, "verified"), 4);
    assert_eq!(metric(&sc, "no_token"), 1);
}

#[tokio::test]
async fn refused_tokens_say_why_and_never_echo_the_token() {
    let idp = Idp::new();
    let sc = oidc_sidecar(
        INJECTED,
        false,
        injected_secrets(),
        Some(standard_jwks(&idp)),
    )
    .unwrap();
    let now = now_secs();
    let mut expired = claims("alice@example.com", &["analysts"]);
    expired["iat"] = json!(now - 7200);
    expired["nbf"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    let mut other_audience = claims("alice@example.com", &["analysts"]);
    other_audience["aud"] = json!("some-other-app");
    let mut other_issuer = claims("alice@example.com", &["analysts"]);
    other_issuer["iss"] = json!("https://evil.example/");
    let mut not_yet = claims("alice@example.com", &["analysts"]);
    not_yet["nbf"] = json!(now + 3600);
    let good = claims("alice@example.com", &["analysts"]);
    let cases = [
        (
            idp.sign(Key::Rsa, "rsa-1", &expired),
            "expired",
            "expired",
            "fresh ID token",
        ),
        (
            idp.sign(Key::Ec, "ec-1", &other_audience),
            "wrong_audience",
            "audience \"some-other-app\" is not one of the accepted audiences",
            "request an ID token for palisade",
        ),
        (
            idp.sign(Key::Rsa, "rotated-away", &good),
            "unknown_key",
            "key id \"rotated-away\", which the issuer's JWKS does not hold",
            "idp-jwks/jwks.json",
        ),
        (
            idp.sign(Key::OtherRsa, "rsa-1", &good),
            "bad_signature",
            "signature does not verify",
            "unchanged",
        ),
        (
            idp.sign(Key::Rsa, "rsa-1", &other_issuer),
            "wrong_issuer",
            "issuer is \"https://evil.example/\"",
            ISSUER,
        ),
        (
            idp.sign(Key::Ec, "ec-1", &not_yet),
            "not_yet_valid",
            "not valid before",
            "fresh ID token",
        ),
    ];
    for (token, reason, words, hint) in &cases {
        let err = connect(&sc.conn_str("alice", Some(token), DATABASE))
            .await
            .expect_err(reason);
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "28P01", "{reason}: {}", db.message());
        assert_eq!(db.severity(), "FATAL");
        assert!(db.message().starts_with("palisade: ID token refused: "));
        assert!(db.message().contains(words), "{reason}: {}", db.message());
        let hint_text = db.hint().unwrap_or_default();
        assert!(hint_text.contains(hint), "{reason}: {hint_text}");
        let signature = token.rsplit('.').next().unwrap();
        for text in [db.message(), hint_text] {
            assert!(!text.contains(token.as_str()) && !text.contains(signature));
        }
        assert_eq!(metric(&sc, reason), 1, "{reason}");
    }

    // psql shows the reason too.
    let conninfo = format!(
        "host=127.0.0.1 port={} user=alice dbname={DATABASE}",
        sc.port
    );
    let out = psql_with_password(&conninfo, &cases[0].0, "SELECT 1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("FATAL:  palisade: ID token refused: the token expired at"),
        "{stderr}"
    );
    assert!(!stderr.contains(cases[0].0.as_str()));

    let logs = sc.logs();
    for (token, ..) in &cases {
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !logs.contains(token.as_str()) && !logs.contains(signature),
            "a token was logged"
        );
    }
    assert_eq!(metric(&sc, "verified"), 0);
}

#[tokio::test]
async fn required_tokens_refuse_passwords_and_injection_logs_in_for_the_person() {
    let idp = Idp::new();
    let sc = oidc_sidecar(
        INJECTED,
        true,
        injected_secrets(),
        Some(standard_jwks(&idp)),
    )
    .unwrap();

    // The database password itself is no way in, nor an empty one: only a token is.
    for password in [SCRAM_PASSWORD, "anything", ""] {
        let err = connect(&sc.conn_str(SCRAM_USER, Some(password), DATABASE))
            .await
            .expect_err("no token, no session");
        let (code, message) = db_error(&err);
        assert_eq!(code, "28000", "{message}");
        assert!(
            message.contains("policy test/e2e requires an OIDC ID token as the password"),
            "{message}"
        );
        let hint = err.as_db_error().and_then(|d| d.hint()).unwrap_or_default();
        assert!(hint.contains("PGPASSWORD="), "{hint}");
    }
    // psql without any password is not let in either (libpq gives up when asked for one).
    let conninfo = format!("host=127.0.0.1 port={} user=app dbname={DATABASE}", sc.port);
    let out = psql_with_password(&conninfo, "", "SELECT 1");
    assert!(!out.status.success());

    // A person with a token is in, as the injected database user, and never held its
    // password; the rules see who they are.
    let alice = idp.token(Key::Rsa, "rsa-1", "alice@example.com", &["analysts"]);
    let client = connect(&sc.conn_str("alice", Some(&alice), DATABASE))
        .await
        .unwrap();
    let rows = text_rows(&client, "SELECT current_user, amount FROM salaries").await;
    assert_eq!(
        rows,
        vec![vec![Some(SCRAM_USER.to_string()), Some("100".to_string())]]
    );
    assert_eq!(metric(&sc, "token_required"), 3);
    assert_eq!(metric(&sc, "verified"), 1);

    // required: true without injected credentials cannot work (a token is never the
    // database password), so such a policy is refused at load.
    let err = oidc_sidecar(
        "    tls: {mode: Disable}",
        true,
        vec![],
        Some(standard_jwks(&idp)),
    )
    .err()
    .expect("the policy is refused");
    let err = format!("{err:#}");
    assert!(
        err.contains("spec.identity.oidc.required") && err.contains("credentialsSecretRef"),
        "{err}"
    );
}

#[tokio::test]
async fn without_injected_credentials_passwords_reach_the_database_and_tokens_never_do() {
    let idp = Idp::new();
    let sc = oidc_sidecar(
        "    tls: {mode: Disable}",
        false,
        vec![],
        Some(standard_jwks(&idp)),
    )
    .unwrap();
    // A database password, asked for in cleartext by the sidecar, logs in with the
    // database's own method (SCRAM, md5).
    for (user, password) in [(SCRAM_USER, SCRAM_PASSWORD), (MD5_USER, MD5_PASSWORD)] {
        let view = session_view(&sc, user, password).await.unwrap();
        assert_eq!(view, (user.to_string(), false, false));
        let err = connect(&sc.conn_str(user, Some("wrong"), DATABASE))
            .await
            .unwrap_err();
        let (code, message) = db_error(&err);
        assert_eq!(code, "28P01", "{message}");
        assert!(
            message.contains("password authentication failed"),
            "{message}"
        );
    }
    // A token, for a database user the database trusts: in, with the token's identity.
    let alice = idp.token(Key::Ec, "ec-1", "alice@example.com", &["analysts"]);
    let view = session_view(&sc, TRUST_USER, &alice).await.unwrap();
    assert_eq!(view, (TRUST_USER.to_string(), true, false));
    // A token for a user the database wants a password from: refused; the token is never
    // tried as the password.
    let err = connect(&sc.conn_str(SCRAM_USER, Some(&alice), DATABASE))
        .await
        .unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(code, "28000", "{message}");
    assert!(
        message.contains("an ID token is never passed to the database"),
        "{message}"
    );
    let pg = PgCluster::shared();
    let server_log = pg.server_log();
    assert!(!server_log.contains(alice.as_str()));
}

/// Kubernetes updates a mounted Secret by swapping the `..data` symlink.
fn swap_in(secret_dir: &Path, generation: u32, jwks: &[u8]) {
    let data = secret_dir.join(format!("..{generation}"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("jwks.json"), jwks).unwrap();
    let tmp = secret_dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..{generation}"), &tmp).unwrap();
    std::fs::rename(&tmp, secret_dir.join("..data")).unwrap();
    let link = secret_dir.join("jwks.json");
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink("..data/jwks.json", &link).unwrap();
    }
}

/// Connects until `ok` holds for the outcome, for up to 10 s.
async fn eventually(
    sc: &Sidecar,
    token: &str,
    ok: impl Fn(&Result<tokio_postgres::Client, tokio_postgres::Error>) -> bool,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let outcome = connect(&sc.conn_str("alice", Some(token), DATABASE)).await;
        if ok(&outcome) || Instant::now() > deadline {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_jwks_is_reloaded_when_the_secret_changes() {
    let idp = Idp::new();
    // Started before the Secret holds any keys: the policy loads, token logins are refused.
    let sc = oidc_sidecar(INJECTED, false, injected_secrets(), None).unwrap();
    let alice = idp.token(Key::Rsa, "rsa-1", "alice@example.com", &["analysts"]);
    let err = connect(&sc.conn_str("alice", Some(&alice), DATABASE))
        .await
        .unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(code, "28000", "{message}");
    assert!(
        message.contains("ID tokens cannot be verified: the issuer's keys are not loaded"),
        "{message}"
    );
    assert_eq!(metric(&sc, "jwks_unavailable"), 1);

    // The Secret appears, holding only the RSA key.
    let secret_dir = sc.secrets_dir().join("idp-jwks");
    std::fs::create_dir_all(&secret_dir).unwrap();
    swap_in(&secret_dir, 1, &idp.jwks(&[(Key::Rsa, "rsa-1")]));
    let client = connect(&sc.conn_str("alice", Some(&alice), DATABASE))
        .await
        .expect("keys are read at the next login");
    assert_eq!(
        text_rows(&client, "SELECT amount FROM salaries")
            .await
            .len(),
        1
    );

    // The issuer adds a P-256 key: a token signed with it is unknown until the Secret
    // is updated, and then it logs in, without a restart.
    let bob = idp.token(Key::Ec, "ec-1", "bob@example.com", &["analysts"]);
    let err = connect(&sc.conn_str("bob", Some(&bob), DATABASE))
        .await
        .unwrap_err();
    assert!(db_error(&err).1.contains("does not hold"), "{err}");
    swap_in(&secret_dir, 2, &standard_jwks(&idp));
    eventually(&sc, &bob, Result::is_ok)
        .await
        .expect("the new key is used");

    // A broken update keeps the last good keys, and says so in the log.
    swap_in(&secret_dir, 3, b"{\"keys\": [");
    connect(&sc.conn_str("bob", Some(&bob), DATABASE))
        .await
        .expect("the last good keys stay in use");
    let logs = sc.logs();
    assert!(
        logs.contains("OIDC issuer keys not reloaded; the last good keys stay in use"),
        "{logs}"
    );

    // Rotating the RSA key out: its tokens are refused from then on.
    swap_in(&secret_dir, 4, &idp.jwks(&[(Key::Ec, "ec-1")]));
    let outcome = eventually(&sc, &alice, Result::is_err).await;
    let Err(err) = outcome else {
        panic!("a rotated-out key is refused")
    };
    let (code, message) = db_error(&err);
    assert_eq!(code, "28P01");
    assert!(message.contains("\"rsa-1\""), "{message}");
}
