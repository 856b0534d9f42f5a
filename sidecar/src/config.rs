//! Loading what the sidecar enforces from disk: rendered `policy.json` files or the
//! DatabasePolicy/MaskingRule YAML users `kubectl apply`, and secrets laid out as
//! Kubernetes mounts them (`<dir>/<secret-name>/<key>`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use palisade_policy::decision::{Identity, RuleSet};
use palisade_policy::decision_cache::Engine;
use palisade_policy::mask_plan::MaskRules;
use palisade_policy::masking::Mask;
use palisade_policy::model::{Oidc, SecretKeyRef};
use palisade_policy::{Manifest, RenderedPolicy, TlsMode, load_manifests, render_all};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;

use crate::oidc::{JwksFiles, OidcLogin};
use crate::tls;

/// How to reach and authenticate to one upstream database.
#[derive(Debug)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    pub tls_mode: TlsMode,
    pub tls: Option<Arc<ClientConfig>>,
    pub server_name: ServerName<'static>,
    /// Where the trusted CA came from, for error messages.
    pub ca_origin: String,
    pub credentials: Option<Credentials>,
}

/// Upstream login injected by the sidecar (`credentialsSecretRef`).
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password, not even in debug logs.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A policy ready to enforce: the rendered document plus what its references resolved to.
pub struct LoadedPolicy {
    pub rendered: RenderedPolicy,
    pub source: PathBuf,
    pub upstream: Arc<Upstream>,
    /// The compiled rules and their decision cache.
    pub engine: Engine,
    /// Keys of the MaskingRules' `Hash` masks, by (secret, key), read at load.
    pub mask_keys: MaskKeys,
    /// `spec.identity.oidc`: clients are asked for a password, which may be an ID token.
    pub oidc: Option<OidcLogin>,
}

impl LoadedPolicy {
    pub fn key(&self) -> String {
        self.rendered.key()
    }

    /// The masking that applies to `identity` under this policy.
    pub fn mask_rules(&self, identity: &Identity) -> Result<MaskRules, String> {
        let lookup = |r: &SecretKeyRef| {
            self.mask_keys
                .get(&(r.name.clone(), r.key.clone()))
                .cloned()
                .ok_or_else(|| format!("hash key {}/{} was not loaded", r.name, r.key))
        };
        MaskRules::for_identity(&self.rendered, identity, &lookup)
    }

    pub fn listen_port(&self) -> u16 {
        self.rendered.spec.listen.port
    }
}

/// Secrets mounted the way Kubernetes mounts them.
#[derive(Clone, Debug)]
pub struct SecretStore {
    dir: Option<PathBuf>,
    /// The OIDC issuers' keys, re-read as their files change and kept across reloads.
    jwks: Arc<JwksFiles>,
}

impl SecretStore {
    pub fn new(dir: Option<PathBuf>) -> Self {
        SecretStore {
            dir,
            jwks: Arc::default(),
        }
    }

    /// Where `<dir>/<name>/<key>` is; `field` names the reference for the error message.
    pub fn path(&self, name: &str, key: &str, field: &str) -> Result<PathBuf, String> {
        let Some(dir) = &self.dir else {
            return Err(format!(
                "{field} refers to secret {name:?} but no --secrets-dir was given"
            ));
        };
        if [name, key]
            .iter()
            .any(|s| s.is_empty() || s.contains('/') || s.starts_with('.'))
        {
            return Err(format!(
                "{field}: invalid secret reference {name:?}/{key:?}"
            ));
        }
        Ok(dir.join(name).join(key))
    }

    /// Reads `<dir>/<name>/<key>`; `field` names the reference for the error message.
    pub fn read(&self, name: &str, key: &str, field: &str) -> Result<Vec<u8>, String> {
        let path = self.path(name, key, field)?;
        std::fs::read(&path)
            .map_err(|e| format!("{field}: cannot read secret {}: {e}", path.display()))
    }

