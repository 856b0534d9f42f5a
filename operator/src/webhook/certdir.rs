//! cert-manager mode: serve `tls.crt`/`tls.key` from a directory (the Secret cert-manager
//! keeps, mounted by the kubelet) and pick up renewals. cert-manager's CA injector keeps
//! `caBundle` current, so this side only reloads.
//!
//! Polling rather than inotify: the kubelet updates Secret volumes by swapping a `..data`
//! symlink, which file watches on `tls.crt` itself miss; comparing the bytes every few seconds
//! is cheap (two small files) and cannot miss a swap.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::certs::{CertResolver, load_cert_dir};

/// Loads the directory now and then every `interval` until `shutdown`, swapping the served
/// certificate when the files change. A failed read keeps the previous certificate (a
/// half-written file must not take the webhook down).
pub async fn watch_cert_dir(
    dir: PathBuf,
    resolver: Arc<CertResolver>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut last: Option<Vec<u8>> = None;
    let mut reported = false;
    loop {
        match load_cert_dir(&dir) {
            Ok((key, seen)) => {
                if last.as_ref() != Some(&seen) {
                    resolver.set(key);
                    info!(dir = %dir.display(), "serving webhook certificate from files");
                    last = Some(seen);
                }
                reported = false;
            }
            Err(e) if !reported => {
                let keeping = if last.is_some() {
                    "keeping the previous certificate"
                } else {
                    "no certificate to serve yet"
                };
                warn!(dir = %dir.display(), error = %e, "{keeping}");
                reported = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
