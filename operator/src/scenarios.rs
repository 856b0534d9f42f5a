//! Reconcile scenarios against a mock API server: each test runs one reconcile and checks,
//! in order, every HTTP request the controller makes (method, path, the body fields that
//! matter), answering as the API server would.

use std::sync::Arc;

use futures::StreamExt;
use http::{Method, StatusCode};
use kube::runtime::controller::Action;
use palisade_policy::{DatabasePolicy, RenderedPolicy};
use serde_json::{Value, json};

use crate::controller::{RESYNC, RETRY_MISSING, reconcile};
use crate::fixtures::{ApiServerVerifier, Seen, context, masking_rule, pod};
use crate::pods::reconcile_pod;

const SPEC: &str = "  podSelector: {matchLabels: {app: trainer}}\n  database: {host: features-pg.data.svc, credentialsSecretRef: {name: trainer-db}}\n  rules:\n  - {name: no-ddl, action: Deny, match: {operations: [Drop]}}\n";

fn features_db() -> DatabasePolicy {
    crate::fixtures::policy("features-db", "ml", SPEC)
}

fn assert_apply(seen: &Seen, path: &str) {
    assert_eq!(seen.method, Method::PATCH, "{}", seen.uri);
    assert_eq!(seen.path(), path);
    assert!(
        seen.uri.contains("fieldManager=palisade-operator"),
        "{}",
        seen.uri
    );
    assert!(seen.uri.contains("force=true"), "{}", seen.uri);
}

/// ConfigMap apply: checks ownership and labels, returns the document.
async fn expect_config_map(api: &mut ApiServerVerifier, policy: &str) -> RenderedPolicy {
    let seen = api.echo().await;
    assert_apply(
        &seen,
        &format!("/api/v1/namespaces/ml/configmaps/palisade-policy-{policy}"),
    );
    let meta = &seen.body["metadata"];
    assert_eq!(
        meta["labels"]["app.kubernetes.io/managed-by"],
        "palisade-operator"
    );
    assert_eq!(meta["labels"]["palisade.dev/policy"], policy);
    let owner = &meta["ownerReferences"][0];
    assert_eq!(owner["kind"], "DatabasePolicy");
    assert_eq!(owner["name"], policy);
    assert_eq!(owner["uid"], format!("uid-{policy}"));
    assert_eq!(owner["controller"], true);
    let text = seen.body["data"]["policy.json"].as_str().unwrap();
    RenderedPolicy::from_json("configmap", text).unwrap()
}

