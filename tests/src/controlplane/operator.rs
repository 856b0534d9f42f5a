//! The operator run out of cluster against the control plane, with exactly what the chart
//! gives it: the chart's ServiceAccount and RBAC (rendered by the real `helm template`) and a
//! token of that ServiceAccount, so a permission the chart lacks fails here as it would in a
//! cluster. Its webhook is registered with the chart's MutatingWebhookConfiguration, changed
//! only where a process outside the cluster must differ: a `url` client config on 127.0.0.1
//! instead of the Service, and the test CA as `caBundle`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use super::{ControlPlane, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, Who, repo_root};
use crate::free_port;

/// The component name of the operator process in [`ControlPlane::spawn`].
pub const PROCESS: &str = "palisade-operator";
/// The webhook configuration the harness registers (the chart's default name).
pub const WEBHOOK_CONFIGURATION: &str = "palisade";

/// A configured operator; [`Operator::start`] and [`Operator::stop`] run and end it.
pub struct Operator {
    pub binary: PathBuf,
    pub kubeconfig: PathBuf,
    pub webhook_port: u16,
    pub admin_port: u16,
    cert_dir: PathBuf,
}

impl Operator {
    /// Installs the CRDs, the chart's ServiceAccount and RBAC and the webhook configuration,
    /// then starts the operator and waits until it is ready.
    pub fn install(cp: &ControlPlane) -> Result<Operator> {
        cp.install_crds();
        cp.namespace(OPERATOR_NAMESPACE);
        let rendered = helm_template(
            cp,
            &[
                "templates/serviceaccount.yaml",
                "templates/rbac.yaml",
                "templates/mutatingwebhookconfiguration.yaml",
            ],
        )?;
        // The webhook configuration waits until the operator listens: with failurePolicy
        // Ignore nothing would fail, but pods created meanwhile would go uninjected.
        let (webhook, rest): (Vec<Value>, Vec<Value>) = rendered
            .into_iter()
            .partition(|o| o["kind"] == "MutatingWebhookConfiguration");
        for object in &rest {
            cp.apply(&object.to_string())
                .map_err(|e| anyhow!("applying the chart's {}: {e}", object["kind"]))?;
        }
        let kubeconfig =
            cp.service_account_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT)?;

        let cert_dir = cp.dir().join("webhook-tls");
        std::fs::create_dir_all(&cert_dir)?;
        let (cert, key) = cp.ca.issue(&["127.0.0.1"]);
        std::fs::write(cert_dir.join("tls.crt"), cert)?;
        std::fs::write(cert_dir.join("tls.key"), key)?;

        let operator = Operator {
            binary: crate::sidecar::operator_binary(),
            kubeconfig,
            webhook_port: free_port(),
            admin_port: free_port(),
            cert_dir,
        };
        operator.start(cp)?;

        let mut mwc = webhook
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("the chart rendered no MutatingWebhookConfiguration"))?;
        let bundle = base64_encode(cp.ca.cert_pem.as_bytes());
        for hook in mwc["webhooks"].as_array_mut().into_iter().flatten() {
            // Each webhook keeps the chart's path (/inject, /approvalrequests).
            let path = hook["clientConfig"]["service"]["path"]
                .as_str()
                .ok_or_else(|| anyhow!("webhook {} has no service path", hook["name"]))?
                .to_string();
            let url = format!("https://127.0.0.1:{}{path}", operator.webhook_port);
            hook["clientConfig"] = json!({"url": url, "caBundle": bundle});
        }
        cp.apply(&mwc.to_string())
            .map_err(|e| anyhow!("registering the webhook: {e}"))?;
        Ok(operator)
    }

    /// Starts the operator (as its ServiceAccount) and waits for `/readyz`.
    pub fn start(&self, cp: &ControlPlane) -> Result<()> {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("run")
            .arg(format!("--admin-address=127.0.0.1:{}", self.admin_port))
            .arg(format!("--webhook-address=127.0.0.1:{}", self.webhook_port))
            // cert-manager mode: serve the certificate files the harness wrote; the operator
            // then leaves caBundle alone, as it does under cert-manager's CA injector.
            .arg("--webhook-tls=cert-manager")
            .arg(format!("--webhook-cert-dir={}", self.cert_dir.display()))
            .arg(format!("--namespace={OPERATOR_NAMESPACE}"))
            .arg("--log-format=text")
            .arg("--log-level=info,palisade_operator=debug")
            .env("KUBECONFIG", &self.kubeconfig)
            .env("POD_NAME", "palisade-operator-test")
            .env_remove("KUBERNETES_SERVICE_HOST");
        cp.spawn(PROCESS, cmd)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = http_get(self.admin_port, "/readyz") {
                return Ok(());
            }
            if !cp.running(PROCESS) {
                bail!(
                    "the operator exited; its log ends:\n{}",
                    cp.log_tail(PROCESS, 40)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the operator was not ready in 60s; its log ends:\n{}",
                    cp.log_tail(PROCESS, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn stop(&self, cp: &ControlPlane) {
        cp.stop(PROCESS);
    }
}

/// `helm template` of the chart with the given templates only, as JSON objects.
pub fn helm_template(cp: &ControlPlane, show_only: &[&str]) -> Result<Vec<Value>> {
    let chart = repo_root().join("charts/palisade");
    let mut args = vec![
        "template".to_string(),
        "palisade".to_string(),
        chart.display().to_string(),
        "--namespace".to_string(),
        OPERATOR_NAMESPACE.to_string(),
    ];
    for t in show_only {
        args.push("--show-only".into());
        args.push((*t).into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cp.helm(&args);
    if !out.status.success() {
        bail!("helm template: {}", String::from_utf8_lossy(&out.stderr));
    }
    let yaml = String::from_utf8_lossy(&out.stdout).into_owned();
    yaml_to_json(cp, &yaml)
}

/// YAML documents to JSON objects through `kubectl create --dry-run=client`, so the tests
/// need no YAML library of their own.
pub fn yaml_to_json(cp: &ControlPlane, yaml: &str) -> Result<Vec<Value>> {
    let out = cp.kubectl_with(
        &cp.kubeconfig(Who::Admin),
        &["create", "--dry-run=client", "-o", "json", "-f", "-"],
        Some(yaml),
    );
    if !out.status.success() {
        bail!(
            "kubectl could not read the YAML: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // One JSON document per YAML document, back to back (a List only for list input).
    let mut objects = Vec::new();
    for value in serde_json::Deserializer::from_slice(&out.stdout).into_iter::<Value>() {
        let value = value.context("kubectl printed JSON")?;
        match value["kind"].as_str() {
            Some("List") => objects.extend(value["items"].as_array().cloned().unwrap_or_default()),
            _ => objects.push(value),
        }
    }
    Ok(objects)
}

/// A plain HTTP GET on 127.0.0.1: (status, body).
pub fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP response: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    Ok((status, body.to_string()))
}

pub fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
