//! The webhook server as the API server meets it: HTTPS with the certificate from the
//! self-managed Secret, real AdmissionReview bodies (`tests/fixtures/admission/`), and a
//! `kube::Client` over an in-memory API server (`webhook_fake`) serving the Secret, the
//! MutatingWebhookConfiguration and the policies.

mod webhook_fake;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use clap::Parser;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use palisade_operator::webhook::{self, Running, WebhookArgs, supports_native_sidecars};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;
use webhook_fake::FakeApi;

const NAMESPACE: &str = "palisade-system";
const SECRET: &str = "palisade-webhook-tls";
const SERVER_NAME: &str = "palisade-webhook.palisade-system.svc";

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    webhook: WebhookArgs,
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/admission/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// The golden cases' policies, as the API server stores them.
fn golden_objects() -> Vec<Value> {
    let path = format!("{}/tests/golden/policies.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
            serde_json::to_value(v).unwrap()
        })
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn policy_hash(name: &str) -> String {
    let path = format!("{}/tests/golden/policies.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let manifests = palisade_policy::parse_manifests("policies.yaml", &text).unwrap();
    palisade_policy::render_all("policies.yaml", &manifests)
        .unwrap()
        .into_iter()
        .find(|p| p.name == name && p.namespace == "shop")
        .unwrap()
        .policy_hash
}

/// The chart's MutatingWebhookConfiguration: no caBundle until the operator writes it.
fn webhook_configuration() -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "palisade"},
        "webhooks": [{
            "name": "inject.palisade.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Ignore",
            "timeoutSeconds": 5,
            "clientConfig": {"service": {"name": "palisade-webhook", "namespace": NAMESPACE, "path": "/inject", "port": 443}},
            "objectSelector": {"matchLabels": {"palisade.dev/inject": "true"}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "operations": ["CREATE"], "scope": "Namespaced"}]
        }]
    })
}

fn fake_with_policies() -> FakeApi {
    let api = FakeApi::new();
    for object in golden_objects() {
        api.add_object(object);
    }
    api.set_config(webhook_configuration());
    api
}

async fn start(api: &FakeApi, extra: &[&str]) -> (Running, CancellationToken) {
    let mut argv = vec!["palisade-operator", "--webhook-address", "127.0.0.1:0"];
    argv.extend_from_slice(extra);
    let args = Cli::parse_from(argv).webhook;
    let shutdown = CancellationToken::new();
    let running = webhook::start(args, api.client(), NAMESPACE.into(), shutdown.clone())
        .await
        .expect("webhook starts");
    (running, shutdown)
}

struct Reply {
    status: StatusCode,
    body: Bytes,
    /// The certificate the server presented.
    server_cert: Vec<u8>,
}

/// POSTs `body` to `/inject` over HTTPS, trusting only `ca_pem` (what the API server does with
/// `caBundle`) and checking the certificate names the Service.
async fn post(running: &Running, ca_pem: &[u8], body: Vec<u8>) -> Result<Reply, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(running.local_addr())
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(SERVER_NAME).map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let server_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .ok_or("no peer certificate")?[0]
        .as_ref()
        .to_vec();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = http::Request::post("/inject")
        .header("host", SERVER_NAME)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Reply {
        status,
        body,
        server_cert,
    })
}

fn unix_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    i64::try_from(now.unwrap().as_secs()).unwrap()
}

fn ca(api: &FakeApi) -> Vec<u8> {
    api.secret_data(SECRET, "ca.crt")
        .expect("the TLS Secret holds ca.crt")
}

async fn review(running: &Running, api: &FakeApi, fixture: &Value) -> Value {
    let reply = post(running, &ca(api), serde_json::to_vec(fixture).unwrap())
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let review: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    assert_eq!(review["response"]["uid"], fixture["request"]["uid"]);
    assert_eq!(review["response"]["allowed"], true, "{review}");
    review
}

