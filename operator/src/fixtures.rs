//! Test fixtures: objects as the API server would return them, a [`Context`] over caches the
//! test fills, and [`ApiServerVerifier`], a mock API server (tower-test) that checks each
//! HTTP request the controller makes — method, path, body — and answers it.

use std::sync::Arc;

use futures::channel::mpsc::{UnboundedReceiver, unbounded};
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ApiResource, DynamicObject};
use kube::client::Body;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use kube::{Client, Resource};
use palisade_policy::{DatabasePolicy, MaskingRule};
use serde_json::{Value, json};

use crate::controller::Context;
use crate::metrics::Metrics;

/// A DatabasePolicy as the API server returns it: `spec_yaml` is the indented body of `spec:`.
pub fn policy(name: &str, namespace: &str, spec_yaml: &str) -> DatabasePolicy {
    let text = format!(
        "apiVersion: palisade.dev/v1alpha1\nkind: DatabasePolicy\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  uid: uid-{name}\n  generation: 1\n  resourceVersion: '1'\nspec:\n{spec_yaml}"
    );
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("fixture policy: {e}"))
}

/// A MaskingRule as the untyped object the controller caches.
pub fn masking_rule(name: &str, namespace: &str, spec_yaml: &str) -> Arc<DynamicObject> {
    let text = format!(
        "apiVersion: palisade.dev/v1alpha1\nkind: MaskingRule\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  uid: uid-{name}\nspec:\n{spec_yaml}"
    );
    Arc::new(serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("fixture rule: {e}")))
}

/// An opted-in pod with `annotations`.
pub fn pod(name: &str, namespace: &str, annotations: &[(&str, &str)]) -> Pod {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name, "namespace": namespace, "uid": format!("uid-{name}"),
            "labels": {"app": "trainer", "palisade.dev/inject": "true"},
            "annotations": annotations,
        },
        "spec": {"containers": [{"name": "app", "image": "app"}]},
    }))
    .unwrap_or_else(|e| panic!("fixture pod: {e}"))
}

/// The caches a test fills, and the triggers the controller sends.
pub struct Caches {
    pub policies: Writer<DatabasePolicy>,
    pub masking_rules: Writer<DynamicObject>,
    pub pods: Writer<Pod>,
    pub pod_triggers: UnboundedReceiver<ObjectRef<Pod>>,
    pub policy_triggers: UnboundedReceiver<ObjectRef<DatabasePolicy>>,
}

impl Caches {
    /// Replaces every cache's content (and marks them ready, as after the initial list).
    pub fn fill(
        &mut self,
        policies: &[DatabasePolicy],
        rules: &[Arc<DynamicObject>],
        pods: &[Pod],
    ) {
        fn relist<K>(writer: &mut Writer<K>, objects: Vec<K>)
        where
            K: Resource + Clone,
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            writer.apply_watcher_event(&watcher::Event::Init);
            for o in objects {
                writer.apply_watcher_event(&watcher::Event::InitApply(o));
            }
            writer.apply_watcher_event(&watcher::Event::InitDone);
        }
        relist(&mut self.policies, policies.to_vec());
        relist(
            &mut self.masking_rules,
            rules.iter().map(|r| (**r).clone()).collect(),
        );
        relist(&mut self.pods, pods.to_vec());
    }
}

/// A Context whose client talks to the returned verifier, over empty caches.
pub fn context() -> (Arc<Context>, ApiServerVerifier, Caches) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let policies = Writer::<DatabasePolicy>::default();
    let masking_rules = Writer::<DynamicObject>::new(ApiResource::erase::<MaskingRule>(&()));
    let pods = Writer::<Pod>::default();
    let (pod_tx, pod_rx) = unbounded();
    let (policy_tx, policy_rx) = unbounded();
    let mut ctx = Context::new(
        client,
        Reporter {
            controller: "palisade-operator".into(),
            instance: Some("test".into()),
        },
        Arc::new(Metrics::default()),
        policies.as_reader(),
        masking_rules.as_reader(),
        pods.as_reader(),
        pod_tx,
        policy_tx,
    );
    ctx.clock = || "2026-01-01T00:00:00Z".to_string();
    let caches = Caches {
        policies,
        masking_rules,
        pods,
        pod_triggers: pod_rx,
        policy_triggers: policy_rx,
    };
    (Arc::new(ctx), ApiServerVerifier(handle, 1), caches)
}

