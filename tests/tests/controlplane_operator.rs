//! The operator against a real API server, run out of cluster as its ServiceAccount with the
//! chart's RBAC (tests/src/controlplane/operator.rs): reconcile by server-side apply with
//! status and Events, garbage collection by the real controller manager, injection through
//! the real webhook call, the sidecar run from the stored pod against a real PostgreSQL, and
//! least privilege as the API server's authorizer sees it.

use std::sync::{OnceLock, RwLock, RwLockReadGuard};
use std::time::Duration;

use palisade_tests::controlplane::kubelet::PodContainer;
use palisade_tests::controlplane::operator::Operator;
use palisade_tests::controlplane::{ControlPlane, OPERATOR_NAMESPACE, Who, wait_for};
use palisade_tests::free_port;
use palisade_tests::pg::{PgCluster, SUPERUSER};
use serde_json::Value;

const SIDECAR: &str = "palisade-sidecar";
const WAIT: Duration = Duration::from_secs(60);

struct Env {
    cp: &'static ControlPlane,
    operator: Operator,
}

/// Tests take this shared; the outage test takes it exclusively, since it stops the
/// operator every other test relies on.
static OPERATOR_UP: RwLock<()> = RwLock::new(());

fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Env> = OnceLock::new();
    let cp = ControlPlane::shared()?;
    Some(ENV.get_or_init(|| Env {
        cp,
        operator: Operator::install(cp).unwrap_or_else(|e| panic!("operator: {e:#}")),
    }))
}

fn shared() -> Option<(&'static Env, RwLockReadGuard<'static, ()>)> {
    let env = env()?;
    Some((env, OPERATOR_UP.read().unwrap_or_else(|p| p.into_inner())))
}

fn policy(ns: &str, name: &str, app: &str, listen: u16, pg_port: u16, rules: &str) -> String {
    format!(
        "apiVersion: palisade.dev/v1alpha1
kind: DatabasePolicy
metadata: {{name: {name}, namespace: {ns}}}
spec:
  podSelector: {{matchLabels: {{app: {app}}}}}
  listen: {{port: {listen}}}
  database: {{host: 127.0.0.1, port: {pg_port}, tls: {{mode: Disable}}}}
  rules:
{rules}"
    )
}

const DENY_DROP: &str = "  - {name: no-drop, match: {operations: [Drop]}, action: Deny, message: no DROP from workloads}\n";

