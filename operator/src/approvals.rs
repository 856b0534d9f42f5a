//! The kubectl plugin's `approvals`, `approve` and `deny` (SPEC §2.3), against either
//!
//! - a cluster ([`Cluster`]): ApprovalRequest objects read and decided through the API server
//!   with the caller's kubeconfig. A decision is appended with a JSON patch carrying only the
//!   verdict and the comment; the operator's admission webhook stamps who decided from the
//!   identity the API server authenticated, and refuses non-approvers, the requester and
//!   requests no longer pending;
//! - a standalone sidecar's admin endpoint ([`SidecarEndpoint`]): `GET /approvals`,
//!   `POST /approvals/{name}/decisions` with the approver's ID token as a bearer token. The
//!   sidecar verifies the token.
//!
//! Nothing here decides who may approve.

use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use palisade_policy::timestamp;
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// How long one call to the sidecar may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A sidecar's admin endpoint.
pub struct SidecarEndpoint {
    uri: Uri,
    authority: String,
}

impl SidecarEndpoint {
    /// `url`: `http://host:port` (the sidecar's `--admin-address`).
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("--sidecar {url:?} is not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!(
                "--sidecar {url:?}: the admin endpoint speaks plain http on loopback, not {other}"
            ),
            None => bail!("--sidecar {url:?}: expected http://host:port"),
        }
        let authority = uri
            .authority()
            .map(|a| a.to_string())
            .ok_or_else(|| anyhow!("--sidecar {url:?}: expected http://host:port"))?;
        Ok(SidecarEndpoint { uri, authority })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let target = format!("{}{path}", self.uri.path().trim_end_matches('/'));
        let work = async {
            let host = self.authority.clone();
            let tcp = TcpStream::connect(&host)
                .await
                .with_context(|| format!("cannot reach the sidecar at {}", self.uri))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .context("HTTP handshake with the sidecar")?;
            tokio::spawn(conn);
            let mut request = Request::builder()
                .method(method)
                .uri(target)
                .header(hyper::header::HOST, host)
                .header(hyper::header::ACCEPT, "application/json");
            if let Some(t) = token {
                request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
            }
            let payload = match body {
                Some(b) => {
                    request = request.header(hyper::header::CONTENT_TYPE, "application/json");
                    Bytes::from(serde_json::to_vec(&b)?)
                }
                None => Bytes::new(),
            };
            let response = sender
                .send_request(request.body(Full::new(payload))?)
                .await
                .context("request to the sidecar")?;
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            let value: Value = serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "the sidecar answered {status} with something that is not JSON: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                )
            })?;
            Ok::<_, anyhow::Error>((status, value))
        };
        tokio::time::timeout(TIMEOUT, work).await.map_err(|_| {
            anyhow!(
                "the sidecar at {} did not answer within {TIMEOUT:?}",
                self.uri
            )
        })?
    }

    /// Every request the sidecar keeps.
    pub async fn list(&self) -> anyhow::Result<Vec<Value>> {
        let (status, body) = self.call(Method::GET, "/approvals", None, None).await?;
        if !status.is_success() {
            bail!("{}", failure_message(status, &body));
        }
        Ok(body["items"].as_array().cloned().unwrap_or_default())
    }

    /// Appends a decision as the approver `token` names. `Err` carries the sidecar's reason
    /// (not an approver, the requester, no longer pending…).
    pub async fn decide(
        &self,
        name: &str,
        verdict: &str,
        comment: Option<&str>,
        token: &str,
    ) -> anyhow::Result<Value> {
        let mut body = json!({ "verdict": verdict });
        if let Some(c) = comment {
            body["comment"] = json!(c);
        }
        let path = format!("/approvals/{}/decisions", path_segment(name)?);
        let (status, answer) = self
            .call(Method::POST, &path, Some(token), Some(body))
            .await?;
        if !status.is_success() {
            bail!("{}", failure_message(status, &answer));
        }
        Ok(answer)
    }
}

