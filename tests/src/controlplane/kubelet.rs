//! The kubelet's part, done by the test: one container of a stored pod run as a local process.
//!
//! The control plane has no kubelet, so nothing runs what the webhook injected. This does
//! what a kubelet would for the one container the tests care about (the sidecar): its
//! ConfigMap and Secret volumes materialised the way the kubelet's atomic writer lays them
//! out (`..<timestamp>/` holding the files, `..data` a symlink to it, each key a symlink
//! through `..data`, updates swapped in with one `rename` of `..data`), its arguments and
//! environment taken from the stored pod (downward API fields and `$(VAR)` expansion), and
//! the process started. Mount paths are re-rooted under a temporary directory, since a
//! process here shares the host's file system.
//!
//! There is no pod network namespace either: the container shares the host's loopback, so
//! an address the pod would bind on all interfaces (the admin port) is moved to a free
//! loopback port; [`PodContainer::admin_port`] says which.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use super::ControlPlane;
use crate::free_port;

/// A volume as the kubelet keeps it: the source object and the keys last written.
struct MountedVolume {
    /// `configmap` or `secret`.
    kind: &'static str,
    object: String,
    dir: PathBuf,
    written: BTreeMap<String, Vec<u8>>,
}

/// One container of a stored pod, running here.
pub struct PodContainer {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub admin_port: u16,
    root: tempfile::TempDir,
    volumes: Vec<MountedVolume>,
    log: PathBuf,
    child: Child,
}

