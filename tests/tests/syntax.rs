//! Statement text read as the server reads it, through the live sidecar: client encodings
//! (a 0x5c byte inside an SJIS character is no backslash), `standard_conforming_strings`
//! as the session has it, and SQL the server's own grammar rejects answered by the server.

mod common;

use common::{ErrorFields, RawClient, connect, db_error, text_rows};
use palisade_tests::free_port;
use palisade_tests::pg::{PgCluster, SUPERUSER};
use palisade_tests::sidecar::{Sidecar, SidecarOptions};

const DB: &str = "syntax";

const SEED: &str = "
CREATE TABLE IF NOT EXISTS victim(id int);
CREATE TABLE IF NOT EXISTS notes(body text);
CREATE TABLE IF NOT EXISTS \"café\"(id int);
";

fn sidecar() -> Sidecar {
    let pg = PgCluster::shared();
    pg.create_database(DB).unwrap();
    pg.psql(DB, SEED).unwrap();
    let port = free_port();
    let policy = common::policy(
        port,
        "127.0.0.1",
        pg.port,
        "    tls: {mode: Disable}",
        "  defaultAction: Allow
  onParseError: Deny
  rules:
    - {name: no-drop, match: {operations: [Drop]}, action: Deny}
    - {name: no-cafe, match: {tables: [\"public.café\"]}, action: Deny}",
    );
    Sidecar::start(SidecarOptions {
        policy_yaml: policy,
        port,
        ..Default::default()
    })
    .expect("sidecar starts")
}

async fn raw(sidecar: &Sidecar, params: &[(&str, &str)]) -> RawClient {
    let mut client = RawClient::connect(sidecar.port).await;
    client.startup_with(SUPERUSER, DB, params).await;
    client
}

async fn victim_exists(pg: &PgCluster) -> bool {
    let direct = connect(&pg.conn_str(SUPERUSER, None, DB)).await.unwrap();
    text_rows(&direct, "SELECT to_regclass('public.victim') IS NOT NULL").await
        == vec![vec![Some("t".into())]]
}

fn denied_by(errors: &[ErrorFields], rule: &str) -> bool {
    errors
        .iter()
        .any(|e| e.code == "42501" && e.message.contains(&format!("rule \"{rule}\"")))
}

#[tokio::test]
async fn latin9_and_win1252_text_is_read_in_its_encoding() {
    let sidecar = sidecar();
    let mut latin9 = raw(&sidecar, &[("client_encoding", "LATIN9")]).await;
    // 0xa4 is the euro sign in LATIN9, 0xe9 an e with acute accent.
    let out = latin9.query(b"SELECT '\xa4 caf\xe9'").await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.rows, vec![vec![Some(b"\xa4 caf\xe9".to_vec())]]);
    // The relation name is decoded too: the rule on public.café matches it.
    let out = latin9.query(b"SELECT * FROM caf\xe9").await;
    assert!(denied_by(&out.errors, "no-cafe"), "{:?}", out.errors);
    // The session goes on.
    assert_eq!(latin9.query(b"SELECT 1").await.rows.len(), 1);

    let mut win1252 = raw(&sidecar, &[("client_encoding", "WIN1252")]).await;
    let out = win1252.query(b"SELECT '\x80'").await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.rows, vec![vec![Some(b"\x80".to_vec())]]);
}

#[tokio::test]
async fn a_0x5c_byte_inside_an_sjis_character_is_not_a_backslash() {
    let pg = PgCluster::shared();
    let sidecar = sidecar();
    let mut sjis = raw(
        &sidecar,
        &[
            ("client_encoding", "SJIS"),
            ("standard_conforming_strings", "off"),
        ],
    )
    .await;
    // 0x95 0x5c is one character (表). Read byte by byte, 0x5c would be a backslash
    // escaping the quote, and the DROP would be part of the literal: it is not.
    let out = sjis
        .query(b"SELECT '\x95\x5c'; DROP TABLE victim; --'")
        .await;
    assert!(denied_by(&out.errors, "no-drop"), "{:?}", out.errors);
    assert!(victim_exists(pg).await);
    let out = sjis.query(b"SELECT '\x95\x5c'").await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.rows, vec![vec![Some(b"\x95\x5c".to_vec())]]);
}