/// Where a cluster's requests are listed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One namespace.
    Namespace(String),
    /// Every namespace the caller may list in (`-A`).
    All,
}

/// Why a decision did not get in: the API server (or the approvals webhook through it)
/// answered with a refusal, or it could not be asked at all.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// An answer: not an approver, the requester, no longer pending, not found, no RBAC….
    /// The message is the API server's, which quotes the webhook's.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// ApprovalRequests in a cluster, as the caller's kubeconfig identity.
pub struct Cluster {
    client: kube::Client,
    /// The kubeconfig context's namespace, `default` without one.
    pub default_namespace: String,
}

impl Cluster {
    /// Connects like kubectl: `kubeconfig` (else `$KUBECONFIG`, else `~/.kube/config`, else
    /// the in-cluster service account), its `context` or the current one.
    pub async fn connect(
        kubeconfig: Option<&std::path::Path>,
        context: Option<&str>,
    ) -> anyhow::Result<Self> {
        let options = kube::config::KubeConfigOptions {
            context: context.map(str::to_string),
            ..Default::default()
        };
        let mut config = match kubeconfig {
            Some(path) => {
                let file = kube::config::Kubeconfig::read_from(path)
                    .with_context(|| format!("--kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .with_context(|| format!("--kubeconfig {}", path.display()))?
            }
            None if context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .context("reading the kubeconfig")?,
            None => kube::Config::infer().await.context(
                "no kubeconfig found (set KUBECONFIG or --kubeconfig, or use --sidecar URL for a standalone sidecar)",
            )?,
        };
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(TIMEOUT);
        let default_namespace = config.default_namespace.clone();
        let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
        Ok(Cluster {
            client,
            default_namespace,
        })
    }

    fn api(&self, namespace: Option<&str>) -> kube::Api<kube::api::DynamicObject> {
        let resource = kube::api::ApiResource::erase::<palisade_policy::ApprovalRequest>(&());
        match namespace {
            Some(ns) => kube::Api::namespaced_with(self.client.clone(), ns, &resource),
            None => kube::Api::all_with(self.client.clone(), &resource),
        }
    }

    /// The requests in `scope`, as the API server returns them (oldest first).
    pub async fn list(&self, scope: &Scope) -> anyhow::Result<Vec<Value>> {
        let (api, where_) = match scope {
            Scope::Namespace(ns) => (self.api(Some(ns)), format!("in namespace {ns}")),
            Scope::All => (self.api(None), "in all namespaces".to_string()),
        };
        let list = tokio::time::timeout(TIMEOUT, api.list(&kube::api::ListParams::default()))
            .await
            .map_err(|_| anyhow!("the API server did not answer within {TIMEOUT:?}"))?
            .map_err(|e| anyhow!("listing ApprovalRequests {where_}: {}", api_message(&e)))?;
        let mut items: Vec<Value> = list
            .items
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?;
        items.sort_by(|a, b| {
            let key = |v: &Value| {
                (
                    v["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    v["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    v["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            };
            key(a).cmp(&key(b))
        });
        Ok(items)
    }

    /// Appends a decision to `namespace/name` as the kubeconfig's identity; returns the
    /// request as stored, with the decision the webhook stamped.
    pub async fn decide(
        &self,
        namespace: &str,
        name: &str,
        verdict: &str,
        comment: Option<&str>,
    ) -> Result<Value, DecideError> {
        let api = self.api(Some(namespace));
        let work = async {
            let current = api
                .get(name)
                .await
                .map_err(|e| refused(namespace, name, &e))?;
            let mut decision = json!({ "verdict": verdict });
            if let Some(c) = comment {
                decision["comment"] = json!(c);
            }
            let patch = decision_patch(current.data["spec"]["decisions"].is_array(), decision);
            let patch: json_patch::Patch =
                serde_json::from_value(patch).map_err(|e| DecideError::Failed(e.into()))?;
            let stored = api
                .patch(
                    name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::<()>::Json(patch),
                )
                .await
                .map_err(|e| refused(namespace, name, &e))?;
            serde_json::to_value(stored).map_err(|e| DecideError::Failed(e.into()))
        };
        tokio::time::timeout(TIMEOUT, work).await.map_err(|_| {
            DecideError::Failed(anyhow!("the API server did not answer within {TIMEOUT:?}"))
        })?
    }
}

/// The JSON patch that appends `decision`: onto the list, or as the list when the stored
/// request has none yet. Only the verdict and the comment are sent; who decided and when is
/// the webhook's to write.
pub fn decision_patch(has_decisions: bool, decision: Value) -> Value {
    if has_decisions {
        json!([{"op": "add", "path": "/spec/decisions/-", "value": decision}])
    } else {
        json!([{"op": "add", "path": "/spec/decisions", "value": [decision]}])
    }
}

/// An API error as a refusal (the API server answered) or a failure (it could not be asked).
fn refused(namespace: &str, name: &str, e: &kube::Error) -> DecideError {
    match e {
        kube::Error::Api(status) if status.code == 404 => DecideError::Refused(format!(
            "approvalrequest {namespace}/{name} not found (see kubectl palisade approvals -n {namespace})"
        )),
        kube::Error::Api(_) => DecideError::Refused(api_message(e)),
        other => DecideError::Failed(anyhow!("asking the API server: {other}")),
    }
}

/// The API server's own message for an error it answered with.
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            let message = status.message.trim();
            if message.is_empty() {
                format!("the API server answered {} {}", status.code, status.reason)
            } else {
                message.to_string()
            }
        }
        other => other.to_string(),
    }
}

/// A request name as a URL path segment; names are DNS labels, so anything else is refused.
fn path_segment(name: &str) -> anyhow::Result<&str> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        bail!("{name:?} is not an approval request name (see kubectl palisade approvals)");
    }
    Ok(name)
}

fn failure_message(status: StatusCode, body: &Value) -> String {
    let message = body["message"].as_str().unwrap_or("no reason given");
    format!("the sidecar refused ({status}): {message}")
}

/// Reads an ID token from `path` (`-` for standard input), trimmed.
pub fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the token from stdin")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("--token-file {}", path.display()))?
    };
    let token = text.trim().to_string();
    if token.is_empty() {
        bail!("--token-file {} is empty", path.display());
    }
    Ok(token)
}

