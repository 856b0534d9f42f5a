//! Every part of the protocol a client uses works through the sidecar exactly as it does
//! direct: real PostgreSQL, the real sidecar binary, tokio-postgres as the client.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{RawClient, connect, db_error, plain_sidecar, text_rows};
use futures_util::{SinkExt, StreamExt, TryStreamExt, pin_mut};
use palisade_tests::pg::{PgCluster, SUPERUSER};
use tokio::io::AsyncWriteExt;
use tokio_postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutStream};
use tokio_postgres::types::Type;
use tokio_postgres::{AsyncMessage, NoTls, SimpleQueryMessage};

fn db(name: &str) -> String {
    PgCluster::shared().create_database(name).unwrap()
}

#[tokio::test]
async fn simple_and_multi_statement_queries() {
    let pg = PgCluster::shared();
    let database = db("proto_simple");
    let sidecar = plain_sidecar(pg);
    let client = connect(&sidecar.conn_str(SUPERUSER, None, &database))
        .await
        .unwrap();
    client
        .batch_execute(
            "CREATE TABLE t(id int primary key, name text); INSERT INTO t VALUES (1, 'a'), (2, 'b'); UPDATE t SET name = 'c' WHERE id = 2",
        )
        .await
        .unwrap();
    let messages = client
        .simple_query(
            "SELECT id, name FROM t ORDER BY id; SELECT count(*) FROM t; SELECT 'x' WHERE false",
        )
        .await
        .unwrap();
    let tags: Vec<u64> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(tags, vec![2, 1, 0]);
    assert_eq!(
        text_rows(&client, "SELECT id, name FROM t ORDER BY id").await,
        vec![
            vec![Some("1".into()), Some("a".into())],
            vec![Some("2".into()), Some("c".into())]
        ]
    );
    // An error mid-batch stops the batch and leaves the session usable, as direct.
    let err = client
        .batch_execute("INSERT INTO t VALUES (3, 'd'); SELECT 1/0; INSERT INTO t VALUES (4, 'e')")
        .await
        .unwrap_err();
    assert_eq!(db_error(&err).0, "22012");
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM t").await,
        vec![vec![Some("2".into())]]
    );
    // An empty query answers EmptyQueryResponse + ReadyForQuery.
    client.simple_query("").await.unwrap();
}

