//! The admission webhook on ApprovalRequests (SPEC §2.3): every decision is stamped with the
//! identity the API server authenticated, and only an approver's appended decision on a
//! pending request gets in.
//!
//! - CREATE (a sidecar holding a statement): refused when the object already carries
//!   decisions — a request is born undecided.
//! - UPDATE: only decisions may be appended; each appended one gets `user` and `groups` from
//!   the AdmissionReview's `userInfo` and `at` from the webhook's clock, whatever the client
//!   typed, and is admitted by [`admit_update`] under the rule's `approval` settings, read
//!   from the request's DatabasePolicy. The answer is a JSON patch writing the stamped
//!   decisions to `/spec/decisions`.
//!
//! Unlike injection, this webhook fails closed: a policy or rule that cannot be found, an
//! object that does not parse, an API server that does not answer — each denies the update
//! with a message saying why. The chart registers it with `failurePolicy: Fail`, so an
//! operator that is down blocks decisions rather than letting unverified ones in.

use std::time::SystemTime;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use kube::Api;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::response::StatusSummary;
use palisade_policy::approval::{Decider, Refusal, admit_update, check_spec_update};
use palisade_policy::crd::ApprovalState;
use palisade_policy::model::{Approval, DatabasePolicySpec, RuleAction};
use palisade_policy::{ApprovalRequest, DatabasePolicy};
use tracing::{debug, info, warn};

use super::handler::WebhookState;
use super::policies::Policies;

/// The webhook's path on the operator's webhook server.
pub const PATH: &str = "/approvalrequests";

/// Why an admission request on an ApprovalRequest is denied: a message for the person who
/// sent it, and the HTTP-like code the API server answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    pub code: u16,
    pub message: String,
}

impl Denial {
    fn new(code: u16, message: impl Into<String>) -> Self {
        Denial {
            code,
            message: message.into(),
        }
    }
}

impl From<Refusal> for Denial {
    fn from(refusal: Refusal) -> Self {
        Denial::new(code(&refusal), refusal.to_string())
    }
}

/// The code an admission denial carries: 403 for who the decider is (not an approver, the
/// requester, no identity), 409 for where the request stands (no longer pending, already
/// decided by this person), 422 for a change that is not an append (an edited or removed
/// decision, a changed spec).
pub fn code(refusal: &Refusal) -> u16 {
    match refusal {
        Refusal::Unidentified | Refusal::NotApprover { .. } | Refusal::Requester { .. } => 403,
        Refusal::NotPending { .. } | Refusal::AlreadyDecided { .. } => 409,
        Refusal::DecisionEdited { .. }
        | Refusal::DecisionRemoved { .. }
        | Refusal::SpecChanged { .. } => 422,
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        400 => "BadRequest",
        _ => "InternalError",
    }
}

/// The answer to one admission request on an ApprovalRequest, judged at `now`.
pub async fn review_approval(
    state: &WebhookState,
    request: &AdmissionRequest<DynamicObject>,
    now: SystemTime,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    let is_approval_request =
        request.kind.group == "palisade.dev" && request.kind.kind == "ApprovalRequest";
    // The configuration routes the main resource only; a subresource (status, written by
    // the sidecar) or anything else passes untouched.
    if !is_approval_request || request.sub_resource.is_some() {
        debug!(uid = %request.uid, kind = %request.kind.kind, "not an ApprovalRequest; allowed unchanged");
        return response;
    }
    let name = request.name.clone();
    let namespace = request.namespace.clone().unwrap_or_default();
    let outcome = match request.operation {
        Operation::Create => admit_create(request).map(|()| None),
        Operation::Update => admit_decisions(state, request, &namespace, now).await,
        _ => Ok(None),
    };
    match outcome {
        Ok(None) => response,
        Ok(Some(patch)) => {
            let fallback = response.clone();
            match response.with_patch(patch) {
                Ok(r) => r,
                Err(e) => deny(
                    fallback,
                    &Denial::new(500, format!("the webhook could not write its patch: {e}")),
                ),
            }
        }
        Err(denial) => {
            info!(namespace, name, user = ?request.user_info.username, code = denial.code, message = %denial.message, "ApprovalRequest change refused");
            deny(response, &denial)
        }
    }
}

fn deny(mut response: AdmissionResponse, denial: &Denial) -> AdmissionResponse {
    response = response.deny(&denial.message);
    response.result.code = denial.code;
    response.result.reason = reason(denial.code).to_string();
    response.result.status = Some(StatusSummary::Failure);
    response
}

