//! The AdmissionReview endpoints: decode, decide with [`inject`] (pods) or
//! [`super::approvals`] (ApprovalRequests, which fail closed), answer.
//!
//! The injection webhook must never be why a pod cannot be created: whatever goes wrong inside (no
//! policies loaded yet, a policy that does not render, a patch that cannot be serialised), the
//! answer is `allowed` — with the reason annotated on opted-in pods and sent back as a warning
//! — never a denial. Only a body that is not an AdmissionReview gets an HTTP error (400).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use tracing::{debug, error, info};

use super::inject::{InjectConfig, InjectOutcome, inject, opted_in, pod_display_name, skip};
use super::policies::Policies;

/// Pods with large annotations (`kubectl.kubernetes.io/last-applied-configuration`) make big
/// reviews; the API server itself caps requests at 3 MiB.
const MAX_BODY: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct WebhookState {
    pub config: Arc<InjectConfig>,
    pub policies: Policies,
    /// For following a pod's owner chain to its workload; `None` names the direct owner.
    pub client: Option<kube::Client>,
}

/// `POST /inject` (pods, CREATE), `POST /approvalrequests` (ApprovalRequests, CREATE and
/// UPDATE) and `GET /healthz`.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/inject", post(inject_handler))
        .route(super::approvals::PATH, post(approvals_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn inject_handler(State(state): State<WebhookState>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(request) => Json(wire_review(review_request(&state, &request).await)).into_response(),
        Err(bad) => bad,
    }
}

async fn approvals_handler(State(state): State<WebhookState>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(request) => {
            let now = std::time::SystemTime::now();
            Json(wire_review(
                super::approvals::review_approval(&state, &request, now).await,
            ))
            .into_response()
        }
        Err(bad) => bad,
    }
}

/// The request of an AdmissionReview body, or the 400 answer to a body that is not one.
#[allow(clippy::result_large_err)]
fn decode(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, Response> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body).map_err(|e| {
        debug!(error = %e, "request body is not an AdmissionReview");
        (
            StatusCode::BAD_REQUEST,
            format!("request body is not an AdmissionReview: {e}\n"),
        )
            .into_response()
    })?;
    review
        .try_into()
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response())
}

/// The review as JSON for the API server. `patch` is a `[]byte` in the API, which travels as
/// base64 in JSON; kube-core serialises its `Vec<u8>` as an array of numbers instead
/// (kube-rs/kube#1781), so the field is re-encoded here to what the API documents.
pub fn wire_review(response: AdmissionResponse) -> serde_json::Value {
    use base64::Engine;
    let mut review = serde_json::to_value(response.into_review()).unwrap_or_default();
    if let Some(patch) = review.pointer_mut("/response/patch") {
        let bytes: Option<Vec<u8>> = patch.as_array().map(|items| {
            items
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect()
        });
        if let Some(bytes) = bytes {
            *patch = base64::engine::general_purpose::STANDARD
                .encode(bytes)
                .into();
        }
    }
    review
}

/// The answer to one admission request.
pub async fn review_request(
    state: &WebhookState,
    request: &AdmissionRequest<DynamicObject>,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    // The webhook configuration routes only pod CREATEs here; anything else (a broadened
    // rule, a subresource) passes untouched.
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    if !is_pod || request.operation != Operation::Create || request.sub_resource.is_some() {
        debug!(uid = %request.uid, kind = %request.kind.kind, "not a pod creation; allowed unchanged");
        return response;
    }
    let Some(object) = &request.object else {
        return response;
    };
    let pod: Pod = match serde_json::to_value(object).and_then(serde_json::from_value) {
        Ok(p) => p,
        Err(e) => {
            error!(uid = %request.uid, error = %e, "pod in the review does not parse; allowed unchanged");
            return response;
        }
    };
    if !opted_in(&pod) {
        return response;
    }
    // Pods sent without metadata.namespace get the request's namespace from the API server.
    let namespace = request
        .namespace
        .clone()
        .or_else(|| pod.metadata.namespace.clone())
        .unwrap_or_else(|| "default".to_string());
    let name = pod_display_name(&pod);
    let labels: BTreeMap<String, String> = pod.metadata.labels.clone().unwrap_or_default();
    let outcome = match state.policies.matching(&namespace, &labels).await {
        Ok(policies) => {
            let workload = super::workload::resolve(state.client.as_ref(), &namespace, &pod).await;
            inject(&pod, &policies, &state.config, workload.as_deref())
        }
        Err(reason) => skip(&pod, reason),
    };
    respond(response, outcome, &namespace, &name)
}

fn respond(
    mut response: AdmissionResponse,
    outcome: InjectOutcome,
    namespace: &str,
    name: &str,
) -> AdmissionResponse {
    let (patch, warnings) = match outcome {
        InjectOutcome::Patch { patch, warnings } => {
            info!(namespace, pod = name, "injecting the sidecar");
            (patch, warnings)
        }
        InjectOutcome::Skip { reason, patch } => {
            let warnings = if reason.annotates() {
                info!(namespace, pod = name, %reason, "not injecting the sidecar");
                vec![format!(
                    "palisade: no sidecar for pod {namespace}/{name}: {reason}"
                )]
            } else {
                debug!(namespace, pod = name, %reason, "not injecting the sidecar");
                Vec::new()
            };
            (patch, warnings)
        }
    };
    if !warnings.is_empty() {
        response.warnings = Some(warnings.iter().map(|w| truncate(w)).collect());
    }
    if patch.0.is_empty() {
        return response;
    }
    let fallback = response.clone();
    match response.with_patch(patch) {
        Ok(r) => r,
        Err(e) => {
            error!(namespace, pod = name, error = %e, "serialising the patch");
            let mut r = fallback;
            r.warnings.get_or_insert_with(Vec::new).push(format!(
                "palisade: no sidecar for pod {namespace}/{name}: {e}"
            ));
            r
        }
    }
}

/// The API server may truncate warnings over 256 characters; cut them ourselves, on a
/// character boundary, so the end says it was cut.
fn truncate(warning: &str) -> String {
    const MAX: usize = 256;
    if warning.len() <= MAX {
        return warning.to_string();
    }
    let mut end = MAX - 3;
    while !warning.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &warning[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_warnings_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short"), "short");
        let long = "é".repeat(200);
        let cut = truncate(&long);
        assert!(cut.len() <= 256 && cut.ends_with("..."), "{cut}");
    }

    #[test]
    fn the_patch_goes_out_base64_encoded() {
        let request: AdmissionRequest<DynamicObject> = serde_json::from_value(serde_json::json!({
            "uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE", "userInfo": {}, "object": null, "oldObject": null
        }))
        .unwrap();
        let patch: json_patch::Patch =
            serde_json::from_str(r#"[{"op":"add","path":"/a","value":1}]"#).unwrap();
        let response = AdmissionResponse::from(&request).with_patch(patch).unwrap();
        let review = wire_review(response);
        assert_eq!(
            review["response"]["patch"],
            "W3sib3AiOiJhZGQiLCJwYXRoIjoiL2EiLCJ2YWx1ZSI6MX1d"
        );
        assert_eq!(review["response"]["patchType"], "JSONPatch");
    }
}