/// Applies the response's patch to the request's object, as the API server does.
fn patched(fixture: &Value, review: &Value) -> Value {
    let mut object = fixture["request"]["object"].clone();
    if let Some(patch) = review["response"]["patch"].as_str() {
        assert_eq!(review["response"]["patchType"], "JSONPatch");
        let bytes: k8s_openapi::ByteString = serde_json::from_value(json!(patch)).unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes.0).unwrap();
        json_patch::patch(&mut object, &patch).unwrap();
    }
    object
}

#[tokio::test]
async fn injects_over_https_with_the_self_managed_ca() {
    let api = fake_with_policies();
    let (running, shutdown) = start(&api, &[]).await;

    // The CA went to the Secret and into the webhook's caBundle.
    let ca_pem = ca(&api);
    assert_eq!(api.ca_bundle(0).as_deref(), Some(ca_pem.as_slice()));
    let secret = api.secret(SECRET).unwrap();
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(
        secret["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "palisade-operator"
    );

    let request = fixture("create-pod-from-replicaset.json");
    let response = review(&running, &api, &request).await;
    assert!(response["response"]["warnings"].is_null(), "{response}");
    let pod: Pod = serde_json::from_value(patched(&request, &response)).unwrap();
    let spec = pod.spec.unwrap();
    // The fake API server is 1.31: a native sidecar.
    let sidecar = &spec.init_containers.unwrap()[0];
    assert_eq!(sidecar.name, "palisade-sidecar");
    assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.volumes.unwrap().len(), 2);
    let annotations = pod.metadata.annotations.unwrap();
    // The hash is the rendered one: the same the controller writes to the policy's status.
    assert_eq!(
        annotations["palisade.dev/policies"],
        format!("orders-db={}", policy_hash("orders-db"))
    );
    assert_eq!(annotations["palisade.dev/injected"], webhook::VERSION);
    assert_eq!(annotations["palisade.dev/secrets"], "");

    // A client that does not trust the operator's CA does not get through.
    let stranger = palisade_operator::webhook::certs::new_ca(0).unwrap();
    let err = post(&running, stranger.cert_pem.as_bytes(), b"{}".to_vec())
        .await
        .err()
        .expect("untrusted");
    assert!(err.contains("TLS"), "{err}");

    shutdown.cancel();
    running.wait().await.unwrap();
}

#[tokio::test]
async fn skipped_and_foreign_requests_are_allowed() {
    let api = fake_with_policies();
    let (running, shutdown) = start(&api, &[]).await;

    // hostNetwork: allowed, the reason annotated and sent back as a warning.
    let request = fixture("create-pod-host-network.json");
    let response = review(&running, &api, &request).await;
    let warning = response["response"]["warnings"][0].as_str().unwrap();
    assert!(
        warning.starts_with("palisade: no sidecar for pod shop/orders-node-agent: hostNetwork"),
        "{warning}"
    );
    let pod = patched(&request, &response);
    assert!(
        pod["metadata"]["annotations"]["palisade.dev/injection-skipped"]
            .as_str()
            .unwrap()
            .starts_with("hostNetwork pods share the node's loopback")
    );
    assert!(
        pod["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );

    // Not opted in, or not a pod creation: allowed untouched, nothing said.
    for name in ["create-pod-not-opted-in.json", "update-deployment.json"] {
        let response = review(&running, &api, &fixture(name)).await;
        assert!(
            response["response"]["patch"].is_null(),
            "{name}: {response}"
        );
        assert!(
            response["response"]["warnings"].is_null(),
            "{name}: {response}"
        );
    }

    // Not an AdmissionReview: 400 with the reason, never a panic.
    let ca_pem = ca(&api);
    for body in [
        &b"{not json"[..],
        br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#,
        b"[]",
    ] {
        let reply = post(&running, &ca_pem, body.to_vec()).await.unwrap();
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(!reply.body.is_empty());
    }
    let reply = post(&running, &ca_pem, b"{not json".to_vec())
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&reply.body).contains("not an AdmissionReview"),
        "{:?}",
        reply.body
    );

    shutdown.cancel();
    running.wait().await.unwrap();
}