fn pod(ns: &str, name: &str, app: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
  labels: {{app: {app}, palisade.dev/inject: \"true\"}}
spec:
  containers:
  - {{name: app, image: registry.example/app:1, command: [sleep, infinity]}}
"
    )
}

/// Creates the pod and returns it as stored once it was admitted with a sidecar. The webhook
/// matches pods against its watch cache of policies, which may lag a new policy by a moment:
/// a pod admitted before the cache has it gets no sidecar (and is reported), so the pod is
/// re-created until the cache has caught up.
fn create_injected_pod(cp: &ControlPlane, ns: &str, name: &str, app: &str) -> Value {
    wait_for(
        WAIT,
        &format!("pod {ns}/{name} admitted with a sidecar"),
        || {
            cp.apply(&pod(ns, name, app)).unwrap();
            let stored = cp.get_json(&["-n", ns, "pod", name])?;
            if sidecars(&stored) == 0 {
                cp.kubectl_ok(&["-n", ns, "delete", "pod", name, "--wait=true"]);
                return None;
            }
            Some(stored)
        },
    )
}

fn condition(policy: &Value, type_: &str) -> Option<Value> {
    policy["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

/// Waits until the policy's Ready condition has `status` for its current generation.
fn wait_ready(cp: &ControlPlane, ns: &str, name: &str, status: &str) -> Value {
    wait_for(
        WAIT,
        &format!("DatabasePolicy {ns}/{name} Ready={status}"),
        || {
            let p = cp.get_json(&["-n", ns, "dbpolicy", name])?;
            let ready = condition(&p, "Ready")?;
            (ready["status"] == status
                && ready["observedGeneration"] == p["metadata"]["generation"])
                .then_some(p)
        },
    )
}

fn events(cp: &ControlPlane, ns: &str, object: &str) -> Vec<Value> {
    cp.get_json(&[
        "-n",
        ns,
        "events",
        "--field-selector",
        &format!("involvedObject.name={object}"),
    ])
    .and_then(|v| v["items"].as_array().cloned())
    .unwrap_or_default()
}

fn config_map(cp: &ControlPlane, ns: &str, policy: &str) -> Option<Value> {
    cp.get_json(&["-n", ns, "configmap", &format!("palisade-policy-{policy}")])
}

fn policy_json(cm: &Value) -> Value {
    serde_json::from_str(cm["data"]["policy.json"].as_str().expect("policy.json key"))
        .expect("policy.json is JSON")
}

fn sidecars(pod: &Value) -> usize {
    let spec = &pod["spec"];
    spec["initContainers"]
        .as_array()
        .into_iter()
        .chain(spec["containers"].as_array())
        .flatten()
        .filter(|c| c["name"] == SIDECAR)
        .count()
}

#[test]
fn a_policy_is_rendered_by_server_side_apply_with_status_and_events() {
    let Some((env, _up)) = shared() else { return };
    let cp = env.cp;
    let ns = "reconcile";
    cp.namespace(ns);
    cp.apply(&policy(ns, "orders", "orders", 6432, 5432, DENY_DROP))
        .unwrap();

    let p = wait_ready(cp, ns, "orders", "True");
    assert_eq!(p["status"]["ruleCount"], 1, "{}", p["status"]);
    let cm = wait_for(WAIT, "ConfigMap palisade-policy-orders", || {
        cp.get_json(&[
            "-n",
            ns,
            "configmap",
            "palisade-policy-orders",
            "--show-managed-fields",
        ])
    });
    let rendered = policy_json(&cm);
    assert!(rendered.to_string().contains("no-drop"), "{rendered}");
    // Applied server-side by the operator's field manager, owned by the policy as controller.
    let managers = cm["metadata"]["managedFields"].as_array().unwrap();
    assert!(
        managers
            .iter()
            .any(|m| m["manager"] == "palisade-operator" && m["operation"] == "Apply"),
        "not applied server-side by palisade-operator: {managers:?}"
    );
    let owner = &cm["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "DatabasePolicy");
    assert_eq!(owner["name"], "orders");
    assert_eq!(owner["uid"], p["metadata"]["uid"]);
    assert_eq!(owner["controller"], true);
    let reasons: Vec<String> = events(cp, ns, "orders")
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect();
    assert!(
        reasons.iter().any(|r| r == "Rendered"),
        "events: {reasons:?}"
    );

    // A MaskingRule for the namespace's policies re-renders the ConfigMap.
    let before = cm["data"]["policy.json"].clone();
    cp.apply(
        "apiVersion: palisade.dev/v1alpha1
kind: MaskingRule
metadata: {name: pii, namespace: reconcile}
spec:
  policySelector: {}
  columns:
  - {table: public.customers, column: email, mask: {type: Email}}
",
    )
    .unwrap();
    let cm = wait_for(
        WAIT,
        "the ConfigMap re-rendered with the MaskingRule",
        || config_map(cp, ns, "orders").filter(|cm| cm["data"]["policy.json"] != before),
    );
    let rendered = policy_json(&cm).to_string();
    assert!(
        rendered.contains("email") && rendered.contains("customers"),
        "{rendered}"
    );

    // An invalid spec the schema cannot catch: Ready=False naming the field, and the last
    // good rendering stays in place for the pods that use it.
    let good = cm["data"]["policy.json"].clone();
    cp.apply(&policy(
        ns,
        "orders",
        "orders",
        6432,
        5432,
        &format!("{DENY_DROP}  - {{name: no-drop, action: Allow}}\n"),
    ))
    .unwrap();
    let p = wait_ready(cp, ns, "orders", "False");
    let ready = condition(&p, "Ready").unwrap();
    assert_eq!(ready["reason"], "InvalidSpec", "{ready}");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("spec.rules[1].name"),
        "{ready}"
    );
    assert_eq!(
        config_map(cp, ns, "orders").unwrap()["data"]["policy.json"],
        good
    );
    let out = cp.kubectl_ok(&["-n", ns, "get", "dbpolicy", "orders"]);
    assert!(out.contains("False"), "READY column: {out}");

    // Deleting the policy: the garbage collector removes what it owned.
    cp.kubectl_ok(&["-n", ns, "delete", "dbpolicy", "orders", "--wait=true"]);
    wait_for(WAIT, "the ConfigMap garbage-collected", || {
        config_map(cp, ns, "orders").is_none().then_some(())
    });
}

#[test]
fn a_pod_is_injected_through_the_real_webhook_and_runs_its_policy() {
    let Some((env, _up)) = shared() else { return };
    let cp = env.cp;
    let pg = PgCluster::shared();
    let ns = "shop";
    cp.namespace(ns);
    let listen = free_port();
    cp.apply(&policy(ns, "shop-db", "shop", listen, pg.port, DENY_DROP))
        .unwrap();
    wait_ready(cp, ns, "shop-db", "True");
    let cm = wait_for(WAIT, "ConfigMap palisade-policy-shop-db", || {
        config_map(cp, ns, "shop-db")
    });
    let stored = create_injected_pod(cp, ns, "shop-1", "shop");
    assert_eq!(
        sidecars(&stored),
        1,
        "no sidecar in the stored pod: {}",
        stored["spec"]
    );
    assert!(
        stored["metadata"]["annotations"]["palisade.dev/injected"].is_string(),
        "{}",
        stored["metadata"]
    );
    let sidecar = stored["spec"]["initContainers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == SIDECAR))
        .expect("a native sidecar (init container) on a 1.37 API server");
    assert_eq!(sidecar["restartPolicy"], "Always");

    // Re-admission of the injected pod (same spec, new name) adds nothing.
    let mut again = stored.clone();
    let meta = again["metadata"].as_object_mut().unwrap();
    for k in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
    ] {
        meta.remove(k);
    }
    meta.insert("name".into(), "shop-2".into());
    again.as_object_mut().unwrap().remove("status");
    cp.apply(&again.to_string()).unwrap();
    let second = cp.get_json(&["-n", ns, "pod", "shop-2"]).unwrap();
    assert_eq!(sidecars(&second), 1, "{}", second["spec"]);
    assert_eq!(
        second["spec"]["volumes"].as_array().map(Vec::len),
        stored["spec"]["volumes"].as_array().map(Vec::len),
        "volumes added twice"
    );

    // The kubelet's part: the sidecar from the stored pod, its ConfigMap as a directory.
    let mut pc = PodContainer::start(
        cp,
        ns,
        "shop-1",
        SIDECAR,
        &palisade_tests::sidecar::sidecar_binary(),
    )
    .unwrap();
    pc.wait_listening(listen, Duration::from_secs(30)).unwrap();
    assert!(
        pc.host_path("/etc/palisade/policies/shop-db/..data")
            .is_symlink(),
        "the ConfigMap is not laid out like the kubelet's"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let conn = format!("host=127.0.0.1 port={listen} user={SUPERUSER} dbname=postgres");
        let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("through the sidecar: {e}\n{}", pc.logs()));
        tokio::spawn(connection);
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS cp_orders(id int)")
            .await
            .unwrap();
        let err = client.batch_execute("DROP TABLE cp_orders").await.unwrap_err();
        assert!(
            format!("{err:?}").contains("no DROP from workloads"),
            "DROP was not denied by the policy: {err:?}"
        );
        client.batch_execute("TRUNCATE cp_orders").await.unwrap();

        // A changed policy: the ConfigMap updated, the directory swapped, the new rule enforced
        // on the session that was already open.
        let rules = format!(
            "{DENY_DROP}  - {{name: no-truncate, match: {{operations: [Truncate]}}, action: Deny, message: no TRUNCATE either}}\n"
        );
        cp.apply(&policy(ns, "shop-db", "shop", listen, pg.port, &rules))
            .unwrap();
        let before = cm["data"]["policy.json"].clone();
        wait_for(WAIT, "the ConfigMap updated", || {
            config_map(cp, ns, "shop-db").filter(|c| c["data"]["policy.json"] != before)
        });
        assert_eq!(pc.sync_volumes(cp).unwrap(), 1, "the volume was not swapped");
        let mut denied = false;
        for _ in 0..100 {
            match client.batch_execute("TRUNCATE cp_orders").await {
                Err(e) if format!("{e:?}").contains("no TRUNCATE either") => {
                    denied = true;
                    break;
                }
                Err(e) => panic!("unexpected error: {e:?}"),
                Ok(()) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        assert!(denied, "the new rule was not enforced; sidecar log:\n{}", pc.logs());
        let rows = client.simple_query("SELECT 1").await.unwrap();
        assert!(!rows.is_empty(), "the session did not survive the reload");
    });
    assert!(pc.running(), "the sidecar exited:\n{}", pc.logs());
}

#[test]
fn the_examples_give_a_deployments_pods_a_sidecar_with_truthful_status() {
    let Some((env, _up)) = shared() else { return };
    let cp = env.cp;
    cp.namespace("ml");
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let out = cp.kubectl(Who::Admin, &["apply", "-f", examples.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "kubectl apply -f examples/: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its Secrets do not exist here, and the status says so, naming them.
    let p = wait_ready(cp, "ml", "features-db", "False");
    let ready = condition(&p, "Ready").unwrap();
    assert_eq!(ready["reason"], "SecretNotFound", "{ready}");
    assert!(
        ready["message"].as_str().unwrap().contains("pg-ca"),
        "{ready}"
    );
    // The controller manager's Deployment and ReplicaSet controllers create the pod; the API
    // server sends it through the webhook.
    let pod = wait_for(WAIT, "a trainer pod", || {
        cp.get_json(&["-n", "ml", "pods", "-l", "app=trainer"])
            .and_then(|l| l["items"].as_array()?.first().cloned())
    });
    assert_eq!(sidecars(&pod), 1, "{}", pod["spec"]);
    let mounts = pod.to_string();
    assert!(mounts.contains("palisade-policy-features-db"), "{mounts}");
}

#[test]
fn the_operator_and_the_sidecars_have_least_privilege() {
    let Some((env, _up)) = shared() else { return };
    let cp = env.cp;
    let ns = "rbac";
    cp.namespace(ns);
    cp.apply(&policy(ns, "rbac-db", "rbac", 6432, 5432, DENY_DROP))
        .unwrap();
    wait_ready(cp, ns, "rbac-db", "True");
    create_injected_pod(cp, ns, "rbac-1", "rbac");
    // The operator binds the sidecar Role to the injected pods' service accounts.
    wait_for(WAIT, "RoleBinding palisade-sidecar", || {
        cp.get_json(&["-n", ns, "rolebinding", "palisade-sidecar"])
            .filter(|rb| rb.to_string().contains("\"default\""))
    });

    let can = |who: &str, args: &[&str]| -> bool {
        let mut all = vec!["auth", "can-i", "--as", who];
        all.extend_from_slice(args);
        let out = cp.kubectl(Who::Admin, &all);
        match String::from_utf8_lossy(&out.stdout).trim() {
            "yes" => true,
            "no" => false,
            other => panic!(
                "kubectl auth can-i {args:?}: {other} {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    };
    let operator = format!("system:serviceaccount:{OPERATOR_NAMESPACE}:palisade-operator");
    let own = OPERATOR_NAMESPACE;
    let allowed: &[&[&str]] = &[
        &["list", "databasepolicies.palisade.dev", "-n", ns],
        &["watch", "databasepolicies.palisade.dev", "-n", ns],
        &[
            "get",
            "databasepolicies.palisade.dev",
            "-n",
            ns,
            "--subresource=status",
        ],
        &[
            "patch",
            "databasepolicies.palisade.dev",
            "-n",
            ns,
            "--subresource=status",
        ],
        &["watch", "maskingrules.palisade.dev", "-n", ns],
        &["watch", "approvalrequests.palisade.dev", "-n", ns],
        &["create", "approvalrequests.palisade.dev", "-n", ns],
        // Approval history past approvalRetention.
        &["delete", "approvalrequests.palisade.dev", "-n", ns],
        // Held only to grant it to the sidecars, which set a request's state.
        &[
            "patch",
            "approvalrequests.palisade.dev",
            "-n",
            ns,
            "--subresource=status",
        ],
        &["create", "configmaps", "-n", ns],
        &["patch", "configmaps", "-n", ns],
        &["delete", "configmaps", "-n", ns],
        &["watch", "pods", "-n", ns],
        &["patch", "pods", "-n", ns],
        // The webhook follows a pod's ReplicaSet to its Deployment (workload identity).
        &["get", "replicasets.apps", "-n", ns],
        &["get", "secrets", "-n", ns],
        &["create", "events", "-n", ns],
        &["patch", "events.events.k8s.io", "-n", ns],
        &["create", "roles", "-n", ns],
        &["patch", "rolebindings", "-n", ns],
        &["watch", "secrets", "-n", own],
        &["update", "secrets", "-n", own],
        &["update", "leases.coordination.k8s.io", "-n", own],
        &["patch", "mutatingwebhookconfigurations/palisade"],
    ];
    let denied: &[&[&str]] = &[
        // Secret contents are never listed or cached outside its own namespace.
        &["list", "secrets", "-n", ns],
        &["watch", "secrets", "-n", ns],
        &["create", "secrets", "-n", ns],
        &["update", "databasepolicies.palisade.dev", "-n", ns],
        &["delete", "databasepolicies.palisade.dev", "-n", ns],
        &["update", "approvalrequests.palisade.dev", "-n", ns],
        &["create", "pods", "-n", ns],
        &["list", "replicasets.apps", "-n", ns],
        &["get", "deployments.apps", "-n", ns],
        &["delete", "pods", "-n", ns],
        &["create", "pods/exec", "-n", ns],
        &["update", "configmaps", "-n", ns],
        &["create", "serviceaccounts/token", "-n", ns],
        &["patch", "mutatingwebhookconfigurations/someone-else"],
        &["patch", "validatingwebhookconfigurations"],
        &["create", "clusterroles"],
        &["create", "clusterrolebindings"],
        &["bind", "roles", "-n", ns],
        &["escalate", "roles", "-n", ns],
        &["update", "leases.coordination.k8s.io", "-n", ns],
        &["get", "nodes"],
    ];
    let sidecar = format!("system:serviceaccount:{ns}:default");
    let sidecar_allowed: &[&[&str]] = &[
        &["create", "events", "-n", ns],
        &["patch", "events.events.k8s.io", "-n", ns],
        &["create", "approvalrequests.palisade.dev", "-n", ns],
        &["get", "approvalrequests.palisade.dev", "-n", ns],
        &["list", "approvalrequests.palisade.dev", "-n", ns],
        &["watch", "approvalrequests.palisade.dev", "-n", ns],
        // The sidecar sets the state (Pending, then Approved, Denied, Expired, Withdrawn).
        &[
            "patch",
            "approvalrequests.palisade.dev",
            "-n",
            ns,
            "--subresource=status",
        ],
        &[
            "update",
            "approvalrequests.palisade.dev",
            "-n",
            ns,
            "--subresource=status",
        ],
    ];
    let sidecar_denied: &[&[&str]] = &[
        // A sidecar must never decide or rewrite the requests it holds statements for.
        &["update", "approvalrequests.palisade.dev", "-n", ns],
        &["patch", "approvalrequests.palisade.dev", "-n", ns],
        &["delete", "approvalrequests.palisade.dev", "-n", ns],
        &["create", "approvalrequests.palisade.dev", "-n", "default"],
        &["get", "secrets", "-n", ns],
        &["get", "configmaps", "-n", ns],
        &["get", "databasepolicies.palisade.dev", "-n", ns],
        &["list", "pods", "-n", ns],
    ];
    let mut wrong = Vec::new();
    for (who, list, expect) in [
        (&operator, allowed, true),
        (&operator, denied, false),
        (&sidecar, sidecar_allowed, true),
        (&sidecar, sidecar_denied, false),
    ] {
        for args in list {
            if can(who, args) != expect {
                wrong.push(format!(
                    "{who} {} {}",
                    if expect { "cannot" } else { "CAN" },
                    args.join(" ")
                ));
            }
        }
    }
    // The same questions with the identities' own tokens (SelfSubjectAccessReview), not
    // impersonation: what the sidecar's mounted token and the operator's token can do.
    let own_token = |kubeconfig: &std::path::Path, args: &[&str]| -> bool {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        let out = cp.kubectl_with(kubeconfig, &all, None);
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    let sidecar_kc = cp.service_account_kubeconfig(ns, "default").unwrap();
    let operator_kc = cp.kubeconfig(Who::Operator);
    let status = [
        "patch",
        "databasepolicies.palisade.dev",
        "-n",
        ns,
        "--subresource=status",
    ];
    for (kc, args, expect) in [
        (
            &sidecar_kc,
            &["create", "approvalrequests.palisade.dev", "-n", ns][..],
            true,
        ),
        (
            &sidecar_kc,
            &["update", "approvalrequests.palisade.dev", "-n", ns][..],
            false,
        ),
        (&sidecar_kc, &["get", "secrets", "-n", ns][..], false),
        (&operator_kc, &status[..], true),
        (&operator_kc, &["list", "secrets", "-n", ns][..], false),
    ] {
        if own_token(kc, args) != expect {
            wrong.push(format!(
                "{} with its own token: {} expected {expect}",
                kc.display(),
                args.join(" ")
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "RBAC is not least privilege:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn with_the_operator_down_pods_are_admitted_and_surfaced_once_it_is_back() {
    let Some(env) = env() else { return };
    let _down = OPERATOR_UP.write().unwrap_or_else(|p| p.into_inner());
    let cp = env.cp;
    let ns = "outage";
    cp.namespace(ns);
    cp.apply(&policy(ns, "outage-db", "outage", 6432, 5432, DENY_DROP))
        .unwrap();
    wait_ready(cp, ns, "outage-db", "True");

    env.operator.stop(cp);
    let created = std::time::Instant::now();
    cp.apply(&pod(ns, "bare-1", "outage"))
        .expect("failurePolicy Ignore admits the pod while the webhook is down");
    assert!(
        created.elapsed() < Duration::from_secs(10),
        "admission waited for the timeout"
    );
    let stored = cp.get_json(&["-n", ns, "pod", "bare-1"]).unwrap();
    assert_eq!(sidecars(&stored), 0, "a sidecar without a webhook?");

    env.operator.start(cp).expect("the operator restarts");
    let event = wait_for(WAIT, "a NotInjected Event for the bare pod", || {
        events(cp, ns, "bare-1")
            .into_iter()
            .find(|e| e["reason"] == "NotInjected")
    });
    assert_eq!(event["type"], "Warning", "{event}");
}

/// The approvals webhook and the plugin against the real API server: the sidecar's service
/// account (its token, with the Role the operator granted) creates a request and sets its
/// state; people decide with `kubectl palisade approve` under their own logins, and the
/// stored decision names who the API server authenticated.
#[test]
fn decisions_on_approval_requests_name_the_identity_the_api_server_verified() {
    let Some((env, _up)) = shared() else { return };
    let cp = env.cp;
    let ns = "approvals";
    cp.namespace(ns);
    let steward = format!("oidc:{}", palisade_tests::controlplane::STEWARD.0);
    let rules = format!(
        "  - name: customer-export
    match: {{operations: [Delete]}}
    action: RequireApproval
    approval: {{approvers: {{users: ['{steward}'], groups: [data-stewards]}}}}
"
    );
    cp.apply(&policy(ns, "features-db", "notebook", 6432, 5432, &rules))
        .unwrap();
    wait_ready(cp, ns, "features-db", "True");
    cp.kubectl_ok(&["-n", ns, "create", "serviceaccount", "notebook"]);
    // The sidecar's identity is its pod's service account, bound by the operator to the
    // sidecar Role once an injected pod runs under it.
    wait_for(WAIT, "pod approvals/notebook-0 with a sidecar", || {
        cp.apply(&format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: notebook-0
  namespace: {ns}
  labels: {{app: notebook, palisade.dev/inject: \"true\"}}
spec:
  serviceAccountName: notebook
  containers:
  - {{name: app, image: registry.example/notebook:1, command: [sleep, infinity]}}
"
        ))
        .unwrap();
        let stored = cp.get_json(&["-n", ns, "pod", "notebook-0"])?;
        if sidecars(&stored) == 0 {
            cp.kubectl_ok(&["-n", ns, "delete", "pod", "notebook-0", "--wait=true"]);
            return None;
        }
        Some(stored)
    });
    wait_for(WAIT, "RoleBinding palisade-sidecar naming notebook", || {
        cp.get_json(&["-n", ns, "rolebinding", "palisade-sidecar"])
            .filter(|rb| rb.to_string().contains("\"notebook\""))
    });
    let sidecar = cp.service_account_kubeconfig(ns, "notebook").unwrap();
    // People need RBAC to reach the webhook at all: both may patch requests here, and the
    // webhook decides whose decision counts.
    cp.apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: approvers, namespace: {ns}}}
rules:
- {{apiGroups: [palisade.dev], resources: [approvalrequests], verbs: [get, list, watch, patch]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: approvers, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: approvers}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: '{steward}'}}
- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: contractors}}
"
    ))
    .unwrap();

    let request = |name: &str, decisions: &str| {
        format!(
            "apiVersion: palisade.dev/v1alpha1
kind: ApprovalRequest
metadata: {{name: {name}, namespace: {ns}, labels: {{palisade.dev/policy: features-db}}}}
spec:
  policy: features-db
  rule: customer-export
  requester: {{user: alice@example.com, serviceAccount: {ns}/notebook, pod: notebook-0, dbUser: analyst}}
  statement: DELETE FROM customers WHERE region = $1
  fingerprint: sha256:ab
  operations: [Delete]
  tables: [public.customers]
  estimate: {{rows: 1840}}
  expiresAt: '2099-01-01T00:00:00Z'
  decisions: {decisions}
"
        )
    };
    let create = |manifest: &str| cp.kubectl_with(&sidecar, &["create", "-f", "-"], Some(manifest));
    // A request is born undecided.
    let forged = create(&request(
        "features-db-forged",
        "[{verdict: Approve, user: 'oidc:steward@example.com'}]",
    ));
    assert!(!forged.status.success(), "created with a decision");
    assert!(
        String::from_utf8_lossy(&forged.stderr).contains("carries no decisions"),
        "{}",
        String::from_utf8_lossy(&forged.stderr)
    );
    for name in ["features-db-7f3a9c", "features-db-typed"] {
        let out = create(&request(name, "[]"));
        assert!(
            out.status.success(),
            "the sidecar's service account creates {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = cp.kubectl_with(
            &sidecar,
            &[
                "-n",
                ns,
                "patch",
                "approvalrequest",
                name,
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"state":"Pending"}}"#,
            ],
            None,
        );
        assert!(
            out.status.success(),
            "the sidecar's service account sets the state: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let plugin = |kubeconfig: &std::path::Path, args: &[&str]| {
        std::process::Command::new(palisade_tests::sidecar::plugin_binary())
            .args(args)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .output()
            .unwrap()
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let name = "features-db-7f3a9c";

    // The contractor may patch, but is no approver: the webhook's message, exit 1.
    let out = plugin(
        &cp.kubeconfig(Who::Contractor),
        &["approve", name, "-n", ns, "--comment", "mine"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("contractor is not an approver of rule customer-export"),
        "{}",
        text(&out.stderr)
    );

    // The steward, logged in through Dex, approves; the decision names the user the API
    // server mapped from the ID token.
    let steward_kc = cp.steward_kubeconfig().unwrap();
    let out = plugin(
        &steward_kc,
        &["approve", name, "-n", ns, "--comment", "ok for Q4"],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains(&steward),
        "{}",
        text(&out.stdout)
    );
    let stored = cp.get_json(&["-n", ns, "approvalrequest", name]).unwrap();
    let decisions = stored["spec"]["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 1, "{stored}");
    assert_eq!(decisions[0]["verdict"], "Approve");
    assert_eq!(decisions[0]["comment"], "ok for Q4");
    assert_eq!(decisions[0]["user"], steward.as_str());
    assert!(decisions[0]["at"].is_string(), "{stored}");

    // Whatever a client types into a decision, the API server's identity is stored.
    let out = cp.kubectl_with(
        &steward_kc,
        &[
            "-n",
            ns,
            "patch",
            "approvalrequest",
            "features-db-typed",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/spec/decisions/-","value":{"verdict":"Deny","user":"ceo@example.com","groups":["data-stewards"],"at":"1999-01-01T00:00:00Z"}}]"#,
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let typed = cp
        .get_json(&["-n", ns, "approvalrequest", "features-db-typed"])
        .unwrap();
    let d = &typed["spec"]["decisions"][0];
    assert_eq!(d["user"], steward.as_str(), "{typed}");
    assert_ne!(d["at"], "1999-01-01T00:00:00Z", "{typed}");
    assert!(
        !d["groups"].to_string().contains("data-stewards"),
        "groups are the API server's: {typed}"
    );

    // A decision cannot be rewritten, not even by the one who made it.
    let out = cp.kubectl_with(
        &steward_kc,
        &[
            "-n",
            ns,
            "patch",
            "approvalrequest",
            name,
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/decisions/0/verdict","value":"Deny"}]"#,
        ],
        None,
    );
    assert!(!out.status.success(), "a decision was rewritten");
    assert!(
        text(&out.stderr).contains("decision 0 was changed"),
        "{}",
        text(&out.stderr)
    );

    // Listed, as the steward sees them (pending: the state is the sidecar's to settle).
    let out = plugin(&steward_kc, &["approvals", "-n", ns]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains(name) && table.contains("alice@example.com"),
        "{table}"
    );
    assert!(table.contains("1840"), "{table}");
    let out = plugin(
        &cp.kubeconfig(Who::Admin),
        &["approvals", "-A", "--all", "-o", "json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let item = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not listed: {listed}"));
    assert_eq!(item["status"]["state"], "Pending");
    assert_eq!(item["spec"]["decisions"][0]["user"], steward.as_str());
}