fn parse(object: Option<&DynamicObject>, which: &str) -> Result<ApprovalRequest, Denial> {
    let object = object.ok_or_else(|| {
        Denial::new(
            400,
            format!("the admission review carries no {which} ApprovalRequest"),
        )
    })?;
    serde_json::to_value(object)
        .and_then(serde_json::from_value)
        .map_err(|e| {
            Denial::new(
                422,
                format!("the {which} ApprovalRequest does not parse: {e}"),
            )
        })
}

fn admit_create(request: &AdmissionRequest<DynamicObject>) -> Result<(), Denial> {
    let created = parse(request.object.as_ref(), "new")?;
    if !created.spec.decisions.is_empty() {
        return Err(Denial::new(
            422,
            format!(
                "a new ApprovalRequest carries no decisions (this one has {}): approvers append them later with kubectl palisade approve|deny",
                created.spec.decisions.len()
            ),
        ));
    }
    Ok(())
}

/// `None` when nothing but metadata changed; the stamped decisions as a patch otherwise.
async fn admit_decisions(
    state: &WebhookState,
    request: &AdmissionRequest<DynamicObject>,
    namespace: &str,
    now: SystemTime,
) -> Result<Option<Patch>, Denial> {
    let old = parse(request.old_object.as_ref(), "stored")?;
    let new = parse(request.object.as_ref(), "updated")?;
    // Labels, annotations, finalizers: no decision, nothing to judge, and no policy needed
    // (it may be gone by the time a request is cleaned up).
    if check_spec_update(&old.spec, &new.spec)?.is_empty() {
        return Ok(None);
    }
    let approval = approval_settings(state, namespace, &old.spec.policy, &old.spec.rule).await?;
    let stored = old
        .status
        .as_ref()
        .map_or(ApprovalState::Pending, |s| s.state);
    let decider = Decider {
        user: request.user_info.username.clone().unwrap_or_default(),
        groups: request.user_info.groups.clone().unwrap_or_default(),
    };
    let (decisions, reached) =
        admit_update(&old.spec, &new.spec, stored, &approval, &decider, now)?;
    info!(
        namespace,
        name = request.name,
        user = decider.user,
        state = ?reached,
        "decision admitted"
    );
    let value = serde_json::to_value(&decisions).map_err(|e| {
        Denial::new(
            500,
            format!("the webhook could not write the decisions: {e}"),
        )
    })?;
    Ok(Some(Patch(vec![PatchOperation::Add(AddOperation {
        path: PointerBuf::from_tokens(["spec", "decisions"]),
        value,
    })])))
}

/// The `approval` settings of rule `rule` of DatabasePolicy `namespace/policy`, read from the
/// API server when the webhook has a client (so an approver removed from the policy a
/// moment ago is no longer one), from the given policies otherwise.
async fn approval_settings(
    state: &WebhookState,
    namespace: &str,
    policy: &str,
    rule: &str,
) -> Result<Approval, Denial> {
    let spec = match &state.client {
        Some(client) => {
            let api: Api<DatabasePolicy> = Api::namespaced(client.clone(), namespace);
            match api.get_opt(policy).await {
                Ok(found) => found.map(|p| p.spec),
                Err(e) => {
                    warn!(namespace, policy, error = %e, "reading the DatabasePolicy of an ApprovalRequest");
                    return Err(Denial::new(
                        503,
                        format!(
                            "the webhook could not read DatabasePolicy {namespace}/{policy} to check the approvers: {e}"
                        ),
                    ));
                }
            }
        }
        None => static_policy(&state.policies, namespace, policy),
    };
    let spec = spec.ok_or_else(|| {
        Denial::new(
            404,
            format!(
                "DatabasePolicy {namespace}/{policy} named by this request does not exist: nobody can decide it"
            ),
        )
    })?;
    rule_approval(&spec, namespace, policy, rule)
}

fn static_policy(policies: &Policies, namespace: &str, name: &str) -> Option<DatabasePolicySpec> {
    match policies {
        Policies::Static(docs) => docs
            .iter()
            .find(|d| d.namespace == namespace && d.name == name)
            .map(|d| d.spec.clone()),
        Policies::Cache { policies, .. } => policies
            .state()
            .into_iter()
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(namespace)
                    && p.metadata.name.as_deref() == Some(name)
            })
            .map(|p| p.spec.clone()),
    }
}

