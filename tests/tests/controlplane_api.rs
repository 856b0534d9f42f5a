//! Against a real kube-apiserver (tests/src/controlplane): the CRDs install, the server itself
//! enforces every CEL rule with the message users see, `kubectl explain` shows the field docs,
//! `kubectl get` shows the printer columns, and each test identity is who the server says.
//!
//! The cases mirror operator/tests/crd_cel.rs, which evaluates the same rules client-side:
//! there a rule can be checked without a cluster, here the API server (its CEL cost budget, its
//! defaulting, its transition rules on update) has the last word.

use std::sync::OnceLock;
use std::time::Duration;

#[path = "../../operator/tests/cel_cases/mod.rs"]
mod cel_cases;

use palisade_tests::controlplane::{
    CONTRACTOR_GROUP, CONTRACTOR_USER, ControlPlane, STEWARD, Who, wait_for,
};

/// The shared control plane with the CRDs installed and namespace `ml`; `None` = skipped.
fn cluster() -> Option<&'static ControlPlane> {
    static READY: OnceLock<()> = OnceLock::new();
    let cp = ControlPlane::shared()?;
    READY.get_or_init(|| {
        cp.install_crds();
        cp.namespace("ml");
    });
    Some(cp)
}

fn policy(name: &str, tail: &str) -> String {
    format!(
        "apiVersion: palisade.dev/v1alpha1\nkind: DatabasePolicy\nmetadata: {{name: {name}, namespace: ml}}\nspec:\n  database: {{host: db}}\n{tail}"
    )
}

fn masking(name: &str, mask: &str) -> String {
    format!(
        "apiVersion: palisade.dev/v1alpha1\nkind: MaskingRule\nmetadata: {{name: {name}, namespace: ml}}\nspec:\n  columns:\n  - {{table: public.t, column: c, mask: {mask}}}\n"
    )
}

/// `kubectl create` must fail, and the server's message must name the field and the rule.
fn assert_refused(cp: &ControlPlane, manifest: &str, field: &str, message: &str) {
    let out = cp.kubectl_with(
        &cp.kubeconfig(Who::Admin),
        &["create", "-f", "-"],
        Some(manifest),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the API server accepted an invalid object:\n{manifest}"
    );
    assert!(
        stderr.contains(field) && stderr.contains(message),
        "expected the server to name `{field}` with `{message}`, it said: {stderr}\nfor:\n{manifest}"
    );
}

