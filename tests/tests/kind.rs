//! End-to-end on a real Kubernetes cluster: the chart installed, the examples applied, the
//! example Deployment injected. Ignored by default; `tests/kind/run.sh` sets up a kind cluster
//! and runs them with `cargo test -p palisade-tests --test kind -- --ignored`.
//!
//! They talk to the cluster through `kubectl` (as a person would), configured by:
//! `PALISADE_KIND_CONTEXT` (kubeconfig context; default: the current one),
//! `PALISADE_KIND_NAMESPACE` (default `ml`) and `PALISADE_KIND_APP` (the example app's
//! `app` label and container name, default `trainer`).

use std::process::{Command, Output};

use serde_json::Value;

const POLICY: &str = "features-db";
const SIDECAR: &str = "palisade-sidecar";

fn namespace() -> String {
    std::env::var("PALISADE_KIND_NAMESPACE").unwrap_or_else(|_| "ml".into())
}

fn app() -> String {
    std::env::var("PALISADE_KIND_APP").unwrap_or_else(|_| "trainer".into())
}

fn kubectl(args: &[&str]) -> Output {
    let mut cmd = Command::new("kubectl");
    if let Ok(context) = std::env::var("PALISADE_KIND_CONTEXT") {
        cmd.args(["--context", &context]);
    }
    cmd.args(["--namespace", &namespace()]).args(args);
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"))
}

fn kubectl_ok(args: &[&str]) -> String {
    let out = kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("kubectl prints UTF-8")
}

fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&kubectl_ok(&all)).expect("kubectl -o json prints JSON")
}

/// The running pod of the example Deployment.
fn app_pod() -> Value {
    let selector = format!("app={}", app());
    let pods = json(&[
        "get",
        "pods",
        "-l",
        &selector,
        "--field-selector",
        "status.phase=Running",
    ]);
    let items = pods["items"].as_array().expect("a pod list");
    assert!(!items.is_empty(), "no running pod labelled {selector}");
    items[0].clone()
}

/// psql in the app container, through the sidecar on localhost (the Deployment's PGHOST and
/// PGPORT). Verbose errors carry the SQLSTATE.
fn psql(sql: &str) -> Output {
    let pod = app_pod();
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    kubectl(&[
        "exec",
        &name,
        "-c",
        &app(),
        "--",
        "psql",
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
        "-v",
        "VERBOSITY=verbose",
        "-At",
        "-c",
        sql,
    ])
}

#[test]
#[ignore = "needs cluster"]
fn example_pod_got_the_sidecar_and_the_injected_annotation() {
    let pod = app_pod();
    let spec = &pod["spec"];
    let native = spec["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == SIDECAR);
    let regular = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == SIDECAR);
    match (native, regular) {
        (Some(c), None) => assert_eq!(
            c["restartPolicy"], "Always",
            "a native sidecar is an init container with restartPolicy Always"
        ),
        (None, Some(_)) => {}
        other => panic!("expected exactly one {SIDECAR} container, found {other:?}"),
    }
    let annotations = &pod["metadata"]["annotations"];
    let injected = annotations["palisade.dev/injected"].as_str().unwrap_or("");
    assert!(
        !injected.is_empty(),
        "annotation palisade.dev/injected missing: {annotations}"
    );
    assert!(
        annotations["palisade.dev/injection-skipped"].is_null(),
        "injection was skipped: {}",
        annotations["palisade.dev/injection-skipped"]
    );
    let policies = annotations["palisade.dev/policies"].as_str().unwrap_or("");
    assert!(
        policies.starts_with(&format!("{POLICY}=sha256:")),
        "palisade.dev/policies names the policy and its hash: {policies:?}"
    );
    // The sidecar is up: the pod is Ready, which includes the sidecar's readiness probe.
    let ready = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    assert!(ready, "pod not Ready: {}", pod["status"]);
}

#[test]
#[ignore = "needs cluster"]
fn policy_status_is_ready_with_the_hash_the_pod_runs() {
    let policy = json(&["get", "dbpolicy", POLICY]);
    let status = &policy["status"];
    let conditions = status["conditions"].as_array().expect("status.conditions");
    for kind in ["Ready", "Rendered", "ReferencesResolved"] {
        let condition = conditions
            .iter()
            .find(|c| c["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} condition: {status}"));
        assert_eq!(condition["status"], "True", "{kind}: {condition}");
    }
    assert_eq!(
        status["observedGeneration"], policy["metadata"]["generation"],
        "status describes the current generation"
    );
    let hash = status["policyHash"].as_str().expect("status.policyHash");
    assert!(hash.starts_with("sha256:"), "{hash}");
    assert_eq!(
        status["renderedConfigMap"],
        format!("palisade-policy-{POLICY}")
    );

    // The ConfigMap holds the document with that hash, and the pod runs it.
    let config_map = json(&["get", "configmap", &format!("palisade-policy-{POLICY}")]);
    let document: Value = serde_json::from_str(
        config_map["data"]["policy.json"]
            .as_str()
            .expect("policy.json"),
    )
    .expect("policy.json is JSON");
    assert_eq!(document["policyHash"], hash);
    let pod = app_pod();
    let policies = pod["metadata"]["annotations"]["palisade.dev/policies"]
        .as_str()
        .unwrap_or("");
    assert!(
        policies.split(',').any(|p| p == format!("{POLICY}={hash}")),
        "pod runs {policies:?}, policy is at {hash}"
    );
}

#[test]
#[ignore = "needs cluster"]
fn drop_is_denied_by_the_sidecar_and_select_goes_through() {
    let select = psql("SELECT count(*) FROM orders");
    assert!(
        select.status.success(),
        "SELECT through the sidecar failed: {}",
        String::from_utf8_lossy(&select.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&select.stdout).trim(), "3");

    // The app's role owns orders: only the sidecar stands between this DROP and the table.
    let drop = psql("DROP TABLE orders");
    let stderr = String::from_utf8_lossy(&drop.stderr);
    assert!(!drop.status.success(), "DROP TABLE was not refused");
    assert!(
        stderr.contains("42501"),
        "denial is SQLSTATE 42501: {stderr}"
    );
    assert!(
        stderr.contains("no-destructive-ddl"),
        "the error names the rule: {stderr}"
    );

    let after = psql("SELECT count(*) FROM orders");
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&after.stdout).trim(),
        "3",
        "the table is still there"
    );
}