/// The table `kubectl palisade approvals` prints: one line per request.
pub fn print_table(items: &[Value], now: SystemTime, out: &mut impl Write) -> std::io::Result<()> {
    print_table_with(items, now, false, out)
}

/// [`print_table`], with a NAMESPACE column first when `namespaces` (`-A`, as kubectl does).
pub fn print_table_with(
    items: &[Value],
    now: SystemTime,
    namespaces: bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    if items.is_empty() {
        return writeln!(out, "No approval requests.");
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|r| {
            let spec = &r["spec"];
            let requester = spec["requester"]["user"]
                .as_str()
                .or(spec["requester"]["serviceAccount"].as_str())
                .or(spec["requester"]["dbUser"].as_str())
                .unwrap_or("-")
                .to_string();
            let tables = spec["tables"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "-".into());
            let estimate = spec["estimate"]["rows"]
                .as_u64()
                .map_or("-".into(), |n| n.to_string());
            let mut row = Vec::with_capacity(8);
            if namespaces {
                row.push(
                    r["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("-")
                        .to_string(),
                );
            }
            row.extend([
                r["metadata"]["name"].as_str().unwrap_or("?").to_string(),
                r["status"]["state"].as_str().unwrap_or("?").to_string(),
                requester,
                shorten(spec["statement"].as_str().unwrap_or(""), 60),
                tables,
                estimate,
                age(r["metadata"]["creationTimestamp"].as_str(), now),
            ]);
            row
        })
        .collect();
    let mut header = Vec::with_capacity(8);
    if namespaces {
        header.push("NAMESPACE");
    }
    header.extend([
        "NAME",
        "STATE",
        "REQUESTER",
        "STATEMENT",
        "TABLES",
        "ESTIMATE",
        "AGE",
    ]);
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>, out: &mut dyn Write| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths.iter().copied()).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}   "));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(header.clone(), out)?;
    for row in &rows {
        line(row.iter().map(String::as_str).collect(), out)?;
    }
    Ok(())
}

