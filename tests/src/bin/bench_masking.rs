//! `bench-masking`: the cost of dynamic masking on a large result. One throwaway cluster,
//! one table of `--rows` rows × 6 columns, and the same `SELECT *` read in full directly
//! and through three sidecars: without masking rules, with two masked columns, and with
//! the two masks plus every content detector. Text results (simple protocol) and binary
//! results (extended protocol) are both timed; targets are interleaved within each round
//! so drift on a noisy machine hits them alike. Each sidecar's peak RSS (VmHWM) is read
//! at the end. With `--stream-rows N`, a generated N-row result is also streamed through
//! the masking sidecar to show memory stays flat however long the result.
//!
//! Run in release: `cargo run --release -p palisade-tests --bin bench-masking`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use palisade_tests::free_port;
use palisade_tests::pg::{PgCluster, SUPERUSER};
use palisade_tests::sidecar::{Sidecar, SidecarOptions};
use palisade_tests::wire::{message, startup_packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Benchmark dynamic masking against direct PostgreSQL.
#[derive(Parser)]
struct Args {
    /// Rows in the benchmark table.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Interleaved rounds; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Also stream a generated result of this many rows through the masking sidecar
    /// (0: skip).
    #[arg(long, default_value_t = 0)]
    stream_rows: u64,
}

const SEED: &str = "
DROP TABLE IF EXISTS people;
CREATE TABLE people(id int, name text, email text, ssn text, city text, note text);
INSERT INTO people
SELECT g, 'name ' || g, 'user' || g || '@example.com', lpad((g % 1000000000)::text, 9, '0'),
       (ARRAY['Paris', 'Lima', 'Oslo', 'Pune'])[1 + g % 4], 'ordered item ' || (g % 977) || ' twice'
FROM generate_series(1, $ROWS) g;
ANALYZE people;
CREATE VIEW stream AS
SELECT g AS id, 'user' || g || '@example.com' AS email FROM generate_series(1, $STREAM) g;
";

fn policy(port: u16, pg_port: u16, masking: &str) -> String {
    format!(
        "apiVersion: palisade.dev/v1alpha1
kind: DatabasePolicy
metadata: {{name: bench, namespace: default}}
spec:
  listen: {{port: {port}}}
  database: {{host: 127.0.0.1, port: {pg_port}, tls: {{mode: Disable}}}}
{masking}"
    )
}

const MASKS: &str = "---
apiVersion: palisade.dev/v1alpha1
kind: MaskingRule
metadata: {name: pii, namespace: default}
spec:
  columns:
    - {table: public.people, column: email, mask: {type: Email}}
    - {table: public.people, column: ssn, mask: {type: Partial, keepLast: 4}}
    - {table: public.stream, column: email, mask: {type: Email}}
";

const DETECTORS: &str = "  detectors:
    - {entities: [Email, CreditCard, UsSsn, Iban, Phone, Jwt, AwsAccessKey, PrivateKey], mask: {type: Redact}}
";

struct Target {
    name: &'static str,
    port: u16,
    sidecar: Option<Sidecar>,
}

/// Startup as a trust user; everything up to the first ReadyForQuery is read.
async fn session(port: u16, database: &str) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    stream
        .write_all(&startup_packet(SUPERUSER, database))
        .await?;
    read_until_ready(&mut stream).await?;
    Ok(stream)
}

/// Reads whole messages until ReadyForQuery; returns (rows, bytes). An error fails.
async fn read_until_ready(stream: &mut TcpStream) -> Result<(u64, u64)> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut have = 0usize;
    let mut rows = 0u64;
    let mut bytes = 0u64;
    loop {
        let n = stream.read(&mut buf[have..]).await?;
        if n == 0 {
            bail!("connection closed");
        }
        have += n;
        bytes += n as u64;
        let mut at = 0;
        while have - at >= 5 {
            let len = i32::from_be_bytes(buf[at + 1..at + 5].try_into()?) as usize;
            if have - at < len + 1 {
                if len + 1 > buf.len() {
                    buf.resize(len + 1, 0);
                }
                break;
            }
            match buf[at] {
                b'D' => rows += 1,
                b'E' => bail!(
                    "server error: {}",
                    String::from_utf8_lossy(&buf[at + 5..at + 1 + len])
                ),
                b'Z' => return Ok((rows, bytes)),
                _ => {}
            }
            at += len + 1;
        }
        buf.copy_within(at..have, 0);
        have -= at;
    }
}