#[tokio::test]
async fn replicas_serve_the_winner_of_the_secret_race() {
    let api = fake_with_policies();
    // Another replica creates the Secret between our read and our create.
    let names = webhook::certs::service_dns_names("palisade-webhook", NAMESPACE);
    let (winner, _) = webhook::certs::reconcile(unix_now(), None, &names, &|_| None).unwrap();
    api.state().race_winner = Some(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": SECRET, "namespace": NAMESPACE},
        "data": winner.to_secret_data(),
    }));
    let (first, stop_first) = start(&api, &[]).await;
    let (second, stop_second) = start(&api, &[]).await;

    let winner_leaf = CertificateDer::from_pem_slice(winner.leaf.cert_pem.as_bytes()).unwrap();
    let ca_pem = ca(&api);
    assert_eq!(ca_pem, winner.ca_bundle_pem().into_bytes());
    for running in [&first, &second] {
        let body = serde_json::to_vec(&fixture("create-pod-not-opted-in.json")).unwrap();
        let reply = post(running, &ca_pem, body).await.unwrap();
        assert_eq!(reply.server_cert, winner_leaf.as_ref());
    }
    assert_eq!(api.ca_bundle(0), Some(ca_pem));

    stop_first.cancel();
    stop_second.cancel();
    first.wait().await.unwrap();
    second.wait().await.unwrap();
}

