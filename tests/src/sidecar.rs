//! Launching the real `palisade-sidecar` binary as a child process.
//!
//! End-to-end tests go through the binary, not the library, so that they
//! cover what ships: argument parsing, file loading, signal handling and the
//! admin endpoint included.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// How long the sidecar gets to start accepting connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// What to start a sidecar with. `Default` leaves `port` at 0, which
/// [`Sidecar::start`] rejects: the harness cannot learn the port from the
/// YAML, so the test has to say which one it wrote there.
#[derive(Debug, Default, Clone)]
pub struct SidecarOptions<'a> {
    /// Written to `<tmp>/policies/policy.yaml`.
    pub policy_yaml: String,
    /// `(secret name, key, value)`, written to `<tmp>/secrets/<name>/<key>`:
    /// the layout of a Kubernetes secret volume, which is what the sidecar
    /// reads in production.
    pub secrets: Vec<(&'a str, &'a str, Vec<u8>)>,
    /// Appended after the harness's own arguments. The sidecar's parser
    /// rejects an option given twice, so the harness's `--log-level debug`
    /// is left out when these set `--log-level` themselves.
    pub extra_args: Vec<String>,
    /// The listen port the YAML uses; [`Sidecar::start`] waits until it
    /// accepts TCP connections.
    pub port: u16,
    /// Environment variables for the sidecar process (`KUBECONFIG`, …).
    pub env: Vec<(String, String)>,
}

/// A running sidecar with its own policy and secrets directories.
pub struct Sidecar {
    /// The `listen.port` from the policy.
    pub port: u16,
    pub admin_port: u16,
    dir: tempfile::TempDir,
    log: PathBuf,
    child: Child,
}

impl Sidecar {
    /// Starts `<binary> run --policy-dir <tmp>/policies --secrets-dir
    /// <tmp>/secrets --admin-address 127.0.0.1:<admin_port> --log-level debug
    /// <extra_args...>` (without `--log-level debug` when `extra_args` has a
    /// `--log-level` of its own) with stdout and stderr appended to one log file, and
    /// returns once the listen port accepts connections. An early exit or a
    /// timeout is an error that includes the log.
    ///
    /// Readiness is probed by connecting, so the sidecar will log one
    /// connection that closed before sending anything.
    pub fn start(opts: SidecarOptions) -> Result<Sidecar> {
        if opts.port == 0 {
            bail!("SidecarOptions::port must be the listen port that policy_yaml uses");
        }
        let binary = sidecar_binary();
        let dir = tempfile::Builder::new()
            .prefix("palisade-sidecar-")
            .tempdir()
            .context("create temporary directory for the sidecar")?;
        let policies = dir.path().join("policies");
        let secrets = dir.path().join("secrets");
        fs::create_dir(&policies)?;
        fs::create_dir(&secrets)?;
        fs::write(policies.join("policy.yaml"), &opts.policy_yaml).context("write policy.yaml")?;
        for (name, key, value) in &opts.secrets {
            let secret_dir = secrets.join(name);
            fs::create_dir_all(&secret_dir)?;
            fs::write(secret_dir.join(key), value)
                .with_context(|| format!("write secret {name}/{key}"))?;
        }

        let admin_port = crate::free_port();
        let log = dir.path().join("sidecar.log");
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .context("open sidecar.log")?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(&binary);
        cmd.arg("run")
            .arg("--policy-dir")
            .arg(&policies)
            .arg("--secrets-dir")
            .arg(&secrets)
            .arg("--admin-address")
            .arg(format!("127.0.0.1:{admin_port}"));
        if !sets_log_level(&opts.extra_args) {
            cmd.args(["--log-level", "debug"]);
        }
        let child = cmd
            .args(&opts.extra_args)
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("spawn {}", binary.display()))?;

        // From here on an error drops `sidecar`, which kills the child.
        let mut sidecar = Sidecar {
            port: opts.port,
            admin_port,
            dir,
            log,
            child,
        };
        sidecar.wait_listening()?;
        Ok(sidecar)
    }

    fn wait_listening(&mut self) -> Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "sidecar exited ({status}) before listening on {addr}; log:\n{}",
                    self.logs()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "sidecar did not listen on {addr} within {} s; log:\n{}",
                    START_TIMEOUT.as_secs(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn policy_dir(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    pub fn secrets_dir(&self) -> PathBuf {
        self.dir.path().join("secrets")
    }

    /// Replace `policy.yaml` atomically (write aside, then rename), so that
    /// a reload triggered mid-write never sees a truncated file and makes a
    /// reload test flaky.
    pub fn replace_policy(&self, yaml: &str) -> Result<()> {
        let tmp = self.dir.path().join(".policy.yaml.tmp");
        fs::write(&tmp, yaml)?;
        fs::rename(&tmp, self.policy_dir().join("policy.yaml"))?;
        Ok(())
    }

    /// Full stdout+stderr so far (both go to one file, so their relative
    /// order is preserved).
    pub fn logs(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Through the `kill` command, because sending a signal from Rust
    /// without a dependency takes unsafe code.
    pub fn send_sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill -TERM {} failed: {status}",
            self.pid()
        );
    }

    /// `None` if the process is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait on the sidecar") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A libpq connection string for connecting through the sidecar.
    pub fn conn_str(&self, user: &str, password: Option<&str>, dbname: &str) -> String {
        crate::conn_str("127.0.0.1", self.port, user, password, dbname)
    }

    /// A bare HTTP/1.1 GET to 127.0.0.1:admin_port with `Connection: close`,
    /// returning `(status, body)`. Hand-rolled over `TcpStream` to keep an
    /// HTTP client stack out of the harness; it handles both
    /// `Content-Length` and chunked bodies.
    pub fn admin_get(&self, path: &str) -> Result<(u16, String)> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.admin_port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connect to admin endpoint {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .with_context(|| format!("read response to GET {path}"))?;
        parse_http_response(&response).with_context(|| {
            format!(
                "bad response to GET {path}: {:?}",
                String::from_utf8_lossy(&response)
            )
        })
    }
}