/// Role and RoleBinding applies; returns (owner names, subject names).
async fn expect_rbac(api: &mut ApiServerVerifier) -> (Vec<String>, Vec<String>) {
    let role = api.echo().await;
    assert_apply(
        &role,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/ml/roles/palisade-sidecar",
    );
    let rules = role.body["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4);
    let binding = api.echo().await;
    assert_apply(
        &binding,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/ml/rolebindings/palisade-sidecar",
    );
    assert_eq!(binding.body["roleRef"]["name"], "palisade-sidecar");
    let names = |v: &Value, key: &str| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|o| o[key].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let owners = names(&role.body["metadata"]["ownerReferences"], "name");
    assert_eq!(
        owners,
        names(&binding.body["metadata"]["ownerReferences"], "name")
    );
    (owners, names(&binding.body["subjects"], "name"))
}

async fn expect_status(api: &mut ApiServerVerifier, policy: &str) -> Value {
    let seen = api.status().await;
    assert_apply(
        &seen,
        &format!("/apis/palisade.dev/v1alpha1/namespaces/ml/databasepolicies/{policy}/status"),
    );
    assert_eq!(seen.body["kind"], "DatabasePolicy");
    seen.body["status"].clone()
}

async fn expect_event(api: &mut ApiServerVerifier, regarding: &str) -> Value {
    let seen = api.echo().await;
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path(), "/apis/events.k8s.io/v1/namespaces/ml/events");
    assert_eq!(seen.body["regarding"]["name"], regarding);
    assert_eq!(seen.body["reportingController"], "palisade-operator");
    seen.body
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

#[tokio::test]
async fn policy_created_applies_config_map_status_and_event() {
    let (ctx, mut api, mut caches) = context();
    let policy = features_db();
    let injected = pod(
        "trainer-0",
        "ml",
        &[
            ("palisade.dev/injected", "0.1.0"),
            ("palisade.dev/policies", "features-db=sha256:old"),
            ("palisade.dev/secrets", "trainer-db"),
        ],
    );
    let bare = pod("trainer-1", "ml", &[]);
    caches.fill(std::slice::from_ref(&policy), &[], &[injected, bare]);
    let run = tokio::spawn(reconcile(Arc::new(policy), ctx.clone()));

    let document = expect_config_map(&mut api, "features-db").await;
    assert_eq!(document.key(), "ml/features-db");
    assert_eq!(document.spec.rules.len(), 1);
    api.secret("ml", "trainer-db", true).await;
    let (owners, subjects) = expect_rbac(&mut api).await;
    assert_eq!(owners, ["features-db"]);
    assert_eq!(subjects, ["default"]);
    let status = expect_status(&mut api, "features-db").await;
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["policyHash"], json!(document.policy_hash));
    assert_eq!(status["renderedConfigMap"], "palisade-policy-features-db");
    assert_eq!(status["ruleCount"], 1);
    assert_eq!(status["injectedPods"], 1);
    assert_eq!(status["uninjectedPods"], 1);
    let ready = condition(&status, "Ready");
    assert_eq!(ready["status"], "True");
    assert_eq!(ready["lastTransitionTime"], "2026-01-01T00:00:00Z");
    assert_eq!(
        condition(&status, "ReferencesResolved")["reason"],
        "SecretsFound"
    );
    let event = expect_event(&mut api, "features-db").await;
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["reason"], "Rendered");
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains(&document.policy_hash)
    );

    assert_eq!(run.await.unwrap().unwrap(), Action::requeue(RESYNC));
    api.expect_no_request().await;
    // The new hash makes the pod controller re-check the namespace's pods.
    let mut rechecked: Vec<String> = Vec::new();
    while let Ok(r) = caches.pod_triggers.try_recv() {
        rechecked.push(r.name);
    }
    rechecked.sort();
    assert_eq!(rechecked, ["trainer-0", "trainer-1"]);
}

