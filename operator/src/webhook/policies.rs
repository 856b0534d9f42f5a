//! Which DatabasePolicies select a pod, and their rendered hashes.
//!
//! The webhook keeps reflector caches of DatabasePolicies and MaskingRules (cluster-wide)
//! instead of listing them per admission: a Deployment scaled to 100 replicas sends 100 reviews
//! at once, each with a 5 s budget (`timeoutSeconds`), and per-review LISTs would put that
//! burst on the API server and its latency into every pod creation. Watches keep the cache
//! seconds-fresh; until the first full list has arrived, reviews wait briefly and then skip
//! with a reason instead of injecting against an empty cache.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use palisade_policy::{DatabasePolicy, MaskingRule, RenderedPolicy};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::inject::{MatchedPolicy, SkipReason, matching_policies};
use crate::render::render_policy;

/// How long a review waits for the caches' first sync.
const SYNC_WAIT: Duration = Duration::from_secs(2);

/// Where reviews find policies.
#[derive(Clone)]
pub enum Policies {
    /// Reflector caches of the cluster (the webhook server).
    Cache {
        policies: Store<DatabasePolicy>,
        /// Untyped, as the controller reads them: one MaskingRule that does not deserialize
        /// fails the policies it selects (with its name), not the whole cache.
        rules: Store<DynamicObject>,
    },
    /// Fixed rendered policies (tests, offline use).
    Static(Arc<Vec<RenderedPolicy>>),
}

impl Policies {
    /// Starts watching DatabasePolicies and MaskingRules in every namespace until `shutdown`.
    pub fn watch(client: Client, shutdown: CancellationToken) -> Self {
        let resource = ApiResource::erase::<MaskingRule>(&());
        let rules_api = Api::<DynamicObject>::all_with(client.clone(), &resource);
        Policies::Cache {
            policies: cache(
                Api::<DatabasePolicy>::all(client),
                Writer::new(()),
                "DatabasePolicy",
                shutdown.clone(),
            ),
            rules: cache(rules_api, Writer::new(resource), "MaskingRule", shutdown),
        }
    }

    /// Resolves once both caches hold the cluster's objects (at once for static ones).
    pub async fn synced(&self) {
        if let Policies::Cache { policies, rules } = self {
            let _ = policies.wait_until_ready().await;
            let _ = rules.wait_until_ready().await;
        }
    }

    /// The policies of `namespace` selecting `labels`, sorted by name. A policy that selects
    /// the pod but does not render fails the lookup: injecting without it would leave the app
    /// with no listener on that policy's port and no explanation.
    pub async fn matching(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<MatchedPolicy>, SkipReason> {
        let (policies, rules) = match self {
            Policies::Static(docs) => return Ok(matching_policies(namespace, labels, docs.iter())),
            Policies::Cache { policies, rules } => (policies, rules),
        };
        let synced = async {
            policies.wait_until_ready().await.is_ok() && rules.wait_until_ready().await.is_ok()
        };
        if tokio::time::timeout(SYNC_WAIT, synced).await != Ok(true) {
            return Err(SkipReason::Failed {
                message: "the webhook has not loaded DatabasePolicies and MaskingRules from the API server yet".into(),
            });
        }
        let rules: Vec<Arc<DynamicObject>> =
            rules.state_filter(|r| r.namespace().as_deref() == Some(namespace));
        let mut out = Vec::new();
        for p in policies.state_filter(|p| {
            p.namespace().as_deref() == Some(namespace) && p.spec.pod_selector.matches(labels)
        }) {
            // The controller's renderer, so the hash is the one in the policy's status.
            let doc = render_policy(&p, &rules).map_err(|e| SkipReason::Failed {
                message: format!(
                    "DatabasePolicy {} does not render: {}",
                    p.name_any(),
                    e.message
                ),
            })?;
            out.push(MatchedPolicy::from_rendered(&doc));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

fn cache<K>(
    api: Api<K>,
    writer: Writer<K>,
    kind: &'static str,
    shutdown: CancellationToken,
) -> Store<K>
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash + Send + Sync,
{
    let reader = writer.as_reader();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .boxed();
    tokio::spawn(async move {
        let mut stream = stream;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                event = stream.next() => match event {
                    None => return,
                    Some(Err(e)) => debug!(%kind, error = %e, "watch error; retrying"),
                    Some(Ok(_)) => {}
                },
            }
        }
    });
    reader
}
