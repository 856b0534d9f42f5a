//! Throwaway PostgreSQL clusters for end-to-end tests.
//!
//! Each cluster lives in its own temporary directory, listens on 127.0.0.1
//! only, and is tuned for speed over durability (fsync off and friends):
//! nothing in it outlives the test process.
//!
//! PostgreSQL refuses to run as root, and the development machines and CI
//! run as root, so when the effective uid is 0 every server-side command
//! (initdb, pg_ctl) runs as the `postgres` system user (or `nobody`) through
//! `runuser`, and the temporary directory is handed to that user. Client
//! programs (psql, pg_isready) run as whoever we are: they connect over TCP
//! and don't care.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::certs::TestCa;
use crate::free_port;

/// The bootstrap superuser, trusted from 127.0.0.1; the harness uses it for
/// all administration so that tests never depend on a password for setup.
pub const SUPERUSER: &str = "palisade";
/// Authenticates with `trust`: exercises the path where the server asks for
/// no password at all.
pub const TRUST_USER: &str = "trust_user";
/// Authenticates with the cleartext `password` method.
pub const PW_USER: &str = "pw_user";
pub const PW_PASSWORD: &str = "pw-secret";
/// Authenticates with `md5`; its password is stored as an MD5 hash, since the
/// server falls back to SCRAM for an `md5` hba line when the stored secret is
/// a SCRAM verifier, and the MD5 exchange would then go untested.
pub const MD5_USER: &str = "md5_user";
pub const MD5_PASSWORD: &str = "md5-secret";
/// Authenticates with `scram-sha-256`.
pub const SCRAM_USER: &str = "scram_user";
pub const SCRAM_PASSWORD: &str = "scram-secret";

/// How long a server gets to come up before we give up and show its log.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variables that libpq and pg_ctl read; a developer's shell may
/// set them, and they must not redirect the harness to another server.
const PG_ENV: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGDATABASE",
    "PGDATA",
    "PGOPTIONS",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGREQUIRESSL",
    "PGCONNECT_TIMEOUT",
    "PGTARGETSESSIONATTRS",
];

/// A running PostgreSQL server in a temporary directory.
pub struct PgCluster {
    pub port: u16,
    pub bin_dir: PathBuf,
    /// Issued the server certificate when the cluster was started with TLS;
    /// created for every cluster so tests can always mint certificates that
    /// a client of this cluster is expected to trust.
    pub ca: TestCa,
    dir: tempfile::TempDir,
    data: PathBuf,
    log: PathBuf,
    /// `Some(user)` when we are root and must `runuser` server commands.
    run_as: Option<String>,
    /// Killed on drop so that dropped clusters don't leave one idle shell
    /// per cluster behind until the test process exits.
    watchdog: Mutex<Option<Child>>,
    /// Serialises `create_database`: tests of one binary run in parallel and
    /// often ask for the same database name at the same moment.
    db_lock: Mutex<()>,
}