    /// The issuer keys `oidc.jwksSecretRef` names, read now if they changed.
    fn oidc_login(&self, policy: &str, oidc: &Oidc) -> OidcLogin {
        let r = &oidc.jwks_secret_ref;
        let path = self.path(&r.name, &r.key, "spec.identity.oidc.jwksSecretRef");
        let login = OidcLogin::new(oidc.clone(), self.jwks.get(r, path));
        // Read (and any problem logged) at load rather than at the first login. A policy
        // whose keys are missing still loads: its token logins are refused, and the keys
        // are picked up as soon as the Secret holds them.
        if let Err(e) = login.verifier() {
            tracing::error!(%policy, error = %e, "ID-token logins will be refused until the issuer's keys load");
        }
        login
    }
}

/// Reads every policy under `policy_dir`. Any error fails the whole load, so a half-valid
/// directory never replaces a good one.
pub fn load_policies(
    policy_dir: &Path,
    secrets: &SecretStore,
) -> anyhow::Result<Vec<LoadedPolicy>> {
    let files = policy_files(policy_dir)?;
    let mut manifests: Vec<(PathBuf, Manifest)> = Vec::new();
    let mut rendered: Vec<(PathBuf, RenderedPolicy)> = Vec::new();
    for path in files {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                for m in load_manifests(&path)? {
                    manifests.push((path.clone(), m));
                }
            }
            Some("json") => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                rendered.push((
                    path.clone(),
                    RenderedPolicy::from_json(&path.display().to_string(), &text)?,
                ));
            }
            _ => {}
        }
    }
    let all: Vec<Manifest> = manifests.iter().map(|(_, m)| m.clone()).collect();
    for doc in render_all(&policy_dir.display().to_string(), &all)? {
        let source = manifests
            .iter()
            .find(|(_, m)| matches!(m, Manifest::DatabasePolicy { metadata, .. } if metadata.namespace == doc.namespace && metadata.name == doc.name))
            .map(|(p, _)| p.clone())
            .unwrap_or_default();
        rendered.push((source, doc));
    }

    let mut keys = BTreeMap::new();
    let mut ports: BTreeMap<u16, String> = BTreeMap::new();
    let mut out = Vec::new();
    for (source, doc) in rendered {
        let key = doc.key();
        if let Some(other) = keys.insert(key.clone(), source.clone()) {
            anyhow::bail!(
                "DatabasePolicy {key} is defined twice ({} and {})",
                other.display(),
                source.display()
            );
        }
        let port = doc.spec.listen.port;
        if let Some(other) = ports.insert(port, key.clone()) {
            anyhow::bail!(
                "DatabasePolicies {other} and {key} both listen on port {port} (spec.listen.port)"
            );
        }
        let upstream = resolve_upstream(&doc, secrets)
            .map_err(|e| anyhow::anyhow!("DatabasePolicy {key}: {e}"))?;
        let mask_keys = load_mask_keys(&doc, secrets)
            .map_err(|e| anyhow::anyhow!("DatabasePolicy {key}: {e}"))?;
        let oidc = doc
            .spec
            .identity
            .as_ref()
            .and_then(|i| i.oidc.as_ref())
            .map(|o| secrets.oidc_login(&key, o));
        out.push(LoadedPolicy {
            mask_keys,
            oidc,
            engine: Engine::new(RuleSet::new(&doc)),
            rendered: doc,
            source,
            upstream: Arc::new(upstream),
        });
    }
    Ok(out)
}

/// `Hash` mask keys by (secret name, key).
pub type MaskKeys = HashMap<(String, String), Arc<[u8]>>;

