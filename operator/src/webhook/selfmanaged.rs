//! Self-managed webhook TLS: the operator keeps its own CA and serving certificate in a Secret
//! of its namespace (shared by every replica, since the API server may call any of them) and
//! keeps the MutatingWebhookConfiguration's `caBundle` current.
//!
//! Every replica runs the same loop: read the Secret, decide with [`certs::reconcile`], write
//! with optimistic concurrency (create-if-absent, replace at the read resourceVersion; on a
//! conflict another replica won, so re-read and serve its result), serve the stored leaf,
//! patch `caBundle` when it differs. It runs every minute and whenever the webhook
//! configuration changes, so a `helm upgrade` that resets `caBundle` is repaired at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::cabundle::{ca_bundle_patch, trusted_everywhere};
use super::certs::{self, CertBundle, CertError, CertResolver, service_dns_names};

/// How often the Secret is re-read when nothing happens: replicas pick up a certificate
/// another replica renewed within this time (renewal leaves a third of the lifetime).
const RESYNC: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("the TLS Secret kept changing under us; retrying later")]
    Contended,
}

pub struct SelfManaged {
    secrets: Api<Secret>,
    configs: Api<MutatingWebhookConfiguration>,
    secret_name: String,
    configuration: String,
    dns_names: Vec<String>,
    resolver: Arc<CertResolver>,
    /// When each CA (by SHA-256 of its DER) was first seen trusted by every webhook, in this
    /// process. Restarting only delays a CA switch by [`certs::PROPAGATION`].
    first_trusted: HashMap<Vec<u8>, i64>,
    served: Option<String>,
}

impl SelfManaged {
    pub fn new(
        client: Client,
        namespace: &str,
        secret_name: &str,
        configuration: &str,
        service: &str,
        resolver: Arc<CertResolver>,
    ) -> Self {
        SelfManaged {
            secrets: Api::namespaced(client.clone(), namespace),
            configs: Api::all(client),
            secret_name: secret_name.to_string(),
            configuration: configuration.to_string(),
            dns_names: service_dns_names(service, namespace),
            resolver,
            first_trusted: HashMap::new(),
            served: None,
        }
    }

    /// One pass at time `now` (Unix seconds); returns the bundle now served.
    pub async fn sync(&mut self, now: i64) -> Result<CertBundle, TlsError> {
        // Absent until the chart (or whoever installs the operator) creates it; certificates
        // are still created and served, and the bundle is written once it appears.
        let config = self.configs.get_opt(&self.configuration).await?;
        if config.is_none() {
            debug!(configuration = %self.configuration, "MutatingWebhookConfiguration not found; not patching caBundle");
        }
        for _attempt in 0..3 {
            let secret = self.secrets.get_opt(&self.secret_name).await?;
            let stored = match secret.as_ref().and_then(|s| s.data.as_ref()) {
                None => None,
                Some(data) => match CertBundle::from_secret_data(data) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        warn!(secret = %self.secret_name, error = %e, "webhook TLS Secret unreadable; replacing it with a new CA and certificate");
                        None
                    }
                },
            };
            self.observe_trust(config.as_ref(), stored.as_ref(), now);
            let first_trusted = &self.first_trusted;
            let (bundle, changes) = certs::reconcile(now, stored, &self.dns_names, &|ca| {
                first_trusted.get(&fingerprint(&ca.der)).copied()
            })?;
            if !changes.is_empty() {
                match self.write(secret, &bundle).await {
                    Ok(()) => {
                        info!(secret = %self.secret_name, ?changes, not_after = bundle.leaf.validity.not_after, "webhook certificate updated");
                    }
                    Err(kube::Error::Api(s)) if s.is_conflict() || s.is_already_exists() => {
                        debug!(secret = %self.secret_name, "another replica updated the TLS Secret first; re-reading");
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            self.serve(&bundle)?;
            if let Some(config) = &config {
                self.publish(config, &bundle).await?;
            }
            return Ok(bundle);
        }
        Err(TlsError::Contended)
    }

    /// Runs [`Self::sync`] until `shutdown`: every [`RESYNC`], on every change of the webhook
    /// configuration, and with backoff after failures.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let selector = format!("metadata.name={}", self.configuration);
        let mut changes = watcher(
            self.configs.clone(),
            watcher::Config::default().fields(&selector),
        )
        .default_backoff()
        .boxed();
        let mut backoff = Duration::from_secs(1);
        loop {
            let wait = match self.sync(unix_now()).await {
                Ok(_) => {
                    backoff = Duration::from_secs(1);
                    RESYNC
                }
                Err(e) => {
                    warn!(error = %e, retry_in = ?backoff, "webhook TLS sync failed");
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                event = changes.next() => {
                    if let Some(Err(e)) = event {
                        debug!(error = %e, "watching the webhook configuration");
                    }
                }
            }
        }
    }

    fn observe_trust(
        &mut self,
        config: Option<&MutatingWebhookConfiguration>,
        stored: Option<&CertBundle>,
        now: i64,
    ) {
        let Some(bundle) = stored else { return };
        for ca in &bundle.cas {
            let key = fingerprint(&ca.der);
            if config.is_some_and(|c| trusted_everywhere(c, &ca.der)) {
                self.first_trusted.entry(key).or_insert(now);
            } else {
                // Trust was reset (a `helm upgrade` wiping caBundle): the clock restarts.
                self.first_trusted.remove(&key);
            }
        }
    }

    async fn write(
        &self,
        existing: Option<Secret>,
        bundle: &CertBundle,
    ) -> Result<(), kube::Error> {
        let data = bundle.to_secret_data();
        match existing {
            None => {
                let secret = Secret {
                    metadata: kube::api::ObjectMeta {
                        name: Some(self.secret_name.clone()),
                        labels: Some(BTreeMap::from([(
                            crate::names::LABEL_MANAGED_BY.to_string(),
                            crate::names::FIELD_MANAGER.to_string(),
                        )])),
                        ..Default::default()
                    },
                    type_: Some("kubernetes.io/tls".to_string()),
                    data: Some(data),
                    ..Default::default()
                };
                self.secrets.create(&PostParams::default(), &secret).await?;
            }
            Some(mut secret) => {
                // Replace at the resourceVersion we read: a concurrent writer makes this a 409.
                // The type is immutable, so an existing Secret keeps its own.
                secret.data = Some(data);
                secret.string_data = None;
                self.secrets
                    .replace(&self.secret_name, &PostParams::default(), &secret)
                    .await?;
            }
        }
        Ok(())
    }

    fn serve(&mut self, bundle: &CertBundle) -> Result<(), CertError> {
        if self.served.as_deref() != Some(bundle.leaf.cert_pem.as_str()) {
            self.resolver.set(bundle.certified_key()?);
            self.served = Some(bundle.leaf.cert_pem.clone());
            info!(
                not_after = bundle.leaf.validity.not_after,
                "serving webhook certificate"
            );
        }
        Ok(())
    }

    async fn publish(
        &self,
        config: &MutatingWebhookConfiguration,
        bundle: &CertBundle,
    ) -> Result<(), kube::Error> {
        let pem = bundle.ca_bundle_pem();
        if let Some(patch) = ca_bundle_patch(config, pem.as_bytes()) {
            self.configs
                .patch(
                    &self.configuration,
                    &PatchParams::default(),
                    &Patch::<()>::Json(patch),
                )
                .await?;
            info!(configuration = %self.configuration, cas = bundle.cas.len(), "caBundle updated");
        }
        Ok(())
    }
}

fn fingerprint(der: &[u8]) -> Vec<u8> {
    Sha256::digest(der).to_vec()
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