#[tokio::test]
async fn an_unchanged_policy_writes_no_status_and_no_event() {
    let (ctx, mut api, mut caches) = context();
    let mut policy = features_db();
    caches.fill(std::slice::from_ref(&policy), &[], &[]);
    // First pass, to learn the status the controller writes.
    let run = tokio::spawn(reconcile(Arc::new(policy.clone()), ctx.clone()));
    expect_config_map(&mut api, "features-db").await;
    api.secret("ml", "trainer-db", true).await;
    expect_rbac(&mut api).await;
    let status = expect_status(&mut api, "features-db").await;
    expect_event(&mut api, "features-db").await;
    run.await.unwrap().unwrap();

    policy.status = Some(serde_json::from_value(status).unwrap());
    let run = tokio::spawn(reconcile(Arc::new(policy), ctx.clone()));
    expect_config_map(&mut api, "features-db").await;
    api.secret("ml", "trainer-db", true).await;
    expect_rbac(&mut api).await;
    api.expect_no_request().await;
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn masking_rule_change_rerenders_with_a_new_hash() {
    let (ctx, mut api, mut caches) = context();
    let mut policy = features_db();
    caches.fill(std::slice::from_ref(&policy), &[], &[]);
    let run = tokio::spawn(reconcile(Arc::new(policy.clone()), ctx.clone()));
    let before = expect_config_map(&mut api, "features-db").await;
    api.secret("ml", "trainer-db", true).await;
    expect_rbac(&mut api).await;
    let status = expect_status(&mut api, "features-db").await;
    expect_event(&mut api, "features-db").await;
    run.await.unwrap().unwrap();
    policy.status = Some(serde_json::from_value(status).unwrap());

    // A MaskingRule appears: the controller's MaskingRule watch asks for every policy of
    // its namespace to be reconciled again.
    let rule = masking_rule(
        "customer-pii",
        "ml",
        "  columns:\n  - {table: public.customers, column: phone, mask: {type: Hash, keySecretRef: {name: mask-key, key: hmac}}}\n",
    );
    caches.fill(
        std::slice::from_ref(&policy),
        std::slice::from_ref(&rule),
        &[],
    );
    ctx.recheck_policies("ml");
    let queued = caches.policy_triggers.next().await.unwrap();
    assert_eq!(queued.name, "features-db");

    let run = tokio::spawn(reconcile(Arc::new(policy), ctx.clone()));
    let after = expect_config_map(&mut api, "features-db").await;
    assert_ne!(after.policy_hash, before.policy_hash);
    assert_eq!(after.masking_rules[0].name, "customer-pii");
    api.secret("ml", "mask-key", false).await;
    api.secret("ml", "trainer-db", true).await;
    expect_rbac(&mut api).await;
    let status = expect_status(&mut api, "features-db").await;
    assert_eq!(status["policyHash"], json!(after.policy_hash));
    assert_eq!(status["maskingRules"], json!(["customer-pii"]));
    let refs = condition(&status, "ReferencesResolved");
    assert_eq!(refs["status"], "False");
    assert_eq!(
        refs["message"],
        "not found: Secret mask-key (referenced by MaskingRule customer-pii spec.columns[0].mask.keySecretRef)"
    );
    assert_eq!(condition(&status, "Ready")["reason"], "SecretNotFound");
    let rendered = expect_event(&mut api, "features-db").await;
    assert_eq!(rendered["reason"], "Rendered");
    // A new event, not a repeat of the first render's: it names the ConfigMap's new version.
    assert_eq!(rendered["related"]["kind"], "ConfigMap");
    assert_eq!(rendered["related"]["name"], "palisade-policy-features-db");
    assert!(
        rendered["note"]
            .as_str()
            .unwrap()
            .contains("MaskingRules customer-pii")
    );
    let warning = expect_event(&mut api, "features-db").await;
    assert_eq!(warning["type"], "Warning");
    assert_eq!(warning["reason"], "SecretNotFound");
    assert_eq!(run.await.unwrap().unwrap(), Action::requeue(RETRY_MISSING));
}

#[tokio::test]
async fn invalid_policy_is_not_ready_and_names_the_field() {
    let (ctx, mut api, mut caches) = context();
    let policy = crate::fixtures::policy(
        "features-db",
        "ml",
        "  database: {host: db}\n  rules:\n  - {name: a, action: Deny}\n  - {name: b, action: Allow}\n  - {name: export, action: RequireApproval, approval: {approvers: {groups: [stewards]}, minApprovals: 0}}\n",
    );
    caches.fill(std::slice::from_ref(&policy), &[], &[]);
    let run = tokio::spawn(reconcile(Arc::new(policy), ctx.clone()));
    // No ConfigMap is written: sidecars keep the last good policy. RBAC is still kept.
    expect_rbac(&mut api).await;
    let status = expect_status(&mut api, "features-db").await;
    let ready = condition(&status, "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidSpec");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.starts_with("spec.rules[2].approval.minApprovals: must be at least 1"),
        "{message}"
    );
    assert_eq!(condition(&status, "Rendered")["status"], "False");
    assert_eq!(
        condition(&status, "ReferencesResolved")["status"],
        "Unknown"
    );
    assert!(status.get("policyHash").is_none());
    let event = expect_event(&mut api, "features-db").await;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "InvalidSpec");
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains("spec.rules[2].approval.minApprovals")
    );
    run.await.unwrap().unwrap();
    api.expect_no_request().await;
}

