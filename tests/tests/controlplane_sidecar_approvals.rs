//! Approvals in a cluster, the sidecar's side, against a real API server: a statement held
//! by the real sidecar binary (running as an injected pod's service account, with the Role
//! the operator binds) becomes an ApprovalRequest object, the steward — logged in through
//! Dex — approves it with `kubectl palisade approve`, and the statement runs; the request's
//! status and Events follow every transition.

use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

use palisade_tests::controlplane::operator::Operator;
use palisade_tests::controlplane::{ControlPlane, STEWARD, wait_for};
use palisade_tests::free_port;
use palisade_tests::pg::{PgCluster, SUPERUSER};
use palisade_tests::sidecar::{Sidecar, SidecarOptions, plugin_binary};
use serde_json::Value;
use tokio_postgres::NoTls;

const WAIT: Duration = Duration::from_secs(60);
const NS: &str = "held";

struct Env {
    cp: &'static ControlPlane,
    _operator: Operator,
}

fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Env> = OnceLock::new();
    let cp = ControlPlane::shared()?;
    Some(ENV.get_or_init(|| Env {
        cp,
        _operator: Operator::install(cp).unwrap_or_else(|e| panic!("operator: {e:#}")),
    }))
}

fn policy(listen: u16, pg_port: u16) -> String {
    format!(
        "apiVersion: palisade.dev/v1alpha1
kind: DatabasePolicy
metadata: {{name: orders-db, namespace: {NS}}}
spec:
  podSelector: {{matchLabels: {{app: shop}}}}
  listen: {{port: {listen}}}
  database: {{host: 127.0.0.1, port: {pg_port}, tls: {{mode: Disable}}}}
  rules:
  - name: order-changes
    match: {{operations: [Delete], tables: [public.orders]}}
    action: RequireApproval
    approval:
      approvers: {{users: [\"oidc:{steward}\"]}}
      timeout: 2m
      grantTtl: \"0\"
",
        steward = STEWARD.0
    )
}

fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {NS}
  labels: {{app: shop, palisade.dev/inject: \"true\"}}
spec:
  containers:
  - {{name: app, image: registry.example/app:1, command: [sleep, infinity]}}
"
    )
}

fn plugin(cp: &ControlPlane, kubeconfig: &std::path::Path, args: &[&str]) -> Output {
    std::process::Command::new(plugin_binary())
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .current_dir(cp.dir())
        .output()
        .unwrap()
}

fn events(cp: &ControlPlane, name: &str) -> Vec<String> {
    cp.get_json(&[
        "-n",
        NS,
        "events",
        "--field-selector",
        &format!("involvedObject.name={name}"),
    ])
    .and_then(|list| list["items"].as_array().cloned())
    .unwrap_or_default()
    .iter()
    .filter_map(|e| e["reason"].as_str().map(str::to_string))
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_statement_is_an_approval_request_the_steward_approves_through_the_cluster() {
    let Some(env) = env() else { return };
    let cp = env.cp;
    let pg = PgCluster::shared();
    pg.create_database("held").unwrap();
    pg.psql(
        "held",
        "CREATE TABLE IF NOT EXISTS orders(id int primary key); INSERT INTO orders VALUES (1), (2) ON CONFLICT DO NOTHING",
    )
    .unwrap();

    cp.namespace(NS);
    let listen = free_port();
    let yaml = policy(listen, pg.port);
    cp.apply(&yaml).unwrap();
    // An injected pod: the operator binds the sidecar Role to its service account.
    wait_for(WAIT, "pod admitted with a sidecar", || {
        cp.apply(&pod("shop-1")).unwrap();
        let stored = cp.get_json(&["-n", NS, "pod", "shop-1"])?;
        let containers = stored["spec"]["containers"].as_array()?.len()
            + stored["spec"]["initContainers"]
                .as_array()
                .map_or(0, Vec::len);
        (containers > 1).then_some(stored)
    });
    wait_for(WAIT, "RoleBinding palisade-sidecar", || {
        cp.get_json(&["-n", NS, "rolebinding", "palisade-sidecar"])
            .filter(|rb| rb.to_string().contains("\"default\""))
    });

    // The sidecar binary, out of cluster, as that pod's service account.
    let sidecar_kc = cp.service_account_kubeconfig(NS, "default").unwrap();
    let sidecar = Sidecar::start(SidecarOptions {
        policy_yaml: yaml,
        port: listen,
        extra_args: vec![
            "--approvals".into(),
            "kubernetes".into(),
            "--service-account".into(),
            format!("{NS}/default"),
            "--pod".into(),
            "shop-1".into(),
        ],
        env: vec![("KUBECONFIG".into(), sidecar_kc.display().to_string())],
        ..Default::default()
    })
    .unwrap();

    let (client, connection) =
        tokio_postgres::connect(&sidecar.conn_str(SUPERUSER, None, "held"), NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let held =
        tokio::spawn(async move { client.execute("DELETE FROM orders WHERE id = 1", &[]).await });

    let request: Value = wait_for(WAIT, "an ApprovalRequest for the held DELETE", || {
        let list = cp.get_json(&["-n", NS, "approvalrequests"])?;
        let item = list["items"].as_array()?.first()?.clone();
        (item["status"]["state"] == "Pending").then_some(item)
    });
    let name = request["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(
        request["metadata"]["labels"]["palisade.dev/policy"],
        "orders-db"
    );
    assert_eq!(request["spec"]["rule"], "order-changes");
    assert_eq!(
        request["spec"]["statement"],
        "DELETE FROM orders WHERE id = $1"
    );
    assert_eq!(
        request["spec"]["requester"]["serviceAccount"],
        format!("{NS}/default")
    );
    assert_eq!(request["spec"]["requester"]["pod"], "shop-1");
    assert!(!held.is_finished(), "the DELETE waits for the approval");

    // The admin endpoint still lists it (decisions there are refused: they go through the
    // API server, where the approver is authenticated).
    let (status, body) = sidecar.admin_get("/approvals").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&name), "{body}");

    // People decide through the API server with the rights a Role gives them.
    cp.apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: approvers, namespace: {NS}}}
rules:
- {{apiGroups: [palisade.dev], resources: [approvalrequests], verbs: [get, list, watch, patch]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: approvers, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: approvers}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: 'oidc:{}'}}
",
        STEWARD.0
    ))
    .unwrap();
    let steward = cp.steward_kubeconfig().unwrap();
    let out = plugin(
        cp,
        &steward,
        &["approve", &name, "-n", NS, "--comment", "ok"],
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let deleted = tokio::time::timeout(WAIT, held)
        .await
        .expect("the DELETE runs once approved")
        .unwrap()
        .unwrap();
    assert_eq!(deleted, 1);

    let request = wait_for(WAIT, "the request Approved", || {
        cp.get_json(&["-n", NS, "approvalrequest", &name])
            .filter(|r| r["status"]["state"] == "Approved")
    });
    assert_eq!(
        request["spec"]["decisions"][0]["user"],
        format!("oidc:{}", STEWARD.0),
        "the approver is who the API server authenticated"
    );
    let reasons = wait_for(WAIT, "the request's Events", || {
        let reasons = events(cp, &name);
        (reasons.contains(&"ApprovalRequested".to_string())
            && reasons.contains(&"Approved".to_string()))
        .then_some(reasons)
    });
    assert!(reasons.len() >= 2, "{reasons:?}");
    // The pod whose sidecar held the statement hears of it too.
    wait_for(WAIT, "the pod's approval Events", || {
        let reasons = events(cp, "shop-1");
        (reasons.contains(&"ApprovalRequested".to_string())
            && reasons.contains(&"Approved".to_string()))
        .then_some(reasons)
    });

    // A cancel (Ctrl-C) while held withdraws the request in the cluster too.
    let (client, connection) =
        tokio_postgres::connect(&sidecar.conn_str(SUPERUSER, None, "held"), NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let cancel = client.cancel_token();
    let held =
        tokio::spawn(async move { client.execute("DELETE FROM orders WHERE id = 2", &[]).await });
    let second = wait_for(WAIT, "a second ApprovalRequest", || {
        let list = cp.get_json(&["-n", NS, "approvalrequests"])?;
        list["items"]
            .as_array()?
            .iter()
            .find(|r| r["metadata"]["name"] != name.as_str() && r["status"]["state"] == "Pending")
            .and_then(|r| r["metadata"]["name"].as_str().map(str::to_string))
    });
    cancel.cancel_query(NoTls).await.unwrap();
    let err = tokio::time::timeout(WAIT, held)
        .await
        .expect("a cancelled hold ends")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
    wait_for(WAIT, "the second request Withdrawn", || {
        cp.get_json(&["-n", NS, "approvalrequest", &second])
            .filter(|r| r["status"]["state"] == "Withdrawn")
    });
    // A decision on a withdrawn request is refused by the webhook.
    let late = plugin(cp, &steward, &["approve", &second, "-n", NS]);
    assert_eq!(late.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&late.stderr).contains("no longer Pending"),
        "{}",
        String::from_utf8_lossy(&late.stderr)
    );
}