impl PgCluster {
    /// One cluster per test process, started on first use, shared by all
    /// tests of that binary: starting a cluster costs about a second, and
    /// most tests only need a database of their own, not a server.
    ///
    /// Statics are never dropped, so cleanup is left to the watchdog process
    /// started with the cluster. A startup failure is remembered and
    /// reported by every later caller instead of being retried by each test.
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<Result<PgCluster, String>> = OnceLock::new();
        match SHARED.get_or_init(|| PgCluster::start(false).map_err(|e| format!("{e:#}"))) {
            Ok(cluster) => cluster,
            Err(e) => panic!("shared PostgreSQL cluster failed to start: {e}"),
        }
    }

    /// Like [`PgCluster::shared`], but with `ssl=on`, for tests of TLS to
    /// the upstream that don't need a server of their own.
    pub fn shared_tls() -> &'static PgCluster {
        static SHARED_TLS: OnceLock<Result<PgCluster, String>> = OnceLock::new();
        match SHARED_TLS.get_or_init(|| PgCluster::start(true).map_err(|e| format!("{e:#}"))) {
            Ok(cluster) => cluster,
            Err(e) => panic!("shared TLS PostgreSQL cluster failed to start: {e}"),
        }
    }

    /// A fresh cluster; `tls` turns ssl=on with a server cert issued by
    /// `self.ca` for names ["localhost", "127.0.0.1"], so clients can use
    /// `sslmode=verify-full` whichever of the two they connect to.
    ///
    /// Use this rather than [`PgCluster::shared`] when a test stops, breaks
    /// or reconfigures the server.
    pub fn start(tls: bool) -> Result<PgCluster> {
        let bin_dir = find_bin_dir()?;
        let run_as = server_os_user()?;
        let dir = tempfile::Builder::new()
            .prefix("palisade-pg-")
            .tempdir()
            .context("create temporary directory for PostgreSQL")?;
        if let Some(user) = &run_as {
            chown(dir.path(), user)?;
        }
        let ca = TestCa::new("Palisade test CA");
        fs::write(dir.path().join("ca.crt"), &ca.cert_pem).context("write ca.crt")?;
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");
        let mut cluster = PgCluster {
            port: 0,
            bin_dir,
            ca,
            data,
            log,
            run_as,
            watchdog: Mutex::new(None),
            db_lock: Mutex::new(()),
            dir,
        };
        // From here on, an early return drops `cluster`, which stops
        // whatever was started and removes the directory.
        cluster.spawn_watchdog()?;
        cluster.initdb()?;
        cluster.write_config(tls)?;
        cluster.listen_on_free_port()?;
        cluster.create_roles()?;
        Ok(cluster)
    }

    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// libpq-style connection string "host=127.0.0.1 port=.. user=..
    /// password=.. dbname=..": the format both tokio-postgres and psql
    /// accept, so one string serves Rust tests and command-line tools.
    pub fn conn_str(&self, user: &str, password: Option<&str>, dbname: &str) -> String {
        crate::conn_str(self.host(), self.port, user, password, dbname)
    }

    /// Run SQL as the superuser via psql (-v ON_ERROR_STOP=1), return
    /// stdout; error with stderr on failure.
    ///
    /// Output is unaligned and tuples-only (`-A -t`, columns separated by
    /// `|`, one row per line) and command tags are suppressed (`-q`), so a
    /// test can compare it to a literal. The SQL is fed on stdin rather than
    /// with `-c` so that several statements run one by one, which
    /// statements like CREATE DATABASE require.
    pub fn psql(&self, dbname: &str, sql: &str) -> Result<String> {
        self.psql_with(&self.conn_str(SUPERUSER, None, dbname), sql)
    }

    /// [`PgCluster::psql`] with any connection string: for connecting as
    /// another user, with TLS options, or through the sidecar.
    pub fn psql_with(&self, conninfo: &str, sql: &str) -> Result<String> {
        let mut child = self
            .client_command("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                "-",
                "-d",
            ])
            .arg(conninfo)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn psql")?;
        // Written from another thread: psql starts printing results before
        // it has read all its input, and with both pipes full each side
        // would wait for the other.
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = sql.to_owned();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output().context("wait for psql")?;
        // A write error only means psql quit early; its stderr says why.
        let _ = writer.join();
        if !out.status.success() {
            bail!(
                "psql failed ({}) running {sql:?}:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Create a database owned by the superuser unless it exists; returns
    /// its name. Idempotent so that tests can name the database they need
    /// without coordinating with each other. Everyone may create tables in
    /// its public schema (PostgreSQL 15 no longer allows that by default),
    /// so the test roles can work in it.
    pub fn create_database(&self, name: &str) -> Result<String> {
        let _guard = self.db_lock.lock().unwrap_or_else(|p| p.into_inner());
        let exists = self.psql(
            "postgres",
            &format!(
                "SELECT 1 FROM pg_database WHERE datname = {}",
                sql_literal(name)
            ),
        )?;
        if exists.trim() != "1" {
            self.psql(
                "postgres",
                &format!(
                    "CREATE DATABASE {} OWNER {}",
                    sql_ident(name),
                    sql_ident(SUPERUSER)
                ),
            )?;
        }
        self.psql(name, "GRANT ALL ON SCHEMA public TO PUBLIC")?;
        Ok(name.to_owned())
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The CA certificate as a file, for libpq's `sslrootcert=` and for
    /// sidecar policies that point at a CA bundle on disk.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// Everything the server has logged so far; worth printing when a test
    /// fails on an unexpected server-side error.
    pub fn server_log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// `pg_ctl stop -m fast`, for "upstream down" tests on non-shared
    /// clusters. Panics if the server is still running afterwards, since a
    /// test relying on it being down would otherwise pass or fail for the
    /// wrong reason. Stopping a stopped server is fine.
    pub fn stop(&self) {
        if let Err(e) = self.pg_ctl_stop("fast")
            && self.is_running()
        {
            panic!("pg_ctl stop failed and the server is still running: {e:#}");
        }
    }

    /// Start the server again after [`PgCluster::stop`] (or stop it first
    /// if it is running), on the same port and with the same data, for
    /// tests of reconnecting once the upstream is back.
    pub fn restart(&self) -> Result<()> {
        if self.is_running() {
            self.pg_ctl_stop("fast")?;
        }
        self.start_server()?;
        self.wait_ready()
    }

    fn is_running(&self) -> bool {
        self.server_command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("status")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<()> {
        run(self
            .server_command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-w", "-m", mode]))
        .map(drop)
    }

    /// Statics never run destructors, so the shared cluster would outlive
    /// the test process without this: a detached shell polls our pid and,
    /// once we are gone, stops the server and deletes the directory. It runs
    /// as us (root included: it must be able to remove the directory) and
    /// in its own process group, so that a Ctrl-C aimed at `cargo test`
    /// doesn't kill it before it has cleaned up.
    fn spawn_watchdog(&self) -> Result<()> {
        let pg_ctl = self.bin_dir.join("pg_ctl");
        let mut stop = String::new();
        if let Some(user) = &self.run_as {
            stop.push_str(&format!("runuser -u {} -- ", sh_quote(OsStr::new(user))));
        }
        stop.push_str(&format!(
            "{} -D {} stop -m immediate",
            sh_quote(pg_ctl.as_os_str()),
            sh_quote(self.data.as_os_str())
        ));
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = sh_quote(self.dir.path().as_os_str()),
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("spawn PostgreSQL watchdog")?;
        *self.watchdog.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(())
    }

    fn initdb(&self) -> Result<()> {
        run(self
            .server_command("initdb")
            .args(["-A", "trust", "-U", SUPERUSER, "--no-sync", "-E", "UTF8"])
            .args(["--locale=C", "--no-instructions", "-D"])
            .arg(&self.data))
        .context("initdb")
        .map(drop)
    }

    fn write_config(&self, tls: bool) -> Result<()> {
        let mut conf = format!(
            "\n# Palisade test harness\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = {}\n\
             max_connections = 200\n\
             shared_buffers = 128MB\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             logging_collector = off\n",
            conf_literal(&self.dir.path().to_string_lossy()),
        );
        if tls {
            let (cert, key) = self.ca.issue(&["localhost", "127.0.0.1"]);
            self.write_server_file("server.crt", cert.as_bytes(), 0o644)?;
            self.write_server_file("server.key", key.as_bytes(), 0o600)?;
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        append(&self.data.join("postgresql.conf"), &conf)?;

        // First match wins: the superuser and each test role get their own
        // method, and anything else (roles that tests create) needs SCRAM.
        let hba = format!(
            "local all all trust\n\
             host all {SUPERUSER} 127.0.0.1/32 trust\n\
             host all {TRUST_USER} 127.0.0.1/32 trust\n\
             host all {PW_USER} 127.0.0.1/32 password\n\
             host all {MD5_USER} 127.0.0.1/32 md5\n\
             host all {SCRAM_USER} 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 scram-sha-256\n"
        );
        // Overwriting in place keeps the file's owner (the server's user).
        fs::write(self.data.join("pg_hba.conf"), hba).context("write pg_hba.conf")
    }

    /// A file in the data directory that the server must be able to read;
    /// PostgreSQL also refuses a key readable by group or others.
    fn write_server_file(&self, name: &str, contents: &[u8], mode: u32) -> Result<()> {
        let path = self.data.join(name);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .with_context(|| format!("create {}", path.display()))?;
        f.write_all(contents)?;
        if let Some(user) = &self.run_as {
            chown(&path, user)?;
        }
        Ok(())
    }

    /// The port is chosen by binding and releasing it, so another process
    /// can grab it before the server binds; on that race, pick another.
    fn listen_on_free_port(&mut self) -> Result<()> {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            self.port = free_port();
            // Later settings win, so a retry just appends a new port.
            append(
                &self.data.join("postgresql.conf"),
                &format!("port = {}\n", self.port),
            )?;
            match self.start_server() {
                Ok(()) => return self.wait_ready(),
                Err(e) => {
                    let log = self.server_log();
                    let port_taken = log.contains("Address already in use")
                        || log.contains("could not create any TCP/IP sockets");
                    if !port_taken || attempt == ATTEMPTS {
                        return Err(e);
                    }
                    // The failed attempt's messages would otherwise be
                    // mistaken for this attempt's on the next check.
                    let _ = fs::write(&self.log, "");
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// `pg_ctl start -w` notices a server that dies during startup (bad
    /// config, port taken) right away instead of after the full timeout.
    /// The log goes to a file (`-l`): without it the server would inherit
    /// pg_ctl's stdout and keep our pipe open forever.
    fn start_server(&self) -> Result<()> {
        let timeout = READY_TIMEOUT.as_secs().to_string();
        let result = run(self
            .server_command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", &timeout, "start"])
            .stdin(Stdio::null()));
        result
            .map(drop)
            .map_err(|e| self.with_log_tail(e, "pg_ctl start failed"))
    }

    /// pg_ctl's idea of "ready" comes from the pid file; this confirms that
    /// the server accepts connections on the TCP port the tests will use.
    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let status = self
                .client_command("pg_isready")
                .args(["-h", self.host(), "-p", &self.port.to_string()])
                .args(["-U", SUPERUSER, "-d", "postgres", "-t", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .context("run pg_isready")?;
            if status.success() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.with_log_tail(
                    anyhow!("pg_isready: last status {status}"),
                    "PostgreSQL did not accept connections within 30 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn create_roles(&self) -> Result<()> {
        let roles = [TRUST_USER, PW_USER, MD5_USER, SCRAM_USER].join(", ");
        self.psql(
            "postgres",
            &format!(
                "CREATE ROLE {TRUST_USER} LOGIN;\n\
                 CREATE ROLE {PW_USER} LOGIN PASSWORD {pw};\n\
                 SET password_encryption = 'md5';\n\
                 CREATE ROLE {MD5_USER} LOGIN PASSWORD {md5};\n\
                 RESET password_encryption;\n\
                 CREATE ROLE {SCRAM_USER} LOGIN PASSWORD {scram};\n\
                 GRANT CREATE ON DATABASE postgres TO {roles};\n\
                 GRANT CREATE ON SCHEMA public TO {roles};\n",
                pw = sql_literal(PW_PASSWORD),
                md5 = sql_literal(MD5_PASSWORD),
                scram = sql_literal(SCRAM_PASSWORD),
            ),
        )
        .context("create test roles")
        .map(drop)
    }

    fn with_log_tail(&self, err: anyhow::Error, what: &str) -> anyhow::Error {
        let log = self.server_log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        anyhow!(
            "{what}: {err:#}\n--- tail of {} ---\n{tail}",
            self.log.display()
        )
    }

    /// initdb and pg_ctl: run as the server's OS user when we are root.
    fn server_command(&self, program: &str) -> Command {
        let path = self.bin_dir.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        // The server's user may not be able to enter our working directory.
        cmd.current_dir(self.dir.path());
        scrub_env(&mut cmd);
        cmd
    }

    fn client_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        scrub_env(&mut cmd);
        cmd
    }
}

impl Drop for PgCluster {
    /// For clusters made with [`PgCluster::start`]: stop the server (the
    /// data is about to be deleted, so no need for a clean shutdown) and let
    /// the `TempDir` field remove the directory.
    fn drop(&mut self) {
        let _ = self.pg_ctl_stop("immediate");
        if let Some(mut child) = self
            .watchdog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn scrub_env(cmd: &mut Command) {
    for var in PG_ENV {
        cmd.env_remove(var);
    }
}

/// Run to completion; a failure carries the command's output, since that is
/// usually the only clue.
fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("spawn {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

fn append(path: &Path, text: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("write {}", path.display()))
}

fn chown(path: &Path, user: &str) -> Result<()> {
    // `user:` also sets the group to the user's login group.
    run(Command::new("chown").arg(format!("{user}:")).arg(path))
        .with_context(|| format!("chown {} to {user}", path.display()))
        .map(drop)
}

fn effective_uid_is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    })
}

/// `None` when we can run the server ourselves; otherwise the unprivileged
/// user to run it as.
fn server_os_user() -> Result<Option<String>> {
    if !effective_uid_is_root() {
        return Ok(None);
    }
    for user in ["postgres", "nobody"] {
        let known = Command::new("id")
            .args(["-u", user])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if known {
            return Ok(Some(user.to_owned()));
        }
    }
    bail!("running as root, but neither the `postgres` nor the `nobody` user exists")
}

/// Where initdb, pg_ctl and psql live. `PALISADE_PG_BINDIR` overrides the
/// search for machines with several installations; otherwise `pg_config`,
/// then Debian's versioned directories (newest first), then `PATH`. Debian
/// keeps the server binaries out of `PATH`, hence the middle step.
pub fn find_bin_dir() -> Result<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("PALISADE_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        if has_server(&dir) {
            return Ok(dir);
        }
        bail!("PALISADE_PG_BINDIR={} has no initdb/pg_ctl", dir.display());
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Ok(dir);
        }
    }
    let mut versioned: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versioned.sort();
    if let Some((_, dir)) = versioned.pop() {
        return Ok(dir);
    }
    if let Some(path) = std::env::var_os("PATH")
        && let Some(dir) = std::env::split_paths(&path).find(|d| has_server(d))
    {
        return Ok(dir);
    }
    bail!("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql")
}

fn sql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn sql_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn conf_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn sh_quote(value: &OsStr) -> String {
    format!("'{}'", value.to_string_lossy().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_quoting() {
        assert_eq!(sql_literal("o'k"), "'o''k'");
        assert_eq!(sql_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