/// One request the controller made, as the test sees it.
#[derive(Debug)]
pub struct Seen {
    pub method: Method,
    /// Path and query, e.g. `/api/v1/namespaces/ml/configmaps/palisade-policy-p?fieldManager=…`.
    pub uri: String,
    pub body: Value,
}

impl Seen {
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }
}

/// The mock API server: the test pulls each request in the order the controller makes it,
/// checks it, and chooses the answer.
pub struct ApiServerVerifier(
    tower_test::mock::Handle<Request<Body>, Response<Body>>,
    /// The last resourceVersion handed out.
    u64,
);

impl ApiServerVerifier {
    /// The next request; answered with `status` and the body `respond` makes from it.
    pub async fn answer_with(
        &mut self,
        status: StatusCode,
        respond: impl FnOnce(&Seen) -> Value,
    ) -> Seen {
        let (request, send) =
            tokio::time::timeout(std::time::Duration::from_secs(5), self.0.next_request())
                .await
                .unwrap_or_else(|_| panic!("the controller made no further request"))
                .unwrap_or_else(|| panic!("the client was dropped"));
        let method = request.method().clone();
        let uri = request.uri().to_string();
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let seen = Seen { method, uri, body };
        let response = serde_json::to_vec(&respond(&seen)).unwrap_or_default();
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(response))
                .unwrap_or_else(|e| panic!("response: {e}")),
        );
        seen
    }

    /// The next request; answered with `status` and `response`.
    pub async fn answer(&mut self, status: StatusCode, response: Value) -> Seen {
        self.answer_with(status, |_| response).await
    }

    /// The next request, answered by echoing its body with the metadata the server adds
    /// (what apply and create return).
    pub async fn echo(&mut self) -> Seen {
        self.1 += 1;
        let version = self.1.to_string();
        self.answer_with(StatusCode::OK, |seen| {
            let mut body = seen.body.clone();
            if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("resourceVersion".into(), json!(version));
                meta.entry("uid").or_insert(json!("uid-x"));
            }
            body
        })
        .await
    }

    /// A status apply, answered with a whole object as the API server returns it.
    pub async fn status(&mut self) -> Seen {
        self.answer_with(StatusCode::OK, |seen| {
            let name = seen.path().split('/').rev().nth(1).unwrap_or_default().to_string();
            json!({
                "apiVersion": "palisade.dev/v1alpha1",
                "kind": "DatabasePolicy",
                "metadata": {"name": name, "namespace": "ml", "uid": format!("uid-{name}"), "resourceVersion": "3"},
                "spec": {"database": {"host": "db"}},
                "status": seen.body["status"],
            })
        })
        .await
    }

    /// Answers a metadata GET of a Secret: found or 404.
    pub async fn secret(&mut self, namespace: &str, name: &str, exists: bool) -> Seen {
        let response = if exists {
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": {"name": name, "namespace": namespace}})
        } else {
            not_found(name)
        };
        let status = if exists {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        let seen = self.answer(status, response).await;
        assert_eq!(seen.method, Method::GET);
        assert_eq!(
            seen.path(),
            format!("/api/v1/namespaces/{namespace}/secrets/{name}")
        );
        seen
    }

    /// Asserts the controller makes no further request within a short wait.
    pub async fn expect_no_request(&mut self) {
        let next =
            tokio::time::timeout(std::time::Duration::from_millis(200), self.0.next_request())
                .await;
        if let Ok(Some((request, _))) = next {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }
}

/// A Kubernetes 404 Status.
pub fn not_found(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("\"{name}\" not found")})
}