impl Drop for Sidecar {
    /// Kills the child; when the test is failing, also prints the sidecar's
    /// log, which is usually where the explanation is (libtest shows it with
    /// the failure and hides it otherwise).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- sidecar log ({}) ---\n{}",
                self.log.display(),
                self.logs()
            );
        }
    }
}

/// Whether `args` has the sidecar's `--log-level` option, in either the
/// `--log-level LEVEL` or the `--log-level=LEVEL` form.
fn sets_log_level(args: &[String]) -> bool {
    args.iter()
        .any(|a| a == "--log-level" || a.starts_with("--log-level="))
}

fn parse_http_response(response: &[u8]) -> Result<(u16, String)> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no end of headers"))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let raw_body = &response[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("no status line"))?;
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
        })
    });
    let body = if chunked {
        dechunk(raw_body)?
    } else {
        raw_body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("unterminated chunk size"))?;
        let size_line = std::str::from_utf8(&data[..eol])?;
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("bad chunk size {size_line:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        if data.len() < size {
            bail!("truncated chunk");
        }
        body.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

/// The sidecar binary, built on first use.
///
/// The binary belongs to another package of the workspace, so Cargo does
/// not provide `CARGO_BIN_EXE_palisade-sidecar` here and does not build it
/// for our tests. We run `cargo build` ourselves, once per test process,
/// with the profile this crate was built with, so that `cargo test` always
/// tests the sidecar's current source. Running Cargo from inside `cargo
/// test` is safe: Cargo releases the build-directory lock before it runs
/// test binaries.
///
/// `PALISADE_SIDECAR_BIN` skips the build and uses the given binary, for
/// testing a binary built elsewhere.
pub fn sidecar_binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("PALISADE_SIDECAR_BIN") {
            return Ok(PathBuf::from(path));
        }
        build_workspace_binary("palisade-sidecar", "palisade-sidecar").map_err(|e| format!("{e:#}"))
    });
    match result {
        Ok(path) => path.clone(),
        Err(e) => panic!("could not build palisade-sidecar: {e}"),
    }
}

/// The operator binary, built on first use like [`sidecar_binary`]
/// (`PALISADE_OPERATOR_BIN` to use one built elsewhere).
pub fn operator_binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("PALISADE_OPERATOR_BIN") {
            return Ok(PathBuf::from(path));
        }
        build_workspace_binary("palisade-operator", "palisade-operator")
            .map_err(|e| format!("{e:#}"))
    });
    match result {
        Ok(path) => path.clone(),
        Err(e) => panic!("could not build palisade-operator: {e}"),
    }
}

/// The kubectl plugin, `kubectl-palisade`, built on first use like [`sidecar_binary`]
/// (`PALISADE_PLUGIN_BIN` to use one built elsewhere).
pub fn plugin_binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("PALISADE_PLUGIN_BIN") {
            return Ok(PathBuf::from(path));
        }
        build_workspace_binary("palisade-operator", "kubectl-palisade")
            .map_err(|e| format!("{e:#}"))
    });
    match result {
        Ok(path) => path.clone(),
        Err(e) => panic!("could not build kubectl-palisade: {e}"),
    }
}

/// `cargo build -p <package> --bin <bin>` with this crate's profile; the binary's path.
fn build_workspace_binary(package: &str, bin: &str) -> Result<PathBuf> {
    let workspace = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "-p", package, "--bin", bin])
        // Diagnostics stay human-readable on stderr; stdout names the
        // artifact, which is exact even with `--target` or a target dir set
        // in a Cargo config file.
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null());
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let out = cmd.output().context("run cargo build")?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let reported = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact")
        .filter(|msg| msg["target"]["name"] == bin)
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from));
    let binary = match reported {
        Some(path) => path,
        None => target_profile_dir()?.join(bin),
    };
    if !binary.is_file() {
        bail!(
            "cargo build succeeded but {} does not exist",
            binary.display()
        );
    }
    Ok(binary)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// `<target dir>/<profile>`, from `CARGO_TARGET_DIR` or else from where
/// this test executable lives (`.../target/debug/deps/x`).
fn target_profile_dir() -> Result<PathBuf> {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(workspace_root().join(dir).join(profile));
    }
    let exe = std::env::current_exe().context("current_exe")?;
    let mut dir = exe.parent().map(Path::to_path_buf);
    if dir.as_ref().is_some_and(|d| d.ends_with("deps")) {
        dir = dir.and_then(|d| d.parent().map(Path::to_path_buf));
    }
    dir.ok_or_else(|| anyhow!("cannot find the target directory from {}", exe.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_response() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
        assert_eq!(parse_http_response(raw).unwrap(), (200, "ok".to_owned()));
    }

    #[test]
    fn detects_log_level_override() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(sets_log_level(&args(&[
            "--workers",
            "1",
            "--log-level",
            "warn"
        ])));
        assert!(sets_log_level(&args(&["--log-level=warn"])));
        assert!(!sets_log_level(&args(&["--log-format", "json"])));
    }

    #[test]
    fn parses_chunked_response() {
        let raw = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n\
                    4\r\nnot \r\n5;x=y\r\nready\r\n0\r\n\r\n";
        assert_eq!(
            parse_http_response(raw).unwrap(),
            (503, "not ready".to_owned())
        );
    }
}