/// One line, at most `max` characters.
fn shorten(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// kubectl's age: `45s`, `12m`, `3h`, `5d`.
fn age(created: Option<&str>, now: SystemTime) -> String {
    let Some(at) = created.and_then(|c| timestamp::parse(c).ok()) else {
        return "?".into();
    };
    let secs = now.duration_since(at).map_or(0, |d| d.as_secs());
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_requester_statement_tables_estimate_and_age() {
        let now = timestamp::parse("2026-11-26T10:03:00Z").unwrap();
        let items = vec![json!({
            "metadata": {"name": "features-db-7f3a9c", "creationTimestamp": "2026-11-26T10:00:00Z"},
            "spec": {
                "requester": {"user": "alice@example.com", "dbUser": "analyst"},
                "statement": "DELETE FROM customers WHERE region = $1",
                "tables": ["public.customers"],
                "estimate": {"rows": 1840}
            },
            "status": {"state": "Pending"}
        })];
        let mut out = Vec::new();
        print_table(&items, now, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{text}");
        for want in [
            "features-db-7f3a9c",
            "Pending",
            "alice@example.com",
            "DELETE FROM customers WHERE region = $1",
            "public.customers",
            "1840",
            "3m",
        ] {
            assert!(lines[1].contains(want), "{want} missing: {text}");
        }
    }

    #[test]
    fn all_namespaces_adds_a_namespace_column() {
        let now = timestamp::parse("2026-11-26T10:03:00Z").unwrap();
        let items = vec![json!({
            "metadata": {"name": "shop-f0ca45", "namespace": "shop", "creationTimestamp": "2026-11-26T10:02:30Z"},
            "spec": {"requester": {"serviceAccount": "shop/checkout"}, "statement": "DELETE FROM orders"},
            "status": {"state": "Pending"}
        })];
        let mut out = Vec::new();
        print_table_with(&items, now, true, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAMESPACE   NAME"), "{text}");
        assert!(lines[1].starts_with("shop        shop-f0ca45"), "{text}");
        assert!(
            lines[1].contains("shop/checkout") && lines[1].ends_with("30s"),
            "{text}"
        );
    }

    #[test]
    fn decisions_are_appended_with_verdict_and_comment_only() {
        let d = json!({"verdict": "Approve", "comment": "ok"});
        assert_eq!(
            decision_patch(true, d.clone()),
            json!([{"op": "add", "path": "/spec/decisions/-", "value": {"verdict": "Approve", "comment": "ok"}}])
        );
        assert_eq!(
            decision_patch(false, d),
            json!([{"op": "add", "path": "/spec/decisions", "value": [{"verdict": "Approve", "comment": "ok"}]}])
        );
    }

    #[test]
    fn urls_and_names_are_checked_before_anything_is_sent() {
        assert!(SidecarEndpoint::parse("http://127.0.0.1:9187").is_ok());
        let e = SidecarEndpoint::parse("https://127.0.0.1:9187")
            .err()
            .unwrap();
        assert!(e.to_string().contains("plain http"), "{e}");
        assert!(SidecarEndpoint::parse("127.0.0.1:9187").is_err());
        assert!(path_segment("features-db-7f3a9c").is_ok());
        assert!(path_segment("../metrics").is_err());
        assert!(path_segment("").is_err());
    }
}