fn assert_accepted(cp: &ControlPlane, manifest: &str) {
    let out = cp.kubectl_with(
        &cp.kubeconfig(Who::Admin),
        &["create", "-f", "-"],
        Some(manifest),
    );
    assert!(
        out.status.success(),
        "the API server refused a valid object: {}\n{manifest}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_server_enforces_the_database_policy_rules() {
    let Some(cp) = cluster() else { return };
    let cases = cel_cases::database_policy_refusals();
    for (i, (tail, field, message)) in cases.iter().enumerate() {
        assert_refused(cp, &policy(&format!("bad-{i}"), tail), field, message);
    }
    assert_accepted(cp, &policy("cel-ok", cel_cases::DATABASE_POLICY_ACCEPTED));
}

#[test]
fn the_server_enforces_the_masking_rule_rules() {
    let Some(cp) = cluster() else { return };
    for (i, (mask, field, message)) in cel_cases::MASKING_RULE_REFUSALS.iter().enumerate() {
        assert_refused(cp, &masking(&format!("bad-{i}"), mask), field, message);
    }
    for (i, ok) in cel_cases::MASKING_RULE_ACCEPTED.iter().enumerate() {
        assert_accepted(cp, &masking(&format!("ok-{i}"), ok));
    }
}

const REQUEST: &str = "apiVersion: palisade.dev/v1alpha1
kind: ApprovalRequest
metadata: {name: NAME, namespace: ml}
spec:
  policy: features-db
  rule: customer-export
  requester: {user: alice@example.com, groups: [contractors]}
  statement: SELECT * FROM customers WHERE region = $1
  fingerprint: sha256:abc
  tables: [public.customers]
  justification: quarterly churn model
  expiresAt: 2026-11-26T10:05:00Z
";

const BOB: &str = "{verdict: Approve, comment: ok for Q4, user: bob@example.com, groups: [data-stewards], at: '2026-11-26T10:01:00Z'}";
const CAROL: &str = "{verdict: Approve, user: carol@example.com, groups: [data-stewards]}";

fn request(name: &str, decisions: &[&str]) -> String {
    let mut text = REQUEST.replace("NAME", name);
    if !decisions.is_empty() {
        text.push_str(&format!("  decisions: [{}]\n", decisions.join(", ")));
    }
    text
}

/// `kubectl replace` (a full update, so transition rules see old and new) must fail naming
/// the field and the rule.
fn assert_update_refused(cp: &ControlPlane, manifest: &str, field: &str, message: &str) {
    let out = cp.kubectl_with(
        &cp.kubeconfig(Who::Admin),
        &["replace", "-f", "-"],
        Some(manifest),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the server accepted the update:\n{manifest}"
    );
    assert!(
        stderr.contains(field) && stderr.contains(message),
        "expected `{field}` with `{message}`, the server said: {stderr}"
    );
}

#[test]
fn the_server_keeps_approval_decisions_append_only() {
    let Some(cp) = cluster() else { return };
    assert_accepted(cp, &request("append", &[BOB]));
    let append_only = "decisions are append-only";
    assert_update_refused(cp, &request("append", &[]), "decisions", append_only);
    let edited = BOB.replace("ok for Q4", "changed my mind");
    assert_update_refused(cp, &request("append", &[&edited]), "decisions", append_only);
    let flipped = BOB.replace("Approve", "Deny");
    assert_update_refused(
        cp,
        &request("append", &[&flipped, CAROL]),
        "decisions",
        append_only,
    );
    // Appending is what approvers do, and it is allowed.
    let out = cp.kubectl_with(
        &cp.kubeconfig(Who::Admin),
        &["replace", "-f", "-"],
        Some(&request("append", &[BOB, CAROL])),
    );
    assert!(
        out.status.success(),
        "appending a decision was refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let immutable = request("immutable", &[]);
    assert_accepted(cp, &immutable);
    assert_update_refused(
        cp,
        &immutable.replace("region = $1", "1 = 1"),
        "statement",
        "is immutable",
    );
    assert_update_refused(
        cp,
        &immutable.replace("alice@example.com", "mallory@example.com"),
        "requester",
        "is immutable",
    );
    assert_update_refused(
        cp,
        &immutable.replace("  justification: quarterly churn model\n", ""),
        "spec",
        "cannot be removed once set",
    );

    assert_refused(
        cp,
        &request("own", &["{verdict: Approve, user: alice@example.com}"]),
        "decisions",
        "the requester may not decide their own request",
    );
    assert_refused(
        cp,
        &request("twice", &[BOB, BOB]),
        "decisions",
        "each approver decides once",
    );
}

#[test]
fn the_server_keeps_a_decided_request_decided() {
    let Some(cp) = cluster() else { return };
    assert_accepted(cp, &request("decided", &[BOB]));
    let status = |state: &str| {
        cp.kubectl(
            Who::Admin,
            &[
                "-n",
                "ml",
                "patch",
                "approvalrequest",
                "decided",
                "--subresource=status",
                "--type=merge",
                "-p",
                &format!("{{\"status\":{{\"state\":\"{state}\"}}}}"),
            ],
        )
    };
    for state in ["Pending", "Approved"] {
        let out = status(state);
        assert!(
            out.status.success(),
            "{state}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for state in ["Pending", "Expired"] {
        let out = status(state);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("a decided request stays decided"),
            "Approved → {state} was not refused with the rule's message: {stderr}"
        );
    }
}

#[test]
fn the_shipped_examples_are_accepted_as_they_are() {
    let Some(cp) = cluster() else { return };
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for file in ["databasepolicy.yaml", "maskingrule.yaml"] {
        let out = cp.kubectl(
            Who::Admin,
            &[
                "apply",
                "--dry-run=server",
                "-f",
                examples.join(file).to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "the API server refused examples/{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn kubectl_explain_shows_the_field_docs() {
    let Some(cp) = cluster() else { return };
    // The API server publishes a new CRD's OpenAPI a moment after it is Established.
    let listen = palisade_tests::controlplane::wait_for(
        std::time::Duration::from_secs(30),
        "kubectl explain databasepolicy.spec.listen",
        || {
            let out = cp.kubectl(Who::Admin, &["explain", "databasepolicy.spec.listen"]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        },
    );
    assert!(
        listen.contains("Where the sidecar listens for the app"),
        "{listen}"
    );
    let action = cp.kubectl_ok(&["explain", "dbpolicy.spec.rules.action"]);
    assert!(action.contains("RequireApproval"), "{action}");
    let mask = cp.kubectl_ok(&["explain", "maskingrule.spec"]);
    assert!(mask.contains("Masks sensitive values"), "{mask}");
}

#[test]
fn kubectl_get_shows_the_printer_columns() {
    let Some(cp) = cluster() else { return };
    assert_accepted(
        cp,
        &policy("columns", "  rules:\n  - {name: a, action: Deny}\n")
            .replace("host: db", "host: db.example"),
    );
    let plain = cp.kubectl_ok(&["-n", "ml", "get", "dbpolicy", "columns"]);
    let header: Vec<&str> = plain
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "READY", "RULES", "INJECTED", "AGE"],
        "{plain}"
    );
    let wide = cp.kubectl_ok(&["-n", "ml", "get", "dbpolicy", "columns", "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap_or_default().contains("HOST"),
        "{wide}"
    );
    assert!(wide.contains("db.example"), "{wide}");
    assert_accepted(cp, &masking("columns", "{type: Email}"));
    let masks = cp.kubectl_ok(&["-n", "ml", "get", "maskrule", "columns"]);
    let header = masks.lines().next().unwrap_or_default();
    assert!(
        header.contains("DERIVED") && header.contains("PREDICATES"),
        "{masks}"
    );
}

#[test]
fn each_identity_is_who_the_server_authenticates() {
    let Some(cp) = cluster() else { return };
    let whoami = |kubeconfig: &std::path::Path| {
        let out = cp.kubectl_with(kubeconfig, &["auth", "whoami", "-o", "json"], None);
        assert!(
            out.status.success(),
            "kubectl auth whoami: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["status"]["userInfo"].clone()
    };
    let admin = whoami(&cp.kubeconfig(Who::Admin));
    assert_eq!(admin["username"], "palisade-admin");
    assert!(
        admin["groups"].to_string().contains("system:masters"),
        "{admin}"
    );

    let contractor = whoami(&cp.kubeconfig(Who::Contractor));
    assert_eq!(contractor["username"], CONTRACTOR_USER);
    assert!(
        contractor["groups"].to_string().contains(CONTRACTOR_GROUP),
        "{contractor}"
    );
    // Authenticated is not authorized: nothing grants the contractor policies.
    let out = cp.kubectl(Who::Contractor, &["-n", "ml", "get", "dbpolicy"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Forbidden"),
        "the contractor could list policies: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The steward logs in at Dex with a password grant; the API server verifies the ID token
    // against Dex's keys and maps its email claim.
    let steward = cp.steward_kubeconfig().expect("the steward logs in");
    let user = whoami(&steward);
    let steward_user = format!("oidc:{}", STEWARD.0);
    assert_eq!(user["username"], steward_user, "{user}");
    let wrong = cp.oidc_login(STEWARD.0, "not-the-password");
    let refusal = format!("{:#}", wrong.expect_err("a wrong password got a token"));
    assert!(refusal.contains("401"), "{refusal}");
    // RBAC grants the steward by that user name (Dex's password database has no groups):
    // reading ApprovalRequests in `ml`, and nothing elsewhere.
    cp.apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: approval-reader, namespace: ml}}
rules:
- {{apiGroups: [palisade.dev], resources: [approvalrequests], verbs: [get, list, watch]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: steward-reads-approvals, namespace: ml}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: approval-reader}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: '{steward_user}'}}
"
    ))
    .expect("the steward's RoleBinding");
    let can = |namespace: &str| {
        let args = [
            "auth",
            "can-i",
            "list",
            "approvalrequests.palisade.dev",
            "-n",
            namespace,
        ];
        let out = cp.kubectl_with(&steward, &args, None);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // The authorizer sees the binding once its informer has it.
    wait_for(
        Duration::from_secs(10),
        "the steward's RoleBinding to take effect",
        || (can("ml") == "yes").then_some(()),
    );
    assert_eq!(can("default"), "no");
    let out = cp.kubectl_with(&steward, &["-n", "ml", "get", "approvalrequests"], None);
    assert!(
        out.status.success(),
        "the steward could not list approval requests: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A token the issuer did not sign is refused by the server.
    let forged = cp.dir().join("forged.kubeconfig");
    let text = std::fs::read_to_string(&steward).unwrap();
    let token_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("token:"))
        .unwrap();
    let token = token_line.trim_start().trim_start_matches("token:").trim();
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[2] = parts[2].chars().rev().collect();
    std::fs::write(&forged, text.replace(token, &parts.join("."))).unwrap();
    let out = cp.kubectl_with(&forged, &["auth", "whoami"], None);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Unauthorized"),
        "a token with a broken signature was accepted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