#[tokio::test]
async fn backslashes_are_read_as_standard_conforming_strings_says() {
    let pg = PgCluster::shared();
    let sidecar = sidecar();
    let attack: &[u8] = b"SELECT 'a\\'; DROP TABLE victim; --'";

    // On (the default): the literal is `a\`, and a DROP follows.
    let mut on = raw(&sidecar, &[]).await;
    let out = on.query(attack).await;
    assert!(denied_by(&out.errors, "no-drop"), "{:?}", out.errors);
    // A backslash in a plain literal is just a character: no refusal.
    let out = on.query(b"SELECT 'C:\\dir'").await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.rows, vec![vec![Some(b"C:\\dir".to_vec())]]);

    // Off: `\'` is a quote inside the literal, so the whole text is one SELECT.
    let out = on.query(b"SET standard_conforming_strings = off").await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let out = on.query(attack).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        out.rows,
        vec![vec![Some(b"a'; DROP TABLE victim; --".to_vec())]]
    );
    assert!(victim_exists(pg).await);
    // And back on: the DROP is a statement again.
    on.query(b"RESET standard_conforming_strings").await;
    let out = on.query(attack).await;
    assert!(denied_by(&out.errors, "no-drop"), "{:?}", out.errors);
}

#[tokio::test]
async fn pipelined_text_after_a_settings_change_is_judged_both_ways() {
    // The second Query is read by the server after the first has turned
    // standard_conforming_strings on again; the sidecar has not heard of it yet when it
    // judges the second, and must not judge it by the old setting alone.
    let pg = PgCluster::shared();
    let sidecar = sidecar();
    let mut off = raw(&sidecar, &[("standard_conforming_strings", "off")]).await;
    let mut batch = palisade_tests::wire::message(b'Q', b"SET standard_conforming_strings = on\0");
    batch.extend(palisade_tests::wire::message(
        b'Q',
        b"SELECT 'a\\'; DROP TABLE victim; --'\0",
    ));
    tokio::io::AsyncWriteExt::write_all(&mut off.stream, &batch)
        .await
        .unwrap();
    let mut errors = Vec::new();
    let mut ready = 0;
    while ready < 2 {
        let (tag, body) = off.read_message().await.expect("answers");
        match tag {
            b'E' => errors.push(ErrorFields {
                code: common::field(&body, b'C'),
                message: common::field(&body, b'M'),
                position: String::new(),
            }),
            b'Z' => ready += 1,
            _ => {}
        }
    }
    assert!(denied_by(&errors, "no-drop"), "{errors:?}");
    assert!(victim_exists(pg).await);
}

#[tokio::test]
async fn text_that_is_not_valid_in_the_client_encoding_is_refused_unread() {
    let sidecar = sidecar();
    let mut utf8 = raw(&sidecar, &[]).await;
    let out = utf8.query(b"SELECT '\xff'").await;
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    assert_eq!(out.errors[0].code, "42501");
    assert!(
        out.errors[0].message.contains("not valid UTF8"),
        "{:?}",
        out.errors
    );
}

#[tokio::test]
async fn sql_the_server_rejects_gets_the_servers_own_error() {
    let pg = PgCluster::shared();
    let sidecar = sidecar();
    let mut direct = RawClient::connect(pg.port).await;
    direct.startup(SUPERUSER, DB).await;
    let mut proxied = raw(&sidecar, &[]).await;
    for sql in [
        &b"wat"[..],
        b"SELECT 1 +",
        b"SELECT * FROM victim WHERE",
        b"SELECT 1; DROP TABLE victim; SELEC 2",
        b"CREATE TABLE t (a int,)",
    ] {
        let want = direct.query(sql).await.errors;
        let got = proxied.query(sql).await.errors;
        assert_eq!(want.len(), 1, "{}", String::from_utf8_lossy(sql));
        assert_eq!(want[0].code, "42601");
        assert_eq!(got, want, "{}", String::from_utf8_lossy(sql));
    }
    assert!(victim_exists(pg).await);
    // The extended protocol too, through a driver.
    let client = connect(&sidecar.conn_str(SUPERUSER, None, DB))
        .await
        .unwrap();
    let err = client.prepare("wat").await.unwrap_err();
    assert_eq!(db_error(&err).0, "42601");
    assert_eq!(
        text_rows(&client, "SELECT 2").await,
        vec![vec![Some("2".into())]]
    );
}