#[tokio::test]
async fn extended_protocol_prepared_binary_and_pipelined() {
    let pg = PgCluster::shared();
    let database = db("proto_extended");
    let sidecar = plain_sidecar(pg);
    let client = connect(&sidecar.conn_str(SUPERUSER, None, &database))
        .await
        .unwrap();
    client
        .batch_execute("CREATE TABLE kv(k int primary key, v text, f float8, b bytea, ts timestamptz default now())")
        .await
        .unwrap();
    // Named statement, binary parameters and results (tokio-postgres uses binary throughout).
    let insert = client
        .prepare("INSERT INTO kv(k, v, f, b) VALUES ($1, $2, $3, $4)")
        .await
        .unwrap();
    for k in 0..50i32 {
        client
            .execute(
                &insert,
                &[&k, &format!("v{k}"), &(k as f64 / 3.0), &vec![k as u8; 3]],
            )
            .await
            .unwrap();
    }
    let row = client
        .query_one("SELECT v, f, b FROM kv WHERE k = $1", &[&7i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "v7");
    assert_eq!(row.get::<_, f64>(1), 7.0 / 3.0);
    assert_eq!(row.get::<_, Vec<u8>>(2), vec![7u8; 3]);
    // Unnamed statements via query_typed.
    let rows = client
        .query_typed(
            "SELECT k FROM kv WHERE k < $1 ORDER BY k",
            &[(&3i32, Type::INT4)],
        )
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    // Pipelining: tokio-postgres sends concurrent queries without waiting for each answer.
    let select = client
        .prepare("SELECT v FROM kv WHERE k = $1")
        .await
        .unwrap();
    let futures = (0..50i32).map(|k| {
        let client = &client;
        let select = &select;
        async move {
            client
                .query_one(select, &[&k])
                .await
                .map(|r| r.get::<_, String>(0))
        }
    });
    let results = futures_util::future::try_join_all(futures).await.unwrap();
    assert_eq!(
        results,
        (0..50).map(|k| format!("v{k}")).collect::<Vec<_>>()
    );
    // An error inside a pipeline fails only its own query.
    let bad = client.query_one("SELECT 1/$1::int", &[&0i32]);
    let good = client.query_one("SELECT 42::int", &[]);
    let (bad, good) = tokio::join!(bad, good);
    assert_eq!(db_error(&bad.unwrap_err()).0, "22012");
    assert_eq!(good.unwrap().get::<_, i32>(0), 42);
}

#[tokio::test]
async fn cursors_and_portals() {
    let pg = PgCluster::shared();
    let database = db("proto_cursors");
    let sidecar = plain_sidecar(pg);
    let mut client = connect(&sidecar.conn_str(SUPERUSER, None, &database))
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("DECLARE c CURSOR FOR SELECT g FROM generate_series(1, 10) g")
        .await
        .unwrap();
    let first = tx.query("FETCH 4 FROM c", &[]).await.unwrap();
    let next = tx.query("FETCH 4 FROM c", &[]).await.unwrap();
    assert_eq!(
        first.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(
        next.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
        vec![5, 6, 7, 8]
    );
    // Extended-protocol portal with a row limit: Execute(max_rows) + PortalSuspended.
    let stmt = tx
        .prepare("SELECT g FROM generate_series(1, 7) g")
        .await
        .unwrap();
    let portal = tx.bind(&stmt, &[]).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let chunk = tx.query_portal(&portal, 3).await.unwrap();
        if chunk.is_empty() {
            break;
        }
        seen.extend(chunk.iter().map(|r| r.get::<_, i32>(0)));
    }
    assert_eq!(seen, (1..=7).collect::<Vec<_>>());
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn copy_in_and_out_in_every_format() {
    let pg = PgCluster::shared();
    let database = db("proto_copy");
    let sidecar = plain_sidecar(pg);
    let client = connect(&sidecar.conn_str(SUPERUSER, None, &database))
        .await
        .unwrap();
    client
        .batch_execute("CREATE TABLE c(id int, name text)")
        .await
        .unwrap();

    let sink = client.copy_in("COPY c FROM STDIN").await.unwrap();
    pin_mut!(sink);
    let text: String = (0..1000).map(|i| format!("{i}\tname {i}\n")).collect();
    sink.send(Bytes::from(text.clone())).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 1000);

    let sink = client
        .copy_in("COPY c FROM STDIN (FORMAT csv)")
        .await
        .unwrap();
    pin_mut!(sink);
    sink.send(Bytes::from_static(b"1000,\"quoted, name\"\n1001,plain\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);

    let sink = client
        .copy_in("COPY c FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    let writer = BinaryCopyInWriter::new(sink, &[Type::INT4, Type::TEXT]);
    pin_mut!(writer);
    for i in 2000..2100i32 {
        writer
            .as_mut()
            .write(&[&i, &format!("bin {i}")])
            .await
            .unwrap();
    }
    assert_eq!(writer.finish().await.unwrap(), 100);

    let out: Vec<Bytes> = client
        .copy_out("COPY (SELECT id, name FROM c WHERE id < 1000 ORDER BY id) TO STDOUT")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(String::from_utf8(out.concat()).unwrap(), text);

    let csv: Vec<Bytes> = client
        .copy_out("COPY (SELECT id, name FROM c WHERE id = 1000) TO STDOUT (FORMAT csv)")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(csv.concat(), b"1000,\"quoted, name\"\n");

    let stream = client
        .copy_out(
            "COPY (SELECT id, name FROM c WHERE id >= 2000 ORDER BY id) TO STDOUT (FORMAT binary)",
        )
        .await
        .unwrap();
    let rows: Vec<_> = BinaryCopyOutStream::new(stream, &[Type::INT4, Type::TEXT])
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), 100);
    assert_eq!(rows[5].get::<String>(1), "bin 2005");

    // An error mid-COPY: bad data fails the COPY, nothing is loaded, the session goes on.
    let sink = client.copy_in("COPY c FROM STDIN").await.unwrap();
    pin_mut!(sink);
    sink.send(Bytes::from_static(b"5000\tok\nnot-a-number\tbad\n"))
        .await
        .unwrap();
    let err = sink.finish().await.unwrap_err();
    assert_eq!(db_error(&err).0, "22P02");
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM c WHERE id = 5000").await,
        vec![vec![Some("0".into())]]
    );
}

#[tokio::test]
async fn cancel_reaches_the_right_backend() {
    let pg = PgCluster::shared();
    let sidecar = plain_sidecar(pg);
    let client = connect(&sidecar.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap();
    let bystander = connect(&sidecar.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap();
    let token = client.cancel_token();
    let started = Instant::now();
    let sleeping = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel_query(NoTls).await.unwrap();
    let err = sleeping.await.unwrap().unwrap_err();
    assert_eq!(db_error(&err).0, "57014", "query_canceled");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The other session on the same sidecar was not touched.
    assert_eq!(
        text_rows(&bystander, "SELECT 1").await,
        vec![vec![Some("1".into())]]
    );
}

#[tokio::test]
async fn clients_see_the_backends_real_process_id() {
    let pg = PgCluster::shared();
    let sidecar = plain_sidecar(pg);
    let mut raw = RawClient::connect(sidecar.port).await;
    raw.stream
        .write_all(&palisade_tests::wire::startup_packet(SUPERUSER, "postgres"))
        .await
        .unwrap();
    let mut announced = None;
    loop {
        let (tag, body) = raw.read_message().await.expect("startup message");
        assert_ne!(tag, b'E', "{}", String::from_utf8_lossy(&body));
        if tag == b'K' {
            announced = Some(i32::from_be_bytes(body[0..4].try_into().unwrap()));
        }
        if tag == b'Z' {
            break;
        }
    }
    raw.stream
        .write_all(&palisade_tests::wire::message(
            b'Q',
            b"SELECT pg_backend_pid()\0",
        ))
        .await
        .unwrap();
    let pid = loop {
        let (tag, body) = raw.read_message().await.expect("query result");
        if tag == b'D' {
            // One column: int16 count, int32 length, the text.
            break String::from_utf8(body[6..].to_vec()).unwrap();
        }
    };
    assert_eq!(announced.map(|p| p.to_string()), Some(pid.clone()));
    // pg_terminate_backend with the pid the client was told ends that very session.
    let admin = connect(&sidecar.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap();
    let terminated = text_rows(&admin, &format!("SELECT pg_terminate_backend({pid})")).await;
    assert_eq!(terminated, vec![vec![Some("t".into())]]);
    // The terminated session hears the server's FATAL 57P01, then its connection closes.
    let mut last_error = None;
    while let Some((tag, body)) = raw.read_message().await {
        if tag == b'E' {
            last_error = Some(common::field(&body, b'C'));
        }
    }
    assert_eq!(last_error.as_deref(), Some("57P01"), "admin_shutdown");
}

#[tokio::test]
async fn notifications_and_notices_arrive() {
    let pg = PgCluster::shared();
    let sidecar = plain_sidecar(pg);
    let (listener, mut connection) =
        tokio_postgres::connect(&sidecar.conn_str(SUPERUSER, None, "postgres"), NoTls)
            .await
            .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            let _ = tx.send(m);
        }
    });
    listener
        .batch_execute("LISTEN palisade_events")
        .await
        .unwrap();
    let notifier = connect(&sidecar.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap();
    let notifier_pid = text_rows(&notifier, "SELECT pg_backend_pid()").await[0][0].clone();
    notifier
        .batch_execute("NOTIFY palisade_events, 'hello'")
        .await
        .unwrap();
    listener
        .batch_execute("DO $$ BEGIN RAISE NOTICE 'careful'; END $$")
        .await
        .unwrap();
    let mut got_notification = false;
    let mut got_notice = false;
    while !(got_notification && got_notice) {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            AsyncMessage::Notification(n) => {
                assert_eq!((n.channel(), n.payload()), ("palisade_events", "hello"));
                // The pid the notifier's backend has, as its client was told it.
                assert_eq!(Some(n.process_id().to_string()), notifier_pid);
                got_notification = true;
            }
            AsyncMessage::Notice(n) => {
                assert_eq!(n.message(), "careful");
                got_notice = true;
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_16_mib_value_round_trips() {
    let pg = PgCluster::shared();
    let database = db("proto_big");
    // The statement limit (1 MiB by default) raised, for the 16 MiB literal below.
    let port = palisade_tests::free_port();
    let sidecar =
        palisade_tests::sidecar::Sidecar::start(palisade_tests::sidecar::SidecarOptions {
            policy_yaml: common::policy(
                port,
                "127.0.0.1",
                pg.port,
                "    tls: {mode: Disable}",
                "  limits: {maxStatementBytes: 33554432}",
            ),
            port,
            ..Default::default()
        })
        .unwrap();
    let client = connect(&sidecar.conn_str(SUPERUSER, None, &database))
        .await
        .unwrap();
    client
        .batch_execute("CREATE TABLE big(b bytea, t text)")
        .await
        .unwrap();
    let blob: Vec<u8> = (0..16 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let text: String = "palisade ".repeat(16 * 1024 * 1024 / 9);
    client
        .execute("INSERT INTO big VALUES ($1, $2)", &[&blob, &text])
        .await
        .unwrap();
    let row = client.query_one("SELECT b, t FROM big", &[]).await.unwrap();
    assert!(row.get::<_, Vec<u8>>(0) == blob);
    assert!(row.get::<_, String>(1) == text);
    // And as one 16 MiB simple-protocol statement.
    let literal = format!("SELECT length('{}')", "y".repeat(16 * 1024 * 1024));
    assert_eq!(
        text_rows(&client, &literal).await,
        vec![vec![Some((16 * 1024 * 1024).to_string())]]
    );
}

#[tokio::test]
async fn a_million_rows_match_direct() {
    let pg = PgCluster::shared();
    let sidecar = plain_sidecar(pg);
    let proxied = connect(&sidecar.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap();
    let direct = connect(&pg.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap();
    let sql = "SELECT g, md5(g::text) FROM generate_series(1, 1000000) g";
    let digest = |rows: Vec<tokio_postgres::Row>| {
        let mut count = 0u64;
        let mut acc = 0u64;
        for r in rows {
            count += 1;
            let g: i32 = r.get(0);
            let h: &str = r.get(1);
            acc = acc
                .wrapping_mul(31)
                .wrapping_add(g as u64 ^ u64::from_str_radix(&h[..8], 16).unwrap());
        }
        (count, acc)
    };
    let via = digest(proxied.query(sql, &[]).await.unwrap());
    let dir = digest(direct.query(sql, &[]).await.unwrap());
    assert_eq!(via.0, 1_000_000);
    assert_eq!(via, dir);
}

#[tokio::test]
async fn results_through_the_proxy_equal_results_direct() {
    let pg = PgCluster::shared();
    let database = db("proto_equal");
    let direct = connect(&pg.conn_str(SUPERUSER, None, &database))
        .await
        .unwrap();
    direct
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS people(id serial primary key, name text, born date, score numeric(10,2), tags text[], doc jsonb, photo bytea);
             TRUNCATE people;
             INSERT INTO people(name, born, score, tags, doc, photo)
             SELECT 'person ' || g, date '1970-01-01' + g, g * 1.25, ARRAY['t' || g, 'ü' || g], jsonb_build_object('g', g, 'ok', g % 2 = 0), decode(md5(g::text), 'hex')
             FROM generate_series(1, 500) g;
             INSERT INTO people(name) VALUES (NULL), ('quote''s \\ and \"double\"'), ('emoji 🦀 and tab	here');",
        )
        .await
        .unwrap();
    let sidecar = plain_sidecar(pg);
    let proxied = connect(&sidecar.conn_str(SUPERUSER, None, &database))
        .await
        .unwrap();
    for sql in [
        "SELECT * FROM people ORDER BY id",
        "SELECT count(*), sum(score), min(born), max(doc->>'g') FROM people",
        "SELECT name, tags[1] FROM people WHERE name LIKE '%🦀%' OR id < 3 ORDER BY id",
        "SELECT oid, relname FROM pg_class WHERE relname = 'people'",
        "SHOW server_encoding",
    ] {
        assert_eq!(
            text_rows(&proxied, sql).await,
            text_rows(&direct, sql).await,
            "{sql}"
        );
    }
    let stmt = "SELECT id, name, born, score::float8, tags, photo FROM people WHERE id % $1 = 0 ORDER BY id";
    let a = proxied.query(stmt, &[&7i32]).await.unwrap();
    let b = direct.query(stmt, &[&7i32]).await.unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.get::<_, i32>(0), y.get::<_, i32>(0));
        assert_eq!(x.get::<_, Option<String>>(1), y.get::<_, Option<String>>(1));
        assert_eq!(x.get::<_, Option<f64>>(3), y.get::<_, Option<f64>>(3));
        assert_eq!(
            x.get::<_, Option<Vec<String>>>(4),
            y.get::<_, Option<Vec<String>>>(4)
        );
        assert_eq!(
            x.get::<_, Option<Vec<u8>>>(5),
            y.get::<_, Option<Vec<u8>>>(5)
        );
    }
}

#[tokio::test]
async fn disconnects_on_either_side_clean_up_the_other() {
    let pg = PgCluster::shared();
    let sidecar = plain_sidecar(pg);
    let direct = connect(&pg.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap();
    let alive = |pid: i32| {
        let direct = &direct;
        async move {
            direct
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                    &[&pid],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
                == 1
        }
    };
    let wait_gone = |pid: i32| async move {
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid).await {
            assert!(
                Instant::now() < deadline,
                "backend {pid} still there after the client left"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    // Terminate: a clean goodbye.
    let client = connect(&sidecar.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap();
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(alive(pid).await);
    drop(client);
    wait_gone(pid).await;

    // An abrupt close of the client's socket, mid-query.
    let mut raw = RawClient::connect(sidecar.port).await;
    raw.startup(SUPERUSER, "postgres").await;
    let q = b"SELECT pg_backend_pid(), pg_sleep(0.2)\0";
    let mut msg = vec![b'Q'];
    msg.extend_from_slice(&((q.len() + 4) as i32).to_be_bytes());
    msg.extend_from_slice(q);
    tokio::io::AsyncWriteExt::write_all(&mut raw.stream, &msg)
        .await
        .unwrap();
    let pid: i32 = loop {
        let (tag, body) = raw.read_message().await.unwrap();
        if tag == b'D' {
            let len = i32::from_be_bytes(body[2..6].try_into().unwrap()) as usize;
            break std::str::from_utf8(&body[6..6 + len])
                .unwrap()
                .parse()
                .unwrap();
        }
    };
    drop(raw);
    wait_gone(pid).await;

    // The database side goes away: the client hears about it and is disconnected.
    let client = connect(&sidecar.conn_str(SUPERUSER, None, "postgres"))
        .await
        .unwrap();
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    direct
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let err = client.simple_query("SELECT 1").await.unwrap_err();
    assert!(
        db_error(&err).0 == "57P01" || err.is_closed(),
        "expected admin shutdown or a closed connection, got {err}"
    );
}