/// Reads every `Hash` mask's key now, so a missing key fails the load rather than a query.
fn load_mask_keys(doc: &RenderedPolicy, secrets: &SecretStore) -> Result<MaskKeys, String> {
    let mut keys = HashMap::new();
    for rule in &doc.masking_rules {
        let masks = rule.spec.columns.iter().map(|c| &c.mask);
        let masks = masks.chain(rule.spec.detectors.iter().map(|d| &d.mask));
        for mask in masks {
            if let Mask::Hash { key_secret_ref, .. } = mask {
                let field = format!("MaskingRule {}: keySecretRef", rule.name);
                let bytes = secrets.read(&key_secret_ref.name, &key_secret_ref.key, &field)?;
                if bytes.is_empty() {
                    return Err(format!(
                        "{field}: secret {}/{} is empty",
                        key_secret_ref.name, key_secret_ref.key
                    ));
                }
                keys.insert(
                    (key_secret_ref.name.clone(), key_secret_ref.key.clone()),
                    Arc::from(bytes),
                );
            }
        }
    }
    Ok(keys)
}

fn resolve_upstream(doc: &RenderedPolicy, secrets: &SecretStore) -> Result<Upstream, String> {
    let db = &doc.spec.database;
    let (ca_pem, ca_origin) = match &db.tls.ca_secret_ref {
        Some(r) => (
            Some(secrets.read(&r.name, &r.key, "spec.database.tls.caSecretRef")?),
            format!("CA from secret {}/{}", r.name, r.key),
        ),
        None => (None, "system CA certificates".to_string()),
    };
    let tls = tls::upstream_config(db.tls.mode, ca_pem.as_deref())
        .map_err(|e| format!("spec.database.tls: {e}"))?;
    let credentials = match &db.credentials_secret_ref {
        Some(r) => {
            let field = "spec.database.credentialsSecretRef";
            let username = secrets.read(&r.name, "username", field)?;
            let username = String::from_utf8(username)
                .map_err(|_| format!("{field}: username is not UTF-8"))?
                .trim_end_matches(['\n', '\r'])
                .to_string();
            let mut password = secrets.read(&r.name, "password", field)?;
            // Files written with `echo` end in a newline that is not part of the password.
            while password.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                password.pop();
            }
            Some(Credentials { username, password })
        }
        None => None,
    };
    Ok(Upstream {
        host: db.host.clone(),
        port: db.port,
        tls_mode: db.tls.mode,
        tls,
        server_name: tls::server_name(&db.host).map_err(|e| format!("spec.database.host: {e}"))?,
        ca_origin,
        credentials,
    })
}

/// Policy files under `dir`, recursing into sub-directories (one per mounted ConfigMap).
/// Names starting with `.` are skipped: Kubernetes keeps its atomic-swap machinery there
/// (`..data`, `..2026_11_26…`) behind symlinks to the real files.
fn policy_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(dir, 0, &mut out)
        .map_err(|e| anyhow::anyhow!("policy directory {}: {e}", dir.display()))?;
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            if depth < 4 {
                walk(&path, depth + 1, out)?;
            }
        } else if meta.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// A cheap fingerprint of everything under the given directories (paths, sizes, mtimes,
/// inodes, following symlinks), to notice changes without reading file contents.
pub fn fingerprint(dirs: &[&Path]) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut hasher = DefaultHasher::new();
    let mut seen = BTreeSet::new();
    for dir in dirs {
        let mut files = Vec::new();
        if walk_all(dir, 0, &mut files).is_err() {
            "unreadable".hash(&mut hasher);
        }
        files.sort();
        for path in files {
            if !seen.insert(path.clone()) {
                continue;
            }
            path.hash(&mut hasher);
            if let Ok(m) = std::fs::metadata(&path) {
                (m.len(), m.mtime(), m.mtime_nsec(), m.ino()).hash(&mut hasher);
            }
        }
    }
    hasher.finish()
}

fn walk_all(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            if depth < 4
                && !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".."))
            {
                walk_all(&path, depth + 1, out)?;
            }
        } else {
            out.push(path);
        }
    }
    Ok(())
}
