//! A real Kubernetes control plane on loopback, for the tests that need an API server:
//! etcd, kube-apiserver (client-certificate, static-token and OpenID Connect authentication,
//! RBAC, admission webhooks) and kube-controller-manager (garbage collector, service accounts
//! and their tokens, namespaces, Deployments and ReplicaSets), plus Dex, the OpenID Connect
//! issuer users log in through. No kubelet and no container engine: pods are admitted and stored,
//! and [`kubelet`] does by hand the one part of a kubelet the tests need.
//!
//! The programs are built from source by `tests/controlplane/build.sh` into a cache outside
//! the repository; [`binaries`] finds them. Everything runs as child processes in one
//! temporary directory, stopped by a watchdog when the test process exits (statics are never
//! dropped, so [`ControlPlane::shared`] relies on it, like [`crate::pg::PgCluster::shared`]).

pub mod kubelet;
pub mod operator;

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::certs::TestCa;
use crate::free_port;

/// The programs `tests/controlplane/build.sh` builds.
pub const PROGRAMS: [&str; 6] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kubectl",
    "etcd",
    "helm",
    "dex",
];

/// Set to `1` to let the control-plane tests pass without running when the binaries are not
/// built (a contributor without Go). CI never sets it, so there they must run.
pub const SKIP_ENV: &str = "PALISADE_CONTROLPLANE_ALLOW_SKIP";
/// Directory holding the built programs, instead of asking `build.sh --print-dir`.
pub const BIN_ENV: &str = "PALISADE_CONTROLPLANE_BIN";

/// How long the API server gets to become ready: etcd, then the API server's post-start
/// hooks (RBAC bootstrap roles, priority levels) take several seconds on two cores.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The namespace the operator runs "in" (its Lease, its ServiceAccount), as the chart installs it.
pub const OPERATOR_NAMESPACE: &str = "palisade-system";
pub const OPERATOR_SERVICE_ACCOUNT: &str = "palisade-operator";