#[tokio::test]
async fn a_reset_ca_bundle_is_written_again() {
    let api = fake_with_policies();
    let (running, shutdown) = start(&api, &[]).await;
    let ca_pem = ca(&api);
    assert_eq!(api.ca_bundle(0).as_deref(), Some(ca_pem.as_slice()));

    // `helm upgrade` (or a GitOps sync) applies the configuration without caBundle.
    api.set_config(webhook_configuration());
    assert_eq!(api.ca_bundle(0), None);
    let mut repaired = false;
    for _ in 0..100 {
        if api.ca_bundle(0).as_deref() == Some(ca_pem.as_slice()) {
            repaired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(repaired, "caBundle was not restored after the reset");

    shutdown.cancel();
    running.wait().await.unwrap();
}

fn inventory_pod() -> Value {
    let mut request = fixture("create-pod-from-replicaset.json");
    request["request"]["object"]["metadata"]["labels"]["app"] = json!("inventory");
    request
}

#[tokio::test]
async fn policies_created_later_are_seen_through_the_watch() {
    let api = fake_with_policies();
    let (running, shutdown) = start(&api, &[]).await;

    let request = inventory_pod();
    let response = review(&running, &api, &request).await;
    let warning = response["response"]["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("no DatabasePolicy in the namespace selects"),
        "{warning}"
    );

    api.add_object(json!({
        "apiVersion": "palisade.dev/v1alpha1", "kind": "DatabasePolicy",
        "metadata": {"name": "inventory-db", "namespace": "shop", "generation": 1},
        "spec": {"podSelector": {"matchLabels": {"app": "inventory"}}, "listen": {"port": 6432},
                 "database": {"host": "inventory-pg.data.svc"}}
    }));
    let mut injected = None;
    for _ in 0..100 {
        let response = review(&running, &api, &request).await;
        if response["response"]["warnings"].is_null() {
            injected = Some(patched(&request, &response));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pod = injected.expect("the new policy was never used");
    let policies = pod["metadata"]["annotations"]["palisade.dev/policies"]
        .as_str()
        .unwrap();
    assert!(policies.starts_with("inventory-db=sha256:"), "{policies}");

    shutdown.cancel();
    running.wait().await.unwrap();
}

#[tokio::test]
async fn a_selecting_policy_that_does_not_render_is_named() {
    let api = fake_with_policies();
    api.add_object(json!({
        "apiVersion": "palisade.dev/v1alpha1", "kind": "DatabasePolicy",
        "metadata": {"name": "broken-db", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "orders"}}, "listen": {"port": 7432},
                 "database": {"host": " "}}
    }));
    let (running, shutdown) = start(&api, &[]).await;
    let request = fixture("create-pod-from-replicaset.json");
    let response = review(&running, &api, &request).await;
    let warning = response["response"]["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("no sidecar for pod shop/orders-7d9f8c5b6d-<generated>")
            && warning.contains("DatabasePolicy broken-db does not render")
            && warning.contains("spec.database.host"),
        "{warning}"
    );
    let pod = patched(&request, &response);
    assert!(pod["spec"]["initContainers"].is_null());
    assert!(pod["metadata"]["annotations"]["palisade.dev/injection-skipped"].is_string());

    shutdown.cancel();
    running.wait().await.unwrap();
}

#[tokio::test]
async fn opted_in_pods_are_allowed_while_policies_cannot_be_loaded() {
    let api = fake_with_policies();
    api.state().fail_policy_lists = true;
    let (running, shutdown) = start(&api, &[]).await;
    let request = fixture("create-pod-from-replicaset.json");
    let started = std::time::Instant::now();
    let response = review(&running, &api, &request).await;
    // Within the API server's 5 s budget.
    assert!(started.elapsed() < Duration::from_secs(4));
    let warning = response["response"]["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("has not loaded DatabasePolicies"),
        "{warning}"
    );
    let pod = patched(&request, &response);
    assert!(pod["metadata"]["annotations"]["palisade.dev/injection-skipped"].is_string());

    shutdown.cancel();
    running.wait().await.unwrap();
}

#[tokio::test]
async fn regular_sidecars_before_kubernetes_1_29() {
    let api = fake_with_policies();
    api.state().minor_version = "28".into();
    let (running, shutdown) = start(&api, &[]).await;
    let request = fixture("create-pod-from-replicaset.json");
    let pod: Pod =
        serde_json::from_value(patched(&request, &review(&running, &api, &request).await)).unwrap();
    let spec = pod.spec.unwrap();
    assert_eq!(spec.containers[0].name, "palisade-sidecar");
    assert_eq!(spec.containers[0].restart_policy, None);
    assert!(spec.init_containers.is_none());
    shutdown.cancel();
    running.wait().await.unwrap();

    // `--native-sidecars always` overrides the detection.
    let (running, shutdown) = start(&api, &["--native-sidecars", "always"]).await;
    let pod: Pod =
        serde_json::from_value(patched(&request, &review(&running, &api, &request).await)).unwrap();
    assert_eq!(
        pod.spec.unwrap().init_containers.unwrap()[0].name,
        "palisade-sidecar"
    );
    shutdown.cancel();
    running.wait().await.unwrap();
}

#[test]
fn native_sidecar_support_reads_suffixed_versions() {
    let info = |major: &str, minor: &str| k8s_openapi::apimachinery::pkg::version::Info {
        major: major.into(),
        minor: minor.into(),
        ..Default::default()
    };
    assert!(supports_native_sidecars(&info("1", "29")));
    assert!(supports_native_sidecars(&info("1", "31+")));
    assert!(!supports_native_sidecars(&info("1", "28+")));
    assert!(!supports_native_sidecars(&info("1", "")));
    assert!(supports_native_sidecars(&info("2", "0")));
}

#[test]
fn flags_and_defaults_match_the_contract() {
    let args = Cli::parse_from(["palisade-operator"]).webhook;
    assert_eq!(args.webhook_address.to_string(), "0.0.0.0:9443");
    assert_eq!(args.webhook_tls, webhook::TlsMode::SelfManaged);
    assert_eq!(args.webhook_cert_dir.to_str(), Some("/tls"));
    assert_eq!(args.webhook_service, "palisade-webhook");
    assert_eq!(args.webhook_configuration, "palisade");
    assert_eq!(args.webhook_tls_secret, "palisade-webhook-tls");
    assert_eq!(args.sidecar_image_pull_policy, "IfNotPresent");
    assert_eq!(args.sidecar_log_level, "info");
    assert_eq!(args.native_sidecars, webhook::NativeSidecars::Auto);
    assert!(
        args.sidecar_image
            .starts_with("ghcr.io/palisade-dev/palisade-sidecar:")
    );

    let args = Cli::parse_from([
        "palisade-operator",
        "--webhook-tls",
        "cert-manager",
        "--sidecar-resources",
        r#"{"requests":{"cpu":"100m"}}"#,
    ])
    .webhook;
    assert_eq!(args.webhook_tls, webhook::TlsMode::CertManager);
    assert!(args.sidecar_resources.limits.is_none());
    assert!(Cli::try_parse_from(["palisade-operator", "--sidecar-resources", "{cpu"]).is_err());
    assert!(
        Cli::try_parse_from([
            "palisade-operator",
            "--sidecar-image-pull-policy",
            "Sometimes"
        ])
        .is_err()
    );
}

#[tokio::test]
async fn cert_manager_mode_serves_the_mounted_files_and_leaves_the_cluster_alone() {
    let dir = tempfile::tempdir().unwrap();
    let names = webhook::certs::service_dns_names("palisade-webhook", NAMESPACE);
    let (issued, _) = webhook::certs::reconcile(unix_now(), None, &names, &|_| None).unwrap();
    std::fs::write(dir.path().join("tls.crt"), &issued.leaf.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &issued.leaf.key_pem).unwrap();

    let api = fake_with_policies();
    let cert_dir = dir.path().to_str().unwrap().to_string();
    let (running, shutdown) = start(
        &api,
        &[
            "--webhook-tls",
            "cert-manager",
            "--webhook-cert-dir",
            &cert_dir,
        ],
    )
    .await;
    let body = serde_json::to_vec(&fixture("create-pod-from-replicaset.json")).unwrap();
    let mut reply = None;
    for _ in 0..100 {
        if let Ok(r) = post(&running, issued.ca_bundle_pem().as_bytes(), body.clone()).await {
            reply = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = reply.expect("the mounted certificate is served");
    assert_eq!(reply.status, StatusCode::OK);
    // cert-manager's CA injector owns caBundle; the operator keeps no Secret.
    assert!(api.secret(SECRET).is_none());
    assert_eq!(api.ca_bundle(0), None);

    shutdown.cancel();
    running.wait().await.unwrap();
}

#[tokio::test]
async fn a_broken_masking_rule_fails_only_the_policies_it_selects() {
    let api = fake_with_policies();
    // Passes the API server's schema in this fake, not the Rust types (an unknown mask type).
    api.add_object(json!({
        "apiVersion": "palisade.dev/v1alpha1", "kind": "MaskingRule",
        "metadata": {"name": "half-written", "namespace": "shop"},
        "spec": {"policySelector": {"matchLabels": {"pii": "true"}},
                 "columns": [{"table": "public.customers", "column": "email", "mask": {"type": "Scramble"}}]}
    }));
    let (running, shutdown) = start(&api, &[]).await;

    // orders-db is not selected by the rule: injected as usual.
    let request = fixture("create-pod-from-replicaset.json");
    let response = review(&running, &api, &request).await;
    assert!(response["response"]["warnings"].is_null(), "{response}");

    // analytics-db is: skipped, naming the rule.
    let mut request = fixture("create-pod-from-replicaset.json");
    request["request"]["object"]["metadata"]["labels"] =
        json!({"team": "data", "palisade.dev/inject": "true"});
    let response = review(&running, &api, &request).await;
    let warning = response["response"]["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("DatabasePolicy analytics-db does not render")
            && warning.contains("MaskingRule half-written"),
        "{warning}"
    );

    shutdown.cancel();
    running.wait().await.unwrap();
}