#[tokio::test]
async fn deletion_leaves_nothing_behind() {
    let (ctx, mut api, mut caches) = context();
    let a = crate::fixtures::policy("a", "ml", "  database: {host: db}\n");
    let b = crate::fixtures::policy("b", "ml", "  database: {host: db}\n");
    caches.fill(&[a.clone(), b.clone()], &[], &[]);

    // The sidecar RBAC is owned by every policy of the namespace, so the garbage collector
    // removes it with the last one.
    let run = tokio::spawn(reconcile(Arc::new(a.clone()), ctx.clone()));
    expect_config_map(&mut api, "a").await;
    let (owners, _) = expect_rbac(&mut api).await;
    assert_eq!(owners, ["a", "b"]);
    expect_status(&mut api, "a").await;
    expect_event(&mut api, "a").await;
    run.await.unwrap().unwrap();

    // A policy being deleted: nothing to do (its ConfigMap is owned by it), no finalizer.
    let mut deleting = a.clone();
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
    assert!(deleting.metadata.finalizers.is_none());
    let run = tokio::spawn(reconcile(Arc::new(deleting), ctx.clone()));
    assert_eq!(run.await.unwrap().unwrap(), Action::await_change());
    api.expect_no_request().await;

    // Once `a` is gone, `b`'s reconcile leaves `b` the only owner: when `b` goes too, nothing owns
    // the Role and RoleBinding and they are collected.
    caches.fill(std::slice::from_ref(&b), &[], &[]);
    let run = tokio::spawn(reconcile(Arc::new(b), ctx.clone()));
    expect_config_map(&mut api, "b").await;
    let (owners, _) = expect_rbac(&mut api).await;
    assert_eq!(owners, ["b"]);
    expect_status(&mut api, "b").await;
    expect_event(&mut api, "b").await;
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn api_errors_fail_the_reconcile_with_what_was_being_done() {
    let (ctx, mut api, mut caches) = context();
    let policy = features_db();
    caches.fill(std::slice::from_ref(&policy), &[], &[]);
    let run = tokio::spawn(reconcile(Arc::new(policy), ctx.clone()));
    let forbidden = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403, "message": "configmaps is forbidden"});
    api.answer(StatusCode::FORBIDDEN, forbidden).await;
    let err = run.await.unwrap().unwrap_err().to_string();
    assert!(
        err.starts_with("applying ConfigMap ml/palisade-policy-features-db"),
        "{err}"
    );
    assert!(ctx.metrics.encode().unwrap().contains("error=\"kube\""));
}

#[tokio::test]
async fn pods_without_a_sidecar_are_reported_once() {
    let (ctx, mut api, mut caches) = context();
    let bare = pod("trainer-1", "ml", &[]);
    let skipped = pod(
        "trainer-2",
        "ml",
        &[(
            "palisade.dev/injection-skipped",
            "hostNetwork pods share the node's loopback",
        )],
    );
    caches.fill(&[features_db()], &[], &[bare.clone(), skipped.clone()]);

    let run = tokio::spawn(reconcile_pod(Arc::new(bare.clone()), ctx.clone()));
    let event = expect_event(&mut api, "trainer-1").await;
    assert_eq!(event["reason"], "NotInjected");
    assert_eq!(event["type"], "Warning");
    run.await.unwrap().unwrap();
    // Policies are recounted after a pod changes.
    assert_eq!(
        caches.policy_triggers.next().await.unwrap().name,
        "features-db"
    );
    // Reported once.
    reconcile_pod(Arc::new(bare), ctx.clone()).await.unwrap();
    api.expect_no_request().await;

    let run = tokio::spawn(reconcile_pod(Arc::new(skipped), ctx.clone()));
    let event = expect_event(&mut api, "trainer-2").await;
    assert_eq!(event["reason"], "InjectionSkipped");
    assert!(event["note"].as_str().unwrap().contains("hostNetwork"));
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn pods_running_an_older_policy_with_new_secrets_are_marked_for_restart() {
    let (ctx, mut api, mut caches) = context();
    let policy = features_db();
    let old = pod(
        "trainer-0",
        "ml",
        &[
            ("palisade.dev/injected", "0.1.0"),
            ("palisade.dev/policies", "features-db=sha256:old"),
            ("palisade.dev/secrets", ""),
        ],
    );
    caches.fill(
        std::slice::from_ref(&policy),
        &[],
        std::slice::from_ref(&old),
    );
    // Render once so the controller knows the policy's current hash and Secrets.
    let run = tokio::spawn(reconcile(Arc::new(policy), ctx.clone()));
    expect_config_map(&mut api, "features-db").await;
    api.secret("ml", "trainer-db", true).await;
    expect_rbac(&mut api).await;
    expect_status(&mut api, "features-db").await;
    expect_event(&mut api, "features-db").await;
    run.await.unwrap().unwrap();

    let run = tokio::spawn(reconcile_pod(Arc::new(old), ctx.clone()));
    let patch = api.echo().await;
    assert_eq!(patch.method, Method::PATCH);
    assert_eq!(patch.path(), "/api/v1/namespaces/ml/pods/trainer-0");
    let reason = patch.body["metadata"]["annotations"]["palisade.dev/restart-needed"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        reason,
        "DatabasePolicy features-db now references Secret(s) trainer-db that this pod does not mount"
    );
    let event = expect_event(&mut api, "trainer-0").await;
    assert_eq!(event["reason"], "RestartNeeded");
    assert_eq!(event["note"], json!(reason));
    run.await.unwrap().unwrap();
}