/// The data steward, a user of Dex's password database: (email, password). The API server maps
/// the ID token's `email` claim to the user name `oidc:<email>`.
pub const STEWARD: (&str, &str) = ("steward@example.com", "steward-password");
/// Dex keeps bcrypt hashes only: this is `STEWARD.1` at cost 10 (any bcrypt tool makes one, e.g.
/// `htpasswd -nbBC 10 "" steward-password`; Dex refuses a cost below 10).
const STEWARD_BCRYPT: &str = "$2a$10$AhFoGvq8ourOiUVoubBySOrlm3XjYRNpEVEb5P..zQTF19VvXu65u";
/// The static token's user and group.
pub const CONTRACTOR_USER: &str = "contractor";
pub const CONTRACTOR_GROUP: &str = "contractors";
/// Dex's static client: the ID tokens' audience, which the API server requires.
const OIDC_CLIENT_ID: &str = "kubernetes";
/// How long Dex gets to serve its discovery document (it rotates its signing keys first).
const ISSUER_TIMEOUT: Duration = Duration::from_secs(30);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The bin directory of the built control plane, `Ok(None)` when it is not built and
/// [`SKIP_ENV`] allows skipping, and an error naming the build script otherwise.
pub fn binaries() -> Result<Option<PathBuf>> {
    let dir = match std::env::var_os(BIN_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let script = repo_root().join("tests/controlplane/build.sh");
            let out = Command::new("bash")
                .arg(&script)
                .arg("--print-dir")
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("run {} --print-dir", script.display()))?;
            if !out.status.success() {
                bail!(
                    "{} --print-dir failed: {}",
                    script.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    let missing: Vec<&str> = PROGRAMS
        .iter()
        .copied()
        .filter(|p| !dir.join(p).is_file())
        .collect();
    if missing.is_empty() {
        return Ok(Some(dir));
    }
    if std::env::var(SKIP_ENV).as_deref() == Ok("1") {
        return Ok(None);
    }
    bail!(
        "the control plane is not built: {} missing in {}. Build it with \
         tests/controlplane/build.sh (Go needed; about 25 min cold on 2 cores), or set {SKIP_ENV}=1 \
         to skip these tests",
        missing.join(", "),
        dir.display()
    )
}

/// An identity with a kubeconfig of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Who {
    /// Client certificate in `system:masters`.
    Admin,
    /// Logged in through Dex with a password grant (user `oidc:<email>`).
    Steward,
    /// A static bearer token (`--token-auth-file`), group `contractors`.
    Contractor,
    /// A TokenRequest token of `palisade-system/palisade-operator`.
    Operator,
}

/// A running control plane.
pub struct ControlPlane {
    pub bin: PathBuf,
    pub ca: TestCa,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    pub issuer: String,
    dir: tempfile::TempDir,
    children: Mutex<Vec<(String, Child)>>,
    watchdog: Mutex<Option<Child>>,
}

impl ControlPlane {
    /// One control plane per test process, started on first use. `None` when the binaries
    /// are absent and skipping is allowed (a message says so); panics on any other failure.
    pub fn shared() -> Option<&'static ControlPlane> {
        static SHARED: OnceLock<Result<Option<ControlPlane>, String>> = OnceLock::new();
        let result = SHARED.get_or_init(|| match binaries() {
            Ok(None) => Ok(None),
            Ok(Some(bin)) => ControlPlane::start(bin)
                .map(Some)
                .map_err(|e| format!("{e:#}")),
            Err(e) => Err(format!("{e:#}")),
        });
        match result {
            Ok(Some(cp)) => Some(cp),
            Ok(None) => {
                eprintln!(
                    "SKIPPED: control-plane binaries not built ({SKIP_ENV}=1); \
                     build them with tests/controlplane/build.sh"
                );
                None
            }
            Err(e) => panic!("the control plane failed to start: {e}"),
        }
    }

    /// Starts etcd, Dex, kube-apiserver and kube-controller-manager, waits until
    /// the API server is ready, and writes a kubeconfig per [`Who`].
    pub fn start(bin: PathBuf) -> Result<ControlPlane> {
        let dir = tempfile::Builder::new()
            .prefix("palisade-controlplane-")
            .tempdir()
            .context("create the control plane's directory")?;
        let ca = TestCa::new("Palisade control-plane CA");
        let api_port = free_port();
        let issuer_port = free_port();
        let cp = ControlPlane {
            bin,
            ca,
            server: format!("https://127.0.0.1:{api_port}"),
            issuer: format!("https://127.0.0.1:{issuer_port}"),
            dir,
            children: Mutex::new(Vec::new()),
            watchdog: Mutex::new(None),
        };
        cp.spawn_watchdog()?;
        let t0 = Instant::now();
        // Every TLS client here trusts this one CA: kubectl, the API server for Dex's keys, curl.
        cp.write("ca.crt", &cp.ca.cert_pem)?;
        let etcd = cp.start_etcd()?;
        cp.start_dex(issuer_port)?;
        cp.start_apiserver(api_port, &etcd)?;
        cp.wait_ready()?;
        cp.start_controller_manager()?;
        cp.bootstrap()?;
        eprintln!(
            "control plane ready in {:.1}s at {} (logs in {})",
            t0.elapsed().as_secs_f64(),
            cp.server,
            cp.dir.path().display()
        );
        Ok(cp)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: &str) -> Result<PathBuf> {
        let path = self.path(name);
        fs::write(&path, contents).with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }

    /// Starts `program` with stdout and stderr in `<dir>/<name>.log`, remembered so the
    /// watchdog and [`ControlPlane::stop`] can end it.
    pub fn spawn(&self, name: &str, mut cmd: Command) -> Result<()> {
        let log = self.path(&format!("{name}.log"));
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("open {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("spawn {name}: {cmd:?}"))?;
        let mut pids = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("pids"))?;
        writeln!(pids, "{}", child.id())?;
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.to_string(), child));
        Ok(())
    }

    /// The last lines of a component's log, for failure messages.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = fs::read_to_string(self.path(&format!("{name}.log"))).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops one component (SIGKILL) and waits for it.
    pub fn stop(&self, name: &str) {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        for (n, child) in children.iter_mut() {
            if n == name {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        children.retain(|(n, _)| n != name);
    }

    /// Whether a component started with [`ControlPlane::spawn`] still runs.
    pub fn running(&self, name: &str) -> bool {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        children
            .iter_mut()
            .any(|(n, c)| n == name && matches!(c.try_wait(), Ok(None)))
    }

    fn spawn_watchdog(&self) -> Result<()> {
        // Ends every component once the test process is gone, then removes the directory.
        let dir = self.dir.path().display().to_string();
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             [ -f '{dir}/pids' ] && kill -9 $(cat '{dir}/pids') 2>/dev/null; sleep 1; rm -rf '{dir}'",
            pid = std::process::id(),
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
            .context("spawn the control plane's watchdog")?;
        *self.watchdog.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(())
    }

    fn start_etcd(&self) -> Result<String> {
        // Plain HTTP on loopback, as envtest runs it: etcd's TLS is not what is under test.
        let client = free_port();
        let peer = free_port();
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new(self.bin.join("etcd"));
        cmd.arg("--data-dir")
            .arg(self.path("etcd"))
            .args(["--name", "default"])
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            // A throwaway store: no fsync, so two busy cores are not waiting on the disk.
            .arg("--unsafe-no-fsync")
            .args(["--log-level", "warn"]);
        self.spawn("etcd", cmd)?;
        Ok(url)
    }

    /// Dex on `https://127.0.0.1:<port>` (kube-apiserver takes only https issuers), its serving
    /// certificate from the control plane's CA. Memory storage: nothing outlives the process.
    /// Only the resource-owner password grant is enabled, against Dex's own password database
    /// (the `local` connector) holding the steward, for one static client.
    fn start_dex(&self, port: u16) -> Result<()> {
        let dir = self.path("dex");
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let (cert, key) = self.ca.issue(&["127.0.0.1", "localhost"]);
        self.write("dex/tls.crt", &cert)?;
        self.write("dex/tls.key", &key)?;
        // Dex reads YAML, of which JSON is a part.
        let config = serde_json::json!({
            "issuer": self.issuer,
            "storage": {"type": "memory"},
            "web": {
                "https": format!("127.0.0.1:{port}"),
                "tlsCert": dir.join("tls.crt"),
                "tlsKey": dir.join("tls.key"),
            },
            "logger": {"level": "info"},
            "oauth2": {
                "grantTypes": ["password"],
                "passwordConnector": "local",
                "skipApprovalScreen": true,
            },
            "enablePasswordDB": true,
            // This Dex's password database has no groups: the steward is known by email.
            "staticPasswords": [{
                "email": STEWARD.0,
                "hash": STEWARD_BCRYPT,
                "username": "Data Steward",
                "userID": "steward",
            }],
            "staticClients": [{
                "id": OIDC_CLIENT_ID,
                "secret": self.oidc_secret(),
                "name": "Kubernetes API server",
            }],
        });
        let config_path = self.write("dex/config.yaml", &config.to_string())?;
        let mut cmd = Command::new(self.bin.join("dex"));
        cmd.arg("serve").arg(&config_path);
        self.spawn("dex", cmd)?;
        self.wait_dex()
    }

    /// Waits until Dex serves its discovery document naming the expected issuer.
    fn wait_dex(&self) -> Result<()> {
        let deadline = Instant::now() + ISSUER_TIMEOUT;
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        loop {
            let out = Command::new("curl")
                .args(["-sS", "--fail", "--max-time", "5", "--cacert"])
                .arg(self.path("ca.crt"))
                .arg(&url)
                .stdin(Stdio::null())
                .output()
                .context("run curl (needed to reach Dex)")?;
            let discovery: Option<Value> = serde_json::from_slice(&out.stdout).ok();
            if out.status.success()
                && discovery.as_ref().and_then(|d| d["issuer"].as_str()) == Some(&self.issuer)
            {
                return Ok(());
            }
            if !self.running("dex") {
                bail!("dex exited; its log ends:\n{}", self.log_tail("dex", 40));
            }
            if Instant::now() > deadline {
                bail!(
                    "Dex served no discovery document at {url} in {}s ({}); its log ends:\n{}",
                    ISSUER_TIMEOUT.as_secs(),
                    String::from_utf8_lossy(&out.stderr).trim(),
                    self.log_tail("dex", 40)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn oidc_secret(&self) -> String {
        "client-secret-of-the-tests".into()
    }

    fn contractor_token(&self) -> &'static str {
        "contractor-static-token-0123456789"
    }

    fn start_apiserver(&self, port: u16, etcd: &str) -> Result<()> {
        let (cert, key) = self.ca.issue(&[
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
        ]);
        self.write("apiserver.crt", &cert)?;
        self.write("apiserver.key", &key)?;
        // The key that signs service-account tokens (kube-apiserver) and that the
        // token controller uses (kube-controller-manager).
        let sa = rcgen::KeyPair::generate().context("generate the service-account key")?;
        self.write("sa.key", &sa.serialize_pem())?;
        self.write("sa.pub", &sa.public_key_pem())?;
        self.write(
            "tokens.csv",
            &format!(
                "{},{CONTRACTOR_USER},contractor-uid,\"{CONTRACTOR_GROUP}\"\n",
                self.contractor_token()
            ),
        )?;
        // Structured authentication configuration (GA since 1.34) rather than --oidc-* flags.
        // Dex's `sub` is an opaque encoding of user and connector; the user name is the email
        // (the API server also requires `email_verified`, which Dex sets for its password
        // database). No groups claim: Dex's static passwords carry none.
        let mut ca_indented = String::new();
        for line in self.ca.cert_pem.lines() {
            let _ = writeln!(ca_indented, "      {line}");
        }
        self.write(
            "authentication.yaml",
            &format!(
                "apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: {issuer}
    audiences: [{OIDC_CLIENT_ID}]
    certificateAuthority: |
{ca_indented}  claimMappings:
    username: {{claim: email, prefix: 'oidc:'}}
",
                issuer = self.issuer
            ),
        )?;
        let p = |name: &str| self.path(name).display().to_string();
        let mut cmd = Command::new(self.bin.join("kube-apiserver"));
        cmd.args([
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
        ])
        .arg(format!("--secure-port={port}"))
        .arg(format!("--etcd-servers={etcd}"))
        .arg(format!("--tls-cert-file={}", p("apiserver.crt")))
        .arg(format!("--tls-private-key-file={}", p("apiserver.key")))
        .arg(format!("--client-ca-file={}", p("ca.crt")))
        .arg(format!("--token-auth-file={}", p("tokens.csv")))
        .arg(format!(
            "--authentication-config={}",
            p("authentication.yaml")
        ))
        .arg("--authorization-mode=RBAC")
        .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
        .arg(format!("--service-account-key-file={}", p("sa.pub")))
        .arg(format!(
            "--service-account-signing-key-file={}",
            p("sa.key")
        ))
        // Only allocated, never routed: there is no kube-proxy.
        .arg("--service-cluster-ip-range=10.96.0.0/16")
        .arg("--allow-privileged=true")
        // The `kubernetes` Service's endpoints would be 127.0.0.1, which the reconciler
        // refuses; nothing in the tests reaches the API server through that Service.
        .arg("--endpoint-reconciler-type=none")
        .arg(format!("--cert-dir={}", p("apiserver-certs")))
        .arg("--v=1");
        self.spawn("kube-apiserver", cmd)
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        self.write_kubeconfig_admin()?;
        loop {
            let out = self.kubectl(Who::Admin, &["get", "--raw", "/readyz"]);
            if out.status.success() {
                return Ok(());
            }
            for name in ["etcd", "kube-apiserver"] {
                if !self.running(name) {
                    bail!("{name} exited; its log ends:\n{}", self.log_tail(name, 40));
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "kube-apiserver not ready after {}s: {}\nits log ends:\n{}",
                    READY_TIMEOUT.as_secs(),
                    String::from_utf8_lossy(&out.stderr),
                    self.log_tail("kube-apiserver", 40)
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn start_controller_manager(&self) -> Result<()> {
        // kubeadm's setup: the controller manager's own identity, and one service account per
        // controller (--use-service-account-credentials) with the bootstrap system:controller:* roles.
        let (cert, key) = self.ca.issue_client("system:kube-controller-manager", None);
        let kubeconfig = self.kubeconfig_with_cert("kube-controller-manager", &cert, &key)?;
        let p = |name: &str| self.path(name).display().to_string();
        let mut cmd = Command::new(self.bin.join("kube-controller-manager"));
        cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(
                "--controllers=garbage-collector-controller,serviceaccount-controller,\
                 serviceaccount-token-controller,namespace-controller,deployment-controller,\
                 replicaset-controller,root-ca-certificate-publisher-controller",
            )
            .arg(format!(
                "--service-account-private-key-file={}",
                p("sa.key")
            ))
            .arg(format!("--root-ca-file={}", p("ca.crt")))
            .arg("--use-service-account-credentials=true")
            .arg("--leader-elect=false")
            // No metrics/health endpoint: nothing scrapes it, and it would need its own certs.
            .arg("--secure-port=0")
            .arg("--v=1");
        self.spawn("kube-controller-manager", cmd)
    }

    /// What a cluster has before anyone installs Palisade: the default service account of
    /// `default` (proof that the controller manager works), and what the chart would create for
    /// the operator to run out of cluster with exactly the chart's RBAC.
    fn bootstrap(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self
            .kubectl(
                Who::Admin,
                &["-n", "default", "get", "serviceaccount", "default"],
            )
            .status
            .success()
        {
            if !self.running("kube-controller-manager") {
                bail!(
                    "kube-controller-manager exited; its log ends:\n{}",
                    self.log_tail("kube-controller-manager", 40)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the controller manager made no default ServiceAccount in 60s; its log ends:\n{}",
                    self.log_tail("kube-controller-manager", 40)
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        self.write_kubeconfig_contractor()?;
        Ok(())
    }

    /// The kubeconfig file of `who` (the steward's and the operator's are made on first use,
    /// since they need the issuer or a service account).
    pub fn kubeconfig(&self, who: Who) -> PathBuf {
        self.path(&format!("{}.kubeconfig", who_name(who)))
    }

    fn write_kubeconfig_admin(&self) -> Result<()> {
        let (cert, key) = self
            .ca
            .issue_client("palisade-admin", Some("system:masters"));
        self.kubeconfig_with_cert("admin", &cert, &key).map(drop)
    }

    fn write_kubeconfig_contractor(&self) -> Result<()> {
        let token = self.contractor_token().to_string();
        self.kubeconfig_with_token("contractor", &token).map(drop)
    }

    fn kubeconfig_with_cert(&self, name: &str, cert: &str, key: &str) -> Result<PathBuf> {
        let cert_path = self.write(&format!("{name}.crt"), cert)?;
        let key_path = self.write(&format!("{name}.key"), key)?;
        self.kubeconfig_file(
            name,
            &format!(
                "client-certificate: {}\n    client-key: {}",
                cert_path.display(),
                key_path.display()
            ),
        )
    }

    fn kubeconfig_with_token(&self, name: &str, token: &str) -> Result<PathBuf> {
        self.kubeconfig_file(name, &format!("token: {token}"))
    }

    fn kubeconfig_file(&self, name: &str, user: &str) -> Result<PathBuf> {
        let text = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: palisade-test
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {name}
  user:
    {user}
contexts:
- name: {name}
  context: {{cluster: palisade-test, user: {name}}}
current-context: {name}
",
            server = self.server,
            ca = self.path("ca.crt").display(),
        );
        self.write(&format!("{name}.kubeconfig"), &text)
    }

    /// Logs `email` in at Dex with the resource-owner password grant (RFC 6749 section 4.3):
    /// one POST to the token endpoint with the client's credentials, the user's email and
    /// password, and the scopes. Returns the ID token, or Dex's refusal.
    pub fn oidc_login(&self, email: &str, password: &str) -> Result<String> {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(self.path("ca.crt"))
            .arg("--user")
            .arg(format!("{OIDC_CLIENT_ID}:{}", self.oidc_secret()))
            .args(["--data-urlencode", "grant_type=password"])
            .arg("--data-urlencode")
            .arg(format!("username={email}"))
            .arg("--data-urlencode")
            .arg(format!("password={password}"))
            .args(["--data-urlencode", "scope=openid email profile"])
            .args(["--write-out", "\n%{http_code}"])
            .arg(format!("{}/token", self.issuer))
            .stdin(Stdio::null())
            .output()
            .context("run curl (needed for the OIDC login)")?;
        if !out.status.success() {
            bail!(
                "the token request to Dex failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, status) = text.rsplit_once('\n').unwrap_or((&text, ""));
        let tokens: Value = serde_json::from_str(body)
            .with_context(|| format!("Dex's token endpoint answered {status}: {body:?}"))?;
        if status != "200" {
            bail!("Dex refused the login of {email} (HTTP {status}): {tokens}");
        }
        tokens["id_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no id_token in Dex's answer: {tokens}"))
    }

    /// The steward's kubeconfig, with an ID token from a fresh login.
    pub fn steward_kubeconfig(&self) -> Result<PathBuf> {
        let token = self.oidc_login(STEWARD.0, STEWARD.1)?;
        self.kubeconfig_with_token("steward", &token)
    }

    /// A kubeconfig for a service account, with a token from the TokenRequest API (what the
    /// kubelet mounts into a pod).
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> Result<PathBuf> {
        let out = self.kubectl(
            Who::Admin,
            &["-n", namespace, "create", "token", name, "--duration=2h"],
        );
        if !out.status.success() {
            bail!(
                "kubectl create token {namespace}/{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        self.kubeconfig_with_token(&format!("sa-{namespace}-{name}"), &token)
    }

    /// `kubectl --kubeconfig <who> <args>`.
    pub fn kubectl(&self, who: Who, args: &[&str]) -> Output {
        self.kubectl_with(&self.kubeconfig(who), args, None)
    }

    /// `kubectl` with a kubeconfig file and optional standard input.
    pub fn kubectl_with(&self, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(self.bin.join("kubectl"));
        cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
        run_with_stdin(cmd, stdin)
    }

    /// `kubectl` as admin that must succeed; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(Who::Admin, args);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f -` of `manifest` as admin; `Err(stderr)` when refused.
    pub fn apply(&self, manifest: &str) -> std::result::Result<String, String> {
        self.apply_as(&self.kubeconfig(Who::Admin), manifest)
    }

    pub fn apply_as(
        &self,
        kubeconfig: &Path,
        manifest: &str,
    ) -> std::result::Result<String, String> {
        let out = self.kubectl_with(kubeconfig, &["apply", "-f", "-"], Some(manifest));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `kubectl get <args> -o json` as admin, parsed; `None` when it fails (not found).
    pub fn get_json(&self, args: &[&str]) -> Option<Value> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend(["-o", "json"]);
        let out = self.kubectl(Who::Admin, &all);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `helm <args>` as admin.
    pub fn helm(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(self.bin.join("helm"));
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig(Who::Admin))
            .args(args)
            // Helm's caches and config in the control plane's directory, not the user's home.
            .env("HELM_CACHE_HOME", self.path("helm/cache"))
            .env("HELM_CONFIG_HOME", self.path("helm/config"))
            .env("HELM_DATA_HOME", self.path("helm/data"));
        run_with_stdin(cmd, None)
    }

    /// Creates a namespace (as admin) and waits for its default ServiceAccount, without which
    /// the ServiceAccount admission plugin refuses pods.
    pub fn namespace(&self, name: &str) {
        let _ = self.apply(&format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{{\"name\":\"{name}\"}}}}"
        ));
        wait_for(
            Duration::from_secs(30),
            &format!("ServiceAccount {name}/default"),
            || self.get_json(&["-n", name, "serviceaccount", "default"]),
        );
    }

    /// Installs the CRDs from `crds/` (server-side apply, as the README tells users) and waits
    /// until they are Established.
    pub fn install_crds(&self) {
        let dir = repo_root().join("crds");
        let out = self.kubectl(
            Who::Admin,
            &[
                "apply",
                "--server-side",
                "--field-manager=palisade-tests",
                "-f",
                dir.to_str().expect("UTF-8 path"),
            ],
        );
        assert!(
            out.status.success(),
            "the API server refused the CRDs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/databasepolicies.palisade.dev",
            "crd/maskingrules.palisade.dev",
            "crd/approvalrequests.palisade.dev",
        ]);
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        for (_, child) in children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut w) = self
            .watchdog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

fn who_name(who: Who) -> &'static str {
    match who {
        Who::Admin => "admin",
        Who::Steward => "steward",
        Who::Contractor => "contractor",
        Who::Operator => "sa-palisade-system-palisade-operator",
    }
}

fn run_with_stdin(mut cmd: Command, stdin: Option<&str>) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for child")
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_tcp(port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!(
                "nothing listens on 127.0.0.1:{port} after {}s",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Polls `probe` until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {}s waiting for {what}", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