impl PodContainer {
    /// Runs `binary` as container `container` of pod `namespace/pod`, as stored in the API
    /// server: its init containers and containers are both searched (a native sidecar is an
    /// init container with `restartPolicy: Always`).
    pub fn start(
        cp: &ControlPlane,
        namespace: &str,
        pod: &str,
        container: &str,
        binary: &Path,
    ) -> Result<PodContainer> {
        let stored = cp
            .get_json(&["-n", namespace, "pod", pod])
            .ok_or_else(|| anyhow!("pod {namespace}/{pod} not found"))?;
        let spec = &stored["spec"];
        let c = spec["initContainers"]
            .as_array()
            .into_iter()
            .chain(spec["containers"].as_array())
            .flatten()
            .find(|c| c["name"] == container)
            .ok_or_else(|| anyhow!("pod {namespace}/{pod} has no container {container}"))?
            .clone();
        let root = tempfile::Builder::new()
            .prefix("palisade-pod-")
            .tempdir()
            .context("create the pod's root directory")?;

        let mut volumes = Vec::new();
        for mount in c["volumeMounts"].as_array().into_iter().flatten() {
            let name = mount["name"].as_str().unwrap_or_default();
            let path = mount["mountPath"].as_str().unwrap_or_default();
            let volume = spec["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["name"] == name)
                .ok_or_else(|| anyhow!("volumeMount {name} names no volume"))?;
            if mount.get("subPath").is_some() {
                bail!("volumeMount {name} uses subPath, which never sees updates");
            }
            let dir = reroot(root.path(), path);
            fs::create_dir_all(&dir)?;
            let (kind, object) = if let Some(cm) = volume.get("configMap") {
                ("configmap", cm["name"].as_str().unwrap_or_default())
            } else if let Some(s) = volume.get("secret") {
                ("secret", s["secretName"].as_str().unwrap_or_default())
            } else if volume.get("emptyDir").is_some() {
                continue;
            } else if let Some(projected) = volume.get("projected") {
                // The service-account token volume the ServiceAccount admission plugin adds:
                // written once (the kubelet would rotate the token; the tests outlive no token).
                project(cp, &stored, projected, &dir)?;
                continue;
            } else {
                bail!("volume {name}: only configMap, secret and emptyDir are emulated");
            };
            let mut v = MountedVolume {
                kind,
                object: object.to_string(),
                dir,
                written: BTreeMap::new(),
            };
            let data = read_volume(cp, namespace, kind, object)?;
            atomic_write(&v.dir, &data)?;
            v.written = data;
            volumes.push(v);
        }

        let env = container_env(&stored, &c)?;
        let admin_port = free_port();
        let args: Vec<String> = c["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|a| {
                // An absolute path is a path in the container's own file system.
                if a.starts_with('/') {
                    reroot(root.path(), a).display().to_string()
                } else {
                    a.to_string()
                }
            })
            .collect();
        let log = root.path().join("container.log");
        let out = OpenOptions::new().create(true).append(true).open(&log)?;
        let mut cmd = Command::new(binary);
        cmd.args(&args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("PALISADE_ADMIN_ADDRESS", format!("127.0.0.1:{admin_port}"))
            // Human-readable logs in failure messages; the format is not under test here.
            .env("PALISADE_LOG_FORMAT", "text")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        Ok(PodContainer {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: container.to_string(),
            admin_port,
            root,
            volumes,
            log,
            child,
        })
    }

    /// Where the container's `path` is on this machine.
    pub fn host_path(&self, path: &str) -> PathBuf {
        reroot(self.root.path(), path)
    }

    /// The kubelet's periodic volume sync, once: every volume whose object changed is
    /// rewritten and swapped in. Returns how many were swapped.
    pub fn sync_volumes(&mut self, cp: &ControlPlane) -> Result<usize> {
        let mut swapped = 0;
        for v in &mut self.volumes {
            let data = read_volume(cp, &self.namespace, v.kind, &v.object)?;
            if data != v.written {
                atomic_write(&v.dir, &data)?;
                v.written = data;
                swapped += 1;
            }
        }
        Ok(swapped)
    }

    /// Waits until the container accepts TCP connections on `port`.
    pub fn wait_listening(&mut self, port: u16, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}); log:\n{}",
                    self.container,
                    self.logs()
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on {port}; log:\n{}",
                    self.container,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for PodContainer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A projected volume's sources: service-account token (TokenRequest), ConfigMap keys
/// (`kube-root-ca.crt`) and the downward API's namespace.
fn project(cp: &ControlPlane, pod: &Value, projected: &Value, dir: &Path) -> Result<()> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let mut data = BTreeMap::new();
    for source in projected["sources"].as_array().into_iter().flatten() {
        if let Some(token) = source.get("serviceAccountToken") {
            let sa = pod["spec"]["serviceAccountName"]
                .as_str()
                .unwrap_or("default");
            let out = cp.kubectl(
                super::Who::Admin,
                &[
                    "-n",
                    namespace,
                    "create",
                    "token",
                    sa,
                    "--bound-object-kind=Pod",
                    "--bound-object-name",
                    pod["metadata"]["name"].as_str().unwrap_or_default(),
                ],
            );
            if !out.status.success() {
                bail!(
                    "TokenRequest for {namespace}/{sa}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let path = token["path"].as_str().unwrap_or("token").to_string();
            data.insert(path, out.stdout.trim_ascii_end().to_vec());
        } else if let Some(cm) = source.get("configMap") {
            let name = cm["name"].as_str().unwrap_or_default();
            let keys = read_volume(cp, namespace, "configmap", name)?;
            for item in cm["items"].as_array().into_iter().flatten() {
                let key = item["key"].as_str().unwrap_or_default();
                let path = item["path"].as_str().unwrap_or(key);
                if let Some(v) = keys.get(key) {
                    data.insert(path.to_string(), v.clone());
                }
            }
        } else if let Some(downward) = source.get("downwardAPI") {
            for item in downward["items"].as_array().into_iter().flatten() {
                if item["fieldRef"]["fieldPath"] == "metadata.namespace" {
                    let path = item["path"].as_str().unwrap_or("namespace");
                    data.insert(path.to_string(), namespace.as_bytes().to_vec());
                }
            }
        }
    }
    atomic_write(dir, &data)
}

fn reroot(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// The keys of a ConfigMap (`data` and `binaryData`) or Secret (`data`, base64).
fn read_volume(
    cp: &ControlPlane,
    namespace: &str,
    kind: &str,
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let object = cp
        .get_json(&["-n", namespace, kind, name])
        .ok_or_else(|| anyhow!("{kind} {namespace}/{name} not found (the pod would not start)"))?;
    let mut out = BTreeMap::new();
    if let Some(data) = object["data"].as_object() {
        for (k, v) in data {
            let text = v.as_str().unwrap_or_default();
            let bytes = if kind == "secret" {
                base64_decode(text)?
            } else {
                text.as_bytes().to_vec()
            };
            out.insert(k.clone(), bytes);
        }
    }
    if let Some(data) = object["binaryData"].as_object() {
        for (k, v) in data {
            out.insert(k.clone(), base64_decode(v.as_str().unwrap_or_default())?);
        }
    }
    Ok(out)
}

/// The kubelet's AtomicWriter: the new payload in a fresh `..<timestamp>` directory, a
/// `..data_tmp` symlink to it renamed over `..data` (the one atomic step), a symlink per
/// key through `..data` where missing, stale keys and the old directory removed.
fn atomic_write(dir: &Path, data: &BTreeMap<String, Vec<u8>>) -> Result<()> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let ts_name = format!("..{nanos}");
    let ts_dir = dir.join(&ts_name);
    fs::create_dir(&ts_dir).with_context(|| format!("create {}", ts_dir.display()))?;
    for (key, value) in data {
        fs::write(ts_dir.join(key), value)?;
    }
    let old = fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp);
    symlink(&ts_name, &tmp)?;
    fs::rename(&tmp, dir.join("..data")).context("swap ..data")?;
    for key in data.keys() {
        let link = dir.join(key);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(key), &link)?;
        }
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && !data.contains_key(&name) {
            fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = old {
        let old = dir.join(old);
        if old != ts_dir {
            fs::remove_dir_all(old)?;
        }
    }
    Ok(())
}

/// The container's environment: plain values, downward-API `fieldRef`s resolved from the
/// stored pod, and `$(VAR)` references to earlier variables expanded, as the kubelet does.
fn container_env(pod: &Value, container: &Value) -> Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap_or_default().to_string();
        let value = if let Some(v) = var["value"].as_str() {
            expand(v, &env)
        } else if let Some(path) = var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            let pointer = match path {
                "metadata.name" => "/metadata/name",
                "metadata.namespace" => "/metadata/namespace",
                "metadata.uid" => "/metadata/uid",
                "spec.serviceAccountName" => "/spec/serviceAccountName",
                "spec.nodeName" => "/spec/nodeName",
                other => bail!("fieldRef {other} is not emulated"),
            };
            pod.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        } else if var.get("valueFrom").is_some() {
            bail!("env {name}: only fieldRef sources are emulated");
        } else {
            String::new()
        };
        env.push((name, value));
    }
    Ok(env)
}

fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find(')') {
            Some(end) => {
                let name = &after[..end];
                match env.iter().rev().find(|(n, _)| n == name) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push_str("$(");
                        out.push_str(name);
                        out.push(')');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn base64_decode(text: &str) -> Result<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for b in text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
    {
        let v = ALPHABET
            .iter()
            .position(|&a| a == b)
            .ok_or_else(|| anyhow!("not base64: {text:?}"))? as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_earlier_variables_only() {
        let env = vec![("A".to_string(), "x".to_string())];
        assert_eq!(expand("$(A)/$(B)", &env), "x/$(B)");
        assert_eq!(expand("plain", &env), "plain");
    }

    #[test]
    fn decodes_base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("").unwrap(), b"");
    }

    #[test]
    fn atomic_write_swaps_data_and_drops_stale_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = BTreeMap::new();
        data.insert("a".to_string(), b"1".to_vec());
        data.insert("b".to_string(), b"2".to_vec());
        atomic_write(dir.path(), &data).unwrap();
        let first = fs::read_link(dir.path().join("..data")).unwrap();
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"1");
        data.remove("b");
        data.insert("a".to_string(), b"3".to_vec());
        atomic_write(dir.path(), &data).unwrap();
        assert_ne!(fs::read_link(dir.path().join("..data")).unwrap(), first);
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"3");
        assert!(!dir.path().join("b").exists());
        assert!(!dir.path().join(first).exists());
    }
}