/// One full read of `sql`: simple protocol (text) or extended with binary results.
async fn read_all(port: u16, database: &str, sql: &str, binary: bool) -> Result<(Duration, u64)> {
    let mut stream = session(port, database).await?;
    let started = Instant::now();
    let mut out = Vec::new();
    if binary {
        let mut parse = b"\0".to_vec();
        parse.extend_from_slice(sql.as_bytes());
        parse.extend_from_slice(&[0, 0, 0]);
        out.extend(message(b'P', &parse));
        // No parameter formats, no parameters, one result format: binary for all.
        out.extend(message(b'B', &[0, 0, 0, 0, 0, 0, 0, 1, 0, 1]));
        out.extend(message(b'D', b"P\0"));
        out.extend(message(b'E', &[0, 0, 0, 0, 0]));
        out.extend(message(b'S', &[]));
    } else {
        let mut q = sql.as_bytes().to_vec();
        q.push(0);
        out.extend(message(b'Q', &q));
    }
    stream.write_all(&out).await?;
    let (rows, _) = read_until_ready(&mut stream).await?;
    Ok((started.elapsed(), rows))
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for meaningful numbers");
    }
    let pg = PgCluster::start(false).context("start PostgreSQL")?;
    let db = "bench_masking";
    pg.create_database(db)?;
    eprintln!("loading {} rows…", args.rows);
    let seed = SEED
        .replace("$ROWS", &args.rows.to_string())
        .replace("$STREAM", &args.stream_rows.max(1).to_string());
    pg.psql(db, &seed)?;

    let mut targets = vec![Target {
        name: "direct",
        port: pg.port,
        sidecar: None,
    }];
    for (name, masking) in [
        ("sidecar, no masking", String::new()),
        ("sidecar, 2 masked columns", MASKS.to_string()),
        (
            "sidecar, 2 masks + all detectors",
            format!("{MASKS}{DETECTORS}"),
        ),
    ] {
        let port = free_port();
        let sidecar = Sidecar::start(SidecarOptions {
            policy_yaml: policy(port, pg.port, &masking),
            port,
            extra_args: vec!["--log-level".into(), "warn".into()],
            ..Default::default()
        })?;
        targets.push(Target {
            name,
            port,
            sidecar: Some(sidecar),
        });
    }

    // The masking sidecars must really mask: a benchmark of a pass-through says nothing.
    for t in &targets[2..] {
        let (client, connection) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user={SUPERUSER} dbname={db}",
                t.port
            ),
            tokio_postgres::NoTls,
        )
        .await?;
        tokio::spawn(connection);
        let row = client
            .query_one("SELECT email, ssn FROM people WHERE id = 1", &[])
            .await?;
        let (email, ssn): (String, String) = (row.get(0), row.get(1));
        if !email.contains('*') || !ssn.starts_with('*') || email.contains("user1@") {
            bail!("{}: values are not masked: {email} {ssn}", t.name);
        }
        eprintln!("{}: masked as {email} / {ssn}", t.name);
    }

    let sql = "SELECT id, name, email, ssn, city, note FROM people";
    let mut times: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); 2]; targets.len()];
    for round in 0..args.rounds {
        for (mode, binary) in [false, true].into_iter().enumerate() {
            for (i, t) in targets.iter().enumerate() {
                let (elapsed, rows) = read_all(t.port, db, sql, binary).await?;
                if rows != args.rows {
                    bail!("{}: {rows} rows, expected {}", t.name, args.rows);
                }
                times[i][mode].push(elapsed.as_secs_f64());
                eprintln!(
                    "round {} {:<6} {:<34} {:>8.3} s",
                    round + 1,
                    if binary { "binary" } else { "text" },
                    t.name,
                    elapsed.as_secs_f64()
                );
            }
        }
    }

    println!(
        "SELECT of {} rows x 6 columns, median of {} interleaved rounds",
        args.rows, args.rounds
    );
    println!("| target | text s | text / direct | binary s | binary / direct | peak RSS MiB |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let direct: Vec<f64> = (0..2).map(|m| median(times[0][m].clone())).collect();
    for (i, t) in targets.iter().enumerate() {
        let text = median(times[i][0].clone());
        let binary = median(times[i][1].clone());
        let rss = t
            .sidecar
            .as_ref()
            .and_then(|s| vm_hwm_kib(s.pid()))
            .map_or("-".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
        println!(
            "| {} | {text:.3} | {:.2} | {binary:.3} | {:.2} | {rss} |",
            t.name,
            text / direct[0],
            binary / direct[1]
        );
    }

    if args.stream_rows > 0 {
        let t = &targets[2];
        let pid = t.sidecar.as_ref().map(Sidecar::pid).context("sidecar")?;
        let before = vm_hwm_kib(pid).unwrap_or(0);
        let (elapsed, rows) = read_all(t.port, db, "SELECT id, email FROM stream", false).await?;
        let after = vm_hwm_kib(pid).unwrap_or(0);
        println!(
            "\nstreamed {rows} masked rows in {:.1} s through the masking sidecar: peak RSS {:.1} MiB before, {:.1} MiB after",
            elapsed.as_secs_f64(),
            before as f64 / 1024.0,
            after as f64 / 1024.0
        );
    }
    Ok(())
}