/// The rule's `approval`, refused when the rule is gone or does not require approval.
pub fn rule_approval(
    spec: &DatabasePolicySpec,
    namespace: &str,
    policy: &str,
    rule: &str,
) -> Result<Approval, Denial> {
    let found = spec.rules.iter().find(|r| r.name == rule).ok_or_else(|| {
        Denial::new(
            404,
            format!(
                "DatabasePolicy {namespace}/{policy} has no rule {rule:?} (named by this request): nobody can decide it"
            ),
        )
    })?;
    match (&found.action, &found.approval) {
        (RuleAction::RequireApproval, Some(approval)) => Ok(approval.clone()),
        _ => Err(Denial::new(
            409,
            format!(
                "rule {rule:?} of DatabasePolicy {namespace}/{policy} no longer requires approval: nobody can decide this request"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use base64::Engine;
    use palisade_policy::RenderedPolicy;
    use serde_json::{Value, json};

    use super::*;
    use crate::webhook::handler::wire_review;
    use crate::webhook::inject::InjectConfig;

    const NOW: &str = "2026-11-26T10:02:00Z";

    fn state() -> WebhookState {
        let spec: DatabasePolicySpec = serde_json::from_value(json!({
            "database": {"host": "db"},
            "rules": [
                {"name": "customer-export", "match": {"operations": ["Delete"]},
                 "action": "RequireApproval",
                 "approval": {"approvers": {"users": ["oidc:steward@example.com"], "groups": ["data-stewards"]}}},
                {"name": "no-drop", "match": {"operations": ["Drop"]}, "action": "Deny"}
            ]
        }))
        .unwrap();
        WebhookState {
            config: Arc::new(InjectConfig {
                version: "0.0.0".into(),
                image: "sidecar".into(),
                image_pull_policy: "IfNotPresent".into(),
                resources: Default::default(),
                log_level: "info".into(),
                native_sidecars: true,
            }),
            policies: Policies::Static(Arc::new(vec![RenderedPolicy::new(
                "ml",
                "features-db",
                spec,
                vec![],
            )])),
            client: None,
        }
    }

    fn object(decisions: Value, state: Option<&str>) -> Value {
        let mut o = json!({
            "apiVersion": "palisade.dev/v1alpha1",
            "kind": "ApprovalRequest",
            "metadata": {"name": "features-db-7f3a9c", "namespace": "ml",
                         "labels": {"palisade.dev/policy": "features-db"}},
            "spec": {
                "policy": "features-db",
                "rule": "customer-export",
                "requester": {"user": "alice@example.com", "groups": ["contractors"],
                              "serviceAccount": "ml/notebook", "dbUser": "analyst"},
                "statement": "DELETE FROM customers WHERE region = $1",
                "fingerprint": "sha256:ab",
                "tables": ["public.customers"],
                "expiresAt": "2026-11-26T10:05:00Z",
                "decisions": decisions
            }
        });
        if let Some(s) = state {
            o["status"] = json!({"state": s});
        }
        o
    }

    /// An AdmissionReview as the API server sends it.
    fn review(
        operation: &str,
        user: &str,
        groups: &[&str],
        old: Option<Value>,
        new: Value,
    ) -> AdmissionRequest<DynamicObject> {
        let review: kube::core::admission::AdmissionReview<DynamicObject> =
            serde_json::from_value(json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                    "kind": {"group": "palisade.dev", "version": "v1alpha1", "kind": "ApprovalRequest"},
                    "resource": {"group": "palisade.dev", "version": "v1alpha1", "resource": "approvalrequests"},
                    "requestKind": {"group": "palisade.dev", "version": "v1alpha1", "kind": "ApprovalRequest"},
                    "requestResource": {"group": "palisade.dev", "version": "v1alpha1", "resource": "approvalrequests"},
                    "name": "features-db-7f3a9c",
                    "namespace": "ml",
                    "operation": operation,
                    "userInfo": {"username": user, "uid": "u-1", "groups": groups},
                    "object": new,
                    "oldObject": old,
                    "dryRun": false,
                    "options": {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"}
                }
            }))
            .unwrap();
        review.try_into().unwrap()
    }

    async fn answer(request: &AdmissionRequest<DynamicObject>) -> Value {
        let now = palisade_policy::timestamp::parse(NOW).unwrap();
        wire_review(review_approval(&state(), request, now).await)
    }

    fn patch_of(answer: &Value) -> Value {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(answer["response"]["patch"].as_str().expect("a patch"))
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn refused(answer: &Value, code: u16, words: &str) {
        let r = &answer["response"];
        assert_eq!(r["allowed"], false, "{answer}");
        assert_eq!(r["status"]["code"], code, "{answer}");
        let message = r["status"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{message:?} lacks {words:?}");
        assert!(r.get("patch").is_none(), "{answer}");
    }

    fn typed(verdict: &str, user: &str) -> Value {
        json!({"verdict": verdict, "comment": "ok for Q4", "user": user, "groups": ["admins"], "at": "1999-01-01T00:00:00Z"})
    }

    #[tokio::test]
    async fn a_group_members_approval_is_stamped_with_the_verified_identity() {
        let old = object(json!([]), Some("Pending"));
        // The client typed someone else's name, groups and time into the decision.
        let new = object(json!([typed("Approve", "carol@example.com")]), None);
        let a = answer(&review(
            "UPDATE",
            "oidc:bob@example.com",
            &["data-stewards", "system:authenticated"],
            Some(old),
            new,
        ))
        .await;
        assert_eq!(a["response"]["allowed"], true, "{a}");
        assert_eq!(a["response"]["patchType"], "JSONPatch");
        assert_eq!(
            patch_of(&a),
            json!([{"op": "add", "path": "/spec/decisions", "value": [{
                "verdict": "Approve", "comment": "ok for Q4",
                "user": "oidc:bob@example.com",
                "groups": ["data-stewards", "system:authenticated"],
                "at": NOW
            }]}])
        );
    }

    #[tokio::test]
    async fn a_listed_user_approves_without_groups() {
        let old = object(json!([]), None);
        let new = object(json!([{"verdict": "Deny"}]), None);
        let a = answer(&review(
            "UPDATE",
            "oidc:steward@example.com",
            &[],
            Some(old),
            new,
        ))
        .await;
        assert_eq!(a["response"]["allowed"], true, "{a}");
        assert_eq!(
            patch_of(&a)[0]["value"][0]["user"],
            "oidc:steward@example.com"
        );
    }

    #[tokio::test]
    async fn the_requester_is_refused_under_any_identity() {
        // The sidecar's service account is one of the requester's identities.
        let a = answer(&review(
            "UPDATE",
            "system:serviceaccount:ml:notebook",
            &["data-stewards"],
            Some(object(json!([]), Some("Pending"))),
            object(json!([typed("Approve", "bob@example.com")]), None),
        ))
        .await;
        refused(&a, 403, "requested this statement");
        // And the OIDC user behind the API server's prefix.
        let a = answer(&review(
            "UPDATE",
            "oidc:alice@example.com",
            &["data-stewards"],
            Some(object(json!([]), Some("Pending"))),
            object(json!([{"verdict": "Approve"}]), None),
        ))
        .await;
        refused(&a, 403, "cannot decide it");
    }

    #[tokio::test]
    async fn a_non_approver_is_refused_with_who_may_approve() {
        let a = answer(&review(
            "UPDATE",
            "contractor",
            &["contractors", "system:authenticated"],
            Some(object(json!([]), Some("Pending"))),
            object(json!([typed("Approve", "oidc:steward@example.com")]), None),
        ))
        .await;
        refused(
            &a,
            403,
            "contractor is not an approver of rule customer-export",
        );
        let message = a["response"]["status"]["message"].as_str().unwrap();
        assert!(message.contains("data-stewards"), "{message}");
        assert_eq!(a["response"]["status"]["reason"], "Forbidden");
    }

    #[tokio::test]
    async fn an_earlier_decision_cannot_be_edited_or_removed() {
        let earlier = json!({"verdict": "Approve", "user": "oidc:steward@example.com", "at": "2026-11-26T10:01:00Z"});
        let old = object(json!([earlier]), Some("Pending"));
        let mut edited = earlier.clone();
        edited["verdict"] = json!("Deny");
        let a = answer(&review(
            "UPDATE",
            "oidc:steward@example.com",
            &[],
            Some(old.clone()),
            object(json!([edited]), None),
        ))
        .await;
        refused(&a, 422, "decision 0 was changed");
        let a = answer(&review(
            "UPDATE",
            "oidc:bob@example.com",
            &["data-stewards"],
            Some(old.clone()),
            object(json!([]), None),
        ))
        .await;
        refused(&a, 422, "decision 0 was removed");
        // Nor anything else in the spec.
        let mut other = object(json!([earlier]), None);
        other["spec"]["statement"] = json!("DELETE FROM customers");
        let a = answer(&review(
            "UPDATE",
            "oidc:bob@example.com",
            &["data-stewards"],
            Some(old),
            other,
        ))
        .await;
        refused(&a, 422, "spec.statement cannot be changed");
    }

    #[tokio::test]
    async fn a_decided_request_takes_no_more_decisions() {
        let a = answer(&review(
            "UPDATE",
            "oidc:bob@example.com",
            &["data-stewards"],
            Some(object(json!([]), Some("Denied"))),
            object(json!([{"verdict": "Approve"}]), None),
        ))
        .await;
        refused(&a, 409, "the request is Denied, no longer Pending");
        // Deciding twice.
        let first = json!({"verdict": "Approve", "user": "oidc:bob@example.com", "at": "2026-11-26T10:01:00Z"});
        let mut old = object(json!([first]), Some("Pending"));
        // minApprovals 1 would settle it; ask for two so the request stays pending.
        old["spec"]["rule"] = json!("customer-export");
        let mut two = state();
        if let Policies::Static(docs) = &two.policies {
            let mut docs = (**docs).clone();
            docs[0].spec.rules[0]
                .approval
                .as_mut()
                .unwrap()
                .min_approvals = 2;
            two.policies = Policies::Static(Arc::new(docs));
        }
        let now = palisade_policy::timestamp::parse(NOW).unwrap();
        let a = wire_review(
            review_approval(
                &two,
                &review(
                    "UPDATE",
                    "oidc:bob@example.com",
                    &["data-stewards"],
                    Some(old),
                    object(json!([first, {"verdict": "Approve"}]), None),
                ),
                now,
            )
            .await,
        );
        refused(&a, 409, "has already decided this request");
    }

    #[tokio::test]
    async fn an_unknown_policy_or_rule_fails_closed() {
        let mut old = object(json!([]), Some("Pending"));
        old["spec"]["policy"] = json!("gone-db");
        let mut new = old.clone();
        new["spec"]["decisions"] = json!([{"verdict": "Approve"}]);
        let a = answer(&review(
            "UPDATE",
            "oidc:bob@example.com",
            &["data-stewards"],
            Some(old),
            new,
        ))
        .await;
        refused(&a, 404, "DatabasePolicy ml/gone-db");

        let mut old = object(json!([]), Some("Pending"));
        old["spec"]["rule"] = json!("renamed");
        let mut new = old.clone();
        new["spec"]["decisions"] = json!([{"verdict": "Approve"}]);
        let a = answer(&review(
            "UPDATE",
            "oidc:bob@example.com",
            &["data-stewards"],
            Some(old),
            new,
        ))
        .await;
        refused(&a, 404, "has no rule \"renamed\"");

        let mut old = object(json!([]), Some("Pending"));
        old["spec"]["rule"] = json!("no-drop");
        let mut new = old.clone();
        new["spec"]["decisions"] = json!([{"verdict": "Approve"}]);
        let a = answer(&review(
            "UPDATE",
            "oidc:bob@example.com",
            &["data-stewards"],
            Some(old),
            new,
        ))
        .await;
        refused(&a, 409, "no longer requires approval");
    }

    #[tokio::test]
    async fn creation_without_decisions_and_metadata_updates_pass_unchanged() {
        let a = answer(&review(
            "CREATE",
            "system:serviceaccount:ml:notebook",
            &[],
            None,
            object(json!([]), None),
        ))
        .await;
        assert_eq!(a["response"]["allowed"], true, "{a}");
        assert!(a["response"].get("patch").is_none(), "{a}");

        let a = answer(&review(
            "CREATE",
            "system:serviceaccount:ml:notebook",
            &[],
            None,
            object(json!([typed("Approve", "oidc:steward@example.com")]), None),
        ))
        .await;
        refused(&a, 422, "a new ApprovalRequest carries no decisions");

        // A label on a settled request whose policy is gone: nothing to judge.
        let mut old = object(json!([]), Some("Expired"));
        old["spec"]["policy"] = json!("gone-db");
        let mut new = old.clone();
        new["metadata"]["labels"]["team"] = json!("ml");
        let a = answer(&review("UPDATE", "admin", &[], Some(old), new)).await;
        assert_eq!(a["response"]["allowed"], true, "{a}");
        assert!(a["response"].get("patch").is_none(), "{a}");
    }

    #[test]
    fn codes_follow_the_refusal() {
        assert_eq!(code(&Refusal::Unidentified), 403);
        assert_eq!(code(&Refusal::DecisionRemoved { index: 0 }), 422);
        assert_eq!(
            code(&Refusal::NotPending {
                state: ApprovalState::Expired
            }),
            409
        );
    }
}
